/*
 * JSON decoding helpers. jansson parses strictly (duplicate keys rejected,
 * UTF-8 validated, line/column in errors); what it cannot tell a client is
 * which field held invalid UTF-8, so that is found here by walking back from
 * the bad byte to the key of the string around it.
 */
#include "http/http_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/rag_error.h"
#include "text/utf8.h"

#include "core/banned.h"

/*
 * The top-level key whose value contains byte `at` (the client's field), or
 * "" when the byte is not inside one. Scans from the start of the body,
 * tracking strings, escapes and nesting.
 */
static void key_around(const char *s, size_t at, char *key, size_t key_size)
{
	size_t i, str_start = 0, key_start = 0, key_len = 0;
	int depth = 0, in_str = 0, have_key = 0;

	key[0] = '\0';
	for (i = 0; i < at; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
			str_start = i + 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ':' && depth == 1) {
			/* The string just closed before this colon is a top-level key. */
			size_t end = i;

			while (end > 0 && strchr(" \t\r\n", s[end - 1]))
				end--;
			if (end > str_start) {
				key_start = str_start;
				key_len = end - 1 - str_start;
				have_key = 1;
			}
		} else if (c == ',' && depth == 1) {
			have_key = 0;
		}
	}
	if (have_key && key_len > 0)
		snprintf(key, key_size, "%.*s", (int)key_len, s + key_start);
}

json_t *http_json_body(struct http_req *req, struct http_resp *resp, const char *const *allowed)
{
	struct rag_err err = { 0 };
	json_error_t jerr;
	json_t *root;
	const char *key;
	json_t *val;
	size_t bad = 0;

	if (req->body_len == 0) {
		http_errorf(resp, RAG_EINVAL, "body", "request body is empty: a JSON object is required");
		return NULL;
	}
	if (!utf8_valid(req->body, req->body_len, &bad)) {
		char field[64];

		key_around(req->body, bad, field, sizeof(field));
		http_errorf(resp, RAG_EINVAL, field[0] ? field : "body",
			    "%s%s is not valid UTF-8 (bad byte at offset %zu of the body)",
			    field[0] ? "field " : "request body", field, bad);
		return NULL;
	}
	if (json_scan(req->body, req->body_len, &req->ctx->json_limits, "body", &err) < 0) {
		http_error(resp, &err);
		return NULL;
	}
	root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		http_errorf(resp, RAG_EINVAL, "body", "malformed JSON at line %d, column %d: %s",
			    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		http_errorf(resp, RAG_EINVAL, "body", "request body must be a JSON object");
		return NULL;
	}
	json_object_foreach(root, key, val) {
		int ok = 0;

		for (size_t i = 0; allowed && allowed[i] && !ok; i++)
			ok = strcmp(allowed[i], key) == 0;
		if (!ok) {
			http_errorf(resp, RAG_EINVAL, key, "unknown field '%s'", key);
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

int http_json_string(json_t *obj, const char *key, int required, const char **out,
		     size_t *len_out, struct http_resp *resp)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		http_errorf(resp, RAG_EINVAL, key, "field '%s' is required", key);
		return RAG_EINVAL;
	}
	if (!json_is_string(v)) {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must be a string", key);
		return RAG_EINVAL;
	}
	if (memchr(json_string_value(v), '\0', json_string_length(v))) {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must not contain NUL characters", key);
		return RAG_EINVAL;
	}
	*out = json_string_value(v);
	if (len_out)
		*len_out = json_string_length(v);
	return 0;
}

int http_json_int(json_t *obj, const char *key, long long min, long long max, long long *out,
		  struct http_resp *resp)
{
	json_t *v = json_object_get(obj, key);
	long long i;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_real(v)) {
		/* 16.0 is an integer to JSON Schema and to most client libraries. */
		double d = json_real_value(v);

		/* range first: converting an out-of-range double is undefined */
		if (!(d >= -9e18 && d <= 9e18) || d != (double)(long long)d) {
			http_errorf(resp, RAG_EINVAL, key, "field '%s' must be an integer", key);
			return RAG_EINVAL;
		}
		i = (long long)d;
	} else if (json_is_integer(v)) {
		i = json_integer_value(v);
	} else {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must be an integer", key);
		return RAG_EINVAL;
	}
	if (i < min || i > max) {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must be between %lld and %lld", key,
			    min, max);
		return RAG_EINVAL;
	}
	*out = i;
	return 0;
}

