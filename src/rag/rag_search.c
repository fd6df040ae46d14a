/*
 * Search: dense (embed the query, scan the vector index), lexical (BM25 over
 * FTS5) or hybrid (both, fused by reciprocal rank), then hydrate the hits
 * from the store. A chunk an index returns but the store no longer has
 * (deleted by another instance since our last replay) is dropped.
 *
 * Hybrid asks each side for more candidates than top_k (RRF_DEPTH times,
 * at least RRF_MIN) so that a chunk ranked well by one side and modestly by
 * the other can still rise, then fuses them by reciprocal rank or by a
 * weighted sum of scores. For the weighted sum, cosines are taken as they
 * are and BM25 is divided by the query's full-match score
 * (lexical_search_raw): min-max scaling made a chunk matching one word of a
 * five-word query score like a perfect match, and hybrid then found only
 * 81 % of the paraphrase suite's documents first (dense alone: 100 %); on
 * these scales, 98 %, and SciFact nDCG@10 0.719 against 0.668 for the
 * better single mode (bench/RESULTS.md).
 *
 * With a cache, one round trip asks for the search's result and the
 * query's embedding together (search key: collection state and every query
 * field; embedding key: model and normalised text). A result hit answers
 * at once; on a miss a cached embedding saves the model call, and what is
 * computed is stored, the result only if the collection's applied seq did
 * not move meanwhile (else it would be filed under a state it does not
 * reflect).
 */
#include "rag/rag_int.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/rag_error.h"
#include "index/lexical.h"
#include "index/vindex.h"
#include "model/embedder.h"
#include "rag/rag_shard.h"
#include "store/store.h"

#include "core/banned.h"

#define RRF_DEPTH 2 /* candidates per side, as a multiple of top_k */
#define RRF_MIN 50  /* and at least this many, so small top_k still fuse well */

int rag_mode_parse(const char *s, enum rag_mode *out, struct rag_err *err)
{
	if (strcmp(s, "hybrid") == 0)
		*out = RAG_MODE_HYBRID;
	else if (strcmp(s, "dense") == 0)
		*out = RAG_MODE_DENSE;
	else if (strcmp(s, "lexical") == 0)
		*out = RAG_MODE_LEXICAL;
	else
		return rag_err_set(err, RAG_EINVAL, "mode",
				   "mode must be one of dense, lexical, hybrid");
	return 0;
}

void rag_search_result_release(struct rag_search_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_hits; i++)
		store_hits_release(&res->hits[i].chunk, 1);
	free(res->hits);
	memset(res, 0, sizeof(*res));
}

static int check_query(struct rag_engine *eng, const struct rag_query *q, struct rag_err *err)
{
	int rc = rag_check_text(q->text, q->len, "query", err);

	if (rc < 0)
		return rc;
	if (q->top_k < 1 || q->top_k > eng->opts.max_top_k)
		return rag_err_set(err, RAG_EINVAL, "top_k", "top_k must be between 1 and %zu",
				   eng->opts.max_top_k);
	if (q->mode != RAG_MODE_HYBRID && q->mode != RAG_MODE_DENSE && q->mode != RAG_MODE_LEXICAL)
		return rag_err_set(err, RAG_EINVAL, "mode", "unknown search mode");
	if (q->rrf_k < 0 || q->rrf_k > RAG_RRF_K_MAX)
		return rag_err_set(err, RAG_EINVAL, "rrf_k", "rrf_k must be between 1 and %d",
				   RAG_RRF_K_MAX);
	if (!(q->alpha >= 0 && q->alpha <= 1))
		return rag_err_set(err, RAG_EINVAL, "alpha", "alpha must be between 0 and 1");
	return 0;
}

struct ranked {
	int64_t id;
	float score;
};

