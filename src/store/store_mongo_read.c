/*
 * The MongoDB store's reads: documents, hits, scans, the change log,
 * listings and filters.
 *
 * Liveness. Without transactions a reader can meet chunks that no document
 * points at (a put not yet committed, or the old chunks of a replace not
 * yet deleted). A chunk is live only while its document's [first, last]
 * range holds it, so every read of chunks first reads the ranges of the
 * documents concerned and drops the rest: a reader sees a document's old
 * chunks or its new ones, never a mix.
 *
 * Scans read the collection's seq before the ranges and the ranges before
 * the chunks: any write the scan half-saw has change entries after that
 * seq, which the follower then replays (see store_mongo.c).
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_filter.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

void sm_ranges_release(struct sm_ranges *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->r[i].meta_json);
		free(rs->r[i].key);
	}
	free(rs->r);
	memset(rs, 0, sizeof(*rs));
}

int sm_ranges_add(struct sm_ranges *rs, const bson_t *d, int want_meta, struct rag_err *err)
{
	struct sm_range *r;

	if (sm_get_int(d, "n") <= 0)
		return 0;
	if (rs->n == rs->alloc) {
		size_t alloc = rs->alloc ? 2 * rs->alloc : 64;
		struct sm_range *grown = reallocarray(rs->r, alloc, sizeof(*grown));

		if (!grown)
			return sm_oom(err);
		rs->r = grown;
		rs->alloc = alloc;
	}
	r = &rs->r[rs->n++];
	memset(r, 0, sizeof(*r));
	r->first = sm_get_int(d, "first");
	r->last = sm_get_int(d, "last");
	if (!want_meta)
		return 0;
	if (sm_get_str(d, "meta_json", (const char **)&r->meta_json, err) ||
	    sm_get_str(d, "_id", (const char **)&r->key, err))
		return RAG_ENOMEM;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct sm_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

void sm_ranges_sort(struct sm_ranges *rs)
{
	if (rs->n > 1)
		qsort(rs->r, rs->n, sizeof(*rs->r), range_cmp);
}

const struct sm_range *sm_range_find(const struct sm_ranges *rs, int64_t id)
{
	size_t lo = 0, hi = rs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rs->r[mid].last < id)
			lo = mid + 1;
		else if (rs->r[mid].first > id)
			hi = mid;
		else
			return &rs->r[mid];
	}
	return NULL;
}

/* Reads the ranges of the documents matching q (with meta/key when want_meta), sorted. */
static int load_ranges(struct sm_conn *c, const bson_t *q, int want_meta,
		       const mongoc_read_prefs_t *prefs, struct sm_ranges *rs, struct rag_err *err)
{
	mongoc_collection_t *docs = sm_coll(c, SM_DOCS);
	bson_t *opts = want_meta ? BCON_NEW("projection", "{", "first", BCON_INT32(1), "last",
					    BCON_INT32(1), "n", BCON_INT32(1), "meta_json",
					    BCON_INT32(1), "}")
				 : BCON_NEW("projection", "{", "first", BCON_INT32(1), "last",
					    BCON_INT32(1), "n", BCON_INT32(1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(docs, q, opts, prefs);
	const bson_t *d;
	bson_error_t e;
	int rc = 0;

	while (!rc && mongoc_cursor_next(cur, &d))
		rc = sm_ranges_add(rs, d, want_meta, err);
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(c, &e, err);
	mongoc_cursor_destroy(cur);
	bson_destroy(opts);
	mongoc_collection_destroy(docs);
	if (!rc)
		sm_ranges_sort(rs);
	return rc;
}

int store_mongo_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
			struct store_doc *out, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *docs;
	char *key = sm_key(collection_id, doc_id);
	bson_t *q, d;
	int rc;

	if (!key)
		return sm_oom(err);
	sm_conn_get(st->impl, &c, "get document");
	docs = sm_coll(&c, SM_DOCS);
	q = BCON_NEW("_id", BCON_UTF8(key));
	rc = sm_find_one(&c, docs, q, NULL, c.sm->search_prefs, &d, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	if (rc == 1) {
		out->n_chunks = (size_t)sm_get_int(&d, "n");
		out->created_at = sm_get_int(&d, "created_at");
		out->updated_at = sm_get_int(&d, "updated_at");
		rc = sm_get_str(&d, "d", &out->id, err);
		if (!rc)
			rc = sm_get_str(&d, "text", &out->text, err);
		if (!rc)
			rc = sm_get_str(&d, "meta_json", &out->metadata_json, err);
		if (!rc)
			rc = sm_get_str(&d, "hash", &out->content_hash, err);
		if (rc)
			store_doc_release(out);
		bson_destroy(&d);
	}
	bson_destroy(q);
	mongoc_collection_destroy(docs);
	free(key);
	sm_conn_put(&c);
	return rc;
}

/* Fills a hit from a chunk document and its document's metadata. */
int sm_read_hit(const bson_t *d, const char *meta_json, struct store_hit *h,
		struct rag_err *err)
{
	int rc;

	h->id = sm_get_int(d, "i");
	h->found = 1;
	h->ordinal = (size_t)sm_get_int(d, "o");
	h->start_byte = (size_t)sm_get_int(d, "sb");
	h->end_byte = (size_t)sm_get_int(d, "eb");
	h->page = (unsigned)sm_get_int(d, "page");
	rc = sm_get_str(d, "d", &h->document_id, err);
	if (!rc)
		rc = sm_get_str(d, "text", &h->text, err);
	if (!rc) {
		h->metadata_json = strdup(meta_json ? meta_json : "{}");
		rc = h->metadata_json ? 0 : sm_oom(err);
	}
	if (!rc)
		rc = sm_get_str(d, "section", &h->section, err);
	if (!rc)
		rc = sm_get_str(d, "hash", &h->hash, err);
	if (!rc)
		rc = sm_get_str(d, "model", &h->model, err);
	return rc;
}

/* Streams chunks matching q (sort/projection in opts) into each(ctx, chunk, its live range). */
typedef int (*chunk_fn)(void *ctx, const bson_t *chunk, const struct sm_range *r,
			struct rag_err *err);

static int each_live_chunk(struct sm_conn *c, const bson_t *q, const bson_t *opts,
			   const mongoc_read_prefs_t *prefs, const struct sm_ranges *rs,
			   chunk_fn each, void *ctx, struct rag_err *err)
{
	mongoc_collection_t *chunks = sm_coll(c, SM_CHUNKS);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(chunks, q, opts, prefs);
	const bson_t *d;
	bson_error_t e;
	int rc = 0;

	while (!rc && mongoc_cursor_next(cur, &d)) {
		const struct sm_range *r = sm_range_find(rs, sm_get_int(d, "i"));

		if (r)
			rc = each(ctx, d, r, err);
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(c, &e, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(chunks);
	return rc;
}

struct scan_ctx {
	store_row_fn cb;
	void *ctx;
	int dim;
	float *vec;
};

int sm_chunk_row(const bson_t *d, int dim, float *vec, store_row_fn cb, void *ctx,
		 struct rag_err *err)
{
	struct store_chunk_row row = { 0 };
	size_t vec_len = (size_t)dim * sizeof(float);
	const uint8_t *v;
	bson_iter_t it;
	uint32_t len, text_len = 0;

	row.id = sm_get_int(d, "i");
	v = sm_get_bin(d, "v", &len);
	if (!v || len != vec_len)
		return rag_err_set(err, RAG_EIO, NULL,
				   "store: chunk %lld has a %u-byte embedding, expected %zu"
				   " (database damaged?)", (long long)row.id, len, vec_len);
	memcpy(vec, v, vec_len); /* BSON binary has no alignment guarantee */
	row.vec = vec;
	row.text = "";
	if (bson_iter_init_find(&it, d, "text") && BSON_ITER_HOLDS_UTF8(&it))
		row.text = bson_iter_utf8(&it, &text_len);
	row.text_len = text_len;
	/* Borrowed from d, which outlives the callback (store.h). */
	row.document_id = "";
	if (bson_iter_init_find(&it, d, "d") && BSON_ITER_HOLDS_UTF8(&it))
		row.document_id = bson_iter_utf8(&it, NULL);
	return cb(ctx, &row);
}

static int row_cb(void *ctx, const bson_t *d, const struct sm_range *r, struct rag_err *err)
{
	struct scan_ctx *sc = ctx;

	(void)r;
	return sm_chunk_row(d, sc->dim, sc->vec, sc->cb, sc->ctx, err);
}

/* Feeds cb the live chunk vectors of the collection, all of them or the range [first, last]. */
static int scan_vectors(struct store *st, int64_t cid, int ranged, int64_t first, int64_t last,
			store_row_fn cb, void *ctx, int64_t *seq_out, struct rag_err *err)
{
	struct sm_conn c;
	struct sm_ranges rs = { 0 };
	struct scan_ctx sc = { cb, ctx, 0, NULL };
	bson_t *dq, *q, *opts;
	int64_t seq = 0;
	int rc;

	if (ranged) {
		dq = BCON_NEW("c", BCON_INT64(cid), "first", "{", "$lte", BCON_INT64(last), "}",
			      "last", "{", "$gte", BCON_INT64(first), "}");
		q = BCON_NEW("c", BCON_INT64(cid), "i", "{", "$gte", BCON_INT64(first), "$lte",
			     BCON_INT64(last), "}");
		opts = BCON_NEW("sort", "{", "i", BCON_INT32(1), "}", "projection", "{", "i",
				BCON_INT32(1), "v", BCON_INT32(1), "text", BCON_INT32(1), "d",
				BCON_INT32(1), "}");
	} else {
		dq = BCON_NEW("c", BCON_INT64(cid));
		q = BCON_NEW("c", BCON_INT64(cid));
		opts = BCON_NEW("projection", "{", "i", BCON_INT32(1), "v", BCON_INT32(1), "text",
				BCON_INT32(1), "d", BCON_INT32(1), "}");
	}
	sm_conn_get(st->impl, &c, ranged ? "read chunk vectors" : "scan chunks");
	rc = sm_coll_state(&c, cid, &sc.dim, &seq, err);
	if (!rc) {
		sc.vec = malloc((size_t)sc.dim * sizeof(float) + 1);
		rc = sc.vec ? 0 : sm_oom(err);
	}
	if (!rc)
		rc = load_ranges(&c, dq, 0, c.sm->primary, &rs, err);
	if (!rc && rs.n)
		rc = each_live_chunk(&c, q, opts, c.sm->primary, &rs, row_cb, &sc, err);
	if (!rc && seq_out)
		*seq_out = seq;
	free(sc.vec);
	sm_ranges_release(&rs);
	bson_destroy(dq);
	bson_destroy(q);
	bson_destroy(opts);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_chunks_scan(struct store *st, int64_t collection_id, store_row_fn cb,
			    void *ctx, int64_t *seq_out, struct rag_err *err)
{
	return scan_vectors(st, collection_id, 0, 0, 0, cb, ctx, seq_out, err);
}

int store_mongo_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			      int64_t last_id, store_row_fn cb, void *ctx, struct rag_err *err)
{
	struct store_mongo *sm = st->impl;

	if (sm->point_reads)
		return sm_chunk_vectors_by_id(st, collection_id, first_id, last_id, cb, ctx, err);
	return scan_vectors(st, collection_id, 1, first_id, last_id, cb, ctx, NULL, err);
}

int store_mongo_changes(struct store *st, int64_t collection_id, int64_t since_seq,
			size_t limit, struct store_change *out, size_t *n_out,
			struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *changes = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t *q = NULL, *opts = NULL;
	const bson_t *d;
	bson_error_t e;
	int64_t seq = 0;
	size_t n = 0;
	int dim, rc;

	sm_conn_get(st->impl, &c, "read changes");
	/* Up to the collection's seq only: entries past it are a write not finished yet. */
	rc = sm_coll_state(&c, collection_id, &dim, &seq, err);
	if (rc || seq <= since_seq || limit == 0)
		goto out;
	changes = sm_coll(&c, SM_CHANGES);
	q = BCON_NEW("c", BCON_INT64(collection_id), "s", "{", "$gt", BCON_INT64(since_seq),
		     "$lte", BCON_INT64(seq), "}");
	opts = BCON_NEW("sort", "{", "s", BCON_INT32(1), "}", "limit",
			BCON_INT64(limit > INT64_MAX ? INT64_MAX : (int64_t)limit));
	cur = mongoc_collection_find_with_opts(changes, q, opts, c.sm->primary);
	while (!rc && n < limit && mongoc_cursor_next(cur, &d)) {
		struct store_change *ch = &out[n];

		ch->seq = sm_get_int(d, "s");
		ch->op = (enum store_change_op)sm_get_int(d, "op");
		ch->first_chunk = sm_get_int(d, "first");
		ch->last_chunk = sm_get_int(d, "last");
		ch->at = sm_get_int(d, "at");
		rc = sm_get_str(d, "d", &ch->document_id, err);
		if (!rc)
			n++;
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(&c, &e, err);
out:
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(changes);
	bson_destroy(q);
	bson_destroy(opts);
	sm_conn_put(&c);
	if (rc)
		store_changes_release(out, n);
	else
		*n_out = n;
	return rc;
}

int store_mongo_doc_hash(struct store *st, int64_t collection_id, const char *doc_id,
			 char **hash_out, size_t *n_chunks_out, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *docs;
	char *key = sm_key(collection_id, doc_id);
	bson_t *q, *opts, d;
	int rc;

	if (!key)
		return sm_oom(err);
	sm_conn_get(st->impl, &c, "read document hash");
	docs = sm_coll(&c, SM_DOCS);
	q = BCON_NEW("_id", BCON_UTF8(key));
	opts = BCON_NEW("projection", "{", "hash", BCON_INT32(1), "n", BCON_INT32(1), "}");
	rc = sm_find_one(&c, docs, q, opts, NULL, &d, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	if (rc == 1) {
		*n_chunks_out = (size_t)sm_get_int(&d, "n");
		rc = sm_get_str(&d, "hash", (const char **)hash_out, err);
		bson_destroy(&d);
	}
	bson_destroy(q);
	bson_destroy(opts);
	mongoc_collection_destroy(docs);
	free(key);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_doc_list(struct store *st, int64_t collection_id,
			 const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
			 struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *docs = NULL;
	mongoc_cursor_t *cur = NULL;
	struct store_doc *list = NULL;
	bson_t query = BSON_INITIALIZER, sub;
	bson_t *opts = BCON_NEW("sort", "{", "d", BCON_INT32(1), "}", "limit",
				BCON_INT64((int64_t)q->limit), "projection", "{", "text",
				BCON_INT32(0), "meta", BCON_INT32(0), "}");
	const bson_t *d;
	bson_error_t e;
	size_t n = 0;
	int rc = 0;

	sm_conn_get(st->impl, &c, "list documents");
	BSON_APPEND_INT64(&query, "c", collection_id);
	BSON_APPEND_DOCUMENT_BEGIN(&query, "d", &sub);
	BSON_APPEND_UTF8(&sub, "$gt", q->after_id ? q->after_id : "");
	bson_append_document_end(&query, &sub);
	if (q->filter)
		rc = store_mongo_filter_bson(&query, q->filter, err);
	list = calloc(q->limit ? q->limit : 1, sizeof(*list));
	if (!rc && !list)
		rc = sm_oom(err);
	if (rc)
		goto out;
	docs = sm_coll(&c, SM_DOCS);
	cur = mongoc_collection_find_with_opts(docs, &query, opts, c.sm->search_prefs);
	while (!rc && n < q->limit && mongoc_cursor_next(cur, &d)) {
		struct store_doc *doc = &list[n++];

		doc->n_chunks = (size_t)sm_get_int(d, "n");
		doc->created_at = sm_get_int(d, "created_at");
		doc->updated_at = sm_get_int(d, "updated_at");
		rc = sm_get_str(d, "d", &doc->id, err);
		if (!rc)
			rc = sm_get_str(d, "text", &doc->text, err); /* not projected: "" */
		if (!rc)
			rc = sm_get_str(d, "meta_json", &doc->metadata_json, err);
		if (!rc)
			rc = sm_get_str(d, "hash", &doc->content_hash, err);
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(&c, &e, err);
out:
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(docs);
	bson_destroy(&query);
	bson_destroy(opts);
	sm_conn_put(&c);
	if (rc || n == 0) {
		store_doc_list_free(list, n);
		return rc;
	}
	*out = list;
	*n_out = n;
	return 0;
}

struct doc_chunks_ctx {
	struct store_hit *hits;
	size_t n, cap;
};

static int doc_chunk_cb(void *ctx, const bson_t *d, const struct sm_range *r, struct rag_err *err)
{
	struct doc_chunks_ctx *dc = ctx;

	if (dc->n == dc->cap)
		return 0; /* more rows than the range holds cannot happen: ids are unique */
	return sm_read_hit(d, r->meta_json, &dc->hits[dc->n++], err);
}

int store_mongo_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
			   struct store_hit **out, size_t *n_out, struct rag_err *err)
{
	struct sm_conn c;
	struct sm_ranges rs = { 0 };
	struct doc_chunks_ctx dc = { 0 };
	char *key = sm_key(collection_id, doc_id);
	bson_t *dq = NULL, *q = NULL, *opts = NULL;
	int rc = 0;

	if (!key)
		return sm_oom(err);
	sm_conn_get(st->impl, &c, "read document chunks");
	dq = BCON_NEW("_id", BCON_UTF8(key));
	rc = load_ranges(&c, dq, 1, c.sm->search_prefs, &rs, err);
	if (!rc && rs.n == 0) {
		/* A document with no range is one that does not exist (puts need a chunk). */
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "document '%s' not found", doc_id);
	}
	if (rc)
		goto out;
	dc.cap = (size_t)(rs.r[0].last - rs.r[0].first + 1);
	dc.hits = calloc(dc.cap, sizeof(*dc.hits));
	if (!dc.hits) {
		rc = sm_oom(err);
		goto out;
	}
	q = BCON_NEW("c", BCON_INT64(collection_id), "i", "{", "$gte",
		     BCON_INT64(rs.r[0].first), "$lte", BCON_INT64(rs.r[0].last), "}");
	opts = BCON_NEW("sort", "{", "i", BCON_INT32(1), "}", "projection", "{", "v",
			BCON_INT32(0), "}");
	rc = each_live_chunk(&c, q, opts, c.sm->search_prefs, &rs, doc_chunk_cb, &dc, err);
out:
	if (rc) {
		store_hits_release(dc.hits, dc.n);
		free(dc.hits);
	} else {
		*out = dc.hits;
		*n_out = dc.n;
	}
	sm_ranges_release(&rs);
	bson_destroy(dq);
	bson_destroy(q);
	bson_destroy(opts);
	free(key);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_filter_ids(struct store *st, int64_t collection_id,
			   const struct store_filter *f, int64_t **ids_out, size_t *n_out,
			   struct rag_err *err)
{
	struct sm_conn c;
	struct sm_ranges rs = { 0 };
	bson_t q = BSON_INITIALIZER;
	int64_t *ids = NULL;
	size_t n = 0, total = 0;
	int rc;

	sm_conn_get(st->impl, &c, "filter documents");
	BSON_APPEND_INT64(&q, "c", collection_id);
	rc = store_mongo_filter_bson(&q, f, err);
	if (!rc)
		rc = load_ranges(&c, &q, 0, c.sm->search_prefs, &rs, err);
	for (size_t i = 0; !rc && i < rs.n; i++)
		total += (size_t)(rs.r[i].last - rs.r[i].first + 1);
	if (!rc && total) {
		ids = malloc(total * sizeof(*ids));
		if (!ids)
			rc = sm_oom(err);
	}
	/* The ranges are sorted and disjoint: their ids come out ascending. */
	for (size_t i = 0; !rc && ids && i < rs.n; i++)
		for (int64_t id = rs.r[i].first; id <= rs.r[i].last; id++)
			ids[n++] = id;
	sm_ranges_release(&rs);
	bson_destroy(&q);
	sm_conn_put(&c);
	if (rc) {
		free(ids);
		return rc;
	}
	*ids_out = ids;
	*n_out = n;
	return 0;
}
