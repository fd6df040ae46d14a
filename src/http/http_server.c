/*
 * libmicrohttpd glue.
 *
 * MHD calls the access handler several times per request: first with the
 * headers (we allocate a per-request struct and check Content-Length
 * against the limit), then with body pieces (appended, the limit checked
 * again for chunked uploads), then once with no data (we route and run the
 * handler). A body over the limit is answered 413 at once and the rest of
 * it discarded. Shutdown quiesces the listening socket first, as the design
 * notes demand for suspended connections.
 *
 * Before a handler runs, the request is authorised (authorize): its
 * Authorization header is verified into a principal (tenant, role, key),
 * the route's least role checked (403), and the key's quotas admitted
 * (429 with Retry-After); with auth off every request is the default
 * tenant's admin. Public routes (health, readiness, metrics, docs) need no
 * key. CORS, when cors.allowed_origins is set, answers preflight OPTIONS
 * requests before any of that (browsers send no credentials on them) and
 * adds Access-Control-Allow-Origin to responses for allowed origins.
 * HTTPS, when server.tls_cert and tls_key are set, is libmicrohttpd's
 * (GnuTLS); otherwise TLS is the reverse proxy's job.
 *
 * poll, not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with its
 * own epoll workers over removing the listening socket from their epoll
 * sets, and whichever loses aborts the process ("Failed to remove listen FD
 * from epoll set"); it happened here about once in fifty shutdowns. With
 * poll, quiescing only sets flags. At the connection limit (1000 by
 * default) a poll set costs little next to the work each request does.
 *
 * Limits answer in JSON like every other error. libmicrohttpd itself only
 * drops connections over its limit and answers oversized headers with an
 * HTML 431, so ragd keeps both of its own just inside libmicrohttpd's: it
 * counts open connections (a request on one over server.max_connections gets
 * 503 with Retry-After and Connection: close; libmicrohttpd's limit, a
 * little higher, leaves room to say so), and adds up the request line and
 * headers (over limits.max_header_bytes: 431; the connection's memory pool
 * is twice that, so headers up to the limit always fit).
 */
#include "http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <sodium.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/str.h"
#include "http/http.h"
#include "http/http_auth.h"
#include "http/http_metrics.h"
#include "http/http_router.h"
#include "http/http_stream.h"

#include "core/banned.h"

#define HTTP_REQUEST_ID_MAX 64 /* longer client ids are replaced, not truncated */
#define HTTP_STOP_STREAMS_MS 10000 /* cancelled generations stop at their next token */
#define HTTP_CONN_SPARE 64 /* connections over the limit that can still be told 503 */

struct http_server {
	struct MHD_Daemon *d;
	struct http_ctx *ctx;
	char *tls_cert, *tls_key; /* PEM text given to libmicrohttpd; kept until stop */
	int port;
	int quiesced;
	atomic_int in_flight; /* requests begun whose response is not yet sent */
	atomic_int n_conns;   /* open connections */
	int max_conns;
	size_t max_header_bytes;
};

