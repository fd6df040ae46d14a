/*
 * /health, /ready and the collection routes.
 */
#include "http/http_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "http/http_json.h"
#include "rag/rag_engine.h"

#include "core/banned.h"

void http_cacheable(struct http_resp *resp, int max_age_s)
{
	snprintf(resp->cache_control_buf, sizeof(resp->cache_control_buf),
		 "public, max-age=%d, must-revalidate", max_age_s > 0 ? max_age_s : 0);
	resp->cache_control = resp->cache_control_buf;
}

struct rag_engine *http_engine(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = atomic_load(&req->ctx->engine);

	if (!eng)
		http_errorf(resp, RAG_EBUSY, NULL, "ragd is starting: models and indexes are loading");
	return eng;
}

int http_health(struct http_req *req, struct http_resp *resp)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "status", "healthy", "instance", req->ctx->instance,
			      "version", RAGD_VERSION);

	http_json_reply(resp, 200, o);
	return 0;
}

int http_check_ready(struct http_ctx *ctx, struct rag_err *err)
{
	struct rag_engine *eng = atomic_load(&ctx->engine);

	if (atomic_load(&ctx->draining))
		return rag_err_set(err, RAG_EBUSY, NULL, "shutting down");
	if (!eng)
		return rag_err_set(err, RAG_EBUSY, NULL, "models and indexes are loading");
	return rag_engine_health(eng, err);
}

int http_ready(struct http_req *req, struct http_resp *resp)
{
	struct rag_err err = { 0 };
	int rc = http_check_ready(req->ctx, &err);

	if (rc == 0) {
		http_json_reply(resp, 200, json_pack("{s:s, s:s}", "status", "ready", "instance",
						     req->ctx->instance));
		return 0;
	}
	http_json_reply(resp, 503,
			json_pack("{s:s, s:s, s:s}", "status",
				  atomic_load(&req->ctx->engine) ? "not_ready" : "starting", "reason",
				  err.msg, "instance", req->ctx->instance));
	return 0;
}

static json_t *collection_json(const struct rag_collection_info *info)
{
	char index[512];

	vindex_spec_json(&info->index, index, sizeof(index));
	return json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "name",
			 info->c.name, "embedding_model", info->c.embed_model, "dimensions",
			 info->c.dim,
			 "chunk_size", info->c.chunk_size, "chunk_overlap", info->c.chunk_overlap,
			 "stemming", info->porter ? "porter" : "none", "chunker", info->chunker,
			 "created_at", (json_int_t)info->c.created_at, "seq",
			 (json_int_t)info->c.seq, "vectors", (json_int_t)info->n_vectors,
			 "index_bytes", (json_int_t)info->index_bytes, "index",
			 json_loads(index, 0, NULL));
}

int http_collection_create(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "name", "embedding_model", "chunk_size",
					       "chunk_overlap", "stemming", "chunker", "index", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_collection_spec spec = { 0 };
	struct rag_collection_info info;
	struct rag_err err = { 0 };
	long long size = 0, overlap = -1;
	char *index_json = NULL;
	json_t *body;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "name", 1, &spec.name, NULL, resp) < 0 ||
	    http_json_string(body, "embedding_model", 0, &spec.embedding_model, NULL, resp) < 0 ||
	    http_json_string(body, "stemming", 0, &spec.stemming, NULL, resp) < 0 ||
	    http_json_string(body, "chunker", 0, &spec.chunker, NULL, resp) < 0 ||
	    http_json_int(body, "chunk_size", 1, 1 << 20, &size, resp) < 0 ||
	    http_json_int(body, "chunk_overlap", 0, 1 << 20, &overlap, resp) < 0 ||
	    http_json_object_text(body, "index", &index_json, resp) < 0)
		goto out;
	spec.index_json = index_json;
	spec.chunk_size = (int)size;
	spec.chunk_overlap = (int)overlap;
	if (rag_collection_create(eng, req->who.tenant, &spec, &info, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	http_json_reply(resp, 201, collection_json(&info));
	rag_collection_info_release(&info);
out:
	free(index_json);
	json_decref(body);
	return 0;
}

int http_collection_update(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "embedding_model", NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };
	const char *model = NULL;
	char job_id[RAG_JOB_ID_MAX + 1], link[64];
	json_t *body;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "embedding_model", 1, &model, NULL, resp) < 0)
		goto out;
	if (rag_collection_change_model(eng, req->who.tenant, req->params[0], model, job_id,
					&err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	snprintf(link, sizeof(link), "/v1/jobs/%s", job_id);
	http_json_reply(resp, 202, json_pack("{s:s, s:s, s:s, s:s}", "job_id", job_id, "state",
					     "queued", "embedding_model", model, "status_url", link));
out:
	json_decref(body);
	return 0;
}

int http_collection_list(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_collection_info *list = NULL;
	struct rag_err err = { 0 };
	size_t n = 0;
	json_t *arr;

	if (!eng)
		return 0;
	if (rag_collection_list(eng, req->who.tenant, &list, &n, &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, collection_json(&list[i]));
	rag_collection_info_list_free(list, n);
	http_json_reply(resp, 200, json_pack("{s:o}", "collections", arr));
	return 0;
}

int http_collection_get(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_collection_info info;
	struct rag_err err = { 0 };

	if (!eng)
		return 0;
	if (rag_collection_get(eng, req->who.tenant, req->params[0], &info, &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_cacheable(resp, req->ctx->http_max_age_s);
	http_json_reply(resp, 200, collection_json(&info));
	rag_collection_info_release(&info);
	return 0;
}

int http_collection_delete(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };

	if (!eng)
		return 0;
	if (rag_collection_delete(eng, req->who.tenant, req->params[0], &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:b}", "name", req->params[0], "deleted", 1));
	return 0;
}
