/*
 * The stored form of an extracted document's structure (extract.h,
 * extract_blocks_encode): what re-chunking needs besides the text.
 *
 * Text rather than binary so that it reads in the database with plain SQL
 * and its version sits in the first bytes; numbers in decimal, section
 * paths length-prefixed (a path is whatever a heading said). Each distinct
 * path is written once and blocks name it by index: a page with a hundred
 * paragraphs under one heading costs one copy of the heading. Measured on
 * 100 PostgreSQL manual pages (bench/RESULTS.md): 160 KB of structure for
 * 770 KB of text, against ~2.9 MB of vectors for their 1,897 chunks.
 *
 * Decoding trusts nothing: every number is range-checked against the text
 * and the previous block, so a damaged row becomes RAG_EINVAL, never an
 * out-of-range read in the chunker.
 */
#include "text/extract.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/vec.h"
#include "text/extract_int.h"

#include "core/banned.h"

#define BLOCKS_MAGIC "B1 " /* bump the digit for an incompatible form */

int extract_blocks_encode(const struct extract_document *doc, char **out, struct rag_err *err)
{
	struct sbuf sb = SBUF_INIT;
	const char *last = NULL;
	size_t n_sections = 0, *idx;

	*out = NULL;
	idx = calloc(doc->n_blocks ? doc->n_blocks : 1, sizeof(*idx));
	if (!idx)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	/* Blocks under one heading share the path: count distinct consecutive ones. */
	for (size_t i = 0; i < doc->n_blocks; i++) {
		const char *sec = doc->blocks[i].section ? doc->blocks[i].section : "";

		if (!last || strcmp(last, sec) != 0) {
			last = sec;
			n_sections++;
		}
		idx[i] = n_sections - 1;
	}
	sbuf_addf(&sb, BLOCKS_MAGIC "%d %zu %zu\n", (int)doc->format, n_sections, doc->n_blocks);
	last = NULL;
	for (size_t i = 0; i < doc->n_blocks; i++) {
		const char *sec = doc->blocks[i].section ? doc->blocks[i].section : "";

		if (last && strcmp(last, sec) == 0)
			continue;
		last = sec;
		sbuf_addf(&sb, "%zu:", strlen(sec));
		sbuf_addstr(&sb, sec);
		sbuf_addch(&sb, '\n');
	}
	for (size_t i = 0; i < doc->n_blocks; i++) {
		const struct extract_block *b = &doc->blocks[i];

		sbuf_addf(&sb, "%zu %zu %d %u %d %zu\n", b->start, b->end, (int)b->kind, b->page,
			  b->level, idx[i]);
	}
	free(idx);
	if (sbuf_error(&sb)) {
		sbuf_release(&sb);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	*out = sbuf_detach(&sb, NULL);
	return 0;
}

/* A decimal number at *p up to max, then the separator sep; advances *p. -1 if not. */
static int number(const char **p, uint64_t max, char sep, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*s != sep)
		return -1;
	*p = s + 1;
	*out = v;
	return 0;
}

static int damaged(struct extract_builder *b, const char *why, struct rag_err *err)
{
	xb_release(b);
	return rag_err_set(err, RAG_EINVAL, NULL, "stored document structure is damaged: %s", why);
}

int extract_blocks_decode(const char *text, size_t text_len, const char *enc,
			  struct extract_document *doc, struct rag_err *err)
{
	struct extract_builder b;
	const char **sections = NULL;
	const char *p = enc;
	uint64_t fmt, n_sections, n_blocks, prev_end = 0;

	memset(doc, 0, sizeof(*doc));
	xb_init(&b);
	if (strncmp(p, BLOCKS_MAGIC, strlen(BLOCKS_MAGIC)) != 0)
		return damaged(&b, "unknown form", err);
	p += strlen(BLOCKS_MAGIC);
	if (number(&p, EXTRACT_PDF, ' ', &fmt) < 0 || number(&p, SIZE_MAX / 64, ' ', &n_sections) ||
	    number(&p, SIZE_MAX / 64, '\n', &n_blocks) < 0 || (n_blocks > 0 && n_sections == 0) ||
	    n_sections > strlen(p) / 3 || n_blocks > strlen(p) / 12)
		return damaged(&b, "bad header", err); /* a section takes >= 3 bytes, a block 12 */
	sbuf_add(&b.text, text, text_len);
	sections = calloc(n_sections ? n_sections : 1, sizeof(*sections));
	if (!sections || (n_blocks && !(b.blocks = calloc(n_blocks, sizeof(*b.blocks))))) {
		free(sections);
		xb_release(&b);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	b.alloc_blocks = n_blocks;
	for (uint64_t i = 0; i < n_sections; i++) {
		uint64_t len;

		if (number(&p, strlen(p), ':', &len) < 0 || strlen(p) < len + 1 || p[len] != '\n')
			goto bad;
		sections[i] = xb_intern(&b, p, len);
		if (!sections[i])
			goto oom;
		p += len + 1;
	}
	for (uint64_t i = 0; i < n_blocks; i++) {
		struct extract_block *blk = &b.blocks[i];
		uint64_t start, end, kind, page, level, sec;

		if (number(&p, text_len, ' ', &start) < 0 || number(&p, text_len, ' ', &end) < 0 ||
		    number(&p, EXTRACT_BLOCK_TABLE, ' ', &kind) < 0 ||
		    number(&p, UINT32_MAX, ' ', &page) < 0 ||
		    number(&p, EXTRACT_MAX_LEVEL, ' ', &level) < 0 ||
		    number(&p, n_sections - 1, '\n', &sec) < 0 || start > end || start < prev_end)
			goto bad;
		blk->start = start;
		blk->end = end;
		blk->kind = (enum extract_block_kind)kind;
		blk->page = (unsigned)page;
		blk->level = (int)level;
		blk->section = sections[sec];
		if (page > b.page)
			b.page = (unsigned)page;
		prev_end = end;
		b.n_blocks++;
	}
	if (*p != '\0')
		goto bad;
	free(sections);
	return xb_finish(&b, (enum extract_format)fmt, doc, err);
bad:
	free(sections);
	return damaged(&b, "a section or block does not fit the text", err);
oom:
	free(sections);
	xb_release(&b);
	return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
}
