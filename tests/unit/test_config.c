/*
 * Unit tests for core/config: defaults, YAML files (nested keys, unknown
 * keys, bad types, ranges, syntax errors), environment overrides and
 * aliases, cross-field validation, size suffixes and the JSON dump.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"

/* Writes text to a new temp file; its path goes into path (PATH_LEN bytes). */
#define PATH_LEN 64
static void write_temp(char *path, const char *text)
{
	int fd;

	snprintf(path, PATH_LEN, "/tmp/ragd_test_config_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Loads text as a config file into cfg; returns config_load_file's code. */
static int load_text(struct config *cfg, const char *text, struct rag_err *err, char *path)
{
	int rc;

	write_temp(path, text);
	rc = config_load_file(cfg, path, err);
	unlink(path);
	return rc;
}

static void test_defaults_valid(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_string_equal(cfg->data_dir, "./data");
	assert_string_equal(cfg->server.host, "127.0.0.1");
	assert_int_equal(cfg->server.port, 8080);
	assert_int_equal(cfg->server.threads, 0);
	assert_int_equal(cfg->server.max_body_bytes, 16u << 20);
	assert_int_equal(cfg->server.max_connections, 1000);
	assert_int_equal(cfg->server.connection_timeout_s, 120);
	assert_int_equal(cfg->limits.max_top_k, 1000);
	assert_int_equal(cfg->log.level, LOG_LEVEL_INFO);
	assert_string_equal(cfg->models.embedder, "models/all-MiniLM-L6-v2.gguf");
	assert_int_equal(cfg->models.embed_batch, 32);
	assert_int_equal(cfg->chunking.size, 128);
	assert_int_equal(cfg->chunking.overlap, 16);
	assert_true(cfg->index.snapshot);
	assert_int_equal(cfg->replication.poll_ms, 100);
	assert_int_equal(cfg->replication.max_backoff_ms, 1000);
	assert_string_equal(cfg->replication.redis_url, "");
	assert_string_equal(cfg->replication.redis_channel, "ragd:changes");
	assert_int_equal(cfg->server.workers, 1);
	assert_true(config_cpu_count(0) >= 1);
	assert_int_equal(config_cpu_count(3), 3);
	config_free(cfg);
	config_free(NULL);
}

/* The answer settings: a number type, and strings that may be empty. */
static void test_answer_keys(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	struct sbuf sb = SBUF_INIT;

	(void)state;
	assert_string_equal(cfg->models.generator, "models/SmolLM2-135M-Instruct-Q4_1.gguf");
	assert_true(cfg->rag.min_score > 0.2 && cfg->rag.min_score < 0.3);
	assert_int_equal(config_set(cfg, "models.generator", "", "flag --set", &err), 0);
	assert_int_equal(config_set(cfg, "rag.min_score", "0.4", "flag --set", &err), 0);
	assert_true(cfg->rag.min_score == 0.4);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_set(cfg, "rag.min_score", "1.5", "env RAGD_RAG_MIN_SCORE", &err),
			 RAG_EINVAL);
	assert_string_equal(err.field, "rag.min_score");
	assert_int_equal(config_set(cfg, "rag.min_score", "abc", "x", &err), RAG_EINVAL);
	assert_int_equal(config_set(cfg, "rag.min_score", "nan", "x", &err), RAG_EINVAL);
	assert_int_equal(config_set(cfg, "models.gen_contexts", "0", "x", &err), RAG_EINVAL);
	assert_int_equal(config_dump_json(cfg, &sb), 0);
	assert_non_null(strstr(sb.buf, "\"generator\":\"\""));
	assert_non_null(strstr(sb.buf, "\"rag\":{\"prompt_template\":\"\",\"min_score\":0.4"));
	sbuf_release(&sb);
	config_free(cfg);
}

static void test_yaml_nested(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN];

	(void)state;
	assert_int_equal(load_text(cfg,
				   "# ragd\n"
				   "data_dir: /var/lib/ragd\n"
				   "server:\n"
				   "  host: 0.0.0.0\n"
				   "  port: 9090\n"
				   "  max_body_bytes: 1MiB\n"
				   "log: { level: debug }\n"
				   "index:\n"
				   "  snapshot: no\n"
				   "chunking.size: 256\n",
				   &err, path),
			 0);
	assert_string_equal(cfg->data_dir, "/var/lib/ragd");
	assert_string_equal(cfg->server.host, "0.0.0.0");
	assert_int_equal(cfg->server.port, 9090);
	assert_int_equal(cfg->server.max_body_bytes, 1u << 20);
	assert_int_equal(cfg->log.level, LOG_LEVEL_DEBUG);
	assert_false(cfg->index.snapshot);
	assert_int_equal(cfg->chunking.size, 256);
	assert_int_equal(config_validate(cfg, &err), 0);
	config_free(cfg);
}

