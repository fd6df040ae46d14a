/*
 * The SQLite store's job queue: jobs and their items (the inputs, kept in
 * the store until each is processed, so a job resumes after a crash).
 *
 * A worker claims a job by setting owner and lease_until in one IMMEDIATE
 * transaction; every item it finishes renews the lease. A job still
 * "running" whose lease has expired belongs to a worker that died (kill -9,
 * power loss): the next claim takes it over and carries on with the items
 * still pending. An item that writes a document is recorded done inside
 * the document's own transaction (store_sqlite_doc_put with store_put.job,
 * through store_sqlite_job_item_record below): a crash leaves the document
 * and its item's outcome both committed or neither, so no item is ever
 * applied twice (a second application would overwrite whatever a client
 * wrote to that document since the first). Items that write nothing
 * (failed, unchanged) are finished in a transaction of their own.
 *
 * Jobs are rare next to documents: statements are prepared per call rather
 * than kept in the connection's statement table.
 */
#include "store/store_sqlite_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <sqlite3.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define JOB_COLS                                                                             \
	"id, tenant, collection, kind, spec_json, state, n_total, n_done, n_failed, n_skipped," \
	" n_chunks, n_bytes, created_at, started_at, updated_at, finished_at, error"

/* Prepares sql on c; a RAG_E* code on failure. */
static int prep(struct store_sqlite_conn *c, const char *sql, sqlite3_stmt **s,
		struct rag_err *err)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, s, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_fail(c, rc, err);
}

/* Steps a statement that returns no row and finalises it. */
static int run(struct store_sqlite_conn *c, sqlite3_stmt *s, int brc, struct rag_err *err)
{
	int rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);

	sqlite3_finalize(s);
	return rc < 0 ? rc : 0;
}

