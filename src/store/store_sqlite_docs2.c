/*
 * The SQLite store's document reads added with schema version 2: a
 * document's content hash (the upsert's "did it change?"), vectors by chunk
 * content address (the edited document's reuse), paginated listing with
 * metadata filters, and a document's chunks.
 *
 * Listing pages by keyset (id > cursor ORDER BY id) rather than OFFSET: each
 * page costs the same however deep it is, and documents written between two
 * pages neither repeat nor vanish from the ones already read.
 */
#include "store/store_sqlite_int.h"

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "store/store.h"
#include "store/store_filter.h"

#include <sqlite3.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

int store_sqlite_doc_hash(struct store *st, int64_t collection_id, const char *doc_id,
			  char **hash_out, size_t *n_chunks_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read document hash");
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, S_DOC_HASH, &s, err);

	if (!rc) {
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_text(s, 2, doc_id, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	}
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	if (rc == 1) {
		*n_chunks_out = (size_t)sqlite3_column_int64(s, 1);
		rc = store_sqlite_col_str(s, 0, (const char **)hash_out, err);
	}
	if (!rc)
		sqlite3_reset(s);
	store_sqlite_conn_put(ss, c);
	return rc;
}

int store_sqlite_vectors_by_hash(struct store *st, int64_t collection_id,
				 const char *const *hashes, size_t n, int dim, float *vecs,
				 unsigned char *found, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "reuse chunk vectors");
	size_t vec_len = (size_t)dim * sizeof(float);
	int64_t seq;
	int have_dim = 0;
	sqlite3_stmt *s;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 0, err);
	if (rc)
		goto out;
	rc = store_sqlite_coll_state(c, collection_id, &have_dim, &seq, err);
	if (!rc && have_dim != dim)
		rc = rag_err_set(err, RAG_EINVAL, NULL, "vectors of %d dimensions asked, the"
				 " collection has %d", dim, have_dim);
	for (size_t i = 0; i < n && !rc; i++) {
		int brc = SQLITE_OK;

		if (!hashes[i] || !*hashes[i])
			continue;
		rc = store_sqlite_prep(c, S_VEC_BY_HASH, &s, err);
		if (rc)
			break;
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_text(s, 2, hashes[i], &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		if (rc == 1 && (size_t)sqlite3_column_bytes(s, 0) == vec_len) {
			memcpy(vecs + i * (size_t)dim, sqlite3_column_blob(s, 0), vec_len);
			found[i] = 1;
		}
		rc = rc < 0 ? rc : 0;
		sqlite3_reset(s);
	}
	rc = store_sqlite_txn_end(ss, c, 0, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

static int read_doc_row(sqlite3_stmt *s, struct store_doc *d, struct rag_err *err)
{
	int rc;

	d->n_chunks = (size_t)sqlite3_column_int64(s, 3);
	d->created_at = sqlite3_column_int64(s, 4);
	d->updated_at = sqlite3_column_int64(s, 5);
	rc = store_sqlite_col_str(s, 0, &d->id, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 1, &d->metadata_json, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 2, &d->content_hash, err);
	if (!rc) {
		d->text = strdup("");
		if (!d->text)
			rc = store_sqlite_oom(err);
	}
	return rc;
}

int store_sqlite_doc_list(struct store *st, int64_t collection_id,
			  const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
			  struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "list documents");
	struct sbuf sql = SBUF_INIT;
	struct store_doc *docs = NULL;
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int n_params = 3, bound = 3, rc;

	sbuf_addstr(&sql, "SELECT d.id, d.metadata_json, d.content_hash, d.n_chunks,"
			  " d.created_at, d.updated_at FROM documents d"
			  " WHERE d.collection_id = ?1 AND d.id > ?2");
	if (q->filter) {
		sbuf_addstr(&sql, " AND ");
		store_sqlite_filter_sql(&sql, q->filter, &n_params);
	}
	sbuf_addstr(&sql, " ORDER BY d.id LIMIT ?3");
	docs = calloc(q->limit, sizeof(*docs));
	rc = sbuf_error(&sql) || !docs ? SQLITE_NOMEM
				      : sqlite3_prepare_v2(c->db, sql.buf, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 1, collection_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 2, q->after_id ? q->after_id : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, (int64_t)q->limit);
	if (rc == SQLITE_OK && q->filter)
		rc = store_sqlite_filter_bind(s, q->filter, &bound);
	rc = rc == SQLITE_OK ? 0 : store_sqlite_error(c->db, rc, err, "list documents");
	while (!rc && n < q->limit) {
		int step = sqlite3_step(s);

		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW) {
			rc = store_sqlite_error(c->db, step, err, "list documents");
			break;
		}
		rc = read_doc_row(s, &docs[n], err);
		n++;
	}
	sqlite3_finalize(s);
	store_sqlite_conn_put(ss, c);
	sbuf_release(&sql);
	if (rc || n == 0) {
		store_doc_list_free(docs, n);
		return rc;
	}
	*out = docs;
	*n_out = n;
	return 0;
}

int store_sqlite_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
			    struct store_hit **out, size_t *n_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read document chunks");
	struct store_hit *hits = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 0, err);
	if (rc)
		goto out;
	rc = store_sqlite_prep(c, S_DOC_EXISTS, &s, err);
	if (!rc) {
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_text(s, 2, doc_id, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		sqlite3_reset(s);
		if (rc == 0)
			rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
		rc = rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = store_sqlite_prep(c, S_DOC_CHUNKS, &s, err);
	if (!rc) {
		store_sqlite_bind_int(s, 1, collection_id, &brc);
		store_sqlite_bind_text(s, 2, doc_id, &brc);
		rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
		while (rc == 1) {
			if (n == alloc) {
				struct store_hit *grown;

				alloc = alloc ? 2 * alloc : 16;
				grown = reallocarray(hits, alloc, sizeof(*hits));
				if (!grown) {
					rc = store_sqlite_oom(err);
					break;
				}
				hits = grown;
			}
			memset(&hits[n], 0, sizeof(hits[n]));
			hits[n].id = sqlite3_column_int64(s, 10);
			rc = store_sqlite_read_hit(s, &hits[n], err);
			n++;
			if (!rc)
				rc = store_sqlite_step(c, s, err);
		}
		sqlite3_reset(s);
		rc = rc < 0 ? rc : 0;
	}
	rc = store_sqlite_txn_end(ss, c, 0, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	if (rc) {
		store_hits_release(hits, n);
		free(hits);
		return rc;
	}
	*out = hits;
	*n_out = n;
	return 0;
}
