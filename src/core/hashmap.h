/*
 * hashmap: a string-keyed hash map of borrowed void * values.
 *
 * The map copies each key and owns the copy; values are borrowed (the map
 * never frees them: iterate and free them yourself before hashmap_free if
 * the map was their owner). Keys are byte strings with a length, so a
 * struct str view can be looked up without copying it first.
 *
 * Thread-safety: none. A map belongs to one thread, or its owner guards it
 * with a lock; concurrent readers are safe only while nobody writes.
 */
#ifndef RAGD_CORE_HASHMAP_H
#define RAGD_CORE_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>

struct hashmap;

/* Iteration cursor; see hashmap_iter_init. Treat the fields as private. */
struct hashmap_iter {
	const struct hashmap *map;
	size_t pos;
};

/* A new empty map sized for about hint keys (0 is fine). Returns NULL when
 * out of memory; free with hashmap_free. */
struct hashmap *hashmap_new(size_t hint);

/* Frees the map and its key copies, not the values; NULL-safe. */
void hashmap_free(struct hashmap *map);

/*
 * Maps key to value, copying key. Returns 0 when the key was new, 1 when it
 * replaced an existing entry, RAG_ENOMEM when out of memory (the map is then
 * unchanged). *old_value (old_value may be NULL) receives the replaced value,
 * or NULL for a new key, so the caller can free it.
 */
int hashmap_put(struct hashmap *map, const char *key, void *value, void **old_value);

/* Same with a key of key_len bytes (need not be NUL-terminated). */
int hashmap_put_len(struct hashmap *map, const char *key, size_t key_len, void *value,
		    void **old_value);

/* The value mapped to key, or NULL when absent (use hashmap_has when NULL is
 * a stored value). Borrowed: the map does not own it. */
void *hashmap_get(const struct hashmap *map, const char *key);

/* Same with a key of key_len bytes. */
void *hashmap_get_len(const struct hashmap *map, const char *key, size_t key_len);

/* True when key is in the map. */
bool hashmap_has(const struct hashmap *map, const char *key);

/* Removes key. Returns 0, or RAG_ENOTFOUND when absent. *old_value
 * (old_value may be NULL) receives the removed value, for the caller to free. */
int hashmap_remove(struct hashmap *map, const char *key, void **old_value);

/* Number of keys. */
size_t hashmap_count(const struct hashmap *map);

/*
 * Iteration in unspecified order:
 *
 *	struct hashmap_iter it;
 *	const char *key;
 *	void *value;
 *	hashmap_iter_init(&it, map);
 *	while (hashmap_iter_next(&it, &key, &value))
 *		...;
 *
 * key is borrowed from the map until that entry is removed or the map
 * freed. The map must not gain or lose keys during iteration (replacing the
 * value of an existing key with hashmap_put is fine).
 */
void hashmap_iter_init(struct hashmap_iter *it, const struct hashmap *map);

/* Moves to the next entry; false at the end. key and value may be NULL. */
bool hashmap_iter_next(struct hashmap_iter *it, const char **key, void **value);

#endif
