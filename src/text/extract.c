/*
 * Extractor dispatch: choose the format, run its extractor into a builder,
 * hand the result over as one extract_document.
 *
 * Format choice, first that applies: the forced format; the content type
 * (application/octet-stream and none say nothing); the file name's
 * extension; the bytes (a "%PDF-" header, an HTML doctype or <html> tag,
 * else plain text). Whatever is chosen, text formats are then checked for
 * binary content (NUL bytes that are not UTF-16, known binary magic numbers)
 * and refused with RAG_EUNSUPPORTED, which the HTTP layer answers with 415.
 *
 * The builder (xb_*) is shared by all extractors: it appends blocks to one
 * text separated by blank lines and keeps the heading stack that makes the
 * section path. Section strings are interned per change of path, so every
 * block under one heading points at the same string; they are owned by the
 * document (priv_) and freed by extract_document_release.
 */
#include "text/extract.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/rag_error.h"
#include "core/vec.h"
#include "text/extract_int.h"
#include "text/utf8.h"

#include "core/banned.h"

struct extract_priv {
	char **strs;
	size_t n_strs;
};

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void xb_init(struct extract_builder *b)
{
	memset(b, 0, sizeof(*b));
	sbuf_init(&b->text, 0);
	b->section = "";
}

void xb_release(struct extract_builder *b)
{
	for (size_t i = 0; i < b->n_strs; i++)
		free(b->strs[i]);
	for (int i = 0; i <= EXTRACT_MAX_LEVEL; i++)
		free(b->heads[i]);
	free(b->strs);
	free(b->blocks);
	sbuf_release(&b->text);
	memset(b, 0, sizeof(*b));
}

/* Takes ownership of s (NULL means an allocation failed). */
static char *keep(struct extract_builder *b, char *s)
{
	if (!s || rag_grow((void **)&b->strs, &b->alloc_strs, b->n_strs + 1, sizeof(*b->strs))) {
		free(s);
		b->failed = 1;
		return NULL;
	}
	b->strs[b->n_strs++] = s;
	return s;
}

const char *xb_intern(struct extract_builder *b, const char *s, size_t len)
{
	return keep(b, strndup(s, len));
}

/* text[0..len) with runs of whitespace made one space and the ends trimmed. */
static char *collapse(const char *text, size_t len)
{
	char *out = malloc(len + 1);
	size_t n = 0;
	int space = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (is_ws(c)) {
			space = n > 0;
			continue;
		}
		if (space)
			out[n++] = ' ';
		space = 0;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return out;
}

void xb_heading(struct extract_builder *b, int level, const char *text, size_t len)
{
	struct sbuf path = SBUF_INIT;
	char *h;

	if (level < 1)
		level = 1;
	if (level > EXTRACT_MAX_LEVEL)
		level = EXTRACT_MAX_LEVEL;
	h = collapse(text, len);
	if (!h) {
		b->failed = 1;
		return;
	}
	for (int i = level; i <= EXTRACT_MAX_LEVEL; i++) {
		free(b->heads[i]);
		b->heads[i] = NULL;
	}
	b->heads[level] = h;
	for (int i = 1; i <= EXTRACT_MAX_LEVEL; i++) {
		if (!b->heads[i] || !b->heads[i][0])
			continue;
		if (path.len)
			sbuf_addstr(&path, " > ");
		sbuf_addstr(&path, b->heads[i]);
	}
	if (sbuf_error(&path)) {
		b->failed = 1;
		return;
	}
	b->section = path.len ? keep(b, sbuf_detach(&path, NULL)) : "";
	if (!b->section)
		b->section = "";
}

void xb_title(struct extract_builder *b, const char *text, size_t len)
{
	char *t;

	if (b->title)
		return;
	t = collapse(text, len);
	if (t && !t[0]) {
		free(t);
		return;
	}
	b->title = keep(b, t);
}

void xb_mark(struct extract_builder *b, enum extract_block_kind kind, int level, size_t start,
	     size_t end)
{
	struct extract_block *blk;

	if (start >= end)
		return;
	if (rag_grow((void **)&b->blocks, &b->alloc_blocks, b->n_blocks + 1, sizeof(*b->blocks))) {
		b->failed = 1;
		return;
	}
	blk = &b->blocks[b->n_blocks++];
	blk->start = start;
	blk->end = end;
	blk->kind = kind;
	blk->page = b->page;
	blk->level = kind == EXTRACT_BLOCK_HEADING ? level : 0;
	blk->section = b->section;
}

