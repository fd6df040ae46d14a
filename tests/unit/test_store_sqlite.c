/*
 * Tests specific to the SQLite store: schema versions, the pragmas it
 * relies on, a failure forced inside a put's transaction, and two processes
 * writing one data directory. These look at the database file directly,
 * which is why this file (a white-box test of the adapter) includes
 * sqlite3.h; test_store.c tests the interface alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#include <sqlite3.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 3

struct fixture {
	char dir[64];
	char db[96];
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ragd-test-sqlite-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, STORE_SQLITE_DB_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct store *open_store(const char *dir)
{
	struct rag_err err = { 0 };
	struct store *st = store_sqlite_open(dir, NULL, &err);

	if (!st)
		fail_msg("store_sqlite_open: %s", err.msg);
	return st;
}

/* Runs sql on the database file through a separate connection. */
static void sql_exec(const char *db_path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* The first column of the first row of sql, as text, into buf. */
static void sql_text(const char *db_path, const char *sql, char *buf, size_t len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;

	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static int64_t make_collection(struct store *st, const char *name)
{
	struct store_collection c = {
		.name = name, .embed_model = "m", .dim = DIM, .chunk_size = 100, .chunk_overlap = 0
	};
	int64_t id = 0;

	assert_int_equal(store_collection_create(st, "default", &c, &id, NULL), 0);
	return id;
}

/* Puts doc_id as n one-byte chunks of "abcdefgh". */
static int put_doc(struct store *st, int64_t cid, const char *doc_id, size_t n,
		   struct store_put_result *res, struct rag_err *err)
{
	static const char *const letters[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
	struct store_chunk chunks[8] = { 0 };
	float vecs[8 * DIM] = { 0 };
	struct store_doc doc = { .id = doc_id, .text = "abcdefgh" };
	struct store_put put = { .doc = &doc, .chunks = chunks, .n_chunks = n, .vecs = vecs,
				 .dim = DIM };

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		chunks[i].start_byte = i;
		chunks[i].end_byte = i + 1;
		chunks[i].text = letters[i];
	}
	return store_doc_put(st, cid, &put, res, err);
}

static void test_fresh_directory(void **state)
{
	struct fixture *f = *state;
	char path[128], buf[64];
	struct store *st;

	/* Missing parents are created too. */
	snprintf(path, sizeof(path), "%s/a/b", f->dir);
	st = open_store(path);
	store_free(st);
	snprintf(path, sizeof(path), "%s/a/b/%s", f->dir, STORE_SQLITE_DB_NAME);
	sql_text(path, "PRAGMA journal_mode", buf, sizeof(buf));
	assert_string_equal(buf, "wal");
	sql_text(path, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof(buf));
	assert_int_equal(atoi(buf), STORE_SQLITE_SCHEMA_VERSION);

	/* Reopening a current directory migrates nothing and keeps the data. */
	snprintf(path, sizeof(path), "%s/a/b", f->dir);
	st = open_store(path);
	store_free(st);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct rag_err err = { 0 };
	char expect[200];

	store_free(open_store(f->dir));
	sql_exec(f->db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
	assert_null(store_sqlite_open(f->dir, NULL, &err));
	assert_int_equal(err.code, RAG_EUNSUPPORTED);
	snprintf(expect, sizeof(expect),
		 "data directory schema version 99 is newer than this ragd supports (%d);"
		 " upgrade ragd",
		 STORE_SQLITE_SCHEMA_VERSION);
	assert_string_equal(err.msg, expect);
}

static void test_not_a_directory(void **state)
{
	struct fixture *f = *state;
	struct rag_err err = { 0 };

	sql_exec(f->db, "SELECT 1"); /* creates an empty file at f->db */
	assert_null(store_sqlite_open(f->db, NULL, &err));
	assert_int_equal(err.code, RAG_EIO);
}

/*
 * A trigger makes the third chunk insert of a replacing put fail, after the
 * old chunks were deleted, the DELETE change logged and the document row
 * rewritten: the rollback must leave the old document, its chunks, the log
 * and the seq exactly as they were.
 */
static void test_failed_put_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->dir);
	int64_t cid = make_collection(st, "docs");
	struct store_put_result first, again;
	struct store_change ch[4];
	struct store_hit hits[2];
	struct rag_err err = { 0 };
	struct store_doc doc;
	int64_t seq, ids[2];
	size_t n;

	assert_int_equal(put_doc(st, cid, "a", 2, &first, NULL), 0);
	sql_exec(f->db, "CREATE TRIGGER fail_third BEFORE INSERT ON chunks WHEN NEW.ordinal = 2"
			" BEGIN SELECT RAISE(ABORT, 'injected failure'); END");

	assert_int_not_equal(put_doc(st, cid, "a", 4, NULL, &err), 0);
	assert_non_null(strstr(err.msg, "injected failure"));

	assert_int_equal(store_doc_get(st, cid, "a", &doc, NULL), 0);
	assert_int_equal(doc.n_chunks, 2);
	store_doc_release(&doc);
	assert_int_equal(store_collection_seq(st, cid, &seq, NULL), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(store_changes(st, cid, 0, 4, ch, &n, NULL), 0);
	assert_int_equal(n, 1);
	store_changes_release(ch, n);
	ids[0] = first.first_chunk_id;
	ids[1] = first.last_chunk_id;
	assert_int_equal(store_chunks_get(st, cid, ids, 2, hits, NULL), 0);
	assert_true(hits[0].found && hits[1].found);
	store_hits_release(hits, 2);

	/* A failure for a missing collection writes nothing anywhere either. */
	assert_int_equal(put_doc(st, cid + 1000, "a", 1, NULL, NULL), RAG_ENOTFOUND);

	/* Once the cause is gone, the same put works and its ids are contiguous. */
	sql_exec(f->db, "DROP TRIGGER fail_third");
	assert_int_equal(put_doc(st, cid, "a", 4, &again, NULL), 0);
	assert_int_equal(again.replaced, 1);
	assert_int_equal(again.seq, 3);
	assert_int_equal(again.last_chunk_id - again.first_chunk_id, 3);
	assert_true(again.first_chunk_id > first.last_chunk_id);
	store_free(st);
}

/*
 * A put that does not fit on the disk: the file size limit stands in for a
 * full disk (the same short write; ENOSPC itself needs a small mount, which
 * tests/e2e/test_disk_full.py makes). It is RAG_ENOSPACE, nothing of it is
 * stored, reads go on, and once there is room again the same put works.
 */
static void test_full_disk_put(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->dir);
	int64_t cid = make_collection(st, "docs");
	size_t big_len = 4u << 20;
	char *big = malloc(big_len + 1);
	struct store_chunk chunk = { .start_byte = 0, .end_byte = 1, .text = "x" };
	float vec[DIM] = { 0 };
	struct store_doc doc = { .id = "big", .text = big };
	struct store_put put = { .doc = &doc, .chunks = &chunk, .n_chunks = 1, .vecs = vec,
				 .dim = DIM };
	struct store_doc got;
	struct rag_err err = { 0 };
	struct rlimit old, lim;
	struct stat sb;
	char wal[128];
	int64_t seq;
	int rc;

	assert_non_null(big);
	memset(big, 'a', big_len);
	big[big_len] = '\0';
	assert_int_equal(put_doc(st, cid, "small", 2, NULL, NULL), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)sb.st_size + (1u << 20);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = store_doc_put(st, cid, &put, NULL, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, RAG_ENOSPACE);
	assert_int_equal(err.code, RAG_ENOSPACE);
	assert_non_null(strstr(err.msg, "store: "));

	assert_int_equal(store_doc_get(st, cid, "big", &got, NULL), RAG_ENOTFOUND);
	assert_int_equal(store_doc_get(st, cid, "small", &got, NULL), 0);
	store_doc_release(&got);
	assert_int_equal(store_collection_seq(st, cid, &seq, NULL), 0);
	assert_int_equal(seq, 1);

	assert_int_equal(store_doc_put(st, cid, &put, NULL, NULL), 0);
	assert_int_equal(store_doc_get(st, cid, "big", &got, NULL), 0);
	assert_int_equal(strlen(got.text), big_len);
	store_doc_release(&got);
	free(big);
	store_free(st);
}

/* Two processes put into one directory at once; busy_timeout serialises them. */
static void test_two_processes(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->dir);
	int64_t c1 = make_collection(st, "one"), c2 = make_collection(st, "two");
	int status = 0, failures = 0;
	char id[32];
	int64_t seq;
	pid_t pid;

	store_free(st);
	pid = fork();
	assert_true(pid >= 0);
	/* The child must not reach a cmocka assertion: it would run on as a second runner. */
	st = store_sqlite_open(f->dir, NULL, NULL);
	if (!st && pid == 0)
		_exit(2);
	assert_non_null(st);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		failures += put_doc(st, pid == 0 ? c1 : c2, id, 3, NULL, NULL) != 0;
	}
	store_free(st);
	if (pid == 0)
		_exit(failures ? 1 : 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(failures, 0);

	st = open_store(f->dir);
	assert_int_equal(store_collection_seq(st, c1, &seq, NULL), 0);
	assert_int_equal(seq, 40);
	assert_int_equal(store_collection_seq(st, c2, &seq, NULL), 0);
	assert_int_equal(seq, 40);
	store_free(st);
}

