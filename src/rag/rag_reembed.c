/*
 * Changing a collection's embedding model or its chunker without
 * re-uploading anything.
 *
 * PATCH /v1/collections/{name} queues a job (rag_collection_change in
 * rag_collections.c), kind "reembed" when only the model changes and
 * "rechunk" when the chunker settings do (spec: the target
 * {"embedding_model","chunker","chunk_size","chunk_overlap"}), with one item
 * per document of the collection when it was submitted. Its worker:
 * 1. prepare: creates a staging collection ".reembed.<job id>" with the
 *    target model and chunker (names starting with '.' cannot be made or
 *    addressed by clients, and are not listed);
 * 2. item: rebuilds one document in the staging collection from what the
 *    store keeps. With the same chunker settings, from the source's chunks
 *    (same text, offsets, pages and sections). With other settings, the
 *    document is cut again from its stored text and structure (blocks with
 *    pages and section paths, kept since schema 5; a document stored
 *    before has none and is cut as plain text, which the log says). Each
 *    chunk's vector is, in order of preference: the one already in the
 *    staging collection under its content address (a resumed job); the
 *    source's vector for the same text when the model is the same (found
 *    under the address that text had with the old settings: a vector
 *    depends on text and model only); else a new embedding;
 * 3. finish: reconciles what was written to the source while the job ran
 *    (documents whose staged hash differs are rebuilt, documents gone are
 *    deleted), then takes the source's write gate (rag_int.h) so that no
 *    write of this process can start, replays the source's change log from
 *    where the reconcile began, saves the staging index's snapshot and
 *    swaps the names in one store transaction that also checks the source's
 *    seq is still the one replayed to. A write from another process in
 *    between fails that check: replay again and retry. The swap retires
 *    the source, and the store refuses writes to a retired collection, so
 *    a writer that still held the old one redoes its write on the new one
 *    (rag_docs.c). Then the retired collection is dropped.
 * Until the swap, searches and writes use the old collection, after it the
 * new one; no acknowledged write is lost in between. A cancelled job drops
 * its staging collection and leaves the source as it was.
 */
#include "rag/rag_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "model/embedder.h"
#include "obs/metrics.h"
#include "text/chunk.h"
#include "text/extract.h"

#include "core/banned.h"

#define REEMBED_PAGE 500      /* documents per listing page (reconcile) */
#define REEMBED_CHANGES 256   /* change-log entries read per call in the last pass */
#define REEMBED_SWAP_TRIES 20 /* last passes before giving up on a collection that
				 another process never stops writing to */

/* What the job moves the collection to (its spec; the source's values where absent). */
struct target {
	char *model;
	enum chunk_strategy chunker;
	int size, overlap;
};

int rag_job_switches(const char *kind)
{
	return kind && (strcmp(kind, "reembed") == 0 || strcmp(kind, "rechunk") == 0);
}

static void staged_name(const struct store_job *job, char *out, size_t size)
{
	snprintf(out, size, ".reembed.%s", job->id);
}

/* The staged content hash: the source's, bound to the staging chunker and model. */
static void staged_hash(const char *src_hash, const struct rag_coll *dst,
			char out[HASH_HEX_LEN + 1])
{
	char settings[64];
	const void *parts[3] = { src_hash, settings, dst->emb->fingerprint };
	size_t lens[3];

	rag_chunker_settings(dst, settings, sizeof(settings));
	lens[0] = strlen(src_hash);
	lens[1] = strlen(settings);
	lens[2] = strlen(dst->emb->fingerprint);
	hash_hex(parts, lens, 3, out);
}

static int read_target(const struct store_job *job, const struct rag_coll *src, struct target *t,
		       struct rag_err *err)
{
	json_error_t jerr;
	json_t *spec = json_loads(job->spec_json, 0, &jerr);
	const char *m = json_string_value(json_object_get(spec, "embedding_model"));
	const char *ch = json_string_value(json_object_get(spec, "chunker"));
	json_t *size = json_object_get(spec, "chunk_size");
	json_t *overlap = json_object_get(spec, "chunk_overlap");
	int bad = !m;

