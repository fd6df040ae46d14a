/*
 * POST /v1/chat/completions, OpenAI-compatible: plain generation with a
 * generator the request names, or, with "model": "rag:<collection>",
 * answers grounded in that collection (retrieve, prompt, generate, cite).
 *
 * Decoding keeps to what the official clients and LangChain send: fields
 * ragd cannot honour are refused with a 400 naming them (n > 1, tools,
 * logprobs, a response_format other than text), fields that only tune
 * OpenAI's service (penalties, logit_bias, user, store, metadata,
 * service_tier) are accepted and ignored. A message's content is a string
 * or an array of text parts; "developer" is a system message.
 *
 * Streaming ("stream": true) answers server-sent events in OpenAI's chunk
 * format (bare `data:` lines): a chunk with the assistant role, one chunk
 * per piece of text, a chunk with finish_reason (and `citations` for RAG),
 * a usage chunk when stream_options.include_usage asks for it, then
 * `data: [DONE]`. Generation runs on a worker (http_async, the same
 * machinery as /query): no HTTP thread waits on the model. The role chunk
 * goes out with the first piece, so an error before any text (busy,
 * prompt too long) is still a plain HTTP error with its status; after it,
 * an error travels as an `{"error":...}` event. A client that disconnects
 * stops the generation at its next token, streaming or not.
 */
#include "http/http_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rag_error.h"
#include "http/http_json.h"
#include "http/http_chat.h"
#include "http/http_stream.h"
#include "model/generator.h"
#include "rag/rag_engine.h"

#include "core/banned.h"

#define CHAT_MAX_MESSAGES 256 /* a conversation longer than this is an abuse */
#define CHAT_MAX_STOP 4       /* OpenAI's limit on stop strings */

/* One chat request: decoded by the handler, then owned by its worker (http_async). */
struct job {
	struct chat_request rq;
	char id[80];
	long long created;
	struct http_stream *s;
	int sent;           /* events went out: errors now go as an error event */
	int gone;           /* the client left: stop generating */
	size_t streamed;    /* bytes of answer sent as chunks */
	struct sbuf text;
	struct gen_usage usage;
	struct rag_err err;
	struct auth *auth;         /* generated tokens are charged to who's key */
	struct auth_principal who; /* valid until the server stops, past any worker */
};

static void request_release(struct chat_request *rq)
{
	for (size_t i = 0; i < rq->n_msgs; i++)
		free((char *)rq->msgs[i].content);
	free(rq->msgs);
	for (size_t i = 0; i < rq->params.n_stop; i++)
		free((char *)rq->params.stop[i]);
	free((char **)rq->params.stop);
	free(rq->model);
	free(rq->collection);
	free(rq->authorization);
	free(rq->citations_json);
	if (rq->release)
		rq->release(rq);
}

static int bad(struct rag_err *err, const char *field, const char *msg)
{
	return rag_err_set(err, RAG_EINVAL, field, "%s", msg);
}

/* A message's content: a string, or text parts joined. Caller frees. */
static int content_text(json_t *c, char **out, struct rag_err *err)
{
	struct sbuf sb = SBUF_INIT;
	json_t *part;
	size_t i;

	if (json_is_string(c)) {
		*out = strndup(json_string_value(c), json_string_length(c));
		return *out ? 0 : RAG_ENOMEM;
	}
	if (!json_is_array(c))
		return bad(err, "messages", "a message's 'content' must be a string or an array of "
					    "text parts");
	json_array_foreach(c, i, part) {
		json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");

		if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
		    !json_is_string(text)) {
			sbuf_release(&sb);
			return bad(err, "messages", "only text content parts are supported");
		}
		if (sb.len)
			sbuf_addch(&sb, '\n');
		sbuf_add(&sb, json_string_value(text), json_string_length(text));
	}
	*out = sbuf_detach(&sb, NULL);
	return *out ? 0 : RAG_ENOMEM;
}

