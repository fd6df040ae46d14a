/*
 * Grounded answers: retrieve, number the sources, prompt a generator (or
 * pick sentences when there is none), and keep only the citations that
 * point at a source.
 *
 * rag_answer() runs the whole pipeline; the building blocks (prompt
 * template, citation parser, sentence splitter, extractive picker) are
 * exported for the unit tests and for other front ends.
 *
 * Thread-safety: every function may be called from many threads at once;
 * rag_answer_configure() only before serving.
 */
#ifndef RAGD_RAG_RAG_ANSWER_H
#define RAGD_RAG_RAG_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "core/sbuf.h"
#include "model/generator.h"
#include "rag/rag_engine.h"

struct cache_key;
struct cache_key_builder;
struct rag_err;

/* The default prompt: {sources} becomes the numbered sources, {question} the question. */
#define RAG_DEFAULT_TEMPLATE                                                               \
	"Answer the question using only the numbered sources below. After each fact, cite "  \
	"the source it comes from as [n], for example [1]. If the sources do not contain the " \
	"answer, say that you do not know.\n\n{sources}\n\nQuestion: {question}\nAnswer:"

#define RAG_NO_SOURCE_ANSWER "I could not find an answer to this question in the documents."

struct rag_answer_options {
	const char *prompt_template; /* NULL or "": RAG_DEFAULT_TEMPLATE; copied */
	double min_score;            /* best dense cosine below this: no answer is attempted */
	int history_messages;        /* earlier session messages given to the model */
	int timeout_ms;              /* deadline of one generation, 0 = none */
};

void rag_answer_default_options(struct rag_answer_options *o);

/*
 * Gives the engine its generator (borrowed: it must outlive the engine;
 * NULL = extractive answers) and the answer options. RAG_EINVAL naming
 * "rag.prompt_template" when the template lacks {sources} or {question}.
 */
int rag_answer_configure(struct rag_engine *eng, struct generator *gen,
			 const struct rag_answer_options *o, struct rag_err *err);

/* The generator's name, or "extractive". */
const char *rag_answer_model(struct rag_engine *eng);

struct rag_ask {
	const char *question; /* len bytes, UTF-8 */
	size_t len;
	size_t top_k;         /* sources retrieved */
	enum rag_mode mode;
	const struct store_filter *filter;
	const char *session_id; /* NULL: no conversation */
	int max_tokens;         /* > 0 */
	float temperature;      /* 0 = greedy */
	/*
	 * The filter in canonical form (compact JSON, keys sorted) for the
	 * answer cache's key; a filtered question without it is not cached.
	 */
	const char *filter_key;
	int no_cache;           /* skip the answer cache (and the search caches) */
	const char *authorization; /* sent on to shard peers (struct rag_query); may be NULL */
	gen_token_fn on_token;  /* streaming: raw answer text as it is made; may be NULL.
				 * Called with len 0 to ask whether to go on at all;
				 * non-zero stops the answer (the client left) */
	void *ctx;
};

/* One numbered source as the answer cites it; strings owned. */
struct rag_citation {
	int n;                /* its number in the prompt, from 1 */
	char *document_id;
	int64_t chunk_id;
	float score;
	size_t start_byte, end_byte; /* the chunk's span in its document */
	char *text;                  /* the chunk's text */
};

struct rag_answer {
	struct sbuf text;               /* the answer, invalid citations removed */
	const char *kind;               /* "generated", "extractive" or "no_answer" */
	struct rag_citation *citations; /* cited sources, in order of first citation */
	size_t n_citations;
	size_t n_sources;               /* sources given to the model */
	size_t n_invalid;               /* citations removed: they named no source */
	char *query;                    /* what was searched: the question, or its rewrite */
	struct gen_usage usage;         /* zero for extractive answers */
	double rewrite_ms, retrieve_ms, generate_ms, total_ms;
	enum rag_cache_status cache;    /* how the answer cache was met */
};

