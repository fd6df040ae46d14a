/*
 * Search over the flat index: an exact top-k scan.
 *
 * Rows are scored in blocks of FLAT_BLOCK with the dispatched SIMD kernel
 * (vindex_kernels.c), and each score is offered to a bounded min-heap of
 * the k best so far whose root is the worst of them, so a row that cannot
 * beat the root costs one comparison and the scan stays bound by memory
 * bandwidth. The filter is asked only about rows that would enter the heap:
 * filtered search still returns k results whenever k rows match, and a
 * filter costs almost nothing. Ordering is (score desc, id asc) everywhere,
 * so results are deterministic, ties included; a NaN score (possible only
 * from overflowing non-normalised input) ranks as -inf.
 *
 * From opts.parallel_min rows on, the slots are cut into contiguous ranges
 * of whole blocks, scanned by short-lived threads with a heap each, and the
 * heaps are merged by one sort of at most threads * k hits.
 *
 * Rejected: sorting all n scores (O(n log n) and n floats of scratch per
 * query); a persistent thread pool (the index must not own threads, and
 * creating one or three threads costs ~50 us against a multi-ms scan);
 * pre-filtering into an id list (would cost a filter call per row).
 */
#include "index/vindex_flat.h"
#include "index/vindex_kernels.h"
#include "core/rag_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hit {
	float score;
	int64_t id;
};

/* A bounded min-heap: h[0] is the worst of the k best seen so far. */
struct topk {
	struct hit *h;
	size_t n;
	size_t k;
};

struct scan {
	const struct flat *f;
	const float *query;
	const int8_t *qq; /* the query quantised (flat_int8), else NULL */
	float qscale;
	const struct vindex_filter *filter;
	size_t lo, hi;
	struct topk top;
};

/* a ranks below b: lower score, or equal score and larger id. */
static inline int worse(float as, int64_t aid, float bs, int64_t bid)
{
	return as < bs || (as == bs && aid > bid);
}

static void topk_push(struct topk *t, float score, int64_t id)
{
	struct hit x = { score, id };
	size_t i;

	if (t->n < t->k) {
		for (i = t->n++; i > 0; i = (i - 1) / 2) {
			struct hit *p = &t->h[(i - 1) / 2];
			if (!worse(x.score, x.id, p->score, p->id))
				break;
			t->h[i] = *p;
		}
	} else {
		for (i = 0;;) {
			size_t c = 2 * i + 1;
			if (c >= t->n)
				break;
			if (c + 1 < t->n && worse(t->h[c + 1].score, t->h[c + 1].id, t->h[c].score,
						  t->h[c].id))
				c++;
			if (!worse(t->h[c].score, t->h[c].id, x.score, x.id))
				break;
			t->h[i] = t->h[c];
			i = c;
		}
	}
	t->h[i] = x;
}

static void scan_range(struct scan *s)
{
	const struct flat *f = s->f;
	const struct vindex_filter *filter = s->filter;
	struct topk *t = &s->top;
	size_t dim = f->base.dim;
	float scores[FLAT_BLOCK];

	for (size_t r = s->lo; r < s->hi; r += FLAT_BLOCK) {
		size_t m = s->hi - r < FLAT_BLOCK ? s->hi - r : FLAT_BLOCK;
		if (s->qq)
			vindex_flat_dot_many_i8(s->qq, s->qscale, f->q + r * dim, f->qscale + r, m,
						dim, scores);
		else
			f->kernel->dot_many(s->query, f->vecs + r * dim, m, dim, scores);
		for (size_t i = 0; i < m; i++) {
			float sc = isnan(scores[i]) ? -INFINITY : scores[i];
			int64_t id = f->ids[r + i];
			if (t->n == t->k && !worse(t->h[0].score, t->h[0].id, sc, id))
				continue;
			if (filter && !filter->keep(filter->ctx, id))
				continue;
			topk_push(t, sc, id);
		}
	}
}

static void *scan_thread(void *arg)
{
	scan_range(arg);
	return NULL;
}

static int cmp_best_first(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;

	if (worse(b->score, b->id, a->score, a->id))
		return -1;
	return worse(a->score, a->id, b->score, b->id) ? 1 : 0;
}

