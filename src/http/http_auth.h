/*
 * Authentication, authorisation and CORS decisions for the server
 * (http_auth.c); stateless, any thread.
 */
#ifndef RAGD_HTTP_HTTP_AUTH_H
#define RAGD_HTTP_HTTP_AUTH_H

#include "http/http.h"

/*
 * Decides who req is served as (req->who) and whether it may run: 0, or a
 * negative code with the error written into resp: 401 (no or bad key), 403
 * (the key's role is below the route's), 429 with Retry-After (a quota is
 * spent), 503 while the store is not open. With auth off, req->who is the
 * default tenant's admin and the answer is 0.
 */
int http_authorize(struct http_req *req, struct http_resp *resp);

/*
 * A keyed request's cacheable answer belongs to its tenant: a shared cache
 * (nginx, a CDN) keyed by URL would hand it to another tenant, so its
 * Cache-Control "public" becomes "private" (browsers may keep it, shared
 * caches may not).
 */
void http_private_cache(const struct http_req *req, struct http_resp *resp);

/* origin (the request's Origin header, may be NULL) when cors.allowed_origins allows it, else NULL. */
const char *http_cors_origin(const struct http_ctx *ctx, const char *origin);

#endif
