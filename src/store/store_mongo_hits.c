/*
 * The MongoDB store's reads of chunks by id and by hash: hydrating search
 * hits, replaying a PUT change (a range of chunk ids) and reusing vectors
 * by content hash. Each is: the chunks, then the documents that own them
 * (their live ranges, see store_mongo_read.c), then only live chunks.
 *
 * Key sets are read with one $in query, or, on servers that plan anything
 * but an equality on a string _id as a collection scan (FerretDB 1.24 on
 * SQLite: 3.6 s to hydrate 10 hits among 4,000 chunks with $in, and 1.6 s
 * for one {_id: <number>}; bench/RESULTS.md), with one point read per key
 * (store_mongo->point_reads). That is why chunk _ids are "cid:id" strings.
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

typedef int (*doc_fn)(void *ctx, const bson_t *doc, struct rag_err *err);

/* Runs q on coll, handing each document to each. */
static int run_find(struct sm_conn *c, mongoc_collection_t *coll, const bson_t *q,
		    const bson_t *opts, const mongoc_read_prefs_t *prefs, doc_fn each, void *ctx,
		    struct rag_err *err)
{
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, opts, prefs);
	const bson_t *d;
	bson_error_t e;
	int rc = 0;

	while (!rc && mongoc_cursor_next(cur, &d))
		rc = each(ctx, d, err);
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(c, &e, err);
	mongoc_cursor_destroy(cur);
	return rc;
}

/*
 * The documents of coll_name matching base (may be NULL) whose field is one
 * of the n values, handed to each: one $in query, or a query per value.
 */
static int find_in(struct sm_conn *c, const char *coll_name, int64_t cid, const char *field,
		   const bson_value_t *values, size_t n, const bson_t *opts,
		   const mongoc_read_prefs_t *prefs, int one_query, doc_fn each, void *ctx,
		   struct rag_err *err)
{
	mongoc_collection_t *coll = sm_coll(c, coll_name);
	int rc = 0;

	if (c->sm->point_reads && !one_query) {
		for (size_t i = 0; i < n && !rc; i++) {
			bson_t q = BSON_INITIALIZER;

			if (cid >= 0)
				BSON_APPEND_INT64(&q, "c", cid);
			bson_append_value(&q, field, -1, &values[i]);
			rc = run_find(c, coll, &q, opts, prefs, each, ctx, err);
			bson_destroy(&q);
		}
	} else if (n > 0) {
		bson_t q = BSON_INITIALIZER, in, arr;

		if (cid >= 0)
			BSON_APPEND_INT64(&q, "c", cid);
		bson_append_document_begin(&q, field, -1, &in);
		bson_append_array_begin(&in, "$in", -1, &arr);
		for (size_t i = 0; i < n; i++) {
			char idx[16];
			const char *k;

			bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
			bson_append_value(&arr, k, -1, &values[i]);
		}
		bson_append_array_end(&in, &arr);
		bson_append_document_end(&q, &in);
		rc = run_find(c, coll, &q, opts, prefs, each, ctx, err);
		bson_destroy(&q);
	}
	mongoc_collection_destroy(coll);
	return rc;
}

/* Chunk documents read so far, and the ranges of their documents. */
struct fetched {
	bson_t **docs;
	size_t n, alloc;
	struct sm_ranges rs;
};

static void fetched_release(struct fetched *f)
{
	for (size_t i = 0; i < f->n; i++)
		bson_destroy(f->docs[i]);
	free(f->docs);
	sm_ranges_release(&f->rs);
}

static int keep_chunk(void *ctx, const bson_t *d, struct rag_err *err)
{
	struct fetched *f = ctx;

	if (f->n == f->alloc) {
		size_t alloc = f->alloc ? 2 * f->alloc : 16;
		bson_t **grown = reallocarray(f->docs, alloc, sizeof(*grown));

		if (!grown)
			return sm_oom(err);
		f->docs = grown;
		f->alloc = alloc;
	}
	f->docs[f->n] = bson_copy(d);
	if (!f->docs[f->n])
		return sm_oom(err);
	f->n++;
	return 0;
}

