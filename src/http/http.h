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

#include "auth/auth.h"
#include "core/sbuf.h"
#include "core/str.h"

struct generator;
struct model_cache;
struct rag_engine;
struct rag_err;

#define HTTP_MAX_PARAMS 4 /* {name} segments in one route */

/* What handlers share; owned by the server's creator. */
struct http_ctx {
	_Atomic(struct rag_engine *) engine; /* NULL until models and indexes are up */
	const char *instance;                /* host name, for /health */
	struct auth *auth;     /* keys, roles, quotas; off = every request is the default tenant's */
	const char *cors_origins; /* cors.allowed_origins: "" = CORS off, "*", or a list */
	const char *cors_headers; /* Access-Control-Allow-Headers of a preflight */
	const char *cors_methods; /* Access-Control-Allow-Methods of a preflight */
	int cors_max_age_s;
	size_t max_body_bytes;
	const char *ingest_root;    /* server-side paths allowed under this directory; "" = none */
	size_t max_file_bytes;      /* one uploaded or server-side file at most */
	int access_log;        /* one log line per request */
	int docs_enabled; /* environment != production */
	int http_max_age_s;    /* Cache-Control max-age of cacheable GETs (cache.http_max_age_s) */
	atomic_int draining;   /* set at SIGTERM: /ready answers 503 */
	struct generator *generator; /* chat completions' default model; NULL = none loaded */
	struct model_cache *models; /* models requests name, loaded on demand; NULL = none */
	const char *models_dir;     /* where they are looked up: models_dir/<name>.gguf */
	int model_threads;          /* threads an on-demand model computes with */
	int answer_top_k;      /* /query defaults: rag.top_k, rag.max_tokens */
	int answer_max_tokens;
};

/* Readiness as /ready reports it: 0, or RAG_EBUSY/RAG_EIO with the reason. */
int http_check_ready(struct http_ctx *ctx, struct rag_err *err);

struct http_req {
	const char *method;
	const char *path;
	const char *route;      /* the matched pattern, e.g. "/v1/collections/{name}" */
	int route_id;           /* index in the route table, -1 when none matched */
	enum auth_role min_role; /* the route's: AUTH_ROLE_NONE for public routes */
	int ingest;             /* the route's body counts against the ingest quota */
	int generates;          /* the route generates tokens (the daily token quota) */
	/*
	 * Who the request is served as: its key's tenant and role (auth off:
	 * the default tenant, admin). Every handler scopes what it touches by
	 * who.tenant; its strings stay valid until the server stops, so
	 * workers may keep a copy.
	 */
	struct auth_principal who;
	const char *request_id; /* from X-Request-ID or generated */
	char *params[HTTP_MAX_PARAMS]; /* route parameters, NUL-terminated, owned by the router */
	size_t n_params;
	const char *body; /* body_len bytes, NUL-terminated; "" when none */
	size_t body_len;
	struct http_ctx *ctx;
	void *conn;       /* the server's connection: for http_query and http_header only */
};

/* How errors are written: ragd's own shape, or OpenAI's on the OpenAI-compatible routes. */
enum http_error_style {
	HTTP_ERRORS_RAGD = 0, /* {"error":{"code","message","field"}} */
	HTTP_ERRORS_OPENAI,   /* {"error":{"message","type","param","code"}} */
};

struct http_stream;
/* The URL query parameter key, decoded, or NULL; borrowed for the request. */
const char *http_query_param(struct http_req *req, const char *key);

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
	/*
	 * Set by http_cacheable: a 200 gets this Cache-Control and an ETag (a
	 * hash of the body), and a request whose If-None-Match names that ETag
	 * gets 304 without the body, so a CDN or nginx can cache and
	 * revalidate. Static string or resp->cache_control_buf.
	 */
	const char *cache_control;
	char cache_control_buf[64];
	const char *x_cache; /* X-Cache: HIT, MISS or BYPASS (searches); static or NULL */
	enum http_error_style error_style; /* set by the handler before it decodes anything */
	int retry_after_s;          /* > 0: a Retry-After header (set for RAG_EBUSY) */
	struct http_stream *stream; /* set by http_async (http_stream.h): answered by a worker */
	const struct http_ctx *ctx; /* set by the server: its CORS settings */
};

typedef int (*http_handler_fn)(struct http_req *req, struct http_resp *resp);

/*
 * Writes `{"error":{"code","message","field"}}` with the code's HTTP status,
 * or with resp->error_style HTTP_ERRORS_OPENAI the OpenAI shape
 * `{"error":{"message","type","param","code"}}` (param = the field).
 */
void http_error(struct http_resp *resp, const struct rag_err *err);

/* Shorthand for an error built here: status from code. */
void http_errorf(struct http_resp *resp, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Marks a GET's response cacheable by shared caches for max_age_s seconds
 * (0: they must revalidate every time, which the ETag makes cheap).
 */
void http_cacheable(struct http_resp *resp, int max_age_s);
/* True for the paths that answer errors in OpenAI's shape (/v1/chat/..., /v1/embeddings, /v1/models). */
int http_is_openai_path(const char *path);

/* The engine, or NULL after writing 503 "starting" into resp. */
struct rag_engine *http_engine(struct http_req *req, struct http_resp *resp);

#endif
