/*
 * In-process generator on llama.cpp.
 *
 * One model (weights shared, read-only) and a fixed set of llama contexts,
 * each with its own KV cache. A call applies the model's chat template
 * (llama_chat_apply_template, which knows the common built-in templates by
 * their Jinja text), tokenises the prompt with its special tokens, takes a
 * free context, decodes the prompt in n_batch pieces, then samples one
 * token at a time until an end-of-generation token, a stop string,
 * max_tokens, the deadline, or the caller's on_token asking to stop.
 *
 * Admission: a call that finds every context busy waits, but only n_queue
 * calls may wait; the next gets RAG_EBUSY at once (the API answers 503 with
 * Retry-After) instead of piling up threads and memory. Waiting calls are
 * counted in the `queue_size` gauge the embedder also feeds.
 *
 * Text out: token pieces are bytes, and a byte-level BPE piece may end in
 * the middle of a UTF-8 sequence; the answer is accumulated and handed to
 * on_token only up to the last complete code point. Text that could be the
 * beginning of a stop string is held back until it can be told apart, so a
 * stop string never reaches the caller, even split over several tokens.
 *
 * Sampling: temperature 0 is greedy (deterministic); otherwise top-p, then
 * temperature, then a seeded draw, so equal seeds give equal text.
 *
 * Locking: `mu` guards free_ctx/n_free/n_waiting; `cond` signals a context
 * given back. The model, vocab and template are immutable after load.
 */
#include "model/generator.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llama.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/model_weights.h"
#include "obs/metrics.h"
#include "text/utf8.h"

#include "core/banned.h"

#define GEN_DEFAULT_CTX_CAP 4096 /* a window above this costs KV memory few prompts need */
#define GEN_BATCH 512            /* prompt tokens per llama_decode */
#define GEN_PIECE_MAX 256        /* bytes of one token's piece; longer pieces are errors */

struct generator_llama {
	struct generator base;
	struct llama_model *model;
	const struct llama_vocab *vocab;
	char *tmpl; /* the model's chat template, or NULL: ChatML */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct llama_context **ctx;
	struct llama_context **free_ctx;
	int n_ctx_made, n_free;
	int n_waiting, n_queue;
};

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static struct metric_child *queue_gauge; /* queue_size: calls waiting for a context */
static struct metric_child *load_hist;   /* model_loading_time_ms */

static void metrics_init(void)
{
	static const double load_buckets[] = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
						30000, 60000 };

	queue_gauge = metric_default(metrics_gauge(
		"queue_size", "Model work waiting for a free model context", NULL));
	load_hist = metric_default(metrics_histogram(
		"model_loading_time_ms", "Time to load a model and create its contexts, in ms",
		NULL, load_buckets, sizeof(load_buckets) / sizeof(load_buckets[0])));
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void generator_llama_default_options(struct generator_llama_options *opts)
{
	opts->model_path = "models/SmolLM2-135M-Instruct-Q4_1.gguf";
	opts->n_contexts = 1;
	opts->n_queue = 16;
	opts->n_threads = 2;
	opts->n_ctx = 2048;
}

/*
 * Takes a free context, waiting while fewer than n_queue others wait and
 * the deadline (0 = none, CLOCK_REALTIME ms) has not passed.
 */
