/*
 * Unit tests for the cache's keys: the builder's determinism and field
 * separation, text normalisation, Redis Cluster's CRC16 slot function
 * against the vectors in the cluster spec, address and backend parsing,
 * and the NULL ("none") cache.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "core/rag_error.h"

static void key_of(enum cache_kind kind, const char *a, const char *b, struct cache_key *out)
{
	struct cache_key_builder kb;

	cache_key_begin(&kb, kind);
	cache_key_add_str(&kb, "a", a, strlen(a));
	cache_key_add_str(&kb, "b", b, strlen(b));
	cache_key_add_i64(&kb, "seq", 7);
	cache_key_add_f64(&kb, "alpha", 0.5);
	assert_int_equal(cache_key_end(&kb, out), 0);
}

static void test_key_builder(void **state)
{
	struct cache_key k1, k2, k3, k4;
	struct cache_key_builder kb;

	(void)state;
	key_of(CACHE_SEARCH, "ab", "c", &k1);
	key_of(CACHE_SEARCH, "ab", "c", &k2);
	key_of(CACHE_SEARCH, "a", "bc", &k3);
	key_of(CACHE_EMBEDDING, "ab", "c", &k4);
	assert_string_equal(k1.text, k2.text);
	assert_int_equal(k1.len, strlen(k1.text));
	assert_true(strcmp(k1.text, k3.text) != 0); /* fields do not run together */
	assert_true(strcmp(k1.text, k4.text) != 0); /* kinds do not meet */
	assert_int_equal(strncmp(k1.text, "ragd:v1:s:", 10), 0);
	assert_int_equal(strncmp(k4.text, "ragd:v1:e:", 10), 0);
	assert_int_equal(k1.len, 10 + 32);
	assert_int_equal(k1.kind, CACHE_SEARCH);

	/* An integer and the same bytes as a string are different fields. */
	cache_key_begin(&kb, CACHE_SEARCH);
	cache_key_add_i64(&kb, "seq", 1);
	assert_int_equal(cache_key_end(&kb, &k1), 0);
	cache_key_begin(&kb, CACHE_SEARCH);
	cache_key_add_i64(&kb, "seq", 2);
	assert_int_equal(cache_key_end(&kb, &k2), 0);
	assert_true(strcmp(k1.text, k2.text) != 0);
	cache_key_begin(&kb, CACHE_SEARCH);
	cache_key_add_f64(&kb, "alpha", 0.5);
	assert_int_equal(cache_key_end(&kb, &k3), 0);
	cache_key_begin(&kb, CACHE_SEARCH);
	cache_key_add_f64(&kb, "alpha", 0.5000001);
	assert_int_equal(cache_key_end(&kb, &k4), 0);
	assert_true(strcmp(k3.text, k4.text) != 0);
}

static void test_hash_hex(void **state)
{
	char a[33], b[33];

	(void)state;
	cache_hash_hex("hello", 5, a);
	cache_hash_hex("hello", 5, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 32);
	/* BLAKE2b-128("hello"), as Python's hashlib.blake2b(b"hello", digest_size=16). */
	assert_string_equal(a, "46fb7408d4f285228f4af516ea25851b");
	cache_hash_hex("hellp", 5, b);
	assert_true(strcmp(a, b) != 0);
}

static void test_normalize(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "  what  is\tthe\n\ntower ", "what is the tower" },
		{ "plain", "plain" },
		{ "   ", "" },
		{ "", "" },
		{ "a\r\nb", "a b" },
		{ "Caf\xc3\xa9  au lait", "Caf\xc3\xa9 au lait" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 99;
		char *s = cache_normalize_text(cases[i].in, strlen(cases[i].in), &len);

		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		assert_int_equal(len, strlen(cases[i].out));
		free(s);
	}
}

