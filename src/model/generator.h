/*
 * Generators: chat-style text generation behind one small ops struct, so the
 * in-process llama.cpp backend and a remote pool of OpenAI-compatible
 * endpoints are interchangeable.
 *
 * generate() applies the model's chat template to the messages, then calls
 * on_token with each piece of UTF-8 text as it is produced (never a split
 * code point); returning non-zero from on_token stops generation early (a
 * client went away) and generate() then returns 0 with what was made so far
 * and usage.stopped set. The whole answer is also appended to *out.
 *
 * Thread-safety: generate may be called from many threads at once; backends
 * bound concurrency with a fixed set of contexts behind a bounded queue and
 * answer RAG_EBUSY (HTTP 503 + Retry-After) when the queue is full.
 */
#ifndef RAGD_MODEL_GENERATOR_H
#define RAGD_MODEL_GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_pool.h"

struct rag_err;
struct sbuf;
struct generator;

struct gen_message {
	const char *role;    /* "system", "user", "assistant" */
	const char *content; /* NUL-terminated UTF-8 */
};

struct gen_params {
	int max_tokens;      /* > 0 */
	float temperature;   /* 0 = greedy */
	float top_p;         /* (0, 1] */
	uint64_t seed;       /* for temperature > 0; equal seeds give equal text */
	const char *const *stop; /* stop strings, or NULL */
	size_t n_stop;
	int timeout_ms;      /* deadline for the whole call, 0 = none */
};

void gen_params_default(struct gen_params *p);

struct gen_usage {
	size_t prompt_tokens;
	size_t completion_tokens;
	double queue_ms;  /* waiting for a context */
	double ttft_ms;   /* from the call to the first token */
	double total_ms;
	const char *finish_reason; /* "stop", "length", "cancelled", "timeout" (static strings) */
	int stopped;      /* on_token asked to stop */
};

/* Returns non-zero to stop generation. */
typedef int (*gen_token_fn)(void *ctx, const char *piece, size_t len);

struct generator_ops {
	int (*generate)(struct generator *g, const struct gen_message *msgs, size_t n_msgs,
			const struct gen_params *p, gen_token_fn on_token, void *ctx,
			struct sbuf *out, struct gen_usage *usage, struct rag_err *err);
	int (*count_tokens)(struct generator *g, const char *text, size_t len);
	void (*free)(struct generator *g);
};

struct generator {
	const struct generator_ops *ops;
	char name[128];   /* model name as clients see it */
	size_t n_ctx;     /* context window in tokens */
};

/* --- the remote backend (generator_remote.c) --- */

struct generator_remote_options {
	struct model_pool_options pool; /* instances, policy, timeouts, health checks */
	const char *model;              /* the name sent as "model", and this generator's name */
	size_t n_ctx;                   /* the window the servers' model has */
};

void generator_remote_default_options(struct generator_remote_options *opts);

/*
 * A generator over a pool of OpenAI-compatible servers (POST
 * /v1/chat/completions, streamed; see model_pool.h for routing, retries and
 * health). Nothing is contacted here: instances may come up later. Token
 * counts are estimated from byte lengths. Caller frees with generator_free.
 */
struct generator *generator_remote_new(const struct generator_remote_options *opts,
				       struct rag_err *err);

int generator_generate(struct generator *g, const struct gen_message *msgs, size_t n_msgs,
		       const struct gen_params *p, gen_token_fn on_token, void *ctx,
		       struct sbuf *out, struct gen_usage *usage, struct rag_err *err);
int generator_count_tokens(struct generator *g, const char *text, size_t len);
void generator_free(struct generator *g);

/* --- the in-process llama.cpp backend (generator_llama.c) --- */

struct generator_llama_options {
	const char *model_path; /* any chat GGUF */
	int n_contexts;         /* llama contexts: generations run at once (>= 1) */
	int n_queue;            /* calls that may wait for a context; beyond: RAG_EBUSY (>= 0) */
	int n_threads;          /* threads each context computes with (>= 1) */
	int n_ctx;              /* context window in tokens; 0 = the model's, capped to 4096 */
};

void generator_llama_default_options(struct generator_llama_options *opts);

/*
 * Loads a chat GGUF with llama.cpp and creates its contexts. The chat
 * template is the model's own (tokenizer.chat_template), applied by
 * llama_chat_apply_template; a model without one gets ChatML. generate()
 * returns RAG_EBUSY when n_contexts calls run and n_queue more wait,
 * RAG_ETOOBIG when the prompt alone fills the window, RAG_EINVAL for bad
 * params. Waiting calls count in the `queue_size` gauge; the load time is
 * observed in `model_loading_time_ms`. NULL with err set when the file is
 * missing or is not a generative model. Caller frees with generator_free.
 */
struct generator *generator_llama_new(const struct generator_llama_options *opts,
				      struct rag_err *err);

#endif
