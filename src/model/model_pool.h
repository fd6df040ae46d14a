/*
 * A pool of OpenAI-compatible model servers: the transport under the remote
 * embedder and generator.
 *
 * The pool holds a list of instances (base URLs) and routes each call by a
 * policy: round-robin, a hash of the request (rendezvous hashing, so equal
 * requests reach the same warm instance and only an ejected instance's keys
 * move), or least in flight. A failed attempt (connection refused, timeout,
 * HTTP 408/429/5xx) counts against its instance and the call is retried on
 * another instance while the call's deadline allows; a 4xx answer is the
 * client's fault and is returned at once. An instance is ejected after
 * eject_after consecutive failures, or at once when a health check fails; a
 * health thread (GET health_path every health_interval_ms) readmits it when
 * it answers again. With no health thread, an ejected instance is tried
 * again after eject_ms (and ejected again if it still fails).
 *
 * Routing (model_pool_pick / model_pool_done / model_pool_health) is plain
 * logic over a clock the caller passes in, so it is unit-tested without
 * sockets or sleeps; model_pool_post does the HTTP with libcurl.
 *
 * Per instance the pool exports ragd_model_upstream_requests_total{pool,
 * instance,outcome}, ragd_model_upstream_in_flight, ragd_model_upstream_up
 * and ragd_model_upstream_duration_ms.
 *
 * Thread-safety: every function may be called from many threads at once,
 * except model_pool_free.
 */
#ifndef RAGD_MODEL_MODEL_POOL_H
#define RAGD_MODEL_MODEL_POOL_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct sbuf;
struct model_pool;

#define MODEL_POOL_MAX_INSTANCES 64 /* a tried-set fits in one uint64_t */

enum model_pool_policy {
	MODEL_POOL_ROUND_ROBIN = 0,
	MODEL_POOL_HASH,           /* same key, same instance while it is up */
	MODEL_POOL_LEAST_INFLIGHT, /* fewest calls in flight; ties in turn */
};

struct model_pool_options {
	const char *name;          /* metrics label, e.g. "embedder" */
	const char *urls;          /* comma-separated base URLs, "http://host:port[/prefix]" */
	enum model_pool_policy policy;
	int connect_timeout_ms;    /* TCP connect, per attempt */
	int request_timeout_ms;    /* one attempt, whole response */
	int deadline_ms;           /* one call, retries included */
	int health_interval_ms;    /* 0: no health thread */
	const char *health_path;   /* e.g. "/health" */
	int eject_after;           /* consecutive failures that eject (>= 1) */
	int eject_ms;              /* without health checks: retry an ejected one after this */
	const char *api_key;       /* sent as "Authorization: Bearer ..."; NULL for none */
};

void model_pool_default_options(struct model_pool_options *o);

/* Parses "round_robin", "hash" or "least_inflight"; RAG_EINVAL otherwise. */
int model_pool_policy_parse(const char *s, enum model_pool_policy *out);

/*
 * A pool over opts->urls (copied). RAG_EINVAL naming "models.remote.urls"
 * for an empty list, more than MODEL_POOL_MAX_INSTANCES or a URL that is
 * not http(s)://. Starts the health thread when health_interval_ms > 0.
 * Caller frees with model_pool_free.
 */
struct model_pool *model_pool_new(const struct model_pool_options *opts, struct rag_err *err);

/* Stops the health thread and frees (NULL-safe); no call may be in flight. */
void model_pool_free(struct model_pool *p);

size_t model_pool_size(const struct model_pool *p);

/* The base URL of instance i (borrowed for the pool's lifetime). */
const char *model_pool_url(const struct model_pool *p, size_t i);

/* 1 when instance i is in rotation. */
int model_pool_is_up(struct model_pool *p, size_t i);

/*
 * Chooses an instance for a call by the policy, skipping those whose bit is
 * set in tried and those ejected (unless eject_ms has passed since, or every
 * untried instance is ejected: then the least recently ejected is tried
 * rather than failing without trying). key/key_len is the routing key for
 * MODEL_POOL_HASH. Counts the call in flight: pair with model_pool_done.
 * Returns the index, or -1 when every instance was tried.
 */
int model_pool_pick(struct model_pool *p, const void *key, size_t key_len, uint64_t tried,
		    double now_ms);

/* The attempt on instance i ended; ok = 0 counts a failure (and may eject). */
void model_pool_done(struct model_pool *p, int i, int ok, double now_ms);

/* A health check of instance i: failing ejects it, passing readmits it. */
void model_pool_health(struct model_pool *p, size_t i, int ok, double now_ms);

/* Calls in flight on instance i. */
int model_pool_in_flight(struct model_pool *p, size_t i);

/* One streamed piece of a response body; return non-zero to abort the call. */
typedef int (*model_pool_data_fn)(void *ctx, const char *data, size_t len);

struct model_pool_request {
	const char *path;      /* appended to the base URL, e.g. "/v1/embeddings" */
	const char *body;      /* JSON, body_len bytes */
	size_t body_len;
	const void *key;       /* routing key (MODEL_POOL_HASH); NULL = the body */
	size_t key_len;
	int deadline_ms;       /* 0 = the pool's */
	model_pool_data_fn on_data; /* NULL: the body is collected into out */
	void *ctx;
};

/*
 * POSTs the request to an instance chosen by the policy, retrying on others
 * after failures until one answers 2xx or the deadline passes. With
 * on_data, a 2xx body is streamed to it and the call is not retried once a
 * piece was delivered. Returns 0 with the body in out (when on_data is
 * NULL); RAG_EINVAL with the instance's message for a 4xx answer;
 * RAG_EBUSY when every attempt failed or the deadline passed; RAG_ENOMEM.
 */
int model_pool_post(struct model_pool *p, const struct model_pool_request *req,
		    struct sbuf *out, struct rag_err *err);

/* Monotonic milliseconds, the clock model_pool_post passes to the routing functions. */
double model_pool_now_ms(void);

#endif
