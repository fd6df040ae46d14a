/*
 * config_load_file: the YAML adapter for config.c, the only file that sees
 * libyaml.
 *
 * libyaml's event parser is used rather than its document loader: nested
 * mappings flatten to dotted keys with a path buffer and a stack of its
 * lengths, each key's line number is at hand for messages, and no tree is
 * built. Every (key, value) pair goes to config_set() with the source
 * "path:line". Anchors/aliases and multiple documents have no meaning for
 * ragd settings and are rejected, so a misplaced value cannot be silently
 * ignored; so are sequences, except under the few keys that hold a list
 * (config_key_is_list): their items are joined into the key's text form,
 * scalars with ",", a mapping item as "field=value;field=value", and set
 * once at the sequence's end. libyaml's errors are translated here, once, into
 * RAG_EINVAL with "path:line:column: ...".
 */
#include "core/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/banned.h"

#define YAML_MAX_DEPTH 8 /* deeper than any key needs; bounds the stack */

struct loader {
	struct config *cfg;
	const char *path;
	struct rag_err *err;
	struct sbuf prefix;  /* dotted prefix of the open mapping: "" or "server." */
	struct sbuf key;     /* the pending key, once read and before its value */
	bool have_key;
	size_t key_line;
	size_t depth;        /* open mappings */
	size_t saved[YAML_MAX_DEPTH]; /* prefix lengths to restore on mapping end */
	int n_docs;
	/* Inside a list-valued key's sequence: */
	bool in_list, in_item, have_item_key;
	struct sbuf list_key;  /* its dotted key */
	struct sbuf list;      /* the joined text so far */
	struct sbuf item_key;  /* a mapping item's pending field name */
	size_t n_items, n_fields, list_line;
};

static int at(struct loader *l, const yaml_mark_t *mark, const char *what)
{
	return rag_err_set(l->err, RAG_EINVAL, NULL, "%s:%zu:%zu: %s", l->path, mark->line + 1,
			   mark->column + 1, what);
}

/* Applies value to the pending key, whose dotted name is built in prefix
 * and removed again. */
static int set_value(struct loader *l, const char *value)
{
	size_t plen = l->prefix.len;
	char source[512];
	int rc;

	sbuf_add(&l->prefix, l->key.buf, l->key.len);
	if (sbuf_error(&l->prefix))
		return rag_err_set(l->err, RAG_ENOMEM, NULL, "out of memory reading %s", l->path);
	snprintf(source, sizeof(source), "%s:%zu", l->path, l->key_line);
	rc = config_set(l->cfg, l->prefix.buf, value, source, l->err);
	sbuf_truncate(&l->prefix, plen);
	l->have_key = false;
	return rc;
}

/* Events inside a list-valued key's sequence. */
static int on_list_event(struct loader *l, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	const char *v = ev->type == YAML_SCALAR_EVENT ? (const char *)ev->data.scalar.value : "";
	char source[512];

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (strpbrk(v, !l->in_item ? ",\n" : l->have_item_key ? ",;\n" : ",;=\n"))
			return at(l, m, "a list item may not contain ',' ';' or a line break");
		if (!l->in_item) {
			if (l->n_items++)
				sbuf_addch(&l->list, ',');
			sbuf_addstr(&l->list, v);
		} else if (!l->have_item_key) {
			sbuf_reset(&l->item_key);
			sbuf_addstr(&l->item_key, v);
			l->have_item_key = true;
		} else {
			if (l->n_fields++)
				sbuf_addch(&l->list, ';');
			sbuf_add(&l->list, l->item_key.buf, l->item_key.len);
			sbuf_addch(&l->list, '=');
			sbuf_addstr(&l->list, v);
			l->have_item_key = false;
		}
		return 0;
	case YAML_MAPPING_START_EVENT:
		if (l->in_item)
			return at(l, m, "a list item's fields must be plain values");
		l->in_item = true;
		l->n_fields = 0;
		if (l->n_items++)
			sbuf_addch(&l->list, ',');
		return 0;
	case YAML_MAPPING_END_EVENT:
		l->in_item = false;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
		l->in_list = false;
		if (sbuf_error(&l->list) || sbuf_error(&l->item_key))
			return rag_err_set(l->err, RAG_ENOMEM, NULL, "out of memory reading %s",
					   l->path);
		snprintf(source, sizeof(source), "%s:%zu", l->path, l->list_line);
		return config_set(l->cfg, l->list_key.buf, l->list.buf, source, l->err);
	case YAML_SEQUENCE_START_EVENT:
		return at(l, m, "lists inside lists are not supported");
	case YAML_ALIAS_EVENT:
		return at(l, m, "aliases are not supported");
	default:
		return 0;
	}
}

