/*
 * POST /v1/collections/{name}/query: a grounded answer with citations.
 *
 * The handler only decodes the body; the pipeline (rag_answer) runs on a
 * worker through http_async, so no HTTP thread waits for the model and a
 * full generator queue is a quick 503. With "stream": true the answer's
 * text goes out as server-sent events, `event: token` with {"text": ...}
 * as the model makes it, then `event: done` with the same object a plain
 * request gets (answer with invalid citations removed, citations, usage,
 * timings); an error after the first token is an `event: error` with the
 * usual error object. A client that disconnects stops the generation at
 * its next token.
 *
 * Answers are cached (rag_answer says which): a hit is X-Cache: HIT, and
 * streamed as one token event with the whole text, then done, as usual.
 * "cache": false bypasses the answer and search caches.
 */
#include "http/http_handlers.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "http/http_json.h"
#include "http/http_stream.h"
#include "rag/rag_answer.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"

#include "core/banned.h"

/* What the worker needs, copied out of the request. */
struct query_job {
	struct rag_engine *eng;
	struct http_stream *s;
	struct auth *auth;       /* generated tokens are charged to who's key */
	struct auth_principal who; /* strings valid until the server stops, past any worker */
	char *authorization;     /* the caller's header, for shard peers; NULL when none */
	char *collection;
	char *question;
	size_t question_len;
	char *session_id;
	struct rag_filter *filter;
	char *filter_key; /* the filter as canonical JSON, for the cache key */
	enum rag_mode mode;
	size_t top_k;
	int max_tokens;
	float temperature;
	int stream;
	int no_cache;
	int n_events;
};

static void job_free(struct query_job *j)
{
	if (!j)
		return;
	free(j->collection);
	free(j->question);
	free(j->session_id);
	free(j->authorization);
	rag_filter_free(j->filter);
	free(j->filter_key);
	free(j);
}

/* Without streaming, a token only asks whether to go on: not if the client left. */
static int on_token_quiet(void *ctx, const char *piece, size_t len)
{
	struct query_job *j = ctx;

	(void)piece, (void)len;
	return http_stream_gone(j->s);
}

static int on_token(void *ctx, const char *piece, size_t len)
{
	struct query_job *j = ctx;
	json_t *o;
	char *text;
	int gone;

	if (len == 0)
		return http_stream_gone(j->s);
	o = json_object();
	json_object_set_new(o, "text", json_stringn(piece, len));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return 1;
	j->n_events++;
	gone = http_stream_event(j->s, "token", text, strlen(text));
	free(text);
	return gone;
}

static json_t *answer_json(const struct query_job *j, const struct rag_answer *a)
{
	json_t *cites = json_array();

	for (size_t i = 0; i < a->n_citations; i++) {
		const struct rag_citation *c = &a->citations[i];

		json_array_append_new(
			cites, json_pack("{s:i, s:s, s:I, s:f, s:s, s:I, s:I}", "n", c->n,
					 "document_id", c->document_id, "chunk_id",
					 (json_int_t)c->chunk_id, "score", (double)c->score, "text",
					 c->text, "start", (json_int_t)c->start_byte, "end",
					 (json_int_t)c->end_byte));
	}
	return json_pack(
		"{s:s, s:o, s:s, s:s, s:s, s:s?, s:s, s:I, s:I, s:{s:I, s:I, s:I}, "
		"s:{s:f, s:f, s:f, s:f, s:f, s:f}}",
		"answer", a->text.buf, "citations", cites, "kind", a->kind, "model",
		rag_answer_model(j->eng), "query", a->query, "session_id", j->session_id,
		"finish_reason", a->usage.finish_reason ? a->usage.finish_reason : "stop",
		"sources", (json_int_t)a->n_sources, "invalid_citations", (json_int_t)a->n_invalid,
		"usage", "prompt_tokens", (json_int_t)a->usage.prompt_tokens, "completion_tokens",
		(json_int_t)a->usage.completion_tokens, "total_tokens",
		(json_int_t)(a->usage.prompt_tokens + a->usage.completion_tokens), "timings",
		"rewrite_ms", a->rewrite_ms, "retrieve_ms", a->retrieve_ms, "queue_ms",
		a->usage.queue_ms, "ttft_ms", a->usage.ttft_ms, "generate_ms", a->generate_ms,
		"total_ms", a->total_ms);
}