static void test_empty_file(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN];

	(void)state;
	assert_int_equal(load_text(cfg, "", &err, path), 0);
	assert_int_equal(load_text(cfg, "# only a comment\n", &err, path), 0);
	assert_int_equal(cfg->server.port, 8080);
	config_free(cfg);
}

static void test_unknown_key(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN], want[128];

	(void)state;
	assert_int_equal(load_text(cfg, "server:\n  prot: 80\n", &err, path), RAG_EINVAL);
	snprintf(want, sizeof(want), "unknown key 'server.prot' in %s:2", path);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, "did you mean 'server.port'"));
	assert_string_equal(err.field, "server.prot");
	config_free(cfg);
}

static void test_bad_type(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN];

	(void)state;
	assert_int_equal(load_text(cfg, "server:\n  port: eighty\n", &err, path), RAG_EINVAL);
	assert_string_equal(err.field, "server.port");
	assert_non_null(strstr(err.msg, "server.port: 'eighty' is not an integer"));
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(cfg->server.port, 8080);

	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "index.snapshot", "maybe", "flag --x", &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "not a boolean"));
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "log.level", "loud", "flag --log-level", &err),
			 RAG_EINVAL);
	assert_string_equal(err.field, "log.level");
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "server.threads", "4x", "t", &err), RAG_EINVAL);
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "server.threads", " 4", "t", &err), RAG_EINVAL);
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "server.threads", "", "t", &err), RAG_EINVAL);
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "server.port", "99999999999999999999", "t", &err),
			 RAG_EINVAL);
	rag_err_clear(&err);
	assert_int_equal(load_text(cfg, "server:\n  port: [1, 2]\n", &err, path), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "lists are not supported"));
	config_free(cfg);
}

static void test_out_of_range(void **state)
{
	struct config *cfg = config_new();
	char *envp[] = { "RAGD_SERVER_PORT=70000", NULL };
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(config_apply_env(cfg, envp, &err), RAG_EINVAL);
	assert_string_equal(err.msg,
			    "server.port: 70000 is out of range 1..65535 (env RAGD_SERVER_PORT)");
	assert_string_equal(err.field, "server.port");
	assert_int_equal(cfg->server.port, 8080);
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "limits.max_top_k", "0", "x", &err), RAG_EINVAL);
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "limits.max_top_k", "100000", "x", &err), 0);

	/* A field set directly is caught by config_validate. */
	cfg->models.embed_batch = 0;
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "models.embed_batch");
	config_free(cfg);
}

/* The limits.* keys: defaults, ranges, and the answer defaults kept under them. */
static void test_limits(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(cfg->limits.max_tokens, 4096);
	assert_int_equal(cfg->limits.max_json_depth, 32);
	assert_int_equal(cfg->limits.max_json_elements, 100000);
	assert_int_equal(cfg->limits.max_header_bytes, 64 * 1024);
	assert_int_equal(cfg->limits.search_timeout_ms, 10000);
	assert_int_equal(cfg->limits.ingest_timeout_ms, 300000);
	assert_int_equal(config_set(cfg, "limits.max_json_depth", "1", "t", &err), RAG_EINVAL);
	assert_string_equal(err.field, "limits.max_json_depth");
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "limits.max_header_bytes", "1k", "t", &err), RAG_EINVAL);
	assert_int_equal(config_set(cfg, "limits.max_header_bytes", "8k", "t", &err), 0);
	assert_int_equal(cfg->limits.max_header_bytes, 8192);
	assert_int_equal(config_set(cfg, "limits.search_timeout_ms", "0", "t", &err), 0);
	assert_int_equal(config_set(cfg, "limits.ingest_timeout_ms", "-1", "t", &err), RAG_EINVAL);
	assert_int_equal(config_validate(cfg, &err), 0);
	/* rag.max_tokens and rag.top_k are defaults a request may not exceed itself. */
	assert_int_equal(config_set(cfg, "limits.max_tokens", "100", "t", &err), 0);
	rag_err_clear(&err); /* the first error recorded is kept */
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "rag.max_tokens");
	assert_int_equal(config_set(cfg, "rag.max_tokens", "100", "t", &err), 0);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_set(cfg, "limits.max_top_k", "4", "t", &err), 0);
	rag_err_clear(&err);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "rag.top_k");
	config_free(cfg);
}

