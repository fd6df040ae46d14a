/*
 * Shared setup for the subcommands: flags, configuration, and opening the
 * layers in dependency order (store, embedder, engine).
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache/cache.h"
#include "core/config.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "core/rag_error.h"
#include "index/chroma_client.h"
#include "model/embedder.h"
#include "model/generator.h"
#include "rag/rag_answer.h"
#include "rag/rag_engine.h"
#include "store/store_mongo.h"
#include "rag/rag_shard.h"
#include "store/store_sqlite.h"

#include "core/banned.h"

extern char **environ;

struct pending {
	const char *key;
	const char *value;
};

static int die(const char *what, const struct rag_err *err)
{
	fprintf(stderr, "ragd: %s%s%s\n", what, err && err->msg[0] ? ": " : "",
		err ? err->msg : "");
	return -1;
}

static const char *common_key(const char *flag)
{
	if (strcmp(flag, "--data-dir") == 0)
		return "data_dir";
	if (strcmp(flag, "--port") == 0)
		return "server.port";
	if (strcmp(flag, "--host") == 0)
		return "server.host";
	if (strcmp(flag, "--log-level") == 0)
		return "log.level";
	if (strcmp(flag, "--model") == 0)
		return "models.embedder";
	if (strcmp(flag, "--chroma-url") == 0)
		return "chroma.url";
	return NULL;
}

int cli_setup(struct cli_app *app, int argc, char **argv, int first, const struct cli_flag *flags)
{
	struct pending sets[64];
	size_t n_sets = 0;
	const char *config_flag = NULL, *path;
	struct rag_err err = { 0 };

	memset(app, 0, sizeof(*app));
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		const char *key = common_key(a);
		int matched = 0;

		if (strcmp(a, "--") == 0) {
			while (++i < argc && app->n_args < CLI_MAX_ARGS)
				app->args[app->n_args++] = argv[i];
			break;
		}
		if (key || strcmp(a, "--config") == 0 || strcmp(a, "--set") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "ragd: %s needs a value\n", a);
				return -1;
			}
			if (strcmp(a, "--config") == 0) {
				config_flag = argv[++i];
				continue;
			}
			if (n_sets == sizeof(sets) / sizeof(sets[0])) {
				fprintf(stderr, "ragd: too many settings\n");
				return -1;
			}
			if (key) {
				sets[n_sets].key = key;
				sets[n_sets++].value = argv[++i];
			} else {
				char *eq = strchr(argv[++i], '=');

				if (!eq) {
					fprintf(stderr, "ragd: --set needs key=value, got '%s'\n", argv[i]);
					return -1;
				}
				*eq = '\0';
				sets[n_sets].key = argv[i];
				sets[n_sets++].value = eq + 1;
			}
			continue;
		}
		for (size_t f = 0; flags && flags[f].name && !matched; f++) {
			if (strcmp(a, flags[f].name) != 0)
				continue;
			matched = 1;
			if (flags[f].flag_out) {
				*flags[f].flag_out = 1;
			} else if (i + 1 >= argc) {
				fprintf(stderr, "ragd: %s needs a value\n", a);
				return -1;
			} else {
				*flags[f].value_out = argv[++i];
			}
		}
		if (matched)
			continue;
		if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "ragd: unknown option '%s' (see `ragd help`)\n", a);
			return -1;
		}
		if (app->n_args == CLI_MAX_ARGS) {
			fprintf(stderr, "ragd: too many arguments\n");
			return -1;
		}
		app->args[app->n_args++] = a;
	}
	app->cfg = config_new();
	if (!app->cfg)
		return die("out of memory", NULL);
	path = config_path(config_flag, environ);
	if (path && config_load_file(app->cfg, path, &err) < 0)
		return die("bad configuration", &err);
	if (config_apply_env(app->cfg, environ, &err) < 0)
		return die("bad configuration", &err);
	for (size_t i = 0; i < n_sets; i++)
		if (config_set(app->cfg, sets[i].key, sets[i].value, "command line", &err) < 0)
			return die("bad configuration", &err);
	if (config_validate(app->cfg, &err) < 0)
		return die("bad configuration", &err);
	log_set_level(app->cfg->log.level);
	return 0;
}

/* The options of a local embedder (the default one or one of models.embedders). */
static void llama_embedder_options(const struct config *cfg, const char *path,
				   struct embedder_llama_options *eo)
{
	embedder_llama_default_options(eo);
	eo->model_path = path;
	/*
	 * ggml's threads spin while they wait for each other, so contexts x
	 * threads above the core count makes concurrent requests crawl: by
	 * default the cores are shared out between the contexts.
	 */
	eo->n_contexts = config_cpu_count(cfg->models.embed_contexts);
	eo->n_threads = cfg->models.embed_threads > 0 ? cfg->models.embed_threads
						       : config_cpu_count(0) / eo->n_contexts;
	if (eo->n_threads < 1)
		eo->n_threads = 1;
	eo->batch_size = cfg->models.embed_batch;
}

