/*
 * Changing a collection's embedding model without re-uploading anything.
 *
 * The job (kind "reembed", spec {"embedding_model": M}) has one item per
 * document of the collection when it was submitted. Its worker:
 * 1. creates a staging collection ".reembed.<job id>" on model M (names
 *    starting with '.' cannot be made or addressed by clients, and are not
 *    listed), with the source's chunk settings;
 * 2. for each item, reads the document and its chunks from the source and
 *    writes them to the staging collection with vectors from M: same text,
 *    offsets, pages and sections, new content addresses; a vector already
 *    in the staging collection under the same address is reused, which is
 *    what makes a resumed job cheap;
 * 3. reconciles: documents written to the source while the job ran (their
 *    staged hash differs) are done again, documents deleted from it are
 *    deleted from the staging collection;
 * 4. saves the staging index's snapshot, swaps the names in one store
 *    transaction (source -> ".retired.<job id>", staging -> source), drops
 *    the retired collection, and reloads the name in this engine.
 * Until the swap, searches and writes go to the old collection on the old
 * model; after it, to the new one. A write that lands on the source between
 * the reconcile pass and the swap (milliseconds) is lost to the new
 * collection: the job's log line names the reconcile's end so an operator
 * can re-run such a client.
 */
#include "rag/rag_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/embedder.h"

#include "core/banned.h"

#define REEMBED_PAGE 500 /* documents per listing page */

static void staged_name(const struct store_job *job, char *out, size_t size)
{
	snprintf(out, size, ".reembed.%s", job->id);
}

/* The staged content hash: the source's, bound to the new model. */
static void staged_hash(const char *src_hash, const char *fingerprint, char out[HASH_HEX_LEN + 1])
{
	const void *parts[2] = { src_hash, fingerprint };
	size_t lens[2] = { strlen(src_hash), strlen(fingerprint) };

	hash_hex(parts, lens, 2, out);
}

static char *spec_model(const struct store_job *job)
{
	json_error_t jerr;
	json_t *spec = json_loads(job->spec_json, 0, &jerr);
	const char *m = json_string_value(json_object_get(spec, "embedding_model"));
	char *out = m ? strdup(m) : NULL;

	json_decref(spec);
	return out;
}

int rag_collection_change_model(struct rag_engine *eng, const char *tenant, const char *name,
				const char *embedding_model, char *job_id_out,
				struct rag_err *err)
{
	struct store_job_item *items = NULL;
	struct store_doc *docs = NULL;
	struct store_doc_query q = { NULL, REEMBED_PAGE, NULL };
	struct store_job job = { 0 };
	struct sbuf spec = SBUF_INIT;
	struct rag_coll *coll;
	char cursor[RAG_DOC_ID_MAX + 1] = "", id[RAG_JOB_ID_MAX + 1];
	size_t n_items = 0, n = 0;
	int rc = 0;

