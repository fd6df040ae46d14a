/*
 * The SQLite store: ragd.db in WAL mode behind a small pool of connections.
 * This file holds the pool, the statement cache, transactions, open/free and
 * the collection ops; store_sqlite_docs.c holds documents, chunks and the
 * change log; store_sqlite_schema.c the schema and its migrations.
 *
 * Concurrency. A SQLite connection must not be used by two threads at once,
 * and one connection serialises everything run on it, so the store keeps
 * pool_size connections (opened with SQLITE_OPEN_NOMUTEX: the pool already
 * guarantees one thread per connection) on a free list; an operation takes
 * one, waits on a condition variable when all are busy, and gives it back.
 * WAL lets the readers on the other connections run while one writes, each
 * seeing the snapshot its read transaction began with. Writers: SQLite
 * allows one at a time per file. Within the process they queue on
 * write_lock (sleeping, instead of SQLite's busy-handler polling); across processes, BEGIN
 * IMMEDIATE takes the file's write lock up front (no deadlock from a
 * read lock upgraded late) and waits up to busy_timeout_ms for it.
 *
 * Statements. Each connection lazily prepares each statement of the sql[]
 * table once (SQLITE_PREPARE_PERSISTENT) and keeps it; a statement is reset
 * when taken and every statement is reset when the connection goes back to
 * the pool, so no forgotten cursor keeps a read transaction (and with it an
 * old WAL snapshot) open.
 *
 * Puts (store_sqlite_docs.c). A document put is one IMMEDIATE transaction: delete the old chunks
 * (DELETE change naming their id range), upsert the document, insert the
 * chunks, write the PUT change, bump the collection's seq, commit. chunks.id
 * is AUTOINCREMENT and we hold the write lock, so the new ids are
 * consecutive; the code checks that each insert got first_id + i rather than
 * trusting it, and fails (rolling back) if not. Any failure rolls the whole
 * transaction back: nothing half-written is ever visible.
 *
 * Embeddings are stored as little-endian float32 BLOBs of dim floats; a
 * blob of another size is reported as corruption, not read past.
 *
 * Alternatives rejected: one connection behind a mutex (readers would queue
 * behind a long put and behind each other); a connection per thread in
 * thread-local storage (connections leak with the HTTP pool's threads and
 * the count is unbounded).
 */
#include "store/store_sqlite.h"
#include "store/store_sqlite_int.h"

#include "core/log.h"
#include "core/rag_error.h"
#include "store/store.h"

#include <sqlite3.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/banned.h"

#define COLL_COLS                                                                           \
	"id, tenant, name, embed_model, dim, chunk_size, chunk_overlap, config_json,"       \
	" created_at, seq"

