/*
 * The answer pipeline's building blocks: the citation parser and cleaner,
 * the prompt builder (numbering, budget, cutting), the sentence splitter and
 * the extractive picker; conversation sessions in the SQLite store; and
 * the answer cache's key and value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "rag/rag_answer.h"
#include "rag/rag_int.h"
#include "store/store.h"
#include "store/store_sqlite.h"

static size_t clean(const char *in, size_t n_sources, char *out, size_t cap, int *cited,
		    size_t *n_cited)
{
	struct sbuf sb = SBUF_INIT;
	size_t invalid;

	sbuf_addstr(&sb, in);
	invalid = rag_cite_clean(&sb, n_sources, cited, n_cited);
	snprintf(out, cap, "%s", sb.buf);
	sbuf_release(&sb);
	return invalid;
}

static void test_cite_forms(void **state)
{
	char out[256];
	int cited[8];
	size_t n;

	(void)state;
	assert_int_equal(clean("Paris [1] and Lyon [2].", 3, out, sizeof(out), cited, &n), 0);
	assert_string_equal(out, "Paris [1] and Lyon [2].");
	assert_int_equal(n, 2);
	assert_int_equal(cited[0], 1);
	assert_int_equal(cited[1], 2);
	/* [n, m], [n,m], [n; m] and [n][m]; each number once, first-appearance order. */
	assert_int_equal(clean("A [3, 1]. B [1,2]. C [2; 3]. D [3][1].", 3, out, sizeof(out),
			       cited, &n), 0);
	assert_string_equal(out, "A [3, 1]. B [1, 2]. C [2, 3]. D [3][1].");
	assert_int_equal(n, 3);
	assert_int_equal(cited[0], 3);
	assert_int_equal(cited[1], 1);
	assert_int_equal(cited[2], 2);
}

static void test_cite_invalid_removed(void **state)
{
	char out[256];
	int cited[8];
	size_t n;

	(void)state;
	assert_int_equal(clean("Paris [7].", 2, out, sizeof(out), cited, &n), 1);
	assert_string_equal(out, "Paris.");
	assert_int_equal(n, 0);
	assert_int_equal(clean("Paris [1, 9] and [0] Lyon [2][5].", 2, out, sizeof(out), cited,
			       &n), 3);
	assert_string_equal(out, "Paris [1] and Lyon [2].");
	assert_int_equal(n, 2);
	/* No sources at all: every citation is invalid. */
	assert_int_equal(clean("x [1] y", 0, out, sizeof(out), cited, &n), 1);
	assert_string_equal(out, "x y");
}

static void test_cite_not_citations(void **state)
{
	char out[256];
	int cited[8];
	size_t n;

	(void)state;
	assert_int_equal(clean("see [a], [1 2], [], [1,], [1234567] and [x1]", 3, out,
			       sizeof(out), cited, &n), 0);
	assert_string_equal(out, "see [a], [1 2], [], [1,], [1234567] and [x1]");
	assert_int_equal(n, 0);
	assert_int_equal(clean("unclosed [1", 3, out, sizeof(out), cited, &n), 0);
	assert_string_equal(out, "unclosed [1");
}

static void test_prompt_numbers_sources(void **state)
{
	struct rag_source src[2] = { { "Alpha text.", 11 }, { "Beta text.", 10 } };
	struct sbuf out = SBUF_INIT;
	size_t used;

	(void)state;
	assert_int_equal(rag_prompt_build("Q: {question}\n{sources}\nA:", "why?", 4, src, 2, 1000,
					  NULL, NULL, &out, &used, NULL),
			 0);
	assert_int_equal(used, 2);
	assert_string_equal(out.buf, "Q: why?\n[1] Alpha text.\n\n[2] Beta text.\nA:");
	sbuf_reset(&out);
	/* A question holding a placeholder is not expanded again. */
	assert_int_equal(rag_prompt_build(NULL, "{sources}?", 10, src, 1, 1000, NULL, NULL, &out,
					  &used, NULL),
			 0);
	assert_non_null(strstr(out.buf, "Question: {sources}?"));
	assert_non_null(strstr(out.buf, "[1] Alpha text."));
	assert_non_null(strstr(out.buf, "cite"));
	sbuf_release(&out);
}