int store_sqlite_job_create(struct store *st, const struct store_job *job,
			    const struct store_job_item *items, size_t n_items,
			    struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "create job");
	int64_t now = store_sqlite_now_ms();
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = prep(c, "INSERT INTO jobs (id, tenant, collection, kind, spec_json, n_total,"
		     " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)", &s, err);
	if (!rc) {
		store_sqlite_bind_text(s, 1, job->id, &brc);
		store_sqlite_bind_text(s, 2, job->tenant, &brc);
		store_sqlite_bind_text(s, 3, job->collection, &brc);
		store_sqlite_bind_text(s, 4, job->kind, &brc);
		store_sqlite_bind_text(s, 5, job->spec_json ? job->spec_json : "{}", &brc);
		store_sqlite_bind_int(s, 6, (int64_t)n_items, &brc);
		store_sqlite_bind_int(s, 7, now, &brc);
		rc = run(c, s, brc, err);
		s = NULL; /* run() finalised it */
	}
	if (!rc)
		rc = prep(c, "INSERT INTO job_items (job_id, idx, doc_id, name, content_type, format,"
			     " metadata_json, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &s, err);
	for (size_t i = 0; i < n_items && !rc; i++) {
		const struct store_job_item *it = &items[i];

		sqlite3_reset(s);
		brc = SQLITE_OK;
		store_sqlite_bind_text(s, 1, job->id, &brc);
		store_sqlite_bind_int(s, 2, (int64_t)i, &brc);
		if (brc == SQLITE_OK)
			brc = it->doc_id ? sqlite3_bind_text(s, 3, it->doc_id, -1, SQLITE_STATIC)
					 : sqlite3_bind_null(s, 3);
		store_sqlite_bind_text(s, 4, it->name ? it->name : "", &brc);
		store_sqlite_bind_text(s, 5, it->content_type ? it->content_type : "", &brc);
		store_sqlite_bind_text(s, 6, it->format ? it->format : "auto", &brc);
		store_sqlite_bind_text(s, 7, it->metadata_json ? it->metadata_json : "{}", &brc);
		store_sqlite_bind_blob(s, 8, it->body ? it->body : "", it->body_len, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		rc = rc < 0 ? rc : 0;
	}
	sqlite3_finalize(s); /* also when there are no items (model and chunker changes) */
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

static int read_job(sqlite3_stmt *s, struct store_job *j, struct rag_err *err)
{
	int rc;

	j->state = (enum store_job_state)sqlite3_column_int(s, 5);
	j->n_total = sqlite3_column_int64(s, 6);
	j->n_done = sqlite3_column_int64(s, 7);
	j->n_failed = sqlite3_column_int64(s, 8);
	j->n_skipped = sqlite3_column_int64(s, 9);
	j->n_chunks = sqlite3_column_int64(s, 10);
	j->n_bytes = sqlite3_column_int64(s, 11);
	j->created_at = sqlite3_column_int64(s, 12);
	j->started_at = sqlite3_column_int64(s, 13);
	j->updated_at = sqlite3_column_int64(s, 14);
	j->finished_at = sqlite3_column_int64(s, 15);
	rc = store_sqlite_col_str(s, 0, &j->id, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 1, &j->tenant, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 2, &j->collection, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 3, &j->kind, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 4, &j->spec_json, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 16, &j->error, err);
	if (rc)
		store_job_release(j);
	return rc;
}

int store_sqlite_job_get(struct store *st, const char *tenant, const char *id,
			 struct store_job *out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "get job");
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, tenant ? "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND tenant = ?2"
				: "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", &s, err);

	if (!rc) {
		store_sqlite_bind_text(s, 1, id, &brc);
		if (tenant)
			store_sqlite_bind_text(s, 2, tenant, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 1)
			rc = read_job(s, out, err);
		else if (rc == 0)
			rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "job '%s' not found", id);
		sqlite3_finalize(s);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

/* Reads rows of (idx, doc_id, name, content_type, format, metadata_json, body, state, error). */
static int read_items(struct store_sqlite_conn *c, sqlite3_stmt *s, size_t limit,
		      struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	struct store_job_item *items = calloc(limit ? limit : 1, sizeof(*items));
	size_t n = 0;
	int rc = items ? 0 : store_sqlite_oom(err);

	while (!rc && n < limit) {
		struct store_job_item *it = &items[n];
		size_t len;
		void *body;

		rc = store_sqlite_step(c, s, err);
		if (rc <= 0)
			break;
		n++;
		it->idx = sqlite3_column_int64(s, 0);
		it->state = sqlite3_column_int(s, 7);
		rc = store_sqlite_col_str(s, 1, &it->doc_id, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 2, &it->name, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 3, &it->content_type, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 4, &it->format, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 5, &it->metadata_json, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 8, &it->error, err);
		if (rc)
			break;
		len = (size_t)sqlite3_column_bytes(s, 6);
		body = malloc(len + 1);
		if (!body) {
			rc = store_sqlite_oom(err);
			break;
		}
		if (len)
			memcpy(body, sqlite3_column_blob(s, 6), len);
		((char *)body)[len] = '\0';
		it->body = body;
		it->body_len = len;
	}
	if (rc < 0) {
		store_job_items_free(items, n);
		return rc;
	}
	if (n == 0) {
		free(items);
		items = NULL;
	}
	*out = items;
	*n_out = n;
	return 0;
}

static int list_items(struct store *st, const char *id, const char *sql, size_t limit,
		      struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read job items");
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, sql, &s, err);

	if (!rc) {
		store_sqlite_bind_text(s, 1, id, &brc);
		store_sqlite_bind_int(s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : read_items(c, s, limit, out, n_out, err);
		sqlite3_finalize(s);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_job_errors(struct store *st, const char *id, size_t limit,
			    struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	return list_items(st, id,
			  "SELECT idx, coalesce(doc_id, ''), name, content_type, format, '', NULL,"
			  " state, error FROM job_items WHERE job_id = ?1 AND state = 2"
			  " ORDER BY idx LIMIT ?2", limit, out, n_out, err);
}

int store_sqlite_job_items_next(struct store *st, const char *id, size_t limit,
				struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	return list_items(st, id,
			  "SELECT idx, coalesce(doc_id, ''), name, content_type, format,"
			  " metadata_json, body, state, error FROM job_items"
			  " WHERE job_id = ?1 AND state = 0 ORDER BY idx LIMIT ?2",
			  limit, out, n_out, err);
}

int store_sqlite_job_claim(struct store *st, const char *owner, int64_t lease_ms,
			   char **id_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "claim job");
	int64_t now = store_sqlite_now_ms();
	sqlite3_stmt *s = NULL;
	char *id = NULL;
	int brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = prep(c, "SELECT id FROM jobs WHERE state = 0"
		     " OR (state = 1 AND lease_until < ?1 AND owner <> ?2)"
		     " ORDER BY created_at LIMIT 1", &s, err);
	if (!rc) {
		store_sqlite_bind_int(s, 1, now, &brc);
		store_sqlite_bind_text(s, 2, owner, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 1)
			rc = store_sqlite_col_str(s, 0, (const char **)&id, err);
		sqlite3_finalize(s);
	}
	if (!rc && id)
		rc = prep(c, "UPDATE jobs SET state = 1, owner = ?2, lease_until = ?3,"
			     " started_at = CASE started_at WHEN 0 THEN ?4 ELSE started_at END,"
			     " updated_at = ?4 WHERE id = ?1", &s, err);
	if (!rc && id) {
		brc = SQLITE_OK;
		store_sqlite_bind_text(s, 1, id, &brc);
		store_sqlite_bind_text(s, 2, owner, &brc);
		store_sqlite_bind_int(s, 3, now + lease_ms, &brc);
		store_sqlite_bind_int(s, 4, now, &brc);
		rc = run(c, s, brc, err);
	}
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	if (rc) {
		free(id);
		return rc;
	}
	*id_out = id;
	return 0;
}

/* The job's state inside the caller's transaction; RAG_ENOTFOUND. */
static int job_state(struct store_sqlite_conn *c, const char *id, const char *tenant, int *state,
		     struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, tenant ? "SELECT state FROM jobs WHERE id = ?1 AND tenant = ?2"
				: "SELECT state FROM jobs WHERE id = ?1", &s, err);

	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, id, &brc);
	if (tenant)
		store_sqlite_bind_text(s, 2, tenant, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	if (rc == 1) {
		*state = sqlite3_column_int(s, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "job '%s' not found", id);
	}
	sqlite3_finalize(s);
	return rc;
}

int store_sqlite_job_item_record(struct store_sqlite_conn *c, const char *id, int64_t idx,
				 int state, const char *error, int64_t n_chunks, int64_t n_bytes,
				 int64_t lease_ms, int *changed, struct rag_err *err)
{
	int64_t now = store_sqlite_now_ms();
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK, have = 0;
	int rc;

	*changed = 0;
	rc = job_state(c, id, NULL, &have, err);
	if (!rc && have != STORE_JOB_RUNNING)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' is %s", id,
				 store_job_state_name((enum store_job_state)have));
	if (!rc)
		rc = prep(c, "UPDATE job_items SET state = ?3, error = ?4, body = NULL"
			     " WHERE job_id = ?1 AND idx = ?2 AND state = 0", &s, err);
	if (!rc) {
		store_sqlite_bind_text(s, 1, id, &brc);
		store_sqlite_bind_int(s, 2, idx, &brc);
		store_sqlite_bind_int(s, 3, state, &brc);
		store_sqlite_bind_text(s, 4, error ? error : "", &brc);
		rc = run(c, s, brc, err);
	}
	if (rc || sqlite3_changes(c->db) != 1)
		return rc; /* not pending: counted when it was recorded */
	*changed = 1;
	rc = prep(c, "UPDATE jobs SET n_done = n_done + (?2 = 1), n_failed = n_failed + (?2 = 2),"
		     " n_skipped = n_skipped + (?2 = 3), n_chunks = n_chunks + ?3,"
		     " n_bytes = n_bytes + ?4, updated_at = ?5, lease_until = ?6"
		     " WHERE id = ?1", &s, err);
	if (rc)
		return rc;
	brc = SQLITE_OK;
	store_sqlite_bind_text(s, 1, id, &brc);
	store_sqlite_bind_int(s, 2, state, &brc);
	store_sqlite_bind_int(s, 3, n_chunks, &brc);
	store_sqlite_bind_int(s, 4, n_bytes, &brc);
	store_sqlite_bind_int(s, 5, now, &brc);
	store_sqlite_bind_int(s, 6, now + lease_ms, &brc);
	return run(c, s, brc, err);
}