/* models.embedders' models, loaded on first use; ctx: the config. */
static struct embedder *load_embedder(void *ctx, const char *path, struct rag_err *err)
{
	struct embedder_llama_options o;

	llama_embedder_options(ctx, path, &o);
	return embedder_llama_new(&o, err);
}

/* The configured cache; a Redis that is down now is not an error (it is bypassed). */
static int open_cache(struct cli_app *app)
{
	struct config *cfg = app->cfg;
	struct cache_options co;
	struct rag_err err = { 0 };

	cache_default_options(&co);
	if (cache_backend_parse(cfg->cache.backend, &co.backend) < 0)
		return die("bad configuration", NULL);
	co.lru_bytes = cfg->cache.lru_bytes;
	co.redis_url = cfg->cache.redis_url;
	co.timeout_ms = cfg->cache.redis_timeout_ms;
	co.pool_size = cfg->cache.redis_pool_size;
	app->cache = cache_new(&co, &err);
	if (!app->cache && err.code)
		return die("cannot set up the cache", &err);
	return 0;
}

static struct embedder *open_llama_embedder(const struct config *cfg, struct rag_err *err)
{
	struct embedder_llama_options eo;
	struct embedder_batch_options bo;
	struct embedder *e;

	llama_embedder_options(cfg, cfg->models.embedder, &eo);
	e = embedder_llama_new(&eo, err);
	if (!e || !cfg->models.micro_batch)
		return e;
	embedder_batch_default_options(&bo);
	bo.window_us = cfg->models.micro_batch_window_us;
	bo.max_running = eo.n_contexts;
	return embedder_batch_new(e, &bo, err);
}

/* The pool options in models.remote.* (shared by a remote embedder and generator). */
static void remote_pool(const struct config *cfg, struct model_pool_options *o);

/* models.embedder "remote": the pool of OpenAI-compatible servers in models.remote.*. */
static struct embedder *open_remote_embedder(const struct config *cfg, struct rag_err *err)
{
	struct embedder_remote_options ro;

	embedder_remote_default_options(&ro);
	remote_pool(cfg, &ro.pool);
	ro.pool.name = "embedder";
	ro.model = cfg->models.remote.embed_model;
	ro.max_tokens = (size_t)cfg->models.remote.max_tokens;
	return embedder_remote_new(&ro, err);
}

/*
 * A secret mounted as a file (a Kubernetes secret volume): its content
 * without the trailing newline, in *out (caller frees).
 */
static int read_secret(const char *path, const char *key, char **out, struct rag_err *err)
{
	struct sbuf sb = SBUF_INIT;
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return rag_err_set(err, RAG_EINVAL, key, "%s: cannot read '%s'", key, path);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&sb, buf, n);
	fclose(f);
	while (sb.len && (sb.buf[sb.len - 1] == '\n' || sb.buf[sb.len - 1] == '\r' ||
			  sb.buf[sb.len - 1] == ' '))
		sbuf_truncate(&sb, sb.len - 1);
	if (sbuf_error(&sb)) {
		sbuf_release(&sb);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	*out = sbuf_detach(&sb, NULL);
	return 0;
}

/* mkdir -p: data_dir holds index snapshots whatever the store. */
static int make_dirs(const char *path, struct rag_err *err)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	for (char *q = p + 1;; q++) {
		int last = *q == '\0';

		if (*q != '/' && !last)
			continue;
		*q = '\0';
		if (mkdir(p, 0750) != 0 && errno != EEXIST) {
			rc = rag_err_set(err, RAG_EIO, "data_dir", "cannot create data directory '%s': %s",
					 p, strerror(errno));
			break;
		}
		if (last)
			break;
		*q = '/';
	}
	free(p);
	return rc;
}

/* The store named by store.backend: SQLite in data_dir, or MongoDB. */
static struct store *open_store(const struct config *cfg, struct rag_err *err)
{
	const struct config_mongodb *m = &cfg->store.mongodb;
	struct store_options so = store_default_options();
	struct store_mongo_options mo = store_mongo_default_options();
	char *uri = NULL, *password = NULL;
	struct store *st = NULL;