static int ctx_take(struct generator_llama *m, double deadline_real_ms, struct llama_context **out,
		    struct rag_err *err)
{
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	if (m->n_free == 0) {
		if (m->n_waiting >= m->n_queue) {
			pthread_mutex_unlock(&m->mu);
			return rag_err_set(err, RAG_EBUSY, NULL,
					   "the generator is busy: %d running, %d queued",
					   m->n_ctx_made, m->n_waiting);
		}
		m->n_waiting++;
		metric_add(queue_gauge, 1);
		while (m->n_free == 0 && rc == 0) {
			if (deadline_real_ms > 0) {
				struct timespec ts = {
					.tv_sec = (time_t)(deadline_real_ms / 1000),
					.tv_nsec = (long)((int64_t)deadline_real_ms % 1000) * 1000000L,
				};

				if (pthread_cond_timedwait(&m->cond, &m->mu, &ts) == ETIMEDOUT &&
				    m->n_free == 0)
					rc = RAG_EBUSY;
			} else {
				pthread_cond_wait(&m->cond, &m->mu);
			}
		}
		m->n_waiting--;
		metric_add(queue_gauge, -1);
	}
	if (rc == 0)
		*out = m->free_ctx[--m->n_free];
	pthread_mutex_unlock(&m->mu);
	if (rc)
		return rag_err_set(err, rc, NULL, "timed out waiting for a free generator context");
	return 0;
}

static void ctx_give(struct generator_llama *m, struct llama_context *c)
{
	pthread_mutex_lock(&m->mu);
	m->free_ctx[m->n_free++] = c;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

static double real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The chat-formatted prompt in *out (caller releases). */
static int apply_template(struct generator_llama *m, const struct gen_message *msgs, size_t n,
			  struct sbuf *out, struct rag_err *err)
{
	struct llama_chat_message *chat = calloc(n, sizeof(*chat));
	size_t total = 0;
	int32_t len;

	if (!chat)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		chat[i].role = msgs[i].role;
		chat[i].content = msgs[i].content;
		total += strlen(msgs[i].content) + 64;
	}
	if (total > INT32_MAX / 2) {
		free(chat);
		return rag_err_set(err, RAG_ETOOBIG, "messages", "the messages are too long");
	}
	if (sbuf_grow(out, total * 2) < 0) {
		free(chat);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	len = llama_chat_apply_template(m->tmpl ? m->tmpl : "chatml", chat, n, true, out->buf,
					(int32_t)(out->alloc - 1));
	if (len >= 0 && (size_t)len >= out->alloc) {
		if (sbuf_grow(out, (size_t)len + 1) < 0) {
			free(chat);
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		}
		len = llama_chat_apply_template(m->tmpl ? m->tmpl : "chatml", chat, n, true,
						out->buf, (int32_t)(out->alloc - 1));
	}
	free(chat);
	if (len < 0 || (size_t)len >= out->alloc)
		return rag_err_set(err, RAG_EINTERNAL, NULL,
				   "llama.cpp could not apply the model's chat template");
	out->len = (size_t)len;
	out->buf[len] = '\0';
	return 0;
}

/* Tokenises the prompt with its special tokens into a new array (caller frees). */
static int tokenize_prompt(struct generator_llama *m, const char *text, size_t len,
			   llama_token **out, int *n_out, struct rag_err *err)
{
	int cap = (int)len + 16;
	llama_token *toks;
	int n;

	if (len > INT32_MAX / 2)
		return rag_err_set(err, RAG_ETOOBIG, "messages", "the prompt is too long");
	toks = malloc((size_t)cap * sizeof(*toks));
	if (!toks)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	n = llama_tokenize(m->vocab, text, (int32_t)len, toks, cap, llama_vocab_get_add_bos(m->vocab),
			   true);
	if (n < 0) {
		free(toks);
		return rag_err_set(err, RAG_EINTERNAL, NULL, "llama.cpp could not tokenise the prompt");
	}
	*out = toks;
	*n_out = n;
	return 0;
}

static struct llama_sampler *make_sampler(const struct gen_params *p)
{
	struct llama_sampler *s = llama_sampler_chain_init(llama_sampler_chain_default_params());

	if (!s)
		return NULL;
	if (p->temperature <= 0.0f) {
		llama_sampler_chain_add(s, llama_sampler_init_greedy());
		return s;
	}
	if (p->top_p < 1.0f)
		llama_sampler_chain_add(s, llama_sampler_init_top_p(p->top_p, 1));
	llama_sampler_chain_add(s, llama_sampler_init_temp(p->temperature));
	llama_sampler_chain_add(s, llama_sampler_init_dist((uint32_t)(p->seed ^ (p->seed >> 32))));
	return s;
}

/*
 * The emitter: text accumulates in out from `base`; emitted marks what
 * on_token has seen. Stop strings are searched for in what is not emitted
 * yet (plus what a stop string may straddle).
 */
struct emitter {
	struct sbuf *out;
	size_t base, emitted;
	const struct gen_params *p;
	gen_token_fn on_token;
	void *ctx;
	int stopped;   /* on_token asked to stop */
	int hit_stop;  /* a stop string ended the answer */
};

/* Length of the longest suffix of s[0..len) that is a proper prefix of a stop string. */
static size_t stop_prefix_tail(const struct gen_params *p, const char *s, size_t len)
{
	size_t best = 0;

	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = strlen(p->stop[i]);

		for (size_t k = sl > 1 ? sl - 1 : 0; k > best; k--)
			if (k <= len && memcmp(s + len - k, p->stop[i], k) == 0) {
				best = k;
				break;
			}
	}
	return best;
}