static int by_id(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int by_score(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

struct cand {
	int64_t *ids;
	float *scores;
	size_t n;
	double query_max; /* lexical: the query's full-match BM25 score */
};

/*
 * What a side contributes for its i-th candidate: its rank's share (RRF) or
 * its score on an absolute scale times the side's weight. Cosines are used
 * as they are (negative ones count as 0); BM25 is divided by the query's
 * full-match score. Both scales mean the same for every query, unlike a
 * min-max over the candidates, which stretches whatever the best candidate
 * happens to be to 1.
 */
static float share(const struct rag_query *q, const struct cand *c, size_t i, double scale,
		   double weight)
{
	double s;

	if (q->fusion == RAG_FUSION_RRF)
		return 1.0f / (float)((q->rrf_k > 0 ? q->rrf_k : RAG_RRF_K) + (int)i + 1);
	s = scale > 0 ? c->scores[i] / scale : 0;
	return (float)(weight * (s < 0 ? 0 : s > 1 ? 1 : s));
}

/* Fuses the two rankings into out (at most k), best first. */
static void fuse(const struct rag_query *q, const struct cand *d, const struct cand *l, size_t k,
		 struct ranked *tmp, struct cand *out)
{
	size_t n = 0, m = 0;

	for (size_t i = 0; i < d->n; i++)
		tmp[n++] = (struct ranked){ d->ids[i], share(q, d, i, 1.0, q->alpha) };
	for (size_t i = 0; i < l->n; i++)
		tmp[n++] = (struct ranked){ l->ids[i], share(q, l, i, l->query_max, 1.0 - q->alpha) };
	qsort(tmp, n, sizeof(*tmp), by_id);
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && tmp[m - 1].id == tmp[i].id)
			tmp[m - 1].score += tmp[i].score;
		else
			tmp[m++] = tmp[i];
	}
	qsort(tmp, m, sizeof(*tmp), by_score);
	for (size_t i = 0; i < m && i < k; i++) {
		out->ids[i] = tmp[i].id;
		out->scores[i] = tmp[i].score;
	}
	out->n = m < k ? m : k;
}

/* The chunk ids a filter allows, ascending: the indexes' keep callback. */
struct allowed {
	int64_t *ids;
	size_t n;
};

static int keep_allowed(void *ctx, int64_t id)
{
	const struct allowed *a = ctx;
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->n && a->ids[lo] == id;
}

/* One search's dealings with the cache. */
struct qcache {
	struct cache *cache;     /* NULL: none configured, or bypassed */
	int64_t seq;             /* applied seq the keys were made at */
	struct cache_key keys[2]; /* [0] the result, [1] the embedding */
	int store_result;        /* the result lookup missed: store what we compute */
	int store_embedding;     /* the embedding lookup missed */
	char *text;              /* normalised query text, embedded on a miss */
	size_t text_len;
	float *vec;              /* the cached embedding, or NULL */
};

static int result_key(const struct rag_coll *coll, const struct rag_query *q, int64_t seq,
		      struct cache_key *out)
{
	struct cache_key_builder b;

	cache_key_begin(&b, CACHE_SEARCH);
	rag_cache_key_collection(&b, coll, seq);
	cache_key_add_i64(&b, "mode", q->mode);
	cache_key_add_i64(&b, "top_k", (int64_t)q->top_k);
	if (q->filter_key)
		cache_key_add_str(&b, "filter", q->filter_key, strlen(q->filter_key));
	if (q->mode == RAG_MODE_HYBRID) {
		cache_key_add_i64(&b, "fusion", q->fusion);
		cache_key_add_i64(&b, "rrf_k", q->rrf_k > 0 ? q->rrf_k : RAG_RRF_K);
		if (q->fusion == RAG_FUSION_WEIGHTED)
			cache_key_add_f64(&b, "alpha", q->alpha);
	}
	cache_key_add_str(&b, "query", q->text, q->len);
	return cache_key_end(&b, out);
}

/*
 * Queries are embedded by the collection's own model: the key names it.
 * And the tenant: an embedding holds nothing of another tenant's, but a
 * hit's speed would tell one tenant what another has just asked.
 */
