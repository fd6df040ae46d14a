/*
 * What only the MongoDB store does (the interface tests run on it as
 * test_store_mongo and test_store_v2_mongo): the recovery of a writer that
 * died half-way, rolled back before its commit point and forward after
 * it (a job item it applied marked done by the roll-forward, once), the
 * liveness rule that hides a half-written put from readers, and
 * the write lock of another live process. The dead writer's state is
 * planted with libmongoc directly, as a kill -9 at that step leaves it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define RAGD_TEST_STORE_MONGO 1
#include "store_test_backend.h"

#include <mongoc/mongoc.h>

#define DIM 4

struct fixture {
	struct store *st;
	mongoc_client_t *cl;
	char db[48];
	int64_t cid;
};

static struct store *open_mongo(struct fixture *f, int lock_timeout_ms)
{
	struct store_mongo_options mo = store_mongo_default_options();
	struct rag_err err = { 0 };
	struct store *st;

	mo.uri = test_mongo_uri();
	mo.database = f->db;
	mo.lock_timeout_ms = lock_timeout_ms;
	st = store_mongo_open(&mo, &err);
	if (!st)
		fail_msg("store_mongo_open: %s", err.msg);
	return st;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_collection spec = { .name = "c", .embed_model = "m", .dim = DIM,
					 .chunk_size = 16 };
	static int n;
	const char *uri = test_mongo_uri();

	assert_non_null(f);
	if (!uri)
		fail_msg("no MongoDB: set RAGD_TEST_MONGODB_URI or run scripts/ferretdb.sh");
	snprintf(f->db, sizeof(f->db), "recover_%d_%d", (int)getpid(), n++);
	f->st = open_mongo(f, 10000);
	assert_int_equal(store_collection_create(f->st, "default", &spec, &f->cid, NULL), 0);
	f->cl = mongoc_client_new(uri);
	assert_non_null(f->cl);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->st);
	mongoc_client_destroy(f->cl);
	free(f);
	return 0;
}

static int put(struct store *st, int64_t cid, const char *id, const char *text,
	       struct store_put_result *res)
{
	struct store_chunk ch = { .start_byte = 0, .end_byte = strlen(text), .text = text };
	struct store_doc doc = { .id = id, .text = text };
	float vec[DIM] = { 1, 0, 0, 0 };
	struct store_put p = { .doc = &doc, .chunks = &ch, .n_chunks = 1, .vecs = vec, .dim = DIM };

	return store_doc_put(st, cid, &p, res, NULL);
}

static void insert(struct fixture *f, const char *coll_name, bson_t *doc)
{
	mongoc_collection_t *coll = mongoc_client_get_collection(f->cl, f->db, coll_name);
	bson_error_t e;

	if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &e))
		fail_msg("insert into %s: %s", coll_name, e.message);
	mongoc_collection_destroy(coll);
	bson_destroy(doc);
}

static int64_t count(struct fixture *f, const char *coll_name, bson_t *q)
{
	mongoc_collection_t *coll = mongoc_client_get_collection(f->cl, f->db, coll_name);
	bson_error_t e;
	int64_t n = mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &e);

	mongoc_collection_destroy(coll);
	bson_destroy(q);
	return n;
}

/* A chunk of document doc_id as a put writes it, before its commit point. */
static void plant_chunk(struct fixture *f, int64_t id, const char *doc_id)
{
	float vec[DIM] = { 0, 1, 0, 0 };
	char key[64], id_key[48];

	snprintf(key, sizeof(key), "%lld:%s", (long long)f->cid, doc_id);
	snprintf(id_key, sizeof(id_key), "%lld:%lld", (long long)f->cid, (long long)id);
	insert(f, "chunks", BCON_NEW("_id", BCON_UTF8(id_key), "i", BCON_INT64(id), "c",
				     BCON_INT64(f->cid), "k",
				     BCON_UTF8(key), "d", BCON_UTF8(doc_id), "o", BCON_INT64(0),
				     "sb", BCON_INT64(0), "eb", BCON_INT64(4), "text",
				     BCON_UTF8("dead"), "v",
				     BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)vec,
					      (uint32_t)sizeof(vec)),
				     "page", BCON_INT64(0), "section", BCON_UTF8(""), "hash",
				     BCON_UTF8(""), "model", BCON_UTF8("")));
}

