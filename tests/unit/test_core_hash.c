/* Content hashes: stable, length-prefixed parts, file hashing equals the bytes'. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_parts(void **state)
{
	const void *ab_c[2] = { "ab", "c" }, *a_bc[2] = { "a", "bc" };
	size_t l1[2] = { 2, 1 }, l2[2] = { 1, 2 };
	char h1[HASH_HEX_LEN + 1], h2[HASH_HEX_LEN + 1], h3[HASH_HEX_LEN + 1];

	(void)state;
	hash_hex(ab_c, l1, 2, h1);
	hash_hex(a_bc, l2, 2, h2);
	hash_hex(ab_c, l1, 2, h3);
	assert_int_equal(strlen(h1), HASH_HEX_LEN);
	assert_string_not_equal(h1, h2); /* part boundaries count */
	assert_string_equal(h1, h3);     /* and the hash is stable */
	assert_int_equal(strspn(h1, "0123456789abcdef"), HASH_HEX_LEN);
}

static void test_file(void **state)
{
	char path[] = "/tmp/ragd-test-hash-XXXXXX", h1[HASH_HEX_LEN + 1], h2[HASH_HEX_LEN + 1];
	char h3[HASH_HEX_LEN + 1];
	const void *parts[1] = { "hello" };
	size_t lens[1] = { 5 };
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	assert_int_equal(hash_file_hex(path, h1), 0);
	assert_int_equal(hash_file_hex(path, h2), 0);
	assert_string_equal(h1, h2);
	hash_hex(parts, lens, 1, h3);
	assert_string_not_equal(h1, h3); /* a file is not length-prefixed: a different domain */
	unlink(path);
	assert_int_equal(hash_file_hex(path, h1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
