/*
 * The model LRU with stand-in objects (hits, loads, eviction order, in-use
 * entries never evicted, failed loads not cached), then shared weights
 * with the real embedding model: two embedders over one file hold one
 * llama_model, freed with the last of them.
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
#include "model/embedder.h"
#include "model/model_cache.h"
#include "model/model_weights.h"

static int loads, frees;

static void *load_int(void *arg, struct rag_err *err)
{
	int *v;

	if (!arg) {
		rag_err_set(err, RAG_EINVAL, "model", "cannot load");
		return NULL;
	}
	v = malloc(sizeof(*v));
	*v = *(int *)arg;
	loads++;
	return v;
}

static void free_int(void *obj)
{
	frees++;
	free(obj);
}

static int *get(struct model_cache *c, const char *key, int val)
{
	return model_cache_acquire(c, key, load_int, free_int, &val, NULL);
}

static void lru_evicts_oldest_unused(void **state)
{
	struct model_cache *c = model_cache_new(2);
	int *a, *b, *a2, *d;

	(void)state;
	loads = frees = 0;
	a = get(c, "a", 1);
	assert_int_equal(*a, 1);
	a2 = get(c, "a", 99); /* a hit: not loaded again */
	assert_ptr_equal(a, a2);
	assert_int_equal(loads, 1);
	model_cache_release(c, a);
	model_cache_release(c, a2);
	b = get(c, "b", 2);
	model_cache_release(c, b);
	assert_int_equal(model_cache_count(c), 2);
	/* Touch a, so b is the least recently used. */
	model_cache_release(c, get(c, "a", 1));
	d = get(c, "d", 4);
	assert_int_equal(model_cache_count(c), 2);
	assert_int_equal(frees, 1); /* b went */
	model_cache_release(c, get(c, "a", 1));
	assert_int_equal(loads, 3);
	model_cache_release(c, get(c, "b", 2)); /* reloaded; d is in use, a goes */
	assert_int_equal(loads, 4);
	assert_int_equal(*d, 4);
	model_cache_release(c, d);
	model_cache_free(c);
	assert_int_equal(frees, loads);
}

static void in_use_is_never_evicted(void **state)
{
	struct model_cache *c = model_cache_new(1);
	int *a, *b;

	(void)state;
	loads = frees = 0;
	a = get(c, "a", 1);
	b = get(c, "b", 2);
	assert_int_equal(model_cache_count(c), 2); /* over capacity: both in use */
	assert_int_equal(frees, 0);
	model_cache_release(c, a);
	assert_int_equal(frees, 1);
	assert_int_equal(*b, 2);
	model_cache_release(c, b);
	model_cache_free(c);
}

static void failed_load_is_not_cached(void **state)
{
	struct model_cache *c = model_cache_new(2);
	struct rag_err err = { 0 };

	(void)state;
	assert_null(model_cache_acquire(c, "x", load_int, free_int, NULL, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_int_equal(model_cache_count(c), 0);
	model_cache_free(c);
}

static void resolve_names(void **state)
{
	char path[256];
	const char *src = getenv("RAGD_SOURCE_DIR");
	char dir[200];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/models", src ? src : ".");
	assert_int_equal(model_cache_resolve(dir, "all-MiniLM-L6-v2", path, sizeof(path)), 0);
	assert_non_null(strstr(path, "/all-MiniLM-L6-v2.gguf"));
	assert_int_equal(model_cache_resolve(dir, "../models/all-MiniLM-L6-v2", path, sizeof(path)),
			 RAG_ENOTFOUND);
	assert_int_equal(model_cache_resolve(dir, ".hidden", path, sizeof(path)), RAG_ENOTFOUND);
	assert_int_equal(model_cache_resolve(dir, "nope", path, sizeof(path)), RAG_ENOTFOUND);
	assert_int_equal(model_cache_resolve(dir, "", path, sizeof(path)), RAG_ENOTFOUND);
}

static void weights_are_shared(void **state)
{
	const char *src = getenv("RAGD_SOURCE_DIR");
	struct embedder_llama_options o;
	struct model_cache *c = model_cache_new(4);
	struct rag_err err = { 0 };
	struct embedder *e1, *e2;
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/models/all-MiniLM-L6-v2.gguf", src ? src : ".");
	embedder_llama_default_options(&o);
	o.model_path = path;
	o.n_contexts = 1;
	o.n_threads = 1;
	e1 = model_cache_embedder(c, &o, &err);
	assert_non_null(e1);
	assert_int_equal(model_weights_refs(path), 1);
	o.n_contexts = 2; /* another entry (other contexts), the same weights */
	e2 = model_cache_embedder(c, &o, &err);
	assert_non_null(e2);
	assert_ptr_not_equal(e1, e2);
	assert_int_equal(model_cache_count(c), 2);
	assert_int_equal(model_weights_refs(path), 2);
	model_cache_release(c, e1);
	model_cache_release(c, e2);
	model_cache_free(c);
	assert_int_equal(model_weights_refs(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lru_evicts_oldest_unused),
		cmocka_unit_test(in_use_is_never_evicted),
		cmocka_unit_test(failed_load_is_not_cached),
		cmocka_unit_test(resolve_names),
		cmocka_unit_test(weights_are_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
