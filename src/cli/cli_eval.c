/*
 * `ragd eval --dataset DIR`: retrieval quality on a BEIR dataset.
 *
 * Reads corpus.jsonl, queries.jsonl and qrels/test.tsv, ingests the corpus
 * (title + text) into a fresh collection with several threads, runs every
 * judged query in each mode, folds chunk hits into documents (a document
 * ranks where its best chunk does) and prints nDCG@10, Recall@100 and
 * MRR@10 per mode with ingest and query throughput. --json FILE writes the
 * same as {"dataset", "index", "modes": {mode: {"ndcg@10", "recall@100",
 * "mrr@10", "qps"}}, "ingest": {"docs_per_s", "chunks_per_s"}}; --index
 * TYPE (or a JSON index spec) picks the collection's vector index, e.g.
 * "--index chroma --chroma-url http://127.0.0.1:8000"; --run FILE writes the
 * rankings as a TREC run (query Q0 doc rank score mode) for checking the
 * metrics against pytrec_eval.
 *
 * Without --data-dir the data goes to a temporary directory, removed at
 * the end. BEIR ids may hold any character, so documents are stored as
 * "d<index>" and mapped back.
 */
#include "cli/cli.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/hashmap.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "rag/rag_engine.h"
#include "rag/rag_eval.h"
#include "store/store.h"

#include "core/banned.h"

#define EVAL_CHUNKS 300  /* chunk hits asked for per query, folded into documents */
#define EVAL_DOCS 100    /* documents ranked per query: Recall@100 */
#define EVAL_MAX_MODES 3

struct query {
	char *id, *text;
	struct eval_judgement *j;
	size_t n_j, alloc_j;
};

struct dataset {
	char *name;
	char **doc_ids, **doc_texts;
	size_t n_docs;
	struct query *queries;
	size_t n_queries;
};

struct ingest_job {
	struct rag_engine *eng;
	const char *collection;
	struct dataset *ds;
	atomic_size_t next, chunks, failed;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_jsonl(const char *path, int (*fn)(void *ctx, json_t *obj), void *ctx)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "ragd eval: cannot read '%s'\n", path);
		return -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
		json_t *obj = json_loadb(line, (size_t)len, 0, NULL);

		if (json_is_object(obj))
			rc = fn(ctx, obj);
		json_decref(obj);
	}
	free(line);
	fclose(f);
	return rc;
}

static const char *str_field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static int add_doc(void *ctx, json_t *o)
{
	struct dataset *ds = ctx;
	struct sbuf sb = SBUF_INIT;
	const char *title = str_field(o, "title"), *text = str_field(o, "text");
	size_t n = ds->n_docs;

	if ((n & (n - 1)) == 0) {
		size_t cap = n ? 2 * n : 1024;

		ds->doc_ids = realloc(ds->doc_ids, cap * sizeof(char *));
		ds->doc_texts = realloc(ds->doc_texts, cap * sizeof(char *));
		if (!ds->doc_ids || !ds->doc_texts)
			return -1;
	}
	if (title[0])
		sbuf_addf(&sb, "%s\n\n", title);
	sbuf_addstr(&sb, text);
	ds->doc_ids[n] = strdup(str_field(o, "_id"));
	ds->doc_texts[n] = sbuf_detach(&sb, NULL);
	ds->n_docs++;
	return ds->doc_ids[n] && ds->doc_texts[n] ? 0 : -1;
}

static int add_query(void *ctx, json_t *o)
{
	struct hashmap *by_id = ctx;
	struct query *q = hashmap_get(by_id, str_field(o, "_id"));

	if (q && !q->text)
		q->text = strdup(str_field(o, "text"));
	return 0;
}

