/*
 * Unit tests for the in-process LRU: hits and misses, replacement,
 * eviction in recency order within the byte budget, TTL expiry, oversized
 * values, stats, the counting front (cache_get), the two-level composition
 * over two LRUs, and many threads at once (run under ASan/TSan-free
 * assertions: every value read back must be intact).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/rag_error.h"

static int get(struct cache *c, const char *key, char *out, size_t size)
{
	void *val = NULL;
	size_t len = 0;
	int rc = c->ops->get(c, key, strlen(key), &val, &len);

	if (rc == 0) {
		assert_true(len < size);
		memcpy(out, val, len);
		out[len] = '\0';
		free(val);
	}
	return rc;
}

static int put(struct cache *c, const char *key, const char *val, int ttl_s)
{
	return c->ops->put(c, key, strlen(key), val, strlen(val), ttl_s);
}

static void test_hit_miss_replace(void **state)
{
	struct cache *c = cache_lru_new(1 << 20, 4);
	struct cache_stats st;
	char buf[64];

	(void)state;
	assert_non_null(c);
	assert_int_equal(get(c, "k", buf, sizeof(buf)), RAG_ENOTFOUND);
	assert_int_equal(put(c, "k", "one", 60), 0);
	assert_int_equal(get(c, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "one");
	assert_int_equal(put(c, "k", "two", 60), 0);
	assert_int_equal(get(c, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "two");
	assert_int_equal(c->ops->stats(c, &st), 1);
	assert_string_equal(st.backend, "lru");
	assert_int_equal(st.entries, 1);
	assert_true(st.bytes > 3 && st.bytes < 300);
	assert_int_equal(c->ops->del(c, "k", 1), 0);
	assert_int_equal(c->ops->del(c, "k", 1), RAG_ENOTFOUND);
	assert_int_equal(get(c, "k", buf, sizeof(buf)), RAG_ENOTFOUND);
	c->ops->stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	/* An empty value is a value. */
	assert_int_equal(put(c, "empty", "", 60), 0);
	assert_int_equal(get(c, "empty", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	cache_free(c);
}

/* One shard so the recency order is global and checkable. */
static void test_eviction_order(void **state)
{
	char val[200], key[16], buf[256];
	struct cache *c;
	struct cache_stats st;
	size_t kept = 0;

	(void)state;
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	c = cache_lru_new(4000, 1); /* room for 12 entries of ~330 bytes charged */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(c, key, val, 60), 0);
	}
	c->ops->stats(c, &st);
	assert_true(st.bytes <= 4000);
	/* Touch k0 so that it is the most recent; k1.. are older. */
	if (get(c, "k0", buf, sizeof(buf)) == 0)
		kept++;
	for (int i = 10; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(c, key, val, 60), 0);
		c->ops->stats(c, &st);
		assert_true(st.bytes <= 4000);
	}
	c->ops->stats(c, &st);
	assert_int_equal(st.evictions, 8);
	assert_int_equal(st.entries, 12);
	assert_int_equal(get(c, "k1", buf, sizeof(buf)), RAG_ENOTFOUND); /* oldest went first */
	assert_int_equal(get(c, "k8", buf, sizeof(buf)), RAG_ENOTFOUND);
	assert_int_equal(get(c, "k9", buf, sizeof(buf)), 0);
	assert_int_equal(get(c, "k0", buf, sizeof(buf)), 0); /* touched, so kept */
	assert_int_equal(get(c, "k19", buf, sizeof(buf)), 0);
	assert_int_equal(kept, 1);
	cache_free(c);
}

static void test_too_big(void **state)
{
	struct cache *c = cache_lru_new(1024, 1);
	char big[2048];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(put(c, "small", "s", 60), 0);
	assert_int_equal(put(c, "big", big, 60), RAG_ETOOBIG);
	assert_int_equal(get(c, "small", big, sizeof(big)), 0); /* nothing flushed for it */
	cache_free(c);
}

static void test_ttl(void **state)
{
	struct cache *c = cache_lru_new(1 << 20, 2);
	char buf[16];

	(void)state;
	assert_int_equal(put(c, "short", "s", 1), 0);
	assert_int_equal(put(c, "long", "l", 60), 0);
	assert_int_equal(get(c, "short", buf, sizeof(buf)), 0);
	usleep(1100 * 1000);
	assert_int_equal(get(c, "short", buf, sizeof(buf)), RAG_ENOTFOUND);
	assert_int_equal(get(c, "long", buf, sizeof(buf)), 0);
	cache_free(c);
}

