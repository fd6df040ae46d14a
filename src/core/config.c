/*
 * Configuration: one descriptor table, one setter.
 *
 * Each setting is a row of `keys[]`: dotted key, type, offset into struct
 * config, and range. Every source (YAML file, environment, flags) reduces to
 * (key, text value, source) and calls config_set(), which finds the row,
 * parses the text by type and range-checks it; so parsing, ranges and
 * error messages cannot drift between sources, and adding a setting is one
 * row plus a struct field. Environment names and the JSON dump are derived
 * from the same rows.
 *
 * The YAML file is read in config_yaml.c, the one place that sees libyaml.
 *
 * Unknown keys in a file are errors (a typo must not silently fall back to
 * a default); unknown RAGD_* environment variables only warn, because
 * platforms set their own (Kubernetes service links, CI variables).
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/banned.h"

#define CONFIG_KEY_MAX 64    /* longest dotted key: matches RAG_ERR_FIELD_MAX */
#define KIB 1024LL

enum type { T_STR, T_STR0, T_INT, T_SIZE, T_BOOL, T_LEVEL, T_DOUBLE }; /* T_STR0: may be empty */

struct key {
	const char *key;
	enum type type;
	size_t offset;
	long long min, max; /* inclusive, for T_INT and T_SIZE */
};

#define F(field) offsetof(struct config, field)

