/*
 * The "chroma" vector index: a vindex whose vectors live in a collection on
 * a Chroma server (chroma_client.h), one Chroma collection per index, made
 * by vindex_create with a spec of type "chroma" whose chroma and
 * chroma_collection fields say where. It keeps vindex.h's contract with
 * these differences, which a remote index cannot avoid:
 *
 *   - add, remove and search make HTTP calls; they may fail with RAG_EBUSY
 *     (the server is down or slower than the client's timeout) or RAG_EIO,
 *     and work again by themselves once the server answers.
 *   - add is not atomic across Chroma requests: after an error some of the
 *     vectors may be in. Upserts are idempotent, so replaying the same add
 *     (what the change-log follower does) converges.
 *   - remove cannot report a failure: ids Chroma did not confirm deleting
 *     stay pending, are excluded from every search and are sent again
 *     before the next write, search or save; a save with removals still
 *     pending fails rather than record a state the server does not have.
 *   - scores are 1 - Chroma's inner-product distance, computed and sent in
 *     float32 (within ~1e-6 of the flat index's); Chroma's HNSW is
 *     approximate, so rankings can differ from the exact scan on large
 *     collections.
 *   - the snapshot holds no vectors: its payload is a small JSON record of
 *     the server, tenant, database, collection name and id, dimension and
 *     record count; adopting it checks all of them against the spec and the
 *     server, so a wiped, recreated or changed collection is rebuilt from
 *     the store instead of trusted. The store stays the truth.
 *
 * State kept here is small: the collection's name and id, the record count
 * as of the last write (refreshed from the server after each one, so count
 * needs no call), and the removals Chroma has not confirmed.
 *
 * Search. Chroma answers distances 1 - <q, v> for the "ip" space, so the
 * score is 1 - distance; answers are re-sorted by (score desc, id asc) so
 * ties come out as the flat index orders them. Chroma cannot call our keep
 * predicate, so a filtered search either sends the allowed ids (the
 * filter's hint, when there are at most CHROMA_WHERE_MAX of them) as
 * `where: {rid: {$in: [...]}}`, or over-fetches: ask for max(4k,
 * SEARCH_FETCH_MIN) plus the pending removals, keep what keep() accepts,
 * and ask again for four times as many until k are kept or Chroma answers
 * fewer than asked (it has no more). A filter matching few of many vectors
 * thus costs a few round trips with growing answers.
 *
 * Rejected: mirroring the vectors locally to filter and score exactly (it
 * would be a flat index with a remote copy); Chroma's `ids` restriction on
 * queries (it fails outright when one id is not in the collection, which a
 * replay lagging behind the store makes routine).
 */
#include "index/vindex.h"
#include "index/chroma_client.h"
#include "index/vindex_backends.h"
#include "index/vindex_snapshot.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

#define SEARCH_FETCH_MIN 64	/* first over-fetch: one round trip covers most filters */
#define SEARCH_FETCH_GROWTH 4	/* each further round asks for this many times more */
#define CHROMA_WHERE_MAX 1024	/* allowed ids sent as a where clause: ~8 KB of JSON */
#define SNAPSHOT_VERSION 1	/* of the JSON payload */

static const struct vindex_ops chroma_ops;

struct chroma_index {
	struct vindex base;
	struct chroma_client *cl; /* borrowed */
	char *name;
	char id[CHROMA_ID_MAX];
	/*
	 * Locking: lock is held shared by searches and exclusive by add,
	 * remove, save and the flushing of pending removals; it guards pending
	 * and n_pending. count is atomic so count() reads it without the lock.
	 * cl, name and id never change after creation.
	 */
	pthread_rwlock_t lock;
	int64_t *pending; /* ascending, unique: removed here, not yet on the server */
	size_t n_pending, cap_pending;
	atomic_size_t count;
};

