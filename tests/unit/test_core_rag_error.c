/* The one code -> name -> HTTP status table, and rag_err_set keeping the innermost message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rag_error.h"

#include <string.h>

static void test_table(void **state)
{
	static const struct {
		int code;
		const char *name;
		int status;
	} want[] = {
		{ RAG_OK, "ok", 200 },
		{ RAG_EINVAL, "invalid_argument", 400 },
		{ RAG_ENOTFOUND, "not_found", 404 },
		{ RAG_ECONFLICT, "conflict", 409 },
		{ RAG_ENOMEM, "out_of_memory", 503 },
		{ RAG_EIO, "io_error", 500 },
		{ RAG_EBUSY, "unavailable", 503 },
		{ RAG_EINTERNAL, "internal", 500 },
		{ RAG_ETOOBIG, "too_large", 413 },
		{ RAG_EUNSUPPORTED, "unsupported", 415 },
		{ RAG_ENOSPACE, "insufficient_storage", 507 },
		{ RAG_EALREADY, "already_applied", 409 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(rag_err_name(want[i].code), want[i].name);
		assert_int_equal(rag_err_http_status(want[i].code), want[i].status);
	}
	/* An unknown code is a bug: internal, 500. */
	assert_string_equal(rag_err_name(-999), "internal");
	assert_int_equal(rag_err_http_status(-999), 500);
}

static void test_innermost_message_wins(void **state)
{
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(rag_err_set(&err, RAG_ENOSPACE, NULL, "store: %s", "disk full"),
			 RAG_ENOSPACE);
	assert_int_equal(rag_err_set(&err, RAG_EIO, "text", "outer"), RAG_EIO);
	assert_int_equal(err.code, RAG_ENOSPACE);
	assert_string_equal(err.msg, "store: disk full");
	assert_string_equal(err.field, "");
	assert_int_equal(rag_err_reset(&err, RAG_EIO, "text", "outer"), RAG_EIO);
	assert_string_equal(err.field, "text");
	rag_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_int_equal(rag_err_set(NULL, RAG_EBUSY, NULL, "x"), RAG_EBUSY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_innermost_message_wins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
