/*
 * POST /v1/internal/shard-search: the instance-to-instance half of a
 * sharded search (rag/rag_shard.h). Another instance sends the query's
 * embedding, k and the filter; this one answers with the k best of its own
 * vector index and the shards it holds, so the caller can check it asked
 * the right instance. It never fans out further, so a cluster whose peer
 * lists point at each other cannot loop.
 *
 * With auth on it needs a key (reader) like any search, and answers for
 * the key's tenant only: the fanning-out instance sends its caller's own
 * Authorization header (rag_shards_search), so a peer serves exactly the
 * tenant the original request was for. Still, expose it only on the
 * cluster network (docs/sharding.md).
 */
#include <jansson.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "http/http.h"
#include "http/http_handlers.h"
#include "http/http_json.h"
#include "index/vindex.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"

#include "core/banned.h"

#define SHARD_K_MAX 200050 /* limits.max_top_k's ceiling x 2 + 50: a hybrid search's depth */

int http_shard_search(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "collection", "vector", "k", "filter", NULL };
	struct rag_engine *eng;
	struct rag_filter *filter = NULL;
	struct rag_err err = { 0 };
	const char *collection = NULL;
	char *filter_text = NULL;
	long long k = 0;
	json_t *body, *vec, *v, *ids = NULL, *scores = NULL, *shards;
	float *qv = NULL, *sc = NULL;
	int64_t *id = NULL;
	size_t dim, n = 0, i;
	uint64_t held;

	/* The whole body is decoded before the engine is asked for (fuzz/fuzz_request.c). */
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "collection", 1, &collection, NULL, resp) < 0 ||
	    http_json_int(body, "k", 1, SHARD_K_MAX, &k, resp) < 0 ||
	    http_json_object_text(body, "filter", &filter_text, resp) < 0)
		goto out;
	vec = json_object_get(body, "vector");
	dim = json_array_size(vec);
	if (!json_is_array(vec) || dim == 0 || dim > VINDEX_DIM_MAX) {
		http_errorf(resp, RAG_EINVAL, "vector", "field 'vector' must be an array of numbers");
		goto out;
	}
	qv = malloc(dim * sizeof(float));
	id = malloc((size_t)k * sizeof(int64_t));
	sc = malloc((size_t)k * sizeof(float));
	if (!qv || !id || !sc) {
		http_errorf(resp, RAG_ENOMEM, "k", "out of memory for %lld results", k);
		goto out;
	}
	json_array_foreach(vec, i, v) {
		/* a double beyond float's range does not convert (undefined) */
		if (!json_is_number(v) || fabs(json_number_value(v)) > FLT_MAX) {
			http_errorf(resp, RAG_EINVAL, "vector",
				    "field 'vector' must hold numbers within float's range only");
			goto out;
		}
		qv[i] = (float)json_number_value(v);
	}
	if (filter_text && rag_filter_parse(filter_text, strlen(filter_text), &filter, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	eng = http_engine(req, resp);
	if (!eng)
		goto out;
	if (rag_search_local_dense(eng, req->who.tenant, collection, qv, dim, (size_t)k,
				   rag_filter_tree(filter), id, sc, &n, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	ids = json_array();
	scores = json_array();
	shards = json_array();
	for (i = 0; i < n; i++) {
		json_array_append_new(ids, json_integer(id[i]));
		json_array_append_new(scores, json_real(sc[i])); /* 17 digits: the float exactly */
	}
	held = rag_engine_shards_held(eng);
	for (i = 0; i < 64; i++)
		if ((held >> i) & 1)
			json_array_append_new(shards, json_integer((json_int_t)i));
	http_json_reply(resp, 200,
			json_pack("{s:o, s:o, s:o}", "ids", ids, "scores", scores, "shards", shards));
out:
	rag_filter_free(filter);
	free(filter_text);
	free(qv);
	free(id);
	free(sc);
	json_decref(body);
	return 0;
}