static const char *const sql[S_N_STMT] = {
	[S_BEGIN_READ] = "BEGIN",
	[S_BEGIN_WRITE] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_COLL_INSERT] = "INSERT INTO collections (tenant, name, embed_model, dim, chunk_size,"
			  " chunk_overlap, config_json, created_at, seq)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
	[S_COLL_BY_NAME] = "SELECT " COLL_COLS " FROM collections WHERE tenant = ?1 AND name = ?2",
	[S_COLL_BY_ID] = "SELECT " COLL_COLS " FROM collections WHERE id = ?1",
	[S_COLL_LIST] = "SELECT " COLL_COLS " FROM collections WHERE tenant = ?1 ORDER BY name",
	[S_COLL_LIST_ALL] = "SELECT " COLL_COLS " FROM collections ORDER BY tenant, name",
	[S_COLL_STATE] = "SELECT dim, seq FROM collections WHERE id = ?1",
	[S_COLL_RETIRED] = "SELECT retired FROM collections WHERE id = ?1",
	[S_COLL_SET_SEQ] = "UPDATE collections SET seq = ?2 WHERE id = ?1",
	[S_COLL_DEL] = "DELETE FROM collections WHERE id = ?1",
	[S_COLL_DEL_CHUNKS] = "DELETE FROM chunks WHERE collection_id = ?1",
	[S_COLL_DEL_DOCS] = "DELETE FROM documents WHERE collection_id = ?1",
	[S_COLL_DEL_CHANGES] = "DELETE FROM changes WHERE collection_id = ?1",
	[S_DOC_EXISTS] = "SELECT 1 FROM documents WHERE collection_id = ?1 AND id = ?2",
	[S_DOC_UPSERT] = "INSERT INTO documents (collection_id, id, text, metadata_json,"
			 " content_hash, n_chunks, created_at, updated_at, blocks)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)"
			 " ON CONFLICT (collection_id, id) DO UPDATE SET text = excluded.text,"
			 " metadata_json = excluded.metadata_json,"
			 " content_hash = excluded.content_hash, n_chunks = excluded.n_chunks,"
			 " updated_at = excluded.updated_at, blocks = excluded.blocks",
	[S_DOC_GET] = "SELECT id, text, metadata_json, content_hash, n_chunks, created_at,"
		      " updated_at, blocks FROM documents WHERE collection_id = ?1 AND id = ?2",
	[S_DOC_DEL] = "DELETE FROM documents WHERE collection_id = ?1 AND id = ?2",
	[S_DOC_CHUNK_RANGE] = "SELECT min(id), max(id), count(*) FROM chunks"
			      " WHERE collection_id = ?1 AND document_id = ?2",
	[S_DOC_DEL_CHUNKS] = "DELETE FROM chunks WHERE id BETWEEN ?2 AND ?3 AND collection_id = ?1",
	[S_CHUNK_INSERT] = "INSERT INTO chunks (collection_id, document_id, ordinal, start_byte,"
			   " end_byte, text, embedding, page, section, hash, model)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_CHUNK_HIT] = "SELECT c.document_id, c.ordinal, c.start_byte, c.end_byte, c.text,"
			" d.metadata_json, c.page, c.section, c.hash, c.model"
			" FROM chunks c JOIN documents d"
			" ON d.collection_id = c.collection_id AND d.id = c.document_id"
			" WHERE c.id = ?2 AND c.collection_id = ?1",
	[S_CHUNK_SCAN] = "SELECT id, embedding, text, document_id FROM chunks"
			 " WHERE collection_id = ?1",
	[S_CHUNK_RANGE] = "SELECT id, embedding, text, document_id FROM chunks"
			  " WHERE id BETWEEN ?2 AND ?3 AND collection_id = ?1 ORDER BY id",
	[S_CHANGE_INSERT] = "INSERT INTO changes (collection_id, seq, op, document_id,"
			    " first_chunk, last_chunk, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_CHANGES] = "SELECT seq, op, document_id, first_chunk, last_chunk, at FROM changes"
		      " WHERE collection_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
	[S_DOC_HASH] = "SELECT content_hash, n_chunks FROM documents WHERE collection_id = ?1 AND id = ?2",
	[S_VEC_BY_HASH] = "SELECT embedding FROM chunks WHERE collection_id = ?1 AND hash = ?2"
			  " LIMIT 1",
	[S_DOC_CHUNKS] = "SELECT c.document_id, c.ordinal, c.start_byte, c.end_byte, c.text,"
			 " d.metadata_json, c.page, c.section, c.hash, c.model, c.id"
			 " FROM chunks c JOIN documents d"
			 " ON d.collection_id = c.collection_id AND d.id = c.document_id"
			 " WHERE c.collection_id = ?1 AND c.document_id = ?2 ORDER BY c.ordinal",
};

int64_t store_sqlite_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_sqlite_oom(struct rag_err *err)
{
	return rag_err_set(err, RAG_ENOMEM, NULL, "store: out of memory");
}

struct store_sqlite_conn *store_sqlite_conn_get(struct store_sqlite *ss, const char *what)
{
	struct store_sqlite_conn *c;

	pthread_mutex_lock(&ss->pool_lock);
	while (!ss->free_list)
		pthread_cond_wait(&ss->pool_cond, &ss->pool_lock);
	c = ss->free_list;
	ss->free_list = c->next;
	pthread_mutex_unlock(&ss->pool_lock);
	c->what = what;
	return c;
}

static void reset_all(struct store_sqlite_conn *c)
{
	for (int i = 0; i < S_N_STMT; i++)
		if (c->stmt[i])
			sqlite3_reset(c->stmt[i]);
}

