/*
 * In-process embedder on llama.cpp.
 *
 * One model (weights shared, read-only) and a fixed pool of llama contexts:
 * a context is not thread-safe, so a caller takes one from the pool (waiting
 * when all are busy), packs as many texts as fit into one batch, runs the
 * encoder and gives the context back. Each text is one sequence in the
 * batch; llama.cpp pools per sequence (MEAN or CLS, as the GGUF says) and we
 * L2-normalise, since llama.cpp hands embeddings back unnormalised.
 *
 * llama.cpp asserts instead of returning an error when a batch holds more
 * tokens than n_ubatch or a sequence is longer than the model's window, so
 * both are guarded here: texts are truncated to max_tokens exactly as
 * sentence-transformers does ([CLS] + the first max_tokens - 2 pieces +
 * [SEP]), and a batch is closed before it would pass n_batch tokens or
 * n_seq_max sequences. n_ubatch equals n_batch: a non-causal model must see
 * each sequence whole in one micro-batch.
 *
 * Locking: `mu` guards `free_ctx`/`n_free`; `cond` signals a context given
 * back. The model and vocab are immutable after load and shared freely
 * (llama_tokenize on a vocab is thread-safe).
 */
#include "model/embedder.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llama.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "model/model_weights.h"
#include "obs/metrics.h"
#include "text/utf8.h"

#include "core/banned.h"

#define LLAMA_EMBED_BATCH_TOKENS 512 /* tokens per encode: attention masks grow with its square; 512 measured best */
#define LLAMA_EMBED_MAX_SEQ 64        /* sequences per batch; llama.cpp allows up to 256 */
#define LLAMA_EMBED_BYTES_PER_TOKEN 64 /* bytes of text read per token of window */
#define LLAMA_EMBED_MIN_SLICE 4   /* texts worth a context of their own */
#define LLAMA_EMBED_MAX_SLICES 16 /* contexts one call spreads over at most */

struct embedder_llama {
	struct embedder base;
	struct llama_model *model;
	const struct llama_vocab *vocab;
	int add_eos;      /* the tokenizer ends each text with [SEP] */
	int wpm;          /* a WordPiece (BERT) vocabulary */
	int batch_tokens; /* n_batch == n_ubatch of every context */
	int max_seq;      /* n_seq_max of every context */
	char *query_prefix; /* `ragd.query_prefix` of the GGUF, NULL when absent */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct llama_context **ctx;
	struct llama_context **free_ctx;
	int n_ctx, n_free;
};

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static struct metric_child *queue_gauge; /* queue_size: batches waiting for a context */
static struct metric_child *load_hist;   /* model_loading_time_ms */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void backend_init(void)
{
	static const double load_buckets[] = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
						30000, 60000 };

	model_llama_init();
	queue_gauge = metric_default(metrics_gauge(
		"queue_size", "Model work waiting for a free model context", NULL));
	load_hist = metric_default(metrics_histogram(
		"model_loading_time_ms", "Time to load a model and create its contexts, in ms",
		NULL, load_buckets, sizeof(load_buckets) / sizeof(load_buckets[0])));
}

void embedder_llama_default_options(struct embedder_llama_options *opts)
{
	opts->model_path = "models/all-MiniLM-L6-v2.gguf";
	opts->n_contexts = 2;
	opts->n_threads = 2;
	opts->batch_size = 32;
}

static struct llama_context *ctx_take(struct embedder_llama *m)
{
	struct llama_context *c;

	pthread_mutex_lock(&m->mu);
	if (m->n_free == 0) {
		metric_add(queue_gauge, 1);
		while (m->n_free == 0)
			pthread_cond_wait(&m->cond, &m->mu);
		metric_add(queue_gauge, -1);
	}
	c = m->free_ctx[--m->n_free];
	pthread_mutex_unlock(&m->mu);
	return c;
}

