/*
 * Micro-batching in front of an embedder: small embed calls from concurrent
 * callers (queries, OpenAI /v1/embeddings requests of a text or two) are
 * merged into one call of the inner embedder, i.e. one llama batch.
 *
 * No thread of its own: the first caller to find no batch forming becomes
 * its leader; it waits while every compute slot is busy (max_running inner
 * calls are running), and for at most window_us when other callers are
 * inside the embedder too, or until max_texts texts have gathered; then it takes what has gathered, embeds it
 * in one inner call and hands each caller its rows. Callers that arrive
 * meanwhile join the next batch, whose leader is the first of them. So a
 * lone call goes straight through (no added latency), and under load
 * batches grow to what arrives within the window or during one compute.
 * Measured (bench/bench_embed_batch.py, 16 clients of one short text): a
 * 2 ms window served 1.41x the requests of no batching; a zero window,
 * which only merges while both contexts are busy, did not help.
 *
 * When a merged batch fails (one caller's text cannot be tokenised, say)
 * each caller's texts are embedded again on their own, so that an error
 * belongs to the call that caused it. Calls of max_texts / 2 texts or more
 * (document ingestion) bypass the batcher: they fill a batch by themselves.
 *
 * Locking: `mu` guards the pending list, `n_pending`, `forming` and
 * `running`; `cond` is broadcast when a batch finishes or when one fills.
 */
#include "model/embedder.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rag_error.h"
#include "obs/metrics.h"

#include "core/banned.h"

struct waiter {
	const char *const *texts;
	const size_t *lens;
	size_t n;
	float *out;
	int rc;
	struct rag_err err;
	int done;
	struct waiter *next;
};

struct embedder_batch {
	struct embedder base;
	struct embedder *inner;
	struct embedder_batch_options o;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct waiter *head, **tail;
	size_t n_pending; /* texts in the pending list */
	int forming;      /* a leader is gathering the pending list */
	int running;      /* inner calls in progress */
	int active;       /* callers inside embed(): waiting, leading or running */
};

static struct metric_child *batch_hist; /* ragd_embed_batch_texts */
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
	static const double buckets[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };

	batch_hist = metric_default(metrics_histogram(
		"ragd_embed_batch_texts", "Texts per merged embedding batch (micro-batching)", NULL,
		buckets, sizeof(buckets) / sizeof(buckets[0])));
}

void embedder_batch_default_options(struct embedder_batch_options *o)
{
	o->window_us = 2000;
	o->max_texts = 64;
	o->max_running = 2;
}

static void deadline_after(struct timespec *ts, int us)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)us * 1000L;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Embeds a taken list in one inner call; on failure, each waiter alone. */
static void run_batch(struct embedder_batch *b, struct waiter *list, size_t n_texts)
{
	const char **texts = malloc(n_texts * sizeof(*texts));
	size_t *lens = malloc(n_texts * sizeof(*lens));
	float *out = malloc(n_texts * b->base.dim * sizeof(*out));
	struct waiter *w;
	size_t at = 0;
	int rc = RAG_ENOMEM;

	if (texts && lens && out) {
		for (w = list; w; w = w->next) {
			memcpy(texts + at, w->texts, w->n * sizeof(*texts));
			memcpy(lens + at, w->lens, w->n * sizeof(*lens));
			at += w->n;
		}
		rc = embedder_embed(b->inner, texts, lens, n_texts, out, NULL);
	}
	metric_observe(batch_hist, (double)n_texts);
	at = 0;
	for (w = list; w; w = w->next) {
		if (rc == 0)
			memcpy(w->out, out + at * b->base.dim, w->n * b->base.dim * sizeof(float));
		else
			w->rc = embedder_embed(b->inner, w->texts, w->lens, w->n, w->out, &w->err);
		at += w->n;
	}
	free(texts);
	free(lens);
	free(out);
}

static int embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		 float *out, struct rag_err *err)
{
	struct embedder_batch *b = (struct embedder_batch *)e;
	struct waiter me = { texts, lens, n, out, 0, { 0 }, 0, NULL };
	struct waiter *list;
	struct timespec until;
	size_t n_texts;
	int rc;

	if (n >= b->o.max_texts / 2 || n == 0)
		return embedder_embed(b->inner, texts, lens, n, out, err);
	pthread_mutex_lock(&b->mu);
	b->active++;
	*b->tail = &me;
	b->tail = &me.next;
	b->n_pending += n;
	if (b->forming) {
		if (b->n_pending >= b->o.max_texts)
			pthread_cond_broadcast(&b->cond);
		while (!me.done)
			pthread_cond_wait(&b->cond, &b->mu);
		b->active--;
		pthread_mutex_unlock(&b->mu);
		if (me.rc < 0)
			rag_err_set(err, me.rc, me.err.field, "%s", me.err.msg);
		return me.rc;
	}
	b->forming = 1;
	/* Alone (no other caller inside embed): no one to wait for, go now. */
	deadline_after(&until, b->active > 1 ? b->o.window_us : 0);
	for (;;) {
		struct timespec now;
		int window_open;

		clock_gettime(CLOCK_REALTIME, &now);
		window_open = now.tv_sec < until.tv_sec ||
			      (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec);
		if (b->n_pending >= b->o.max_texts ||
		    (!window_open && b->running < b->o.max_running))
			break;
		if (window_open)
			pthread_cond_timedwait(&b->cond, &b->mu, &until);
		else
			pthread_cond_wait(&b->cond, &b->mu);
	}
	list = b->head;
	n_texts = b->n_pending;
	b->head = NULL;
	b->tail = &b->head;
	b->n_pending = 0;
	b->forming = 0;
	b->running++;
	pthread_mutex_unlock(&b->mu);

	run_batch(b, list, n_texts);

	pthread_mutex_lock(&b->mu);
	b->running--;
	b->active--;
	for (struct waiter *w = list; w; w = w->next)
		w->done = 1;
	pthread_cond_broadcast(&b->cond);
	rc = me.rc;
	pthread_mutex_unlock(&b->mu);
	if (rc < 0)
		rag_err_set(err, rc, me.err.field, "%s", me.err.msg);
	return rc;
}

static int count_tokens(struct embedder *e, const char *text, size_t len)
{
	return embedder_count_tokens(((struct embedder_batch *)e)->inner, text, len);
}

static void free_batch(struct embedder *e)
{
	struct embedder_batch *b = (struct embedder_batch *)e;

	embedder_free(b->inner);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cond);
	free(b);
}

static const struct embedder_ops batch_ops = {
	.embed = embed,
	.count_tokens = count_tokens,
	.free = free_batch,
};

struct embedder *embedder_batch_new(struct embedder *inner,
				    const struct embedder_batch_options *o, struct rag_err *err)
{
	struct embedder_batch *b;

	if (o->window_us < 0 || o->max_texts < 2 || o->max_running < 1) {
		rag_err_set(err, RAG_EINVAL, "models.embed_batch_window_us",
			    "micro-batching options out of range");
		embedder_free(inner);
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		embedder_free(inner);
		return NULL;
	}
	pthread_once(&metrics_once, metrics_init);
	b->base = *inner;
	b->base.ops = &batch_ops;
	b->inner = inner;
	b->o = *o;
	b->tail = &b->head;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cond, NULL);
	return &b->base;
}
