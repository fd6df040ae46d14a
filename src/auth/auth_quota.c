/*
 * Per-key quotas and usage: a token bucket for requests, and daily
 * counters for ingest bytes and generated tokens; their metrics and the
 * admin API's usage report.
 *
 * The bucket holds up to `burst` requests and refills at requests_per_s;
 * a request takes one, and when none is left the answer is 429 with
 * Retry-After the seconds until one is back. Daily counters reset at
 * midnight UTC (Retry-After: the seconds until then). Ingest is charged
 * with the request body's size before the work starts; generated tokens
 * are checked before an answer (any left?) and charged after it, so a key
 * may overshoot its daily tokens by one answer's max_tokens.
 *
 * Where the counts live. Without auth.quota_redis_url, in this process's
 * memory: exact per instance, reset by a restart, and N instances (or
 * server.workers processes) give a key N times its limits. With it, in
 * Redis (auth_quota_redis.c): one bucket and one day's counters per key
 * for every instance, kept across restarts, at the cost of one round trip
 * per decision. This file asks Redis first and keeps its own counters as
 * well (usage of this instance, the per-key metrics); when Redis does not
 * answer in time it decides by its own counters instead, which is the
 * per-instance limit (fail open to it rather than fail every request).
 * Its own request bucket is only drawn on in that case, so a key starts
 * an outage with a full local bucket; its daily counters count
 * everything this instance admitted today either way.
 *
 * Metrics: ragd_quota_rejections_total{kind}, ragd_auth_refusals_total
 * {reason}, ragd_quota_redis_errors_total, and per key (labelled by the
 * public key id, never the tenant or the secret) ragd_key_requests_total,
 * ragd_key_ingest_bytes_total, ragd_key_generated_tokens_total: all of
 * them count this instance's decisions.
 */
#include "auth/auth_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "obs/metrics.h"

#include "core/banned.h"

static const char *const kind_names[3] = { "requests", "ingest_bytes", "generated_tokens" };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct metric *m_rejections, *m_refusals, *m_requests, *m_ingest, *m_tokens;

static void register_families(void)
{
	static const char *const kind[] = { "kind", NULL };
	static const char *const reason[] = { "reason", NULL };
	static const char *const key[] = { "key", NULL };

	m_rejections = metrics_counter("ragd_quota_rejections_total",
				       "Requests refused with 429 because a key's quota was spent",
				       kind);
	m_refusals = metrics_counter("ragd_auth_refusals_total",
				     "Requests refused for their credentials (401) or role (403)",
				     reason);
	m_requests = metrics_counter("ragd_key_requests_total",
				     "Requests admitted per API key (labelled by its public id)", key);
	m_ingest = metrics_counter("ragd_key_ingest_bytes_total",
				   "Ingest request bytes admitted per API key", key);
	m_tokens = metrics_counter("ragd_key_generated_tokens_total",
				   "Tokens generated for answers per API key", key);
}

void auth_slot_quota_init(struct auth_slot *s)
{
	const char *labels[1] = { s->id };

	pthread_once(&once, register_families);
	s->m_requests = metric_child(m_requests, labels);
	s->m_ingest = metric_child(m_ingest, labels);
	s->m_tokens = metric_child(m_tokens, labels);
	/* Families with few label values: make them visible at 0 from the start. */
	for (int i = 0; i < 3; i++) {
		const char *k[1] = { kind_names[i] };

		metric_child(m_rejections, k);
	}
}

void auth_note_refusal(int code)
{
	const char *reason[1] = { code == RAG_EFORBIDDEN ? "forbidden" : "unauthorized" };

	pthread_once(&once, register_families);
	metric_inc(metric_child(m_refusals, reason));
}

/* Limits of s now (the key's own may change when it is re-read). Takes a->lock. */
static struct auth_limits limits_of(struct auth *a, struct auth_slot *s)
{
	struct auth_limits l;

	pthread_mutex_lock(&a->lock);
	l = auth_effective(a, &s->own);
	pthread_mutex_unlock(&a->lock);
	return l;
}

int64_t auth_burst(const struct auth_limits *l)
{
	if (l->burst > 0)
		return l->burst;
	return l->requests_per_s > 0 ? (int64_t)fmax(1.0, ceil(l->requests_per_s)) : 0;
}

/* Rolls the daily counters over at midnight UTC. Caller holds s->qlock. */
static void roll_day(struct auth_slot *s, int64_t day)
{
	if (s->day != day) {
		s->day = day;
		s->ingest_today = 0;
		s->tokens_today = 0;
	}
}

/*
 * This process's decision: 0 to admit (the request bucket drawn on), or
 * the seconds to wait. Caller holds s->qlock, the day rolled.
 */
