/*
 * HTML with libxml2's HTML parser (a tolerant HTML 4 parser that recovers
 * from the tag soup real pages hold; gumbo was the alternative, unmaintained
 * since 2016 and slower).
 *
 * The parsed tree is walked once: the content root is <main> (or an element
 * with role="main"), else the only <article>, else <body>. Elements that are
 * not content are skipped whole: script, style, nav, header, footer, aside,
 * noscript, template, form, iframe, svg, button, select, and anything with
 * role navigation, banner, contentinfo, complementary or search, or with a
 * class generators use for navigation (DocBook's navheader and navfooter,
 * Sphinx's sphinxsidebar, breadcrumbs, ...). Text is
 * gathered into the current block with runs of whitespace collapsed; block
 * elements (p, div, li, ...) end a block; h1-h6 become HEADING blocks and the
 * section path; <pre> becomes a CODE block with its whitespace kept; a table
 * becomes one TABLE block, a row per line, cells joined by " | ". Entities
 * are decoded by the parser.
 *
 * Encoding: bytes that are valid UTF-8 are parsed as UTF-8 (libxml2 would
 * otherwise guess Latin-1 for a page without a charset declaration); anything
 * else is left to libxml2's detection (BOM, <meta charset>), which falls back
 * to Latin-1.
 *
 * Nesting deeper than HTML_MAX_DEPTH is not walked (its text is dropped), so
 * a hostile page cannot overflow the stack.
 */
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "text/extract_int.h"
#include "text/utf8.h"

#include "core/banned.h"

#define HTML_MAX_DEPTH 256 /* libxml2's own default limit for XML nesting */

struct hctx {
	struct extract_builder *b;
	struct sbuf cur; /* the block being gathered */
};

static const char *const dropped[] = {
	"script", "style", "nav",    "header", "footer", "aside",  "noscript", "template",
	"form",   "iframe", "svg",   "button", "select", "object", "head",     "canvas",
};

static const char *const dropped_roles[] = {
	"navigation", "banner", "contentinfo", "complementary", "search",
};

/* Class names that generators use for navigation (DocBook, Sphinx, common sites). */
static const char *const dropped_classes[] = {
	"navheader", "navfooter", "navbar",	  "navigation", "breadcrumb", "breadcrumbs",
	"sidebar",   "sphinxsidebar", "skip-link", "site-header", "site-footer", "headerlink",
};

static const char *const blocks[] = {
	"p",	  "div",     "section", "article", "main",	 "li",	   "ul",     "ol",
	"dl",	  "dt",	     "dd",	"blockquote", "figure", "figcaption", "address", "hr",
	"center", "details", "summary", "body",	   "fieldset", "caption", "tr",	    "td",
	"th",	  "tbody",   "thead",	"menu",	   "legend",	 "hgroup",
};

static int in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(name, list[i]) == 0)
			return 1;
	return 0;
}

#define IN(name, list) in_list((name), (list), sizeof(list) / sizeof((list)[0]))

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int attr_is(xmlNode *n, const char *attr, const char *const *list, size_t n_list)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)attr);
	int hit = v && in_list((const char *)v, list, n_list);

	xmlFree(v);
	return hit;
}

/* 1 when one of the space-separated classes of n is in the list. */
static int class_in(xmlNode *n, const char *const *list, size_t n_list)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)"class");
	const char *p = (const char *)v;
	int hit = 0;

	while (p && *p && !hit) {
		size_t len;

		while (*p && is_ws((unsigned char)*p))
			p++;
		len = strcspn(p, " \t\n\r\f");
		for (size_t i = 0; len && i < n_list && !hit; i++)
			hit = strlen(list[i]) == len && strncasecmp(p, list[i], len) == 0;
		p += len;
	}
	xmlFree(v);
	return hit;
}

static int skipped(xmlNode *n)
{
	const char *name = (const char *)n->name;

	return IN(name, dropped) ||
	       attr_is(n, "role", dropped_roles, sizeof(dropped_roles) / sizeof(dropped_roles[0])) ||
	       class_in(n, dropped_classes, sizeof(dropped_classes) / sizeof(dropped_classes[0]));
}