void store_sqlite_conn_put(struct store_sqlite *ss, struct store_sqlite_conn *c)
{
	reset_all(c);
	pthread_mutex_lock(&ss->pool_lock);
	c->next = ss->free_list;
	ss->free_list = c;
	pthread_cond_signal(&ss->pool_cond);
	pthread_mutex_unlock(&ss->pool_lock);
}

int store_sqlite_fail(struct store_sqlite_conn *c, int rc, struct rag_err *err)
{
	return store_sqlite_error(c->db, rc, err, c->what);
}

int store_sqlite_prep(struct store_sqlite_conn *c, enum store_sqlite_stmt id, sqlite3_stmt **out,
		      struct rag_err *err)
{
	sqlite3_stmt *s = c->stmt[id];
	int rc;

	if (!s) {
		rc = sqlite3_prepare_v3(c->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
		if (rc != SQLITE_OK)
			return store_sqlite_fail(c, rc, err);
		c->stmt[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	*out = s;
	return 0;
}

int store_sqlite_step(struct store_sqlite_conn *c, sqlite3_stmt *s, struct rag_err *err)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_sqlite_fail(c, rc, err);
}

void store_sqlite_bind_text(sqlite3_stmt *s, int i, const char *v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_text64(s, i, v, strlen(v), SQLITE_STATIC, SQLITE_UTF8);
}

void store_sqlite_bind_int(sqlite3_stmt *s, int i, int64_t v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_int64(s, i, v);
}

void store_sqlite_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_blob64(s, i, p, len, SQLITE_STATIC);
}

int store_sqlite_run(struct store_sqlite_conn *c, enum store_sqlite_stmt id, int n_args,
		     int64_t a1, int64_t a2, struct rag_err *err)
{
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, id, &s, err);

	if (rc)
		return rc;
	if (n_args > 0)
		store_sqlite_bind_int(s, 1, a1, &brc);
	if (n_args > 1)
		store_sqlite_bind_int(s, 2, a2, &brc);
	if (brc)
		return store_sqlite_fail(c, brc, err);
	rc = store_sqlite_step(c, s, err);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

int store_sqlite_txn_begin(struct store_sqlite *ss, struct store_sqlite_conn *c, int write,
			   struct rag_err *err)
{
	int rc;

	if (write)
		pthread_mutex_lock(&ss->write_lock);
	rc = store_sqlite_run(c, write ? S_BEGIN_WRITE : S_BEGIN_READ, 0, 0, 0, err);
	if (rc && write)
		pthread_mutex_unlock(&ss->write_lock);
	return rc;
}

int store_sqlite_txn_end(struct store_sqlite *ss, struct store_sqlite_conn *c, int write, int rc,
			 struct rag_err *err)
{
	reset_all(c);
	if (rc == 0)
		rc = store_sqlite_run(c, S_COMMIT, 0, 0, 0, err);
	if (rc != 0 && !sqlite3_get_autocommit(c->db))
		store_sqlite_run(c, S_ROLLBACK, 0, 0, 0, NULL);
	if (write)
		pthread_mutex_unlock(&ss->write_lock);
	return rc;
}

int store_sqlite_col_str(sqlite3_stmt *s, int i, const char **out, struct rag_err *err)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	size_t len = (size_t)sqlite3_column_bytes(s, i);
	char *p = malloc(len + 1);

	if (!p)
		return store_sqlite_oom(err);
	if (t)
		memcpy(p, t, len);
	p[len] = '\0';
	*out = p;
	return 0;
}

int store_sqlite_coll_state(struct store_sqlite_conn *c, int64_t id, int *dim, int64_t *seq,
			    struct rag_err *err)
{
	sqlite3_stmt *s;
	int rc = store_sqlite_prep(c, S_COLL_STATE, &s, err);

	if (rc)
		return rc;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc != SQLITE_OK)
		return store_sqlite_fail(c, rc, err);
	rc = store_sqlite_step(c, s, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection %lld not found",
				 (long long)id);
	if (rc == 1) {
		*dim = sqlite3_column_int(s, 0);
		*seq = sqlite3_column_int64(s, 1);
		rc = 0;
	}
	sqlite3_reset(s);
	return rc;
}

