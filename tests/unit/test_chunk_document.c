/*
 * Tests of the recursive and structure-aware chunkers over extracted
 * documents: never over max_tokens, never across a heading (structured),
 * code and tables cut only at line ends, over-long lines cut at words then
 * code points, section paths and pages carried, each byte counted about once,
 * and invariants over many random documents. The counter is the stand-in of
 * test_chunk.c: one token per started 4 code points of each word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "text/chunk.h"
#include "text/extract.h"
#include "text/utf8.h"

struct counter {
	size_t calls, bytes;
};

static int count_cp4(void *ctx, const char *s, size_t len)
{
	struct counter *c = ctx;
	size_t cps = 0, i = 0, tokens = 0;

	if (c) {
		c->calls++;
		c->bytes += len;
	}
	while (i < len) {
		unsigned char ch = (unsigned char)s[i];
		size_t n = utf8_char_len((const unsigned char *)s + i, len - i);

		if (ch == ' ' || ch == '\n' || ch == '\t') {
			tokens += (cps + 3) / 4;
			cps = 0;
		} else {
			cps++;
		}
		i += n ? n : 1;
	}
	return (int)(tokens + (cps + 3) / 4);
}

static struct chunk_options opts(size_t max, size_t overlap, struct counter *c)
{
	struct chunk_options o = { max, overlap, count_cp4, c };
	return o;
}

static void check_pieces(const struct extract_document *d, const struct chunk_piece *p, size_t n,
			 size_t max)
{
	for (size_t i = 0; getenv("RAGD_TEST_DUMP") && i < n; i++)
		fprintf(stderr, "piece %zu [%zu,%zu) %zu tok p%u-%u '%s': '%.*s'\n", i, p[i].start,
			p[i].end, p[i].n_tokens, p[i].page_first, p[i].page_last, p[i].section,
			(int)(p[i].end - p[i].start), d->text + p[i].start);
	for (size_t i = 0; i < n; i++) {
		assert_true(p[i].start < p[i].end);
		assert_true(p[i].end <= d->text_len);
		assert_true(p[i].n_tokens <= max);
		assert_true(p[i].n_tokens > 0);
		assert_int_equal(p[i].ordinal, i);
		assert_non_null(p[i].section);
		assert_true((size_t)count_cp4(NULL, d->text + p[i].start, p[i].end - p[i].start) <=
			    max);
		assert_true(utf8_valid(d->text + p[i].start, p[i].end - p[i].start, NULL));
		assert_true(p[i].page_first <= p[i].page_last);
		if (i > 0) {
			assert_true(p[i].start > p[i - 1].start);
			assert_true(p[i].end > p[i - 1].end);
		}
	}
}

static void extract_md(const char *md, struct extract_document *d)
{
	struct extract_options o = { .format = EXTRACT_MARKDOWN };

	assert_int_equal(extract_document(md, strlen(md), &o, d, NULL), 0);
}

/* Every byte of text outside whitespace lies in some piece. */
static void check_covers(const struct extract_document *d, const struct chunk_piece *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < d->text_len; i++) {
		char c = d->text[i];

		while (k < n && p[k].end <= i)
			k++;
		if (c == ' ' || c == '\n' || c == '\t')
			continue;
		assert_true(k < n && p[k].start <= i);
	}
}

static const char guide[] = "# Guide\n\nIntro one. Intro two.\n\n"
			    "## Install\n\n### Linux\n\nRun the installer now.\n\n"
			    "## Usage\n\nUse it well.\n";

static void test_structured_never_crosses_headings(void **state)
{
	struct extract_document d;
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(100, 0, NULL);
	size_t n = 0;

	(void)state;
	extract_md(guide, &d);
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 100);
	check_covers(&d, p, n);
	/* Guide; Install + Linux (a heading-only section joins the deeper one); Usage. */
	assert_int_equal(n, 3);
	assert_string_equal(p[0].section, "Guide");
	assert_memory_equal(d.text + p[0].start, "# Guide\n\nIntro one. Intro two.",
			    p[0].end - p[0].start);
	assert_string_equal(p[1].section, "Guide > Install > Linux");
	assert_memory_equal(d.text + p[1].start, "## Install", 10);
	assert_string_equal(p[2].section, "Guide > Usage");
	free(p);

	/* Recursive: everything fits in one chunk, headings crossed. */
	assert_int_equal(chunk_document(&d, &o, CHUNK_RECURSIVE, &p, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].start, 0);
	assert_int_equal(p[0].end, d.text_len - 1);
	assert_string_equal(p[0].section, "Guide");
	free(p);
	extract_document_release(&d);
}

