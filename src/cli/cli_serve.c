/*
 * `ragd serve`: listen first (so /health answers and /ready says 503 while
 * the models and indexes load), then load, then serve until a signal.
 *
 * Signals are taken synchronously by sigwait in the main thread (every
 * other thread has them blocked): SIGHUP reopens the log file; SIGTERM and
 * SIGINT drain, i.e. /ready turns 503, the listening socket closes, requests
 * in flight get up to server.shutdown_timeout_s to be answered, then the
 * index snapshots are saved and the store closed, and the exit status is 0.
 *
 * Authentication (src/auth/auth.h): with auth.enabled false every request
 * is the default tenant's admin, which is only allowed on a loopback
 * server.host; anything else refuses to start. Either way the start-up log
 * says which it is.
 *
 * With server.workers above 1 the process becomes a supervisor
 * (cli_workers.c) and each worker runs serve_one below. Every instance
 * (or worker) tells the others about its writes, so their change-log
 * followers look at once instead of at their next poll: workers through
 * the supervisor's shared memory, instances through Redis pub/sub when
 * replication.redis_url is set. A worker loads its models and indexes
 * before it listens (a single server listens first, for /health), so the
 * kernel never hands a loading worker connections it would answer 503.
 *
 * `ragd serve --check-config` validates the configuration, checks that the
 * model file is readable and the data directory usable, prints the
 * effective configuration as JSON and exits 0, or 1 naming the problem.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cache/cache.h"
#include "core/config.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "http/http.h"
#include "http/http_server.h"
#include "model/model_cache.h"
#include "obs/metrics.h"
#include "obs/process.h"
#include "rag/rag_engine.h"
#include "store/store.h"

#include "core/banned.h"

#define SERVE_SAMPLE_MS 1000 /* cpu_usage_percentage is averaged over this interval */

static int log_fd = -1; /* the log file's descriptor, kept across SIGHUP by dup2 */

static int open_log(const char *path)
{
	int fd;

	if (strcmp(path, "-") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "ragd: cannot open log file '%s': %s\n", path, strerror(errno));
		return -1;
	}
	if (log_fd < 0) {
		log_fd = fd;
		log_set_fd(log_fd);
		return 0;
	}
	/* Swap the file under the same descriptor: writers never see a closed fd. */
	dup2(fd, log_fd);
	close(fd);
	return 0;
}

