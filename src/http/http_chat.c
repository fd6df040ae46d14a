/*
 * Binding a chat request's model to what generates its answer.
 *
 * Plain generation runs the generator as is. A model the server did not
 * load at start is looked up as models_dir/<model>.gguf and loaded through
 * the model cache (one context, shared weights), then released when the
 * request ends. "rag:<collection>" goes to the RAG pipeline.
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

static int bind_rag(struct http_req *req, struct rag_engine *eng, struct chat_request *rq,
		    struct rag_err *err)
{
	struct rag_collection_info info;
	const char *name = rq->model + strlen(HTTP_CHAT_RAG_PREFIX);

	if (rag_collection_get(eng, req->ctx->tenant, name, &info, NULL) < 0)
		return rag_err_set(err, RAG_ENOTFOUND, "model",
				   "collection '%s' does not exist (model '%s')", name, rq->model);
	rag_collection_info_release(&info);
	return rag_err_set(err, RAG_EUNSUPPORTED, "model",
			   "RAG answers over '%s' need the query pipeline, not in this build",
			   name);
}

int http_chat_bind(struct http_req *req, struct rag_engine *eng, struct chat_request *rq,
		   struct rag_err *err)
{
	struct generator *g = req->ctx->generator;
	char path[1024];

	rq->eng = eng;
	rq->tenant = req->ctx->tenant;
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
