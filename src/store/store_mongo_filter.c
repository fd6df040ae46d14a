/*
 * Compiles a metadata filter (store_filter.h) into a MongoDB query on the
 * docs collection, whose `meta` field holds the metadata as BSON (parsed
 * from the client's JSON when the document was put).
 *
 * The semantics follow the SQLite backend's: comparisons hold within one
 * type, which is MongoDB's own rule for $eq/$gt/... (type bracketing:
 * {"$gt": 5} never matches a string, true is not 1); $ne and $nin also
 * match a missing field. Arrays need care: MongoDB matches {"a": "x"} when
 * a is an array holding "x", and walks into arrays on a dotted path
 * ("a.b" through a = [{"b": 1}]), where the SQLite backend compares the
 * array as a whole and finds no such path. So a positive condition also
 * requires that neither the field nor any prefix of its path is an array,
 * and a negative one ($ne, $nin) also holds when one is.
 *
 * Keys. MongoDB (and libmongoc before sending) refuses some keys JSON
 * allows: empty ones, and ones with '.' or a leading '$'. The metadata is
 * stored under escaped keys ('%', '.' and '$' as %25, %2E, %24; an empty
 * key as a lone "%", which no escaped key can be), and each segment of a
 * filter's dotted path is escaped the same way, so every key a client can
 * store can also be filtered on, as with SQLite.
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "store/store_filter.h"

#include <string.h>

#include "core/banned.h"

/* Appends key (len bytes) escaped for MongoDB. */
static void key_escape(struct sbuf *out, const char *key, size_t len)
{
	if (len == 0) {
		sbuf_addch(out, '%');
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '%' || key[i] == '.' || key[i] == '$')
			sbuf_addf(out, "%%%02X", (unsigned char)key[i]);
		else
			sbuf_addch(out, key[i]);
	}
}

