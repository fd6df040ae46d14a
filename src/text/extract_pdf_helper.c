/*
 * ragd-extract-pdf: the PDF text extractor, run by ragd as a separate process
 * (see extract_pdf.c). Poppler is GPL, and a parser crash on a hostile file
 * must not take the server down; this program is the only one that links it.
 *
 * Reads one PDF on stdin, writes on stdout the framed records described in
 * extract_int.h: the page count, the title, each page's text in order, and a
 * final 'D'; or an 'E' record with poppler's message and exit status 2.
 * Limits (time, memory) are set by the parent; this program trusts nothing
 * about its input and allocates only what poppler asks for.
 */
#include <glib.h>
#include <poppler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/extract_int.h"

#include "core/banned.h"

static void frame(char tag, const char *data, size_t len)
{
	printf("%c %zu\n", tag, len);
	fwrite(data, 1, len, stdout);
}

static int fail(const char *msg)
{
	frame('E', msg, strlen(msg));
	fflush(stdout);
	return 2;
}

static int read_all(char **out, size_t *len)
{
	size_t alloc = 1 << 16, n = 0;
	char *buf = g_try_malloc(alloc);

	if (!buf)
		return -1;
	for (;;) {
		ssize_t r;

		if (n == alloc) {
			char *nb = g_try_realloc(buf, alloc * 2);

			if (!nb) {
				g_free(buf);
				return -1;
			}
			buf = nb;
			alloc *= 2;
		}
		r = read(0, buf + n, alloc - n);
		if (r < 0) {
			g_free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int main(void)
{
	PopplerDocument *doc;
	GError *gerr = NULL;
	GBytes *bytes;
	char *data, *title, count[32];
	size_t len;
	int n_pages;

	if (read_all(&data, &len) < 0)
		return fail("could not read the PDF from stdin");
	fputs(EXTRACT_PDF_MAGIC, stdout);
	bytes = g_bytes_new_take(data, len);
	doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	if (!doc) {
		int rc = fail(gerr && gerr->message ? gerr->message : "unknown poppler error");

		g_clear_error(&gerr);
		g_bytes_unref(bytes);
		return rc;
	}
	n_pages = poppler_document_get_n_pages(doc);
	snprintf(count, sizeof(count), "%d", n_pages);
	frame('N', count, strlen(count));
	title = poppler_document_get_title(doc);
	if (title)
		frame('T', title, strlen(title));
	g_free(title);
	for (int i = 0; i < n_pages; i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		char *text = page ? poppler_page_get_text(page) : NULL;

		frame('P', text ? text : "", text ? strlen(text) : 0);
		g_free(text);
		if (page)
			g_object_unref(page);
	}
	frame('D', "", 0);
	g_object_unref(doc);
	g_bytes_unref(bytes);
	return fflush(stdout) == 0 ? 0 : 1;
}
