/*
 * The ingest path for one document: validate, compare the content hash
 * with the stored one (unchanged: done), extract, chunk (rag_chunk.c), look
 * up each chunk's content address among the collection's stored vectors,
 * embed only the chunks not found, store document + chunks + vectors in one
 * store transaction (which replaces the old chunks atomically), then replay
 * the change into this engine's index. A failure at any step stores nothing.
 * A job item's ingest names the item (rag_doc_in.job), and the store records
 * it done in that same commit (store_doc_put).
 *
 * New chunk ids are allocated even for reused vectors: a document's chunks
 * stay one contiguous id range, so the change log, its replay and deletes
 * keep naming ranges. What reuse saves is the embedding, which is where
 * ingest time goes; copying a 1.5 KB vector inside the store is noise next
 * to it.
 *
 * The extracted structure (blocks, pages, section paths) is stored with
 * the text (extract_blocks_encode), so a chunker change can cut the
 * document again without its original bytes (rag_reembed.c).
 *
 * Each write holds the collection's write gate shared (see rag_int.h). A
 * write that finds its collection swapped away under it by a model or
 * chunker change (the store refuses writes to a retired collection) looks
 * the name up again and is redone on the new collection, so no write is
 * acknowledged into the old one after the swap.
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
#include "core/hash.h"
#include "text/extract.h"

#include "core/banned.h"

#define RAG_STALE_RETRIES 3 /* swaps in a row a write follows before giving up */

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

/*
 * The document's content hash: its bytes, how they are read (format and
 * content type), its metadata, the collection's chunker settings and the
 * model's fingerprint. Equal hashes mean an upsert would store exactly
 * what is there.
 */
static void doc_hash(struct rag_coll *coll, const struct rag_doc_in *doc,
		     char out[HASH_HEX_LEN + 1])
{
	char settings[64];
	const char *fmt = doc->format ? doc->format : "";
	const char *ct = doc->content_type ? doc->content_type : "";
	const char *meta = doc->metadata_json ? doc->metadata_json : "{}";
	const void *parts[6];
	size_t lens[6];

	rag_chunker_settings(coll, settings, sizeof(settings));
	parts[0] = doc->text;
	lens[0] = doc->text_len;
	parts[1] = fmt;
	lens[1] = strlen(fmt);
	parts[2] = ct;
	lens[2] = strlen(ct);
	parts[3] = meta;
	lens[3] = strlen(meta);
	parts[4] = settings;
	lens[4] = strlen(settings);
	parts[5] = coll->emb->fingerprint;
	lens[5] = strlen(coll->emb->fingerprint);
	hash_hex(parts, lens, 6, out);
}

struct ingest_work {
	struct extract_document xd;
	struct rag_piece *pieces;
	size_t n_pieces;
	struct store_chunk *chunks;
	const char **texts; /* the chunks still to embed, compacted */
	size_t *lens;
	size_t *slot;       /* texts[k] is chunk slot[k] */
	const char **hashes;
	unsigned char *found;
	float *vecs;
	float *fresh;       /* vectors of texts[], before they are placed */
};

static void work_release(struct ingest_work *w)
{
	for (size_t i = 0; w->chunks && i < w->n_pieces; i++)
		free((char *)w->chunks[i].text);
	extract_document_release(&w->xd);
	free(w->pieces);
	free(w->chunks);
	free(w->texts);
	free(w->lens);
	free(w->slot);
	free(w->hashes);
	free(w->found);
	free(w->vecs);
	free(w->fresh);
}

/* The text as it comes from the JSON API: already text, one block. */
static int plain_text(const struct rag_doc_in *doc, struct extract_document *xd,
		      struct rag_err *err)
{
	int rc = rag_check_text(doc->text, doc->text_len, "text", err);

