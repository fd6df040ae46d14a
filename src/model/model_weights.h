/*
 * Model weights shared across everything that loads the same GGUF file:
 * one llama_model per path, refcounted, whatever contexts are made on it
 * (two embedders over one file with different context settings, or an
 * embedder and a cache entry, hold one copy of the weights).
 *
 * Only llama.cpp backends (embedder_llama.c, generator_llama.c) use this;
 * llama.h stays in their .c files, so the model is an opaque pointer here.
 *
 * Thread-safety: both functions may be called from many threads at once.
 */
#ifndef RAGD_MODEL_MODEL_WEIGHTS_H
#define RAGD_MODEL_MODEL_WEIGHTS_H

#include <stddef.h>

struct llama_model;
struct rag_err;

enum {
	MODEL_WEIGHTS_PLAIN_CPU = 1, /* no repacked weight buffers (AMX repacking dies of SIGILL here) */
};

/*
 * llama.cpp's backend, and its log routed into ragd's (JSON lines on
 * stderr), once per process; every llama.cpp model calls it before loading
 * (a generator may load with no local embedder at all). Thread-safe.
 */
void model_llama_init(void);

/*
 * The weights of path loaded with flags (MODEL_WEIGHTS_*), loaded (CPU
 * only) on first use, else shared: the key is path and flags. The caller
 * holds a reference until model_weights_release. *load_ms is the time this
 * call spent loading (0 when shared). NULL with err set when llama.cpp
 * cannot load the file (err->field is `field`).
 */
struct llama_model *model_weights_acquire(const char *path, int flags, const char *field,
					  double *load_ms, struct rag_err *err);

/* Drops a reference; the last one frees the weights. NULL-safe. */
void model_weights_release(struct llama_model *m);

/*
 * Tokens llama.cpp makes of text[0..len) with vocab, special tokens not
 * added: the count, or RAG_ETOOBIG (len beyond llama.cpp's int32 range),
 * RAG_ENOMEM or RAG_EINVAL (the tokenizer refused the text). Shared by the
 * embedder and the generator; thread-safe.
 */
struct llama_vocab;
int model_count_tokens(const struct llama_vocab *vocab, const char *text, size_t len);

/* References held on the weights of path (0 when not loaded); for tests. */
int model_weights_refs(const char *path);

#endif