static struct chroma_index *of(struct vindex *vi)
{
	return (struct chroma_index *)vi;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int is_pending(const struct chroma_index *ci, int64_t id)
{
	return ci->n_pending &&
	       bsearch(&id, ci->pending, ci->n_pending, sizeof(int64_t), cmp_id) != NULL;
}

/* Refreshes the cached count; keeps the old one when the server does not answer. */
static void refresh_count(struct chroma_index *ci)
{
	size_t n;

	if (chroma_count(ci->cl, ci->id, &n, NULL) == 0)
		atomic_store(&ci->count, n);
}

/* Sends the pending removals. Caller holds the lock exclusive. */
static int flush_pending(struct chroma_index *ci, struct rag_err *err)
{
	int rc;

	if (ci->n_pending == 0)
		return 0;
	rc = chroma_delete(ci->cl, ci->id, ci->pending, ci->n_pending, err);
	if (rc == 0) {
		ci->n_pending = 0;
		refresh_count(ci);
	}
	return rc;
}

/* Merges ids into pending (sorted, unique). Caller holds the lock exclusive. */
static int add_pending(struct chroma_index *ci, const int64_t *ids, size_t n)
{
	size_t need = ci->n_pending + n, m = 0;

	if (need < n)
		return RAG_ENOMEM;
	if (need > ci->cap_pending) {
		size_t cap = ci->cap_pending ? ci->cap_pending : 64;
		int64_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(ci->pending, cap * sizeof(*p));
		if (!p)
			return RAG_ENOMEM;
		ci->pending = p;
		ci->cap_pending = cap;
	}
	memcpy(ci->pending + ci->n_pending, ids, n * sizeof(*ids));
	qsort(ci->pending, need, sizeof(*ci->pending), cmp_id);
	for (size_t i = 0; i < need; i++)
		if (m == 0 || ci->pending[m - 1] != ci->pending[i])
			ci->pending[m++] = ci->pending[i];
	ci->n_pending = m;
	return 0;
}

static int chroma_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
		      struct rag_err *err)
{
	struct chroma_index *ci = of(vi);
	int rc;

	if (n == 0)
		return 0;
	if (!ids || !vecs)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_add: NULL ids or vectors");
	for (size_t i = 0; i < n * vi->dim; i++)
		if (!isfinite(vecs[i]))
			return rag_err_set(err, RAG_EINVAL, NULL,
					   "vector for id %lld has a NaN or infinite component",
					   (long long)ids[i / vi->dim]);
	pthread_rwlock_wrlock(&ci->lock);
	rc = flush_pending(ci, err);
	if (rc == 0)
		rc = chroma_upsert(ci->cl, ci->id, ids, vecs, n, vi->dim, err);
	refresh_count(ci);
	pthread_rwlock_unlock(&ci->lock);
	return rc;
}

static size_t chroma_remove(struct vindex *vi, const int64_t *ids, size_t n)
{
	struct chroma_index *ci = of(vi);
	size_t before, after;

	pthread_rwlock_wrlock(&ci->lock);
	before = atomic_load(&ci->count);
	if (add_pending(ci, ids, n) < 0) {
		/* No room to remember them: try them now, alone. */
		if (chroma_delete(ci->cl, ci->id, ids, n, NULL) == 0)
			refresh_count(ci);
	} else {
		flush_pending(ci, NULL);
	}
	after = atomic_load(&ci->count);
	pthread_rwlock_unlock(&ci->lock);
	return before > after ? before - after : 0;
}

/* Answers, scored and ordered as the flat index orders them. */
struct hit {
	int64_t id;
	float score;
};

static int by_score(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * One query of n_results; keeps in hits (room for n_results) the answers
 * that are not pending and that filter keeps. *n_answered is how many
 * Chroma sent before that. Caller holds the lock shared.
 */
static int query_once(struct chroma_index *ci, const float *query, size_t n_results,
		      const struct vindex_filter *filter, int use_where, struct hit *hits,
		      size_t *n_hits, size_t *n_answered, struct rag_err *err)
{
	struct chroma_query q = { query, ci->base.dim, n_results, NULL, 0 };
	int64_t *ids = malloc(n_results * sizeof(*ids));
	float *dists = malloc(n_results * sizeof(*dists));
	size_t n = 0, m = 0;
	int rc;

	if (use_where) {
		q.where_ids = filter->ids;
		q.n_where_ids = filter->n_ids;
	}
	if (!ids || !dists) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for %zu results", n_results);
		goto out;
	}
	rc = chroma_query(ci->cl, ci->id, &q, ids, dists, &n, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (is_pending(ci, ids[i]) || (filter && !filter->keep(filter->ctx, ids[i])))
			continue;
		hits[m++] = (struct hit){ ids[i], 1.0f - dists[i] };
	}
	*n_hits = m;
	*n_answered = n;
out:
	free(ids);
	free(dists);
	return rc;
}

