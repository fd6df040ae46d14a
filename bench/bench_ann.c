/*
 * bench_ann: recall@10 against exact search, queries per second and
 * latency for each vector index type, on real embeddings.
 *
 *   bench_ann BASE.f32 QUERIES.f32 DIM [FAISS_FACTORY...]
 *
 * BASE and QUERIES are raw little-endian float32 rows of DIM (written by
 * bench/bench_ann.py from a ragd store and `ragd embed`). Ids are the row
 * numbers. Every index is built through vindex_create from its spec, as a
 * collection would; hnsw and faiss are built once, saved, and re-opened
 * with each efSearch / nprobe (which also times a snapshot load). Queries
 * run one at a time on one client thread. Prints a Markdown table.
 * BENCH_HNSW_M and BENCH_HNSW_EFC in the environment override hnsw's M and
 * efConstruction. BENCH_FAISS_SHARDS="1,4" runs each faiss factory with
 * each of those shard counts (faiss::IndexShards; default 1), and
 * BENCH_FAISS_ONLY=1 skips flat_int8 and hnsw (flat always runs: it is the
 * truth).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rag_error.h"
#include "index/vindex.h"

#define K 10
#define SNAP "/tmp/bench_ann.snap"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *read_f32(const char *path, size_t dim, size_t *n_out)
{
	FILE *f = fopen(path, "rb");
	long len;
	float *v;

	if (!f) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	*n_out = (size_t)len / (dim * sizeof(float));
	v = malloc((size_t)len);
	if (!v || fread(v, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "%s: read failed\n", path);
		exit(1);
	}
	fclose(f);
	for (size_t i = 0; i < *n_out; i++)
		vindex_normalize(v + i * dim, dim);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Runs every query; prints one table row. truth is nq * K ids (NULL: fill it). */
static void run(const char *label, struct vindex *vi, const float *q, size_t nq, size_t dim,
		int64_t *truth)
{
	int64_t ids[K];
	double *lat = malloc(nq * sizeof(double)), hits = 0, total = 0;
	size_t n_out;

	for (size_t i = 0; i < nq; i++) {
		double t0 = now_ms();
		if (vindex_search(vi, q + i * dim, K, NULL, ids, NULL, &n_out, NULL) < 0) {
			fprintf(stderr, "%s: search failed\n", label);
			exit(1);
		}
		lat[i] = now_ms() - t0;
		total += lat[i];
		for (size_t a = 0; a < n_out; a++)
			for (size_t b = 0; b < K; b++)
				hits += ids[a] == truth[i * K + b];
	}
	qsort(lat, nq, sizeof(double), cmp_double);
	printf("| %s | %.3f | %.0f | %.2f | %.2f | %.1f |\n", label, hits / (nq * K),
	       nq / (total / 1e3), lat[nq / 2], lat[(size_t)(nq * 0.99)],
	       vindex_memory(vi) / 1048576.0);
	fflush(stdout);
	free(lat);
}

static struct vindex *build(const struct vindex_spec *s, const float *base, size_t n, size_t dim,
			    double *ms)
{
	struct rag_err err = { 0 };
	struct vindex *vi = vindex_create(s, dim, &err);
	int64_t *ids = malloc(1024 * sizeof(*ids));
	double t0 = now_ms();

	if (!vi) {
		fprintf(stderr, "create %s: %s\n", s->type, err.msg);
		exit(1);
	}
	/* Batches of 1024, as a rebuild from the store adds them. */
	for (size_t at = 0; at < n; at += 1024) {
		size_t m = n - at < 1024 ? n - at : 1024;
		for (size_t i = 0; i < m; i++)
			ids[i] = (int64_t)(at + i);
		if (vindex_add(vi, ids, base + at * dim, m, &err) < 0) {
			fprintf(stderr, "add: %s\n", err.msg);
			exit(1);
		}
	}
	*ms = now_ms() - t0;
	free(ids);
	return vi;
}

static struct vindex *reopen(struct vindex *vi, const struct vindex_spec *s, size_t dim,
			     double *ms)
{
	struct rag_err err = { 0 };
	double t0;

	if (vindex_save(vi, SNAP, 1, &err) < 0) {
		fprintf(stderr, "save: %s\n", err.msg);
		exit(1);
	}
	t0 = now_ms();
	struct vindex *back = vindex_open(s, SNAP, dim, NULL, &err);
	*ms = now_ms() - t0;
	if (!back) {
		fprintf(stderr, "open: %s\n", err.msg);
		exit(1);
	}
	return back;
}