static void test_env_beats_file(void **state)
{
	struct config *cfg = config_new();
	char *envp[] = { "HOME=/root", "RAGD_SERVER_PORT=7000", "RAGD_LOG_LEVEL=warn",
			 "RAGD_SERVER_MAX_BODY_BYTES=2m", NULL };
	struct rag_err err = { 0 };
	char path[PATH_LEN];

	(void)state;
	assert_int_equal(load_text(cfg, "server: {port: 9090, threads: 3}\n", &err, path), 0);
	assert_int_equal(config_apply_env(cfg, envp, &err), 0);
	assert_int_equal(cfg->server.port, 7000);
	assert_int_equal(cfg->server.threads, 3);
	assert_int_equal(cfg->log.level, LOG_LEVEL_WARN);
	assert_int_equal(cfg->server.max_body_bytes, 2u << 20);
	/* Flags come last and win. */
	assert_int_equal(config_set(cfg, "server.port", "7100", "flag --port", &err), 0);
	assert_int_equal(cfg->server.port, 7100);
	config_free(cfg);
}

static void test_env_aliases(void **state)
{
	struct config *cfg = config_new();
	char *alias_only[] = { "RAGD_PORT=6000", "RAGD_DATA_DIR=/d", NULL };
	char *both[] = { "RAGD_SERVER_PORT=6001", "RAGD_PORT=6002", NULL };
	char *k8s[] = { "RAGD_PORT=tcp://10.0.0.7:8080", "RAGD_SERVICE_HOST=10.0.0.7",
			"RAGD_CONFIG=/etc/ragd.yaml", NULL };
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(config_apply_env(cfg, alias_only, &err), 0);
	assert_int_equal(cfg->server.port, 6000);
	assert_string_equal(cfg->data_dir, "/d");
	assert_int_equal(config_apply_env(cfg, both, &err), 0);
	assert_int_equal(cfg->server.port, 6001);
	log_set_level(LOG_LEVEL_ERROR); /* silence the unknown-variable warning */
	assert_int_equal(config_apply_env(cfg, k8s, &err), 0);
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(cfg->server.port, 6001);

	assert_string_equal(config_path(NULL, k8s), "/etc/ragd.yaml");
	assert_string_equal(config_path("/x.yaml", k8s), "/x.yaml");
	assert_null(config_path(NULL, both));
	assert_null(config_path(NULL, NULL));
	config_free(cfg);
}

static void test_overlap_vs_size(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(config_set(cfg, "chunking.size", "64", "t", &err), 0);
	assert_int_equal(config_set(cfg, "chunking.overlap", "64", "t", &err), 0);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "chunking.overlap");
	assert_non_null(strstr(err.msg, "less than chunking.size"));
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "chunking.overlap", "63", "t", &err), 0);
	assert_int_equal(config_validate(cfg, &err), 0);
	config_free(cfg);
}

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *in;
		size_t want;
	} ok[] = {
		{ "1024", 1024 },    { "16m", 16u << 20 }, { "16M", 16u << 20 },
		{ "16MiB", 16u << 20 }, { "16mb", 16u << 20 }, { "512k", 512u << 10 },
		{ "2 KiB", 2048 },   { "1g", 1u << 30 },   { "4G", 4ull << 30 },
	};
	static const char *const bad[] = { "", "m", "16x", "16mm", "16MiBs", "-1m", "1.5m",
					   "5g", "1023", "99999999999999999999g" };
	struct config *cfg = config_new();
	struct rag_err err = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(config_set(cfg, "server.max_body_bytes", ok[i].in, "t", &err), 0);
		assert_int_equal(cfg->server.max_body_bytes, ok[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rag_err_clear(&err);
		assert_int_equal(config_set(cfg, "server.max_body_bytes", bad[i], "t", &err),
				 RAG_EINVAL);
		assert_string_equal(err.field, "server.max_body_bytes");
	}
	config_free(cfg);
}