	if (rc < 0)
		return rc;
	xd->text = malloc(doc->text_len + 1);
	xd->blocks = calloc(1, sizeof(*xd->blocks));
	if (!xd->text || !xd->blocks)
		return rag_err_set(err, RAG_ENOMEM, "text", "out of memory for this document");
	memcpy(xd->text, doc->text, doc->text_len);
	xd->text[doc->text_len] = '\0';
	xd->text_len = doc->text_len;
	xd->format = EXTRACT_TEXT;
	xd->blocks[0].end = doc->text_len;
	xd->blocks[0].section = "";
	xd->n_blocks = 1;
	return 0;
}

static int extract(struct rag_engine *eng, const struct rag_doc_in *doc,
		   struct extract_document *xd, struct rag_err *err)
{
	struct extract_options xo = { .format = EXTRACT_AUTO, .name = doc->name,
				      .content_type = doc->content_type,
				      .max_bytes = eng->opts.max_doc_bytes };

	if (eng->opts.max_doc_bytes && doc->text_len > eng->opts.max_doc_bytes)
		return rag_err_set(err, RAG_ETOOBIG, doc->format ? "file" : "text",
				   "document is %zu bytes, over the limit of %zu (ingest.max_file_bytes)",
				   doc->text_len, eng->opts.max_doc_bytes);
	if (!doc->format)
		return plain_text(doc, xd, err);
	if (extract_format_parse(doc->format, &xo.format) < 0)
		return rag_err_set(err, RAG_EINVAL, "format",
				   "format must be auto, text, markdown, html or pdf, not '%s'",
				   doc->format);
	return extract_document(doc->text, doc->text_len, &xo, xd, err);
}

static void *alloc_n(size_t n, size_t size)
{
	return n > SIZE_MAX / size ? NULL : calloc(n ? n : 1, size);
}

/* Chunks, finds reusable vectors by content address, embeds the rest. */
static int prepare(struct rag_engine *eng, struct rag_coll *coll, struct ingest_work *w,
		   struct rag_ingest_result *res, struct rag_err *err)
{
	size_t dim = (size_t)coll->c.dim, n, k = 0;
	double t0 = rag_now_ms();
	int rc;

	rc = rag_chunk_document(eng, coll, &w->xd, &w->pieces, &w->n_pieces, err);
	res->chunk_ms = rag_now_ms() - t0;
	if (rc < 0)
		return rc;
	n = w->n_pieces;
	if (n == 0)
		return rag_err_set(err, RAG_EINVAL, "text", "text is empty");
	w->chunks = alloc_n(n, sizeof(*w->chunks));
	w->texts = alloc_n(n, sizeof(*w->texts));
	w->lens = alloc_n(n, sizeof(*w->lens));
	w->slot = alloc_n(n, sizeof(*w->slot));
	w->hashes = alloc_n(n, sizeof(*w->hashes));
	w->found = alloc_n(n, 1);
	w->vecs = n > SIZE_MAX / dim ? NULL : alloc_n(n * dim, sizeof(float));
	w->fresh = n > SIZE_MAX / dim ? NULL : alloc_n(n * dim, sizeof(float));
	if (!w->chunks || !w->texts || !w->lens || !w->slot || !w->hashes || !w->found ||
	    !w->vecs || !w->fresh)
		return rag_err_set(err, RAG_ETOOBIG, "text", "document too large for memory");
	for (size_t i = 0; i < n; i++) {
		const struct rag_piece *p = &w->pieces[i];

		w->chunks[i].start_byte = p->start;
		w->chunks[i].end_byte = p->end;
		w->chunks[i].page = p->page;
		w->chunks[i].section = p->section;
		w->chunks[i].hash = p->hash;
		w->chunks[i].text = strndup(w->xd.text + p->start, p->end - p->start);
		if (!w->chunks[i].text)
			return rag_err_set(err, RAG_ENOMEM, "text", "out of memory for this document");
		w->hashes[i] = p->hash;
	}
	t0 = rag_now_ms();
	rc = store_vectors_by_hash(eng->store, coll->c.id, w->hashes, n, coll->c.dim, w->vecs,
				   w->found, err);
	res->store_ms += rag_now_ms() - t0;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (w->found[i])
			continue;
		w->texts[k] = w->chunks[i].text;
		w->lens[k] = w->pieces[i].end - w->pieces[i].start;
		w->slot[k++] = i;
	}
	res->n_embedded = k;
	if (k == 0)
		return 0;
	t0 = rag_now_ms();
	rc = embedder_embed(coll->emb, w->texts, w->lens, k, w->fresh, err);
	res->embed_ms = rag_now_ms() - t0;
	for (size_t j = 0; rc == 0 && j < k; j++)
		memcpy(w->vecs + w->slot[j] * dim, w->fresh + j * dim, dim * sizeof(float));
	return rc;
}

