/*
 * Micro-batching: concurrent small embed calls share inner calls, each
 * caller gets its own rows back, and an error stays with the caller whose
 * text caused it. The inner embedder here is a stand-in that writes a
 * vector derived from each text and records the size of every call.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/rag_error.h"
#include "model/embedder.h"

#define DIM 4
#define N_CALLERS 16

struct stub {
	struct embedder base;
	pthread_mutex_t mu;
	int calls;
	size_t max_batch;
};

static float value_of(const char *t, size_t len)
{
	float v = 0;

	for (size_t i = 0; i < len; i++)
		v = v * 31 + (unsigned char)t[i];
	return v;
}

static int stub_embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		      float *out, struct rag_err *err)
{
	struct stub *s = (struct stub *)e;

	pthread_mutex_lock(&s->mu);
	s->calls++;
	if (n > s->max_batch)
		s->max_batch = n;
	pthread_mutex_unlock(&s->mu);
	usleep(20000); /* a compute long enough for callers to pile up */
	for (size_t i = 0; i < n; i++) {
		if (lens[i] == 3 && memcmp(texts[i], "bad", 3) == 0)
			return rag_err_set(err, RAG_EINVAL, "text", "text %zu is bad", i);
		for (int d = 0; d < DIM; d++)
			out[i * DIM + d] = value_of(texts[i], lens[i]) + (float)d;
	}
	return 0;
}

static int stub_count(struct embedder *e, const char *text, size_t len)
{
	(void)e, (void)text;
	return (int)len;
}

static void stub_free(struct embedder *e)
{
	struct stub *s = (struct stub *)e;

	pthread_mutex_destroy(&s->mu);
	free(s);
}

static const struct embedder_ops stub_ops = { stub_embed, stub_count, stub_free };

static struct stub *stub_new(void)
{
	struct stub *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->base.ops = &stub_ops;
	s->base.dim = DIM;
	s->base.max_tokens = 128;
	snprintf(s->base.name, sizeof(s->base.name), "stub");
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

struct caller {
	struct embedder *e;
	char text[32];
	float out[2 * DIM];
	int rc;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	const char *texts[2] = { c->text, "shared" };
	size_t lens[2] = { strlen(c->text), 6 };
	struct rag_err err = { 0 };

	c->rc = embedder_embed(c->e, texts, lens, 2, c->out, &err);
	return NULL;
}

static void run_callers(struct embedder *e, struct caller *c, int n)
{
	pthread_t th[N_CALLERS];

	for (int i = 0; i < n; i++) {
		c[i].e = e;
		assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void merges_concurrent_calls(void **state)
{
	struct stub *s = stub_new();
	struct embedder_batch_options o;
	struct rag_err err = { 0 };
	struct embedder *b;
	struct caller c[N_CALLERS];

	(void)state;
	embedder_batch_default_options(&o);
	o.max_running = 1;
	b = embedder_batch_new(&s->base, &o, &err);
	assert_non_null(b);
	assert_string_equal(b->name, "stub");
	assert_int_equal(b->dim, DIM);
	memset(c, 0, sizeof(c));
	for (int i = 0; i < N_CALLERS; i++)
		snprintf(c[i].text, sizeof(c[i].text), "caller %d", i);
	run_callers(b, c, N_CALLERS);
	for (int i = 0; i < N_CALLERS; i++) {
		assert_int_equal(c[i].rc, 0);
		for (int d = 0; d < DIM; d++) {
			assert_true(c[i].out[d] == value_of(c[i].text, strlen(c[i].text)) + (float)d);
			assert_true(c[i].out[DIM + d] == value_of("shared", 6) + (float)d);
		}
	}
	/* 16 callers in fewer inner calls: at least one call carried several. */
	assert_true(s->calls < N_CALLERS);
	assert_true(s->max_batch > 2);
	embedder_free(b);
}

static void errors_stay_with_their_caller(void **state)
{
	struct stub *s = stub_new();
	struct embedder_batch_options o;
	struct embedder *b;
	struct caller c[8];

	(void)state;
	embedder_batch_default_options(&o);
	o.max_running = 1;
	o.window_us = 5000;
	b = embedder_batch_new(&s->base, &o, NULL);
	assert_non_null(b);
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 8; i++)
		snprintf(c[i].text, sizeof(c[i].text), i == 3 ? "bad" : "ok %d", i);
	run_callers(b, c, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c[i].rc, i == 3 ? RAG_EINVAL : 0);
	assert_true(c[4].out[0] == value_of("ok 4", 4));
	embedder_free(b);
}

static void large_calls_bypass(void **state)
{
	struct stub *s = stub_new();
	struct embedder_batch_options o;
	struct embedder *b;
	const char *texts[40];
	size_t lens[40];
	float out[40 * DIM];

	(void)state;
	embedder_batch_default_options(&o);
	b = embedder_batch_new(&s->base, &o, NULL);
	for (int i = 0; i < 40; i++) {
		texts[i] = "doc";
		lens[i] = 3;
	}
	assert_int_equal(embedder_embed(b, texts, lens, 40, out, NULL), 0);
	assert_int_equal(s->calls, 1);
	assert_int_equal(s->max_batch, 40);
	assert_int_equal(embedder_count_tokens(b, "abcde", 5), 5);
	embedder_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(merges_concurrent_calls),
		cmocka_unit_test(errors_stay_with_their_caller),
		cmocka_unit_test(large_calls_bypass),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