void xb_block(struct extract_builder *b, enum extract_block_kind kind, int level, const char *s,
	      size_t len)
{
	size_t start;

	/* Trim whole blank lines at the start (keeping a code line's indent) and
	 * all trailing whitespace. */
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n') {
			s += i + 1;
			len -= i + 1;
			i = (size_t)-1;
		} else if (!is_ws((unsigned char)s[i])) {
			break;
		}
	}
	while (len > 0 && is_ws((unsigned char)s[len - 1]))
		len--;
	if (kind != EXTRACT_BLOCK_CODE) {
		while (len > 0 && is_ws((unsigned char)s[0]))
			s++, len--;
	}
	if (len == 0)
		return;
	if (b->text.len)
		sbuf_add(&b->text, "\n\n", 2);
	start = b->text.len;
	sbuf_add(&b->text, s, len);
	if (sbuf_error(&b->text)) {
		b->failed = 1;
		return;
	}
	xb_mark(b, kind, level, start, b->text.len);
}

void xb_mark_paragraphs(struct extract_builder *b, size_t from)
{
	const char *t = b->text.buf;
	size_t len = b->text.len, i = from;

	while (i < len) {
		size_t start, end, line;
		int blank;

		/* Skip blank lines. */
		for (;;) {
			line = i;
			blank = 1;
			while (i < len && t[i] != '\n')
				blank &= is_ws((unsigned char)t[i++]);
			if (!blank || i >= len)
				break;
			i++;
		}
		if (blank)
			break;
		start = line;
		while (start < i && is_ws((unsigned char)t[start]))
			start++;
		end = i;
		/* Extend over following non-blank lines. */
		while (i < len) {
			size_t j = i + 1;

			line = j;
			blank = 1;
			while (j < len && t[j] != '\n')
				blank &= is_ws((unsigned char)t[j++]);
			if (blank || line >= len)
				break;
			i = j;
			end = j;
		}
		while (end > start && is_ws((unsigned char)t[end - 1]))
			end--;
		xb_mark(b, EXTRACT_BLOCK_PARAGRAPH, 0, start, end);
		if (i < len)
			i++;
	}
}

int xb_finish(struct extract_builder *b, enum extract_format format, struct extract_document *doc,
	      struct rag_err *err)
{
	struct extract_priv *priv;

	if (b->failed || sbuf_error(&b->text))
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while extracting text");
	priv = calloc(1, sizeof(*priv));
	if (!priv)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while extracting text");
	priv->strs = b->strs;
	priv->n_strs = b->n_strs;
	doc->text = sbuf_detach(&b->text, &doc->text_len);
	if (!doc->text) {
		free(priv);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while extracting text");
	}
	doc->title = b->title;
	doc->format = format;
	doc->blocks = b->blocks;
	doc->n_blocks = b->n_blocks;
	doc->n_pages = b->page;
	doc->priv_ = priv;
	b->strs = NULL;
	b->n_strs = 0;
	b->blocks = NULL;
	b->n_blocks = 0;
	xb_release(b);
	return 0;
}

void extract_document_release(struct extract_document *doc)
{
	struct extract_priv *priv;

	if (!doc)
		return;
	priv = doc->priv_;
	if (priv) {
		for (size_t i = 0; i < priv->n_strs; i++)
			free(priv->strs[i]);
		free(priv->strs);
		free(priv);
	}
	free(doc->text);
	free(doc->blocks);
	memset(doc, 0, sizeof(*doc));
}

static const char *const format_names[] = {
	[EXTRACT_AUTO] = "auto",
	[EXTRACT_TEXT] = "text",
	[EXTRACT_MARKDOWN] = "markdown",
	[EXTRACT_HTML] = "html",
	[EXTRACT_PDF] = "pdf",
};

const char *extract_format_name(enum extract_format f)
{
	if ((size_t)f < sizeof(format_names) / sizeof(format_names[0]))
		return format_names[f];
	return "unknown";
}

int extract_format_parse(const char *name, enum extract_format *out)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (name && strcmp(name, format_names[i]) == 0) {
			*out = (enum extract_format)i;
			return 0;
		}
	}
	return -1;
}

struct type_map {
	const char *key;
	enum extract_format format;
};

static const struct type_map content_types[] = {
	{ "text/plain", EXTRACT_TEXT },
	{ "text/markdown", EXTRACT_MARKDOWN },
	{ "text/x-markdown", EXTRACT_MARKDOWN },
	{ "text/html", EXTRACT_HTML },
	{ "application/xhtml+xml", EXTRACT_HTML },
	{ "application/pdf", EXTRACT_PDF },
	{ "application/x-pdf", EXTRACT_PDF },
};

