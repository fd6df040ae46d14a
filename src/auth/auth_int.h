/*
 * Private to src/auth: the registry and one key's state.
 */
#ifndef RAGD_AUTH_AUTH_INT_H
#define RAGD_AUTH_AUTH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"

struct hashmap;
struct metric_child;

#define AUTH_SALT_BYTES 16
#define AUTH_HASH_BYTES 32

/*
 * One key this instance knows, configured or read from the store. Slots
 * are never freed before auth_free, so a principal's tenant and key id
 * (borrowed from its slot) stay valid for any worker still answering.
 *
 * Locking: id, tenant, from_config and the metric handles are set at
 * creation and never change. role, name, salt, hash, own, created_at,
 * revoked and checked_ms are guarded by auth->lock (they change when a
 * store key is re-read). The quota state below is guarded by qlock.
 */
struct auth_slot {
	char *id;
	char *tenant;
	bool from_config;
	enum auth_role role;
	char *name;
	unsigned char salt[AUTH_SALT_BYTES];
	unsigned char hash[AUTH_HASH_BYTES];
	struct auth_limits own; /* as set on the key: -1 fields = defaults */
	int64_t created_at;
	bool revoked;
	int64_t checked_ms;     /* when the store was last asked (monotonic ms) */

	pthread_mutex_t qlock;
	double bucket;          /* tokens left in the request bucket */
	double bucket_ms;       /* when it was last refilled (monotonic ms) */
	int64_t day;            /* UTC day number the daily counters belong to */
	int64_t ingest_today, tokens_today;
	int64_t requests_total, ingest_total, tokens_total;
	int64_t rejected[3];    /* per enum auth_quota */

	struct metric_child *m_requests, *m_ingest, *m_tokens;
};

/*
 * Locking: lock guards slots (the map and the fields of each slot named
 * above). store is set once after start-up (atomic).
 */
struct auth {
	bool enabled;
	struct auth_limits defaults;
	int64_t key_cache_ms;
	_Atomic(struct store *) store;
	pthread_mutex_t lock;
	struct hashmap *slots; /* id -> struct auth_slot * */
};

/* A slot's limits with the defaults filled in. Caller holds nothing. */
struct auth_limits auth_effective(const struct auth *a, const struct auth_limits *own);

/*
 * The slot for id into *out, read from the store when it is not known or
 * its cache period is over; *out NULL when the key does not exist (or is
 * unusable). RAG_EBUSY without a store, RAG_EIO or RAG_ENOMEM on failure.
 * Takes and releases a->lock.
 */
int auth_slot_get(struct auth *a, const char *id, struct auth_slot **out, struct rag_err *err);

/* Creates the slot's metric children and quota state (auth_quota.c). */
void auth_slot_quota_init(struct auth_slot *s);

/* Appends `"limits":{...}` for limits. */
void auth_limits_json(struct sbuf *out, const struct auth_limits *l);

int64_t auth_now_ms(void);  /* monotonic */
int64_t auth_wall_ms(void); /* unix ms */

#endif