static int chroma_search(struct vindex *vi, const float *query, size_t k,
			 const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
			 size_t *n_out, struct rag_err *err)
{
	struct chroma_index *ci = of(vi);
	struct hit *hits = NULL;
	size_t want, n_hits = 0, n_answered = 0;
	int use_where, rc = 0;

	*n_out = 0;
	if (!query || (k > 0 && !out_ids))
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL query or output");
	for (size_t i = 0; i < vi->dim; i++)
		if (!isfinite(query[i]))
			return rag_err_set(err, RAG_EINVAL, NULL,
					   "query has a NaN or infinite component");
	if (k == 0)
		return 0;
	pthread_rwlock_rdlock(&ci->lock);
	if (ci->n_pending > 0) {
		pthread_rwlock_unlock(&ci->lock);
		pthread_rwlock_wrlock(&ci->lock);
		flush_pending(ci, NULL); /* best effort: leftovers are skipped below */
		pthread_rwlock_unlock(&ci->lock);
		pthread_rwlock_rdlock(&ci->lock);
	}
	use_where = filter && filter->ids && filter->n_ids <= CHROMA_WHERE_MAX;
	if (filter && filter->ids && filter->n_ids == 0)
		goto out; /* nothing allowed */
	/*
	 * Without a filter (or with the where clause) k answers plus the
	 * pending ones are enough; otherwise start over-fetching.
	 */
	want = k + ci->n_pending;
	if (filter && !use_where)
		want = (k > SEARCH_FETCH_MIN / SEARCH_FETCH_GROWTH ? k * SEARCH_FETCH_GROWTH
								     : SEARCH_FETCH_MIN) +
		       ci->n_pending;
	for (;;) {
		free(hits);
		hits = malloc(want * sizeof(*hits));
		if (!hits) {
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for %zu results", want);
			break;
		}
		rc = query_once(ci, query, want, filter, use_where, hits, &n_hits, &n_answered,
				err);
		if (rc < 0 || n_hits >= k || n_answered < want || !filter || use_where)
			break;
		if (want > SIZE_MAX / sizeof(*hits) / SEARCH_FETCH_GROWTH)
			break;
		want *= SEARCH_FETCH_GROWTH;
	}
	if (rc == 0) {
		qsort(hits, n_hits, sizeof(*hits), by_score);
		for (size_t i = 0; i < n_hits && i < k; i++) {
			out_ids[i] = hits[i].id;
			if (out_scores)
				out_scores[i] = hits[i].score;
		}
		*n_out = n_hits < k ? n_hits : k;
	}
out:
	pthread_rwlock_unlock(&ci->lock);
	free(hits);
	return rc;
}

static size_t chroma_index_count(struct vindex *vi)
{
	return atomic_load(&of(vi)->count);
}

static size_t chroma_memory(struct vindex *vi)
{
	struct chroma_index *ci = of(vi);
	size_t n;

	pthread_rwlock_rdlock(&ci->lock);
	n = sizeof(*ci) + strlen(ci->name) + 1 + ci->cap_pending * sizeof(int64_t);
	pthread_rwlock_unlock(&ci->lock);
	return n;
}

/* The snapshot's payload: where the vectors are and how many. */
static char *snapshot_json(struct chroma_index *ci, size_t count)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I}", "version", SNAPSHOT_VERSION,
			      "url", chroma_client_url(ci->cl), "tenant",
			      chroma_client_tenant(ci->cl), "database",
			      chroma_client_database(ci->cl), "collection", ci->name, "id", ci->id,
			      "count", (json_int_t)count);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

static int chroma_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err)
{
	struct chroma_index *ci = of(vi);
	size_t count = 0;
	char *text = NULL;
	int rc;

	pthread_rwlock_wrlock(&ci->lock);
	rc = flush_pending(ci, err);
	if (rc == 0)
		rc = chroma_count(ci->cl, ci->id, &count, err);
	if (rc == 0) {
		atomic_store(&ci->count, count);
		text = snapshot_json(ci, count);
		rc = text ? vindex_snapshot_write(path, VINDEX_SNAPSHOT_KIND_CHROMA, vi->dim, 0,
						  NULL, text, strlen(text), seq, err)
			  : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	pthread_rwlock_unlock(&ci->lock);
	free(text);
	return rc;
}

static int chroma_check(struct vindex *vi, struct rag_err *err)
{
	struct chroma_index *ci = of(vi);
	size_t count = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&ci->lock);
	for (size_t i = 1; i < ci->n_pending && rc == 0; i++)
		if (ci->pending[i - 1] >= ci->pending[i])
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "pending removals are not ascending at %zu", i);
	if (rc == 0 && ci->n_pending > ci->cap_pending)
		rc = rag_err_set(err, RAG_EINTERNAL, NULL, "pending removals overflow");
	if (rc == 0)
		rc = chroma_collection_check(ci->cl, ci->name, ci->id, err);
	if (rc == 0 && ci->n_pending == 0)
		rc = chroma_count(ci->cl, ci->id, &count, err);
	if (rc == 0 && ci->n_pending == 0 && count != atomic_load(&ci->count))
		rc = rag_err_set(err, RAG_EINTERNAL, NULL,
				 "Chroma collection '%s' holds %zu records, the index counts %zu",
				 ci->name, count, atomic_load(&ci->count));
	pthread_rwlock_unlock(&ci->lock);
	return rc;
}

static int chroma_drop(struct vindex *vi, struct rag_err *err)
{
	struct chroma_index *ci = of(vi);
	int rc;

	pthread_rwlock_wrlock(&ci->lock);
	rc = chroma_collection_drop(ci->cl, ci->name, err);
	if (rc == 0) {
		ci->n_pending = 0;
		atomic_store(&ci->count, 0);
	}
	pthread_rwlock_unlock(&ci->lock);
	return rc;
}

