/*
 * Micro-batching measured in process, without HTTP: T threads each embed
 * one short text at a time through the llama.cpp embedder (2 contexts x 1
 * thread, as `ragd serve` sets it up on 2 cores), with and without the
 * batcher in front, in interleaved rounds.
 *
 *   cmake --build build --target bench_embed_batch
 *   ./build/bench_embed_batch models/all-MiniLM-L6-v2.gguf 16 200 3
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rag_error.h"
#include "model/embedder.h"

struct worker {
	struct embedder *e;
	int id, n;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	float vec[1024];
	char text[128];

	for (int k = 0; k < w->n; k++) {
		const char *t = text;
		size_t len = (size_t)snprintf(text, sizeof(text),
					      "what is the capital of country number %d-%d?", w->id, k);

		if (embedder_embed(w->e, &t, &len, 1, vec, NULL) < 0)
			abort();
	}
	return NULL;
}

static double run(struct embedder *e, int threads, int per)
{
	pthread_t th[256];
	struct worker w[256];
	double t0 = now_s();

	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ e, i, per };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return threads * per / (now_s() - t0);
}

int main(int argc, char **argv)
{
	struct embedder_llama_options lo;
	struct embedder_batch_options bo;
	struct embedder *plain, *batched;
	struct rag_err err = { 0 };
	int threads = argc > 2 ? atoi(argv[2]) : 16, per = argc > 3 ? atoi(argv[3]) : 200;
	int rounds = argc > 4 ? atoi(argv[4]) : 3;

	embedder_llama_default_options(&lo);
	lo.model_path = argc > 1 ? argv[1] : "models/all-MiniLM-L6-v2.gguf";
	lo.n_contexts = 2;
	lo.n_threads = 1;
	plain = embedder_llama_new(&lo, &err);
	if (!plain || threads > 256) {
		fprintf(stderr, "cannot load: %s\n", err.msg);
		return 1;
	}
	/* A second embedder over the same weights, behind the batcher. */
	embedder_batch_default_options(&bo);
	bo.max_running = lo.n_contexts;
	batched = embedder_batch_new(embedder_llama_new(&lo, &err), &bo, &err);
	run(plain, threads, 10);
	run(batched, threads, 10);
	printf("| round | texts/s, no batching | texts/s, micro-batching (window %d us) | ratio |\n",
	       bo.window_us);
	printf("| --- | --- | --- | --- |\n");
	for (int r = 0; r < rounds; r++) {
		double a = run(plain, threads, per), b = run(batched, threads, per);

		printf("| %d | %.0f | %.0f | %.2fx |\n", r + 1, a, b, b / a);
	}
	embedder_free(batched);
	embedder_free(plain);
	return 0;
}