static void test_prompt_budget(void **state)
{
	char big[400];
	struct rag_source src[3] = { { "first source here", 17 },
				     { "second source here", 18 },
				     { big, sizeof(big) } };
	struct sbuf out = SBUF_INIT;
	struct rag_err err = { 0 };
	size_t used;

	(void)state;
	memset(big, 'x', sizeof(big));
	/* 4 bytes a token: "{sources}|{question}" with "q" is 1 token; room for two sources. */
	assert_int_equal(rag_prompt_build("{sources}|{question}", "q", 1, src, 3, 20, NULL, NULL,
					  &out, &used, NULL),
			 0);
	assert_int_equal(used, 2);
	assert_null(strstr(out.buf, "xxxx"));
	sbuf_reset(&out);
	/* A first source too big for the window is cut, not dropped. */
	assert_int_equal(rag_prompt_build("{sources}|{question}", "q", 1, src + 2, 1, 40, NULL,
					  NULL, &out, &used, NULL),
			 0);
	assert_int_equal(used, 1);
	assert_true(out.len <= 40 * 4);
	assert_non_null(strstr(out.buf, "[1] xxxx"));
	sbuf_reset(&out);
	assert_int_equal(rag_prompt_build("{sources}|{question}", big, sizeof(big), src, 1, 20,
					  NULL, NULL, &out, &used, &err),
			 RAG_ETOOBIG);
	assert_string_equal(err.field, "question");
	assert_int_equal(rag_prompt_check("no placeholders", "rag.prompt_template", &err),
			 RAG_EINVAL);
	assert_int_equal(rag_prompt_check("{sources} {question}", "t", NULL), 0);
	sbuf_release(&out);
}

static void test_sentences(void **state)
{
	const char *t = "Dr. Smith went to Washington. He met J. Doe there! Was it 1999? "
			"Yes.\n\nA new paragraph e.g. this one";
	struct rag_span sp[8];
	size_t n = rag_sentences(t, strlen(t), sp, 8);
	const char *want[] = { "Dr. Smith went to Washington.", "He met J. Doe there!",
			       "Was it 1999?", "Yes.", "A new paragraph e.g. this one" };

	(void)state;
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%.*s", (int)(sp[i].end - sp[i].start), t + sp[i].start);
		assert_string_equal(buf, want[i]);
	}
	assert_int_equal(rag_sentences("", 0, sp, 8), 0);
	assert_int_equal(rag_sentences("  \n ", 4, sp, 8), 0);
	assert_int_equal(rag_sentences("3.14 is pi. ok", 14, sp, 8), 1);
}

static void test_extract(void **state)
{
	const char *a = "Paris is in France. The Eiffel Tower is 330 metres tall.";
	const char *b = "Towers are tall. Lyon has a tower too.";
	struct rag_source src[2] = { { a, strlen(a) }, { b, strlen(b) } };
	struct sbuf out = SBUF_INIT;

	(void)state;
	assert_int_equal(rag_extract("How tall is the Eiffel Tower?", 29, src, 2, 1, &out), 1);
	assert_string_equal(out.buf, "The Eiffel Tower is 330 metres tall. [1]");
	sbuf_reset(&out);
	assert_int_equal(rag_extract("How tall is the Eiffel Tower?", 29, src, 2, 2, &out), 2);
	assert_non_null(strstr(out.buf, "[2]"));
	sbuf_reset(&out);
	/* Nothing shared: the best source's first sentence. */
	assert_int_equal(rag_extract("zebra quokka", 12, src, 2, 2, &out), 1);
	assert_string_equal(out.buf, "Paris is in France. [1]");
	sbuf_release(&out);
}