static const struct key keys[] = {
	{ "data_dir", T_STR, F(data_dir), 0, 0 },
	{ "server.host", T_STR, F(server.host), 0, 0 },
	{ "server.port", T_INT, F(server.port), 1, 65535 },
	{ "server.threads", T_INT, F(server.threads), 0, 256 },
	{ "server.max_body_bytes", T_SIZE, F(server.max_body_bytes), KIB, 4 * KIB * KIB * KIB },
	{ "server.max_connections", T_INT, F(server.max_connections), 1, 1000000 },
	{ "server.connection_timeout_s", T_INT, F(server.connection_timeout_s), 1, 86400 },
	{ "server.workers", T_INT, F(server.workers), 0, 256 },
	{ "server.shutdown_timeout_s", T_INT, F(server.shutdown_timeout_s), 0, 3600 },
	{ "server.memory_limit_bytes", T_SIZE, F(server.memory_limit_bytes), 0,
	  1024 * KIB * KIB * KIB * KIB },
	{ "server.tls_cert", T_STR0, F(server.tls_cert), 0, 0 },
	{ "server.tls_key", T_STR0, F(server.tls_key), 0, 0 },
	{ "environment", T_STR, F(environment), 0, 0 },
	{ "limits.max_top_k", T_INT, F(limits.max_top_k), 1, 100000 },
	{ "limits.max_tokens", T_INT, F(limits.max_tokens), 1, 131072 },
	{ "limits.max_json_depth", T_INT, F(limits.max_json_depth), 2, 1000 },
	{ "limits.max_json_elements", T_INT, F(limits.max_json_elements), 16, 100000000 },
	{ "limits.max_header_bytes", T_SIZE, F(limits.max_header_bytes), 4 * KIB, 16 * KIB * KIB },
	{ "limits.search_timeout_ms", T_INT, F(limits.search_timeout_ms), 0, 3600000 },
	{ "limits.ingest_timeout_ms", T_INT, F(limits.ingest_timeout_ms), 0, 3600000 },
	{ "log.level", T_LEVEL, F(log.level), 0, 0 },
	{ "log.access", T_BOOL, F(log.access), 0, 0 },
	{ "log.file", T_STR, F(log.file), 0, 0 },
	{ "models.embedder", T_STR, F(models.embedder), 0, 0 },
	{ "models.embedders", T_STR, F(models.embedders), 0, 0 },
	{ "models.embed_batch", T_INT, F(models.embed_batch), 1, 4096 },
	{ "models.embed_threads", T_INT, F(models.embed_threads), 0, 256 },
	{ "models.embed_contexts", T_INT, F(models.embed_contexts), 0, 256 },
	{ "models.generator", T_STR0, F(models.generator), 0, 0 },
	{ "models.gen_contexts", T_INT, F(models.gen_contexts), 1, 64 },
	{ "models.gen_queue", T_INT, F(models.gen_queue), 0, 100000 },
	{ "models.gen_threads", T_INT, F(models.gen_threads), 0, 256 },
	{ "models.gen_ctx", T_INT, F(models.gen_ctx), 0, 131072 },
	{ "models.dir", T_STR, F(models.dir), 0, 0 },
	{ "models.cache_capacity", T_INT, F(models.cache_capacity), 1, 1000 },
	{ "models.micro_batch", T_BOOL, F(models.micro_batch), 0, 0 },
	{ "models.micro_batch_window_us", T_INT, F(models.micro_batch_window_us), 0, 1000000 },
	{ "models.remote.urls", T_STR0, F(models.remote.urls), 0, 0 },
	{ "models.remote.policy", T_STR, F(models.remote.policy), 0, 0 },
	{ "models.remote.embed_model", T_STR, F(models.remote.embed_model), 0, 0 },
	{ "models.remote.chat_model", T_STR, F(models.remote.chat_model), 0, 0 },
	{ "models.remote.n_ctx", T_INT, F(models.remote.n_ctx), 256, 1 << 22 },
	{ "models.remote.max_tokens", T_INT, F(models.remote.max_tokens), 8, 1 << 20 },
	{ "models.remote.connect_timeout_ms", T_INT, F(models.remote.connect_timeout_ms), 1,
	  600000 },
	{ "models.remote.timeout_ms", T_INT, F(models.remote.timeout_ms), 1, 3600000 },
	{ "models.remote.deadline_ms", T_INT, F(models.remote.deadline_ms), 1, 3600000 },
	{ "models.remote.health_interval_ms", T_INT, F(models.remote.health_interval_ms), 0,
	  3600000 },
	{ "models.remote.health_path", T_STR, F(models.remote.health_path), 0, 0 },
	{ "models.remote.eject_after", T_INT, F(models.remote.eject_after), 1, 1000 },
	{ "models.remote.api_key_env", T_STR0, F(models.remote.api_key_env), 0, 0 },
	{ "rag.prompt_template", T_STR0, F(rag.prompt_template), 0, 0 },
	{ "rag.min_score", T_DOUBLE, F(rag.min_score), -1, 1 },
	{ "rag.top_k", T_INT, F(rag.top_k), 1, 100 },
	{ "rag.max_tokens", T_INT, F(rag.max_tokens), 1, 8192 },
	{ "rag.history_messages", T_INT, F(rag.history_messages), 0, 100 },
	{ "rag.timeout_ms", T_INT, F(rag.timeout_ms), 0, 3600000 },
	{ "chunking.size", T_INT, F(chunking.size), 8, 8192 },
	{ "chunking.overlap", T_INT, F(chunking.overlap), 0, 4096 },
	{ "index.snapshot", T_BOOL, F(index.snapshot), 0, 0 },
	{ "replication.poll_ms", T_INT, F(replication.poll_ms), 10, 600000 },
	{ "replication.max_backoff_ms", T_INT, F(replication.max_backoff_ms), 10, 600000 },
	{ "replication.redis_url", T_STR0, F(replication.redis_url), 0, 0 },
	{ "replication.redis_channel", T_STR, F(replication.redis_channel), 0, 0 },
	{ "cache.backend", T_STR, F(cache.backend), 0, 0 },
	{ "cache.lru_bytes", T_SIZE, F(cache.lru_bytes), 0, 1024 * KIB * KIB * KIB * KIB },
	{ "cache.ttl_s", T_INT, F(cache.ttl_s), 1, 30 * 86400 },
	{ "cache.embedding_ttl_s", T_INT, F(cache.embedding_ttl_s), 1, 30 * 86400 },
	{ "cache.redis.url", T_STR, F(cache.redis_url), 0, 0 },
	{ "cache.redis.timeout_ms", T_INT, F(cache.redis_timeout_ms), 1, 60000 },
	{ "cache.redis.pool_size", T_INT, F(cache.redis_pool_size), 1, 1024 },
	{ "cache.http_max_age_s", T_INT, F(cache.http_max_age_s), 0, 86400 },
	{ "chroma.url", T_STR, F(chroma.url), 0, 0 },
	{ "chroma.tenant", T_STR, F(chroma.tenant), 0, 0 },
	{ "chroma.database", T_STR, F(chroma.database), 0, 0 },
	{ "chroma.timeout_ms", T_INT, F(chroma.timeout_ms), 100, 600000 },
	{ "chroma.connect_timeout_ms", T_INT, F(chroma.connect_timeout_ms), 10, 60000 },
	{ "ingest.max_file_bytes", T_SIZE, F(ingest.max_file_bytes), KIB, 4 * KIB * KIB * KIB },
	{ "ingest.root", T_STR, F(ingest.root), 0, 0 },
	{ "ingest.job_workers", T_INT, F(ingest.job_workers), 0, 64 },
	{ "ingest.job_lease_ms", T_INT, F(ingest.job_lease_ms), 100, 3600000 },
	{ "store.backend", T_STR, F(store.backend), 0, 0 },
	{ "store.mongodb.uri", T_STR0, F(store.mongodb.uri), 0, 0 },
	{ "store.mongodb.uri_file", T_STR0, F(store.mongodb.uri_file), 0, 0 },
	{ "store.mongodb.database", T_STR0, F(store.mongodb.database), 0, 0 },
	{ "store.mongodb.username", T_STR0, F(store.mongodb.username), 0, 0 },
	{ "store.mongodb.password_file", T_STR0, F(store.mongodb.password_file), 0, 0 },
	{ "store.mongodb.max_pool_size", T_INT, F(store.mongodb.max_pool_size), 1, 1024 },
	{ "store.mongodb.min_pool_size", T_INT, F(store.mongodb.min_pool_size), 0, 1024 },
	{ "store.mongodb.max_idle_time_ms", T_INT, F(store.mongodb.max_idle_time_ms), 0, 86400000 },
	{ "store.mongodb.server_selection_timeout_ms", T_INT,
	  F(store.mongodb.server_selection_timeout_ms), 1, 600000 },
	{ "store.mongodb.connect_timeout_ms", T_INT, F(store.mongodb.connect_timeout_ms), 1,
	  600000 },
	{ "store.mongodb.socket_timeout_ms", T_INT, F(store.mongodb.socket_timeout_ms), 1,
	  3600000 },
	{ "store.mongodb.heartbeat_frequency_ms", T_INT, F(store.mongodb.heartbeat_frequency_ms),
	  500, 600000 },
	{ "store.mongodb.read_preference", T_STR, F(store.mongodb.read_preference), 0, 0 },
	{ "store.mongodb.write_majority", T_BOOL, F(store.mongodb.write_majority), 0, 0 },
	{ "store.mongodb.lock_lease_ms", T_INT, F(store.mongodb.lock_lease_ms), 100, 3600000 },
	{ "store.mongodb.lock_timeout_ms", T_INT, F(store.mongodb.lock_timeout_ms), 0, 600000 },
	{ "auth.enabled", T_BOOL, F(auth.enabled), 0, 0 },
	{ "auth.keys", T_STR0, F(auth.keys), 0, 0 },
	{ "auth.key_cache_s", T_INT, F(auth.key_cache_s), 1, 3600 },
	{ "auth.requests_per_s", T_DOUBLE, F(auth.requests_per_s), 0, 1000000 },
	{ "auth.burst", T_INT, F(auth.burst), 0, 1000000 },
	{ "auth.ingest_bytes_per_day", T_SIZE, F(auth.ingest_bytes_per_day), 0,
	  1024 * KIB * KIB * KIB * KIB },
	{ "auth.tokens_per_day", T_SIZE, F(auth.tokens_per_day), 0, 1000000000000LL },
	{ "auth.quota_redis_url", T_STR0, F(auth.quota_redis_url), 0, 0 },
	{ "auth.quota_redis_timeout_ms", T_INT, F(auth.quota_redis_timeout_ms), 1, 60000 },
	{ "cors.allowed_origins", T_STR0, F(cors.allowed_origins), 0, 0 },
	{ "cors.allowed_headers", T_STR, F(cors.allowed_headers), 0, 0 },
	{ "cors.allowed_methods", T_STR, F(cors.allowed_methods), 0, 0 },
	{ "cors.max_age_s", T_INT, F(cors.max_age_s), 0, 86400 },
	{ "sharding.shards", T_INT, F(sharding.shards), 0, 64 },
	{ "sharding.holds", T_STR0, F(sharding.holds), 0, 0 },
	{ "sharding.ordinal", T_INT, F(sharding.ordinal), -1, 1000000 },
	{ "sharding.peers", T_STR0, F(sharding.peers), 0, 0 },
	{ "sharding.peer_pattern", T_STR0, F(sharding.peer_pattern), 0, 0 },
	{ "sharding.instances", T_INT, F(sharding.instances), 0, 256 },
	{ "sharding.vnodes", T_INT, F(sharding.vnodes), 1, 4096 },
	{ "sharding.timeout_ms", T_INT, F(sharding.timeout_ms), 10, 600000 },
	{ "sharding.backoff_ms", T_INT, F(sharding.backoff_ms), 0, 3600000 },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct {
	const char *env;
	const char *key;
} aliases[] = {
	{ "RAGD_PORT", "server.port" },
	{ "RAGD_DATA_DIR", "data_dir" },
	{ "RAGD_MONGODB_URI", "store.mongodb.uri" }, /* the name Kubernetes secrets are mapped to */
	{ "RAGD_SHARD_ORDINAL", "sharding.ordinal" },
	{ "RAGD_WORKERS", "server.workers" },
	{ "RAGD_SERVER_KEEP_ALIVE_TIMEOUT_S", "server.connection_timeout_s" },
	{ "RAGD_INDEX_FOLLOW_INTERVAL_MS", "replication.poll_ms" },
};

/* Other spellings a file or --set may use: the and older releases' names. */
static const struct {
	const char *name;
	const char *key;
} renamed[] = {
	{ "workers", "server.workers" },
	{ "server.keep_alive_timeout_s", "server.connection_timeout_s" },
	{ "index.follow_interval_ms", "replication.poll_ms" },
};

struct config *config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->data_dir = strdup("./data");
	cfg->server.host = strdup("127.0.0.1");
	cfg->server.port = 8080;
	cfg->server.threads = 0;
	cfg->server.max_body_bytes = 16 * KIB * KIB;
	cfg->server.max_connections = 1000;
	cfg->server.connection_timeout_s = 120;
	cfg->server.shutdown_timeout_s = 30;
	cfg->environment = strdup("development");
	cfg->log.access = true;
	cfg->log.file = strdup("-");
	cfg->limits.max_top_k = 1000;
	cfg->limits.max_tokens = 4096;       /* a long answer; rag.timeout_ms bounds its time */
	cfg->limits.max_json_depth = 32;     /* request bodies are flat; a filter needs ~18 */
	cfg->limits.max_json_elements = 100000; /* ~10 MiB once parsed; a 2048-input embed fits */
	cfg->limits.max_header_bytes = 64 * KIB; /* request line and headers of one request */
	cfg->limits.search_timeout_ms = 10000;  /* a search that takes longer has failed */
	cfg->limits.ingest_timeout_ms = 300000; /* one synchronous document, embedding included */
	cfg->log.level = LOG_LEVEL_INFO;
	cfg->models.embedder = strdup("models/all-MiniLM-L6-v2.gguf");
	cfg->models.embed_batch = 32;
	cfg->models.generator = strdup("models/SmolLM2-135M-Instruct-Q4_1.gguf");
	cfg->models.gen_contexts = 1;
	cfg->models.gen_queue = 16;
	cfg->models.gen_ctx = 2048;
	cfg->rag.prompt_template = strdup("");
	cfg->rag.min_score = 0.25;
	cfg->rag.top_k = 5;
	cfg->rag.max_tokens = 256;
	cfg->rag.history_messages = 6;
	cfg->rag.timeout_ms = 60000;
	cfg->models.remote.chat_model = strdup("SmolLM2-135M-Instruct-Q4_1");
	cfg->models.remote.n_ctx = 8192;
	cfg->models.dir = strdup("models");
	cfg->models.cache_capacity = 10;
	cfg->models.micro_batch = true;
	cfg->models.micro_batch_window_us = 2000;
	cfg->models.remote.urls = strdup("");
	cfg->models.remote.policy = strdup("round_robin");
	cfg->models.remote.embed_model = strdup("all-MiniLM-L6-v2");
	cfg->models.remote.max_tokens = 512;
	cfg->models.remote.connect_timeout_ms = 1000;
	cfg->models.remote.timeout_ms = 30000;
	cfg->models.remote.deadline_ms = 60000;
	cfg->models.remote.health_interval_ms = 1000;
	cfg->models.remote.health_path = strdup("/health");
	cfg->models.remote.eject_after = 2;
	cfg->models.remote.api_key_env = strdup("OPENAI_API_KEY");
	cfg->chunking.size = 128;
	cfg->chunking.overlap = 16;
	cfg->index.snapshot = true;
	cfg->server.workers = 1;
	cfg->replication.poll_ms = 100;
	cfg->replication.max_backoff_ms = 1000;
	cfg->replication.redis_url = strdup("");
	cfg->replication.redis_channel = strdup("ragd:changes");
	cfg->cache.backend = strdup("lru");
	cfg->cache.lru_bytes = 64 * KIB * KIB;
	cfg->cache.ttl_s = 3600;
	cfg->cache.embedding_ttl_s = 86400;
	cfg->cache.redis_url = strdup("redis://127.0.0.1:6379");
	cfg->cache.redis_timeout_ms = 100;
	cfg->cache.redis_pool_size = 8;
	cfg->chroma.url = strdup("http://127.0.0.1:8000");
	cfg->chroma.tenant = strdup("default_tenant");
	cfg->chroma.database = strdup("default_database");
	cfg->chroma.timeout_ms = 30000;
	cfg->chroma.connect_timeout_ms = 2000;
	cfg->ingest.max_file_bytes = 64 * KIB * KIB;
	cfg->ingest.root = strdup("");
	cfg->models.embedders = strdup("");
	cfg->ingest.job_workers = 1;
	cfg->ingest.job_lease_ms = 30000;
	cfg->store.backend = strdup("sqlite");
	cfg->store.mongodb.uri = strdup("");
	cfg->store.mongodb.uri_file = strdup("");
	cfg->store.mongodb.database = strdup("");
	cfg->store.mongodb.username = strdup("");
	cfg->store.mongodb.password_file = strdup("");
	cfg->store.mongodb.max_pool_size = 100;
	cfg->store.mongodb.min_pool_size = 0;
	cfg->store.mongodb.max_idle_time_ms = 30000;
	cfg->store.mongodb.server_selection_timeout_ms = 5000;
	cfg->store.mongodb.connect_timeout_ms = 10000;
	cfg->store.mongodb.socket_timeout_ms = 20000;
	cfg->store.mongodb.heartbeat_frequency_ms = 10000;
	cfg->store.mongodb.read_preference = strdup("primary");
	cfg->store.mongodb.write_majority = true;
	cfg->store.mongodb.lock_lease_ms = 30000;
	cfg->store.mongodb.lock_timeout_ms = 10000;
	if (!cfg->store.backend || !cfg->store.mongodb.uri || !cfg->store.mongodb.uri_file ||
	    !cfg->store.mongodb.database || !cfg->store.mongodb.username ||
	    !cfg->store.mongodb.password_file || !cfg->store.mongodb.read_preference) {
		config_free(cfg);
		return NULL;
	}
	cfg->server.tls_cert = strdup("");
	cfg->server.tls_key = strdup("");
	cfg->auth.keys = strdup("");
	cfg->auth.key_cache_s = 10;
	cfg->auth.quota_redis_url = strdup("");
	cfg->auth.quota_redis_timeout_ms = 50;
	cfg->cors.allowed_origins = strdup("");
	cfg->cors.allowed_headers = strdup("Authorization, Content-Type, X-Request-ID");
	cfg->cors.allowed_methods = strdup("GET, POST, PATCH, DELETE, OPTIONS");
	cfg->cors.max_age_s = 600;
	if (!cfg->server.tls_cert || !cfg->server.tls_key || !cfg->auth.keys ||
	    !cfg->auth.quota_redis_url ||
	    !cfg->cors.allowed_origins || !cfg->cors.allowed_headers ||
	    !cfg->cors.allowed_methods) {
		config_free(cfg);
		return NULL;
	}
	cfg->sharding.holds = strdup("");
	cfg->sharding.ordinal = -1;
	cfg->sharding.peers = strdup("");
	cfg->sharding.peer_pattern = strdup("");
	cfg->sharding.vnodes = 160;
	cfg->sharding.timeout_ms = 2000;
	cfg->sharding.backoff_ms = 2000;
	if (!cfg->data_dir || !cfg->server.host || !cfg->models.embedder || !cfg->environment ||
	    !cfg->log.file || !cfg->cache.backend || !cfg->cache.redis_url ||
	    !cfg->models.generator || !cfg->rag.prompt_template ||
	    !cfg->models.dir || !cfg->models.remote.chat_model || !cfg->models.remote.urls ||
	    !cfg->models.remote.policy || !cfg->models.remote.embed_model ||
	    !cfg->models.remote.health_path || !cfg->models.remote.api_key_env ||
	    !cfg->chroma.url || !cfg->chroma.tenant || !cfg->chroma.database ||
	    !cfg->ingest.root || !cfg->models.embedders || !cfg->replication.redis_url ||
	    !cfg->replication.redis_channel || !cfg->sharding.holds ||
	    !cfg->sharding.peers || !cfg->sharding.peer_pattern) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].type == T_STR || keys[i].type == T_STR0)
			free(*(char **)((char *)cfg + keys[i].offset));
	free(cfg);
}