static int embedding_key(const struct rag_coll *coll, const struct qcache *qc,
			 struct cache_key *out)
{
	struct cache_key_builder b;

	cache_key_begin(&b, CACHE_EMBEDDING);
	cache_key_add_str(&b, "tenant", coll->c.tenant, strlen(coll->c.tenant));
	cache_key_add_str(&b, "model", coll->c.embed_model, strlen(coll->c.embed_model));
	cache_key_add_i64(&b, "dim", (int64_t)coll->c.dim);
	cache_key_add_str(&b, "text", qc->text, qc->text_len);
	return cache_key_end(&b, out);
}

/*
 * Asks the cache for the result and the embedding in one round trip. 1 on
 * a result hit (out filled), else 0 with qc saying what to store later.
 */
static int lookup(struct rag_coll *coll, const struct rag_query *q,
		  struct qcache *qc, struct rag_search_result *out)
{
	void *vals[2] = { NULL, NULL };
	size_t lens[2] = { 0, 0 }, n = 1;
	int rcs[2] = { RAG_ENOTFOUND, RAG_ENOTFOUND }, hit = 0;

	qc->seq = atomic_load(&coll->applied_seq);
	if (result_key(coll, q, qc->seq, &qc->keys[0]) < 0)
		return 0;
	if (q->mode != RAG_MODE_LEXICAL) {
		qc->text = cache_normalize_text(q->text, q->len, &qc->text_len);
		if (qc->text && embedding_key(coll, qc, &qc->keys[1]) == 0)
			n = 2;
	}
	cache_get_many(qc->cache, qc->keys, n, vals, lens, rcs);
	if (rcs[0] == 0 && rag_cache_decode_hits(vals[0], lens[0], out) == 0) {
		hit = 1;
		out->cache = RAG_CACHE_HIT;
	} else {
		if (rcs[0] == 0)
			rcs[0] = RAG_ENOTFOUND; /* a value we cannot read: overwrite it */
		out->cache = rcs[0] == RAG_ENOTFOUND ? RAG_CACHE_MISS : RAG_CACHE_BYPASS;
		qc->store_result = rcs[0] == RAG_ENOTFOUND;
	}
	cache_count(CACHE_SEARCH, rcs[0]);
	if (!hit && n == 2) {
		if (rcs[1] == 0 && lens[1] != (size_t)coll->c.dim * sizeof(float))
			rcs[1] = RAG_ENOTFOUND;
		cache_count(CACHE_EMBEDDING, rcs[1]);
		qc->store_embedding = rcs[1] == RAG_ENOTFOUND;
		if (rcs[1] == 0) {
			qc->vec = vals[1];
			vals[1] = NULL;
		}
	}
	free(vals[0]);
	free(vals[1]);
	return hit;
}

/* Stores a computed result, unless the index moved while it was computed. */
static void store_result(struct rag_engine *eng, struct rag_coll *coll, const struct qcache *qc,
			 const struct rag_search_result *res)
{
	void *val;
	size_t len;

	if (!qc->store_result || atomic_load(&coll->applied_seq) != qc->seq)
		return;
	if (rag_cache_encode_hits(res, &val, &len) < 0)
		return;
	cache_put(qc->cache, &qc->keys[0], val, len, eng->opts.cache_ttl_s);
	free(val);
}

static int dense(struct rag_engine *eng, struct rag_coll *coll, const struct rag_query *q,
		 struct qcache *qc, size_t depth, const struct vindex_filter *vf, struct cand *c,
		 struct rag_search_result *out, struct rag_err *err)
{
	size_t dim = (size_t)coll->c.dim;
	float *qv = qc->vec;
	double t0 = rag_now_ms();
	int rc = 0;

