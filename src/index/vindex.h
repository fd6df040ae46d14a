/*
 * vindex: the interface every dense vector index implements.
 *
 * A vector index maps int64 ids to float32 vectors of one fixed dimension and
 * answers top-k maximum-inner-product queries. Vectors are stored as given:
 * callers L2-normalise them (vindex_normalize) so inner product is cosine
 * similarity. Indexes are derived data: the store is the source of truth, and
 * a snapshot on disk only saves a rebuild at start-up.
 *
 * Backends (the exact flat scan here; HNSW, FAISS and others later) fill in a
 * struct vindex_ops and embed struct vindex as the first member of their own
 * struct. Callers only use the vindex_* functions below, which dispatch
 * through ops.
 *
 * Thread-safety: every vindex_* function on one index may be called from any
 * number of threads at once. Searches run concurrently with each other; add
 * and remove are serialised against everything else. vindex_free must not
 * race with any other call on the same index (callers refcount the index).
 *
 * Errors: fallible functions return 0 or a negative RAG_E* code and fill the
 * optional struct rag_err.
 */
#ifndef RAGD_INDEX_VINDEX_H
#define RAGD_INDEX_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct chroma_client;
struct rag_err;
struct vindex;

/*
 * An optional predicate on ids for filtered search: a vector is a candidate
 * only when keep(ctx, id) returns non-zero. keep may be called from several
 * threads at once (a large flat scan is split across threads), must not call
 * back into the same index, and is called only for vectors good enough to
 * enter the current top-k, so a cheap filter costs almost nothing.
 */
struct vindex_filter {
	int (*keep)(void *ctx, int64_t id);
	void *ctx;
	/*
	 * Optional hint: when ids is non-NULL, the n_ids ids (ascending) are
	 * exactly those keep accepts. A backend that cannot call keep where the
	 * vectors are (a remote index) may send a small set instead of
	 * over-fetching; others ignore it. Borrowed for the call.
	 */
	const int64_t *ids;
	size_t n_ids;
};

/*
 * The backend vtable. Each entry has the contract of the vindex_* function of
 * the same name; the wrappers have already checked the index is not NULL.
 * Backends do their own locking.
 */
struct vindex_ops {
	const char *name; /* "flat", "hnsw", ...: for logs and /health */
	int (*add)(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
		   struct rag_err *err);
	size_t (*remove)(struct vindex *vi, const int64_t *ids, size_t n);
	int (*search)(struct vindex *vi, const float *query, size_t k,
		      const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		      size_t *n_out, struct rag_err *err);
	size_t (*count)(struct vindex *vi);
	size_t (*memory)(struct vindex *vi);
	int (*save)(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err);
	int (*check)(struct vindex *vi, struct rag_err *err);
	void (*free)(struct vindex *vi);
	int (*drop)(struct vindex *vi, struct rag_err *err); /* optional: NULL = nothing kept */
};

/*
 * The common head of every index. Both fields are set at creation and never
 * change, so they are read without locks.
 */
struct vindex {
	const struct vindex_ops *ops;
	size_t dim;
};

/*
 * An exact index: a flat array scanned with SIMD inner-product kernels (AVX2
 * or AVX-512 chosen at run time), split across threads when large. dim must
 * be 1..VINDEX_DIM_MAX. Returns NULL on bad dim or out of memory. Caller frees
 * with vindex_free.
 */
#define VINDEX_DIM_MAX 65536 /* far above any embedding model; bounds dim * 4 */
struct vindex *vindex_flat_new(size_t dim);

/* Options for the flat index; start from vindex_flat_default_options(). */
struct vindex_flat_options {
	size_t scan_threads; /* threads per search, >= 1; 1 scans on the caller's thread */
	size_t parallel_min; /* use scan_threads only from this many vectors on */
};
struct vindex_flat_options vindex_flat_default_options(void);

/* vindex_flat_new with options (NULL = defaults). */
struct vindex *vindex_flat_new_opts(size_t dim, const struct vindex_flat_options *opts);

