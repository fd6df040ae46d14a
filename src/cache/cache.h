/*
 * The cache layer: query embeddings, search results and answers, keyed by a
 * hash of everything that decides the value, kept in an in-process LRU, in
 * Redis (one server or a Redis Cluster), or in both (LRU in front).
 *
 * Correct under writes without invalidation: a search or answer key holds
 * the collection's id and the change-log sequence its index had applied, so
 * a write makes every older entry unreachable at once; they age out by TTL
 * (Redis) or by eviction (LRU). An embedding key holds the model and the
 * normalised text, which no write changes.
 *
 * The cache is an optimisation, never a dependency: a backend that fails or
 * is slow (connection refused, timeout, a cluster without a master for a
 * slot) makes cache_get answer RAG_EBUSY at once, and the caller computes
 * the value as if there were no cache. A failed backend is retried after
 * a short back-off, so the cache comes back by itself.
 *
 * Using it (also how the answer endpoint caches whole answers):
 *
 *	struct cache_key_builder b;
 *	struct cache_key key;
 *	void *val;
 *	size_t len;
 *
 *	cache_key_begin(&b, CACHE_ANSWER);
 *	cache_key_add_str(&b, "tenant", tenant, strlen(tenant));
 *	cache_key_add_i64(&b, "collection", coll_id);
 *	cache_key_add_i64(&b, "seq", applied_seq);   (read before computing)
 *	cache_key_add_str(&b, "question", q, q_len);
 *	cache_key_add_f64(&b, "temperature", t);     (every generation parameter)
 *	if (cache_key_end(&b, &key) == 0 && cache_get(c, &key, &val, &len) == 0) {
 *		... use val, then free(val) ...
 *	} else {
 *		... compute, serialise to bytes ...
 *		cache_put(c, &key, bytes, n, ttl_s);  (skip it if seq moved meanwhile)
 *	}
 *
 * Every function accepts a NULL cache (backend "none"): gets miss without
 * counting, puts do nothing. In the rag layer, rag_cache_key_collection()
 * (rag_int.h) adds the tenant, collection id and applied seq in one call.
 *
 * Values are opaque bytes; keep them compact (binary vectors, not JSON).
 *
 * Thread-safety: every function may be called from any thread; backends
 * lock internally (sharded LRU, pooled Redis connections).
 */
#ifndef RAGD_CACHE_CACHE_H
#define RAGD_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sbuf.h"

struct rag_err;

#define CACHE_CRED_MAX 256 /* a Redis user name or password, decoded, with its NUL */

/* The credentials of a redis:// URL, sent as AUTH on every new connection. */
struct redis_auth {
	char user[CACHE_CRED_MAX]; /* "" = the default user */
	char pass[CACHE_CRED_MAX]; /* "" = no AUTH */
};

/* What a key caches: the {cache} label of the hit and miss metrics. */
enum cache_kind {
	CACHE_EMBEDDING = 0, /* a query's embedding */
	CACHE_SEARCH,        /* a search's ranked hits */
	CACHE_ANSWER,        /* a generated answer */
	CACHE_N_KINDS,
};

/* The label value of a kind: "embedding", "search", "answer". */
const char *cache_kind_name(enum cache_kind kind);

/* --- keys --- */

#define CACHE_KEY_MAX 64 /* "ragd:v1:s:" + 32 hex digits, with room to spare */

/* A finished key: short printable text, the same on every instance. */
struct cache_key {
	enum cache_kind kind;
	size_t len;
	char text[CACHE_KEY_MAX]; /* NUL-terminated */
};

/*
 * Collects the fields that decide a value. Each field is written with its
 * name and length, so ("ab","c") and ("a","bc") never meet; the key is a
 * 128-bit BLAKE2b of the lot, so a collision would take ~2^64 keys.
 */
struct cache_key_builder {
	enum cache_kind kind;
	struct sbuf buf;
};