/* One request's state across libmicrohttpd's calls. */
struct conn {
	struct sbuf body;
	struct http_stream *stream; /* an asynchronous answer (http_stream.h) */
	int route_id;
	int queued;                 /* its response is queued */
	int too_big;
	int refuse;                 /* 503 (over max_conns) or 431 (headers), after the body */
	double start_ms;
	char request_id[HTTP_REQUEST_ID_MAX + 1];
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The client's X-Request-ID when it is short and plain, else a new random one. */
static void request_id(struct MHD_Connection *c, char *out)
{
	const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
	size_t len = id ? strlen(id) : 0;
	unsigned char raw[8];
	int ok = len > 0 && len <= HTTP_REQUEST_ID_MAX;

	for (size_t i = 0; ok && i < len; i++) {
		char ch = id[i];

		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == ':';
	}
	if (ok) {
		memcpy(out, id, len + 1);
		return;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 0, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Metrics and the access log line for a response about to be queued. */
static void finish(struct http_server *srv, struct conn *cn, const char *method, const char *url,
		   int route_id, int status)
{
	double ms = now_ms() - cn->start_ms;

	http_metrics_request(route_id, status, ms);
	/* Server errors are logged even with the access log off; /ready's 503 is its answer. */
	if (srv->ctx->access_log ||
	    (status >= 500 && strcmp(http_route_pattern((size_t)route_id), "/ready") != 0)) {
		struct sbuf f = SBUF_INIT;

		sbuf_addstr(&f, "\"request_id\":");
		sbuf_add_json_str(&f, cn->request_id, strlen(cn->request_id));
		sbuf_addstr(&f, ",\"method\":");
		sbuf_add_json_str(&f, method, strlen(method));
		sbuf_addstr(&f, ",\"route\":");
		sbuf_add_json_str(&f, http_route_pattern((size_t)route_id),
				  strlen(http_route_pattern((size_t)route_id)));
		sbuf_addstr(&f, ",\"path\":");
		sbuf_add_json_str(&f, url, strlen(url));
		sbuf_addf(&f, ",\"status\":%d,\"duration_ms\":%.3f", status, ms);
		log_kv(status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, f.buf, "request");
		sbuf_release(&f);
	}
}

/*
 * Decodes %HH in the URL like libmicrohttpd's default, except %00: a NUL
 * would cut the C string every layer reads, so "/c%00x" would act on "/c".
 * It stays as the three characters, which no name or id may contain.
 */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	size_t r = 0, w = 0;

	(void)cls, (void)c;
	while (s[r]) {
		int hi = s[r] == '%' ? str_hex_digit(s[r + 1]) : -1;
		int lo = hi >= 0 ? str_hex_digit(s[r + 2]) : -1;

		if (lo >= 0 && (hi | lo) != 0) {
			s[w++] = (char)(hi * 16 + lo);
			r += 3;
		} else {
			s[w++] = s[r++];
		}
	}
	s[w] = '\0';
	return w;
}

/*
 * A cacheable 200: its ETag is a hash of the body, so it changes exactly
 * when the content does (for a collection, with its change seq). When the
 * client's If-None-Match names it (or is "*"), the answer is 304 without
 * the body.
 */
static void etag(struct MHD_Connection *c, struct http_resp *resp, char out[36])
{
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	char hash[33];

	cache_hash_hex(resp->body.buf, resp->body.len, hash);
	snprintf(out, 36, "\"%s\"", hash);
	if (inm && (strstr(inm, out) || strcmp(inm, "*") == 0)) {
		resp->status = 304;
		sbuf_reset(&resp->body);
	}
}

/* Adds the CORS headers of an actual (not preflight) response. */
static void cors_headers(const struct http_ctx *ctx, struct MHD_Connection *c,
			 struct MHD_Response *r)
{
	const char *origin = http_cors_origin(ctx, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
									      "Origin"));

	if (!ctx->cors_origins || !ctx->cors_origins[0])
		return;
	MHD_add_response_header(r, "Vary", "Origin");
	if (!origin)
		return;
	MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
	MHD_add_response_header(r, "Access-Control-Expose-Headers",
				"X-Request-ID, Retry-After, X-Cache, ETag");
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct http_resp *resp,
				  const char *req_id, const char *allow)
{
	char tag[36] = "";
	int cacheable = resp->cache_control && resp->status == 200;
	size_t len;
	char *text;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (cacheable)
		etag(c, resp, tag);
	len = resp->body.len;
	text = sbuf_detach(&resp->body, NULL);

	if (!text) {
		text = strdup("{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\","
			      "\"field\":null}}");
		len = text ? strlen(text) : 0;
		resp->status = 503;
	}
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
				resp->content_type ? resp->content_type : "application/json");
	MHD_add_response_header(r, "X-Request-ID", req_id);
	if (cacheable) {
		MHD_add_response_header(r, "ETag", tag);
		MHD_add_response_header(r, "Cache-Control", resp->cache_control);
	}
	if (resp->x_cache)
		MHD_add_response_header(r, "X-Cache", resp->x_cache);
	if (allow)
		MHD_add_response_header(r, "Allow", allow);
	if (resp->status == 401)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"ragd\"");
	if (resp->ctx)
		cors_headers(resp->ctx, c, r);
	if (resp->close)
		MHD_add_response_header(r, "Connection", "close");
	if (resp->retry_after_s > 0) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%d", resp->retry_after_s);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	ret = MHD_queue_response(c, (unsigned int)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static void reply_status(struct http_server *srv, struct MHD_Connection *c, struct conn *cn,
			 int status, int code, const char *method, const char *url, size_t limit)
{
	struct http_resp resp = { .status = status, .ctx = srv->ctx };
	char allow[64] = "";

	sbuf_init(&resp.body, 0);
	if (http_is_openai_path(url))
		resp.error_style = HTTP_ERRORS_OPENAI;
	if (status == 405)
		http_route_allowed(url, allow, sizeof(allow));
	if (status == 413)
		http_errorf(&resp, RAG_ETOOBIG, "body", "request body is larger than %zu bytes",
			    limit);
	else if (status == 405 && resp.error_style == HTTP_ERRORS_OPENAI)
		sbuf_addf(&resp.body, "{\"error\":{\"message\":\"method %s is not allowed on this "
			  "path\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
			  "\"method_not_allowed\"}}", method);
	else if (status == 405)
		sbuf_addf(&resp.body, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":"
			  "\"method %s is not allowed on this path\",\"field\":null}}", method);
	else
		http_errorf(&resp, code, NULL, "no route for %s %s", method, url);
	resp.status = status;
	finish(srv, cn, method, url, -1, status);
	send_resp(c, &resp, cn->request_id, status == 405 ? allow : NULL);
	sbuf_release(&resp.body);
}

