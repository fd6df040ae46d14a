/*
 * The store's own costs, per backend: document puts (8 chunks of 384
 * floats each), a full scan (an index rebuild), hydrating 10 hits, and
 * reading the change log. No model: vectors are made up.
 *
 *   build/bench_store sqlite DIR [N_DOCS]
 *   build/bench_store mongodb URI [N_DOCS]     (e.g. FerretDB, see bench/RESULTS.md)
 */
#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_mongo.h"
#include "store/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIM 384
#define CHUNKS 8

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int count_row(void *ctx, const struct store_chunk_row *row)
{
	(void)row;
	++*(size_t *)ctx;
	return 0;
}

int main(int argc, char **argv)
{
	static float vecs[CHUNKS * DIM];
	struct store_collection spec = { .name = "bench", .embed_model = "m", .dim = DIM,
					 .chunk_size = 128, .chunk_overlap = 16 };
	struct store_chunk chunks[CHUNKS];
	struct rag_err err = { 0 };
	struct store *st;
	char text[CHUNKS * 64], id[32], db[32];
	size_t n_docs = argc > 3 ? (size_t)atol(argv[3]) : 500, n_rows = 0, len = 0;
	int64_t cid, seq, ids[10];
	double t0, t_put, t_scan, t_get = 0, t_changes;

	if (argc < 3 || (strcmp(argv[1], "sqlite") != 0 && strcmp(argv[1], "mongodb") != 0)) {
		fprintf(stderr, "usage: bench_store sqlite DIR | mongodb URI [N_DOCS]\n");
		return 2;
	}
	if (strcmp(argv[1], "sqlite") == 0) {
		st = store_sqlite_open(argv[2], NULL, &err);
	} else {
		struct store_mongo_options mo = store_mongo_default_options();

		snprintf(db, sizeof(db), "bench_%ld", (long)getpid());
		mo.uri = argv[2];
		mo.database = db;
		st = store_mongo_open(&mo, &err);
	}
	if (!st || store_collection_create(st, "default", &spec, &cid, &err)) {
		fprintf(stderr, "bench_store: %s\n", err.msg);
		return 1;
	}
	for (int i = 0; i < CHUNKS * DIM; i++)
		vecs[i] = (float)(i % 97) / 97.0f;
	for (int i = 0; i < CHUNKS; i++) {
		chunks[i] = (struct store_chunk){ .start_byte = len, .text = "lorem ipsum dolor" };
		len += (size_t)snprintf(text + len, sizeof(text) - len, "lorem ipsum dolor %d ", i);
		chunks[i].end_byte = len;
	}
	t0 = now_ms();
	for (size_t i = 0; i < n_docs; i++) {
		struct store_doc doc = { .id = id, .text = text, .metadata_json = "{\"k\":1}" };
		struct store_put put = { .doc = &doc, .chunks = chunks, .n_chunks = CHUNKS,
					 .vecs = vecs, .dim = DIM };

		snprintf(id, sizeof(id), "doc-%zu", i);
		if (store_doc_put(st, cid, &put, NULL, &err)) {
			fprintf(stderr, "put: %s\n", err.msg);
			return 1;
		}
	}
	t_put = now_ms() - t0;
	t0 = now_ms();
	store_chunks_scan(st, cid, count_row, &n_rows, &seq, &err);
	t_scan = now_ms() - t0;
	for (int r = 0; r < 20; r++) {
		struct store_hit hits[10];

		for (int i = 0; i < 10; i++)
			ids[i] = 1 + (int64_t)((size_t)rand() % (n_docs * CHUNKS));
		t0 = now_ms();
		store_chunks_get(st, cid, ids, 10, hits, &err);
		t_get += now_ms() - t0;
		store_hits_release(hits, 10);
	}
	t0 = now_ms();
	{
		struct store_change ch[256];
		size_t n = 0, total = 0;
		int64_t from = 0;

		do {
			if (store_changes(st, cid, from, 256, ch, &n, &err))
				break;
			total += n;
			if (n)
				from = ch[n - 1].seq;
			store_changes_release(ch, n);
		} while (n == 256);
		t_changes = now_ms() - t0;
		printf("%s: %zu puts of %d chunks: %.0f puts/s (%.2f ms each); scan of %zu chunks:"
		       " %.0f ms; hydrate 10 hits: %.2f ms; change log of %zu entries: %.0f ms\n",
		       argv[1], n_docs, CHUNKS, n_docs / (t_put / 1e3), t_put / (double)n_docs, n_rows,
		       t_scan, t_get / 20, total, t_changes);
	}
	store_free(st);
	return 0;
}