static int read_messages(json_t *body, struct chat_request *rq, struct rag_err *err)
{
	json_t *arr = json_object_get(body, "messages"), *m;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return bad(err, "messages", "field 'messages' must be a non-empty array");
	if (json_array_size(arr) > CHAT_MAX_MESSAGES)
		return rag_err_set(err, RAG_EINVAL, "messages", "at most %d messages",
				   CHAT_MAX_MESSAGES);
	rq->msgs = calloc(json_array_size(arr), sizeof(*rq->msgs));
	if (!rq->msgs)
		return RAG_ENOMEM;
	json_array_foreach(arr, i, m) {
		json_t *role = json_object_get(m, "role");
		const char *r = json_is_string(role) ? json_string_value(role) : "";
		char *text = NULL;
		int rc;

		if (strcmp(r, "developer") == 0)
			r = "system";
		if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 &&
		    strcmp(r, "assistant") != 0)
			return bad(err, "messages", "a message's 'role' must be system, developer, "
						    "user or assistant");
		rc = content_text(json_object_get(m, "content"), &text, err);
		if (rc < 0)
			return rc;
		/* An assistant turn may be empty (a tool call elsewhere); others may not. */
		if (!(strcmp(r, "assistant") == 0 && text[0] == '\0') &&
		    rag_check_text(text, strlen(text), "messages", NULL) < 0) {
			free(text);
			return bad(err, "messages", "a message's content must be UTF-8 text that is "
						    "not empty");
		}
		rq->msgs[i].role = strcmp(r, "system") == 0 ? "system"
				   : strcmp(r, "user") == 0 ? "user" : "assistant";
		rq->msgs[i].content = text;
		rq->n_msgs++;
	}
	return 0;
}

static int read_number(json_t *body, const char *key, double min, double max, float *out,
		       struct rag_err *err)
{
	json_t *v = json_object_get(body, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max)
		return rag_err_set(err, RAG_EINVAL, key, "field '%s' must be a number from %g to %g",
				   key, min, max);
	*out = (float)json_number_value(v);
	return 0;
}

static int read_stop(json_t *body, struct gen_params *p, struct rag_err *err)
{
	json_t *v = json_object_get(body, "stop"), *s;
	const char **stop;
	size_t n, i;

	if (!v || json_is_null(v))
		return 0;
	n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
	if ((!json_is_string(v) && !json_is_array(v)) || n > CHAT_MAX_STOP)
		return rag_err_set(err, RAG_EINVAL, "stop",
				   "field 'stop' must be a string or up to %d strings", CHAT_MAX_STOP);
	stop = calloc(n ? n : 1, sizeof(*stop));
	if (!stop)
		return RAG_ENOMEM;
	p->stop = stop;
	for (i = 0; i < n; i++) {
		s = json_is_string(v) ? v : json_array_get(v, i);
		if (!json_is_string(s) || json_string_length(s) == 0)
			return bad(err, "stop", "each stop sequence must be a non-empty string");
		stop[i] = strdup(json_string_value(s));
		if (!stop[i])
			return RAG_ENOMEM;
		p->n_stop++;
	}
	return 0;
}

/* Fields ragd cannot honour: refused, naming them. */
static int refuse_unsupported(json_t *body, struct rag_err *err)
{
	json_t *n = json_object_get(body, "n"), *tools = json_object_get(body, "tools");
	json_t *lp = json_object_get(body, "logprobs"), *rf = json_object_get(body, "response_format");

	if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
		return bad(err, "n", "only n = 1 is supported");
	if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0))
		return bad(err, "tools", "tools are not supported");
	if (lp && !json_is_null(lp) && !json_is_false(lp))
		return bad(err, "logprobs", "logprobs are not supported");
	if (rf && !json_is_null(rf)) {
		json_t *t = json_object_get(rf, "type");

		if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0)
			return bad(err, "response_format", "only response_format type 'text' is "
							   "supported");
	}
	return 0;
}

