/*
 * The in-process LRU: a byte budget split evenly over shards, each a hash
 * map (core/hashmap) plus a doubly linked recency list under one mutex.
 *
 * A key picks its shard by a hash of its bytes, so threads working on
 * different keys rarely meet on a lock; a get moves its entry to the front,
 * a put evicts from the back until the shard is within its budget. An
 * entry is one allocation (header, key, value) and is charged its size
 * plus LRU_ENTRY_OVERHEAD for the map slot and allocator, so the budget
 * bounds real memory, not just payload. Expiry is lazy: an expired entry
 * is dropped when a get finds it or eviction reaches it.
 *
 * Values are copied out under the lock: the entry may be evicted the
 * moment the lock is released. Alternatives: refcounted entries would save
 * the copy (a few KB for a search result, ~1 µs) at the cost of an atomic
 * per get and harder frees; not worth it at these sizes.
 *
 * Locking: each shard's `mu` guards its map, list and byte count; the
 * counters read by stats are atomics.
 */
#include "cache/cache_int.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/hashmap.h"
#include "core/rag_error.h"

#include "core/banned.h"

#define LRU_ENTRY_OVERHEAD 64 /* map slot (40 bytes) and malloc headers, measured roughly */
#define LRU_MAX_SHARDS 256

struct entry {
	struct entry *prev, *next; /* prev towards the most recent */
	int64_t expires_ms;
	size_t charge;
	size_t key_len, val_len;
	char *key; /* NUL-terminated, in the same allocation */
	unsigned char *val;
};

struct shard {
	pthread_mutex_t mu;
	struct hashmap *map; /* key -> struct entry * */
	struct entry *head, *tail;
	size_t bytes, budget;
	size_t n_entries;
};

struct lru {
	struct cache base;
	struct shard *shards;
	size_t n_shards;
	size_t budget;
	atomic_size_t bytes, entries;
	_Atomic uint64_t evictions;
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static struct shard *shard_of(struct lru *l, const char *key, size_t key_len)
{
	return &l->shards[fnv1a(key, key_len) % l->n_shards];
}

static void unlink_entry(struct shard *s, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		s->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(struct shard *s, struct entry *e)
{
	e->prev = NULL;
	e->next = s->head;
	if (s->head)
		s->head->prev = e;
	s->head = e;
	if (!s->tail)
		s->tail = e;
}

/* Removes e from map and list and frees it. */
static void drop(struct lru *l, struct shard *s, struct entry *e)
{
	hashmap_remove(s->map, e->key, NULL);
	unlink_entry(s, e);
	s->bytes -= e->charge;
	s->n_entries--;
	atomic_fetch_sub(&l->bytes, e->charge);
	atomic_fetch_sub(&l->entries, 1);
	free(e);
}

static int l_get(struct cache *c, const char *key, size_t key_len, void **val, size_t *val_len)
{
	struct lru *l = (struct lru *)c;
	struct shard *s = shard_of(l, key, key_len);
	struct entry *e;
	int rc = RAG_ENOTFOUND;

	pthread_mutex_lock(&s->mu);
	e = hashmap_get_len(s->map, key, key_len);
	if (e && e->expires_ms <= cache_now_ms()) {
		drop(l, s, e);
		e = NULL;
	}
	if (e) {
		*val = malloc(e->val_len ? e->val_len : 1);
		rc = *val ? 0 : RAG_ENOMEM;
		if (*val) {
			memcpy(*val, e->val, e->val_len);
			*val_len = e->val_len;
			unlink_entry(s, e);
			push_front(s, e);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int l_put(struct cache *c, const char *key, size_t key_len, const void *val,
		 size_t val_len, int ttl_s)
{
	struct lru *l = (struct lru *)c;
	struct shard *s = shard_of(l, key, key_len);
	size_t charge = sizeof(struct entry) + key_len + 1 + val_len + LRU_ENTRY_OVERHEAD;
	struct entry *e, *old = NULL;
	int rc;

	if (charge > s->budget || charge < val_len)
		return RAG_ETOOBIG; /* would flush the whole shard for one entry */
	e = malloc(charge - LRU_ENTRY_OVERHEAD);
	if (!e)
		return RAG_ENOMEM;
	memset(e, 0, sizeof(*e));
	e->key = (char *)(e + 1);
	e->val = (unsigned char *)e->key + key_len + 1;
	memcpy(e->key, key, key_len);
	e->key[key_len] = '\0';
	memcpy(e->val, val, val_len);
	e->key_len = key_len;
	e->val_len = val_len;
	e->charge = charge;
	e->expires_ms = cache_now_ms() + (int64_t)ttl_s * 1000;

	pthread_mutex_lock(&s->mu);
	old = hashmap_get_len(s->map, key, key_len);
	if (old)
		drop(l, s, old);
	while (s->tail && s->bytes + charge > s->budget) {
		drop(l, s, s->tail);
		atomic_fetch_add(&l->evictions, 1);
	}
	rc = hashmap_put_len(s->map, e->key, key_len, e, NULL);
	if (rc >= 0) {
		push_front(s, e);
		s->bytes += charge;
		s->n_entries++;
		atomic_fetch_add(&l->bytes, charge);
		atomic_fetch_add(&l->entries, 1);
		e = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	free(e);
	return rc < 0 ? rc : 0;
}

static int l_del(struct cache *c, const char *key, size_t key_len)
{
	struct lru *l = (struct lru *)c;
	struct shard *s = shard_of(l, key, key_len);
	struct entry *e;

	pthread_mutex_lock(&s->mu);
	e = hashmap_get_len(s->map, key, key_len);
	if (e)
		drop(l, s, e);
	pthread_mutex_unlock(&s->mu);
	return e ? 0 : RAG_ENOTFOUND;
}

static size_t l_stats(struct cache *c, struct cache_stats *out)
{
	struct lru *l = (struct lru *)c;

	memset(out, 0, sizeof(*out));
	out->backend = "lru";
	out->entries = atomic_load(&l->entries);
	out->bytes = atomic_load(&l->bytes);
	out->capacity = l->budget;
	out->evictions = atomic_load(&l->evictions);
	out->up = 1;
	return 1;
}

static void l_free(struct cache *c)
{
	struct lru *l = (struct lru *)c;

	for (size_t i = 0; l->shards && i < l->n_shards; i++) {
		struct shard *s = &l->shards[i];

		while (s->head) {
			struct entry *e = s->head;

			s->head = e->next;
			free(e);
		}
		hashmap_free(s->map);
		pthread_mutex_destroy(&s->mu);
	}
	free(l->shards);
	free(l);
}

static const struct cache_ops lru_ops = { "lru", l_get, NULL, l_put, l_del, l_stats, l_free };

struct cache *cache_lru_new(size_t bytes, int n_shards)
{
	struct lru *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->base.ops = &lru_ops;
	l->n_shards = n_shards > 0 && n_shards <= LRU_MAX_SHARDS ? (size_t)n_shards
								  : CACHE_LRU_SHARDS;
	l->budget = bytes;
	l->shards = calloc(l->n_shards, sizeof(*l->shards));
	if (!l->shards) {
		free(l);
		return NULL;
	}
	for (size_t i = 0; i < l->n_shards; i++) {
		struct shard *s = &l->shards[i];

		pthread_mutex_init(&s->mu, NULL);
		s->budget = bytes / l->n_shards;
		s->map = hashmap_new(64);
		if (!s->map) {
			l->n_shards = i + 1;
			l_free(&l->base);
			return NULL;
		}
	}
	return &l->base;
}