/* A CORS preflight (OPTIONS with Origin): 204 with the allowances, 403, or 404. */
static void preflight(struct http_server *srv, struct MHD_Connection *c, const char *url,
		      struct conn *cn)
{
	const struct http_ctx *ctx = srv->ctx;
	const char *origin = http_cors_origin(ctx, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
									      "Origin"));
	struct http_resp resp = { .status = 204, .ctx = srv->ctx };
	struct MHD_Response *r;
	char allow[64] = "", age[16];

	sbuf_init(&resp.body, 0);
	http_route_allowed(url, allow, sizeof(allow));
	if (!allow[0] || !origin) {
		if (!allow[0])
			http_errorf(&resp, RAG_ENOTFOUND, NULL, "no route for %s", url);
		else
			http_errorf(&resp, RAG_EFORBIDDEN, "origin",
				    "origin not allowed (cors.allowed_origins)");
		finish(srv, cn, "OPTIONS", url, -1, resp.status);
		send_resp(c, &resp, cn->request_id, NULL);
		sbuf_release(&resp.body);
		return;
	}
	r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (r) {
		snprintf(age, sizeof(age), "%d", ctx->cors_max_age_s);
		MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
		MHD_add_response_header(r, "Access-Control-Allow-Methods", ctx->cors_methods);
		MHD_add_response_header(r, "Access-Control-Allow-Headers", ctx->cors_headers);
		MHD_add_response_header(r, "Access-Control-Max-Age", age);
		MHD_add_response_header(r, "Vary", "Origin");
		MHD_add_response_header(r, "X-Request-ID", cn->request_id);
		finish(srv, cn, "OPTIONS", url, -1, 204);
		MHD_queue_response(c, 204, r);
		MHD_destroy_response(r);
	}
	sbuf_release(&resp.body);
}

/* The 503 and 431 of the limits in the file comment. */
static void reply_refused(struct http_server *srv, struct MHD_Connection *c, struct conn *cn,
			  const char *method, const char *url)
{
	struct http_resp resp = { 0 };

	sbuf_init(&resp.body, 0);
	if (http_is_openai_path(url))
		resp.error_style = HTTP_ERRORS_OPENAI;
	if (cn->refuse == 503) {
		http_errorf(&resp, RAG_EBUSY, NULL,
			    "too many open connections (server.max_connections is %d): retry later",
			    srv->max_conns);
		resp.retry_after_s = 1;
		resp.close = 1;
	} else {
		http_errorf(&resp, RAG_ETOOBIG, "headers",
			    "request line and headers are larger than %zu bytes "
			    "(limits.max_header_bytes)", srv->max_header_bytes);
	}
	resp.status = cn->refuse;
	finish(srv, cn, method, url, -1, resp.status);
	send_resp(c, &resp, cn->request_id, NULL);
	sbuf_release(&resp.body);
}

