/*
 * Extractor tests for text, Markdown and HTML: decoding (BOMs, UTF-16,
 * Latin-1, broken UTF-8, line ends), format choice (forced, content type,
 * extension, sniffing, binary refusal, size limit), and the structure each
 * extractor reports (blocks, section paths, titles). Inputs are written to a
 * temporary file and read back, as an upload would arrive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "text/extract.h"
#include "text/utf8.h"

/* Writes data to a temporary file and reads it back: a real file round trip. */
static char *via_file(const void *data, size_t len)
{
	char path[] = "/tmp/ragd-test-extract-XXXXXX";
	int fd = mkstemp(path);
	char *back = malloc(len + 1);
	FILE *f;

	assert_true(fd >= 0);
	assert_non_null(back);
	f = fdopen(fd, "w+b");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	rewind(f);
	assert_int_equal(fread(back, 1, len, f), len);
	fclose(f);
	unlink(path);
	return back;
}

static int run(const void *data, size_t len, const struct extract_options *o,
	       struct extract_document *doc, struct rag_err *err)
{
	char *copy = via_file(data, len);
	int rc = extract_document(copy, len, o, doc, err);

	free(copy);
	return rc;
}

/* Invariants every extracted document keeps. */
static void check_doc(const struct extract_document *d)
{
	size_t prev = 0;

	assert_non_null(d->text);
	assert_int_equal(strlen(d->text), d->text_len);
	assert_true(utf8_valid(d->text, d->text_len, NULL));
	assert_null(memchr(d->text, '\r', d->text_len));
	for (size_t i = 0; i < d->n_blocks; i++) {
		assert_true(d->blocks[i].start >= prev);
		assert_true(d->blocks[i].start < d->blocks[i].end);
		assert_true(d->blocks[i].end <= d->text_len);
		assert_non_null(d->blocks[i].section);
		prev = d->blocks[i].end;
	}
}

static const struct extract_block *find_block(const struct extract_document *d, const char *s)
{
	const char *at = strstr(d->text, s);

	assert_non_null(at);
	for (size_t i = 0; i < d->n_blocks; i++)
		if ((size_t)(at - d->text) >= d->blocks[i].start &&
		    (size_t)(at - d->text) < d->blocks[i].end)
			return &d->blocks[i];
	fail_msg("'%s' is in no block", s);
	return NULL;
}

static void expect_text(const void *in, size_t len, const char *want)
{
	struct extract_options o = { .format = EXTRACT_TEXT };
	struct extract_document d;
	struct rag_err err = { 0 };

	assert_int_equal(run(in, len, &o, &d, &err), 0);
	check_doc(&d);
	assert_string_equal(d.text, want);
	assert_int_equal(d.format, EXTRACT_TEXT);
	extract_document_release(&d);
	assert_null(d.text);
}

static void test_text_line_ends_and_bom(void **state)
{
	(void)state;
	expect_text("a\r\nb\rc\n", 7, "a\nb\nc\n");
	expect_text("\xEF\xBB\xBFh\xC3\xA9llo", 9, "h\xC3\xA9llo");
	expect_text("", 0, "");
}

static void test_text_utf16(void **state)
{
	/* "hé\r\n😀" in UTF-16 LE and BE with BOMs, and LE without one. */
	static const unsigned char le[] = { 0xFF, 0xFE, 'h', 0, 0xE9, 0, '\r', 0, '\n', 0,
					    0x3D, 0xD8, 0x00, 0xDE };
	static const unsigned char be[] = { 0xFE, 0xFF, 0, 'h', 0, 0xE9, 0, '\r', 0, '\n',
					    0xD8, 0x3D, 0xDE, 0x00 };
	static const unsigned char nobom[] = { 'a', 0, 'b', 0, 'c', 0, 'd', 0 };
	static const unsigned char lone[] = { 0xFF, 0xFE, 'h', 0, 0x3D, 0xD8, 'x', 0 };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	expect_text(le, sizeof(le), "h\xC3\xA9\n\xF0\x9F\x98\x80");
	expect_text(be, sizeof(be), "h\xC3\xA9\n\xF0\x9F\x98\x80");
	expect_text(nobom, sizeof(nobom), "abcd");
	/* Auto-detected too, though NUL bytes would otherwise mean binary. */
	assert_int_equal(run(le, sizeof(le), NULL, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_TEXT);
	extract_document_release(&d);
	assert_int_equal(run(lone, sizeof(lone), NULL, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "UTF-16 at byte offset 4"));
}

static void test_text_latin1_and_broken_utf8(void **state)
{
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	/* Latin-1 and Windows-1252 (curly quotes, euro) are converted. */
	expect_text("caf\xE9 \x93ok\x94 \x80", 11,
		    "caf\xC3\xA9 \xE2\x80\x9Cok\xE2\x80\x9D \xE2\x82\xAC");
	/* Valid UTF-8 with one bad byte is broken UTF-8: refused with the offset. */
	assert_int_equal(run("caf\xC3\xA9 \xFF!", 8, NULL, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "offset 6"));
	assert_null(d.text);
	/* A byte Windows-1252 leaves undefined is not Latin-1 text either. */
	rag_err_clear(&err);
	assert_int_equal(run("ab\x81", 3, NULL, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "offset 2"));
}

static void test_binary_refused(void **state)
{
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0 };
	static const unsigned char junk[] = { 'a', 'b', 0, 1, 2, 3, 0xFF, 0x10, 'z', 'z', 0, 0 };
	struct extract_options md = { .format = EXTRACT_MARKDOWN };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(run(png, sizeof(png), NULL, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "PNG"));
	rag_err_clear(&err);
	assert_int_equal(run(junk, sizeof(junk), &md, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "binary"));
	rag_err_clear(&err);
	assert_int_equal(run("PK\x03\x04zz", 6, NULL, &d, &err), RAG_EUNSUPPORTED);
}