static void ctx_give(struct embedder_llama *m, struct llama_context *c)
{
	pthread_mutex_lock(&m->mu);
	m->free_ctx[m->n_free++] = c;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

/*
 * Hangul syllables decomposed into their conjoining letters (Unicode's
 * algorithmic NFD), as BERT's tokenizer does before WordPiece; llama.cpp's
 * WPM keeps only the first letter of each syllable. Returns a new buffer
 * (caller frees) or NULL when the text has no Hangul syllable.
 */
static char *hangul_nfd(const char *s, size_t len, size_t *out_len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, k = 0, n_syll = 0;
	char *out;

	for (i = 0; i + 2 < len; i++)
		if (u[i] >= 0xEA && u[i] <= 0xED) {
			unsigned cp = ((u[i] & 0x0Fu) << 12) | ((u[i + 1] & 0x3Fu) << 6) |
				      (u[i + 2] & 0x3Fu);

			n_syll += cp >= 0xAC00 && cp <= 0xD7A3;
		}
	if (n_syll == 0)
		return NULL;
	out = malloc(len + 6 * n_syll + 1);
	if (!out)
		return NULL;
	for (i = 0; i < len;) {
		unsigned cp = 0;

		if (i + 2 < len && u[i] >= 0xEA && u[i] <= 0xED)
			cp = ((u[i] & 0x0Fu) << 12) | ((u[i + 1] & 0x3Fu) << 6) | (u[i + 2] & 0x3Fu);
		if (cp >= 0xAC00 && cp <= 0xD7A3) {
			unsigned sidx = cp - 0xAC00;
			unsigned jamo[3] = { 0x1100 + sidx / 588, 0x1161 + (sidx % 588) / 28,
					     0x11A7 + sidx % 28 };

			for (int j = 0; j < (sidx % 28 ? 3 : 2); j++) {
				out[k++] = (char)(0xE0 | (jamo[j] >> 12));
				out[k++] = (char)(0x80 | ((jamo[j] >> 6) & 0x3F));
				out[k++] = (char)(0x80 | (jamo[j] & 0x3F));
			}
			i += 3;
		} else {
			out[k++] = s[i++];
		}
	}
	out[k] = '\0';
	*out_len = k;
	return out;
}

/*
 * Tokenises text with the model's special tokens into toks (room for cap),
 * truncated to max_tokens with the end token kept. Returns the count or a
 * negative RAG_E* code.
 */
static int tokenize_raw(struct embedder_llama *m, const char *text, size_t len,
			int add_special, llama_token *toks, int cap)
{
	int n = llama_tokenize(m->vocab, text, (int32_t)len, toks, cap, add_special, false);

	if (n < 0 && n != INT32_MIN) {
		llama_token *all = malloc((size_t)-n * sizeof(*all));

		if (!all)
			return RAG_ENOMEM;
		n = llama_tokenize(m->vocab, text, (int32_t)len, all, -n, add_special, false);
		if (n > cap) {
			memcpy(toks, all, (size_t)cap * sizeof(*toks));
			if (add_special && m->add_eos)
				toks[cap - 1] = all[n - 1];
			n = cap;
		}
		free(all);
	}
	if (n < 0)
		return RAG_EINVAL;
	return n;
}

static int tokenize(struct embedder_llama *m, const char *text, size_t len, int add_special,
		    llama_token *toks, int cap)
{
	size_t nfd_len = 0;
	char *nfd = m->wpm ? hangul_nfd(text, len, &nfd_len) : NULL;
	int n;

	if (nfd)
		n = tokenize_raw(m, nfd, nfd_len, add_special, toks, cap);
	else
		n = tokenize_raw(m, text, len, add_special, toks, cap);
	free(nfd);
	return n;
}

/* How much of a text can reach the model: a long text's tail never does. */
static size_t read_len(const struct embedder_llama *m, const char *text, size_t len)
{
	size_t cap = m->base.max_tokens * LLAMA_EMBED_BYTES_PER_TOKEN;

	return len > cap ? utf8_floor(text, len, cap) : len;
}

static int count_tokens(struct embedder *e, const char *text, size_t len)
{
	struct embedder_llama *m = (struct embedder_llama *)e;
	size_t nfd_len = 0;
	char *nfd = m->wpm ? hangul_nfd(text, len, &nfd_len) : NULL;
	int n = nfd ? model_count_tokens(m->vocab, nfd, nfd_len)
		    : model_count_tokens(m->vocab, text, len);

	free(nfd);
	return n;
}

static void normalize(float *v, size_t dim)
{
	double sum = 0.0;

	for (size_t i = 0; i < dim; i++)
		sum += (double)v[i] * v[i];
	if (sum > 0.0) {
		float inv = (float)(1.0 / sqrt(sum));

		for (size_t i = 0; i < dim; i++)
			v[i] *= inv;
	}
}

/* Runs one filled batch of n_seq sequences and copies rows out[0..n_seq). */
static int run_batch(struct embedder_llama *m, struct llama_context *c, struct llama_batch *b,
		     int n_seq, float *out, struct rag_err *err)
{
	llama_memory_t mem = llama_get_memory(c);
	int rc;

	if (mem)
		llama_memory_clear(mem, true);
	rc = llama_decode(c, *b);
	if (rc != 0)
		return rag_err_set(err, RAG_EINTERNAL, NULL, "llama.cpp failed to embed a batch (%d)",
				   rc);
	for (int s = 0; s < n_seq; s++) {
		const float *row = llama_get_embeddings_seq(c, s);

		if (!row)
			return rag_err_set(err, RAG_EINTERNAL, NULL,
					   "llama.cpp returned no embedding for sequence %d", s);
		memcpy(out + (size_t)s * m->base.dim, row, m->base.dim * sizeof(float));
		normalize(out + (size_t)s * m->base.dim, m->base.dim);
	}
	b->n_tokens = 0;
	return 0;
}

/* Embeds texts[0..n) on one context, in as many batches as it takes. */
static int embed_on_one(struct embedder_llama *m, const char *const *texts, const size_t *lens,
			size_t n, float *out, struct rag_err *err)
{
	struct llama_context *c = NULL;
	struct llama_batch b;
	llama_token *toks = NULL;
	size_t first = 0; /* text of the batch's sequence 0 */
	int n_seq = 0, rc = 0;

	toks = malloc(m->base.max_tokens * sizeof(*toks));
	if (!toks)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while embedding");
	b = llama_batch_init(m->batch_tokens, 0, 1);
	c = ctx_take(m);
	for (size_t i = 0; i < n; i++) {
		int nt = tokenize(m, texts[i], read_len(m, texts[i], lens[i]), 1, toks,
				  (int)m->base.max_tokens);

		if (nt < 0) {
			rc = rag_err_set(err, nt, "text", "text %zu could not be tokenised", i);
			goto out;
		}
		if (b.n_tokens + nt > m->batch_tokens || n_seq == m->max_seq) {
			rc = run_batch(m, c, &b, n_seq, out + first * m->base.dim, err);
			if (rc < 0)
				goto out;
			first = i;
			n_seq = 0;
		}
		for (int t = 0; t < nt; t++) {
			int k = b.n_tokens++;

			b.token[k] = toks[t];
			b.pos[k] = t;
			b.n_seq_id[k] = 1;
			b.seq_id[k][0] = n_seq;
			b.logits[k] = 1;
		}
		n_seq++;
	}
	if (n_seq > 0)
		rc = run_batch(m, c, &b, n_seq, out + first * m->base.dim, err);
out:
	ctx_give(m, c);
	llama_batch_free(b);
	free(toks);
	return rc;
}

struct slice {
	struct embedder_llama *m;
	const char *const *texts;
	const size_t *lens;
	size_t n;
	float *out;
	struct rag_err err;
	int rc;
};

static void *slice_main(void *arg)
{
	struct slice *s = arg;

	s->rc = embed_on_one(s->m, s->texts, s->lens, s->n, s->out, &s->err);
	return NULL;
}

/*
 * Many texts (one large document) are cut into contiguous slices embedded
 * on several contexts at once, so that a single client uses every core;
 * under load the slices simply queue for contexts like any other batch.
 */
static int embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		 float *out, struct rag_err *err)
{
	struct embedder_llama *m = (struct embedder_llama *)e;
	struct slice slices[LLAMA_EMBED_MAX_SLICES];
	pthread_t threads[LLAMA_EMBED_MAX_SLICES];
	int started[LLAMA_EMBED_MAX_SLICES] = { 0 };
	size_t parts = n / LLAMA_EMBED_MIN_SLICE, first = 0;
	int rc = 0;

	if (parts > (size_t)m->n_ctx)
		parts = (size_t)m->n_ctx;
	if (parts > LLAMA_EMBED_MAX_SLICES)
		parts = LLAMA_EMBED_MAX_SLICES;
	if (parts <= 1)
		return embed_on_one(m, texts, lens, n, out, err);
	for (size_t p = 0; p < parts; p++) {
		size_t count = n / parts + (p < n % parts);

		slices[p] = (struct slice){ m, texts + first, lens + first, count,
					    out + first * m->base.dim, { 0 }, 0 };
		first += count;
	}
	for (size_t p = 1; p < parts; p++)
		started[p] = pthread_create(&threads[p], NULL, slice_main, &slices[p]) == 0;
	slice_main(&slices[0]);
	for (size_t p = 1; p < parts; p++) {
		if (started[p])
			pthread_join(threads[p], NULL);
		else
			slice_main(&slices[p]); /* no thread to be had: do it here */
	}
	for (size_t p = 0; p < parts && rc == 0; p++) {
		if (slices[p].rc < 0) {
			rc = slices[p].rc;
			rag_err_set(err, rc, slices[p].err.field, "%s", slices[p].err.msg);
		}
	}
	return rc;
}

