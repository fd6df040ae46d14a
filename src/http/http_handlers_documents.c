/*
 * Document and search routes.
 */
#include "http/http_handlers.h"

#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "http/http_json.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"

#include "core/banned.h"

#define HTTP_DEFAULT_TOP_K 5 /* what a person reads at a glance */

int http_document_put(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "id", "text", "metadata", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_doc_in doc = { 0 };
	struct rag_ingest_result res;
	struct rag_err err = { 0 };
	char *meta = NULL;
	json_t *body;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "id", 0, &doc.id, NULL, resp) < 0 ||
	    http_json_string(body, "text", 1, &doc.text, &doc.text_len, resp) < 0 ||
	    http_json_object_text(body, "metadata", &meta, resp) < 0)
		goto out;
	doc.metadata_json = meta;
	if (rag_ingest(eng, req->ctx->tenant, req->params[0], &doc, &res, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	http_json_reply(resp, res.replaced ? 200 : 201,
			json_pack("{s:s, s:s, s:I, s:b, s:I}", "id", res.id, "collection",
				  req->params[0], "chunks", (json_int_t)res.n_chunks, "replaced",
				  res.replaced, "seq", (json_int_t)res.seq));
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
	if (rag_doc_get(eng, req->ctx->tenant, req->params[0], req->params[1], &doc, &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
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
	if (rag_doc_delete(eng, req->ctx->tenant, req->params[0], req->params[1], &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:b}", "id", req->params[1], "deleted", 1));
	return 0;
}

static json_t *hit_json(const struct rag_hit *h)
{
	return json_pack("{s:s, s:I, s:f, s:s, s:o, s:I, s:I, s:I}", "document_id",
			 h->chunk.document_id, "chunk_id", (json_int_t)h->chunk.id, "score",
			 (double)h->score, "text", h->chunk.text, "metadata",
			 http_json_parse_object(h->chunk.metadata_json), "ordinal",
			 (json_int_t)h->chunk.ordinal, "start", (json_int_t)h->chunk.start_byte,
			 "end", (json_int_t)h->chunk.end_byte);
}

int http_search(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "query", "top_k", "mode", "filter", "fusion",
					       "rrf_k", "alpha", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_search_result res = { 0 };
	struct rag_err err = { 0 };
	struct rag_query q = { 0 };
	struct rag_filter *filter = NULL;
	const char *mode = NULL, *fusion = NULL;
	char *filter_text = NULL;
	long long rrf_k = RAG_RRF_K;
	json_t *alpha;
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
	q.top_k = top_k < 1 ? 0 : (size_t)top_k; /* rag_search names the valid range */
	/*
	 * Hybrid by default: it beats the better single mode on every BEIR set
	 * measured and matches dense on paraphrased questions (bench/RESULTS.md).
	 */
	q.mode = RAG_MODE_HYBRID;
	if ((mode && rag_mode_parse(mode, &q.mode, &err) < 0) ||
	    rag_search(eng, req->ctx->tenant, req->params[0], &q, &res, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
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