static void test_paragraph_kept_whole_sentences_merged(void **state)
{
	const char *t = "Ab cd ef. Gh ij.\n\n"
			"One two six. Fou fiv six. Sev eig nin. Ten.\n";
	struct extract_options eo = { .format = EXTRACT_TEXT };
	struct extract_document d;
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(6, 0, NULL);
	size_t n = 0;

	(void)state;
	assert_int_equal(extract_document(t, strlen(t), &eo, &d, NULL), 0);
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 6);
	check_covers(&d, p, n);
	/* The first paragraph (5 tokens) fits whole; the second is cut at sentences. */
	assert_int_equal(n, 3);
	assert_memory_equal(d.text + p[0].start, "Ab cd ef. Gh ij.", p[0].end - p[0].start);
	assert_memory_equal(d.text + p[1].start, "One two six. Fou fiv six.",
			    p[1].end - p[1].start);
	assert_memory_equal(d.text + p[2].start, "Sev eig nin. Ten.", p[2].end - p[2].start);
	free(p);
	extract_document_release(&d);
}

static void test_code_cut_at_line_ends(void **state)
{
	char md[4096];
	size_t len = (size_t)snprintf(md, sizeof(md), "# Code\n\n```c\n");
	struct extract_document d;
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(10, 0, NULL);
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 30; i++)
		len += (size_t)snprintf(md + len, sizeof(md) - len, "x%d = y + z;\n", i);
	/* One line far over the limit: cut at words, then code points. */
	len += (size_t)snprintf(md + len, sizeof(md) - len, "long");
	for (int i = 0; i < 40; i++)
		len += (size_t)snprintf(md + len, sizeof(md) - len, " w%d", i);
	len += (size_t)snprintf(md + len, sizeof(md) - len, " %s\n```\n",
				"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
	extract_md(md, &d);
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 10);
	check_covers(&d, p, n);
	for (size_t i = 0; i < n; i++) {
		const char *s = d.text + p[i].start;

		if (p[i].end >= (size_t)(strstr(d.text, "long") - d.text))
			continue;
		/* Before the long line every chunk is whole lines. */
		assert_true(p[i].start == 0 || s[-1] == '\n');
		assert_true(d.text[p[i].end] == '\n');
	}
	free(p);
	extract_document_release(&d);
}

