/*
 * The MongoDB store's document writes (put, delete) and the recovery of a
 * writer that died half-way. store_mongo.c describes the protocol; in
 * short, under the collection's write lock:
 *
 *   put:    new chunks (invisible) -> intent -> document replaced (commit)
 *           -> change entries -> seq -> old chunks deleted
 *           -> job item done -> unlock
 *   delete: intent -> document deleted (commit) -> change entry -> seq
 *           -> chunks deleted -> unlock
 *
 * Everything after the commit point is roll_forward(), which is idempotent
 * and which the recovery runs again from the intent when the commit point
 * was passed; before it, the recovery deletes the new chunks.
 *
 * A put that applies a job item (store_put.job) names the item in its
 * intent, and roll_forward marks it done (only if still pending, counted
 * once: store_mongo_jobs.c). So once the document is committed the item is
 * done before anyone else writes to the collection: either the put goes
 * on to mark it, or the put died and the next writer's sm_lock recovers
 * its intent first. Before writing, a put checks (under the lock, after
 * that recovery) that its item is still pending and its job running, and
 * is refused otherwise (RAG_EALREADY, RAG_ECONFLICT): a job never applies
 * an item twice, so it never overwrites what a client wrote to that
 * document after the item's first application. A cancel that lands
 * between that check and the commit lets the item through, as if the
 * cancel had come a moment later.
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define SM_INSERT_BATCH 512 /* chunk documents per insert_many: bounds the BSON built at once */

/* What a write is about to do, as recorded in the lock document. */
struct sm_intent {
	int put;             /* 1 put, 0 delete */
	const char *key;     /* the document's _id */
	const char *doc_id;
	int64_t old_first, old_last, old_n; /* the chunks replaced or deleted (old_n 0: none) */
	int64_t new_first, new_last;        /* a put's new chunks */
	int64_t seq;                        /* the collection's seq before the write */
	int64_t at;
	struct store_job_ref job;           /* the job item a put applies; job_id NULL: none */
};

static bson_t *intent_bson(const struct sm_intent *in)
{
	bson_t *b = BCON_NEW("put", BCON_BOOL(in->put), "k", BCON_UTF8(in->key), "d",
			     BCON_UTF8(in->doc_id), "of", BCON_INT64(in->old_first), "ol",
			     BCON_INT64(in->old_last), "on", BCON_INT64(in->old_n), "nf",
			     BCON_INT64(in->new_first), "nl", BCON_INT64(in->new_last), "s",
			     BCON_INT64(in->seq), "at", BCON_INT64(in->at));

	if (in->job.job_id)
		BCON_APPEND(b, "job", "{", "id", BCON_UTF8(in->job.job_id), "idx",
			    BCON_INT64(in->job.idx), "bytes", BCON_INT64(in->job.n_bytes), "lease",
			    BCON_INT64(in->job.lease_ms), "}");
	return b;
}

/* Strings stay borrowed from b. */
static void intent_read(const bson_t *b, struct sm_intent *in)
{
	bson_iter_t it;

	memset(in, 0, sizeof(*in));
	in->put = (int)sm_get_int(b, "put");
	in->key = bson_iter_init_find(&it, b, "k") && BSON_ITER_HOLDS_UTF8(&it)
			  ? bson_iter_utf8(&it, NULL) : "";
	in->doc_id = bson_iter_init_find(&it, b, "d") && BSON_ITER_HOLDS_UTF8(&it)
			     ? bson_iter_utf8(&it, NULL) : "";
	in->old_first = sm_get_int(b, "of");
	in->old_last = sm_get_int(b, "ol");
	in->old_n = sm_get_int(b, "on");
	in->new_first = sm_get_int(b, "nf");
	in->new_last = sm_get_int(b, "nl");
	in->seq = sm_get_int(b, "s");
	in->at = sm_get_int(b, "at");
	if (bson_iter_init_find(&it, b, "job") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		const uint8_t *data;
		uint32_t len;
		bson_t job;
		bson_iter_t f;

		bson_iter_document(&it, &len, &data);
		bson_init_static(&job, data, len);
		if (bson_iter_init_find(&f, &job, "id") && BSON_ITER_HOLDS_UTF8(&f))
			in->job.job_id = bson_iter_utf8(&f, NULL);
		in->job.idx = sm_get_int(&job, "idx");
		in->job.n_bytes = sm_get_int(&job, "bytes");
		in->job.lease_ms = sm_get_int(&job, "lease");
	}
}