static const struct key *find_key(const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].key, key) == 0)
			return &keys[i];
	for (size_t i = 0; i < sizeof(renamed) / sizeof(renamed[0]); i++)
		if (strcmp(renamed[i].name, key) == 0)
			return find_key(renamed[i].key);
	return NULL;
}

/* Edit distance capped at 3, for "did you mean" on unknown keys. */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[CONFIG_KEY_MAX + 1];

	if (la > CONFIG_KEY_MAX || lb > CONFIG_KEY_MAX)
		return 3;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0], best;

		row[0] = (int)i;
		best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j], v = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			diag = up;
			row[j] = v;
			if (v < best)
				best = v;
		}
		if (best >= 3)
			return 3;
	}
	return row[lb];
}

static int unknown_key(const char *key, const char *source, struct rag_err *err)
{
	const char *near = NULL;
	int best = 3;

	for (size_t i = 0; i < N_KEYS; i++) {
		int d = distance(key, keys[i].key);

		if (d < best) {
			best = d;
			near = keys[i].key;
		}
	}
	if (near)
		return rag_err_set(err, RAG_EINVAL, key, "unknown key '%s' in %s (did you mean '%s'?)",
				   key, source, near);
	return rag_err_set(err, RAG_EINVAL, key, "unknown key '%s' in %s", key, source);
}