/* Vectors from the Redis Cluster specification. */
static void test_crc16_slots(void **state)
{
	(void)state;
	assert_int_equal(cache_crc16("123456789", 9), 0x31C3);
	assert_int_equal(cache_key_slot("123456789", 9), 0x31C3 % 16384);
	assert_int_equal(cache_key_slot("{user1000}.following", 20),
			 cache_key_slot("{user1000}.followers", 20));
	assert_int_equal(cache_key_slot("{user1000}.following", 20),
			 cache_key_slot("user1000", 8));
	/* "foo{}{bar}": the first {} is empty, so the whole key is hashed. */
	assert_int_equal(cache_key_slot("foo{}{bar}", 10), cache_crc16("foo{}{bar}", 10) % 16384);
	/* "foo{{bar}}zap": the tag is "{bar". */
	assert_int_equal(cache_key_slot("foo{{bar}}zap", 13), cache_crc16("{bar", 4) % 16384);
	/* "foo{bar}{zap}": only the first tag counts. */
	assert_int_equal(cache_key_slot("foo{bar}{zap}", 13), cache_key_slot("bar", 3));
	/* Known slots (redis-cli CLUSTER KEYSLOT). */
	assert_int_equal(cache_key_slot("foo", 3), 12182);
	assert_int_equal(cache_key_slot("bar", 3), 5061);
	assert_int_equal(cache_key_slot("hello", 5), 866);
	assert_int_equal(cache_key_slot("", 0), 0);
}

static void test_parse_addr(void **state)
{
	char host[CACHE_HOST_MAX];
	int port = 0;

	(void)state;
	assert_int_equal(cache_parse_addr("redis://10.0.0.1:7000", 21, host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 7000);
	assert_int_equal(cache_parse_addr("cache.local", 11, host, sizeof(host), &port), 0);
	assert_string_equal(host, "cache.local");
	assert_int_equal(port, 6379);
	assert_int_equal(cache_parse_addr(" h:1/", 5, host, sizeof(host), &port), 0);
	assert_string_equal(host, "h");
	assert_int_equal(port, 1);
	assert_int_equal(cache_parse_addr("h:0", 3, host, sizeof(host), &port), RAG_EINVAL);
	assert_int_equal(cache_parse_addr("h:70000", 7, host, sizeof(host), &port), RAG_EINVAL);
	assert_int_equal(cache_parse_addr("h:x", 3, host, sizeof(host), &port), RAG_EINVAL);
	assert_int_equal(cache_parse_addr(":80", 3, host, sizeof(host), &port), RAG_EINVAL);
	assert_int_equal(cache_parse_addr("h:", 2, host, sizeof(host), &port), RAG_EINVAL);
}

static void test_backends(void **state)
{
	struct cache_options o;
	struct rag_err err = { 0 };
	enum cache_backend b;

	(void)state;
	assert_int_equal(cache_backend_parse("two-level", &b), 0);
	assert_int_equal(b, CACHE_BACKEND_TWO_LEVEL);
	assert_int_equal(cache_backend_parse("redis-cluster", &b), 0);
	assert_int_equal(b, CACHE_BACKEND_CLUSTER);
	assert_int_equal(cache_backend_parse("memcached", &b), RAG_EINVAL);

	cache_default_options(&o);
	o.backend = CACHE_BACKEND_NONE;
	assert_null(cache_new(&o, &err));
	assert_int_equal(err.code, 0);
	o.backend = CACHE_BACKEND_REDIS;
	o.redis_url = "redis://host:notaport";
	assert_null(cache_new(&o, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_string_equal(err.field, "cache.redis.url");
}

/* Backend "none": every call is safe and misses. */
static void test_null_cache(void **state)
{
	struct cache_key k;
	void *val = (void *)1;
	size_t len = 5;
	struct cache_key keys[2];
	void *vals[2];
	size_t lens[2];
	int rcs[2];

	(void)state;
	key_of(CACHE_SEARCH, "x", "y", &k);
	assert_int_equal(cache_get(NULL, &k, &val, &len), RAG_ENOTFOUND);
	assert_null(val);
	assert_int_equal(len, 0);
	cache_put(NULL, &k, "v", 1, 10);
	assert_int_equal(cache_del(NULL, &k), 0);
	keys[0] = keys[1] = k;
	cache_get_many(NULL, keys, 2, vals, lens, rcs);
	assert_int_equal(rcs[0], RAG_ENOTFOUND);
	assert_int_equal(rcs[1], RAG_ENOTFOUND);
	cache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_builder), cmocka_unit_test(test_hash_hex),
		cmocka_unit_test(test_normalize),   cmocka_unit_test(test_crc16_slots),
		cmocka_unit_test(test_parse_addr),  cmocka_unit_test(test_backends),
		cmocka_unit_test(test_null_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