int vindex_flat_search(struct vindex *vi, const float *query, size_t k,
		       const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		       size_t *n_out, struct rag_err *err)
{
	struct flat *f = (struct flat *)vi;
	struct scan scans[FLAT_THREADS_MAX];
	pthread_t tids[FLAT_THREADS_MAX];
	int started[FLAT_THREADS_MAX] = { 0 };
	struct hit *hits = NULL;
	int8_t *qq = NULL;
	float qscale = 0.0f;
	size_t n_threads = 1, n_hits = 0, k_out;

	if (!n_out)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL n_out");
	*n_out = 0;
	if (!query || (k > 0 && !out_ids))
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL query or output");
	for (size_t i = 0; i < vi->dim; i++)
		if (!isfinite(query[i]))
			return rag_err_set(err, RAG_EINVAL, "vector",
					   "query vector has a non-finite component %zu", i);
	if (filter && !filter->keep)
		filter = NULL;

	pthread_rwlock_rdlock(&f->lock);
	if (k > f->n)
		k = f->n;
	if (k == 0)
		goto out;
	k_out = k;
	if (f->q) {
		/* flat_int8: scan for the best rescore candidates, re-score them below. */
		qq = malloc(vi->dim);
		if (!qq) {
			pthread_rwlock_unlock(&f->lock);
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for a query");
		}
		vindex_flat_quantize(query, vi->dim, qq, &qscale);
		if (k < f->rescore)
			k = f->rescore < f->n ? f->rescore : f->n;
	}
	if (f->n >= f->opts.parallel_min && f->opts.scan_threads > 1) {
		n_threads = f->opts.scan_threads;
		if (n_threads > FLAT_THREADS_MAX)
			n_threads = FLAT_THREADS_MAX;
	}
	hits = malloc(n_threads * k * sizeof(*hits));
	if (!hits) {
		pthread_rwlock_unlock(&f->lock);
		free(qq);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for top-%zu results", k);
	}
	/* Ranges are whole blocks so each thread calls the kernel on full blocks. */
	size_t blocks = (f->n + FLAT_BLOCK - 1) / FLAT_BLOCK;
	for (size_t t = 0; t < n_threads; t++) {
		size_t lo = blocks * t / n_threads * FLAT_BLOCK;
		size_t hi = blocks * (t + 1) / n_threads * FLAT_BLOCK;
		scans[t] = (struct scan){ .f = f, .query = query, .qq = qq, .qscale = qscale,
					  .filter = filter,
					  .lo = lo < f->n ? lo : f->n, .hi = hi < f->n ? hi : f->n,
					  .top = { .h = hits + t * k, .n = 0, .k = k } };
	}
	/*
	 * Workers run under this thread's read lock and never take it: with a
	 * writer-preferring lock a second read lock behind a waiting writer
	 * would deadlock.
	 */
	for (size_t t = 1; t < n_threads; t++)
		started[t] = pthread_create(&tids[t], NULL, scan_thread, &scans[t]) == 0;
	scan_range(&scans[0]);
	for (size_t t = 1; t < n_threads; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
		else
			scan_range(&scans[t]); /* no thread: do its share here */
	}
	/* Compact the per-thread heaps to the front; then one sort orders all. */
	for (size_t t = 0; t < n_threads; t++) {
		memmove(hits + n_hits, scans[t].top.h, scans[t].top.n * sizeof(*hits));
		n_hits += scans[t].top.n;
	}
	if (qq) {
		for (size_t i = 0; i < n_hits; i++) {
			size_t slot = vindex_flat_slot(f, hits[i].id);
			float sc = f->kernel->dot(query, f->vecs + slot * vi->dim, vi->dim);
			hits[i].score = isnan(sc) ? -INFINITY : sc;
		}
	}
	qsort(hits, n_hits, sizeof(*hits), cmp_best_first);
	if (n_hits > k_out)
		n_hits = k_out;
	for (size_t i = 0; i < n_hits; i++) {
		out_ids[i] = hits[i].id;
		if (out_scores)
			out_scores[i] = hits[i].score;
	}
	*n_out = n_hits;
out:
	pthread_rwlock_unlock(&f->lock);
	free(hits);
	free(qq);
	return 0;
}
