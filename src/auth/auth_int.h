/*
 * Private to src/auth: the registry and one key's state.
 */
#ifndef RAGD_AUTH_AUTH_INT_H
#define RAGD_AUTH_AUTH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

struct hashmap;
struct metric_child;
struct auth_quota_redis;

#define AUTH_SALT_BYTES 16
#define AUTH_HASH_BYTES 32
#define AUTH_DAY_MS 86400000LL          /* daily quotas renew at midnight UTC */
#define AUTH_QUOTA_PREFIX_MAX 48        /* "ragd:quota:{" + 16 hex digits + "}:", room to spare */

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
 * above). store is set once after start-up (atomic). qr is set by auth_new
 * and thread-safe.
 */
struct auth {
	bool enabled;
	struct auth_limits defaults;
	int64_t key_cache_ms;
	_Atomic(struct store *) store;
	pthread_mutex_t lock;
	struct hashmap *slots; /* id -> struct auth_slot * */
	struct auth_quota_redis *qr; /* NULL: quotas are this process's alone */
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

/* The bucket's size: burst, or max(1, ceil(requests_per_s)) when burst is 0. */
int64_t auth_burst(const struct auth_limits *l);

/* --- cluster-wide quotas in Redis (auth_quota_redis.c) --- */

/*
 * A Redis server shared by every instance for the quotas: url is
 * auth.quota_redis_url, timeout_ms bounds connecting and each exchange.
 * Connects on first use. NULL with err (field auth.quota_redis_url) for a
 * bad address or RAG_ENOMEM. Thread-safe; free when no call is in flight.
 */
struct auth_quota_redis *auth_quota_redis_new(const char *url, int timeout_ms,
					      struct rag_err *err);
void auth_quota_redis_free(struct auth_quota_redis *qr);

/*
 * Admits amount of quota q for key id under limits l, cluster-wide: 0
 * (admitted and counted), RAG_ERATELIMIT with *retry_ms (refused and
 * counted), or RAG_EBUSY/RAG_EIO when Redis did not answer (nothing
 * known; counted in ragd_quota_redis_errors_total: use the local limits).
 */
int auth_quota_redis_admit(struct auth_quota_redis *qr, const char *id, enum auth_quota q,
			   int64_t amount, const struct auth_limits *l, int64_t *retry_ms);

/* Adds n generated tokens to key id's day and total: 0 or RAG_EBUSY/RAG_EIO. */
int auth_quota_redis_charge(struct auth_quota_redis *qr, const char *id, int64_t n);

/* One key's numbers as Redis holds them (every instance's, since first use). */
struct auth_quota_usage {
	int64_t requests_total, ingest_total, tokens_total;
	int64_t rejected[3];            /* per enum auth_quota */
	int64_t ingest_today, tokens_today;
};

/* Reads n keys' usage in one round trip into out[0..n): 0, or a negative code. */
int auth_quota_redis_usage(struct auth_quota_redis *qr, const char *const *ids, size_t n,
			   struct auth_quota_usage *out);

/* Pure helpers, for auth_quota.c and the unit tests. */
/* Writes "ragd:quota:{<id>}:" into buf: its length, or RAG_EINVAL when it does not fit. */
int auth_quota_key_prefix(const char *id, char *buf, size_t size);
/* The UTC day number (days since 1970-01-01) of a unix time in ms. */
int64_t auth_quota_day(int64_t unix_ms);
/* Seconds, rounded up, from unix_ms to the next midnight UTC (1..86400). */
int auth_quota_until_midnight_s(int64_t unix_ms);
/* Retry-After for a wait of ms: whole seconds rounded up, at least 1. */
int auth_quota_retry_s(int64_t ms);

int64_t auth_now_ms(void);  /* monotonic */
int64_t auth_wall_ms(void); /* unix ms */

#endif
