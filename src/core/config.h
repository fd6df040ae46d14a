/*
 * ragd configuration: defaults, then a YAML file, then RAGD_* environment
 * variables, then command-line flags, each later source overriding the
 * earlier ones. The CLI applies them in that order and validates once at the
 * end; nothing else reads the environment for settings.
 *
 * Every setting has a dotted key (server.port) naming it in the YAML file
 * (as nested mappings or a literal dotted key), in the environment
 * (RAGD_SERVER_PORT: RAGD_ + upper snake case) and in error messages. All
 * sources go through config_set(), so a value is parsed and range-checked
 * the same way wherever it came from, and an error names the key and the
 * source: "server.port: 70000 is out of range 1..65535 (env RAGD_SERVER_PORT)".
 *
 * Keys, defaults and ranges:
 *   data_dir                    "./data"      (also RAGD_DATA_DIR)
 *   server.host                 "127.0.0.1"
 *   server.port                 8080          1..65535 (alias RAGD_PORT)
 *   server.threads              0 = CPUs      0..256
 *   server.max_body_bytes       16m           1k..4g; bytes or k/m/g suffix
 *   server.max_connections      1000          1..1000000
 *   server.connection_timeout_s 120           1..86400
 *   limits.max_top_k            1000          1..100000
 *   log.level                   info          debug|info|warn|error
 *   models.embedder             "models/all-MiniLM-L6-v2.gguf"
 *   models.embedders            ""            name=path,... loaded on first use
 *   models.embed_batch          32            1..4096
 *   models.embed_threads        0 = CPUs      0..256
 *   models.embed_contexts       0 = CPUs      0..256
 *   chunking.size               128 tokens    8..8192
 *   chunking.overlap            16            0..4096, less than chunking.size
 *   index.snapshot              true
 *   index.follow_interval_ms    500           10..600000
 *   ingest.max_file_bytes       64m           1k..4g; one document's bytes
 *   ingest.root                 ""            server-side paths allowed below it; "" = none
 *   ingest.job_workers          1             0..64
 *   ingest.job_lease_ms         30000         100..3600000
 *
 * Thread-safety: a config is built by one thread at start-up and is then
 * read-only; any number of threads may read a config nobody modifies.
 */
#ifndef RAGD_CORE_CONFIG_H
#define RAGD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct rag_err;
struct sbuf;

struct config {
	char *data_dir; /* strings are owned by the config, never NULL */
	char *environment; /* "development" or "production" (docs pages off) */
	struct {
		char *host;
		int port;
		int threads;
		size_t max_body_bytes;
		int max_connections;
		int connection_timeout_s;
		int shutdown_timeout_s;      /* SIGTERM: in-flight requests get this long */
		size_t memory_limit_bytes;   /* for alerts; 0 = the cgroup's limit, if any */
	} server;
	struct {
		int max_top_k;
	} limits;
	struct {
		int level; /* enum log_level */
		bool access; /* one line per request */
		char *file;  /* "-" = stderr; reopened on SIGHUP */
	} log;
	struct {
		char *embedder;
		char *embedders; /* "name=path,name=path": more models collections may use */
		int embed_batch;
		int embed_threads;
		int embed_contexts;
	} models;
	struct {
		int size;
		int overlap;
	} chunking;
	struct {
		bool snapshot;
		int follow_interval_ms;
	} index;
	struct {
		size_t max_file_bytes; /* one document's bytes (upload, batch item, CLI file) */
		char *root;            /* server-side paths only below this; "" = not accepted */
		int job_workers;       /* threads running ingest jobs in `ragd serve` */
		int job_lease_ms;      /* a dead worker's job is resumed after this */
	} ingest;
};

/* A config holding the defaults (which validate), or NULL when out of
 * memory. Free with config_free. */
struct config *config_new(void);

/* Frees cfg and its strings; NULL-safe. */
void config_free(struct config *cfg);

/*
 * Sets key (e.g. "server.port") from its text form value (non-NULL; copied), parsed by the
 * key's type: integers in decimal, sizes as bytes or with a k/m/g suffix
 * ("16m", "16MiB", "512k"; all binary multiples), booleans as
 * true/false/yes/no/on/off/1/0, log.level as its name. source says where the
 * value came from ("/etc/ragd.yaml:3", "env RAGD_SERVER_PORT", "flag
 * --port") and is quoted in error messages. Returns 0, or RAG_EINVAL for an
 * unknown key, a malformed value or one out of its range (cfg unchanged),
 * or RAG_ENOMEM. err->field is set to the key. Cross-field rules are left
 * to config_validate, since sources set keys one at a time.
 */
int config_set(struct config *cfg, const char *key, const char *value, const char *source,
	       struct rag_err *err);

/*
 * Applies the YAML file at path: a mapping whose nested mappings flatten to
 * dotted keys (server: {port: 80} sets server.port). Lists, aliases and
 * more than one document are rejected. Returns 0; RAG_EIO when the file
 * cannot be read; RAG_EINVAL for a YAML syntax error (the message gives
 * path:line:column) or any key config_set rejects (the message gives
 * path:line). Keys applied before an error stay applied.
 */
int config_load_file(struct config *cfg, const char *path, struct rag_err *err);

/*
 * Applies RAGD_* variables from envp (a NULL-terminated "NAME=value" array
 * such as environ). RAGD_<KEY> for each key, plus the aliases RAGD_PORT
 * (server.port) and RAGD_DATA_DIR; a canonical name beats its alias.
 * RAGD_PORT values of the form "tcp://host:port", which Kubernetes injects
 * for a Service named "ragd", are ignored. Other RAGD_* names that match no
 * key are ignored with a warning in the log (a typo then shows up there),
 * except RAGD_CONFIG and Kubernetes' RAGD_SERVICE_* and RAGD_PORT_*. Returns 0, RAG_EINVAL (message ends "(env NAME)") or
 * RAG_ENOMEM.
 */
int config_apply_env(struct config *cfg, char *const *envp, struct rag_err *err);

/*
 * The config file to load: flag_path when non-NULL, else RAGD_CONFIG from
 * envp (may be NULL) when set and non-empty, else NULL for none. Borrowed
 * from the arguments.
 */
const char *config_path(const char *flag_path, char *const *envp);

/*
 * Checks every value against its range and the cross-field rules
 * (chunking.overlap < chunking.size; non-empty strings). Returns 0 or
 * RAG_EINVAL with err->field naming the offending key.
 */
int config_validate(const struct config *cfg, struct rag_err *err);

/*
 * Appends cfg as a JSON object nested like the YAML file (sizes in bytes,
 * log.level by name) to sb. Returns 0 or RAG_ENOMEM (sb's sticky failure).
 */
int config_dump_json(const struct config *cfg, struct sbuf *sb);

/* configured when > 0, else the number of CPUs this process may run on (at
 * least 1): how the "0 = number of CPUs" settings are resolved. */
int config_cpu_count(int configured);

#endif