/* Hands out the text that is safe to show; final flushes what remains. */
static void emit(struct emitter *e, int final)
{
	const char *text = e->out->buf + e->base;
	size_t len = e->out->len - e->base, upto;

	for (size_t i = 0; i < e->p->n_stop; i++) {
		size_t sl = strlen(e->p->stop[i]);
		size_t from = e->emitted > sl ? e->emitted - sl : 0;
		const char *hit = sl ? memmem(text + from, len - from, e->p->stop[i], sl) : NULL;

		if (hit && (size_t)(hit - text) < len) {
			len = (size_t)(hit - text);
			e->hit_stop = 1;
		}
	}
	if (e->hit_stop) {
		sbuf_truncate(e->out, e->base + len);
		final = 1;
	}
	upto = final ? len : len - stop_prefix_tail(e->p, text, len);
	upto = utf8_floor(text, len, upto);
	if (final && upto < len) /* a broken sequence at the very end: drop it */
		sbuf_truncate(e->out, e->base + upto);
	if (upto > e->emitted && !e->stopped && e->on_token &&
	    e->on_token(e->ctx, text + e->emitted, upto - e->emitted) != 0)
		e->stopped = 1;
	if (upto > e->emitted)
		e->emitted = upto;
}

static int decode_prompt(struct llama_context *c, llama_token *toks, int n, double deadline,
			 struct rag_err *err)
{
	for (int i = 0; i < n; i += GEN_BATCH) {
		int k = n - i < GEN_BATCH ? n - i : GEN_BATCH;
		int rc;

		if (deadline > 0 && now_ms() > deadline)
			return rag_err_set(err, RAG_ETIMEOUT, NULL,
					   "the generation's deadline (rag.timeout_ms) passed during "
					   "the prompt");
		rc = llama_decode(c, llama_batch_get_one(toks + i, k));
		if (rc != 0)
			return rag_err_set(err, RAG_EINTERNAL, NULL,
					   "llama.cpp failed to decode the prompt (%d)", rc);
	}
	return 0;
}

static int generate(struct generator *g, const struct gen_message *msgs, size_t n_msgs,
		    const struct gen_params *p, gen_token_fn on_token, void *ctx, struct sbuf *out,
		    struct gen_usage *usage, struct rag_err *err)
{
	struct generator_llama *m = (struct generator_llama *)g;
	struct emitter e = { out, out->len, 0, p, on_token, ctx, 0, 0 };
	struct sbuf prompt = SBUF_INIT;
	struct llama_context *c = NULL;
	struct llama_sampler *smp = NULL;
	llama_token *toks = NULL, tok;
	double t0 = now_ms(), deadline = p->timeout_ms > 0 ? t0 + p->timeout_ms : 0;
	char piece[GEN_PIECE_MAX];
	int n_prompt = 0, max_new, rc;

