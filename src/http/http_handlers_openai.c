/*
 * The OpenAI-compatible model routes: GET /v1/models, GET /v1/models/{model}
 * and POST /v1/embeddings (chat completions are in http_handlers_chat.c).
 *
 * They speak OpenAI's wire format so that the official clients and
 * LangChain work against ragd unchanged: errors in OpenAI's shape (the
 * server sets resp->error_style for these paths), `encoding_format` float or
 * base64 (the `openai` Python package asks for base64 unless told
 * otherwise), usage counted in the embedder's own tokens.
 *
 * Token arrays as input (what OpenAI's tiktoken-based clients send when
 * they chunk texts themselves) are refused with a 400 naming `input`: the
 * ids of OpenAI's tokenizer mean nothing to ours. LangChain's
 * OpenAIEmbeddings sends text with check_embedding_ctx_length=False.
 *
 * Base64 is written here (twenty lines) rather than through libsodium's
 * sodium_bin2base64, which would add a library to the link for one call.
 */
#include "http/http_handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "http/http_json.h"
#include "model/embedder.h"
#include "model/generator.h"
#include "model/model_cache.h"
#include "rag/rag_engine.h"

#include "core/banned.h"

#define OAI_MAX_INPUTS 2048 /* texts per request: OpenAI's own limit */
#define OAI_RAG_PREFIX "rag:" /* "model": "rag:<collection>" asks for RAG over it */
#define OAI_OWNER "ragd"

static void base64_add(struct sbuf *sb, const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char quad[4];

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		quad[0] = tab[(v >> 18) & 63];
		quad[1] = tab[(v >> 12) & 63];
		quad[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < len ? tab[v & 63] : '=';
		sbuf_add(sb, quad, 4);
	}
}

static json_t *model_json(const char *id, const char *kind)
{
	return json_pack("{s:s, s:s, s:i, s:s, s:s}", "id", id, "object", "model", "created", 0,
			 "owned_by", OAI_OWNER, "ragd_kind", kind);
}

/*
 * Every model a client may name: the embedder, the generator when one is
 * loaded, then one "rag:<collection>" per collection of the tenant. (GGUF
 * files under models.dir that load on demand are not listed.)
 */
static json_t *models_list(struct rag_engine *eng, const struct http_ctx *ctx,
			   const char *tenant, struct rag_err *err)
{
	struct rag_collection_info *colls = NULL;
	size_t n_colls = 0;
	json_t *arr = json_array();

	json_array_append_new(arr, model_json(rag_engine_model(eng), "embedding"));
	if (ctx->generator)
		json_array_append_new(arr, model_json(ctx->generator->name, "generation"));
	if (rag_collection_list(eng, tenant, &colls, &n_colls, err) < 0) {
		json_decref(arr);
		return NULL;
	}
	for (size_t i = 0; i < n_colls; i++) {
		struct sbuf id = SBUF_INIT;

		sbuf_addf(&id, OAI_RAG_PREFIX "%s", colls[i].c.name);
		json_array_append_new(arr, model_json(id.buf, "rag"));
		sbuf_release(&id);
	}
	rag_collection_info_list_free(colls, n_colls);
	return arr;
}

int http_oai_models(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };
	json_t *arr;

	if (!eng)
		return 0;
	arr = models_list(eng, req->ctx, req->who.tenant, &err);
	if (!arr) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:o}", "object", "list", "data", arr));
	return 0;
}

int http_oai_model(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };
	json_t *arr, *m;
	size_t i;

	if (!eng)
		return 0;
	arr = models_list(eng, req->ctx, req->who.tenant, &err);
	if (!arr) {
		http_error(resp, &err);
		return 0;
	}
	json_array_foreach(arr, i, m) {
		if (strcmp(json_string_value(json_object_get(m, "id")), req->params[0]) == 0) {
			http_json_reply(resp, 200, json_incref(m));
			json_decref(arr);
			return 0;
		}
	}
	json_decref(arr);
	http_errorf(resp, RAG_ENOTFOUND, "model", "model '%s' does not exist", req->params[0]);
	return 0;
}

/*
 * Reads `input` into texts/lens (borrowed from body; caller frees the two
 * arrays). A string or an array of 1..OAI_MAX_INPUTS strings.
 */
static int read_inputs(json_t *body, const char ***texts, size_t **lens, size_t *n,
		       struct rag_err *err)
{
	json_t *in = json_object_get(body, "input"), *v;
	size_t count, i;

	if (!in || json_is_null(in))
		return rag_err_set(err, RAG_EINVAL, "input", "field 'input' is required");
	if (!json_is_string(in) && !json_is_array(in))
		return rag_err_set(err, RAG_EINVAL, "input",
				   "field 'input' must be a string or an array of strings");
	count = json_is_string(in) ? 1 : json_array_size(in);
	if (count == 0 || count > OAI_MAX_INPUTS)
		return rag_err_set(err, RAG_EINVAL, "input",
				   "field 'input' must hold 1 to %d texts", OAI_MAX_INPUTS);
	*texts = calloc(count, sizeof(**texts));
	*lens = calloc(count, sizeof(**lens));
	if (!*texts || !*lens)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory reading 'input'");
	for (i = 0; i < count; i++) {
		v = json_is_string(in) ? in : json_array_get(in, i);
		if (json_is_integer(v) || json_is_array(v))
			return rag_err_set(err, RAG_EINVAL, "input",
					   "token arrays are not supported in 'input': send text");
		if (!json_is_string(v))
			return rag_err_set(err, RAG_EINVAL, "input",
					   "field 'input' must be a string or an array of strings");
		(*texts)[i] = json_string_value(v);
		(*lens)[i] = json_string_length(v);
		if (rag_check_text((*texts)[i], (*lens)[i], "input", err) < 0)
			return err ? err->code : RAG_EINVAL;
	}
	*n = count;
	return 0;
}

