/*
 * Flat vector index benchmark: single-query search latency (p50, p99) and
 * queries per second over 10k and 200k random unit vectors of dimension 384,
 * scanned on one thread and split across the default number of threads.
 * Also times add, snapshot save (with fsync) and load. Set
 * RAGD_VINDEX_KERNEL=scalar|avx2|avx512 to pin a kernel.
 *
 * Build and run from the repository root:
 *   gcc -std=c17 -O2 -march=native -D_GNU_SOURCE -Isrc bench/bench_vindex.c src/index/vindex*.c src/core/rag_error.c -lpthread -lm -o /tmp/bench_vindex && /tmp/bench_vindex
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/vindex.h"
#include "index/vindex_kernels.h"

#define BENCH_DIM 384 /* a common sentence-embedding size (MiniLM, bge-small) */
#define BENCH_K 10

static uint64_t state = 88172645463325252ULL;

static float frand(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return (float)((double)(state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void run(struct vindex *vi, const char *label, size_t n_queries)
{
	float q[BENCH_DIM], scores[BENCH_K];
	int64_t ids[BENCH_K];
	size_t n_out;
	double *lat = malloc(n_queries * sizeof(*lat)), total = 0;

	for (size_t i = 0; i < n_queries; i++) {
		for (size_t j = 0; j < BENCH_DIM; j++)
			q[j] = frand();
		vindex_normalize(q, BENCH_DIM);
		double t0 = now();
		if (vindex_search(vi, q, BENCH_K, NULL, ids, scores, &n_out, NULL) != 0 ||
		    n_out != BENCH_K) {
			fprintf(stderr, "search failed\n");
			exit(1);
		}
		lat[i] = now() - t0;
		total += lat[i];
	}
	qsort(lat, n_queries, sizeof(*lat), cmp_double);
	double bytes = (double)vindex_count(vi) * BENCH_DIM * sizeof(float);
	printf("%-28s n=%-7zu p50 %8.3f ms  p99 %8.3f ms  %8.1f q/s  %5.1f GB/s\n", label,
	       vindex_count(vi), lat[n_queries / 2] * 1e3, lat[n_queries * 99 / 100] * 1e3,
	       (double)n_queries / total, bytes / lat[n_queries / 2] / 1e9);
	free(lat);
}

int main(void)
{
	const size_t sizes[] = { 10000, 200000 };
	struct vindex_flat_options one = vindex_flat_default_options();
	struct vindex_flat_options par = vindex_flat_default_options();
	char label[64];

	one.scan_threads = 1;
	printf("kernel %s, default scan threads %zu\n", vindex_kernel_best()->name,
	       par.scan_threads);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		float *vecs = malloc(n * BENCH_DIM * sizeof(*vecs));
		int64_t *ids = malloc(n * sizeof(*ids));
		for (size_t i = 0; i < n; i++) {
			ids[i] = (int64_t)i;
			for (size_t j = 0; j < BENCH_DIM; j++)
				vecs[i * BENCH_DIM + j] = frand();
			vindex_normalize(vecs + i * BENCH_DIM, BENCH_DIM);
		}
		for (int p = 0; p < 2; p++) {
			struct vindex *vi = vindex_flat_new_opts(BENCH_DIM, p ? &par : &one);
			double t0 = now();
			if (vindex_add(vi, ids, vecs, n, NULL) != 0)
				return 1;
			double t_add = now() - t0;
			snprintf(label, sizeof(label), "flat, %zu thread(s)",
				 p && n >= par.parallel_min ? par.scan_threads : 1);
			run(vi, label, n >= 100000 ? 300 : 2000);
			if (p == 0) {
				t0 = now();
				int rc = vindex_save(vi, "/tmp/bench_vindex.snap", 1, NULL);
				double t_save = now() - t0;
				t0 = now();
				struct vindex *back = vindex_load("/tmp/bench_vindex.snap", BENCH_DIM,
								  NULL, NULL);
				printf("  add %.1f ms, memory %.1f MiB, save %.1f ms, load %.1f ms%s\n",
				       t_add * 1e3, (double)vindex_memory(vi) / (1 << 20),
				       t_save * 1e3, (now() - t0) * 1e3,
				       rc == 0 && back ? "" : " (FAILED)");
				vindex_free(back);
				remove("/tmp/bench_vindex.snap");
			}
			vindex_free(vi);
		}
		free(vecs);
		free(ids);
	}
	return 0;
}