static void free_llama(struct embedder *e)
{
	struct embedder_llama *m = (struct embedder_llama *)e;

	for (int i = 0; i < m->n_ctx; i++)
		llama_free(m->ctx[i]);
	free(m->ctx);
	free(m->free_ctx);
	model_weights_release(m->model);
	free(m->query_prefix);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cond);
	free(m);
}

static const struct embedder_ops llama_ops = {
	.embed = embed,
	.count_tokens = count_tokens,
	.free = free_llama,
};

static long meta_long(const struct llama_model *model, const char *key, long fallback)
{
	char buf[64];
	char *end;
	long v;

	if (llama_model_meta_val_str(model, key, buf, sizeof(buf)) < 0)
		return fallback;
	v = strtol(buf, &end, 10);
	return end != buf && v > 0 ? v : fallback;
}

/*
 * A string key of the GGUF, copied into *out (caller frees); *out is NULL
 * when the key is absent or empty. llama_model_meta_val_str returns the full
 * length like snprintf, so a long value is read again into a buffer that
 * fits. Returns 0 or RAG_ENOMEM.
 */
static int meta_str(const struct llama_model *model, const char *key, char **out)
{
	char probe[128];
	int len = llama_model_meta_val_str(model, key, probe, sizeof(probe));

	*out = NULL;
	if (len <= 0)
		return 0;
	*out = malloc((size_t)len + 1);
	if (!*out)
		return RAG_ENOMEM;
	if ((size_t)len < sizeof(probe))
		memcpy(*out, probe, (size_t)len + 1);
	else
		llama_model_meta_val_str(model, key, *out, (size_t)len + 1);
	return 0;
}

