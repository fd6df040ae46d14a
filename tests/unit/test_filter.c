/*
 * Metadata filters: parsing (rag_filter) and evaluation by the SQLite store
 * (store_filter_ids) on documents whose metadata is known, including
 * missing fields, type mismatches and nested paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "rag/rag_filter.h"
#include "store/store.h"
#include "store/store_sqlite.h"

static const char *const metas[] = {
	"{\"lang\":\"en\",\"year\":1999,\"draft\":false,\"author\":{\"name\":\"Ada\"}}",
	"{\"lang\":\"fr\",\"year\":2005,\"draft\":true,\"date\":\"2024-03-01\"}",
	"{\"lang\":\"en\",\"year\":2010.5,\"tags\":\"x\"}",
	"{\"lang\":\"de\",\"year\":\"2001\"}",
	"{}",
};

struct fixture {
	char dir[64];
	struct store *st;
	int64_t cid;
	int64_t first_chunk[5];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct store_collection spec = { 0 };

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/ragd-filter-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->st = store_sqlite_open(fx->dir, NULL, NULL);
	assert_non_null(fx->st);
	spec.name = "c";
	spec.embed_model = "m";
	spec.dim = 2;
	spec.chunk_size = 16;
	assert_int_equal(store_collection_create(fx->st, "default", &spec, &fx->cid, NULL), 0);
	for (int i = 0; i < 5; i++) {
		char id[8];
		struct store_doc doc = { 0 };
		struct store_chunk chunk = { .start_byte = 0, .end_byte = 4, .text = "text" };
		float vec[2] = { 1, 0 };
		struct store_put put = { .doc = &doc, .chunks = &chunk, .n_chunks = 1, .vecs = vec, .dim = 2 };
		struct store_put_result res;

		snprintf(id, sizeof(id), "d%d", i);
		doc.id = id;
		doc.text = "text";
		doc.metadata_json = metas[i];
		assert_int_equal(store_doc_put(fx->st, fx->cid, &put, &res, NULL), 0);
		fx->first_chunk[i] = res.first_chunk_id;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	store_free(fx->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* The documents (as a bit set over d0..d4) that the filter keeps. */
static unsigned matches(struct fixture *fx, const char *json)
{
	struct rag_filter *f = NULL;
	struct rag_err err = { 0 };
	int64_t *ids = NULL;
	size_t n = 0;
	unsigned set = 0;

	assert_int_equal(rag_filter_parse(json, strlen(json), &f, &err), 0);
	assert_non_null(f);
	assert_int_equal(store_filter_ids(fx->st, fx->cid, rag_filter_tree(f), &ids, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < 5; d++)
			if (ids[i] == fx->first_chunk[d])
				set |= 1u << d;
	free(ids);
	rag_filter_free(f);
	return set;
}

#define D(i) (1u << (i))

static void test_equality_and_types(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(matches(fx, "{\"lang\":\"en\"}"), D(0) | D(2));
	assert_int_equal(matches(fx, "{\"year\":1999}"), D(0));
	assert_int_equal(matches(fx, "{\"year\":2010.5}"), D(2));
	assert_int_equal(matches(fx, "{\"year\":\"2001\"}"), D(3)); /* a string, not 2001 */
	assert_int_equal(matches(fx, "{\"draft\":true}"), D(1));
	assert_int_equal(matches(fx, "{\"draft\":false}"), D(0));
	assert_int_equal(matches(fx, "{\"author.name\":\"Ada\"}"), D(0));
	assert_int_equal(matches(fx, "{\"lang\":\"en\",\"year\":1999}"), D(0));
}

static void test_ranges_in_and_negations(void **state)
{
	struct fixture *fx = *state;

	/* Numbers compare with numbers only: d3's "2001" is text. */
	assert_int_equal(matches(fx, "{\"year\":{\"$gte\":2000}}"), D(1) | D(2));
	assert_int_equal(matches(fx, "{\"year\":{\"$gt\":1000,\"$lt\":2006}}"), D(0) | D(1));
	assert_int_equal(matches(fx, "{\"date\":{\"$gte\":\"2024-01-01\"}}"), D(1));
	assert_int_equal(matches(fx, "{\"lang\":{\"$in\":[\"fr\",\"de\"]}}"), D(1) | D(3));
	/* $ne and $nin keep documents without the field. */
	assert_int_equal(matches(fx, "{\"lang\":{\"$ne\":\"en\"}}"), D(1) | D(3) | D(4));
	assert_int_equal(matches(fx, "{\"lang\":{\"$nin\":[\"en\",\"fr\"]}}"), D(3) | D(4));
	assert_int_equal(matches(fx, "{\"draft\":{\"$ne\":true}}"), D(0) | D(2) | D(3) | D(4));
	assert_int_equal(matches(fx, "{\"$or\":[{\"lang\":\"de\"},{\"$and\":[{\"lang\":\"en\"},"
				     "{\"year\":{\"$lt\":2000}}]}]}"),
			 D(0) | D(3));
	assert_int_equal(matches(fx, "{\"lang\":\"xx\"}"), 0);
	/* Keys are literal: quotes and brackets in a name cannot escape the path. */
	assert_int_equal(matches(fx, "{\"a\\\"]') OR 1=1 --\":1}"), 0);
}

static void test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"[1]",
		"{\"lang\":{\"$regex\":\"e\"}}",
		"{\"$nor\":[{\"a\":1}]}",
		"{\"lang\":{\"$in\":[]}}",
		"{\"lang\":{\"$in\":\"en\"}}",
		"{\"$and\":[]}",
		"{\"$or\":{\"a\":1}}",
		"{\"year\":{\"$gt\":[1]}}",
		"{\"year\":{\"$gt\":true}}",
		"{\"lang\":null}",
		"{\"lang\":[\"en\"]}",
		"{\"\":1}",
		"{\"a..b\":1}",
		"{\"lang\":{}}",
		"{\"a\":1",
	};
	struct rag_filter *f;
	struct rag_err err;
	char deep[512] = "", many[2048] = "{";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rag_err_clear(&err);
		f = NULL;
		assert_int_equal(rag_filter_parse(bad[i], strlen(bad[i]), &f, &err), RAG_EINVAL);
		assert_null(f);
		assert_string_equal(err.field, "filter");
	}
	for (int i = 0; i < 10; i++)
		strcat(deep, "{\"$and\":[");
	strcat(deep, "{\"a\":1}");
	for (int i = 0; i < 10; i++)
		strcat(deep, "]}");
	rag_err_clear(&err);
	assert_int_equal(rag_filter_parse(deep, strlen(deep), &f, &err), RAG_EINVAL);
	for (int i = 0; i < 70; i++) {
		char kv[32];

		snprintf(kv, sizeof(kv), "%s\"k%d\":1", i ? "," : "", i);
		strcat(many, kv);
	}
	strcat(many, "}");
	rag_err_clear(&err);
	assert_int_equal(rag_filter_parse(many, strlen(many), &f, &err), RAG_EINVAL);
	/* An empty object is no filter at all. */
	assert_int_equal(rag_filter_parse("{}", 2, &f, NULL), 0);
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_equality_and_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ranges_in_and_negations, setup, teardown),
		cmocka_unit_test(test_parse_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