int store_sqlite_coll_state_write(struct store_sqlite_conn *c, int64_t id, int *dim,
				  int64_t *seq, struct rag_err *err)
{
	sqlite3_stmt *s;
	int rc = store_sqlite_coll_state(c, id, dim, seq, err);

	if (!rc)
		rc = store_sqlite_prep(c, S_COLL_RETIRED, &s, err);
	if (rc)
		return rc;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc != SQLITE_OK)
		return store_sqlite_fail(c, rc, err);
	rc = store_sqlite_step(c, s, err);
	if (rc == 1)
		rc = sqlite3_column_int(s, 0)
			     ? rag_err_set(err, RAG_ENOTFOUND, NULL, "collection %lld was replaced",
					   (long long)id)
			     : 0;
	sqlite3_reset(s);
	return rc;
}

static int read_collection(sqlite3_stmt *s, struct store_collection *out, struct rag_err *err)
{
	int rc;

	out->id = sqlite3_column_int64(s, 0);
	out->dim = sqlite3_column_int(s, 4);
	out->chunk_size = sqlite3_column_int(s, 5);
	out->chunk_overlap = sqlite3_column_int(s, 6);
	out->created_at = sqlite3_column_int64(s, 8);
	out->seq = sqlite3_column_int64(s, 9);
	rc = store_sqlite_col_str(s, 1, &out->tenant, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 2, &out->name, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 3, &out->embed_model, err);
	if (!rc)
		rc = store_sqlite_col_str(s, 7, &out->config_json, err);
	if (rc)
		store_collection_release(out);
	return rc;
}

static int collection_create(struct store *st, const char *tenant,
			     const struct store_collection *spec, int64_t *id_out,
			     struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "create collection");
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = store_sqlite_prep(c, S_COLL_INSERT, &s, err);
	if (rc)
		goto end;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, spec->name, &brc);
	store_sqlite_bind_text(s, 3, spec->embed_model, &brc);
	store_sqlite_bind_int(s, 4, spec->dim, &brc);
	store_sqlite_bind_int(s, 5, spec->chunk_size, &brc);
	store_sqlite_bind_int(s, 6, spec->chunk_overlap, &brc);
	store_sqlite_bind_text(s, 7, spec->config_json ? spec->config_json : "{}", &brc);
	store_sqlite_bind_int(s, 8, store_sqlite_now_ms(), &brc);
	if (brc == SQLITE_OK)
		brc = sqlite3_step(s);
	if (brc == SQLITE_CONSTRAINT_UNIQUE)
		rc = rag_err_set(err, RAG_ECONFLICT, "name", "collection '%s' already exists",
				 spec->name);
	else if (brc != SQLITE_DONE)
		rc = store_sqlite_fail(c, brc, err);
	else if (id_out)
		*id_out = sqlite3_last_insert_rowid(c->db);
end:
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

/* Steps s for one collection row into *out; RAG_ENOTFOUND, unworded, when there is none. */
static int get_one_collection(struct store_sqlite_conn *c, sqlite3_stmt *s,
			      struct store_collection *out, struct rag_err *err)
{
	int rc = store_sqlite_step(c, s, err);

	if (rc == 1)
		rc = read_collection(s, out, err);
	else if (rc == 0)
		rc = RAG_ENOTFOUND;
	sqlite3_reset(s);
	return rc;
}

static int collection_get(struct store *st, const char *tenant, const char *name,
			  struct store_collection *out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "get collection");
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, S_COLL_BY_NAME, &s, err);

	if (rc)
		goto out;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, name, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : get_one_collection(c, s, out, err);
	if (rc == RAG_ENOTFOUND)
		rag_err_set(err, rc, NULL, "collection '%s' not found", name);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

