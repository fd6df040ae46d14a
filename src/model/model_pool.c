/*
 * Model pool: the instance list and the routing decisions (no I/O here;
 * model_pool_http.c does the requests and the health checks).
 *
 * Hash routing is rendezvous (highest random weight) hashing: each
 * instance scores hash(key, instance) and the best eligible score wins. When
 * an instance is ejected only the keys it won move, each to its own second
 * choice, and they come back when it is readmitted; a modulo ring would
 * reshuffle every key. Least in flight scans from a rotating start so that
 * ties spread instead of piling onto instance 0.
 *
 * Locking: `mu` guards every field of every instance and `rr`; picks hold
 * it for a scan of at most MODEL_POOL_MAX_INSTANCES entries.
 */
#include "model/model_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rag_error.h"
#include "model/model_pool_int.h"
#include "obs/metrics.h"

#include "core/banned.h"

void model_pool_default_options(struct model_pool_options *o)
{
	memset(o, 0, sizeof(*o));
	o->name = "remote";
	o->policy = MODEL_POOL_ROUND_ROBIN;
	o->connect_timeout_ms = 1000;
	o->request_timeout_ms = 30000;
	o->deadline_ms = 60000;
	o->health_interval_ms = 1000;
	o->health_path = "/health";
	o->eject_after = 2;
	o->eject_ms = 5000;
}

int model_pool_policy_parse(const char *s, enum model_pool_policy *out)
{
	if (strcmp(s, "round_robin") == 0)
		*out = MODEL_POOL_ROUND_ROBIN;
	else if (strcmp(s, "hash") == 0)
		*out = MODEL_POOL_HASH;
	else if (strcmp(s, "least_inflight") == 0)
		*out = MODEL_POOL_LEAST_INFLIGHT;
	else
		return RAG_EINVAL;
	return 0;
}

double model_pool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* FNV-1a, then a murmur3 finaliser so close keys land far apart. */
static uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int add_instance(struct model_pool *p, const char *url, size_t len, struct rag_err *err)
{
	struct pool_instance *in;
	const char *labels[4];

	while (len > 0 && url[len - 1] == '/')
		len--;
	if (len == 0)
		return 0;
	if (p->n == MODEL_POOL_MAX_INSTANCES)
		return rag_err_set(err, RAG_EINVAL, "models.remote.urls",
				   "at most %d instances in a pool", MODEL_POOL_MAX_INSTANCES);
	if (!(len > 7 && strncmp(url, "http://", 7) == 0) &&
	    !(len > 8 && strncmp(url, "https://", 8) == 0))
		return rag_err_set(err, RAG_EINVAL, "models.remote.urls",
				   "'%.*s' is not an http:// or https:// URL", (int)len, url);
	in = &p->in[p->n];
	in->url = strndup(url, len);
	if (!in->url)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	in->seed = hash64(in->url, len, 0x9e3779b97f4a7c15ULL);
	in->up = 1;
	labels[0] = p->name;
	labels[1] = in->url;
	labels[2] = NULL;
	in->m_in_flight = metric_child(p->m_in_flight, labels);
	in->m_up = metric_child(p->m_up, labels);
	in->m_duration = metric_child(p->m_duration, labels);
	metric_set(in->m_up, 1);
	for (int o = 0; o < POOL_N_OUTCOMES; o++) {
		labels[2] = pool_outcome_names[o];
		labels[3] = NULL;
		in->m_requests[o] = metric_child(p->m_requests, labels);
	}
	p->n++;
	return 0;
}

const char *const pool_outcome_names[POOL_N_OUTCOMES] = { "ok", "failed", "client_error" };

static void register_metrics(struct model_pool *p)
{
	static const char *const labels[] = { "pool", "instance", NULL };
	static const char *const req_labels[] = { "pool", "instance", "outcome", NULL };
	static const double buckets[] = { 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
					  10000, 30000 };

	p->m_requests = metrics_counter("ragd_model_upstream_requests_total",
					"Attempts on remote model instances by outcome", req_labels);
	p->m_in_flight = metrics_gauge("ragd_model_upstream_in_flight",
				       "Attempts in flight on each remote model instance", labels);
	p->m_up = metrics_gauge("ragd_model_upstream_up",
				"1 while a remote model instance is in rotation", labels);
	p->m_duration = metrics_histogram("ragd_model_upstream_duration_ms",
					  "Attempt time on each remote model instance in ms",
					  labels, buckets, sizeof(buckets) / sizeof(buckets[0]));
}

struct model_pool *model_pool_new(const struct model_pool_options *o, struct rag_err *err)
{
	struct model_pool *p;
	const char *s;

