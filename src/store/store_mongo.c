/*
 * The MongoDB store: libmongoc's client pool, open/free, error translation
 * and small BSON helpers. store_mongo_lock.c holds the locks, the other
 * store_mongo_*.c files the ops (see store_mongo_int.h).
 *
 * Without multi-document transactions. MongoDB has them on replica sets,
 * but the wire-compatible servers this must also run on (FerretDB) do not,
 * and a design that needs none also keeps writes cheap on a sharded
 * cluster. Every write is a sequence of single-document atomic operations
 * ordered around one commit point:
 *
 *  - Writers of one collection are serialised by a lock document
 *    (locks/{_id: cid}) with an owner and a lease, as SQLite serialises
 *    writers of one file. Within a process they first queue on a mutex, so
 *    threads do not poll each other through the server.
 *  - Chunk ids come from a counter document ($inc by the number of chunks,
 *    findAndModify): one atomic step hands a put its contiguous range, so
 *    ids are never reused even across processes.
 *  - A put inserts its chunks first: they are garbage, invisible, until the
 *    document points at them. It then records its intent in the lock
 *    document (which also checks the lock is still ours), then replaces the
 *    document, whose [first, last] chunk range is the commit point: one
 *    atomic write flips readers from the old chunks to the new. Only then
 *    are the change-log entries written (seq = the collection's seq + 1 and
 *    + 2) and the collection's seq advanced; the old chunks are deleted
 *    and, for a put that applies a job item, the item marked done last. A
 *    chunk is live only while its document's range holds it, so every read
 *    (hits, scans, a document's chunks) drops chunks that are not: a
 *    half-written put shows nothing, a finished one shows all.
 *  - A writer that dies leaves its lock to expire and its intent in it. The
 *    next writer to take the lock rolls the intent forward when the commit
 *    point was passed (writes the change entries, advances seq, deletes the
 *    old chunks: every step is idempotent) or back when it was not (deletes
 *    the unreferenced new chunks). A write acknowledged to a client has
 *    passed every step, so nothing acknowledged is lost.
 *  - The change log (changes/{_id: "cid:seq"}) is read up to the
 *    collection's seq only: an entry of a dead writer not yet rolled
 *    forward is not read, and it is rewritten identically by the recovery.
 *    A follower that built its index from a scan at seq S replays entries
 *    after S; since a scan reads the seq before the documents and chunks,
 *    any write it half-saw has entries after S, and replaying a PUT or a
 *    DELETE twice is harmless (vindex_add replaces, removal of an absent id
 *    is a no-op).
 *
 * Durability: writes use write concern majority (configurable), so an
 * acknowledged write survives the loss of the primary. Reads that must
 * agree with the change log read the primary; search-path reads may use a
 * secondary (store_mongo_options.search_read_pref).
 *
 * FerretDB (the tests' server) runs an update as a query then a write by
 * _id, so its findAndModify and conditional updates are not atomic; the
 * store detects it (buildInfo) and puts its read-modify-writes that are
 * not under a collection's lock (id counters, job states, sessions) under
 * a named mutex (store_mongo_lock.c). MongoDB needs none of that.
 *
 * Alternatives rejected: seq allocation by $inc without a lock (two writers
 * would publish seq 8 before seq 7 and a follower reading in between would
 * skip 7 for ever; and two puts of one document could log their changes in
 * the opposite order of their commits); transactions (absent on FerretDB,
 * costly on sharded clusters); change streams (absent on FerretDB, and the
 * log must also serve followers that were down longer than the oplog).
 */
#include "store/store_mongo.h"
#include "store/store_mongo_int.h"

#include "core/log.h"
#include "core/rag_error.h"
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/banned.h"


static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/*
 * libmongoc's own messages go to ragd's log. Servers without sessions
 * (FerretDB) answer the pool's closing "endSessions" with an error that
 * libmongoc reports as a warning at every shutdown: that one is debug.
 */
static void driver_log(mongoc_log_level_t level, const char *domain, const char *msg,
		       void *data)
{
	(void)data;
	if (level <= MONGOC_LOG_LEVEL_ERROR)
		log_error("mongoc %s: %s", domain, msg);
	else if (level == MONGOC_LOG_LEVEL_WARNING && !strstr(msg, "endSessions"))
		log_warn("mongoc %s: %s", domain, msg);
	else
		log_debug("mongoc %s: %s", domain, msg);
}