	/* Jobs queued before chunker changes existed name the model alone. */
	memset(t, 0, sizeof(*t));
	t->chunker = (enum chunk_strategy)src->chunker;
	if (ch && chunk_strategy_parse(ch, &t->chunker) < 0)
		bad = 1;
	t->size = json_is_integer(size) ? (int)json_integer_value(size) : src->c.chunk_size;
	t->overlap = json_is_integer(overlap) ? (int)json_integer_value(overlap)
					      : src->c.chunk_overlap;
	t->model = m && !bad ? strdup(m) : NULL;
	json_decref(spec);
	if (!t->model)
		return rag_err_set(err, bad ? RAG_EINVAL : RAG_ENOMEM, NULL,
				   "job '%s': bad spec or out of memory", job->id);
	return 0;
}

/* The source's config_json with the target chunker; caller frees. */
static char *staged_config(const char *config_json, enum chunk_strategy chunker)
{
	json_t *cfg = json_loads(config_json ? config_json : "{}", 0, NULL);
	char *out = NULL;

	if (cfg && json_object_set_new(cfg, "chunker", json_string(chunk_strategy_name(chunker))) == 0)
		out = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	return out;
}

int rag_reembed_prepare(struct rag_engine *eng, const struct store_job *job, struct rag_err *err)
{
	struct store_collection c = { 0 };
	struct target t = { 0 };
	struct rag_coll *src;
	struct embedder *emb = NULL;
	char name[RAG_JOB_ID_MAX + 16], *config = NULL;
	int rc;

	staged_name(job, name, sizeof(name));
	src = rag_coll_acquire(eng, job->tenant, job->collection, err);
	if (!src)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	rc = read_target(job, src, &t, err);
	if (rc == 0) {
		emb = rag_embedder(eng, t.model, NULL, err);
		config = staged_config(src->c.config_json, t.chunker);
		if (!emb)
			rc = err && err->code ? err->code : RAG_ENOTFOUND;
		else if (!config)
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	if (rc == 0) {
		c.name = name;
		c.embed_model = t.model;
		c.dim = (int)emb->dim;
		c.chunk_size = t.size;
		c.chunk_overlap = t.overlap;
		c.config_json = config;
		rc = store_collection_create(eng->store, job->tenant, &c, NULL, err);
	}
	if (rc == RAG_ECONFLICT) { /* resumed: made before the restart */
		rag_err_clear(err);
		rc = 0;
	}
	rag_coll_unref(src);
	free(t.model);
	free(config);
	return rc;
}

void rag_reembed_abandon(struct rag_engine *eng, const struct store_job *job)
{
	char name[RAG_JOB_ID_MAX + 16];
	struct rag_err err = { 0 };

	staged_name(job, name, sizeof(name));
	if (rag_collection_delete(eng, job->tenant, name, &err) < 0 && err.code != RAG_ENOTFOUND)
		log_warn("job '%s': staging collection not deleted: %s", job->id, err.msg);
}

/* A document cut again: its chunks, each owning its text and section. */
struct rebuilt {
	struct store_chunk *chunks;
	char (*hashes)[HASH_HEX_LEN + 1];
	size_t n;
	char *blocks; /* the structure to store when the source had none; NULL to keep it */
};

static void rebuilt_release(struct rebuilt *r)
{
	for (size_t i = 0; r->chunks && i < r->n; i++) {
		free((char *)r->chunks[i].text);
		free((char *)r->chunks[i].section);
	}
	free(r->chunks);
	free(r->hashes);
	free(r->blocks);
	memset(r, 0, sizeof(*r));
}

static int rebuilt_alloc(struct rebuilt *r, size_t n, struct rag_err *err)
{
	r->n = n;
	r->chunks = calloc(n ? n : 1, sizeof(*r->chunks));
	r->hashes = calloc(n ? n : 1, sizeof(*r->hashes));
	return r->chunks && r->hashes ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
}

/* Same chunker settings: the source's chunks as they are, under the staging addresses. */
static int from_chunks(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		       const char *doc_id, struct rebuilt *r, struct rag_err *err)
{
	struct store_hit *hits = NULL;
	char settings[64];
	size_t n = 0;
	int rc = store_doc_chunks(eng->store, src->c.id, doc_id, &hits, &n, err);

	if (rc == 0)
		rc = rebuilt_alloc(r, n, err);
	rag_chunker_settings(dst, settings, sizeof(settings));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const void *parts[3] = { hits[i].text, settings, dst->emb->fingerprint };
		size_t pl[3] = { strlen(hits[i].text), strlen(settings),
				 strlen(dst->emb->fingerprint) };
		struct store_chunk *ch = &r->chunks[i];

		hash_hex(parts, pl, 3, r->hashes[i]);
		ch->start_byte = hits[i].start_byte;
		ch->end_byte = hits[i].end_byte;
		ch->page = hits[i].page;
		ch->hash = r->hashes[i];
		ch->section = hits[i].section; /* moved: r owns them now */
		ch->text = hits[i].text;
		hits[i].section = NULL;
		hits[i].text = NULL;
	}
	store_hits_release(hits, n);
	free(hits);
	return rc;
}

