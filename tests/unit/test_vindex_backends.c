/*
 * Every backend the factory makes (flat, flat_int8, hnsw, faiss before and
 * after training), through the vindex interface only: recall against a
 * brute-force scan on seeded clustered data, replace, remove, filters that
 * keep all, few or none, k above the count, snapshots (round trip, wrong
 * type, corruption) and vindex_check after each step. Spec parsing and
 * checks are tested here too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "index/vindex.h"

#define DIM 16
#define N_CLUSTERS 40

static uint64_t rng_state;
static char tmpdir[64];

static uint64_t rng(void)
{
	uint64_t x = rng_state; /* xorshift64*: the same data on every run */

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

/*
 * Clustered unit vectors: uniform random ones make every ANN index look
 * broken (no neighbourhood structure), real embeddings are clustered.
 */
static float *clustered(size_t n, size_t dim)
{
	float *centres = malloc(N_CLUSTERS * dim * sizeof(float));
	float *v = malloc(n * dim * sizeof(float));

	for (size_t i = 0; i < N_CLUSTERS * dim; i++)
		centres[i] = frand();
	for (size_t i = 0; i < n; i++) {
		const float *c = centres + (rng() % N_CLUSTERS) * dim;
		for (size_t j = 0; j < dim; j++)
			v[i * dim + j] = c[j] + 0.3f * frand();
		vindex_normalize(v + i * dim, dim);
	}
	free(centres);
	return v;
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

static int keep_mod7(void *ctx, int64_t id)
{
	(void)ctx;
	return id % 7 == 0;
}

static int keep_rare(void *ctx, int64_t id)
{
	(void)ctx;
	return id == 3 || id == 1234 || id == 4999;
}

static int keep_none(void *ctx, int64_t id)
{
	(void)ctx;
	(void)id;
	return 0;
}

static int keep_all(void *ctx, int64_t id)
{
	(void)ctx;
	(void)id;
	return 1;
}

/*
 * Searches nq queries and returns the mean recall@k against brute force over
 * the live rows; also checks the contract: n_out == min(k, matches), only
 * kept and live ids, best first, and exact scores for what is returned.
 */
static double recall(struct vindex *vi, const int64_t *ids, const float *vecs,
		     const unsigned char *live, size_t n, const float *queries, size_t nq,
		     size_t k, const struct vindex_filter *filter)
{
	struct ref *all = malloc(n * sizeof(*all));
	int64_t out_ids[64];
	float out_scores[64];
	double hits = 0, want = 0;

	assert_true(k <= 64);
	for (size_t q = 0; q < nq; q++) {
		const float *qv = queries + q * DIM;
		size_t m = 0, n_out = 999;
		for (size_t i = 0; i < n; i++) {
			if ((live && !live[i]) || (filter && !filter->keep(filter->ctx, ids[i])))
				continue;
			all[m].id = ids[i];
			all[m].score = vindex_dot(qv, vecs + i * DIM, DIM);
			m++;
		}
		qsort(all, m, sizeof(*all), ref_cmp);
		assert_int_equal(vindex_search(vi, qv, k, filter, out_ids, out_scores, &n_out, NULL),
				 0);
		assert_int_equal(n_out, k < m ? k : m);
		for (size_t i = 0; i < n_out; i++) {
			int found = 0;
			for (size_t j = 0; j < m && !found; j++)
				if (all[j].id == out_ids[i]) {
					found = 1;
					assert_true(fabsf(out_scores[i] - all[j].score) < 1e-5f);
				}
			assert_true(found);
			if (i > 0)
				assert_true(out_scores[i] <= out_scores[i - 1]);
			for (size_t j = 0; j < n_out && j < m; j++)
				if (all[j].id == out_ids[i])
					hits++;
		}
		want += n_out;
	}
	free(all);
	return want ? hits / want : 1.0;
}

static struct vindex_spec spec_of(const char *type, const char *factory)
{
	struct vindex_spec s = vindex_spec_default();

	snprintf(s.type, sizeof(s.type), "%s", type);
	if (factory)
		snprintf(s.factory, sizeof(s.factory), "%s", factory);
	return s;
}

/* The whole contract for one spec on n vectors; min_recall for the ANN ones. */
static void exercise(const struct vindex_spec *spec, size_t n, double min_recall)
{
	const size_t nq = 30;
	int64_t *ids = malloc(n * sizeof(*ids));
	unsigned char *live = malloc(n);
	float *vecs, *queries;
	char path[128], bad[160], cmd[400];
	struct vindex_filter f_mod7 = { .keep = keep_mod7 }, f_rare = { .keep = keep_rare };
	struct vindex_filter f_none = { .keep = keep_none }, f_all = { .keep = keep_all };
	struct rag_err err = { 0 };
	uint64_t seq = 0;
	struct vindex *vi, *back;
	double r;

	rng_state = 7;
	vecs = clustered(n, DIM);
	queries = clustered(nq, DIM);
	for (size_t i = 0; i < n; i++) {
		ids[i] = (int64_t)i + 1;
		live[i] = 1;
	}
	vi = vindex_create(spec, DIM, &err);
	assert_non_null(vi);
	assert_string_equal(vindex_kind(vi), spec->type);
	/* Added in batches, as replay does. */
	for (size_t at = 0; at < n; at += 1000) {
		size_t m = n - at < 1000 ? n - at : 1000;
		assert_int_equal(vindex_add(vi, ids + at, vecs + at * DIM, m, &err), 0);
	}
	assert_int_equal(vindex_count(vi), n);
	assert_int_equal(vindex_check(vi, &err), 0);
	assert_true(vindex_memory(vi) > 0);

	r = recall(vi, ids, vecs, NULL, n, queries, nq, 10, NULL);
	print_message("%s: recall@10 %.3f on %zu vectors\n", spec->type, r, n);
	assert_true(r >= min_recall);
	/* Filters: all, a seventh, three ids, none; each returns min(k, matches). */
	assert_true(recall(vi, ids, vecs, NULL, n, queries, nq, 10, &f_all) >= min_recall);
	r = recall(vi, ids, vecs, NULL, n, queries, nq, 10, &f_mod7);
	print_message("%s: filtered recall@10 %.3f\n", spec->type, r);
	assert_true(r >= min_recall);
	assert_true(recall(vi, ids, vecs, NULL, n, queries, 5, 10, &f_rare) == 1.0);
	recall(vi, ids, vecs, NULL, n, queries, 3, 10, &f_none);

	/* Replace: id 5 takes query 0's vector and becomes its best hit. */
	int64_t id5 = 5, out_id = 0;
	float score = 0;
	size_t n_out = 0;
	memcpy(vecs + 4 * DIM, queries, DIM * sizeof(float));
	assert_int_equal(vindex_add(vi, &id5, queries, 1, &err), 0);
	assert_int_equal(vindex_count(vi), n);
	assert_int_equal(vindex_search(vi, queries, 1, NULL, &out_id, &score, &n_out, NULL), 0);
	assert_int_equal(out_id, 5);
	assert_true(score > 0.999f);

	/* Remove every third id, twice (the second time removes nothing). */
	size_t removed = 0;
	for (size_t i = 0; i < n; i += 3) {
		removed += vindex_remove(vi, &ids[i], 1);
		live[i] = 0;
	}
	for (size_t i = 0; i < n; i += 3)
		assert_int_equal(vindex_remove(vi, &ids[i], 1), 0);
	assert_int_equal(vindex_count(vi), n - removed);
	assert_int_equal(vindex_check(vi, &err), 0);
	assert_true(recall(vi, ids, vecs, live, n, queries, nq, 10, NULL) >= min_recall);
	assert_true(recall(vi, ids, vecs, live, n, queries, 5, 10, &f_rare) == 1.0);

	/* Re-adding a removed id brings it back. */
	assert_int_equal(vindex_add(vi, &ids[0], vecs, 1, &err), 0);
	live[0] = 1;
	assert_int_equal(vindex_count(vi), n - removed + 1);

	/* Bad input changes nothing. */
	float nan_vec[DIM] = { 0 };
	int64_t new_id = (int64_t)n + 100;
	nan_vec[3] = NAN;
	assert_int_equal(vindex_add(vi, &new_id, nan_vec, 1, NULL), RAG_EINVAL);
	assert_int_equal(vindex_search(vi, nan_vec, 3, NULL, &out_id, &score, &n_out, NULL),
			 RAG_EINVAL);
	assert_int_equal(vindex_count(vi), n - removed + 1);

	/* Snapshot: the loaded index answers the same. */
	snprintf(path, sizeof(path), "%s/%s.snap", tmpdir, spec->type);
	assert_int_equal(vindex_save(vi, path, 42, &err), 0);
	back = vindex_open(spec, path, DIM, &seq, &err);
	if (!back)
		fail_msg("reload: %s", err.msg);
	assert_int_equal(seq, 42);
	assert_int_equal(vindex_count(back), vindex_count(vi));
	assert_int_equal(vindex_check(back, &err), 0);
	for (size_t q = 0; q < nq; q++) {
		int64_t a[10], b[10];
		size_t na = 0, nb = 0;
		assert_int_equal(vindex_search(vi, queries + q * DIM, 10, NULL, a, NULL, &na, NULL),
				 0);
		assert_int_equal(vindex_search(back, queries + q * DIM, 10, NULL, b, NULL, &nb, NULL),
				 0);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * sizeof(*a));
	}
	/* The loaded index keeps working: adds, removes, check. */
	assert_int_equal(vindex_add(back, &new_id, vecs + DIM, 1, &err), 0);
	assert_int_equal(vindex_remove(back, &new_id, 1), 1);
	assert_int_equal(vindex_check(back, &err), 0);
	vindex_free(back);

	/* Opened as another type, the snapshot is refused (the caller rebuilds). */
	struct vindex_spec other = spec_of(strcmp(spec->type, "flat") ? "flat" : "hnsw", NULL);
	rag_err_clear(&err);
	assert_null(vindex_open(&other, path, DIM, &seq, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_non_null(strstr(err.msg, "not"));
	/* A flipped byte anywhere is caught. */
	snprintf(bad, sizeof(bad), "%s/bad.snap", tmpdir);
	long len = 0;
	FILE *fp = fopen(path, "rb");
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fclose(fp);
	for (long off = 20; off < len; off += len / 5) {
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, bad);
		assert_int_equal(system(cmd), 0);
		fp = fopen(bad, "r+b");
		fseek(fp, off, SEEK_SET);
		int c = fgetc(fp);
		fseek(fp, off, SEEK_SET);
		fputc(c ^ 0x10, fp);
		fclose(fp);
		rag_err_clear(&err);
		assert_null(vindex_open(spec, bad, DIM, &seq, &err));
		assert_int_not_equal(err.code, 0);
	}

	/* k above the count, and k == 0. */
	int64_t many[64];
	struct vindex *small = vindex_create(spec, DIM, &err);
	assert_int_equal(vindex_add(small, ids, vecs, 5, &err), 0);
	assert_int_equal(vindex_search(small, queries, 64, NULL, many, NULL, &n_out, NULL), 0);
	assert_int_equal(n_out, 5);
	assert_int_equal(vindex_search(small, queries, 0, NULL, many, NULL, &n_out, NULL), 0);
	assert_int_equal(n_out, 0);
	vindex_free(small);

	vindex_free(vi);
	free(ids);
	free(live);
	free(vecs);
	free(queries);
}

static void test_flat(void **state)
{
	struct vindex_spec s = spec_of("flat", NULL);

	(void)state;
	exercise(&s, 3000, 1.0);
}

static void test_flat_int8(void **state)
{
	struct vindex_spec s = spec_of("flat_int8", NULL);

	(void)state;
	exercise(&s, 3000, 0.99);
}

static void test_hnsw(void **state)
{
	struct vindex_spec s = spec_of("hnsw", NULL);

	(void)state;
	s.m = 8;
	exercise(&s, 3000, 0.95);
}

static void test_faiss_hnsw(void **state)
{
	struct vindex_spec s = spec_of("faiss", "HNSW16");

	(void)state;
	/* FAISS's HNSW (efConstruction 40) is the weaker graph here; hnswlib is "hnsw". */
	exercise(&s, 3000, 0.8);
}

/* IVF needs training: flat (exact) below 10,000 vectors, IVF above. */
static void test_faiss_ivf(void **state)
{
	struct vindex_spec s = spec_of("faiss", "IVF16,PQ4");

	(void)state;
	s.nprobe = 4;
	exercise(&s, 5000, 1.0); /* untrained: exact */
	exercise(&s, 12000, 0.8); /* 4 of 16 lists, 4-byte codes: coarse on purpose */
}

/* The design's IndexShards: every contract of the unsharded index holds. */
static void test_faiss_shards(void **state)
{
	struct vindex_spec s = spec_of("faiss", "Flat");

	(void)state;
	s.shards = 4;
	exercise(&s, 3000, 1.0); /* Flat shards: exact */
	s = spec_of("faiss", "IVF16,Flat");
	s.shards = 3;
	s.nprobe = 4;
	exercise(&s, 5000, 0.8); /* trained at 624 vectors: IVF from the first batch */
}

/*
 * Sharded and unsharded over the same data answer alike: identical results
 * for exact shards, recall within a hair for IVF (each shard trains the
 * same centroids on the whole collection), and a sharded snapshot reloads
 * to the same answers.
 */
static void test_faiss_shards_match_unsharded(void **state)
{
	const size_t n = 6000, nq = 40, k = 10;
	static const char *const factories[] = { "Flat", "IVF32,Flat" };
	struct rag_err err = { 0 };
	char path[128];
	int64_t *ids = malloc(n * sizeof(*ids));
	float *vecs, *queries;

	(void)state;
	rng_state = 11;
	vecs = clustered(n, DIM);
	queries = clustered(nq, DIM);
	for (size_t i = 0; i < n; i++)
		ids[i] = (int64_t)i + 1;
	snprintf(path, sizeof(path), "%s/shards.vidx", tmpdir);
	for (size_t f = 0; f < 2; f++) {
		struct vindex_spec one = spec_of("faiss", factories[f]), four = one;
		struct vindex *a, *b, *back;
		size_t same = 0;

		one.nprobe = four.nprobe = 8;
		four.shards = 4;
		a = vindex_create(&one, DIM, &err);
		b = vindex_create(&four, DIM, &err);
		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(vindex_add(a, ids, vecs, n, &err), 0);
		assert_int_equal(vindex_add(b, ids, vecs, n, &err), 0);
		/* A delete reaches whichever shard holds the id. */
		assert_int_equal(vindex_remove(a, ids, 100), 100);
		assert_int_equal(vindex_remove(b, ids, 100), 100);
		assert_int_equal(vindex_check(b, &err), 0);
		assert_int_equal(vindex_save(b, path, 9, &err), 0);
		back = vindex_open(&four, path, DIM, NULL, &err);
		assert_non_null(back);
		assert_int_equal(vindex_check(back, &err), 0);
		for (size_t q = 0; q < nq; q++) {
			int64_t ia[10], ib[10], ic[10];
			float sa[10], sb[10], sc[10];
			size_t na, nb, nc;

			assert_int_equal(vindex_search(a, queries + q * DIM, k, NULL, ia, sa, &na, &err), 0);
			assert_int_equal(vindex_search(b, queries + q * DIM, k, NULL, ib, sb, &nb, &err), 0);
			assert_int_equal(vindex_search(back, queries + q * DIM, k, NULL, ic, sc, &nc, &err),
					 0);
			assert_int_equal(na, k);
			assert_int_equal(nb, k);
			assert_int_equal(nc, k);
			assert_memory_equal(ib, ic, sizeof(ib)); /* the snapshot answers alike */
			for (size_t i = 0; i < k; i++) {
				assert_true(ib[i] > 100); /* deleted ids never come back */
				for (size_t j = 0; j < k; j++)
					same += ia[i] == ib[j];
			}
			if (f == 0) {
				assert_memory_equal(ia, ib, sizeof(ia));
				assert_memory_equal(sa, sb, sizeof(sa));
			}
		}
		print_message("faiss %s: %zu of %zu results shared by 1 and 4 shards\n",
			      factories[f], same, nq * k);
		assert_true(same >= nq * k * 98 / 100);
		vindex_free(a);
		vindex_free(b);
		vindex_free(back);
	}
	free(ids);
	free(vecs);
	free(queries);
}

static void test_spec(void **state)
{
	struct vindex_spec s = vindex_spec_default();
	struct rag_err err = { 0 };
	char buf[256];

	(void)state;
	assert_string_equal(s.type, "flat");
	assert_int_equal(vindex_spec_check(&s, DIM, &err), 0);
	snprintf(s.type, sizeof(s.type), "annoy");
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	assert_string_equal(err.field, "index.type");
	s = spec_of("hnsw", NULL);
	s.m = 1;
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	assert_string_equal(err.field, "index.m");
	s.m = 16;
	s.ef_search = 0;
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	assert_string_equal(err.field, "index.ef_search");
	s = spec_of("faiss", "IVF1024,ZZ9");
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	assert_string_equal(err.field, "index.factory");
	s = spec_of("faiss", "IVF8,PQ5"); /* PQ5 does not divide 16 */
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	s = spec_of("faiss", "Flat\"x");
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	s = spec_of("hnsw", NULL);
	vindex_spec_json(&s, buf, sizeof(buf));
	assert_string_equal(buf, "{\"type\":\"hnsw\",\"m\":16,\"ef_construction\":200,"
				 "\"ef_search\":64}");
	assert_null(vindex_create(&s, 0, &err));
	s = spec_of("faiss", "Flat");
	s.shards = VINDEX_SHARDS_MAX + 1;
	rag_err_clear(&err);
	assert_int_equal(vindex_spec_check(&s, DIM, &err), RAG_EINVAL);
	assert_string_equal(err.field, "index.shards");
	s.shards = 4;
	vindex_spec_json(&s, buf, sizeof(buf));
	assert_string_equal(buf, "{\"type\":\"faiss\",\"factory\":\"Flat\",\"nprobe\":16,"
				 "\"ef_search\":64,\"rescore\":100,\"shards\":4}");
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_vbackends.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec),	   cmocka_unit_test(test_flat),
		cmocka_unit_test(test_flat_int8),  cmocka_unit_test(test_hnsw),
		cmocka_unit_test(test_faiss_hnsw), cmocka_unit_test(test_faiss_ivf),
		cmocka_unit_test(test_faiss_shards),
		cmocka_unit_test(test_faiss_shards_match_unsharded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