static int collection_get_by_id(struct store *st, int64_t collection_id,
				struct store_collection *out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "get collection");
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, S_COLL_BY_ID, &s, err);

	if (rc)
		goto out;
	store_sqlite_bind_int(s, 1, collection_id, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : get_one_collection(c, s, out, err);
	if (rc == RAG_ENOTFOUND)
		rag_err_set(err, rc, NULL, "collection %lld not found", (long long)collection_id);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

static int collection_list(struct store *st, const char *tenant, struct store_collection **out,
			   size_t *n_out, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "list collections");
	struct store_collection *list = NULL, *grown;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *s;
	int brc = SQLITE_OK;
	int rc = store_sqlite_prep(c, tenant ? S_COLL_LIST : S_COLL_LIST_ALL, &s, err);

	if (rc)
		goto out;
	if (tenant)
		store_sqlite_bind_text(s, 1, tenant, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	while (rc == 1) {
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 8;
			grown = reallocarray(list, alloc, sizeof(*list));
			if (!grown) {
				rc = store_sqlite_oom(err);
				break;
			}
			list = grown;
		}
		memset(&list[n], 0, sizeof(list[n]));
		rc = read_collection(s, &list[n], err);
		if (rc)
			break;
		n++;
		rc = store_sqlite_step(c, s, err);
	}
out:
	store_sqlite_conn_put(ss, c);
	if (rc || n == 0) {
		store_collection_list_free(list, n);
		return rc;
	}
	*out = list;
	*n_out = n;
	return 0;
}

static int collection_delete(struct store *st, const char *tenant, const char *name,
			     struct rag_err *err)
{
	static const enum store_sqlite_stmt deletes[] = { S_COLL_DEL_CHUNKS, S_COLL_DEL_CHANGES,
							  S_COLL_DEL_DOCS, S_COLL_DEL };
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "delete collection");
	sqlite3_stmt *s;
	int64_t id = 0;
	int brc = SQLITE_OK;
	int rc;

	rc = store_sqlite_txn_begin(ss, c, 1, err);
	if (rc)
		goto out;
	rc = store_sqlite_prep(c, S_COLL_BY_NAME, &s, err);
	if (rc)
		goto end;
	store_sqlite_bind_text(s, 1, tenant, &brc);
	store_sqlite_bind_text(s, 2, name, &brc);
	rc = brc ? store_sqlite_fail(c, brc, err) : store_sqlite_step(c, s, err);
	if (rc == 1)
		id = sqlite3_column_int64(s, 0);
	else if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", name);
	sqlite3_reset(s);
	if (rc < 0)
		goto end;
	rc = 0;
	for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]) && !rc; i++)
		rc = store_sqlite_run(c, deletes[i], 1, id, 0, err);
end:
	rc = store_sqlite_txn_end(ss, c, 1, rc, err);
out:
	store_sqlite_conn_put(ss, c);
	return rc;
}

static int collection_seq(struct store *st, int64_t collection_id, int64_t *seq_out,
			  struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c = store_sqlite_conn_get(ss, "read collection seq");
	int dim;
	int rc = store_sqlite_coll_state(c, collection_id, &dim, seq_out, err);

	store_sqlite_conn_put(ss, c);
	return rc;
}

/*
 * Readiness: the database file must still be the one opened (a volume
 * unmounted or a data directory removed under a running server leaves the
 * open descriptors working on an unlinked file, writing into the void), and
 * a connection must answer.
 */
static int ping(struct store *st, struct rag_err *err)
{
	struct store_sqlite *ss = st->impl;
	struct store_sqlite_conn *c;
	struct rag_err lerr = { 0 };
	struct stat sb;
	int64_t seq;
	int dim, rc;

	if (stat(ss->path, &sb) < 0 || sb.st_dev != ss->dev || sb.st_ino != ss->ino)
		return rag_err_set(err, RAG_EIO, NULL, "store: database file '%s' is gone or replaced",
				   ss->path);
	c = store_sqlite_conn_get(ss, "ping");
	rc = store_sqlite_coll_state(c, -1, &dim, &seq, &lerr);
	store_sqlite_conn_put(ss, c);
	if (rc == RAG_ENOTFOUND || rc == 0)
		return 0;
	return rag_err_set(err, rc, NULL, "%s", lerr.msg);
}