static int read_request(json_t *body, struct chat_request *rq, struct rag_err *err)
{
	json_t *v, *so;
	long long max_tokens = 0;
	int rc;

	gen_params_default(&rq->params);
	v = json_object_get(body, "model");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return bad(err, "model", "field 'model' must be a non-empty string");
	rq->model = strdup(json_string_value(v));
	if (!rq->model)
		return RAG_ENOMEM;
	rc = refuse_unsupported(body, err);
	if (rc == 0)
		rc = read_messages(body, rq, err);
	if (rc == 0)
		rc = read_number(body, "temperature", 0, 2, &rq->params.temperature, err);
	if (rc == 0)
		rc = read_number(body, "top_p", 1e-6, 1, &rq->params.top_p, err);
	if (rc == 0)
		rc = read_stop(body, &rq->params, err);
	if (rc < 0)
		return rc;
	for (int k = 0; k < 2; k++) {
		const char *key = k ? "max_completion_tokens" : "max_tokens";

		v = json_object_get(body, key);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 1 << 20)
			return rag_err_set(err, RAG_EINVAL, key,
					   "field '%s' must be an integer from 1 to %d", key, 1 << 20);
		max_tokens = json_integer_value(v);
	}
	if (max_tokens) {
		rq->params.max_tokens = (int)max_tokens;
		rq->max_tokens_given = 1;
	}
	v = json_object_get(body, "seed");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v))
			return bad(err, "seed", "field 'seed' must be an integer");
		rq->params.seed = (uint64_t)json_integer_value(v);
	}
	v = json_object_get(body, "stream");
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return bad(err, "stream", "field 'stream' must be a boolean");
	rq->stream = json_is_true(v);
	so = json_object_get(body, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return bad(err, "stream_options", "field 'stream_options' must be an object");
		rq->include_usage = json_is_true(json_object_get(so, "include_usage"));
	}
	return 0;
}

/* --- running and answering ------------------------------------------------ */

static const char *finish_reason(const struct gen_usage *u)
{
	return u->finish_reason && strcmp(u->finish_reason, "length") == 0 ? "length" : "stop";
}

static void chunk_head(struct job *j, struct sbuf *sb)
{
	sbuf_addstr(sb, "{\"id\":");
	sbuf_add_json_str(sb, j->id, strlen(j->id));
	sbuf_addf(sb, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
		  j->created);
	sbuf_add_json_str(sb, j->rq.model, strlen(j->rq.model));
}

/* One `data:` event; remembers that the client left. */
static int send_event(struct job *j, struct sbuf *ev)
{
	if (!j->gone && http_stream_event(j->s, NULL, ev->buf, ev->len) != 0)
		j->gone = 1;
	j->sent = 1;
	sbuf_reset(ev);
	return j->gone;
}

/*
 * A piece of the answer as a chunk. The role chunk that opens OpenAI's
 * streams goes out with the first piece, not before: until then an error
 * can still be answered as a plain HTTP error with its status.
 */
static int on_token(void *ctx, const char *piece, size_t len)
{
	struct job *j = ctx;
	struct sbuf ev = SBUF_INIT;

	if (len == 0) /* "should I go on?" (the RAG pipeline asks before generating) */
		return j->gone || http_stream_gone(j->s);
	j->streamed += len;
	if (!j->sent) {
		chunk_head(j, &ev);
		sbuf_addstr(&ev, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
				 "\"content\":\"\"},\"finish_reason\":null}]}");
		send_event(j, &ev);
	}
	chunk_head(j, &ev);
	sbuf_addstr(&ev, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
	sbuf_add_json_str(&ev, piece, len);
	sbuf_addstr(&ev, "},\"finish_reason\":null}]}");
	send_event(j, &ev);
	sbuf_release(&ev);
	return j->gone;
}

/* Whole-answer mode: no events, but a client that left still stops the work. */
static int on_token_quiet(void *ctx, const char *piece, size_t len)
{
	struct job *j = ctx;

	(void)piece, (void)len;
	return http_stream_gone(j->s);
}

static void usage_json(struct sbuf *sb, const struct gen_usage *u)
{
	sbuf_addf(sb, "{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu}",
		  u->prompt_tokens, u->completion_tokens, u->prompt_tokens + u->completion_tokens);
}

/* The closing events: finish_reason (and citations), usage if asked, [DONE]. */
static void finish_stream(struct job *j, int rc)
{
	struct sbuf ev = SBUF_INIT;

	if (rc < 0) {
		sbuf_addstr(&ev, "{\"error\":{\"message\":");
		sbuf_add_json_str(&ev, j->err.msg, strlen(j->err.msg));
		sbuf_addf(&ev, ",\"type\":\"server_error\",\"param\":null,\"code\":\"%s\"}}",
			  rag_err_name(rc));
		send_event(j, &ev);
	} else {
		if (j->streamed == 0) {
			/* Nothing streamed (an extractive answer comes whole): one chunk. */
			chunk_head(j, &ev);
			sbuf_addstr(&ev, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
					 "\"assistant\",\"content\":");
			sbuf_add_json_str(&ev, j->text.buf, j->text.len);
			sbuf_addstr(&ev, "},\"finish_reason\":null}]}");
			send_event(j, &ev);
		}
		chunk_head(j, &ev);
		sbuf_addf(&ev, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]",
			  finish_reason(&j->usage));
		if (j->rq.citations_json) {
			sbuf_addstr(&ev, ",\"citations\":");
			sbuf_addstr(&ev, j->rq.citations_json);
		}
		sbuf_addch(&ev, '}');
		send_event(j, &ev);
		if (j->rq.include_usage) {
			chunk_head(j, &ev);
			sbuf_addstr(&ev, ",\"choices\":[],\"usage\":");
			usage_json(&ev, &j->usage);
			sbuf_addch(&ev, '}');
			send_event(j, &ev);
		}
	}
	sbuf_addstr(&ev, "[DONE]");
	send_event(j, &ev);
	sbuf_release(&ev);
}