static enum MHD_Result add_header_len(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	size_t *n = cls;

	(void)kind;
	*n += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
	return MHD_YES;
}

/* Whether this request must be refused before it runs (see reply_refused). */
static int refusal(struct http_server *srv, struct MHD_Connection *c, const char *method,
		   const char *url)
{
	size_t n = strlen(method) + strlen(url) + sizeof(" HTTP/1.1\r\n");

	if (atomic_load(&srv->n_conns) > srv->max_conns)
		return 503;
	if (srv->max_header_bytes) {
		MHD_get_connection_values(c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_header_len,
					  &n);
		if (n > srv->max_header_bytes)
			return 431;
	}
	return 0;
}

static void dispatch(struct http_server *srv, struct MHD_Connection *c, const char *method,
		     const char *url, struct conn *cn)
{
	struct http_req req = { 0 };
	struct http_resp resp = { .status = 200, .ctx = srv->ctx };
	http_handler_fn fn;
	int status = 404;

	req.route_id = -1;
	if (strcmp(method, "OPTIONS") == 0 && srv->ctx->cors_origins &&
	    srv->ctx->cors_origins[0]) {
		preflight(srv, c, url, cn);
		return;
	}
	fn = http_route(method, url, &req, &status);
	if (!fn) {
		reply_status(srv, c, cn, status, RAG_ENOTFOUND, method, url, 0);
		return;
	}
	req.request_id = cn->request_id;
	req.method = method;
	req.path = url;
	req.body = cn->body.buf;
	req.body_len = cn->body.len;
	req.ctx = srv->ctx;
	req.conn = c;
	sbuf_init(&resp.body, 0);
	if (http_is_openai_path(url))
		resp.error_style = HTTP_ERRORS_OPENAI;
	if (http_authorize(&req, &resp) == 0)
		fn(&req, &resp);
	http_private_cache(&req, &resp);
	if (resp.stream) {
		cn->stream = resp.stream;
		cn->route_id = req.route_id;
		if (http_stream_launch(cn->stream, srv, c, cn->request_id) == 0) {
			sbuf_release(&resp.body);
			http_route_release(&req);
			return; /* suspended: the worker resumes it (on_request again) */
		}
		http_errorf(&resp, RAG_EBUSY, NULL, "no thread to answer with");
	}
	send_resp(c, &resp, cn->request_id, NULL); /* may turn a 200 into a 304 */
	finish(srv, cn, method, url, req.route_id, resp.status);
	sbuf_release(&resp.body);
	http_route_release(&req);
}

