/*
 * Retrieval metrics on hand-computed examples.
 *
 * Query with judgements a:3, b:2, c:1, d:0 and the ranking x, b, a, y, c:
 *   DCG@5  = 2/log2(3) + 3/log2(4) + 1/log2(6) = 1.26186 + 1.5 + 0.38685 = 3.14871
 *   IDCG@5 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5 = 4.76186
 *   nDCG@5 = 0.66123; nDCG@2 = (2/log2(3)) / (3 + 1.26186) = 0.29608
 *   Recall@2 = 1/3, Recall@5 = 1; MRR@1 = 0, MRR@5 = 1/2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rag/rag_eval.h"

static const struct eval_judgement judged[] = { { "a", 3 }, { "b", 2 }, { "c", 1 }, { "d", 0 } };
static const char *const ranking[] = { "x", "b", "a", "y", "c" };

static void test_ndcg(void **state)
{
	(void)state;
	assert_float_equal(eval_ndcg(ranking, 5, judged, 4, 5), 0.66123, 1e-5);
	assert_float_equal(eval_ndcg(ranking, 5, judged, 4, 2), 0.29608, 1e-5);
	/* The ideal ranking scores 1; no relevant judgement scores 0. */
	{
		const char *ideal[] = { "a", "b", "c" };

		assert_float_equal(eval_ndcg(ideal, 3, judged, 4, 10), 1.0, 1e-12);
		assert_float_equal(eval_ndcg(ideal, 3, judged + 3, 1, 10), 0.0, 1e-12);
	}
}

static void test_recall_and_mrr(void **state)
{
	(void)state;
	assert_float_equal(eval_recall(ranking, 5, judged, 4, 2), 1.0 / 3, 1e-12);
	assert_float_equal(eval_recall(ranking, 5, judged, 4, 5), 1.0, 1e-12);
	assert_float_equal(eval_mrr(ranking, 5, judged, 4, 1), 0.0, 1e-12);
	assert_float_equal(eval_mrr(ranking, 5, judged, 4, 5), 0.5, 1e-12);
	assert_float_equal(eval_mrr(ranking, 0, judged, 4, 5), 0.0, 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ndcg),
		cmocka_unit_test(test_recall_and_mrr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
