/*
 * A chat completion request once decoded, and what answers it: the HTTP
 * side of /v1/chat/completions (http_handlers_chat.c) decodes and streams,
 * http_chat.c binds the request's model to something that generates (a
 * loaded generator, one loaded on demand through the model cache, or the
 * RAG pipeline over a collection for "rag:<collection>").
 *
 * Thread-safety: a chat_request belongs to one request; run() is called
 * once, from the request's thread or its streaming thread.
 */
#ifndef RAGD_HTTP_HTTP_CHAT_H
#define RAGD_HTTP_HTTP_CHAT_H

#include <stddef.h>

#include "model/generator.h"

struct http_req;
struct rag_engine;
struct rag_err;
struct sbuf;

#define HTTP_CHAT_RAG_PREFIX "rag:" /* "model": "rag:<collection>" */

struct chat_request {
	char *model;                /* as the client named it; owned */
	struct gen_message *msgs;   /* owned contents; roles are static strings */
	size_t n_msgs;
	struct gen_params params;   /* stop strings owned */
	int stream;
	int include_usage;
	int max_tokens_given;       /* the client set max_tokens: RAG uses it over rag.max_tokens */

	/* Set by http_chat_bind: */
	int (*run)(struct chat_request *rq, gen_token_fn on_token, void *ctx, struct sbuf *out,
		   struct gen_usage *usage, struct rag_err *err);
	void (*release)(struct chat_request *rq); /* frees what bind took; NULL-safe to skip */
	struct generator *gen;      /* the generator run() uses */
	struct model_cache *cache;  /* gen came from it: released there */
	struct rag_engine *eng;
	char *collection;           /* RAG: the collection's name; owned */
	const char *tenant;
	char *authorization;        /* the caller's header, for shard peers; owned, may be NULL */
	char *citations_json;       /* RAG: a JSON array set by run(); owned */
	int rag_top_k, rag_max_tokens; /* RAG defaults: rag.top_k, rag.max_tokens */
};

/*
 * Chooses what answers rq->model: "rag:<collection>" (RAG over it, 404 when
 * the collection does not exist), the loaded generator's name, or a GGUF
 * file models_dir/<model>.gguf loaded through the model cache. RAG_ENOTFOUND
 * naming "model" otherwise.
 */
int http_chat_bind(struct http_req *req, struct rag_engine *eng, struct chat_request *rq,
		   struct rag_err *err);

#endif