int store_sqlite_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
				 const char *error, int64_t n_chunks, int64_t n_bytes,
				 int64_t lease_ms, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "finish job item");
	int changed;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (!rc) {
		rc = store_sqlite_job_item_record(c, id, idx, state, error, n_chunks, n_bytes,
						  lease_ms, &changed, err);
		rc = store_sqlite_txn_end(ss, c, 1, rc, err);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_job_finish(struct store *st, const char *id, int state, const char *error,
			    struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "finish job");
	int64_t now = store_sqlite_now_ms();
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, "UPDATE jobs SET state = ?2, error = ?3, finished_at = ?4,"
			 " updated_at = ?4 WHERE id = ?1 AND state = 1", &s, err);

	if (!rc) {
		store_sqlite_bind_text(s, 1, id, &brc);
		store_sqlite_bind_int(s, 2, state, &brc);
		store_sqlite_bind_text(s, 3, error ? error : "", &brc);
		store_sqlite_bind_int(s, 4, now, &brc);
		rc = run(c, s, brc, err);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_job_cancel(struct store *st, const char *tenant, const char *id,
			    struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "cancel job");
	int64_t now = store_sqlite_now_ms();
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK, state = 0;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = job_state(c, id, tenant, &state, err);
	if (!rc && state != STORE_JOB_QUEUED && state != STORE_JOB_RUNNING)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' already %s", id,
				 store_job_state_name((enum store_job_state)state));
	if (!rc)
		rc = prep(c, "UPDATE jobs SET state = 4, finished_at = ?2, updated_at = ?2"
			     " WHERE id = ?1", &s, err);
	if (!rc) {
		store_sqlite_bind_text(s, 1, id, &brc);
		store_sqlite_bind_int(s, 2, now, &brc);
		rc = run(c, s, brc, err);
	}
	if (!rc)
		rc = prep(c, "UPDATE job_items SET body = NULL WHERE job_id = ?1 AND state = 0", &s,
			  err);
	if (!rc) {
		brc = SQLITE_OK;
		store_sqlite_bind_text(s, 1, id, &brc);
		rc = run(c, s, brc, err);
	}
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

