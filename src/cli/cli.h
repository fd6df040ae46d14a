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
	/* Set before cli_open by `serve`: the engine's write hook (rag_engine.h on_change). */
	void (*on_change)(void *ctx);
	void *on_change_ctx;
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

/* --- worker processes (cli_workers.c) --- */

struct cli_workers_options {
	int n_workers;          /* processes to keep running, >= 1 */
	int shutdown_timeout_s; /* after SIGTERM: workers left past this (+ grace) are killed */
	void (*on_hup)(void *ctx); /* the supervisor's own SIGHUP work (reopen its log); may be NULL */
};

/*
 * Runs the supervisor: forks n_workers processes, each running
 * worker(ctx, index, generation) (index 0..n-1; generation 1 for the first
 * start of that slot, 2 after its first restart...) and exiting with its
 * return value; restarts those that die, with back-off; forwards SIGTERM,
 * SIGINT (as SIGTERM) and SIGHUP, and returns once all workers have exited
 * after a stop signal: 0 if every one exited 0, else 1. A worker exiting
 * non-zero at its first start (bad model, port taken) stops them all: 1.
 * Workers start with SIGTERM, SIGINT and SIGHUP blocked (so none sent
 * during their start-up is lost): they take them with sigwait.
 * Call it before any thread is started. Never returns in the workers.
 */
int cli_workers_run(const struct cli_workers_options *opts,
		    int (*worker)(void *ctx, int index, int generation), void *ctx);

/*
 * Restart delay for a worker that died after lived_ms, given the previous
 * delay: 0 when it had run long enough to count as stable, else doubling
 * from 100 ms up to 10 s.
 */
int cli_workers_backoff_ms(int prev_ms, long long lived_ms);

/*
 * In a worker: tells the other workers that the change log moved (a futex
 * wake on the word they share). A no-op outside workers mode. Any thread.
 */
void cli_workers_notify(void);

/*
 * In a worker: starts a thread that calls on_notice(ctx) whenever any
 * worker (this one included) calls cli_workers_notify. 0, or -1 when the
 * thread cannot start; a no-op outside workers mode. watch_stop joins it.
 */
int cli_workers_watch_start(void (*on_notice)(void *ctx), void *ctx);
void cli_workers_watch_stop(void);

int cli_serve(int argc, char **argv);
int cli_ingest(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_key(int argc, char **argv);

#endif