/*
 * Adds n vectors (row-major, n * dim floats) under ids. An id already present
 * has its vector replaced; an id repeated within the batch ends with its last
 * vector. The data is copied. Atomic: on any error the index is unchanged.
 * Returns 0, RAG_EINVAL (NULL arguments with n > 0, a NaN or infinite
 * component), RAG_ETOOBIG (the index would exceed its capacity) or RAG_ENOMEM.
 */
int vindex_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
	       struct rag_err *err);

/* Removes the given ids; missing ids are ignored. Returns how many were removed. */
size_t vindex_remove(struct vindex *vi, const int64_t *ids, size_t n);

/*
 * The k vectors with the highest inner product with query (dim floats), best
 * first; equal scores are ordered by smaller id so results are deterministic.
 * With a filter, only vectors it keeps are returned, and k of them whenever k
 * such vectors exist. out_ids (and out_scores unless it is NULL) must have
 * room for k entries; *n_out receives the number written, min(k, matches).
 * k == 0 or an empty index give *n_out == 0 and return 0. Returns 0,
 * RAG_EINVAL (NULL arguments, a NaN or infinite query component) or
 * RAG_ENOMEM; a remote index also RAG_EBUSY (its server is down or did not
 * answer in time) or RAG_EIO (it answered something unexpected).
 */
int vindex_search(struct vindex *vi, const float *query, size_t k,
		  const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		  size_t *n_out, struct rag_err *err);

/* Number of vectors; 0 for NULL. */
size_t vindex_count(struct vindex *vi);

/* The dimension fixed at creation; 0 for NULL. */
size_t vindex_dim(struct vindex *vi);

/* Bytes of heap held by the index (capacity, not just live vectors). */
size_t vindex_memory(struct vindex *vi);

/* Backend name, e.g. "flat"; "" for NULL. */
const char *vindex_kind(struct vindex *vi);

/*
 * Writes a snapshot to path, recording seq: the change-log sequence the
 * index reflects. Atomic: writes path.tmp, fsyncs it, renames it over path
 * and fsyncs the directory, so path holds the old or the new snapshot, never
 * a mix. Concurrent saves to one path must be serialised by the caller
 * (they share path.tmp). Searches continue during a save; add and remove
 * wait for it. Returns 0, RAG_EINVAL or RAG_EIO (the message quotes the path
 * and strerror).
 */
int vindex_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err);

/*
 * Loads a snapshot written by vindex_save. expect_dim, when non-zero, must
 * match the file. On success returns a new index (caller frees with
 * vindex_free) and stores the snapshot's seq in *seq_out (may be NULL). Any
 * corruption (bad magic, unknown version, dimension mismatch, length that
 * disagrees with the header, checksum mismatch, duplicate ids) or I/O error
 * returns NULL with err saying what was wrong; the caller then rebuilds from
 * the store.
 */
struct vindex *vindex_load(const char *path, size_t expect_dim, uint64_t *seq_out,
			   struct rag_err *err);

/*
 * Verifies the index's internal invariants (for tests and debug endpoints).
 * Returns 0 or RAG_EINTERNAL with a message naming the broken invariant.
 */
int vindex_check(struct vindex *vi, struct rag_err *err);

/* Frees the index and everything it holds. NULL-safe. */
void vindex_free(struct vindex *vi);

/*
 * Deletes what the index keeps outside this process (a remote index's
 * collection on its server) for good, when the collection it serves is
 * deleted; the object itself stays valid until vindex_free, but searches
 * may fail. A no-op returning 0 for in-process indexes and for NULL.
 * Returns 0 or the backend's error (RAG_EBUSY: the server is down).
 */
int vindex_drop(struct vindex *vi, struct rag_err *err);

/*
 * Inner product of two dim-float vectors with the fastest kernel this CPU
 * supports (the same one searches use, so scores match exactly). Thread-safe.
 */
float vindex_dot(const float *a, const float *b, size_t dim);

/*
 * Scales v in place to unit L2 norm. A zero vector is left as it is.
 * Thread-safe on distinct vectors.
 */
