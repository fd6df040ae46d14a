/*
 * Shared setup for the subcommands: flags, configuration, and opening the
 * layers in dependency order (store, embedder, engine).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "model/embedder.h"
#include "rag/rag_engine.h"
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

/* The options the default embedder was loaded with, for models.embedders' models. */
static struct embedder_llama_options load_opts;

static struct embedder *load_embedder(void *ctx, const char *path, struct rag_err *err)
{
	struct embedder_llama_options o = load_opts;

	(void)ctx;
	o.model_path = path;
	return embedder_llama_new(&o, err);
}

int cli_open(struct cli_app *app, int engine, int load_indexes, int follow)
{
	struct config *cfg = app->cfg;
	struct store_options so = store_default_options();
	struct embedder_llama_options eo;
	struct rag_engine_options ro;
	struct rag_err err = { 0 };

	app->store = store_sqlite_open(cfg->data_dir, &so, &err);
	if (!app->store)
		return die("cannot open the store", &err);
	embedder_llama_default_options(&eo);
	eo.model_path = cfg->models.embedder;
	/*
	 * ggml's threads spin while they wait for each other, so contexts x
	 * threads above the core count makes concurrent requests crawl: by
	 * default the cores are shared out between the contexts.
	 */
	eo.n_contexts = config_cpu_count(cfg->models.embed_contexts);
	eo.n_threads = cfg->models.embed_threads > 0 ? cfg->models.embed_threads
						      : config_cpu_count(0) / eo.n_contexts;
	if (eo.n_threads < 1)
		eo.n_threads = 1;
	eo.batch_size = cfg->models.embed_batch;
	load_opts = eo;
	app->emb = embedder_llama_new(&eo, &err);
	if (!app->emb)
		return die("cannot load the embedding model", &err);
	if (!engine)
		return 0;
	rag_engine_default_options(&ro);
	ro.data_dir = cfg->data_dir;
	ro.load_indexes = load_indexes;
	ro.snapshot = cfg->index.snapshot;
	ro.follow_interval_ms = follow ? cfg->index.follow_interval_ms : 0;
	ro.max_top_k = (size_t)cfg->limits.max_top_k;
	ro.chunk_size = cfg->chunking.size;
	ro.chunk_overlap = cfg->chunking.overlap;
	ro.max_doc_bytes = cfg->ingest.max_file_bytes;
	ro.job_workers = follow ? cfg->ingest.job_workers : 0;
	ro.job_lease_ms = cfg->ingest.job_lease_ms;
	ro.embedders = cfg->models.embedders;
	ro.load_embedder = load_embedder;
	app->eng = rag_engine_new(&ro, app->store, app->emb, &err);
	if (!app->eng)
		return die("cannot start the engine", &err);
	return 0;
}

void cli_app_release(struct cli_app *app)
{
	rag_engine_free(app->eng);
	embedder_free(app->emb);
	store_free(app->store);
	config_free(app->cfg);
	memset(app, 0, sizeof(*app));
}
