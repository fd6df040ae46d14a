/*
 * The HTTP server: libmicrohttpd with epoll and a thread pool, bodies read
 * into memory up to a configured limit, requests dispatched by the router.
 *
 * Thread-safety: start and stop from one thread; handlers run on the pool.
 */
#ifndef RAGD_HTTP_HTTP_SERVER_H
#define RAGD_HTTP_HTTP_SERVER_H

#include <stddef.h>

struct http_ctx;
struct http_server;
struct rag_err;

struct http_server_options {
	const char *host;           /* address to bind, e.g. "127.0.0.1" or "0.0.0.0" */
	int port;                   /* 0 = any free port; see http_server_port() */
	int threads;                /* pool size, >= 1 */
	int max_connections;
	int connection_timeout_s;   /* idle keep-alive connections are closed after this */
	const char *tls_cert;       /* PEM files: both set = HTTPS (GnuTLS in libmicrohttpd); */
	const char *tls_key;        /* NULL or "" = plain HTTP */
};

/* True when this libmicrohttpd can serve HTTPS (built with GnuTLS). */
int http_server_tls_supported(void);

/* Starts serving with ctx (borrowed: it must outlive the server). NULL + err on failure. */
struct http_server *http_server_start(const struct http_server_options *opts,
				      struct http_ctx *ctx, struct rag_err *err);

/* The port actually bound. */
int http_server_port(struct http_server *srv);

/*
 * Graceful drain: closes the listening socket (new connections are
 * refused), then waits up to timeout_ms for requests in flight to be
 * answered. Returns how many were still running at the deadline.
 */
int http_server_drain(struct http_server *srv, int timeout_ms);

/* Stops serving (cutting what is still running) and frees (NULL-safe). */
void http_server_stop(struct http_server *srv);

#endif
