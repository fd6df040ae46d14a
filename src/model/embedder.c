/*
 * Dispatch from the embedder interface to its backend.
 */
#include "model/embedder.h"

#include "core/rag_error.h"

#include "core/banned.h"

int embedder_embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		   float *out, struct rag_err *err)
{
	if (n == 0)
		return 0;
	return e->ops->embed(e, texts, lens, n, out, err);
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
