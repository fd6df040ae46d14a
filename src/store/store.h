/*
 * The store: ragd's source of truth.
 *
 * Collections (per tenant), documents, their chunks with embeddings, and a
 * per-collection change log whose sequence numbers let indexes (which are
 * derived data) be rebuilt with store_chunks_scan() and then kept current by
 * replaying store_changes(). Backends sit behind `struct store_ops`: SQLite
 * (store_sqlite.h) and MongoDB (store_mongo.h); callers only use the store_*
 * functions below, which dispatch through the ops table.
 *
 * Conventions for every function here: 0 on success or a negative RAG_E*
 * code, with details in the optional `err`. RAG_EBUSY means another process
 * held the database longer than the busy timeout: retry later. RAG_EIO means
 * the storage failed. RAG_ENOSPACE means the disk, a quota or the file size
 * limit left no room: the write was rolled back whole, reads go on. Strings passed in are borrowed for the call only.
 * Strings and arrays handed out are owned by the caller, who frees them with
 * the matching *_release / *_free function.
 *
 * Chunk ids are int64, global to the store, never reused, and the chunks of
 * one document put are numbered contiguously, so a change names them as an
 * inclusive range [first_chunk, last_chunk]. Collection ids are never reused
 * either: a collection deleted and created again under the same name is a
 * different id, which is what keeps an index built for the old one from
 * being mistaken for the new one's.
 *
 * Thread-safety: a struct store is safe to use from many threads at once;
 * each backend documents how (SQLite: a pool of connections). Several
 * processes may share one data directory.
 */
#ifndef RAGD_STORE_STORE_H
#define RAGD_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct store;
struct store_filter;
struct store_doc_query;
struct store_job;
struct store_job_item;

#define STORE_DEFAULT_TENANT "default" /* the one tenant of an embedded setup */
#define STORE_DEFAULT_POOL_SIZE 8      /* connections: enough for a small HTTP thread pool */
#define STORE_DEFAULT_BUSY_TIMEOUT_MS 5000 /* a CLI write may wait out a server's transaction */

/* How hard a commit pushes data to disk before it is acknowledged. */
enum store_sync {
	/* fsync at every commit: a transaction acknowledged is never lost, even on power loss. */
	STORE_SYNC_FULL = 0,
	/* fsync at checkpoints only: never corrupt, but a power loss may drop the last commits. */
	STORE_SYNC_NORMAL = 1,
};

struct store_options {
	size_t pool_size;    /* connections kept open; 0 means STORE_DEFAULT_POOL_SIZE */
	int busy_timeout_ms; /* wait for another process's write lock; < 0 means the default */
	enum store_sync sync;
};

/* The defaults: STORE_DEFAULT_POOL_SIZE, STORE_DEFAULT_BUSY_TIMEOUT_MS, STORE_SYNC_FULL. */
struct store_options store_default_options(void);

/*
 * A collection. As the spec of store_collection_create(), only name,
 * embed_model, dim, chunk_size, chunk_overlap and config_json are read (the
 * tenant is a parameter; id, created_at and seq are assigned). As the result
 * of a get or list, every field is filled and the strings are owned by the
 * struct: free them with store_collection_release().
 */
struct store_collection {
	int64_t id;              /* unique forever, never reused */
	const char *tenant;
	const char *name;        /* unique per tenant */
	const char *embed_model; /* the embedder the vectors came from */
	int dim;                 /* floats per embedding, > 0 */
	int chunk_size;          /* in model tokens, > 0 */
	int chunk_overlap;       /* in model tokens, 0 <= overlap < chunk_size */
	const char *config_json; /* per-collection options, a JSON object; NULL on create: "{}" */
	int64_t created_at;      /* unix ms */
	int64_t seq;             /* sequence of the last change; 0 for none yet */
};

/*
 * A document. For store_doc_put() id and text are required, metadata_json
 * (a JSON object the caller has validated; NULL means "{}") and content_hash
 * (NULL means "") are optional, and the rest is ignored. From store_doc_get()
 * everything is filled, strings owned by the struct: store_doc_release().
 */
struct store_doc {
	const char *id;
	const char *text;
	const char *metadata_json;
	const char *content_hash;
	/*
	 * The extracted document's structure (blocks with kind, page, level and
	 * section path; extract_blocks_encode's text) that re-chunking needs.
	 * NULL: none kept (documents stored before schema 5): a put stores
	 * none, a get hands out NULL.
	 */
	const char *blocks;
	size_t n_chunks;
	int64_t created_at; /* unix ms, kept when a document is replaced */
	int64_t updated_at; /* unix ms */
};

