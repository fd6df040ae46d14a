/*
 * The ingest path for one document: validate, chunk (token-measured fixed
 * windows), embed all chunks in the embedder's batches, store document +
 * chunks + vectors in one store transaction, then replay the change into
 * this engine's index. A failure at any step stores nothing.
 */
#include "rag/rag_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "model/embedder.h"
#include "obs/metrics.h"
#include "text/chunk.h"

#include "core/banned.h"

static int count_cb(void *ctx, const char *text, size_t len)
{
	return embedder_count_tokens(ctx, text, len);
}

/* Ids appear in URLs, logs and file names of later exports: keep them plain. */
static int check_id(const char *id, struct rag_err *err)
{
	size_t len = strlen(id);

	if (len == 0 || len > RAG_DOC_ID_MAX)
		return rag_err_set(err, RAG_EINVAL, "id", "id must be 1 to %d characters",
				   RAG_DOC_ID_MAX);
	if (strspn(id, ".") == len)
		return rag_err_set(err, RAG_EINVAL, "id",
				   "id must not be only dots: URLs cannot address it");
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ':'))
			return rag_err_set(err, RAG_EINVAL, "id",
					   "id may hold only letters, digits, '_', '-', '.' and ':'");
	}
	return 0;
}

static void new_id(char *out, size_t size)
{
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		uint64_t t = (uint64_t)(rag_now_ms() * 1000.0);

		memcpy(raw, &t, sizeof(t));
		memcpy(raw + 8, &out, sizeof(out) < 8 ? sizeof(out) : 8);
	}
	for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < size; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* FNV-1a 64: a change detector for content, not a security boundary. */
static void content_hash(const char *text, size_t len, char out[32])
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)text[i];
		h *= 0x100000001b3ULL;
	}
	snprintf(out, 32, "fnv1a64:%016" PRIx64, h);
}


struct ingest_work {
	struct chunk_span *spans;
	size_t n_spans;
	struct store_chunk *chunks;
	const char **texts;
	size_t *lens;
	float *vecs;
	char *copy; /* NUL-terminated copy of the text, for the store */
};

static void work_release(struct ingest_work *w)
{
	for (size_t i = 0; w->chunks && i < w->n_spans; i++)
		free((char *)w->chunks[i].text);
	free(w->spans);
	free(w->chunks);
	free(w->texts);
	free(w->lens);
	free(w->vecs);
	free(w->copy);
}

static int prepare(struct rag_engine *eng, struct rag_coll *coll, const struct rag_doc_in *doc,
		   struct ingest_work *w, struct rag_err *err)
{
	struct chunk_options co = { (size_t)coll->c.chunk_size, (size_t)coll->c.chunk_overlap,
				    count_cb, eng->emb };
	size_t dim = (size_t)coll->c.dim;
	int rc;

	rc = chunk_fixed(doc->text, doc->text_len, &co, &w->spans, &w->n_spans, err);
	if (rc < 0)
		return rc;
	if (w->n_spans == 0)
		return rag_err_set(err, RAG_EINVAL, "text", "text is empty");
	w->copy = malloc(doc->text_len + 1);
	w->chunks = calloc(w->n_spans, sizeof(*w->chunks));
	w->texts = calloc(w->n_spans, sizeof(*w->texts));
	w->lens = calloc(w->n_spans, sizeof(*w->lens));
	if (w->n_spans > SIZE_MAX / dim / sizeof(float))
		return rag_err_set(err, RAG_ETOOBIG, "text", "document too large");
	w->vecs = malloc(w->n_spans * dim * sizeof(float));
	if (!w->copy || !w->chunks || !w->texts || !w->lens || !w->vecs)
		return rag_err_set(err, RAG_ENOMEM, "text", "out of memory for this document");
	memcpy(w->copy, doc->text, doc->text_len);
	w->copy[doc->text_len] = '\0';
	for (size_t i = 0; i < w->n_spans; i++) {
		w->texts[i] = w->copy + w->spans[i].start;
		w->lens[i] = w->spans[i].end - w->spans[i].start;
		w->chunks[i].start_byte = w->spans[i].start;
		w->chunks[i].end_byte = w->spans[i].end;
		w->chunks[i].text = strndup(w->texts[i], w->lens[i]);
		if (!w->chunks[i].text)
			return rag_err_set(err, RAG_ENOMEM, "text", "out of memory for this document");
	}
	return embedder_embed(eng->emb, w->texts, w->lens, w->n_spans, w->vecs, err);
}