static int local_wait_s(struct auth_slot *s, const struct auth_limits *l, enum auth_quota q,
			int64_t amount, int64_t wall_ms)
{
	if (q == AUTH_QUOTA_REQUESTS) {
		double burst = (double)auth_burst(l), now = (double)auth_now_ms();

		if (l->requests_per_s <= 0)
			return 0;
		if (s->bucket_ms == 0)
			s->bucket = burst;
		else
			s->bucket = fmin(burst, s->bucket + (now - s->bucket_ms) / 1000.0 *
							      l->requests_per_s);
		s->bucket_ms = now;
		if (s->bucket < 1.0)
			return (int)ceil((1.0 - s->bucket) / l->requests_per_s);
		s->bucket -= 1.0;
		return 0;
	}
	if (q == AUTH_QUOTA_INGEST_BYTES)
		return l->ingest_bytes_per_day > 0 &&
				       s->ingest_today + amount > l->ingest_bytes_per_day
			       ? auth_quota_until_midnight_s(wall_ms)
			       : 0;
	return l->tokens_per_day > 0 && s->tokens_today >= l->tokens_per_day
		       ? auth_quota_until_midnight_s(wall_ms)
		       : 0;
}

/* Counts an admitted amount in this process's usage and metrics. Caller holds s->qlock. */
static void count_admitted(struct auth_slot *s, enum auth_quota q, int64_t amount)
{
	if (q == AUTH_QUOTA_REQUESTS) {
		s->requests_total++;
		metric_inc(s->m_requests);
	} else if (q == AUTH_QUOTA_INGEST_BYTES) {
		s->ingest_today += amount;
		s->ingest_total += amount;
		metric_add(s->m_ingest, (double)amount);
	}
}

/* Counts a refusal and words the 429. Caller holds s->qlock. */
static int refuse(struct auth_slot *s, const struct auth_limits *l, enum auth_quota q,
		  int wait_s, int *retry_after_s, struct rag_err *err)
{
	const char *k[1] = { kind_names[q] };

	s->rejected[q]++;
	metric_inc(metric_child(m_rejections, k));
	*retry_after_s = wait_s < 1 ? 1 : wait_s;
	if (q == AUTH_QUOTA_REQUESTS)
		return rag_err_set(err, RAG_ERATELIMIT, NULL,
				   "rate limit of %g requests/s for this API key; retry in %d s",
				   l->requests_per_s, *retry_after_s);
	if (q == AUTH_QUOTA_INGEST_BYTES)
		return rag_err_set(err, RAG_ERATELIMIT, NULL,
				   "daily ingest quota of %.0f bytes for this API key is spent;"
				   " it renews in %d s (midnight UTC)",
				   (double)l->ingest_bytes_per_day, *retry_after_s);
	return rag_err_set(err, RAG_ERATELIMIT, NULL,
			   "daily quota of %.0f generated tokens for this API key is spent;"
			   " it renews in %d s (midnight UTC)",
			   (double)l->tokens_per_day, *retry_after_s);
}

int auth_admit(struct auth *a, const struct auth_principal *p, enum auth_quota q,
	       int64_t amount, int *retry_after_s, struct rag_err *err)
{
	struct auth_slot *s = p->slot;
	struct auth_limits l;
	int64_t wall = auth_wall_ms(), retry_ms = 0;
	int wait_s = -1, rc = 0;

	*retry_after_s = 0;
	if (!s)
		return 0;
	l = limits_of(a, s);
	if (a->qr) {
		rc = auth_quota_redis_admit(a->qr, s->id, q, amount, &l, &retry_ms);
		if (rc == 0)
			wait_s = 0;
		else if (rc == RAG_ERATELIMIT)
			wait_s = auth_quota_retry_s(retry_ms);
		/* Else Redis did not answer: this process decides (counted, logged there). */
	}
	pthread_mutex_lock(&s->qlock);
	roll_day(s, auth_quota_day(wall));
	if (wait_s < 0)
		wait_s = local_wait_s(s, &l, q, amount, wall);
	if (wait_s > 0) {
		rc = refuse(s, &l, q, wait_s, retry_after_s, err);
	} else {
		count_admitted(s, q, amount);
		rc = 0;
	}
	pthread_mutex_unlock(&s->qlock);
	return rc;
}

void auth_charge_tokens(struct auth *a, const struct auth_principal *p, int64_t n)
{
	struct auth_slot *s = p->slot;

	if (!s || n <= 0)
		return;
	if (a->qr)
		auth_quota_redis_charge(a->qr, s->id, n); /* a failure is counted and logged there */
	pthread_mutex_lock(&s->qlock);
	roll_day(s, auth_quota_day(auth_wall_ms()));
	s->tokens_today += n;
	s->tokens_total += n;
	pthread_mutex_unlock(&s->qlock);
	metric_add(s->m_tokens, (double)n);
}

void auth_limits_json(struct sbuf *out, const struct auth_limits *l)
{
	sbuf_addstr(out, "\"limits\":{\"requests_per_s\":");
	metrics_format_value(out, l->requests_per_s);
	sbuf_addf(out, ",\"burst\":%lld,\"ingest_bytes_per_day\":%lld,\"tokens_per_day\":%lld}",
		  (long long)auth_burst(l), (long long)l->ingest_bytes_per_day,
		  (long long)l->tokens_per_day);
}

