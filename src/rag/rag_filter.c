/*
 * Filter parsing: JSON (jansson) to the store's expression tree. The tree's
 * strings point into the parsed JSON, which the filter keeps alive. Limits
 * on nodes and depth bound the SQL a client can make the store run.
 */
#include "rag/rag_filter.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/rag_error.h"
#include "store/store_filter.h"

#include "core/banned.h"

#define FILTER_PATH_MAX 128 /* dotted field paths longer than this are mistakes */
#define FILTER_MAX_VALUES 256 /* elements of one $in / $nin */

struct rag_filter {
	json_t *root;
	struct store_filter *tree;
	size_t n_nodes;
};

struct parse {
	struct rag_filter *f;
	struct rag_err *err;
};

static int bad(struct parse *p, const char *fmt, const char *what)
{
	return rag_err_set(p->err, RAG_EINVAL, "filter", fmt, what);
}

static void node_release(struct store_filter *n)
{
	for (size_t i = 0; i < n->n_children; i++)
		node_release(&n->children[i]);
	free(n->children);
	free(n->values);
}

static int scalar(struct parse *p, json_t *v, struct filter_value *out, const char *where)
{
	if (json_is_string(v)) {
		out->type = FILTER_STRING;
		out->s = json_string_value(v);
		return 0;
	}
	if (json_is_number(v)) {
		out->type = FILTER_NUMBER;
		out->n = json_number_value(v);
		return 0;
	}
	if (json_is_boolean(v)) {
		out->type = FILTER_BOOL;
		out->b = json_is_true(v);
		return 0;
	}
	return bad(p, "'%s' must be a string, a number or a boolean", where);
}

static int check_path(struct parse *p, const char *path)
{
	size_t len = strlen(path);

	if (len == 0 || len > FILTER_PATH_MAX || path[0] == '.' || path[len - 1] == '.' ||
	    strstr(path, ".."))
		return bad(p, "field name '%s' is empty, too long or has an empty part", path);
	return 0;
}

static int count(struct parse *p)
{
	if (++p->f->n_nodes > FILTER_MAX_NODES)
		return rag_err_set(p->err, RAG_EINVAL, "filter",
				   "filter has more than %d conditions", FILTER_MAX_NODES);
	return 0;
}

static int parse_object(struct parse *p, json_t *obj, struct store_filter *out, int depth);

/* One operator applied to a field: {"$gt": 5} etc. */
static int parse_op(struct parse *p, const char *path, const char *op, json_t *v,
		    struct store_filter *out)
{
	static const struct {
		const char *name;
		enum filter_op op;
	} ops[] = {
		{ "$eq", FILTER_EQ },  { "$ne", FILTER_NE },   { "$gt", FILTER_GT },
		{ "$gte", FILTER_GTE }, { "$lt", FILTER_LT },   { "$lte", FILTER_LTE },
		{ "$in", FILTER_IN },  { "$nin", FILTER_NIN },
	};
	size_t i, n;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, op) == 0)
			break;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return bad(p, "unknown operator '%s' (use $eq $ne $gt $gte $lt $lte $in $nin)", op);
	if (count(p) < 0)
		return RAG_EINVAL;
	out->op = ops[i].op;
	out->path = path;
	if (out->op == FILTER_IN || out->op == FILTER_NIN) {
		n = json_array_size(v);
		if (!json_is_array(v) || n == 0)
			return bad(p, "'%s' takes a non-empty array of values", op);
		if (n > FILTER_MAX_VALUES)
			return rag_err_set(p->err, RAG_EINVAL, "filter",
					   "'%s' takes at most %d values", op, FILTER_MAX_VALUES);
	} else {
		n = 1;
	}
	out->values = calloc(n, sizeof(*out->values));
	if (!out->values)
		return rag_err_set(p->err, RAG_ENOMEM, "filter", "out of memory");
	out->n_values = n;
	for (size_t k = 0; k < n; k++) {
		int list = out->op == FILTER_IN || out->op == FILTER_NIN;
		json_t *e = list ? json_array_get(v, k) : v;

		if (scalar(p, e, &out->values[k], op) < 0)
			return RAG_EINVAL;
		if (out->op >= FILTER_GT && out->values[k].type == FILTER_BOOL)
			return bad(p, "'%s' compares numbers or strings, not booleans", op);
	}
	return 0;
}

