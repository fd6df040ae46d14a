/*
 * Document and search routes.
 */
#include "http/http_handlers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/rag_error.h"
#include "http/http_json.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"

#include "core/banned.h"

#define HTTP_DEFAULT_TOP_K 5 /* what a person reads at a glance */

static void reply_ingest(struct http_req *req, struct http_resp *resp,
			 const struct rag_ingest_result *res)
{
	http_json_reply(resp, res->replaced || res->unchanged ? 200 : 201,
			json_pack("{s:s, s:s, s:I, s:b, s:I, s:b, s:I, s:s}", "id", res->id,
				  "collection", req->params[0], "chunks", (json_int_t)res->n_chunks,
				  "replaced", res->replaced, "seq", (json_int_t)res->seq, "unchanged",
				  res->unchanged, "embedded", (json_int_t)res->n_embedded,
				  "content_hash", res->content_hash));
}

/*
 * A document sent as its own bytes (any Content-Type but JSON): id, format,
 * name and metadata (URL-encoded JSON object) come from the query string;
 * the format is sniffed unless forced. Binary or unsupported input: 415.
 */
static int document_put_raw(struct http_req *req, struct http_resp *resp, const char *ctype)
{
	struct rag_engine *eng = http_engine(req, resp);
	const char *meta_s = http_query_param(req, "metadata");
	struct rag_doc_in doc = { 0 };
	struct rag_ingest_result res;
	struct rag_err err = { 0 };
	char *meta = NULL;

	if (!eng)
		return 0;
	if (meta_s) {
		json_error_t jerr;
		json_t *m = json_loads(meta_s, 0, &jerr);

		if (!json_is_object(m)) {
			json_decref(m);
			http_errorf(resp, RAG_EINVAL, "metadata",
				    "query parameter 'metadata' must be a JSON object");
			return 0;
		}
		meta = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(m);
	}
	if (req->body_len > req->ctx->max_file_bytes) {
		free(meta);
		http_errorf(resp, RAG_ETOOBIG, "body",
			    "document is %zu bytes, over ingest.max_file_bytes (%zu)", req->body_len,
			    req->ctx->max_file_bytes);
		return 0;
	}
	doc.id = http_query_param(req, "id");
	doc.text = req->body;
	doc.text_len = req->body_len;
	doc.metadata_json = meta;
	doc.format = http_query_param(req, "format");
	if (!doc.format)
		doc.format = "auto";
	doc.name = http_query_param(req, "name");
	doc.content_type = ctype;
	if (rag_ingest(eng, req->who.tenant, req->params[0], &doc, &res, &err) < 0)
		http_error(resp, &err);
	else
		reply_ingest(req, resp, &res);
	free(meta);
	return 0;
}

/*
 * The body is the document itself for text types, PDF, XHTML and octet-stream
 * bodies; anything else (JSON, none, or the form type curl -d sends) is
 * read as the JSON request, as before raw bodies were accepted.
 */
static int is_document_type(const char *ctype)
{
	static const char *const types[] = { "text/", "application/pdf", "application/xhtml",
					     "application/octet-stream", NULL };

	for (size_t i = 0; ctype && types[i]; i++)
		if (strncasecmp(ctype, types[i], strlen(types[i])) == 0)
			return 1;
	return 0;
}