/*
 * Answers q from the collection. With a cache, a whole answer is looked up
 * first under a key of the collection's state (rag_cache_key_collection)
 * and rag_answer_cache_key's fields, and a computed one is stored unless
 * the collection changed meanwhile; on a hit the stored text goes to
 * on_token in one piece. Not cached: questions with a session (the answer
 * depends on the history), temperature > 0 (no seed: not repeatable),
 * answers cut short (cancelled, timeout). With a session, earlier turns
 * are read from the store, a follow-up is rewritten into a standalone
 * query before retrieval, and this turn is appended (any instance can
 * continue it).
 * RAG_EINVAL naming "question", "top_k", "max_tokens", "temperature" or
 * "session_id"; RAG_ENOTFOUND for no collection; RAG_EBUSY when the
 * generator's queue is full. Release out with rag_answer_release (also
 * after a failure).
 */
int rag_answer(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_ask *q, struct rag_answer *out, struct rag_err *err);
void rag_answer_release(struct rag_answer *a);

/*
 * Adds what decides an answer besides the collection's state (which the
 * caller added to b first) and finishes the key: mode, top_k, canonical
 * filter, question, max_tokens, temperature, the generator's name, the
 * prompt template and min_score. 0 or RAG_ENOMEM.
 */
int rag_answer_cache_key(struct cache_key_builder *b, const struct rag_ask *q,
			 const char *model, const char *prompt_template, double min_score,
			 struct cache_key *out);

/* --- building blocks --- */

/* A source for the prompt: borrowed text. */
struct rag_source {
	const char *text;
	size_t len;
};

/*
 * Fills the template: {sources} becomes "[1] text\n\n[2] text...", {question}
 * the question. Sources are added in order while the whole prompt stays
 * within budget_tokens as count() measures it (count NULL: 4 bytes a
 * token); a source that does not fit is cut at a UTF-8 boundary if it is
 * the first, else left out. *n_used receives how many were numbered.
 * Returns 0 or RAG_ENOMEM / RAG_ETOOBIG (not even the question fits).
 */
typedef int (*rag_count_fn)(void *ctx, const char *text, size_t len);
int rag_prompt_build(const char *tmpl, const char *question, size_t question_len,
		     const struct rag_source *src, size_t n_src, size_t budget_tokens,
		     rag_count_fn count, void *count_ctx, struct sbuf *out, size_t *n_used,
		     struct rag_err *err);

/* 0 when tmpl has {sources} and {question}, else RAG_EINVAL naming field. */
int rag_prompt_check(const char *tmpl, const char *field, struct rag_err *err);

/*
 * Rewrites text in place: citations "[n]", "[n, m]" and "[n][m]" whose
 * numbers are within 1..n_sources are kept (a group loses its invalid
 * members; one left empty is removed with the space before it); the cited
 * numbers, each once in order of first appearance, go to cited[] (room for
 * n_sources) and their count to *n_cited. Returns how many invalid
 * numbers were removed.
 */
size_t rag_cite_clean(struct sbuf *text, size_t n_sources, int *cited, size_t *n_cited);

/* A sentence's span [start, end) within a text. */
struct rag_span {
	size_t start, end;
};

/*
 * Splits text into sentences at '.', '!' or '?' (closing quotes and
 * brackets kept) followed by white space and an upper-case letter, digit
 * or quote, and at blank lines; common abbreviations and initials ("Dr.",
 * "e.g.", "J. Smith") do not end a sentence. Spans are trimmed of white
 * space. Returns the count (at most cap).
 */
size_t rag_sentences(const char *text, size_t len, struct rag_span *out, size_t cap);

/*
 * The extractive answer: the sentences of the sources sharing most words
 * with the question (at most max_sentences, best first, a source's rank
 * breaking ties), each followed by its source's citation "[n]". Appends to
 * out; returns the number of sentences used (0 when no sentence shares a
 * word: the best source's first sentence is used then, and 1 returned).
 */
size_t rag_extract(const char *question, size_t question_len, const struct rag_source *src,
		   size_t n_src, size_t max_sentences, struct sbuf *out);

#endif