/* Strict decimal: optional sign and digits, nothing else. */
static int parse_ll(const char *s, long long *out)
{
	const char *digits = s[0] == '-' || s[0] == '+' ? s + 1 : s;
	char *end;

	if (!isdigit((unsigned char)digits[0]))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* Bytes, or a number with a binary k/m/g suffix: 16m, 16M, 16MB, 16MiB. */
static int parse_size(const char *s, long long *out)
{
	long long n, mult = 1;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	while (*end == ' ')
		end++;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'k': mult = KIB; break;
		case 'm': mult = KIB * KIB; break;
		case 'g': mult = KIB * KIB * KIB; break;
		default: return -1;
		}
		end++;
		if (strcasecmp(end, "") != 0 && strcasecmp(end, "b") != 0 && strcasecmp(end, "ib") != 0)
			return -1;
	}
	if (__builtin_mul_overflow(n, mult, out))
		return -1;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int config_set(struct config *cfg, const char *key, const char *value, const char *source,
	       struct rag_err *err)
{
	const struct key *k = find_key(key);
	void *field;
	long long n;
	bool b;
	int level;
	double d;
	char *s, *end;

	if (!source)
		source = "unknown source";
	if (!k)
		return unknown_key(key, source, err);
	field = (char *)cfg + k->offset;
	switch (k->type) {
	case T_STR:
	case T_STR0:
		s = strdup(value);
		if (!s)
			return rag_err_set(err, RAG_ENOMEM, key, "%s: out of memory", key);
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	case T_INT:
	case T_SIZE:
		if ((k->type == T_INT ? parse_ll(value, &n) : parse_size(value, &n)) != 0)
			return rag_err_set(err, RAG_EINVAL, key, "%s: '%s' is not %s (%s)", key, value,
					   k->type == T_INT ? "an integer" :
							      "a size (bytes, or a k/m/g suffix as in 16m)",
					   source);
		if (n < k->min || n > k->max)
			return rag_err_set(err, RAG_EINVAL, key, "%s: %s is out of range %lld..%lld (%s)",
					   key, value, k->min, k->max, source);
		if (k->type == T_INT)
			*(int *)field = (int)n;
		else
			*(size_t *)field = (size_t)n;
		return 0;
	case T_BOOL:
		if (parse_bool(value, &b) != 0)
			return rag_err_set(err, RAG_EINVAL, key,
					   "%s: '%s' is not a boolean (true or false) (%s)", key, value,
					   source);
		*(bool *)field = b;
		return 0;
	case T_DOUBLE:
		errno = 0;
		d = strtod(value, &end);
		if (errno || end == value || *end || d != d)
			return rag_err_set(err, RAG_EINVAL, key, "%s: '%s' is not a number (%s)", key,
					   value, source);
		if (d < (double)k->min || d > (double)k->max)
			return rag_err_set(err, RAG_EINVAL, key, "%s: %s is out of range %lld..%lld (%s)",
					   key, value, k->min, k->max, source);
		*(double *)field = d;
		return 0;
	case T_LEVEL:
		if (log_level_parse(value, &level) != 0)
			return rag_err_set(err, RAG_EINVAL, key,
					   "%s: '%s' is not one of debug, info, warn, error (%s)", key,
					   value, source);
		*(int *)field = level;
		return 0;
	}
	return rag_err_set(err, RAG_EINTERNAL, key, "%s: bad descriptor", key);
}