/* Called again once a worker has resumed the connection: queue what it decided. */
static void resume_stream(struct http_server *srv, struct MHD_Connection *c, const char *method,
			  const char *url, struct conn *cn)
{
	struct http_resp resp = { .status = 503, .ctx = srv->ctx };
	struct MHD_Response *r;
	enum http_stream_state st;

	if (cn->queued)
		return;
	sbuf_init(&resp.body, 0);
	if (http_is_openai_path(url))
		resp.error_style = HTTP_ERRORS_OPENAI;
	st = http_stream_take(cn->stream, &resp);
	resp.ctx = srv->ctx; /* the worker's reply does not carry it */
	if (st == HTTP_STREAM_PENDING) {
		sbuf_release(&resp.body);
		return;
	}
	cn->queued = 1;
	if (st == HTTP_STREAM_EVENTS) {
		r = http_stream_response(cn->stream);
		if (r) {
			MHD_add_response_header(r, "X-Request-ID", cn->request_id);
			cors_headers(srv->ctx, c, r);
			finish(srv, cn, method, url, cn->route_id, 200);
			MHD_queue_response(c, 200, r);
			MHD_destroy_response(r);
			sbuf_release(&resp.body);
			return;
		}
		st = HTTP_STREAM_ABORTED;
	}
	if (st == HTTP_STREAM_ABORTED)
		http_errorf(&resp, RAG_EBUSY, NULL, "the request was cancelled: ragd is stopping");
	finish(srv, cn, method, url, cn->route_id, resp.status);
	send_resp(c, &resp, cn->request_id, NULL);
	sbuf_release(&resp.body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct conn *cn = *con_cls;
	size_t limit = srv->ctx->max_body_bytes;

	(void)version;
	if (!cn) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return MHD_NO;
		sbuf_init(&cn->body, 0);
		cn->start_ms = now_ms();
		request_id(c, cn->request_id);
		atomic_fetch_add(&srv->in_flight, 1);
		*con_cls = cn;
		cn->refuse = refusal(srv, c, method, url);
		if (cl && strtoull(cl, NULL, 10) > limit)
			cn->too_big = 1;
		return MHD_YES;
	}
	if (cn->stream) {
		resume_stream(srv, c, method, url, cn);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!cn->too_big && cn->body.len + *upload_size > limit)
			cn->too_big = 1;
		if (!cn->too_big && !cn->refuse)
			sbuf_add(&cn->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (cn->refuse) {
		reply_refused(srv, c, cn, method, url);
		return MHD_YES;
	}
	if (cn->too_big || sbuf_error(&cn->body)) {
		reply_status(srv, c, cn, 413, RAG_ETOOBIG, method, url, limit);
		return MHD_YES;
	}
	dispatch(srv, c, method, url, cn);
	return MHD_YES;
}

const char *http_query_param(struct http_req *req, const char *key)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key)
			 : NULL;
}

