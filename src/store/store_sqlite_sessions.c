/*
 * Conversation sessions in SQLite: sessions (one row per tenant and id)
 * and session_messages (numbered per session). An append is one IMMEDIATE
 * transaction that reads the session's message count and numbers the new
 * messages after it, so two instances appending to one session serialise
 * on the file's write lock instead of colliding on a number.
 *
 * The statements are prepared per call rather than cached in the
 * connection's table: a session op runs once per answer, next to a
 * generation that takes a thousand times longer.
 */
#include "store/store_sqlite_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

static int prep(struct store_sqlite_conn *c, const char *sql, sqlite3_stmt **s,
		struct rag_err *err)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, s, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_fail(c, rc, err);
}

static int append(struct store_sqlite_conn *c, const char *tenant, const char *id,
		  const struct store_message *msgs, size_t n, struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int64_t now = store_sqlite_now_ms(), count = 0;
	int brc = SQLITE_OK, rc;

	rc = prep(c, "INSERT INTO sessions (tenant, id, created_at, updated_at, n_messages)"
		     " VALUES (?1, ?2, ?3, ?3, 0) ON CONFLICT (tenant, id) DO UPDATE SET"
		     " updated_at = excluded.updated_at RETURNING n_messages", &s, err);
	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, id, &brc);
	store_sqlite_bind_int(s, 3, now, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	if (rc == 1)
		count = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc < 0)
		return rc;
	rc = prep(c, "INSERT INTO session_messages (tenant, session_id, seq, role, content, at)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &s, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_reset(s);
		store_sqlite_bind_text(s, 1, tenant, &brc);
		store_sqlite_bind_text(s, 2, id, &brc);
		store_sqlite_bind_int(s, 3, count + (int64_t)i + 1, &brc);
		store_sqlite_bind_text(s, 4, msgs[i].role, &brc);
		store_sqlite_bind_text(s, 5, msgs[i].content, &brc);
		store_sqlite_bind_int(s, 6, now, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	}
	sqlite3_finalize(s);
	if (rc < 0)
		return rc;
	rc = prep(c, "UPDATE sessions SET n_messages = ?3 WHERE tenant = ?1 AND id = ?2", &s, err);
	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, id, &brc);
	store_sqlite_bind_int(s, 3, count + (int64_t)n, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_finalize(s);
	return rc < 0 ? rc : 0;
}

int store_sqlite_session_append(struct store *st, const char *tenant, const char *session_id,
				const struct store_message *msgs, size_t n, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "append to session");
	int rc = store_sqlite_txn_begin(ss, c, 1, err);

	if (rc == 0) {
		rc = append(c, tenant, session_id, msgs, n, err);
		rc = store_sqlite_txn_end(ss, c, 1, rc, err);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_session_history(struct store *st, const char *tenant, const char *session_id,
				 size_t limit, struct store_message **out, size_t *n_out,
				 struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read session");
	struct store_message *msgs = calloc(limit, sizeof(*msgs));
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int brc = SQLITE_OK, rc;

	if (!msgs) {
		store_sqlite_conn_put(ss, c);
		return store_sqlite_oom(err);
	}
	/* Newest first with a limit, then reversed: the last `limit`, oldest first. */
	rc = prep(c, "SELECT role, content, at FROM session_messages WHERE tenant = ?1 AND"
		     " session_id = ?2 ORDER BY seq DESC LIMIT ?3", &s, err);
	if (rc == 0) {
		store_sqlite_bind_text(s, 1, tenant, &brc);
		store_sqlite_bind_text(s, 2, session_id, &brc);
		store_sqlite_bind_int(s, 3, (int64_t)limit, &brc);
		if (brc)
			rc = store_sqlite_fail(c, brc, err);
	}
	while (rc == 0 && n < limit && (rc = store_sqlite_step(c, s, err)) == 1) {
		rc = store_sqlite_col_str(s, 0, &msgs[n].role, err);
		if (rc == 0)
			rc = store_sqlite_col_str(s, 1, &msgs[n].content, err);
		msgs[n].at = sqlite3_column_int64(s, 2);
		n++;
	}
	sqlite3_finalize(s);
	store_sqlite_conn_put(ss, c);
	if (rc < 0) {
		store_messages_free(msgs, n);
		return rc;
	}
	for (size_t i = 0; i < n / 2; i++) {
		struct store_message t = msgs[i];

		msgs[i] = msgs[n - 1 - i];
		msgs[n - 1 - i] = t;
	}
	if (n == 0) {
		free(msgs);
		msgs = NULL;
	}
	*out = msgs;
	*n_out = n;
	return 0;
}