static void test_yaml_syntax_error(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN], want[128];

	(void)state;
	assert_int_equal(load_text(cfg, "server:\n  port: 80\n\thost: x\n", &err, path),
			 RAG_EINVAL);
	snprintf(want, sizeof(want), "%s:3:1: ", path);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, "YAML syntax error"));

	rag_err_clear(&err);
	assert_int_equal(load_text(cfg, "just a scalar\n", &err, path), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "top level must be a mapping"));

	rag_err_clear(&err);
	assert_int_equal(load_text(cfg, "a: 1\n---\nb: 2\n", &err, path), RAG_EINVAL);

	rag_err_clear(&err);
	assert_int_equal(config_load_file(cfg, "/nonexistent/ragd.yaml", &err), RAG_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent/ragd.yaml"));
	config_free(cfg);
}

/* The cache keys: nested YAML three deep, environment names, the backend list. */
static void test_cache_keys(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char path[PATH_LEN];
	char *envp[] = { "RAGD_CACHE_REDIS_URL=10.0.0.1:7000,10.0.0.2:7000",
			 "RAGD_CACHE_BACKEND=redis-cluster", "RAGD_CACHE_TTL_S=60", NULL };

	(void)state;
	assert_string_equal(cfg->cache.backend, "lru");
	assert_int_equal(cfg->cache.lru_bytes, 64u << 20);
	assert_int_equal(load_text(cfg,
				   "cache:\n"
				   "  backend: two-level\n"
				   "  lru_bytes: 8m\n"
				   "  redis:\n"
				   "    url: redis://cache:6380\n"
				   "    timeout_ms: 50\n",
				   &err, path),
			 0);
	assert_string_equal(cfg->cache.backend, "two-level");
	assert_int_equal(cfg->cache.lru_bytes, 8u << 20);
	assert_string_equal(cfg->cache.redis_url, "redis://cache:6380");
	assert_int_equal(cfg->cache.redis_timeout_ms, 50);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_apply_env(cfg, envp, &err), 0);
	assert_string_equal(cfg->cache.backend, "redis-cluster");
	assert_string_equal(cfg->cache.redis_url, "10.0.0.1:7000,10.0.0.2:7000");
	assert_int_equal(cfg->cache.ttl_s, 60);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_set(cfg, "cache.backend", "memcached", "test", &err), 0);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "cache.backend");
	assert_int_equal(config_set(cfg, "cache.ttl_s", "0", "test", &err), RAG_EINVAL);
	assert_int_equal(config_set(cfg, "cache.redis.timeout_ms", "0", "test", &err), RAG_EINVAL);
	config_free(cfg);
}

/* Workers and replication: ranges, the cross-field rule, the other spellings. */
static void test_scale_out_keys(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char *env[] = { "RAGD_WORKERS=3", "RAGD_INDEX_FOLLOW_INTERVAL_MS=50",
			"RAGD_SERVER_KEEP_ALIVE_TIMEOUT_S=7", NULL };

	(void)state;
	assert_int_equal(config_set(cfg, "server.workers", "257", "test", &err), RAG_EINVAL);
	assert_string_equal(err.field, "server.workers");
	assert_int_equal(config_set(cfg, "workers", "2", "test", &err), 0);
	assert_int_equal(cfg->server.workers, 2);
	assert_int_equal(config_set(cfg, "server.keep_alive_timeout_s", "5", "test", &err), 0);
	assert_int_equal(cfg->server.connection_timeout_s, 5);
	assert_int_equal(config_set(cfg, "index.follow_interval_ms", "250", "test", &err), 0);
	assert_int_equal(cfg->replication.poll_ms, 250);
	assert_int_equal(config_set(cfg, "replication.max_backoff_ms", "200", "test", &err), 0);
	rag_err_clear(&err);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "replication.max_backoff_ms");
	assert_int_equal(config_set(cfg, "replication.max_backoff_ms", "5000", "test", &err), 0);
	assert_int_equal(config_set(cfg, "replication.redis_url", "redis://127.0.0.1:6390", "test",
				    &err), 0);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_apply_env(cfg, env, &err), 0);
	assert_int_equal(cfg->server.workers, 3);
	assert_int_equal(cfg->replication.poll_ms, 50);
	assert_int_equal(cfg->server.connection_timeout_s, 7);
	config_free(cfg);
}