/* RAGD_ + key in upper snake case: server.port -> RAGD_SERVER_PORT. */
static void env_name(const char *key, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "RAGD_");

	for (; *key && n + 1 < size; key++)
		out[n++] = *key == '.' ? '_' : (char)toupper((unsigned char)*key);
	out[n] = '\0';
}

/* Splits "NAME=value": the name's length, or 0 when there is no '='. */
static size_t env_split(const char *entry, const char **value)
{
	const char *eq = strchr(entry, '=');

	if (!eq)
		return 0;
	*value = eq + 1;
	return (size_t)(eq - entry);
}

static int apply_one_env(struct config *cfg, const char *key, const char *name, size_t name_len,
			 const char *value, struct rag_err *err)
{
	char source[96];

	snprintf(source, sizeof(source), "env %.*s", (int)name_len, name);
	return config_set(cfg, key, value, source, err);
}

/* RAGD_* names that are not settings but are expected: the config file
 * path and what Kubernetes injects for a Service named "ragd". */
static bool quiet_env(const char *entry)
{
	return strncmp(entry, "RAGD_CONFIG=", 12) == 0 || strncmp(entry, "RAGD_SERVICE_", 13) == 0 ||
	       strncmp(entry, "RAGD_PORT_", 10) == 0;
}

int config_apply_env(struct config *cfg, char *const *envp, struct rag_err *err)
{
	char name[CONFIG_KEY_MAX + 8];
	const char *value = NULL;
	size_t len;
	int rc;

	if (!envp)
		return 0;
	/* Aliases first, so the canonical name wins whatever envp's order. */
	for (char *const *e = envp; *e; e++) {
		len = env_split(*e, &value);
		if (len == 0)
			continue;
		for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
			if (len != strlen(aliases[i].env) || strncmp(*e, aliases[i].env, len) != 0)
				continue;
			if (strncmp(value, "tcp://", 6) == 0 || strncmp(value, "udp://", 6) == 0)
				continue; /* a Kubernetes service link, not a port */
			rc = apply_one_env(cfg, aliases[i].key, *e, len, value, err);
			if (rc)
				return rc;
		}
	}
	for (char *const *e = envp; *e; e++) {
		bool known = false;

		len = env_split(*e, &value);
		if (len <= 5 || strncmp(*e, "RAGD_", 5) != 0)
			continue;
		for (size_t i = 0; i < N_KEYS; i++) {
			env_name(keys[i].key, name, sizeof(name));
			if (len != strlen(name) || strncmp(*e, name, len) != 0)
				continue;
			known = true;
			rc = apply_one_env(cfg, keys[i].key, *e, len, value, err);
			if (rc)
				return rc;
		}
		for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
			if (len == strlen(aliases[i].env) && strncmp(*e, aliases[i].env, len) == 0)
				known = true;
		if (!known && !quiet_env(*e))
			log_warn("ignoring environment variable %.*s: no such setting", (int)len, *e);
	}
	return 0;
}

