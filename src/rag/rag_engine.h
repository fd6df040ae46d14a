/*
 * The RAG engine: collections, their in-memory indexes, and the pipeline
 * entry points the HTTP handlers and the CLI call.
 *
 * The store is the source of truth; every index is derived from it. At
 * start the engine loads each collection's index from its snapshot (or
 * rebuilds it from the store) and replays the change log from the
 * snapshot's sequence, all before rag_engine_new returns (so /ready turns
 * true only once caught up); a follower thread then polls the log, with
 * back-off while it is idle, so that writes made by other processes or
 * instances on the same store show up within follow_max_backoff_ms, or at
 * once after a nudge (rag_engine_nudge, from a pub/sub notice). Writes made through this engine are applied to its
 * indexes before the call returns (read-your-writes on one instance).
 *
 * Thread-safety: all functions may be called from many threads at once.
 */
#ifndef RAGD_RAG_RAG_ENGINE_H
#define RAGD_RAG_RAG_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "index/vindex.h"
#include "store/store.h"

struct rag_err;
struct cache;
struct chroma_client;
struct embedder;
struct rag_engine;

struct rag_engine_options {
	const char *data_dir;   /* snapshots go to data_dir/index/ */
	int load_indexes;       /* 0 for write-only users (the ingest CLI) */
	int snapshot;           /* save index snapshots when the engine is freed */
	/*
	 * Change-log polling: every follow_interval_ms while the log moves,
	 * backing off (doubling) to follow_max_backoff_ms while it does not;
	 * rag_engine_nudge cuts a wait short. follow_interval_ms 0 = no
	 * follower thread.
	 */
	int follow_interval_ms;
	int follow_max_backoff_ms;
	/*
	 * Called after each write this engine commits to the store (document
	 * put or delete, collection create, delete or swap), on the writing
	 * thread, so that other instances can be nudged; NULL = none. It must
	 * not block for long: writes wait for it.
	 */
	void (*on_change)(void *ctx);
	void *on_change_ctx;
	size_t max_top_k;       /* the largest top_k a search may ask for */
	int search_timeout_ms;  /* one search's deadline (504 past it); 0 = none */
	int ingest_timeout_ms;  /* one document's ingest, before it is stored; 0 = none */
	int chunk_size;         /* defaults for new collections, in model tokens */
	int chunk_overlap;
	struct cache *cache;    /* embeddings, search results, answers; NULL = none; borrowed */
	int cache_ttl_s;        /* search results (and answers) */
	int embedding_ttl_s;    /* query embeddings: no write changes them */
	/*
	 * The Chroma server of collections whose index type is "chroma"
	 * (borrowed: must outlive the engine); NULL refuses such collections.
	 */
	struct chroma_client *chroma;
	size_t max_doc_bytes;   /* one document's bytes at most; 0 = no limit */
	int job_workers;        /* threads running jobs (batch ingests); 0 = none */
	int job_lease_ms;       /* a job's worker renews this at each document; 0 = default */
	/*
	 * More embedding models a collection may use besides the engine's own:
	 * "name=path,name=path" (models.embedders), loaded on first use by
	 * load_embedder(load_ctx, path) (NULL: none can be loaded).
	 */
	const char *embedders;
	struct embedder *(*load_embedder)(void *ctx, const char *path, struct rag_err *err);
	void *load_ctx;
	/*
	 * Sharding across instances (rag_shard.h; borrowed, must outlive the
	 * engine): the vector indexes hold only this instance's shards and
	 * dense searches fan out for the others. NULL: not sharded.
	 */
	struct rag_shards *shards;
};

#define RAG_JOB_LEASE_MS 30000 /* a dead worker's job is taken over this long after its last item */
#define RAG_JOB_ID_MAX 40

void rag_engine_default_options(struct rag_engine_options *opts);

/*
 * Creates an engine over a store and an embedder, both borrowed: they must
 * outlive the engine. With load_indexes, every collection's index is loaded
 * before this returns. Returns NULL with err set on failure.
 */
struct rag_engine *rag_engine_new(const struct rag_engine_options *opts, struct store *store,
				  struct embedder *emb, struct rag_err *err);

/* Stops the follower, saves snapshots (if configured) and frees (NULL-safe). */
void rag_engine_free(struct rag_engine *eng);

/*
 * Wakes the change-log follower for a pass now (another instance wrote).
 * Cheap and non-blocking apart from a mutex; any thread; NULL-safe, and a
 * no-op without a follower.
 */
void rag_engine_nudge(struct rag_engine *eng);

/* 1 once the indexes are loaded and caught up at least once. */
int rag_engine_ready(struct rag_engine *eng);

/*
 * Readiness: indexes loaded, the store answering (store_ping) and the
 * change-log follower alive (a pass completed recently). 0 or a negative
 * code with the reason in err.
 */
