/*
 * The Chroma HTTP API v2 client: transport and calls (bodies are in
 * chroma_codec.c).
 *
 * One libcurl easy handle per call in flight, taken from a small pool and
 * put back afterwards, so a handle's kept-alive connection serves the next
 * call and concurrent calls never share a handle (libcurl handles are not
 * thread-safe). The pool only grows to CHROMA_POOL_MAX idle handles; more
 * concurrent calls get fresh handles that are freed after use. Rejected:
 * the multi interface (it pays off with many transfers in flight on one
 * thread; here each caller waits for its own answer) and a share handle for
 * the connection cache (it needs lock callbacks for the same effect).
 *
 * Every call is bounded by the client's timeouts and runs with
 * CURLOPT_NOSIGNAL (no SIGALRM in a threaded server), so a server that is
 * down or hangs costs a caller at most timeout_ms.
 */
#include "index/chroma_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

#define CHROMA_POOL_MAX 16 /* idle handles kept: more than the server's worker threads */
#define CHROMA_API "/api/v2"

struct chroma_client {
	char *url;      /* without a trailing '/' */
	char *base;     /* url + "/api/v2/tenants/<t>/databases/<db>", escaped */
	char *tenant;   /* as configured, for bodies and messages */
	char *tenant_path; /* escaped for paths */
	char *database;
	long timeout_ms, connect_timeout_ms;
	struct curl_slist *headers;

	pthread_mutex_t mu; /* guards idle, n_idle and ensured */
	CURL *idle[CHROMA_POOL_MAX];
	size_t n_idle;
	int ensured; /* the tenant and the database exist */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct chroma_client_options chroma_client_default_options(void)
{
	return (struct chroma_client_options){
		.url = "http://127.0.0.1:8000",
		.tenant = "default_tenant",
		.database = "default_database",
		.timeout_ms = 30000,
		.connect_timeout_ms = 2000,
	};
}

const char *chroma_client_url(const struct chroma_client *cl)
{
	return cl->url;
}

const char *chroma_client_tenant(const struct chroma_client *cl)
{
	return cl->tenant;
}

const char *chroma_client_database(const struct chroma_client *cl)
{
	return cl->database;
}

void chroma_client_free(struct chroma_client *cl)
{
	if (!cl)
		return;
	for (size_t i = 0; i < cl->n_idle; i++)
		curl_easy_cleanup(cl->idle[i]);
	curl_slist_free_all(cl->headers);
	pthread_mutex_destroy(&cl->mu);
	free(cl->url);
	free(cl->base);
	free(cl->tenant);
	free(cl->tenant_path);
	free(cl->database);
	free(cl);
}

static char *escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	return copy;
}