/* Appends text with whitespace runs collapsed to one space. */
static void add_text(struct sbuf *sb, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_ws(c)) {
			if (sb->len && sb->buf[sb->len - 1] != ' ' && sb->buf[sb->len - 1] != '\n')
				sbuf_addch(sb, ' ');
		} else {
			sbuf_addch(sb, c);
		}
	}
}

/* The text of a subtree, collapsed, without skipped elements. */
static void gather(xmlNode *n, struct sbuf *sb, int depth)
{
	if (depth > HTML_MAX_DEPTH)
		return;
	for (xmlNode *c = n->children; c; c = c->next) {
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
			if (c->content)
				add_text(sb, (const char *)c->content);
		} else if (c->type == XML_ELEMENT_NODE && !skipped(c)) {
			if (strcasecmp((const char *)c->name, "br") == 0)
				sbuf_addch(sb, ' ');
			gather(c, sb, depth + 1);
			if (IN((const char *)c->name, blocks) && sb->len && sb->buf[sb->len - 1] != ' ')
				sbuf_addch(sb, ' ');
		}
	}
}

/* Raw text of a subtree (for <pre>), whitespace kept. */
static void raw_text(xmlNode *n, struct sbuf *sb, int depth)
{
	if (depth > HTML_MAX_DEPTH)
		return;
	for (xmlNode *c = n->children; c; c = c->next) {
		if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
			sbuf_addstr(sb, (const char *)c->content);
		else if (c->type == XML_ELEMENT_NODE && strcasecmp((const char *)c->name, "br") == 0)
			sbuf_addch(sb, '\n');
		else if (c->type == XML_ELEMENT_NODE && !skipped(c))
			raw_text(c, sb, depth + 1);
	}
}

static void flush(struct hctx *h, enum extract_block_kind kind)
{
	if (sbuf_error(&h->cur))
		h->b->failed = 1;
	xb_block(h->b, kind, 0, h->cur.buf, h->cur.len);
	sbuf_reset(&h->cur);
}

/* Rows of a table (not of tables nested in it), one line each. */
static void table_rows(xmlNode *n, struct sbuf *out, int depth)
{
	if (depth > HTML_MAX_DEPTH)
		return;
	for (xmlNode *c = n->children; c; c = c->next) {
		const char *name = (const char *)c->name;

		if (c->type != XML_ELEMENT_NODE || skipped(c))
			continue;
		if (strcasecmp(name, "tr") == 0) {
			size_t row = out->len;

			for (xmlNode *cell = c->children; cell; cell = cell->next) {
				size_t at;

				if (cell->type != XML_ELEMENT_NODE ||
				    (strcasecmp((const char *)cell->name, "td") != 0 &&
				     strcasecmp((const char *)cell->name, "th") != 0))
					continue;
				if (out->len > row)
					sbuf_add(out, " | ", 3);
				at = out->len;
				gather(cell, out, depth + 2);
				while (out->len > at && out->buf[out->len - 1] == ' ')
					sbuf_truncate(out, out->len - 1);
			}
			if (out->len > row)
				sbuf_addch(out, '\n');
		} else if (strcasecmp(name, "table") != 0) {
			table_rows(c, out, depth + 1); /* thead, tbody, tfoot */
		}
	}
}

