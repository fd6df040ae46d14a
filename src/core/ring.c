/*
 * The consistent-hash ring (see ring.h): a sorted array of (point, shard)
 * and a binary search per lookup. n_shards x vnodes points, at most
 * 64 x 4096, so the whole ring is a few megabytes at worst and usually a
 * few kilobytes.
 *
 * Points that collide (two 64-bit hashes equal: never seen, but possible)
 * are ordered by shard so the ring stays deterministic.
 */
#include "core/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

struct point {
	uint64_t at;
	uint32_t shard;
};

struct ring {
	size_t n_shards;
	size_t n_points;
	struct point points[];
};

uint64_t ring_hash64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a offset basis */

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL; /* FNV prime */
	}
	/* fmix64: FNV alone leaves short, similar keys clustered on the circle. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int by_point(const void *a, const void *b)
{
	const struct point *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return (x->shard > y->shard) - (x->shard < y->shard);
}

struct ring *ring_new(size_t n_shards, size_t vnodes)
{
	struct ring *r;

	if (n_shards < 1 || n_shards > RING_SHARDS_MAX || vnodes < 1 || vnodes > RING_VNODES_MAX)
		return NULL;
	r = malloc(sizeof(*r) + n_shards * vnodes * sizeof(struct point));
	if (!r)
		return NULL;
	r->n_shards = n_shards;
	r->n_points = n_shards * vnodes;
	for (size_t s = 0; s < n_shards; s++) {
		for (size_t v = 0; v < vnodes; v++) {
			char name[48];
			int len = snprintf(name, sizeof(name), "shard-%zu-vnode-%zu", s, v);

			r->points[s * vnodes + v].at = ring_hash64(name, (size_t)len);
			r->points[s * vnodes + v].shard = (uint32_t)s;
		}
	}
	qsort(r->points, r->n_points, sizeof(struct point), by_point);
	return r;
}

void ring_free(struct ring *r)
{
	free(r);
}

size_t ring_shard(const struct ring *r, const void *key, size_t len)
{
	uint64_t h = ring_hash64(key, len);
	size_t lo = 0, hi = r->n_points;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->points[mid].at < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return r->points[lo == r->n_points ? 0 : lo].shard;
}

size_t ring_shards(const struct ring *r)
{
	return r ? r->n_shards : 0;
}