/* qrels/test.tsv: a header line, then query-id TAB corpus-id TAB score. */
static int read_qrels(const char *path, struct hashmap *by_id)
{
	FILE *f = fopen(path, "r");
	char qid[512], did[512];
	int score, line = 0;
	char buf[2048];

	if (!f) {
		fprintf(stderr, "ragd eval: cannot read '%s'\n", path);
		return -1;
	}
	while (fgets(buf, sizeof(buf), f)) {
		struct query *q;

		if (line++ == 0 || sscanf(buf, "%511[^\t]\t%511[^\t]\t%d", qid, did, &score) != 3)
			continue;
		q = hashmap_get(by_id, qid);
		if (!q) {
			q = calloc(1, sizeof(*q));
			q->id = strdup(qid);
			hashmap_put(by_id, qid, q, NULL);
		}
		if (q->n_j == q->alloc_j) {
			q->alloc_j = q->alloc_j ? 2 * q->alloc_j : 4;
			q->j = realloc(q->j, q->alloc_j * sizeof(*q->j));
		}
		q->j[q->n_j].doc_id = strdup(did);
		q->j[q->n_j].gain = score;
		q->n_j++;
	}
	fclose(f);
	return 0;
}

static int by_query_id(const void *a, const void *b)
{
	return strcmp(((const struct query *)a)->id, ((const struct query *)b)->id);
}

static int load(const char *dir, struct dataset *ds)
{
	struct hashmap *by_id = hashmap_new(1024);
	struct hashmap_iter it;
	struct sbuf path = SBUF_INIT;
	const char *key, *base = strrchr(dir, '/');
	void *val;
	int rc;

	ds->name = strdup(base && base[1] ? base + 1 : dir);
	sbuf_addf(&path, "%s/corpus.jsonl", dir);
	rc = read_jsonl(path.buf, add_doc, ds);
	sbuf_reset(&path);
	sbuf_addf(&path, "%s/qrels/test.tsv", dir);
	if (rc == 0)
		rc = read_qrels(path.buf, by_id);
	sbuf_reset(&path);
	sbuf_addf(&path, "%s/queries.jsonl", dir);
	if (rc == 0)
		rc = read_jsonl(path.buf, add_query, by_id);
	sbuf_release(&path);
	ds->queries = calloc(hashmap_count(by_id) + 1, sizeof(*ds->queries));
	hashmap_iter_init(&it, by_id);
	while (hashmap_iter_next(&it, &key, &val)) {
		struct query *q = val;
		size_t rel = 0;

		for (size_t i = 0; i < q->n_j; i++)
			rel += q->j[i].gain > 0;
		if (q->text && rel > 0) {
			ds->queries[ds->n_queries++] = *q;
		} else {
			for (size_t i = 0; i < q->n_j; i++)
				free((char *)q->j[i].doc_id);
			free(q->j);
			free(q->id);
			free(q->text);
		}
		free(q);
	}
	hashmap_free(by_id);
	qsort(ds->queries, ds->n_queries, sizeof(*ds->queries), by_query_id);
	return rc;
}

static void *ingest_main(void *arg)
{
	struct ingest_job *job = arg;
	size_t i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->ds->n_docs) {
		struct rag_doc_in doc = { 0 };
		struct rag_ingest_result res;
		char id[32];

		snprintf(id, sizeof(id), "d%zu", i);
		doc.id = id;
		doc.text = job->ds->doc_texts[i];
		doc.text_len = strlen(doc.text);
		if (rag_ingest(job->eng, STORE_DEFAULT_TENANT, job->collection, &doc, &res, NULL) < 0)
			atomic_fetch_add(&job->failed, 1);
		else
			atomic_fetch_add(&job->chunks, res.n_chunks);
		if (i % 1000 == 999)
			fprintf(stderr, "ragd eval: ingested %zu / %zu documents\n", i + 1,
				job->ds->n_docs);
	}
	return NULL;
}

static void dataset_release(struct dataset *ds)
{
	for (size_t i = 0; i < ds->n_docs; i++) {
		free(ds->doc_ids[i]);
		free(ds->doc_texts[i]);
	}
	for (size_t i = 0; i < ds->n_queries; i++) {
		struct query *q = &ds->queries[i];

		for (size_t k = 0; k < q->n_j; k++)
			free((char *)q->j[k].doc_id);
		free(q->j);
		free(q->id);
		free(q->text);
	}
	free(ds->doc_ids);
	free(ds->doc_texts);
	free(ds->queries);
	free(ds->name);
}

