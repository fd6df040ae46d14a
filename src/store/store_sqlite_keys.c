/*
 * API keys in SQLite (table api_keys, schema version 4): put, get by id,
 * list per tenant, delete. Four small statements prepared per call, like
 * the session ops: keys are read once per key and cache period by the auth
 * module (src/auth/auth.c), never once per request.
 */
#include "store/store_sqlite_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

#define KEY_COLS                                                                        \
	"id, tenant, role, name, salt, hash, created_at, requests_per_s, burst,"        \
	" ingest_bytes_per_day, tokens_per_day"

static int prep(struct store_sqlite_conn *c, const char *sql, sqlite3_stmt **s,
		struct rag_err *err)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, s, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_fail(c, rc, err);
}

/* Reads a row of KEY_COLS into k (strings owned). */
static int read_key(sqlite3_stmt *s, struct store_key *k, struct rag_err *err)
{
	const char **strs[] = { &k->id, &k->tenant, &k->role, &k->name, &k->salt_hex,
				&k->hash_hex };
	int rc = 0;

	for (int i = 0; rc == 0 && i < 6; i++)
		rc = store_sqlite_col_str(s, i, strs[i], err);
	k->created_at = sqlite3_column_int64(s, 6);
	k->requests_per_s = sqlite3_column_double(s, 7);
	k->burst = sqlite3_column_int64(s, 8);
	k->ingest_bytes_per_day = sqlite3_column_int64(s, 9);
	k->tokens_per_day = sqlite3_column_int64(s, 10);
	if (rc)
		store_key_release(k);
	return rc;
}

int store_sqlite_key_put(struct store *st, const struct store_key *key, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "create key");
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = store_sqlite_txn_begin(ss, c, 1, err);

	if (rc) {
		store_sqlite_conn_put(ss, c);
		return rc;
	}
	rc = prep(c, "INSERT INTO api_keys (" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
			     " ?7, ?8, ?9, ?10, ?11)", &s, err);
	if (rc == 0) {
		store_sqlite_bind_text(s, 1, key->id, &brc);
		store_sqlite_bind_text(s, 2, key->tenant, &brc);
		store_sqlite_bind_text(s, 3, key->role, &brc);
		store_sqlite_bind_text(s, 4, key->name ? key->name : "", &brc);
		store_sqlite_bind_text(s, 5, key->salt_hex, &brc);
		store_sqlite_bind_text(s, 6, key->hash_hex, &brc);
		store_sqlite_bind_int(s, 7, key->created_at ? key->created_at
							  : store_sqlite_now_ms(), &brc);
		if (brc == SQLITE_OK)
			brc = sqlite3_bind_double(s, 8, key->requests_per_s);
		store_sqlite_bind_int(s, 9, key->burst, &brc);
		store_sqlite_bind_int(s, 10, key->ingest_bytes_per_day, &brc);
		store_sqlite_bind_int(s, 11, key->tokens_per_day, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == RAG_ECONFLICT)
			rag_err_reset(err, RAG_ECONFLICT, "id", "key '%s' already exists", key->id);
	}
	sqlite3_finalize(s);
	rc = store_sqlite_txn_end(ss, c, 1, rc < 0 ? rc : 0, err);
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_key_get(struct store *st, const char *id, struct store_key *out,
			 struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read key");
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1", &s, err);

	if (rc == 0) {
		store_sqlite_bind_text(s, 1, id, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 1)
			rc = read_key(s, out, err);
		else if (rc == 0)
			rc = rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", id);
	}
	sqlite3_finalize(s);
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_key_list(struct store *st, const char *tenant, struct store_key **out,
			  size_t *n_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "list keys");
	struct store_key *keys = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, tenant ? "SELECT " KEY_COLS " FROM api_keys WHERE tenant = ?1"
				  " ORDER BY created_at, id"
				: "SELECT " KEY_COLS " FROM api_keys ORDER BY tenant, created_at, id",
		      &s, err);

	if (rc == 0 && tenant) {
		store_sqlite_bind_text(s, 1, tenant, &brc);
		if (brc)
			rc = store_sqlite_fail(c, brc, err);
	}
	while (rc == 0 && (rc = store_sqlite_step(c, s, err)) == 1) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct store_key *grown = realloc(keys, ncap * sizeof(*keys));

			if (!grown) {
				rc = store_sqlite_oom(err);
				break;
			}
			keys = grown;
			cap = ncap;
		}
		memset(&keys[n], 0, sizeof(keys[n]));
		rc = read_key(s, &keys[n], err);
		if (rc == 0)
			n++;
	}
	sqlite3_finalize(s);
	store_sqlite_conn_put(ss, c);
	if (rc < 0) {
		store_keys_free(keys, n);
		return rc;
	}
	*out = keys;
	*n_out = n;
	return 0;
}

int store_sqlite_key_delete(struct store *st, const char *tenant, const char *id,
			    struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "delete key");
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = store_sqlite_txn_begin(ss, c, 1, err);

	if (rc) {
		store_sqlite_conn_put(ss, c);
		return rc;
	}
	rc = prep(c, "DELETE FROM api_keys WHERE tenant = ?1 AND id = ?2", &s, err);
	if (rc == 0) {
		store_sqlite_bind_text(s, 1, tenant, &brc);
		store_sqlite_bind_text(s, 2, id, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 0 && sqlite3_changes(c->db) == 0)
			rc = rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", id);
	}
	sqlite3_finalize(s);
	rc = store_sqlite_txn_end(ss, c, 1, rc < 0 ? rc : 0, err);
	store_sqlite_conn_put(ss, c);
	return rc;
}