	rc = apply_template(m, msgs, n_msgs, &prompt, err);
	if (rc == 0)
		rc = tokenize_prompt(m, prompt.buf, prompt.len, &toks, &n_prompt, err);
	if (rc < 0)
		goto out;
	usage->prompt_tokens = (size_t)n_prompt;
	if ((size_t)n_prompt + 1 > g->n_ctx) {
		rc = rag_err_set(err, RAG_ETOOBIG, "messages",
				 "the prompt is %d tokens; the model's window is %zu", n_prompt,
				 g->n_ctx);
		goto out;
	}
	max_new = p->max_tokens;
	if ((size_t)n_prompt + (size_t)max_new > g->n_ctx)
		max_new = (int)(g->n_ctx - (size_t)n_prompt);
	smp = make_sampler(p);
	if (!smp) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto out;
	}
	rc = ctx_take(m, p->timeout_ms > 0 ? real_ms() + p->timeout_ms : 0, &c, err);
	usage->queue_ms = now_ms() - t0;
	if (rc < 0)
		goto out;
	llama_memory_clear(llama_get_memory(c), true);
	rc = decode_prompt(c, toks, n_prompt, deadline, err);
	if (rc < 0)
		goto out;
	usage->finish_reason = "length";
	for (int i = 0; i < max_new; i++) {
		int len;

		tok = llama_sampler_sample(smp, c, -1);
		if (i == 0)
			usage->ttft_ms = now_ms() - t0;
		if (llama_vocab_is_eog(m->vocab, tok)) {
			usage->finish_reason = "stop";
			break;
		}
		usage->completion_tokens++;
		len = llama_token_to_piece(m->vocab, tok, piece, sizeof(piece), 0, false);
		if (len < 0) {
			rc = rag_err_set(err, RAG_EINTERNAL, NULL, "a token piece is too long");
			goto out;
		}
		sbuf_add(out, piece, (size_t)len);
		emit(&e, 0);
		if (e.hit_stop) {
			usage->finish_reason = "stop";
			break;
		}
		if (e.stopped) {
			usage->finish_reason = "cancelled";
			break;
		}
		if (deadline > 0 && now_ms() > deadline) {
			usage->finish_reason = "timeout";
			break;
		}
		if (i + 1 == max_new)
			break;
		rc = llama_decode(c, llama_batch_get_one(&tok, 1));
		if (rc != 0) {
			rc = rag_err_set(err, RAG_EINTERNAL, NULL, "llama.cpp failed to decode (%d)", rc);
			goto out;
		}
	}
	if (!e.stopped)
		emit(&e, 1);
	usage->stopped = e.stopped;
	if (sbuf_error(out))
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
out:
	usage->total_ms = now_ms() - t0;
	if (c)
		ctx_give(m, c);
	llama_sampler_free(smp);
	free(toks);
	sbuf_release(&prompt);
	return rc;
}

static int count_tokens(struct generator *g, const char *text, size_t len)
{
	return model_count_tokens(((struct generator_llama *)g)->vocab, text, len);
}

static void free_llama(struct generator *g)
{
	struct generator_llama *m = (struct generator_llama *)g;

	for (int i = 0; i < m->n_ctx_made; i++)
		llama_free(m->ctx[i]);
	free(m->ctx);
	free(m->free_ctx);
	free(m->tmpl);
	model_weights_release(m->model);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cond);
	free(m);
}

static const struct generator_ops llama_ops = {
	.generate = generate,
	.count_tokens = count_tokens,
	.free = free_llama,
};

static void model_name(struct generator_llama *m, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 5 && strcmp(base + len - 5, ".gguf") == 0)
		len -= 5;
	snprintf(m->base.name, sizeof(m->base.name), "%.*s", (int)len, base);
}

static int make_contexts(struct generator_llama *m, const struct generator_llama_options *o,
			 struct rag_err *err)
{
	struct llama_context_params cp = llama_context_default_params();

