/*
 * The answer pipeline: (session history) -> (rewrite a follow-up into a
 * standalone query) -> retrieve -> relevance gate -> prompt with numbered
 * sources -> generate (or extract sentences) -> keep valid citations ->
 * (append the turn to the session).
 *
 * Relevance gate: fused and BM25 scores are normalised per query (the best
 * is always 1), so they cannot say whether anything relevant was found;
 * the dense cosine can. The gate is the best cosine of the query against
 * the collection (the dense hits' own scores in dense mode, one extra
 * dense top-1 search otherwise), compared with min_score.
 *
 * Streaming: the raw text goes to the caller's on_token as the model makes
 * it; citations are validated once the answer is complete, so a streamed
 * "[7]" that names no source is dropped from the final text only.
 *
 * Sessions: the turn (question, cleaned answer) is appended only when an
 * answer was made, so a 503 leaves the session as it was.
 *
 * Cache: a whole answer is keyed by the collection's state (applied seq
 * read before anything is computed) and every input that decides it
 * (rag_answer_cache_key). A hit skips retrieval and generation and sends
 * the stored text as one piece; a miss is stored unless the seq moved
 * meanwhile. Sessions are not cached (the history and the rewrite decide
 * the answer), nor temperature > 0 (sampling has no seed here, so a cached
 * answer would freeze one draw), nor answers cut short.
 */
#include "rag/rag_int.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/generator.h"
#include "obs/metrics.h"
#include "rag/rag_answer.h"
#include "store/store.h"

#include "core/banned.h"

#define ANSWER_EXTRACT_SENTENCES 2 /* enough to hold an answer, short enough to read */
#define ANSWER_PROMPT_MARGIN 16    /* tokens the chat template adds around the messages */
#define REWRITE_MAX_TOKENS 48      /* a standalone question is one line */
#define ANSWER_MAX_TOKENS 8192

static struct {
	struct metric *answers; /* kind, finish_reason */
	struct metric_child *invalid, *prompt_tokens, *completion_tokens, *ttft;
} am;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
	static const char *const labels[] = { "kind", "finish_reason", NULL };

	am.answers = metrics_counter("ragd_answers_total",
				     "Answers made, by kind (generated, extractive, no_answer)"
				     " and how generation ended",
				     labels);
	am.invalid = metric_default(metrics_counter(
		"ragd_citations_invalid_total",
		"Citations removed from answers because they named no source", NULL));
	am.prompt_tokens = metric_default(metrics_counter(
		"ragd_generation_prompt_tokens_total", "Prompt tokens read by the generator", NULL));
	am.completion_tokens = metric_default(metrics_counter(
		"ragd_generation_completion_tokens_total", "Tokens generated", NULL));
	am.ttft = metric_default(metrics_histogram(
		"ragd_generation_ttft_ms", "Time from a generation's start to its first token, in ms",
		NULL, METRICS_MS_BUCKETS, METRICS_MS_N_BUCKETS));
}

void rag_answer_default_options(struct rag_answer_options *o)
{
	o->prompt_template = NULL;
	o->min_score = 0.25;
	o->history_messages = 6;
	o->timeout_ms = 60000;
}

int rag_answer_configure(struct rag_engine *eng, struct generator *gen,
			 const struct rag_answer_options *o, struct rag_err *err)
{
	const char *t = o->prompt_template && o->prompt_template[0] ? o->prompt_template
								     : RAG_DEFAULT_TEMPLATE;
	char *copy;

	if (rag_prompt_check(t, "rag.prompt_template", err) < 0)
		return RAG_EINVAL;
	copy = strdup(t);
	if (!copy)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	pthread_once(&metrics_once, metrics_init);
	free(eng->prompt_template);
	eng->prompt_template = copy;
	eng->gen = gen;
	eng->min_score = o->min_score;
	eng->history_messages = o->history_messages;
	eng->gen_timeout_ms = o->timeout_ms;
	return 0;
}

