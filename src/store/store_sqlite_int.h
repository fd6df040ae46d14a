/*
 * Internals shared by the SQLite store's files, and by nothing else:
 * store_sqlite.c (pool, transactions, open/free, collections),
 * store_sqlite_docs.c (documents, chunks, change log) and
 * store_sqlite_schema.c (schema, migrations, error translation).
 *
 * SQLite's types are only forward-declared here; sqlite3.h itself is
 * included by the .c files alone.
 */
#ifndef RAGD_STORE_STORE_SQLITE_INT_H
#define RAGD_STORE_STORE_SQLITE_INT_H

#include "store/store.h"

#include <pthread.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct sqlite3;
struct sqlite3_stmt;

/* Every statement the store runs; their SQL is the table in store_sqlite.c. */
enum store_sqlite_stmt {
	S_BEGIN_READ,
	S_BEGIN_WRITE,
	S_COMMIT,
	S_ROLLBACK,
	S_COLL_INSERT,
	S_COLL_BY_NAME,
	S_COLL_BY_ID,
	S_COLL_LIST,
	S_COLL_LIST_ALL,
	S_COLL_STATE,
	S_COLL_RETIRED,
	S_COLL_SET_SEQ,
	S_COLL_DEL,
	S_COLL_DEL_CHUNKS,
	S_COLL_DEL_DOCS,
	S_COLL_DEL_CHANGES,
	S_DOC_EXISTS,
	S_DOC_UPSERT,
	S_DOC_GET,
	S_DOC_DEL,
	S_DOC_CHUNK_RANGE,
	S_DOC_DEL_CHUNKS,
	S_CHUNK_INSERT,
	S_CHUNK_HIT,
	S_CHUNK_SCAN,
	S_CHUNK_RANGE,
	S_CHANGE_INSERT,
	S_CHANGES,
	S_DOC_HASH,
	S_VEC_BY_HASH,
	S_DOC_CHUNKS,
	S_N_STMT
};

/* One pooled connection. Used by one thread at a time: the one that took it. */
struct store_sqlite_conn {
	struct sqlite3 *db;
	struct sqlite3_stmt *stmt[S_N_STMT]; /* prepared lazily, kept until free */
	const char *what;                     /* the operation in progress, for messages */
	struct store_sqlite_conn *next;       /* free-list link */
};

/*
 * The backend's state; st->impl of its struct store.
 *
 * Locking: pool_lock guards free_list; pool_cond is signalled when a
 * connection is returned. write_lock is held from BEGIN IMMEDIATE to
 * COMMIT/ROLLBACK of each write transaction of this process. path, conns
 * and n_conns are immutable between open and free.
 */
struct store_sqlite {
	struct store base;
	char *path;
	dev_t dev; /* the database file's identity at open, for store_ping */
	ino_t ino;
	struct store_sqlite_conn *conns;
	size_t n_conns;
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct store_sqlite_conn *free_list;
	pthread_mutex_t write_lock;
};

/*
 * Translates a SQLite result code into a RAG_E* code, recording "store: what:
 * message". A full disk (SQLITE_FULL, or an IOERR with errno ENOSPC, EDQUOT
 * or EFBIG) is RAG_ENOSPACE.
 */
int store_sqlite_error(struct sqlite3 *db, int rc, struct rag_err *err, const char *what);

/*
 * Brings db's schema to STORE_SQLITE_SCHEMA_VERSION in one IMMEDIATE
 * transaction, or refuses a newer schema with RAG_EUNSUPPORTED.
 */
int store_sqlite_migrate(struct sqlite3 *db, struct rag_err *err);

/* Takes a free connection, waiting for one; what names the operation in messages. */
struct store_sqlite_conn *store_sqlite_conn_get(struct store_sqlite *ss, const char *what);

/* Resets the connection's statements and returns it to the pool. */
void store_sqlite_conn_put(struct store_sqlite *ss, struct store_sqlite_conn *c);

