/*
 * Remote generator: POST /v1/chat/completions with "stream": true to a pool
 * of OpenAI-compatible servers, turning the server-sent chunks back into
 * on_token calls.
 *
 * The SSE stream is parsed line by line as it arrives: each `data: {...}`
 * line is a chat.completion.chunk whose choices[0].delta.content is the
 * next piece, `data: [DONE]` ends it; stream_options.include_usage asks
 * for a last chunk with the token counts. A server that ignores `stream`
 * and answers one JSON completion is read too. The routing key is the
 * request body, so with the hash policy equal prompts reach the same warm
 * instance (and its prompt cache). A failure before the first piece is
 * retried on another instance by the pool; after it, the call fails, since
 * the client has already seen part of an answer.
 *
 * Token counts for the prompt budget are estimated (no tokenizer over this
 * API): one per GEN_REMOTE_BYTES_PER_TOKEN bytes, an over-estimate.
 */
#include "model/generator.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/model_pool.h"

#include "core/banned.h"

#define GEN_REMOTE_BYTES_PER_TOKEN 3 /* over-estimates tokens: prompts stay within n_ctx */
#define GEN_REMOTE_LINE_MAX (1 << 20) /* one SSE line; a longer one is a broken server */

struct generator_remote {
	struct generator base;
	struct model_pool *pool;
};

void generator_remote_default_options(struct generator_remote_options *o)
{
	model_pool_default_options(&o->pool);
	o->pool.name = "generator";
	o->pool.request_timeout_ms = 120000;
	o->pool.deadline_ms = 180000;
	o->model = "SmolLM2-135M-Instruct-Q4_1";
	o->n_ctx = 8192;
}

struct stream {
	gen_token_fn on_token;
	void *ctx;
	struct sbuf *out;
	struct gen_usage *usage;
	struct sbuf line;  /* the incomplete line so far */
	struct sbuf whole; /* everything, for a server that did not stream */
	int saw_data;
	int stopped;
	double t0;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *finish_name(const char *s)
{
	if (strcmp(s, "length") == 0)
		return "length";
	return "stop";
}

static void read_usage(json_t *root, struct gen_usage *u)
{
	json_t *usage = json_object_get(root, "usage");

	if (!json_is_object(usage))
		return;
	u->prompt_tokens = (size_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
	u->completion_tokens =
		(size_t)json_integer_value(json_object_get(usage, "completion_tokens"));
}

/* Hands a piece of text on; returns non-zero when the caller asked to stop. */
static int piece(struct stream *s, const char *text, size_t len)
{
	if (len == 0 || s->stopped)
		return s->stopped;
	if (s->usage->ttft_ms == 0)
		s->usage->ttft_ms = now_ms() - s->t0;
	sbuf_add(s->out, text, len);
	if (s->on_token && s->on_token(s->ctx, text, len) != 0)
		s->stopped = 1;
	return s->stopped;
}

static int chunk(struct stream *s, const char *data, size_t len)
{
	json_t *root = json_loadb(data, len, 0, NULL);
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *content = json_object_get(json_object_get(choice, "delta"), "content");
	json_t *finish = json_object_get(choice, "finish_reason");
	int rc = 0;

	if (json_is_string(finish))
		s->usage->finish_reason = finish_name(json_string_value(finish));
	read_usage(root, s->usage);
	if (json_is_string(content))
		rc = piece(s, json_string_value(content), json_string_length(content));
	json_decref(root);
	return rc;
}

static int on_line(struct stream *s, const char *line, size_t len)
{
	if (len >= 5 && memcmp(line, "data:", 5) == 0) {
		line += 5;
		len -= 5;
		while (len > 0 && *line == ' ')
			line++, len--;
		s->saw_data = 1;
		if (len == 6 && memcmp(line, "[DONE]", 6) == 0)
			return 0;
		return chunk(s, line, len);
	}
	return 0;
}

static int on_data(void *arg, const char *data, size_t len)
{
	struct stream *s = arg;

	if (!s->saw_data && s->whole.len < GEN_REMOTE_LINE_MAX)
		sbuf_add(&s->whole, data, len);
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (s->line.len < GEN_REMOTE_LINE_MAX)
				sbuf_addch(&s->line, data[i]);
			continue;
		}
		if (s->line.len > 0 && s->line.buf[s->line.len - 1] == '\r')
			sbuf_truncate(&s->line, s->line.len - 1);
		if (on_line(s, s->line.buf, s->line.len) != 0)
			return 1;
		sbuf_reset(&s->line);
	}
	return 0;
}

