/*
 * Schema version 2 of the SQLite store: an upgrade of a version-1 data
 * directory (built here with the version-1 DDL, as the old binary wrote
 * it), chunk attribution and content addresses, document hashes, listing
 * with cursors and filters, and the job queue (claim, leases, items,
 * cancel, items recorded by the put of their document).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_filter.h"
#include "store/store_sqlite.h"
#include "store_test_backend.h"

#include <sqlite3.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 2

struct fixture {
	char dir[64];
	struct store *st;
	int64_t cid;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ragd-test-v2-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void open_store(struct fixture *f)
{
	struct store_collection spec = { 0 };
	struct rag_err err = { 0 };

	f->st = test_store_open(f->dir, NULL, &err);
	if (!f->st)
		fail_msg("opening the store: %s", err.msg);
	spec.name = "c";
	spec.embed_model = "m";
	spec.dim = DIM;
	spec.chunk_size = 16;
	assert_int_equal(store_collection_create(f->st, "default", &spec, &f->cid, NULL), 0);
}

/*
 * Puts doc id with one chunk per word of text (space-separated), hashes
 * "h:<word>", applying job item job (NULL: none); the store's answer.
 */
static int put_job(struct fixture *f, const char *id, const char *text, const char *meta,
		   const char *doc_hash, const struct store_job_ref *job, struct rag_err *err)
{
	struct store_chunk chunks[8] = { 0 };
	char hashes[8][40], words[8][32];
	float vecs[8 * DIM];
	struct store_doc doc = { .id = id, .text = text, .metadata_json = meta,
				 .content_hash = doc_hash };
	struct store_put p = { .doc = &doc, .chunks = chunks, .vecs = vecs, .dim = DIM,
			       .model = "m@1", .job = job };
	size_t at = 0;

	while (text[at] && p.n_chunks < 8) {
		size_t len = strcspn(text + at, " ");
		size_t i = p.n_chunks++;

		snprintf(words[i], sizeof(words[i]), "%.*s", (int)len, text + at);
		snprintf(hashes[i], sizeof(hashes[i]), "h:%s", words[i]);
		chunks[i].start_byte = at;
		chunks[i].end_byte = at + len;
		chunks[i].text = words[i];
		chunks[i].hash = hashes[i];
		chunks[i].page = (unsigned)i + 1;
		chunks[i].section = "Top > Sub";
		vecs[i * DIM] = (float)len;
		vecs[i * DIM + 1] = (float)i;
		at += len;
		while (text[at] == ' ')
			at++;
	}
	return store_doc_put(f->st, f->cid, &p, NULL, err);
}

static void put(struct fixture *f, const char *id, const char *text, const char *meta,
		const char *doc_hash)
{
	assert_int_equal(put_job(f, id, text, meta, doc_hash, NULL, NULL), 0);
}