const char *rag_answer_model(struct rag_engine *eng)
{
	return eng->gen ? eng->gen->name : "extractive";
}

void rag_answer_release(struct rag_answer *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_citations; i++) {
		free(a->citations[i].document_id);
		free(a->citations[i].text);
	}
	free(a->citations);
	free(a->query);
	sbuf_release(&a->text);
	memset(a, 0, sizeof(*a));
}

static int check_ask(const struct rag_ask *q, struct rag_err *err)
{
	int rc = rag_check_text(q->question, q->len, "question", err);

	if (rc < 0)
		return rc;
	if (q->max_tokens < 1 || q->max_tokens > ANSWER_MAX_TOKENS)
		return rag_err_set(err, RAG_EINVAL, "max_tokens",
				   "max_tokens must be between 1 and %d", ANSWER_MAX_TOKENS);
	if (!(q->temperature >= 0.0f && q->temperature <= 2.0f))
		return rag_err_set(err, RAG_EINVAL, "temperature",
				   "temperature must be between 0 and 2");
	if (q->session_id)
		return rag_check_name(q->session_id, "session_id", "session_id", err);
	return 0;
}

static int count_gen(void *ctx, const char *text, size_t len)
{
	return generator_count_tokens(ctx, text, len);
}

/* The follow-up as a standalone query, into *out (malloc'ed). */
static int rewrite(struct rag_engine *eng, const struct rag_ask *q,
		   const struct store_message *hist, size_t n_hist, char **out, struct rag_err *err)
{
	struct sbuf prompt = SBUF_INIT, text = SBUF_INIT;
	const struct store_message *last_user = NULL;
	struct gen_message msg;
	struct gen_params p;
	struct gen_usage u;
	static const char *const stop[] = { "\n" };
	int rc;

	for (size_t i = 0; i < n_hist; i++)
		if (strcmp(hist[i].role, "user") == 0)
			last_user = &hist[i];
	if (!last_user) {
		*out = strndup(q->question, q->len);
		return *out ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	if (!eng->gen) {
		/* No model to rewrite with: the previous question carries the topic. */
		sbuf_addstr(&text, last_user->content);
		sbuf_addch(&text, ' ');
		sbuf_add(&text, q->question, q->len);
		*out = sbuf_detach(&text, NULL);
		return *out ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	sbuf_addstr(&prompt, "Rewrite the last question so that it can be understood without the "
			     "conversation. Reply with the rewritten question only.\n\nConversation:\n");
	for (size_t i = 0; i < n_hist; i++)
		sbuf_addf(&prompt, "%s: %s\n", hist[i].role, hist[i].content);
	sbuf_addstr(&prompt, "\nLast question: ");
	sbuf_add(&prompt, q->question, q->len);
	sbuf_addstr(&prompt, "\nRewritten question:");
	msg.role = "user";
	msg.content = prompt.buf;
	gen_params_default(&p);
	p.max_tokens = REWRITE_MAX_TOKENS;
	p.stop = stop;
	p.n_stop = 1;
	p.timeout_ms = eng->gen_timeout_ms;
	rc = generator_generate(eng->gen, &msg, 1, &p, NULL, NULL, &text, &u, err);
	sbuf_release(&prompt);
	if (rc == RAG_ETOOBIG) { /* a long history: retrieve with the question alone */
		rag_err_clear(err);
		rc = 0;
		sbuf_reset(&text);
	}
	if (rc < 0) {
		sbuf_release(&text);
		return rc;
	}
	while (text.len > 0 && (text.buf[text.len - 1] == ' ' || text.buf[text.len - 1] == '\n'))
		sbuf_truncate(&text, text.len - 1);
	if (text.len < 3 || rag_check_text(text.buf, text.len, "question", NULL) < 0) {
		sbuf_reset(&text);
		sbuf_add(&text, q->question, q->len);
	}
	*out = sbuf_detach(&text, NULL);
	return *out ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
}

/* The best dense cosine of the query in the collection (-1 when it has no chunk). */
static int best_cosine(struct rag_engine *eng, const char *tenant, const char *collection,
		       const struct rag_query *rq, const struct rag_search_result *res,
		       double *best, struct rag_err *err)
{
	struct rag_search_result d = { 0 };
	struct rag_query dq = *rq;
	int rc;

	*best = -1;
	if (rq->mode == RAG_MODE_DENSE) {
		if (res->n_hits)
			*best = res->hits[0].score;
		return 0;
	}
	dq.mode = RAG_MODE_DENSE;
	dq.top_k = 1;
	rc = rag_search(eng, tenant, collection, &dq, &d, err);
	if (rc == 0 && d.n_hits)
		*best = d.hits[0].score;
	rag_search_result_release(&d);
	return rc;
}

static int emit_all(const struct rag_ask *q, const struct sbuf *text)
{
	return q->on_token && text->len ? q->on_token(q->ctx, text->buf, text->len) : 0;
}

static int generate(struct rag_engine *eng, const struct rag_ask *q,
		    const struct store_message *hist, size_t n_hist, const struct rag_source *src,
		    size_t n_src, struct rag_answer *out, struct rag_err *err)
{
	struct gen_message *msgs = calloc(n_hist + 1, sizeof(*msgs));
	struct sbuf prompt = SBUF_INIT;
	struct gen_params p;
	size_t budget, hist_tokens = 0;
	int rc;

	if (!msgs)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n_hist; i++) {
		int t = generator_count_tokens(eng->gen, hist[i].content, strlen(hist[i].content));

		msgs[i].role = hist[i].role;
		msgs[i].content = hist[i].content;
		hist_tokens += t > 0 ? (size_t)t + 8 : 8;
	}
	budget = eng->gen->n_ctx;
	if (budget <= (size_t)q->max_tokens + hist_tokens + ANSWER_PROMPT_MARGIN) {
		free(msgs);
		return rag_err_set(err, RAG_EINVAL, "max_tokens",
				   "max_tokens %d leaves no room for sources in the model's window"
				   " of %zu tokens", q->max_tokens, eng->gen->n_ctx);
	}
	budget -= (size_t)q->max_tokens + hist_tokens + ANSWER_PROMPT_MARGIN;
	rc = rag_prompt_build(eng->prompt_template, q->question, q->len, src, n_src, budget,
			      count_gen, eng->gen, &prompt, &out->n_sources, err);
	if (rc == 0) {
		msgs[n_hist].role = "user";
		msgs[n_hist].content = prompt.buf;
		gen_params_default(&p);
		p.max_tokens = q->max_tokens;
		p.temperature = q->temperature;
		p.timeout_ms = eng->gen_timeout_ms;
		rc = generator_generate(eng->gen, msgs, n_hist + 1, &p, q->on_token, q->ctx,
					&out->text, &out->usage, err);
	}
	sbuf_release(&prompt);
	free(msgs);
	return rc;
}

static int add_citations(struct rag_answer *out, const struct rag_search_result *res,
			 const int *cited, size_t n_cited, struct rag_err *err)
{
	out->citations = calloc(n_cited ? n_cited : 1, sizeof(*out->citations));
	if (!out->citations)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n_cited; i++) {
		const struct rag_hit *h = &res->hits[cited[i] - 1];
		struct rag_citation *c = &out->citations[out->n_citations++];

		c->n = cited[i];
		c->document_id = strdup(h->chunk.document_id);
		c->chunk_id = h->chunk.id;
		c->score = h->score;
		c->start_byte = h->chunk.start_byte;
		c->end_byte = h->chunk.end_byte;
		c->text = strdup(h->chunk.text);
		if (!c->document_id || !c->text)
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	return 0;
}

static void record(const struct rag_answer *a)
{
	const char *labels[2] = { a->kind, a->usage.finish_reason ? a->usage.finish_reason
								 : "stop" };

	metric_inc(metric_child(am.answers, labels));
	metric_add(am.invalid, (double)a->n_invalid);
	if (a->usage.prompt_tokens || a->usage.completion_tokens) {
		metric_add(am.prompt_tokens, (double)a->usage.prompt_tokens);
		metric_add(am.completion_tokens, (double)a->usage.completion_tokens);
		if (a->usage.completion_tokens)
			metric_observe(am.ttft, a->usage.ttft_ms);
	}
}

/* One answer's dealings with the cache. */
struct acache {
	struct rag_coll *coll; /* held while the answer is made; NULL: not cached */
	int64_t seq;           /* applied seq the key was made at */
	struct cache_key key;
	int store;             /* the lookup missed: store what we compute */
};

/*
 * Looks the answer up when it can be cached. 1 on a hit (out filled), else
 * 0 with out->cache and ac saying what happened.
 */
static int answer_lookup(struct rag_engine *eng, const char *tenant, const char *collection,
			 const struct rag_ask *q, struct acache *ac, struct rag_answer *out)
{
	struct cache_key_builder b;
	void *val = NULL;
	size_t len = 0;
	int rc;

	if (!eng->opts.cache || q->session_id || q->temperature > 0 ||
	    (q->filter && !q->filter_key))
		return 0;
	if (q->no_cache) {
		cache_count_bypass(CACHE_ANSWER);
		out->cache = RAG_CACHE_BYPASS;
		return 0;
	}
	ac->coll = rag_coll_acquire(eng, tenant, collection, NULL);
	if (!ac->coll)
		return 0; /* retrieval reports it */
	ac->seq = atomic_load(&ac->coll->applied_seq);
	cache_key_begin(&b, CACHE_ANSWER);
	rag_cache_key_collection(&b, ac->coll, ac->seq);
	if (rag_answer_cache_key(&b, q, rag_answer_model(eng), eng->prompt_template,
				 eng->min_score, &ac->key) < 0)
		return 0;
	cache_get_many(eng->opts.cache, &ac->key, 1, &val, &len, &rc);
	if (rc == 0 && rag_cache_decode_answer(val, len, out) < 0) {
		rc = RAG_ENOTFOUND; /* a value we cannot read: overwrite it */
		sbuf_init(&out->text, 0);
	}
	free(val);
	cache_count(CACHE_ANSWER, rc);
	out->cache = rc == 0 ? RAG_CACHE_HIT : rc == RAG_ENOTFOUND ? RAG_CACHE_MISS
								 : RAG_CACHE_BYPASS;
	ac->store = rc == RAG_ENOTFOUND;
	return rc == 0;
}

/* Stores a computed answer, unless the collection moved while it was made. */
static void answer_store(struct rag_engine *eng, const struct acache *ac,
			 const struct rag_answer *a)
{
	void *val;
	size_t len;

	if (!ac->store || atomic_load(&ac->coll->applied_seq) != ac->seq)
		return;
	if (rag_cache_encode_answer(a, &val, &len) < 0)
		return; /* cut short: not an answer to repeat */
	cache_put(eng->opts.cache, &ac->key, val, len, eng->opts.cache_ttl_s);
	free(val);
}

int rag_answer(struct rag_engine *eng, const char *tenant, const char *collection,
	       const struct rag_ask *q, struct rag_answer *out, struct rag_err *err)
{
	struct acache ac = { 0 };
	struct rag_search_result res = { 0 };
	struct store_message *hist = NULL;
	struct rag_source *src = NULL;
	struct rag_query rq = { 0 };
	size_t n_hist = 0, n_cited = 0;
	int *cited = NULL;
	double t0 = rag_now_ms(), t1, best;
	int rc;

	memset(out, 0, sizeof(*out));
	sbuf_init(&out->text, 0);
	pthread_once(&metrics_once, metrics_init);
	rc = check_ask(q, err);
	if (rc < 0)
		return rc;
	if (answer_lookup(eng, tenant, collection, q, &ac, out)) {
		out->usage.stopped = emit_all(q, &out->text) != 0;
		out->retrieve_ms = rag_now_ms() - t0;
		out->total_ms = out->retrieve_ms;
		goto out;
	}
	if (q->session_id && eng->history_messages > 0) {
		rc = store_session_history(eng->store, tenant, q->session_id,
					   (size_t)eng->history_messages, &hist, &n_hist, err);
		if (rc < 0)
			goto out;
	}
	rc = rewrite(eng, q, hist, n_hist, &out->query, err);
	out->rewrite_ms = rag_now_ms() - t0;
	if (rc < 0)
		goto out;
	t1 = rag_now_ms();
	rq.text = out->query;
	rq.len = strlen(out->query);
	rq.top_k = q->top_k;
	rq.mode = q->mode;
	rq.filter = q->filter;
	rq.filter_key = q->filter_key;
	rq.no_cache = q->no_cache;
	rq.authorization = q->authorization;
	rq.alpha = 0.5;
	rq.fusion = RAG_FUSION_WEIGHTED;
	rc = rag_search(eng, tenant, collection, &rq, &res, err);
	if (rc == 0)
		rc = best_cosine(eng, tenant, collection, &rq, &res, &best, err);
	out->retrieve_ms = rag_now_ms() - t1;
	if (rc < 0)
		goto out;
	t1 = rag_now_ms();
	src = calloc(res.n_hits ? res.n_hits : 1, sizeof(*src));
	cited = calloc(res.n_hits ? res.n_hits : 1, sizeof(*cited));
	if (!src || !cited) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < res.n_hits; i++) {
		src[i].text = res.hits[i].chunk.text;
		src[i].len = strlen(res.hits[i].chunk.text);
	}
	if (res.n_hits == 0 || best < eng->min_score) {
		out->kind = "no_answer";
		sbuf_addstr(&out->text, RAG_NO_SOURCE_ANSWER);
		emit_all(q, &out->text);
	} else if (eng->gen) {
		out->kind = "generated";
		if (q->on_token && q->on_token(q->ctx, "", 0) != 0) {
			/* The client left while we retrieved: no generation for nobody. */
			out->usage.finish_reason = "cancelled";
			out->usage.stopped = 1;
			goto done;
		}
		rc = generate(eng, q, hist, n_hist, src, res.n_hits, out, err);
		if (rc < 0)
			goto out;
	} else {
		out->kind = "extractive";
		out->n_sources = res.n_hits;
		rag_extract(q->question, q->len, src, res.n_hits, ANSWER_EXTRACT_SENTENCES,
			    &out->text);
		out->usage.stopped = emit_all(q, &out->text) != 0;
	}
done:
	out->generate_ms = rag_now_ms() - t1;
	out->n_invalid = rag_cite_clean(&out->text, out->n_sources, cited, &n_cited);
	rc = add_citations(out, &res, cited, n_cited, err);
	if (rc == 0 && sbuf_error(&out->text))
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	if (rc == 0 && q->session_id && !out->usage.stopped) {
		struct store_message turn[2] = { { "user", NULL, 0 }, { "assistant", out->text.buf, 0 } };
		char *question = strndup(q->question, q->len);

		turn[0].content = question;
		rc = question ? store_session_append(eng->store, tenant, q->session_id, turn, 2, err)
			      : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		free(question);
	}
	out->total_ms = rag_now_ms() - t0;
	if (rc == 0) {
		record(out);
		if (ac.coll)
			answer_store(eng, &ac, out);
	}
out:
	rag_coll_unref(ac.coll);
	store_messages_free(hist, n_hist);
	rag_search_result_release(&res);
	free(src);
	free(cited);
	return rc;
}