static void test_dump_json(void **state)
{
	struct config *cfg = config_new();
	struct sbuf sb = SBUF_INIT;

	(void)state;
	assert_int_equal(config_dump_json(cfg, &sb), 0);
	assert_non_null(strstr(sb.buf, "{\"data_dir\":\"./data\",\"server\":{\"host\":\"127.0.0.1\","
					"\"port\":8080,"));
	assert_non_null(strstr(sb.buf, "\"max_body_bytes\":16777216"));
	assert_non_null(strstr(sb.buf, "\"log\":{\"level\":\"info\",\"access\":true,\"file\":\"-\"}"));
	assert_non_null(strstr(sb.buf, "\"index\":{\"snapshot\":true},"
					"\"replication\":{\"poll_ms\":100,\"max_backoff_ms\":1000,"));
	assert_non_null(strstr(sb.buf, "\"cache\":{\"backend\":\"lru\",\"lru_bytes\":67108864,"));
	assert_non_null(strstr(sb.buf, "\"redis.url\":\"redis://127.0.0.1:6379\","));
	/* Each section once: keys of a section must be contiguous in the table. */
	for (const char *const *sec = (const char *const[]){ "\"models\":{", "\"rag\":{",
							      "\"server\":{", "\"cache\":{", NULL };
	     *sec; sec++) {
		const char *first = strstr(sb.buf, *sec);

		assert_non_null(first);
		assert_null(strstr(first + 1, *sec));
	}
	assert_non_null(strstr(sb.buf, "\"remote.policy\":\"round_robin\""));
	assert_non_null(strstr(sb.buf, "\"chroma\":{\"url\":\"http://127.0.0.1:8000\","
					"\"tenant\":\"default_tenant\","
					"\"database\":\"default_database\",\"timeout_ms\":30000,"
					"\"connect_timeout_ms\":2000}"));
	assert_non_null(strstr(sb.buf, "\"ingest\":{\"max_file_bytes\":67108864,\"root\":\"\","
					"\"job_workers\":1,\"job_lease_ms\":30000}"));
	sbuf_release(&sb);
	config_free(cfg);
}

static void test_remote_models(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };

	(void)state;
	assert_int_equal(config_set(cfg, "models.embedder", "remote", "test", &err), 0);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "models.remote.urls");
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "models.remote.urls", "http://a:1,http://b:2", "test",
				    &err), 0);
	assert_int_equal(config_validate(cfg, &err), 0);
	assert_int_equal(config_set(cfg, "models.remote.policy", "random", "test", &err), 0);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "models.remote.policy");
	rag_err_clear(&err);
	assert_int_equal(config_set(cfg, "models.remote.eject_after", "0", "test", &err),
			 RAG_EINVAL);
	config_free(cfg);
}

static void test_chroma_keys(void **state)
{
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	char *env[] = { "RAGD_CHROMA_URL=https://chroma.example:8443", NULL };

	(void)state;
	assert_int_equal(config_apply_env(cfg, env, &err), 0);
	assert_string_equal(cfg->chroma.url, "https://chroma.example:8443");
	assert_int_equal(config_set(cfg, "chroma.timeout_ms", "99", "test", &err), RAG_EINVAL);
	assert_string_equal(err.field, "chroma.timeout_ms");
	assert_int_equal(config_set(cfg, "chroma.database", "ragd", "test", NULL), 0);
	assert_int_equal(config_validate(cfg, NULL), 0);
	assert_int_equal(config_set(cfg, "chroma.url", "chroma:8000", "test", NULL), 0);
	rag_err_clear(&err);
	assert_int_equal(config_validate(cfg, &err), RAG_EINVAL);
	assert_string_equal(err.field, "chroma.url");
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_yaml_nested),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_env_beats_file),
		cmocka_unit_test(test_env_aliases),
		cmocka_unit_test(test_cache_keys),
		cmocka_unit_test(test_overlap_vs_size),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_dump_json),
		cmocka_unit_test(test_scale_out_keys),
		cmocka_unit_test(test_remote_models),
		cmocka_unit_test(test_answer_keys),
		cmocka_unit_test(test_chroma_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