int rag_engine_health(struct rag_engine *eng, struct rag_err *err);

/* The embedder's name, the default for new collections. */
const char *rag_engine_model(struct rag_engine *eng);

/* The embedder, borrowed for the engine's lifetime (thread-safe, see embedder.h). */
struct embedder *rag_engine_embedder(struct rag_engine *eng);

/* --- collections --- */

struct rag_collection_spec {
	const char *name;
	const char *embedding_model; /* NULL = the loaded embedder */
	int chunk_size;              /* 0 = default */
	int chunk_overlap;           /* < 0 = default */
	const char *stemming;        /* "porter" (NULL: the default) or "none" (lexical search) */
	/*
	 * NULL (a flat index), or the JSON text of an object such as
	 * {"type":"hnsw","m":16,"ef_construction":200,"ef_search":64}: see
	 * struct vindex_spec. Absent fields take vindex_spec_default's values.
	 */
	const char *index_json;
	const char *chunker;         /* NULL (structured), "structured", "recursive", "fixed" */
};

/* A collection as clients see it; strings owned, rag_collection_info_release(). */
struct rag_collection_info {
	struct store_collection c;
	int porter;           /* lexical search stems words */
	struct vindex_spec index; /* the vector index the collection uses */
	const char *chunker;  /* "structured", "recursive" or "fixed"; static */
	size_t n_vectors;     /* in this instance's index */
	size_t index_bytes;   /* memory the index takes */
	int64_t applied_seq;  /* change-log position of the index */
};

/*
 * Creates a collection. RAG_EINVAL naming the field for a bad name
 * (1-64 of [A-Za-z0-9_.-], starting alphanumeric), an unknown model or
 * chunk sizes outside the model's window, an index spec that is not valid
 * (field "index" or "index.<key>"); RAG_ECONFLICT if it exists.
 */
int rag_collection_create(struct rag_engine *eng, const char *tenant,
			  const struct rag_collection_spec *spec, struct rag_collection_info *out,
			  struct rag_err *err);
int rag_collection_get(struct rag_engine *eng, const char *tenant, const char *name,
		       struct rag_collection_info *out, struct rag_err *err);
/* *out is a new array of *n_out entries: rag_collection_info_list_free(). */
int rag_collection_list(struct rag_engine *eng, const char *tenant,
			struct rag_collection_info **out, size_t *n_out, struct rag_err *err);
int rag_collection_delete(struct rag_engine *eng, const char *tenant, const char *name,
			  struct rag_err *err);
void rag_collection_info_release(struct rag_collection_info *info);
void rag_collection_info_list_free(struct rag_collection_info *list, size_t n);

/* What rag_collection_check found: this instance's indexes against the store. */
struct rag_index_check {
	int64_t seq;           /* the change-log position all three counts were taken at */
	size_t store_chunks;   /* the collection's chunks in the store */
	size_t index_vectors;  /* vectors in this instance's vector index */
	size_t lexical_chunks; /* chunks its lexical index finds (removed ones excluded) */
	int consistent;        /* the three counts agree */
};

/*
 * A diagnostic: replays the change log, then counts the store's chunks and
 * both indexes' entries at one seq. Reads every chunk of the collection
 * (O(collection)), so it is for operators and tests, not for polling.
 * RAG_ENOTFOUND for no such collection, RAG_EUNSUPPORTED when this engine
 * loads no indexes, RAG_EBUSY when writes kept landing between the counts.
 */
int rag_collection_check(struct rag_engine *eng, const char *tenant, const char *name,
			 struct rag_index_check *out, struct rag_err *err);

/* --- documents --- */

struct rag_doc_in {
	const char *id;            /* NULL = generate one */
	/*
	 * text_len bytes: UTF-8 text when format is NULL (the JSON API's
	 * "text"); else the document's bytes in that format ("auto" sniffs
	 * them, helped by name and content_type), extracted first.
	 */
	const char *text;
	size_t text_len;
	const char *metadata_json; /* a JSON object, validated by the caller; NULL = {} */
	const char *format;        /* NULL, "auto", "text", "markdown", "html" or "pdf" */
	const char *name;          /* file name or NULL: its extension helps "auto" */
	const char *content_type;  /* MIME type or NULL */
	/*
	 * The job item this ingest applies (job workers), or NULL. The store
	 * records the item done in the document's own commit, and refuses the
	 * write with RAG_EALREADY when the item was applied already or
	 * RAG_ECONFLICT when its job is no longer running (store_doc_put).
	 */
	const struct store_job_ref *job;
};

#define RAG_DOC_ID_MAX 128 /* ids appear in URLs and logs: keep them short */