/* The memory limit alerts compare against: configured, else the cgroup's. */
static double memory_limit(const struct config *cfg)
{
	char buf[64] = "";
	FILE *f;

	if (cfg->server.memory_limit_bytes > 0)
		return (double)cfg->server.memory_limit_bytes;
	f = fopen("/sys/fs/cgroup/memory.max", "r");
	if (!f)
		f = fopen("/sys/fs/cgroup/memory/memory.limit_in_bytes", "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	if (strncmp(buf, "max", 3) == 0)
		return 0;
	return strtod(buf, NULL) >= 1e18 ? 0 : strtod(buf, NULL);
}

static void ready_collector(void *ctx, struct sbuf *out)
{
	sbuf_addf(out, "# HELP ragd_ready 1 when /ready answers 200\n# TYPE ragd_ready gauge\n"
		       "ragd_ready %d\n", http_check_ready(ctx, NULL) == 0);
}

static void register_info(const struct config *cfg)
{
	static const char *const info_labels[] = { "version", "git_sha", NULL };
	static const char *const info_values[] = { RAGD_VERSION, RAGD_GIT_SHA, NULL };

	metric_set(metric_child(metrics_gauge("ragd_build_info", "ragd's version and commit",
					      info_labels),
				info_values),
		   1);
	metric_set(metric_default(metrics_gauge(
			   "ragd_memory_limit_bytes",
			   "Memory limit (server.memory_limit_bytes or the cgroup's); 0 = none known",
			   NULL)),
		   memory_limit(cfg));
	cache_metrics_register(); /* with cache.backend none too, so dashboards hold */
}

/*
 * The security settings' own checks: auth off only on loopback, TLS only
 * with a libmicrohttpd that has it. Prints and returns -1.
 */
static int check_security(const struct config *cfg)
{
	if (!cfg->auth.enabled && !config_host_is_loopback(cfg->server.host)) {
		fprintf(stderr, "ragd: auth.enabled: authentication is off but server.host '%s' is"
			" not a loopback address: set auth.enabled true with auth.keys, or listen on"
			" 127.0.0.1 (docs/security.md)\n", cfg->server.host);
		return -1;
	}
	if (cfg->server.tls_cert[0] && !http_server_tls_supported()) {
		fprintf(stderr, "ragd: server.tls_cert: this libmicrohttpd was built without TLS;"
			" terminate TLS at a reverse proxy (docs/security.md)\n");
		return -1;
	}
	return 0;
}

/* The auth registry from the config: configured keys loaded, store attached later. */
static struct auth *open_auth(const struct config *cfg)
{
	struct auth_options ao = {
		.enabled = cfg->auth.enabled,
		.keys = cfg->auth.keys,
		.defaults = { cfg->auth.requests_per_s, cfg->auth.burst,
			      (int64_t)cfg->auth.ingest_bytes_per_day,
			      (int64_t)cfg->auth.tokens_per_day },
		.key_cache_s = cfg->auth.key_cache_s,
		.quota_redis_url = cfg->auth.quota_redis_url,
		.quota_redis_timeout_ms = cfg->auth.quota_redis_timeout_ms,
	};
	struct rag_err err = { 0 };
	struct auth *a = auth_new(&ao, NULL, &err);

	if (!a)
		fprintf(stderr, "ragd: %s\n", err.msg);
	return a;
}

static int check_config(struct cli_app *app)
{
	struct sbuf sb = SBUF_INIT;
	int remote = strcmp(app->cfg->models.embedder, "remote") == 0;
	FILE *f = remote ? NULL : fopen(app->cfg->models.embedder, "rb");
	int rc = 0;

	if (remote) {
		/* The pool is checked when it starts: its instances may come up later. */
	} else if (!f) {
		fprintf(stderr, "ragd: models.embedder: cannot read '%s': %s\n",
			app->cfg->models.embedder, strerror(errno));
		rc = 1;
	} else {
		fclose(f);
	}
	if (mkdir(app->cfg->data_dir, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "ragd: data_dir: cannot create '%s': %s\n", app->cfg->data_dir,
			strerror(errno));
		rc = 1;
	} else if (access(app->cfg->data_dir, W_OK) < 0) {
		fprintf(stderr, "ragd: data_dir: '%s' is not writable\n", app->cfg->data_dir);
		rc = 1;
	}
	if (check_security(app->cfg) < 0)
		rc = 1;
	else
		auth_free(open_auth(app->cfg)); /* key entries and key files */
	config_dump_json(app->cfg, &sb);
	puts(sb.buf);
	sbuf_release(&sb);
	if (rc == 0)
		fprintf(stderr, "ragd: configuration OK\n");
	return rc;
}

static void serve_loop(struct cli_app *app, struct http_ctx *ctx, struct http_server *srv,
		       sigset_t *sigs)
{
	int sig = 0;

	for (;;) {
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			open_log(app->cfg->log.file);
			log_info("SIGHUP: log file reopened");
			continue;
		}
		break;
	}
	log_info("signal %d: draining (up to %d s)", sig, app->cfg->server.shutdown_timeout_s);
	atomic_store(&ctx->draining, 1);
	if (http_server_drain(srv, app->cfg->server.shutdown_timeout_s * 1000) > 0)
		log_warn("shutdown deadline passed with requests still running");
}

/* What the write hook and the notice callbacks need (serve_one's stack). */
struct serve_notify {
	struct http_ctx *ctx;
	struct cache_pubsub *pubsub; /* NULL without replication.redis_url */
	int workers;                 /* in workers mode: nudge the siblings */
};

/* The engine's on_change: another instance or worker should look at the log now. */
static void on_change(void *arg)
{
	struct serve_notify *sn = arg;

	if (sn->workers)
		cli_workers_notify();
	cache_pubsub_publish(sn->pubsub);
}

