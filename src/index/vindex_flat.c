/*
 * The exact ("flat") vector index: every query scans every vector.
 *
 * Storage is three arrays: ids[slot], vecs[slot * dim] (row-major float32)
 * and an id -> slot hash table. Slots are dense, 0..n-1: removal moves the
 * last vector into the freed slot (swap-with-last) so the scan never skips
 * holes and memory stays proportional to the live count. The hash table is
 * open addressing with linear probing over uint32 slot numbers, keyed
 * through ids[slot] (4 bytes a bucket instead of 16), load factor <= 1/2,
 * deletion by backward shift so there are no tombstones.
 *
 * Search is in vindex_flat_scan.c: a blocked SIMD scan into a bounded
 * min-heap, split across threads for large indexes.
 *
 * Rejected: tombstones (the scan would test a flag per row and memory would
 * grow with churn); storing {id, slot} pairs in the table (4x the memory for
 * one less indirection on add and remove, which are not the hot path).
 *
 * Invariants (vindex_check): n <= cap; table_cap is a power of two >= 2n;
 * exactly n buckets are full; for each slot s, probing ids[s] finds bucket b
 * with table[b] == s.
 */
#include "index/vindex.h"
#include "index/vindex_flat.h"
#include "index/vindex_kernels.h"
#include "index/vindex_snapshot.h"
#include "core/rag_error.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLAT_SLOT_EMPTY UINT32_MAX  /* empty bucket; slots are uint32 to halve the table */
#define FLAT_MAX_COUNT (UINT32_MAX - 1) /* so every slot fits below FLAT_SLOT_EMPTY */
#define FLAT_TABLE_MIN 16	    /* smallest hash table, a power of two */
#define FLAT_PARALLEL_MIN 50000	    /* below this a scan takes < ~5 ms: not worth threads */

static const struct vindex_ops flat_ops, flat_int8_ops;

