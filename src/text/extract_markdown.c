/*
 * Markdown with cmark (CommonMark's reference parser).
 *
 * The extracted text is the decoded Markdown source itself, not a rendering:
 * chunk offsets then point into what the user wrote, code keeps its fences
 * and tables their pipes, and nothing is lost that a reader of the file sees.
 * cmark supplies the structure: each top-level block's source position
 * (lines and byte columns) becomes a block; headings also update the section
 * path (their text taken from the inline nodes, so "## *Install*" is
 * "Install"). CommonMark core has no tables: a paragraph whose second line is
 * a GFM delimiter row ("| --- | :-: |") is marked TABLE so that chunkers split
 * it only between rows.
 *
 * cmark aborts the process when an allocation fails; the per-file size limit
 * is what bounds its memory.
 */
#include <cmark.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/vec.h"
#include "text/extract_int.h"

#include "core/banned.h"

struct lines {
	size_t *start; /* byte offset of each line's first byte */
	size_t n;
};

static int index_lines(const char *t, size_t len, struct lines *l)
{
	size_t alloc = 0;

	l->start = NULL;
	l->n = 0;
	for (size_t i = 0; i <= len;) {
		const char *nl;

		if (rag_grow((void **)&l->start, &alloc, l->n + 1, sizeof(*l->start)))
			return RAG_ENOMEM;
		l->start[l->n++] = i;
		nl = i < len ? memchr(t + i, '\n', len - i) : NULL;
		if (!nl)
			break;
		i = (size_t)(nl - t) + 1;
	}
	return 0;
}

/* Byte offset of (1-based line, 1-based column), clamped to that line. */
static size_t offset_of(const struct lines *l, size_t len, int line, int col)
{
	size_t s, e;

	if (line < 1)
		return 0;
	if ((size_t)line > l->n)
		return len;
	s = l->start[line - 1];
	e = (size_t)line < l->n ? l->start[line] - 1 : len;
	if (col < 1)
		return s;
	return s + (size_t)(col - 1) < e ? s + (size_t)(col - 1) : e;
}

static void inline_text(cmark_node *node, struct sbuf *out)
{
	cmark_iter *it = cmark_iter_new(node);
	cmark_event_type ev;

	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		cmark_node *n = cmark_iter_get_node(it);
		const char *lit;

		if (ev != CMARK_EVENT_ENTER)
			continue;
		switch (cmark_node_get_type(n)) {
		case CMARK_NODE_TEXT:
		case CMARK_NODE_CODE:
			lit = cmark_node_get_literal(n);
			if (lit)
				sbuf_addstr(out, lit);
			break;
		case CMARK_NODE_SOFTBREAK:
		case CMARK_NODE_LINEBREAK:
			sbuf_addch(out, ' ');
			break;
		default:
			break;
		}
	}
	cmark_iter_free(it);
}

/* A GFM delimiter row: cells of dashes with optional colons, at least one pipe
 * or two cells. */
static int is_delimiter_row(const char *s, size_t len)
{
	size_t pipes = 0, dashes = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '|')
			pipes++;
		else if (c == '-')
			dashes++;
		else if (c != ':' && c != ' ' && c != '\t')
			return 0;
	}
	return pipes > 0 && dashes > 0;
}

static int is_table(const char *t, size_t start, size_t end)
{
	const char *nl = memchr(t + start, '\n', end - start);
	const char *second, *nl2;

	if (!nl || !memchr(t + start, '|', (size_t)(nl - (t + start))))
		return 0;
	second = nl + 1;
	nl2 = memchr(second, '\n', (size_t)(t + end - second));
	return is_delimiter_row(second, nl2 ? (size_t)(nl2 - second) : (size_t)(t + end - second));
}

static int walk(cmark_node *root, const struct lines *l, struct extract_builder *b)
{
	size_t prev_end = 0, len = b->text.len;
	struct sbuf h = SBUF_INIT;

	for (cmark_node *n = cmark_node_first_child(root); n; n = cmark_node_next(n)) {
		cmark_node_type type = cmark_node_get_type(n);
		const char *t = b->text.buf;
		enum extract_block_kind kind = EXTRACT_BLOCK_PARAGRAPH;
		size_t start, end;
		int level = 0;

		start = offset_of(l, len, cmark_node_get_start_line(n), cmark_node_get_start_column(n));
		end = offset_of(l, len, cmark_node_get_end_line(n), cmark_node_get_end_column(n));
		if (end < len && cmark_node_get_end_column(n) > 0)
			end++; /* the end column is inclusive */
		if (start < prev_end)
			start = prev_end;
		while (end > start && (t[end - 1] == '\n' || t[end - 1] == ' ' || t[end - 1] == '\t'))
			end--;
		if (type == CMARK_NODE_THEMATIC_BREAK || end <= start)
			continue;
		switch (type) {
		case CMARK_NODE_HEADING:
			kind = EXTRACT_BLOCK_HEADING;
			level = cmark_node_get_heading_level(n);
			sbuf_reset(&h);
			inline_text(n, &h);
			if (sbuf_error(&h)) {
				sbuf_release(&h);
				return RAG_ENOMEM;
			}
			xb_heading(b, level, h.buf, h.len);
			if (level == 1)
				xb_title(b, h.buf, h.len);
			break;
		case CMARK_NODE_CODE_BLOCK:
			kind = EXTRACT_BLOCK_CODE;
			break;
		case CMARK_NODE_LIST:
			kind = EXTRACT_BLOCK_LIST;
			break;
		case CMARK_NODE_PARAGRAPH:
			if (is_table(t, start, end))
				kind = EXTRACT_BLOCK_TABLE;
			break;
		default:
			break;
		}
		xb_mark(b, kind, level, start, end);
		prev_end = end;
	}
	sbuf_release(&h);
	return b->failed ? RAG_ENOMEM : 0;
}

int extract_markdown(const char *data, size_t len, struct extract_builder *b, struct rag_err *err)
{
	struct lines l = { 0 };
	cmark_node *root;
	int rc;

	rc = extract_decode_text(data, len, &b->text, err);
	if (rc < 0)
		return rc;
	rc = index_lines(b->text.buf, b->text.len, &l);
	if (rc < 0)
		return rag_err_set(err, rc, NULL, "out of memory while parsing Markdown");
	root = cmark_parse_document(b->text.buf, b->text.len, CMARK_OPT_DEFAULT);
	if (!root) {
		free(l.start);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while parsing Markdown");
	}
	rc = walk(root, &l, b);
	cmark_node_free(root);
	free(l.start);
	if (rc < 0)
		return rag_err_set(err, rc, NULL, "out of memory while parsing Markdown");
	return 0;
}
