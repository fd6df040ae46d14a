/*
 * Fuzz target: the chunkers (chunk_fixed, chunk_document's recursive and
 * structured strategies) over text the Markdown or text extractor made of
 * the input, with sizes from the first bytes:
 *
 *   byte 0: strategy (mod 3), bit 2 the extractor (Markdown or text)
 *   byte 1: max_tokens = 1 + b % 64
 *   byte 2: overlap_tokens = b % max_tokens
 *
 * Tokens come from a small deterministic tokenizer instead of a model: each
 * run of non-space bytes costs one token per started 4 bytes, so counts add
 * up over whitespace-separated parts as the chunkers assume. Checked: pieces
 * in order, inside the text, on code point boundaries, within max_tokens.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/rag_error.h"
#include "fuzz_extract.h"
#include "text/chunk.h"

static int count(void *ctx, const char *text, size_t len)
{
	size_t n = 0, run = 0;

	(void)ctx;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == ' ' || text[i] == '\n' || text[i] == '\t' ||
		    text[i] == '\r' || text[i] == '\f' || text[i] == '\v') {
			n += (run + 3) / 4;
			run = 0;
		} else {
			run++;
		}
	}
	return n > 1000000 ? 1000000 : (int)n;
}

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct extract_options xo = { .max_bytes = 1 << 20 };
	struct extract_document d = { 0 };
	struct chunk_options o = { .count = count };
	struct chunk_piece *pieces = NULL;
	struct rag_err err = { 0 };
	size_t n = 0, prev = 0;
	enum chunk_strategy s;

	if (size < 3)
		return 0;
	s = (enum chunk_strategy)(data[0] % 3);
	xo.format = data[0] & 4 ? EXTRACT_TEXT : EXTRACT_MARKDOWN;
	o.max_tokens = 1 + data[1] % 64;
	o.overlap_tokens = data[2] % o.max_tokens;
	if (extract_document(data + 3, size - 3, &xo, &d, &err) < 0)
		return 0;
	if (chunk_document(&d, &o, s, &pieces, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			const struct chunk_piece *p = &pieces[i];

			if (p->start >= p->end || p->end > d.text_len || p->start < prev ||
			    p->ordinal != i || p->n_tokens > o.max_tokens || !p->section ||
			    is_cont((unsigned char)d.text[p->start]) ||
			    (p->end < d.text_len && is_cont((unsigned char)d.text[p->end]))) {
				fprintf(stderr,
					"%s piece %zu [%zu, %zu) %zu tokens (max %zu) breaks a promise\n",
					chunk_strategy_name(s), i, p->start, p->end, p->n_tokens,
					o.max_tokens);
				abort();
			}
			prev = p->start; /* overlap may start a piece inside the last one */
		}
		free(pieces);
	} else if (!err.msg[0]) {
		abort();
	}
	extract_document_release(&d);
	return 0;
}