struct rag_ingest_result {
	char id[RAG_DOC_ID_MAX + 1];
	size_t n_chunks;
	size_t n_embedded; /* chunks the embedder saw; the others reused stored vectors */
	int64_t seq;
	int replaced;
	int unchanged;     /* same content hash as stored: nothing was done */
	char content_hash[40];
	/* Where the time went, for progress reports and the ingest benchmark. */
	double extract_ms, chunk_ms, embed_ms, store_ms;
};

/*
 * Upserts one document: if a document with that id is stored with the same
 * content hash (bytes, format, metadata, chunker settings, model), does
 * nothing and sets res->unchanged. Else extracts (unless format is NULL),
 * chunks, embeds the chunks whose content address has no stored vector in
 * the collection (the others reuse it), and stores document and chunks in
 * one transaction that replaces the old ones (readers never see a mix);
 * then brings this engine's index up to date. Nothing is stored on failure.
 * RAG_EINVAL names the field ("id", "text"); RAG_EUNSUPPORTED for a format
 * that cannot be read (binary input); RAG_ETOOBIG over max_doc_bytes;
 * RAG_ENOTFOUND for no collection.
 */
int rag_ingest(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_doc_in *doc, struct rag_ingest_result *res, struct rag_err *err);

/* store_doc_get through the collection's name; caller frees with store_doc_release. */
int rag_doc_get(struct rag_engine *eng, const char *tenant, const char *collection,
		const char *doc_id, struct store_doc *out, struct rag_err *err);
int rag_doc_delete(struct rag_engine *eng, const char *tenant, const char *collection,
		   const char *doc_id, struct rag_err *err);

/* A page of the collection's documents: store_doc_list through the collection's name. */
int rag_doc_list(struct rag_engine *eng, const char *tenant, const char *collection,
		 const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
		 struct rag_err *err);

/* The document's chunks in order: store_doc_chunks through the collection's name. */
int rag_doc_chunks(struct rag_engine *eng, const char *tenant, const char *collection,
		   const char *doc_id, struct store_hit **out, size_t *n_out, struct rag_err *err);


/* What rag_collection_change changes; the "keep" values leave a setting as it is. */
struct rag_collection_change {
	const char *embedding_model; /* one of models.embedder(s); NULL: keep */
	const char *chunker;         /* "structured", "recursive", "fixed"; NULL: keep */
	int chunk_size;              /* model tokens; 0: keep */
	int chunk_overlap;           /* < 0: keep (chunk_size / 8 if it no longer fits) */
};

/*
 * Moves the collection to another embedding model and/or other chunker
 * settings as a background job (rag_reembed.c): every document is rebuilt
 * from what the store keeps (its chunks, or its text and structure cut
 * again) into a staging collection while the current one keeps serving,
 * then the two are swapped in one transaction. Writes *job_id_out
 * (RAG_JOB_ID_MAX + 1 bytes). RAG_EINVAL naming the field (embedding_model,
 * chunker, chunk_size, chunk_overlap) for an unknown model or chunker,
 * sizes outside the model's window, or settings the collection already
 * has; nothing is queued then. RAG_ENOTFOUND for no collection.
 */
int rag_collection_change(struct rag_engine *eng, const char *tenant, const char *name,
			  const struct rag_collection_change *chg, char *job_id_out,
			  struct rag_err *err);

/* --- jobs --- */

/*
 * Queues a job that upserts the n_items documents (inputs copied into the
 * store) into the collection, and writes its id (RAG_JOB_ID_MAX + 1 bytes)
 * to id_out. Items carry their bytes, format, name, content type, metadata
 * and optional id (NULL: generated). RAG_ENOTFOUND for no collection,
 * RAG_EINVAL for no items, RAG_ETOOBIG for too many.
 */
int rag_job_submit(struct rag_engine *eng, const char *tenant, const char *collection,
		   const struct store_job_item *items, size_t n_items, char *id_out,
		   struct rag_err *err);

/* The job's state and counters; store_job_release(). RAG_ENOTFOUND. */
int rag_job_get(struct rag_engine *eng, const char *tenant, const char *id,
		struct store_job *out, struct rag_err *err);

/* The job's failed items (idx, doc_id, name, error), at most limit; store_job_items_free(). */
int rag_job_errors(struct rag_engine *eng, const char *id, size_t limit,
		   struct store_job_item **out, size_t *n_out, struct rag_err *err);

/* Wall-clock unix ms, as the store's timestamps. */
int64_t rag_engine_wall_ms(void);

/*
 * A document id from a file name: its base name, with every character an id
 * may not hold replaced by '_', cut to RAG_DOC_ID_MAX. out has size bytes.
 */
void rag_doc_id_from_name(const char *name, char *out, size_t size);

