/*
 * A consistent-hash ring: maps keys (document ids) to one of n shards.
 *
 * Each shard owns `vnodes` points on a 64-bit circle; a key belongs to the
 * shard owning the first point at or after the key's hash (wrapping). With
 * enough virtual nodes every shard owns about 1/n of the circle, and going
 * from n to n + 1 shards moves only the keys that land on the new shard's
 * arcs: about 1/(n + 1) of them, where `id % n` would move n/(n + 1).
 *
 * The hash (ring_hash64: FNV-1a folded through MurmurHash3's fmix64
 * finaliser) and the point names ("shard-<s>-vnode-<v>") are part of the
 * on-disk and on-the-wire contract: every instance of a cluster must map a
 * document to the same shard, so neither may change between versions.
 *
 * Thread-safety: a ring is immutable after ring_new; any number of threads
 * may call ring_shard at once.
 */
#ifndef RAGD_CORE_RING_H
#define RAGD_CORE_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring;

#define RING_SHARDS_MAX 64	/* a shard set fits in a uint64_t mask */
#define RING_VNODES_MAX 4096	/* more points buy no balance, only memory */
#define RING_VNODES_DEFAULT 160 /* spread within a few percent of even at 2-16 shards */

/* 64-bit hash of len bytes. Stable across versions and machines. */
uint64_t ring_hash64(const void *data, size_t len);

/*
 * A ring of n_shards (1..RING_SHARDS_MAX) shards with vnodes
 * (1..RING_VNODES_MAX) points each. NULL on a bad argument or out of
 * memory. Caller frees with ring_free.
 */
struct ring *ring_new(size_t n_shards, size_t vnodes);
void ring_free(struct ring *r);

/* The shard (0..n_shards - 1) owning the len-byte key. */
size_t ring_shard(const struct ring *r, const void *key, size_t len);

/* Number of shards; 0 for NULL. */
size_t ring_shards(const struct ring *r);

#endif