static void init_driver(void)
{
	mongoc_log_set_handler(driver_log, NULL);
	mongoc_init();
}

struct store_mongo_options store_mongo_default_options(void)
{
	struct store_mongo_options o = {
		.uri = NULL,
		.database = NULL,
		.max_pool_size = 100,
		.min_pool_size = 0,
		.max_idle_time_ms = 30000,
		.server_selection_timeout_ms = 5000,
		.connect_timeout_ms = 10000,
		.socket_timeout_ms = 20000,
		.heartbeat_frequency_ms = 10000,
		.search_read_pref = STORE_MONGO_READ_PRIMARY,
		.write_majority = 1,
		.lock_lease_ms = 30000,
		.lock_timeout_ms = 10000,
	};
	return o;
}

static const char *const pref_names[] = {
	[STORE_MONGO_READ_PRIMARY] = "primary",
	[STORE_MONGO_READ_PRIMARY_PREFERRED] = "primaryPreferred",
	[STORE_MONGO_READ_SECONDARY] = "secondary",
	[STORE_MONGO_READ_SECONDARY_PREFERRED] = "secondaryPreferred",
	[STORE_MONGO_READ_NEAREST] = "nearest",
};

int store_mongo_read_pref_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(pref_names) / sizeof(pref_names[0]); i++)
		if (s && strcmp(s, pref_names[i]) == 0)
			return (int)i;
	return -1;
}

static mongoc_read_mode_t read_mode(enum store_mongo_read_pref p)
{
	switch (p) {
	case STORE_MONGO_READ_PRIMARY_PREFERRED:
		return MONGOC_READ_PRIMARY_PREFERRED;
	case STORE_MONGO_READ_SECONDARY:
		return MONGOC_READ_SECONDARY;
	case STORE_MONGO_READ_SECONDARY_PREFERRED:
		return MONGOC_READ_SECONDARY_PREFERRED;
	case STORE_MONGO_READ_NEAREST:
		return MONGOC_READ_NEAREST;
	default:
		return MONGOC_READ_PRIMARY;
	}
}

int64_t sm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sm_oom(struct rag_err *err)
{
	return rag_err_set(err, RAG_ENOMEM, NULL, "store: out of memory");
}

void sm_conn_get(struct store_mongo *sm, struct sm_conn *c, const char *what)
{
	c->sm = sm;
	c->what = what;
	c->cl = mongoc_client_pool_pop(sm->pool); /* waits while maxPoolSize clients are out */
}

void sm_conn_put(struct sm_conn *c)
{
	if (c->cl)
		mongoc_client_pool_push(c->sm->pool, c->cl);
	c->cl = NULL;
}

mongoc_collection_t *sm_coll(struct sm_conn *c, const char *name)
{
	return mongoc_client_get_collection(c->cl, c->sm->db, name);
}

int sm_fail(struct sm_conn *c, const bson_error_t *e, struct rag_err *err)
{
	int code = RAG_EIO;

	if (e->code == SM_DUP_KEY)
		code = RAG_ECONFLICT;
	else if (e->domain == MONGOC_ERROR_SERVER_SELECTION)
		code = RAG_EBUSY; /* no server answered in time: retry later */
	return rag_err_set(err, code, NULL, "store: %s: %s", c->what, e->message);
}

/* "<cid>:<s>": a string key, so _id is unique on any server and hashes evenly. */
char *sm_key(int64_t cid, const char *s)
{
	size_t len = strlen(s) + 24;
	char *k = malloc(len);

	if (k)
		snprintf(k, len, "%lld:%s", (long long)cid, s);
	return k;
}

/* "<len(a)>:<a>:<b>": unambiguous whatever a holds. */
char *sm_key2(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 24;
	char *k = malloc(len);

	if (k)
		snprintf(k, len, "%zu:%s:%s", strlen(a), a, b);
	return k;
}

void sm_write_opts(struct store_mongo *sm, bson_t *opts)
{
	if (sm->wc)
		mongoc_write_concern_append(sm->wc, opts);
}

int sm_delete_many(struct sm_conn *c, const char *coll_name, const bson_t *q,
		   struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, coll_name);
	bson_t opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	sm_write_opts(c->sm, &opts);
	if (!mongoc_collection_delete_many(coll, q, &opts, NULL, &e))
		rc = sm_fail(c, &e, err);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	return rc;
}