/*
 * The document's structure: decoded from what the store keeps, or for a
 * document stored before schema 5, its text read as plain text (one block
 * if that reading would not keep the text byte for byte).
 */
static int structure(const struct store_doc *doc, struct extract_document *xd, int *plain,
		     struct rag_err *err)
{
	struct extract_options xo = { .format = EXTRACT_TEXT };
	size_t len = strlen(doc->text);
	char one[96];

	*plain = !doc->blocks;
	if (doc->blocks)
		return extract_blocks_decode(doc->text, len, doc->blocks, xd, err);
	if (extract_document(doc->text, len, &xo, xd, NULL) == 0 && xd->text_len == len &&
	    memcmp(xd->text, doc->text, len) == 0)
		return 0;
	extract_document_release(xd);
	snprintf(one, sizeof(one), "B1 %d 1 1\n0:\n0 %zu %d 0 0 0\n", (int)EXTRACT_TEXT, len,
		 (int)EXTRACT_BLOCK_PARAGRAPH);
	return extract_blocks_decode(doc->text, len, one, xd, err);
}

/* Other chunker settings: the document cut again by the staging collection's chunker. */
static int from_structure(struct rag_engine *eng, struct rag_coll *dst,
			  const struct store_doc *doc, struct rebuilt *r, struct rag_err *err)
{
	struct extract_document xd = { 0 };
	struct rag_piece *pieces = NULL;
	size_t n = 0;
	int plain, rc = structure(doc, &xd, &plain, err);

	if (rc == 0)
		rc = rag_chunk_document(eng, dst, &xd, &pieces, &n, err);
	if (rc == 0 && plain) {
		log_info("document '%s' was stored before its structure was kept (schema 5):"
			 " cut again as plain text", doc->id);
		rc = extract_blocks_encode(&xd, &r->blocks, err);
	}
	if (rc == 0)
		rc = rebuilt_alloc(r, n, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct store_chunk *ch = &r->chunks[i];

		memcpy(r->hashes[i], pieces[i].hash, sizeof(r->hashes[i]));
		ch->start_byte = pieces[i].start;
		ch->end_byte = pieces[i].end;
		ch->page = pieces[i].page;
		ch->hash = r->hashes[i];
		ch->section = strdup(pieces[i].section);
		ch->text = strndup(xd.text + pieces[i].start, pieces[i].end - pieces[i].start);
		if (!ch->section || !ch->text)
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	free(pieces);
	extract_document_release(&xd);
	return rc;
}

/*
 * Fills vecs (n x dim) for the rebuilt chunks: from the staging collection,
 * from the source (same model: the address the text had there), else
 * embedded with the staging model.
 */
static int vectors(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		   const struct rebuilt *r, float *vecs, struct rag_err *err)
{
	size_t n = r->n, dim = (size_t)dst->c.dim, k = 0;
	const char **hp = calloc(n, sizeof(*hp)), **texts = calloc(n, sizeof(*texts));
	char (*old)[HASH_HEX_LEN + 1] = calloc(n, sizeof(*old));
	unsigned char *found = calloc(n, 1), *found2 = calloc(n, 1);
	size_t *slot = calloc(n, sizeof(*slot)), *lens = calloc(n, sizeof(*lens));
	float *tmp = calloc(n * dim, sizeof(float));
	int rc = 0;

	if (!hp || !texts || !old || !found || !found2 || !slot || !lens || !tmp) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		hp[i] = r->hashes[i];
	rc = store_vectors_by_hash(eng->store, dst->c.id, hp, n, dst->c.dim, vecs, found, err);
	if (rc == 0 && src->emb && strcmp(src->emb->fingerprint, dst->emb->fingerprint) == 0) {
		char settings[64];

		rag_chunker_settings(src, settings, sizeof(settings));
		for (size_t i = 0; i < n; i++) {
			const char *t = r->chunks[i].text;
			const void *parts[3] = { t, settings, src->emb->fingerprint };
			size_t pl[3] = { strlen(t), strlen(settings), strlen(src->emb->fingerprint) };

			if (found[i])
				continue;
			hash_hex(parts, pl, 3, old[k]);
			hp[k] = old[k];
			slot[k++] = i;
		}
		rc = k ? store_vectors_by_hash(eng->store, src->c.id, hp, k, dst->c.dim, tmp,
					       found2, err)
		       : 0;
		for (size_t j = 0; rc == 0 && j < k; j++) {
			if (!found2[j])
				continue;
			memcpy(vecs + slot[j] * dim, tmp + j * dim, dim * sizeof(float));
			found[slot[j]] = 1;
		}
	}
	k = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (found[i])
			continue;
		texts[k] = r->chunks[i].text;
		lens[k] = strlen(texts[k]);
		slot[k++] = i;
	}
	if (rc == 0 && k > 0)
		rc = embedder_embed(dst->emb, texts, lens, k, tmp, err);
	if (rc == 0)
		metric_add(rag_metrics.embedded, (double)k);
	for (size_t j = 0; rc == 0 && j < k; j++)
		memcpy(vecs + slot[j] * dim, tmp + j * dim, dim * sizeof(float));
out:
	free(hp);
	free(texts);
	free(old);
	free(found);
	free(found2);
	free(slot);
	free(lens);
	free(tmp);
	return rc;
}