int http_document_put(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "id", "text", "metadata", "format", NULL };
	static const char *const raw_params[] = { "id", "format", "name", "metadata", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_doc_in doc = { 0 };
	struct rag_ingest_result res;
	struct rag_err err = { 0 };
	const char *ctype;
	char *meta = NULL;
	json_t *body;

	if (!eng)
		return 0;
	ctype = http_header(req, "Content-Type");
	if (is_document_type(ctype))
		return document_put_raw(req, resp, ctype);
	for (size_t i = 0; raw_params[i]; i++) {
		if (http_query_param(req, raw_params[i])) {
			http_errorf(resp, RAG_EINVAL, raw_params[i],
				    "query parameter '%s' is for raw document bodies; with JSON,"
				    " send it in the body", raw_params[i]);
			return 0;
		}
	}
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "id", 0, &doc.id, NULL, resp) < 0 ||
	    http_json_string(body, "text", 1, &doc.text, &doc.text_len, resp) < 0 ||
	    http_json_object_text(body, "metadata", &meta, resp) < 0 ||
	    http_json_string(body, "format", 0, &doc.format, NULL, resp) < 0)
		goto out;
	doc.metadata_json = meta;
	if (rag_ingest(eng, req->who.tenant, req->params[0], &doc, &res, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	reply_ingest(req, resp, &res);
out:
	free(meta);
	json_decref(body);
	return 0;
}

int http_document_get(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct store_doc doc;
	struct rag_err err = { 0 };

	if (!eng)
		return 0;
	if (rag_doc_get(eng, req->who.tenant, req->params[0], req->params[1], &doc, &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_cacheable(resp, req->ctx->http_max_age_s);
	http_json_reply(resp, 200,
			json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I}", "id", doc.id, "text", doc.text,
				  "metadata", http_json_parse_object(doc.metadata_json),
				  "content_hash", doc.content_hash, "chunks", (json_int_t)doc.n_chunks,
				  "created_at", (json_int_t)doc.created_at, "updated_at",
				  (json_int_t)doc.updated_at));
	store_doc_release(&doc);
	return 0;
}

int http_document_delete(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };

	if (!eng)
		return 0;
	if (rag_doc_delete(eng, req->who.tenant, req->params[0], req->params[1], &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:b}", "id", req->params[1], "deleted", 1));
	return 0;
}

static json_t *hit_json(const struct rag_hit *h)
{
	return json_pack("{s:s, s:I, s:f, s:s, s:o, s:I, s:I, s:I, s:I, s:s}", "document_id",
			 h->chunk.document_id, "chunk_id", (json_int_t)h->chunk.id, "score",
			 (double)h->score, "text", h->chunk.text, "metadata",
			 http_json_parse_object(h->chunk.metadata_json), "ordinal",
			 (json_int_t)h->chunk.ordinal, "start", (json_int_t)h->chunk.start_byte,
			 "end", (json_int_t)h->chunk.end_byte, "page", (json_int_t)h->chunk.page,
			 "section", h->chunk.section ? h->chunk.section : "");
}

int http_search(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "query", "top_k", "mode", "filter", "fusion",
					       "rrf_k", "alpha", "cache", NULL };
	static const char *const x_cache[] = { NULL, "MISS", "HIT", "BYPASS" };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_search_result res = { 0 };
	struct rag_err err = { 0 };
	struct rag_query q = { 0 };
	struct rag_filter *filter = NULL;
	const char *mode = NULL, *fusion = NULL;
	char *filter_text = NULL;
	long long rrf_k = RAG_RRF_K;
	json_t *alpha, *use_cache;
	long long top_k = HTTP_DEFAULT_TOP_K;
	json_t *body, *arr;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "query", 1, &q.text, &q.len, resp) < 0 ||
	    http_json_int(body, "top_k", -(1LL << 62), 1LL << 62, &top_k, resp) < 0 ||
	    http_json_string(body, "mode", 0, &mode, NULL, resp) < 0 ||
	    http_json_object_text(body, "filter", &filter_text, resp) < 0 ||
	    http_json_string(body, "fusion", 0, &fusion, NULL, resp) < 0 ||
	    http_json_int(body, "rrf_k", 1, RAG_RRF_K_MAX, &rrf_k, resp) < 0)
		goto out;
	q.rrf_k = (int)rrf_k;
	q.alpha = 0.5;
	alpha = json_object_get(body, "alpha");
	if (alpha && !json_is_null(alpha)) {
		if (!json_is_number(alpha) || json_number_value(alpha) < 0 ||
		    json_number_value(alpha) > 1) {
			http_errorf(resp, RAG_EINVAL, "alpha", "field 'alpha' must be a number from 0 to 1");
			goto out;
		}
		q.alpha = json_number_value(alpha);
	}
	use_cache = json_object_get(body, "cache");
	if (use_cache && !json_is_null(use_cache) && !json_is_boolean(use_cache)) {
		http_errorf(resp, RAG_EINVAL, "cache", "field 'cache' must be true or false");
		goto out;
	}
	q.no_cache = use_cache && json_is_false(use_cache);
	q.authorization = http_header(req, "Authorization"); /* for shard peers */
	if (fusion && strcmp(fusion, "rrf") != 0 && strcmp(fusion, "weighted") != 0) {
		http_errorf(resp, RAG_EINVAL, "fusion", "field 'fusion' must be 'rrf' or 'weighted'");
		goto out;
	}
	q.fusion = fusion && strcmp(fusion, "rrf") == 0 ? RAG_FUSION_RRF : RAG_FUSION_WEIGHTED;
	if (filter_text && rag_filter_parse(filter_text, strlen(filter_text), &filter, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	q.filter = rag_filter_tree(filter);
	q.filter_key = filter_text; /* compact with sorted keys: canonical */
	q.top_k = top_k < 1 ? 0 : (size_t)top_k; /* rag_search names the valid range */
	/*
	 * Hybrid by default: it beats the better single mode on every BEIR set
	 * measured and matches dense on paraphrased questions (bench/RESULTS.md).
	 */
	q.mode = RAG_MODE_HYBRID;
	if ((mode && rag_mode_parse(mode, &q.mode, &err) < 0) ||
	    rag_search(eng, req->who.tenant, req->params[0], &q, &res, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	resp->x_cache = (unsigned)res.cache < 4 ? x_cache[res.cache] : NULL;
	arr = json_array();
	for (size_t i = 0; i < res.n_hits; i++)
		json_array_append_new(arr, hit_json(&res.hits[i]));
	http_json_reply(resp, 200,
			json_pack("{s:o, s:{s:f, s:f, s:f}}", "results", arr, "timings", "embed_ms",
				  res.embed_ms, "search_ms", res.search_ms, "total_ms",
				  res.total_ms));
	rag_search_result_release(&res);
out:
	rag_filter_free(filter);
	free(filter_text);
	json_decref(body);
	return 0;
}