void cache_key_begin(struct cache_key_builder *b, enum cache_kind kind);
/* s: len bytes (any bytes). name: a short constant naming the field. */
void cache_key_add_str(struct cache_key_builder *b, const char *name, const char *s, size_t len);
void cache_key_add_i64(struct cache_key_builder *b, const char *name, int64_t v);
/* Bit-exact: 0.5 and 0.50000001 are different keys. */
void cache_key_add_f64(struct cache_key_builder *b, const char *name, double v);
/* Hashes the fields into *out and releases the builder; 0 or RAG_ENOMEM. */
int cache_key_end(struct cache_key_builder *b, struct cache_key *out);

/*
 * Canonical query text for embedding keys: leading and trailing ASCII
 * whitespace dropped, inner runs of it made one space (the tokenizers split
 * on whitespace, so the embedding is the same). Returns a new string (caller
 * frees) of *len_out bytes, or NULL when out of memory.
 */
char *cache_normalize_text(const char *s, size_t len, size_t *len_out);

/* 128-bit BLAKE2b of data in 32 lowercase hex digits + NUL (ETags, keys). */
void cache_hash_hex(const void *data, size_t len, char out[33]);

/* Redis Cluster's key slot: CRC16-XMODEM of the key (or of its {hash tag}) mod 16384. */
unsigned cache_key_slot(const char *key, size_t len);
uint16_t cache_crc16(const void *data, size_t len);

/* --- backends --- */

struct cache;

/* What a backend reports for the metrics collector. */
struct cache_stats {
	const char *backend; /* "lru", "redis", "redis-cluster" */
	size_t entries;      /* LRU only */
	size_t bytes;        /* LRU: bytes charged, entries and overhead */
	size_t capacity;     /* LRU: the byte budget */
	uint64_t evictions;  /* LRU: entries dropped for room */
	int up;              /* Redis: 1 when the last command reached a server */
};

#define CACHE_MAX_STATS 2 /* backends one cache reports: two-level has two */

/*
 * A backend. Keys are key_len bytes of text without NUL. get: 0 and a new
 * copy of the value in *val (caller frees with free()) of *val_len bytes;
 * RAG_ENOTFOUND for none; RAG_EBUSY or RAG_EIO when the backend cannot
 * answer now. mget: the same for n keys in one round trip where the backend
 * can (rcs[i] per key); NULL to loop over get. put: 0, or a negative code
 * the caller may ignore. ttl_s > 0. stats: fills up to CACHE_MAX_STATS
 * entries, returns how many. Backends must be thread-safe.
 */
struct cache_ops {
	const char *name;
	int (*get)(struct cache *c, const char *key, size_t key_len, void **val, size_t *val_len);
	void (*mget)(struct cache *c, const char *const *keys, const size_t *key_lens, size_t n,
		     void **vals, size_t *val_lens, int *rcs);
	int (*put)(struct cache *c, const char *key, size_t key_len, const void *val,
		   size_t val_len, int ttl_s);
	int (*del)(struct cache *c, const char *key, size_t key_len);
	size_t (*stats)(struct cache *c, struct cache_stats *out);
	void (*free)(struct cache *c);
};

/* Every backend's first member. */
struct cache {
	const struct cache_ops *ops;
};

enum cache_backend {
	CACHE_BACKEND_NONE = 0,
	CACHE_BACKEND_LRU,
	CACHE_BACKEND_REDIS,
	CACHE_BACKEND_CLUSTER,
	CACHE_BACKEND_TWO_LEVEL, /* LRU in front of Redis (standalone or cluster) */
};

/* Parses none, lru, redis, redis-cluster, two-level; RAG_EINVAL otherwise. */
int cache_backend_parse(const char *s, enum cache_backend *out);

struct cache_options {
	enum cache_backend backend;
	size_t lru_bytes;   /* the LRU's budget, entries and overhead included */
	int lru_shards;     /* locks the LRU is split over; 0 = CACHE_LRU_SHARDS */
	/*
	 * Redis: "redis://host:port" or "host:port"; for a cluster a comma-
	 * separated list of seed nodes (any reachable one will do). Two-level
	 * uses a cluster when there is more than one address.
	 * "redis://[user]:password@host:port" authenticates (cache_url.c).
	 */
	const char *redis_url;
	int timeout_ms;     /* connect and command timeout */
	int pool_size;      /* idle connections kept per Redis node */
};

