/*
 * Two levels: the in-process LRU in front of Redis (standalone or cluster).
 *
 * A get asks the front, then the back; a back hit is copied into the front
 * so the next one costs no round trip. Puts go to both. No invalidation is
 * needed between instances because keys name immutable values (search and
 * answer keys carry the collection's change seq), so an instance's front
 * can never hold something another instance's write made wrong.
 *
 * Entries copied from the back get TWO_LEVEL_FILL_TTL_S in the front: the
 * back's remaining TTL is unknown, and the value stays correct anyway.
 */
#include "cache/cache_int.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/rag_error.h"

#include "core/banned.h"

#define TWO_LEVEL_FILL_TTL_S 300 /* bounds how long a front keeps a copy it did not write */

struct two_level {
	struct cache base;
	struct cache *front, *back;
};

static int t_get(struct cache *c, const char *key, size_t key_len, void **val, size_t *val_len)
{
	struct two_level *t = (struct two_level *)c;
	int rc = t->front->ops->get(t->front, key, key_len, val, val_len);

	if (rc != RAG_ENOTFOUND)
		return rc;
	rc = t->back->ops->get(t->back, key, key_len, val, val_len);
	if (rc == 0)
		t->front->ops->put(t->front, key, key_len, *val, *val_len, TWO_LEVEL_FILL_TTL_S);
	return rc;
}

static void t_mget(struct cache *c, const char *const *keys, const size_t *key_lens, size_t n,
		   void **vals, size_t *val_lens, int *rcs)
{
	struct two_level *t = (struct two_level *)c;
	const char *bk[CACHE_MGET_MAX];
	size_t bl[CACHE_MGET_MAX], idx[CACHE_MGET_MAX], m = 0;
	void *bv[CACHE_MGET_MAX];
	size_t bvl[CACHE_MGET_MAX];
	int brc[CACHE_MGET_MAX];

	for (size_t i = 0; i < n; i++) {
		rcs[i] = t->front->ops->get(t->front, keys[i], key_lens[i], &vals[i], &val_lens[i]);
		if (rcs[i] == RAG_ENOTFOUND) {
			bk[m] = keys[i];
			bl[m] = key_lens[i];
			bv[m] = NULL;
			bvl[m] = 0;
			idx[m++] = i;
		}
	}
	if (m == 0)
		return;
	if (t->back->ops->mget) {
		t->back->ops->mget(t->back, bk, bl, m, bv, bvl, brc);
	} else {
		for (size_t j = 0; j < m; j++)
			brc[j] = t->back->ops->get(t->back, bk[j], bl[j], &bv[j], &bvl[j]);
	}
	for (size_t j = 0; j < m; j++) {
		size_t i = idx[j];

		rcs[i] = brc[j];
		vals[i] = bv[j];
		val_lens[i] = bvl[j];
		if (brc[j] == 0)
			t->front->ops->put(t->front, keys[i], key_lens[i], bv[j], bvl[j],
					   TWO_LEVEL_FILL_TTL_S);
	}
}

static int t_put(struct cache *c, const char *key, size_t key_len, const void *val,
		 size_t val_len, int ttl_s)
{
	struct two_level *t = (struct two_level *)c;
	int a = t->front->ops->put(t->front, key, key_len, val, val_len, ttl_s);
	int b = t->back->ops->put(t->back, key, key_len, val, val_len, ttl_s);

	return b < 0 ? b : a;
}

static int t_del(struct cache *c, const char *key, size_t key_len)
{
	struct two_level *t = (struct two_level *)c;
	int a = t->front->ops->del(t->front, key, key_len);
	int b = t->back->ops->del(t->back, key, key_len);

	return a == 0 || b == 0 ? 0 : b;
}

static size_t t_stats(struct cache *c, struct cache_stats *out)
{
	struct two_level *t = (struct two_level *)c;
	size_t n = t->front->ops->stats(t->front, out);

	return n + t->back->ops->stats(t->back, out + n);
}

static void t_free(struct cache *c)
{
	struct two_level *t = (struct two_level *)c;

	t->front->ops->free(t->front);
	t->back->ops->free(t->back);
	free(t);
}

static const struct cache_ops two_level_ops = { "two-level", t_get,  t_mget, t_put,
						 t_del,       t_stats, t_free };

struct cache *cache_two_level_new(struct cache *front, struct cache *back)
{
	struct two_level *t = calloc(1, sizeof(*t));

	if (!t) {
		front->ops->free(front);
		back->ops->free(back);
		return NULL;
	}
	t->base.ops = &two_level_ops;
	t->front = front;
	t->back = back;
	return &t->base;
}
