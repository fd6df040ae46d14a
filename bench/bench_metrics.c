/*
 * Metrics overhead on a search request, measured in one process, side by
 * side: batches of real searches (embed the query with the real model, scan
 * the index, hydrate from SQLite) alternate between recording the metrics a
 * search request records in the server (http_metrics_request: four updates,
 * plus the query counter) and recording none. Also times the recording
 * alone over a million calls.
 *
 *   cmake --build build --target bench_metrics
 *   ./build/bench_metrics [MODEL] [N_DOCS] [BATCHES]
 *
 * Prints a Markdown row set for bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "http/http_metrics.h"
#include "http/http_router.h"
#include "model/embedder.h"
#include "obs/metrics.h"
#include "rag/rag_engine.h"
#include "store/store_sqlite.h"

#define SEARCHES_PER_BATCH 50 /* long enough to average scheduling noise within a batch */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char *const words[] = { "protein", "cell", "gene", "brain", "heart", "virus",
				     "immune", "cancer", "drug", "trial", "mouse", "blood",
				     "tissue", "signal", "receptor", "enzyme" };

static void sentence(char *buf, size_t size, unsigned seed)
{
	size_t len = 0;

	for (int w = 0; w < 24 && len + 16 < size; w++) {
		seed = seed * 1103515245u + 12345u;
		len += (size_t)snprintf(buf + len, size - len, "%s ", words[(seed >> 16) % 16]);
	}
}

int main(int argc, char **argv)
{
	const char *model = argc > 1 ? argv[1] : "models/all-MiniLM-L6-v2.gguf";
	int n_docs = argc > 2 ? atoi(argv[2]) : 500;
	int batches = argc > 3 ? atoi(argv[3]) : 20;
	char dir[] = "/tmp/ragd-bench-metrics-XXXXXX";
	struct embedder_llama_options eo;
	struct rag_engine_options ro;
	struct rag_collection_spec spec = { "bench", NULL, 0, -1, NULL };
	struct rag_err err = { 0 };
	struct store *st;
	struct embedder *emb;
	struct rag_engine *eng;
	double *on, *off, t0, rec_ns;
	char text[512], cmd[256];
	int search_route = -1;

	log_set_level(LOG_LEVEL_WARN);
	if (!mkdtemp(dir))
		return 1;
	st = store_sqlite_open(dir, NULL, &err);
	embedder_llama_default_options(&eo);
	eo.model_path = model;
	eo.n_contexts = 1;
	eo.n_threads = 2;
	emb = st ? embedder_llama_new(&eo, &err) : NULL;
	rag_engine_default_options(&ro);
	ro.data_dir = dir;
	ro.follow_interval_ms = 0;
	ro.snapshot = 0;
	eng = emb ? rag_engine_new(&ro, st, emb, &err) : NULL;
	if (!eng || rag_collection_create(eng, "default", &spec, NULL, &err) < 0) {
		fprintf(stderr, "setup failed: %s\n", err.msg);
		return 1;
	}
	for (int i = 0; i < n_docs; i++) {
		struct rag_doc_in d = { NULL, text, 0, NULL };
		struct rag_ingest_result r;

		sentence(text, sizeof(text), (unsigned)i * 7919u);
		d.text_len = strlen(text);
		if (rag_ingest(eng, "default", "bench", &d, &r, &err) < 0) {
			fprintf(stderr, "ingest failed: %s\n", err.msg);
			return 1;
		}
	}
	http_metrics_init();
	for (size_t i = 0; i < http_route_count(); i++)
		if (strcmp(http_route_pattern(i), "/v1/collections/{name}/search") == 0)
			search_route = (int)i;
	on = calloc((size_t)batches, sizeof(*on));
	off = calloc((size_t)batches, sizeof(*off));
	for (int b = 0; b < 2 * batches; b++) {
		int record = b % 2 == 0;
		double start = now_ms();

		for (int q = 0; q < SEARCHES_PER_BATCH; q++) {
			struct rag_search_result res;
			struct rag_query query = { .text = text, .top_k = 10,
						   .mode = RAG_MODE_HYBRID, .alpha = 0.5 };
			double s0 = now_ms();

			sentence(text, sizeof(text), (unsigned)(b * 1000 + q));
			query.len = strlen(text);
			rag_search(eng, "default", "bench", &query, &res, &err);
			rag_search_result_release(&res);
			if (record)
				http_metrics_request(search_route, 200, now_ms() - s0);
		}
		(record ? on : off)[b / 2] = (now_ms() - start) / SEARCHES_PER_BATCH;
	}
	t0 = now_ms();
	for (int i = 0; i < 1000000; i++)
		http_metrics_request(search_route, 200, 3.0);
	rec_ns = (now_ms() - t0) * 1e6 / 1e6;
	qsort(on, (size_t)batches, sizeof(*on), cmp);
	qsort(off, (size_t)batches, sizeof(*off), cmp);
	printf("| search request, %d docs, median of %d batches x %d: metrics recorded | %.3f ms |\n",
	       n_docs, batches, SEARCHES_PER_BATCH, on[batches / 2]);
	printf("| same, metrics not recorded | %.3f ms |\n", off[batches / 2]);
	printf("| difference (noise included) | %+.2f %% |\n",
	       100.0 * (on[batches / 2] - off[batches / 2]) / off[batches / 2]);
	printf("| recording one request's metrics alone (1M calls) | %.0f ns = %.4f %% of a search |\n",
	       rec_ns, 100.0 * rec_ns / 1e6 / off[batches / 2]);
	rag_engine_free(eng);
	embedder_free(emb);
	store_free(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
