/*
 * A collection's index lifecycle: load (snapshot, else rebuild from the
 * store), catch up with the change log, save a snapshot.
 *
 * Replay is idempotent: a PUT change re-adds whichever of its chunks still
 * exist (a later DELETE of the same range then removes them), a DELETE
 * removes ids that may already be gone. So an index at seq S plus the log
 * after S always ends equal to the store, whatever S was taken from.
 * Vectors are added in batches so that the index's write lock is taken once
 * per batch rather than once per chunk.
 */
#include "rag/rag_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "index/lexical.h"
#include "index/vindex.h"
#include "rag/rag_shard.h"

#include "core/banned.h"

#define INDEX_ADD_BATCH 1024  /* vectors per vindex_add during builds and replay */
#define INDEX_CHANGES_BATCH 256 /* change-log entries read per store call */

/*
 * Rows on their way into the indexes: either may be NULL (a snapshot-loaded
 * vector index needs only the lexical side rebuilt). With sharding, only
 * the chunks of documents in this instance's shards go to the vector index;
 * the lexical index takes every chunk (see docs/sharding.md: BM25's corpus
 * statistics must be the whole collection's for scores to equal an
 * unsharded instance's).
 */
struct add_buf {
	struct vindex *vi;
	struct lexical *lx;
	const struct rag_shards *shards; /* NULL: every chunk is ours */
	size_t dim, n, n_vec;
	int64_t ids[INDEX_ADD_BATCH];
	int64_t vec_ids[INDEX_ADD_BATCH];
	char *texts[INDEX_ADD_BATCH];
	size_t lens[INDEX_ADD_BATCH];
	float *vecs;
	struct rag_err *err;
};

static int flush(struct add_buf *b)
{
	int rc = 0;

	if (b->n_vec > 0 && b->vi)
		rc = vindex_add(b->vi, b->vec_ids, b->vecs, b->n_vec, b->err);
	if (b->n > 0 && b->lx && rc == 0)
		rc = lexical_add(b->lx, b->ids, (const char *const *)b->texts, b->lens, b->n,
				 b->err);
	for (size_t i = 0; i < b->n; i++) {
		free(b->texts[i]);
		b->texts[i] = NULL;
	}
	b->n = 0;
	b->n_vec = 0;
	return rc;
}

static int add_cb(void *ctx, const struct store_chunk_row *row)
{
	struct add_buf *b = ctx;

	if (b->shards && b->vi && !row->document_id)
		return rag_err_set(b->err, RAG_EINTERNAL, NULL,
				   "the store gave chunk %lld without its document id, which "
				   "sharding routes by", (long long)row->id);
	b->ids[b->n] = row->id;
	if (b->vi && (!b->shards || rag_shards_holds(b->shards, row->document_id))) {
		memcpy(b->vecs + b->n_vec * b->dim, row->vec, b->dim * sizeof(float));
		b->vec_ids[b->n_vec++] = row->id;
	}
	if (b->lx) {
		b->texts[b->n] = malloc(row->text_len + 1);
		if (!b->texts[b->n])
			return rag_err_set(b->err, RAG_ENOMEM, NULL, "out of memory building an index");
		memcpy(b->texts[b->n], row->text, row->text_len + 1);
		b->lens[b->n] = row->text_len;
	}
	if (++b->n == INDEX_ADD_BATCH)
		return flush(b);
	return 0;
}

static struct add_buf *add_buf_new(struct rag_engine *eng, struct vindex *vi,
				   struct lexical *lx, size_t dim, struct rag_err *err)
{
	struct add_buf *b = calloc(1, sizeof(*b));

	if (b)
		b->vecs = malloc(INDEX_ADD_BATCH * dim * sizeof(float));
	if (!b || !b->vecs) {
		if (b)
			free(b);
		return NULL;
	}
	b->vi = vi;
	b->lx = lx;
	b->shards = eng->opts.shards;
	b->dim = dim;
	b->err = err;
	return b;
}

static void add_buf_free(struct add_buf *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->texts[i]);
	free(b->vecs);
	free(b);
}