/* Renames tenant's collection from -> to inside the caller's transaction. */
static int rename_coll(struct store_sqlite_conn *c, const char *tenant, const char *from,
		       const char *to, struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, "UPDATE collections SET name = ?3 WHERE tenant = ?1 AND name = ?2", &s,
		      err);

	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, from, &brc);
	store_sqlite_bind_text(s, 3, to, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == RAG_ECONFLICT)
		return rag_err_set(err, RAG_ECONFLICT, NULL, "collection '%s' already exists", to);
	if (rc < 0)
		return rc;
	if (sqlite3_changes(c->db) != 1)
		return rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", from);
	return 0;
}

/* Fails with RAG_EBUSY unless tenant's collection name has seq expect (inside the transaction). */
static int check_seq(struct store_sqlite_conn *c, const char *tenant, const char *name,
		     int64_t expect, struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, "SELECT seq FROM collections WHERE tenant = ?1 AND name = ?2", &s, err);

	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, name, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", name);
	else if (rc == 1 && sqlite3_column_int64(s, 0) != expect)
		rc = rag_err_set(err, RAG_EBUSY, NULL,
				 "collection '%s' changed (seq %lld, expected %lld)", name,
				 (long long)sqlite3_column_int64(s, 0), (long long)expect);
	else if (rc == 1)
		rc = 0;
	sqlite3_finalize(s);
	return rc;
}

/* Marks tenant's collection name retired: writes to it are refused from now on. */
static int retire(struct store_sqlite_conn *c, const char *tenant, const char *name,
		  struct rag_err *err)
{
	sqlite3_stmt *s = NULL;
	int brc = SQLITE_OK;
	int rc = prep(c, "UPDATE collections SET retired = 1 WHERE tenant = ?1 AND name = ?2", &s,
		      err);

	if (rc)
		return rc;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, name, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_finalize(s);
	return rc < 0 ? rc : 0;
}

int store_sqlite_collection_swap(struct store *st, const char *tenant, const char *name,
				 const char *staged, const char *retired, int64_t expect_seq,
				 struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "swap collections");
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	if (expect_seq >= 0)
		rc = check_seq(c, tenant, name, expect_seq, err);
	if (!rc)
		rc = rename_coll(c, tenant, name, retired, err);
	if (!rc)
		rc = retire(c, tenant, retired, err);
	if (!rc)
		rc = rename_coll(c, tenant, staged, name, err);
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}
