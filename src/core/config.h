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
 *   server.connection_timeout_s 120           1..86400 (also server.keep_alive_timeout_s)
 *   server.workers              1             0..256 processes sharing the port (0 = CPUs)
 *   limits.max_top_k            1000          1..100000 (search; /query also <= 100)
 *   limits.max_tokens           4096          1..131072 (query, chat completions)
 *   limits.max_json_depth       32            2..1000
 *   limits.max_json_elements    100000        16..100000000 (elements + members, all levels)
 *   limits.max_header_bytes     64k           4k..16m (request line + headers: 431)
 *   limits.search_timeout_ms    10000         0..3600000 (0 = none; 504)
 *   limits.ingest_timeout_ms    300000        0..3600000 (0 = none; 504)
 *   log.level                   info          debug|info|warn|error
 *   models.embedder             "models/all-MiniLM-L6-v2.gguf"
 *   models.embedders            ""            name=path,... loaded on first use
 *   models.embed_batch          32            1..4096
 *   models.embed_threads        0 = CPUs      0..256
 *   models.embed_contexts       0 = CPUs      0..256
 *   models.generator            "models/SmolLM2-135M-Instruct-Q4_1.gguf"; "" = extractive answers
 *   models.gen_contexts         1             1..64
 *   models.gen_queue            16            0..100000
 *   models.gen_threads          0 = CPUs / gen_contexts  0..256
 *   models.gen_ctx              2048 tokens   0..131072 (0 = the model's, capped)
 *   rag.prompt_template         "" = built in; a file path, or the text itself
 *   rag.min_score               0.25          -1..1 (best dense cosine an answer needs)
 *   rag.top_k                   5             1..100
 *   rag.max_tokens              256           1..8192
 *   rag.history_messages        6             0..100
 *   rag.timeout_ms              60000         0..3600000 (0 = none)
 *   models.dir                  "models"      requests may name dir/<model>.gguf
 *   models.cache_capacity       10            1..1000 models loaded on demand (LRU)
 *   models.micro_batch          true          merge concurrent small embed calls
 *   models.micro_batch_window_us 2000         0..1000000 (waits only when others are embedding)
 *   models.embedder = "remote" uses the pool below instead of a GGUF file:
 *   models.remote.urls          ""            comma-separated http(s) base URLs
 *   models.remote.policy        round_robin   round_robin|hash|least_inflight
 *   models.remote.embed_model   "all-MiniLM-L6-v2"
 *   models.remote.chat_model    "SmolLM2-135M-Instruct-Q4_1"
 *   models.remote.n_ctx         8192          256..4194304
 *   models.remote.max_tokens    512           8..1048576
 *   models.remote.connect_timeout_ms 1000     1..600000
 *   models.remote.timeout_ms    30000         1..3600000 (one attempt)
 *   models.remote.deadline_ms   60000         1..3600000 (retries included)
 *   models.remote.health_interval_ms 1000     0..3600000 (0 = none)
 *   models.remote.health_path   "/health"
 *   models.remote.eject_after   2             1..1000
 *   models.remote.api_key_env   "OPENAI_API_KEY" (the variable's name, not the key)
 *   chunking.size               128 tokens    8..8192
 *   chunking.overlap            16            0..4096, less than chunking.size
 *   index.snapshot              true
 *   replication.poll_ms         100           10..600000 (was index.follow_interval_ms)
 *   replication.max_backoff_ms  1000          10..600000, at least poll_ms
 *   replication.redis_url       ""            pub/sub nudges between instances; "" = none
 *   replication.redis_channel   "ragd:changes"
 *   cache.backend               lru           none|lru|redis|redis-cluster|two-level
 *   cache.lru_bytes             64m           0..1024g
 *   cache.ttl_s                 3600          1..2592000 (search results, answers)
 *   cache.embedding_ttl_s       86400         1..2592000 (query embeddings)
 *   cache.redis.url             "redis://127.0.0.1:6379"  [redis://[user:pass@]]host:port[,...]
 *   cache.redis.timeout_ms      100           1..60000 (connect and command)
 *   cache.redis.pool_size       8             1..1024 idle connections per node
 *   cache.http_max_age_s        0             0..86400 (Cache-Control on GETs)
 *   chroma.url                  "http://127.0.0.1:8000"  (collections with index type "chroma")
 *   chroma.tenant               "default_tenant"
 *   chroma.database             "default_database"
 *   chroma.timeout_ms           30000         100..600000
 *   chroma.connect_timeout_ms   2000          10..60000
 *   ingest.max_file_bytes       64m           1k..4g; one document's bytes
 *   ingest.root                 ""            server-side paths allowed below it; "" = none
 *   ingest.job_workers          1             0..64
 *   ingest.job_lease_ms         30000         100..3600000
 *   store.backend               sqlite        sqlite|mongodb
 *   store.mongodb.uri           ""            mongodb://...; env RAGD_MONGODB_URI too
 *   store.mongodb.uri_file      ""            file holding the URI (a mounted secret)
 *   store.mongodb.database      ""            "" = the URI's database, else "ragd"
 *   store.mongodb.username      ""            overrides the URI's user
 *   store.mongodb.password_file ""            file holding the password (a mounted secret)
 *   store.mongodb.max_pool_size 100           1..1024 (maxPoolSize)
 *   store.mongodb.min_pool_size 0             0..1024 (minPoolSize)
 *   store.mongodb.max_idle_time_ms 30000      0..86400000 (maxIdleTimeMS)
 *   store.mongodb.server_selection_timeout_ms 5000  1..600000
 *   store.mongodb.connect_timeout_ms 10000    1..600000
 *   store.mongodb.socket_timeout_ms 20000     1..3600000
 *   store.mongodb.heartbeat_frequency_ms 10000 500..600000
 *   store.mongodb.read_preference primary     for search-path reads: primary|primaryPreferred|
 *                                             secondary|secondaryPreferred|nearest
 *   store.mongodb.write_majority true         write concern majority (else w:1)
 *   store.mongodb.lock_lease_ms 30000         100..3600000 (a dead writer's lock expires)
 *   store.mongodb.lock_timeout_ms 10000       0..600000 (then 503, retry)
 *   server.tls_cert             ""            PEM certificate file; with tls_key: HTTPS
 *   server.tls_key              ""            PEM private key file
 *   auth.enabled                false         off only allowed on a loopback server.host
 *   auth.keys                   ""            entries "f=v;f=v" joined by ","; YAML: a list of
 *                                             mappings (tenant, role, key_file | id + hash, ...)
 *   auth.key_cache_s            10            1..3600 (a store key is re-read after this)
 *   auth.requests_per_s         0 = no limit  0..1000000, per key (token bucket)
 *   auth.burst                  0 = max(1, requests_per_s)  0..1000000
 *   auth.ingest_bytes_per_day   0 = no limit  per key; bytes or k/m/g
 *   auth.tokens_per_day         0 = no limit  per key, generated tokens
 *   auth.quota_redis_url        "" = quotas per process; "redis://host:port": shared by
 *                                             every instance using that Redis
 *   auth.quota_redis_timeout_ms 50            1..60000 (then the request uses local limits)
 *   cors.allowed_origins        "" = CORS off; "*" or origins joined by "," (YAML: a list)
 *   cors.allowed_headers        "Authorization, Content-Type, X-Request-ID"
 *   cors.allowed_methods        "GET, POST, PATCH, DELETE, OPTIONS"
 *   cors.max_age_s              600           0..86400 (preflight cache)
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
		int connection_timeout_s;    /* idle keep-alive connections close after this */
		int workers;                 /* processes sharing the port; 0 = CPUs */
		int shutdown_timeout_s;      /* SIGTERM: in-flight requests get this long */
		char *tls_cert;              /* PEM files; both "" = plain HTTP */
		char *tls_key;
		size_t memory_limit_bytes;   /* for alerts; 0 = the cgroup's limit, if any */
	} server;
	struct {
		int max_top_k;
		int max_tokens;          /* largest max_tokens a generation request may ask for */
		int max_json_depth;      /* nesting of any JSON a client sends */
		int max_json_elements;   /* array elements and object members in it */
		size_t max_header_bytes; /* request line and headers (431 above it) */
		int search_timeout_ms;   /* deadline of one search; 0 = none (504 past it) */
		int ingest_timeout_ms;   /* deadline of one synchronous ingest; 0 = none */
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
		char *generator; /* "" = no generator: extractive answers */
		int gen_contexts;
		int gen_queue;
		int gen_threads;
		int gen_ctx;
		char *dir;                 /* GGUF files a request may name: dir/<model>.gguf */
		int cache_capacity;        /* models loaded on demand kept in the LRU */
		bool micro_batch;          /* merge concurrent small embed calls */
		int micro_batch_window_us; /* how long a batch waits for more callers */
		struct {
			char *urls;        /* comma-separated base URLs; "" = none */
			char *policy;      /* round_robin | hash | least_inflight */
			char *embed_model; /* model name sent upstream */
			char *chat_model;  /* generator's model name sent upstream */
			int n_ctx;         /* the remote generator's window */
			int max_tokens;
			int connect_timeout_ms;
			int timeout_ms;    /* one attempt */
			int deadline_ms;   /* one call, retries on other instances included */
			int health_interval_ms; /* 0 = no health checks */
			char *health_path;
			int eject_after;   /* consecutive failures that take an instance out */
			char *api_key_env; /* environment variable holding the API key; "" = none */
		} remote;
	} models;
	struct {
		char *prompt_template; /* "" = built in */
		double min_score;
		int top_k;
		int max_tokens;
		int history_messages;
		int timeout_ms;
	} rag;
	struct {
		int size;
		int overlap;
	} chunking;
	struct {
		bool snapshot;
	} index;
	struct {
		int poll_ms;        /* change-log polling while it moves */
		int max_backoff_ms; /* ... and at most this apart while it does not */
		char *redis_url;    /* "" = no pub/sub nudges */
		char *redis_channel;
	} replication;
	struct {
		char *backend;      /* checked by config_validate; parsed by cache_backend_parse */
		size_t lru_bytes;
		int ttl_s;
		int embedding_ttl_s;
		char *redis_url;
		int redis_timeout_ms;
		int redis_pool_size;
		int http_max_age_s;
	} cache;
	struct {
		char *url;
		char *tenant;
		char *database;
		int timeout_ms;         /* a whole request to the Chroma server */
		int connect_timeout_ms; /* its connection set-up */
	} chroma;
	struct {
		bool enabled;           /* off: every request is the default tenant's admin */
		char *keys;             /* configured keys (src/auth/auth.h parses them) */
		int key_cache_s;
		double requests_per_s;  /* per-key defaults; 0 = unlimited */
		int burst;
		size_t ingest_bytes_per_day;
		size_t tokens_per_day;
		char *quota_redis_url;  /* "" = per-process quotas */
		int quota_redis_timeout_ms;
	} auth;
	struct {
		char *allowed_origins;  /* "" = off */
		char *allowed_headers;
		char *allowed_methods;
		int max_age_s;
	} cors;
	struct {
		size_t max_file_bytes; /* one document's bytes (upload, batch item, CLI file) */
		char *root;            /* server-side paths only below this; "" = not accepted */
		int job_workers;       /* threads running ingest jobs in `ragd serve` */
		int job_lease_ms;      /* a dead worker's job is resumed after this */
	} ingest;
	struct {
		char *backend; /* "sqlite" or "mongodb" */
		struct config_mongodb {
			char *uri;      /* may hold credentials: never logged or dumped */
			char *uri_file; /* read at start-up when uri is empty (a Kubernetes secret) */
			char *database; /* "" = the URI's, else "ragd" */
			char *username;      /* overrides the URI's */
			char *password_file; /* the password, read at start-up (a secret) */
			int max_pool_size;
			int min_pool_size;
			int max_idle_time_ms;
			int server_selection_timeout_ms;
			int connect_timeout_ms;
			int socket_timeout_ms;
			int heartbeat_frequency_ms;
			char *read_preference; /* search-path reads: primary|...|secondaryPreferred */
			bool write_majority;
			int lock_lease_ms;
			int lock_timeout_ms;
		} mongodb;
	} store;
	struct {
		int shards;         /* 0 = not sharded; see rag/rag_shard.h */
		char *holds;        /* "0,2"; "" = from ordinal */
		int ordinal;        /* -1 = unset; else holds ordinal % shards (RAGD_SHARD_ORDINAL) */
		char *peers;        /* "URL=0,1 URL=1" */
		char *peer_pattern; /* "http://ragd-{i}.ragd-headless:8080" */
		int instances;      /* with peer_pattern */
		int vnodes;
		int timeout_ms;
		int backoff_ms;
	} sharding;
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
 * True for the keys whose YAML value may be a list (auth.keys,
 * cors.allowed_origins): config_load_file joins its items with "," (a
 * mapping item as "field=value;field=value") and sets the key once.
 */
bool config_key_is_list(const char *key);

/* True when host (an IPv4 literal or "localhost") is a loopback address. */
bool config_host_is_loopback(const char *host);

/*
 * Applies the YAML file at path: a mapping whose nested mappings flatten to
 * dotted keys (server: {port: 80} sets server.port). Lists (except where
 * config_key_is_list), aliases and
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
 * The cross-setting part of config_validate() (config_check.c): backends
 * and policies named, limits that bound other settings. Same returns.
 */
int config_check_relations(const struct config *cfg, struct rag_err *err);

/*
 * Appends cfg as a JSON object nested like the YAML file (sizes in bytes,
 * log.level by name) to sb. Returns 0 or RAG_ENOMEM (sb's sticky failure).
 */
int config_dump_json(const struct config *cfg, struct sbuf *sb);

/* configured when > 0, else the number of CPUs this process may run on (at
 * least 1): how the "0 = number of CPUs" settings are resolved. */
int config_cpu_count(int configured);

#endif