/* The lock of a writer that died while putting doc_id as chunks first..last at seq. */
static void plant_lock(struct fixture *f, const char *doc_id, int64_t first, int64_t last,
		       int64_t seq, int64_t until)
{
	char key[64];

	snprintf(key, sizeof(key), "%lld:%s", (long long)f->cid, doc_id);
	insert(f, "locks", BCON_NEW("_id", BCON_INT64(f->cid), "owner", BCON_UTF8("dead-1"),
				    "until", BCON_INT64(until), "intent", "{", "put",
				    BCON_BOOL(true), "k", BCON_UTF8(key), "d", BCON_UTF8(doc_id),
				    "of", BCON_INT64(0), "ol", BCON_INT64(0), "on", BCON_INT64(0),
				    "nf", BCON_INT64(first), "nl", BCON_INT64(last), "s",
				    BCON_INT64(seq), "at", BCON_INT64(1), "}"));
}

/* The same, the put applying item idx of job job_id (n_bytes its input's bytes). */
static void plant_job_lock(struct fixture *f, const char *doc_id, int64_t first, int64_t last,
			   int64_t seq, const char *job_id, int64_t idx, int64_t n_bytes)
{
	char key[64];

	snprintf(key, sizeof(key), "%lld:%s", (long long)f->cid, doc_id);
	insert(f, "locks", BCON_NEW("_id", BCON_INT64(f->cid), "owner", BCON_UTF8("dead-1"),
				    "until", BCON_INT64(1), "intent", "{", "put", BCON_BOOL(true),
				    "k", BCON_UTF8(key), "d", BCON_UTF8(doc_id), "of",
				    BCON_INT64(0), "ol", BCON_INT64(0), "on", BCON_INT64(0), "nf",
				    BCON_INT64(first), "nl", BCON_INT64(last), "s", BCON_INT64(seq),
				    "at", BCON_INT64(1), "job", "{", "id", BCON_UTF8(job_id), "idx",
				    BCON_INT64(idx), "bytes", BCON_INT64(n_bytes), "lease",
				    BCON_INT64(60000), "}", "}"));
}

/* The document as a dead put committed it: it points at chunk id, no change logged. */
static void plant_doc(struct fixture *f, const char *doc_id, int64_t id)
{
	char key[64];

	plant_chunk(f, id, doc_id);
	snprintf(key, sizeof(key), "%lld:%s", (long long)f->cid, doc_id);
	insert(f, "docs", BCON_NEW("_id", BCON_UTF8(key), "c", BCON_INT64(f->cid), "d",
				   BCON_UTF8(doc_id), "text", BCON_UTF8("dead"), "meta", "{", "}",
				   "meta_json", BCON_UTF8("{}"), "hash", BCON_UTF8(""), "n",
				   BCON_INT64(1), "first", BCON_INT64(id), "last", BCON_INT64(id),
				   "created_at", BCON_INT64(1), "updated_at", BCON_INT64(1)));
}

struct rows {
	int64_t ids[16];
	size_t n;
};

static int collect(void *ctx, const struct store_chunk_row *row)
{
	struct rows *r = ctx;

	if (r->n < 16)
		r->ids[r->n++] = row->id;
	return 0;
}