/* store_sqlite_error() with the connection's database and operation. */
int store_sqlite_fail(struct store_sqlite_conn *c, int rc, struct rag_err *err);

/* The connection's cached statement id, reset and unbound, in *out (borrowed). */
int store_sqlite_prep(struct store_sqlite_conn *c, enum store_sqlite_stmt id,
		      struct sqlite3_stmt **out, struct rag_err *err);

/* Steps s: 1 for a row, 0 when done, a RAG_E* code on error. */
int store_sqlite_step(struct store_sqlite_conn *c, struct sqlite3_stmt *s, struct rag_err *err);

/*
 * Binders that do nothing once *rc (a SQLite code) is set, so a run of them
 * needs one check. Text and blobs are bound SQLITE_STATIC: the caller keeps
 * them alive until the statement is stepped.
 */
void store_sqlite_bind_text(struct sqlite3_stmt *s, int i, const char *v, int *rc);
void store_sqlite_bind_int(struct sqlite3_stmt *s, int i, int64_t v, int *rc);
void store_sqlite_bind_blob(struct sqlite3_stmt *s, int i, const void *p, size_t len, int *rc);

/* Runs a statement that returns no rows, binding the first n_args of a1, a2. */
int store_sqlite_run(struct store_sqlite_conn *c, enum store_sqlite_stmt id, int n_args,
		     int64_t a1, int64_t a2, struct rag_err *err);

/*
 * Transactions. Write ones hold ss->write_lock throughout. txn_end commits
 * when rc is 0, rolls back otherwise or when the commit fails, and returns
 * the outcome.
 */
int store_sqlite_txn_begin(struct store_sqlite *ss, struct store_sqlite_conn *c, int write,
			   struct rag_err *err);
int store_sqlite_txn_end(struct store_sqlite *ss, struct store_sqlite_conn *c, int write, int rc,
			 struct rag_err *err);

/* A malloc'ed NUL-terminated copy of text column i ("" for NULL) in *out. */
int store_sqlite_col_str(struct sqlite3_stmt *s, int i, const char **out, struct rag_err *err);

/* The collection's dim and seq, or RAG_ENOTFOUND "collection 42 not found". */
int store_sqlite_coll_state(struct store_sqlite_conn *c, int64_t id, int *dim, int64_t *seq,
			    struct rag_err *err);

/*
 * The collection's dim and seq like store_sqlite_coll_state, for a write:
 * RAG_ENOTFOUND "collection 42 was replaced" when a swap retired it.
 */
int store_sqlite_coll_state_write(struct store_sqlite_conn *c, int64_t id, int *dim,
				  int64_t *seq, struct rag_err *err);

int store_sqlite_oom(struct rag_err *err);
int64_t store_sqlite_now_ms(void);

/* Document, chunk and change-log ops, in store_sqlite_docs.c. */
int store_sqlite_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
			 struct store_put_result *res, struct rag_err *err);
int store_sqlite_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
			 struct store_doc *out, struct rag_err *err);
int store_sqlite_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
			    int64_t *seq_out, struct rag_err *err);
int store_sqlite_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids, size_t n,
			    struct store_hit *out, struct rag_err *err);
int store_sqlite_chunks_scan(struct store *st, int64_t collection_id,
			     store_row_fn cb, void *ctx,
			     int64_t *seq_out, struct rag_err *err);
int store_sqlite_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			       int64_t last_id,
			       store_row_fn cb, void *ctx,
			       struct rag_err *err);
int store_sqlite_changes(struct store *st, int64_t collection_id, int64_t since_seq,
			 size_t limit, struct store_change *out, size_t *n_out,
			 struct rag_err *err);

/* Reads a chunk row (document_id, ordinal, start, end, text, metadata, page, section, hash, model). */
int store_sqlite_read_hit(struct sqlite3_stmt *s, struct store_hit *h, struct rag_err *err);

/* v2 reads: store_sqlite_docs2.c. */
int store_sqlite_doc_hash(struct store *st, int64_t collection_id, const char *doc_id,
			  char **hash_out, size_t *n_chunks_out, struct rag_err *err);