struct mode_result {
	const char *name;
	double ndcg, recall, mrr, qps;
};

/* Folds chunk hits into the ranked BEIR document ids (borrowed from ds). */
static size_t fold(const struct dataset *ds, const struct rag_search_result *res,
		   int first_chunk, const char **ranked)
{
	size_t n = 0;

	for (size_t h = 0; h < res->n_hits && n < EVAL_DOCS; h++) {
		size_t idx = strtoul(res->hits[h].chunk.document_id + 1, NULL, 10);
		const char *id = idx < ds->n_docs ? ds->doc_ids[idx] : NULL;
		int seen = first_chunk && res->hits[h].chunk.ordinal > 0;

		for (size_t k = 0; id && k < n && !seen; k++)
			seen = ranked[k] == id;
		if (id && !seen)
			ranked[n++] = id;
	}
	return n;
}

static int run_mode(struct rag_engine *eng, const char *collection, const struct dataset *ds,
		    const struct rag_query *base, int first_chunk, struct mode_result *r, FILE *run)
{
	const char *ranked[EVAL_DOCS];
	double t0 = now_s();

	for (size_t i = 0; i < ds->n_queries; i++) {
		const struct query *q = &ds->queries[i];
		struct rag_query rq = *base;
		struct rag_search_result res;
		struct rag_err err = { 0 };
		size_t n;

		rq.text = q->text;
		rq.len = strlen(q->text);
		rq.top_k = EVAL_CHUNKS;
		if (rag_search(eng, STORE_DEFAULT_TENANT, collection, &rq, &res, &err) < 0) {
			fprintf(stderr, "ragd eval: query '%s': %s\n", q->id, err.msg);
			return -1;
		}
		n = fold(ds, &res, first_chunk, ranked);
		r->ndcg += eval_ndcg(ranked, n, q->j, q->n_j, 10);
		r->recall += eval_recall(ranked, n, q->j, q->n_j, 100);
		r->mrr += eval_mrr(ranked, n, q->j, q->n_j, 10);
		for (size_t k = 0; run && k < n; k++)
			fprintf(run, "%s Q0 %s %zu %.6f %s\n", q->id, ranked[k], k + 1,
				(double)(EVAL_DOCS - k), r->name);
		rag_search_result_release(&res);
	}
	r->qps = (double)ds->n_queries / (now_s() - t0);
	if (ds->n_queries) {
		r->ndcg /= (double)ds->n_queries;
		r->recall /= (double)ds->n_queries;
		r->mrr /= (double)ds->n_queries;
	}
	return 0;
}

static int write_json(const char *path, const struct dataset *ds, const char *index,
		      const struct mode_result *r, size_t n_modes, double docs_per_s,
		      double chunks_per_s)
{
	json_t *modes = json_object();
	json_t *root;
	int rc;

	for (size_t m = 0; m < n_modes; m++)
		json_object_set_new(modes, r[m].name,
				    json_pack("{s:f, s:f, s:f, s:f}", "ndcg@10", r[m].ndcg,
					      "recall@100", r[m].recall, "mrr@10", r[m].mrr, "qps",
					      r[m].qps));
	root = json_pack("{s:s, s:i, s:o, s:o, s:{s:f, s:f}}", "dataset", ds->name, "queries",
			 (int)ds->n_queries, "index", json_loads(index, 0, NULL), "modes", modes,
			 "ingest", "docs_per_s", docs_per_s, "chunks_per_s", chunks_per_s);
	rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	json_decref(root);
	if (rc < 0)
		fprintf(stderr, "ragd eval: cannot write '%s'\n", path);
	return rc;
}