static void test_rolled_back_before_commit(void **state)
{
	struct fixture *f = *state;
	struct store_put_result a, c;
	struct store_doc doc;
	struct store_hit hit;
	struct rows rows = { 0 };
	int64_t seq, dead = 1000;

	assert_int_equal(put(f->st, f->cid, "a", "alpha", &a), 0);
	/* Died after inserting its chunks, before the document pointed at them. */
	plant_chunk(f, dead, "b");
	plant_chunk(f, dead + 1, "b");
	plant_lock(f, "b", dead, dead + 1, a.seq, 1);
	/* Readers never see the half-written put. */
	assert_int_equal(store_doc_get(f->st, f->cid, "b", &doc, NULL), RAG_ENOTFOUND);
	assert_int_equal(store_chunks_scan(f->st, f->cid, collect, &rows, &seq, NULL), 0);
	assert_int_equal(rows.n, 1);
	assert_int_equal(rows.ids[0], a.first_chunk_id);
	assert_int_equal(store_chunks_get(f->st, f->cid, &dead, 1, &hit, NULL), 0);
	assert_int_equal(hit.found, 0);
	store_hits_release(&hit, 1);
	/* The next writer takes the expired lock and deletes the garbage. */
	assert_int_equal(put(f->st, f->cid, "c", "gamma", &c), 0);
	assert_int_equal(c.seq, a.seq + 1);
	assert_int_equal(count(f, "chunks", BCON_NEW("i", "{", "$gte", BCON_INT64(dead), "$lte",
						     BCON_INT64(dead + 1), "}")), 0);
	assert_int_equal(count(f, "locks", bson_new()), 0);
	assert_int_equal(store_collection_seq(f->st, f->cid, &seq, NULL), 0);
	assert_int_equal(seq, c.seq);
}

static void test_rolled_forward_after_commit(void **state)
{
	struct fixture *f = *state;
	struct store_put_result a;
	struct store_change ch[4];
	struct store_doc doc;
	struct rows rows = { 0 };
	char key[64];
	int64_t seq, dead = 2000;
	size_t n = 0;

	assert_int_equal(put(f->st, f->cid, "a", "alpha", &a), 0);
	/* Died after the commit point: the document points at its chunks, no change logged. */
	plant_chunk(f, dead, "b");
	snprintf(key, sizeof(key), "%lld:b", (long long)f->cid);
	insert(f, "docs", BCON_NEW("_id", BCON_UTF8(key), "c", BCON_INT64(f->cid), "d",
				   BCON_UTF8("b"), "text", BCON_UTF8("dead"), "meta", "{", "}",
				   "meta_json", BCON_UTF8("{}"), "hash", BCON_UTF8(""), "n",
				   BCON_INT64(1), "first", BCON_INT64(dead), "last", BCON_INT64(dead),
				   "created_at", BCON_INT64(1), "updated_at", BCON_INT64(1)));
	plant_lock(f, "b", dead, dead, a.seq, 1);
	/* Committed: readers see it; followers do not yet (the seq did not move). */
	assert_int_equal(store_doc_get(f->st, f->cid, "b", &doc, NULL), 0);
	store_doc_release(&doc);
	assert_int_equal(store_changes(f->st, f->cid, a.seq, 4, ch, &n, NULL), 0);
	assert_int_equal(n, 0);
	/* The next write logs the dead put's change first, then its own. */
	assert_int_equal(store_doc_delete(f->st, f->cid, "a", &seq, NULL), 0);
	assert_int_equal(seq, a.seq + 2);
	assert_int_equal(store_changes(f->st, f->cid, a.seq, 4, ch, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ch[0].op, STORE_CHANGE_PUT);
	assert_string_equal(ch[0].document_id, "b");
	assert_int_equal(ch[0].first_chunk, dead);
	assert_int_equal(ch[0].last_chunk, dead);
	assert_int_equal(ch[1].op, STORE_CHANGE_DELETE);
	assert_string_equal(ch[1].document_id, "a");
	store_changes_release(ch, n);
	assert_int_equal(store_chunks_scan(f->st, f->cid, collect, &rows, &seq, NULL), 0);
	assert_int_equal(rows.n, 1);
	assert_int_equal(rows.ids[0], dead);
}

/* A job "j" with one item per doc id, claimed (running). */
static void start_job(struct fixture *f, const char *const *doc_ids, size_t n)
{
	struct store_job_item items[4] = { 0 };
	struct store_job job = { .id = "j", .tenant = "default", .collection = "c",
				 .kind = "ingest" };
	char *id = NULL;

	for (size_t i = 0; i < n && i < 4; i++) {
		items[i].doc_id = doc_ids[i];
		items[i].body = "dead";
		items[i].body_len = 4;
	}
	assert_int_equal(store_job_create(f->st, &job, items, n, NULL), 0);
	assert_int_equal(store_job_claim(f->st, "worker", 60000, &id, NULL), 0);
	assert_string_equal(id, "j");
	free(id);
}

static void assert_job(struct fixture *f, int64_t done, int64_t chunks, int64_t bytes,
		       size_t pending)
{
	struct store_job got;
	struct store_job_item *items = NULL;
	size_t n = 0;

	assert_int_equal(store_job_get(f->st, NULL, "j", &got, NULL), 0);
	assert_int_equal(got.n_done, done);
	assert_int_equal(got.n_chunks, chunks);
	assert_int_equal(got.n_bytes, bytes);
	store_job_release(&got);
	assert_int_equal(store_job_items_next(f->st, "j", 10, &items, &n, NULL), 0);
	assert_int_equal(n, pending);
	store_job_items_free(items, n);
}

static void assert_text(struct fixture *f, const char *id, const char *text)
{
	struct store_doc doc;

	assert_int_equal(store_doc_get(f->st, f->cid, id, &doc, NULL), 0);
	assert_string_equal(doc.text, text);
	store_doc_release(&doc);
}

/* The worker's rerun of a job item, as rag_ingest puts it. */
static int put_item(struct fixture *f, const char *id, int64_t idx, struct rag_err *err)
{
	struct store_job_ref job = { .job_id = "j", .idx = idx, .n_bytes = 4, .lease_ms = 60000 };
	struct store_chunk ch = { .start_byte = 0, .end_byte = 4, .text = "dead" };
	struct store_doc doc = { .id = id, .text = "dead" };
	float vec[DIM] = { 1, 0, 0, 0 };
	struct store_put p = { .doc = &doc, .chunks = &ch, .n_chunks = 1, .vecs = vec, .dim = DIM,
			       .job = &job };

	return store_doc_put(f->st, f->cid, &p, NULL, err);
}

/*
 * A job's put died after its commit point, before it marked its item done:
 * the item is still pending. Whoever writes to the collection next recovers
 * the intent, which marks the item done (counted once), so that a client's
 * newer version written then is not overwritten by the job applying the
 * item again: the rerun is refused.
 */
static void test_job_item_rolled_forward(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "b" };
	struct store_put_result a;
	struct rag_err err = { 0 };
	int64_t dead = 3000;

	start_job(f, ids, 1);
	assert_int_equal(put(f->st, f->cid, "a", "alpha", &a), 0);
	plant_doc(f, "b", dead);
	plant_job_lock(f, "b", dead, dead, a.seq, "j", 0, 4);
	assert_job(f, 0, 0, 0, 1); /* the window: committed, item pending */

	/* A client's write to the collection recovers the dead put first. */
	assert_int_equal(put(f->st, f->cid, "b", "newer", NULL), 0);
	assert_job(f, 1, 1, 4, 0);
	assert_text(f, "b", "newer");
	assert_int_equal(put_item(f, "b", 0, &err), RAG_EALREADY);
	assert_text(f, "b", "newer");
	assert_job(f, 1, 1, 4, 0);
}