void rag_coll_index_place(struct rag_engine *eng, struct rag_coll *coll)
{
	char *name = coll->ispec.chroma_collection;
	size_t len = sizeof(coll->ispec.chroma_collection);

	coll->ispec.chroma = eng->opts.chroma;
	/*
	 * Chroma names are [A-Za-z0-9._-], start and end alphanumeric, and may
	 * not hold "..": the id ends it, and dots (ours may repeat) become '_'.
	 */
	snprintf(name, len, "ragd-%s-%" PRId64, coll->c.name, coll->c.id);
	for (char *p = name; *p; p++)
		if (*p == '.')
			*p = '_';
}

void rag_index_drop(struct rag_coll *coll)
{
	struct rag_err err = { 0 };

	if (vindex_drop(coll->vi, &err) < 0)
		log_warn("collection '%s' deleted, but not its vector index: %s", coll->c.name,
			 err.msg);
}

char *rag_index_path(struct rag_engine *eng, int64_t collection_id)
{
	struct sbuf sb = SBUF_INIT;

	/*
	 * A sharded index holds only some documents: its snapshot is named by
	 * the shard count and the shards held, so a changed assignment rebuilds
	 * instead of loading another set's vectors.
	 */
	if (eng->opts.shards)
		sbuf_addf(&sb, "%s/%" PRId64 ".s%zu-%" PRIx64 ".vidx", eng->index_dir, collection_id,
			  rag_shards_count(eng->opts.shards), rag_shards_held(eng->opts.shards));
	else
		sbuf_addf(&sb, "%s/%" PRId64 ".vidx", eng->index_dir, collection_id);
	return sbuf_detach(&sb, NULL);
}

/*
 * Builds the lexical index, and the vector index too unless keep_vectors
 * (one loaded from a snapshot), from one scan of the store. Returns the
 * scan's seq in *seq_out.
 */
static int rebuild(struct rag_engine *eng, struct rag_coll *coll, int keep_vectors,
		   int64_t *seq_out, struct rag_err *err)
{
	struct vindex *vi = keep_vectors ? NULL : vindex_create(&coll->ispec, (size_t)coll->c.dim, err);
	struct lexical *lx = (vi || keep_vectors) ? lexical_new(coll->porter, err) : NULL;
	struct add_buf *b = (vi || keep_vectors) && lx
				    ? add_buf_new(eng, vi, lx, (size_t)coll->c.dim, err)
				    : NULL;
	int rc;

	if (!b) {
		vindex_free(vi);
		lexical_free(lx);
		return rag_err_set(err, RAG_ENOMEM, NULL, "cannot build the index of collection '%s'",
				   coll->c.name);
	}
	rc = store_chunks_scan(eng->store, coll->c.id, add_cb, b, seq_out, err);
	if (rc == 0)
		rc = flush(b);
	add_buf_free(b);
	if (rc < 0) {
		vindex_free(vi);
		lexical_free(lx);
		return rc;
	}
	lexical_free(coll->lx);
	coll->lx = lx;
	if (!keep_vectors) {
		vindex_free(coll->vi);
		coll->vi = vi;
		atomic_store(&coll->applied_seq, *seq_out);
		coll->snapshot_seq = -1;
	}
	return 0;
}

int rag_index_load(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err)
{
	char *path = rag_index_path(eng, coll->c.id);
	struct rag_err lerr = { 0 };
	uint64_t seq = 0;
	struct vindex *vi = NULL;
	double t0 = rag_now_ms();
	int64_t scan_seq = 0;
	int rc = 0;

	pthread_mutex_lock(&coll->apply_mu);
	if (path && access(path, F_OK) == 0)
		vi = vindex_open(&coll->ispec, path, (size_t)coll->c.dim, &seq, &lerr);
	if (vi && (int64_t)seq <= coll->c.seq) {
		/*
		 * The lexical index is rebuilt from a scan at a seq at or after
		 * the snapshot's; replaying from the snapshot's seq is
		 * idempotent for it.
		 */
		coll->vi = vi;
		atomic_store(&coll->applied_seq, (int64_t)seq);
		coll->snapshot_seq = (int64_t)seq;
		rc = rebuild(eng, coll, 1, &scan_seq, err);
	} else {
		if (vi)
			log_warn("snapshot '%s' is ahead of the store; rebuilding", path);
		else if (lerr.code)
			log_warn("snapshot '%s' unusable (%s); rebuilding", path, lerr.msg);
		vindex_free(vi);
		rc = rebuild(eng, coll, 0, &scan_seq, err);
	}
	pthread_mutex_unlock(&coll->apply_mu);
	free(path);
	if (rc == 0)
		rc = rag_index_catch_up(eng, coll, err);
	if (rc == 0)
		log_debug("collection '%s' index ready: %zu vectors at seq %lld in %.1f ms",
			  coll->c.name, vindex_count(coll->vi),
			  (long long)atomic_load(&coll->applied_seq), rag_now_ms() - t0);
	return rc;
}