void vindex_normalize(float *v, size_t dim);

/* --- choosing a backend per collection (vindex_factory.c) --- */

#define VINDEX_TYPE_MAX 16     /* longest type name, NUL included */
#define VINDEX_FACTORY_MAX 128 /* longest FAISS factory string, NUL included */
#define VINDEX_REMOTE_NAME_MAX 128 /* a remote collection's name, NUL included */
#define VINDEX_SHARDS_MAX 16   /* faiss shards: one search thread each, per collection */

/*
 * Which index a collection uses and its parameters. type is one of
 * "flat" (exact f32 scan), "flat_int8" (int8 scan, top candidates re-scored
 * in f32), "hnsw" (hnswlib graph: m, ef_construction, ef_search), "faiss"
 * (a FAISS index_factory string, exact flat until the collection is large
 * enough to train it) or "chroma" (a collection on a Chroma server, whose
 * HNSW takes m, ef_construction and ef_search). Fields a type does not use are ignored but still
 * range-checked. Plain data: copy freely.
 */
struct vindex_spec {
	char type[VINDEX_TYPE_MAX];
	size_t m;		/* hnsw: links per node, 2..128 */
	size_t ef_construction; /* hnsw: candidate list while building, 8..4096 */
	size_t ef_search;	/* hnsw: candidate list while searching, 1..4096 */
	size_t rescore;		/* flat_int8, faiss: candidates re-scored in f32, 1..10000 */
	size_t nprobe;		/* faiss IVF: lists visited per query, 1..65536 */
	char factory[VINDEX_FACTORY_MAX]; /* faiss: e.g. "IVF1024,PQ48" */
	size_t shards;		/* faiss: sub-indexes searched in parallel, 1..VINDEX_SHARDS_MAX */
	/*
	 * chroma: where the vectors live. Set by the engine at run time, never
	 * part of the JSON form: the server (borrowed; must outlive the index)
	 * and the collection's name on it (see vindex_chroma.c).
	 */
	struct chroma_client *chroma;
	char chroma_collection[VINDEX_REMOTE_NAME_MAX];
};

/*
 * Defaults: type "flat", m 16, ef_construction 200, ef_search 64 (also a
 * faiss HNSW's efSearch), rescore 100, nprobe 16, factory "IVF1024,PQ48",
 * shards 1.
 */
struct vindex_spec vindex_spec_default(void);

/*
 * Checks a spec: a known type and every parameter in range (for faiss, that
 * FAISS accepts the factory string for dim). Returns 0 or RAG_EINVAL whose
 * field is "index.type", "index.m", "index.ef_construction",
 * "index.ef_search", "index.rescore", "index.nprobe", "index.shards" or
 * "index.factory".
 */
int vindex_spec_check(const struct vindex_spec *spec, size_t dim, struct rag_err *err);

/*
 * The spec as a JSON object, e.g. {"type":"hnsw","m":16,"ef_construction":200,
 * "ef_search":64}, holding only the fields its type uses. Writes at most len
 * bytes (NUL included) to buf; returns the length it needed, like snprintf.
 */
size_t vindex_spec_json(const struct vindex_spec *spec, char *buf, size_t len);

/*
 * A new empty index of spec's type for dim-float vectors. Returns NULL with
 * err set (RAG_EINVAL for a bad spec or dim, RAG_ENOMEM). Caller frees with
 * vindex_free.
 */
struct vindex *vindex_create(const struct vindex_spec *spec, size_t dim, struct rag_err *err);

/*
 * vindex_load, then checks the snapshot holds an index of spec's type (a
 * hnsw snapshot also keeps its m and ef_construction; ef_search is taken
 * from spec). A snapshot of another type is rejected with RAG_EINVAL like a
 * corrupt one, so the caller rebuilds.
 */
struct vindex *vindex_open(const struct vindex_spec *spec, const char *path, size_t dim,
			   uint64_t *seq_out, struct rag_err *err);

#ifdef __cplusplus
}
#endif

#endif
