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
struct extract_document;

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

/*
 * How chunk_document cuts a document (the collection option "chunker").
 *
 * CHUNK_FIXED: chunk_fixed over the whole text (fixed windows with overlap).
 * CHUNK_RECURSIVE: section, then block (paragraph, list, code, table), then
 *   sentence (lines for lists, code and tables), then word, then code point:
 *   the largest unit that fits max_tokens is kept whole, smaller ones are
 *   merged in order up to max_tokens; merges may cross headings.
 * CHUNK_STRUCTURED (the default): the same, but a chunk never crosses a
 *   heading: each section (a heading and what follows up to the next heading;
 *   a heading directly followed by a deeper one joins it) is chunked on its
 *   own. Code and table blocks are only ever cut at line ends, unless a single
 *   line is over max_tokens (then at words, then code points).
 * In the recursive strategies consecutive chunks share whole units of up to
 * overlap_tokens (sentences, lines or words; never across a heading in
 * CHUNK_STRUCTURED), so with paragraph-sized units there is usually none.
 */
enum chunk_strategy {
	CHUNK_FIXED = 0,
	CHUNK_RECURSIVE,
	CHUNK_STRUCTURED,
};

#define CHUNK_DEFAULT_STRATEGY CHUNK_STRUCTURED

/* "fixed", "recursive", "structured"; "unknown" for anything else. */
const char *chunk_strategy_name(enum chunk_strategy s);

/* Parses those names; returns 0, or -1 (and leaves *out) if name is unknown. */
int chunk_strategy_parse(const char *name, enum chunk_strategy *out);

struct chunk_piece {
	size_t start;       /* byte offsets into doc->text: text[start..end) */
	size_t end;
	size_t n_tokens;    /* tokens of the chunk (sum over its units, see below) */
	size_t ordinal;     /* 0, 1, 2, ... in document order */
	unsigned page_first; /* PDF page of the first byte (1-based), 0 without pages */
	unsigned page_last;  /* PDF page of the last byte */
	/*
	 * Heading path, e.g. "Install > Linux" ("" above the first heading): that
	 * of the chunk's first non-heading block, or of its last block when it
	 * holds only headings. Borrowed from doc: valid until
	 * extract_document_release.
	 */
	const char *section;
};

/*
 * Chunks an extracted document. Document id and metadata are the caller's
 * to attach to each piece. Every piece holds at most max_tokens tokens as
 * counted by opts->count, assuming (as for WordPiece and other tokenizers
 * that split at whitespace first) that the count of a text is the sum of the
 * counts of its whitespace-separated parts: each unit is counted once and
 * chunk counts are sums, so no text is tokenised more than about twice.
 * A document with no blocks is chunked as one paragraph.
 *
 * On success returns 0 and *out (caller frees with free()) holds *n_out
 * pieces in order; a document without words gives 0 pieces and *out NULL.
 * Returns RAG_EINVAL for bad options or blocks that overlap or leave the
 * text, RAG_ENOMEM, or the callback's error.
 */
int chunk_document(const struct extract_document *doc, const struct chunk_options *opts,
		   enum chunk_strategy s, struct chunk_piece **out, size_t *n_out,
		   struct rag_err *err);

#endif