#define CACHE_LRU_SHARDS 16 /* a lock per shard: 2-64 threads rarely meet */

void cache_default_options(struct cache_options *opts);

/*
 * Builds the configured cache. Returns NULL with err clear for "none", or
 * NULL with err set when the options are bad (an unparsable address). A
 * Redis that is down at start is not an error: the cache stays bypassed
 * until it answers. Free with cache_free.
 */
struct cache *cache_new(const struct cache_options *opts, struct rag_err *err);

/* The backends on their own (cache_new composes them). */
struct cache *cache_lru_new(size_t bytes, int n_shards);
/* host:port of one server; auth NULL or without a password: no AUTH. NULL when out of memory. */
struct cache *cache_redis_new(const char *host, int port, int timeout_ms, int pool_size,
			      const struct redis_auth *auth);
/* seeds: "h:p,h:p,..."; auth as above, for every node. NULL with err for a bad list. */
struct cache *cache_cluster_new(const char *seeds, int timeout_ms, int pool_size,
				const struct redis_auth *auth, struct rag_err *err);
/* Takes ownership of both: gets try front then back (filling front), puts go to both. */
struct cache *cache_two_level_new(struct cache *front, struct cache *back);

/* Frees the cache and its backends; NULL-safe. No call may be in flight. */
void cache_free(struct cache *c);

/* --- use --- */

/*
 * Looks key up. 0: a hit, *val a new copy (caller frees) of *len bytes.
 * RAG_ENOTFOUND: a miss. RAG_EBUSY: the backend could not answer (counted
 * as a bypass; go on without the cache). Counts the hit or miss under the
 * key's kind. NULL c: RAG_ENOTFOUND, counting nothing.
 */
int cache_get(struct cache *c, const struct cache_key *key, void **val, size_t *len);

/*
 * cache_get for n keys (at most CACHE_GET_MANY_MAX) in one round trip
 * where the backend allows; rcs[i] per key. Counts nothing: the caller
 * counts, with cache_count, the lookups whose answer it used (a search hit
 * makes the embedding's lookup that rode along moot).
 */
void cache_get_many(struct cache *c, const struct cache_key *keys, size_t n, void **vals,
		    size_t *lens, int *rcs);

/* Stores val (copied) under key for ttl_s seconds. Failures are counted, not returned. */
void cache_put(struct cache *c, const struct cache_key *key, const void *val, size_t len,
	       int ttl_s);

/* Drops key; 0, or a negative code. */
int cache_del(struct cache *c, const struct cache_key *key);

#define CACHE_GET_MANY_MAX 8

/* Counts one lookup's outcome (rc as cache_get returns it) under kind. */
void cache_count(enum cache_kind kind, int rc);

/* Counts a request that skipped the cache by asking (`"cache": false`). */
void cache_count_bypass(enum cache_kind kind);

/* Registers the cache metric families (idempotent), so they exist without a cache. */
void cache_metrics_register(void);

/* For backends: counts a failed command (ragd_cache_errors_total{backend}). */
void cache_count_error(const char *backend);

/* --- change notices over Redis pub/sub (cache_pubsub.c) --- */

/*
 * A nudge channel between instances that share a store: publish() tells the
 * others "the change log moved", and each subscriber's on_notice runs (on
 * the subscriber's own thread) for every notice, its own included, and
 * once after each (re)connection, since notices sent while it was away are
 * lost. It carries no data: followers still read the log itself, so a lost
 * notice costs latency, never a change.
 *
 * Thread-safety: publish may be called from any thread; new and free from
 * one thread.
 */
struct cache_pubsub;

