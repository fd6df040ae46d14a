/*
 * `ragd serve`: listen first (so /health answers and /ready says 503 while
 * the models and indexes load), then load, then serve until SIGINT or
 * SIGTERM, then drain and save the index snapshots.
 */
#include "cli/cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "http/http.h"
#include "http/http_server.h"
#include "rag/rag_engine.h"
#include "store/store.h"

#include "core/banned.h"

int cli_serve(int argc, char **argv)
{
	struct cli_app app;
	struct http_ctx ctx = { 0 };
	struct http_server_options so;
	struct http_server *srv = NULL;
	struct rag_err err = { 0 };
	char host[256] = "localhost";
	sigset_t sigs;
	int sig = 0, rc = 1;

	if (cli_setup(&app, argc, argv, 2, NULL) < 0)
		goto out;
	if (app.n_args > 0) {
		fprintf(stderr, "ragd serve: unexpected argument '%s'\n", app.args[0]);
		goto out;
	}
	/* Every thread started from here on inherits the mask; main waits for them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	gethostname(host, sizeof(host) - 1);
	ctx.instance = host;
	ctx.tenant = STORE_DEFAULT_TENANT;
	ctx.max_body_bytes = app.cfg->server.max_body_bytes;
	atomic_init(&ctx.engine, NULL);
	so.host = app.cfg->server.host;
	so.port = app.cfg->server.port;
	so.threads = config_cpu_count(app.cfg->server.threads);
	so.max_connections = app.cfg->server.max_connections;
	so.connection_timeout_s = app.cfg->server.connection_timeout_s;
	srv = http_server_start(&so, &ctx, &err);
	if (!srv) {
		fprintf(stderr, "ragd: %s\n", err.msg);
		goto out;
	}
	log_kv(LOG_LEVEL_INFO, NULL, "listening on %s:%d (%d threads), data in %s", so.host,
	       http_server_port(srv), so.threads, app.cfg->data_dir);
	if (cli_open(&app, 1, 1, 1) < 0)
		goto out;
	atomic_store(&ctx.engine, app.eng);
	log_info("ready");
	if (sigwait(&sigs, &sig) == 0)
		log_info("signal %d: shutting down", sig);
	rc = 0;
out:
	http_server_stop(srv);
	cli_app_release(&app);
	return rc;
}