static void model_name(struct embedder_llama *m, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 5 && strcmp(base + len - 5, ".gguf") == 0)
		len -= 5;
	snprintf(m->base.name, sizeof(m->base.name), "%.*s", (int)len, base);
}

/* name@BLAKE2b of the file: ~0.1 s for a MiniLM at load, once. */
static void model_fingerprint(struct embedder_llama *m, const char *path)
{
	char hex[HASH_HEX_LEN + 1];

	if (hash_file_hex(path, hex) < 0)
		snprintf(hex, sizeof(hex), "unhashed");
	snprintf(m->base.fingerprint, sizeof(m->base.fingerprint), "%s@%s", m->base.name, hex);
}

static int make_contexts(struct embedder_llama *m, const struct embedder_llama_options *o,
			 struct rag_err *err)
{
	struct llama_context_params cp = llama_context_default_params();

	cp.n_ctx = (uint32_t)m->batch_tokens;
	cp.n_batch = (uint32_t)m->batch_tokens;
	cp.n_ubatch = (uint32_t)m->batch_tokens;
	cp.n_seq_max = (uint32_t)m->max_seq;
	cp.n_threads = o->n_threads;
	cp.n_threads_batch = o->n_threads;
	cp.embeddings = true;
	cp.kv_unified = true;
	cp.no_perf = true;
	m->ctx = calloc((size_t)o->n_contexts, sizeof(*m->ctx));
	m->free_ctx = calloc((size_t)o->n_contexts, sizeof(*m->free_ctx));
	if (!m->ctx || !m->free_ctx)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating contexts");
	for (int i = 0; i < o->n_contexts; i++) {
		m->ctx[i] = llama_init_from_model(m->model, cp);
		if (!m->ctx[i])
			return rag_err_set(err, RAG_EINTERNAL, "models.embedder",
					   "llama.cpp could not create a context for '%s'",
					   o->model_path);
		m->n_ctx++;
		m->free_ctx[m->n_free++] = m->ctx[i];
		if (llama_pooling_type(m->ctx[i]) == LLAMA_POOLING_TYPE_NONE)
			return rag_err_set(err, RAG_EINVAL, "models.embedder",
					   "'%s' has no pooling: not an embedding model",
					   o->model_path);
	}
	return 0;
}

