/*
 * The embedder interface's query prefix: embedder_embed_query glues
 * query_prefix before the query (and only there), on a recording backend;
 * and the real models say what their GGUF says: bge-small-en-v1.5 carries
 * its prefix and a 512-token window, all-MiniLM-L6-v2 has no prefix.
 *
 * The model files come from `make models`; the bge test skips when its file
 * is absent only if RAGD_SKIP_BGE is set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "model/embedder.h"

#define BGE_PREFIX "Represent this sentence for searching relevant passages: "

struct recorder {
	struct embedder base;
	char seen[256]; /* the last text embedded */
	size_t n_calls;
};

static int rec_embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		     float *out, struct rag_err *err)
{
	struct recorder *r = (struct recorder *)e;

	(void)err;
	assert_int_equal(n, 1);
	assert_true(lens[0] < sizeof(r->seen));
	memcpy(r->seen, texts[0], lens[0]);
	r->seen[lens[0]] = '\0';
	r->n_calls++;
	out[0] = 1.0f;
	return 0;
}

static int rec_count(struct embedder *e, const char *text, size_t len)
{
	(void)e;
	(void)text;
	return (int)len;
}

static void rec_free(struct embedder *e)
{
	(void)e;
}

static const struct embedder_ops rec_ops = { rec_embed, rec_count, rec_free };

static void test_query_gets_the_prefix(void **state)
{
	struct recorder r = { .base = { .ops = &rec_ops, .dim = 1, .query_prefix = "query: " } };
	const char *doc = "a document";
	size_t doc_len = strlen(doc);
	float v;

	(void)state;
	/* the query is not NUL-terminated where its length ends */
	assert_int_equal(embedder_embed_query(&r.base, "capital of France???", 17, &v, NULL), 0);
	assert_string_equal(r.seen, "query: capital of France");
	assert_int_equal(embedder_embed(&r.base, &doc, &doc_len, 1, &v, NULL), 0);
	assert_string_equal(r.seen, "a document");
	assert_int_equal(embedder_embed_query(&r.base, "", 0, &v, NULL), 0);
	assert_string_equal(r.seen, "query: ");
}

static void test_no_prefix_passes_the_query_through(void **state)
{
	struct recorder r = { .base = { .ops = &rec_ops, .dim = 1, .query_prefix = "" } };
	float v;

	(void)state;
	assert_int_equal(embedder_embed_query(&r.base, "plain", 5, &v, NULL), 0);
	assert_string_equal(r.seen, "plain");
	r.base.query_prefix = NULL; /* a backend that never set it */
	assert_int_equal(embedder_embed_query(&r.base, "plain too", 9, &v, NULL), 0);
	assert_string_equal(r.seen, "plain too");
	assert_int_equal(r.n_calls, 2);
}

static struct embedder *load(const char *file, int skippable)
{
	struct embedder_llama_options o;
	struct rag_err err = { 0 };
	const char *src = getenv("RAGD_SOURCE_DIR");
	const char *skip_env = getenv("RAGD_SKIP_BGE");
	char path[4096];
	struct embedder *e;
	FILE *f;

	snprintf(path, sizeof(path), "%s/models/%s", src ? src : ".", file);
	f = fopen(path, "rb");
	if (!f) {
		if (skippable && skip_env && skip_env[0] && strcmp(skip_env, "0") != 0)
			return NULL;
		fail_msg("%s is missing: run `make models`", path);
	}
	fclose(f);
	embedder_llama_default_options(&o);
	o.model_path = path;
	o.n_contexts = 1;
	o.n_threads = 1;
	e = embedder_llama_new(&o, &err);
	if (!e)
		fail_msg("cannot load %s: %s", path, err.msg);
	return e;
}

static void test_bge_carries_its_prefix(void **state)
{
	struct embedder *e = load("bge-small-en-v1.5.gguf", 1);
	float *q, *d;
	double dot = 0;

	(void)state;
	if (!e)
		skip();
	assert_string_equal(e->query_prefix, BGE_PREFIX);
	assert_int_equal(e->max_tokens, 512);
	assert_int_equal(e->dim, 384);
	assert_int_equal(e->n_special, 2);
	q = calloc(2 * e->dim, sizeof(float));
	assert_non_null(q);
	d = q + e->dim;
	{
		const char *glued = BGE_PREFIX "hello world";
		size_t len = strlen(glued);

		assert_int_equal(embedder_embed_query(e, "hello world", 11, q, NULL), 0);
		assert_int_equal(embedder_embed(e, &glued, &len, 1, d, NULL), 0);
	}
	for (size_t i = 0; i < e->dim; i++)
		dot += (double)q[i] * d[i];
	assert_float_equal(dot, 1.0, 1e-5);
	free(q);
	embedder_free(e);
}

static void test_minilm_has_no_prefix(void **state)
{
	struct embedder *e = load("all-MiniLM-L6-v2.gguf", 0);

	(void)state;
	assert_non_null(e->query_prefix);
	assert_string_equal(e->query_prefix, "");
	assert_int_equal(e->max_tokens, 256);
	embedder_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_gets_the_prefix),
		cmocka_unit_test(test_no_prefix_passes_the_query_through),
		cmocka_unit_test(test_bge_carries_its_prefix),
		cmocka_unit_test(test_minilm_has_no_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
