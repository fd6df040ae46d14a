/*
 * Lexical index tests: BM25 ranking, diacritics, replace and range removal,
 * stop words, and client text that looks like FTS5 syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>

#include "core/rag_error.h"
#include "index/lexical.h"
#include "index/lexical_int.h"

static struct lexical *seeded(void)
{
	static const char *const texts[] = {
		"The volcano erupted and lava flowed down the mountain.",
		"Jazz musicians improvise over chord changes.",
		"Sourdough bread rises slowly with wild yeast.",
		"A café in Paris serves croissants and coffee.",
		"Lava tubes form when the surface of a lava flow cools.",
	};
	int64_t ids[] = { 10, 11, 12, 13, 14 };
	size_t lens[5];
	struct lexical *lx = lexical_new(0, NULL);

	assert_non_null(lx);
	for (int i = 0; i < 5; i++)
		lens[i] = strlen(texts[i]);
	assert_int_equal(lexical_add(lx, ids, texts, lens, 5, NULL), 0);
	return lx;
}

static void test_ranking(void **state)
{
	struct lexical *lx = seeded();
	int64_t ids[5];
	float scores[5];
	size_t n = 0;

	(void)state;
	assert_int_equal(lexical_count(lx), 5);
	assert_int_equal(lexical_search(lx, "where does lava flow", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_true(ids[0] == 14 || ids[0] == 10);
	assert_float_equal(scores[0], 1.0f, 1e-6);
	assert_true(scores[1] > 0 && scores[1] <= scores[0]);
	assert_int_equal(lexical_search(lx, "lava", 1, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 1);
	lexical_free(lx);
}

static void test_diacritics_and_case(void **state)
{
	struct lexical *lx = seeded();
	int64_t ids[5];
	float scores[5];
	size_t n = 0;

	(void)state;
	assert_int_equal(lexical_search(lx, "CAFE", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 13);
	lexical_free(lx);
}

static void test_replace_and_remove(void **state)
{
	struct lexical *lx = seeded();
	const char *text = "Chess openings such as the Sicilian defence.";
	size_t len = strlen(text);
	int64_t id = 12, ids[5];
	float scores[5];
	size_t n = 0;

	(void)state;
	assert_int_equal(lexical_add(lx, &id, &text, &len, 1, NULL), 0);
	assert_int_equal(lexical_count(lx), 5);
	assert_int_equal(lexical_search(lx, "sourdough", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(lexical_search(lx, "sicilian", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lexical_remove_range(lx, 10, 12, NULL), 0);
	assert_int_equal(lexical_count(lx), 2);
	assert_int_equal(lexical_search(lx, "lava", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 14);
	lexical_free(lx);
}

static void test_hostile_and_empty_queries(void **state)
{
	static const char *const queries[] = {
		"\"unbalanced", "NEAR(lava flow, 2)", "text: lava", "lava*", "^lava", "a OR AND NOT",
		"(((", "\"\"", "' OR 1=1 --", "-lava", "lava + flow",
	};
	struct lexical *lx = seeded();
	int64_t ids[5];
	float scores[5];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		assert_int_equal(lexical_search(lx, queries[i], 5, ids, scores, &n, NULL), 0);
	assert_int_equal(lexical_search(lx, "   ", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(lexical_search(lx, "!!! ???", 5, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 0);
	/* Stop words only: kept, so something can still match. */
	assert_int_equal(lexical_search(lx, "the", 5, ids, scores, &n, NULL), 0);
	assert_true(n >= 1);
	lexical_free(lx);
}

/*
 * ragd_bm25 against BM25 worked by hand: "lava" is in 2 of the 5 rows
 * (9 and 11 tokens; 41 tokens in all), with Lucene's idf.
 */
static double bm25(double f, double dl)
{
	double idf = log(1 + (5 - 2 + 0.5) / (2 + 0.5)), avgdl = 41.0 / 5;

	return idf * f * (LEXICAL_BM25_K1 + 1) /
	       (f + LEXICAL_BM25_K1 * (1 - LEXICAL_BM25_B + LEXICAL_BM25_B * dl / avgdl));
}

static void test_bm25_exact(void **state)
{
	struct lexical *lx = seeded();
	int64_t ids[5];
	float scores[5];
	double query_max = 0;
	size_t n = 0;

	(void)state;
	assert_int_equal(lexical_search_raw(lx, "lava", 5, NULL, NULL, ids, scores, &n, &query_max,
					    NULL),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 14); /* twice in a longer row beats once in a shorter one */
	assert_int_equal(ids[1], 10);
	assert_float_equal(scores[0], bm25(2, 11), 1e-5);
	assert_float_equal(scores[1], bm25(1, 9), 1e-5);
	assert_float_equal(query_max, log(2.4) * (LEXICAL_BM25_K1 + 1), 1e-9);
	/* the normalised search divides by the best */
	assert_int_equal(lexical_search(lx, "lava", 5, ids, scores, &n, NULL), 0);
	assert_float_equal(scores[0], 1.0, 1e-6);
	assert_float_equal(scores[1], bm25(1, 9) / bm25(2, 11), 1e-5);
	/* an unmatched query: no rows, no scale */
	assert_int_equal(lexical_search_raw(lx, "zeppelin", 5, NULL, NULL, ids, scores, &n,
					    &query_max, NULL),
			 0);
	assert_int_equal(n, 0);
	assert_true(query_max == 0);
	lexical_free(lx);
}

static void test_porter(void **state)
{
	const char *text = "Fresh bagels are baked every morning.";
	size_t len = strlen(text);
	int64_t id = 1, ids[2];
	float scores[2];
	size_t n = 0;
	struct lexical *plain = lexical_new(0, NULL), *stem = lexical_new(1, NULL);

	(void)state;
	assert_int_equal(lexical_add(plain, &id, &text, &len, 1, NULL), 0);
	assert_int_equal(lexical_add(stem, &id, &text, &len, 1, NULL), 0);
	assert_int_equal(lexical_search(plain, "bagel baking", 2, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(lexical_search(stem, "bagel baking", 2, ids, scores, &n, NULL), 0);
	assert_int_equal(n, 1);
	lexical_free(plain);
	lexical_free(stem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranking),
		cmocka_unit_test(test_diacritics_and_case),
		cmocka_unit_test(test_replace_and_remove),
		cmocka_unit_test(test_hostile_and_empty_queries),
		cmocka_unit_test(test_porter),
		cmocka_unit_test(test_bm25_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
