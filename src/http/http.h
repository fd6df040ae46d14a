/*
 * The HTTP layer's shared types: a request as the handlers see it, the
 * response they fill, and the context every handler gets.
 *
 * Handlers run on libmicrohttpd's thread pool; they must not keep pointers
 * into the request after returning.
 */
#ifndef RAGD_HTTP_HTTP_H
#define RAGD_HTTP_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/sbuf.h"
#include "core/str.h"

struct rag_engine;
struct rag_err;

#define HTTP_MAX_PARAMS 4 /* {name} segments in one route */

/* What handlers share; owned by the server's creator. */
struct http_ctx {
	_Atomic(struct rag_engine *) engine; /* NULL until models and indexes are up */
	const char *instance;                /* host name, for /health */
	const char *tenant;                  /* the embedded default's one tenant */
	size_t max_body_bytes;
	const char *ingest_root;    /* server-side paths allowed under this directory; "" = none */
	size_t max_file_bytes;      /* one uploaded or server-side file at most */
	int access_log;        /* one log line per request */
	int docs_enabled; /* environment != production */
	atomic_int draining;   /* set at SIGTERM: /ready answers 503 */
};

/* Readiness as /ready reports it: 0, or RAG_EBUSY/RAG_EIO with the reason. */
int http_check_ready(struct http_ctx *ctx, struct rag_err *err);

struct http_req {
	const char *method;
	const char *path;
	const char *route;      /* the matched pattern, e.g. "/v1/collections/{name}" */
	int route_id;           /* index in the route table, -1 when none matched */
	const char *request_id; /* from X-Request-ID or generated */
	char *params[HTTP_MAX_PARAMS]; /* route parameters, NUL-terminated, owned by the router */
	size_t n_params;
	const char *body; /* body_len bytes, NUL-terminated; "" when none */
	size_t body_len;
	struct http_ctx *ctx;
	void *conn;       /* the server's connection: for http_query and http_header only */
};

/* The URL query parameter key, decoded, or NULL; borrowed for the request. */
const char *http_query(struct http_req *req, const char *key);

/* The request header name (case-insensitive), or NULL; borrowed for the request. */
const char *http_header(struct http_req *req, const char *name);

/* One part of a multipart/form-data body; borrowed for the callback. */
struct http_part {
	const char *name;         /* the form field's name */
	const char *filename;     /* NULL for a plain field */
	const char *content_type; /* NULL when the part has none */
	const char *data;         /* len bytes, NUL-terminated */
	size_t len;
};

/*
 * Calls cb for each part of the request's multipart/form-data body, in
 * order; cb returns 0 to go on or a negative RAG_E* code to stop. Returns
 * RAG_EINVAL (with a message in err) when the body is not multipart or is
 * malformed, else what cb returned last.
 */
int http_multipart_each(struct http_req *req,
			int (*cb)(void *ctx, const struct http_part *part, struct rag_err *err),
			void *ctx, struct rag_err *err);

struct http_resp {
	int status;
	struct sbuf body; /* JSON */
	const char *content_type;
};

typedef int (*http_handler_fn)(struct http_req *req, struct http_resp *resp);

/* Writes `{"error":{"code","message","field"}}` with the code's HTTP status. */
void http_error(struct http_resp *resp, const struct rag_err *err);

/* Shorthand for an error built here: status from code. */
void http_errorf(struct http_resp *resp, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The engine, or NULL after writing 503 "starting" into resp. */
struct rag_engine *http_engine(struct http_req *req, struct http_resp *resp);

#endif
