/*
 * The lexical index: BM25 over chunk texts with SQLite FTS5.
 *
 * Like the vector index it is derived data, rebuilt from the store and kept
 * current by replaying the change log; here it lives in an in-memory FTS5
 * database per collection (unicode61 tokenizer, diacritics removed). Scores
 * are FTS5's bm25() negated (higher is better), then normalised per query
 * by the best score so they fall in (0, 1].
 *
 * Thread-safety: all functions may be called from any thread; one mutex
 * serialises them (an FTS5 query over 10k chunks takes about a millisecond).
 */
#ifndef RAGD_INDEX_LEXICAL_H
#define RAGD_INDEX_LEXICAL_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct lexical;

/*
 * An empty index; with porter, words are also reduced to their English
 * stems ("bagels" finds "bagel"). NULL with err set on failure. Free with
 * lexical_free.
 */
struct lexical *lexical_new(int porter, struct rag_err *err);
void lexical_free(struct lexical *lx);

/*
 * Adds (or replaces) n chunk texts in one transaction: texts[i] has
 * lens[i] bytes. Returns 0 or a negative RAG_E* code; on failure nothing
 * is added.
 */
int lexical_add(struct lexical *lx, const int64_t *ids, const char *const *texts,
		const size_t *lens, size_t n, struct rag_err *err);

/* Removes the chunks first..last (inclusive); absent ones are ignored. */
int lexical_remove_range(struct lexical *lx, int64_t first, int64_t last, struct rag_err *err);

/*
 * The k best chunks for a free-text query, best first, scores normalised
 * to (0, 1]. The query is split into words (letters and digits), common
 * English stop words dropped, and the rest OR-ed; a query with no usable
 * word returns no results. *n_out gets the count.
 */
int lexical_search(struct lexical *lx, const char *query, size_t k, int64_t *out_ids,
		   float *out_scores, size_t *n_out, struct rag_err *err);

/*
 * The same, keeping only chunks for which keep(ctx, id) returns non-zero:
 * matches are read in rank order until k are kept, so a filter never
 * shortens the list while matching chunks remain.
 */
int lexical_search_filtered(struct lexical *lx, const char *query, size_t k,
			    int (*keep)(void *ctx, int64_t id), void *keep_ctx, int64_t *out_ids,
			    float *out_scores, size_t *n_out, struct rag_err *err);

/*
 * lexical_search_filtered with raw BM25 scores (not normalised) and, in
 * *query_max, the score a chunk matching every query term without limit
 * would reach (sum of idf x (k1 + 1)): score / query_max says how much of
 * the query a chunk matches, on a scale shared by every query.
 */
int lexical_search_raw(struct lexical *lx, const char *query, size_t k,
		       int (*keep)(void *ctx, int64_t id), void *keep_ctx, int64_t *out_ids,
		       float *out_scores, size_t *n_out, double *query_max, struct rag_err *err);

size_t lexical_count(struct lexical *lx);

#endif
