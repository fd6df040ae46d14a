/*
 * The MongoDB store's job queue and conversation sessions.
 *
 * A job is jobs/{_id: id}; its items are job_items/{_id: "id:idx"} and
 * their bodies job_bodies/{_id: "id:idx:part"} in SM_BODY_PART pieces, as a
 * document's bytes may exceed BSON's 16 MiB. A create writes the items and
 * bodies first and the job document last: until it exists nothing refers
 * to them, so a create that fails half-way leaves only unreferenced
 * garbage. Claims are one findAndModify (state queued, or running with an
 * expired lease held by another owner), so two workers never claim the same
 * job. An item is finished by a conditional update (state pending -> done)
 * before the job's counters are incremented, so a retried finish never
 * counts twice. An item that writes a document is finished by the put
 * itself, after its commit point, from the intent it leaves in the
 * collection's lock (store_mongo_docs.c: sm_job_item_pending before, and
 * sm_job_item_applied in the roll-forward).
 *
 * A session is one document whose messages array grows by $push: an
 * append is one atomic write.
 *
 * On servers whose updates are not atomic (store_mongo->weak_updates:
 * FerretDB reads, then writes back by _id), a cancel could be overwritten
 * by a worker's finish, or two workers claim one job: there, every job
 * state change and session append holds a store-wide mutex (sm_mutex).
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define JOBS_MUTEX "jobs" /* job state changes, where updates are not atomic */

static int weak_lock(struct sm_conn *c, const char *name, struct rag_err *err)
{
	return c->sm->weak_updates ? sm_mutex_take(c, name, err) : 0;
}

static void weak_unlock(struct sm_conn *c, const char *name)
{
	if (c->sm->weak_updates)
		sm_mutex_drop(c, name);
}

static char *item_key(const char *job, int64_t idx)
{
	char num[24];

	snprintf(num, sizeof(num), "%012lld", (long long)idx);
	return sm_key2(job, num);
}

/* Inserts one document into coll; a RAG_E* code. */
static int insert(struct sm_conn *c, const char *coll_name, const bson_t *doc,
		  struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, coll_name);
	bson_t opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	sm_write_opts(c->sm, &opts);
	if (!mongoc_collection_insert_one(coll, doc, &opts, NULL, &e))
		rc = sm_fail(c, &e, err);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	return rc;
}

/* Runs update on the documents matching q (many or one); *matched (may be NULL). */
static int update(struct sm_conn *c, const char *coll_name, const bson_t *q, const bson_t *u,
		  int many, int64_t *matched, struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, coll_name);
	bson_t opts = BSON_INITIALIZER, reply;
	bson_error_t e;
	int rc = 0;
	bool ok;

	sm_write_opts(c->sm, &opts);
	ok = many ? mongoc_collection_update_many(coll, q, u, &opts, &reply, &e)
		  : mongoc_collection_update_one(coll, q, u, &opts, &reply, &e);
	if (!ok)
		rc = sm_fail(c, &e, err);
	else if (matched)
		*matched = sm_get_int(&reply, "matchedCount");
	bson_destroy(&reply);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	return rc;
}

/* Writes item number idx (its position in the job: it->idx is not read on create). */
static int put_item(struct sm_conn *c, const char *job, int64_t idx,
		    const struct store_job_item *it, struct rag_err *err)
{
	char *key = item_key(job, idx);
	size_t n_parts = (it->body_len + SM_BODY_PART - 1) / SM_BODY_PART;
	bson_t *doc;
	int rc = 0;

	if (!key)
		return sm_oom(err);
	for (size_t p = 0; p < n_parts && !rc; p++) {
		size_t off = p * SM_BODY_PART;
		size_t len = it->body_len - off < SM_BODY_PART ? it->body_len - off : SM_BODY_PART;
		char pk[24];
		char *bkey;

		snprintf(pk, sizeof(pk), "%06zu", p);
		bkey = sm_key2(key, pk);
		if (!bkey) {
			rc = sm_oom(err);
			break;
		}
		doc = BCON_NEW("_id", BCON_UTF8(bkey), "j", BCON_UTF8(job), "i", BCON_INT64(idx),
			       "p", BCON_INT64((int64_t)p), "data",
			       BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)it->body + off,
					(uint32_t)len));
		rc = insert(c, SM_JOB_BODIES, doc, err);
		bson_destroy(doc);
		free(bkey);
	}
	if (!rc) {
		doc = BCON_NEW("_id", BCON_UTF8(key), "j", BCON_UTF8(job), "idx", BCON_INT64(idx),
			       "doc_id", BCON_UTF8(it->doc_id ? it->doc_id : ""), "name",
			       BCON_UTF8(it->name ? it->name : ""), "content_type",
			       BCON_UTF8(it->content_type ? it->content_type : ""), "format",
			       BCON_UTF8(it->format ? it->format : "auto"), "meta_json",
			       BCON_UTF8(it->metadata_json ? it->metadata_json : "{}"), "state",
			       BCON_INT32(0), "error", BCON_UTF8(""), "parts",
			       BCON_INT64((int64_t)n_parts), "len", BCON_INT64((int64_t)it->body_len));
		rc = insert(c, SM_JOB_ITEMS, doc, err);
		bson_destroy(doc);
	}
	free(key);
	return rc;
}

