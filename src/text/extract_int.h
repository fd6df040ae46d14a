/*
 * Internal to the extractors: the builder every extractor fills (text, blocks,
 * section paths) and the per-format entry points extract.c dispatches to.
 *
 * Thread-safety: a builder belongs to one call.
 */
#ifndef RAGD_TEXT_EXTRACT_INT_H
#define RAGD_TEXT_EXTRACT_INT_H

#include <stddef.h>

#include "core/sbuf.h"
#include "text/extract.h"

#define EXTRACT_MAX_LEVEL 6 /* h1..h6 */

struct extract_builder {
	struct sbuf text;
	struct extract_block *blocks;
	size_t n_blocks, alloc_blocks;
	char **strs; /* owned strings: section paths and the title */
	size_t n_strs, alloc_strs;
	char *heads[EXTRACT_MAX_LEVEL + 1]; /* heading text per level, [0] unused */
	const char *section;                /* current path, one of strs or "" */
	unsigned page;
	char *title; /* one of strs or NULL */
	int failed;  /* allocation failure, sticky */
};

void xb_init(struct extract_builder *b);
void xb_release(struct extract_builder *b);

/*
 * Sets the heading of this level (text[0..len), whitespace collapsed) and
 * forgets deeper ones; the section path becomes "H1 > H2 > ...".
 */
void xb_heading(struct extract_builder *b, int level, const char *text, size_t len);

/* Sets the title when none is set yet (whitespace collapsed; empty ignored). */
void xb_title(struct extract_builder *b, const char *text, size_t len);

/*
 * Appends s[0..len) as a block: leading and trailing whitespace lines are
 * trimmed, an empty block is skipped, and blocks are separated by a blank
 * line. Returns nothing: failure is sticky (b->failed).
 */
void xb_block(struct extract_builder *b, enum extract_block_kind kind, int level, const char *s,
	      size_t len);

/* Records text[start..end) (already in b->text) as a block. */
void xb_mark(struct extract_builder *b, enum extract_block_kind kind, int level, size_t start,
	     size_t end);

/*
 * Marks paragraphs (runs of lines between blank lines) of b->text[from..) as
 * PARAGRAPH blocks.
 */
void xb_mark_paragraphs(struct extract_builder *b, size_t from);

/* A copy of s[0..len) owned by the builder (and then the document); NULL on failure. */
const char *xb_intern(struct extract_builder *b, const char *s, size_t len);

/* Moves the result into doc (the builder is left released). */
int xb_finish(struct extract_builder *b, enum extract_format format, struct extract_document *doc,
	      struct rag_err *err);

/*
 * Decodes plain-text bytes into UTF-8 with LF line ends into out (see
 * extract.h for the rules). RAG_EUNSUPPORTED for binary or undecodable input.
 */
int extract_decode_text(const char *data, size_t len, struct sbuf *out, struct rag_err *err);

/* 1 when data looks binary (NULs that are not UTF-16, or a known binary magic). */
int extract_looks_binary(const unsigned char *data, size_t len, const char **what);

int extract_text(const char *data, size_t len, struct extract_builder *b, struct rag_err *err);
int extract_markdown(const char *data, size_t len, struct extract_builder *b,
		     struct rag_err *err);
int extract_html(const char *data, size_t len, struct extract_builder *b, struct rag_err *err);
int extract_pdf(const char *data, size_t len, const struct extract_options *opts,
		struct extract_builder *b, struct rag_err *err);

/*
 * The framed format the PDF helper writes on stdout, one record after the
 * other: a header line "<tag> <decimal length>\n" then that many bytes.
 * Tags: 'N' page count (the bytes are the decimal count), 'T' title,
 * 'P' one page's UTF-8 text (in page order), 'E' an error message (the
 * helper then exits non-zero), 'D' done.
 */
#define EXTRACT_PDF_MAGIC "RAGDPDF1\n"

/*
 * Reads the helper's output o (magic, then frames) into b. Returns 0, a
 * negative RAG_E* code with err set (an 'E' frame, text that is not UTF-8, no
 * pages), or 1 when the output is malformed (the caller reports the helper's
 * exit status). Exposed for the frame parser's fuzz target.
 */
int extract_pdf_frames(const struct sbuf *o, struct extract_builder *b, struct rag_err *err);

#endif
