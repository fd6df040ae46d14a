/*
 * The MongoDB backend of the store (libmongoc, one client pool), for
 * several ragd instances sharing one data set. It runs on MongoDB itself
 * (a replica set, sharded or not) and on MongoDB-wire-compatible servers
 * without multi-document transactions or change streams (FerretDB, which
 * the tests use): every write is built from single-document atomic
 * operations, ordered so that a reader never sees a half-written document
 * and an acknowledged write is never lost. store_mongo.c documents how.
 *
 * Thread-safety: the struct store it returns is thread-safe (see store.h).
 * Several processes may share one database.
 */
#ifndef RAGD_STORE_STORE_MONGO_H
#define RAGD_STORE_STORE_MONGO_H

struct rag_err;
struct store;

#define STORE_MONGO_DEFAULT_DB "ragd"     /* when neither the URI nor the options name one */
#define STORE_MONGO_MAX_POOL 1024          /* libmongoc's own ceiling is far above useful */

/* Where a read may be served from. */
enum store_mongo_read_pref {
	STORE_MONGO_READ_PRIMARY = 0,
	STORE_MONGO_READ_PRIMARY_PREFERRED,
	STORE_MONGO_READ_SECONDARY,
	STORE_MONGO_READ_SECONDARY_PREFERRED,
	STORE_MONGO_READ_NEAREST,
};

struct store_mongo_options {
	const char *uri;      /* mongodb://user:pass@host:port/?opts; required */
	const char *database; /* NULL or "": the URI's database, else STORE_MONGO_DEFAULT_DB */
	const char *username; /* NULL or "": the URI's */
	const char *password; /* NULL or "": the URI's (read from a secret file by the caller) */
	int max_pool_size;    /* maxPoolSize: clients the pool holds at most */
	int min_pool_size;    /* minPoolSize (deprecated by libmongoc; passed on) */
	int max_idle_time_ms; /* maxIdleTimeMS (not implemented by libmongoc; passed on) */
	int server_selection_timeout_ms;
	int connect_timeout_ms;
	int socket_timeout_ms;
	int heartbeat_frequency_ms;
	/*
	 * Search-path reads (hydrating hits, filters, document reads): may go to
	 * a secondary. Writes, the change log and index scans always read the
	 * primary, so a follower never replays a change whose chunks it cannot
	 * read yet.
	 */
	enum store_mongo_read_pref search_read_pref;
	int write_majority;   /* 1: acknowledged writes wait for a majority (w: majority) */
	int lock_lease_ms;    /* a collection's write lock expires after this (a writer died) */
	int lock_timeout_ms;  /* wait this long for a collection's write lock, then RAG_EBUSY */
};

/*
 * The design's defaults: max pool 100, min pool 0, maxIdleTimeMS 30 s,
 * serverSelectionTimeoutMS 5 s, connectTimeoutMS 10 s, socketTimeoutMS
 * 20 s, heartbeatFrequencyMS 10 s, search reads from the primary, write
 * concern majority, lock lease 30 s, lock wait 10 s.
 */
struct store_mongo_options store_mongo_default_options(void);

/* Parses "primary", "secondaryPreferred", ...; -1 when unknown. */
int store_mongo_read_pref_parse(const char *s);

/*
 * Connects, checks the server answers (within serverSelectionTimeoutMS) and
 * creates the indexes it needs (idempotent). Returns a store the caller
 * frees with store_free(), or NULL with err set: RAG_EINVAL for a bad URI
 * or option, RAG_EIO when the server cannot be reached or refuses.
 */
struct store *store_mongo_open(const struct store_mongo_options *opts, struct rag_err *err);

#endif