int store_mongo_job_create(struct store *st, const struct store_job *job,
			   const struct store_job_item *items, size_t n_items,
			   struct rag_err *err)
{
	struct sm_conn c;
	int64_t now = sm_now_ms();
	bson_t *doc, *q;
	int rc = 0;

	sm_conn_get(st->impl, &c, "create job");
	for (size_t i = 0; i < n_items && !rc; i++)
		rc = put_item(&c, job->id, (int64_t)i, &items[i], err);
	if (!rc) {
		doc = BCON_NEW("_id", BCON_UTF8(job->id), "tenant", BCON_UTF8(job->tenant),
			       "collection", BCON_UTF8(job->collection), "kind", BCON_UTF8(job->kind),
			       "spec_json", BCON_UTF8(job->spec_json ? job->spec_json : "{}"),
			       "state", BCON_INT32(STORE_JOB_QUEUED), "n_total",
			       BCON_INT64((int64_t)n_items), "n_done", BCON_INT64(0), "n_failed",
			       BCON_INT64(0), "n_skipped", BCON_INT64(0), "n_chunks", BCON_INT64(0),
			       "n_bytes", BCON_INT64(0), "created_at", BCON_INT64(now), "started_at",
			       BCON_INT64(0), "updated_at", BCON_INT64(now), "finished_at",
			       BCON_INT64(0), "error", BCON_UTF8(""), "owner", BCON_UTF8(""),
			       "lease_until", BCON_INT64(0));
		rc = insert(&c, SM_JOBS, doc, err); /* last: the commit point */
		bson_destroy(doc);
	}
	if (rc) {
		q = BCON_NEW("j", BCON_UTF8(job->id));
		sm_delete_many(&c, SM_JOB_BODIES, q, NULL);
		sm_delete_many(&c, SM_JOB_ITEMS, q, NULL);
		bson_destroy(q);
	}
	sm_conn_put(&c);
	return rc;
}

static int read_job(const bson_t *d, struct store_job *j, struct rag_err *err)
{
	int rc;

	j->state = (enum store_job_state)sm_get_int(d, "state");
	j->n_total = sm_get_int(d, "n_total");
	j->n_done = sm_get_int(d, "n_done");
	j->n_failed = sm_get_int(d, "n_failed");
	j->n_skipped = sm_get_int(d, "n_skipped");
	j->n_chunks = sm_get_int(d, "n_chunks");
	j->n_bytes = sm_get_int(d, "n_bytes");
	j->created_at = sm_get_int(d, "created_at");
	j->started_at = sm_get_int(d, "started_at");
	j->updated_at = sm_get_int(d, "updated_at");
	j->finished_at = sm_get_int(d, "finished_at");
	rc = sm_get_str(d, "_id", &j->id, err);
	if (!rc)
		rc = sm_get_str(d, "tenant", &j->tenant, err);
	if (!rc)
		rc = sm_get_str(d, "collection", &j->collection, err);
	if (!rc)
		rc = sm_get_str(d, "kind", &j->kind, err);
	if (!rc)
		rc = sm_get_str(d, "spec_json", &j->spec_json, err);
	if (!rc)
		rc = sm_get_str(d, "error", &j->error, err);
	if (rc)
		store_job_release(j);
	return rc;
}

