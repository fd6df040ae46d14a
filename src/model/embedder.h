/*
 * Embedders turn texts into L2-normalised float vectors.
 *
 * A small ops struct so that backends (llama.cpp in-process here; a pool of
 * OpenAI-compatible endpoints later) sit behind one interface. The caller
 * sees the model's name, its dimension, how many tokens it reads and the
 * instruction some models (bge) want before a search query.
 *
 * Thread-safety: every backend's embed and count_tokens may be called from
 * many threads at once; backends queue work internally.
 */
#ifndef RAGD_MODEL_EMBEDDER_H
#define RAGD_MODEL_EMBEDDER_H

#include <stddef.h>

#include "model/model_pool.h"

struct rag_err;
struct embedder;

struct embedder_ops {
	int (*embed)(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		     float *out, struct rag_err *err);
	int (*count_tokens)(struct embedder *e, const char *text, size_t len);
	void (*free)(struct embedder *e);
};

struct embedder {
	const struct embedder_ops *ops;
	char name[128];    /* model name, e.g. "all-MiniLM-L6-v2" */
	/*
	 * Identifies the exact weights: "name@hash of the model file". Stored
	 * with every vector, and part of every chunk's content address, so a
	 * vector is reused only for the model that made it.
	 */
	char fingerprint[192];
	size_t dim;        /* length of every vector */
	size_t max_tokens; /* the model reads at most this many tokens, specials included */
	size_t n_special;  /* tokens the model adds to every text (e.g. [CLS] and [SEP]) */
	/*
	 * Text put before a search query, never before a document: bge was
	 * trained with "Represent this sentence for searching relevant
	 * passages: " on queries. "" for models without one (MiniLM). Owned by
	 * the embedder, NUL-terminated, immutable until embedder_free.
	 */
	const char *query_prefix;
};

/*
 * Embeds n texts (text i is texts[i][0..lens[i]), not NUL-terminated) into
 * out, n * dim floats the caller owns, each row L2-normalised. Texts longer
 * than max_tokens are truncated as sentence-transformers does. Returns 0,
 * RAG_EINVAL (e.g. invalid input), RAG_ENOMEM or RAG_EINTERNAL.
 */
int embedder_embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		   float *out, struct rag_err *err);

/*
 * Embeds one search query, query_prefix + text[0..len), into out (dim
 * floats the caller owns), L2-normalised. Everything that embeds a query to
 * search with goes through here; documents go through embedder_embed
 * without the prefix. Returns as embedder_embed.
 */
int embedder_embed_query(struct embedder *e, const char *text, size_t len, float *out,
			 struct rag_err *err);

/*
 * Tokens the model makes of text[0..len), special tokens not counted.
 * Returns the count, or a negative RAG_E* code. Used by the chunkers.
 */
int embedder_count_tokens(struct embedder *e, const char *text, size_t len);

/* Frees the embedder (NULL-safe); no call may be in flight. */
void embedder_free(struct embedder *e);

struct embedder_llama_options {
	const char *model_path; /* GGUF file */
	int n_contexts;         /* llama contexts in the pool: concurrent batches (>= 1) */
	int n_threads;          /* threads each context computes with (>= 1) */
	int batch_size;         /* texts per llama_encode call at most (>= 1) */
};

void embedder_llama_default_options(struct embedder_llama_options *opts);

/*
 * Loads a BERT-family GGUF embedding model with llama.cpp. Pooling comes
 * from the file (MEAN for MiniLM, CLS for bge); the truncation length from
 * the `ragd.max_seq_length` key the converter writes, else the model's
 * training context; query_prefix from the `ragd.query_prefix` key, else "". Returns NULL with err set when the file is missing or is
 * not an embedding model. Caller frees with embedder_free.
 */
struct embedder *embedder_llama_new(const struct embedder_llama_options *opts,
				    struct rag_err *err);

struct embedder_batch_options {
	int window_us;      /* a leader with company waits this long for more callers */
	size_t max_texts;   /* texts in one merged batch at most (>= 2) */
	int max_running;    /* inner calls at once before callers queue up (the inner contexts) */
};

void embedder_batch_default_options(struct embedder_batch_options *opts);

/*
 * Wraps inner (taking ownership, also on failure) so that small concurrent
 * embed calls share one inner call: micro-batching across callers (see
 * embedder_batch.c). Same name, dimension and token counts as inner.
 * Caller frees with embedder_free, which frees inner too.
 */
struct embedder *embedder_batch_new(struct embedder *inner,
				    const struct embedder_batch_options *opts,
				    struct rag_err *err);

struct embedder_remote_options {
	struct model_pool_options pool; /* instances, policy, timeouts, health checks */
	const char *model;              /* the name sent as "model", and this embedder's name */
	size_t max_tokens;              /* the window the servers read (chunk sizes must fit) */
};

void embedder_remote_default_options(struct embedder_remote_options *opts);

/*
 * An embedder over a pool of OpenAI-compatible servers (POST
 * /v1/embeddings; see model_pool.h for routing, retries and health). The
 * dimension comes from one probe embedding made here, so an instance must
 * answer within the pool's deadline; NULL with err set otherwise. Token
 * counts are estimated from byte lengths (no tokenizer over this API).
 * Caller frees with embedder_free.
 */
struct embedder *embedder_remote_new(const struct embedder_remote_options *opts,
				     struct rag_err *err);

#endif