/* One chunk of a document being put; its ordinal is its index in the array. */
struct store_chunk {
	size_t start_byte; /* [start_byte, end_byte) in the document's text */
	size_t end_byte;
	const char *text;
	unsigned page;       /* 1-based PDF page; 0 when the format has none */
	const char *section; /* heading path ("Install > Linux"); NULL means "" */
	const char *hash;    /* content address: text + chunker settings + model; NULL means "" */
};

/*
 * The job item a put applies (see store_doc_put): its outcome, done, is
 * recorded by the put's own commit, as store_job_item_finish() would record
 * it with state 1, n_chunks the put's chunks.
 */
struct store_job_ref {
	const char *job_id;
	int64_t idx;      /* the item's position in the job */
	int64_t n_bytes;  /* the item's input bytes, added to the job's n_bytes */
	int64_t lease_ms; /* the job's lease is renewed until now + lease_ms */
};

/* Everything store_doc_put() writes, borrowed for the call. */
struct store_put {
	const struct store_doc *doc;
	const struct store_chunk *chunks; /* n_chunks of them, at least one */
	size_t n_chunks;
	const float *vecs; /* n_chunks * dim floats, row-major, chunk i at vecs + i * dim */
	int dim;           /* must equal the collection's dim (RAG_EINVAL otherwise) */
	const char *model; /* fingerprint of the model the vectors came from; NULL means "" */
	const struct store_job_ref *job; /* the job item this put applies; NULL: none */
};

struct store_put_result {
	int64_t first_chunk_id; /* the new chunks are first_chunk_id .. last_chunk_id */
	int64_t last_chunk_id;
	int64_t seq;  /* the collection's seq after the put */
	int replaced; /* 1 when a document with that id existed and was replaced */
};

/* A chunk hydrated for a search result; strings owned, see store_hits_release(). */
struct store_hit {
	int64_t id;
	int found; /* 0 when no such chunk exists (any more): the other fields are zero */
	const char *document_id;
	size_t ordinal;
	size_t start_byte;
	size_t end_byte;
	const char *text;
	const char *metadata_json; /* the document's */
	unsigned page;
	const char *section;
	const char *hash;  /* the chunk's content address */
	const char *model; /* the fingerprint of the model its vector came from */
};

/* One chunk as a scan hands it out; everything borrowed until the callback returns. */
struct store_chunk_row {
	int64_t id;
	const float *vec; /* the collection's dim floats, suitably aligned */
	const char *text; /* text_len bytes, NUL-terminated */
	size_t text_len;
	const char *document_id; /* the chunk's document: sharding routes by it */
};

/* One message of a conversation session; strings owned, see store_messages_free(). */
struct store_message {
	const char *role;    /* "user" or "assistant" */
	const char *content;
	int64_t at;          /* unix ms */
};

/* Called for each chunk of a scan: 0 to go on, anything else stops it and is returned. */
typedef int (*store_row_fn)(void *ctx, const struct store_chunk_row *row);

enum store_change_op {
	STORE_CHANGE_PUT = 1,    /* chunks first_chunk..last_chunk were added */
	STORE_CHANGE_DELETE = 2, /* chunks first_chunk..last_chunk were removed */
};

/* One change-log entry; document_id is owned, see store_changes_release(). */
struct store_change {
	int64_t seq;
	enum store_change_op op;
	const char *document_id;
	int64_t first_chunk; /* inclusive range of chunk ids */
	int64_t last_chunk;
	int64_t at; /* unix ms */
};

/*
 * An API key as the store keeps it: never the secret, only a salted hash
 * of it (src/auth/auth.c says how it is made). Strings borrowed on put,
 * owned after a get or list (store_key_release).
 */
struct store_key {
	const char *id;       /* public key id, unique across tenants */
	const char *tenant;
	const char *role;     /* "admin", "writer" or "reader" */
	const char *name;     /* the creator's label; may be "" */
	const char *salt_hex; /* per-key salt, hex */
	const char *hash_hex; /* keyed BLAKE2b of the secret, hex */
	int64_t created_at;   /* unix ms */
	/* Per-key limits: -1 = the configured default, 0 = unlimited. */
	double requests_per_s;
	int64_t burst;
	int64_t ingest_bytes_per_day;
	int64_t tokens_per_day;
};