	coll = rag_coll_acquire(eng, tenant, name, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	if (strcmp(coll->c.embed_model, embedding_model) == 0)
		rc = rag_err_set(err, RAG_EINVAL, "embedding_model",
				 "collection '%s' already uses '%s'", name, embedding_model);
	else if (!rag_embedder(eng, embedding_model, "embedding_model", err))
		rc = err && err->code ? err->code : RAG_EINVAL;
	do {
		struct store_job_item *grown;

		if (rc < 0)
			break;
		q.after_id = *cursor ? cursor : NULL;
		rc = store_doc_list(eng->store, coll->c.id, &q, &docs, &n, err);
		if (rc < 0)
			break;
		grown = n ? reallocarray(items, n_items + n, sizeof(*items)) : items;
		if (n && !grown) {
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
			store_doc_list_free(docs, n);
			break;
		}
		items = grown;
		for (size_t i = 0; i < n; i++) {
			memset(&items[n_items], 0, sizeof(items[0]));
			items[n_items].doc_id = docs[i].id;
			items[n_items].format = "";
			docs[i].id = NULL; /* moved into the item */
			n_items++;
		}
		if (n)
			snprintf(cursor, sizeof(cursor), "%s", items[n_items - 1].doc_id);
		store_doc_list_free(docs, n);
	} while (n == REEMBED_PAGE);
	if (rc == 0) {
		snprintf(id, sizeof(id), "job_");
		rag_random_hex(id + 4, 12);
		sbuf_addstr(&spec, "{\"embedding_model\":");
		sbuf_add_json_str(&spec, embedding_model, strlen(embedding_model));
		sbuf_addch(&spec, '}');
		job.id = id;
		job.tenant = tenant;
		job.collection = name;
		job.kind = "reembed";
		job.spec_json = spec.buf;
		rc = store_job_create(eng->store, &job, items, n_items, err);
	}
	if (rc == 0) {
		snprintf(job_id_out, RAG_JOB_ID_MAX + 1, "%s", id);
		rag_jobs_wake(eng);
	}
	for (size_t i = 0; i < n_items; i++)
		free((char *)items[i].doc_id);
	free(items);
	sbuf_release(&spec);
	rag_coll_unref(coll);
	return rc;
}

int rag_reembed_prepare(struct rag_engine *eng, const struct store_job *job, struct rag_err *err)
{
	struct store_collection c = { 0 };
	struct rag_coll *src;
	struct embedder *emb;
	char *model = spec_model(job), name[RAG_JOB_ID_MAX + 16];
	int rc;

	if (!model)
		return rag_err_set(err, RAG_EINVAL, NULL, "job '%s' names no model", job->id);
	staged_name(job, name, sizeof(name));
	src = rag_coll_acquire(eng, job->tenant, job->collection, err);
	emb = src ? rag_embedder(eng, model, NULL, err) : NULL;
	if (!src || !emb) {
		rag_coll_unref(src);
		free(model);
		return err && err->code ? err->code : RAG_ENOTFOUND;
	}
	c.name = name;
	c.embed_model = model;
	c.dim = (int)emb->dim;
	c.chunk_size = src->c.chunk_size;
	c.chunk_overlap = src->c.chunk_overlap;
	c.config_json = src->c.config_json;
	rc = store_collection_create(eng->store, job->tenant, &c, NULL, err);
	if (rc == RAG_ECONFLICT) { /* resumed: made before the restart */
		rag_err_clear(err);
		rc = 0;
	}
	rag_coll_unref(src);
	free(model);
	return rc;
}

/* Copies one document from src into dst with dst's model; *n_chunks gets its chunks. */
static int copy_doc(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		    const char *doc_id, int64_t *n_chunks, struct rag_err *err)
{
	struct store_doc doc = { 0 }, sd = { 0 };
	struct store_hit *hits = NULL;
	struct store_chunk *chunks = NULL;
	struct store_put put = { 0 };
	char (*hashes)[HASH_HEX_LEN + 1] = NULL, settings[64], dhash[HASH_HEX_LEN + 1];
	const char **texts = NULL, **hp = NULL;
	size_t *lens = NULL, *slot = NULL, n = 0, k = 0, dim = (size_t)dst->c.dim;
	unsigned char *found = NULL;
	float *vecs = NULL, *fresh = NULL;
	int rc;

	*n_chunks = 0;
	if (!rag_coll_embedder(dst, err))
		return RAG_EBUSY;
	rc = store_doc_get(eng->store, src->c.id, doc_id, &doc, err);
	if (rc == 0)
		rc = store_doc_chunks(eng->store, src->c.id, doc_id, &hits, &n, err);
	if (rc < 0 || n == 0)
		goto out;
	chunks = calloc(n, sizeof(*chunks));
	hashes = calloc(n, sizeof(*hashes));
	texts = calloc(n, sizeof(*texts));
	hp = calloc(n, sizeof(*hp));
	lens = calloc(n, sizeof(*lens));
	slot = calloc(n, sizeof(*slot));
	found = calloc(n, 1);
	vecs = calloc(n * dim, sizeof(float));
	fresh = calloc(n * dim, sizeof(float));
	if (!chunks || !hashes || !texts || !hp || !lens || !slot || !found || !vecs || !fresh) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	rag_chunker_settings(dst, settings, sizeof(settings));
	for (size_t i = 0; i < n; i++) {
		const void *parts[3] = { hits[i].text, settings, dst->emb->fingerprint };
		size_t pl[3] = { strlen(hits[i].text), strlen(settings),
				 strlen(dst->emb->fingerprint) };

		hash_hex(parts, pl, 3, hashes[i]);
		hp[i] = hashes[i];
		chunks[i].start_byte = hits[i].start_byte;
		chunks[i].end_byte = hits[i].end_byte;
		chunks[i].text = hits[i].text;
		chunks[i].page = hits[i].page;
		chunks[i].section = hits[i].section;
		chunks[i].hash = hashes[i];
	}
	rc = store_vectors_by_hash(eng->store, dst->c.id, hp, n, dst->c.dim, vecs, found, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (found[i])
			continue;
		texts[k] = hits[i].text;
		lens[k] = strlen(hits[i].text);
		slot[k++] = i;
	}
	if (rc == 0 && k > 0)
		rc = embedder_embed(dst->emb, texts, lens, k, fresh, err);
	for (size_t j = 0; rc == 0 && j < k; j++)
		memcpy(vecs + slot[j] * dim, fresh + j * dim, dim * sizeof(float));
	if (rc < 0)
		goto out;
	staged_hash(doc.content_hash, dst->emb->fingerprint, dhash);
	sd.id = doc.id;
	sd.text = doc.text;
	sd.metadata_json = doc.metadata_json;
	sd.content_hash = dhash;
	put.doc = &sd;
	put.chunks = chunks;
	put.n_chunks = n;
	put.vecs = vecs;
	put.dim = dst->c.dim;
	put.model = dst->emb->fingerprint;
	rc = store_doc_put(eng->store, dst->c.id, &put, NULL, err);
	if (rc == 0) {
		*n_chunks = (int64_t)n;
		rag_index_catch_up(eng, dst, NULL);
	}
out:
	store_doc_release(&doc);
	store_hits_release(hits, n);
	free(hits);
	free(chunks);
	free(hashes);
	free(texts);
	free(hp);
	free(lens);
	free(slot);
	free(found);
	free(vecs);
	free(fresh);
	return rc;
}

static int with_pair(struct rag_engine *eng, const struct store_job *job, struct rag_coll **src,
		     struct rag_coll **dst, struct rag_err *err)
{
	char name[RAG_JOB_ID_MAX + 16];