/* Rebuilds one document of src in dst; *n_chunks gets its chunks. */
static int copy_doc(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		    const char *doc_id, int64_t *n_chunks, struct rag_err *err)
{
	struct store_doc doc = { 0 }, sd = { 0 };
	struct store_put put = { 0 };
	struct rebuilt r = { 0 };
	char a[64], b[64], dhash[HASH_HEX_LEN + 1];
	float *vecs = NULL;
	int rc;

	*n_chunks = 0;
	if (!rag_coll_embedder(dst, err))
		return RAG_EBUSY;
	rag_chunker_settings(src, a, sizeof(a));
	rag_chunker_settings(dst, b, sizeof(b));
	rc = store_doc_get(eng->store, src->c.id, doc_id, &doc, err);
	if (rc == 0)
		rc = strcmp(a, b) == 0 ? from_chunks(eng, src, dst, doc_id, &r, err)
				       : from_structure(eng, dst, &doc, &r, err);
	if (rc < 0 || r.n == 0)
		goto out;
	vecs = calloc(r.n * (size_t)dst->c.dim, sizeof(float));
	rc = vecs ? vectors(eng, src, dst, &r, vecs, err)
		  : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	if (rc < 0)
		goto out;
	staged_hash(doc.content_hash, dst, dhash);
	sd.id = doc.id;
	sd.text = doc.text;
	sd.metadata_json = doc.metadata_json;
	sd.content_hash = dhash;
	sd.blocks = r.blocks ? r.blocks : doc.blocks;
	put.doc = &sd;
	put.chunks = r.chunks;
	put.n_chunks = r.n;
	put.vecs = vecs;
	put.dim = dst->c.dim;
	put.model = dst->emb->fingerprint;
	rc = store_doc_put(eng->store, dst->c.id, &put, NULL, err);
	if (rc == 0) {
		*n_chunks = (int64_t)r.n;
		rag_index_catch_up(eng, dst, NULL);
	}
out:
	rebuilt_release(&r);
	store_doc_release(&doc);
	free(vecs);
	return rc;
}