int sm_find_one(struct sm_conn *c, mongoc_collection_t *coll, const bson_t *filter,
		const bson_t *opts, const mongoc_read_prefs_t *prefs, bson_t *out,
		struct rag_err *err)
{
	bson_t o = BSON_INITIALIZER;
	const bson_t *doc;
	mongoc_cursor_t *cur;
	bson_error_t e;
	int rc = 0;

	if (opts)
		bson_concat(&o, opts);
	BSON_APPEND_INT64(&o, "limit", 1);
	cur = mongoc_collection_find_with_opts(coll, filter, &o,
					       prefs ? prefs : c->sm->primary);
	if (mongoc_cursor_next(cur, &doc)) {
		bson_copy_to(doc, out);
		rc = 1;
	} else if (mongoc_cursor_error(cur, &e)) {
		rc = sm_fail(c, &e, err);
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&o);
	return rc;
}

int sm_find_modify(struct sm_conn *c, mongoc_collection_t *coll, const bson_t *query,
		   const bson_t *update, int upsert, int new_doc, bson_t *out, int *found,
		   struct rag_err *err)
{
	mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
	bson_t reply, extra = BSON_INITIALIZER;
	bson_iter_t it;
	bson_error_t e;
	int flags = 0, rc = 0, got = 0;

	if (upsert)
		flags |= MONGOC_FIND_AND_MODIFY_UPSERT;
	if (new_doc)
		flags |= MONGOC_FIND_AND_MODIFY_RETURN_NEW;
	mongoc_find_and_modify_opts_set_update(fam, update);
	mongoc_find_and_modify_opts_set_flags(fam, (mongoc_find_and_modify_flags_t)flags);
	sm_write_opts(c->sm, &extra);
	mongoc_find_and_modify_opts_append(fam, &extra);
	if (!mongoc_collection_find_and_modify_with_opts(coll, query, fam, &reply, &e)) {
		rc = sm_fail(c, &e, err);
	} else if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		const uint8_t *data;
		uint32_t len;
		bson_t view;

		got = 1;
		if (out) {
			bson_iter_document(&it, &len, &data);
			bson_init_static(&view, data, len);
			bson_copy_to(&view, out);
		}
	}
	if (out && !got)
		bson_init(out);
	if (found)
		*found = got;
	bson_destroy(&reply);
	bson_destroy(&extra);
	mongoc_find_and_modify_opts_destroy(fam);
	return rc;
}

int sm_alloc(struct sm_conn *c, const char *name, int64_t n, int64_t *last_out,
	     struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, SM_COUNTERS);
	bson_t *q = BCON_NEW("_id", BCON_UTF8(name));
	bson_t *u = BCON_NEW("$inc", "{", "n", BCON_INT64(n), "}");
	char mutex[64];
	bson_t doc;
	int found, rc = 0;

	/* Where $inc is a read then a write, two allocations could get the same ids. */
	snprintf(mutex, sizeof(mutex), "counter:%s", name);
	if (c->sm->weak_updates)
		rc = sm_mutex_take(c, mutex, err);
	if (rc) {
		bson_init(&doc);
		found = 1;
		goto out;
	}
	rc = sm_find_modify(c, coll, q, u, 1, 1, &doc, &found, err);
	if (c->sm->weak_updates)
		sm_mutex_drop(c, mutex);
	if (rc == 0 && !found)
		rc = rag_err_set(err, RAG_EIO, NULL, "store: counter '%s' did not come back", name);
	if (rc == 0)
		*last_out = sm_get_int(&doc, "n");
out:
	bson_destroy(&doc);
	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(coll);
	return rc;
}

int64_t sm_get_int(const bson_t *b, const char *key)
{
	bson_iter_t it;

	if (!bson_iter_init_find(&it, b, key))
		return 0;
	switch (bson_iter_type(&it)) {
	case BSON_TYPE_INT32:
		return bson_iter_int32(&it);
	case BSON_TYPE_INT64:
		return bson_iter_int64(&it);
	case BSON_TYPE_DOUBLE:
		return (int64_t)bson_iter_double(&it);
	case BSON_TYPE_BOOL:
		return bson_iter_bool(&it);
	default:
		return 0;
	}
}

