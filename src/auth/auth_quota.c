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
 * All of it is in this process's memory: exact per instance, reset by a
 * restart, and N instances give a key N times its limits. Redis would make
 * limits global at the cost of a round trip per request; docs/security.md
 * says to divide the limits by the replica count instead.
 *
 * Metrics: ragd_quota_rejections_total{kind}, ragd_auth_refusals_total
 * {reason}, and per key (labelled by the public key id, never the tenant
 * or the secret) ragd_key_requests_total, ragd_key_ingest_bytes_total,
 * ragd_key_generated_tokens_total.
 */
#include "auth/auth_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define DAY_MS 86400000LL

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

/* Rolls the daily counters over at midnight UTC. Caller holds s->qlock. */
static void roll_day(struct auth_slot *s, int64_t day)
{
	if (s->day != day) {
		s->day = day;
		s->ingest_today = 0;
		s->tokens_today = 0;
	}
}

static int until_midnight_s(int64_t wall_ms)
{
	int64_t left = DAY_MS - wall_ms % DAY_MS;

	return (int)((left + 999) / 1000);
}

static int reject(struct auth_slot *s, enum auth_quota q, int retry_s, int *retry_after_s,
		  struct rag_err *err, const char *fmt, double limit)
{
	const char *k[1] = { kind_names[q] };

	s->rejected[q]++;
	metric_inc(metric_child(m_rejections, k));
	*retry_after_s = retry_s < 1 ? 1 : retry_s;
	return rag_err_set(err, RAG_ERATELIMIT, NULL, fmt, limit, *retry_after_s);
}

int auth_admit(struct auth *a, const struct auth_principal *p, enum auth_quota q,
	       int64_t amount, int *retry_after_s, struct rag_err *err)
{
	struct auth_slot *s = p->slot;
	struct auth_limits l;
	int64_t wall = auth_wall_ms();
	int rc = 0;

	*retry_after_s = 0;
	if (!s)
		return 0;
	l = limits_of(a, s);
	pthread_mutex_lock(&s->qlock);
	roll_day(s, wall / DAY_MS);
	if (q == AUTH_QUOTA_REQUESTS) {
		double burst = l.burst > 0 ? (double)l.burst : fmax(1.0, ceil(l.requests_per_s));
		double now = (double)auth_now_ms();

		if (l.requests_per_s > 0) {
			if (s->bucket_ms == 0)
				s->bucket = burst;
			else
				s->bucket = fmin(burst, s->bucket + (now - s->bucket_ms) / 1000.0 *
								      l.requests_per_s);
			s->bucket_ms = now;
			if (s->bucket < 1.0)
				rc = reject(s, q, (int)ceil((1.0 - s->bucket) / l.requests_per_s),
					    retry_after_s, err,
					    "rate limit of %g requests/s for this API key; retry in"
					    " %d s", l.requests_per_s);
			else
				s->bucket -= 1.0;
		}
		if (rc == 0) {
			s->requests_total++;
			metric_inc(s->m_requests);
		}
	} else if (q == AUTH_QUOTA_INGEST_BYTES) {
		if (l.ingest_bytes_per_day > 0 && s->ingest_today + amount > l.ingest_bytes_per_day)
			rc = reject(s, q, until_midnight_s(wall), retry_after_s, err,
				    "daily ingest quota of %.0f bytes for this API key is spent;"
				    " it renews in %d s (midnight UTC)",
				    (double)l.ingest_bytes_per_day);
		if (rc == 0) {
			s->ingest_today += amount;
			s->ingest_total += amount;
			metric_add(s->m_ingest, (double)amount);
		}
	} else if (l.tokens_per_day > 0 && s->tokens_today + amount >= l.tokens_per_day) {
		rc = reject(s, q, until_midnight_s(wall), retry_after_s, err,
			    "daily quota of %.0f generated tokens for this API key is spent;"
			    " it renews in %d s (midnight UTC)", (double)l.tokens_per_day);
	}
	pthread_mutex_unlock(&s->qlock);
	return rc;
}

void auth_charge_tokens(struct auth *a, const struct auth_principal *p, int64_t n)
{
	struct auth_slot *s = p->slot;

	(void)a;
	if (!s || n <= 0)
		return;
	pthread_mutex_lock(&s->qlock);
	roll_day(s, auth_wall_ms() / DAY_MS);
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
		  (long long)(l->burst > 0 ? l->burst
					   : (l->requests_per_s > 0
						      ? (int64_t)fmax(1.0, ceil(l->requests_per_s))
						      : 0)),
		  (long long)l->ingest_bytes_per_day, (long long)l->tokens_per_day);
}

static void usage_json(struct auth *a, struct auth_slot *s, struct sbuf *out)
{
	struct auth_limits l = auth_effective(a, &s->own);
	int64_t day = auth_wall_ms() / DAY_MS;

	sbuf_addstr(out, "{\"key_id\":");
	sbuf_add_json_str(out, s->id, strlen(s->id));
	sbuf_addf(out, ",\"role\":\"%s\",\"revoked\":%s,", auth_role_name(s->role),
		  s->revoked ? "true" : "false");
	auth_limits_json(out, &l);
	pthread_mutex_lock(&s->qlock);
	roll_day(s, day);
	sbuf_addf(out, ",\"usage\":{\"requests_total\":%lld,\"ingest_bytes_today\":%lld,"
		  "\"ingest_bytes_total\":%lld,\"tokens_today\":%lld,\"tokens_total\":%lld,"
		  "\"rejections\":{\"requests\":%lld,\"ingest_bytes\":%lld,"
		  "\"generated_tokens\":%lld}}}",
		  (long long)s->requests_total, (long long)s->ingest_today,
		  (long long)s->ingest_total, (long long)s->tokens_today,
		  (long long)s->tokens_total, (long long)s->rejected[0], (long long)s->rejected[1],
		  (long long)s->rejected[2]);
	pthread_mutex_unlock(&s->qlock);
}

int auth_usage_json(struct auth *a, const char *tenant, const char *key_id, struct sbuf *out,
		    struct rag_err *err)
{
	struct hashmap_iter it;
	struct auth_slot *s = NULL;
	const char *key;
	void *val;
	int first = 1, found = 0;

	sbuf_addch(out, '[');
	pthread_mutex_lock(&a->lock);
	hashmap_iter_init(&it, a->slots);
	while (hashmap_iter_next(&it, &key, &val)) {
		s = val;
		if (strcmp(s->tenant, tenant) != 0 || (key_id && strcmp(s->id, key_id) != 0))
			continue;
		if (!first)
			sbuf_addch(out, ',');
		first = 0;
		found = 1;
		usage_json(a, s, out);
	}
	pthread_mutex_unlock(&a->lock);
	/* A stored key this instance has not seen yet: read it, usage all zero. */
	if (key_id && !found && auth_slot_get(a, key_id, &s, NULL) == 0 && s &&
	    strcmp(s->tenant, tenant) == 0) {
		pthread_mutex_lock(&a->lock);
		usage_json(a, s, out);
		pthread_mutex_unlock(&a->lock);
		found = 1;
	}
	sbuf_addch(out, ']');
	if (key_id && !found)
		return rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", key_id);
	return sbuf_error(out) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory") : 0;
}