/*
 * Brings dst's copy of one document in line with src: rebuilt (*n_chunks
 * gets its chunks), deleted (a document deleted from src meanwhile), or
 * left as it is (already staged from the same content).
 */
static int sync_doc(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		    const char *doc_id, int64_t *n_chunks, struct rag_err *err)
{
	char want[HASH_HEX_LEN + 1], *src_hash = NULL, *have = NULL;
	int rc = store_doc_hash(eng->store, src->c.id, doc_id, &src_hash, NULL, err);

	*n_chunks = 0;
	if (rc == RAG_ENOTFOUND) {
		rag_err_clear(err);
		rc = store_doc_delete(eng->store, dst->c.id, doc_id, NULL, err);
		if (rc == RAG_ENOTFOUND) {
			rag_err_clear(err);
			rc = 0;
		}
		return rc;
	}
	if (rc < 0)
		return rc;
	staged_hash(src_hash, dst, want);
	if (store_doc_hash(eng->store, dst->c.id, doc_id, &have, NULL, NULL) < 0 ||
	    strcmp(have, want) != 0)
		rc = copy_doc(eng, src, dst, doc_id, n_chunks, err);
	free(src_hash);
	free(have);
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
	rc = sync_doc(eng, src, dst, doc_id, n_chunks, err);
	rag_coll_unref(src);
	rag_coll_unref(dst);
	return rc;
}

/* Step 3's first pass: every document of src and of dst compared. */
static int reconcile(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		     struct rag_err *err)
{
	struct rag_coll *sides[2] = { src, dst };
	int64_t n_chunks;
	int rc = 0;

	for (int side = 0; side < 2 && rc == 0; side++) {
		char cursor[RAG_DOC_ID_MAX + 1] = "";
		size_t n = REEMBED_PAGE;

		while (rc == 0 && n == REEMBED_PAGE) {
			struct store_doc_query q = { *cursor ? cursor : NULL, REEMBED_PAGE, NULL };
			struct store_doc *docs = NULL;

			rc = store_doc_list(eng->store, sides[side]->c.id, &q, &docs, &n, err);
			for (size_t i = 0; rc == 0 && i < n; i++)
				rc = sync_doc(eng, src, dst, docs[i].id, &n_chunks, err);
			if (rc == 0 && n)
				snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
			store_doc_list_free(docs, n);
		}
	}
	return rc;
}

/* The documents src's change log names after *seq, synced; *seq advances past them. */
static int follow(struct rag_engine *eng, struct rag_coll *src, struct rag_coll *dst,
		  int64_t *seq, struct rag_err *err)
{
	struct store_change ch[REEMBED_CHANGES];
	size_t n = REEMBED_CHANGES;
	int64_t n_chunks;
	int rc = 0;

	while (rc == 0 && n == REEMBED_CHANGES) {
		n = 0;
		rc = store_changes(eng->store, src->c.id, *seq, REEMBED_CHANGES, ch, &n, err);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			rc = sync_doc(eng, src, dst, ch[i].document_id, &n_chunks, err);
			if (rc == 0)
				*seq = ch[i].seq;
		}
		store_changes_release(ch, n);
	}
	return rc;
}