static void on_notice(void *arg)
{
	struct serve_notify *sn = arg;

	rag_engine_nudge(atomic_load(&sn->ctx->engine));
}

static void register_worker(int index, int generation)
{
	static const char *const labels[] = { "worker", NULL };
	char idx[16];
	const char *values[] = { idx, NULL };

	if (index < 0)
		return;
	snprintf(idx, sizeof(idx), "%d", index);
	metric_set(metric_child(metrics_gauge("ragd_worker_starts",
					      "Times this worker slot has been started by the "
					      "supervisor (1 = never restarted)", labels),
				values),
		   generation);
}

static int start_http(struct cli_app *app, struct http_ctx *ctx, int reuse_port,
		      struct http_server **out)
{
	struct http_server_options so;
	struct rag_err err = { 0 };

	so.host = app->cfg->server.host;
	so.port = app->cfg->server.port;
	so.threads = config_cpu_count(app->cfg->server.threads);
	so.max_connections = app->cfg->server.max_connections;
	so.connection_timeout_s = app->cfg->server.connection_timeout_s;
	so.reuse_port = reuse_port;
	so.tls_cert = app->cfg->server.tls_cert;
	so.tls_key = app->cfg->server.tls_key;
	so.max_header_bytes = app->cfg->limits.max_header_bytes;
	*out = http_server_start(&so, ctx, &err);
	if (!*out) {
		fprintf(stderr, "ragd: %s\n", err.msg);
		return -1;
	}
	log_info("listening on %s://%s:%d (%d threads, %s), data in %s",
		 so.tls_cert[0] ? "https" : "http", so.host, http_server_port(*out), so.threads,
		 app->cfg->environment, app->cfg->data_dir);
	if (auth_enabled(ctx->auth))
		log_info("authentication on: API keys required (Authorization: Bearer)");
	else
		log_warn("authentication is OFF: every request acts as tenant '%s' with the admin"
			 " role; allowed only because %s is loopback (auth.enabled)",
			 STORE_DEFAULT_TENANT, so.host);
	return 0;
}

/*
 * One server: the whole `ragd serve` when there are no workers (index -1),
 * else worker `index`, started for the generation-th time.
 */