/* The counting front over an LRU, with keys from the builder. */
static void test_front(void **state)
{
	struct cache_options o;
	struct rag_err err = { 0 };
	struct cache *c;
	struct cache_key_builder kb;
	struct cache_key keys[3];
	void *vals[3], *val;
	size_t lens[3], len;
	int rcs[3];

	(void)state;
	cache_default_options(&o);
	o.backend = CACHE_BACKEND_LRU;
	o.lru_bytes = 1 << 20;
	c = cache_new(&o, &err);
	assert_non_null(c);
	for (int i = 0; i < 3; i++) {
		cache_key_begin(&kb, CACHE_SEARCH);
		cache_key_add_i64(&kb, "i", i);
		assert_int_equal(cache_key_end(&kb, &keys[i]), 0);
	}
	assert_int_equal(cache_get(c, &keys[0], &val, &len), RAG_ENOTFOUND);
	cache_put(c, &keys[0], "zero", 4, 60);
	cache_put(c, &keys[2], "two", 3, 60);
	assert_int_equal(cache_get(c, &keys[0], &val, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(val, "zero", 4);
	free(val);
	cache_get_many(c, keys, 3, vals, lens, rcs);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], RAG_ENOTFOUND);
	assert_int_equal(rcs[2], 0);
	assert_null(vals[1]);
	assert_memory_equal(vals[2], "two", 3);
	free(vals[0]);
	free(vals[2]);
	assert_int_equal(cache_del(c, &keys[0]), 0);
	assert_int_equal(cache_get(c, &keys[0], &val, &len), RAG_ENOTFOUND);
	cache_free(c);
}

/* Two levels over two LRUs: a back hit fills the front; puts reach both. */
static void test_two_level(void **state)
{
	struct cache *front = cache_lru_new(1 << 20, 1), *back = cache_lru_new(1 << 20, 1);
	struct cache *c = cache_two_level_new(front, back);
	struct cache_stats st[CACHE_MAX_STATS];
	char buf[16];

	(void)state;
	assert_int_equal(put(back, "only-back", "b", 60), 0);
	assert_int_equal(get(front, "only-back", buf, sizeof(buf)), RAG_ENOTFOUND);
	assert_int_equal(get(c, "only-back", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "b");
	assert_int_equal(get(front, "only-back", buf, sizeof(buf)), 0); /* filled */
	assert_int_equal(put(c, "both", "x", 60), 0);
	assert_int_equal(get(front, "both", buf, sizeof(buf)), 0);
	assert_int_equal(get(back, "both", buf, sizeof(buf)), 0);
	assert_int_equal(c->ops->stats(c, st), 2);
	assert_int_equal(c->ops->del(c, "both", 4), 0);
	assert_int_equal(get(back, "both", buf, sizeof(buf)), RAG_ENOTFOUND);
	cache_free(c);
}

#define N_THREADS 8
#define N_OPS 20000

static void *hammer(void *arg)
{
	struct cache *c = arg;
	char key[32], val[64], buf[64];
	unsigned seed = (unsigned)(uintptr_t)pthread_self();

	for (int i = 0; i < N_OPS; i++) {
		int k = rand_r(&seed) % 500;

		snprintf(key, sizeof(key), "key-%d", k);
		snprintf(val, sizeof(val), "value-of-key-%d", k);
		if (rand_r(&seed) % 3 == 0)
			put(c, key, val, 60);
		else if (get(c, key, buf, sizeof(buf)) == 0 && strcmp(buf, val) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct cache *c = cache_lru_new(16 * 1024, 4); /* small: eviction under contention */
	pthread_t t[N_THREADS];
	struct cache_stats st;

	(void)state;
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, c), 0);
	for (int i = 0; i < N_THREADS; i++) {
		void *bad = NULL;

		pthread_join(t[i], &bad);
		assert_null(bad);
	}
	c->ops->stats(c, &st);
	assert_true(st.bytes <= 16 * 1024);
	assert_true(st.evictions > 0);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_replace), cmocka_unit_test(test_eviction_order),
		cmocka_unit_test(test_too_big),          cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_front),            cmocka_unit_test(test_two_level),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
