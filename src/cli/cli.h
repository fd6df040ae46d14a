/*
 * The command line: one file per subcommand, sharing the setup here
 * (configuration from file, environment and flags; opening the store, the
 * embedder and the engine).
 */
#ifndef RAGD_CLI_CLI_H
#define RAGD_CLI_CLI_H

#include <stddef.h>

struct cache;
struct chroma_client;
struct config;
struct embedder;
struct generator;
struct rag_engine;
struct store;

#define CLI_MAX_ARGS 256 /* positional arguments one command takes */

/* What a subcommand works with; cli_app_release frees what was opened. */
struct cli_app {
	struct config *cfg;
	struct store *store;
	struct embedder *emb;
	struct cache *cache; /* NULL for cache.backend none */
	struct rag_engine *eng;
	struct generator *gen; /* NULL: extractive answers */
	struct chroma_client *chroma; /* for collections whose index type is "chroma" */
	struct rag_shards *shards; /* sharding.*; NULL: not sharded */
	const char *args[CLI_MAX_ARGS]; /* positional arguments, borrowed from argv */
	size_t n_args;
};

/*
 * A subcommand's own flag: "--name" with a value when value_out is not
 * NULL, else a switch (flag_out set to 1).
 */
struct cli_flag {
	const char *name;
	const char **value_out;
	int *flag_out;
};

/*
 * Parses argv[first..argc): the common flags (--config, --data-dir, --port,
 * --log-level, --set key=value), the command's own (NULL-terminated by a
 * NULL name) and positionals; builds the configuration (defaults < file <
 * environment < flags) and validates it. Prints a clear message and returns
 * -1 on any error.
 */
int cli_setup(struct cli_app *app, int argc, char **argv, int first,
	      const struct cli_flag *flags);

/* Opens the store and the embedder; with engine, the engine too. Prints and returns -1. */
int cli_open(struct cli_app *app, int engine, int load_indexes, int follow);

/*
 * Loads the generator (models.generator: a GGUF, "remote" for the pool in
 * models.remote.*, none when empty) and gives it and the rag.* answer
 * options to the engine. Prints and returns -1.
 */
int cli_open_generator(struct cli_app *app);

void cli_app_release(struct cli_app *app);

int cli_serve(int argc, char **argv);
int cli_ingest(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_key(int argc, char **argv);

#endif