/* Copies the elements of iter into out, escaping the keys of documents (not arrays). */
static int copy_escaped(bson_t *out, bson_iter_t *iter, int is_array, struct sbuf *key)
{
	while (bson_iter_next(iter)) {
		const char *k = bson_iter_key(iter);
		bson_iter_t child;
		bson_t sub;
		int rc = 0;

		sbuf_reset(key);
		if (is_array)
			sbuf_addstr(key, k);
		else
			key_escape(key, k, bson_iter_key_len(iter));
		if (sbuf_error(key))
			return RAG_ENOMEM;
		if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
			int arr = BSON_ITER_HOLDS_ARRAY(iter);

			if (!bson_iter_recurse(iter, &child))
				return RAG_EINVAL;
			if (arr)
				bson_append_array_begin(out, key->buf, (int)key->len, &sub);
			else
				bson_append_document_begin(out, key->buf, (int)key->len, &sub);
			rc = copy_escaped(&sub, &child, arr, key);
			if (arr)
				bson_append_array_end(out, &sub);
			else
				bson_append_document_end(out, &sub);
		} else {
			bson_append_iter(out, key->buf, (int)key->len, iter);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int store_mongo_meta_bson(bson_t *out, const char *json)
{
	struct sbuf key = SBUF_INIT;
	bson_t raw;
	bson_iter_t it;
	bson_error_t e;
	int rc;

	if (!bson_init_from_json(&raw, json, -1, &e))
		return RAG_EINVAL;
	rc = bson_iter_init(&it, &raw) ? copy_escaped(out, &it, 0, &key) : RAG_EINVAL;
	sbuf_release(&key);
	bson_destroy(&raw);
	return rc;
}

static const char *op_name(enum filter_op op)
{
	switch (op) {
	case FILTER_NE:
		return "$ne";
	case FILTER_IN:
		return "$in";
	case FILTER_NIN:
		return "$nin";
	case FILTER_GT:
		return "$gt";
	case FILTER_GTE:
		return "$gte";
	case FILTER_LT:
		return "$lt";
	case FILTER_LTE:
		return "$lte";
	default:
		return "$eq";
	}
}

static void append_value(bson_t *b, const char *key, const struct filter_value *v)
{
	switch (v->type) {
	case FILTER_STRING:
		bson_append_utf8(b, key, -1, v->s, -1);
		break;
	case FILTER_BOOL:
		bson_append_bool(b, key, -1, v->b != 0);
		break;
	default:
		bson_append_double(b, key, -1, v->n);
		break;
	}
}

static int node(bson_t *b, const struct store_filter *f, struct rag_err *err);

/* {"$and"|"$or": [child, ...]} appended to b. */
static int node_list(bson_t *b, const struct store_filter *f, struct rag_err *err)
{
	bson_t arr;
	int rc = 0;

	bson_append_array_begin(b, f->op == FILTER_AND ? "$and" : "$or", -1, &arr);
	for (size_t i = 0; i < f->n_children && !rc; i++) {
		char idx[16];
		const char *k;
		bson_t child;

		bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
		bson_append_document_begin(&arr, k, -1, &child);
		rc = node(&child, &f->children[i], err);
		bson_append_document_end(&arr, &child);
	}
	bson_append_array_end(b, &arr);
	return rc;
}

/* Appends {path: {op: value(s)}}. */
static void append_cmp(bson_t *b, const char *path, enum filter_op op,
		       const struct store_filter *f)
{
	bson_t cond;

	bson_append_document_begin(b, path, -1, &cond);
	if (op == FILTER_IN || op == FILTER_NIN) {
		bson_t arr;

		bson_append_array_begin(&cond, op_name(op), -1, &arr);
		for (size_t i = 0; i < f->n_values; i++) {
			char idx[16];
			const char *k;

			bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
			append_value(&arr, k, &f->values[i]);
		}
		bson_append_array_end(&cond, &arr);
	} else {
		append_value(&cond, op_name(op), &f->values[0]);
	}
	bson_append_document_end(b, &cond);
}

/*
 * Appends {path: {$type: "array"}} (is_array) or its negation, for path
 * and each of its prefixes that ends after its first skip bytes, as
 * elements of the array arr from *n on.
 */
static void append_array_checks(bson_t *arr, const char *path, size_t skip, int is_array,
				uint32_t *n)
{
	for (const char *p = path + skip; p;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);
		char idx[16];
		const char *k;
		bson_t item, cond;

		bson_uint32_to_string((*n)++, &k, idx, sizeof(idx));
		bson_append_document_begin(arr, k, -1, &item);
		bson_append_document_begin(&item, path, (int)len, &cond);
		if (is_array) {
			BSON_APPEND_UTF8(&cond, "$type", "array");
		} else {
			bson_t not;

			BSON_APPEND_DOCUMENT_BEGIN(&cond, "$not", &not);
			BSON_APPEND_UTF8(&not, "$type", "array");
			bson_append_document_end(&cond, &not);
		}
		bson_append_document_end(&item, &cond);
		bson_append_document_end(arr, &item);
		p = dot ? dot + 1 : NULL;
	}
}

static int node(bson_t *b, const struct store_filter *f, struct rag_err *err)
{
	struct sbuf path = SBUF_INIT;
	enum filter_op op = f->op;
	int negative;
	uint32_t n = 1;
	bson_t arr, first;

	if (op == FILTER_AND || op == FILTER_OR) {
		if (f->n_children == 0) {
			/* An empty AND keeps everything, an empty OR nothing. */
			if (op == FILTER_OR)
				BCON_APPEND(b, "_id", "{", "$exists", BCON_BOOL(false), "}");
			return 0;
		}
		return node_list(b, f, err);
	}
	if (f->n_values == 0 || !f->path)
		return rag_err_set(err, RAG_EINVAL, "filter", "a filter condition has no value");
	/* A boolean compares by equality whatever the operator, as in the SQLite backend. */
	if (f->values[0].type == FILTER_BOOL && op != FILTER_NE && op != FILTER_IN &&
	    op != FILTER_NIN)
		op = FILTER_EQ;
	sbuf_addstr(&path, "meta");
	for (const char *p = f->path;;) {
		size_t len = strcspn(p, ".");

		sbuf_addch(&path, '.');
		key_escape(&path, p, len);
		if (!p[len])
			break;
		p += len + 1;
	}
	if (sbuf_error(&path)) {
		sbuf_release(&path);
		return sm_oom(err);
	}
	/* positive: {$and: [cmp, no arrays on the path]}; negative: {$or: [cmp, an array]}. */
	negative = op == FILTER_NE || op == FILTER_NIN;
	bson_append_array_begin(b, negative ? "$or" : "$and", -1, &arr);
	bson_append_document_begin(&arr, "0", -1, &first);
	append_cmp(&first, path.buf, op, f);
	bson_append_document_end(&arr, &first);
	/* "meta" itself is never an array: start the checks at the metadata's own key. */
	append_array_checks(&arr, path.buf, strlen("meta."), negative, &n);
	bson_append_array_end(b, &arr);
	sbuf_release(&path);
	return 0;
}

int store_mongo_filter_bson(bson_t *out, const struct store_filter *f, struct rag_err *err)
{
	bson_t arr, wrap;
	int rc;

	/* Under a top-level $and, so it never collides with the caller's own keys. */
	bson_append_array_begin(out, "$and", -1, &arr);
	bson_append_document_begin(&arr, "0", -1, &wrap);
	rc = node(&wrap, f, err);
	bson_append_document_end(&arr, &wrap);
	bson_append_array_end(out, &arr);
	return rc;
}