/* Writes one change entry; replaces an identical one a dead writer left. */
static int write_change(struct sm_conn *c, int64_t cid, const struct store_change *ch,
			struct rag_err *err)
{
	mongoc_collection_t *changes = sm_coll(c, SM_CHANGES);
	char num[24], *key;
	bson_t *q = NULL, *doc = NULL, opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	snprintf(num, sizeof(num), "%lld", (long long)ch->seq);
	key = sm_key(cid, num);
	if (!key) {
		mongoc_collection_destroy(changes);
		return sm_oom(err);
	}
	q = BCON_NEW("_id", BCON_UTF8(key));
	doc = BCON_NEW("_id", BCON_UTF8(key), "c", BCON_INT64(cid), "s", BCON_INT64(ch->seq), "op",
		       BCON_INT32((int32_t)ch->op), "d", BCON_UTF8(ch->document_id), "first",
		       BCON_INT64(ch->first_chunk), "last", BCON_INT64(ch->last_chunk), "at",
		       BCON_INT64(ch->at));
	BSON_APPEND_BOOL(&opts, "upsert", true);
	sm_write_opts(c->sm, &opts);
	if (!mongoc_collection_replace_one(changes, q, doc, &opts, NULL, &e))
		rc = sm_fail(c, &e, err);
	bson_destroy(&opts);
	bson_destroy(q);
	bson_destroy(doc);
	free(key);
	mongoc_collection_destroy(changes);
	return rc;
}

/* Deletes chunks first..last of the collection (a put's or a document's range). */
static int delete_chunks(struct sm_conn *c, int64_t cid, int64_t first, int64_t last,
			 struct rag_err *err)
{
	bson_t *q = BCON_NEW("c", BCON_INT64(cid), "i", "{", "$gte", BCON_INT64(first), "$lte",
			     BCON_INT64(last), "}");
	int rc = sm_delete_many(c, SM_CHUNKS, q, err);

	bson_destroy(q);
	return rc;
}

/* Advances the collection's seq to at least seq (idempotent). */
static int set_seq(struct sm_conn *c, int64_t cid, int64_t seq, struct rag_err *err)
{
	mongoc_collection_t *colls = sm_coll(c, SM_COLLECTIONS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid), "seq", "{", "$lt", BCON_INT64(seq), "}");
	bson_t *u = BCON_NEW("$set", "{", "seq", BCON_INT64(seq), "}");
	int rc = sm_find_modify(c, colls, q, u, 0, 0, NULL, NULL, err);

	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(colls);
	return rc;
}

/* Everything after the commit point; *seq_out gets the collection's new seq. */
static int roll_forward(struct sm_conn *c, int64_t cid, const struct sm_intent *in,
			int64_t *seq_out, struct rag_err *err)
{
	struct store_change ch = { .document_id = in->doc_id, .at = in->at };
	int64_t seq = in->seq;
	int rc = 0;

	if (in->old_n > 0) {
		ch.seq = ++seq;
		ch.op = STORE_CHANGE_DELETE;
		ch.first_chunk = in->old_first;
		ch.last_chunk = in->old_last;
		rc = write_change(c, cid, &ch, err);
	}
	if (!rc && in->put) {
		ch.seq = ++seq;
		ch.op = STORE_CHANGE_PUT;
		ch.first_chunk = in->new_first;
		ch.last_chunk = in->new_last;
		rc = write_change(c, cid, &ch, err);
	}
	if (!rc)
		rc = set_seq(c, cid, seq, err);
	if (!rc && in->old_n > 0)
		rc = delete_chunks(c, cid, in->old_first, in->old_last, err);
	if (!rc && in->put && in->job.job_id)
		rc = sm_job_item_applied(c, &in->job, in->new_last - in->new_first + 1, err);
	if (!rc && seq_out)
		*seq_out = seq;
	return rc;
}

