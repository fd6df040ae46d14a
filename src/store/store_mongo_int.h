/*
 * Internals shared by the MongoDB store's files, and by nothing else:
 * store_mongo.c (pool, open/free, error translation, helpers),
 * store_mongo_lock.c (the write lock and mutexes), store_mongo_coll.c (collections, names, swap), store_mongo_docs.c
 * (document writes and their recovery), store_mongo_read.c (scans, the
 * change log, listings), store_mongo_hits.c (reads by chunk id and hash), store_mongo_filter.c (metadata filters) and
 * store_mongo_jobs.c (jobs and sessions) and store_mongo_keys.c (API keys).
 *
 * libmongoc's header is included here because every one of those files
 * speaks BSON; nothing outside src/store/store_mongo*.c includes this file.
 */
#ifndef RAGD_STORE_STORE_MONGO_INT_H
#define RAGD_STORE_STORE_MONGO_INT_H

#include "store/store.h"
#include "store/store_mongo.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct store_filter;

/* The MongoDB collections of one ragd database. */
#define SM_COUNTERS "counters"       /* {_id: name, n}: id allocation by $inc */
#define SM_COLLECTIONS "collections" /* {_id: cid, tenant, name, dim, ..., seq} */
#define SM_NAMES "names"             /* {_id: key(tenant, name), tenant, name, cid} */
#define SM_DOCS "docs"               /* {_id: key(cid, doc id), c, d, ..., first, last} */
#define SM_CHUNKS "chunks"           /* {_id: "cid:id", i: id, c, k: doc key, ..., v: binary} */
#define SM_CHANGES "changes"         /* {_id: key(cid, seq), c, s, op, d, first, last, at} */
#define SM_LOCKS "locks"             /* {_id: cid, owner, until, intent} */
#define SM_SESSIONS "sessions"       /* {_id: key(tenant, sid), msgs: [...]} */
#define SM_KEYS "keys"             /* {_id: key id, tenant, role, ..., created_at} */
#define SM_JOBS "jobs"
#define SM_JOB_ITEMS "job_items"
#define SM_JOB_BODIES "job_bodies"

#define SM_LOCK_POLL_MAX_US 50000 /* a waiting writer polls at most every 50 ms */
#define SM_DUP_KEY 11000          /* MongoDB's duplicate-key error code */
#define SM_BODY_PART 8388608 /* job bodies in 8 MiB parts: far under BSON's 16 MiB */
#define SM_DOC_TEXT_MAX 15728640 /* a document's text rides in one BSON document */

/*
 * The backend's state; st->impl of its struct store.
 *
 * Locking: pool is thread-safe (libmongoc's client pool); write_lock
 * serialises this process's writers before they take a collection's lock
 * in the database (so threads do not poll each other through the server).
 * Everything else is immutable between open and free.
 */
struct store_mongo {
	struct store base;
	mongoc_client_pool_t *pool;
	mongoc_uri_t *uri;
	char *db;
	mongoc_read_prefs_t *search_prefs; /* search-path reads */
	mongoc_read_prefs_t *primary;      /* everything else */
	mongoc_write_concern_t *wc;
	struct store_mongo_options opts;
	char owner[64]; /* this process's lock-owner name: host, pid and a random part */
	/*
	 * Reads by key, one query per key instead of one $in: set for servers
	 * that plan $in and ranges as collection scans (FerretDB), where a
	 * point read is an index lookup.
	 */
	int point_reads;
	/*
	 * Set for servers whose single-document updates are not atomic
	 * (FerretDB 1.x runs findAndModify and update as a query, then a write
	 * by _id): read-modify-writes such as id allocation then take an
	 * sm_mutex. Inserts stay atomic (a unique _id) everywhere.
	 */
	int weak_updates;
	pthread_mutex_t write_lock;
};