static int ingest(struct rag_engine *eng, const char *tenant, const char *collection,
		  const struct rag_doc_in *doc, struct rag_ingest_result *res, int *stale,
		  struct rag_err *err)
{
	struct ingest_work w = { 0 };
	struct store_doc sd = { 0 };
	struct store_put put = { 0 };
	struct store_put_result pr = { 0 };
	struct rag_coll *coll = NULL;
	char *stored = NULL, *blocks = NULL;
	int tmo = eng->opts.ingest_timeout_ms;
	double t0, deadline = tmo > 0 ? rag_now_ms() + tmo : 0;
	int rc = 0;

	*stale = 0;
	memset(res, 0, sizeof(*res));
	if (doc->id) {
		rc = check_id(doc->id, err);
		if (rc < 0)
			return rc;
		snprintf(res->id, sizeof(res->id), "%s", doc->id);
	} else {
		new_id(res->id, sizeof(res->id));
	}
	if (!doc->text)
		return rag_err_set(err, RAG_EINVAL, "text", "text is required");
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	if (!rag_coll_embedder(coll, err)) {
		rag_coll_unref(coll);
		return RAG_EBUSY;
	}
	pthread_rwlock_rdlock(&coll->write_gate);
	doc_hash(coll, doc, res->content_hash);
	if (doc->id &&
	    store_doc_hash(eng->store, coll->c.id, doc->id, &stored, &res->n_chunks, NULL) == 0 &&
	    strcmp(stored, res->content_hash) == 0) {
		res->unchanged = 1;
		store_collection_seq(eng->store, coll->c.id, &res->seq, NULL);
		goto out;
	}
	res->n_chunks = 0;
	t0 = rag_now_ms();
	rc = extract(eng, doc, &w.xd, err);
	res->extract_ms = rag_now_ms() - t0;
	if (rc == 0)
		rc = rag_deadline_check(deadline, "extracting the document",
					"limits.ingest_timeout_ms", tmo, err);
	if (rc < 0)
		goto out;
	/* Nothing is stored past the deadline: a client that gave up may retry. */
	rc = prepare(eng, coll, &w, res, err);
	if (rc == 0)
		rc = extract_blocks_encode(&w.xd, &blocks, err);
	if (rc == 0)
		rc = rag_deadline_check(deadline, "chunking and embedding the document",
					"limits.ingest_timeout_ms", tmo, err);
	if (rc < 0)
		goto out;
	sd.id = res->id;
	sd.text = w.xd.text;
	sd.blocks = blocks;
	sd.metadata_json = doc->metadata_json;
	sd.content_hash = res->content_hash;
	put.doc = &sd;
	put.chunks = w.chunks;
	put.n_chunks = w.n_pieces;
	put.vecs = w.vecs;
	put.dim = coll->c.dim;
	put.model = coll->emb->fingerprint;
	put.job = doc->job;
	t0 = rag_now_ms();
	rc = store_doc_put(eng->store, coll->c.id, &put, &pr, err);
	if (rc == RAG_ENOTFOUND)
		*stale = rag_coll_replaced(eng, coll);
	if (rc < 0)
		goto out;
	res->n_chunks = w.n_pieces;
	res->seq = pr.seq;
	res->replaced = pr.replaced;
	rag_engine_changed(eng);
	rc = rag_index_catch_up(eng, coll, err);
	res->store_ms += rag_now_ms() - t0;
	if (rc < 0) {
		/* Stored and acknowledged: the follower will apply it. */
		log_warn("document '%s' stored, index update deferred: %s", res->id,
			 err ? err->msg : "");
		rag_err_clear(err);
		rc = 0;
	}
out:
	pthread_rwlock_unlock(&coll->write_gate);
	free(stored);
	free(blocks);
	work_release(&w);
	rag_coll_unref(coll);
	return rc;
}