/* Creates every missing directory of path, like mkdir -p. */
static int make_dirs(const char *path, struct rag_err *err)
{
	char *p = strdup(path);
	struct stat sb;
	int rc = 0;

	if (!p)
		return store_sqlite_oom(err);
	for (char *q = p + 1; !rc; q++) {
		int last = *q == '\0';

		if (*q != '/' && !last)
			continue;
		*q = '\0';
		if (mkdir(p, 0750) != 0 && errno != EEXIST)
			rc = rag_err_set(err, RAG_EIO, NULL, "cannot create data directory '%s': %s",
					 p, strerror(errno));
		if (last)
			break;
		*q = '/';
	}
	free(p);
	if (!rc && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))
		rc = rag_err_set(err, RAG_EIO, NULL, "data directory '%s' is not a directory",
				 path);
	return rc;
}

/* Opens one connection with the per-connection settings. */
static int conn_open(struct store_sqlite *ss, struct store_sqlite_conn *c,
		     const struct store_options *o, struct rag_err *err)
{
	char pragmas[128];
	int rc;

	c->what = "open database";
	rc = sqlite3_open_v2(ss->path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (!c->db)
			return store_sqlite_oom(err);
		return rag_err_set(err, RAG_EIO, NULL, "cannot open '%s': %s", ss->path,
				   sqlite3_errmsg(c->db));
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, o->busy_timeout_ms);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA foreign_keys = ON; PRAGMA synchronous = %s;",
		 o->sync == STORE_SYNC_NORMAL ? "NORMAL" : "FULL");
	rc = sqlite3_exec(c->db, pragmas, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlite_fail(c, rc, err);
}

/*
 * Switches the file to WAL (a persistent setting), failing where WAL is
 * unavailable. On a fresh file this upgrades a read lock to a write lock, and
 * SQLite answers SQLITE_BUSY at once, without the busy handler, to the loser
 * of two openers racing for it (waiting could deadlock): the workers of one
 * supervisor open a new data directory together. So a busy answer is retried
 * here, every WAL_RETRY_MS, for up to busy_timeout_ms.
 */
#define WAL_RETRY_MS 5
static int enable_wal(struct store_sqlite_conn *c, int busy_timeout_ms, struct rag_err *err)
{
	const struct timespec pause = {.tv_nsec = WAL_RETRY_MS * 1000000L};
	sqlite3_stmt *s = NULL;
	int rc;

	for (int waited = 0;; waited += WAL_RETRY_MS) {
		rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(s);
		if ((rc & 0xff) != SQLITE_BUSY || waited >= busy_timeout_ms)
			break;
		sqlite3_finalize(s);
		s = NULL;
		nanosleep(&pause, NULL);
	}
	if (rc == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(s, 0);

		rc = 0;
		if (!mode || strcmp(mode, "wal") != 0)
			rc = rag_err_set(err, RAG_EIO, NULL,
					 "store: cannot use WAL mode on this file system"
					 " (journal mode is '%s')", mode ? mode : "?");
	} else {
		rc = store_sqlite_fail(c, rc, err);
	}
	sqlite3_finalize(s);
	return rc;
}

static void sqlite_free(struct store *st)
{
	struct store_sqlite *ss = st->impl;

	for (size_t i = 0; i < ss->n_conns; i++) {
		struct store_sqlite_conn *c = &ss->conns[i];

		sqlite3_stmt *left = NULL;

		for (int j = 0; j < S_N_STMT; j++)
			sqlite3_finalize(c->stmt[j]);
		/*
		 * A statement some path forgot keeps the connection open (a leak
		 * LeakSanitizer reports with sqlite's frames only): name it.
		 */
		while ((left = sqlite3_next_stmt(c->db, left)) != NULL)
			log_warn("store: statement left unfinalized: %s", sqlite3_sql(left));
		sqlite3_close(c->db);
	}
	pthread_mutex_destroy(&ss->pool_lock);
	pthread_cond_destroy(&ss->pool_cond);
	pthread_mutex_destroy(&ss->write_lock);
	free(ss->conns);
	free(ss->path);
	free(ss);
}

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.free = sqlite_free,
	.collection_create = collection_create,
	.collection_get = collection_get,
	.collection_get_by_id = collection_get_by_id,
	.collection_list = collection_list,
	.collection_delete = collection_delete,
	.collection_seq = collection_seq,
	.doc_put = store_sqlite_doc_put,
	.doc_get = store_sqlite_doc_get,
	.doc_delete = store_sqlite_doc_delete,
	.chunks_get = store_sqlite_chunks_get,
	.chunks_scan = store_sqlite_chunks_scan,
	.chunk_vectors = store_sqlite_chunk_vectors,
	.changes = store_sqlite_changes,
	.ping = ping,
	.filter_ids = store_sqlite_filter_ids,
	.session_append = store_sqlite_session_append,
	.session_history = store_sqlite_session_history,
	.doc_hash = store_sqlite_doc_hash,
	.vectors_by_hash = store_sqlite_vectors_by_hash,
	.doc_list = store_sqlite_doc_list,
	.doc_chunks = store_sqlite_doc_chunks,
	.job_create = store_sqlite_job_create,
	.job_get = store_sqlite_job_get,
	.job_errors = store_sqlite_job_errors,
	.job_claim = store_sqlite_job_claim,
	.job_items_next = store_sqlite_job_items_next,
	.job_item_finish = store_sqlite_job_item_finish,
	.job_finish = store_sqlite_job_finish,
	.job_cancel = store_sqlite_job_cancel,
	.collection_swap = store_sqlite_collection_swap,
	.key_put = store_sqlite_key_put,
	.key_get = store_sqlite_key_get,
	.key_list = store_sqlite_key_list,
	.key_delete = store_sqlite_key_delete,
};