static void test_sessions_in_store(void **state)
{
	char dir[] = "/tmp/ragd-test-sessions-XXXXXX";
	struct store *st;
	struct store_message m[3] = { { "user", "q1", 0 }, { "assistant", "a1", 0 },
				      { "user", "q2", 0 } };
	struct store_message *h = NULL;
	struct rag_err err = { 0 };
	size_t n = 0;
	char cmd[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	st = store_sqlite_open(dir, NULL, &err);
	assert_non_null(st);
	assert_int_equal(store_session_history(st, "t", "s", 10, &h, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(h);
	assert_int_equal(store_session_append(st, "t", "s", m, 2, NULL), 0);
	assert_int_equal(store_session_append(st, "t", "s", m + 2, 1, NULL), 0);
	assert_int_equal(store_session_append(st, "other", "s", m, 1, NULL), 0);
	assert_int_equal(store_session_history(st, "t", "s", 10, &h, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].content, "q1");
	assert_string_equal(h[2].content, "q2");
	assert_string_equal(h[1].role, "assistant");
	store_messages_free(h, n);
	/* The last two only, oldest first. */
	assert_int_equal(store_session_history(st, "t", "s", 2, &h, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(h[0].content, "a1");
	assert_string_equal(h[1].content, "q2");
	store_messages_free(h, n);
	assert_int_equal(store_session_append(st, "t", "", m, 1, &err), RAG_EINVAL);
	assert_string_equal(err.field, "session_id");
	store_free(st);
	/* Reopening (migrations are idempotent) keeps them. */
	st = store_sqlite_open(dir, NULL, NULL);
	assert_non_null(st);
	assert_int_equal(store_session_history(st, "t", "s", 10, &h, &n, NULL), 0);
	assert_int_equal(n, 3);
	store_messages_free(h, n);
	store_free(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void answer_key(const struct rag_ask *q, const char *model, const char *tmpl,
		       double min_score, int64_t seq, struct cache_key *out)
{
	struct cache_key_builder b;

	cache_key_begin(&b, CACHE_ANSWER);
	cache_key_add_i64(&b, "seq", seq); /* stands for rag_cache_key_collection */
	assert_int_equal(rag_answer_cache_key(&b, q, model, tmpl, min_score, out), 0);
}

static void test_answer_cache_key(void **state)
{
	struct rag_ask base = { .question = "Who built it?", .len = 13, .top_k = 5,
				.mode = RAG_MODE_DENSE, .max_tokens = 32 };
	struct rag_ask q;
	struct cache_key k0, k1;

	(void)state;
	answer_key(&base, "smollm2", "T {sources} {question}", 0.25, 7, &k0);
	answer_key(&base, "smollm2", "T {sources} {question}", 0.25, 7, &k1);
	assert_string_equal(k0.text, k1.text); /* deterministic */
	assert_int_equal(k0.kind, CACHE_ANSWER);
#define DIFFERS(q, model, tmpl, min_score, seq)                         \
	do {                                                            \
		answer_key(&(q), model, tmpl, min_score, seq, &k1);     \
		assert_string_not_equal(k0.text, k1.text);              \
	} while (0)
	q = base;
	q.max_tokens = 33;
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	q = base;
	q.temperature = 0.5f;
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	q = base;
	q.top_k = 4;
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	q = base;
	q.mode = RAG_MODE_HYBRID;
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	q = base;
	q.filter_key = "{\"lang\":\"en\"}";
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	q = base;
	q.len = 12; /* another question */
	DIFFERS(q, "smollm2", "T {sources} {question}", 0.25, 7);
	DIFFERS(base, "extractive", "T {sources} {question}", 0.25, 7);
	DIFFERS(base, "smollm2", "U {sources} {question}", 0.25, 7);
	DIFFERS(base, "smollm2", "T {sources} {question}", 0.3, 7);
	DIFFERS(base, "smollm2", "T {sources} {question}", 0.25, 8); /* a write */
#undef DIFFERS
}

static void test_answer_cache_value(void **state)
{
	struct rag_citation cites[2] = {
		{ 2, "moon", 11, 0.75f, 0, 40, "The Moon is Earth's satellite." },
		{ 1, "eiffel", 12, 0.5f, 10, 20, "It is tall." },
	};
	struct rag_answer a = { 0 }, b;
	void *val;
	size_t len;

	(void)state;
	sbuf_init(&a.text, 0);
	sbuf_addstr(&a.text, "It landed in 1969 [2] [1].");
	a.kind = "generated";
	a.citations = cites;
	a.n_citations = 2;
	a.n_sources = 3;
	a.n_invalid = 1;
	a.query = "When?";
	a.usage.prompt_tokens = 100;
	a.usage.completion_tokens = 9;
	a.usage.finish_reason = "length";
	assert_int_equal(rag_cache_encode_answer(&a, &val, &len), 0);
	assert_int_equal(rag_cache_decode_answer(val, len, &b), 0);
	assert_string_equal(b.text.buf, a.text.buf);
	assert_string_equal(b.kind, "generated");
	assert_string_equal(b.query, "When?");
	assert_string_equal(b.usage.finish_reason, "length");
	assert_int_equal(b.usage.prompt_tokens, 100);
	assert_int_equal(b.usage.completion_tokens, 9);
	assert_int_equal(b.n_sources, 3);
	assert_int_equal(b.n_invalid, 1);
	assert_int_equal(b.n_citations, 2);
	assert_int_equal(b.citations[0].n, 2);
	assert_string_equal(b.citations[0].document_id, "moon");
	assert_int_equal(b.citations[0].chunk_id, 11);
	assert_true(b.citations[0].score == 0.75f);
	assert_int_equal(b.citations[1].start_byte, 10);
	assert_int_equal(b.citations[1].end_byte, 20);
	assert_string_equal(b.citations[1].text, "It is tall.");
	rag_answer_release(&b);
	/* Any truncation or a wrong magic is no answer. */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(rag_cache_decode_answer(val, cut, &b), RAG_EINVAL);
	((unsigned char *)val)[0] ^= 1;
	assert_int_equal(rag_cache_decode_answer(val, len, &b), RAG_EINVAL);
	free(val);
	/* Answers cut short are not values. */
	a.usage.finish_reason = "cancelled";
	assert_int_equal(rag_cache_encode_answer(&a, &val, &len), RAG_EINVAL);
	a.usage.finish_reason = "stop";
	a.usage.stopped = 1;
	assert_int_equal(rag_cache_encode_answer(&a, &val, &len), RAG_EINVAL);
	sbuf_release(&a.text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cite_forms),
		cmocka_unit_test(test_cite_invalid_removed),
		cmocka_unit_test(test_cite_not_citations),
		cmocka_unit_test(test_prompt_numbers_sources),
		cmocka_unit_test(test_prompt_budget),
		cmocka_unit_test(test_sentences),
		cmocka_unit_test(test_extract),
		cmocka_unit_test(test_sessions_in_store),
		cmocka_unit_test(test_answer_cache_key),
		cmocka_unit_test(test_answer_cache_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