static int serve_one(struct cli_app *app, int index, int generation)
{
	struct http_ctx ctx = { 0 };
	struct http_server *srv = NULL;
	struct serve_notify sn = { .ctx = &ctx, .workers = index >= 0 };
	struct rag_err err = { 0 };
	char host[256] = "localhost";
	sigset_t sigs;
	int rc = 1;

	/* Every thread started from here on inherits the mask; main waits for them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	gethostname(host, sizeof(host) - 1);
	ctx.instance = host;
	ctx.max_body_bytes = app->cfg->server.max_body_bytes;
	ctx.json_limits.max_depth = app->cfg->limits.max_json_depth;
	ctx.json_limits.max_elements = (size_t)app->cfg->limits.max_json_elements;
	ctx.max_top_k = app->cfg->limits.max_top_k;
	ctx.max_tokens = app->cfg->limits.max_tokens;
	ctx.gen_timeout_ms = app->cfg->rag.timeout_ms;
	ctx.ingest_root = app->cfg->ingest.root;
	ctx.max_file_bytes = app->cfg->ingest.max_file_bytes;
	ctx.access_log = app->cfg->log.access;
	ctx.docs_enabled = strcmp(app->cfg->environment, "production") != 0;
	ctx.http_max_age_s = app->cfg->cache.http_max_age_s;
	ctx.cors_origins = app->cfg->cors.allowed_origins;
	ctx.cors_headers = app->cfg->cors.allowed_headers;
	ctx.cors_methods = app->cfg->cors.allowed_methods;
	ctx.cors_max_age_s = app->cfg->cors.max_age_s;
	ctx.models = model_cache_new((size_t)app->cfg->models.cache_capacity);
	ctx.models_dir = app->cfg->models.dir;
	ctx.model_threads = config_cpu_count(app->cfg->models.gen_threads);
	atomic_init(&ctx.engine, NULL);
	atomic_init(&ctx.draining, 0);
	ctx.auth = open_auth(app->cfg);
	if (!ctx.auth)
		goto out;
	register_info(app->cfg);
	register_worker(index, generation);
	metrics_add_collector(ready_collector, &ctx);
	metrics_process_start(SERVE_SAMPLE_MS);
	/*
	 * A worker listens once ready: the kernel would hand a loading one its
	 * share of connections, to be answered 503 while a sibling could serve.
	 */
	if (index < 0 && start_http(app, &ctx, 0, &srv) < 0)
		goto out;
	if (app->cfg->replication.redis_url[0]) {
		struct cache_pubsub_options po = {
			.redis_url = app->cfg->replication.redis_url,
			.channel = app->cfg->replication.redis_channel,
			.timeout_ms = app->cfg->cache.redis_timeout_ms,
			.on_notice = on_notice,
			.ctx = &sn,
		};

		sn.pubsub = cache_pubsub_new(&po, &err);
		if (!sn.pubsub) {
			fprintf(stderr, "ragd: %s\n", err.msg);
			goto out;
		}
	}
	if (sn.workers && cli_workers_watch_start(on_notice, &sn) < 0) {
		fprintf(stderr, "ragd: cannot start the workers' notice thread\n");
		goto out;
	}
	app->on_change = on_change;
	app->on_change_ctx = &sn;
	if (cli_open(app, 1, 1, 1) < 0 || cli_open_generator(app) < 0)
		goto out;
	auth_set_store(ctx.auth, app->store);
	ctx.generator = app->gen;
	ctx.answer_top_k = app->cfg->rag.top_k;
	ctx.answer_max_tokens = app->cfg->rag.max_tokens;
	atomic_store(&ctx.engine, app->eng);
	if (!srv && start_http(app, &ctx, index >= 0, &srv) < 0)
		goto out;
	log_info("ready");
	serve_loop(app, &ctx, srv, &sigs);
	rc = 0;
out:
	http_server_stop(srv);
	/* Nothing may nudge the engine once it is freed. */
	cli_workers_watch_stop();
	cache_pubsub_free(sn.pubsub);
	metrics_remove_collector(ready_collector, &ctx);
	metrics_process_stop();
	cli_app_release(app);
	model_cache_free(ctx.models);
	auth_free(ctx.auth);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

static int serve_worker(void *arg, int index, int generation)
{
	return serve_one(arg, index, generation);
}

static void supervisor_hup(void *arg)
{
	struct cli_app *app = arg;

	open_log(app->cfg->log.file);
	log_info("SIGHUP: log file reopened; forwarded to the workers");
}

int cli_serve(int argc, char **argv)
{
	struct cli_app app;
	struct cli_workers_options wo = { 0 };
	struct auth *auth;
	int check = 0;
	const struct cli_flag flags[] = { { "--check-config", NULL, &check }, { NULL, NULL, NULL } };
	int rc = 1;

	if (cli_setup(&app, argc, argv, 2, flags) < 0)
		goto out;
	if (app.n_args > 0) {
		fprintf(stderr, "ragd serve: unexpected argument '%s'\n", app.args[0]);
		goto out;
	}
	if (check) {
		rc = check_config(&app);
		goto out;
	}
	if (open_log(app.cfg->log.file) < 0 || check_security(app.cfg) < 0)
		goto out;
	wo.n_workers = app.cfg->server.workers > 0 ? app.cfg->server.workers : config_cpu_count(0);
	if (wo.n_workers <= 1)
		return serve_one(&app, -1, 1);
	auth = open_auth(app.cfg); /* bad keys: refused here, not once per worker */
	if (!auth)
		goto out;
	auth_free(auth);
	wo.shutdown_timeout_s = app.cfg->server.shutdown_timeout_s;
	wo.on_hup = supervisor_hup;
	rc = cli_workers_run(&wo, serve_worker, &app);
	if (rc == 0)
		log_info("stopped");
out:
	cli_app_release(&app);
	return rc;
}