const char *http_header(struct http_req *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct conn *cn = *con_cls;

	(void)c, (void)toe;
	if (!cn)
		return;
	if (cn->stream) {
		http_stream_close(cn->stream);
		http_stream_unref(cn->stream);
	}
	sbuf_release(&cn->body);
	free(cn);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;

	(void)c, (void)socket_context;
	atomic_fetch_add(&srv->n_conns, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
	http_metrics_connection(code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

int http_server_tls_supported(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

/* Reads a PEM file (small) into a new NUL-terminated string, or NULL with err. */
static char *read_pem(const char *path, const char *field, struct rag_err *err)
{
	FILE *f = fopen(path, "rb");
	struct sbuf sb = SBUF_INIT;
	char buf[4096];
	size_t n;

	if (!f) {
		rag_err_set(err, RAG_EINVAL, field, "%s: cannot read '%s': %s", field, path,
			    strerror(errno));
		return NULL;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb.len < (1 << 20))
		sbuf_add(&sb, buf, n);
	fclose(f);
	if (sbuf_error(&sb) || sb.len == 0) {
		rag_err_set(err, RAG_EINVAL, field, "%s: '%s' is empty or unreadable", field, path);
		sbuf_release(&sb);
		return NULL;
	}
	return sbuf_detach(&sb, NULL);
}

/* Loads the certificate and key when HTTPS is configured: 0, or an error. */
static int tls_setup(struct http_server *srv, const struct http_server_options *o,
		     struct rag_err *err)
{
	if (!o->tls_cert || !o->tls_cert[0])
		return 0;
	if (!http_server_tls_supported())
		return rag_err_set(err, RAG_EUNSUPPORTED, "server.tls_cert",
				   "server.tls_cert: this libmicrohttpd was built without TLS;"
				   " terminate TLS at a reverse proxy (docs/security.md)");
	srv->tls_cert = read_pem(o->tls_cert, "server.tls_cert", err);
	srv->tls_key = srv->tls_cert ? read_pem(o->tls_key, "server.tls_key", err) : NULL;
	return srv->tls_key ? 0 : RAG_EINVAL;
}

static void tls_release(struct http_server *srv)
{
	if (srv->tls_key)
		sodium_memzero(srv->tls_key, strlen(srv->tls_key));
	free(srv->tls_cert);
	free(srv->tls_key);
}

struct http_server *http_server_start(const struct http_server_options *o, struct http_ctx *ctx,
				      struct rag_err *err)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_in addr = { 0 };
	const union MHD_DaemonInfo *info;
	struct MHD_OptionItem reuse[] = { { MHD_OPTION_END, 1, NULL }, { MHD_OPTION_END, 0, NULL } };

	if (!srv || http_metrics_init() < 0) {
		free(srv);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	atomic_init(&srv->in_flight, 0);
	atomic_init(&srv->n_conns, 0);
	srv->max_conns = o->max_connections;
	srv->max_header_bytes = o->max_header_bytes;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
		rag_err_set(err, RAG_EINVAL, "server.host", "'%s' is not an IPv4 address", o->host);
		free(srv);
		return NULL;
	}
	/*
	 * Without the option MHD sets SO_REUSEADDR (a restart binds past
	 * TIME_WAIT); with it set to 1, SO_REUSEPORT too; set to 0 it would
	 * set neither.
	 */
	reuse[0].option = o->reuse_port ? MHD_OPTION_LISTENING_ADDRESS_REUSE : MHD_OPTION_END;
	srv->ctx = ctx;
	if (tls_setup(srv, o, err) < 0) {
		tls_release(srv);
		free(srv);
		return NULL;
	}
	/* Without TLS, MHD_OPTION_END stands where the certificate option would: the rest is unread. */
	srv->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
					  MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
					  (srv->tls_cert ? MHD_USE_TLS : 0),
				  (uint16_t)o->port, NULL, NULL, on_request, srv,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				  MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)o->threads,
				  MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int)o->max_connections + HTTP_CONN_SPARE,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				  o->max_header_bytes ? 2 * o->max_header_bytes : (size_t)32 * 1024,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->connection_timeout_s,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				  MHD_OPTION_UNESCAPE_CALLBACK, unescape, srv,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
				  MHD_OPTION_ARRAY, reuse,
				  srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
				  srv->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, srv->tls_key,
				  MHD_OPTION_END);
	if (!srv->d && srv->tls_cert) {
		tls_release(srv);
		rag_err_set(err, RAG_EIO, "server.tls_cert",
			    "cannot listen on %s:%d with HTTPS: port in use, or server.tls_cert and"
			    " server.tls_key are not a matching PEM certificate and key", o->host,
			    o->port);
		free(srv);
		return NULL;
	}
	if (!srv->d) {
		rag_err_set(err, RAG_EIO, "server.port", "cannot listen on %s:%d (in use?)", o->host,
			    o->port);
		free(srv);
		return NULL;
	}
	info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : o->port;
	return srv;
}

int http_server_port(struct http_server *srv)
{
	return srv->port;
}

int http_server_drain(struct http_server *srv, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	int left;

	if (!srv)
		return 0;
	MHD_quiesce_daemon(srv->d);
	srv->quiesced = 1;
	while ((left = atomic_load(&srv->in_flight)) > 0 && now_ms() < deadline)
		usleep(10000);
	return left;
}

void http_server_stop(struct http_server *srv)
{
	double deadline = now_ms() + HTTP_STOP_STREAMS_MS;

	if (!srv)
		return;
	if (!srv->quiesced)
		MHD_quiesce_daemon(srv->d);
	/*
	 * MHD_stop_daemon aborts while a connection is suspended: cancel the
	 * streams, let their connections finish and their workers (which use
	 * the engine the caller frees next) return.
	 */
	while (http_stream_cancel_all() > 0 && now_ms() < deadline)
		usleep(10000);
	/* Workers end at their next token (or their deadline): waiting is bounded. */
	while (http_stream_workers() > 0) {
		if (now_ms() > deadline) {
			log_warn("waiting for %d answer workers to stop", http_stream_workers());
			deadline = now_ms() + HTTP_STOP_STREAMS_MS;
		}
		usleep(10000);
	}
	MHD_stop_daemon(srv->d);
	tls_release(srv);
	free(srv);
}