static int job_cancelled(struct rag_engine *eng, const struct store_job *job)
{
	struct store_job now;
	int cancelled;

	if (store_job_get(eng->store, NULL, job->id, &now, NULL) < 0)
		return 0;
	cancelled = now.state == STORE_JOB_CANCELLED;
	store_job_release(&now);
	return cancelled;
}

/* The last pass and the swap, under src's write gate; the caller holds it. */
static int switch_over(struct rag_engine *eng, const struct store_job *job, struct rag_coll *src,
		       struct rag_coll *dst, int64_t seq, struct rag_err *err)
{
	char staged[RAG_JOB_ID_MAX + 16], retired[RAG_JOB_ID_MAX + 16];
	int rc = 0;

	staged_name(job, staged, sizeof(staged));
	snprintf(retired, sizeof(retired), ".retired.%s", job->id);
	for (int tries = 1; rc == 0; tries++) {
		rc = follow(eng, src, dst, &seq, err);
		if (rc == 0 && job_cancelled(eng, job))
			rc = rag_err_set(err, RAG_ECONFLICT, NULL, "job '%s' was cancelled", job->id);
		/* the swapped-in name loads from the snapshot; else it rebuilds */
		if (rc == 0 && rag_index_catch_up(eng, dst, NULL) == 0)
			rag_index_snapshot(eng, dst, NULL);
		if (rc == 0)
			rc = store_collection_swap(eng->store, job->tenant, job->collection, staged,
						   retired, seq, err);
		if (rc != RAG_EBUSY || tries == REEMBED_SWAP_TRIES)
			break;
		log_info("job '%s': '%s' was written to meanwhile, one more pass", job->id,
			 job->collection);
		rag_err_clear(err);
		rc = 0;
	}
	if (rc == 0)
		rag_engine_changed(eng);
	if (rc < 0)
		return rc;
	rag_coll_forget(eng, job->tenant, job->collection);
	rag_coll_forget(eng, job->tenant, staged);
	return 0;
}

int rag_reembed_finish(struct rag_engine *eng, const struct store_job *job, struct rag_err *err)
{
	char retired[RAG_JOB_ID_MAX + 16];
	struct rag_coll *src, *dst, *now;
	int64_t seq = 0;
	int rc = with_pair(eng, job, &src, &dst, err);

	if (rc < 0)
		return rc;
	snprintf(retired, sizeof(retired), ".retired.%s", job->id);
	rc = rag_coll_embedder(dst, err) ? 0 : RAG_EBUSY;
	if (rc == 0)
		rc = store_collection_seq(eng->store, src->c.id, &seq, err);
	if (rc == 0)
		rc = reconcile(eng, src, dst, err);
	if (rc == 0) {
		pthread_rwlock_wrlock(&src->write_gate);
		rc = switch_over(eng, job, src, dst, seq, err);
		pthread_rwlock_unlock(&src->write_gate);
	}
	if (rc == 0)
		log_info("job '%s': collection '%s' switched to model '%s', chunker %s/%d/%d",
			 job->id, job->collection, dst->c.embed_model,
			 chunk_strategy_name((enum chunk_strategy)dst->chunker), dst->c.chunk_size,
			 dst->c.chunk_overlap);
	rag_coll_unref(src);
	rag_coll_unref(dst);
	if (rc < 0)
		return rc;
	now = rag_coll_acquire(eng, job->tenant, job->collection, NULL);
	rag_coll_unref(now);
	if (store_collection_delete(eng->store, job->tenant, retired, err) < 0) {
		log_warn("job '%s': retired collection not deleted: %s", job->id, err->msg);
		rag_err_clear(err);
	}
	return 0;
}