/* The worker's own rerun of the item recovers the dead put, then finds it applied. */
static void test_job_item_rerun_refused(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "b" };
	struct store_put_result a;
	struct rag_err err = { 0 };
	int64_t seq, dead = 4000;

	start_job(f, ids, 1);
	assert_int_equal(put(f->st, f->cid, "a", "alpha", &a), 0);
	plant_doc(f, "b", dead);
	plant_job_lock(f, "b", dead, dead, a.seq, "j", 0, 4);
	assert_int_equal(put_item(f, "b", 0, &err), RAG_EALREADY);
	assert_job(f, 1, 1, 4, 0);
	/* Only the dead put's change was logged: the refused rerun wrote nothing. */
	assert_int_equal(store_collection_seq(f->st, f->cid, &seq, NULL), 0);
	assert_int_equal(seq, a.seq + 1);
	assert_int_equal(count(f, "locks", bson_new()), 0);
	assert_text(f, "b", "dead");

	/* A recovery that runs again (its writer died before unlocking) counts nothing more. */
	plant_job_lock(f, "b", dead, dead, a.seq, "j", 0, 4);
	assert_int_equal(put(f->st, f->cid, "c", "gamma", NULL), 0);
	assert_job(f, 1, 1, 4, 0);
	assert_int_equal(store_collection_seq(f->st, f->cid, &seq, NULL), 0);
	assert_int_equal(seq, a.seq + 2);
}