/* Tokens the model reads of each text, specials included, as usage reports them. */
static size_t usage_tokens(struct embedder *e, const char *const *texts, const size_t *lens,
			   size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		int t = embedder_count_tokens(e, texts[i], lens[i]);
		size_t with = (t > 0 ? (size_t)t : 0) + e->n_special;

		total += with < e->max_tokens ? with : e->max_tokens;
	}
	return total;
}

static void embeddings_reply(struct http_resp *resp, struct embedder *e, const float *vecs,
			     size_t n, int b64, size_t tokens)
{
	struct sbuf *sb = &resp->body;

	sbuf_reset(sb);
	sbuf_addstr(sb, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < n; i++) {
		const float *v = vecs + i * e->dim;

		sbuf_addf(sb, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":",
			  i ? "," : "", i);
		if (b64) {
			/* Little-endian float32, as OpenAI's clients decode it (x86 and arm64 are LE). */
			sbuf_addch(sb, '"');
			base64_add(sb, (const unsigned char *)v, e->dim * sizeof(float));
			sbuf_addch(sb, '"');
		} else {
			sbuf_addch(sb, '[');
			for (size_t d = 0; d < e->dim; d++)
				sbuf_addf(sb, "%s%.8g", d ? "," : "", (double)v[d]);
			sbuf_addch(sb, ']');
		}
		sbuf_addch(sb, '}');
	}
	sbuf_addstr(sb, "],\"model\":");
	sbuf_add_json_str(sb, e->name, strlen(e->name));
	sbuf_addf(sb, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", tokens, tokens);
	resp->status = 200;
	if (sbuf_error(sb))
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory writing embeddings");
}

/*
 * A model the request names that is not the loaded embedder: a GGUF file
 * models_dir/<name>.gguf, loaded through the model cache (one context;
 * release with model_cache_release). NULL with a 404 naming "model" when
 * there is no such file; the load's own error when it is not an embedder.
 */
static struct embedder *on_demand_embedder(struct http_req *req, const char *model,
					   struct rag_err *err)
{
	struct embedder_llama_options o;
	char path[1024];
	struct embedder *e;

	if (!req->ctx->models ||
	    model_cache_resolve(req->ctx->models_dir, model, path, sizeof(path)) < 0) {
		rag_err_set(err, RAG_ENOTFOUND, "model",
			    "model '%s' does not exist: this server embeds with '%s'", model,
			    rag_engine_model(atomic_load(&req->ctx->engine)));
		return NULL;
	}
	embedder_llama_default_options(&o);
	o.model_path = path;
	o.n_contexts = 1;
	o.n_threads = req->ctx->model_threads > 0 ? req->ctx->model_threads : 1;
	e = model_cache_embedder(req->ctx->models, &o, err);
	if (!e && err->code != RAG_ENOMEM) {
		/* Not an embedding model (or not a model): the client named the wrong one. */
		err->code = RAG_EINVAL;
		snprintf(err->field, sizeof(err->field), "model");
	}
	return e;
}

int http_oai_embeddings(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "input", "model", "encoding_format", "dimensions",
					       "user", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };
	struct embedder *e, *cached = NULL;
	const char *model = NULL, *format = NULL;
	const char **texts = NULL;
	size_t *lens = NULL, n = 0;
	long long dims = 0;
	float *vecs = NULL;
	json_t *body;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	e = rag_engine_embedder(eng);
	if (http_json_string(body, "model", 1, &model, NULL, resp) < 0 ||
	    http_json_string(body, "encoding_format", 0, &format, NULL, resp) < 0 ||
	    http_json_int(body, "dimensions", 1, 1 << 20, &dims, resp) < 0)
		goto out;
	if (strcmp(model, e->name) != 0) {
		cached = on_demand_embedder(req, model, &err);
		if (!cached) {
			http_error(resp, &err);
			goto out;
		}
		e = cached;
	}
	if (format && strcmp(format, "float") != 0 && strcmp(format, "base64") != 0) {
		http_errorf(resp, RAG_EINVAL, "encoding_format",
			    "field 'encoding_format' must be 'float' or 'base64'");
		goto out;
	}
	if (dims != 0 && (size_t)dims != e->dim) {
		http_errorf(resp, RAG_EINVAL, "dimensions",
			    "model '%s' makes %zu dimensions; 'dimensions' cannot change that",
			    e->name, e->dim);
		goto out;
	}
	if (read_inputs(body, &texts, &lens, &n, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	vecs = malloc(n * e->dim * sizeof(*vecs));
	if (!vecs) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory for %zu embeddings", n);
		goto out;
	}
	if (embedder_embed(e, texts, lens, n, vecs, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	embeddings_reply(resp, e, vecs, n, format && strcmp(format, "base64") == 0,
			 usage_tokens(e, texts, lens, n));
out:
	if (cached)
		model_cache_release(req->ctx->models, cached);
	free(vecs);
	free(texts);
	free(lens);
	json_decref(body);
	return 0;
}
