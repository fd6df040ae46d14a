/*
 * The SQLite store's documents, chunks and change log (the pool, the
 * statements and the transactions are in store_sqlite.c).
 *
 * Every write here is one IMMEDIATE transaction that also appends to the
 * collection's change log and advances collections.seq by as many entries
 * as it wrote, so the log and the seq can never disagree: a reader that sees
 * seq N sees exactly the chunks that changes 1..N describe. Replacing a
 * document writes two changes (DELETE of the old chunk range, PUT of the
 * new one) rather than an in-place update, because chunk ids are never
 * reused and an index follower only has to know two verbs.
 *
 * A put that applies a job item (store_put.job) also records the item done
 * in the same transaction (store_sqlite_jobs.c), or is refused whole when
 * the item is no longer pending.
 *
 * Reads that must agree with a seq (scan, change log) run inside one read
 * transaction: WAL gives them a stable snapshot while writers go on.
 *
 * Invariant: the chunks of a document have contiguous ids (they are all
 * inserted by one put, under the write lock, with AUTOINCREMENT ids; the put
 * checks each id it gets). chunk_range() checks it again when a document's
 * chunks are about to be deleted, so a broken invariant is reported as
 * RAG_EINTERNAL rather than logged as a wrong range.
 */
#include "store/store_sqlite_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <sqlite3.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

/* Binds (collection_id, doc_id) as ?1, ?2 of s. */
static int bind_doc(struct store_sqlite_conn *c, sqlite3_stmt *s, int64_t cid, const char *doc_id,
		    struct rag_err *err)
{
	int brc = SQLITE_OK;

	store_sqlite_bind_int(s, 1, cid, &brc);
	store_sqlite_bind_text(s, 2, doc_id, &brc);
	return brc ? store_sqlite_fail(c, brc, err) : 0;
}

/* Runs one of the (collection_id, doc_id) statements that return at most one row; 1 if a row. */
static int run_doc(struct store_sqlite_conn *c, enum store_sqlite_stmt id, int64_t cid,
		   const char *doc_id, struct rag_err *err)
{
	sqlite3_stmt *s;
	int rc = store_sqlite_prep(c, id, &s, err);

	if (!rc)
		rc = bind_doc(c, s, cid, doc_id, err);
	if (!rc)
		rc = store_sqlite_step(c, s, err);
	sqlite3_reset(s);
	return rc;
}

/* The id range of the document's chunks; *n is 0 when it has none. */
static int chunk_range(struct store_sqlite_conn *c, int64_t cid, const char *doc_id,
		       int64_t *first, int64_t *last, int64_t *n, struct rag_err *err)
{
	sqlite3_stmt *s;
	int rc = store_sqlite_prep(c, S_DOC_CHUNK_RANGE, &s, err);

	if (!rc)
		rc = bind_doc(c, s, cid, doc_id, err);
	if (!rc)
		rc = store_sqlite_step(c, s, err);
	if (rc == 1) {
		*first = sqlite3_column_int64(s, 0);
		*last = sqlite3_column_int64(s, 1);
		*n = sqlite3_column_int64(s, 2);
		rc = 0;
		if (*n > 0 && *last - *first + 1 != *n)
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "store: chunks of document '%s' are not contiguous"
					 " (%lld..%lld, %lld chunks)",
					 doc_id, (long long)*first, (long long)*last, (long long)*n);
	} else if (rc == 0) {
		*n = 0; /* an aggregate always returns a row; be safe anyway */
	}
	sqlite3_reset(s);
	return rc;
}

