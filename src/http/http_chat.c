/*
 * Binding a chat request's model to what generates its answer.
 *
 * Plain generation runs the generator as is. A model the server did not
 * load at start is looked up as models_dir/<model>.gguf and loaded through
 * the model cache (one context, shared weights), then released when the
 * request ends. "rag:<collection>" goes to the RAG pipeline (rag_answer.h,
 * the same as POST /v1/collections/{name}/query), with its citations.
 */
#include "http/http_chat.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "http/http.h"
#include "model/model_cache.h"
#include "rag/rag_answer.h"
#include "rag/rag_engine.h"

#include "core/banned.h"

static int run_plain(struct chat_request *rq, gen_token_fn on_token, void *ctx,
		     struct sbuf *out, struct gen_usage *usage, struct rag_err *err)
{
	return generator_generate(rq->gen, rq->msgs, rq->n_msgs, &rq->params, on_token, ctx, out,
				  usage, err);
}

static void release_cached(struct chat_request *rq)
{
	model_cache_release(rq->cache, rq->gen);
}

/* Citations as the answer's extra `citations` field: a JSON array. */
static char *citations_json(const struct rag_answer *a)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_addch(&sb, '[');
	for (size_t i = 0; i < a->n_citations; i++) {
		const struct rag_citation *c = &a->citations[i];

		sbuf_addf(&sb, "%s{\"n\":%d,\"document_id\":", i ? "," : "", c->n);
		sbuf_add_json_str(&sb, c->document_id, strlen(c->document_id));
		sbuf_addf(&sb, ",\"chunk_id\":%lld,\"score\":%.6g,\"start\":%zu,\"end\":%zu,"
			  "\"text\":", (long long)c->chunk_id, (double)c->score, c->start_byte,
			  c->end_byte);
		sbuf_add_json_str(&sb, c->text, strlen(c->text));
		sbuf_addch(&sb, '}');
	}
	sbuf_addch(&sb, ']');
	return sbuf_detach(&sb, NULL);
}

/*
 * RAG over the collection: the question is the last user message (earlier
 * turns are not replayed: /query's sessions are the way to converse), the
 * answer is rag_answer's, with its citations.
 */
static int run_rag(struct chat_request *rq, gen_token_fn on_token, void *ctx,
		   struct sbuf *out, struct gen_usage *usage, struct rag_err *err)
{
	struct rag_answer a;
	struct rag_ask q = { 0 };
	const char *question = NULL;
	int rc;

	for (size_t i = rq->n_msgs; i-- > 0 && !question;)
		if (strcmp(rq->msgs[i].role, "user") == 0)
			question = rq->msgs[i].content;
	if (!question)
		return rag_err_set(err, RAG_EINVAL, "messages",
				   "RAG needs a user message to answer");
	q.question = question;
	q.len = strlen(question);
	q.top_k = (size_t)(rq->rag_top_k > 0 ? rq->rag_top_k : 5);
	q.mode = RAG_MODE_HYBRID;
	q.max_tokens = rq->max_tokens_given || rq->rag_max_tokens <= 0 ? rq->params.max_tokens
									 : rq->rag_max_tokens;
	q.temperature = rq->params.temperature;
	q.authorization = rq->authorization;
	q.on_token = on_token;
	q.ctx = ctx;
	rc = rag_answer(rq->eng, rq->tenant, rq->collection, &q, &a, err);
	if (rc == 0) {
		sbuf_reset(out);
		sbuf_add(out, a.text.buf, a.text.len);
		*usage = a.usage;
		if (!usage->finish_reason)
			usage->finish_reason = "stop";
		rq->citations_json = citations_json(&a);
		if (!rq->citations_json)
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	rag_answer_release(&a);
	return rc;
}

static int bind_rag(struct http_req *req, struct rag_engine *eng, struct chat_request *rq,
		    struct rag_err *err)
{
	struct rag_collection_info info;
	const char *name = rq->model + strlen(HTTP_CHAT_RAG_PREFIX);

	if (rag_collection_get(eng, req->who.tenant, name, &info, NULL) < 0)
		return rag_err_set(err, RAG_ENOTFOUND, "model",
				   "collection '%s' does not exist (model '%s')", name, rq->model);
	rag_collection_info_release(&info);
	rq->collection = strdup(name);
	if (http_header(req, "Authorization"))
		rq->authorization = strdup(http_header(req, "Authorization"));
	if (!rq->collection || (http_header(req, "Authorization") && !rq->authorization))
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	rq->rag_top_k = req->ctx->answer_top_k;
	rq->rag_max_tokens = req->ctx->answer_max_tokens;
	rq->run = run_rag;
	return 0;
}

int http_chat_bind(struct http_req *req, struct rag_engine *eng, struct chat_request *rq,
		   struct rag_err *err)
{
	struct generator *g = req->ctx->generator;
	char path[1024];

	rq->eng = eng;
	rq->tenant = req->who.tenant;
	if (strncmp(rq->model, HTTP_CHAT_RAG_PREFIX, strlen(HTTP_CHAT_RAG_PREFIX)) == 0)
		return bind_rag(req, eng, rq, err);
	rq->run = run_plain;
	if (g && strcmp(rq->model, g->name) == 0) {
		rq->gen = g;
		return 0;
	}
	if (!req->ctx->models ||
	    model_cache_resolve(req->ctx->models_dir, rq->model, path, sizeof(path)) < 0)
		return rag_err_set(err, RAG_ENOTFOUND, "model", "model '%s' does not exist%s%s",
				   rq->model, g ? ": this server generates with " : "",
				   g ? g->name : "");
	rq->gen = model_cache_generator(req->ctx->models, path, req->ctx->model_threads, err);
	if (!rq->gen) {
		if (err->code != RAG_ENOMEM) {
			/* Not a generative model (or not a model): the client named the wrong one. */
			err->code = RAG_EINVAL;
			snprintf(err->field, sizeof(err->field), "model");
		}
		return err->code;
	}
	rq->cache = req->ctx->models;
	rq->release = release_cached;
	return 0;
}
