/*
 * PDF extraction through the ragd-extract-pdf helper process: a multi-page
 * PDF drawn with cairo's PDF surface (a real PDF writer) and written to a
 * file, then a truncated copy, garbage behind a PDF header, a missing helper,
 * helpers that crash or print nonsense, and the time and memory limits. The
 * helper is found next to this test executable, where CMake builds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#ifdef RAGD_HAVE_CAIRO
#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#endif

#include "core/rag_error.h"
#include "text/chunk.h"
#include "text/extract.h"
#include "text/utf8.h"

#define N_PAGES 3

static char pdf_path[] = "/tmp/ragd-test-pdf-XXXXXX";
static char *pdf;
static size_t pdf_len;

#ifdef RAGD_HAVE_CAIRO
static int make_pdf(void **state)
{
	cairo_surface_t *s;
	cairo_t *cr;
	FILE *f;
	int fd = mkstemp(pdf_path);

	(void)state;
	if (fd < 0)
		return -1;
	close(fd);
	s = cairo_pdf_surface_create(pdf_path, 595, 842);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, "Test Report");
	cr = cairo_create(s);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, 14);
	for (int p = 1; p <= N_PAGES; p++) {
		char line[64];

		snprintf(line, sizeof(line), "Page %d says hello%s", p, p == 2 ? " again" : "");
		cairo_move_to(cr, 72, 100);
		cairo_show_text(cr, line);
		cairo_move_to(cr, 72, 300);
		snprintf(line, sizeof(line), "Second paragraph of page %d.", p);
		cairo_show_text(cr, line);
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	cairo_surface_destroy(s);
	/* Fontconfig's caches would otherwise show as leaks under ASan. */
	cairo_debug_reset_static_data();
	FcFini();
	f = fopen(pdf_path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	pdf_len = (size_t)ftell(f);
	rewind(f);
	pdf = malloc(pdf_len);
	if (!pdf || fread(pdf, 1, pdf_len, f) != pdf_len) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}
#endif

static int drop_pdf(void **state)
{
	(void)state;
	unlink(pdf_path);
	free(pdf);
	return 0;
}

static void check_doc(const struct extract_document *d)
{
	size_t prev = 0;

	assert_true(utf8_valid(d->text, d->text_len, NULL));
	for (size_t i = 0; i < d->n_blocks; i++) {
		assert_true(d->blocks[i].start >= prev);
		assert_true(d->blocks[i].start < d->blocks[i].end);
		assert_true(d->blocks[i].end <= d->text_len);
		assert_true(d->blocks[i].page >= 1 && d->blocks[i].page <= d->n_pages);
		if (i > 0)
			assert_true(d->blocks[i].page >= d->blocks[i - 1].page);
		prev = d->blocks[i].end;
	}
}

static unsigned page_of(const struct extract_document *d, const char *s)
{
	const char *at = strstr(d->text, s);

	assert_non_null(at);
	for (size_t i = 0; i < d->n_blocks; i++)
		if ((size_t)(at - d->text) >= d->blocks[i].start &&
		    (size_t)(at - d->text) < d->blocks[i].end)
			return d->blocks[i].page;
	fail_msg("'%s' is in no block", s);
	return 0;
}

/* One token per word: enough to see pages carried into chunks. */
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

static void test_pdf_pages(void **state)
{
	struct extract_options o = { .name = "report.pdf" };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_PDF);
	assert_int_equal(d.n_pages, N_PAGES);
	assert_string_equal(d.title, "Test Report");
	check_doc(&d);
	assert_int_equal(page_of(&d, "Page 1 says hello"), 1);
	assert_int_equal(page_of(&d, "Page 2 says hello again"), 2);
	assert_int_equal(page_of(&d, "Second paragraph of page 3."), 3);
	{
		struct chunk_options co = { 6, 0, count_words, NULL };
		struct chunk_piece *p = NULL;
		size_t n = 0;

		assert_int_equal(chunk_document(&d, &co, CHUNK_STRUCTURED, &p, &n, NULL), 0);
		assert_true(n >= N_PAGES);
		assert_int_equal(p[0].page_first, 1);
		assert_int_equal(p[n - 1].page_last, N_PAGES);
		for (size_t i = 0; i < n; i++) {
			const char *page = strstr(d.text + p[i].start, "page ");

			assert_true(p[i].page_first <= p[i].page_last);
			/* Each chunk here names its page in its own words. */
			if (page && page < d.text + p[i].end && page[5] >= '1' && page[5] <= '3')
				assert_int_equal(p[i].page_first, (unsigned)(page[5] - '0'));
		}
		free(p);
	}
	extract_document_release(&d);

	/* Sniffed from the bytes alone. */
	assert_int_equal(extract_document(pdf, pdf_len, NULL, &d, &err), 0);
	assert_int_equal(d.format, EXTRACT_PDF);
	extract_document_release(&d);
}

