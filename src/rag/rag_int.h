/*
 * Internals shared by the engine's files (rag_engine.c, rag_index.c,
 * rag_docs.c, rag_search.c). Not for other layers.
 */
#ifndef RAGD_RAG_RAG_INT_H
#define RAGD_RAG_RAG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rag/rag_engine.h"

struct cache_key_builder;
struct hashmap;
struct metric_child;
struct vindex;
struct lexical;
struct generator;

/*
 * One collection as loaded in this engine. Refcounted: the registry holds
 * one reference, each request using it another, so a collection deleted
 * while a search runs is freed when that search lets go.
 *
 * Locking: `apply_mu` serialises change-log replay and index (re)builds;
 * the index itself has its own rwlock for search vs. add/remove;
 * applied_seq is atomic so readers need no lock. `write_gate` is held
 * shared by each write of this engine to the collection (rag_ingest,
 * rag_doc_delete) and exclusively by a model or chunker change for its
 * last pass and the swap (rag_reembed.c), so no write of this process can
 * land between them; it prefers the exclusive side, so a stream of writes
 * cannot starve the swap. Never taken twice by one thread. Other fields are
 * immutable after creation.
 */
struct rag_coll {
	atomic_int refs;
	struct store_collection c; /* owned strings */
	struct vindex *vi;         /* NULL when the engine loads no indexes */
	struct lexical *lx;        /* BM25 over the chunk texts; NULL with vi */
	struct embedder *emb;      /* the collection's model (owned by the engine); NULL if unavailable */
	int porter;                /* from config_json: the lexical index stems */
	struct vindex_spec ispec;  /* from config_json: which vector index */
	int chunker;               /* from config_json: enum chunk_strategy */
	pthread_mutex_t apply_mu;
	pthread_rwlock_t write_gate;
	_Atomic int64_t applied_seq;
	_Atomic int64_t caught_up_ms; /* wall clock (unix ms) when applied_seq last equalled the store */
	int64_t snapshot_seq;      /* seq of the snapshot on disk; under apply_mu */
};

struct rag_engine {
	struct rag_engine_options opts;
	struct store *store;
	struct embedder *emb;
	char *index_dir;

	pthread_rwlock_t lock;  /* guards colls */
	struct hashmap *colls;  /* "tenant\x1fname" -> struct rag_coll * */
	pthread_mutex_t open_mu; /* one collection is opened (index built) at a time */

	pthread_t follower;
	int has_follower;
	pthread_mutex_t stop_mu; /* guards stop and nudged; stop_cond wakes the follower */
	pthread_cond_t stop_cond;
	int stop;
	int nudged;              /* a pass is due now (rag_engine_nudge) */
	atomic_int ready;
	struct generator *gen;   /* answers (rag_query.c); NULL: extractive; set before serving */
	char *prompt_template;   /* owned; "" = the default */
	double min_score;
	int history_messages;
	int gen_timeout_ms;
	_Atomic int64_t followed_ms; /* wall clock (unix ms) of the last complete follower pass */

	/* Embedding models by name (rag_models.c); models_mu guards the loads. */
	pthread_mutex_t models_mu;
	struct rag_model *models;
	size_t n_models;

	/* Jobs (rag_jobs.c). jobs_cond and jobs_pending are guarded by stop_mu. */
	pthread_cond_t jobs_cond;
	int jobs_pending;
	char job_owner[128]; /* host/pid/random: this engine's leases */
	pthread_t *workers;
	int n_workers;
};

/*
 * Reads the "index" member of a collection's config_json into spec;
 * vindex_spec_default() when there is none (collections made before index
 * choices existed). RAG_EINVAL if it is malformed.
 */
int rag_coll_index_spec(const char *config_json, struct vindex_spec *spec, struct rag_err *err);
struct rag_model {
	char *name;
	char *path;            /* NULL for the engine's own */
	struct embedder *emb;  /* NULL until loaded */
	int owned;
};

/* Parses opts.embedders into the registry, the engine's own model first (rag_models.c). */
int rag_models_init(struct rag_engine *eng, struct rag_err *err);
void rag_models_release(struct rag_engine *eng);

/*
 * The embedder called name, loading it on first use; borrowed for the
 * engine's life. NULL with err: RAG_EINVAL naming field for an unknown
 * name, the loader's error otherwise.
 */
struct embedder *rag_embedder(struct rag_engine *eng, const char *name, const char *field,
			      struct rag_err *err);

/* The collection's embedder, or NULL with RAG_EBUSY "model 'x' is not configured here". */
struct embedder *rag_coll_embedder(struct rag_coll *coll, struct rag_err *err);

/* Starts opts.job_workers job threads; rag_jobs_stop joins them (rag_jobs.c). */
int rag_jobs_start(struct rag_engine *eng, struct rag_err *err);
/* Wakes the workers: a job was queued. */
void rag_jobs_wake(struct rag_engine *eng);
/* n_bytes random bytes (at most 16) as 2 * n_bytes hex digits and a NUL into out. */
void rag_random_hex(char *out, size_t n_bytes);
void rag_jobs_stop(struct rag_engine *eng);

/* Ingest counters (rag_metrics.c). */
struct rag_ingest_metrics {
	struct metric_child *documents, *chunks, *bytes, *failures;
	struct metric_child *embedded, *unchanged;
};
extern struct rag_ingest_metrics rag_metrics;

