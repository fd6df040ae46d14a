/*
 * Sharding across instances: which documents this instance indexes, and a
 * dense search that fans out to the instances holding the other shards.
 *
 * A collection's documents are split into n shards by a consistent-hash
 * ring over the document id (core/ring.h). Every instance reads and writes
 * the same store and follows its change log, but its vector index holds
 * only the chunks of documents in the shards it holds. A search on any
 * instance searches its own shards locally and asks one healthy holder of
 * each other shard (POST /v1/internal/shard-search, which searches only
 * the local index and never fans out again) in parallel, within one
 * deadline; a failed holder is put in back-off and the shard retried on
 * another one. A shard no holder answers for fails the search with
 * RAG_EBUSY (HTTP 503): results are complete or not given.
 *
 * Thread-safety: a struct rag_shards is immutable after rag_shards_new
 * except the peers' health, which is atomic; every function may be called
 * from any thread.
 */
#ifndef RAGD_RAG_RAG_SHARD_H
#define RAGD_RAG_RAG_SHARD_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct rag_shards;

#define RAG_SHARD_PATH "/v1/internal/shard-search"

/* Where the shard settings come from (config keys sharding.*). Strings borrowed for the call. */
struct rag_shard_options {
	int n_shards;             /* 0: not sharded (every other field ignored) */
	const char *holds;        /* "0,2": shards this instance indexes; "" = from ordinal */
	int ordinal;              /* >= 0: holds shard ordinal % n_shards; -1: unset */
	/*
	 * The instances and their shards, entries separated by spaces or ';',
	 * each "URL=s,s" (e.g. "http://10.0.0.7:8080=0,1"); this instance may
	 * be among them (it never calls itself for shards it holds).
	 */
	const char *peers;
	/*
	 * Or a pattern with "{i}" and a count: instance i (0..instances - 1)
	 * holds shard i % n_shards, e.g. a StatefulSet behind a headless
	 * Service, "http://ragd-{i}.ragd-headless:8080". Used with peers too.
	 */
	const char *peer_pattern;
	int instances;
	int vnodes;               /* ring points per shard */
	int timeout_ms;           /* the whole fan-out, retries included */
	int backoff_ms;           /* a failed instance is tried last for this long */
};

void rag_shard_default_options(struct rag_shard_options *o);

/*
 * Parses and checks the options. NULL with err set (RAG_EINVAL naming the
 * key, e.g. "sharding.peers": a shard nobody holds, a bad URL) or, with
 * n_shards 0, NULL and err untouched: sharding is off. Free with
 * rag_shards_free.
 */
struct rag_shards *rag_shards_new(const struct rag_shard_options *o, struct rag_err *err);
void rag_shards_free(struct rag_shards *sh);

/* 1 if this instance indexes doc_id's chunks: always with sh NULL. */
int rag_shards_holds(const struct rag_shards *sh, const char *doc_id);

/* The shard of a document id (0 with sh NULL). */
size_t rag_shards_of(const struct rag_shards *sh, const char *doc_id);

/* Number of shards and the held ones as a bit mask (bit s: shard s). */
size_t rag_shards_count(const struct rag_shards *sh);
uint64_t rag_shards_held(const struct rag_shards *sh);

/* 1 when some shard is held elsewhere: searches must fan out. */
int rag_shards_remote(const struct rag_shards *sh);

/*
 * Searches the shards this instance does not hold for the k best vectors
 * of the collection by inner product with vec (dim floats), with the
 * optional filter (a JSON object as the search API takes it), and merges
 * them into ids/scores: on entry *n results (the local shards'), on return
 * the best min(k, all) of both, ordered by score then id, each id once.
 * ids and scores have room for k. authorization (may be NULL) is sent as
 * the Authorization header: the caller's own key, so each peer serves the
 * same tenant (their route takes the tenant from the key). Returns 0, RAG_EBUSY naming the shard
 * when none of its holders answered before the deadline, or RAG_ENOMEM.
 */
int rag_shards_search(struct rag_shards *sh, const char *collection, const float *vec,
		      size_t dim, size_t k, const char *filter_json, const char *authorization,
		      int64_t *ids, float *scores, size_t *n, struct rag_err *err);

#endif