/*
 * The backend's side. Each function gets the struct store it was opened as
 * and has the contract of the store_* function of the same name, called
 * after store.c has checked the arguments that need no stored state, with
 * out-parameters already zeroed and res/seq_out never NULL.
 * collection_list with tenant NULL serves store_collection_list_all().
 * `free` releases everything, the struct store included.
 */
struct store_ops {
	const char *name; /* "sqlite", "mongo": for logs */
	void (*free)(struct store *st);
	int (*collection_create)(struct store *st, const char *tenant,
				 const struct store_collection *spec, int64_t *id_out,
				 struct rag_err *err);
	int (*collection_get)(struct store *st, const char *tenant, const char *name,
			      struct store_collection *out, struct rag_err *err);
	int (*collection_get_by_id)(struct store *st, int64_t collection_id,
				    struct store_collection *out, struct rag_err *err);
	int (*collection_list)(struct store *st, const char *tenant, struct store_collection **out,
			       size_t *n_out, struct rag_err *err);
	int (*collection_delete)(struct store *st, const char *tenant, const char *name,
				 struct rag_err *err);
	int (*collection_seq)(struct store *st, int64_t collection_id, int64_t *seq_out,
			      struct rag_err *err);
	int (*doc_put)(struct store *st, int64_t collection_id, const struct store_put *put,
		       struct store_put_result *res, struct rag_err *err);
	int (*doc_get)(struct store *st, int64_t collection_id, const char *doc_id,
		       struct store_doc *out, struct rag_err *err);
	int (*doc_delete)(struct store *st, int64_t collection_id, const char *doc_id,
			  int64_t *seq_out, struct rag_err *err);
	int (*chunks_get)(struct store *st, int64_t collection_id, const int64_t *ids, size_t n,
			  struct store_hit *out, struct rag_err *err);
	int (*chunks_scan)(struct store *st, int64_t collection_id,
			   store_row_fn cb, void *ctx,
			   int64_t *seq_out, struct rag_err *err);
	int (*chunk_vectors)(struct store *st, int64_t collection_id, int64_t first_id,
			     int64_t last_id, store_row_fn cb,
			     void *ctx, struct rag_err *err);
	int (*changes)(struct store *st, int64_t collection_id, int64_t since_seq, size_t limit,
		       struct store_change *out, size_t *n_out, struct rag_err *err);
	int (*ping)(struct store *st, struct rag_err *err);
	int (*filter_ids)(struct store *st, int64_t collection_id, const struct store_filter *f,
			  int64_t **ids_out, size_t *n_out, struct rag_err *err);
	int (*session_append)(struct store *st, const char *tenant, const char *session_id,
			      const struct store_message *msgs, size_t n, struct rag_err *err);
	int (*session_history)(struct store *st, const char *tenant, const char *session_id,
			       size_t limit, struct store_message **out, size_t *n_out,
			       struct rag_err *err);
	int (*doc_hash)(struct store *st, int64_t collection_id, const char *doc_id,
			char **hash_out, size_t *n_chunks_out, struct rag_err *err);
	int (*vectors_by_hash)(struct store *st, int64_t collection_id, const char *const *hashes,
			       size_t n, int dim, float *vecs, unsigned char *found,
			       struct rag_err *err);
	int (*doc_list)(struct store *st, int64_t collection_id, const struct store_doc_query *q,
			struct store_doc **out, size_t *n_out, struct rag_err *err);
	int (*doc_chunks)(struct store *st, int64_t collection_id, const char *doc_id,
			  struct store_hit **out, size_t *n_out, struct rag_err *err);
	int (*job_create)(struct store *st, const struct store_job *job,
			  const struct store_job_item *items, size_t n_items, struct rag_err *err);
	int (*job_get)(struct store *st, const char *tenant, const char *id, struct store_job *out,
		       struct rag_err *err);
	int (*job_errors)(struct store *st, const char *id, size_t limit,
			  struct store_job_item **out, size_t *n_out, struct rag_err *err);
	int (*job_claim)(struct store *st, const char *owner, int64_t lease_ms, char **id_out,
			 struct rag_err *err);
	int (*job_items_next)(struct store *st, const char *id, size_t limit,
			      struct store_job_item **out, size_t *n_out, struct rag_err *err);
	int (*job_item_finish)(struct store *st, const char *id, int64_t idx, int state,
			       const char *error, int64_t n_chunks, int64_t n_bytes,
			       int64_t lease_ms, struct rag_err *err);
	int (*job_finish)(struct store *st, const char *id, int state,
			  const char *error, struct rag_err *err);
	int (*job_cancel)(struct store *st, const char *tenant, const char *id,
			  struct rag_err *err);
	int (*collection_swap)(struct store *st, const char *tenant, const char *name,
			       const char *staged, const char *retired, int64_t expect_seq,
			       struct rag_err *err);
	int (*key_put)(struct store *st, const struct store_key *key, struct rag_err *err);
	int (*key_get)(struct store *st, const char *id, struct store_key *out,
		       struct rag_err *err);
	int (*key_list)(struct store *st, const char *tenant, struct store_key **out,
			size_t *n_out, struct rag_err *err);
	int (*key_delete)(struct store *st, const char *tenant, const char *id,
			  struct rag_err *err);
};

