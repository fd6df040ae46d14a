/*
 * Chunkers: split extracted text into pieces that fit the embedding model.
 *
 * Sizes are measured in the embedding model's tokens through a counting
 * callback, so a chunk never exceeds what the model can see. Chunks are byte
 * ranges into the caller's text (no copies), always on UTF-8 code point
 * boundaries.
 *
 * Thread-safety: pure functions; the callback must be safe to call from the
 * calling thread.
 */
#ifndef RAGD_TEXT_CHUNK_H
#define RAGD_TEXT_CHUNK_H

#include <stddef.h>

struct rag_err;

/*
 * Counts the tokens the model makes of text[0..len) without special tokens.
 * Returns the count (>= 0) or a negative RAG_E* code.
 */
typedef int (*chunk_count_fn)(void *ctx, const char *text, size_t len);

struct chunk_options {
	size_t max_tokens;     /* largest chunk, in model tokens (> 0) */
	size_t overlap_tokens; /* tokens repeated from the previous chunk (< max_tokens) */
	chunk_count_fn count;
	void *count_ctx;
};

struct chunk_span {
	size_t start;    /* byte offset of the first byte in the text */
	size_t end;      /* byte offset one past the last byte */
	size_t n_tokens; /* tokens the model makes of text[start..end) */
};

/*
 * Fixed windows with overlap. Words (runs of non-space bytes) are counted
 * one by one and packed into windows of at most max_tokens; each next window
 * starts at the latest word that keeps at most overlap_tokens of the previous
 * one. A word longer than a window is cut at code point boundaries. For
 * WordPiece tokenizers, which split at whitespace first, the sum of the words'
 * counts is exactly the count of the whole chunk.
 *
 * On success returns 0 and *out (caller frees with free()) holds *n_out spans
 * in order; text with no words gives 0 spans and *out NULL. Returns RAG_EINVAL
 * for bad options, RAG_ENOMEM, or the callback's error.
 */
int chunk_fixed(const char *text, size_t len, const struct chunk_options *opts,
		struct chunk_span **out, size_t *n_out, struct rag_err *err);

#endif