/* One operation's borrowed client from the pool. */
struct sm_conn {
	struct store_mongo *sm;
	mongoc_client_t *cl;
	const char *what; /* the operation, for messages */
};

void sm_conn_get(struct store_mongo *sm, struct sm_conn *c, const char *what);
void sm_conn_put(struct sm_conn *c);
/* A handle on collection name of the database (caller destroys it). */
mongoc_collection_t *sm_coll(struct sm_conn *c, const char *name);

/* Translates a libmongoc error into a RAG_E* code, recording "store: what: message". */
int sm_fail(struct sm_conn *c, const bson_error_t *e, struct rag_err *err);
int sm_oom(struct rag_err *err);
int64_t sm_now_ms(void);

/* "<cid>:<s>" keys: documents (cid, doc id), sessions and names (by a text prefix). */
char *sm_key(int64_t cid, const char *s);
char *sm_key2(const char *a, const char *b);

/* Appends the write concern (majority when configured) to opts. */
void sm_write_opts(struct store_mongo *sm, bson_t *opts);

/* Deletes every document of coll_name matching q, with the write concern; a RAG_E* code. */
int sm_delete_many(struct sm_conn *c, const char *coll_name, const bson_t *q,
		   struct rag_err *err);

/*
 * Finds at most one document of coll matching filter (opts may be NULL),
 * copying it into *out (initialised by the call when found): 1 found, 0
 * none, or a RAG_E* code. prefs NULL means the primary.
 */
int sm_find_one(struct sm_conn *c, mongoc_collection_t *coll, const bson_t *filter,
		const bson_t *opts, const mongoc_read_prefs_t *prefs, bson_t *out,
		struct rag_err *err);

/*
 * findAndModify: applies update to the one document matching query,
 * upserting when upsert is set; *out (when not NULL) receives a copy of the
 * document after the update (new = 1) or before it, and found says whether
 * there was one. *out is always initialised (empty when none or on error): the
 * caller destroys it. Returns 0 or a RAG_E* code (RAG_ECONFLICT for a
 * duplicate key).
 */
int sm_find_modify(struct sm_conn *c, mongoc_collection_t *coll, const bson_t *query,
		   const bson_t *update, int upsert, int new_doc, bson_t *out, int *found,
		   struct rag_err *err);

/* Allocates n consecutive ids from counter name: *last_out = last, first = last - n + 1. */
int sm_alloc(struct sm_conn *c, const char *name, int64_t n, int64_t *last_out,
	     struct rag_err *err);

/* Readers of a BSON document's fields, tolerant of int32/int64/double. */
int64_t sm_get_int(const bson_t *b, const char *key);
/* A malloc'ed copy of string field key ("" when absent) in *out; RAG_ENOMEM. */
int sm_get_str(const bson_t *b, const char *key, const char **out, struct rag_err *err);
/* A borrowed view of binary field key; NULL and 0 when absent. */
const uint8_t *sm_get_bin(const bson_t *b, const char *key, uint32_t *len);

/* The collection's dim and seq from its document; RAG_ENOTFOUND "collection 42 not found". */
int sm_coll_state(struct sm_conn *c, int64_t cid, int *dim, int64_t *seq, struct rag_err *err);
/* The same for a write: RAG_ENOTFOUND "collection 42 was replaced" once a swap retired it. */
int sm_coll_state_write(struct sm_conn *c, int64_t cid, int *dim, int64_t *seq,
			struct rag_err *err);

/*
 * A collection's write lock in the database, serialising writers of every
 * process. Taking it also recovers the write of a holder that died
 * (store_mongo_docs.c). sm_lock_intent records the write about to become
 * visible, renewing the lease; RAG_EBUSY when the lock was lost.
 */
