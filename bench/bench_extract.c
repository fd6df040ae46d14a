/*
 * Extraction and chunking throughput over real documents, with the embedding
 * cost of the same chunks measured alongside, so the share of each ingest
 * stage can be read off (storing is measured by the pipeline benchmarks).
 *
 *   cmake --build build --target bench_extract
 *   find /usr/share/doc/postgresql-doc-15/html -name '*.html' |
 *       ./build/bench_extract --max-tokens 128 --embed-chunks 2000 -
 *   ./build/bench_extract --dump FILE...    (print the chunks, to look at them)
 *
 * Every file is read into memory first (reading is not timed), then
 * extracted (format from the name and the bytes), then chunked with the
 * real model's tokenizer counting tokens; chunks of every file are embedded
 * until --embed-chunks have been, and the embedding time per chunk is
 * extrapolated to all chunks. Prints Markdown for bench/RESULTS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "model/embedder.h"
#include "text/chunk.h"
#include "text/extract.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the whole process (all threads): work done, whatever else runs. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dump; /* --dump: print each chunk instead of only timing */

static int count_cb(void *ctx, const char *text, size_t len)
{
	return embedder_count_tokens(ctx, text, len);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

struct totals {
	size_t docs, failed, bytes, text_bytes, chunks, tokens, embedded;
	double extract_s, chunk_s, embed_s;
	double extract_cpu, chunk_cpu, embed_cpu;
};

static void one(const char *path, struct embedder *emb, const struct chunk_options *co,
		enum chunk_strategy s, size_t embed_budget, struct totals *t)
{
	struct extract_options eo = { .name = path };
	struct extract_document doc;
	struct chunk_piece *p = NULL;
	struct rag_err err = { 0 };
	size_t len, n = 0;
	char *data = slurp(path, &len);
	double t0, t1, t2, c0, c1, c2;

	if (!data) {
		t->failed++;
		return;
	}
	t0 = now_s();
	c0 = cpu_s();
	if (extract_document(data, len, &eo, &doc, &err) < 0) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		t->failed++;
		free(data);
		return;
	}
	t1 = now_s();
	c1 = cpu_s();
	if (chunk_document(&doc, co, s, &p, &n, &err) < 0) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		t->failed++;
		goto out;
	}
	t2 = now_s();
	c2 = cpu_s();
	t->extract_cpu += c1 - c0;
	t->chunk_cpu += c2 - c1;
	t->docs++;
	t->bytes += len;
	t->text_bytes += doc.text_len;
	t->extract_s += t1 - t0;
	t->chunk_s += t2 - t1;
	t->chunks += n;
	for (size_t i = 0; dump && i < n; i++)
		printf("--- %s #%zu [%zu,%zu) %zu tokens, pages %u-%u, section '%s', title '%s'\n%.*s\n",
		       path, p[i].ordinal, p[i].start, p[i].end, p[i].n_tokens, p[i].page_first,
		       p[i].page_last, p[i].section, doc.title ? doc.title : "",
		       (int)(p[i].end - p[i].start), doc.text + p[i].start);
	for (size_t i = 0; i < n; i++)
		t->tokens += p[i].n_tokens;
	if (t->embedded < embed_budget && n > 0) {
		const char **texts = calloc(n, sizeof(*texts));
		size_t *lens = calloc(n, sizeof(*lens));
		float *vecs = malloc(n * emb->dim * sizeof(float));

		for (size_t i = 0; texts && lens && i < n; i++) {
			texts[i] = doc.text + p[i].start;
			lens[i] = p[i].end - p[i].start;
		}
		t0 = now_s();
		c0 = cpu_s();
		if (texts && lens && vecs && embedder_embed(emb, texts, lens, n, vecs, &err) == 0) {
			t->embed_s += now_s() - t0;
			t->embed_cpu += cpu_s() - c0;
			t->embedded += n;
		}
		free(texts);
		free(lens);
		free(vecs);
	}
out:
	free(p);
	free(data);
	extract_document_release(&doc);
}