int main(int argc, char **argv)
{
	size_t dim, n, nq;
	float *base, *q;
	int64_t *truth;
	struct vindex_spec s;
	struct vindex *vi, *back;
	double ms, load_ms;
	char label[256], notes[4096] = "";

	if (argc < 4) {
		fprintf(stderr, "usage: bench_ann BASE.f32 QUERIES.f32 DIM [FAISS_FACTORY...]\n");
		return 2;
	}
	dim = (size_t)atoi(argv[3]);
	base = read_f32(argv[1], dim, &n);
	q = read_f32(argv[2], dim, &nq);
	truth = malloc(nq * K * sizeof(*truth));
	printf("%zu vectors, %zu queries, dimension %zu, top-%d, one client thread\n\n", n, nq,
	       dim, K);
	printf("| index | recall@10 | QPS | p50 ms | p99 ms | memory MiB |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");

	s = vindex_spec_default();
	vi = build(&s, base, n, dim, &ms);
	for (size_t i = 0; i < nq; i++) {
		size_t n_out;
		vindex_search(vi, q + i * dim, K, NULL, truth + i * K, NULL, &n_out, NULL);
	}
	run("flat (f32, exact)", vi, q, nq, dim, truth);
	vindex_free(vi);

	snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
		 "- flat: build %.1f s\n", ms / 1e3);
	if (getenv("BENCH_FAISS_ONLY"))
		goto faiss;
	snprintf(s.type, sizeof(s.type), "flat_int8");
	vi = build(&s, base, n, dim, &ms);
	run("flat_int8 (rescore 100)", vi, q, nq, dim, truth);
	vindex_free(vi);

	s = vindex_spec_default();
	snprintf(s.type, sizeof(s.type), "hnsw");
	/* BENCH_HNSW_M / BENCH_HNSW_EFC override the defaults (16, 200). */
	if (getenv("BENCH_HNSW_M"))
		s.m = (size_t)atoi(getenv("BENCH_HNSW_M"));
	if (getenv("BENCH_HNSW_EFC"))
		s.ef_construction = (size_t)atoi(getenv("BENCH_HNSW_EFC"));
	vi = build(&s, base, n, dim, &ms);
	snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
		 "- hnsw M %zu, efConstruction %zu: build %.1f s", s.m, s.ef_construction,
		 ms / 1e3);
	static const size_t efs[] = { 16, 32, 64, 128, 256 };
	for (size_t i = 0; i < sizeof(efs) / sizeof(efs[0]); i++) {
		s.ef_search = efs[i];
		back = reopen(vi, &s, dim, &load_ms);
		snprintf(label, sizeof(label), "hnsw efSearch %zu", efs[i]);
		run(label, back, q, nq, dim, truth);
		vindex_free(back);
	}
	snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
		 ", snapshot load %.2f s\n", load_ms / 1e3);
	vindex_free(vi);

faiss:;
	const char *shard_list = getenv("BENCH_FAISS_SHARDS") ? getenv("BENCH_FAISS_SHARDS") : "1";
	for (int a = 4; a < argc; a++) {
		for (const char *sl = shard_list; *sl; sl += strcspn(sl, ",") + (sl[strcspn(sl, ",")] != 0)) {
			size_t shards = (size_t)atoi(sl);
			char name[96];

			s = vindex_spec_default();
			snprintf(s.type, sizeof(s.type), "faiss");
			snprintf(s.factory, sizeof(s.factory), "%s", argv[a]);
			s.shards = shards ? shards : 1;
			snprintf(name, sizeof(name), "%s x %zu shard%s", argv[a], s.shards,
				 s.shards == 1 ? "" : "s");
			vi = build(&s, base, n, dim, &ms);
			snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
				 "- faiss %s: build (train + add) %.1f s", name, ms / 1e3);
			static const size_t probes[] = { 4, 16, 64 };
			int ivf = strncmp(argv[a], "IVF", 3) == 0;
			for (size_t i = 0; i < (ivf ? 3u : 1u); i++) {
				s.nprobe = probes[i];
				back = reopen(vi, &s, dim, &load_ms);
				if (ivf)
					snprintf(label, sizeof(label), "faiss %s nprobe %zu", name,
						 probes[i]);
				else
					snprintf(label, sizeof(label), "faiss %s efSearch %zu", name,
						 s.ef_search);
				run(label, back, q, nq, dim, truth);
				vindex_free(back);
			}
			snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
				 ", snapshot load %.2f s\n", load_ms / 1e3);
			vindex_free(vi);
		}
	}
	printf("\n%s", notes);
	remove(SNAP);
	free(base);
	free(q);
	free(truth);
	return 0;
}
