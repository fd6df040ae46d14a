/*
 * Unit tests for core/sbuf: appends keep the invariants, sticky failure,
 * detach ownership and JSON escaping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/str.h"
#include "core/vec.h"

static void test_empty(void **state)
{
	struct sbuf sb = SBUF_INIT;

	(void)state;
	assert_int_equal(sbuf_check(&sb), 0);
	assert_non_null(sb.buf);
	assert_string_equal(sb.buf, "");
	sbuf_reset(&sb);
	assert_int_equal(sbuf_check(&sb), 0);
	sbuf_release(&sb);
	assert_int_equal(sbuf_check(&sb), 0);
	sbuf_release(NULL);
}

static void test_appends(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb, 0);
	sbuf_addstr(&sb, "hello");
	sbuf_addch(&sb, ' ');
	sbuf_add(&sb, "world!!", 5);
	sbuf_addf(&sb, " %d-%s", 42, "x");
	assert_int_equal(sbuf_check(&sb), 0);
	assert_string_equal(sb.buf, "hello world 42-x");
	assert_int_equal(sb.len, strlen("hello world 42-x"));
	sbuf_truncate(&sb, 5);
	assert_string_equal(sb.buf, "hello");
	sbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	assert_int_equal(sbuf_check(&sb), 0);
	sbuf_release(&sb);
}

static void test_growth_and_long_format(void **state)
{
	struct sbuf sb = SBUF_INIT;
	char big[1000];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 100; i++) {
		sbuf_addf(&sb, "%s%d", big, i);
		assert_int_equal(sbuf_check(&sb), 0);
	}
	assert_int_equal(sb.len, 100 * 999 + 10 + 90 * 2);
	assert_int_equal(sbuf_error(&sb), 0);
	sbuf_release(&sb);
}

static void test_embedded_nul(void **state)
{
	struct sbuf sb = SBUF_INIT;

	(void)state;
	sbuf_add(&sb, "a\0b", 3);
	assert_int_equal(sb.len, 3);
	assert_memory_equal(sb.buf, "a\0b", 4);
	assert_int_equal(sbuf_check(&sb), 0);
	sbuf_release(&sb);
}

static void test_sticky_failure(void **state)
{
	struct sbuf sb = SBUF_INIT;

	(void)state;
	sbuf_addstr(&sb, "abc");
	assert_int_equal(sbuf_grow(&sb, SIZE_MAX - 1), RAG_ENOMEM);
	assert_int_equal(sbuf_error(&sb), RAG_ENOMEM);
	sbuf_addstr(&sb, "def");
	assert_string_equal(sb.buf, "abc");
	assert_int_equal(sbuf_check(&sb), 0);
	assert_null(sbuf_detach(&sb, NULL));
	assert_int_equal(sbuf_error(&sb), 0);
	assert_int_equal(sbuf_check(&sb), 0);
}

static void test_detach(void **state)
{
	struct sbuf sb = SBUF_INIT;
	size_t len;
	char *s;

	(void)state;
	s = sbuf_detach(&sb, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);

	sbuf_addstr(&sb, "owned");
	s = sbuf_detach(&sb, &len);
	assert_string_equal(s, "owned");
	assert_int_equal(len, 5);
	assert_int_equal(sbuf_check(&sb), 0);
	assert_int_equal(sb.len, 0);
	free(s);
}

static void expect_json(const char *in, size_t len, const char *want)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_add_json_str(&sb, in, len);
	assert_int_equal(sbuf_check(&sb), 0);
	assert_string_equal(sb.buf, want);
	sbuf_release(&sb);
}

static void test_json_str(void **state)
{
	(void)state;
	expect_json("", 0, "\"\"");
	expect_json("plain", 5, "\"plain\"");
	expect_json("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
	expect_json("a\nb\tc\r\b\f", 8, "\"a\\nb\\tc\\r\\b\\f\"");
	expect_json("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
	expect_json("nul\0x", 5, "\"nul\\u0000x\"");
	/* Valid UTF-8 passes through: é, €, 😀 */
	expect_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
		    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Invalid bytes, overlongs, surrogates and truncations become U+FFFD. */
	expect_json("a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\"");
	expect_json("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	expect_json("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	expect_json("\xe2\x82", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
}

static void test_str_and_vec(void **state)
{
	struct str s = str_from_cstr("abc");
	int *arr = NULL, overflow = 0;
	size_t alloc = 0;

	(void)state;
	assert_true(str_eq_cstr(s, "abc"));
	assert_false(str_eq_cstr(s, "ab"));
	assert_true(str_eq_cstr(str_from_cstr(NULL), ""));
	assert_true(str_has_prefix(s, "ab"));
	assert_true(str_eq(STR_LIT("abc"), str_from_mem("abcdef", 3)));

	assert_int_equal(VEC_GROW(arr, alloc, 100), 0);
	assert_true(alloc >= 100);
	arr[99] = 7;
	assert_int_equal(VEC_GROW(arr, alloc, SIZE_MAX / 2), RAG_ENOMEM);
	assert_int_equal(arr[99], 7);
	free(arr);

	assert_int_equal(rag_size_mul(SIZE_MAX / 2, 3, &overflow), 0);
	assert_int_equal(overflow, 1);
	overflow = 0;
	assert_int_equal(rag_size_add(2, 3, &overflow), 5);
	assert_int_equal(overflow, 0);
	rag_size_add(SIZE_MAX, 1, &overflow);
	assert_int_equal(overflow, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_growth_and_long_format),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_sticky_failure),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_str_and_vec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
