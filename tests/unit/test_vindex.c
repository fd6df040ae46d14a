/*
 * Tests for the vector index interface and its flat backend: kernels against
 * a double-precision reference, search against brute force on seeded data
 * (with ties), add/replace/remove, filters, concurrent readers and writers.
 * Snapshots are tested in test_vindex_snapshot.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "index/vindex.h"
#include "index/vindex_kernels.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state; /* xorshift64*: seeded, identical on every run */

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static float frand(void)
{
	return (float)((double)(rng() >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static void rand_vecs(float *v, size_t n, size_t dim)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < dim; j++)
			v[i * dim + j] = frand();
		vindex_normalize(v + i * dim, dim);
	}
}

struct ref {
	int64_t id;
	float score;
};

static int ref_cmp(const void *pa, const void *pb)
{
	const struct ref *a = pa, *b = pb;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

static int keep_mod10(void *ctx, int64_t id)
{
	(void)ctx;
	return id % 10 == 0;
}

static int keep_none(void *ctx, int64_t id)
{
	(void)ctx;
	(void)id;
	return 0;
}

/*
 * Checks a search of vi against a brute-force scan of (ids, vecs, live), the
 * rows the index should hold, restricted to the filter if any.
 */
static void check_brute(struct vindex *vi, const int64_t *ids, const float *vecs,
			const unsigned char *live, size_t n, const float *q, size_t k,
			const struct vindex_filter *filter)
{
	size_t dim = vindex_dim(vi), m = 0, n_out = 99;
	struct ref *all = malloc((n + 1) * sizeof(*all));
	int64_t *out_ids = malloc((k + 1) * sizeof(*out_ids));
	float *out_scores = malloc((k + 1) * sizeof(*out_scores));
	struct rag_err err = { 0 };

	for (size_t i = 0; i < n; i++) {
		if (live && !live[i])
			continue;
		if (filter && !filter->keep(filter->ctx, ids[i]))
			continue;
		all[m].id = ids[i];
		all[m].score = vindex_dot(q, vecs + i * dim, dim);
		m++;
	}
	qsort(all, m, sizeof(*all), ref_cmp);
	assert_int_equal(vindex_search(vi, q, k, filter, out_ids, out_scores, &n_out, &err), 0);
	assert_int_equal(n_out, k < m ? k : m);
	for (size_t i = 0; i < n_out; i++) {
		assert_int_equal(out_ids[i], all[i].id);
		assert_true(out_scores[i] == all[i].score);
	}
	free(all);
	free(out_ids);
	free(out_scores);
}

static void test_kernels(void **state)
{
	const struct vindex_kernel *ks[8];
	size_t n_k = vindex_kernels_supported(ks, 8);
	float a[384], b[384], out[3];

	(void)state;
	assert_true(n_k >= 1);
	assert_string_equal(ks[0]->name, "scalar");
	rng_state = 42;
	for (size_t dim = 1; dim <= 384; dim = dim == 70 ? 384 : dim + 1) {
		for (size_t i = 0; i < dim; i++) {
			a[i] = frand();
			b[i] = frand();
		}
		double ref = 0, mag = 0;
		for (size_t i = 0; i < dim; i++) {
			ref += (double)a[i] * b[i];
			mag += fabs((double)a[i] * b[i]);
		}
		for (size_t k = 0; k < n_k; k++) {
			float d = ks[k]->dot(a, b, dim);
			assert_true(fabs(d - ref) <= 1e-5 * mag + 1e-6);
			/* dot_many is bit-identical to dot, row by row. */
			float rows[3 * 384];
			for (int r = 0; r < 3; r++)
				memcpy(rows + r * dim, r == 1 ? a : b, dim * sizeof(float));
			ks[k]->dot_many(a, rows, 3, dim, out);
			assert_true(out[0] == ks[k]->dot(a, b, dim));
			assert_true(out[1] == ks[k]->dot(a, a, dim));
			assert_true(out[2] == out[0]);
		}
		assert_true(vindex_dot(a, b, dim) == vindex_kernel_best()->dot(a, b, dim));
	}
}

static void test_normalize(void **state)
{
	float v[3] = { 3, 0, 4 }, z[2] = { 0, 0 };

	(void)state;
	vindex_normalize(v, 3);
	assert_float_equal(v[0], 0.6f, 1e-6);
	assert_float_equal(v[2], 0.8f, 1e-6);
	vindex_normalize(z, 2);
	assert_true(z[0] == 0 && z[1] == 0);
}

/* Seeded random vectors, about 10 % exact duplicates of earlier rows (ties). */
static void make_data(int64_t *ids, float *vecs, size_t n, size_t dim)
{
	rand_vecs(vecs, n, dim);
	for (size_t i = 0; i < n; i++) {
		ids[i] = (int64_t)(i * 7919 % 100003) - 500;
		if (i > 0 && rng() % 10 == 0)
			memcpy(vecs + i * dim, vecs + (rng() % i) * dim, dim * sizeof(float));
	}
}

static void search_brute(const struct vindex_flat_options *opts)
{
	const size_t n = 1000, dim = 37;
	int64_t *ids = malloc(n * sizeof(*ids));
	float *vecs = malloc(n * dim * sizeof(*vecs)), q[37];
	struct vindex *vi = vindex_flat_new_opts(dim, opts);
	struct rag_err err = { 0 };

	rng_state = 7;
	make_data(ids, vecs, n, dim);
	assert_int_equal(vindex_add(vi, ids, vecs, n, &err), 0);
	assert_int_equal(vindex_count(vi), n);
	assert_int_equal(vindex_check(vi, &err), 0);
	for (int t = 0; t < 20; t++) {
		rand_vecs(q, 1, dim);
		if (t % 4 == 0)
			memcpy(q, vecs + (rng() % n) * dim, sizeof(q)); /* exact hits tie */
		check_brute(vi, ids, vecs, NULL, n, q, 1, NULL);
		check_brute(vi, ids, vecs, NULL, n, q, 10, NULL);
		check_brute(vi, ids, vecs, NULL, n, q, 257, NULL);
	}
	free(ids);
	free(vecs);
	vindex_free(vi);
}

static void test_search_brute(void **state)
{
	struct vindex_flat_options one = { .scan_threads = 1, .parallel_min = 0 };
	struct vindex_flat_options three = { .scan_threads = 3, .parallel_min = 0 };

	(void)state;
	search_brute(&one);
	search_brute(&three);
	search_brute(NULL);
}

static void test_replace(void **state)
{
	const size_t dim = 8;
	float a[8], b[8], both[16];
	int64_t id = 5, ids2[2] = { 9, 9 }, out[4];
	float scores[4];
	size_t n_out;
	struct vindex *vi = vindex_flat_new(dim);

	(void)state;
	rng_state = 3;
	rand_vecs(a, 1, dim);
	rand_vecs(b, 1, dim);
	assert_int_equal(vindex_add(vi, &id, a, 1, NULL), 0);
	assert_int_equal(vindex_add(vi, &id, b, 1, NULL), 0);
	assert_int_equal(vindex_count(vi), 1);
	assert_int_equal(vindex_search(vi, b, 4, NULL, out, scores, &n_out, NULL), 0);
	assert_int_equal(n_out, 1);
	assert_int_equal(out[0], 5);
	assert_true(scores[0] == vindex_dot(b, b, dim));
	/* An id repeated in one batch keeps its last vector. */
	memcpy(both, a, sizeof(a));
	memcpy(both + 8, b, sizeof(b));
	assert_int_equal(vindex_add(vi, ids2, both, 2, NULL), 0);
	assert_int_equal(vindex_count(vi), 2);
	assert_int_equal(vindex_search(vi, b, 4, NULL, out, scores, &n_out, NULL), 0);
	assert_int_equal(n_out, 2);
	assert_true(scores[0] == scores[1]);
	assert_int_equal(out[0], 5); /* tie: smaller id first */
	assert_int_equal(out[1], 9);
	assert_int_equal(vindex_check(vi, NULL), 0);
	vindex_free(vi);
}

static void test_add_atomic(void **state)
{
	float v[2 * 4] = { 1, 0, 0, 0, 0, 1, 0, 0 };
	int64_t ids[2] = { 1, 2 };
	struct rag_err err = { 0 };
	struct vindex *vi = vindex_flat_new(4);

	(void)state;
	assert_null(vindex_flat_new(0));
	v[6] = NAN;
	assert_int_equal(vindex_add(vi, ids, v, 2, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "id 2"));
	assert_int_equal(vindex_count(vi), 0);
	v[6] = 0;
	assert_int_equal(vindex_add(vi, ids, v, 2, NULL), 0);
	assert_int_equal(vindex_add(vi, NULL, v, 2, NULL), RAG_EINVAL);
	v[0] = INFINITY;
	assert_int_equal(vindex_search(vi, v, 1, NULL, ids, NULL, &(size_t){ 0 }, NULL),
			 RAG_EINVAL);
	assert_int_equal(vindex_count(vi), 2);
	assert_true(vindex_memory(vi) >= 2 * (8 + 4 * 4));
	assert_string_equal(vindex_kind(vi), "flat");
	vindex_free(vi);
	vindex_free(NULL);
}

static void test_remove(void **state)
{
	const size_t n = 600, dim = 16;
	int64_t *ids = malloc(n * sizeof(*ids)), gone[250];
	float *vecs = malloc(n * dim * sizeof(*vecs)), q[16];
	unsigned char *live = malloc(n);
	size_t n_gone = 0;
	struct vindex *vi = vindex_flat_new(dim);

	(void)state;
	rng_state = 11;
	make_data(ids, vecs, n, dim);
	assert_int_equal(vindex_add(vi, ids, vecs, n, NULL), 0);
	memset(live, 1, n);
	for (size_t i = 0; i < n; i += 3) {
		gone[n_gone++] = ids[i];
		live[i] = 0;
	}
	gone[n_gone++] = 123456789; /* missing: ignored */
	gone[n_gone++] = ids[0];    /* repeated: removed once */
	assert_int_equal(vindex_remove(vi, gone, n_gone), 200);
	assert_int_equal(vindex_count(vi), 400);
	assert_int_equal(vindex_check(vi, NULL), 0);
	for (int t = 0; t < 10; t++) {
		rand_vecs(q, 1, dim);
		check_brute(vi, ids, vecs, live, n, q, 50, NULL);
		check_brute(vi, ids, vecs, live, n, q, 1000, NULL);
	}
	/* Re-adding a removed id brings it back. */
	assert_int_equal(vindex_add(vi, ids, vecs, 1, NULL), 0);
	live[0] = 1;
	check_brute(vi, ids, vecs, live, n, vecs, 10, NULL);
	assert_int_equal(vindex_remove(vi, ids, n), 401);
	assert_int_equal(vindex_count(vi), 0);
	assert_int_equal(vindex_check(vi, NULL), 0);
	free(ids);
	free(vecs);
	free(live);
	vindex_free(vi);
}

static void test_filter(void **state)
{
	const size_t n = 1000, dim = 24;
	int64_t *ids = malloc(n * sizeof(*ids)), out[10];
	float *vecs = malloc(n * dim * sizeof(*vecs)), q[24];
	struct vindex_filter mod10 = { .keep = keep_mod10 }, none = { .keep = keep_none };
	struct vindex_flat_options par = { .scan_threads = 2, .parallel_min = 0 };
	size_t n_out = 7;

	(void)state;
	rng_state = 5;
	make_data(ids, vecs, n, dim);
	for (int p = 0; p < 2; p++) {
		struct vindex *vi = vindex_flat_new_opts(dim, p ? &par : NULL);
		assert_int_equal(vindex_add(vi, ids, vecs, n, NULL), 0);
		for (int t = 0; t < 10; t++) {
			rand_vecs(q, 1, dim);
			check_brute(vi, ids, vecs, NULL, n, q, 20, &mod10);
			check_brute(vi, ids, vecs, NULL, n, q, 1000, &mod10);
		}
		assert_int_equal(vindex_search(vi, q, 10, &none, out, NULL, &n_out, NULL), 0);
		assert_int_equal(n_out, 0);
		vindex_free(vi);
	}
	free(ids);
	free(vecs);
}

static void test_empty_and_k(void **state)
{
	float q[4] = { 1, 0, 0, 0 }, v[8] = { 1, 0, 0, 0, 0, 1, 0, 0 }, scores[5];
	int64_t ids[2] = { 10, 20 }, out[5];
	size_t n_out = 9;
	struct vindex *vi = vindex_flat_new(4);

	(void)state;
	assert_int_equal(vindex_search(vi, q, 5, NULL, out, scores, &n_out, NULL), 0);
	assert_int_equal(n_out, 0);
	assert_int_equal(vindex_add(vi, ids, v, 2, NULL), 0);
	assert_int_equal(vindex_search(vi, q, 5, NULL, out, scores, &n_out, NULL), 0);
	assert_int_equal(n_out, 2);
	assert_int_equal(out[0], 10);
	assert_int_equal(out[1], 20);
	assert_float_equal(scores[0], 1.0f, 0);
	assert_int_equal(vindex_search(vi, q, 0, NULL, NULL, NULL, &n_out, NULL), 0);
	assert_int_equal(n_out, 0);
	assert_int_equal(vindex_search(NULL, q, 5, NULL, out, scores, &n_out, NULL), RAG_EINVAL);
	assert_int_equal(vindex_count(NULL), 0);
	vindex_free(vi);
}

struct race {
	struct vindex *vi;
	int stop;
};

static void *searcher(void *arg)
{
	struct race *r = arg;
	float q[16];
	int64_t out[10];
	size_t n_out;

	for (int i = 0; i < 200 && !__atomic_load_n(&r->stop, __ATOMIC_RELAXED); i++) {
		for (int j = 0; j < 16; j++)
			q[j] = (float)((i + j) % 7) - 3;
		if (vindex_search(r->vi, q, 10, NULL, out, NULL, &n_out, NULL) != 0 || n_out > 10)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct race r = { vindex_flat_new_opts(16, &(struct vindex_flat_options){ 2, 0 }), 0 };
	pthread_t th[3];
	float v[16 * 50];
	int64_t ids[50];
	void *res;

	(void)state;
	rng_state = 13;
	rand_vecs(v, 50, 16);
	for (int t = 0; t < 3; t++)
		assert_int_equal(pthread_create(&th[t], NULL, searcher, &r), 0);
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < 50; i++)
			ids[i] = round * 25 + i;
		assert_int_equal(vindex_add(r.vi, ids, v, 50, NULL), 0);
		vindex_remove(r.vi, ids, 20);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	for (int t = 0; t < 3; t++) {
		pthread_join(th[t], &res);
		assert_null(res);
	}
	assert_int_equal(vindex_check(r.vi, NULL), 0);
	vindex_free(r.vi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernels),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_search_brute),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_add_atomic),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_empty_and_k),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