/* The document's stored chunk range, n and created_at: 1 when it exists, 0 not, or an error. */
static int doc_state(struct sm_conn *c, const char *key, int64_t *first, int64_t *last,
		     int64_t *n, int64_t *created_at, struct rag_err *err)
{
	mongoc_collection_t *docs = sm_coll(c, SM_DOCS);
	bson_t *q = BCON_NEW("_id", BCON_UTF8(key));
	bson_t *opts = BCON_NEW("projection", "{", "first", BCON_INT32(1), "last", BCON_INT32(1),
				"n", BCON_INT32(1), "created_at", BCON_INT32(1), "}");
	bson_t d;
	int rc = sm_find_one(c, docs, q, opts, NULL, &d, err);

	if (rc == 1) {
		*first = sm_get_int(&d, "first");
		*last = sm_get_int(&d, "last");
		*n = sm_get_int(&d, "n");
		*created_at = sm_get_int(&d, "created_at");
		bson_destroy(&d);
	}
	bson_destroy(q);
	bson_destroy(opts);
	mongoc_collection_destroy(docs);
	return rc;
}

int store_mongo_recover(struct sm_conn *c, int64_t cid, const bson_t *intent,
			struct rag_err *err)
{
	struct sm_intent in;
	int64_t first = 0, last = 0, n = 0, created = 0;
	int rc;

	intent_read(intent, &in);
	rc = doc_state(c, in.key, &first, &last, &n, &created, err);
	if (rc < 0)
		return rc;
	/* Committed: a put's document points at its new chunks, a delete's is gone. */
	if (in.put ? rc == 1 && first == in.new_first : rc == 0)
		return roll_forward(c, cid, &in, NULL, err);
	return in.put ? delete_chunks(c, cid, in.new_first, in.new_last, err) : 0;
}

static bson_t *chunk_bson(int64_t cid, const char *key, const struct store_put *put, size_t i,
			  int64_t id)
{
	const struct store_chunk *ch = &put->chunks[i];
	bson_t *b = bson_new();
	char id_key[48];

	/* _id "cid:id", a string: the one key FerretDB looks up by index (store_mongo_hits.c). */
	snprintf(id_key, sizeof(id_key), "%lld:%lld", (long long)cid, (long long)id);
	BSON_APPEND_UTF8(b, "_id", id_key);
	BSON_APPEND_INT64(b, "i", id);
	BSON_APPEND_INT64(b, "c", cid);
	BSON_APPEND_UTF8(b, "k", key);
	BSON_APPEND_UTF8(b, "d", put->doc->id);
	BSON_APPEND_INT64(b, "o", (int64_t)i);
	BSON_APPEND_INT64(b, "sb", (int64_t)ch->start_byte);
	BSON_APPEND_INT64(b, "eb", (int64_t)ch->end_byte);
	BSON_APPEND_UTF8(b, "text", ch->text);
	/* Little-endian float32, as the SQLite store keeps them: one copy, no conversion. */
	BSON_APPEND_BINARY(b, "v", BSON_SUBTYPE_BINARY,
			   (const uint8_t *)(put->vecs + i * (size_t)put->dim),
			   (uint32_t)((size_t)put->dim * sizeof(float)));
	BSON_APPEND_INT64(b, "page", ch->page);
	BSON_APPEND_UTF8(b, "section", ch->section ? ch->section : "");
	BSON_APPEND_UTF8(b, "hash", ch->hash ? ch->hash : "");
	BSON_APPEND_UTF8(b, "model", put->model ? put->model : "");
	return b;
}