/*
 * A store handle: the backend's ops and its private state.
 *
 * Locking: ops and impl are set once by the backend's open function and
 * never change, so the handle needs no lock; the backend guards its own
 * state (see its header).
 */
struct store {
	const struct store_ops *ops;
	void *impl; /* owned by the backend */
};

/* Closes the store and frees it (NULL-safe). No call may be in flight. */
void store_free(struct store *st);

/* The backend's name, e.g. "sqlite". */
const char *store_backend_name(const struct store *st);

/*
 * Creates a collection for tenant from spec and stores its new id in
 * *id_out (may be NULL). RAG_EINVAL for a bad spec (empty name, dim <= 0,
 * chunk_size <= 0, overlap outside [0, chunk_size)), RAG_ECONFLICT
 * "collection 'x' already exists" when the tenant has one by that name.
 */
int store_collection_create(struct store *st, const char *tenant,
			    const struct store_collection *spec, int64_t *id_out,
			    struct rag_err *err);

/*
 * Fills *out with tenant's collection called name; RAG_ENOTFOUND
 * "collection 'x' not found". On success the caller owns out's strings
 * (store_collection_release); on failure *out is zeroed.
 */
int store_collection_get(struct store *st, const char *tenant, const char *name,
			 struct store_collection *out, struct rag_err *err);

/* The same by id, for followers of the change log; RAG_ENOTFOUND when it is gone. */
int store_collection_get_by_id(struct store *st, int64_t collection_id,
			       struct store_collection *out, struct rag_err *err);

/*
 * Lists tenant's collections, ordered by name, into a new array *out of
 * *n_out entries (NULL and 0 when there are none); free it with
 * store_collection_list_free().
 */
int store_collection_list(struct store *st, const char *tenant, struct store_collection **out,
			  size_t *n_out, struct rag_err *err);

/* All tenants' collections, ordered by tenant then name: for loading indexes at startup. */
int store_collection_list_all(struct store *st, struct store_collection **out, size_t *n_out,
			      struct rag_err *err);

/*
 * Deletes tenant's collection called name with all its documents, chunks
 * and change-log entries, in one transaction. RAG_ENOTFOUND when missing.
 */
int store_collection_delete(struct store *st, const char *tenant, const char *name,
			    struct rag_err *err);

/* The collection's current sequence number; RAG_ENOTFOUND when it is gone. */
int store_collection_seq(struct store *st, int64_t collection_id, int64_t *seq_out,
			 struct rag_err *err);

/* Frees the strings of one collection filled by a get (NULL-safe) and zeroes it. */
void store_collection_release(struct store_collection *c);

/* Frees an array from store_collection_list*() and its strings (NULL-safe). */
void store_collection_list_free(struct store_collection *list, size_t n);