const char *config_path(const char *flag_path, char *const *envp)
{
	if (flag_path)
		return flag_path;
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "RAGD_CONFIG=", 12) == 0 && (*e)[12])
			return *e + 12;
	return NULL;
}

static int range_error(const struct key *k, long long v, struct rag_err *err)
{
	return rag_err_set(err, RAG_EINVAL, k->key, "%s: %lld is out of range %lld..%lld", k->key,
			   v, k->min, k->max);
}

int config_validate(const struct config *cfg, struct rag_err *err)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		const void *field = (const char *)cfg + k->offset;
		long long v;

		switch (k->type) {
		case T_STR:
			if (!*(char *const *)field ||
			    (!(*(char *const *)field)[0] && strcmp(k->key, "ingest.root") != 0 &&
			     strcmp(k->key, "models.embedders") != 0))
				return rag_err_set(err, RAG_EINVAL, k->key, "%s: must not be empty",
						   k->key);
			break;
		case T_INT:
			v = *(const int *)field;
			if (v < k->min || v > k->max)
				return range_error(k, v, err);
			break;
		case T_SIZE:
			v = (long long)*(const size_t *)field;
			if (v < k->min || v > k->max)
				return range_error(k, v, err);
			break;
		case T_LEVEL:
			v = *(const int *)field;
			if (v < LOG_LEVEL_DEBUG || v > LOG_LEVEL_ERROR)
				return rag_err_set(err, RAG_EINVAL, k->key, "%s: %lld is not a level",
						   k->key, v);
			break;
		case T_BOOL:
		case T_STR0:
			break;
		case T_DOUBLE:
			if (!(*(const double *)field >= (double)k->min &&
			      *(const double *)field <= (double)k->max))
				return rag_err_set(err, RAG_EINVAL, k->key, "%s: out of range %lld..%lld",
						   k->key, k->min, k->max);
			break;
		}
	}
	return config_check_relations(cfg, err);
}

