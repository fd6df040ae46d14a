/*
 * Dispatch from the generator interface to its backend, and the defaults
 * every backend shares.
 */
#include "model/generator.h"

#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

void gen_params_default(struct gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_tokens = 256;
	p->temperature = 0.0f;
	p->top_p = 1.0f;
	p->seed = 42;
}

int generator_generate(struct generator *g, const struct gen_message *msgs, size_t n_msgs,
		       const struct gen_params *p, gen_token_fn on_token, void *ctx,
		       struct sbuf *out, struct gen_usage *usage, struct rag_err *err)
{
	memset(usage, 0, sizeof(*usage));
	usage->finish_reason = "stop";
	if (n_msgs == 0)
		return rag_err_set(err, RAG_EINVAL, "messages", "at least one message is needed");
	if (p->max_tokens < 1)
		return rag_err_set(err, RAG_EINVAL, "max_tokens", "max_tokens must be at least 1");
	if (!(p->temperature >= 0.0f) || p->temperature > 100.0f)
		return rag_err_set(err, RAG_EINVAL, "temperature",
				   "temperature must be between 0 and 100");
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return rag_err_set(err, RAG_EINVAL, "top_p", "top_p must be in (0, 1]");
	return g->ops->generate(g, msgs, n_msgs, p, on_token, ctx, out, usage, err);
}

int generator_count_tokens(struct generator *g, const char *text, size_t len)
{
	return g->ops->count_tokens(g, text, len);
}

void generator_free(struct generator *g)
{
	if (g)
		g->ops->free(g);
}