/* A job's put that died before its commit point applied nothing: the item stays pending. */
static void test_job_item_rolled_back(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "b" };
	struct store_put_result a;
	int64_t dead = 5000;

	start_job(f, ids, 1);
	assert_int_equal(put(f->st, f->cid, "a", "alpha", &a), 0);
	plant_chunk(f, dead, "b");
	plant_job_lock(f, "b", dead, dead, a.seq, "j", 0, 4);
	assert_int_equal(put(f->st, f->cid, "c", "gamma", NULL), 0);
	assert_job(f, 0, 0, 0, 1);
	assert_int_equal(put_item(f, "b", 0, NULL), 0);
	assert_job(f, 1, 1, 4, 0);
	assert_text(f, "b", "dead");
}

/*
 * A worker killed between recording an item's outcome and adding it to the
 * job's counters leaves them one item short; the job's finish counts its
 * items' own outcomes, so the final numbers are exact.
 */
static void test_job_counts_exact_after_a_torn_count(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "b", "c" };
	mongoc_collection_t *items = mongoc_client_get_collection(f->cl, f->db, "job_items");
	bson_t *q = BCON_NEW("j", BCON_UTF8("j"), "idx", BCON_INT64(0));
	bson_t *u = BCON_NEW("$set", "{", "state", BCON_INT32(1), "n_chunks", BCON_INT64(2),
			     "n_bytes", BCON_INT64(4), "}");
	struct store_job got;
	bson_error_t e;

	start_job(f, ids, 2);
	/* Item 0 recorded done, its counters never added: the kill's window. */
	if (!mongoc_collection_update_one(items, q, u, NULL, NULL, &e))
		fail_msg("update: %s", e.message);
	mongoc_collection_destroy(items);
	bson_destroy(q);
	bson_destroy(u);
	assert_job(f, 0, 0, 0, 1);
	assert_int_equal(store_job_item_finish(f->st, "j", 1, 3, NULL, 0, 4, 60000, NULL), 0);
	assert_int_equal(store_job_finish(f->st, "j", STORE_JOB_SUCCEEDED, NULL, NULL), 0);
	assert_int_equal(store_job_get(f->st, NULL, "j", &got, NULL), 0);
	assert_int_equal(got.n_done, 1);
	assert_int_equal(got.n_skipped, 1);
	assert_int_equal(got.n_chunks, 2);
	assert_int_equal(got.n_bytes, 8);
	assert_int_equal(got.state, STORE_JOB_SUCCEEDED);
	store_job_release(&got);
}

static void test_live_lock_holder_means_busy(void **state)
{
	struct fixture *f = *state;
	struct store_put_result a;
	struct rag_err err = { 0 };

	store_free(f->st);
	f->st = open_mongo(f, 200);
	insert(f, "locks", BCON_NEW("_id", BCON_INT64(f->cid), "owner", BCON_UTF8("alive-1"),
				    "until", BCON_INT64(INT64_MAX / 2)));
	assert_int_equal(store_doc_put(f->st, f->cid, &(struct store_put){ 0 }, &a, &err),
			 RAG_EINVAL); /* checked before any lock: no chunks */
	rag_err_clear(&err);
	{
		struct store_chunk ch = { .end_byte = 1, .text = "x" };
		struct store_doc doc = { .id = "x", .text = "x" };
		float vec[DIM] = { 1, 0, 0, 0 };
		struct store_put p = { .doc = &doc, .chunks = &ch, .n_chunks = 1, .vecs = vec,
				       .dim = DIM };

		assert_int_equal(store_doc_put(f->st, f->cid, &p, &a, &err), RAG_EBUSY);
		assert_non_null(strstr(err.msg, "another process"));
	}
	/* Readers are not blocked by a writer. */
	assert_int_equal(store_collection_seq(f->st, f->cid, &a.seq, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rolled_back_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rolled_forward_after_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_item_rolled_forward, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_item_rerun_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_item_rolled_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_counts_exact_after_a_torn_count, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_live_lock_holder_means_busy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
