/*
 * What the server does around every handler for authentication and
 * tenancy: decide who the request is served as (src/auth/auth.h), check
 * the route's role and the key's quotas, keep a tenant's cacheable answers
 * out of shared caches, and match an Origin against cors.allowed_origins.
 * The libmicrohttpd side (headers, preflight answers) is in http_server.c.
 */
#include "http/http_auth.h"

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "core/rag_error.h"

#include "core/banned.h"

int http_authorize(struct http_req *req, struct http_resp *resp)
{
	struct auth *a = req->ctx->auth;
	struct rag_err err = { 0 };
	int retry = 0, rc;

	auth_anonymous(&req->who);
	if (!auth_enabled(a))
		return 0;
	if (req->min_role == AUTH_ROLE_NONE) {
		req->who.role = AUTH_ROLE_NONE; /* public: nothing a tenant owns */
		return 0;
	}
	rc = auth_verify(a, http_header(req, "Authorization"), &req->who, &err);
	if (rc == 0 && req->who.role < req->min_role)
		rc = rag_err_set(&err, RAG_EFORBIDDEN, NULL,
				 "this API key's role '%s' may not do this: it needs '%s'",
				 auth_role_name(req->who.role), auth_role_name(req->min_role));
	if (rc == RAG_EUNAUTHORIZED || rc == RAG_EFORBIDDEN)
		auth_note_refusal(rc);
	if (rc == 0)
		rc = auth_admit(a, &req->who, AUTH_QUOTA_REQUESTS, 1, &retry, &err);
	if (rc == 0 && req->ingest)
		rc = auth_admit(a, &req->who, AUTH_QUOTA_INGEST_BYTES, (int64_t)req->body_len,
				&retry, &err);
	if (rc == 0 && req->generates)
		rc = auth_admit(a, &req->who, AUTH_QUOTA_TOKENS, 0, &retry, &err);
	if (rc == 0)
		return 0;
	http_error(resp, &err);
	if (retry > 0)
		resp->retry_after_s = retry;
	return rc;
}

void http_private_cache(const struct http_req *req, struct http_resp *resp)
{
	char cc[sizeof(resp->cache_control_buf)];

	if (!resp->cache_control || !req->who.slot || strncmp(resp->cache_control, "public", 6) != 0)
		return;
	snprintf(cc, sizeof(cc), "private%s", resp->cache_control + 6);
	memcpy(resp->cache_control_buf, cc, sizeof(cc));
	resp->cache_control = resp->cache_control_buf;
}

const char *http_cors_origin(const struct http_ctx *ctx, const char *origin)
{
	const char *p;
	size_t len;

	if (!ctx->cors_origins || !ctx->cors_origins[0])
		return NULL;
	if (!origin || !*origin)
		return NULL;
	if (strcmp(ctx->cors_origins, "*") == 0)
		return origin;
	len = strlen(origin);
	for (p = ctx->cors_origins; *p;) {
		size_t n;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ", ");
		if (n == len && strncmp(p, origin, n) == 0)
			return origin;
		p += n;
	}
	return NULL;
}

