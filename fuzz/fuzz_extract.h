/*
 * The extractor fuzz targets' shared body: extract the bytes in one forced
 * format and check what every extractor promises (extract.h): UTF-8 text,
 * NUL-terminated, blocks in order inside the text, each with a section;
 * and that the stored form of the structure (extract_blocks_encode) decodes
 * back to the same blocks, as re-chunking needs.
 */
#ifndef RAGD_FUZZ_EXTRACT_H
#define RAGD_FUZZ_EXTRACT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "text/extract.h"
#include "text/utf8.h"

static inline void fuzz_check_document(const struct extract_document *d)
{
	size_t prev_end = 0;

	if (!d->text || d->text[d->text_len] != '\0' || !utf8_valid(d->text, d->text_len, NULL)) {
		fprintf(stderr, "extracted text is not NUL-terminated UTF-8\n");
		abort();
	}
	for (size_t i = 0; i < d->n_blocks; i++) {
		const struct extract_block *b = &d->blocks[i];

		if (b->start > b->end || b->end > d->text_len || b->start < prev_end || !b->section) {
			fprintf(stderr, "block %zu [%zu, %zu) is out of order or outside the text (%zu)\n",
				i, b->start, b->end, d->text_len);
			abort();
		}
		prev_end = b->end;
	}
}

/* Encodes d's structure, decodes it against d's text and compares. */
static inline void fuzz_check_blocks_roundtrip(const struct extract_document *d)
{
	struct extract_document back = { 0 };
	struct rag_err err = { 0 };
	char *enc = NULL;

	if (extract_blocks_encode(d, &enc, &err) < 0)
		return; /* out of memory: nothing to compare */
	if (extract_blocks_decode(d->text, d->text_len, enc, &back, &err) < 0) {
		fprintf(stderr, "the encoded structure does not decode: %s\n%s\n", err.msg, enc);
		abort();
	}
	if (back.n_blocks != d->n_blocks || back.format != d->format ||
	    back.text_len != d->text_len || memcmp(back.text, d->text, d->text_len) != 0) {
		fprintf(stderr, "decoded document differs (%zu blocks, %zu before)\n",
			back.n_blocks, d->n_blocks);
		abort();
	}
	for (size_t i = 0; i < d->n_blocks; i++) {
		const struct extract_block *a = &d->blocks[i], *b = &back.blocks[i];

		if (a->start != b->start || a->end != b->end || a->kind != b->kind ||
		    a->page != b->page || a->level != b->level ||
		    strcmp(a->section ? a->section : "", b->section ? b->section : "") != 0) {
			fprintf(stderr, "decoded block %zu differs\n", i);
			abort();
		}
	}
	extract_document_release(&back);
	free(enc);
}

static inline int fuzz_extract(const uint8_t *data, size_t size, enum extract_format format)
{
	struct extract_options o = { .format = format, .max_bytes = 1 << 20 };
	struct extract_document d = { 0 };
	struct rag_err err = { 0 };

	if (extract_document(data, size, &o, &d, &err) < 0) {
		if (!err.msg[0]) {
			fprintf(stderr, "extraction failed without a message\n");
			abort();
		}
		return 0;
	}
	fuzz_check_document(&d);
	fuzz_check_blocks_roundtrip(&d);
	extract_document_release(&d);
	return 0;
}

#endif
