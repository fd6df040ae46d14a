/*
 * What deleting a large document costs: a 10 MB document (20,480 chunks of
 * 512 bytes, 384-dim vectors) is put into a fresh SQLite store, then
 * deleted, timing the store's delete transaction (one DELETE over the
 * document's contiguous chunk-id range, the document row, one change-log
 * row) and the index side the change-log replay does (vector index remove
 * of the id range, lexical index range delete). Embedding is left out: it
 * is what putting the document costs, not deleting it.
 *
 *   cmake --build build --target bench_delete && ./build/bench_delete [MB]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "index/lexical.h"
#include "index/vindex.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#define DIM 384
#define CHUNK_BYTES 512

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 10;
	size_t len = mb << 20, n = len / CHUNK_BYTES;
	char dir[] = "/tmp/ragd-bench-delete-XXXXXX", cmd[128];
	char *text = malloc(len + 1), **texts = calloc(n, sizeof(*texts));
	struct store_chunk *chunks = calloc(n, sizeof(*chunks));
	float *vecs = malloc(n * DIM * sizeof(float));
	int64_t *ids = malloc(n * sizeof(*ids));
	size_t *lens = malloc(n * sizeof(*lens));
	struct store_collection spec = { 0 };
	struct store_doc doc = { .id = "big", .content_hash = "h" };
	struct store_put put = { .doc = &doc, .dim = DIM, .model = "m" };
	struct store_put_result res;
	struct rag_err err = { 0 };
	struct store *st;
	struct vindex *vi = vindex_flat_new(DIM);
	struct lexical *lx = lexical_new(0, &err);
	int64_t cid;
	double t0, t_put, t_store, t_vi, t_lx;

	if (!text || !texts || !chunks || !vecs || !ids || !lens || !vi || !lx || !mkdtemp(dir))
		return 1;
	srand(1);
	for (size_t i = 0; i < len; i++)
		text[i] = (i % 8 == 7) ? ' ' : (char)('a' + rand() % 26);
	text[len] = '\0';
	for (size_t i = 0; i < n * DIM; i++)
		vecs[i] = (float)rand() / (float)RAND_MAX - 0.5f;
	for (size_t i = 0; i < n; i++) {
		texts[i] = strndup(text + i * CHUNK_BYTES, CHUNK_BYTES);
		lens[i] = CHUNK_BYTES;
		chunks[i].start_byte = i * CHUNK_BYTES;
		chunks[i].end_byte = (i + 1) * CHUNK_BYTES;
		chunks[i].text = texts[i];
		chunks[i].hash = "";
	}
	st = store_sqlite_open(dir, NULL, &err);
	spec.name = "c";
	spec.embed_model = "m";
	spec.dim = DIM;
	spec.chunk_size = 128;
	if (!st || store_collection_create(st, "default", &spec, &cid, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	doc.text = text;
	put.chunks = chunks;
	put.n_chunks = n;
	put.vecs = vecs;
	t0 = now_ms();
	if (store_doc_put(st, cid, &put, &res, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	t_put = now_ms() - t0;
	for (size_t i = 0; i < n; i++)
		ids[i] = res.first_chunk_id + (int64_t)i;
	if (vindex_add(vi, ids, vecs, n, &err) < 0 ||
	    lexical_add(lx, ids, (const char *const *)texts, lens, n, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}

	t0 = now_ms();
	if (store_doc_delete(st, cid, "big", NULL, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	t_store = now_ms() - t0;
	t0 = now_ms();
	vindex_remove(vi, ids, n);
	t_vi = now_ms() - t0;
	t0 = now_ms();
	lexical_remove_range(lx, res.first_chunk_id, res.last_chunk_id, NULL);
	t_lx = now_ms() - t0;

	printf("| %zu MB | %zu chunks | put %.0f ms | delete: store %.1f ms, vector index %.1f ms,"
	       " lexical index %.1f ms, total %.1f ms |\n",
	       mb, n, t_put, t_store, t_vi, t_lx, t_store + t_vi + t_lx);
	store_free(st);
	vindex_free(vi);
	lexical_free(lx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return 0;
}