static int store_sqlite_run3(struct store_sqlite_conn *c, enum store_sqlite_stmt id, int64_t a1,
			     int64_t a2, int64_t a3, struct rag_err *err)
{
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, id, &s, err);

	if (rc)
		return rc;
	store_sqlite_bind_int(s, 1, a1, &brc);
	store_sqlite_bind_int(s, 2, a2, &brc);
	store_sqlite_bind_int(s, 3, a3, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

static int write_change(struct store_sqlite_conn *c, int64_t cid, const struct store_change *ch,
			struct rag_err *err)
{
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, S_CHANGE_INSERT, &s, err);

	if (rc)
		return rc;
	store_sqlite_bind_int(s, 1, cid, &brc);
	store_sqlite_bind_int(s, 2, ch->seq, &brc);
	store_sqlite_bind_int(s, 3, ch->op, &brc);
	store_sqlite_bind_text(s, 4, ch->document_id, &brc);
	store_sqlite_bind_int(s, 5, ch->first_chunk, &brc);
	store_sqlite_bind_int(s, 6, ch->last_chunk, &brc);
	store_sqlite_bind_int(s, 7, ch->at, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

/* Deletes the document's chunks and logs a DELETE change for them, advancing *seq. */
static int drop_chunks(struct store_sqlite_conn *c, int64_t cid, const char *doc_id, int64_t *seq,
		       int64_t at, struct rag_err *err)
{
	struct store_change ch = { .op = STORE_CHANGE_DELETE, .document_id = doc_id, .at = at };
	int64_t n;
	int rc = chunk_range(c, cid, doc_id, &ch.first_chunk, &ch.last_chunk, &n, err);

	if (rc || n == 0)
		return rc;
	/* One range delete over the rowid: the chunks' ids are contiguous (checked above). */
	rc = store_sqlite_run3(c, S_DOC_DEL_CHUNKS, cid, ch.first_chunk, ch.last_chunk, err);
	if (rc < 0)
		return rc;
	ch.seq = *seq + 1;
	rc = write_change(c, cid, &ch, err);
	if (!rc)
		*seq = ch.seq;
	return rc;
}

static int upsert_doc(struct store_sqlite_conn *c, int64_t cid, const struct store_put *put,
		      int64_t at, struct rag_err *err)
{
	const struct store_doc *doc = put->doc;
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, S_DOC_UPSERT, &s, err);

	if (rc)
		return rc;
	store_sqlite_bind_int(s, 1, cid, &brc);
	store_sqlite_bind_text(s, 2, doc->id, &brc);
	store_sqlite_bind_text(s, 3, doc->text, &brc);
	store_sqlite_bind_text(s, 4, doc->metadata_json ? doc->metadata_json : "{}", &brc);
	store_sqlite_bind_text(s, 5, doc->content_hash ? doc->content_hash : "", &brc);
	store_sqlite_bind_int(s, 6, (int64_t)put->n_chunks, &brc);
	store_sqlite_bind_int(s, 7, at, &brc);
	if (doc->blocks)
		store_sqlite_bind_text(s, 8, doc->blocks, &brc);
	else if (brc == SQLITE_OK)
		brc = sqlite3_bind_null(s, 8);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

/* Inserts the chunks, checking that they get consecutive ids from *first. */
static int insert_chunks(struct store_sqlite_conn *c, int64_t cid, const struct store_put *put,
			 int64_t *first, struct rag_err *err)
{
	size_t vec_len = (size_t)put->dim * sizeof(float);
	sqlite3_stmt *s;
	int rc = 0;

	for (size_t i = 0; i < put->n_chunks && !rc; i++) {
		const struct store_chunk *ch = &put->chunks[i];
		int brc = SQLITE_OK;
		int64_t id;

		rc = store_sqlite_prep(c, S_CHUNK_INSERT, &s, err);
		if (rc)
			break;
		store_sqlite_bind_int(s, 1, cid, &brc);
		store_sqlite_bind_text(s, 2, put->doc->id, &brc);
		store_sqlite_bind_int(s, 3, (int64_t)i, &brc);
		store_sqlite_bind_int(s, 4, (int64_t)ch->start_byte, &brc);
		store_sqlite_bind_int(s, 5, (int64_t)ch->end_byte, &brc);
		store_sqlite_bind_text(s, 6, ch->text, &brc);
		store_sqlite_bind_blob(s, 7, put->vecs + i * (size_t)put->dim, vec_len, &brc);
		store_sqlite_bind_int(s, 8, (int64_t)ch->page, &brc);
		store_sqlite_bind_text(s, 9, ch->section ? ch->section : "", &brc);
		store_sqlite_bind_text(s, 10, ch->hash ? ch->hash : "", &brc);
		store_sqlite_bind_text(s, 11, put->model ? put->model : "", &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		sqlite3_reset(s);
		if (rc < 0)
			break;
		rc = 0;
		id = sqlite3_last_insert_rowid(c->db);
		if (i == 0)
			*first = id;
		else if (id != *first + (int64_t)i)
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "store: chunk ids of document '%s' are not contiguous",
					 put->doc->id);
	}
	return rc;
}

/*
 * Marks the job item the put applies done, in the put's transaction; a
 * RAG_EALREADY refusal rolls the whole put back.
 */
static int record_job_item(struct store_sqlite_conn *c, const struct store_put *put,
			   struct rag_err *err)
{
	const struct store_job_ref *job = put->job;
	int changed = 0;
	int rc = store_sqlite_job_item_record(c, job->job_id, job->idx, 1, NULL,
					      (int64_t)put->n_chunks, job->n_bytes, job->lease_ms,
					      &changed, err);

	if (!rc && !changed)
		rc = rag_err_set(err, RAG_EALREADY, NULL,
				 "job '%s' item %lld is no longer pending: it was applied already",
				 job->job_id, (long long)job->idx);
	return rc;
}

int store_sqlite_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
			 struct store_put_result *res, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "put document");
	const char *doc_id = put->doc->id;
	int64_t at = store_sqlite_now_ms();
	struct store_change ch = { .op = STORE_CHANGE_PUT, .document_id = doc_id, .at = at };
	int64_t seq = 0;
	int dim = 0, exists = 0;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = store_sqlite_coll_state_write(c, collection_id, &dim, &seq, err);
	if (!rc && dim != put->dim)
		rc = rag_err_set(err, RAG_EINVAL, NULL,
				 "document '%s': embeddings have %d dimensions, the collection %d",
				 doc_id, put->dim, dim);
	if (!rc && put->job)
		rc = record_job_item(c, put, err);
	if (!rc) {
		rc = run_doc(c, S_DOC_EXISTS, collection_id, doc_id, err);
		exists = rc == 1;
		rc = rc < 0 ? rc : 0;
	}
	if (!rc && exists)
		rc = drop_chunks(c, collection_id, doc_id, &seq, at, err);
	if (!rc)
		rc = upsert_doc(c, collection_id, put, at, err);
	if (!rc)
		rc = insert_chunks(c, collection_id, put, &ch.first_chunk, err);
	if (!rc) {
		ch.last_chunk = ch.first_chunk + (int64_t)put->n_chunks - 1;
		ch.seq = seq + 1;
		rc = write_change(c, collection_id, &ch, err);
	}
	if (!rc)
		rc = store_sqlite_run(c, S_COLL_SET_SEQ, 2, collection_id, ch.seq, err);
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
	if (!rc) {
		res->first_chunk_id = ch.first_chunk;
		res->last_chunk_id = ch.last_chunk;
		res->seq = ch.seq;
		res->replaced = exists;
	}
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
			 struct store_doc *out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "get document");
	sqlite3_stmt *s;
	int rc = store_sqlite_prep(c, S_DOC_GET, &s, err);

	if (!rc)
		rc = bind_doc(c, s, collection_id, doc_id, err);
	if (!rc)
		rc = store_sqlite_step(c, s, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	if (rc == 1) {
		out->n_chunks = (size_t)sqlite3_column_int64(s, 4);
		out->created_at = sqlite3_column_int64(s, 5);
		out->updated_at = sqlite3_column_int64(s, 6);
		rc = store_sqlite_col_str(s, 0, &out->id, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 1, &out->text, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 2, &out->metadata_json, err);
		if (!rc)
			rc = store_sqlite_col_str(s, 3, &out->content_hash, err);
		if (!rc && sqlite3_column_type(s, 7) != SQLITE_NULL)
			rc = store_sqlite_col_str(s, 7, &out->blocks, err);
		if (rc)
			store_doc_release(out);
	}
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
			    int64_t *seq_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "delete document");
	int64_t seq = 0;
	int dim;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = store_sqlite_coll_state_write(c, collection_id, &dim, &seq, err);
	if (!rc) {
		rc = run_doc(c, S_DOC_EXISTS, collection_id, doc_id, err);
		if (rc == 0)
			rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found",
					 doc_id);
		rc = rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = drop_chunks(c, collection_id, doc_id, &seq, store_sqlite_now_ms(), err);
	if (!rc)
		rc = run_doc(c, S_DOC_DEL, collection_id, doc_id, err);
	if (rc > 0)
		rc = 0;
	if (!rc)
		rc = store_sqlite_run(c, S_COLL_SET_SEQ, 2, collection_id, seq, err);
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
	if (!rc)
		*seq_out = seq;
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_read_hit(sqlite3_stmt *s, struct store_hit *h, struct rag_err *err)
{
	int rc;

	h->found = 1;
	h->ordinal = (size_t)sqlite3_column_int64(s, 1);
	h->start_byte = (size_t)sqlite3_column_int64(s, 2);
	h->end_byte = (size_t)sqlite3_column_int64(s, 3);
	rc = store_sqlite_col_str(s, 0, &h->document_id, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 4, &h->text, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 5, &h->metadata_json, err);
	h->page = (unsigned)sqlite3_column_int64(s, 6);
	if (!rc)
		rc = store_sqlite_col_str(s, 7, &h->section, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 8, &h->hash, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 9, &h->model, err);
	return rc;
}

