/*
 * Shared llama.cpp weights: a short list of (path, llama_model, refs)
 * under one mutex. Loading happens under the lock, so two threads asking
 * for the same new file load it once; loads of different files serialise
 * too, which costs little (start-up and cache misses only) and keeps this
 * simple.
 *
 * Locking: `mu` guards the list and every refs count.
 */
#include "model/model_weights.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llama.h>

#include "core/log.h"
#include "core/rag_error.h"

#include "core/banned.h"

struct weights {
	char *path;
	int flags;
	struct llama_model *model;
	int refs;
	struct weights *next;
};

static pthread_once_t llama_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct weights *head;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* llama.cpp's errors into ragd's log (JSON lines), its warnings at debug, the rest dropped. */
static void llama_log(enum ggml_log_level level, const char *text, void *user)
{
	size_t len = strlen(text);

	(void)user;
	if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN)
		return;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len == 0)
		return;
	if (level == GGML_LOG_LEVEL_ERROR)
		log_error("llama.cpp: %.*s", (int)len, text);
	else
		log_debug("llama.cpp: %.*s", (int)len, text);
}

static void llama_init(void)
{
	llama_log_set(llama_log, NULL);
	llama_backend_init();
}

void model_llama_init(void)
{
	pthread_once(&llama_once, llama_init);
}

struct llama_model *model_weights_acquire(const char *path, int flags, const char *field,
					  double *load_ms, struct rag_err *err)
{
	struct llama_model_params mp;
	struct weights *w;
	double t0 = now_ms();

	*load_ms = 0;
	pthread_mutex_lock(&mu);
	for (w = head; w && (strcmp(w->path, path) != 0 || w->flags != flags); w = w->next)
		;
	if (w) {
		w->refs++;
		pthread_mutex_unlock(&mu);
		return w->model;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path))) {
		free(w);
		pthread_mutex_unlock(&mu);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading '%s'", path);
		return NULL;
	}
	mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	if (flags & MODEL_WEIGHTS_PLAIN_CPU)
		mp.use_extra_bufts = false;
	w->flags = flags;
	w->model = llama_model_load_from_file(path, mp);
	if (!w->model) {
		pthread_mutex_unlock(&mu);
		free(w->path);
		free(w);
		rag_err_set(err, RAG_EINVAL, field, "llama.cpp could not load '%s' as a GGUF model",
			    path);
		return NULL;
	}
	w->refs = 1;
	w->next = head;
	head = w;
	pthread_mutex_unlock(&mu);
	*load_ms = now_ms() - t0;
	return w->model;
}

void model_weights_release(struct llama_model *m)
{
	struct weights **pp, *w = NULL;

	if (!m)
		return;
	pthread_mutex_lock(&mu);
	for (pp = &head; *pp; pp = &(*pp)->next) {
		if ((*pp)->model == m) {
			if (--(*pp)->refs == 0) {
				w = *pp;
				*pp = w->next;
			}
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	if (w) {
		llama_model_free(w->model);
		free(w->path);
		free(w);
	}
}

int model_weights_refs(const char *path)
{
	struct weights *w;
	int refs = 0;

	pthread_mutex_lock(&mu);
	for (w = head; w; w = w->next)
		if (strcmp(w->path, path) == 0)
			refs = w->refs;
	pthread_mutex_unlock(&mu);
	return refs;
}

int model_count_tokens(const struct llama_vocab *vocab, const char *text, size_t len)
{
	llama_token stack[512];
	int n;

	if (len > INT32_MAX / 2)
		return RAG_ETOOBIG;
	n = llama_tokenize(vocab, text, (int32_t)len, stack, 512, false, false);
	if (n < 0 && n != INT32_MIN) {
		llama_token *buf = malloc((size_t)-n * sizeof(*buf));

		if (!buf)
			return RAG_ENOMEM;
		n = llama_tokenize(vocab, text, (int32_t)len, buf, -n, false, false);
		free(buf);
	}
	return n < 0 ? RAG_EINVAL : n;
}