/* A server that ignored "stream": one chat.completion body. */
static void read_whole(struct stream *s)
{
	json_t *root = json_loadb(s->whole.buf, s->whole.len, 0, NULL);
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *content = json_object_get(json_object_get(choice, "message"), "content");
	json_t *finish = json_object_get(choice, "finish_reason");

	if (json_is_string(finish))
		s->usage->finish_reason = finish_name(json_string_value(finish));
	read_usage(root, s->usage);
	if (json_is_string(content))
		piece(s, json_string_value(content), json_string_length(content));
	json_decref(root);
}

static void build_body(struct generator_remote *r, const struct gen_message *msgs, size_t n,
		       const struct gen_params *p, struct sbuf *b)
{
	sbuf_addstr(b, "{\"model\":");
	sbuf_add_json_str(b, r->base.name, strlen(r->base.name));
	sbuf_addstr(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[");
	for (size_t i = 0; i < n; i++) {
		sbuf_addstr(b, i ? ",{\"role\":" : "{\"role\":");
		sbuf_add_json_str(b, msgs[i].role, strlen(msgs[i].role));
		sbuf_addstr(b, ",\"content\":");
		sbuf_add_json_str(b, msgs[i].content, strlen(msgs[i].content));
		sbuf_addch(b, '}');
	}
	sbuf_addf(b, "],\"max_tokens\":%d,\"temperature\":%.4g,\"top_p\":%.4g,\"seed\":%llu",
		  p->max_tokens, (double)p->temperature, (double)p->top_p,
		  (unsigned long long)p->seed);
	if (p->n_stop > 0) {
		sbuf_addstr(b, ",\"stop\":[");
		for (size_t i = 0; i < p->n_stop; i++) {
			if (i)
				sbuf_addch(b, ',');
			sbuf_add_json_str(b, p->stop[i], strlen(p->stop[i]));
		}
		sbuf_addch(b, ']');
	}
	sbuf_addch(b, '}');
}

static int generate(struct generator *g, const struct gen_message *msgs, size_t n_msgs,
		    const struct gen_params *p, gen_token_fn on_token, void *ctx,
		    struct sbuf *out, struct gen_usage *usage, struct rag_err *err)
{
	struct generator_remote *r = (struct generator_remote *)g;
	struct model_pool_request req = { .path = "/v1/chat/completions" };
	struct stream s = { on_token, ctx, out, usage, SBUF_INIT, SBUF_INIT, 0, 0, now_ms() };
	struct sbuf body = SBUF_INIT;
	int rc;

	build_body(r, msgs, n_msgs, p, &body);
	if (sbuf_error(&body)) {
		sbuf_release(&body);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory building a request");
	}
	req.body = body.buf;
	req.body_len = body.len;
	req.deadline_ms = p->timeout_ms;
	req.on_data = on_data;
	req.ctx = &s;
	usage->finish_reason = "stop";
	rc = model_pool_post(r->pool, &req, NULL, err);
	if (rc == 0 && !s.saw_data && !s.stopped)
		read_whole(&s);
	if (rc == 0 && s.stopped) {
		usage->stopped = 1;
		usage->finish_reason = "cancelled";
	}
	if (rc == 0 && usage->completion_tokens == 0)
		usage->completion_tokens = (out->len + GEN_REMOTE_BYTES_PER_TOKEN - 1) /
					   GEN_REMOTE_BYTES_PER_TOKEN;
	usage->total_ms = now_ms() - s.t0;
	sbuf_release(&s.line);
	sbuf_release(&s.whole);
	sbuf_release(&body);
	return rc;
}

static int count_tokens(struct generator *g, const char *text, size_t len)
{
	(void)g, (void)text;
	if (len / GEN_REMOTE_BYTES_PER_TOKEN > (size_t)INT32_MAX)
		return RAG_ETOOBIG;
	return (int)((len + GEN_REMOTE_BYTES_PER_TOKEN - 1) / GEN_REMOTE_BYTES_PER_TOKEN);
}

static void free_remote(struct generator *g)
{
	struct generator_remote *r = (struct generator_remote *)g;

	model_pool_free(r->pool);
	free(r);
}

static const struct generator_ops remote_ops = {
	.generate = generate,
	.count_tokens = count_tokens,
	.free = free_remote,
};

struct generator *generator_remote_new(const struct generator_remote_options *o,
				       struct rag_err *err)
{
	struct generator_remote *r = calloc(1, sizeof(*r));

	if (!r) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	r->base.ops = &remote_ops;
	snprintf(r->base.name, sizeof(r->base.name), "%s", o->model);
	r->base.n_ctx = o->n_ctx;
	r->pool = model_pool_new(&o->pool, err);
	if (!r->pool) {
		free(r);
		return NULL;
	}
	log_info("remote generator '%s': %zu instances", r->base.name, model_pool_size(r->pool));
	return &r->base;
}