/*
 * Stores put->doc with its chunks and their embeddings in one transaction:
 * if a document with that id exists, its chunks are deleted (a DELETE
 * change naming their range) and it is replaced, keeping created_at; then
 * the new chunks get contiguous ids and a PUT change names them. The
 * collection's seq grows by the number of changes written (1 or 2). On any
 * failure nothing at all is written. res (may be NULL) receives the new
 * chunk ids and seq.
 *
 * RAG_EINVAL: no chunks, empty id, NULL text, a chunk range outside the
 * text, or put->dim differing from the collection's. RAG_ENOTFOUND: no such
 * collection.
 *
 * With put->job set, the put applies that job item: the item is marked
 * done, its body dropped and the job's counters and lease updated as part
 * of the same commit, so a crash leaves either both or neither and a job
 * never applies one of its items twice (a second application could
 * overwrite a newer version a client wrote in between). The put is
 * refused, nothing written, with RAG_EALREADY when the item is no longer
 * pending (it was applied, or finished otherwise) and RAG_ECONFLICT when
 * the job is no longer running (cancelled). The MongoDB store records the
 * item after its commit point, in the idempotent roll-forward that a dead
 * writer's recovery redoes (store_mongo_docs.c): the item is done before
 * anyone else can write to the collection.
 */
int store_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
		  struct store_put_result *res, struct rag_err *err);

/*
 * Fills *out with the document; RAG_ENOTFOUND "document 'abc' not found".
 * The caller owns out's strings (store_doc_release); on failure *out is zeroed.
 */
int store_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
		  struct store_doc *out, struct rag_err *err);

/*
 * Deletes the document and its chunks, writing one DELETE change; *seq_out
 * (may be NULL) receives the new seq. RAG_ENOTFOUND when missing.
 */
int store_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
		     int64_t *seq_out, struct rag_err *err);

/* Frees the strings of a document filled by store_doc_get() (NULL-safe) and zeroes it. */
void store_doc_release(struct store_doc *doc);

/*
 * Hydrates search results: fills out[i] for ids[i], all read in one
 * snapshot. An id that is not a chunk of this collection (deleted since the
 * index saw it) gets found = 0; that is not an error. The caller owns the
 * strings: store_hits_release(out, n), also after a failure.
 */
int store_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids, size_t n,
		     struct store_hit *out, struct rag_err *err);

/* Frees the strings of n hits (NULL-safe) and zeroes them. */
void store_hits_release(struct store_hit *hits, size_t n);

/*
 * Calls cb for every chunk of the collection (its vector and text), in no
 * particular order, all read in
 * one read transaction together with the collection's seq at that instant,
 * stored in *seq_out (may be NULL): an index built from the scan is exactly
 * the state at that seq, and replaying changes after it brings it current.
 * Writers are not blocked meanwhile. cb returns 0 to go on; anything else
 * stops the scan and is returned as is (return a RAG_E* code).
 * A backend without read snapshots (MongoDB) may also hand out documents
 * committed after *seq_out, each whole (all its chunks or none): replaying
 * the changes after *seq_out over such a scan is harmless, as a PUT of
 * chunks already there and a DELETE of chunks absent are both no-ops.
 *
 * cb runs while the scan holds one of the store's connections: it must not
 * call back into the same store (with a pool of one, that would deadlock).
 */
int store_chunks_scan(struct store *st, int64_t collection_id,
		      store_row_fn cb, void *ctx,
		      int64_t *seq_out, struct rag_err *err);

/*
 * Calls cb for each chunk of the collection with first_id <= id <= last_id
 * that still exists, in id order: for replaying a PUT change (chunks deleted
 * since are simply absent). Same callback rules as store_chunks_scan().
 */
int store_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			int64_t last_id, store_row_fn cb,
			void *ctx, struct rag_err *err);

/*
 * Reads up to limit changes with seq > since_seq, in seq order, into out
 * (limit entries provided by the caller); *n_out gets how many. Fewer than
 * limit means the log is read to its end. RAG_ENOTFOUND when the collection
 * is gone. The caller frees them with store_changes_release(out, *n_out).
 */
int store_changes(struct store *st, int64_t collection_id, int64_t since_seq, size_t limit,
		  struct store_change *out, size_t *n_out, struct rag_err *err);

/*
 * The ids of the collection's chunks whose document's metadata satisfies
 * the filter, ascending, in a new array *ids_out (caller frees; NULL when
 * none). For filtered searches: an index keeps only these.
 */
int store_filter_ids(struct store *st, int64_t collection_id, const struct store_filter *f,
		     int64_t **ids_out, size_t *n_out, struct rag_err *err);

/*
 * The stored content_hash of a document in *hash_out (caller frees with
 * free()) and its chunk count in *n_chunks_out (may be NULL): RAG_ENOTFOUND when there is no such document. Cheap: no text is
 * read. Lets an upsert skip a document that did not change.
 */
int store_doc_hash(struct store *st, int64_t collection_id, const char *doc_id, char **hash_out,
		   size_t *n_chunks_out, struct rag_err *err);