static int apply_delete(struct rag_coll *coll, const struct store_change *ch)
{
	int64_t ids[INDEX_ADD_BATCH];

	for (int64_t id = ch->first_chunk; id <= ch->last_chunk;) {
		size_t n = 0;

		while (n < INDEX_ADD_BATCH && id <= ch->last_chunk)
			ids[n++] = id++;
		vindex_remove(coll->vi, ids, n);
	}
	return coll->lx ? lexical_remove_range(coll->lx, ch->first_chunk, ch->last_chunk, NULL) : 0;
}

static int apply(struct rag_engine *eng, struct rag_coll *coll, struct add_buf *b,
		 const struct store_change *ch, struct rag_err *err)
{
	int rc;

	if (ch->op == STORE_CHANGE_DELETE)
		return apply_delete(coll, ch);
	rc = store_chunk_vectors(eng->store, coll->c.id, ch->first_chunk, ch->last_chunk, add_cb,
				 b, err);
	return rc < 0 ? rc : flush(b);
}

int rag_index_catch_up(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err)
{
	struct store_change ch[INDEX_CHANGES_BATCH];
	struct add_buf *b = NULL;
	int64_t seq;
	int rc;

	if (!coll->vi)
		return 0;
	rc = store_collection_seq(eng->store, coll->c.id, &seq, err);
	if (rc == 0 && seq <= atomic_load(&coll->applied_seq))
		atomic_store(&coll->caught_up_ms, rag_wall_ms());
	if (rc < 0 || seq <= atomic_load(&coll->applied_seq))
		return rc == RAG_ENOTFOUND ? 0 : rc;
	pthread_mutex_lock(&coll->apply_mu);
	b = add_buf_new(eng, coll->vi, coll->lx, (size_t)coll->c.dim, err);
	if (!b) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory replaying changes");
		goto out;
	}
	for (;;) {
		size_t n = 0;
		int64_t from = atomic_load(&coll->applied_seq);

		rc = store_changes(eng->store, coll->c.id, from, INDEX_CHANGES_BATCH, ch, &n, err);
		if (rc < 0)
			break;
		for (size_t i = 0; i < n && rc == 0; i++) {
			rc = apply(eng, coll, b, &ch[i], err);
			if (rc == 0)
				atomic_store(&coll->applied_seq, ch[i].seq);
		}
		store_changes_release(ch, n);
		if (rc < 0 || n < INDEX_CHANGES_BATCH)
			break;
	}
out:
	add_buf_free(b);
	if (rc == 0 && atomic_load(&coll->applied_seq) >= seq)
		atomic_store(&coll->caught_up_ms, rag_wall_ms());
	pthread_mutex_unlock(&coll->apply_mu);
	if (rc == RAG_ENOTFOUND)
		rc = 0; /* deleted meanwhile: the follower drops it */
	return rc;
}

int rag_index_snapshot(struct rag_engine *eng, struct rag_coll *coll, struct rag_err *err)
{
	char *path;
	int64_t seq;
	int rc = 0;

	if (!coll->vi)
		return 0;
	pthread_mutex_lock(&coll->apply_mu);
	seq = atomic_load(&coll->applied_seq);
	if (seq != coll->snapshot_seq) {
		path = rag_index_path(eng, coll->c.id);
		rc = path ? vindex_save(coll->vi, path, (uint64_t)seq, err)
			  : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		if (rc == 0)
			coll->snapshot_seq = seq;
		free(path);
	}
	pthread_mutex_unlock(&coll->apply_mu);
	return rc;
}