/* A field's condition: a scalar (equality) or an object of operators. */
static int parse_field(struct parse *p, const char *path, json_t *v, struct store_filter *out)
{
	const char *op;
	json_t *arg;
	size_t i = 0;

	if (check_path(p, path) < 0)
		return RAG_EINVAL;
	if (!json_is_object(v)) {
		if (count(p) < 0)
			return RAG_EINVAL;
		out->op = FILTER_EQ;
		out->path = path;
		out->values = calloc(1, sizeof(*out->values));
		out->n_values = 1;
		if (!out->values)
			return rag_err_set(p->err, RAG_ENOMEM, "filter", "out of memory");
		return scalar(p, v, &out->values[0], path);
	}
	if (json_object_size(v) == 0)
		return bad(p, "'%s' has an empty condition", path);
	if (json_object_size(v) == 1) {
		json_object_foreach(v, op, arg)
			return parse_op(p, path, op, arg, out);
	}
	out->op = FILTER_AND;
	out->children = calloc(json_object_size(v), sizeof(*out->children));
	if (!out->children)
		return rag_err_set(p->err, RAG_ENOMEM, "filter", "out of memory");
	out->n_children = json_object_size(v);
	json_object_foreach(v, op, arg) {
		if (parse_op(p, path, op, arg, &out->children[i++]) < 0)
			return RAG_EINVAL;
	}
	return 0;
}

static int parse_entry(struct parse *p, const char *key, json_t *v, struct store_filter *out,
		       int depth)
{
	size_t n;

	if (strcmp(key, "$and") != 0 && strcmp(key, "$or") != 0) {
		if (key[0] == '$')
			return bad(p, "unknown operator '%s' (use $and or $or at this level)", key);
		return parse_field(p, key, v, out);
	}
	n = json_array_size(v);
	if (!json_is_array(v) || n == 0)
		return bad(p, "'%s' takes a non-empty array of filters", key);
	if (n > FILTER_MAX_NODES)
		return rag_err_set(p->err, RAG_EINVAL, "filter", "'%s' takes at most %d filters", key,
				   FILTER_MAX_NODES);
	out->op = key[1] == 'a' ? FILTER_AND : FILTER_OR;
	out->children = calloc(n, sizeof(*out->children));
	if (!out->children)
		return rag_err_set(p->err, RAG_ENOMEM, "filter", "out of memory");
	out->n_children = n;
	for (size_t i = 0; i < n; i++) {
		json_t *child = json_array_get(v, i);

		if (!json_is_object(child) || json_object_size(child) == 0)
			return bad(p, "each element of '%s' must be a non-empty object", key);
		if (parse_object(p, child, &out->children[i], depth + 1) < 0)
			return RAG_EINVAL;
	}
	return 0;
}

static int parse_object(struct parse *p, json_t *obj, struct store_filter *out, int depth)
{
	const char *key;
	json_t *v;
	size_t i = 0;

	if (depth > FILTER_MAX_DEPTH)
		return rag_err_set(p->err, RAG_EINVAL, "filter", "filter nested deeper than %d levels",
				   FILTER_MAX_DEPTH);
	if (json_object_size(obj) == 1) {
		json_object_foreach(obj, key, v)
			return parse_entry(p, key, v, out, depth);
	}
	out->op = FILTER_AND;
	out->children = calloc(json_object_size(obj), sizeof(*out->children));
	if (!out->children)
		return rag_err_set(p->err, RAG_ENOMEM, "filter", "out of memory");
	out->n_children = json_object_size(obj);
	json_object_foreach(obj, key, v) {
		if (parse_entry(p, key, v, &out->children[i++], depth) < 0)
			return RAG_EINVAL;
	}
	return 0;
}

int rag_filter_parse(const char *json, size_t len, struct rag_filter **out, struct rag_err *err)
{
	struct rag_filter *f = calloc(1, sizeof(*f));
	/*
	 * A filter level is an object and an array ($or: [...]); a value list is
	 * one more array. Checked before parsing so that no client text makes
	 * jansson build more than a legal filter could hold.
	 */
	static const struct json_limits lim = { 2 * FILTER_MAX_DEPTH + 2,
						FILTER_MAX_NODES * (FILTER_MAX_VALUES + 2) };
	struct parse p = { f, err };
	json_error_t jerr;
	int rc;

	*out = NULL;
	if (!f)
		return rag_err_set(err, RAG_ENOMEM, "filter", "out of memory");
	rc = json_scan(json, len, &lim, "filter", err);
	if (rc < 0)
		goto fail;
	f->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!f->root) {
		rc = rag_err_set(err, RAG_EINVAL, "filter", "filter is not valid JSON: %s", jerr.text);
		goto fail;
	}
	if (!json_is_object(f->root)) {
		rc = rag_err_set(err, RAG_EINVAL, "filter", "filter must be a JSON object");
		goto fail;
	}
	if (json_object_size(f->root) == 0) {
		rag_filter_free(f);
		return 0;
	}
	f->tree = calloc(1, sizeof(*f->tree));
	if (!f->tree) {
		rc = rag_err_set(err, RAG_ENOMEM, "filter", "out of memory");
		goto fail;
	}
	rc = parse_object(&p, f->root, f->tree, 1);
	if (rc < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	rag_filter_free(f);
	return rc;
}

const struct store_filter *rag_filter_tree(const struct rag_filter *f)
{
	return f ? f->tree : NULL;
}

void rag_filter_free(struct rag_filter *f)
{
	if (!f)
		return;
	if (f->tree)
		node_release(f->tree);
	free(f->tree);
	json_decref(f->root);
	free(f);
}
