/*
 * The llama.cpp generator against the real SmolLM2 model from `make models`:
 * greedy determinism, max_tokens, stop strings never shown, on_token
 * cancelling, UTF-8 pieces, and the bounded queue answering RAG_EBUSY.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/generator.h"
#include "text/utf8.h"

static struct generator *gen;

static int setup(void **state)
{
	struct generator_llama_options o;
	struct rag_err err = { 0 };
	char path[4096];
	const char *src = getenv("RAGD_SOURCE_DIR");

	(void)state;
	snprintf(path, sizeof(path), "%s/models/SmolLM2-135M-Instruct-Q4_1.gguf", src ? src : ".");
	generator_llama_default_options(&o);
	o.model_path = path;
	o.n_contexts = 1;
	o.n_queue = 0;
	o.n_ctx = 512;
	o.n_threads = 1;
	gen = generator_llama_new(&o, &err);
	if (!gen)
		fprintf(stderr, "cannot load: %s\n", err.msg);
	return gen ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	generator_free(gen);
	return 0;
}

static const struct gen_message hello[] = {
	{ "system", "You are a helpful assistant." },
	{ "user", "What is the capital of France? Answer in one sentence." },
};

struct pieces {
	struct sbuf all;
	int n, stop_after;
};

static int collect(void *ctx, const char *piece, size_t len)
{
	struct pieces *p = ctx;

	assert_true(utf8_valid(piece, len, NULL));
	sbuf_add(&p->all, piece, len);
	p->n++;
	return p->stop_after > 0 && p->n >= p->stop_after;
}

static void test_greedy_is_deterministic(void **state)
{
	struct gen_params p;
	struct gen_usage u1, u2;
	struct sbuf a = SBUF_INIT, b = SBUF_INIT;
	struct pieces pc = { SBUF_INIT, 0, 0 };

	(void)state;
	gen_params_default(&p);
	p.max_tokens = 12;
	assert_int_equal(generator_generate(gen, hello, 2, &p, collect, &pc, &a, &u1, NULL), 0);
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &b, &u2, NULL), 0);
	assert_string_equal(a.buf, b.buf);
	assert_string_equal(pc.all.buf, a.buf); /* the pieces add up to the answer */
	assert_true(u1.completion_tokens >= 1 && u1.completion_tokens <= 12);
	assert_true(u1.prompt_tokens > 10);
	assert_non_null(strstr(a.buf, "Paris"));
	sbuf_release(&a);
	sbuf_release(&b);
	sbuf_release(&pc.all);
}

static void test_max_tokens_and_cancel(void **state)
{
	struct gen_params p;
	struct gen_usage u;
	struct sbuf out = SBUF_INIT;
	struct pieces pc = { SBUF_INIT, 0, 2 };
	const struct gen_message story[] = { { "user", "Write a long story about a cat." } };

	(void)state;
	gen_params_default(&p);
	p.max_tokens = 5;
	assert_int_equal(generator_generate(gen, story, 1, &p, NULL, NULL, &out, &u, NULL), 0);
	assert_int_equal(u.completion_tokens, 5);
	assert_string_equal(u.finish_reason, "length");
	sbuf_reset(&out);
	p.max_tokens = 64;
	assert_int_equal(generator_generate(gen, story, 1, &p, collect, &pc, &out, &u, NULL), 0);
	assert_int_equal(pc.n, 2);
	assert_true(u.stopped);
	assert_string_equal(u.finish_reason, "cancelled");
	assert_true(u.completion_tokens < 10);
	sbuf_release(&out);
	sbuf_release(&pc.all);
}

static void test_stop_string_never_shown(void **state)
{
	struct gen_params p;
	struct gen_usage u;
	struct sbuf full = SBUF_INIT, cut = SBUF_INIT;
	struct pieces pc = { SBUF_INIT, 0, 0 };
	const char *stop[1];
	char word[8];
	const char *at;

	(void)state;
	gen_params_default(&p);
	p.max_tokens = 12;
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &full, &u, NULL), 0);
	at = strstr(full.buf, "Paris");
	assert_non_null(at);
	snprintf(word, sizeof(word), "%.3s", at + 1); /* "ari", in the middle of a token */
	stop[0] = word;
	p.stop = stop;
	p.n_stop = 1;
	assert_int_equal(generator_generate(gen, hello, 2, &p, collect, &pc, &cut, &u, NULL), 0);
	assert_string_equal(u.finish_reason, "stop");
	assert_int_equal(cut.len, (size_t)(at + 1 - full.buf));
	assert_memory_equal(cut.buf, full.buf, cut.len);
	assert_string_equal(pc.all.buf, cut.buf);
	sbuf_release(&full);
	sbuf_release(&cut);
	sbuf_release(&pc.all);
}

static void test_bad_params(void **state)
{
	struct gen_params p;
	struct gen_usage u;
	struct sbuf out = SBUF_INIT;
	struct rag_err err = { 0 };

	(void)state;
	gen_params_default(&p);
	p.max_tokens = 0;
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &out, &u, &err),
			 RAG_EINVAL);
	assert_string_equal(err.field, "max_tokens");
	gen_params_default(&p);
	p.top_p = 0;
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &out, &u, NULL),
			 RAG_EINVAL);
	assert_true(generator_count_tokens(gen, "hello world", 11) >= 2);
	sbuf_release(&out);
}

struct slow {
	pthread_mutex_t mu;
	int started;
};

static int hold(void *ctx, const char *piece, size_t len)
{
	struct slow *s = ctx;

	(void)piece, (void)len;
	pthread_mutex_lock(&s->mu);
	s->started = 1;
	pthread_mutex_unlock(&s->mu);
	usleep(20000);
	return 0;
}

static void *run_long(void *arg)
{
	const struct gen_message story[] = { { "user", "Write a long story about a dog." } };
	struct gen_params p;
	struct gen_usage u;
	struct sbuf out = SBUF_INIT;

	gen_params_default(&p);
	p.max_tokens = 40;
	generator_generate(gen, story, 1, &p, hold, arg, &out, &u, NULL);
	sbuf_release(&out);
	return NULL;
}

/* One context, no queue: a second call while the first runs is refused at once. */
static void test_queue_bound(void **state)
{
	struct slow s = { PTHREAD_MUTEX_INITIALIZER, 0 };
	struct gen_params p;
	struct gen_usage u;
	struct sbuf out = SBUF_INIT;
	struct rag_err err = { 0 };
	pthread_t t;
	int started = 0, waited = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, run_long, &s), 0);
	while (!started && waited++ < 60000) {
		usleep(1000);
		pthread_mutex_lock(&s.mu);
		started = s.started;
		pthread_mutex_unlock(&s.mu);
	}
	assert_true(started);
	gen_params_default(&p);
	p.max_tokens = 2;
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &out, &u, &err),
			 RAG_EBUSY);
	pthread_join(t, NULL);
	assert_int_equal(generator_generate(gen, hello, 2, &p, NULL, NULL, &out, &u, NULL), 0);
	sbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy_is_deterministic),
		cmocka_unit_test(test_max_tokens_and_cancel),
		cmocka_unit_test(test_stop_string_never_shown),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_queue_bound),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
