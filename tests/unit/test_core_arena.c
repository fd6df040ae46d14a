/*
 * Unit tests for core/arena: alignment, big allocations, string copies and
 * cleanup hooks run newest first at arena_free.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <string.h>

#include "core/arena.h"
#include "core/rag_error.h"

static void test_alignment_and_reuse(void **state)
{
	struct arena *a = arena_new(0);
	char *prev = NULL;

	(void)state;
	assert_non_null(a);
	for (size_t i = 0; i < 1000; i++) {
		char *p = arena_alloc(a, i % 37);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
		assert_ptr_not_equal(p, prev);
		memset(p, 0xab, i % 37);
		prev = p;
	}
	for (size_t align = 1; align <= 4096; align *= 2) {
		char *p = arena_alloc_align(a, 3, align);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % align, 0);
		memset(p, 1, 3);
	}
	assert_null(arena_alloc_align(a, 8, 3));
	assert_null(arena_alloc_align(a, 8, 8192));
	arena_free(a);
	arena_free(NULL);
}

static void test_big_and_overflow(void **state)
{
	struct arena *a = arena_new(64);
	unsigned char *small, *big, *after;

	(void)state;
	small = arena_alloc(a, 16);
	big = arena_alloc(a, 1 << 20);
	assert_non_null(big);
	memset(big, 0xcd, 1 << 20);
	after = arena_alloc(a, 16);
	assert_non_null(after);
	/* The big block went behind: the small one's block is still in use. */
	assert_true(after > small && after < small + 64);
	assert_true(arena_allocated(a) >= (1 << 20));

	assert_null(arena_alloc(a, SIZE_MAX));
	assert_null(arena_calloc(a, SIZE_MAX / 2, 4));
	unsigned char *z = arena_calloc(a, 100, 3);
	assert_non_null(z);
	for (int i = 0; i < 300; i++)
		assert_int_equal(z[i], 0);
	arena_free(a);
}

static void test_strings(void **state)
{
	struct arena *a = arena_new(0);

	(void)state;
	assert_string_equal(arena_strdup(a, "hello"), "hello");
	assert_string_equal(arena_strdup(a, ""), "");
	assert_string_equal(arena_strndup(a, "hello", 3), "hel");
	assert_string_equal(arena_strndup(a, "hi", 10), "hi");
	assert_memory_equal(arena_memdup(a, "a\0b", 3), "a\0b", 4);
	arena_free(a);
}

static int order[8];
static int n_order;

static void record(void *arg)
{
	order[n_order++] = *(int *)arg;
}

static void test_cleanups(void **state)
{
	struct arena *a = arena_new(0);
	static int ids[3] = { 1, 2, 3 };

	(void)state;
	n_order = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(arena_add_cleanup(a, record, &ids[i]), 0);
	assert_int_equal(n_order, 0);
	arena_free(a);
	assert_int_equal(n_order, 3);
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment_and_reuse),
		cmocka_unit_test(test_big_and_overflow),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_cleanups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
