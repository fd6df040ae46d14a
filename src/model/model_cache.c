/*
 * The model LRU. A handful of entries (default 10), so a list scanned
 * linearly under one mutex: a lookup costs nothing next to a model call,
 * and eviction order is simply the oldest last_use among unused entries.
 *
 * Locking: `mu` guards the list and every entry's refs, last_use and
 * loading; `cond` is broadcast when a load finishes.
 */
#include "model/model_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/embedder.h"
#include "model/generator.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define MODEL_NAME_MAX 128 /* longest model name a client may send */

struct entry {
	char *key;
	void *obj;          /* NULL while loading */
	model_free_fn free_fn;
	int refs;
	int loading;
	uint64_t last_use;
	struct entry *next;
};

struct model_cache {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct entry *head;
	size_t n, capacity;
	uint64_t clock;
	struct metric_child *m_models, *m_hits, *m_loads, *m_evictions;
};

struct model_cache *model_cache_new(size_t capacity)
{
	struct model_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->capacity = capacity ? capacity : 1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->m_models = metric_default(
		metrics_gauge("ragd_model_cache_models", "Models loaded in the model cache", NULL));
	c->m_hits = metric_default(metrics_counter(
		"ragd_model_cache_hits_total", "Model cache lookups answered by a loaded model",
		NULL));
	c->m_loads = metric_default(metrics_counter(
		"ragd_model_cache_loads_total", "Models loaded into the model cache", NULL));
	c->m_evictions = metric_default(metrics_counter(
		"ragd_model_cache_evictions_total", "Models evicted from the model cache", NULL));
	return c;
}

static void entry_free(struct entry *e)
{
	if (e->obj && e->free_fn)
		e->free_fn(e->obj);
	free(e->key);
	free(e);
}

void model_cache_free(struct model_cache *c)
{
	struct entry *e, *next;

	if (!c)
		return;
	for (e = c->head; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Unlinks the unused entries beyond capacity, oldest first; caller frees the list. */
static struct entry *take_evictions(struct model_cache *c)
{
	struct entry *out = NULL;

	while (c->n > c->capacity) {
		struct entry **victim = NULL, *e;

		for (struct entry **pp = &c->head; *pp; pp = &(*pp)->next)
			if ((*pp)->refs == 0 && !(*pp)->loading &&
			    (!victim || (*pp)->last_use < (*victim)->last_use))
				victim = pp;
		if (!victim)
			break; /* all in use: over capacity until some are released */
		e = *victim;
		*victim = e->next;
		e->next = out;
		out = e;
		c->n--;
		metric_inc(c->m_evictions);
	}
	metric_set(c->m_models, (double)c->n);
	return out;
}

static void free_list(struct entry *e)
{
	while (e) {
		struct entry *next = e->next;

		log_info("model cache: evicted '%s'", e->key);
		entry_free(e);
		e = next;
	}
}

void *model_cache_acquire(struct model_cache *c, const char *key, model_load_fn load,
			  model_free_fn free_fn, void *arg, struct rag_err *err)
{
	struct entry *e, **pp, *evicted;
	void *obj;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		for (e = c->head; e && strcmp(e->key, key) != 0; e = e->next)
			;
		if (!e || !e->loading)
			break;
		pthread_cond_wait(&c->cond, &c->mu);
	}
	if (e) {
		e->refs++;
		e->last_use = ++c->clock;
		metric_inc(c->m_hits);
		pthread_mutex_unlock(&c->mu);
		return e->obj;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key))) {
		free(e);
		pthread_mutex_unlock(&c->mu);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	e->loading = 1;
	e->refs = 1;
	e->free_fn = free_fn;
	e->next = c->head;
	c->head = e;
	c->n++;
	pthread_mutex_unlock(&c->mu);

	obj = load(arg, err);

	pthread_mutex_lock(&c->mu);
	e->loading = 0;
	e->obj = obj;
	e->last_use = ++c->clock;
	if (!obj) {
		for (pp = &c->head; *pp != e; pp = &(*pp)->next)
			;
		*pp = e->next;
		c->n--;
		e->free_fn = NULL;
	} else {
		metric_inc(c->m_loads);
	}
	evicted = take_evictions(c);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	free_list(evicted);
	if (!obj)
		entry_free(e);
	return obj;
}

void model_cache_release(struct model_cache *c, void *obj)
{
	struct entry *e, *evicted;

	if (!obj)
		return;
	pthread_mutex_lock(&c->mu);
	for (e = c->head; e && e->obj != obj; e = e->next)
		;
	if (e && e->refs > 0)
		e->refs--;
	evicted = take_evictions(c);
	pthread_mutex_unlock(&c->mu);
	free_list(evicted);
}

size_t model_cache_count(struct model_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void *load_embedder(void *arg, struct rag_err *err)
{
	return embedder_llama_new(arg, err);
}

static void free_embedder(void *obj)
{
	embedder_free(obj);
}

struct embedder *model_cache_embedder(struct model_cache *c,
				      const struct embedder_llama_options *o,
				      struct rag_err *err)
{
	struct sbuf key = SBUF_INIT;
	struct embedder *e;

	sbuf_addf(&key, "embedder|%s|ctx=%d|threads=%d|batch=%d", o->model_path, o->n_contexts,
		  o->n_threads, o->batch_size);
	if (sbuf_error(&key)) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	e = model_cache_acquire(c, key.buf, load_embedder, free_embedder, (void *)o, err);
	sbuf_release(&key);
	return e;
}

static void *load_generator(void *arg, struct rag_err *err)
{
	return generator_llama_new(arg, err);
}

static void free_generator(void *obj)
{
	generator_free(obj);
}

struct generator *model_cache_generator(struct model_cache *c, const char *path, int n_threads,
					struct rag_err *err)
{
	struct generator_llama_options o;
	struct sbuf key = SBUF_INIT;
	struct generator *g;

	generator_llama_default_options(&o);
	o.model_path = path;
	o.n_contexts = 1;
	o.n_threads = n_threads > 0 ? n_threads : 1;
	sbuf_addf(&key, "generator|%s|ctx=%d|queue=%d|threads=%d|n_ctx=%d", path, o.n_contexts,
		  o.n_queue, o.n_threads, o.n_ctx);
	if (sbuf_error(&key)) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	g = model_cache_acquire(c, key.buf, load_generator, free_generator, &o, err);
	sbuf_release(&key);
	return g;
}

int model_cache_resolve(const char *dir, const char *name, char *out, size_t size)
{
	size_t len = strlen(name);
	struct stat st;

	if (len == 0 || len > MODEL_NAME_MAX || name[0] == '.')
		return RAG_ENOTFOUND;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return RAG_ENOTFOUND;
	}
	if ((size_t)snprintf(out, size, "%s/%s.gguf", dir, name) >= size)
		return RAG_ENOTFOUND;
	if (stat(out, &st) < 0 || !S_ISREG(st.st_mode))
		return RAG_ENOTFOUND;
	return 0;
}