static int keep_range(void *ctx, const bson_t *d, struct rag_err *err)
{
	return sm_ranges_add(&((struct fetched *)ctx)->rs, d, 1, err);
}

/* Reads chunks ids[0..n) of collection cid and the ranges of the documents owning them. */
static int fetch(struct sm_conn *c, int64_t cid, const int64_t *ids, size_t n, int with_vec,
		 const mongoc_read_prefs_t *prefs, struct fetched *f, struct rag_err *err)
{
	bson_value_t *vals = calloc(n ? n : 1, sizeof(*vals));
	char (*keys)[48] = calloc(n ? n : 1, sizeof(*keys));
	bson_t *opts = with_vec ? NULL : BCON_NEW("projection", "{", "v", BCON_INT32(0), "}");
	bson_t *dopts = BCON_NEW("projection", "{", "first", BCON_INT32(1), "last",
				 BCON_INT32(1), "n", BCON_INT32(1), "meta_json", BCON_INT32(1), "}");
	size_t n_keys = 0;
	int rc = vals && keys ? 0 : sm_oom(err);

	/* Chunk _ids are "cid:id" strings (store_mongo_docs.c): the cid is in the key. */
	for (size_t i = 0; !rc && i < n; i++) {
		vals[i].value_type = BSON_TYPE_UTF8;
		vals[i].value.v_utf8.str = keys[i];
		vals[i].value.v_utf8.len = (uint32_t)snprintf(keys[i], sizeof(keys[i]), "%lld:%lld",
							      (long long)cid, (long long)ids[i]);
	}
	if (!rc)
		rc = find_in(c, SM_CHUNKS, -1, "_id", vals, n, opts, prefs, 0, keep_chunk, f, err);
	/* The owners' keys, each once (a document's chunks come together). */
	for (size_t i = 0; !rc && i < f->n; i++) {
		bson_iter_t it;
		const char *k;
		uint32_t len;
		int seen = 0;

		if (!bson_iter_init_find(&it, f->docs[i], "k") || !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		k = bson_iter_utf8(&it, &len);
		for (size_t j = 0; j < n_keys && !seen; j++)
			seen = vals[j].value.v_utf8.len == len &&
			       memcmp(vals[j].value.v_utf8.str, k, len) == 0;
		if (seen)
			continue;
		vals[n_keys].value_type = BSON_TYPE_UTF8;
		vals[n_keys].value.v_utf8.str = (char *)k; /* borrowed from f->docs[i] */
		vals[n_keys].value.v_utf8.len = len;
		n_keys++;
	}
	if (!rc && n_keys)
		rc = find_in(c, SM_DOCS, -1, "_id", vals, n_keys, dopts, prefs, 0, keep_range, f,
			     err);
	if (!rc)
		sm_ranges_sort(&f->rs);
	free(vals);
	free(keys);
	bson_destroy(opts);
	bson_destroy(dopts);
	return rc;
}

int store_mongo_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids,
			   size_t n, struct store_hit *out, struct rag_err *err)
{
	struct sm_conn c;
	struct fetched f = { 0 };
	int rc;

	for (size_t i = 0; i < n; i++)
		out[i].id = ids[i];
	if (n == 0)
		return 0;
	sm_conn_get(st->impl, &c, "get chunks");
	rc = fetch(&c, collection_id, ids, n, 0, c.sm->search_prefs, &f, err);
	for (size_t i = 0; !rc && i < f.n; i++) {
		int64_t id = sm_get_int(f.docs[i], "i");
		const struct sm_range *r = sm_range_find(&f.rs, id);

		for (size_t j = 0; r && !rc && j < n; j++)
			if (ids[j] == id && !out[j].found)
				rc = sm_read_hit(f.docs[i], r->meta_json, &out[j], err);
	}
	fetched_release(&f);
	sm_conn_put(&c);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = sm_get_int(*(bson_t *const *)a, "i");
	int64_t y = sm_get_int(*(bson_t *const *)b, "i");

	return x < y ? -1 : x > y;
}

