/*
 * The admin API: API keys and their usage (src/auth/auth.h).
 *
 * An admin key administers its own tenant only: it creates keys for that
 * tenant, lists and revokes that tenant's keys and reads their usage. A
 * key id of another tenant is answered exactly like one that does not
 * exist (404), so ids cannot be probed across tenants. New tenants get
 * their first admin key from the configuration (auth.keys), i.e. from
 * whoever runs the server.
 *
 * The token of a new key is in the creation's answer and nowhere else:
 * the store keeps only its salted hash.
 */
#include "http/http_handlers.h"

#include <sodium.h>
#include <string.h>

#include "auth/auth.h"
#include "core/rag_error.h"
#include "http/http_json.h"

#include "core/banned.h"

/* Reads the optional `limits` object into l (fields left -1 when absent). */
static int read_limits(json_t *body, struct auth_limits *l, struct http_resp *resp)
{
	static const char *const names[] = { "requests_per_s", "burst", "ingest_bytes_per_day",
					     "tokens_per_day" };
	json_t *o = json_object_get(body, "limits"), *v;
	const char *key;

	*l = (struct auth_limits){ -1, -1, -1, -1 };
	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		http_errorf(resp, RAG_EINVAL, "limits", "field 'limits' must be an object");
		return RAG_EINVAL;
	}
	json_object_foreach(o, key, v) {
		size_t i;

		for (i = 0; i < 4 && strcmp(key, names[i]) != 0; i++)
			;
		if (i == 4) {
			http_errorf(resp, RAG_EINVAL, "limits",
				    "unknown field 'limits.%s' (requests_per_s, burst,"
				    " ingest_bytes_per_day, tokens_per_day)", key);
			return RAG_EINVAL;
		}
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 1e15 || (i > 0 && !json_is_integer(v))) {
			http_errorf(resp, RAG_EINVAL, "limits",
				    "field 'limits.%s' must be %s >= 0 (0 = unlimited)", key,
				    i > 0 ? "an integer" : "a number");
			return RAG_EINVAL;
		}
		if (i == 0)
			l->requests_per_s = json_number_value(v);
		else if (i == 1)
			l->burst = json_integer_value(v);
		else if (i == 2)
			l->ingest_bytes_per_day = json_integer_value(v);
		else
			l->tokens_per_day = json_integer_value(v);
	}
	return 0;
}

int http_admin_key_create(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "role", "name", "tenant", "limits", NULL };
	struct auth_key_spec spec = { 0 };
	struct rag_err err = { 0 };
	const char *role = NULL, *name = NULL, *tenant = NULL;
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1];
	struct sbuf keys = SBUF_INIT;
	json_t *body = http_json_body(req, resp, allowed);

	if (!body)
		return 0;
	if (http_json_string(body, "role", 1, &role, NULL, resp) < 0 ||
	    http_json_string(body, "name", 0, &name, NULL, resp) < 0 ||
	    http_json_string(body, "tenant", 0, &tenant, NULL, resp) < 0 ||
	    read_limits(body, &spec.limits, resp) < 0)
		goto out;
	if (auth_role_parse(role, "role", &spec.role, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	if (tenant && strcmp(tenant, req->who.tenant) != 0) {
		http_errorf(resp, RAG_EFORBIDDEN, "tenant",
			    "an admin key creates keys for its own tenant only");
		goto out;
	}
	if (name && strlen(name) > 200) {
		http_errorf(resp, RAG_EINVAL, "name", "field 'name' is longer than 200 bytes");
		goto out;
	}
	spec.tenant = req->who.tenant;
	spec.name = name;
	if (auth_key_create(req->ctx->auth, &spec, token, id, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	sbuf_addstr(&keys, "{\"id\":");
	sbuf_add_json_str(&keys, id, strlen(id));
	sbuf_addstr(&keys, ",\"token\":");
	sbuf_add_json_str(&keys, token, strlen(token));
	sbuf_addstr(&keys, ",\"tenant\":");
	sbuf_add_json_str(&keys, spec.tenant, strlen(spec.tenant));
	sbuf_addf(&keys, ",\"role\":\"%s\",\"name\":", auth_role_name(spec.role));
	sbuf_add_json_str(&keys, name ? name : "", name ? strlen(name) : 0);
	sbuf_addch(&keys, '}');
	sodium_memzero(token, sizeof(token));
	if (sbuf_error(&keys)) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	sbuf_reset(&resp->body);
	sbuf_add(&resp->body, keys.buf, keys.len);
	resp->status = 201;
out:
	if (keys.len)
		sodium_memzero(keys.buf, keys.len);
	sbuf_release(&keys);
	json_decref(body);
	return 0;
}

int http_admin_key_list(struct http_req *req, struct http_resp *resp)
{
	struct rag_err err = { 0 };
	struct sbuf list = SBUF_INIT;

	if (auth_keys_json(req->ctx->auth, req->who.tenant, &list, &err) < 0) {
		http_error(resp, &err);
	} else {
		sbuf_reset(&resp->body);
		sbuf_addstr(&resp->body, "{\"keys\":");
		sbuf_add(&resp->body, list.buf, list.len);
		sbuf_addch(&resp->body, '}');
		resp->status = 200;
	}
	sbuf_release(&list);
	return 0;
}

int http_admin_key_revoke(struct http_req *req, struct http_resp *resp)
{
	struct rag_err err = { 0 };

	if (auth_key_revoke(req->ctx->auth, req->who.tenant, req->params[0], &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:b}", "id", req->params[0], "revoked", 1));
	return 0;
}

int http_admin_usage(struct http_req *req, struct http_resp *resp)
{
	struct rag_err err = { 0 };
	struct sbuf list = SBUF_INIT;
	const char *id = req->n_params > 0 ? req->params[0] : NULL;

	if (auth_usage_json(req->ctx->auth, req->who.tenant, id, &list, &err) < 0) {
		http_error(resp, &err);
	} else {
		sbuf_reset(&resp->body);
		sbuf_addstr(&resp->body, "{\"tenant\":");
		sbuf_add_json_str(&resp->body, req->who.tenant, strlen(req->who.tenant));
		sbuf_addstr(&resp->body, ",\"instance\":");
		sbuf_add_json_str(&resp->body, req->ctx->instance ? req->ctx->instance : "",
				  req->ctx->instance ? strlen(req->ctx->instance) : 0);
		sbuf_addstr(&resp->body, ",\"keys\":");
		sbuf_add(&resp->body, list.buf, list.len);
		sbuf_addch(&resp->body, '}');
		resp->status = 200;
	}
	sbuf_release(&list);
	return 0;
}
