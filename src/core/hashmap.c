/*
 * hashmap: open addressing with linear probing.
 *
 * Slots hold (key copy, key length, full hash, value); an empty slot has a
 * NULL key. The table is a power of two kept at most 3/4 full, doubling when
 * an insert would cross that. Linear probing keeps a probe sequence in one
 * or two cache lines; storing the full hash makes most mismatches cost one
 * compare and makes resizing rehash-free.
 *
 * Deletion uses backward shifting (Knuth 6.4, Algorithm R) rather than
 * tombstones: after emptying a slot, later entries of the same cluster that
 * could live earlier are moved back, so lookups never wade through dead
 * slots and no periodic cleanup is needed.
 *
 * Keys may come from clients (collection names, metadata keys), so the hash
 * is SipHash-1-3 with a process-wide random key (as in Redis) to make
 * crafted collisions impractical. Chaining was rejected: a pointer chase per
 * entry and a malloc per insert, for no gain at this load factor.
 */
#include "core/hashmap.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/rag_error.h"
#include "core/vec.h"
#include "core/banned.h"

#define HASHMAP_MIN_CAP 8 /* smallest table; a power of two */

struct slot {
	char *key; /* NUL-terminated copy, owned; NULL when the slot is empty */
	size_t key_len;
	uint64_t hash;
	void *value;
};

struct hashmap {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t n_items;
};

/* The SipHash key, set once per process before any map exists. */
static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void seed(void)
{
	uint64_t k[2];

	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		k[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
		k[1] = (uint64_t)(uintptr_t)&ts ^ 0x9e3779b97f4a7c15ull;
	}
	sip_k0 = k[0];
	sip_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

/* SipHash-1-3 of len bytes at p. */
static uint64_t hash_bytes(const void *p, size_t len)
{
	const unsigned char *in = p;
	uint64_t k0 = sip_k0, k1 = sip_k1;
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, tail = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, in + i, 8); /* little-endian hosts only, as is ragd */
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; j < tail; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

struct hashmap *hashmap_new(size_t hint)
{
	struct hashmap *map;
	size_t cap = HASHMAP_MIN_CAP;

	pthread_once(&sip_once, seed);
	while (cap / 4 * 3 < hint) {
		if (cap > SIZE_MAX / 2 / sizeof(struct slot))
			return NULL;
		cap *= 2;
	}
	map = calloc(1, sizeof(*map));
	if (!map)
		return NULL;
	map->slots = calloc(cap, sizeof(*map->slots));
	if (!map->slots) {
		free(map);
		return NULL;
	}
	map->cap = cap;
	return map;
}

void hashmap_free(struct hashmap *map)
{
	if (!map)
		return;
	for (size_t i = 0; i < map->cap; i++)
		free(map->slots[i].key);
	free(map->slots);
	free(map);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const struct hashmap *map, const char *key, size_t key_len, uint64_t hash)
{
	size_t mask = map->cap - 1, i = (size_t)hash & mask;

	for (;;) {
		const struct slot *s = &map->slots[i];

		if (!s->key ||
		    (s->hash == hash && s->key_len == key_len && memcmp(s->key, key, key_len) == 0))
			return i;
		i = (i + 1) & mask;
	}
}

static int resize(struct hashmap *map, size_t cap)
{
	struct slot *slots = calloc(cap, sizeof(*slots));
	size_t mask = cap - 1;

	if (!slots)
		return RAG_ENOMEM;
	for (size_t i = 0; i < map->cap; i++) {
		size_t j;

		if (!map->slots[i].key)
			continue;
		j = (size_t)map->slots[i].hash & mask;
		while (slots[j].key)
			j = (j + 1) & mask;
		slots[j] = map->slots[i];
	}
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	return 0;
}

int hashmap_put_len(struct hashmap *map, const char *key, size_t key_len, void *value,
		    void **old_value)
{
	uint64_t hash = hash_bytes(key, key_len);
	size_t i = find_slot(map, key, key_len, hash);
	struct slot *s = &map->slots[i];
	int overflow = 0;
	char *copy;

	if (old_value)
		*old_value = NULL;
	if (s->key) {
		if (old_value)
			*old_value = s->value;
		s->value = value;
		return 1;
	}
	if (map->n_items + 1 > map->cap / 4 * 3) {
		size_t cap = rag_size_mul(map->cap, 2, &overflow);

		rag_size_mul(cap, sizeof(struct slot), &overflow);
		if (overflow || resize(map, cap) != 0)
			return RAG_ENOMEM;
		i = find_slot(map, key, key_len, hash);
		s = &map->slots[i];
	}
	copy = malloc(rag_size_add(key_len, 1, &overflow));
	if (overflow || !copy) {
		free(copy);
		return RAG_ENOMEM;
	}
	memcpy(copy, key, key_len);
	copy[key_len] = '\0';
	s->key = copy;
	s->key_len = key_len;
	s->hash = hash;
	s->value = value;
	map->n_items++;
	return 0;
}

int hashmap_put(struct hashmap *map, const char *key, void *value, void **old_value)
{
	return hashmap_put_len(map, key, strlen(key), value, old_value);
}

void *hashmap_get_len(const struct hashmap *map, const char *key, size_t key_len)
{
	size_t i = find_slot(map, key, key_len, hash_bytes(key, key_len));

	return map->slots[i].key ? map->slots[i].value : NULL;
}

void *hashmap_get(const struct hashmap *map, const char *key)
{
	return hashmap_get_len(map, key, strlen(key));
}

bool hashmap_has(const struct hashmap *map, const char *key)
{
	size_t len = strlen(key);

	return map->slots[find_slot(map, key, len, hash_bytes(key, len))].key != NULL;
}

int hashmap_remove(struct hashmap *map, const char *key, void **old_value)
{
	size_t len = strlen(key), mask = map->cap - 1;
	size_t i = find_slot(map, key, len, hash_bytes(key, len)), j;

	if (old_value)
		*old_value = NULL;
	if (!map->slots[i].key)
		return RAG_ENOTFOUND;
	if (old_value)
		*old_value = map->slots[i].value;
	free(map->slots[i].key);
	map->slots[i].key = NULL;
	map->n_items--;

	/* Backward shift: i is the hole; move back any later entry of the
	 * cluster whose home slot does not lie cyclically in (i, j]. */
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!map->slots[j].key)
			break;
		home = (size_t)map->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			map->slots[i] = map->slots[j];
			map->slots[j].key = NULL;
			i = j;
		}
	}
	return 0;
}

size_t hashmap_count(const struct hashmap *map)
{
	return map->n_items;
}

void hashmap_iter_init(struct hashmap_iter *it, const struct hashmap *map)
{
	it->map = map;
	it->pos = 0;
}

bool hashmap_iter_next(struct hashmap_iter *it, const char **key, void **value)
{
	while (it->pos < it->map->cap) {
		const struct slot *s = &it->map->slots[it->pos++];

		if (!s->key)
			continue;
		if (key)
			*key = s->key;
		if (value)
			*value = s->value;
		return true;
	}
	return false;
}
