/*
 * Unit tests for core/log: level parsing and filtering, and the JSON line
 * format, captured through log_set_fd into a temporary file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rag_error.h"

static void test_level_parse(void **state)
{
	int level = -1;

	(void)state;
	assert_int_equal(log_level_parse("debug", &level), 0);
	assert_int_equal(level, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("INFO", &level), 0);
	assert_int_equal(level, LOG_LEVEL_INFO);
	assert_int_equal(log_level_parse("warn", &level), 0);
	assert_int_equal(level, LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("warning", &level), 0);
	assert_int_equal(level, LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("error", &level), 0);
	assert_int_equal(level, LOG_LEVEL_ERROR);
	level = 42;
	assert_int_equal(log_level_parse("loud", &level), RAG_EINVAL);
	assert_int_equal(log_level_parse("", &level), RAG_EINVAL);
	assert_int_equal(log_level_parse(NULL, &level), RAG_EINVAL);
	assert_int_equal(level, 42);
	assert_string_equal(log_level_name(LOG_LEVEL_WARN), "warn");
	assert_string_equal(log_level_name(99), "info");
}

static void test_set_level(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
	assert_false(log_enabled(LOG_LEVEL_INFO));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	log_set_level(100);
	assert_int_equal(log_get_level(), LOG_LEVEL_ERROR);
	log_set_level(LOG_LEVEL_INFO);
}

/* Runs the logging calls with output in a temp file; returns its text. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/ragd_test_log_XXXXXX";
	int fd = mkstemp(path);
	char *text;
	long n;

	assert_true(fd >= 0);
	unlink(path);
	log_set_fd(fd);
	fn();
	log_set_fd(-1);
	n = lseek(fd, 0, SEEK_END);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(pread(fd, text, (size_t)n, 0), n);
	close(fd);
	return text;
}

static void emit_basic(void)
{
	log_set_level(LOG_LEVEL_INFO);
	log_debug("hidden %d", 1);
	log_info("hello \"%s\"\n", "world");
	log_kv(LOG_LEVEL_ERROR, "\"status\":500,\"path\":\"/x\"", "failed");
	log_kv(LOG_LEVEL_WARN, NULL, "no fields");
}

static void test_format(void **state)
{
	char *text = capture(emit_basic);
	char *line2, *line3;

	(void)state;
	/* {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ", then the rest. */
	assert_memory_equal(text, "{\"ts\":\"", 7);
	assert_int_equal(text[7 + 4], '-');
	assert_int_equal(text[7 + 10], 'T');
	assert_int_equal(text[7 + 19], '.');
	assert_int_equal(text[7 + 23], 'Z');
	assert_non_null(strstr(text, "\"level\":\"info\",\"msg\":\"hello \\\"world\\\"\\n\"}\n"));
	assert_null(strstr(text, "hidden"));
	line2 = strchr(text, '\n') + 1;
	assert_non_null(strstr(line2, "\"level\":\"error\",\"msg\":\"failed\","
				      "\"status\":500,\"path\":\"/x\"}\n"));
	line3 = strchr(line2, '\n') + 1;
	assert_non_null(strstr(line3, "\"level\":\"warn\",\"msg\":\"no fields\"}\n"));
	assert_string_equal(strchr(line3, '\n'), "\n");
	free(text);
}

static void emit_worker(void)
{
	log_set_process(3);
	log_kv(LOG_LEVEL_WARN, "\"status\":503", "busy");
	log_set_process(-1);
	log_info("untagged");
}

/* A worker's lines carry its index, before the caller's fields. */
static void test_worker_tag(void **state)
{
	char *text = capture(emit_worker);

	(void)state;
	assert_non_null(strstr(text, "\"msg\":\"busy\",\"worker\":3,\"status\":503}\n"));
	assert_non_null(strstr(text, "\"msg\":\"untagged\"}\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_set_level),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_worker_tag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