struct cache_pubsub_options {
	const char *redis_url; /* "redis://host:port" or "host:port" (one server) */
	const char *channel;   /* e.g. "ragd:changes" */
	int timeout_ms;        /* connect and publish timeout */
	void (*on_notice)(void *ctx);
	void *ctx;
};

/*
 * Starts the subscriber thread (it connects, and reconnects with back-off,
 * on its own: a Redis that is down is not an error). NULL with err for a
 * bad address (RAG_EINVAL naming replication.redis_url) or RAG_ENOMEM.
 */
struct cache_pubsub *cache_pubsub_new(const struct cache_pubsub_options *opts,
				      struct rag_err *err);

/* Sends a notice; failures are counted and logged once, not returned. */
void cache_pubsub_publish(struct cache_pubsub *ps);

/* Stops the subscriber (within CACHE_PUBSUB_POLL_MS) and frees; NULL-safe. */
void cache_pubsub_free(struct cache_pubsub *ps);

#define CACHE_PUBSUB_POLL_MS 200 /* how soon the subscriber notices it must stop */

/* --- one Redis server for modules that keep their own state there (cache_redis.c) --- */

/*
 * A link: one Redis server ("redis://host:port" or "host:port") with a
 * small pool of connections, the same code the cache's standalone backend
 * runs on (bounded timeouts, back-off after a failure, a fresh connection
 * after a stale one). The per-key quotas (src/auth) keep their counters
 * through one. Nothing is connected before the first call, and a link
 * used in a child after fork() drops the connections it inherited.
 *
 * Thread-safety: cache_link_call may be called from any thread; new and
 * free from one.
 */
struct cache_link;

#define REDIS_CMD_ARGS 8 /* EVALSHA sha numkeys key op arg arg: the longest we send */

/* One command: argv[i] of lens[i] bytes (borrowed for the call). */
struct redis_cmd {
	int argc;
	const char *argv[REDIS_CMD_ARGS];
	size_t lens[REDIS_CMD_ARGS];
};

#define CACHE_REPLY_INTS 8   /* the most integers a link's caller reads from one reply */
#define CACHE_REPLY_STR_MAX 64  /* a script's SHA-1, an error's first words */

enum cache_reply_type {
	CACHE_REPLY_NIL = 0,
	CACHE_REPLY_INT,     /* ints[0] */
	CACHE_REPLY_STR,     /* a status or bulk string: str (cut to fit), and ints[0] if numeric */
	CACHE_REPLY_ARRAY,   /* ints[0..n_ints): integers, numeric strings; nil and others read 0 */
	CACHE_REPLY_ERROR,   /* str: the message, e.g. "NOSCRIPT No matching script..." */
};

/* A reply reduced to what callers outside the cache read, so hiredis stays in here. */
struct cache_reply {
	enum cache_reply_type type;
	size_t n_ints;
	int64_t ints[CACHE_REPLY_INTS];
	char str[CACHE_REPLY_STR_MAX];
};

/*
 * A link to url with timeout_ms for connecting and for each exchange and
 * at most pool_size idle connections. log_name prefixes the lines logged
 * when the server goes away and comes back (NULL: the link logs nothing,
 * its caller does). NULL with err (RAG_EINVAL naming field) for an
 * address that is not host:port, or RAG_ENOMEM.
 */
struct cache_link *cache_link_new(const char *url, int timeout_ms, int pool_size,
				  const char *log_name, const char *field, struct rag_err *err);

/*
 * Sends n_cmds commands in one write and reads their replies into
 * replies[0..n_cmds) (an error reply is a reply). 0, or RAG_EBUSY when
 * the server is down, in its back-off, or did not answer in time.
 */
int cache_link_call(struct cache_link *l, const struct redis_cmd *cmds, size_t n_cmds,
		    struct cache_reply *replies);

/* "host:port" of the server, for log lines. Borrowed until cache_link_free. */
const char *cache_link_addr(const struct cache_link *l);

/* Frees the link and its connections; NULL-safe. No call may be in flight. */
void cache_link_free(struct cache_link *l);

#endif
