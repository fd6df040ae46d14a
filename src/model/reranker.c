/*
 * Dispatch from the reranker interface to its backend.
 */
#include "model/reranker.h"

#include "core/rag_error.h"

#include "core/banned.h"

int reranker_score(struct reranker *r, const char *query, size_t query_len,
		   const char *const *passages, const size_t *lens, size_t n, float *out,
		   struct rag_err *err)
{
	if (n == 0)
		return 0;
	if (!r || !query || !passages || !lens || !out)
		return rag_err_set(err, RAG_EINVAL, NULL, "reranker: missing argument");
	return r->ops->score(r, query, query_len, passages, lens, n, out, err);
}

void reranker_free(struct reranker *r)
{
	if (r)
		r->ops->free(r);
}