static void test_format_choice(void **state)
{
	const char *html = "<html><body><p>x</p></body></html>";
	struct extract_options o = { 0 };
	struct extract_document d;
	struct rag_err err = { 0 };
	enum extract_format f;

	(void)state;
	/* Sniffed. */
	assert_int_equal(run(html, strlen(html), NULL, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_HTML);
	assert_string_equal(d.text, "x");
	extract_document_release(&d);
	/* Extension. */
	o.name = "notes/readme.MD";
	assert_int_equal(run("# T\n", 4, &o, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_MARKDOWN);
	extract_document_release(&d);
	/* Content type wins over the extension; parameters ignored. */
	o.content_type = "text/plain; charset=utf-8";
	assert_int_equal(run("# T\n", 4, &o, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_TEXT);
	extract_document_release(&d);
	/* octet-stream says nothing: the extension decides. */
	o.content_type = "application/octet-stream";
	assert_int_equal(run("# T\n", 4, &o, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_MARKDOWN);
	extract_document_release(&d);
	/* Forced wins over everything. */
	o.format = EXTRACT_HTML;
	assert_int_equal(run("<p>a &amp; b</p>", 16, &o, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_HTML);
	assert_string_equal(d.text, "a & b");
	extract_document_release(&d);
	/* Unsupported content type; size limit. */
	o.format = EXTRACT_AUTO;
	o.content_type = "image/png";
	assert_int_equal(run("x", 1, &o, &d, &err), RAG_EUNSUPPORTED);
	assert_string_equal(err.field, "content_type");
	rag_err_clear(&err);
	o.content_type = NULL;
	o.max_bytes = 3;
	assert_int_equal(run("abcd", 4, &o, &d, &err), RAG_ETOOBIG);
	/* Names. */
	assert_int_equal(extract_format_parse("markdown", &f), 0);
	assert_int_equal(f, EXTRACT_MARKDOWN);
	assert_int_equal(extract_format_parse("docx", &f), -1);
	assert_string_equal(extract_format_name(EXTRACT_PDF), "pdf");
}

static void test_text_paragraph_blocks(void **state)
{
	const char *t = "  first line\nsecond line\n\n\n  \nthird para\n";
	struct extract_document d;

	(void)state;
	assert_int_equal(run(t, strlen(t), NULL, &d, NULL), 0);
	check_doc(&d);
	assert_int_equal(d.n_blocks, 2);
	assert_int_equal(d.blocks[0].start, 2);
	assert_int_equal(d.blocks[0].end, 24);
	assert_memory_equal(d.text + d.blocks[1].start, "third para", 10);
	assert_int_equal(d.blocks[1].end - d.blocks[1].start, 10);
	assert_string_equal(d.blocks[1].section, "");
	extract_document_release(&d);
}

static const char markdown[] = "# Guide\n"
			       "\n"
			       "Intro *text*.\n"
			       "\n"
			       "## Install\n"
			       "\n"
			       "### Linux\n"
			       "\n"
			       "Run it.\n"
			       "\n"
			       "```sh\n"
			       "make\n"
			       "\n"
			       "make install\n"
			       "```\n"
			       "\n"
			       "| os | cmd |\n"
			       "|----|:---:|\n"
			       "| a  | b   |\n"
			       "\n"
			       "Setext *Usage*\n"
			       "--------------\n"
			       "\n"
			       "- one\n"
			       "- two\n"
			       "\n"
			       "After the list.\n"
			       "\n"
			       "    indented code\n";

static void test_markdown_structure(void **state)
{
	struct extract_options o = { .name = "guide.md" };
	const struct extract_block *b;
	struct extract_document d;

	(void)state;
	assert_int_equal(run(markdown, strlen(markdown), &o, &d, NULL), 0);
	check_doc(&d);
	/* The text is the source; blocks point into it. */
	assert_string_equal(d.text, markdown);
	assert_string_equal(d.title, "Guide");
	b = find_block(&d, "# Guide");
	assert_int_equal(b->kind, EXTRACT_BLOCK_HEADING);
	assert_int_equal(b->level, 1);
	assert_string_equal(b->section, "Guide");
	b = find_block(&d, "Intro");
	assert_int_equal(b->kind, EXTRACT_BLOCK_PARAGRAPH);
	assert_memory_equal(d.text + b->start, "Intro *text*.", b->end - b->start);
	b = find_block(&d, "Run it.");
	assert_string_equal(b->section, "Guide > Install > Linux");
	b = find_block(&d, "```sh");
	assert_int_equal(b->kind, EXTRACT_BLOCK_CODE);
	assert_memory_equal(d.text + b->start, "```sh\nmake\n\nmake install\n```", b->end - b->start);
	b = find_block(&d, "| os");
	assert_int_equal(b->kind, EXTRACT_BLOCK_TABLE);
	assert_memory_equal(d.text + b->end - 12, "| a  | b   |", 12);
	b = find_block(&d, "Setext");
	assert_int_equal(b->kind, EXTRACT_BLOCK_HEADING);
	assert_int_equal(b->level, 2);
	assert_string_equal(b->section, "Guide > Setext Usage");
	b = find_block(&d, "- one");
	assert_int_equal(b->kind, EXTRACT_BLOCK_LIST);
	assert_string_equal(b->section, "Guide > Setext Usage");
	b = find_block(&d, "indented code");
	assert_int_equal(b->kind, EXTRACT_BLOCK_CODE);
	assert_int_equal(d.n_pages, 0);
	extract_document_release(&d);
}

/*
 * Two BOMs: the second (U+FEFF) is dropped too, else cmark skips it and every
 * block is three bytes off (fuzz/corpus/fuzz_chunk/regress-double-bom.bin).
 */
static void test_markdown_double_bom(void **state)
{
	static const char utf8[] = "\xEF\xBB\xBF\xEF\xBB\xBF# T\xC3\xA9\n\nBody \xE6\xB1\xB7";
	static const unsigned char utf16[] = { 0xFE, 0xFF, 0xFE, 0xFF, 0, '#', 0, ' ', 0, 'T',
					       0, '\n', 0, '\n', 0x6C, 0x77 };
	struct extract_options o = { .format = EXTRACT_MARKDOWN };
	const struct extract_block *b;
	struct extract_document d;

	(void)state;
	assert_int_equal(run(utf8, strlen(utf8), &o, &d, NULL), 0);
	check_doc(&d);
	assert_string_equal(d.text, "# T\xC3\xA9\n\nBody \xE6\xB1\xB7");
	b = find_block(&d, "Body");
	assert_memory_equal(d.text + b->start, "Body \xE6\xB1\xB7", b->end - b->start);
	assert_int_equal(b->end, d.text_len);
	extract_document_release(&d);
	assert_int_equal(run(utf16, sizeof(utf16), &o, &d, NULL), 0);
	check_doc(&d);
	assert_string_equal(d.text, "# T\n\n\xE6\xB1\xB7");
	b = find_block(&d, "\xE6\xB1\xB7");
	assert_int_equal(b->start, 5);
	assert_int_equal(b->end, d.text_len);
	extract_document_release(&d);
}

static void test_markdown_latin1_crlf(void **state)
{
	const char *md = "# Caf\xE9\r\n\r\nTexte fran\xE7" "ais.\r\n";
	struct extract_options o = { .format = EXTRACT_MARKDOWN };
	struct extract_document d;

	(void)state;
	assert_int_equal(run(md, strlen(md), &o, &d, NULL), 0);
	check_doc(&d);
	assert_string_equal(d.title, "Caf\xC3\xA9");
	assert_string_equal(d.blocks[1].section, "Caf\xC3\xA9");
	assert_memory_equal(d.text + d.blocks[1].start, "Texte fran\xC3\xA7" "ais.", 16);
	extract_document_release(&d);
}

static const char page[] =
	"<!DOCTYPE html>\n<html><head><title> The  Manual </title>"
	"<style>body { color: red }</style><script>var secret = 1;</script></head>"
	"<body><header>SITE HEADER</header><nav><a href=/>Home</a> NAVLINK</nav>"
	"<div role=\"navigation\">SIDEBAR</div><div class=\"x navheader\">PREVNEXT</div>"
	"<main><h1>Chapter &amp; One<a class=\"headerlink\" href=\"#c\">¶</a></h1><p>Tom &amp; Jerry\n   caf&eacute;&nbsp;ok.</p>"
	"<h2>Details <small>(more)</small></h2><p>First<br>second</p>"
	"<pre>int main(void)\n{\n    return 0;\n}</pre>"
	"<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td> 1 </td></tr></table>"
	"<ul><li>item one</li><li>item two</li></ul>"
	"<noscript>NOSCRIPT</noscript><aside>ASIDE</aside></main>"
	"<footer>FOOTER</footer></body></html>";

static void test_html_main_content(void **state)
{
	struct extract_options o = { .content_type = "text/html" };
	const struct extract_block *b;
	struct extract_document d;

	(void)state;
	assert_int_equal(run(page, strlen(page), &o, &d, NULL), 0);
	check_doc(&d);
	assert_string_equal(d.title, "The Manual");
	for (size_t i = 0; i < 9; i++) {
		static const char *const gone[] = { "secret",	"color", "SITE",  "NAVLINK", "SIDEBAR",
						    "NOSCRIPT", "ASIDE", "FOOTER", "PREVNEXT" };

		assert_null(strstr(d.text, gone[i]));
	}
	b = find_block(&d, "Chapter & One");
	assert_int_equal(b->kind, EXTRACT_BLOCK_HEADING);
	assert_int_equal(b->level, 1);
	assert_string_equal(b->section, "Chapter & One");
	b = find_block(&d, "Tom & Jerry caf\xC3\xA9\xC2\xA0ok.");
	assert_int_equal(b->kind, EXTRACT_BLOCK_PARAGRAPH);
	b = find_block(&d, "First\nsecond");
	assert_string_equal(b->section, "Chapter & One > Details (more)");
	b = find_block(&d, "int main(void)\n{\n    return 0;\n}");
	assert_int_equal(b->kind, EXTRACT_BLOCK_CODE);
	b = find_block(&d, "Name | Value\na | 1");
	assert_int_equal(b->kind, EXTRACT_BLOCK_TABLE);
	b = find_block(&d, "item two");
	assert_int_equal(b->kind, EXTRACT_BLOCK_LIST);
	extract_document_release(&d);
}

static void test_html_body_and_charset(void **state)
{
	/* No <main>: the body; Latin-1 declared in a meta tag. */
	const char *h = "<html><head><meta charset=\"iso-8859-1\"></head>"
			"<body><h3>Caf\xE9</h3><div>one</div><div>two <b>bold</b> three</div>"
			"<script>x()</script></body></html>";
	struct extract_document d;

	(void)state;
	assert_int_equal(run(h, strlen(h), NULL, &d, NULL), 0);
	check_doc(&d);
	assert_int_equal(d.format, EXTRACT_HTML);
	assert_null(d.title);
	assert_string_equal(d.text, "Caf\xC3\xA9\n\none\n\ntwo bold three");
	assert_string_equal(d.blocks[2].section, "Caf\xC3\xA9");
	extract_document_release(&d);
}

static void test_html_deep_nesting(void **state)
{
	size_t depth = 5000, len = 0;
	char *h = malloc(depth * 10 + 64);

	(void)state;
	assert_non_null(h);
	for (size_t i = 0; i < depth; i++)
		len += (size_t)snprintf(h + len, 8, "<div>");
	len += (size_t)snprintf(h + len, 16, "deep text");
	{
		struct extract_document d;
		struct extract_options o = { .format = EXTRACT_HTML };

		assert_int_equal(extract_document(h, len, &o, &d, NULL), 0);
		check_doc(&d);
		extract_document_release(&d);
	}
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_line_ends_and_bom),
		cmocka_unit_test(test_markdown_double_bom),
		cmocka_unit_test(test_text_utf16),
		cmocka_unit_test(test_text_latin1_and_broken_utf8),
		cmocka_unit_test(test_binary_refused),
		cmocka_unit_test(test_format_choice),
		cmocka_unit_test(test_text_paragraph_blocks),
		cmocka_unit_test(test_markdown_structure),
		cmocka_unit_test(test_markdown_latin1_crlf),
		cmocka_unit_test(test_html_main_content),
		cmocka_unit_test(test_html_body_and_charset),
		cmocka_unit_test(test_html_deep_nesting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
