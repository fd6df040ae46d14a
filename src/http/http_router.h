/*
 * Routes: method + path pattern ("/v1/collections/{name}/search") to a
 * handler. Matching is segment by segment; a {param} matches one non-empty
 * segment. A path that matches a pattern with another method gets 405.
 *
 * Thread-safety: the table is static and read-only.
 */
#ifndef RAGD_HTTP_HTTP_ROUTER_H
#define RAGD_HTTP_HTTP_ROUTER_H

#include "http/http.h"

/*
 * Finds the handler for method and path, filling req->params (freed by
 * http_route_release). Returns the handler, or NULL with *status set to 404
 * or 405.
 */
http_handler_fn http_route(const char *method, const char *path, struct http_req *req,
			   int *status);

void http_route_release(struct http_req *req);

/* The methods routed for path, as an Allow header value ("GET, POST"); "" for none. */
void http_route_allowed(const char *path, char *out, size_t size);

/* The table, for metrics: routes are numbered 0..count-1 (req->route_id). */
size_t http_route_count(void);
const char *http_route_pattern(size_t id); /* "unmatched" past the end */
const char *http_route_method(size_t id);  /* "any" past the end */

#endif