static void test_pages_and_fixed(void **state)
{
	char text[] = "page one words here\n\npage two words here\n\npage three";
	struct extract_block blocks[] = {
		{ 0, 19, EXTRACT_BLOCK_PARAGRAPH, 1, 0, "" },
		{ 21, 40, EXTRACT_BLOCK_PARAGRAPH, 2, 0, "" },
		{ 42, 52, EXTRACT_BLOCK_PARAGRAPH, 3, 0, "" },
	};
	struct extract_document d = { .text = text, .text_len = strlen(text), .blocks = blocks,
				      .n_blocks = 3, .n_pages = 3 };
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(8, 0, NULL);
	size_t n = 0;

	(void)state;
	assert_int_equal(chunk_document(&d, &o, CHUNK_RECURSIVE, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 8);
	assert_int_equal(n, 2);
	assert_int_equal(p[0].page_first, 1);
	assert_int_equal(p[0].page_last, 1);
	assert_int_equal(p[1].page_first, 2);
	assert_int_equal(p[1].page_last, 3);
	free(p);
	assert_int_equal(chunk_document(&d, &o, CHUNK_FIXED, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 8);
	assert_int_equal(p[0].page_first, 1);
	assert_int_equal(p[n - 1].page_last, 3);
	free(p);
	/* Overlapping blocks are refused. */
	blocks[1].start = 10;
	assert_int_equal(chunk_document(&d, &o, CHUNK_RECURSIVE, &p, &n, NULL), RAG_EINVAL);
}

static void test_overlap(void **state)
{
	const char *t = "S1 a. S2 b. S3 c. S4 d. S5 e. S6 f.";
	struct extract_document d = { .text = (char *)t, .text_len = strlen(t) };
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(6, 2, NULL);
	size_t n = 0;

	(void)state;
	assert_int_equal(chunk_document(&d, &o, CHUNK_RECURSIVE, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 6);
	/* Sentences of 2 tokens, 3 a chunk, each next one repeating the last. */
	assert_int_equal(n, 3);
	assert_memory_equal(t + p[0].start, "S1 a. S2 b. S3 c.", p[0].end - p[0].start);
	assert_memory_equal(t + p[1].start, "S3 c. S4 d. S5 e.", p[1].end - p[1].start);
	assert_memory_equal(t + p[2].start, "S5 e. S6 f.", p[2].end - p[2].start);
	free(p);
}

static void test_counts_each_byte_about_once(void **state)
{
	struct extract_options eo = { .format = EXTRACT_MARKDOWN };
	struct extract_document d;
	struct chunk_piece *p = NULL;
	struct counter c = { 0 };
	struct chunk_options o = opts(64, 0, &c);
	char *md = malloc(200000);
	size_t len = 0, n = 0;

	(void)state;
	assert_non_null(md);
	for (int s = 0; s < 40; s++) {
		len += (size_t)snprintf(md + len, 200000 - len, "## Section %d\n\n", s);
		for (int para = 0; para < 6; para++) {
			for (int w = 0; w < 10 + para * 9; w++)
				len += (size_t)snprintf(md + len, 200000 - len, "word%d%s", w,
							w % 7 == 6 ? ". " : " ");
			len += (size_t)snprintf(md + len, 200000 - len, "\n\n");
		}
	}
	/* And a sentence far over the limit: its words are counted once each. */
	for (int w = 0; w < 2000; w++)
		len += (size_t)snprintf(md + len, 200000 - len, "run%d ", w);
	assert_int_equal(extract_document(md, len, &eo, &d, NULL), 0);
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), 0);
	check_pieces(&d, p, n, 64);
	check_covers(&d, p, n);
	assert_true(c.bytes <= d.text_len * 2);
	free(p);
	free(md);
	extract_document_release(&d);
}

/* Random documents: words, long words, CJK, headings, code, tables. */
static void test_random_documents(void **state)
{
	static const char *const words[] = { "a",	"to",	 "the",	   "chunk", "tokenizer",
					     "é",	"日本語", "x.",	   "end.",  "Who?",
					     "supercalifragilistic", "naïve" };
	unsigned seed = 12345;
	char *md = malloc(20000);

	(void)state;
	assert_non_null(md);
	for (int round = 0; round < 300; round++) {
		struct extract_document d;
		struct extract_options eo = { .format = EXTRACT_MARKDOWN };
		struct chunk_piece *p = NULL;
		size_t len = 0, n = 0, max;
		struct chunk_options o;

		for (int b = 0; b < 12; b++) {
			seed = seed * 1103515245 + 12345;
			switch ((seed >> 16) % 5) {
			case 0:
				len += (size_t)snprintf(md + len, 20000 - len, "%.*s H%d\n\n",
							(int)((seed >> 8) % 4) + 1, "####", b);
				break;
			case 1:
				len += (size_t)snprintf(md + len, 20000 - len, "```\n");
				for (int l = 0; l < (int)((seed >> 4) % 8); l++)
					len += (size_t)snprintf(md + len, 20000 - len,
								"code %s line %d\n",
								words[(seed >> l) % 12], l);
				len += (size_t)snprintf(md + len, 20000 - len, "```\n\n");
				break;
			case 2:
				len += (size_t)snprintf(md + len, 20000 - len,
							"| a | b |\n|---|---|\n| %s | %s |\n\n",
							words[seed % 12], words[(seed >> 3) % 12]);
				break;
			default:
				for (int w = 0; w < (int)((seed >> 6) % 60); w++) {
					seed = seed * 1103515245 + 12345;
					len += (size_t)snprintf(md + len, 20000 - len, "%s ",
								words[(seed >> 16) % 12]);
				}
				len += (size_t)snprintf(md + len, 20000 - len, "\n\n");
			}
		}
		max = 1 + (size_t)(round % 17);
		o = opts(max, round % 3 == 0 ? max / 2 : 0, NULL);
		assert_int_equal(extract_document(md, len, &eo, &d, NULL), 0);
		for (int s = CHUNK_FIXED; s <= CHUNK_STRUCTURED; s++) {
			assert_int_equal(chunk_document(&d, &o, (enum chunk_strategy)s, &p, &n, NULL),
					 0);
			check_pieces(&d, p, n, max);
			if (o.overlap_tokens == 0)
				check_covers(&d, p, n);
			free(p);
		}
		extract_document_release(&d);
	}
	free(md);
}

static void test_names_and_errors(void **state)
{
	struct extract_document d = { .text = (char *)"x", .text_len = 1 };
	struct chunk_piece *p = NULL;
	struct chunk_options o = opts(4, 4, NULL);
	enum chunk_strategy s;
	size_t n;

	(void)state;
	assert_int_equal(chunk_strategy_parse("structured", &s), 0);
	assert_int_equal(s, CHUNK_STRUCTURED);
	assert_int_equal(chunk_strategy_parse("recursive", &s), 0);
	assert_int_equal(s, CHUNK_RECURSIVE);
	assert_int_equal(chunk_strategy_parse("fixed", &s), 0);
	assert_int_equal(s, CHUNK_FIXED);
	assert_int_equal(chunk_strategy_parse("semantic", &s), -1);
	assert_string_equal(chunk_strategy_name(CHUNK_DEFAULT_STRATEGY), "structured");
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), RAG_EINVAL);
	o.overlap_tokens = 0;
	d.text_len = 0;
	assert_int_equal(chunk_document(&d, &o, CHUNK_STRUCTURED, &p, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structured_never_crosses_headings),
		cmocka_unit_test(test_paragraph_kept_whole_sentences_merged),
		cmocka_unit_test(test_code_cut_at_line_ends),
		cmocka_unit_test(test_pages_and_fixed),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_counts_each_byte_about_once),
		cmocka_unit_test(test_random_documents),
		cmocka_unit_test(test_names_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