/* One key of a usage report: what a->lock guards, read while it was held. */
struct usage_row {
	struct auth_slot *slot;
	struct auth_limits limits;
	enum auth_role role;
	bool revoked;
	struct auth_quota_usage u;
};

/* Appends a row for s. Caller holds a->lock. 0 or RAG_ENOMEM. */
static int add_row(struct auth *a, struct auth_slot *s, struct usage_row **rows, size_t *n,
		   size_t *cap)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		struct usage_row *r = realloc(*rows, c * sizeof(*r));

		if (!r)
			return RAG_ENOMEM;
		*rows = r;
		*cap = c;
	}
	(*rows)[(*n)++] = (struct usage_row){ s, auth_effective(a, &s->own), s->role, s->revoked,
					      { 0 } };
	return 0;
}

/* This process's counts of s. Takes s->qlock. */
static void local_usage(struct auth_slot *s, struct auth_quota_usage *u)
{
	pthread_mutex_lock(&s->qlock);
	roll_day(s, auth_quota_day(auth_wall_ms()));
	*u = (struct auth_quota_usage){
		.requests_total = s->requests_total, .ingest_total = s->ingest_total,
		.tokens_total = s->tokens_total,
		.rejected = { s->rejected[0], s->rejected[1], s->rejected[2] },
		.ingest_today = s->ingest_today, .tokens_today = s->tokens_today,
	};
	pthread_mutex_unlock(&s->qlock);
}

/* The counts of rows: from Redis when it answers ("cluster"), else this process's. */
static const char *fill_usage(struct auth *a, struct usage_row *rows, size_t n)
{
	const char **ids = NULL;
	struct auth_quota_usage *u = NULL;
	bool cluster = false;

	if (a->qr && n > 0) {
		ids = calloc(n, sizeof(*ids));
		u = calloc(n, sizeof(*u));
		for (size_t i = 0; ids && i < n; i++)
			ids[i] = rows[i].slot->id;
		cluster = ids && u && auth_quota_redis_usage(a->qr, ids, n, u) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (cluster)
			rows[i].u = u[i];
		else
			local_usage(rows[i].slot, &rows[i].u);
	free(ids);
	free(u);
	return cluster ? "cluster" : "instance";
}

static void row_json(struct sbuf *out, const struct usage_row *r, const char *scope)
{
	const struct auth_quota_usage *u = &r->u;

	sbuf_addstr(out, "{\"key_id\":");
	sbuf_add_json_str(out, r->slot->id, strlen(r->slot->id));
	sbuf_addf(out, ",\"role\":\"%s\",\"revoked\":%s,", auth_role_name(r->role),
		  r->revoked ? "true" : "false");
	auth_limits_json(out, &r->limits);
	sbuf_addf(out, ",\"usage\":{\"scope\":\"%s\",\"requests_total\":%lld,"
		  "\"ingest_bytes_today\":%lld,\"ingest_bytes_total\":%lld,\"tokens_today\":%lld,"
		  "\"tokens_total\":%lld,\"rejections\":{\"requests\":%lld,\"ingest_bytes\":%lld,"
		  "\"generated_tokens\":%lld}}}",
		  scope, (long long)u->requests_total, (long long)u->ingest_today,
		  (long long)u->ingest_total, (long long)u->tokens_today,
		  (long long)u->tokens_total, (long long)u->rejected[0], (long long)u->rejected[1],
		  (long long)u->rejected[2]);
}

int auth_usage_json(struct auth *a, const char *tenant, const char *key_id, struct sbuf *out,
		    struct rag_err *err)
{
	struct hashmap_iter it;
	struct auth_slot *s = NULL;
	struct usage_row *rows = NULL;
	size_t n = 0, cap = 0;
	const char *key, *scope;
	void *val;
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	hashmap_iter_init(&it, a->slots);
	while (rc == 0 && hashmap_iter_next(&it, &key, &val)) {
		s = val;
		if (strcmp(s->tenant, tenant) == 0 && (!key_id || strcmp(s->id, key_id) == 0))
			rc = add_row(a, s, &rows, &n, &cap);
	}
	pthread_mutex_unlock(&a->lock);
	/* A stored key this instance has not seen yet: read it (its own usage all zero). */
	if (rc == 0 && key_id && n == 0 && auth_slot_get(a, key_id, &s, NULL) == 0 && s &&
	    strcmp(s->tenant, tenant) == 0) {
		pthread_mutex_lock(&a->lock);
		rc = add_row(a, s, &rows, &n, &cap);
		pthread_mutex_unlock(&a->lock);
	}
	if (rc < 0) {
		free(rows);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	if (key_id && n == 0)
		return rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", key_id);
	scope = fill_usage(a, rows, n);
	sbuf_addch(out, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_addch(out, ',');
		row_json(out, &rows[i], scope);
	}
	sbuf_addch(out, ']');
	free(rows);
	return sbuf_error(out) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory") : 0;
}