/*
 * Content-addressed reuse: for each hashes[i] (i < n), if a chunk of the
 * collection has that hash, copies its vector (dim floats) to
 * vecs + i * dim and sets found[i] = 1, else found[i] = 0. RAG_EINVAL when
 * dim differs from the collection's.
 */
int store_vectors_by_hash(struct store *st, int64_t collection_id, const char *const *hashes,
			  size_t n, int dim, float *vecs, unsigned char *found,
			  struct rag_err *err);

/* A page of documents: store_doc_list(). */
struct store_doc_query {
	const char *after_id;               /* cursor: ids greater than this; NULL = from the start */
	size_t limit;                       /* at most this many (> 0) */
	const struct store_filter *filter;  /* on the metadata; NULL = all */
};

/*
 * Lists the collection's documents in id order (without text: doc.text is
 * ""), starting after q->after_id, at most q->limit of them, into a new
 * array *out (NULL when none) of *n_out; free with store_doc_list_free().
 */
int store_doc_list(struct store *st, int64_t collection_id, const struct store_doc_query *q,
		   struct store_doc **out, size_t *n_out, struct rag_err *err);
void store_doc_list_free(struct store_doc *docs, size_t n);

/*
 * The document's chunks in ordinal order (text, offsets, page, section,
 * hash, model), into a new array *out of *n_out; free with
 * store_hits_release(out, n) then free(out). RAG_ENOTFOUND when the
 * document does not exist.
 */
int store_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
		     struct store_hit **out, size_t *n_out, struct rag_err *err);

/* --- jobs: long work that survives restarts (store_jobs.c documents the model) --- */

enum store_job_state {
	STORE_JOB_QUEUED = 0,
	STORE_JOB_RUNNING = 1,
	STORE_JOB_SUCCEEDED = 2,
	STORE_JOB_FAILED = 3,
	STORE_JOB_CANCELLED = 4,
};

/*
 * A job. On create, id, tenant, collection, kind and spec_json are read
 * (n_total comes from the items). From a get, everything is filled, strings
 * owned: store_job_release().
 */
struct store_job {
	const char *id;
	const char *tenant;
	const char *collection;
	const char *kind;      /* "ingest" */
	const char *spec_json; /* kind-specific options, a JSON object */
	enum store_job_state state;
	int64_t n_total, n_done, n_failed, n_skipped; /* items */
	int64_t n_chunks, n_bytes;                    /* produced so far */
	int64_t created_at, started_at, updated_at, finished_at; /* unix ms; 0 = not yet */
	const char *error; /* why the job failed; "" otherwise */
};

/* One unit of a job: a document to ingest. Strings borrowed on create, owned from reads. */
struct store_job_item {
	int64_t idx;          /* 0-based position in the job */
	const char *doc_id;   /* NULL on create: the worker generates one */
	const char *name;     /* file name, or "" */
	const char *content_type;
	const char *format;   /* "auto", "text", ... */
	const char *metadata_json;
	const void *body;     /* the document's bytes */
	size_t body_len;
	int state;            /* 0 pending, 1 done, 2 failed, 3 unchanged */
	const char *error;    /* for failed items */
};

/* Creates the job (state queued) with its items in one transaction. */
int store_job_create(struct store *st, const struct store_job *job,
		     const struct store_job_item *items, size_t n_items, struct rag_err *err);

/* The job (of tenant; NULL: any); RAG_ENOTFOUND. Release with store_job_release(). */
int store_job_get(struct store *st, const char *tenant, const char *id, struct store_job *out,
		  struct rag_err *err);
void store_job_release(struct store_job *job);

/*
 * The failed items of a job (idx, doc_id, name, error), at most limit, into
 * a new array; free with store_job_items_free().
 */
int store_job_errors(struct store *st, const char *id, size_t limit,
		     struct store_job_item **out, size_t *n_out, struct rag_err *err);

/*
 * Claims one job to work on: queued, or running with a lease that expired
 * (its worker died) and that another owner held. Sets it running, owned by owner until now + lease_ms.
 * *id_out (caller frees) is NULL when there is none.
 */
int store_job_claim(struct store *st, const char *owner, int64_t lease_ms, char **id_out,
		    struct rag_err *err);

/* Up to limit pending items of the job, in idx order; store_job_items_free(). */
int store_job_items_next(struct store *st, const char *id, size_t limit,
			 struct store_job_item **out, size_t *n_out, struct rag_err *err);
