/*
 * The engine's metrics: ingest counters updated on the ingest path, and a
 * collector that reads each collection's index size and change-log lag at
 * scrape time (cheaper than tracking them: one seq read per collection per
 * scrape).
 */
#include "rag/rag_int.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/hashmap.h"
#include "core/sbuf.h"
#include "index/vindex.h"
#include "obs/metrics.h"

#include "core/banned.h"

struct rag_ingest_metrics rag_metrics;

static pthread_once_t once = PTHREAD_ONCE_INIT;

int64_t rag_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void register_families(void)
{
	rag_metrics.documents = metric_default(metrics_counter(
		"ragd_ingest_documents_total", "Documents stored (new or replaced)", NULL));
	rag_metrics.chunks = metric_default(
		metrics_counter("ragd_ingest_chunks_total", "Chunks embedded and stored", NULL));
	rag_metrics.bytes = metric_default(
		metrics_counter("ragd_ingest_bytes_total", "Bytes of document text stored", NULL));
	rag_metrics.failures = metric_default(metrics_counter(
		"ragd_ingest_failures_total", "Documents refused or failed; nothing stored", NULL));
	rag_metrics.embedded = metric_default(metrics_counter(
		"ragd_embed_texts_total",
		"Chunks sent to the embedder at ingest and by model or chunker changes (the others"
		" reused a stored vector)", NULL));
	rag_metrics.unchanged = metric_default(metrics_counter(
		"ragd_ingest_unchanged_documents_total",
		"Upserts skipped because the document's content hash had not changed", NULL));
}

static void label(struct sbuf *out, const char *name, const char *collection)
{
	sbuf_addf(out, "%s{collection=\"", name);
	for (const char *p = collection; *p; p++) {
		if (*p == '\\' || *p == '"')
			sbuf_addch(out, '\\');
		sbuf_addch(out, *p);
	}
	sbuf_addstr(out, "\"} ");
}

static void collect(void *ctx, struct sbuf *out)
{
	static const char *const names[4] = { "ragd_index_vectors", "ragd_index_memory_bytes",
					      "ragd_changelog_lag_seq",
					      "ragd_changelog_lag_seconds" };
	static const char *const helps[4] = {
		"Vectors in this instance's index of the collection",
		"Memory the collection's index takes, in bytes",
		"Changes in the store not yet applied to this instance's index",
		"Seconds since this instance's index last matched the store (0 when it does)",
	};
	struct rag_engine *eng = ctx;
	struct sbuf lines[4] = { SBUF_INIT, SBUF_INIT, SBUF_INIT, SBUF_INIT };
	struct hashmap_iter it;
	const char *key;
	void *val;
	int64_t now = rag_wall_ms();

	pthread_rwlock_rdlock(&eng->lock);
	hashmap_iter_init(&it, eng->colls);
	while (hashmap_iter_next(&it, &key, &val)) {
		struct rag_coll *coll = val;
		const char *name = coll->c.name;
		int64_t seq = 0, applied = atomic_load(&coll->applied_seq);
		int64_t lag, lag_ms;

		if (!coll->vi || strcmp(coll->c.tenant, STORE_DEFAULT_TENANT) != 0)
			continue;
		if (store_collection_seq(eng->store, coll->c.id, &seq, NULL) < 0)
			seq = applied;
		lag = seq > applied ? seq - applied : 0;
		lag_ms = lag ? now - atomic_load(&coll->caught_up_ms) : 0;
		label(&lines[0], names[0], name);
		sbuf_addf(&lines[0], "%zu\n", vindex_count(coll->vi));
		label(&lines[1], names[1], name);
		sbuf_addf(&lines[1], "%zu\n", vindex_memory(coll->vi));
		label(&lines[2], names[2], name);
		sbuf_addf(&lines[2], "%lld\n", (long long)lag);
		label(&lines[3], names[3], name);
		sbuf_addf(&lines[3], "%.3f\n", lag_ms > 0 ? (double)lag_ms / 1000.0 : 0.0);
	}
	pthread_rwlock_unlock(&eng->lock);
	for (int i = 0; i < 4; i++) {
		sbuf_addf(out, "# HELP %s %s\n# TYPE %s gauge\n", names[i], helps[i], names[i]);
		sbuf_add(out, lines[i].buf, lines[i].len);
		sbuf_release(&lines[i]);
	}
}

int rag_metrics_attach(struct rag_engine *eng)
{
	pthread_once(&once, register_families);
	return metrics_add_collector(collect, eng);
}

void rag_metrics_detach(struct rag_engine *eng)
{
	metrics_remove_collector(collect, eng);
}