int rag_ingest(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_doc_in *doc, struct rag_ingest_result *res, struct rag_err *err)
{
	int stale, rc;

	for (int i = 0;; i++) {
		rc = ingest(eng, tenant, collection, doc, res, &stale, err);
		if (!stale || i == RAG_STALE_RETRIES)
			break;
		rag_err_clear(err);
	}

	if (rc < 0) {
		if (rc != RAG_EALREADY) /* a job item applied before: not a failure */
			metric_inc(rag_metrics.failures);
		return rc;
	}
	if (res->unchanged) {
		metric_inc(rag_metrics.unchanged);
		return 0;
	}
	metric_inc(rag_metrics.documents);
	metric_add(rag_metrics.chunks, (double)res->n_chunks);
	metric_add(rag_metrics.embedded, (double)res->n_embedded);
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
	for (int i = 0;; i++) {
		struct rag_coll *coll = rag_coll_acquire(eng, tenant, collection, err);
		int rc, stale = 0;

		if (!coll)
			return err && err->code ? err->code : RAG_ENOTFOUND;
		pthread_rwlock_rdlock(&coll->write_gate);
		rc = store_doc_delete(eng->store, coll->c.id, doc_id, NULL, err);
		if (rc == RAG_ENOTFOUND)
			stale = rag_coll_replaced(eng, coll);
		pthread_rwlock_unlock(&coll->write_gate);
		if (rc == 0)
			rag_engine_changed(eng);
		if (rc == 0 && rag_index_catch_up(eng, coll, NULL) < 0)
			log_warn("document '%s' deleted, index update deferred", doc_id);
		rag_coll_unref(coll);
		if (!stale || i == RAG_STALE_RETRIES)
			return rc;
		rag_err_clear(err);
	}
}

static int with_coll(struct rag_engine *eng, const char *tenant, const char *collection,
		     struct rag_coll **coll, struct rag_err *err)
{
	*coll = rag_coll_acquire(eng, tenant, collection, err);
	return *coll ? 0 : (err && err->code ? err->code : RAG_ENOTFOUND);
}

int rag_doc_list(struct rag_engine *eng, const char *tenant, const char *collection,
		 const struct store_doc_query *q, struct store_doc **out, size_t *n_out,
		 struct rag_err *err)
{
	struct rag_coll *coll;
	int rc = with_coll(eng, tenant, collection, &coll, err);

	*out = NULL;
	*n_out = 0;
	if (rc < 0)
		return rc;
	rc = store_doc_list(eng->store, coll->c.id, q, out, n_out, err);
	rag_coll_unref(coll);
	return rc;
}

int rag_doc_chunks(struct rag_engine *eng, const char *tenant, const char *collection,
		   const char *doc_id, struct store_hit **out, size_t *n_out, struct rag_err *err)
{
	struct rag_coll *coll;
	int rc = with_coll(eng, tenant, collection, &coll, err);

	*out = NULL;
	*n_out = 0;
	if (rc < 0)
		return rc;
	rc = store_doc_chunks(eng->store, coll->c.id, doc_id, out, n_out, err);
	rag_coll_unref(coll);
	return rc;
}

void rag_doc_id_from_name(const char *name, char *out, size_t size)
{
	const char *base = strrchr(name, '/');
	size_t k = 0;

	base = base ? base + 1 : name;
	for (; *base && k + 1 < size && k < RAG_DOC_ID_MAX; base++) {
		char c = *base;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':';

		out[k++] = ok ? c : '_';
	}
	if (k > 0 && strspn(out, ".") == k)
		out[0] = '_';
	out[k] = '\0';
}
