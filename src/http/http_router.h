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

#endif