static int ingest(struct rag_engine *eng, const char *tenant, const char *collection,
		  const struct rag_doc_in *doc, struct rag_ingest_result *res, struct rag_err *err)
{
	struct ingest_work w = { 0 };
	struct store_doc sd = { 0 };
	struct store_put put;
	struct store_put_result pr = { 0 };
	struct rag_coll *coll = NULL;
	char hash[32];
	int rc;

	memset(res, 0, sizeof(*res));
	if (doc->id) {
		rc = check_id(doc->id, err);
		if (rc < 0)
			return rc;
		snprintf(res->id, sizeof(res->id), "%s", doc->id);
	} else {
		new_id(res->id, sizeof(res->id));
	}
	rc = rag_check_text(doc->text, doc->text_len, "text", err);
	if (rc < 0)
		return rc;
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	rc = prepare(eng, coll, doc, &w, err);
	if (rc < 0)
		goto out;
	content_hash(doc->text, doc->text_len, hash);
	sd.id = res->id;
	sd.text = w.copy;
	sd.metadata_json = doc->metadata_json;
	sd.content_hash = hash;
	put.doc = &sd;
	put.chunks = w.chunks;
	put.n_chunks = w.n_spans;
	put.vecs = w.vecs;
	put.dim = coll->c.dim;
	rc = store_doc_put(eng->store, coll->c.id, &put, &pr, err);
	if (rc < 0)
		goto out;
	res->n_chunks = w.n_spans;
	res->seq = pr.seq;
	res->replaced = pr.replaced;
	rc = rag_index_catch_up(eng, coll, err);
	if (rc < 0) {
		/* Stored and acknowledged: the follower will apply it. */
		log_warn("document '%s' stored, index update deferred: %s", res->id,
			 err ? err->msg : "");
		rag_err_clear(err);
		rc = 0;
	}
out:
	work_release(&w);
	rag_coll_unref(coll);
	return rc;
}

int rag_ingest(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_doc_in *doc, struct rag_ingest_result *res, struct rag_err *err)
{
	int rc = ingest(eng, tenant, collection, doc, res, err);

	if (rc < 0) {
		metric_inc(rag_metrics.failures);
		return rc;
	}
	metric_inc(rag_metrics.documents);
	metric_add(rag_metrics.chunks, (double)res->n_chunks);
	metric_add(rag_metrics.bytes, (double)doc->text_len);
	return 0;
}

int rag_doc_get(struct rag_engine *eng, const char *tenant, const char *collection,
		const char *doc_id, struct store_doc *out, struct rag_err *err)
{
	struct rag_coll *coll = rag_coll_acquire(eng, tenant, collection, err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	rc = store_doc_get(eng->store, coll->c.id, doc_id, out, err);
	rag_coll_unref(coll);
	return rc;
}

int rag_doc_delete(struct rag_engine *eng, const char *tenant, const char *collection,
		   const char *doc_id, struct rag_err *err)
{
	struct rag_coll *coll = rag_coll_acquire(eng, tenant, collection, err);
	int rc;

	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	rc = store_doc_delete(eng->store, coll->c.id, doc_id, NULL, err);
	if (rc == 0 && rag_index_catch_up(eng, coll, NULL) < 0)
		log_warn("document '%s' deleted, index update deferred", doc_id);
	rag_coll_unref(coll);
	return rc;
}
