/*
 * Unit tests for core/hashmap: put/get/replace/remove, growth through many
 * keys, removal with backward shifting checked against a shadow array, and
 * iteration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/rag_error.h"

#define N_MANY 20000 /* enough for a dozen doublings */

static void test_basic(void **state)
{
	struct hashmap *map = hashmap_new(0);
	int a = 1, b = 2;
	void *old = &a;

	(void)state;
	assert_non_null(map);
	assert_int_equal(hashmap_count(map), 0);
	assert_null(hashmap_get(map, "x"));
	assert_int_equal(hashmap_put(map, "x", &a, &old), 0);
	assert_null(old);
	assert_ptr_equal(hashmap_get(map, "x"), &a);
	assert_int_equal(hashmap_put(map, "x", &b, &old), 1);
	assert_ptr_equal(old, &a);
	assert_ptr_equal(hashmap_get(map, "x"), &b);
	assert_int_equal(hashmap_count(map), 1);
	assert_ptr_equal(hashmap_get_len(map, "xyz", 1), &b);

	assert_int_equal(hashmap_put(map, "", NULL, NULL), 0);
	assert_true(hashmap_has(map, ""));
	assert_null(hashmap_get(map, ""));
	assert_false(hashmap_has(map, "y"));

	assert_int_equal(hashmap_remove(map, "y", NULL), RAG_ENOTFOUND);
	assert_int_equal(hashmap_remove(map, "x", &old), 0);
	assert_ptr_equal(old, &b);
	assert_false(hashmap_has(map, "x"));
	assert_int_equal(hashmap_count(map), 1);
	hashmap_free(map);
	hashmap_free(NULL);
}

static void test_key_is_copied(void **state)
{
	struct hashmap *map = hashmap_new(4);
	char key[8] = "abc";
	int v = 0;

	(void)state;
	assert_int_equal(hashmap_put(map, key, &v, NULL), 0);
	key[0] = 'z';
	assert_ptr_equal(hashmap_get(map, "abc"), &v);
	assert_null(hashmap_get(map, "zbc"));
	hashmap_free(map);
}

static void test_many_keys_and_removal(void **state)
{
	struct hashmap *map = hashmap_new(0);
	static intptr_t present[N_MANY];
	char key[32];

	(void)state;
	for (intptr_t i = 0; i < N_MANY; i++) {
		snprintf(key, sizeof(key), "key-%ld", (long)i);
		assert_int_equal(hashmap_put(map, key, (void *)(i + 1), NULL), 0);
		present[i] = 1;
	}
	assert_int_equal(hashmap_count(map), N_MANY);

	/* Remove every third key, which shifts entries through many clusters. */
	for (intptr_t i = 0; i < N_MANY; i += 3) {
		void *old;

		snprintf(key, sizeof(key), "key-%ld", (long)i);
		assert_int_equal(hashmap_remove(map, key, &old), 0);
		assert_int_equal((intptr_t)old, i + 1);
		present[i] = 0;
	}
	for (intptr_t i = 0; i < N_MANY; i++) {
		snprintf(key, sizeof(key), "key-%ld", (long)i);
		if (present[i])
			assert_int_equal((intptr_t)hashmap_get(map, key), i + 1);
		else
			assert_false(hashmap_has(map, key));
	}
	assert_int_equal(hashmap_count(map), N_MANY - (N_MANY + 2) / 3);

	/* Re-adding removed keys works, and every key can then go. */
	for (intptr_t i = 0; i < N_MANY; i += 3) {
		snprintf(key, sizeof(key), "key-%ld", (long)i);
		assert_int_equal(hashmap_put(map, key, (void *)(i + 1), NULL), 0);
	}
	assert_int_equal(hashmap_count(map), N_MANY);
	for (intptr_t i = N_MANY - 1; i >= 0; i--) {
		snprintf(key, sizeof(key), "key-%ld", (long)i);
		assert_int_equal(hashmap_remove(map, key, NULL), 0);
	}
	assert_int_equal(hashmap_count(map), 0);
	hashmap_free(map);
}

static void test_iteration(void **state)
{
	struct hashmap *map = hashmap_new(0);
	struct hashmap_iter it;
	const char *key;
	void *value;
	int seen[100] = { 0 };
	size_t n = 0;
	char buf[32];

	(void)state;
	for (intptr_t i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "%ld", (long)i);
		assert_int_equal(hashmap_put(map, buf, (void *)i, NULL), 0);
	}
	hashmap_iter_init(&it, map);
	while (hashmap_iter_next(&it, &key, &value)) {
		intptr_t i = (intptr_t)value;

		assert_true(i >= 0 && i < 100);
		snprintf(buf, sizeof(buf), "%ld", (long)i);
		assert_string_equal(key, buf);
		seen[i]++;
		n++;
		/* Replacing a value during iteration is allowed. */
		assert_int_equal(hashmap_put(map, key, value, NULL), 1);
	}
	assert_int_equal(n, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(seen[i], 1);
	assert_false(hashmap_iter_next(&it, NULL, NULL));
	hashmap_free(map);
}

static void test_free_owned_values(void **state)
{
	struct hashmap *map = hashmap_new(16);
	struct hashmap_iter it;
	void *value;

	(void)state;
	for (int i = 0; i < 10; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(hashmap_put(map, key, malloc(10), NULL), 0);
	}
	hashmap_iter_init(&it, map);
	while (hashmap_iter_next(&it, NULL, &value))
		free(value);
	hashmap_free(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_key_is_copied),
		cmocka_unit_test(test_many_keys_and_removal),
		cmocka_unit_test(test_iteration),
		cmocka_unit_test(test_free_owned_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
