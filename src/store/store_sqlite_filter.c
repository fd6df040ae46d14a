/*
 * Compiles a metadata filter into a SQL condition on the documents table
 * (alias d): each comparison reads the field with json_extract and binds
 * its path and values as parameters, so no client text ever becomes SQL.
 *
 * Types: every comparison holds within one JSON type, checked with
 * json_type: true/false are not the numbers 1/0 (which json_extract makes
 * of them), an object's JSON text is not a string, and ranges compare
 * numbers with numbers and strings with strings (SQLite orders every number
 * below every string, which would make {"$gt": 5} match any string); $ne
 * and $nin also match a missing field or another type, the others never do.
 */
#include "store/store_sqlite_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "store/store_filter.h"

#include "core/banned.h"

static const char *cmp_sql(enum filter_op op)
{
	switch (op) {
	case FILTER_GT:
		return ">";
	case FILTER_GTE:
		return ">=";
	case FILTER_LT:
		return "<";
	case FILTER_LTE:
		return "<=";
	default:
		return "=";
	}
}

/* Appends the condition for one value compared with op (EQ, NE or a range). */
static void value_sql(struct sbuf *sql, enum filter_op op, const struct filter_value *v,
		      int *n_params)
{
	int path = *n_params + 1;

	if (v->type == FILTER_BOOL) {
		sbuf_addf(sql, "json_type(d.metadata_json, ?%d) %s '%s'", path,
			  op == FILTER_NE ? "IS NOT" : "=", v->b ? "true" : "false");
		*n_params += 1;
		return;
	}
	/* Every comparison is within one JSON type: 1 is not true, "[1]" is not [1]. */
	if (op == FILTER_NE)
		sbuf_addf(sql, "(json_type(d.metadata_json, ?%d) IS NULL OR NOT ", path);
	sbuf_addf(sql, "(json_type(d.metadata_json, ?%d) %s AND "
		       "json_extract(d.metadata_json, ?%d) %s ?%d)",
		  path, v->type == FILTER_NUMBER ? "IN ('integer', 'real')" : "= 'text'", path,
		  cmp_sql(op), path + 1);
	if (op == FILTER_NE)
		sbuf_addch(sql, ')');
	*n_params += 2;
}

static void node_sql(struct sbuf *sql, const struct store_filter *f, int *n_params)
{
	switch (f->op) {
	case FILTER_AND:
	case FILTER_OR:
		sbuf_addch(sql, '(');
		for (size_t i = 0; i < f->n_children; i++) {
			if (i)
				sbuf_addstr(sql, f->op == FILTER_AND ? " AND " : " OR ");
			node_sql(sql, &f->children[i], n_params);
		}
		sbuf_addch(sql, ')');
		return;
	case FILTER_IN:
	case FILTER_NIN:
		/* NOT IN must hold for a missing field too: NOT (NULL = x) is NULL. */
		if (f->op == FILTER_NIN)
			sbuf_addf(sql, "(json_type(d.metadata_json, ?%d) IS NULL OR NOT ",
				  ++*n_params);
		sbuf_addch(sql, '(');
		for (size_t i = 0; i < f->n_values; i++) {
			if (i)
				sbuf_addstr(sql, " OR ");
			value_sql(sql, FILTER_EQ, &f->values[i], n_params);
		}
		sbuf_addstr(sql, f->op == FILTER_NIN ? "))" : ")");
		return;
	default:
		sbuf_addch(sql, '(');
		value_sql(sql, f->op, &f->values[0], n_params);
		sbuf_addch(sql, ')');
		return;
	}
}

/* "author.name" -> "$.author.name", quoting each key so any text is a literal key. */
static void json_path(struct sbuf *out, const char *dotted)
{
	sbuf_addch(out, '$');
	for (const char *p = dotted; *p;) {
		size_t len = strcspn(p, ".");

		sbuf_addstr(out, ".\"");
		for (size_t i = 0; i < len; i++) {
			if (p[i] == '"' || p[i] == '\\')
				sbuf_addch(out, '\\');
			sbuf_addch(out, p[i]);
		}
		sbuf_addch(out, '"');
		p += len;
		if (*p == '.')
			p++;
	}
}

