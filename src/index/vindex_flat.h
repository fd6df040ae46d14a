/*
 * Flat index internals shared by its files (internal to src/index; callers
 * use vindex.h): vindex_flat.c owns storage, insert, remove and lifecycle;
 * vindex_flat_scan.c the search; vindex_snapshot.c loads into
 * vindex_flat_adopt.
 */
#ifndef RAGD_INDEX_VINDEX_FLAT_H
#define RAGD_INDEX_VINDEX_FLAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "index/vindex.h"

#define FLAT_RESCORE_DEFAULT 100 /* int8 candidates re-scored: recall@10 1.000 measured */

struct rag_err;
struct vindex_kernel;

#define FLAT_BLOCK 256		    /* rows per kernel call: 1 KiB of scores stays in L1 */
#define FLAT_THREADS_MAX 16	    /* more threads than memory channels only add overhead */

/*
 * The flat index. Slots 0..n-1 are live: ids[s] and vecs[s * dim ...];
 * table maps an id to its slot (open addressing over uint32 slot numbers,
 * keyed through ids[]).
 */
struct flat {
	struct vindex base;
	struct vindex_flat_options opts;
	const struct vindex_kernel *kernel;
	/*
	 * Locking: lock guards n, cap, ids, vecs, table and table_cap. Search,
	 * save, count, memory and check hold it shared; add and remove hold it
	 * exclusive. The lock prefers writers so a steady stream of searches
	 * cannot starve change-log replay. base, opts and kernel never change
	 * after creation and are read without it.
	 */
	pthread_rwlock_t lock;
	size_t n;
	size_t cap;
	int64_t *ids;
	float *vecs;
	uint32_t *table;
	size_t table_cap;
	/*
	 * The flat_int8 variant only (NULL otherwise), guarded by lock like
	 * vecs: q[s * dim ...] is slot s quantised to int8 with scale
	 * qscale[s] (vector ~= q * qscale), and searches re-score the best
	 * rescore candidates of the int8 scan with the f32 vectors.
	 */
	int8_t *q;
	float *qscale;
	size_t rescore;
};

/*
 * Builds a flat index that takes ownership of ids (n int64, from malloc) and
 * vecs (n * dim floats, from malloc), without copying them. Both arrays are
 * freed on failure too. Returns NULL with RAG_EINVAL when an id repeats (the
 * message quotes it), RAG_ETOOBIG or RAG_ENOMEM.
 */
struct vindex *vindex_flat_adopt(size_t dim, size_t n, int64_t *ids, float *vecs,
				 struct rag_err *err);

/*
 * The flat_int8 variant: a flat index that also keeps int8 copies of the
 * vectors, scans those and re-scores its best `rescore` candidates in f32.
 * vindex_flat_adopt_int8 is vindex_flat_adopt for it.
 */
struct vindex *vindex_flat_int8_new(size_t dim, size_t rescore);
struct vindex *vindex_flat_int8_adopt(size_t dim, size_t rescore, size_t n, int64_t *ids,
				      float *vecs, struct rag_err *err);

/* The slot holding id, or SIZE_MAX. Caller holds f->lock (either mode). */
size_t vindex_flat_slot(const struct flat *f, int64_t id);

/*
 * Copies id's vector (dim floats) to out. Returns 0, or RAG_ENOTFOUND.
 * Takes the index's read lock.
 */
int vindex_flat_get(struct vindex *vi, int64_t id, float *out);

/* Symmetric per-vector int8 quantisation: v ~= q * (*scale). */
void vindex_flat_quantize(const float *v, size_t dim, int8_t *q, float *scale);

/* out[i] = qscale * scales[i] * (q . rows[i]) for n int8 rows of dim. */
void vindex_flat_dot_many_i8(const int8_t *q, float qscale, const int8_t *rows,
			     const float *scales, size_t n, size_t dim, float *out);

/* The search op of the flat index (vindex_search's contract). */
int vindex_flat_search(struct vindex *vi, const float *query, size_t k,
		       const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		       size_t *n_out, struct rag_err *err);

#endif