int http_json_object_text(json_t *obj, const char *key, char **out, struct http_resp *resp)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must be a JSON object", key);
		return RAG_EINVAL;
	}
	*out = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	if (!*out) {
		http_errorf(resp, RAG_ENOMEM, key, "out of memory");
		return RAG_ENOMEM;
	}
	return 0;
}

void http_json_reply(struct http_resp *resp, int status, json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;

	json_decref(v);
	sbuf_reset(&resp->body);
	if (!text) {
		resp->status = 500;
		sbuf_addstr(&resp->body, "{\"error\":{\"code\":\"internal\",\"message\":"
					 "\"could not encode the response\",\"field\":null}}");
		return;
	}
	resp->status = status;
	sbuf_addstr(&resp->body, text);
	free(text);
}

json_t *http_json_parse_object(const char *text)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	if (!json_is_object(v)) {
		json_decref(v);
		return json_object();
	}
	return v;
}

/* OpenAI's error type for an HTTP status, as its API documents them. */
static const char *openai_type(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 429:
		return "rate_limit_error";
	default:
		return status >= 500 ? "server_error" : "invalid_request_error";
	}
}

static void openai_error(struct http_resp *resp, int code, const char *msg, const char *field)
{
	const char *type = openai_type(resp->status);

	sbuf_addstr(&resp->body, "{\"error\":{\"message\":");
	sbuf_add_json_str(&resp->body, msg, strlen(msg));
	sbuf_addstr(&resp->body, ",\"type\":");
	sbuf_add_json_str(&resp->body, type, strlen(type));
	sbuf_addstr(&resp->body, ",\"param\":");
	if (field && field[0])
		sbuf_add_json_str(&resp->body, field, strlen(field));
	else
		sbuf_addstr(&resp->body, "null");
	sbuf_addstr(&resp->body, ",\"code\":");
	/* OpenAI's own code for an unknown model, which its clients recognise. */
	if (code == RAG_ENOTFOUND && field && strcmp(field, "model") == 0)
		sbuf_addstr(&resp->body, "\"model_not_found\"");
	else
		sbuf_add_json_str(&resp->body, rag_err_name(code), strlen(rag_err_name(code)));
	sbuf_addstr(&resp->body, "}}");
}

int http_is_openai_path(const char *path)
{
	return strncmp(path, "/v1/chat/", 9) == 0 || strncmp(path, "/v1/embeddings", 14) == 0 ||
	       strncmp(path, "/v1/models", 10) == 0;
}

void http_error(struct http_resp *resp, const struct rag_err *err)
{
	int code = err && err->code ? err->code : RAG_EINTERNAL;
	const char *msg = err && err->msg[0] ? err->msg : "internal error";

	sbuf_reset(&resp->body);
	resp->status = rag_err_http_status(code);
	if (code == RAG_EBUSY)
		resp->retry_after_s = 1;
	if (resp->error_style == HTTP_ERRORS_OPENAI) {
		openai_error(resp, code, msg, err ? err->field : NULL);
		return;
	}
	sbuf_addstr(&resp->body, "{\"error\":{\"code\":");
	sbuf_add_json_str(&resp->body, rag_err_name(code), strlen(rag_err_name(code)));
	sbuf_addstr(&resp->body, ",\"message\":");
	sbuf_add_json_str(&resp->body, msg, strlen(msg));
	sbuf_addstr(&resp->body, ",\"field\":");
	if (err && err->field[0])
		sbuf_add_json_str(&resp->body, err->field, strlen(err->field));
	else
		sbuf_addstr(&resp->body, "null");
	sbuf_addstr(&resp->body, "}}");
}

void http_errorf(struct http_resp *resp, int code, const char *field, const char *fmt, ...)
{
	struct rag_err err = { 0 };
	va_list ap;

	err.code = code;
	snprintf(err.field, sizeof(err.field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
	va_end(ap);
	http_error(resp, &err);
}