int sm_lock(struct sm_conn *c, int64_t cid, struct rag_err *err);
int sm_lock_intent(struct sm_conn *c, int64_t cid, const bson_t *intent, struct rag_err *err);
void sm_unlock(struct sm_conn *c, int64_t cid);
/*
 * A short mutual exclusion between processes, named (e.g. "job:<id>"): a
 * document in locks inserted with a unique _id, deleted by sm_mutex_drop,
 * taken over after the lock lease when its holder died. RAG_EBUSY after
 * the lock timeout.
 */
int sm_mutex_take(struct sm_conn *c, const char *name, struct rag_err *err);
void sm_mutex_drop(struct sm_conn *c, const char *name);

/*
 * A put's job item (store_mongo_jobs.c). sm_job_item_pending: 0 when the
 * job is running and the item pending, RAG_ECONFLICT when the job is not
 * running, RAG_EALREADY when the item is not pending; the put checks it
 * under the collection's lock, after the recovery of a dead writer.
 * sm_job_item_applied: records the item done (n_chunks, the job's bytes
 * and lease) if it is still pending, counting it once however often it
 * runs: the roll-forward's step for it.
 */
int sm_job_item_pending(struct sm_conn *c, const struct store_job_ref *job, struct rag_err *err);
int sm_job_item_applied(struct sm_conn *c, const struct store_job_ref *job, int64_t n_chunks,
			struct rag_err *err);

/* Rolls a dead writer's intent forward or back (store_mongo_docs.c). */
int store_mongo_recover(struct sm_conn *c, int64_t cid, const bson_t *intent,
			struct rag_err *err);

/* Deletes every document of a collection's data by cid (documents, chunks, changes, locks). */
int store_mongo_purge(struct sm_conn *c, int64_t cid, struct rag_err *err);

/*
 * Appends the metadata JSON object's members to out with their keys escaped
 * for MongoDB (store_mongo_filter.c); RAG_EINVAL when json is no object.
 */
int store_mongo_meta_bson(bson_t *out, const char *json);

/* Appends the filter as a MongoDB query on the docs collection's meta field. */
int store_mongo_filter_bson(bson_t *out, const struct store_filter *f, struct rag_err *err);

/* A document's live chunk ids: [first, last] while its document holds them. */
struct sm_range {
	int64_t first, last;
	char *meta_json; /* the document's metadata, when asked for */
	char *key;       /* the document's _id, likewise */
};

struct sm_ranges {
	struct sm_range *r;
	size_t n, alloc;
};

/* Adds the range of document d (first, last, n; meta_json and _id when want_meta). */
int sm_ranges_add(struct sm_ranges *rs, const bson_t *d, int want_meta, struct rag_err *err);
void sm_ranges_sort(struct sm_ranges *rs);
/* The range holding id, or NULL; rs sorted (ranges are disjoint). */
const struct sm_range *sm_range_find(const struct sm_ranges *rs, int64_t id);
void sm_ranges_release(struct sm_ranges *rs);
/* A hit from a chunk document and its document's metadata. */
int sm_read_hit(const bson_t *d, const char *meta_json, struct store_hit *h,
		struct rag_err *err);
/* Hands chunk document d to cb as a row (its vector copied into vec, dim floats). */
int sm_chunk_row(const bson_t *d, int dim, float *vec, store_row_fn cb, void *ctx,
		 struct rag_err *err);
/* store_chunk_vectors by point reads (store_mongo_hits.c). */
int sm_chunk_vectors_by_id(struct store *st, int64_t cid, int64_t first, int64_t last,
			   store_row_fn cb, void *ctx, struct rag_err *err);

/* Ops, by file. */
int store_mongo_collection_create(struct store *st, const char *tenant,
				  const struct store_collection *spec, int64_t *id_out,
				  struct rag_err *err);
int store_mongo_collection_get(struct store *st, const char *tenant, const char *name,
			       struct store_collection *out, struct rag_err *err);
int store_mongo_collection_get_by_id(struct store *st, int64_t collection_id,
				     struct store_collection *out, struct rag_err *err);
