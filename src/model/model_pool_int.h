/*
 * Internals shared by model_pool.c (routing) and model_pool_http.c (libcurl
 * transport and health thread). Not for other modules.
 */
#ifndef RAGD_MODEL_MODEL_POOL_INT_H
#define RAGD_MODEL_MODEL_POOL_INT_H

#include <pthread.h>
#include <stdint.h>

#include "model/model_pool.h"

struct metric;
struct metric_child;

enum { POOL_OK, POOL_FAILED, POOL_CLIENT_ERROR, POOL_N_OUTCOMES };
extern const char *const pool_outcome_names[POOL_N_OUTCOMES];

/* Locking: every field but url, seed and the metric handles is guarded by the pool's mu. */
struct pool_instance {
	char *url;        /* base URL without a trailing slash; immutable */
	uint64_t seed;    /* rendezvous hashing: this instance's hash of its URL */
	int up;           /* in rotation */
	int failures;     /* consecutive failed attempts */
	int in_flight;
	double ejected_at;
	struct metric_child *m_requests[POOL_N_OUTCOMES];
	struct metric_child *m_in_flight, *m_up, *m_duration;
};

struct model_pool {
	struct model_pool_options opts; /* strings point at the copies below */
	char name[32];
	char *health_path;
	char *api_key;
	struct pool_instance in[MODEL_POOL_MAX_INSTANCES];
	size_t n;
	pthread_mutex_t mu;
	uint64_t rr; /* round-robin cursor, guarded by mu */
	struct metric *m_requests, *m_in_flight, *m_up, *m_duration;

	/* model_pool_http.c */
	pthread_mutex_t curl_mu; /* guards the idle handle stack */
	void *idle[16];          /* CURL easy handles kept for their open connections */
	int n_idle;
	pthread_t health;
	int health_started;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cond;
	int stopping;
	int http_started; /* pool_http_start ran: the mutexes above exist */
};

/* Starts the transport (and the health thread if configured); 0 or RAG_E*. */
int pool_http_start(struct model_pool *p, struct rag_err *err);

/* Stops the health thread and frees the idle handles; safe when never started. */
void pool_http_stop(struct model_pool *p);

#endif