struct embedder *embedder_llama_new(const struct embedder_llama_options *o, struct rag_err *err)
{
	struct embedder_llama *m;
	double load_ms;
	llama_token probe[8];
	long window;
	int n_special;
	double t0;
	FILE *f;

	if (o->n_contexts < 1 || o->n_threads < 1 || o->batch_size < 1) {
		rag_err_set(err, RAG_EINVAL, "models", "embedder pool sizes must be >= 1");
		return NULL;
	}
	f = fopen(o->model_path, "rb");
	if (!f) {
		rag_err_set(err, RAG_ENOTFOUND, "models.embedder",
			    "embedding model '%s' not found (run `make models`)", o->model_path);
		return NULL;
	}
	fclose(f);
	pthread_once(&backend_once, backend_init);
	t0 = now_ms();
	m = calloc(1, sizeof(*m));
	if (!m) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading the embedder");
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->base.ops = &llama_ops;
	m->model = model_weights_acquire(o->model_path, 0, "models.embedder", &load_ms, err);
	if (!m->model)
		goto fail;
	m->vocab = llama_model_get_vocab(m->model);
	m->base.dim = (size_t)llama_model_n_embd_out(m->model);
	window = llama_model_n_ctx_train(m->model);
	window = meta_long(m->model, "ragd.max_seq_length", window);
	if (window > llama_model_n_ctx_train(m->model))
		window = llama_model_n_ctx_train(m->model);
	m->base.max_tokens = (size_t)window;
	if (meta_str(m->model, "ragd.query_prefix", &m->query_prefix) < 0) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading the embedder");
		goto fail;
	}
	m->base.query_prefix = m->query_prefix ? m->query_prefix : "";
	n_special = llama_tokenize(m->vocab, "", 0, probe, 8, true, false);
	m->base.n_special = n_special > 0 ? (size_t)n_special : 0;
	m->wpm = llama_vocab_type(m->vocab) == LLAMA_VOCAB_TYPE_WPM;
	m->add_eos = llama_vocab_get_add_eos(m->vocab) || llama_vocab_get_add_sep(m->vocab);
	m->max_seq = o->batch_size < LLAMA_EMBED_MAX_SEQ ? o->batch_size : LLAMA_EMBED_MAX_SEQ;
	m->batch_tokens = LLAMA_EMBED_BATCH_TOKENS;
	if ((long)m->batch_tokens < window)
		m->batch_tokens = (int)window;
	model_name(m, o->model_path);
	model_fingerprint(m, o->model_path);
	if (make_contexts(m, o, err) < 0)
		goto fail;
	metric_observe(load_hist, now_ms() - t0);
	log_info("embedder '%s' loaded: dim %zu, window %zu tokens, %d contexts x %d threads",
		 m->base.name, m->base.dim, m->base.max_tokens, m->n_ctx, o->n_threads);
	return &m->base;
fail:
	free_llama(&m->base);
	return NULL;
}
