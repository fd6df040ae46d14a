/*
 * Retrieval metrics as BEIR reports them: nDCG@k (graded gains, log2
 * discount, ideal ordering from the judgements), Recall@k and MRR@k
 * (first relevant document, gain > 0).
 *
 * Thread-safety: pure functions.
 */
#ifndef RAGD_RAG_RAG_EVAL_H
#define RAGD_RAG_RAG_EVAL_H

#include <stddef.h>

/* One judged document of a query: its id and graded relevance (> 0 relevant). */
struct eval_judgement {
	const char *doc_id;
	int gain;
};

/*
 * Scores one query's ranking (ranked[0] best, n_ranked ids, no
 * duplicates) against its judgements. Returns 0 when the query has no
 * relevant judgement (callers skip such queries, as BEIR does).
 */
double eval_ndcg(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		 size_t n_j, size_t k);
double eval_recall(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		   size_t n_j, size_t k);
double eval_mrr(const char *const *ranked, size_t n_ranked, const struct eval_judgement *j,
		size_t n_j, size_t k);

#endif
