/*
 * Dispatch from the embedder interface to its backend, and the query
 * prefix, which is the same for every backend: the prefix and the query are
 * joined into one text, so the tokenizer sees what the model was trained on
 * and truncation keeps the prefix.
 */
#include "model/embedder.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

int embedder_embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		   float *out, struct rag_err *err)
{
	if (n == 0)
		return 0;
	return e->ops->embed(e, texts, lens, n, out, err);
}

int embedder_embed_query(struct embedder *e, const char *text, size_t len, float *out,
			 struct rag_err *err)
{
	size_t plen = e->query_prefix ? strlen(e->query_prefix) : 0;
	const char *joined_text;
	char *joined;
	size_t n;
	int rc;

	if (plen == 0)
		return e->ops->embed(e, &text, &len, 1, out, err);
	if (len > SIZE_MAX - plen - 1)
		return rag_err_set(err, RAG_ETOOBIG, "query", "query too long");
	joined = malloc(plen + len + 1);
	if (!joined)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory embedding the query");
	memcpy(joined, e->query_prefix, plen);
	memcpy(joined + plen, text, len);
	joined[plen + len] = '\0';
	joined_text = joined;
	n = plen + len;
	rc = e->ops->embed(e, &joined_text, &n, 1, out, err);
	free(joined);
	return rc;
}

int embedder_count_tokens(struct embedder *e, const char *text, size_t len)
{
	return e->ops->count_tokens(e, text, len);
}

void embedder_free(struct embedder *e)
{
	if (e)
		e->ops->free(e);
}