static uint64_t hash_id(int64_t id)
{
	uint64_t x = (uint64_t)id; /* splitmix64 finaliser: sequential ids spread well */

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The bucket holding id, or the empty bucket where it would be inserted. */
static size_t probe(const struct flat *f, int64_t id)
{
	size_t mask = f->table_cap - 1;
	size_t b = hash_id(id) & mask;

	while (f->table[b] != FLAT_SLOT_EMPTY && f->ids[f->table[b]] != id)
		b = (b + 1) & mask;
	return b;
}

/* Empties bucket b, shifting back later entries of its cluster that may move. */
static void table_delete(struct flat *f, size_t b)
{
	size_t mask = f->table_cap - 1;
	size_t i = b, j = b;

	for (;;) {
		j = (j + 1) & mask;
		if (f->table[j] == FLAT_SLOT_EMPTY)
			break;
		size_t home = hash_id(f->ids[f->table[j]]) & mask;
		/* The entry at j stays if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		f->table[i] = f->table[j];
		i = j;
	}
	f->table[i] = FLAT_SLOT_EMPTY;
}

/*
 * Replaces the table with one of at least 2 * want buckets holding slots
 * 0..n-1. If dup_at is not NULL, a repeated id stops the build: *dup_at gets
 * the later slot, and 1 is returned. Returns -1 on ENOMEM with the old table
 * intact, 0 on success.
 */
static int table_build(struct flat *f, size_t want, size_t *dup_at)
{
	size_t cap = FLAT_TABLE_MIN;

	while (cap < 2 * want)
		cap *= 2;
	uint32_t *t = malloc(cap * sizeof(*t));
	if (!t)
		return -1;
	memset(t, 0xff, cap * sizeof(*t));
	free(f->table);
	f->table = t;
	f->table_cap = cap;
	for (size_t s = 0; s < f->n; s++) {
		size_t b = probe(f, f->ids[s]);
		if (f->table[b] != FLAT_SLOT_EMPTY && dup_at) {
			*dup_at = s;
			return 1;
		}
		f->table[b] = (uint32_t)s;
	}
	return 0;
}

/* Makes room for `extra` more vectors without changing any live data. */
static int reserve(struct flat *f, size_t extra, struct rag_err *err)
{
	size_t dim = f->base.dim;

	if (extra > FLAT_MAX_COUNT - f->n)
		return rag_err_set(err, RAG_ETOOBIG, NULL,
				   "vector index full: %zu + %zu vectors exceed %u", f->n, extra,
				   (unsigned)FLAT_MAX_COUNT);
	size_t need = f->n + extra;
	if (need > f->cap) {
		/* Double for amortised growth, but a bulk add gets exactly what it needs. */
		size_t cap = f->cap > FLAT_MAX_COUNT / 2 ? FLAT_MAX_COUNT : f->cap * 2;
		if (cap < need)
			cap = need;
		if (cap < 64)
			cap = 64;
		if (cap > SIZE_MAX / sizeof(float) / dim)
			return rag_err_set(err, RAG_ETOOBIG, NULL, "vector index too large");
		int64_t *ids = realloc(f->ids, cap * sizeof(*ids));
		if (!ids)
			goto nomem;
		f->ids = ids; /* the larger array is harmless if vecs fails below */
		float *vecs = realloc(f->vecs, cap * dim * sizeof(*vecs));
		if (!vecs)
			goto nomem;
		f->vecs = vecs;
		if (f->q) {
			int8_t *q = realloc(f->q, cap * dim);
			if (!q)
				goto nomem;
			f->q = q;
			float *qs = realloc(f->qscale, cap * sizeof(*qs));
			if (!qs)
				goto nomem;
			f->qscale = qs;
		}
		f->cap = cap;
	}
	if (2 * need > f->table_cap && table_build(f, need, NULL) < 0)
		goto nomem;
	return 0;
nomem:
	return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory growing the vector index to %zu",
			   need);
}

static int flat_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
		    struct rag_err *err)
{
	struct flat *f = (struct flat *)vi;
	size_t dim = vi->dim;
	int rc;

	if (n == 0)
		return 0;
	if (!ids || !vecs)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_add: NULL ids or vectors");
	if (n > SIZE_MAX / sizeof(float) / dim)
		return rag_err_set(err, RAG_ETOOBIG, NULL, "vindex_add: %zu vectors is too many", n);
	for (size_t i = 0; i < n * dim; i++)
		if (!isfinite(vecs[i]))
			return rag_err_set(err, RAG_EINVAL, "vectors",
					   "vector for id %" PRId64 " has a non-finite component %zu",
					   ids[i / dim], i % dim);

	pthread_rwlock_wrlock(&f->lock);
	rc = reserve(f, n, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t b = probe(f, ids[i]);
		size_t slot = f->table[b];
		if (f->table[b] == FLAT_SLOT_EMPTY) {
			slot = f->n++;
			f->ids[slot] = ids[i];
			f->table[b] = (uint32_t)slot;
		}
		memcpy(f->vecs + slot * dim, vecs + i * dim, dim * sizeof(float));
		if (f->q)
			vindex_flat_quantize(vecs + i * dim, dim, f->q + slot * dim,
					     &f->qscale[slot]);
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

static size_t flat_remove(struct vindex *vi, const int64_t *ids, size_t n)
{
	struct flat *f = (struct flat *)vi;
	size_t dim = vi->dim, removed = 0;

	if (!ids)
		return 0;
	pthread_rwlock_wrlock(&f->lock);
	for (size_t i = 0; i < n && f->n > 0; i++) {
		size_t b = probe(f, ids[i]);
		if (f->table[b] == FLAT_SLOT_EMPTY)
			continue;
		size_t slot = f->table[b], last = f->n - 1;
		table_delete(f, b);
		if (slot != last) {
			f->table[probe(f, f->ids[last])] = (uint32_t)slot;
			f->ids[slot] = f->ids[last];
			memcpy(f->vecs + slot * dim, f->vecs + last * dim, dim * sizeof(float));
			if (f->q) {
				memcpy(f->q + slot * dim, f->q + last * dim, dim);
				f->qscale[slot] = f->qscale[last];
			}
		}
		f->n--;
		removed++;
	}
	pthread_rwlock_unlock(&f->lock);
	return removed;
}

static size_t flat_count(struct vindex *vi)
{
	struct flat *f = (struct flat *)vi;

	pthread_rwlock_rdlock(&f->lock);
	size_t n = f->n;
	pthread_rwlock_unlock(&f->lock);
	return n;
}

static size_t flat_memory(struct vindex *vi)
{
	struct flat *f = (struct flat *)vi;

	pthread_rwlock_rdlock(&f->lock);
	size_t bytes = sizeof(*f) + f->cap * (sizeof(int64_t) + vi->dim * sizeof(float)) +
		       f->table_cap * sizeof(uint32_t);
	if (f->q)
		bytes += f->cap * (vi->dim + sizeof(float));
	pthread_rwlock_unlock(&f->lock);
	return bytes;
}

static int flat_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err)
{
	struct flat *f = (struct flat *)vi;

	pthread_rwlock_rdlock(&f->lock);
	uint32_t kind = f->q ? VINDEX_SNAPSHOT_KIND_FLAT_INT8 : VINDEX_SNAPSHOT_KIND_FLAT;
	int rc = vindex_snapshot_write(path, kind, vi->dim, f->n, f->ids,
				       f->vecs, f->n * vi->dim * sizeof(float), seq, err);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

static int flat_check(struct vindex *vi, struct rag_err *err)
{
	struct flat *f = (struct flat *)vi;
	size_t full = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&f->lock);
	if (f->n > f->cap || f->table_cap < 2 * f->n || (f->table_cap & (f->table_cap - 1))) {
		rc = rag_err_set(err, RAG_EINTERNAL, NULL,
				 "flat index sizes broken: n %zu cap %zu table %zu", f->n, f->cap,
				 f->table_cap);
		goto out;
	}
	for (size_t b = 0; b < f->table_cap; b++)
		full += f->table[b] != FLAT_SLOT_EMPTY;
	if (full != f->n) {
		rc = rag_err_set(err, RAG_EINTERNAL, NULL, "flat index: %zu buckets for %zu vectors",
				 full, f->n);
		goto out;
	}
	for (size_t s = 0; s < f->n; s++) {
		size_t b = probe(f, f->ids[s]);
		if (f->table[b] != s) {
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "flat index: id %" PRId64 " in slot %zu maps to %u",
					 f->ids[s], s, (unsigned)f->table[b]);
			goto out;
		}
	}
out:
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

static void flat_free(struct vindex *vi)
{
	struct flat *f = (struct flat *)vi;

	pthread_rwlock_destroy(&f->lock);
	free(f->ids);
	free(f->vecs);
	free(f->table);
	free(f->q);
	free(f->qscale);
	free(f);
}

size_t vindex_flat_slot(const struct flat *f, int64_t id)
{
	size_t b = probe(f, id);

	return f->table[b] == FLAT_SLOT_EMPTY ? SIZE_MAX : f->table[b];
}

int vindex_flat_get(struct vindex *vi, int64_t id, float *out)
{
	struct flat *f = (struct flat *)vi;

	pthread_rwlock_rdlock(&f->lock);
	size_t slot = vindex_flat_slot(f, id);
	if (slot != SIZE_MAX)
		memcpy(out, f->vecs + slot * vi->dim, vi->dim * sizeof(float));
	pthread_rwlock_unlock(&f->lock);
	return slot == SIZE_MAX ? RAG_ENOTFOUND : 0;
}

static const struct vindex_ops flat_int8_ops = {
	.name = "flat_int8",
	.add = flat_add,
	.remove = flat_remove,
	.search = vindex_flat_search,
	.count = flat_count,
	.memory = flat_memory,
	.save = flat_save,
	.check = flat_check,
	.free = flat_free,
};

static const struct vindex_ops flat_ops = {
	.name = "flat",
	.add = flat_add,
	.remove = flat_remove,
	.search = vindex_flat_search,
	.count = flat_count,
	.memory = flat_memory,
	.save = flat_save,
	.check = flat_check,
	.free = flat_free,
};

struct vindex_flat_options vindex_flat_default_options(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return (struct vindex_flat_options){
		.scan_threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (size_t)cpus,
		.parallel_min = FLAT_PARALLEL_MIN,
	};
}

struct vindex *vindex_flat_new_opts(size_t dim, const struct vindex_flat_options *opts)
{
	pthread_rwlockattr_t attr;

	if (dim == 0 || dim > VINDEX_DIM_MAX)
		return NULL;
	struct flat *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base.ops = &flat_ops;
	f->base.dim = dim;
	f->opts = opts ? *opts : vindex_flat_default_options();
	if (f->opts.scan_threads == 0)
		f->opts.scan_threads = 1;
	f->kernel = vindex_kernel_best();
	f->table = malloc(FLAT_TABLE_MIN * sizeof(*f->table));
	if (!f->table) {
		free(f);
		return NULL;
	}
	memset(f->table, 0xff, FLAT_TABLE_MIN * sizeof(*f->table));
	f->table_cap = FLAT_TABLE_MIN;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int rc = pthread_rwlock_init(&f->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0) {
		free(f->table);
		free(f);
		return NULL;
	}
	return &f->base;
}

struct vindex *vindex_flat_new(size_t dim)
{
	return vindex_flat_new_opts(dim, NULL);
}

struct vindex *vindex_flat_adopt(size_t dim, size_t n, int64_t *ids, float *vecs,
				 struct rag_err *err)
{
	struct vindex *vi = vindex_flat_new(dim);
	size_t dup = 0;

	if (!vi || n > FLAT_MAX_COUNT) {
		free(ids);
		free(vecs);
		vindex_free(vi);
		rag_err_set(err, vi ? RAG_ETOOBIG : RAG_ENOMEM, NULL,
			    vi ? "snapshot holds too many vectors (%zu)" : "out of memory (%zu)", n);
		return NULL;
	}
	struct flat *f = (struct flat *)vi;
	f->ids = ids;
	f->vecs = vecs;
	f->n = f->cap = n;
	int rc = table_build(f, n, &dup);
	if (rc != 0) {
		if (rc < 0)
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory indexing %zu vectors", n);
		else
			rag_err_set(err, RAG_EINVAL, NULL, "duplicate id %" PRId64 " at row %zu",
				    ids[dup], dup);
		vindex_free(vi);
		return NULL;
	}
	return vi;
}

/* Turns a flat index into the int8 variant: quantises what it holds. */
static struct vindex *make_int8(struct vindex *vi, size_t rescore, struct rag_err *err)
{
	struct flat *f = (struct flat *)vi;
	size_t cap = f->cap ? f->cap : 1, dim = vi->dim;

	f->q = malloc(cap * dim);
	f->qscale = malloc(cap * sizeof(*f->qscale));
	if (!f->q || !f->qscale) {
		vindex_free(vi);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory quantising %zu vectors", f->n);
		return NULL;
	}
	for (size_t s = 0; s < f->n; s++)
		vindex_flat_quantize(f->vecs + s * dim, dim, f->q + s * dim, &f->qscale[s]);
	f->rescore = rescore ? rescore : FLAT_RESCORE_DEFAULT;
	f->base.ops = &flat_int8_ops;
	return vi;
}

struct vindex *vindex_flat_int8_new(size_t dim, size_t rescore)
{
	struct vindex *vi = vindex_flat_new(dim);

	return vi ? make_int8(vi, rescore, NULL) : NULL;
}

struct vindex *vindex_flat_int8_adopt(size_t dim, size_t rescore, size_t n, int64_t *ids,
				      float *vecs, struct rag_err *err)
{
	struct vindex *vi = vindex_flat_adopt(dim, n, ids, vecs, err);

	return vi ? make_int8(vi, rescore, err) : NULL;
}