int store_sqlite_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids, size_t n,
			    struct store_hit *out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "get chunks");
	sqlite3_stmt *s;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 0, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < n && !rc; i++) {
		int brc = SQLITE_OK;

		out[i].id = ids[i];
		rc = store_sqlite_prep(c, S_CHUNK_HIT, &s, err);
		if (rc)
			break;
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_int(s, 2, ids[i], &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 1)
			rc = store_sqlite_read_hit(s, &out[i], err);
		sqlite3_reset(s);
	}
	rc = store_sqlite_txn_end(ss, c, 0, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

/*
 * Feeds each (id, embedding) row of s to cb. The vector is copied into an
 * aligned buffer first: a BLOB's bytes have no alignment guarantee, and a
 * size check first keeps a damaged row from being read past its end.
 */
static int feed_vectors(struct store_sqlite_conn *c, sqlite3_stmt *s, int dim,
			store_row_fn cb, void *ctx,
			struct rag_err *err)
{
	size_t vec_len = (size_t)dim * sizeof(float);
	float *vec = malloc(vec_len);
	int rc;

	if (!vec)
		return store_sqlite_oom(err);
	for (;;) {
		int64_t id;

		rc = store_sqlite_step(c, s, err);
		if (rc <= 0)
			break;
		id = sqlite3_column_int64(s, 0);
		if ((size_t)sqlite3_column_bytes(s, 1) != vec_len) {
			rc = rag_err_set(err, RAG_EIO, NULL,
					 "store: chunk %lld has a %d-byte embedding, expected %zu"
					 " (database damaged?)",
					 (long long)id, sqlite3_column_bytes(s, 1), vec_len);
			break;
		}
		memcpy(vec, sqlite3_column_blob(s, 1), vec_len);
		{
			struct store_chunk_row row = { id, vec, NULL, 0, NULL };

			row.text = (const char *)sqlite3_column_text(s, 2);
			row.document_id = (const char *)sqlite3_column_text(s, 3);
			if (!row.document_id)
				row.document_id = "";
			row.text_len = (size_t)sqlite3_column_bytes(s, 2);
			if (!row.text)
				row.text = "";
			rc = cb(ctx, &row);
		}
		if (rc)
			break;
	}
	sqlite3_reset(s);
	free(vec);
	return rc;
}

/*
 * Feeds cb the collection's chunk vectors, all of them or the id range
 * [first_id, last_id], in one read transaction; *seq_out (may be NULL) gets
 * the collection's seq as of that transaction.
 */
static int scan_vectors(struct store *st, int64_t collection_id, int ranged, int64_t first_id,
			int64_t last_id, store_row_fn cb,
			void *ctx, int64_t *seq_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c =
		store_sqlite_conn_get(ss, ranged ? "read chunk vectors" : "scan chunks");
	sqlite3_stmt *s;
	int64_t seq = 0;
	int dim = 0, brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 0, err);
	if (rc)
		goto out;
	rc = store_sqlite_coll_state(c, collection_id, &dim, &seq, err);
	if (!rc)
		rc = store_sqlite_prep(c, ranged ? S_CHUNK_RANGE : S_CHUNK_SCAN, &s, err);
	if (!rc) {
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		if (ranged) {
			store_sqlite_bind_int(s, 2, first_id, &brc);
			store_sqlite_bind_int(s, 3, last_id, &brc);
		}
		rc = brc ? store_sqlite_fail(c, brc, err) : feed_vectors(c, s, dim, cb, ctx, err);
	}
	rc = store_sqlite_txn_end(ss, c, 0, rc, err);
	if (!rc && seq_out)
		*seq_out = seq;
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_chunks_scan(struct store *st, int64_t collection_id,
			     store_row_fn cb, void *ctx,
			     int64_t *seq_out, struct rag_err *err)
{
	return scan_vectors(st, collection_id, 0, 0, 0, cb, ctx, seq_out, err);
}

int store_sqlite_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			       int64_t last_id,
			       store_row_fn cb, void *ctx,
			       struct rag_err *err)
{
	return scan_vectors(st, collection_id, 1, first_id, last_id, cb, ctx, NULL, err);
}

