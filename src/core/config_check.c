/*
 * The checks of a config that relate settings to each other or to a set of
 * names (backends, policies, environments), after config_validate() found
 * each value within its own range. Split from config.c, which holds the
 * key table and how values are read.
 */
#include "core/config.h"

#include <stdbool.h>
#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

static bool valid_read_pref(const char *s)
{
	static const char *const names[] = { "primary", "primaryPreferred", "secondary",
					     "secondaryPreferred", "nearest" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

int config_check_relations(const struct config *cfg, struct rag_err *err)
{
	if (strcmp(cfg->models.remote.policy, "round_robin") != 0 &&
	    strcmp(cfg->models.remote.policy, "hash") != 0 &&
	    strcmp(cfg->models.remote.policy, "least_inflight") != 0)
		return rag_err_set(err, RAG_EINVAL, "models.remote.policy",
				   "models.remote.policy: '%s' is not one of round_robin, hash, "
				   "least_inflight", cfg->models.remote.policy);
	if ((strcmp(cfg->models.embedder, "remote") == 0 ||
	     strcmp(cfg->models.generator, "remote") == 0) && !cfg->models.remote.urls[0])
		return rag_err_set(err, RAG_EINVAL, "models.remote.urls",
				   "models.remote.urls: a model is 'remote' but no instance URL is "
				   "given");
	if (strncmp(cfg->chroma.url, "http://", 7) != 0 && strncmp(cfg->chroma.url, "https://", 8) != 0)
		return rag_err_set(err, RAG_EINVAL, "chroma.url",
				   "chroma.url: '%s' must start with http:// or https://",
				   cfg->chroma.url);
	if (cfg->replication.max_backoff_ms < cfg->replication.poll_ms)
		return rag_err_set(err, RAG_EINVAL, "replication.max_backoff_ms",
				   "replication.max_backoff_ms: %d is less than replication.poll_ms "
				   "(%d)", cfg->replication.max_backoff_ms, cfg->replication.poll_ms);
	if (cfg->rag.max_tokens > cfg->limits.max_tokens)
		return rag_err_set(err, RAG_EINVAL, "rag.max_tokens",
				   "rag.max_tokens: %d is over limits.max_tokens (%d)",
				   cfg->rag.max_tokens, cfg->limits.max_tokens);
	if (cfg->rag.top_k > cfg->limits.max_top_k)
		return rag_err_set(err, RAG_EINVAL, "rag.top_k",
				   "rag.top_k: %d is over limits.max_top_k (%d)", cfg->rag.top_k,
				   cfg->limits.max_top_k);
	if (cfg->chunking.overlap >= cfg->chunking.size)
		return rag_err_set(err, RAG_EINVAL, "chunking.overlap",
				   "chunking.overlap: %d must be less than chunking.size (%d)",
				   cfg->chunking.overlap, cfg->chunking.size);
	if (strcmp(cfg->cache.backend, "none") != 0 && strcmp(cfg->cache.backend, "lru") != 0 &&
	    strcmp(cfg->cache.backend, "redis") != 0 &&
	    strcmp(cfg->cache.backend, "redis-cluster") != 0 &&
	    strcmp(cfg->cache.backend, "two-level") != 0)
		return rag_err_set(err, RAG_EINVAL, "cache.backend",
				   "cache.backend: '%s' is not one of none, lru, redis, redis-cluster, "
				   "two-level", cfg->cache.backend);
	if (strcmp(cfg->store.backend, "sqlite") != 0 && strcmp(cfg->store.backend, "mongodb") != 0)
		return rag_err_set(err, RAG_EINVAL, "store.backend",
				   "store.backend: '%s' is not one of sqlite, mongodb",
				   cfg->store.backend);
	if (!valid_read_pref(cfg->store.mongodb.read_preference))
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.read_preference",
				   "store.mongodb.read_preference: '%s' is not one of primary,"
				   " primaryPreferred, secondary, secondaryPreferred, nearest",
				   cfg->store.mongodb.read_preference);
	if (strcmp(cfg->store.backend, "mongodb") == 0 && !cfg->store.mongodb.uri[0] &&
	    !cfg->store.mongodb.uri_file[0])
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.uri",
				   "store.mongodb.uri: store.backend is 'mongodb' but neither"
				   " store.mongodb.uri (RAGD_MONGODB_URI) nor store.mongodb.uri_file"
				   " is set");
	if (cfg->store.mongodb.min_pool_size > cfg->store.mongodb.max_pool_size)
		return rag_err_set(err, RAG_EINVAL, "store.mongodb.min_pool_size",
				   "store.mongodb.min_pool_size: %d is over max_pool_size (%d)",
				   cfg->store.mongodb.min_pool_size, cfg->store.mongodb.max_pool_size);
	if (!cfg->server.tls_cert[0] != !cfg->server.tls_key[0])
		return rag_err_set(err, RAG_EINVAL, cfg->server.tls_cert[0] ? "server.tls_key"
									    : "server.tls_cert",
				   "server.tls_cert and server.tls_key: give both (HTTPS) or neither");
	if (strcmp(cfg->environment, "development") != 0 &&
	    strcmp(cfg->environment, "production") != 0)
		return rag_err_set(err, RAG_EINVAL, "environment",
				   "environment: '%s' is not one of development, production",
				   cfg->environment);
	return 0;
}