/* Cancels a queued or running job; RAG_ECONFLICT when it already ended. */
int rag_job_cancel(struct rag_engine *eng, const char *tenant, const char *id,
		   struct rag_err *err);

/* --- search --- */

struct rag_hit {
	float score;
	struct store_hit chunk; /* owned strings */
};

/* How a search met the cache (the X-Cache response header). */
enum rag_cache_status {
	RAG_CACHE_OFF = 0, /* no cache configured, or the query cannot be keyed */
	RAG_CACHE_MISS,    /* computed, and stored for next time */
	RAG_CACHE_HIT,     /* served from the cache */
	RAG_CACHE_BYPASS,  /* the client said "cache": false, or the cache was unavailable */
};

struct rag_search_result {
	struct rag_hit *hits; /* best first */
	size_t n_hits;
	double embed_ms, search_ms, total_ms;
	enum rag_cache_status cache;
};

enum rag_mode {
	RAG_MODE_HYBRID = 0, /* dense and lexical fused by reciprocal rank */
	RAG_MODE_DENSE,      /* embedding similarity: score is the cosine */
	RAG_MODE_LEXICAL,    /* BM25: score normalised so the best is 1 */
};

#define RAG_RRF_K 60      /* reciprocal rank fusion's constant, as in Cormack et al. */
#define RAG_RRF_K_MAX 1000 /* beyond this every rank weighs the same */

enum rag_fusion {
	RAG_FUSION_RRF = 0,  /* sum of 1 / (rrf_k + rank) */
	RAG_FUSION_WEIGHTED, /* alpha * cosine + (1 - alpha) * BM25 over the query's
			      * full-match score; the API's default: better than RRF on
			      * SciFact, Cranfield and ADI */
};

struct rag_query {
	const char *text; /* len bytes, UTF-8 */
	size_t len;
	size_t top_k;
	enum rag_mode mode;
	const struct store_filter *filter; /* NULL: every chunk (see rag_filter.h) */
	enum rag_fusion fusion;            /* hybrid only */
	int rrf_k;                         /* 0 = RAG_RRF_K */
	double alpha;                      /* weighted fusion's dense weight, 0..1 */
	/*
	 * The filter in canonical form (compact JSON, keys sorted) for the
	 * result cache's key; a filtered query without it is not cached.
	 */
	const char *filter_key;
	int no_cache;                      /* skip the result and embedding caches */
	/*
	 * The caller's Authorization header value, sent on to the instances
	 * holding other shards (their tenant is the key's there too); NULL:
	 * none (auth off, or the CLI).
	 */
	const char *authorization;
};

/* Parses "dense", "lexical" or "hybrid"; RAG_EINVAL naming "mode" otherwise. */
int rag_mode_parse(const char *s, enum rag_mode *out, struct rag_err *err);

/*
 * Returns the top_k chunks for the query, best first. With a cache, the
 * result is looked up first under a key of the collection, the change-log
 * seq its index has applied, and every query field, so a write makes the
 * next search miss; a query embedding is looked up by model and text.
 * Hybrid fuses the
 * dense and lexical rankings by reciprocal rank (score = sum of
 * 1 / (RAG_RRF_K + rank) over the two lists). With a filter, only chunks
 * of documents whose metadata satisfies it are ranked, and top_k of them
 * are returned whenever that many exist. RAG_EINVAL naming "query" or
 * "top_k"; RAG_ENOTFOUND for no collection. Free the result with
 * rag_search_result_release (also after a failure).
 */
int rag_search(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_query *q, struct rag_search_result *out, struct rag_err *err);
void rag_search_result_release(struct rag_search_result *res);

/*
 * The internal side of a sharded search (POST /v1/internal/shard-search):
 * the k best chunks of this instance's own vector index, which holds only
 * its shards, by inner product with vec (dim floats, the collection's
 * dimension), with the optional filter; never fans out. ids and scores
 * have room for k; *n gets the count. RAG_EINVAL naming "vector" or "k",
 * RAG_ENOTFOUND for no collection.
 */
int rag_search_local_dense(struct rag_engine *eng, const char *tenant, const char *collection,
			   const float *vec, size_t dim, size_t k, const struct store_filter *filter,
			   int64_t *ids, float *scores, size_t *n, struct rag_err *err);

/* The shards this engine's indexes hold (bit s: shard s); 0 when not sharded. */
uint64_t rag_engine_shards_held(struct rag_engine *eng);

/* Checks client text: present, valid UTF-8, not only whitespace; RAG_EINVAL naming field. */
int rag_check_text(const char *s, size_t len, const char *field, struct rag_err *err);

/* Checks a client-chosen name: 0 or RAG_EINVAL naming `field`. */
int rag_check_name(const char *name, const char *field, const char *what, struct rag_err *err);

#endif