struct store *store_sqlite_open(const char *data_dir, const struct store_options *opts,
				struct rag_err *err)
{
	struct store_options o = opts ? *opts : store_default_options();
	struct store_sqlite *ss;
	size_t path_len;
	int rc;

	assert(data_dir);
	if (!*data_dir) {
		rag_err_set(err, RAG_EINVAL, "data_dir", "the data directory must not be empty");
		return NULL;
	}
	if (o.pool_size == 0)
		o.pool_size = STORE_DEFAULT_POOL_SIZE;
	if (o.busy_timeout_ms < 0)
		o.busy_timeout_ms = STORE_DEFAULT_BUSY_TIMEOUT_MS;
	if (o.pool_size > STORE_SQLITE_MAX_POOL) {
		rag_err_set(err, RAG_EINVAL, "pool_size", "store pool size %zu is over %d",
			    o.pool_size, STORE_SQLITE_MAX_POOL);
		return NULL;
	}
	if (!sqlite3_threadsafe()) {
		rag_err_set(err, RAG_EUNSUPPORTED, NULL, "store: SQLite was built without threads");
		return NULL;
	}
	if (make_dirs(data_dir, err))
		return NULL;

	ss = calloc(1, sizeof(*ss));
	if (!ss) {
		store_sqlite_oom(err);
		return NULL;
	}
	ss->base.ops = &sqlite_ops;
	ss->base.impl = ss;
	pthread_mutex_init(&ss->pool_lock, NULL);
	pthread_cond_init(&ss->pool_cond, NULL);
	pthread_mutex_init(&ss->write_lock, NULL);
	path_len = strlen(data_dir) + 1 + strlen(STORE_SQLITE_DB_NAME) + 1;
	ss->path = malloc(path_len);
	ss->conns = calloc(o.pool_size, sizeof(*ss->conns));
	if (!ss->path || !ss->conns) {
		rc = store_sqlite_oom(err);
		goto fail;
	}
	snprintf(ss->path, path_len, "%s/%s", data_dir, STORE_SQLITE_DB_NAME);

	for (size_t i = 0; i < o.pool_size; i++) {
		ss->n_conns = i + 1;
		rc = conn_open(ss, &ss->conns[i], &o, err);
		if (!rc && i == 0)
			rc = enable_wal(&ss->conns[0], o.busy_timeout_ms, err);
		if (!rc && i == 0)
			rc = store_sqlite_migrate(ss->conns[0].db, err);
		if (rc)
			goto fail;
		ss->conns[i].next = ss->free_list;
		ss->free_list = &ss->conns[i];
	}
	{
		struct stat sb;

		if (stat(ss->path, &sb) == 0) {
			ss->dev = sb.st_dev;
			ss->ino = sb.st_ino;
		}
	}
	return &ss->base;
fail:
	sqlite_free(&ss->base);
	return NULL;
}