	if (qv) {
		qc->vec = NULL;
	} else {
		struct embedder *emb = rag_coll_embedder(coll, err);
		const char *text = qc->text ? qc->text : q->text;
		size_t len = qc->text ? qc->text_len : q->len;

		if (!emb)
			return err && err->code ? err->code : RAG_EBUSY;
		qv = malloc(dim * sizeof(float));
		if (!qv)
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		rc = embedder_embed_query(emb, text, len, qv, err); /* with the model's query prefix */
		if (rc == 0 && qc->store_embedding)
			cache_put(qc->cache, &qc->keys[1], qv, dim * sizeof(float),
				  eng->opts.embedding_ttl_s);
		out->embed_ms = rag_now_ms() - t0;
	}
	if (rc == 0)
		rc = vindex_search(coll->vi, qv, depth, vf, c->ids, c->scores, &c->n, err);
	if (rc == 0 && rag_shards_remote(eng->opts.shards)) {
		/* The filter travels as its canonical JSON; each instance resolves it. */
		if (q->filter && !q->filter_key)
			rc = rag_err_set(err, RAG_EINVAL, "filter",
					 "a sharded search needs the filter's JSON form");
		else
			rc = rag_shards_search(eng->opts.shards, coll->c.name, qv, dim, depth,
					       q->filter ? q->filter_key : NULL, q->authorization,
					       c->ids, c->scores, &c->n, err);
	}
	free(qv);
	return rc;
}

static int hydrate(struct rag_engine *eng, struct rag_coll *coll, const struct cand *c,
		   struct rag_search_result *out, struct rag_err *err)
{
	struct store_hit *hits = calloc(c->n ? c->n : 1, sizeof(*hits));
	size_t k = 0;
	int rc;

	if (!hits)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	rc = store_chunks_get(eng->store, coll->c.id, c->ids, c->n, hits, err);
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		if (!hits[i].found)
			continue;
		out->hits[k].score = c->scores[i];
		out->hits[k].chunk = hits[i];
		memset(&hits[i], 0, sizeof(hits[i]));
		k++;
	}
	out->n_hits = k;
	store_hits_release(hits, c->n);
	free(hits);
	return rc;
}

