/*
 * Placeholder extractor until the real ones (text/Markdown/HTML/PDF) land
 * from the extract branch, which replaces this file: plain UTF-8 text only,
 * as one paragraph; anything else is RAG_EUNSUPPORTED.
 */
#include "text/extract.h"

#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "text/utf8.h"

#include "core/banned.h"

int extract_document(const void *data, size_t len, const struct extract_options *opts,
		     struct extract_document *doc, struct rag_err *err)
{
	size_t bad = 0;

	memset(doc, 0, sizeof(*doc));
	if (opts->format != EXTRACT_AUTO && opts->format != EXTRACT_TEXT)
		return rag_err_set(err, RAG_EUNSUPPORTED, "format", "format '%s' is not supported",
				   extract_format_name(opts->format));
	if (opts->max_bytes && len > opts->max_bytes)
		return rag_err_set(err, RAG_ETOOBIG, "file", "file is larger than %zu bytes",
				   opts->max_bytes);
	if (memchr(data, '\0', len) || !utf8_valid(data, len, &bad))
		return rag_err_set(err, RAG_EUNSUPPORTED, "file",
				   "binary or non-UTF-8 input is not supported");
	doc->text = malloc(len + 1);
	doc->blocks = calloc(1, sizeof(*doc->blocks));
	if (!doc->text || !doc->blocks) {
		extract_document_release(doc);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	memcpy(doc->text, data, len);
	doc->text[len] = '\0';
	doc->text_len = len;
	doc->format = EXTRACT_TEXT;
	doc->blocks[0].end = len;
	doc->blocks[0].kind = EXTRACT_BLOCK_PARAGRAPH;
	doc->blocks[0].section = "";
	doc->n_blocks = 1;
	return 0;
}

void extract_document_release(struct extract_document *doc)
{
	free(doc->text);
	free(doc->title);
	free(doc->blocks);
	memset(doc, 0, sizeof(*doc));
}

const char *extract_format_name(enum extract_format f)
{
	static const char *const names[] = { "auto", "text", "markdown", "html", "pdf" };

	return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "unknown";
}

int extract_format_parse(const char *name, enum extract_format *out)
{
	static const char *const names[] = { "auto", "text", "markdown", "html", "pdf" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum extract_format)i;
			return 0;
		}
	}
	return -1;
}
