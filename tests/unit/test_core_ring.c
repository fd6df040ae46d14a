/*
 * The consistent-hash ring: deterministic, balanced, and growing from S to
 * S + 1 shards moves about 1/(S + 1) of the keys, all of them to the new
 * shard.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_KEYS 100000

static size_t key(size_t i, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "doc-%zu", i);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_null(ring_new(0, 10));
	assert_null(ring_new(RING_SHARDS_MAX + 1, 10));
	assert_null(ring_new(2, 0));
	assert_null(ring_new(2, RING_VNODES_MAX + 1));
	assert_int_equal(ring_shards(NULL), 0);
	ring_free(NULL);
}

static void test_deterministic(void **state)
{
	struct ring *a = ring_new(4, RING_VNODES_DEFAULT), *b = ring_new(4, RING_VNODES_DEFAULT);
	char buf[32];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < 1000; i++) {
		size_t len = key(i, buf, sizeof(buf));
		assert_int_equal(ring_shard(a, buf, len), ring_shard(b, buf, len));
	}
	/* Pinned values: the mapping is a contract between instances and versions. */
	assert_true(ring_hash64("doc-1", 5) == 0x4874a7cf46898a5eULL);
	assert_int_equal(ring_shard(a, "doc-1", 5), 1);
	assert_int_equal(ring_shard(a, "doc-2", 5), 2);
	assert_true(ring_hash64("doc-1", 5) != ring_hash64("doc-2", 5));
	ring_free(a);
	ring_free(b);
}

static void test_balance(void **state)
{
	struct ring *r = ring_new(4, RING_VNODES_DEFAULT);
	size_t count[4] = { 0 };
	char buf[32];

	(void)state;
	for (size_t i = 0; i < N_KEYS; i++) {
		size_t len = key(i, buf, sizeof(buf));
		count[ring_shard(r, buf, len)]++;
	}
	for (size_t s = 0; s < 4; s++) {
		/* Each shard within 20 % of an even quarter. */
		assert_true(count[s] > N_KEYS / 4 * 8 / 10);
		assert_true(count[s] < N_KEYS / 4 * 12 / 10);
	}
	ring_free(r);
}

/* Going from s to s + 1 shards: the share of keys that move, and where to. */
static double moved(size_t s)
{
	struct ring *a = ring_new(s, RING_VNODES_DEFAULT), *b = ring_new(s + 1, RING_VNODES_DEFAULT);
	size_t n_moved = 0;
	char buf[32];

	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < N_KEYS; i++) {
		size_t len = key(i, buf, sizeof(buf));
		size_t from = ring_shard(a, buf, len), to = ring_shard(b, buf, len);

		if (from != to) {
			n_moved++;
			assert_int_equal(to, s); /* only ever to the new shard */
		}
	}
	ring_free(a);
	ring_free(b);
	return (double)n_moved / N_KEYS;
}

static void test_growth_moves_one_share(void **state)
{
	(void)state;
	for (size_t s = 1; s <= 8; s++) {
		double share = moved(s), ideal = 1.0 / (double)(s + 1);

		print_message("%zu -> %zu shards: %.4f of %d keys moved (ideal %.4f)\n", s, s + 1,
			      share, N_KEYS, ideal);
		/* Within 25 % of the ideal share; id % n would move s/(s + 1). */
		assert_true(share > ideal * 0.75);
		assert_true(share < ideal * 1.25);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_balance),
		cmocka_unit_test(test_growth_moves_one_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