static int insert_chunks(struct sm_conn *c, int64_t cid, const char *key,
			 const struct store_put *put, int64_t first, struct rag_err *err)
{
	mongoc_collection_t *chunks = sm_coll(c, SM_CHUNKS);
	bson_t *batch[SM_INSERT_BATCH];
	bson_t opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	sm_write_opts(c->sm, &opts);
	for (size_t i = 0; i < put->n_chunks && !rc;) {
		size_t n = 0;

		while (n < SM_INSERT_BATCH && i < put->n_chunks) {
			batch[n] = chunk_bson(cid, key, put, i, first + (int64_t)i);
			n++;
			i++;
		}
		if (!mongoc_collection_insert_many(chunks, (const bson_t **)batch, n, &opts, NULL,
						   &e))
			rc = sm_fail(c, &e, err);
		for (size_t j = 0; j < n; j++)
			bson_destroy(batch[j]);
	}
	bson_destroy(&opts);
	mongoc_collection_destroy(chunks);
	return rc;
}

/* The commit point of a put: the document, pointing at its new chunks, in one replace. */
static int flip_doc(struct sm_conn *c, int64_t cid, const struct store_put *put,
		    const struct sm_intent *in, int64_t created_at, struct rag_err *err)
{
	const struct store_doc *doc = put->doc;
	const char *meta_json = doc->metadata_json ? doc->metadata_json : "{}";
	mongoc_collection_t *docs = sm_coll(c, SM_DOCS);
	bson_t *q = BCON_NEW("_id", BCON_UTF8(in->key));
	bson_t *d = bson_new(), meta, opts = BSON_INITIALIZER;
	bson_error_t e;
	int rc = 0;

	BSON_APPEND_UTF8(d, "_id", in->key);
	BSON_APPEND_INT64(d, "c", cid);
	BSON_APPEND_UTF8(d, "d", doc->id);
	BSON_APPEND_UTF8(d, "text", doc->text);
	/* meta: the metadata as BSON, for filters; meta_json: the client's text, returned as is. */
	BSON_APPEND_DOCUMENT_BEGIN(d, "meta", &meta);
	rc = store_mongo_meta_bson(&meta, meta_json);
	bson_append_document_end(d, &meta);
	if (rc) {
		rc = rag_err_set(err, rc, "metadata",
				 "document '%s': its metadata cannot be stored as BSON", doc->id);
		goto out;
	}
	BSON_APPEND_UTF8(d, "meta_json", meta_json);
	BSON_APPEND_UTF8(d, "hash", doc->content_hash ? doc->content_hash : "");
	if (doc->blocks) /* the structure re-chunking needs; absent: none kept */
		BSON_APPEND_UTF8(d, "blocks", doc->blocks);
	BSON_APPEND_INT64(d, "n", (int64_t)put->n_chunks);
	BSON_APPEND_INT64(d, "first", in->new_first);
	BSON_APPEND_INT64(d, "last", in->new_last);
	BSON_APPEND_INT64(d, "created_at", created_at);
	BSON_APPEND_INT64(d, "updated_at", in->at);
	BSON_APPEND_BOOL(&opts, "upsert", true);
	sm_write_opts(c->sm, &opts);
	if (!mongoc_collection_replace_one(docs, q, d, &opts, NULL, &e))
		rc = sm_fail(c, &e, err);
out:
	bson_destroy(&opts);
	bson_destroy(q);
	bson_destroy(d);
	mongoc_collection_destroy(docs);
	return rc;
}

/*
 * After a failure past the intent (the commit may or may not have reached
 * the server): recover now; if even that fails, keep the lock document so
 * that the next writer recovers once the lease expires.
 */
static void fail_after_intent(struct sm_conn *c, int64_t cid, const struct sm_intent *in)
{
	bson_t *b = intent_bson(in);

	if (store_mongo_recover(c, cid, b, NULL) == 0)
		sm_unlock(c, cid);
	else
		pthread_mutex_unlock(&c->sm->write_lock);
	bson_destroy(b);
}

int store_mongo_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
			struct store_put_result *res, struct rag_err *err)
{
	struct sm_conn c;
	struct sm_intent in = { .put = 1, .doc_id = put->doc->id, .at = sm_now_ms() };
	char *key = sm_key(collection_id, put->doc->id);
	int64_t created_at = in.at, new_seq = 0;
	bson_t *ib = NULL;
	int dim = 0, exists, rc;