static void chroma_free(struct vindex *vi)
{
	struct chroma_index *ci = of(vi);

	pthread_rwlock_destroy(&ci->lock);
	free(ci->pending);
	free(ci->name);
	free(ci);
}

static const struct vindex_ops chroma_ops = {
	.name = "chroma",
	.add = chroma_add,
	.remove = chroma_remove,
	.search = chroma_search,
	.count = chroma_index_count,
	.memory = chroma_memory,
	.save = chroma_save,
	.check = chroma_check,
	.free = chroma_free,
	.drop = chroma_drop,
};

/* The index object, not yet attached to a collection. */
static struct chroma_index *alloc_index(const struct vindex_spec *spec, size_t dim,
					struct rag_err *err)
{
	struct chroma_index *ci;
	pthread_rwlockattr_t attr;

	if (!spec || !spec->chroma || !memchr(spec->chroma_collection, 0,
					      sizeof(spec->chroma_collection)) ||
	    !spec->chroma_collection[0]) {
		rag_err_set(err, RAG_EINVAL, "index.type",
			    "a chroma index needs a Chroma server and a collection name");
		return NULL;
	}
	if (dim == 0 || dim > VINDEX_DIM_MAX) {
		rag_err_set(err, RAG_EINVAL, NULL, "chroma index: dimension %zu out of range", dim);
		return NULL;
	}
	ci = calloc(1, sizeof(*ci));
	if (ci)
		ci->name = strdup(spec->chroma_collection);
	if (!ci || !ci->name) {
		free(ci);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	ci->base.ops = &chroma_ops;
	ci->base.dim = dim;
	ci->cl = spec->chroma;
	atomic_init(&ci->count, 0);
	/* Writers first, as the flat index: searches must not starve replay. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&ci->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return ci;
}

struct vindex *vindex_chroma_new(size_t dim, const struct vindex_spec *spec,
				 struct rag_err *err)
{
	struct chroma_index *ci = alloc_index(spec, dim, err);
	struct chroma_collection_params p;
	int rc;

	if (!ci)
		return NULL;
	p = (struct chroma_collection_params){ dim, spec->m, spec->ef_construction,
					       spec->ef_search };
	rc = chroma_collection_drop(ci->cl, ci->name, err);
	if (rc == 0)
		rc = chroma_collection_ensure(ci->cl, ci->name, &p, ci->id, err);
	if (rc < 0) {
		chroma_free(&ci->base);
		return NULL;
	}
	return &ci->base;
}

/* Whether the JSON string field key of o equals want. */
static int same(json_t *o, const char *key, const char *want)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && strcmp(s, want) == 0;
}

struct vindex *vindex_chroma_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				   struct rag_err *err)
{
	json_t *o = json_loadb(snap->payload, snap->payload_len, 0, NULL);
	struct chroma_index *ci = NULL;
	const char *id = json_string_value(json_object_get(o, "id"));
	json_int_t count = json_integer_value(json_object_get(o, "count"));
	size_t have = 0;

	if (!json_is_object(o) || json_integer_value(json_object_get(o, "version")) !=
					  SNAPSHOT_VERSION ||
	    !id || strlen(id) >= CHROMA_ID_MAX || count < 0 || snap->n != 0) {
		rag_err_set(err, RAG_EINVAL, NULL, "its chroma record is malformed");
		goto fail;
	}
	ci = alloc_index(spec, snap->dim, err);
	if (!ci)
		goto fail;
	if (!same(o, "url", chroma_client_url(ci->cl)) ||
	    !same(o, "tenant", chroma_client_tenant(ci->cl)) ||
	    !same(o, "database", chroma_client_database(ci->cl)) ||
	    !same(o, "collection", ci->name)) {
		rag_err_set(err, RAG_EINVAL, NULL,
			    "it is for another Chroma server, database or collection");
		goto fail;
	}
	snprintf(ci->id, sizeof(ci->id), "%s", id);
	if (chroma_collection_check(ci->cl, ci->name, ci->id, err) < 0 ||
	    chroma_count(ci->cl, ci->id, &have, err) < 0)
		goto fail;
	if (have != (size_t)count) {
		rag_err_set(err, RAG_EINVAL, NULL,
			    "Chroma collection '%s' holds %zu records, the snapshot recorded %lld",
			    ci->name, have, (long long)count);
		goto fail;
	}
	atomic_store(&ci->count, have);
	json_decref(o);
	vindex_snapshot_release(snap);
	return &ci->base;
fail:
	if (ci)
		chroma_free(&ci->base);
	json_decref(o);
	vindex_snapshot_release(snap);
	return NULL;
}