static void walk(struct hctx *h, xmlNode *n, int depth)
{
	if (depth > HTML_MAX_DEPTH)
		return;
	for (xmlNode *c = n->children; c; c = c->next) {
		const char *name = (const char *)c->name;

		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
			if (c->content)
				add_text(&h->cur, (const char *)c->content);
			continue;
		}
		if (c->type != XML_ELEMENT_NODE || skipped(c))
			continue;
		if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && !name[2]) {
			struct sbuf t = SBUF_INIT;

			flush(h, EXTRACT_BLOCK_PARAGRAPH);
			gather(c, &t, depth + 1);
			if (sbuf_error(&t))
				h->b->failed = 1;
			xb_heading(h->b, name[1] - '0', t.buf, t.len);
			xb_block(h->b, EXTRACT_BLOCK_HEADING, name[1] - '0', t.buf, t.len);
			sbuf_release(&t);
		} else if (strcasecmp(name, "pre") == 0) {
			flush(h, EXTRACT_BLOCK_PARAGRAPH);
			raw_text(c, &h->cur, depth + 1);
			flush(h, EXTRACT_BLOCK_CODE);
		} else if (strcasecmp(name, "table") == 0) {
			flush(h, EXTRACT_BLOCK_PARAGRAPH);
			table_rows(c, &h->cur, depth + 1);
			flush(h, EXTRACT_BLOCK_TABLE);
		} else if (strcasecmp(name, "br") == 0) {
			sbuf_addch(&h->cur, '\n');
		} else if (strcasecmp(name, "li") == 0) {
			flush(h, EXTRACT_BLOCK_PARAGRAPH);
			walk(h, c, depth + 1);
			flush(h, EXTRACT_BLOCK_LIST);
		} else if (IN(name, blocks)) {
			flush(h, EXTRACT_BLOCK_PARAGRAPH);
			walk(h, c, depth + 1);
			flush(h, EXTRACT_BLOCK_PARAGRAPH);
		} else {
			walk(h, c, depth + 1);
		}
	}
}

/* First element (document order) for which match() holds, or NULL. */
static xmlNode *find(xmlNode *n, int (*match)(xmlNode *), int depth, size_t *count)
{
	xmlNode *hit = NULL;

	if (depth > HTML_MAX_DEPTH)
		return NULL;
	for (xmlNode *c = n; c; c = c->next) {
		xmlNode *sub;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (match(c)) {
			if (!hit)
				hit = c;
			if (count)
				(*count)++;
			else
				return hit;
			continue;
		}
		sub = find(c->children, match, depth + 1, count);
		if (sub && !hit) {
			hit = sub;
			if (!count)
				return hit;
		}
	}
	return hit;
}

static int is_main(xmlNode *n)
{
	static const char *const main_role[] = { "main" };

	return strcasecmp((const char *)n->name, "main") == 0 || attr_is(n, "role", main_role, 1);
}

static int is_article(xmlNode *n)
{
	return strcasecmp((const char *)n->name, "article") == 0;
}

static int is_body(xmlNode *n)
{
	return strcasecmp((const char *)n->name, "body") == 0;
}

static int is_title(xmlNode *n)
{
	return strcasecmp((const char *)n->name, "title") == 0;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* libxml2's global tables must be set up once before threads parse. */
static void init_libxml(void)
{
	xmlInitParser();
}

int extract_html(const char *data, size_t len, struct extract_builder *b, struct rag_err *err)
{
	int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
		   HTML_PARSE_NONET | HTML_PARSE_COMPACT;
	struct hctx h = { b, SBUF_INIT };
	xmlNode *root, *content, *title;
	size_t n_articles = 0;
	htmlDocPtr doc;

	if (len > (size_t)INT32_MAX)
		return rag_err_set(err, RAG_ETOOBIG, "file", "HTML over 2 GiB is not supported");
	pthread_once(&init_once, init_libxml);
	doc = htmlReadMemory(data, (int)len, NULL, utf8_valid(data, len, NULL) ? "UTF-8" : NULL,
			     opts);
	if (!doc) {
		if (len == 0)
			return 0;
		return rag_err_set(err, RAG_EINVAL, "file", "HTML could not be parsed");
	}
	root = xmlDocGetRootElement(doc);
	if (root) {
		title = find(root, is_title, 0, NULL);
		if (title) {
			struct sbuf t = SBUF_INIT;

			gather(title, &t, 0);
			xb_title(b, t.buf, t.len);
			sbuf_release(&t);
		}
		content = find(root, is_main, 0, NULL);
		if (!content) {
			content = find(root, is_article, 0, &n_articles);
			if (n_articles != 1)
				content = NULL;
		}
		if (!content)
			content = find(root, is_body, 0, NULL);
		if (!content)
			content = root;
		walk(&h, content, 0);
		flush(&h, EXTRACT_BLOCK_PARAGRAPH);
	}
	sbuf_release(&h.cur);
	xmlFreeDoc(doc);
	if (b->failed)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while extracting HTML");
	return 0;
}