static int bind_value(sqlite3_stmt *s, int i, const struct filter_value *v)
{
	if (v->type == FILTER_STRING)
		return sqlite3_bind_text(s, i, v->s, -1, SQLITE_TRANSIENT);
	if (v->n == (double)(sqlite3_int64)v->n)
		return sqlite3_bind_int64(s, i, (sqlite3_int64)v->n);
	return sqlite3_bind_double(s, i, v->n);
}

/* Binds parameters in the order node_sql numbered them. */
static int node_bind(sqlite3_stmt *s, const struct store_filter *f, int *n)
{
	struct sbuf path = SBUF_INIT;
	int rc = SQLITE_OK;

	if (f->op == FILTER_AND || f->op == FILTER_OR) {
		for (size_t i = 0; i < f->n_children && rc == SQLITE_OK; i++)
			rc = node_bind(s, &f->children[i], n);
		return rc;
	}
	json_path(&path, f->path);
	if (f->op == FILTER_NIN)
		rc = sqlite3_bind_text(s, ++*n, path.buf, -1, SQLITE_TRANSIENT);
	for (size_t i = 0; i < f->n_values && rc == SQLITE_OK; i++) {
		rc = sqlite3_bind_text(s, ++*n, path.buf, -1, SQLITE_TRANSIENT);
		if (rc == SQLITE_OK && f->values[i].type != FILTER_BOOL)
			rc = bind_value(s, ++*n, &f->values[i]);
	}
	sbuf_release(&path);
	return rc;
}

void store_sqlite_filter_sql(struct sbuf *sql, const struct store_filter *f, int *n_params)
{
	node_sql(sql, f, n_params);
}

int store_sqlite_filter_bind(sqlite3_stmt *s, const struct store_filter *f, int *n)
{
	return node_bind(s, f, n);
}

int store_sqlite_filter_ids(struct store *st, int64_t collection_id, const struct store_filter *f,
			    int64_t **ids_out, size_t *n_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "filter chunks");
	struct sbuf sql = SBUF_INIT;
	sqlite3_stmt *s = NULL;
	int64_t *ids = NULL;
	size_t n = 0, alloc = 0;
	int n_params = 1, bound = 1, rc;

	sbuf_addstr(&sql, "SELECT c.id FROM chunks c JOIN documents d"
			  " ON d.collection_id = c.collection_id AND d.id = c.document_id"
			  " WHERE c.collection_id = ?1 AND ");
	node_sql(&sql, f, &n_params);
	sbuf_addstr(&sql, " ORDER BY c.id");
	rc = sbuf_error(&sql) ? SQLITE_NOMEM
			      : sqlite3_prepare_v2(c->db, sql.buf, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 1, collection_id);
	if (rc == SQLITE_OK)
		rc = node_bind(s, f, &bound);
	while (rc == SQLITE_OK) {
		int step = sqlite3_step(s);

		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW) {
			rc = step;
			break;
		}
		if (n == alloc) {
			int64_t *grown;

			alloc = alloc ? 2 * alloc : 256;
			grown = realloc(ids, alloc * sizeof(*ids));
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = grown;
		}
		ids[n++] = sqlite3_column_int64(s, 0);
	}
	if (rc != SQLITE_OK) {
		rc = store_sqlite_error(c->db, rc, err, "filter chunks");
		free(ids);
		ids = NULL;
		n = 0;
	}
	sqlite3_finalize(s);
	store_sqlite_conn_put(ss, c);
	sbuf_release(&sql);
	*ids_out = ids;
	*n_out = n;
	return rc == SQLITE_OK ? 0 : rc;
}
