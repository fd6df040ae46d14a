/*
 * The route table and its matcher. A linear scan: a dozen routes compared
 * segment by segment cost less than a hash lookup's setup would.
 */
#include "http/http_router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_handlers.h"

#include "core/banned.h"

struct route {
	const char *method;
	const char *pattern;
	http_handler_fn fn;
};

static const struct route routes[] = {
	{ "GET", "/health", http_health },
	{ "GET", "/ready", http_ready },
	{ "GET", "/metrics", http_metrics },
	{ "POST", "/v1/collections", http_collection_create },
	{ "GET", "/v1/collections", http_collection_list },
	{ "GET", "/v1/collections/{name}", http_collection_get },
	{ "DELETE", "/v1/collections/{name}", http_collection_delete },
	{ "PATCH", "/v1/collections/{name}", http_collection_update },
	{ "POST", "/v1/collections/{name}/documents", http_document_put },
	{ "GET", "/v1/collections/{name}/documents", http_documents_list },
	{ "POST", "/v1/collections/{name}/documents:batch", http_documents_batch },
	{ "POST", "/v1/collections/{name}/files", http_documents_upload },
	{ "GET", "/v1/collections/{name}/documents/{id}/chunks", http_document_chunks },
	{ "GET", "/v1/jobs/{id}", http_job_get },
	{ "DELETE", "/v1/jobs/{id}", http_job_cancel },
	{ "GET", "/v1/collections/{name}/documents/{id}", http_document_get },
	{ "DELETE", "/v1/collections/{name}/documents/{id}", http_document_delete },
	{ "POST", "/v1/collections/{name}/search", http_search },
	{ "POST", "/v1/collections/{name}/query", http_query },
	{ "POST", "/v1/internal/shard-search", http_shard_search },
	{ "GET", "/v1/models", http_oai_models },
	{ "GET", "/v1/models/{model}", http_oai_model },
	{ "POST", "/v1/embeddings", http_oai_embeddings },
	{ "POST", "/v1/chat/completions", http_oai_chat },
	{ "GET", "/openapi.json", http_openapi },
	{ "GET", "/docs", http_docs_swagger },
	{ "GET", "/redoc", http_docs_redoc },
	{ "GET", "/docs/assets/{file}", http_docs_asset },
};

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
			return routes[i].fn;
		}
		path_matched = 1;
		http_route_release(req);
	}
	*status = path_matched ? 405 : 404;
	return NULL;
}