int store_sqlite_changes(struct store *st, int64_t collection_id, int64_t since_seq,
			 size_t limit, struct store_change *out, size_t *n_out,
			 struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read changes");
	sqlite3_stmt *s;
	int64_t seq;
	size_t n = 0;
	int dim, brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 0, err);
	if (rc)
		goto out;
	rc = store_sqlite_coll_state(c, collection_id, &dim, &seq, err);
	if (!rc)
		rc = store_sqlite_prep(c, S_CHANGES, &s, err);
	if (!rc) {
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_int(s, 2, since_seq, &brc);
		store_sqlite_bind_int(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		while (rc == 1 && n < limit) {
			struct store_change *ch = &out[n];

			ch->seq = sqlite3_column_int64(s, 0);
			ch->op = (enum store_change_op)sqlite3_column_int(s, 1);
			ch->first_chunk = sqlite3_column_int64(s, 3);
			ch->last_chunk = sqlite3_column_int64(s, 4);
			ch->at = sqlite3_column_int64(s, 5);
			rc = store_sqlite_col_str(s, 2, &ch->document_id, err);
			if (rc)
				break;
			n++;
			rc = store_sqlite_step(c, s, err);
		}
		sqlite3_reset(s);
		rc = rc < 0 ? rc : 0;
	}
	rc = store_sqlite_txn_end(ss, c, 0, rc, err);
	if (rc)
		store_changes_release(out, n);
	else
		*n_out = n;
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}