static void query_work(struct http_stream *s, void *arg)
{
	struct query_job *j = arg;
	struct http_resp resp = { .status = 200 };
	struct rag_answer a;
	struct rag_ask q = { 0 };
	struct rag_err err = { 0 };
	char *text;

	j->s = s;
	q.question = j->question;
	q.len = j->question_len;
	q.top_k = j->top_k;
	q.mode = j->mode;
	q.filter = rag_filter_tree(j->filter);
	q.filter_key = j->filter_key;
	q.no_cache = j->no_cache;
	q.authorization = j->authorization;
	q.session_id = j->session_id;
	q.max_tokens = j->max_tokens;
	q.temperature = j->temperature;
	q.on_token = j->stream ? on_token : on_token_quiet;
	q.ctx = j;
	sbuf_init(&resp.body, 0);
	if (rag_answer(j->eng, j->who.tenant, j->collection, &q, &a, &err) < 0) {
		http_error(&resp, &err);
		if (resp.status >= 500)
			log_warn("answer failed (request %s): %s", http_stream_request_id(s), err.msg);
		if (j->n_events > 0)
			http_stream_event(s, "error", resp.body.buf, resp.body.len);
		else
			http_stream_reply(s, &resp);
	} else if (j->stream) {
		json_t *o;

		if (a.cache != RAG_CACHE_HIT)
			auth_charge_tokens(j->auth, &j->who, (int64_t)a.usage.completion_tokens);
		o = answer_json(j, &a);

		text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
		json_decref(o);
		if (text)
			http_stream_event(s, "done", text, strlen(text));
		free(text);
	} else {
		static const char *const x_cache[] = { NULL, "MISS", "HIT", "BYPASS" };
		json_t *o;

		if (a.cache != RAG_CACHE_HIT)
			auth_charge_tokens(j->auth, &j->who, (int64_t)a.usage.completion_tokens);
		o = answer_json(j, &a);
		resp.x_cache = (unsigned)a.cache < 4 ? x_cache[a.cache] : NULL;
		http_json_reply(&resp, 200, o);
		http_stream_reply(s, &resp);
	}
	rag_answer_release(&a);
	sbuf_release(&resp.body);
	job_free(j);
}

/* Reads an optional number field within [min, max]. */
static int number_field(json_t *body, const char *key, double min, double max, double *out,
			struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
		http_errorf(resp, RAG_EINVAL, key, "field '%s' must be a number from %g to %g", key,
			    min, max);
		return RAG_EINVAL;
	}
	*out = json_number_value(v);
	return 0;
}

int http_query(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "question", "top_k", "mode", "filters", "stream",
					       "session_id", "max_tokens", "temperature", "cache",
					       NULL };
	struct rag_engine *eng = http_engine(req, resp);
	struct query_job *j = NULL;
	struct rag_err err = { 0 };
	const char *question = NULL, *mode = NULL, *session = NULL, *fkey = "filters";
	char *filter_text = NULL;
	long long top_k = req->ctx->answer_top_k > 0 ? req->ctx->answer_top_k : 5;
	long long max_tokens = req->ctx->answer_max_tokens > 0 ? req->ctx->answer_max_tokens : 256;
	double temperature = 0;
	size_t question_len = 0;
	json_t *body, *stream, *use_cache;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	if (http_json_string(body, "question", 1, &question, &question_len, resp) < 0 ||
	    http_json_int(body, "top_k", 1, 100, &top_k, resp) < 0 ||
	    http_json_string(body, "mode", 0, &mode, NULL, resp) < 0 ||
	    http_json_object_text(body, fkey, &filter_text, resp) < 0 ||
	    http_json_string(body, "session_id", 0, &session, NULL, resp) < 0 ||
	    http_json_int(body, "max_tokens", 1, 8192, &max_tokens, resp) < 0 ||
	    number_field(body, "temperature", 0, 2, &temperature, resp) < 0)
		goto out;
	stream = json_object_get(body, "stream");
	if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
		http_errorf(resp, RAG_EINVAL, "stream", "field 'stream' must be a boolean");
		goto out;
	}
	use_cache = json_object_get(body, "cache");
	if (use_cache && !json_is_null(use_cache) && !json_is_boolean(use_cache)) {
		http_errorf(resp, RAG_EINVAL, "cache", "field 'cache' must be true or false");
		goto out;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	j->mode = RAG_MODE_DENSE; /* as search: see http_search for why */
	if (mode && rag_mode_parse(mode, &j->mode, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	if (filter_text && rag_filter_parse(filter_text, strlen(filter_text), &j->filter, &err) < 0) {
		if (strcmp(err.field, "filter") == 0)
			snprintf(err.field, sizeof(err.field), "%s", fkey);
		http_error(resp, &err);
		goto out;
	}
	j->filter_key = filter_text; /* compact with sorted keys: canonical */
	filter_text = NULL;
	j->no_cache = use_cache && json_is_false(use_cache);
	j->eng = eng;
	j->auth = req->ctx->auth;
	j->who = req->who;
	if (http_header(req, "Authorization")) {
		j->authorization = strdup(http_header(req, "Authorization"));
		if (!j->authorization) {
			http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
			goto out;
		}
	}
	j->collection = strdup(req->params[0]);
	j->question = malloc(question_len + 1);
	if (j->question) {
		memcpy(j->question, question, question_len); /* may hold a NUL: checked later */
		j->question[question_len] = '\0';
	}
	j->question_len = question_len;
	j->session_id = session ? strdup(session) : NULL;
	j->top_k = (size_t)top_k;
	j->max_tokens = (int)max_tokens;
	j->temperature = (float)temperature;
	j->stream = stream && json_is_true(stream);
	if (!j->collection || !j->question || (session && !j->session_id)) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	if (http_async(req, resp, query_work, j) == 0)
		j = NULL; /* the worker owns it */
out:
	job_free(j);
	free(filter_text);
	json_decref(body);
	return 0;
}