/* Appends a field's value in JSON. */
static void dump_value(struct sbuf *sb, const struct key *k, const void *field)
{
	const char *s;

	switch (k->type) {
	case T_STR:
	case T_STR0:
		s = *(char *const *)field;
		/* A MongoDB URI may carry a password: say whether it is set, never what. */
		if (strcmp(k->key, "store.mongodb.uri") == 0 && *s)
			s = "(set, not shown)";
		/* So may a Redis URL: hide it when it carries credentials. */
		else if (strstr(k->key, "redis") && strchr(s, '@'))
			s = "(set with credentials, not shown)";
		sbuf_add_json_str(sb, s, strlen(s));
		break;
	case T_INT:
		sbuf_addf(sb, "%d", *(const int *)field);
		break;
	case T_SIZE:
		sbuf_addf(sb, "%zu", *(const size_t *)field);
		break;
	case T_DOUBLE:
		sbuf_addf(sb, "%.17g", *(const double *)field);
		break;
	case T_BOOL:
		sbuf_addstr(sb, *(const bool *)field ? "true" : "false");
		break;
	case T_LEVEL:
		s = log_level_name(*(const int *)field);
		sbuf_add_json_str(sb, s, strlen(s));
		break;
	}
}

/* Keys of one section are adjacent in keys[], so one open section at a
 * time is enough to nest them. */