int rag_search(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_query *q, struct rag_search_result *out, struct rag_err *err)
{
	struct rag_coll *coll = NULL;
	struct cand d = { 0 }, l = { 0 }, f = { 0 };
	struct allowed allow = { 0 };
	struct vindex_filter vf = { .keep = keep_allowed, .ctx = &allow };
	struct ranked *tmp = NULL;
	struct qcache qc = { 0 };
	size_t depth;
	double t0 = rag_now_ms(), t1;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = check_query(eng, q, err);
	if (rc < 0)
		return rc;
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	if (!coll->vi || !coll->lx) {
		rc = rag_err_set(err, RAG_EBUSY, NULL, "this engine loads no indexes");
		goto out;
	}
	if (eng->opts.cache && q->no_cache) {
		cache_count_bypass(CACHE_SEARCH);
		out->cache = RAG_CACHE_BYPASS;
	} else if (eng->opts.cache && (!q->filter || q->filter_key)) {
		qc.cache = eng->opts.cache;
		if (lookup(coll, q, &qc, out)) {
			out->total_ms = rag_now_ms() - t0;
			goto out;
		}
	}
	if (q->filter) {
		rc = store_filter_ids(eng->store, coll->c.id, q->filter, &allow.ids, &allow.n, err);
		if (rc == 0 && allow.n == 0)
			store_result(eng, coll, &qc, out); /* nothing matches: cache that too */
		if (rc < 0 || allow.n == 0)
			goto out; /* a filter that matches nothing returns nothing */
		vf.ids = allow.ids; /* lets a remote index send the set instead */
		vf.n_ids = allow.n;
	}
	depth = q->mode == RAG_MODE_HYBRID ? q->top_k * RRF_DEPTH : q->top_k;
	if (q->mode == RAG_MODE_HYBRID && depth < RRF_MIN)
		depth = RRF_MIN;
	d.ids = malloc(depth * sizeof(int64_t));
	d.scores = malloc(depth * sizeof(float));
	l.ids = malloc(depth * sizeof(int64_t));
	l.scores = malloc(depth * sizeof(float));
	f.ids = malloc(q->top_k * sizeof(int64_t));
	f.scores = malloc(q->top_k * sizeof(float));
	tmp = malloc(2 * depth * sizeof(*tmp));
	out->hits = calloc(q->top_k, sizeof(*out->hits));
	if (!d.ids || !d.scores || !l.ids || !l.scores || !f.ids || !f.scores || !tmp ||
	    !out->hits) {
		rc = rag_err_set(err, RAG_ENOMEM, "top_k", "out of memory for %zu results", q->top_k);
		goto out;
	}
	if (q->mode != RAG_MODE_LEXICAL) {
		rc = dense(eng, coll, q, &qc, depth, q->filter ? &vf : NULL, &d, out, err);
		if (rc < 0)
			goto out;
	}
	t1 = rag_now_ms();
	if (q->mode != RAG_MODE_DENSE) {
		rc = q->mode == RAG_MODE_HYBRID
			     ? lexical_search_raw(coll->lx, q->text, depth,
						  q->filter ? keep_allowed : NULL, &allow, l.ids,
						  l.scores, &l.n, &l.query_max, err)
			     : lexical_search_filtered(coll->lx, q->text, depth,
						       q->filter ? keep_allowed : NULL, &allow, l.ids,
						       l.scores, &l.n, err);
		if (rc < 0)
			goto out;
	}
	if (q->mode == RAG_MODE_HYBRID)
		fuse(q, &d, &l, q->top_k, tmp, &f);
	rc = hydrate(eng, coll, q->mode == RAG_MODE_HYBRID ? &f : q->mode == RAG_MODE_DENSE ? &d : &l,
		     out, err);
	out->search_ms = rag_now_ms() - t1;
	if (rc == 0)
		store_result(eng, coll, &qc, out);
	out->total_ms = rag_now_ms() - t0;
out:
	free(qc.text);
	free(qc.vec);
	free(d.ids);
	free(d.scores);
	free(l.ids);
	free(l.scores);
	free(f.ids);
	free(f.scores);
	free(tmp);
	free(allow.ids);
	rag_coll_unref(coll);
	if (rc < 0)
		rag_search_result_release(out);
	return rc;
}

uint64_t rag_engine_shards_held(struct rag_engine *eng)
{
	return rag_shards_held(eng->opts.shards);
}

int rag_search_local_dense(struct rag_engine *eng, const char *tenant, const char *collection,
			   const float *vec, size_t dim, size_t k, const struct store_filter *filter,
			   int64_t *ids, float *scores, size_t *n, struct rag_err *err)
{
	struct allowed allow = { 0 };
	struct vindex_filter vf = { .keep = keep_allowed, .ctx = &allow };
	struct rag_coll *coll;
	int rc = 0;

	*n = 0;
	if (k < 1 || k > eng->opts.max_top_k * RRF_DEPTH + RRF_MIN)
		return rag_err_set(err, RAG_EINVAL, "k", "k must be between 1 and %zu",
				   eng->opts.max_top_k * RRF_DEPTH + RRF_MIN);
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	if (!coll->vi)
		rc = rag_err_set(err, RAG_EBUSY, NULL, "this engine loads no indexes");
	else if (dim != (size_t)coll->c.dim)
		rc = rag_err_set(err, RAG_EINVAL, "vector",
				 "vector has %zu components; collection '%s' has dimension %lld", dim,
				 collection, (long long)coll->c.dim);
	if (rc == 0 && filter) {
		rc = store_filter_ids(eng->store, coll->c.id, filter, &allow.ids, &allow.n, err);
		vf.ids = allow.ids;
		vf.n_ids = allow.n;
	}
	if (rc == 0 && (!filter || allow.n > 0))
		rc = vindex_search(coll->vi, vec, k, filter ? &vf : NULL, ids, scores, n, err);
	free(allow.ids);
	rag_coll_unref(coll);
	return rc;
}