/*
 * Workers of one supervisor open a fresh data directory at the same instant.
 * Each switches the new file to WAL, a lock upgrade SQLite refuses at once
 * (SQLITE_BUSY, no busy handler) to the loser of two readers racing for it:
 * every opener must still succeed. Rounds of four processes released together.
 */
static void test_fresh_directory_opened_at_once(void **state)
{
	struct fixture *f = *state;
	enum { ROUNDS = 200, OPENERS = 4 };
	int failures = 0;

	for (int r = 0; r < ROUNDS; r++) {
		char dir[96];
		int gate[2];
		pid_t pids[OPENERS];

		snprintf(dir, sizeof(dir), "%s/round%d", f->dir, r);
		assert_int_equal(pipe(gate), 0);
		for (int i = 0; i < OPENERS; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				struct rag_err err = {0};
				struct store *st;
				char c;

				close(gate[1]);
				(void)!read(gate[0], &c, 1); /* EOF: the parent released the gate */
				st = store_sqlite_open(dir, NULL, &err);
				if (!st) {
					fprintf(stderr, "round %d opener %d: %s\n", r, i, err.msg);
					_exit(1);
				}
				store_free(st);
				_exit(0);
			}
		}
		close(gate[0]);
		close(gate[1]);
		for (int i = 0; i < OPENERS; i++) {
			int status = 0;

			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			failures += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		}
	}
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_put_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_directory_opened_at_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