static int ingest_all(struct cli_app *app, const char *collection, struct dataset *ds,
		      int threads, double *docs_per_s, double *chunks_per_s)
{
	struct ingest_job job = { .eng = app->eng, .collection = collection, .ds = ds };
	pthread_t tid[16];
	int n = threads < 1 ? 1 : threads > 16 ? 16 : threads;
	double t0 = now_s(), secs;

	for (int i = 0; i < n; i++)
		pthread_create(&tid[i], NULL, ingest_main, &job);
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	secs = now_s() - t0;
	*docs_per_s = (double)(ds->n_docs - job.failed) / secs;
	*chunks_per_s = (double)job.chunks / secs;
	fprintf(stderr, "ragd eval: %zu documents (%zu skipped: empty or invalid), %zu chunks in "
			"%.1f s\n", ds->n_docs - job.failed, (size_t)job.failed, (size_t)job.chunks,
		secs);
	return 0;
}

/*
 * --first-chunk: only each document's first chunk counts, which is what
 * BEIR and MTEB measure (they cut a document at the model's limit); without
 * it a document is as good as its best chunk.
 *
 * --reuse: an earlier run's collection in the same --data-dir is used as it
 * is (its documents were ingested from the same dataset; only the search
 * side is re-run), which turns a re-evaluation of ranking changes from
 * minutes of embedding into seconds.
 */
static int reusable(struct rag_engine *eng, const char *collection)
{
	struct rag_collection_info info;
	int ok;

	if (rag_collection_get(eng, STORE_DEFAULT_TENANT, collection, &info, NULL) < 0)
		return 0;
	ok = info.c.seq > 0 && info.n_vectors > 0;
	rag_collection_info_release(&info);
	return ok;
}