int store_mongo_collection_list(struct store *st, const char *tenant,
				struct store_collection **out, size_t *n_out, struct rag_err *err);
int store_mongo_collection_delete(struct store *st, const char *tenant, const char *name,
				  struct rag_err *err);
int store_mongo_collection_seq(struct store *st, int64_t collection_id, int64_t *seq_out,
			       struct rag_err *err);
int store_mongo_collection_swap(struct store *st, const char *tenant, const char *name,
				const char *staged, const char *retired, int64_t expect_seq,
				struct rag_err *err);

int store_mongo_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
			struct store_put_result *res, struct rag_err *err);
int store_mongo_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
			   int64_t *seq_out, struct rag_err *err);

int store_mongo_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
			struct store_doc *out, struct rag_err *err);
int store_mongo_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids,
			   size_t n, struct store_hit *out, struct rag_err *err);
int store_mongo_chunks_scan(struct store *st, int64_t collection_id, store_row_fn cb,
			    void *ctx, int64_t *seq_out, struct rag_err *err);
int store_mongo_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			      int64_t last_id, store_row_fn cb, void *ctx, struct rag_err *err);
int store_mongo_changes(struct store *st, int64_t collection_id, int64_t since_seq,
			size_t limit, struct store_change *out, size_t *n_out,
			struct rag_err *err);
int store_mongo_doc_hash(struct store *st, int64_t collection_id, const char *doc_id,
			 char **hash_out, size_t *n_chunks_out, struct rag_err *err);
int store_mongo_vectors_by_hash(struct store *st, int64_t collection_id,
				const char *const *hashes, size_t n, int dim, float *vecs,
				unsigned char *found, struct rag_err *err);
int store_mongo_doc_list(struct store *st, int64_t collection_id,
			 const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
			 struct rag_err *err);
int store_mongo_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
			   struct store_hit **out, size_t *n_out, struct rag_err *err);
int store_mongo_filter_ids(struct store *st, int64_t collection_id,
			   const struct store_filter *f, int64_t **ids_out, size_t *n_out,
			   struct rag_err *err);

int store_mongo_job_create(struct store *st, const struct store_job *job,
			   const struct store_job_item *items, size_t n_items,
			   struct rag_err *err);
int store_mongo_job_get(struct store *st, const char *tenant, const char *id,
			struct store_job *out, struct rag_err *err);
int store_mongo_job_errors(struct store *st, const char *id, size_t limit,
			   struct store_job_item **out, size_t *n_out, struct rag_err *err);
int store_mongo_job_claim(struct store *st, const char *owner, int64_t lease_ms,
			  char **id_out, struct rag_err *err);
int store_mongo_job_items_next(struct store *st, const char *id, size_t limit,
			       struct store_job_item **out, size_t *n_out, struct rag_err *err);
int store_mongo_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
				const char *error, int64_t n_chunks, int64_t n_bytes,
				int64_t lease_ms, struct rag_err *err);
int store_mongo_job_finish(struct store *st, const char *id, int state, const char *error,
			   struct rag_err *err);
int store_mongo_job_cancel(struct store *st, const char *tenant, const char *id,
			   struct rag_err *err);
int store_mongo_session_append(struct store *st, const char *tenant, const char *session_id,
			       const struct store_message *msgs, size_t n, struct rag_err *err);
int store_mongo_session_history(struct store *st, const char *tenant, const char *session_id,
				size_t limit, struct store_message **out, size_t *n_out,
				struct rag_err *err);
int store_mongo_key_put(struct store *st, const struct store_key *key, struct rag_err *err);
int store_mongo_key_get(struct store *st, const char *id, struct store_key *out,
			struct rag_err *err);
int store_mongo_key_list(struct store *st, const char *tenant, struct store_key **out,
			 size_t *n_out, struct rag_err *err);
int store_mongo_key_delete(struct store *st, const char *tenant, const char *id,
			   struct rag_err *err);

#endif