/* Registers the families once and the engine's collector. */
int rag_metrics_attach(struct rag_engine *eng);
void rag_metrics_detach(struct rag_engine *eng);
int64_t rag_wall_ms(void);

/* Looks up a collection, loading it from the store if this engine has not
 * seen it yet; returns a reference (coll_unref) or NULL with err set. */
struct rag_coll *rag_coll_acquire(struct rag_engine *eng, const char *tenant, const char *name,
				  struct rag_err *err);
void rag_coll_unref(struct rag_coll *coll);
/* Drops tenant's collection `name` from the registry; the next acquire reloads it. */
void rag_coll_forget(struct rag_engine *eng, const char *tenant, const char *name);

/*
 * After a write to coll failed with RAG_ENOTFOUND: 1 when the store's
 * collection of that name is another one now (a model or chunker change
 * swapped it in, or it was deleted), in which case coll is dropped from the
 * registry and the caller looks the name up again; 0 when coll is still
 * the current one (the not-found was about something else).
 */
int rag_coll_replaced(struct rag_engine *eng, struct rag_coll *coll);

/*
 * The model or chunker change job's steps (rag_reembed.c), called by the
 * job worker for the kinds for which rag_job_switches() is 1 ("reembed",
 * "rechunk"). abandon deletes the staging collection of a cancelled job.
 */
struct store_job;
int rag_job_switches(const char *kind);
void rag_reembed_abandon(struct rag_engine *eng, const struct store_job *job);
int rag_reembed_prepare(struct rag_engine *eng, const struct store_job *job, struct rag_err *err);
int rag_reembed_item(struct rag_engine *eng, const struct store_job *job, const char *doc_id,
		     int64_t *n_chunks, struct rag_err *err);
int rag_reembed_finish(struct rag_engine *eng, const struct store_job *job, struct rag_err *err);

/*
 * Fills in where a remote index of coll lives (rag_index.c): the engine's
 * Chroma client and the collection's name there, "ragd-<name>-<id>".
 */
void rag_coll_index_place(struct rag_engine *eng, struct rag_coll *coll);
/* Deletes what the collection's index keeps outside this process; logs failures. */
void rag_index_drop(struct rag_coll *coll);
/* Builds a collection's index from snapshot + log, or the store (rag_index.c). */
int rag_index_load(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err);
/* Tells other followers that this engine wrote to the change log (opts.on_change). */
void rag_engine_changed(struct rag_engine *eng);
/* Replays the change log into the index up to the store's current seq. */
int rag_index_catch_up(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err);
/* Saves the snapshot if the index moved since the last one. */
int rag_index_snapshot(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err);
/* Path of the collection's snapshot file; caller frees. */
char *rag_index_path(struct rag_engine *eng, int64_t collection_id);

double rag_now_ms(void);

/*
 * A request's deadline (rag_now_ms() + timeout, or 0 for none) checked
 * between stages: RAG_ETIMEOUT naming `key` (the config key that sets it)
 * once it has passed, saying which stage ran over; else 0.
 */
int rag_deadline_check(double deadline, const char *what, const char *key, int timeout_ms,
		       struct rag_err *err);

/*
 * Adds what names a collection's state to a cache key (rag_cache.c): this
 * build (version and commit: ranking code changes between builds), the
 * tenant, the collection's id and creation time (so separate stores that
 * share one Redis do not meet) and seq, the change-log position the caller
 * read from coll->applied_seq before computing. For the search and answer
 * caches; see cache/cache.h for the rest of the key.
 */
void rag_cache_key_collection(struct cache_key_builder *b, const struct rag_coll *coll,
			      int64_t seq);

/*
 * Search results as cache values: a compact binary form (counts and
 * lengths, then the bytes). encode: 0 or RAG_ENOMEM, *out malloc'd.
 * decode: 0, or RAG_EINVAL for a value that is not one (treated as a miss).
 */
int rag_cache_encode_hits(const struct rag_search_result *res, void **out, size_t *len);
int rag_cache_decode_hits(const void *val, size_t len, struct rag_search_result *res);

/*
 * Answers as cache values, the same way: kind, finish reason, text, query,
 * counts, usage tokens and citations. Only finished answers ("stop" or
 * "length") can be encoded (else RAG_EINVAL). decode fills a released
 * answer; timings and cache status are left to the caller.
 */
struct rag_answer;
int rag_cache_encode_answer(const struct rag_answer *a, void **out, size_t *len);
int rag_cache_decode_answer(const void *val, size_t len, struct rag_answer *a);
struct extract_document;

/* One chunk-to-be (rag_chunk.c): a byte range of the extracted text. */
struct rag_piece {
	size_t start, end;
	unsigned page;
	const char *section; /* borrowed from the extracted document */
	char hash[33];       /* content address: HASH_HEX_LEN hex digits */
};

/*
 * Cuts xd's text with the collection's chunker into *out (caller frees),
 * *n_out pieces in order (0 for a text with no words). RAG_ENOMEM or the
 * chunker's error.
 */
int rag_chunk_document(struct rag_engine *eng, struct rag_coll *coll,
		       const struct extract_document *xd, struct rag_piece **out, size_t *n_out,
		       struct rag_err *err);

/* The collection's chunker settings as one string, part of every content address. */
void rag_chunker_settings(const struct rag_coll *coll, char *out, size_t size);

#define RAG_CHUNK_MIN 8 /* smaller chunks carry too little text to embed usefully */

#endif
