/*
 * Fuzz target: the JSON request decoding of every endpoint that takes a JSON
 * body. The first input byte picks the endpoint, the rest is the body.
 *
 * Each handler decodes its whole body before it asks for the engine
 * (http_engine), so with no engine in the context the real handler runs its
 * decoding to the end and then answers 503 "starting": every decoder is
 * reached without models, store or server. Whatever the bytes, the answer
 * must be a 4xx or that 503, with a JSON error body, and nothing may leak
 * (ASan's leak check runs at exit).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "auth/auth.h"
#include "http/http_handlers.h"

struct endpoint {
	http_handler_fn fn;
	const char *path;
};

static const struct endpoint endpoints[] = {
	{ http_collection_create, "/v1/collections" },
	{ http_collection_update, "/v1/collections/c" },
	{ http_document_put, "/v1/collections/c/documents" },
	{ http_documents_batch, "/v1/collections/c/documents:batch" },
	{ http_search, "/v1/collections/c/search" },
	{ http_query, "/v1/collections/c/query" },
	{ http_oai_embeddings, "/v1/embeddings" },
	{ http_oai_chat, "/v1/chat/completions" },
	{ http_shard_search, "/v1/internal/shard-search" },
	{ http_admin_key_create, "/v1/admin/keys" },
};

#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The defaults of limits.* (config.c). */
	static struct http_ctx ctx = { .instance = "fuzz",
				       .max_body_bytes = 1 << 20, .ingest_root = "",
				       .max_file_bytes = 1 << 20,
				       .json_limits = { 32, 100000 },
				       .max_top_k = 1000, .max_tokens = 4096 };
	static char p0[] = "c", p1[] = "d";
	const struct endpoint *e;
	struct http_req req = { 0 };
	struct http_resp resp = { 0 };
	json_t *err;
	char *body;

	if (size < 1)
		return 0;
	if (!ctx.auth) { /* keys are created in a store: without one, 503 after decoding */
		static const struct auth_options ao = { .enabled = 1, .key_cache_s = 10 };

		ctx.auth = auth_new(&ao, NULL, NULL);
	}
	e = &endpoints[data[0] % N_ENDPOINTS];
	body = malloc(size);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	req.method = "POST";
	req.path = e->path;
	req.route_id = -1;
	req.request_id = "fuzz";
	req.params[0] = p0;
	req.params[1] = p1;
	req.n_params = 2;
	req.body = body;
	req.body_len = size - 1;
	req.ctx = &ctx;
	req.who.tenant = "default"; /* auth off: the default tenant's admin */
	req.who.key_id = "";
	req.who.role = AUTH_ROLE_ADMIN;
	resp.status = 200;
	resp.error_style = http_is_openai_path(e->path) ? HTTP_ERRORS_OPENAI : HTTP_ERRORS_RAGD;
	sbuf_init(&resp.body, 0);
	e->fn(&req, &resp);
	if (resp.stream || resp.status < 400 || resp.status > 599) {
		fprintf(stderr, "%s answered %d without an engine\n", e->path, resp.status);
		abort();
	}
	err = json_loadb(resp.body.buf, resp.body.len, 0, NULL);
	if (!json_is_object(json_object_get(err, "error"))) {
		fprintf(stderr, "%s answered %d with a body that is no error: %s\n", e->path,
			resp.status, resp.body.buf);
		abort();
	}
	json_decref(err);
	sbuf_release(&resp.body);
	free(body);
	return 0;
}