int sm_get_str(const bson_t *b, const char *key, const char **out, struct rag_err *err)
{
	bson_iter_t it;
	const char *s = "";
	uint32_t len = 0;
	char *p;

	if (bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_UTF8(&it))
		s = bson_iter_utf8(&it, &len);
	p = malloc((size_t)len + 1);
	if (!p)
		return sm_oom(err);
	memcpy(p, s, len);
	p[len] = '\0';
	*out = p;
	return 0;
}

const uint8_t *sm_get_bin(const bson_t *b, const char *key, uint32_t *len)
{
	bson_iter_t it;
	bson_subtype_t sub;
	const uint8_t *data = NULL;

	*len = 0;
	if (bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_BINARY(&it))
		bson_iter_binary(&it, &sub, len, &data);
	return data;
}

static int coll_state(struct sm_conn *c, int64_t cid, int *dim, int64_t *seq, int write,
		      struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, SM_COLLECTIONS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid));
	bson_t doc;
	int rc = sm_find_one(c, coll, q, NULL, NULL, &doc, err);

	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection %lld not found",
				 (long long)cid);
	if (rc == 1) {
		*dim = (int)sm_get_int(&doc, "dim");
		*seq = sm_get_int(&doc, "seq");
		rc = write && sm_get_int(&doc, "retired")
			     ? rag_err_set(err, RAG_ENOTFOUND, NULL, "collection %lld was replaced",
					   (long long)cid)
			     : 0;
		bson_destroy(&doc);
	}
	bson_destroy(q);
	mongoc_collection_destroy(coll);
	return rc;
}

int sm_coll_state(struct sm_conn *c, int64_t cid, int *dim, int64_t *seq, struct rag_err *err)
{
	return coll_state(c, cid, dim, seq, 0, err);
}

int sm_coll_state_write(struct sm_conn *c, int64_t cid, int *dim, int64_t *seq,
			struct rag_err *err)
{
	return coll_state(c, cid, dim, seq, 1, err);
}

/* Readiness: the server answers a ping on our database. */
static int ping(struct store *st, struct rag_err *err)
{
	struct store_mongo *sm = st->impl;
	struct sm_conn c;
	bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
	bson_t reply;
	bson_error_t e;
	int rc = 0;

	sm_conn_get(sm, &c, "ping");
	if (!mongoc_client_command_simple(c.cl, sm->db, cmd, sm->primary, &reply, &e))
		rc = sm_fail(&c, &e, err);
	bson_destroy(&reply);
	bson_destroy(cmd);
	sm_conn_put(&c);
	return rc;
}

/* FerretDB names itself in buildInfo; it plans $in as a collection scan. */
static int is_ferretdb(struct store_mongo *sm)
{
	struct sm_conn c;
	bson_t *cmd = BCON_NEW("buildInfo", BCON_INT32(1));
	bson_t reply;
	int yes = 0;

	sm_conn_get(sm, &c, "buildInfo");
	if (mongoc_client_command_simple(c.cl, "admin", cmd, NULL, &reply, NULL))
		yes = bson_has_field(&reply, "ferretdbVersion") ||
		      bson_has_field(&reply, "ferretdb");
	bson_destroy(&reply);
	bson_destroy(cmd);
	sm_conn_put(&c);
	if (yes)
		log_info("store: FerretDB: keys read one by one, counters under a lock");
	return yes;
}

/* createIndexes for one collection; idempotent. keys is {field: 1, ...}. */
static int create_index(struct sm_conn *c, const char *coll, const char *name, bson_t *keys,
			struct rag_err *err)
{
	mongoc_database_t *db = mongoc_client_get_database(c->cl, c->sm->db);
	bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(coll), "indexes", "[", "{", "key",
			       BCON_DOCUMENT(keys), "name", BCON_UTF8(name), "}", "]");
	bson_t reply;
	bson_error_t e;
	int rc = 0;

	if (!mongoc_database_write_command_with_opts(db, cmd, NULL, &reply, &e))
		rc = sm_fail(c, &e, err);
	bson_destroy(&reply);
	bson_destroy(cmd);
	bson_destroy(keys);
	mongoc_database_destroy(db);
	return rc;
}

