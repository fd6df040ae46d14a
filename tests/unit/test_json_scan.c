/*
 * Unit tests for core/json_scan: depth and element counts of JSON bytes
 * before parsing, strings and escapes skipped, the error's code and field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/rag_error.h"

static int scan(const char *s, int depth, size_t elements, struct rag_err *err)
{
	struct json_limits lim = { depth, elements };

	return json_scan(s, strlen(s), &lim, "body", err);
}

static void test_depth(void **state)
{
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(scan("{\"a\":{\"b\":[1]}}", 3, 0, &err), 0);
	assert_int_equal(scan("{\"a\":{\"b\":[[1]]}}", 3, 0, &err), RAG_EINVAL);
	assert_string_equal(err.field, "body");
	assert_non_null(strstr(err.msg, "limits.max_json_depth"));
	rag_err_clear(&err);
	/* Siblings do not add up: depth is nesting, not count. */
	assert_int_equal(scan("[[1],[2],[3],{\"x\":[]}]", 3, 0, &err), 0);
	/* Brackets inside strings, and escaped quotes, are text. */
	assert_int_equal(scan("{\"a\":\"[[[[{{{{\\\"[[[[\"}", 1, 0, &err), 0);
	assert_int_equal(scan("[1,2]", 0, 0, &err), 0); /* 0: no limit */
}

static void test_deep_bytes_fail_early(void **state)
{
	size_t n = 1 << 20;
	char *s = malloc(n + 1);
	struct rag_err err = { 0 };

	(void)state;
	assert_non_null(s);
	memset(s, '[', n);
	s[n] = '\0';
	assert_int_equal(scan(s, 32, 100000, &err), RAG_EINVAL);
	free(s);
}

static void test_elements(void **state)
{
	struct rag_err err = { 0 };

	(void)state;
	/* 3 members + 3 elements = 6. */
	assert_int_equal(scan("{\"a\":[1,2,3],\"b\":{},\"c\":[ ]}", 0, 6, &err), 0);
	assert_int_equal(scan("{\"a\":[1,2,3],\"b\":{},\"c\":[ ]}", 0, 5, &err), RAG_ETOOBIG);
	assert_string_equal(err.field, "body");
	assert_non_null(strstr(err.msg, "limits.max_json_elements"));
	rag_err_clear(&err);
	/* Commas in strings are text. */
	assert_int_equal(scan("[\",,,,,,,,,\"]", 0, 1, &err), 0);
	assert_int_equal(scan("[1,2]", 0, 1, &err), RAG_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_deep_bytes_fail_early),
		cmocka_unit_test(test_elements),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
