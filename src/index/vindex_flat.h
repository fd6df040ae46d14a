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
};

/*
 * Builds a flat index that takes ownership of ids (n int64, from malloc) and
 * vecs (n * dim floats, from malloc), without copying them. Both arrays are
 * freed on failure too. Returns NULL with RAG_EINVAL when an id repeats (the
 * message quotes it), RAG_ETOOBIG or RAG_ENOMEM.
 */
struct vindex *vindex_flat_adopt(size_t dim, size_t n, int64_t *ids, float *vecs,
				 struct rag_err *err);

/* The search op of the flat index (vindex_search's contract). */
int vindex_flat_search(struct vindex *vi, const float *query, size_t k,
		       const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		       size_t *n_out, struct rag_err *err);

#endif