static int on_event(struct loader *l, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;

	if (l->in_list)
		return on_list_event(l, ev);

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++l->n_docs > 1)
			return at(l, m, "only one YAML document is allowed");
		return 0;
	case YAML_MAPPING_START_EVENT:
		if (l->depth > 0 && !l->have_key)
			return at(l, m, "a mapping cannot be a key");
		if (l->depth == YAML_MAX_DEPTH)
			return at(l, m, "mappings nested too deeply");
		l->saved[l->depth++] = l->prefix.len;
		if (l->have_key) {
			sbuf_add(&l->prefix, l->key.buf, l->key.len);
			sbuf_addch(&l->prefix, '.');
			l->have_key = false;
		}
		return 0;
	case YAML_MAPPING_END_EVENT:
		sbuf_truncate(&l->prefix, l->saved[--l->depth]);
		return 0;
	case YAML_SCALAR_EVENT:
		if (l->depth == 0)
			return at(l, m, "the top level must be a mapping of settings");
		if (l->have_key)
			return set_value(l, (const char *)ev->data.scalar.value);
		sbuf_reset(&l->key);
		sbuf_add(&l->key, ev->data.scalar.value, ev->data.scalar.length);
		l->have_key = true;
		l->key_line = m->line + 1;
		return 0;
	case YAML_SEQUENCE_START_EVENT:
		if (l->have_key) {
			sbuf_add(&l->prefix, l->key.buf, l->key.len);
			if (config_key_is_list(l->prefix.buf)) {
				sbuf_reset(&l->list_key);
				sbuf_add(&l->list_key, l->prefix.buf, l->prefix.len);
				sbuf_truncate(&l->prefix, l->prefix.len - l->key.len);
				sbuf_reset(&l->list);
				l->in_list = true;
				l->in_item = l->have_item_key = false;
				l->n_items = 0;
				l->list_line = l->key_line;
				l->have_key = false;
				return 0;
			}
			return rag_err_set(l->err, RAG_EINVAL, l->prefix.buf,
					   "%s:%zu:%zu: %s: lists are not supported", l->path,
					   m->line + 1, m->column + 1, l->prefix.buf);
		}
		return at(l, m, "lists are not supported");
	case YAML_ALIAS_EVENT:
		return at(l, m, "aliases are not supported");
	default:
		return 0;
	}
}

int config_load_file(struct config *cfg, const char *path, struct rag_err *err)
{
	struct loader l = { .cfg = cfg, .path = path, .err = err };
	yaml_parser_t parser;
	yaml_event_t ev;
	FILE *f;
	int rc = 0;
	bool done = false;

	f = fopen(path, "rb");
	if (!f)
		return rag_err_set(err, RAG_EIO, NULL, "cannot open config file '%s': %s", path,
				   strerror(errno));
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory reading %s", path);
	}
	yaml_parser_set_input_file(&parser, f);
	sbuf_init(&l.prefix, 0);
	sbuf_init(&l.key, 0);
	sbuf_init(&l.list_key, 0);
	sbuf_init(&l.list, 0);
	sbuf_init(&l.item_key, 0);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = rag_err_set(err, RAG_EINVAL, NULL, "%s:%zu:%zu: YAML syntax error: %s%s%s",
					 path, parser.problem_mark.line + 1,
					 parser.problem_mark.column + 1,
					 parser.problem ? parser.problem : "unknown problem",
					 parser.context ? " " : "",
					 parser.context ? parser.context : "");
			break;
		}
		rc = on_event(&l, &ev);
		if (rc == 0 && (sbuf_error(&l.prefix) || sbuf_error(&l.key)))
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory reading %s", path);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	if (rc == 0 && ferror(f))
		rc = rag_err_set(err, RAG_EIO, NULL, "cannot read config file '%s'", path);
	sbuf_release(&l.prefix);
	sbuf_release(&l.key);
	sbuf_release(&l.list_key);
	sbuf_release(&l.list);
	sbuf_release(&l.item_key);
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}