	if (!key)
		return sm_oom(err);
	in.key = key;
	if (strlen(put->doc->text) > SM_DOC_TEXT_MAX) {
		free(key);
		return rag_err_set(err, RAG_ETOOBIG, NULL,
				   "document '%s': its text is over the MongoDB store's %d bytes",
				   put->doc->id, SM_DOC_TEXT_MAX);
	}
	sm_conn_get(st->impl, &c, "put document");
	rc = sm_lock(&c, collection_id, err);
	if (rc < 0)
		goto out;
	rc = sm_coll_state_write(&c, collection_id, &dim, &in.seq, err);
	if (!rc && dim != put->dim)
		rc = rag_err_set(err, RAG_EINVAL, NULL,
				 "document '%s': embeddings have %d dimensions, the collection %d",
				 put->doc->id, put->dim, dim);
	if (!rc && put->job) {
		/* After sm_lock's recovery: a dead writer's application of it counts. */
		rc = sm_job_item_pending(&c, put->job, err);
		in.job = *put->job;
	}
	exists = rc ? 0 : doc_state(&c, key, &in.old_first, &in.old_last, &in.old_n, &created_at,
				    err);
	if (exists < 0)
		rc = exists;
	if (!rc)
		rc = sm_alloc(&c, "chunk_id", (int64_t)put->n_chunks, &in.new_last, err);
	if (rc)
		goto unlock;
	in.new_first = in.new_last - (int64_t)put->n_chunks + 1;
	rc = insert_chunks(&c, collection_id, key, put, in.new_first, err);
	if (!rc) {
		ib = intent_bson(&in);
		rc = sm_lock_intent(&c, collection_id, ib, err);
	}
	if (rc) {
		delete_chunks(&c, collection_id, in.new_first, in.new_last, NULL);
		goto unlock;
	}
	rc = flip_doc(&c, collection_id, put, &in, created_at, err);
	if (!rc)
		rc = roll_forward(&c, collection_id, &in, &new_seq, err);
	if (rc) {
		fail_after_intent(&c, collection_id, &in);
		goto out;
	}
	res->first_chunk_id = in.new_first;
	res->last_chunk_id = in.new_last;
	res->seq = new_seq;
	res->replaced = exists == 1;
unlock:
	sm_unlock(&c, collection_id);
out:
	bson_destroy(ib);
	free(key);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
			   int64_t *seq_out, struct rag_err *err)
{
	struct sm_conn c;
	struct sm_intent in = { .put = 0, .doc_id = doc_id, .at = sm_now_ms() };
	char *key = sm_key(collection_id, doc_id);
	mongoc_collection_t *docs = NULL;
	bson_t *ib = NULL, *q = NULL, opts = BSON_INITIALIZER;
	bson_error_t e;
	int64_t created, seq = 0;
	int dim, rc;

	if (!key)
		return sm_oom(err);
	in.key = key;
	sm_conn_get(st->impl, &c, "delete document");
	rc = sm_lock(&c, collection_id, err);
	if (rc < 0)
		goto out;
	rc = sm_coll_state_write(&c, collection_id, &dim, &in.seq, err);
	if (!rc)
		rc = doc_state(&c, key, &in.old_first, &in.old_last, &in.old_n, &created, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	if (rc < 0)
		goto unlock;
	rc = 0;
	ib = intent_bson(&in);
	rc = sm_lock_intent(&c, collection_id, ib, err);
	if (rc)
		goto unlock;
	docs = sm_coll(&c, SM_DOCS);
	q = BCON_NEW("_id", BCON_UTF8(key));
	sm_write_opts(c.sm, &opts);
	if (!mongoc_collection_delete_one(docs, q, &opts, NULL, &e))
		rc = sm_fail(&c, &e, err);
	if (!rc)
		rc = roll_forward(&c, collection_id, &in, &seq, err);
	if (rc) {
		fail_after_intent(&c, collection_id, &in);
		goto out;
	}
	*seq_out = seq;
unlock:
	sm_unlock(&c, collection_id);
out:
	bson_destroy(ib);
	bson_destroy(q);
	bson_destroy(&opts);
	mongoc_collection_destroy(docs);
	free(key);
	sm_conn_put(&c);
	return rc;
}