/* The job document of id (and tenant unless NULL) in *out: 1, 0 or an error; out always set. */
static int find_job(struct sm_conn *c, const char *tenant, const char *id, bson_t *out,
		    struct rag_err *err)
{
	mongoc_collection_t *jobs = sm_coll(c, SM_JOBS);
	bson_t *q = tenant ? BCON_NEW("_id", BCON_UTF8(id), "tenant", BCON_UTF8(tenant))
			   : BCON_NEW("_id", BCON_UTF8(id));
	int rc = sm_find_one(c, jobs, q, NULL, NULL, out, err);

	if (rc != 1)
		bson_init(out);
	bson_destroy(q);
	mongoc_collection_destroy(jobs);
	return rc;
}

int store_mongo_job_get(struct store *st, const char *tenant, const char *id,
			struct store_job *out, struct rag_err *err)
{
	struct sm_conn c;
	bson_t d;
	int rc;

	sm_conn_get(st->impl, &c, "get job");
	rc = find_job(&c, tenant, id, &d, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "job '%s' not found", id);
	if (rc == 1)
		rc = read_job(&d, out, err);
	bson_destroy(&d);
	sm_conn_put(&c);
	return rc;
}

/* The item's body, reassembled from its parts, in it->body (malloc'ed, NUL-terminated). */
static int read_body(struct sm_conn *c, const char *job, struct store_job_item *it, size_t len,
		     struct rag_err *err)
{
	mongoc_collection_t *bodies = sm_coll(c, SM_JOB_BODIES);
	bson_t *q = BCON_NEW("j", BCON_UTF8(job), "i", BCON_INT64(it->idx));
	bson_t *opts = BCON_NEW("sort", "{", "p", BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(bodies, q, opts, c->sm->primary);
	char *body = malloc(len + 1);
	const bson_t *d;
	bson_error_t e;
	size_t off = 0;
	int rc = body ? 0 : sm_oom(err);

	while (!rc && mongoc_cursor_next(cur, &d)) {
		uint32_t part_len;
		const uint8_t *data = sm_get_bin(d, "data", &part_len);

		if (!data || part_len > len - off) {
			rc = rag_err_set(err, RAG_EIO, NULL, "store: job '%s' item %lld: damaged body",
					 job, (long long)it->idx);
			break;
		}
		memcpy(body + off, data, part_len);
		off += part_len;
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(c, &e, err);
	if (!rc) {
		body[off] = '\0';
		it->body = body;
		it->body_len = off;
	} else {
		free(body);
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(q);
	bson_destroy(opts);
	mongoc_collection_destroy(bodies);
	return rc;
}

/* Items of job in state, by idx, at most limit; bodies when with_body. */
static int list_items(struct store *st, const char *id, int state, int with_body, size_t limit,
		      struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	struct sm_conn c;
	struct store_job_item *items = calloc(limit ? limit : 1, sizeof(*items));
	mongoc_collection_t *coll;
	mongoc_cursor_t *cur;
	bson_t *q = BCON_NEW("j", BCON_UTF8(id), "state", BCON_INT32(state));
	bson_t *opts = BCON_NEW("sort", "{", "idx", BCON_INT32(1), "}", "limit",
				BCON_INT64((int64_t)limit));
	const bson_t *d;
	bson_error_t e;
	size_t n = 0;
	int rc = items ? 0 : sm_oom(err);

	sm_conn_get(st->impl, &c, "read job items");
	coll = sm_coll(&c, SM_JOB_ITEMS);
	cur = mongoc_collection_find_with_opts(coll, q, opts, c.sm->primary);
	while (!rc && n < limit && mongoc_cursor_next(cur, &d)) {
		struct store_job_item *it = &items[n++];

		it->idx = sm_get_int(d, "idx");
		it->state = (int)sm_get_int(d, "state");
		rc = sm_get_str(d, "doc_id", &it->doc_id, err);
		if (!rc)
			rc = sm_get_str(d, "name", &it->name, err);
		if (!rc)
			rc = sm_get_str(d, "content_type", &it->content_type, err);
		if (!rc)
			rc = sm_get_str(d, "format", &it->format, err);
		if (!rc)
			rc = sm_get_str(d, with_body ? "meta_json" : "-", &it->metadata_json, err);
		if (!rc)
			rc = sm_get_str(d, "error", &it->error, err);
		if (!rc && with_body)
			rc = read_body(&c, id, it, (size_t)sm_get_int(d, "len"), err);
		if (!rc && !with_body) {
			it->body = calloc(1, 1);
			rc = it->body ? 0 : sm_oom(err);
		}
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(&c, &e, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	bson_destroy(q);
	bson_destroy(opts);
	sm_conn_put(&c);
	if (rc) {
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

int store_mongo_job_errors(struct store *st, const char *id, size_t limit,
			   struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	return list_items(st, id, 2, 0, limit, out, n_out, err);
}

int store_mongo_job_items_next(struct store *st, const char *id, size_t limit,
			       struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	return list_items(st, id, 0, 1, limit, out, n_out, err);
}

int store_mongo_job_claim(struct store *st, const char *owner, int64_t lease_ms,
			  char **id_out, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *jobs;
	mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
	int64_t now = sm_now_ms();
	bson_t *q = BCON_NEW("$or", "[", "{", "state", BCON_INT32(STORE_JOB_QUEUED), "}", "{",
			     "state", BCON_INT32(STORE_JOB_RUNNING), "lease_until", "{", "$lt",
			     BCON_INT64(now), "}", "owner", "{", "$ne", BCON_UTF8(owner), "}", "}",
			     "]");
	bson_t *u = BCON_NEW("$set", "{", "state", BCON_INT32(STORE_JOB_RUNNING), "owner",
			     BCON_UTF8(owner), "lease_until", BCON_INT64(now + lease_ms),
			     "updated_at", BCON_INT64(now), "}");
	bson_t *sort = BCON_NEW("created_at", BCON_INT32(1));
	bson_t reply, extra = BSON_INITIALIZER, job;
	bson_iter_t it;
	bson_error_t e;
	char *id = NULL;
	int rc = 0;

	sm_conn_get(st->impl, &c, "claim job");
	rc = weak_lock(&c, JOBS_MUTEX, err);
	if (rc) {
		bson_destroy(q);
		bson_destroy(u);
		bson_destroy(sort);
		bson_destroy(&extra);
		mongoc_find_and_modify_opts_destroy(fam);
		sm_conn_put(&c);
		return rc;
	}
	jobs = sm_coll(&c, SM_JOBS);
	mongoc_find_and_modify_opts_set_update(fam, u);
	mongoc_find_and_modify_opts_set_sort(fam, sort);
	mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
	sm_write_opts(c.sm, &extra);
	mongoc_find_and_modify_opts_append(fam, &extra);
	if (!mongoc_collection_find_and_modify_with_opts(jobs, q, fam, &reply, &e)) {
		rc = sm_fail(&c, &e, err);
	} else if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		const uint8_t *data;
		uint32_t len;

		bson_iter_document(&it, &len, &data);
		bson_init_static(&job, data, len);
		rc = sm_get_str(&job, "_id", (const char **)&id, err);
		if (!rc && sm_get_int(&job, "started_at") == 0) {
			bson_t *sq = BCON_NEW("_id", BCON_UTF8(id), "started_at", BCON_INT64(0));
			bson_t *su = BCON_NEW("$set", "{", "started_at", BCON_INT64(now), "}");

			rc = update(&c, SM_JOBS, sq, su, 0, NULL, err);
			bson_destroy(sq);
			bson_destroy(su);
		}
	}
	bson_destroy(&reply);
	bson_destroy(&extra);
	bson_destroy(q);
	bson_destroy(u);
	bson_destroy(sort);
	mongoc_find_and_modify_opts_destroy(fam);
	mongoc_collection_destroy(jobs);
	weak_unlock(&c, JOBS_MUTEX);
	sm_conn_put(&c);
	if (rc) {
		free(id);
		return rc;
	}
	*id_out = id;
	return 0;
}

/* The job's state; RAG_ENOTFOUND worded. */
static int job_state(struct sm_conn *c, const char *tenant, const char *id, int *state,
		     struct rag_err *err)
{
	bson_t d;
	int rc = find_job(c, tenant, id, &d, err);

	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "job '%s' not found", id);
	if (rc == 1) {
		*state = (int)sm_get_int(&d, "state");
		rc = 0;
	}
	bson_destroy(&d);
	return rc;
}

/*
 * Records the outcome of item idx of job id if it is still pending (a
 * conditional update, which also keeps the item's chunks and bytes), drops
 * its body, and only then, when the item did change, adds to the job's
 * counters and renews its lease: run twice, it counts once. A process
 * killed between the two updates leaves the counters one item short;
 * job_recount makes them exact when the job finishes. Where updates are
 * not atomic the caller holds JOBS_MUTEX, which makes the conditional
 * update a real compare-and-set.
 */
static int item_record(struct sm_conn *c, const char *id, int64_t idx, int state,
		       const char *error, int64_t n_chunks, int64_t n_bytes, int64_t lease_ms,
		       struct rag_err *err)
{
	char *key = item_key(id, idx);
	int64_t now = sm_now_ms(), matched = 0;
	bson_t *q, *u;
	int rc;

	if (!key)
		return sm_oom(err);
	q = BCON_NEW("_id", BCON_UTF8(key), "state", BCON_INT32(0));
	u = BCON_NEW("$set", "{", "state", BCON_INT32(state), "error",
		     BCON_UTF8(error ? error : ""), "n_chunks", BCON_INT64(n_chunks), "n_bytes",
		     BCON_INT64(n_bytes), "}");
	rc = update(c, SM_JOB_ITEMS, q, u, 0, &matched, err);
	bson_destroy(q);
	bson_destroy(u);
	free(key);
	q = BCON_NEW("j", BCON_UTF8(id), "i", BCON_INT64(idx));
	if (!rc)
		rc = sm_delete_many(c, SM_JOB_BODIES, q, err);
	bson_destroy(q);
	if (rc || !matched)
		return rc;
	q = BCON_NEW("_id", BCON_UTF8(id));
	u = BCON_NEW("$inc", "{", "n_done", BCON_INT64(state == 1), "n_failed",
		     BCON_INT64(state == 2), "n_skipped", BCON_INT64(state == 3), "n_chunks",
		     BCON_INT64(n_chunks), "n_bytes", BCON_INT64(n_bytes), "}", "$set", "{",
		     "updated_at", BCON_INT64(now), "lease_until", BCON_INT64(now + lease_ms), "}");
	rc = update(c, SM_JOBS, q, u, 0, NULL, err);
	bson_destroy(q);
	bson_destroy(u);
	return rc;
}

/* RAG_ECONFLICT worded unless the job (found) is running. */
static int job_running(struct sm_conn *c, const char *id, struct rag_err *err)
{
	int job_st = 0;
	int rc = job_state(c, NULL, id, &job_st, err);

	if (!rc && job_st != STORE_JOB_RUNNING)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' is %s", id,
				 store_job_state_name((enum store_job_state)job_st));
	return rc;
}

int store_mongo_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
				const char *error, int64_t n_chunks, int64_t n_bytes,
				int64_t lease_ms, struct rag_err *err)
{
	struct sm_conn c;
	int rc;

	sm_conn_get(st->impl, &c, "finish job item");
	rc = weak_lock(&c, JOBS_MUTEX, err);
	if (!rc) {
		rc = job_running(&c, id, err);
		if (!rc)
			rc = item_record(&c, id, idx, state, error, n_chunks, n_bytes, lease_ms,
					 err);
		weak_unlock(&c, JOBS_MUTEX);
	}
	sm_conn_put(&c);
	return rc;
}

int sm_job_item_pending(struct sm_conn *c, const struct store_job_ref *job, struct rag_err *err)
{
	mongoc_collection_t *items;
	char *key = item_key(job->job_id, job->idx);
	bson_t *q, d;
	int rc;

	if (!key)
		return sm_oom(err);
	rc = job_running(c, job->job_id, err);
	if (rc) {
		free(key);
		return rc;
	}
	items = sm_coll(c, SM_JOB_ITEMS);
	q = BCON_NEW("_id", BCON_UTF8(key), "state", BCON_INT32(0));
	rc = sm_find_one(c, items, q, NULL, NULL, &d, err);
	if (rc == 1)
		bson_destroy(&d);
	if (rc == 0)
		rc = rag_err_set(err, RAG_EALREADY, NULL,
				 "job '%s' item %lld is no longer pending: it was applied already",
				 job->job_id, (long long)job->idx);
	bson_destroy(q);
	mongoc_collection_destroy(items);
	free(key);
	return rc < 0 ? rc : 0;
}

int sm_job_item_applied(struct sm_conn *c, const struct store_job_ref *job, int64_t n_chunks,
			struct rag_err *err)
{
	int rc = weak_lock(c, JOBS_MUTEX, err);

	if (rc)
		return rc;
	rc = item_record(c, job->job_id, job->idx, 1, NULL, n_chunks, job->n_bytes, job->lease_ms,
			 err);
	weak_unlock(c, JOBS_MUTEX);
	return rc;
}

/* Sets the job's counters from its items' own outcomes. Caller holds JOBS_MUTEX. */
static int job_recount(struct sm_conn *c, const char *id, struct rag_err *err)
{
	mongoc_collection_t *items = sm_coll(c, SM_JOB_ITEMS);
	bson_t *q = BCON_NEW("j", BCON_UTF8(id), "state", "{", "$ne", BCON_INT32(0), "}");
	bson_t *opts = BCON_NEW("projection", "{", "state", BCON_INT32(1), "n_chunks",
				BCON_INT32(1), "n_bytes", BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(items, q, opts, c->sm->primary);
	int64_t n[4] = { 0 }, chunks = 0, bytes = 0;
	const bson_t *d;
	bson_error_t e;
	bson_t *u;
	int rc = 0;

	while (mongoc_cursor_next(cur, &d)) {
		int64_t state = sm_get_int(d, "state");

		n[state >= 1 && state <= 3 ? state : 0]++;
		chunks += sm_get_int(d, "n_chunks");
		bytes += sm_get_int(d, "n_bytes");
	}
	if (mongoc_cursor_error(cur, &e))
		rc = sm_fail(c, &e, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(items);
	bson_destroy(q);
	bson_destroy(opts);
	if (rc)
		return rc;
	q = BCON_NEW("_id", BCON_UTF8(id));
	u = BCON_NEW("$set", "{", "n_done", BCON_INT64(n[1]), "n_failed", BCON_INT64(n[2]),
		     "n_skipped", BCON_INT64(n[3]), "n_chunks", BCON_INT64(chunks), "n_bytes",
		     BCON_INT64(bytes), "}");
	rc = update(c, SM_JOBS, q, u, 0, NULL, err);
	bson_destroy(q);
	bson_destroy(u);
	return rc;
}

int store_mongo_job_finish(struct store *st, const char *id, int state, const char *error,
			   struct rag_err *err)
{
	struct sm_conn c;
	int64_t now = sm_now_ms();
	bson_t *q = BCON_NEW("_id", BCON_UTF8(id), "state", BCON_INT32(STORE_JOB_RUNNING));
	bson_t *u = BCON_NEW("$set", "{", "state", BCON_INT32(state), "error",
			     BCON_UTF8(error ? error : ""), "finished_at", BCON_INT64(now),
			     "updated_at", BCON_INT64(now), "}");
	int rc;

	sm_conn_get(st->impl, &c, "finish job");
	rc = weak_lock(&c, JOBS_MUTEX, err);
	if (!rc) {
		rc = job_recount(&c, id, err);
		if (!rc)
			rc = update(&c, SM_JOBS, q, u, 0, NULL, err);
		weak_unlock(&c, JOBS_MUTEX);
	}
	bson_destroy(q);
	bson_destroy(u);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_job_cancel(struct store *st, const char *tenant, const char *id,
			   struct rag_err *err)
{
	struct sm_conn c;
	int64_t now = sm_now_ms(), matched = 0;
	bson_t *q = NULL, *u = NULL;
	int state = 0, rc;

	sm_conn_get(st->impl, &c, "cancel job");
	rc = weak_lock(&c, JOBS_MUTEX, err);
	if (rc)
		goto done;
	rc = job_state(&c, tenant, id, &state, err);
	if (!rc && state != STORE_JOB_QUEUED && state != STORE_JOB_RUNNING)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' already %s", id,
				 store_job_state_name((enum store_job_state)state));
	if (rc)
		goto out;
	q = BCON_NEW("_id", BCON_UTF8(id), "state", BCON_INT32(state));
	u = BCON_NEW("$set", "{", "state", BCON_INT32(STORE_JOB_CANCELLED), "finished_at",
		     BCON_INT64(now), "updated_at", BCON_INT64(now), "}");
	rc = update(&c, SM_JOBS, q, u, 0, &matched, err);
	if (!rc && !matched)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' changed meanwhile", id);
	bson_destroy(q);
	q = BCON_NEW("j", BCON_UTF8(id));
	if (!rc)
		rc = sm_delete_many(&c, SM_JOB_BODIES, q, err);
out:
	weak_unlock(&c, JOBS_MUTEX);
done:
	bson_destroy(q);
	bson_destroy(u);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_session_append(struct store *st, const char *tenant, const char *session_id,
			       const struct store_message *msgs, size_t n, struct rag_err *err)
{
	struct sm_conn c;
	char *key = sm_key2(tenant, session_id);
	int64_t now = sm_now_ms();
	bson_t q = BSON_INITIALIZER, u = BSON_INITIALIZER, push, msgs_doc, each, set, ins;
	mongoc_collection_t *sessions;
	bson_t opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	if (!key)
		return sm_oom(err);
	BSON_APPEND_UTF8(&q, "_id", key);
	BSON_APPEND_DOCUMENT_BEGIN(&u, "$push", &push);
	BSON_APPEND_DOCUMENT_BEGIN(&push, "msgs", &msgs_doc);
	bson_append_array_begin(&msgs_doc, "$each", -1, &each);
	for (size_t i = 0; i < n; i++) {
		char idx[16];
		const char *k;

		bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
		BCON_APPEND(&each, k, "{", "role", BCON_UTF8(msgs[i].role), "content",
			    BCON_UTF8(msgs[i].content), "at", BCON_INT64(now), "}");
	}
	bson_append_array_end(&msgs_doc, &each);
	bson_append_document_end(&push, &msgs_doc);
	bson_append_document_end(&u, &push);
	BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
	BSON_APPEND_INT64(&set, "updated_at", now);
	bson_append_document_end(&u, &set);
	BSON_APPEND_DOCUMENT_BEGIN(&u, "$setOnInsert", &ins);
	BSON_APPEND_UTF8(&ins, "tenant", tenant);
	BSON_APPEND_UTF8(&ins, "sid", session_id);
	BSON_APPEND_INT64(&ins, "created_at", now);
	bson_append_document_end(&u, &ins);
	BSON_APPEND_BOOL(&opts, "upsert", true);
	sm_conn_get(st->impl, &c, "append to session");
	sm_write_opts(c.sm, &opts);
	sessions = sm_coll(&c, SM_SESSIONS);
	rc = weak_lock(&c, key, err);
	if (!rc) {
		if (!mongoc_collection_update_one(sessions, &q, &u, &opts, NULL, &e))
			rc = sm_fail(&c, &e, err);
		weak_unlock(&c, key);
	}
	mongoc_collection_destroy(sessions);
	sm_conn_put(&c);
	bson_destroy(&opts);
	bson_destroy(&q);
	bson_destroy(&u);
	free(key);
	return rc;
}

int store_mongo_session_history(struct store *st, const char *tenant, const char *session_id,
				size_t limit, struct store_message **out, size_t *n_out,
				struct rag_err *err)
{
	struct sm_conn c;
	char *key = sm_key2(tenant, session_id);
	mongoc_collection_t *sessions;
	struct store_message *list = NULL;
	bson_t *q, d;
	bson_iter_t it, arr;
	size_t total = 0, skip, n = 0;
	int rc;

	if (!key)
		return sm_oom(err);
	sm_conn_get(st->impl, &c, "read session");
	sessions = sm_coll(&c, SM_SESSIONS);
	q = BCON_NEW("_id", BCON_UTF8(key));
	rc = sm_find_one(&c, sessions, q, NULL, NULL, &d, err);
	if (rc == 1) {
		rc = 0;
		if (bson_iter_init_find(&it, &d, "msgs") && BSON_ITER_HOLDS_ARRAY(&it) &&
		    bson_iter_recurse(&it, &arr))
			while (bson_iter_next(&arr))
				total++;
		skip = total > limit ? total - limit : 0;
		if (total - skip > 0) {
			list = calloc(total - skip, sizeof(*list));
			rc = list ? 0 : sm_oom(err);
		}
		if (!rc && list && bson_iter_init_find(&it, &d, "msgs") &&
		    bson_iter_recurse(&it, &arr)) {
			for (size_t i = 0; !rc && bson_iter_next(&arr); i++) {
				const uint8_t *data;
				uint32_t len;
				bson_t m;

				if (i < skip || !BSON_ITER_HOLDS_DOCUMENT(&arr))
					continue;
				bson_iter_document(&arr, &len, &data);
				bson_init_static(&m, data, len);
				list[n].at = sm_get_int(&m, "at");
				rc = sm_get_str(&m, "role", &list[n].role, err);
				if (!rc)
					rc = sm_get_str(&m, "content", &list[n].content, err);
				n++;
			}
		}
		bson_destroy(&d);
	}
	bson_destroy(q);
	mongoc_collection_destroy(sessions);
	free(key);
	sm_conn_put(&c);
	if (rc || n == 0) {
		store_messages_free(list, n);
		return rc;
	}
	*out = list;
	*n_out = n;
	return 0;
}