int store_sqlite_vectors_by_hash(struct store *st, int64_t collection_id,
				 const char *const *hashes, size_t n, int dim, float *vecs,
				 unsigned char *found, struct rag_err *err);
int store_sqlite_doc_list(struct store *st, int64_t collection_id,
			  const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
			  struct rag_err *err);
int store_sqlite_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
			    struct store_hit **out, size_t *n_out, struct rag_err *err);
/* The job queue: store_sqlite_jobs.c. */
int store_sqlite_job_create(struct store *st, const struct store_job *job,
			    const struct store_job_item *items, size_t n_items,
			    struct rag_err *err);
int store_sqlite_job_get(struct store *st, const char *tenant, const char *id,
			 struct store_job *out, struct rag_err *err);
int store_sqlite_job_errors(struct store *st, const char *id, size_t limit,
			    struct store_job_item **out, size_t *n_out, struct rag_err *err);
int store_sqlite_job_claim(struct store *st, const char *owner, int64_t lease_ms,
			   char **id_out, struct rag_err *err);
int store_sqlite_job_items_next(struct store *st, const char *id, size_t limit,
				struct store_job_item **out, size_t *n_out, struct rag_err *err);
int store_sqlite_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
				 const char *error, int64_t n_chunks, int64_t n_bytes,
				 int64_t lease_ms, struct rag_err *err);
int store_sqlite_job_finish(struct store *st, const char *id, int state, const char *error,
			    struct rag_err *err);
/*
 * Records job item idx's outcome inside the caller's write transaction on
 * c, as store_job_item_finish() does; *changed is 1 when the item was
 * pending (and is now recorded and counted), 0 when it was not (nothing
 * changed). RAG_ECONFLICT when the job is not running.
 */
int store_sqlite_job_item_record(struct store_sqlite_conn *c, const char *id, int64_t idx,
				 int state, const char *error, int64_t n_chunks, int64_t n_bytes,
				 int64_t lease_ms, int *changed, struct rag_err *err);
int store_sqlite_job_cancel(struct store *st, const char *tenant, const char *id,
			    struct rag_err *err);
int store_sqlite_collection_swap(struct store *st, const char *tenant, const char *name,
				 const char *staged, const char *retired, int64_t expect_seq,
				 struct rag_err *err);

struct store_filter;

/* Conversation sessions (store_sqlite_sessions.c). */
int store_sqlite_session_append(struct store *st, const char *tenant, const char *session_id,
				const struct store_message *msgs, size_t n, struct rag_err *err);
int store_sqlite_session_history(struct store *st, const char *tenant, const char *session_id,
				 size_t limit, struct store_message **out, size_t *n_out,
				 struct rag_err *err);
/* API keys (store_sqlite_keys.c). */
int store_sqlite_key_put(struct store *st, const struct store_key *key, struct rag_err *err);
int store_sqlite_key_get(struct store *st, const char *id, struct store_key *out,
			 struct rag_err *err);
int store_sqlite_key_list(struct store *st, const char *tenant, struct store_key **out,
			  size_t *n_out, struct rag_err *err);
int store_sqlite_key_delete(struct store *st, const char *tenant, const char *id,
			    struct rag_err *err);
/* Appends node f as SQL over documents aliased d, numbering parameters from *n_params. */
struct sbuf;
void store_sqlite_filter_sql(struct sbuf *sql, const struct store_filter *f, int *n_params);
/* Binds the parameters store_sqlite_filter_sql numbered, counting from *n; a SQLite code. */
int store_sqlite_filter_bind(struct sqlite3_stmt *s, const struct store_filter *f, int *n);

/* store_filter_ids for SQLite (store_sqlite_filter.c). */
int store_sqlite_filter_ids(struct store *st, int64_t collection_id, const struct store_filter *f,
			    int64_t **ids_out, size_t *n_out, struct rag_err *err);

#endif