int cli_eval(int argc, char **argv)
{
	const char *dataset = NULL, *json_path = NULL, *run_path = NULL;
	const char *modes_s = "lexical,dense,hybrid", *threads_s = "2", *fusion_s = "weighted";
	const char *alpha_s = "0.5", *rrf_k_s = "60", *stemming = NULL, *index_s = NULL;
	const char *chunker = NULL;
	int reuse = 0, first_chunk = 0;
	const struct cli_flag flags[] = {
		{ "--dataset", &dataset, NULL }, { "--json", &json_path, NULL },
		{ "--run", &run_path, NULL },    { "--modes", &modes_s, NULL },
		{ "--threads", &threads_s, NULL }, { "--fusion", &fusion_s, NULL },
		{ "--alpha", &alpha_s, NULL },	   { "--rrf-k", &rrf_k_s, NULL },
		{ "--stemming", &stemming, NULL }, { "--reuse", NULL, &reuse },
		{ "--index", &index_s, NULL },	   { "--first-chunk", NULL, &first_chunk },
		{ "--chunker", &chunker, NULL },
		{ NULL, NULL, NULL },
	};
	struct sbuf index_json = SBUF_INIT;
	struct mode_result results[EVAL_MAX_MODES] = { 0 };
	enum rag_mode modes[EVAL_MAX_MODES];
	struct rag_collection_spec spec = { .name = "eval", .chunk_overlap = -1 };
	struct dataset ds = { 0 };
	struct cli_app app;
	struct rag_err err = { 0 };
	char tmp[] = "/tmp/ragd-eval-XXXXXX", names[64];
	double docs_per_s = 0, chunks_per_s = 0;
	size_t n_modes = 0;
	FILE *run = NULL;
	int temp = 0, rc = 1;

	if (cli_setup(&app, argc, argv, 2, flags) < 0 || !dataset || app.n_args) {
		fprintf(stderr, "usage: ragd eval --dataset DIR [--modes lexical,dense,hybrid] "
				"[--fusion rrf|weighted] [--alpha A] [--rrf-k K] [--json FILE] "
				"[--run FILE] [--threads N] [--stemming porter|none] "
				"[--data-dir DIR [--reuse]] [--index TYPE|JSON] [--chroma-url URL] "
				"[--chunker structured|recursive|fixed] [--first-chunk]\n");
		cli_app_release(&app);
		return 2;
	}
	snprintf(names, sizeof(names), "%s", modes_s);
	for (char *save = NULL, *m = strtok_r(names, ",", &save); m && n_modes < EVAL_MAX_MODES;
	     m = strtok_r(NULL, ",", &save)) {
		if (rag_mode_parse(m, &modes[n_modes], &err) < 0) {
			fprintf(stderr, "ragd eval: --modes: %s\n", err.msg);
			cli_app_release(&app);
			return 2;
		}
		results[n_modes].name = modes[n_modes] == RAG_MODE_DENSE     ? "dense"
					: modes[n_modes] == RAG_MODE_LEXICAL ? "lexical"
									     : "hybrid";
		n_modes++;
	}
	/* --index chroma is {"type":"chroma"}; a JSON object is taken as it is. */
	if (index_s && index_s[0] == '{')
		sbuf_addstr(&index_json, index_s);
	else if (index_s) {
		sbuf_addstr(&index_json, "{\"type\":");
		sbuf_add_json_str(&index_json, index_s, strlen(index_s));
		sbuf_addch(&index_json, '}');
	}
	spec.index_json = index_s ? index_json.buf : NULL;
	if (load(dataset, &ds) < 0 || ds.n_docs == 0 || ds.n_queries == 0) {
		fprintf(stderr, "ragd eval: '%s' holds no BEIR corpus with judged queries\n", dataset);
		goto out;
	}
	if (!getenv("RAGD_DATA_DIR") && strcmp(app.cfg->data_dir, "./data") == 0) {
		if (!mkdtemp(tmp))
			goto out;
		free(app.cfg->data_dir);
		app.cfg->data_dir = strdup(tmp);
		temp = 1;
	}
	if (cli_open(&app, 1, 1, 0) < 0)
		goto out;
	spec.stemming = stemming;
	spec.chunker = chunker;
	fprintf(stderr, "ragd eval: %s: %zu documents, %zu judged queries, index %s\n", ds.name,
		ds.n_docs, ds.n_queries, index_s ? index_s : "flat");
	if (reuse && !temp && reusable(app.eng, spec.name)) {
		fprintf(stderr, "ragd eval: reusing the collection in '%s'\n", app.cfg->data_dir);
	} else {
		rag_collection_delete(app.eng, STORE_DEFAULT_TENANT, spec.name, NULL);
		if (rag_collection_create(app.eng, STORE_DEFAULT_TENANT, &spec, NULL, &err) < 0) {
			fprintf(stderr, "ragd eval: %s\n", err.msg);
			goto out;
		}
		ingest_all(&app, spec.name, &ds, atoi(threads_s), &docs_per_s, &chunks_per_s);
	}
	if (run_path && !(run = fopen(run_path, "w"))) {
		fprintf(stderr, "ragd eval: cannot write '%s'\n", run_path);
		goto out;
	}
	printf("| dataset | mode | nDCG@10 | Recall@100 | MRR@10 | queries/s |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");
	for (size_t m = 0; m < n_modes; m++) {
		struct rag_query base = { .mode = modes[m],
					  .fusion = strcmp(fusion_s, "rrf") == 0 ? RAG_FUSION_RRF
										 : RAG_FUSION_WEIGHTED,
					  .alpha = atof(alpha_s),
					  .rrf_k = atoi(rrf_k_s) };

		if (run_mode(app.eng, spec.name, &ds, &base, first_chunk, &results[m], run) < 0)
			goto out;
		printf("| %s | %s | %.4f | %.4f | %.4f | %.1f |\n", ds.name, results[m].name,
		       results[m].ndcg, results[m].recall, results[m].mrr, results[m].qps);
		fflush(stdout);
	}
	printf("\ningest: %.1f documents/s, %.1f chunks/s; %zu judged queries\n", docs_per_s,
	       chunks_per_s, ds.n_queries);
	rc = json_path && write_json(json_path, &ds, index_s ? index_json.buf : "{\"type\":\"flat\"}",
				     results, n_modes, docs_per_s, chunks_per_s) < 0
		     ? 1
		     : 0;
out:
	if (run)
		fclose(run);
	cli_app_release(&app);
	if (temp) {
		struct sbuf cmd = SBUF_INIT;

		sbuf_addf(&cmd, "rm -rf '%s'", tmp);
		if (system(cmd.buf) != 0)
			fprintf(stderr, "ragd eval: could not remove '%s'\n", tmp);
		sbuf_release(&cmd);
	}
	dataset_release(&ds);
	sbuf_release(&index_json);
	return rc;
}