static void test_pdf_truncated_and_garbage(void **state)
{
	static const char garbage[] = "%PDF-1.7\n\x01\x02 this is not a PDF at all \xff\xfe\n";
	struct extract_options o = { .format = EXTRACT_PDF };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(extract_document(pdf, pdf_len / 3, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "PDF"));
	assert_null(d.text);
	rag_err_clear(&err);
	assert_int_equal(extract_document(garbage, sizeof(garbage) - 1, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "PDF could not be read"));
	rag_err_clear(&err);
	assert_int_equal(extract_document("hello", 5, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "no %PDF- header"));
	rag_err_clear(&err);
	o.content_type = "application/pdf";
	o.format = EXTRACT_AUTO;
	assert_int_equal(extract_document("\x00\x01\x02", 3, &o, &d, &err), RAG_EINVAL);
}

/* A shell script standing in for the helper. */
static void fake_helper(char *path, const char *body)
{
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
}

static void test_pdf_helper_failures(void **state)
{
	char crash[] = "/tmp/ragd-test-helper-XXXXXX", junk[] = "/tmp/ragd-test-helper-XXXXXX";
	char sleepy[] = "/tmp/ragd-test-helper-XXXXXX";
	struct extract_options o = { .format = EXTRACT_PDF };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	o.pdf_helper = "/nonexistent/ragd-extract-pdf";
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "not available"));

	fake_helper(crash, "head -c 10 >/dev/null; kill -SEGV $$");
	o.pdf_helper = crash;
	rag_err_clear(&err);
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "signal 11"));

	fake_helper(junk, "cat >/dev/null; printf 'RAGDPDF1\\nP 99999\\nshort'");
	o.pdf_helper = junk;
	rag_err_clear(&err);
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "malformed"));

	/* Over the time limit: killed, and the call returns in time. */
	fake_helper(sleepy, "exec sleep 30");
	o.pdf_helper = sleepy;
	o.pdf_timeout_ms = 300;
	rag_err_clear(&err);
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "longer than 300 ms"));
	unlink(crash);
	unlink(junk);
	unlink(sleepy);
}

static void test_pdf_limits(void **state)
{
	struct extract_options o = { .format = EXTRACT_PDF };
	struct extract_document d;
	struct rag_err err = { 0 };

	(void)state;
	/* The real helper cannot even map poppler in 8 MiB: refused, not fatal. */
	o.pdf_memory_bytes = (size_t)8 << 20;
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EINVAL);
	/* And 1 ms is not enough time to start it. */
	o.pdf_memory_bytes = 0;
	o.pdf_timeout_ms = 1;
	rag_err_clear(&err);
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), RAG_EINVAL);
	/* Still usable afterwards. */
	o.pdf_timeout_ms = 0;
	assert_int_equal(extract_document(pdf, pdf_len, &o, &d, &err), 0);
	extract_document_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdf_pages),
		cmocka_unit_test(test_pdf_truncated_and_garbage),
		cmocka_unit_test(test_pdf_helper_failures),
		cmocka_unit_test(test_pdf_limits),
	};

#ifndef RAGD_HAVE_CAIRO
	(void)tests;
	(void)drop_pdf;
	return 0; /* cairo (libcairo2-dev) writes the test PDFs */
#else
	return cmocka_run_group_tests(tests, make_pdf, drop_pdf);
#endif
}
