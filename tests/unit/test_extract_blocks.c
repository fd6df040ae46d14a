/*
 * The stored form of an extracted document's structure
 * (extract_blocks_encode / extract_blocks_decode): Markdown, HTML and PDF-like
 * documents come back with the same blocks, kinds, pages, levels and section
 * paths, chunk the same way as the original, and damaged encodings are
 * refused with RAG_EINVAL instead of being read past their ends.
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

static const char MARKDOWN[] =
	"# Pump manual\n\nIntro paragraph about the pump.\n\n## Installation\n\n"
	"Bolt the pump to the floor.\n\n```\ncode line one\ncode line two\n```\n\n"
	"## Maintenance\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nReplace the seals.\n";

static const char HTML[] =
	"<html><head><title>Kettle</title></head><body><h1>Kettle guide</h1>"
	"<p>Fill the kettle.</p><h2>Descaling: a &lt;long&gt; heading\twith\ttabs</h2>"
	"<p>Boil vinegar.</p><pre>x = 1\ny = 2</pre></body></html>";

/* One token per word: enough to compare two chunkings of the same text. */
static int count_words(void *ctx, const char *s, size_t len)
{
	int n = 0, in = 0;

	(void)ctx;
	for (size_t i = 0; i < len; i++) {
		int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t';

		n += !sp && !in;
		in = !sp;
	}
	return n;
}

static void extract(const char *data, enum extract_format f, struct extract_document *d)
{
	struct extract_options o = { .format = f };

	assert_int_equal(extract_document(data, strlen(data), &o, d, NULL), 0);
}

/* Encodes d, decodes it over d's text and checks everything came back. */
static void round_trip(const struct extract_document *d)
{
	struct extract_document back;
	struct chunk_options co = { 6, 0, count_words, NULL };
	struct chunk_piece *p1 = NULL, *p2 = NULL;
	size_t n1 = 0, n2 = 0;
	char *enc = NULL;

	assert_int_equal(extract_blocks_encode(d, &enc, NULL), 0);
	assert_int_equal(extract_blocks_decode(d->text, d->text_len, enc, &back, NULL), 0);
	assert_int_equal(back.format, d->format);
	assert_int_equal(back.text_len, d->text_len);
	assert_memory_equal(back.text, d->text, d->text_len);
	assert_int_equal(back.n_blocks, d->n_blocks);
	for (size_t i = 0; i < d->n_blocks; i++) {
		assert_int_equal(back.blocks[i].start, d->blocks[i].start);
		assert_int_equal(back.blocks[i].end, d->blocks[i].end);
		assert_int_equal(back.blocks[i].kind, d->blocks[i].kind);
		assert_int_equal(back.blocks[i].page, d->blocks[i].page);
		assert_int_equal(back.blocks[i].level, d->blocks[i].level);
		assert_string_equal(back.blocks[i].section, d->blocks[i].section);
	}
	/* The structured chunker cuts the decoded document exactly as the original. */
	assert_int_equal(chunk_document(d, &co, CHUNK_STRUCTURED, &p1, &n1, NULL), 0);
	assert_int_equal(chunk_document(&back, &co, CHUNK_STRUCTURED, &p2, &n2, NULL), 0);
	assert_int_equal(n1, n2);
	assert_true(n1 > 1);
	for (size_t i = 0; i < n1; i++) {
		assert_int_equal(p1[i].start, p2[i].start);
		assert_int_equal(p1[i].end, p2[i].end);
		assert_int_equal(p1[i].page_first, p2[i].page_first);
		assert_string_equal(p1[i].section, p2[i].section);
	}
	free(p1);
	free(p2);
	free(enc);
	extract_document_release(&back);
}

static void test_markdown_and_html(void **state)
{
	struct extract_document d;
	char *enc = NULL;

	(void)state;
	extract(MARKDOWN, EXTRACT_MARKDOWN, &d);
	round_trip(&d);
	/* Each distinct section path is written once. */
	assert_int_equal(extract_blocks_encode(&d, &enc, NULL), 0);
	assert_non_null(strstr(enc, "26:Pump manual > Installation\n"));
	assert_null(strstr(strstr(enc, "Installation\n") + 1, "26:Pump manual > Installation\n"));
	free(enc);
	extract_document_release(&d);
	extract(HTML, EXTRACT_HTML, &d);
	round_trip(&d);
	extract_document_release(&d);
}

