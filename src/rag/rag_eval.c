/*
 * nDCG, Recall and MRR at a cut-off, computed the way pytrec_eval (and so
 * BEIR) computes them: DCG = sum over ranks r (1-based) of
 * gain / log2(r + 1) with the raw graded gain; the ideal DCG sorts all
 * judged gains (> 0) descending; recall counts relevant documents found in
 * the top k over all relevant ones; MRR is 1/rank of the first relevant.
 * Judgement lists are short, so lookups are linear scans.
 */
#include "rag/rag_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

static int gain_of(const char *id, const struct eval_judgement *j, size_t n_j)
{
	for (size_t i = 0; i < n_j; i++)
		if (strcmp(j[i].doc_id, id) == 0)
			return j[i].gain;
	return 0;
}

static int desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x < y) - (x > y);
}

double eval_ndcg(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		 size_t n_j, size_t k)
{
	double dcg = 0, idcg = 0;
	int *gains = malloc((n_j ? n_j : 1) * sizeof(*gains));
	size_t n_rel = 0;

	if (!gains)
		return 0;
	for (size_t i = 0; i < n_j; i++)
		if (j[i].gain > 0)
			gains[n_rel++] = j[i].gain;
	qsort(gains, n_rel, sizeof(*gains), desc);
	for (size_t r = 0; r < n_rel && r < k; r++)
		idcg += gains[r] / log2((double)r + 2);
	for (size_t r = 0; r < n_ranked && r < k; r++) {
		int g = gain_of(ranked[r], j, n_j);

		if (g > 0)
			dcg += g / log2((double)r + 2);
	}
	free(gains);
	return idcg > 0 ? dcg / idcg : 0;
}

double eval_recall(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		   size_t n_j, size_t k)
{
	size_t n_rel = 0, found = 0;

	for (size_t i = 0; i < n_j; i++)
		n_rel += j[i].gain > 0;
	for (size_t r = 0; r < n_ranked && r < k; r++)
		found += gain_of(ranked[r], j, n_j) > 0;
	return n_rel ? (double)found / (double)n_rel : 0;
}

double eval_mrr(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		size_t n_j, size_t k)
{
	for (size_t r = 0; r < n_ranked && r < k; r++)
		if (gain_of(ranked[r], j, n_j) > 0)
			return 1.0 / (double)(r + 1);
	return 0;
}