#ifndef RAGD_TEST_STORE_MONGO /* a SQLite file written by an older schema */
static void exec_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static void test_upgrade_from_v1(void **state)
{
	struct fixture *f = *state;
	struct store_hit *hits = NULL;
	struct store_doc doc;
	char path[128], *hash = NULL;
	size_t n = 0;
	sqlite3 *db;
	float vec[DIM] = { 1, 0 };

	/* A data directory as the version-1 binary left it, one document in it. */
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_SQLITE_DB_NAME);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	exec_sql(db, "PRAGMA journal_mode = WAL;"
		     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
		     "INSERT INTO meta VALUES ('schema_version', '1');"
		     "CREATE TABLE collections (id INTEGER PRIMARY KEY AUTOINCREMENT,"
		     " tenant TEXT NOT NULL, name TEXT NOT NULL, embed_model TEXT NOT NULL,"
		     " dim INTEGER NOT NULL CHECK (dim > 0), chunk_size INTEGER NOT NULL"
		     " CHECK (chunk_size > 0), chunk_overlap INTEGER NOT NULL CHECK"
		     " (chunk_overlap >= 0), config_json TEXT NOT NULL DEFAULT '{}',"
		     " created_at INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0,"
		     " UNIQUE (tenant, name));"
		     "CREATE TABLE documents (collection_id INTEGER NOT NULL REFERENCES"
		     " collections (id) ON DELETE CASCADE, id TEXT NOT NULL, text TEXT NOT NULL,"
		     " metadata_json TEXT NOT NULL DEFAULT '{}', content_hash TEXT NOT NULL"
		     " DEFAULT '', n_chunks INTEGER NOT NULL, created_at INTEGER NOT NULL,"
		     " updated_at INTEGER NOT NULL, PRIMARY KEY (collection_id, id));"
		     "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, collection_id"
		     " INTEGER NOT NULL, document_id TEXT NOT NULL, ordinal INTEGER NOT NULL,"
		     " start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL CHECK (end_byte >="
		     " start_byte), text TEXT NOT NULL, embedding BLOB NOT NULL, FOREIGN KEY"
		     " (collection_id, document_id) REFERENCES documents (collection_id, id) ON"
		     " DELETE CASCADE);"
		     "CREATE INDEX chunks_by_doc ON chunks (collection_id, document_id, ordinal);"
		     "CREATE TABLE changes (collection_id INTEGER NOT NULL REFERENCES collections"
		     " (id) ON DELETE CASCADE, seq INTEGER NOT NULL, op INTEGER NOT NULL CHECK (op"
		     " IN (1, 2)), document_id TEXT NOT NULL, first_chunk INTEGER NOT NULL,"
		     " last_chunk INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY"
		     " (collection_id, seq)) WITHOUT ROWID;"
		     "INSERT INTO collections VALUES (1, 'default', 'c', 'm', 2, 16, 0, '{}', 1, 1);"
		     "INSERT INTO documents VALUES (1, 'old', 'old text', '{}', 'fnv', 1, 1, 1);"
		     "INSERT INTO changes VALUES (1, 1, 1, 'old', 1, 1, 1);");
	{
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO chunks VALUES (1, 1, 'old', 0,"
						    " 0, 8, 'old text', ?1)", -1, &s, NULL),
				 SQLITE_OK);
		sqlite3_bind_blob(s, 1, vec, sizeof(vec), SQLITE_STATIC);
		assert_int_equal(sqlite3_step(s), SQLITE_DONE);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);

	f->st = store_sqlite_open(f->dir, NULL, NULL);
	assert_non_null(f->st);
	f->cid = 1;
	/* The old chunk reads back with empty structure; its document is intact. */
	assert_int_equal(store_doc_chunks(f->st, 1, "old", &hits, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(hits[0].text, "old text");
	assert_int_equal(hits[0].page, 0);
	assert_string_equal(hits[0].section, "");
	assert_string_equal(hits[0].hash, "");
	store_hits_release(hits, n);
	free(hits);
	assert_int_equal(store_doc_hash(f->st, 1, "old", &hash, NULL, NULL), 0);
	assert_string_equal(hash, "fnv");
	free(hash);
	assert_int_equal(store_doc_get(f->st, 1, "old", &doc, NULL), 0);
	assert_null(doc.blocks); /* no structure was kept before schema 5 */
	store_doc_release(&doc);
	/* New writes use the new columns; ids go on after the old ones. */
	put(f, "new", "alpha beta", NULL, "h2");
	assert_int_equal(store_doc_chunks(f->st, 1, "new", &hits, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_true(hits[0].id > 1);
	assert_string_equal(hits[1].section, "Top > Sub");
	assert_int_equal(hits[1].page, 2);
	assert_string_equal(hits[1].model, "m@1");
	store_hits_release(hits, n);
	free(hits);
	store_free(f->st);
	/* Reopening finds the current version and changes nothing. */
	f->st = store_sqlite_open(f->dir, NULL, NULL);
	assert_non_null(f->st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	{
		sqlite3_stmt *s;

		sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s,
				   NULL);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(atoi((const char *)sqlite3_column_text(s, 0)),
				 STORE_SQLITE_SCHEMA_VERSION);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
}
#endif

static void test_hashes_and_reuse(void **state)
{
	struct fixture *f = *state;
	const char *want[3] = { "h:beta", "h:nope", "" };
	unsigned char found[3];
	float vecs[3 * DIM] = { 0 };
	size_t n_chunks = 0;
	char *hash = NULL;
	struct rag_err err = { 0 };

	open_store(f);
	put(f, "d", "alpha beta", NULL, "hash-1");
	assert_int_equal(store_doc_hash(f->st, f->cid, "d", &hash, &n_chunks, NULL), 0);
	assert_string_equal(hash, "hash-1");
	assert_int_equal(n_chunks, 2);
	free(hash);
	assert_int_equal(store_doc_hash(f->st, f->cid, "none", &hash, NULL, &err), RAG_ENOTFOUND);
	assert_null(hash);
	assert_int_equal(store_vectors_by_hash(f->st, f->cid, want, 3, DIM, vecs, found, NULL), 0);
	assert_int_equal(found[0], 1);
	assert_int_equal(found[1], 0);
	assert_int_equal(found[2], 0);
	assert_true(vecs[0] == 4.0f && vecs[1] == 1.0f); /* "beta": length 4, ordinal 1 */
	assert_int_equal(store_vectors_by_hash(f->st, f->cid, want, 3, DIM + 1, vecs, found, NULL),
			 RAG_EINVAL);
	/* Deleting the document removes its chunks: their addresses are gone too. */
	assert_int_equal(store_doc_delete(f->st, f->cid, "d", NULL, NULL), 0);
	assert_int_equal(store_vectors_by_hash(f->st, f->cid, want, 1, DIM, vecs, found, NULL), 0);
	assert_int_equal(found[0], 0);
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct filter_value v = { FILTER_STRING, "x", 0, 0 };
	struct store_filter flt = { FILTER_EQ, "tag", &v, 1, NULL, 0 };
	struct store_doc_query q = { NULL, 2, NULL };
	struct store_doc *docs = NULL;
	size_t n = 0;

	open_store(f);
	put(f, "a", "one", "{\"tag\":\"x\"}", "1");
	put(f, "b", "two", "{\"tag\":\"y\"}", "2");
	put(f, "c", "three", "{\"tag\":\"x\"}", "3");
	assert_int_equal(store_doc_list(f->st, f->cid, &q, &docs, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(docs[0].id, "a");
	assert_string_equal(docs[1].id, "b");
	assert_string_equal(docs[1].text, "");
	assert_string_equal(docs[1].metadata_json, "{\"tag\":\"y\"}");
	q.after_id = "b";
	store_doc_list_free(docs, n);
	assert_int_equal(store_doc_list(f->st, f->cid, &q, &docs, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(docs[0].id, "c");
	store_doc_list_free(docs, n);
	q.after_id = NULL;
	q.filter = &flt;
	q.limit = 10;
	assert_int_equal(store_doc_list(f->st, f->cid, &q, &docs, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(docs[0].id, "a");
	assert_string_equal(docs[1].id, "c");
	store_doc_list_free(docs, n);
	q.limit = 0;
	assert_int_equal(store_doc_list(f->st, f->cid, &q, &docs, &n, NULL), RAG_EINVAL);
}

static void test_jobs(void **state)
{
	struct fixture *f = *state;
	struct store_job_item in[3] = { 0 }, *items = NULL;
	struct store_job job = { .id = "j1", .tenant = "default", .collection = "c",
				 .kind = "ingest" };
	struct store_job got;
	struct rag_err err = { 0 };
	char *id = NULL;
	size_t n = 0;

	open_store(f);
	in[0].doc_id = "x";
	in[0].body = "first";
	in[0].body_len = 5;
	in[1].name = "b.md";
	in[1].format = "markdown";
	in[1].body = "second";
	in[1].body_len = 6;
	in[2].body = "third";
	in[2].body_len = 5;
	assert_int_equal(store_job_create(f->st, &job, in, 3, NULL), 0);
	assert_int_equal(store_job_get(f->st, "default", "j1", &got, NULL), 0);
	assert_int_equal(got.state, STORE_JOB_QUEUED);
	assert_int_equal(got.n_total, 3);
	store_job_release(&got);
	assert_int_equal(store_job_get(f->st, "other", "j1", &got, &err), RAG_ENOTFOUND);

	/* Owner A claims it; A never claims its own job twice, even after its lease. */
	assert_int_equal(store_job_claim(f->st, "A", 1, &id, NULL), 0);
	assert_string_equal(id, "j1");
	free(id);
	usleep(5000);
	assert_int_equal(store_job_claim(f->st, "A", 1, &id, NULL), 0);
	assert_null(id);
	assert_int_equal(store_job_items_next(f->st, "j1", 2, &items, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(items[0].doc_id, "x");
	assert_int_equal(items[0].body_len, 5);
	assert_memory_equal(items[0].body, "first", 5);
	assert_string_equal(items[1].format, "markdown");
	assert_string_equal(items[1].name, "b.md");
	assert_int_equal(store_job_item_finish(f->st, "j1", items[0].idx, 1, NULL, 4, 5, 1, NULL),
			 0);
	assert_int_equal(store_job_item_finish(f->st, "j1", items[1].idx, 2, "bad markdown", 0, 6,
					       1, NULL),
			 0);
	/* Finishing twice counts once. */
	assert_int_equal(store_job_item_finish(f->st, "j1", items[1].idx, 2, "again", 0, 6, 1, NULL),
			 0);
	store_job_items_free(items, n);

	/* A dies: B takes over the expired lease and sees only the pending item. */
	usleep(5000);
	assert_int_equal(store_job_claim(f->st, "B", 60000, &id, NULL), 0);
	assert_string_equal(id, "j1");
	free(id);
	assert_int_equal(store_job_items_next(f->st, "j1", 10, &items, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(items[0].idx, 2);
	store_job_items_free(items, n);
	assert_int_equal(store_job_errors(f->st, "j1", 10, &items, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(items[0].error, "bad markdown");
	assert_string_equal(items[0].name, "b.md");
	store_job_items_free(items, n);
	assert_int_equal(store_job_get(f->st, NULL, "j1", &got, NULL), 0);
	assert_int_equal(got.state, STORE_JOB_RUNNING);
	assert_int_equal(got.n_done, 1);
	assert_int_equal(got.n_failed, 1);
	assert_int_equal(got.n_chunks, 4);
	assert_int_equal(got.n_bytes, 11);
	assert_true(got.started_at > 0);
	store_job_release(&got);

	/* Cancel: the worker's next finish is refused; cancelling again conflicts. */
	assert_int_equal(store_job_cancel(f->st, "default", "j1", NULL), 0);
	assert_int_equal(store_job_item_finish(f->st, "j1", 2, 1, NULL, 1, 5, 1, &err),
			 RAG_ECONFLICT);
	assert_int_equal(store_job_cancel(f->st, "default", "j1", &err), RAG_ECONFLICT);
	assert_int_equal(store_job_get(f->st, NULL, "j1", &got, NULL), 0);
	assert_int_equal(got.state, STORE_JOB_CANCELLED);
	assert_true(got.finished_at > 0);
	store_job_release(&got);
	assert_int_equal(store_job_claim(f->st, "C", 1, &id, NULL), 0);
	assert_null(id);
}

static void test_job_finish(void **state)
{
	struct fixture *f = *state;
	struct store_job_item in = { .body = "x", .body_len = 1 };
	struct store_job job = { .id = "j2", .tenant = "default", .collection = "c",
				 .kind = "ingest" };
	struct store_job got;
	char *id = NULL;

	open_store(f);
	assert_int_equal(store_job_create(f->st, &job, &in, 1, NULL), 0);
	assert_int_equal(store_job_claim(f->st, "A", 1000, &id, NULL), 0);
	free(id);
	assert_int_equal(store_job_finish(f->st, "j2", STORE_JOB_SUCCEEDED, NULL, NULL), 0);
	assert_int_equal(store_job_get(f->st, NULL, "j2", &got, NULL), 0);
	assert_int_equal(got.state, STORE_JOB_SUCCEEDED);
	assert_string_equal(store_job_state_name(got.state), "succeeded");
	store_job_release(&got);
}

static void assert_doc_text(struct fixture *f, const char *id, const char *text)
{
	struct store_doc doc;

	assert_int_equal(store_doc_get(f->st, f->cid, id, &doc, NULL), 0);
	assert_string_equal(doc.text, text);
	store_doc_release(&doc);
}

static void assert_counts(struct fixture *f, const char *job_id, int64_t done, int64_t chunks,
			  int64_t bytes)
{
	struct store_job got;

	assert_int_equal(store_job_get(f->st, NULL, job_id, &got, NULL), 0);
	assert_int_equal(got.n_done, done);
	assert_int_equal(got.n_chunks, chunks);
	assert_int_equal(got.n_bytes, bytes);
	assert_int_equal(got.n_failed + got.n_skipped, 0);
	store_job_release(&got);
}

/*
 * A put that applies a job item records it done in its own commit, and a
 * second application of the item (a worker's rerun after a crash, or a
 * second worker) is refused without writing: a client's newer version of
 * the document stays.
 */
static void test_job_item_put(void **state)
{
	struct fixture *f = *state;
	struct store_job_item in[2] = { { .doc_id = "a", .body = "alpha beta", .body_len = 10 },
					{ .doc_id = "b", .body = "gamma", .body_len = 5 } };
	struct store_job job = { .id = "j3", .tenant = "default", .collection = "c",
				 .kind = "ingest" };
	struct store_job_ref item0 = { .job_id = "j3", .idx = 0, .n_bytes = 10,
				       .lease_ms = 60000 };
	struct store_job_ref item1 = { .job_id = "j3", .idx = 1, .n_bytes = 5, .lease_ms = 60000 };
	struct store_job_ref nojob = { .job_id = "nope", .idx = 0 };
	struct store_job_item *items = NULL;
	struct store_doc doc;
	struct rag_err err = { 0 };
	int64_t seq, seq2;
	char *id = NULL;
	size_t n = 0;

	open_store(f);
	assert_int_equal(store_job_create(f->st, &job, in, 2, NULL), 0);
	/* A job not running (queued) takes no item. */
	assert_int_equal(put_job(f, "a", "alpha beta", NULL, NULL, &item0, &err), RAG_ECONFLICT);
	assert_int_equal(store_doc_get(f->st, f->cid, "a", &doc, NULL), RAG_ENOTFOUND);
	rag_err_clear(&err);
	assert_int_equal(store_job_claim(f->st, "A", 60000, &id, NULL), 0);
	assert_string_equal(id, "j3");
	free(id);
	assert_int_equal(put_job(f, "a", "alpha beta", NULL, NULL, &nojob, &err), RAG_ENOTFOUND);
	rag_err_clear(&err);

	/* A put that fails writes neither the document nor the item. */
	{
		struct store_chunk ch = { .end_byte = 5, .text = "alpha" };
		struct store_doc d = { .id = "a", .text = "alpha beta" };
		float vec[DIM + 1] = { 0 };
		struct store_put p = { .doc = &d, .chunks = &ch, .n_chunks = 1, .vecs = vec,
				       .dim = DIM + 1, .job = &item0 };

		assert_int_equal(store_doc_put(f->st, f->cid, &p, NULL, NULL), RAG_EINVAL);
	}
	assert_counts(f, "j3", 0, 0, 0);

	/* The item is done, counted, its body dropped, with the document. */
	assert_int_equal(put_job(f, "a", "alpha beta", NULL, NULL, &item0, NULL), 0);
	assert_counts(f, "j3", 1, 2, 10);
	assert_int_equal(store_job_items_next(f->st, "j3", 10, &items, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(items[0].idx, 1);
	store_job_items_free(items, n);

	/* A client writes a newer version; the item applied again is refused. */
	put(f, "a", "alpha beta delta", NULL, NULL);
	assert_int_equal(store_collection_seq(f->st, f->cid, &seq, NULL), 0);
	assert_int_equal(put_job(f, "a", "alpha beta", NULL, NULL, &item0, &err), RAG_EALREADY);
	assert_non_null(strstr(err.msg, "j3"));
	rag_err_clear(&err);
	assert_doc_text(f, "a", "alpha beta delta");
	assert_int_equal(store_collection_seq(f->st, f->cid, &seq2, NULL), 0);
	assert_int_equal(seq2, seq);
	assert_counts(f, "j3", 1, 2, 10);
	/* A finish of a recorded item changes nothing either. */
	assert_int_equal(store_job_item_finish(f->st, "j3", 0, 1, NULL, 7, 7, 1, NULL), 0);
	assert_counts(f, "j3", 1, 2, 10);

	/* Cancelled: the next item's put is refused and writes nothing. */
	assert_int_equal(store_job_cancel(f->st, "default", "j3", NULL), 0);
	assert_int_equal(put_job(f, "b", "gamma", NULL, NULL, &item1, &err), RAG_ECONFLICT);
	assert_int_equal(store_doc_get(f->st, f->cid, "b", &doc, NULL), RAG_ENOTFOUND);
	assert_counts(f, "j3", 1, 2, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#ifndef RAGD_TEST_STORE_MONGO
		cmocka_unit_test_setup_teardown(test_upgrade_from_v1, setup, teardown),
#endif
		cmocka_unit_test_setup_teardown(test_hashes_and_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_item_put, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