	if (!o->urls || o->eject_after < 1 || o->deadline_ms < 1 || o->request_timeout_ms < 1) {
		rag_err_set(err, RAG_EINVAL, "models.remote", "remote pool options out of range");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	p->opts = *o;
	snprintf(p->name, sizeof(p->name), "%s", o->name ? o->name : "remote");
	p->health_path = strdup(o->health_path ? o->health_path : "/health");
	p->api_key = o->api_key && o->api_key[0] ? strdup(o->api_key) : NULL;
	p->opts.name = p->name;
	p->opts.health_path = p->health_path;
	p->opts.api_key = p->api_key;
	p->opts.urls = NULL;
	pthread_mutex_init(&p->mu, NULL);
	register_metrics(p);
	for (s = o->urls; *s;) {
		size_t len = strcspn(s, ", \t");

		if (add_instance(p, s, len, err) < 0)
			goto fail;
		s += len;
		s += strspn(s, ", \t");
	}
	if (p->n == 0) {
		rag_err_set(err, RAG_EINVAL, "models.remote.urls", "no instance URL given");
		goto fail;
	}
	if (!p->health_path || pool_http_start(p, err) < 0)
		goto fail;
	return p;
fail:
	model_pool_free(p);
	return NULL;
}

void model_pool_free(struct model_pool *p)
{
	if (!p)
		return;
	pool_http_stop(p);
	for (size_t i = 0; i < p->n; i++)
		free(p->in[i].url);
	free(p->health_path);
	free(p->api_key);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

size_t model_pool_size(const struct model_pool *p)
{
	return p->n;
}

const char *model_pool_url(const struct model_pool *p, size_t i)
{
	return i < p->n ? p->in[i].url : NULL;
}

int model_pool_is_up(struct model_pool *p, size_t i)
{
	int up;

	pthread_mutex_lock(&p->mu);
	up = i < p->n && p->in[i].up;
	pthread_mutex_unlock(&p->mu);
	return up;
}

int model_pool_in_flight(struct model_pool *p, size_t i)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = i < p->n ? p->in[i].in_flight : 0;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* In rotation, or ejected long enough ago to deserve a probe (no health thread). */
static int eligible(const struct model_pool *p, const struct pool_instance *in, double now)
{
	if (in->up)
		return 1;
	return p->opts.health_interval_ms <= 0 && now - in->ejected_at >= p->opts.eject_ms;
}

static int choose(struct model_pool *p, const void *key, size_t key_len, uint64_t tried,
		  double now, int any)
{
	uint64_t kh = key ? hash64(key, key_len, 0) : 0;
	uint64_t best_score = 0;
	int best = -1;
	size_t start = p->rr++ % p->n;

	for (size_t k = 0; k < p->n; k++) {
		size_t i = (start + k) % p->n;
		const struct pool_instance *in = &p->in[i];

		if ((tried >> i) & 1 || (!any && !eligible(p, in, now)))
			continue;
		if (p->opts.policy == MODEL_POOL_ROUND_ROBIN)
			return (int)i;
		if (p->opts.policy == MODEL_POOL_HASH) {
			uint64_t score = hash64(&kh, sizeof(kh), in->seed);

			if (best < 0 || score > best_score) {
				best = (int)i;
				best_score = score;
			}
		} else if (best < 0 || in->in_flight < p->in[best].in_flight) {
			best = (int)i;
		}
	}
	return best;
}

int model_pool_pick(struct model_pool *p, const void *key, size_t key_len, uint64_t tried,
		    double now_ms)
{
	int i;

	pthread_mutex_lock(&p->mu);
	i = choose(p, key, key_len, tried, now_ms, 0);
	if (i < 0) {
		/* Everything untried is out: try the one ejected longest ago, not nothing. */
		for (size_t k = 0; k < p->n; k++)
			if (!((tried >> k) & 1) &&
			    (i < 0 || p->in[k].ejected_at < p->in[i].ejected_at))
				i = (int)k;
	}
	if (i >= 0) {
		p->in[i].in_flight++;
		metric_add(p->in[i].m_in_flight, 1);
	}
	pthread_mutex_unlock(&p->mu);
	return i;
}

static void eject(struct pool_instance *in, double now)
{
	in->up = 0;
	in->ejected_at = now;
	metric_set(in->m_up, 0);
}

void model_pool_done(struct model_pool *p, int i, int ok, double now_ms)
{
	struct pool_instance *in;

	if (i < 0 || (size_t)i >= p->n)
		return;
	in = &p->in[i];
	pthread_mutex_lock(&p->mu);
	in->in_flight--;
	metric_add(in->m_in_flight, -1);
	if (ok) {
		in->failures = 0;
		if (!in->up && p->opts.health_interval_ms <= 0) {
			in->up = 1; /* a probe after eject_ms passed */
			metric_set(in->m_up, 1);
		}
	} else if (++in->failures >= p->opts.eject_after || !in->up) {
		eject(in, now_ms);
	}
	pthread_mutex_unlock(&p->mu);
}

void model_pool_health(struct model_pool *p, size_t i, int ok, double now_ms)
{
	struct pool_instance *in;

	if (i >= p->n)
		return;
	in = &p->in[i];
	pthread_mutex_lock(&p->mu);
	if (ok && !in->up) {
		in->up = 1;
		in->failures = 0;
		metric_set(in->m_up, 1);
	} else if (!ok && in->up) {
		eject(in, now_ms);
	}
	pthread_mutex_unlock(&p->mu);
}