int config_dump_json(const struct config *cfg, struct sbuf *sb)
{
	const char *section = NULL; /* the open section's key, NULL at top level */
	size_t section_len = 0;
	bool first = true; /* nothing written yet in the innermost object */

	sbuf_addch(sb, '{');
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		const char *dot = strchr(k->key, '.');
		size_t len = dot ? (size_t)(dot - k->key) : 0;
		const char *leaf = dot ? dot + 1 : k->key;

		if (section && !(dot && len == section_len && strncmp(section, k->key, len) == 0)) {
			sbuf_addch(sb, '}');
			section = NULL;
			first = false;
		}
		if (dot && !section) {
			if (!first)
				sbuf_addch(sb, ',');
			sbuf_add_json_str(sb, k->key, len);
			sbuf_addstr(sb, ":{");
			section = k->key;
			section_len = len;
			first = true;
		}
		if (!first)
			sbuf_addch(sb, ',');
		sbuf_add_json_str(sb, leaf, strlen(leaf));
		sbuf_addch(sb, ':');
		dump_value(sb, k, (const char *)cfg + k->offset);
		first = false;
	}
	if (section)
		sbuf_addch(sb, '}');
	sbuf_addch(sb, '}');
	return sbuf_error(sb);
}

bool config_key_is_list(const char *key)
{
	return strcmp(key, "auth.keys") == 0 || strcmp(key, "cors.allowed_origins") == 0;
}

bool config_host_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

int config_cpu_count(int configured)
{
	cpu_set_t set;
	long n;

	if (configured > 0)
		return configured;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}