void store_job_items_free(struct store_job_item *items, size_t n);

/*
 * Records an item's outcome (state 1, 2 or 3, error for 2), drops its body
 * and adds to the job's counters, renewing the lease: one transaction.
 * An item no longer pending is left as it is (and counted once): 0.
 * RAG_ECONFLICT when the job is no longer running (cancelled meanwhile).
 * An item that writes a document records its outcome through the put
 * instead (store_put.job), in the same commit as the document.
 */
int store_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
			  const char *error, int64_t n_chunks, int64_t n_bytes,
			  int64_t lease_ms, struct rag_err *err);

/* Ends a running job as succeeded or failed (error may be NULL). */
int store_job_finish(struct store *st, const char *id, enum store_job_state state,
		     const char *error, struct rag_err *err);

/*
 * Cancels a queued or running job (its pending items' bodies are dropped);
 * RAG_ENOTFOUND; RAG_ECONFLICT when it already ended.
 */
int store_job_cancel(struct store *st, const char *tenant, const char *id, struct rag_err *err);

const char *store_job_state_name(enum store_job_state s);

/*
 * In one transaction: tenant's collection `name` is renamed `retired` and
 * marked retired, and collection `staged` is renamed `name`; a reader sees
 * either the old or the new collection under `name`, never none. When
 * expect_seq >= 0 the swap happens only if `name`'s seq still equals it,
 * else RAG_EBUSY "collection 'x' changed": no write can slip in between
 * the caller's last look at the collection and the swap. RAG_ENOTFOUND when
 * either is missing, RAG_ECONFLICT when `retired` exists.
 *
 * From then on writes to the retired collection's id (store_doc_put,
 * store_doc_delete) fail with RAG_ENOTFOUND "collection 42 was replaced",
 * so a writer that looked the name up before the swap finds out, looks it
 * up again and writes to the new one; reads of it still work until it is
 * deleted.
 */
int store_collection_swap(struct store *st, const char *tenant, const char *name,
			  const char *staged, const char *retired, int64_t expect_seq,
			  struct rag_err *err);

/*
 * Readiness probe: 0 when the store answers and is the one opened, else
 * RAG_EIO or RAG_EBUSY with the reason. Cheap enough for every /ready.
 */
int store_ping(struct store *st, struct rag_err *err);

/*
 * Conversation sessions: messages kept per (tenant, session id) in the
 * store, so that any instance can continue any session. Appends msgs (at
 * is ignored: now) after the session's last message in one transaction,
 * creating the session on first use. RAG_EINVAL for an empty id or a
 * message without role or content.
 */
int store_session_append(struct store *st, const char *tenant, const char *session_id,
			 const struct store_message *msgs, size_t n, struct rag_err *err);

/*
 * The session's last `limit` messages, oldest first, in a new array *out of
 * *n_out (NULL and 0 for an unknown or empty session: not an error); free
 * with store_messages_free().
 */
int store_session_history(struct store *st, const char *tenant, const char *session_id,
			  size_t limit, struct store_message **out, size_t *n_out,
			  struct rag_err *err);

/* Frees an array from store_session_history() and its strings (NULL-safe). */
void store_messages_free(struct store_message *msgs, size_t n);

/*
 * API keys (schema version 4). key_put stores a new key (RAG_ECONFLICT when
 * the id exists); key_get fills *out (RAG_ENOTFOUND); key_list returns the
 * tenant's keys (NULL: all tenants) ordered by created_at, in a new array
 * freed with store_keys_free; key_delete removes the tenant's key
 * (RAG_ENOTFOUND when the tenant has no such key). Backends without these
 * ops answer RAG_EUNSUPPORTED.
 */
int store_key_put(struct store *st, const struct store_key *key, struct rag_err *err);
int store_key_get(struct store *st, const char *id, struct store_key *out, struct rag_err *err);
int store_key_list(struct store *st, const char *tenant, struct store_key **out, size_t *n_out,
		   struct rag_err *err);
int store_key_delete(struct store *st, const char *tenant, const char *id, struct rag_err *err);
void store_key_release(struct store_key *key);
void store_keys_free(struct store_key *keys, size_t n);

/* Frees the strings of n changes (NULL-safe) and zeroes them. */
void store_changes_release(struct store_change *changes, size_t n);

#endif