	cp.n_ctx = (uint32_t)m->base.n_ctx;
	cp.n_batch = GEN_BATCH;
	cp.n_ubatch = GEN_BATCH;
	cp.n_seq_max = 1;
	cp.n_threads = o->n_threads;
	cp.n_threads_batch = o->n_threads;
	cp.no_perf = true;
	m->ctx = calloc((size_t)o->n_contexts, sizeof(*m->ctx));
	m->free_ctx = calloc((size_t)o->n_contexts, sizeof(*m->free_ctx));
	if (!m->ctx || !m->free_ctx)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating contexts");
	for (int i = 0; i < o->n_contexts; i++) {
		m->ctx[i] = llama_init_from_model(m->model, cp);
		if (!m->ctx[i])
			return rag_err_set(err, RAG_EINTERNAL, "models.generator",
					   "llama.cpp could not create a context for '%s'",
					   o->model_path);
		m->n_ctx_made++;
		m->free_ctx[m->n_free++] = m->ctx[i];
	}
	return 0;
}

struct generator *generator_llama_new(const struct generator_llama_options *o,
				      struct rag_err *err)
{
	struct generator_llama *m;
	double load_ms;
	const char *tmpl;
	long window;
	double t0;
	FILE *f;

	if (o->n_contexts < 1 || o->n_threads < 1 || o->n_queue < 0 || o->n_ctx < 0) {
		rag_err_set(err, RAG_EINVAL, "models", "generator pool sizes must be >= 1");
		return NULL;
	}
	f = fopen(o->model_path, "rb");
	if (!f) {
		rag_err_set(err, RAG_ENOTFOUND, "models.generator",
			    "generation model '%s' not found (run `make models`)", o->model_path);
		return NULL;
	}
	fclose(f);
	pthread_once(&metrics_once, metrics_init);
	model_llama_init();
	t0 = now_ms();
	m = calloc(1, sizeof(*m));
	if (!m) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading the generator");
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->base.ops = &llama_ops;
	m->n_queue = o->n_queue;
	/*
	 * No repacked weights: on this machine's CPUs (AMX advertised) ggml
	 * repacks Q4_1 for AMX and the first product dies of SIGILL, with the
	 * tile permission requested or not. The plain CPU kernels are used.
	 * Weights are shared with anything else loaded from the same file.
	 */
	m->model = model_weights_acquire(o->model_path, MODEL_WEIGHTS_PLAIN_CPU, "models.generator",
					 &load_ms, err);
	if (!m->model)
		goto fail;
	if (llama_model_has_encoder(m->model) && !llama_model_has_decoder(m->model)) {
		rag_err_set(err, RAG_EINVAL, "models.generator",
			    "'%s' is an encoder-only model, not a generator", o->model_path);
		goto fail;
	}
	m->vocab = llama_model_get_vocab(m->model);
	tmpl = llama_model_chat_template(m->model, NULL);
	if (tmpl) {
		m->tmpl = strdup(tmpl);
		if (!m->tmpl) {
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading the generator");
			goto fail;
		}
	}
	window = llama_model_n_ctx_train(m->model);
	if (o->n_ctx > 0 && o->n_ctx < window)
		window = o->n_ctx;
	else if (o->n_ctx == 0 && window > GEN_DEFAULT_CTX_CAP)
		window = GEN_DEFAULT_CTX_CAP;
	m->base.n_ctx = (size_t)window;
	model_name(m, o->model_path);
	if (make_contexts(m, o, err) < 0)
		goto fail;
	m->base.n_ctx = llama_n_ctx(m->ctx[0]);
	metric_observe(load_hist, now_ms() - t0);
	log_info("generator '%s' loaded: window %zu tokens, %d contexts x %d threads, queue %d%s",
		 m->base.name, m->base.n_ctx, m->n_ctx_made, o->n_threads, m->n_queue,
		 m->tmpl ? "" : ", ChatML (no template in the file)");
	return &m->base;
fail:
	free_llama(&m->base);
	return NULL;
}
