/*
 * Rerankers: score (query, passage) pairs with a cross-encoder, so the top
 * candidates of a search can be reordered by a model that reads both texts
 * together.
 *
 * Only the interface exists: no package on the registries this project
 * builds from (PyPI, npm, Maven Central, Debian, crates) carries the weights
 * of a cross-encoder (ms-marco-MiniLM, bge-reranker, jina-reranker were
 * looked for), and nothing is downloaded at run time. A llama.cpp backend
 * fits here unchanged when such a GGUF is available: llama.cpp loads BERT
 * sequence-classification models with LLAMA_POOLING_TYPE_RANK and returns
 * one score per sequence "[CLS] query [SEP] passage [SEP]".
 *
 * Thread-safety: score may be called from many threads at once.
 */
#ifndef RAGD_MODEL_RERANKER_H
#define RAGD_MODEL_RERANKER_H

#include <stddef.h>

struct rag_err;
struct reranker;

struct reranker_ops {
	int (*score)(struct reranker *r, const char *query, size_t query_len,
		     const char *const *passages, const size_t *lens, size_t n, float *out,
		     struct rag_err *err);
	void (*free)(struct reranker *r);
};

struct reranker {
	const struct reranker_ops *ops;
	char name[128];
	size_t max_tokens; /* query and passage together */
};

/*
 * Scores n passages against query into out (n floats, higher is more
 * relevant; comparable within one call). Returns 0 or a negative RAG_E*.
 */
int reranker_score(struct reranker *r, const char *query, size_t query_len,
		   const char *const *passages, const size_t *lens, size_t n, float *out,
		   struct rag_err *err);

/* NULL-safe. */
void reranker_free(struct reranker *r);

#endif