static void row(const char *stage, double wall, double cpu, const struct totals *t, double mb,
		double total, double total_cpu)
{
	double docs = t->docs ? (double)t->docs : 1;

	printf("| %s | %.2f | %.2f ms | %.2f ms | %.0f docs/s, %.1f MB/s | %.1f %% | %.1f %% |\n",
	       stage, wall, wall * 1e3 / docs, cpu * 1e3 / docs, wall > 0 ? docs / wall : 0,
	       wall > 0 ? mb / wall : 0, 100 * wall / total, 100 * cpu / total_cpu);
}

int main(int argc, char **argv)
{
	struct embedder_llama_options lo;
	enum chunk_strategy s = CHUNK_DEFAULT_STRATEGY;
	size_t max_tokens = 128, embed_budget = 2000;
	struct totals t = { 0 };
	struct rag_err err = { 0 };
	struct chunk_options co;
	struct embedder *emb;
	char line[4096];
	int i = 1;

	embedder_llama_default_options(&lo);
	for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--dump") == 0) {
			dump = 1;
			embed_budget = 0;
			continue;
		}
		if (strcmp(argv[i], "--model") == 0)
			lo.model_path = argv[++i];
		else if (strcmp(argv[i], "--max-tokens") == 0)
			max_tokens = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--embed-chunks") == 0)
			embed_budget = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--chunker") == 0 &&
			 chunk_strategy_parse(argv[i + 1], &s) == 0)
			i++;
		else
			break;
	}
	log_set_level(LOG_LEVEL_WARN);
	emb = embedder_llama_new(&lo, &err);
	if (!emb) {
		fprintf(stderr, "embedder: %s\n", err.msg);
		return 1;
	}
	co.max_tokens = max_tokens;
	co.overlap_tokens = 0;
	co.count = count_cb;
	co.count_ctx = emb;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-") != 0) {
			one(argv[i], emb, &co, s, embed_budget, &t);
			continue;
		}
		while (fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0])
				one(line, emb, &co, s, embed_budget, &t);
		}
	}
	{
		double per_chunk = t.embedded ? t.embed_s / (double)t.embedded : 0;
		double embed_all = per_chunk * (double)t.chunks;
		double embed_all_cpu = t.embedded ? t.embed_cpu / (double)t.embedded * (double)t.chunks
						  : 0;
		double total = t.extract_s + t.chunk_s + embed_all + 1e-9;
		double total_cpu = t.extract_cpu + t.chunk_cpu + embed_all_cpu + 1e-9;
		double mb = (double)t.bytes / 1e6, docs = t.docs ? (double)t.docs : 1;

		printf("| documents | failed | MB in | MB text | chunks | tokens/chunk | chunker |\n");
		printf("| --- | --- | --- | --- | --- | --- | --- |\n");
		printf("| %zu | %zu | %.1f | %.1f | %zu | %.1f | %s, max %zu |\n\n", t.docs, t.failed,
		       mb, (double)t.text_bytes / 1e6, t.chunks,
		       t.chunks ? (double)t.tokens / (double)t.chunks : 0.0, chunk_strategy_name(s),
		       max_tokens);
		printf("| stage | wall s | wall per doc | CPU per doc | throughput (wall) | share of "
		       "wall | share of CPU |\n");
		printf("| --- | --- | --- | --- | --- | --- | --- |\n");
		row("extract", t.extract_s, t.extract_cpu, &t, mb, total, total_cpu);
		row("chunk (tokenizer counts)", t.chunk_s, t.chunk_cpu, &t, mb, total, total_cpu);
		printf("| embed (%zu chunks measured, extrapolated to all) | %.1f | %.1f ms | %.1f ms | "
		       "%.1f chunks/s | %.1f %% | %.1f %% |\n",
		       t.embedded, embed_all, embed_all * 1e3 / docs, embed_all_cpu * 1e3 / docs,
		       per_chunk > 0 ? 1 / per_chunk : 0, 100 * embed_all / total,
		       100 * embed_all_cpu / total_cpu);
	}
	embedder_free(emb);
	return 0;
}