static void whole_answer(struct job *j, struct http_resp *resp)
{
	struct sbuf *sb = &resp->body;

	sbuf_reset(sb);
	sbuf_addstr(sb, "{\"id\":");
	sbuf_add_json_str(sb, j->id, strlen(j->id));
	sbuf_addf(sb, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", j->created);
	sbuf_add_json_str(sb, j->rq.model, strlen(j->rq.model));
	sbuf_addstr(sb, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
			"\"content\":");
	sbuf_add_json_str(sb, j->text.buf, j->text.len);
	sbuf_addf(sb, "},\"finish_reason\":\"%s\"}],\"usage\":", finish_reason(&j->usage));
	usage_json(sb, &j->usage);
	if (j->rq.citations_json) {
		sbuf_addstr(sb, ",\"citations\":");
		sbuf_addstr(sb, j->rq.citations_json);
	}
	sbuf_addch(sb, '}');
	resp->status = 200;
	if (sbuf_error(sb))
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory writing the answer");
}

static void job_free(struct job *j)
{
	request_release(&j->rq);
	sbuf_release(&j->text);
	free(j);
}

/* The worker (http_async): generates, then answers whole or finishes the stream. */
static void chat_work(struct http_stream *s, void *arg)
{
	struct job *j = arg;
	struct http_resp resp = { .status = 200, .error_style = HTTP_ERRORS_OPENAI };
	int rc;

	j->s = s;
	sbuf_init(&resp.body, 0);
	rc = j->rq.run(&j->rq, j->rq.stream ? on_token : on_token_quiet, j, &j->text, &j->usage,
		       &j->err);
	auth_charge_tokens(j->auth, &j->who, (int64_t)j->usage.completion_tokens);
	if (j->rq.stream && (j->sent || rc == 0)) {
		finish_stream(j, rc);
	} else {
		if (rc < 0)
			http_error(&resp, &j->err);
		else
			whole_answer(j, &resp);
		http_stream_reply(s, &resp);
	}
	sbuf_release(&resp.body);
	job_free(j);
}

int http_oai_chat(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = {
		"model", "messages", "stream", "stream_options", "max_tokens",
		"max_completion_tokens", "temperature", "top_p", "seed", "stop", "n", "user",
		"presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
		"response_format", "tools", "tool_choice", "parallel_tool_calls", "service_tier",
		"metadata", "store", NULL
	};
	struct rag_engine *eng = http_engine(req, resp);
	struct job *j;
	json_t *body;

	if (!eng)
		return 0;
	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	j = calloc(1, sizeof(*j));
	if (!j) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		json_decref(body);
		return 0;
	}
	sbuf_init(&j->text, 0);
	j->auth = req->ctx->auth;
	j->who = req->who;
	snprintf(j->id, sizeof(j->id), "chatcmpl-%s", req->request_id ? req->request_id : "0");
	j->created = (long long)time(NULL);
	if (read_request(body, &j->rq, &j->err) < 0 ||
	    http_chat_bind(req, eng, &j->rq, &j->err) < 0) {
		if (!j->err.code)
			rag_err_set(&j->err, RAG_ENOMEM, NULL, "out of memory");
		http_error(resp, &j->err);
		json_decref(body);
		job_free(j);
		return 0;
	}
	json_decref(body);
	if (http_async(req, resp, chat_work, j) < 0)
		job_free(j);
	return 0;
}