static const struct type_map extensions[] = {
	{ "txt", EXTRACT_TEXT },	{ "text", EXTRACT_TEXT },     { "md", EXTRACT_MARKDOWN },
	{ "markdown", EXTRACT_MARKDOWN }, { "mdown", EXTRACT_MARKDOWN }, { "mkd", EXTRACT_MARKDOWN },
	{ "html", EXTRACT_HTML },	{ "htm", EXTRACT_HTML },      { "xhtml", EXTRACT_HTML },
	{ "pdf", EXTRACT_PDF },
};

/* 0 and *f set, 1 when the type says nothing, or RAG_EUNSUPPORTED. */
static int from_content_type(const char *ct, enum extract_format *f, struct rag_err *err)
{
	size_t len;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	len = strcspn(ct, "; \t");
	if (len == 0 || (len == 24 && strncasecmp(ct, "application/octet-stream", len) == 0))
		return 1;
	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++) {
		if (strlen(content_types[i].key) == len &&
		    strncasecmp(ct, content_types[i].key, len) == 0) {
			*f = content_types[i].format;
			return 0;
		}
	}
	return rag_err_set(err, RAG_EUNSUPPORTED, "content_type",
			   "content type '%.*s' is not supported (text/plain, text/markdown, "
			   "text/html, application/pdf)",
			   (int)(len > 100 ? 100 : len), ct);
}

static int from_extension(const char *name, enum extract_format *f)
{
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash + 1 : name, '.');

	if (!dot || !dot[1])
		return 1;
	for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) {
		if (strcasecmp(dot + 1, extensions[i].key) == 0) {
			*f = extensions[i].format;
			return 0;
		}
	}
	return 1;
}

static int starts_ci(const unsigned char *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len >= n && strncasecmp((const char *)p, s, n) == 0;
}

static enum extract_format sniff(const unsigned char *d, size_t len)
{
	size_t i = 0, head = len < 1024 ? len : 1024;

	if (memmem(d, head, "%PDF-", 5))
		return EXTRACT_PDF;
	if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
		i = 3;
	while (i < head && is_ws(d[i]))
		i++;
	if (starts_ci(d + i, len - i, "<!doctype html") || starts_ci(d + i, len - i, "<html"))
		return EXTRACT_HTML;
	return EXTRACT_TEXT;
}

static int choose(const unsigned char *d, size_t len, const struct extract_options *o,
		  enum extract_format *f, struct rag_err *err)
{
	int rc;

	if (o && o->format != EXTRACT_AUTO) {
		if ((size_t)o->format >= sizeof(format_names) / sizeof(format_names[0]))
			return rag_err_set(err, RAG_EINVAL, "format", "unknown format %d",
					   (int)o->format);
		*f = o->format;
		return 0;
	}
	if (o && o->content_type) {
		rc = from_content_type(o->content_type, f, err);
		if (rc <= 0)
			return rc;
	}
	if (o && o->name && from_extension(o->name, f) == 0)
		return 0;
	*f = sniff(d, len);
	return 0;
}

int extract_document(const void *data, size_t len, const struct extract_options *opts,
		     struct extract_document *doc, struct rag_err *err)
{
	const unsigned char *d = data;
	struct extract_builder b;
	enum extract_format f = EXTRACT_TEXT;
	const char *what = NULL;
	int rc;

	memset(doc, 0, sizeof(*doc));
	if (!data && len)
		return rag_err_set(err, RAG_EINVAL, NULL, "no data");
	if (opts && opts->max_bytes && len > opts->max_bytes)
		return rag_err_set(err, RAG_ETOOBIG, "file",
				   "file is %zu bytes, over the limit of %zu", len, opts->max_bytes);
	rc = choose(d, len, opts, &f, err);
	if (rc < 0)
		return rc;
	if (f != EXTRACT_PDF && extract_looks_binary(d, len, &what))
		return rag_err_set(err, RAG_EUNSUPPORTED, "file",
				   "binary content (%s) is not a supported document format", what);
	xb_init(&b);
	switch (f) {
	case EXTRACT_TEXT:
		rc = extract_text(data, len, &b, err);
		break;
	case EXTRACT_MARKDOWN:
		rc = extract_markdown(data, len, &b, err);
		break;
	case EXTRACT_HTML:
		rc = extract_html(data, len, &b, err);
		break;
	case EXTRACT_PDF:
		rc = extract_pdf(data, len, opts, &b, err);
		break;
	default:
		rc = rag_err_set(err, RAG_EINTERNAL, NULL, "no extractor for format %d", (int)f);
		break;
	}
	/* Whatever a parser let through, the text handed on is valid UTF-8. */
	if (rc == 0 && !utf8_valid(b.text.buf, b.text.len, NULL))
		rc = rag_err_set(err, RAG_EINVAL, "file", "extracted text is not valid UTF-8");
	if (rc == 0)
		rc = xb_finish(&b, f, doc, err);
	xb_release(&b);
	return rc;
}
