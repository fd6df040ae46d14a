/*
 * Chunker tests: boundaries, overlap, empty and tiny inputs, over-long words,
 * and multi-byte UTF-8 never split. The token counter is a stand-in that
 * counts one token per code point of a word (the real tokenizer is exercised
 * by the end-to-end tests), which makes window sizes easy to reason about.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "text/chunk.h"
#include "text/utf8.h"

/* One token per word-ish unit: words of up to 4 code points are 1 token. */
static int count_cp4(void *ctx, const char *s, size_t len)
{
	size_t cps = 0, i = 0, tokens = 0, in_word = 0;

	(void)ctx;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = utf8_char_len((const unsigned char *)s + i, len - i);

		if (n == 0)
			n = 1;
		if (c == ' ' || c == '\n' || c == '\t') {
			if (in_word)
				tokens += (cps + 3) / 4;
			cps = 0;
			in_word = 0;
		} else {
			cps++;
			in_word = 1;
		}
		i += n;
	}
	if (in_word)
		tokens += (cps + 3) / 4;
	return (int)tokens;
}

static int count_fail(void *ctx, const char *s, size_t len)
{
	(void)ctx, (void)s, (void)len;
	return RAG_EINTERNAL;
}

static struct chunk_options opts(size_t max, size_t overlap)
{
	struct chunk_options o = { max, overlap, count_cp4, NULL };
	return o;
}

static void check_spans(const char *text, struct chunk_span *s, size_t n, size_t max)
{
	size_t len = strlen(text);

	for (size_t i = 0; i < n; i++) {
		assert_true(s[i].start < s[i].end);
		assert_true(s[i].end <= len);
		assert_true(s[i].n_tokens <= max);
		/* Pieces of one cut word may count less once joined, never more. */
		assert_true((size_t)count_cp4(NULL, text + s[i].start, s[i].end - s[i].start) <=
			    s[i].n_tokens);
		assert_true(utf8_valid(text + s[i].start, s[i].end - s[i].start, NULL));
		if (i > 0) {
			assert_true(s[i].start > s[i - 1].start);
			assert_true(s[i].end > s[i - 1].end);
		}
	}
}

static void test_empty_and_blank(void **state)
{
	struct chunk_span *s = NULL;
	size_t n = 99;
	struct chunk_options o = opts(8, 2);

	(void)state;
	assert_int_equal(chunk_fixed("", 0, &o, &s, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(s);
	assert_int_equal(chunk_fixed(" \n\t ", 4, &o, &s, &n, NULL), 0);
	assert_int_equal(n, 0);
}

static void test_tiny(void **state)
{
	struct chunk_span *s = NULL;
	size_t n = 0;
	struct chunk_options o = opts(8, 2);

	(void)state;
	assert_int_equal(chunk_fixed("  hi  ", 6, &o, &s, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].start, 2);
	assert_int_equal(s[0].end, 4);
	assert_int_equal(s[0].n_tokens, 1);
	free(s);
}

static void test_windows_and_overlap(void **state)
{
	const char *text = "a b c d e f g h i j";
	struct chunk_span *s = NULL;
	size_t n = 0;
	struct chunk_options o = opts(4, 1);

	(void)state;
	assert_int_equal(chunk_fixed(text, strlen(text), &o, &s, &n, NULL), 0);
	/* a-d, d-g, g-j: windows of 4 words, each repeating the last one. */
	assert_int_equal(n, 3);
	assert_memory_equal(text + s[0].start, "a b c d", 7);
	assert_memory_equal(text + s[1].start, "d e f g", 7);
	assert_memory_equal(text + s[2].start, "g h i j", 7);
	check_spans(text, s, n, 4);
	free(s);
}

static void test_no_overlap_covers_all(void **state)
{
	const char *text = "one two three four five six seven eight nine ten eleven";
	struct chunk_span *s = NULL;
	size_t n = 0, words = 0;
	struct chunk_options o = opts(3, 0);

	(void)state;
	assert_int_equal(chunk_fixed(text, strlen(text), &o, &s, &n, NULL), 0);
	check_spans(text, s, n, 3);
	for (size_t i = 0; i < n; i++)
		words += s[i].n_tokens;
	assert_int_equal(words, 15); /* three, seven, eight, eleven: 2 each */
	assert_int_equal(s[0].start, 0);
	assert_int_equal(s[n - 1].end, strlen(text));
	free(s);
}

static void test_long_word_split_on_code_points(void **state)
{
	/* 30 two-byte letters then 10 three-byte CJK: one word of 40 code points. */
	char text[256] = "";
	struct chunk_span *s = NULL;
	size_t n = 0, len;
	struct chunk_options o = opts(3, 1);

	(void)state;
	for (int i = 0; i < 30; i++)
		memcpy(text + strlen(text), "\xc3\xa9", 3);
	for (int i = 0; i < 10; i++)
		memcpy(text + strlen(text), "\xe6\x96\x87", 4);
	len = strlen(text);
	assert_int_equal(chunk_fixed(text, len, &o, &s, &n, NULL), 0);
	check_spans(text, s, n, 3);
	assert_int_equal(s[0].start, 0);
	assert_int_equal(s[n - 1].end, len);
	free(s);
}

static void test_multibyte_words_never_split(void **state)
{
	const char *text = "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac "
			   "\xf0\x9f\x98\x80 \xc3\xbc\xc3\xb6\xc3\xa4 end";
	struct chunk_span *s = NULL;
	size_t n = 0;
	struct chunk_options o = opts(2, 1);

	(void)state;
	assert_int_equal(chunk_fixed(text, strlen(text), &o, &s, &n, NULL), 0);
	assert_true(n >= 3);
	check_spans(text, s, n, 2);
	free(s);
}

static void test_bad_options_and_callback_error(void **state)
{
	struct chunk_span *s = NULL;
	size_t n = 0;
	struct chunk_options o = opts(4, 4);
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(chunk_fixed("a b", 3, &o, &s, &n, &err), RAG_EINVAL);
	assert_string_equal(err.field, "chunk_overlap");
	o = opts(0, 0);
	assert_int_equal(chunk_fixed("a b", 3, &o, &s, &n, NULL), RAG_EINVAL);
	o = opts(4, 1);
	o.count = count_fail;
	assert_int_equal(chunk_fixed("a b", 3, &o, &s, &n, NULL), RAG_EINTERNAL);
	assert_null(s);
}

static void test_utf8_valid(void **state)
{
	size_t bad = 0;

	(void)state;
	assert_true(utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, NULL));
	assert_false(utf8_valid("ab\xc3", 3, &bad));
	assert_int_equal(bad, 2);
	assert_false(utf8_valid("\xc0\xaf", 2, NULL));         /* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3, NULL));     /* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4, NULL)); /* > U+10FFFF */
	assert_false(utf8_valid("a\0b", 3, &bad));
	assert_int_equal(bad, 1);
	assert_int_equal(utf8_floor("a\xc3\xa9", 3, 2), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_blank),
		cmocka_unit_test(test_tiny),
		cmocka_unit_test(test_windows_and_overlap),
		cmocka_unit_test(test_no_overlap_covers_all),
		cmocka_unit_test(test_long_word_split_on_code_points),
		cmocka_unit_test(test_multibyte_words_never_split),
		cmocka_unit_test(test_bad_options_and_callback_error),
		cmocka_unit_test(test_utf8_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
