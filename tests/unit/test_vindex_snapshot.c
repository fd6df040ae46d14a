/*
 * Tests for vector index snapshots: save -> load round trips, and rejection
 * of every kind of damaged file (flipped bits, truncation, trailing bytes,
 * bad magic, unknown version, wrong dimension, duplicate ids).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "index/vindex.h"
#include "index/vindex_snapshot.h"

static uint64_t rng_state = 9;

static float frand(void)
{
	rng_state ^= rng_state << 13; /* xorshift64: seeded, identical on every run */
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((double)(rng_state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static void rand_vecs(float *v, size_t n, size_t dim)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < dim; j++)
			v[i * dim + j] = frand();
		vindex_normalize(v + i * dim, dim);
	}
}

/* Both indexes answer q with the same ids and bit-identical scores. */
static void same_results(struct vindex *a, struct vindex *b, const float *q, size_t k)
{
	int64_t ia[64], ib[64];
	float sa[64], sb[64];
	size_t na = 0, nb = 0;

	assert_true(k <= 64);
	assert_int_equal(vindex_search(a, q, k, NULL, ia, sa, &na, NULL), 0);
	assert_int_equal(vindex_search(b, q, k, NULL, ib, sb, &nb, NULL), 0);
	assert_int_equal(na, nb);
	assert_int_equal(na, k);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(ia[i], ib[i]);
		assert_true(sa[i] == sb[i]);
	}
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_vindex.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	long len;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fclose(f);
	return len;
}

static void patch_byte(const char *path, long off, unsigned char x)
{
	FILE *f = fopen(path, "r+b");
	int c;

	assert_non_null(f);
	fseek(f, off, SEEK_SET);
	c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ x, f);
	fclose(f);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

/* Loading path must fail with code and a message containing what. */
static void expect_reject(const char *path, size_t dim, int code, const char *what)
{
	struct rag_err err = { 0 };
	uint64_t seq = 77;

	assert_null(vindex_load(path, dim, &seq, &err));
	assert_int_equal(err.code, code);
	if (!strstr(err.msg, what))
		fail_msg("message '%s' lacks '%s'", err.msg, what);
	assert_int_equal(seq, 77);
}

static void test_snapshot(void **state)
{
	const size_t n = 700, dim = 20;
	int64_t *ids = malloc(n * sizeof(*ids));
	float *vecs = malloc(n * dim * sizeof(*vecs)), q[20];
	char path[128], bad[160];
	struct rag_err err = { 0 };
	uint64_t seq = 0;
	struct vindex *vi = vindex_flat_new(dim), *back;

	(void)state;
	rand_vecs(vecs, n, dim);
	for (size_t i = 0; i < n; i++)
		ids[i] = (int64_t)i * 3 - 50;
	assert_int_equal(vindex_add(vi, ids, vecs, n, NULL), 0);
	vindex_remove(vi, ids, 100);
	snprintf(path, sizeof(path), "%s/vec.snap", tmpdir);
	assert_int_equal(vindex_save(vi, path, 123456, &err), 0);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(bad, sizeof(bad), "%s.tmp", path);
	assert_int_not_equal(access(bad, F_OK), 0);
	back = vindex_load(path, dim, &seq, &err);
	assert_non_null(back);
	assert_int_equal(seq, 123456);
	assert_int_equal(vindex_count(back), 600);
	assert_int_equal(vindex_check(back, NULL), 0);
	for (int t = 0; t < 10; t++) {
		rand_vecs(q, 1, dim);
		same_results(vi, back, q, 25);
	}
	vindex_free(back);
	assert_non_null(back = vindex_load(path, 0, NULL, NULL));
	vindex_free(back);
	long len = file_size(path);

	/* A flipped bit anywhere in the payload or header is caught. */
	long offs[] = { 48, 48 + 8 * 600 + 3, len - 1, 32, 20 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		copy_file(path, bad);
		patch_byte(bad, offs[i], 0x10);
		expect_reject(bad, dim, RAG_EINVAL, offs[i] == 20 ? "dimension" : "checksum");
	}
	copy_file(path, bad);
	patch_byte(bad, 0, 0xff);
	expect_reject(bad, dim, RAG_EINVAL, "bad magic");
	copy_file(path, bad);
	patch_byte(bad, 8, 0x02);
	expect_reject(bad, dim, RAG_EINVAL, "format version");
	copy_file(path, bad);
	assert_int_equal(truncate(bad, len - 5), 0);
	expect_reject(bad, dim, RAG_EINVAL, "bytes");
	assert_int_equal(truncate(bad, 10), 0);
	expect_reject(bad, dim, RAG_EINVAL, "truncated");
	copy_file(path, bad);
	assert_int_equal(truncate(bad, len + 4), 0);
	expect_reject(bad, dim, RAG_EINVAL, "bytes");
	expect_reject(path, dim + 1, RAG_EINVAL, "expected 21");
	snprintf(bad, sizeof(bad), "%s/missing.snap", tmpdir);
	expect_reject(bad, dim, RAG_ENOTFOUND, "cannot open");

	/* A well-formed file with a repeated id is rejected too. */
	int64_t dup_ids[3] = { 4, 8, 4 };
	assert_int_equal(vindex_snapshot_write(path, VINDEX_SNAPSHOT_KIND_FLAT, dim, 3, dup_ids,
					       vecs, 3 * dim * sizeof(float), 1, NULL),
			 0);
	expect_reject(path, dim, RAG_EINVAL, "duplicate id 4");

	/* An empty index round-trips. */
	struct vindex *empty = vindex_flat_new(dim);
	assert_int_equal(vindex_save(empty, path, 0, NULL), 0);
	assert_non_null(back = vindex_load(path, dim, &seq, NULL));
	assert_int_equal(seq, 0);
	assert_int_equal(vindex_count(back), 0);
	vindex_free(back);
	vindex_free(empty);

	snprintf(bad, sizeof(bad), "%s/no/such/dir/x.snap", tmpdir);
	rag_err_clear(&err);
	assert_int_equal(vindex_save(vi, bad, 1, &err), RAG_EIO);
	assert_non_null(strstr(err.msg, "no/such/dir"));
	vindex_free(vi);
	free(ids);
	free(vecs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