/* The indexes every query of the backend relies on; deploy/mongodb/ creates the same. */
static int create_indexes(struct sm_conn *c, struct rag_err *err)
{
	int rc = create_index(c, SM_NAMES, "tenant_name",
			      BCON_NEW("tenant", BCON_INT32(1), "name", BCON_INT32(1)), err);

	if (!rc)
		rc = create_index(c, SM_DOCS, "c_d", BCON_NEW("c", BCON_INT32(1), "d", BCON_INT32(1)),
				  err);
	if (!rc)
		rc = create_index(c, SM_DOCS, "c_first",
				  BCON_NEW("c", BCON_INT32(1), "first", BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_CHUNKS, "c_hash",
				  BCON_NEW("c", BCON_INT32(1), "hash", BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_CHUNKS, "k", BCON_NEW("k", BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_CHUNKS, "c_i", BCON_NEW("c", BCON_INT32(1), "i", BCON_INT32(1)),
				  err);
	if (!rc)
		rc = create_index(c, SM_CHANGES, "c_s",
				  BCON_NEW("c", BCON_INT32(1), "s", BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_JOBS, "state_created",
				  BCON_NEW("state", BCON_INT32(1), "created_at", BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_JOB_ITEMS, "j_state_idx",
				  BCON_NEW("j", BCON_INT32(1), "state", BCON_INT32(1), "idx",
					   BCON_INT32(1)), err);
	if (!rc)
		rc = create_index(c, SM_JOB_BODIES, "j_i",
				  BCON_NEW("j", BCON_INT32(1), "i", BCON_INT32(1)), err);
	return rc;
}

static void mongo_free(struct store *st)
{
	struct store_mongo *sm = st->impl;

	if (sm->pool)
		mongoc_client_pool_destroy(sm->pool);
	mongoc_uri_destroy(sm->uri);
	mongoc_read_prefs_destroy(sm->search_prefs);
	mongoc_read_prefs_destroy(sm->primary);
	mongoc_write_concern_destroy(sm->wc);
	pthread_mutex_destroy(&sm->write_lock);
	free(sm->db);
	free(sm);
}

static const struct store_ops mongo_ops = {
	.name = "mongodb",
	.free = mongo_free,
	.collection_create = store_mongo_collection_create,
	.collection_get = store_mongo_collection_get,
	.collection_get_by_id = store_mongo_collection_get_by_id,
	.collection_list = store_mongo_collection_list,
	.collection_delete = store_mongo_collection_delete,
	.collection_seq = store_mongo_collection_seq,
	.doc_put = store_mongo_doc_put,
	.doc_get = store_mongo_doc_get,
	.doc_delete = store_mongo_doc_delete,
	.chunks_get = store_mongo_chunks_get,
	.chunks_scan = store_mongo_chunks_scan,
	.chunk_vectors = store_mongo_chunk_vectors,
	.changes = store_mongo_changes,
	.ping = ping,
	.filter_ids = store_mongo_filter_ids,
	.session_append = store_mongo_session_append,
	.session_history = store_mongo_session_history,
	.key_put = store_mongo_key_put,
	.key_get = store_mongo_key_get,
	.key_list = store_mongo_key_list,
	.key_delete = store_mongo_key_delete,
	.doc_hash = store_mongo_doc_hash,
	.vectors_by_hash = store_mongo_vectors_by_hash,
	.doc_list = store_mongo_doc_list,
	.doc_chunks = store_mongo_doc_chunks,
	.job_create = store_mongo_job_create,
	.job_get = store_mongo_job_get,
	.job_errors = store_mongo_job_errors,
	.job_claim = store_mongo_job_claim,
	.job_items_next = store_mongo_job_items_next,
	.job_item_finish = store_mongo_job_item_finish,
	.job_finish = store_mongo_job_finish,
	.job_cancel = store_mongo_job_cancel,
	.collection_swap = store_mongo_collection_swap,
};

/* Sets an integer URI option unless the URI names it itself (the URI wins). */
static void uri_int(mongoc_uri_t *uri, const char *key, int v)
{
	const bson_t *have = mongoc_uri_get_options(uri);

	if (v > 0 && !(have && bson_has_field(have, key)))
		mongoc_uri_set_option_as_int32(uri, key, v);
}

static int check_options(const struct store_mongo_options *o, struct rag_err *err)
{
	if (!o->uri || !*o->uri)
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.uri",
				   "store: the MongoDB URI is empty (store.mongodb.uri,"
				   " store.mongodb.uri_file or RAGD_MONGODB_URI)");
	if (o->max_pool_size < 1 || o->max_pool_size > STORE_MONGO_MAX_POOL)
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.max_pool_size",
				   "store: maxPoolSize %d is outside 1..%d", o->max_pool_size,
				   STORE_MONGO_MAX_POOL);
	if (o->min_pool_size < 0 || o->min_pool_size > o->max_pool_size)
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.min_pool_size",
				   "store: minPoolSize %d is outside 0..maxPoolSize",
				   o->min_pool_size);
	if (o->lock_lease_ms < 100 || o->lock_timeout_ms < 0)
		return rag_err_set(err, RAG_EINVAL, NULL, "store: bad write-lock timings");
	return 0;
}

struct store *store_mongo_open(const struct store_mongo_options *opts, struct rag_err *err)
{
	struct store_mongo *sm;
	struct sm_conn c;
	bson_error_t e;
	const char *db;
	int rc;

	assert(opts);
	if (check_options(opts, err))
		return NULL;
	pthread_once(&init_once, init_driver);
	sm = calloc(1, sizeof(*sm));
	if (!sm) {
		sm_oom(err);
		return NULL;
	}
	sm->base.ops = &mongo_ops;
	sm->base.impl = sm;
	sm->opts = *opts;
	sm->opts.uri = NULL; /* borrowed for the call only; may hold a password */
	sm->opts.database = NULL;
	sm->opts.username = NULL;
	sm->opts.password = NULL;
	pthread_mutex_init(&sm->write_lock, NULL);
	snprintf(sm->owner, sizeof(sm->owner), "%ld-%08x-%lld", (long)getpid(),
		 (unsigned)random() ^ (unsigned)sm_now_ms(), (long long)sm_now_ms());
	sm->uri = mongoc_uri_new_with_error(opts->uri, &e);
	if (!sm->uri) {
		rag_err_set(err, RAG_EINVAL, "store.mongodb.uri", "store: bad MongoDB URI: %s",
			    e.message);
		goto fail;
	}
	if (opts->username && *opts->username)
		mongoc_uri_set_username(sm->uri, opts->username);
	if (opts->password && *opts->password)
		mongoc_uri_set_password(sm->uri, opts->password);
	uri_int(sm->uri, MONGOC_URI_MAXPOOLSIZE, opts->max_pool_size);
	uri_int(sm->uri, MONGOC_URI_MINPOOLSIZE, opts->min_pool_size);
	uri_int(sm->uri, MONGOC_URI_MAXIDLETIMEMS, opts->max_idle_time_ms);
	uri_int(sm->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, opts->server_selection_timeout_ms);
	uri_int(sm->uri, MONGOC_URI_CONNECTTIMEOUTMS, opts->connect_timeout_ms);
	uri_int(sm->uri, MONGOC_URI_SOCKETTIMEOUTMS, opts->socket_timeout_ms);
	uri_int(sm->uri, MONGOC_URI_HEARTBEATFREQUENCYMS, opts->heartbeat_frequency_ms);
	db = opts->database && *opts->database ? opts->database : mongoc_uri_get_database(sm->uri);
	sm->db = strdup(db && *db ? db : STORE_MONGO_DEFAULT_DB);
	sm->primary = mongoc_read_prefs_new(MONGOC_READ_PRIMARY);
	sm->search_prefs = mongoc_read_prefs_new(read_mode(opts->search_read_pref));
	if (opts->write_majority) {
		sm->wc = mongoc_write_concern_new();
		mongoc_write_concern_set_wmajority(sm->wc, 0);
	}
	sm->pool = mongoc_client_pool_new(sm->uri);
	if (!sm->db || !sm->pool) {
		rag_err_set(err, sm->db ? RAG_EINVAL : RAG_ENOMEM, "store.mongodb.uri",
			    "store: cannot create a MongoDB client pool for this URI");
		goto fail;
	}
	mongoc_client_pool_set_error_api(sm->pool, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_pool_set_appname(sm->pool, "ragd");
	rc = ping(&sm->base, err);
	if (rc == 0)
		sm->point_reads = sm->weak_updates = is_ferretdb(sm);
	if (rc == 0) {
		sm_conn_get(sm, &c, "create indexes");
		rc = create_indexes(&c, err);
		sm_conn_put(&c);
	}
	if (rc == 0)
		return &sm->base;
fail:
	mongo_free(&sm->base);
	return NULL;
}