	staged_name(job, name, sizeof(name));
	*src = rag_coll_acquire(eng, job->tenant, job->collection, err);
	*dst = *src ? rag_coll_acquire(eng, job->tenant, name, err) : NULL;
	if (*src && *dst)
		return 0;
	rag_coll_unref(*src);
	return err && err->code ? err->code : RAG_ENOTFOUND;
}

int rag_reembed_item(struct rag_engine *eng, const struct store_job *job, const char *doc_id,
		     int64_t *n_chunks, struct rag_err *err)
{
	struct rag_coll *src, *dst;
	int rc = with_pair(eng, job, &src, &dst, err);

	*n_chunks = 0;
	if (rc < 0)
		return rc;
	rc = copy_doc(eng, src, dst, doc_id, n_chunks, err);
	rag_coll_unref(src);
	rag_coll_unref(dst);
	return rc;
}

/* Step 3: documents changed or deleted in the source while the job ran. */
static int reconcile(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		     struct rag_err *err)
{
	char cursor[RAG_DOC_ID_MAX + 1] = "";
	size_t n = REEMBED_PAGE;
	int rc = 0;

	while (rc == 0 && n == REEMBED_PAGE) {
		struct store_doc_query q = { *cursor ? cursor : NULL, REEMBED_PAGE, NULL };
		struct store_doc *docs = NULL;

		rc = store_doc_list(eng->store, src->c.id, &q, &docs, &n, err);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			char want[HASH_HEX_LEN + 1], *have = NULL;
			int64_t n_chunks;

			staged_hash(docs[i].content_hash, dst->emb->fingerprint, want);
			if (store_doc_hash(eng->store, dst->c.id, docs[i].id, &have, NULL, NULL) < 0 ||
			    strcmp(have, want) != 0)
				rc = copy_doc(eng, src, dst, docs[i].id, &n_chunks, err);
			free(have);
		}
		if (n)
			snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
		store_doc_list_free(docs, n);
	}
	*cursor = '\0';
	n = REEMBED_PAGE;
	while (rc == 0 && n == REEMBED_PAGE) {
		struct store_doc_query q = { *cursor ? cursor : NULL, REEMBED_PAGE, NULL };
		struct store_doc *docs = NULL;

		rc = store_doc_list(eng->store, dst->c.id, &q, &docs, &n, err);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			char *have = NULL;

			if (store_doc_hash(eng->store, src->c.id, docs[i].id, &have, NULL, NULL) ==
			    RAG_ENOTFOUND)
				rc = store_doc_delete(eng->store, dst->c.id, docs[i].id, NULL, err);
			free(have);
		}
		if (n)
			snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
		store_doc_list_free(docs, n);
	}
	return rc;
}

int rag_reembed_finish(struct rag_engine *eng, const struct store_job *job, struct rag_err *err)
{
	char staged[RAG_JOB_ID_MAX + 16], retired[RAG_JOB_ID_MAX + 16];
	struct rag_coll *src, *dst, *now;
	int rc = with_pair(eng, job, &src, &dst, err);

	if (rc < 0)
		return rc;
	staged_name(job, staged, sizeof(staged));
	snprintf(retired, sizeof(retired), ".retired.%s", job->id);
	rc = rag_coll_embedder(dst, err) ? reconcile(eng, src, dst, err) : RAG_EBUSY;
	if (rc == 0 && rag_index_catch_up(eng, dst, err) == 0)
		rag_index_snapshot(eng, dst, NULL); /* the swapped-in name loads from it */
	if (rc == 0)
		rc = store_collection_swap(eng->store, job->tenant, job->collection, staged, retired,
					   err);
	if (rc == 0)
		rag_engine_changed(eng);
	if (rc == 0)
		log_info("job '%s': collection '%s' switched to model '%s'", job->id,
			 job->collection, dst->c.embed_model);
	rag_coll_unref(src);
	rag_coll_unref(dst);
	if (rc < 0)
		return rc;
	rag_coll_forget(eng, job->tenant, job->collection);
	rag_coll_forget(eng, job->tenant, staged);
	now = rag_coll_acquire(eng, job->tenant, job->collection, NULL);
	rag_coll_unref(now);
	if (store_collection_delete(eng->store, job->tenant, retired, err) < 0) {
		log_warn("job '%s': retired collection not deleted: %s", job->id, err->msg);
		rag_err_clear(err);
	}
	return 0;
}