struct chroma_client *chroma_client_new(const struct chroma_client_options *opts,
					struct rag_err *err)
{
	struct chroma_client *cl;
	struct sbuf base = SBUF_INIT;
	char *db_path = NULL;
	size_t len;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		rag_err_set(err, RAG_EINTERNAL, NULL, "cannot initialise libcurl: %s",
			    curl_easy_strerror(global_rc));
		return NULL;
	}
	if (!opts->url || (strncmp(opts->url, "http://", 7) != 0 &&
			   strncmp(opts->url, "https://", 8) != 0)) {
		rag_err_set(err, RAG_EINVAL, "chroma.url", "chroma.url must start with http:// or https://");
		return NULL;
	}
	if (!opts->tenant || !*opts->tenant || !opts->database || !*opts->database) {
		rag_err_set(err, RAG_EINVAL, "chroma.tenant", "Chroma tenant and database must not be empty");
		return NULL;
	}
	if (opts->timeout_ms <= 0 || opts->connect_timeout_ms <= 0) {
		rag_err_set(err, RAG_EINVAL, "chroma.timeout_ms", "Chroma timeouts must be positive");
		return NULL;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&cl->mu, NULL);
	cl->url = strdup(opts->url);
	cl->tenant = strdup(opts->tenant);
	cl->database = strdup(opts->database);
	cl->tenant_path = escape(opts->tenant);
	db_path = escape(opts->database);
	cl->timeout_ms = opts->timeout_ms;
	cl->connect_timeout_ms = opts->connect_timeout_ms;
	cl->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!cl->url || !cl->tenant || !cl->database || !cl->tenant_path || !db_path ||
	    !cl->headers) {
		free(db_path);
		chroma_client_free(cl);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	len = strlen(cl->url);
	while (len > 0 && cl->url[len - 1] == '/')
		cl->url[--len] = '\0';
	sbuf_addf(&base, "%s" CHROMA_API "/tenants/%s/databases/%s", cl->url, cl->tenant_path,
		  db_path);
	free(db_path);
	cl->base = sbuf_detach(&base, NULL);
	if (!cl->base) {
		chroma_client_free(cl);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	return cl;
}

static CURL *handle_get(struct chroma_client *cl)
{
	CURL *h = NULL;

	pthread_mutex_lock(&cl->mu);
	if (cl->n_idle > 0)
		h = cl->idle[--cl->n_idle];
	pthread_mutex_unlock(&cl->mu);
	return h ? h : curl_easy_init();
}

static void handle_put(struct chroma_client *cl, CURL *h)
{
	pthread_mutex_lock(&cl->mu);
	if (cl->n_idle < CHROMA_POOL_MAX) {
		cl->idle[cl->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&cl->mu);
	if (h)
		curl_easy_cleanup(h);
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sbuf *sb = ctx;

	sbuf_add(sb, p, size * n);
	return sbuf_error(sb) ? 0 : size * n;
}

/* Translates an HTTP error status and Chroma's error body into a code. */
static int status_error(const char *method, const char *url, long status,
			const struct sbuf *reply, struct rag_err *err)
{
	char msg[RAG_ERR_MSG_MAX / 2];
	int code;

	chroma_decode_error(reply->buf, reply->len, msg, sizeof(msg));
	if (status == 404)
		code = RAG_ENOTFOUND;
	else if (status == 409)
		code = RAG_ECONFLICT;
	else if (status == 502 || status == 503 || status == 504)
		code = RAG_EBUSY;
	else if (status >= 400 && status < 500)
		code = RAG_EINTERNAL;
	else
		code = RAG_EIO;
	return rag_err_set(err, code, NULL, "Chroma %s %s answered %ld: %s", method, url, status,
			   msg);
}

/*
 * One request: method and path (appended to base when path starts with '/',
 * else a full URL), body may be NULL. 2xx answers leave the body in reply
 * and return 0; anything else returns the translated code.
 */
static int request(struct chroma_client *cl, const char *method, const char *url,
		   const struct sbuf *body, struct sbuf *reply, struct rag_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = handle_get(cl);
	long status = 0;
	CURLcode cc;

	sbuf_reset(reply);
	if (!h)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for a Chroma request");
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cl->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cl->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, cl->headers);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->buf);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	handle_put(cl, h);
	if (cc != CURLE_OK) {
		if (sbuf_error(reply))
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for Chroma's answer");
		return rag_err_set(err, RAG_EBUSY, NULL, "Chroma at '%s' is unavailable: %s",
				   cl->url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
	if (status < 200 || status > 299)
		return status_error(method, url, status, reply, err);
	return 0;
}

/* request() on base + the printf-formatted path. */
static int call(struct chroma_client *cl, const char *method, const struct sbuf *body,
		struct sbuf *reply, struct rag_err *err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static int call(struct chroma_client *cl, const char *method, const struct sbuf *body,
		struct sbuf *reply, struct rag_err *err, const char *fmt, ...)
{
	struct sbuf url = SBUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	sbuf_vaddf(&url, fmt, ap);
	va_end(ap);
	if (sbuf_error(&url))
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	rc = request(cl, method, url.buf, body, reply, err);
	sbuf_release(&url);
	return rc;
}

int chroma_heartbeat(struct chroma_client *cl, struct rag_err *err)
{
	struct sbuf reply = SBUF_INIT;
	int rc = call(cl, "GET", NULL, &reply, err, "%s" CHROMA_API "/heartbeat", cl->url);

	sbuf_release(&reply);
	return rc;
}

/* GET what; when it is missing, POST {"name": name} to where. */
static int ensure_one(struct chroma_client *cl, const char *what, const char *where,
		      const char *name, struct sbuf *reply, struct rag_err *err)
{
	struct sbuf body = SBUF_INIT;
	struct rag_err gerr = { 0 };
	int rc = call(cl, "GET", NULL, reply, &gerr, "%s", what);

	if (rc != RAG_ENOTFOUND)
		return rc < 0 ? rag_err_set(err, rc, NULL, "%s", gerr.msg) : 0;
	sbuf_addstr(&body, "{\"name\":");
	sbuf_add_json_str(&body, name, strlen(name));
	sbuf_addch(&body, '}');
	rc = sbuf_error(&body) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory")
			       : call(cl, "POST", &body, reply, err, "%s", where);
	sbuf_release(&body);
	return rc == RAG_ECONFLICT ? 0 : rc; /* created meanwhile by someone else */
}

/* Creates the tenant and the database when missing, once per client. */
static int ensure_database(struct chroma_client *cl, struct sbuf *reply, struct rag_err *err)
{
	struct sbuf what = SBUF_INIT, where = SBUF_INIT;
	int done, rc;

	pthread_mutex_lock(&cl->mu);
	done = cl->ensured;
	pthread_mutex_unlock(&cl->mu);
	if (done)
		return 0;
	sbuf_addf(&what, "%s" CHROMA_API "/tenants/%s", cl->url, cl->tenant_path);
	sbuf_addf(&where, "%s" CHROMA_API "/tenants", cl->url);
	rc = sbuf_error(&what) || sbuf_error(&where)
		     ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory")
		     : ensure_one(cl, what.buf, where.buf, cl->tenant, reply, err);
	if (rc == 0) {
		sbuf_reset(&where);
		sbuf_addf(&where, "%s" CHROMA_API "/tenants/%s/databases", cl->url,
			  cl->tenant_path);
		rc = sbuf_error(&where) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory")
					: ensure_one(cl, cl->base, where.buf, cl->database, reply,
						     err);
	}
	sbuf_release(&what);
	sbuf_release(&where);
	if (rc == 0) {
		pthread_mutex_lock(&cl->mu);
		cl->ensured = 1;
		pthread_mutex_unlock(&cl->mu);
	}
	return rc;
}

int chroma_collection_ensure(struct chroma_client *cl, const char *name,
			     const struct chroma_collection_params *p, char id_out[CHROMA_ID_MAX],
			     struct rag_err *err)
{
	struct sbuf body = SBUF_INIT, reply = SBUF_INIT;
	size_t have_dim = 0;
	int rc = ensure_database(cl, &reply, err);

	if (rc < 0)
		goto out;
	sbuf_addstr(&body, "{\"name\":");
	sbuf_add_json_str(&body, name, strlen(name));
	sbuf_addf(&body, ",\"get_or_create\":true,\"configuration\":{\"hnsw\":{\"space\":\"ip\","
			 "\"max_neighbors\":%zu,\"ef_construction\":%zu,\"ef_search\":%zu}},"
			 "\"metadata\":{\"ragd_dim\":%zu}}",
		  p->max_neighbors, p->ef_construction, p->ef_search, p->dim);
	if (sbuf_error(&body)) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	rc = call(cl, "POST", &body, &reply, err, "%s/collections", cl->base);
	if (rc == 0)
		rc = chroma_decode_collection(reply.buf, reply.len, id_out, &have_dim, err);
	if (rc == 0 && have_dim != 0 && have_dim != p->dim)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL,
				 "Chroma collection '%s' holds vectors of %zu dimensions, not %zu",
				 name, have_dim, p->dim);
out:
	sbuf_release(&body);
	sbuf_release(&reply);
	return rc;
}

int chroma_collection_check(struct chroma_client *cl, const char *name, const char *expect_id,
			    struct rag_err *err)
{
	struct sbuf reply = SBUF_INIT;
	char id[CHROMA_ID_MAX];
	size_t dim = 0;
	int rc = call(cl, "GET", NULL, &reply, err, "%s/collections/%s", cl->base, name);

	if (rc == 0)
		rc = chroma_decode_collection(reply.buf, reply.len, id, &dim, err);
	if (rc == 0 && strcmp(id, expect_id) != 0)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL,
				 "Chroma collection '%s' is now %s, not %s", name, id, expect_id);
	sbuf_release(&reply);
	return rc;
}

int chroma_collection_drop(struct chroma_client *cl, const char *name, struct rag_err *err)
{
	struct sbuf reply = SBUF_INIT;
	struct rag_err derr = { 0 };
	int rc = call(cl, "DELETE", NULL, &reply, &derr, "%s/collections/%s", cl->base, name);

	sbuf_release(&reply);
	if (rc == RAG_ENOTFOUND)
		return 0;
	return rc < 0 ? rag_err_set(err, rc, NULL, "%s", derr.msg) : 0;
}

int chroma_count(struct chroma_client *cl, const char *id, size_t *n_out, struct rag_err *err)
{
	struct sbuf reply = SBUF_INIT;
	int rc = call(cl, "GET", NULL, &reply, err, "%s/collections/%s/count", cl->base, id);
	char *end;
	unsigned long long n;

	if (rc == 0) {
		n = strtoull(reply.buf, &end, 10);
		if (end == reply.buf || *end || reply.buf[0] == '-')
			rc = rag_err_set(err, RAG_EIO, NULL, "Chroma's count is not a number: '%.40s'",
					 reply.buf);
		else
			*n_out = (size_t)n;
	}
	sbuf_release(&reply);
	return rc;
}

int chroma_upsert(struct chroma_client *cl, const char *id, const int64_t *ids,
		  const float *vecs, size_t n, size_t dim, struct rag_err *err)
{
	struct sbuf body = SBUF_INIT, reply = SBUF_INIT;
	int rc = 0;

	for (size_t done = 0; done < n && rc == 0;) {
		size_t m = n - done < CHROMA_WRITE_BATCH ? n - done : CHROMA_WRITE_BATCH;

		sbuf_reset(&body);
		rc = chroma_encode_upsert(&body, ids + done, vecs + done * dim, m, dim);
		if (rc < 0)
			rc = rag_err_set(err, rc, NULL, "out of memory encoding %zu vectors", m);
		else
			rc = call(cl, "POST", &body, &reply, err, "%s/collections/%s/upsert",
				  cl->base, id);
		done += m;
	}
	sbuf_release(&body);
	sbuf_release(&reply);
	return rc;
}

int chroma_delete(struct chroma_client *cl, const char *id, const int64_t *ids, size_t n,
		  struct rag_err *err)
{
	struct sbuf body = SBUF_INIT, reply = SBUF_INIT;
	int rc = 0;

	for (size_t done = 0; done < n && rc == 0;) {
		size_t m = n - done < CHROMA_WRITE_BATCH ? n - done : CHROMA_WRITE_BATCH;

		sbuf_reset(&body);
		rc = chroma_encode_delete(&body, ids + done, m);
		if (rc < 0)
			rc = rag_err_set(err, rc, NULL, "out of memory encoding %zu ids", m);
		else
			rc = call(cl, "POST", &body, &reply, err, "%s/collections/%s/delete",
				  cl->base, id);
		done += m;
	}
	sbuf_release(&body);
	sbuf_release(&reply);
	return rc;
}

int chroma_query(struct chroma_client *cl, const char *id, const struct chroma_query *q,
		 int64_t *out_ids, float *out_dists, size_t *n_out, struct rag_err *err)
{
	struct sbuf body = SBUF_INIT, reply = SBUF_INIT;
	int rc = chroma_encode_query(&body, q);

	*n_out = 0;
	if (rc < 0)
		rc = rag_err_set(err, rc, NULL, rc == RAG_ENOMEM ? "out of memory"
								 : "bad Chroma query");
	else
		rc = call(cl, "POST", &body, &reply, err, "%s/collections/%s/query", cl->base, id);
	if (rc == 0)
		rc = chroma_decode_query(reply.buf, reply.len, q->n_results, out_ids, out_dists,
					 n_out, err);
	sbuf_release(&body);
	sbuf_release(&reply);
	return rc;
}