	if (strcmp(cfg->store.backend, "mongodb") != 0)
		return store_sqlite_open(cfg->data_dir, &so, err);
	if (make_dirs(cfg->data_dir, err))
		return NULL;
	if (!m->uri[0] && m->uri_file[0] &&
	    read_secret(m->uri_file, "store.mongodb.uri_file", &uri, err))
		return NULL;
	if (m->password_file[0] &&
	    read_secret(m->password_file, "store.mongodb.password_file", &password, err)) {
		free(uri);
		return NULL;
	}
	mo.uri = uri ? uri : m->uri;
	mo.database = m->database;
	mo.username = m->username;
	mo.password = password;
	mo.max_pool_size = m->max_pool_size;
	mo.min_pool_size = m->min_pool_size;
	mo.max_idle_time_ms = m->max_idle_time_ms;
	mo.server_selection_timeout_ms = m->server_selection_timeout_ms;
	mo.connect_timeout_ms = m->connect_timeout_ms;
	mo.socket_timeout_ms = m->socket_timeout_ms;
	mo.heartbeat_frequency_ms = m->heartbeat_frequency_ms;
	mo.search_read_pref = store_mongo_read_pref_parse(m->read_preference);
	mo.write_majority = m->write_majority;
	mo.lock_lease_ms = m->lock_lease_ms;
	mo.lock_timeout_ms = m->lock_timeout_ms;
	st = store_mongo_open(&mo, err);
	free(uri);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return st;
}

/* sharding.*: the shard map, when sharding.shards is set. */
static int open_shards(struct cli_app *app)
{
	const struct config *cfg = app->cfg;
	struct rag_shard_options so;
	struct rag_err err = { 0 };

	if (cfg->sharding.shards == 0)
		return 0;
	rag_shard_default_options(&so);
	so.n_shards = cfg->sharding.shards;
	so.holds = cfg->sharding.holds;
	so.ordinal = cfg->sharding.ordinal;
	so.peers = cfg->sharding.peers;
	so.peer_pattern = cfg->sharding.peer_pattern;
	so.instances = cfg->sharding.instances;
	so.vnodes = cfg->sharding.vnodes;
	so.timeout_ms = cfg->sharding.timeout_ms;
	so.backoff_ms = cfg->sharding.backoff_ms;
	app->shards = rag_shards_new(&so, &err);
	if (!app->shards)
		return die("bad sharding settings", &err);
	log_info("sharding: %d shards, holding %#llx", cfg->sharding.shards,
		 (unsigned long long)rag_shards_held(app->shards));
	return 0;
}

int cli_open(struct cli_app *app, int engine, int load_indexes, int follow)
{
	struct config *cfg = app->cfg;
	struct rag_engine_options ro;
	struct chroma_client_options co;
	struct rag_err err = { 0 };

	app->store = open_store(cfg, &err);
	if (!app->store)
		return die("cannot open the store", &err);
	if (strcmp(cfg->models.embedder, "remote") == 0)
		app->emb = open_remote_embedder(cfg, &err);
	else
		app->emb = open_llama_embedder(cfg, &err);
	if (!app->emb)
		return die("cannot load the embedding model", &err);
	if (!engine)
		return 0;
	if (open_cache(app) < 0)
		return -1;
	co = chroma_client_default_options();
	co.url = cfg->chroma.url;
	co.tenant = cfg->chroma.tenant;
	co.database = cfg->chroma.database;
	co.timeout_ms = cfg->chroma.timeout_ms;
	co.connect_timeout_ms = cfg->chroma.connect_timeout_ms;
	app->chroma = chroma_client_new(&co, &err); /* contacts nothing until used */
	if (!app->chroma)
		return die("bad Chroma settings", &err);
	if (open_shards(app) < 0)
		return -1;
	rag_engine_default_options(&ro);
	ro.data_dir = cfg->data_dir;
	ro.load_indexes = load_indexes;
	ro.snapshot = cfg->index.snapshot;
	ro.follow_interval_ms = follow ? cfg->replication.poll_ms : 0;
	ro.follow_max_backoff_ms = cfg->replication.max_backoff_ms;
	ro.on_change = app->on_change;
	ro.on_change_ctx = app->on_change_ctx;
	ro.max_top_k = (size_t)cfg->limits.max_top_k;
	ro.search_timeout_ms = cfg->limits.search_timeout_ms;
	ro.ingest_timeout_ms = cfg->limits.ingest_timeout_ms;
	ro.chunk_size = cfg->chunking.size;
	ro.chunk_overlap = cfg->chunking.overlap;
	ro.cache = app->cache;
	ro.cache_ttl_s = cfg->cache.ttl_s;
	ro.embedding_ttl_s = cfg->cache.embedding_ttl_s;
	ro.chroma = app->chroma;
	ro.max_doc_bytes = cfg->ingest.max_file_bytes;
	ro.job_workers = follow ? cfg->ingest.job_workers : 0;
	ro.job_lease_ms = cfg->ingest.job_lease_ms;
	ro.embedders = cfg->models.embedders;
	ro.load_embedder = load_embedder;
	ro.load_ctx = cfg;
	ro.shards = app->shards;
	app->eng = rag_engine_new(&ro, app->store, app->emb, &err);
	if (!app->eng)
		return die("cannot start the engine", &err);
	return 0;
}