/* Pages, as the PDF extractor makes them, come back on every block. */
static void test_pages(void **state)
{
	static const char text[] = "page one words here\n\npage two words there\n\nlast";
	struct extract_document d, back;
	char *enc = NULL;

	(void)state;
	/* Built through the decoder itself from a hand-written encoding. */
	assert_int_equal(extract_blocks_decode(text, strlen(text),
					       "B1 4 2 3\n0:\n5:Intro\n"
					       "0 19 1 1 0 0\n21 41 1 2 0 1\n43 47 1 3 0 1\n",
					       &d, NULL),
			 0);
	assert_int_equal(d.format, EXTRACT_PDF);
	assert_int_equal(d.n_pages, 3);
	assert_int_equal(d.blocks[1].page, 2);
	assert_string_equal(d.blocks[2].section, "Intro");
	round_trip(&d);
	assert_int_equal(extract_blocks_encode(&d, &enc, NULL), 0);
	assert_string_equal(enc, "B1 4 2 3\n0:\n5:Intro\n"
				 "0 19 1 1 0 0\n21 41 1 2 0 1\n43 47 1 3 0 1\n");
	assert_int_equal(extract_blocks_decode(text, strlen(text), enc, &back, NULL), 0);
	extract_document_release(&back);
	free(enc);
	extract_document_release(&d);
}

static void test_damaged(void **state)
{
	static const char text[] = "hello world, two blocks";
	static const char *const bad[] = {
		"",
		"B2 1 1 1\n0:\n0 5 1 0 0 0\n",            /* unknown version */
		"B1 1 1 1\n0:\n0 99 1 0 0 0\n",           /* past the text */
		"B1 1 1 2\n0:\n6 11 1 0 0 0\n0 5 1 0 0 0\n", /* out of order */
		"B1 1 1 1\n0:\n0 5 9 0 0 0\n",            /* unknown kind */
		"B1 1 1 1\n0:\n0 5 1 0 0 1\n",            /* unknown section */
		"B1 1 1 1\n9:abc\n0 5 1 0 0 0\n",         /* section longer than what is left */
		"B1 1 1 1\n0:\n0 5 1 0 7 0\n",            /* heading level 7 */
		"B1 1 1 1\n0:\n0 5 1 0 0 0\ntrailing",    /* bytes after the last block */
		"B1 1 1 1\n0:\n5 0 1 0 0 0\n",            /* end before start */
		"B1 1 1 2\n0:\n0 5 1 0 0 0\n",            /* fewer blocks than said */
		"B1 1 999999999999 1\n0:\n0 5 1 0 0 0\n", /* more sections than bytes */
		"B1 1 1 1\n0:\n0 99999999999999999999999 1 0 0 0\n", /* overflow */
		"B1 9 1 1\n0:\n0 5 1 0 0 0\n",            /* unknown format */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct extract_document d;
		struct rag_err err = { 0 };

		if (extract_blocks_decode(text, strlen(text), bad[i], &d, &err) != RAG_EINVAL)
			fail_msg("case %zu was accepted", i);
		assert_null(d.text);
		assert_non_null(strstr(err.msg, "damaged"));
	}
}

/* A document with no blocks encodes and decodes to none. */
static void test_empty(void **state)
{
	struct extract_document d = { 0 }, back;
	char *enc = NULL;

	(void)state;
	d.text = "x";
	d.text_len = 1;
	assert_int_equal(extract_blocks_encode(&d, &enc, NULL), 0);
	assert_string_equal(enc, "B1 0 0 0\n");
	assert_int_equal(extract_blocks_decode("x", 1, enc, &back, NULL), 0);
	assert_int_equal(back.n_blocks, 0);
	free(enc);
	extract_document_release(&back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_markdown_and_html),
		cmocka_unit_test(test_pages),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
