/*
 * The RAG engine: collections, their in-memory indexes, and the pipeline
 * entry points the HTTP handlers and the CLI call.
 *
 * The store is the source of truth; every index is derived from it. At
 * start the engine loads each collection's index from its snapshot (or
 * rebuilds it from the store) and replays the change log from the
 * snapshot's sequence; a follower thread then polls the log so that writes
 * made by other processes or instances on the same store show up within
 * follow_interval_ms. Writes made through this engine are applied to its
 * indexes before the call returns (read-your-writes on one instance).
 *
 * Thread-safety: all functions may be called from many threads at once.
 */
#ifndef RAGD_RAG_RAG_ENGINE_H
#define RAGD_RAG_RAG_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct rag_err;
struct embedder;
struct rag_engine;

struct rag_engine_options {
	const char *data_dir;   /* snapshots go to data_dir/index/ */
	int load_indexes;       /* 0 for write-only users (the ingest CLI) */
	int snapshot;           /* save index snapshots when the engine is freed */
	int follow_interval_ms; /* change-log polling; 0 = no follower thread */
	size_t max_top_k;       /* the largest top_k a search may ask for */
	int chunk_size;         /* defaults for new collections, in model tokens */
	int chunk_overlap;
};

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

/* --- collections --- */

struct rag_collection_spec {
	const char *name;
	const char *embedding_model; /* NULL = the loaded embedder */
	int chunk_size;              /* 0 = default */
	int chunk_overlap;           /* < 0 = default */
	const char *stemming;        /* "porter" (NULL: the default) or "none" (lexical search) */
};

/* A collection as clients see it; strings owned, rag_collection_info_release(). */
struct rag_collection_info {
	struct store_collection c;
	int porter;           /* lexical search stems words */
	size_t n_vectors;     /* in this instance's index */
	size_t index_bytes;   /* memory the index takes */
	int64_t applied_seq;  /* change-log position of the index */
};

/*
 * Creates a collection. RAG_EINVAL naming the field for a bad name
 * (1-64 of [A-Za-z0-9_.-], starting alphanumeric), an unknown model or
 * chunk sizes outside the model's window; RAG_ECONFLICT if it exists.
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

/* --- documents --- */

struct rag_doc_in {
	const char *id;            /* NULL = generate one */
	const char *text;          /* text_len bytes, UTF-8 */
	size_t text_len;
	const char *metadata_json; /* a JSON object, validated by the caller; NULL = {} */
};

#define RAG_DOC_ID_MAX 128 /* ids appear in URLs and logs: keep them short */

struct rag_ingest_result {
	char id[RAG_DOC_ID_MAX + 1];
	size_t n_chunks;
	int64_t seq;
	int replaced;
};

/*
 * Chunks, embeds and stores one document (replacing one with the same id),
 * then brings this engine's index up to date. Nothing is stored on failure.
 * RAG_EINVAL names the field ("id", "text"); RAG_ENOTFOUND for no collection.
 */
int rag_ingest(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_doc_in *doc, struct rag_ingest_result *res, struct rag_err *err);

/* store_doc_get through the collection's name; caller frees with store_doc_release. */
int rag_doc_get(struct rag_engine *eng, const char *tenant, const char *collection,
		const char *doc_id, struct store_doc *out, struct rag_err *err);
int rag_doc_delete(struct rag_engine *eng, const char *tenant, const char *collection,
		   const char *doc_id, struct rag_err *err);

/* --- search --- */

struct rag_hit {
	float score;
	struct store_hit chunk; /* owned strings */
};

struct rag_search_result {
	struct rag_hit *hits; /* best first */
	size_t n_hits;
	double embed_ms, search_ms, total_ms;
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
};

/* Parses "dense", "lexical" or "hybrid"; RAG_EINVAL naming "mode" otherwise. */
int rag_mode_parse(const char *s, enum rag_mode *out, struct rag_err *err);

/*
 * Returns the top_k chunks for the query, best first. Hybrid fuses the
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

/* Checks client text: present, valid UTF-8, not only whitespace; RAG_EINVAL naming field. */
int rag_check_text(const char *s, size_t len, const char *field, struct rag_err *err);

/* Checks a client-chosen name: 0 or RAG_EINVAL naming `field`. */
int rag_check_name(const char *name, const char *field, const char *what, struct rag_err *err);

#endif
