/*
 * The route table and its matcher. A linear scan: a dozen routes compared
 * segment by segment cost less than a hash lookup's setup would.
 */
#include "http/http_router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "http/http_handlers.h"

#include "core/banned.h"

/*
 * access: who may call the route: A_PUBLIC (no key), A_READER, A_WRITER,
 * A_ADMIN. A route whose entry forgets it (0) is admin-only: a new route
 * fails closed, never open;
 * quota: what else the request counts against (besides the request rate):
 * Q_INGEST its body against the key's daily ingest bytes, Q_TOKENS it is
 * refused when the key's generated tokens for the day are spent.
 */
struct route {
	const char *method;
	const char *pattern;
	http_handler_fn fn;
	int access;
	int quota;
};

enum { A_UNSET = 0, A_PUBLIC, A_READER, A_WRITER, A_ADMIN };

#define Q_INGEST 1
#define Q_TOKENS 2

#define PUBLIC A_PUBLIC
#define READER A_READER
#define WRITER A_WRITER
#define ADMIN A_ADMIN

static const struct route routes[] = {
	{ "GET", "/health", http_health, PUBLIC, 0 },
	{ "GET", "/ready", http_ready, PUBLIC, 0 },
	{ "GET", "/metrics", http_metrics, PUBLIC, 0 },
	{ "POST", "/v1/collections", http_collection_create, WRITER, 0 },
	{ "GET", "/v1/collections", http_collection_list, READER, 0 },
	{ "GET", "/v1/collections/{name}", http_collection_get, READER, 0 },
	{ "DELETE", "/v1/collections/{name}", http_collection_delete, WRITER, 0 },
	{ "PATCH", "/v1/collections/{name}", http_collection_update, WRITER, 0 },
	{ "POST", "/v1/collections/{name}/documents", http_document_put, WRITER, Q_INGEST },
	{ "GET", "/v1/collections/{name}/documents", http_documents_list, READER, 0 },
	{ "POST", "/v1/collections/{name}/documents:batch", http_documents_batch, WRITER, Q_INGEST },
	{ "POST", "/v1/collections/{name}/files", http_documents_upload, WRITER, Q_INGEST },
	{ "GET", "/v1/collections/{name}/documents/{id}/chunks", http_document_chunks, READER, 0 },
	{ "GET", "/v1/jobs/{id}", http_job_get, READER, 0 },
	{ "DELETE", "/v1/jobs/{id}", http_job_cancel, WRITER, 0 },
	{ "GET", "/v1/collections/{name}/documents/{id}", http_document_get, READER, 0 },
	{ "DELETE", "/v1/collections/{name}/documents/{id}", http_document_delete, WRITER, 0 },
	{ "POST", "/v1/collections/{name}/search", http_search, READER, 0 },
	{ "POST", "/v1/collections/{name}/query", http_query, READER, Q_TOKENS },
	{ "POST", "/v1/internal/shard-search", http_shard_search, READER, 0 },
	{ "GET", "/v1/models", http_oai_models, READER, 0 },
	{ "GET", "/v1/models/{model}", http_oai_model, READER, 0 },
	{ "POST", "/v1/embeddings", http_oai_embeddings, READER, 0 },
	{ "POST", "/v1/chat/completions", http_oai_chat, READER, Q_TOKENS },
	{ "GET", "/openapi.json", http_openapi, PUBLIC, 0 },
	{ "GET", "/docs", http_docs_swagger, PUBLIC, 0 },
	{ "GET", "/redoc", http_docs_redoc, PUBLIC, 0 },
	{ "GET", "/docs/assets/{file}", http_docs_asset, PUBLIC, 0 },
	{ "POST", "/v1/admin/keys", http_admin_key_create, ADMIN, 0 },
	{ "GET", "/v1/admin/keys", http_admin_key_list, ADMIN, 0 },
	{ "DELETE", "/v1/admin/keys/{id}", http_admin_key_revoke, ADMIN, 0 },
	{ "GET", "/v1/admin/usage", http_admin_usage, ADMIN, 0 },
	{ "GET", "/v1/admin/usage/{id}", http_admin_usage, ADMIN, 0 },
};

static enum auth_role min_role(int access)
{
	switch (access) {
	case A_PUBLIC: return AUTH_ROLE_NONE;
	case A_READER: return AUTH_ROLE_READER;
	case A_WRITER: return AUTH_ROLE_WRITER;
	default: return AUTH_ROLE_ADMIN;
	}
}

/* Matches one pattern; on success the params are in req (caller frees). */
static int match(const char *pattern, const char *path, struct http_req *req)
{
	const char *p = pattern, *s = path;

	req->n_params = 0;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return 0;
		p++;
		s++;
		if (*p == '{') {
			size_t len = strcspn(s, "/");
			const char *close = strchr(p, '}');

			if (len == 0 || !close || req->n_params == HTTP_MAX_PARAMS)
				return 0;
			req->params[req->n_params] = strndup(s, len);
			if (!req->params[req->n_params])
				return 0;
			req->n_params++;
			p = close + 1;
			s += len;
		} else {
			size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");

			if (plen != slen || memcmp(p, s, plen) != 0)
				return 0;
			p += plen;
			s += slen;
		}
	}
	if (*s == '/' && s[1] == '\0')
		s++; /* a trailing slash is the same resource */
	return *p == '\0' && *s == '\0';
}

void http_route_allowed(const char *path, char *out, size_t size)
{
	struct http_req req = { 0 };
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int hit = match(routes[i].pattern, path, &req);

		http_route_release(&req);
		if (hit && len + strlen(routes[i].method) + 3 < size)
			len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "",
						routes[i].method);
	}
}

size_t http_route_count(void)
{
	return sizeof(routes) / sizeof(routes[0]);
}

const char *http_route_pattern(size_t id)
{
	return id < http_route_count() ? routes[id].pattern : "unmatched";
}

const char *http_route_method(size_t id)
{
	return id < http_route_count() ? routes[id].method : "any";
}

void http_route_release(struct http_req *req)
{
	for (size_t i = 0; i < req->n_params; i++)
		free(req->params[i]);
	req->n_params = 0;
}

http_handler_fn http_route(const char *method, const char *path, struct http_req *req,
			   int *status)
{
	int path_matched = 0;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!match(routes[i].pattern, path, req)) {
			http_route_release(req);
			continue;
		}
		if (strcmp(routes[i].method, method) == 0) {
			req->route = routes[i].pattern;
			req->route_id = (int)i;
			req->min_role = min_role(routes[i].access);
			req->ingest = routes[i].quota == Q_INGEST;
			req->generates = routes[i].quota == Q_TOKENS;
			return routes[i].fn;
		}
		path_matched = 1;
		http_route_release(req);
	}
	*status = path_matched ? 405 : 404;
	return NULL;
}
