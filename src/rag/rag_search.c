/*
 * Dense search: embed the query, scan the collection's index, hydrate the
 * hits from the store. A chunk the index returns but the store no longer has
 * (deleted by another instance since our last replay) is dropped, not shown.
 */
#include "rag/rag_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "index/vindex.h"
#include "model/embedder.h"
#include "text/utf8.h"

#include "core/banned.h"

void rag_search_result_release(struct rag_search_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_hits; i++)
		store_hits_release(&res->hits[i].chunk, 1);
	free(res->hits);
	memset(res, 0, sizeof(*res));
}

static int check_query(struct rag_engine *eng, const char *q, size_t len, size_t top_k,
		       struct rag_err *err)
{
	size_t bad = 0, i;

	if (!q)
		return rag_err_set(err, RAG_EINVAL, "query", "query is required");
	if (!utf8_valid(q, len, &bad))
		return rag_err_set(err, RAG_EINVAL, "query",
				   "query is not valid UTF-8 (bad byte at offset %zu)", bad);
	for (i = 0; i < len; i++)
		if (!strchr(" \t\r\n\f\v", q[i]))
			break;
	if (i == len)
		return rag_err_set(err, RAG_EINVAL, "query", "query is empty");
	if (top_k < 1 || top_k > eng->opts.max_top_k)
		return rag_err_set(err, RAG_EINVAL, "top_k", "top_k must be between 1 and %zu",
				   eng->opts.max_top_k);
	return 0;
}

int rag_search(struct rag_engine *eng, const char *tenant, const char *collection,
	       const char *query, size_t query_len, size_t top_k,
	       struct rag_search_result *out, struct rag_err *err)
{
	struct rag_coll *coll = NULL;
	struct store_hit *hits = NULL;
	int64_t *ids = NULL;
	float *scores = NULL, *qv = NULL;
	size_t n = 0, k = 0;
	double t0 = rag_now_ms(), t1;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = check_query(eng, query, query_len, top_k, err);
	if (rc < 0)
		return rc;
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	if (!coll->vi) {
		rc = rag_err_set(err, RAG_EBUSY, NULL, "this engine loads no indexes");
		goto out;
	}
	qv = malloc((size_t)coll->c.dim * sizeof(float));
	ids = malloc(top_k * sizeof(*ids));
	scores = malloc(top_k * sizeof(*scores));
	hits = calloc(top_k, sizeof(*hits));
	out->hits = calloc(top_k, sizeof(*out->hits));
	if (!qv || !ids || !scores || !hits || !out->hits) {
		rc = rag_err_set(err, RAG_ENOMEM, "top_k", "out of memory for %zu results", top_k);
		goto out;
	}
	rc = embedder_embed(eng->emb, &query, &query_len, 1, qv, err);
	if (rc < 0)
		goto out;
	t1 = rag_now_ms();
	out->embed_ms = t1 - t0;
	rc = vindex_search(coll->vi, qv, top_k, NULL, ids, scores, &n, err);
	if (rc < 0)
		goto out;
	rc = store_chunks_get(eng->store, coll->c.id, ids, n, hits, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!hits[i].found)
			continue;
		out->hits[k].score = scores[i];
		out->hits[k].chunk = hits[i];
		memset(&hits[i], 0, sizeof(hits[i]));
		k++;
	}
	out->n_hits = k;
	out->search_ms = rag_now_ms() - t1;
	out->total_ms = rag_now_ms() - t0;
out:
	if (hits)
		store_hits_release(hits, n);
	free(hits);
	free(ids);
	free(scores);
	free(qv);
	rag_coll_unref(coll);
	if (rc < 0)
		rag_search_result_release(out);
	return rc;
}