int sm_chunk_vectors_by_id(struct store *st, int64_t cid, int64_t first, int64_t last,
			   store_row_fn cb, void *ctx, struct rag_err *err)
{
	struct sm_conn c;
	struct fetched f = { 0 };
	size_t n = last >= first ? (size_t)(last - first + 1) : 0;
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids)), seq;
	float *vec = NULL;
	int dim = 0, rc;

	if (!ids)
		return sm_oom(err);
	for (size_t i = 0; i < n; i++)
		ids[i] = first + (int64_t)i;
	sm_conn_get(st->impl, &c, "read chunk vectors");
	rc = sm_coll_state(&c, cid, &dim, &seq, err);
	if (!rc) {
		vec = malloc((size_t)dim * sizeof(float) + 1);
		rc = vec ? 0 : sm_oom(err);
	}
	if (!rc)
		rc = fetch(&c, cid, ids, n, 1, c.sm->primary, &f, err);
	if (!rc && f.n > 1)
		qsort(f.docs, f.n, sizeof(*f.docs), id_cmp);
	for (size_t i = 0; !rc && i < f.n; i++)
		if (sm_range_find(&f.rs, sm_get_int(f.docs[i], "i")))
			rc = sm_chunk_row(f.docs[i], dim, vec, cb, ctx, err);
	fetched_release(&f);
	sm_conn_put(&c);
	free(vec);
	free(ids);
	return rc;
}

struct by_hash {
	const char *const *hashes;
	size_t n;
	int dim;
	float *vecs;
	unsigned char *found;
};

static int hash_cb(void *ctx, const bson_t *d, struct rag_err *err)
{
	struct by_hash *bh = ctx;
	size_t vec_len = (size_t)bh->dim * sizeof(float);
	const char *h = "";
	const uint8_t *v;
	bson_iter_t it;
	uint32_t len;

	(void)err;
	if (bson_iter_init_find(&it, d, "hash") && BSON_ITER_HOLDS_UTF8(&it))
		h = bson_iter_utf8(&it, NULL);
	v = sm_get_bin(d, "v", &len);
	if (!*h || !v || len != vec_len)
		return 0;
	for (size_t i = 0; i < bh->n; i++)
		if (!bh->found[i] && bh->hashes[i] && strcmp(bh->hashes[i], h) == 0) {
			memcpy(bh->vecs + i * (size_t)bh->dim, v, vec_len);
			bh->found[i] = 1;
		}
	return 0;
}

int store_mongo_vectors_by_hash(struct store *st, int64_t collection_id,
				const char *const *hashes, size_t n, int dim, float *vecs,
				unsigned char *found, struct rag_err *err)
{
	struct sm_conn c;
	struct by_hash bh = { hashes, n, dim, vecs, found };
	bson_t *opts = BCON_NEW("projection", "{", "hash", BCON_INT32(1), "v", BCON_INT32(1), "}");
	bson_value_t *vals = calloc(n ? n : 1, sizeof(*vals));
	int64_t seq;
	int have_dim = 0, rc;

	memset(found, 0, n);
	if (!vals) {
		bson_destroy(opts);
		return sm_oom(err);
	}
	sm_conn_get(st->impl, &c, "reuse chunk vectors");
	rc = sm_coll_state(&c, collection_id, &have_dim, &seq, err);
	if (!rc && have_dim != dim)
		rc = rag_err_set(err, RAG_EINVAL, NULL,
				 "vectors of %d dimensions asked of a collection of %d", dim,
				 have_dim);
	/*
	 * Any chunk with the hash will do, live or not: the hash addresses the
	 * text, the chunker settings and the model, so its vector is the same.
	 * One query whatever the server: only _id lookups are indexed on
	 * FerretDB, so a query per hash would scan the chunks once per hash.
	 */
	for (size_t i = 0; !rc && i < n; i++) {
		vals[i].value_type = BSON_TYPE_UTF8;
		vals[i].value.v_utf8.str = (char *)(hashes[i] ? hashes[i] : "");
		vals[i].value.v_utf8.len = (uint32_t)strlen(vals[i].value.v_utf8.str);
	}
	if (!rc)
		rc = find_in(&c, SM_CHUNKS, collection_id, "hash", vals, n, opts, c.sm->primary, 1,
			     hash_cb, &bh, err);
	free(vals);
	bson_destroy(opts);
	sm_conn_put(&c);
	return rc;
}
