/*
 * A BM25 ranking function for FTS5 with tunable k1 and b.
 *
 * FTS5's built-in bm25() fixes k1 = 1.2 and b = 0.75 and uses the classic
 * idf, which goes negative for a term in more than half the rows (FTS5 then
 * clamps it to 1e-6), and exposes nothing a caller could normalise scores
 * by. This one uses Lucene's idf, log(1 + (N - n + 0.5) / (n + 0.5)), which
 * is always positive (the BEIR reference figures come from Anserini, i.e.
 * Lucene), takes k1 and b as arguments, and comes with ragd_bm25_max, the
 * query's full-match score. Registered as ragd_bm25(table, k1, b); it
 * returns the score negated, like bm25(), so ORDER BY ascending ranks best
 * first.
 */
#include "index/lexical_int.h"

#include <math.h>
#include <stdlib.h>

#include "core/banned.h"

/* Per-query statistics, computed on the first row and kept as aux data. */
struct bm25_query {
	int n_phrases;
	double avgdl;
	double idf[]; /* one per phrase */
};

static int count_row(const Fts5ExtensionApi *api, Fts5Context *fts, void *ctx)
{
	(void)api;
	(void)fts;
	(*(sqlite3_int64 *)ctx)++;
	return SQLITE_OK;
}

static int query_stats(const Fts5ExtensionApi *api, Fts5Context *fts, struct bm25_query **out)
{
	struct bm25_query *q = api->xGetAuxdata(fts, 0);
	sqlite3_int64 n_rows = 0, n_tokens = 0;
	int n_phrases, rc;

	if (q) {
		*out = q;
		return SQLITE_OK;
	}
	n_phrases = api->xPhraseCount(fts);
	q = sqlite3_malloc64(sizeof(*q) + (size_t)n_phrases * sizeof(double));
	if (!q)
		return SQLITE_NOMEM;
	q->n_phrases = n_phrases;
	rc = api->xRowCount(fts, &n_rows);
	if (rc == SQLITE_OK)
		rc = api->xColumnTotalSize(fts, -1, &n_tokens);
	q->avgdl = n_rows > 0 && n_tokens > 0 ? (double)n_tokens / (double)n_rows : 1.0;
	for (int i = 0; rc == SQLITE_OK && i < n_phrases; i++) {
		sqlite3_int64 n_hits = 0;

		rc = api->xQueryPhrase(fts, i, &n_hits, count_row);
		q->idf[i] = log(1.0 + ((double)n_rows - (double)n_hits + 0.5) / ((double)n_hits + 0.5));
	}
	if (rc == SQLITE_OK)
		rc = api->xSetAuxdata(fts, q, sqlite3_free); /* frees q itself on failure */
	else
		sqlite3_free(q);
	*out = rc == SQLITE_OK ? q : NULL;
	return rc;
}

static void bm25_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
		    int n_args, sqlite3_value **args)
{
	double k1 = n_args > 0 ? sqlite3_value_double(args[0]) : LEXICAL_BM25_K1;
	double b = n_args > 1 ? sqlite3_value_double(args[1]) : LEXICAL_BM25_B;
	struct bm25_query *q = NULL;
	double freq_stack[16], *freq = freq_stack, score = 0, norm;
	int n_inst = 0, dl = 0, rc;

	rc = query_stats(api, fts, &q);
	if (rc == SQLITE_OK && q->n_phrases > 16 &&
	    !(freq = sqlite3_malloc64((size_t)q->n_phrases * sizeof(double))))
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK)
		rc = api->xInstCount(fts, &n_inst);
	if (rc == SQLITE_OK)
		rc = api->xColumnSize(fts, -1, &dl);
	if (rc != SQLITE_OK) {
		if (freq != freq_stack)
			sqlite3_free(freq);
		sqlite3_result_error_code(ctx, rc);
		return;
	}
	for (int i = 0; i < q->n_phrases; i++)
		freq[i] = 0;
	for (int i = 0; i < n_inst; i++) {
		int phrase, col, off;

		if (api->xInst(fts, i, &phrase, &col, &off) == SQLITE_OK && phrase >= 0 &&
		    phrase < q->n_phrases)
			freq[phrase] += 1;
	}
	norm = k1 * (1 - b + b * (double)dl / q->avgdl);
	for (int i = 0; i < q->n_phrases; i++)
		if (freq[i] > 0)
			score += q->idf[i] * freq[i] * (k1 + 1) / (freq[i] + norm);
	if (freq != freq_stack)
		sqlite3_free(freq);
	sqlite3_result_double(ctx, -score);
}

/*
 * ragd_bm25_max(table, k1): the score a row would reach if it matched
 * every query term infinitely often, sum of idf x (k1 + 1). Dividing by it
 * puts BM25 on a scale that says how much of the query a row matches, which
 * is what fusing it with cosine similarities needs (a min-max scale makes a
 * one-word match of a five-word query look perfect).
 */
static void bm25_max_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
			int n_args, sqlite3_value **args)
{
	double k1 = n_args > 0 ? sqlite3_value_double(args[0]) : LEXICAL_BM25_K1, sum = 0;
	struct bm25_query *q = NULL;
	int rc = query_stats(api, fts, &q);

	if (rc != SQLITE_OK) {
		sqlite3_result_error_code(ctx, rc);
		return;
	}
	for (int i = 0; i < q->n_phrases; i++)
		sum += q->idf[i];
	sqlite3_result_double(ctx, sum * (k1 + 1));
}

int lexical_bm25_register(sqlite3 *db)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (!api)
		return SQLITE_ERROR;
	rc = api->xCreateFunction(api, "ragd_bm25", NULL, bm25_fn, NULL);
	if (rc == SQLITE_OK)
		rc = api->xCreateFunction(api, "ragd_bm25_max", NULL, bm25_max_fn, NULL);
	return rc;
}