/* The pool options in models.remote.* (shared by a remote embedder and generator). */
static void remote_pool(const struct config *cfg, struct model_pool_options *o)
{
	const char *key = cfg->models.remote.api_key_env[0] ? getenv(cfg->models.remote.api_key_env)
							     : NULL;

	o->urls = cfg->models.remote.urls;
	model_pool_policy_parse(cfg->models.remote.policy, &o->policy);
	o->connect_timeout_ms = cfg->models.remote.connect_timeout_ms;
	o->request_timeout_ms = cfg->models.remote.timeout_ms;
	o->deadline_ms = cfg->models.remote.deadline_ms;
	o->health_interval_ms = cfg->models.remote.health_interval_ms;
	o->health_path = cfg->models.remote.health_path;
	o->eject_after = cfg->models.remote.eject_after;
	o->api_key = key;
}

/* The template setting: a readable file's contents, else the text itself (caller frees). */
static char *read_template(const char *value)
{
	FILE *f = value[0] ? fopen(value, "rb") : NULL;
	char buf[4096];
	struct sbuf sb = SBUF_INIT;
	size_t n;

	if (!f)
		return strdup(value);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&sb, buf, n);
	fclose(f);
	return sbuf_detach(&sb, NULL);
}

int cli_open_generator(struct cli_app *app)
{
	struct config *cfg = app->cfg;
	struct generator_llama_options go;
	struct rag_answer_options ao;
	struct rag_err err = { 0 };
	char *tmpl;
	int rc;

	if (strcmp(cfg->models.generator, "remote") == 0) {
		struct generator_remote_options ro;

		generator_remote_default_options(&ro);
		remote_pool(cfg, &ro.pool);
		ro.pool.name = "generator";
		ro.model = cfg->models.remote.chat_model;
		ro.n_ctx = (size_t)cfg->models.remote.n_ctx;
		app->gen = generator_remote_new(&ro, &err);
		if (!app->gen)
			return die("cannot start the remote generator", &err);
	} else if (cfg->models.generator[0]) {
		generator_llama_default_options(&go);
		go.model_path = cfg->models.generator;
		go.n_contexts = cfg->models.gen_contexts;
		go.n_queue = cfg->models.gen_queue;
		go.n_ctx = cfg->models.gen_ctx;
		/* As for the embedder: ggml's threads spin, so the cores are shared out. */
		go.n_threads = cfg->models.gen_threads > 0
				       ? cfg->models.gen_threads
				       : config_cpu_count(0) / go.n_contexts;
		if (go.n_threads < 1)
			go.n_threads = 1;
		app->gen = generator_llama_new(&go, &err);
		if (!app->gen)
			return die("cannot load the generation model", &err);
	} else {
		log_info("no generator configured (models.generator is empty): extractive answers");
	}
	rag_answer_default_options(&ao);
	tmpl = read_template(cfg->rag.prompt_template);
	if (!tmpl)
		return die("out of memory", NULL);
	ao.prompt_template = tmpl;
	ao.min_score = cfg->rag.min_score;
	ao.history_messages = cfg->rag.history_messages;
	ao.timeout_ms = cfg->rag.timeout_ms;
	rc = rag_answer_configure(app->eng, app->gen, &ao, &err);
	free(tmpl);
	return rc < 0 ? die("bad configuration", &err) : 0;
}

void cli_app_release(struct cli_app *app)
{
	rag_engine_free(app->eng);
	rag_shards_free(app->shards);
	cache_free(app->cache);
	generator_free(app->gen);
	chroma_client_free(app->chroma);
	embedder_free(app->emb);
	store_free(app->store);
	config_free(app->cfg);
	memset(app, 0, sizeof(*app));
}
