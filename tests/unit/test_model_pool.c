/*
 * Model pool routing without sockets: the policies' choices, hash
 * stability under ejection, least-in-flight, and eject/readmit with a fake
 * clock (the times passed in). The HTTP side is tested end to end against
 * real ragd instances (tests/e2e/test_model_pool.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/rag_error.h"
#include "model/model_pool.h"

static struct model_pool *pool(enum model_pool_policy policy, int health_ms)
{
	struct model_pool_options o;
	struct rag_err err = { 0 };
	struct model_pool *p;

	model_pool_default_options(&o);
	o.name = "test";
	o.urls = "http://a:1, http://b:2,http://c:3/";
	o.policy = policy;
	o.health_interval_ms = health_ms; /* 0: no thread, eject_ms applies */
	o.eject_after = 2;
	o.eject_ms = 1000;
	p = model_pool_new(&o, &err);
	assert_non_null(p);
	return p;
}

static void parses_urls(void **state)
{
	struct model_pool_options o;
	struct rag_err err = { 0 };
	struct model_pool *p = pool(MODEL_POOL_ROUND_ROBIN, 0);

	(void)state;
	assert_int_equal(model_pool_size(p), 3);
	assert_string_equal(model_pool_url(p, 1), "http://b:2");
	assert_string_equal(model_pool_url(p, 2), "http://c:3");
	model_pool_free(p);

	model_pool_default_options(&o);
	o.health_interval_ms = 0;
	o.urls = "";
	assert_null(model_pool_new(&o, &err));
	assert_string_equal(err.field, "models.remote.urls");
	rag_err_clear(&err);
	o.urls = "ftp://x";
	assert_null(model_pool_new(&o, &err));
	assert_int_equal(err.code, RAG_EINVAL);
}

static void policy_names(void **state)
{
	enum model_pool_policy pol;

	(void)state;
	assert_int_equal(model_pool_policy_parse("hash", &pol), 0);
	assert_int_equal(pol, MODEL_POOL_HASH);
	assert_int_equal(model_pool_policy_parse("least_inflight", &pol), 0);
	assert_int_equal(pol, MODEL_POOL_LEAST_INFLIGHT);
	assert_int_equal(model_pool_policy_parse("random", &pol), RAG_EINVAL);
}

static void round_robin_cycles(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_ROUND_ROBIN, 0);
	int seen[3] = { 0 };

	(void)state;
	for (int k = 0; k < 9; k++) {
		int i = model_pool_pick(p, NULL, 0, 0, 0);

		assert_true(i >= 0 && i < 3);
		seen[i]++;
		model_pool_done(p, i, 1, 0);
	}
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 3);
	assert_int_equal(seen[2], 3);
	model_pool_free(p);
}

static void tried_instances_are_skipped(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_ROUND_ROBIN, 0);
	uint64_t tried = 0;

	(void)state;
	for (int k = 0; k < 3; k++) {
		int i = model_pool_pick(p, NULL, 0, tried, 0);

		assert_true(i >= 0);
		assert_false((tried >> i) & 1);
		tried |= 1ULL << i;
		model_pool_done(p, i, 1, 0);
	}
	assert_int_equal(model_pool_pick(p, NULL, 0, tried, 0), -1);
	model_pool_free(p);
}

static int pick_key(struct model_pool *p, const char *key, double now)
{
	int i = model_pool_pick(p, key, strlen(key), 0, now);

	model_pool_done(p, i, 1, now);
	return i;
}

static void hash_is_stable_and_spreads(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_HASH, 0);
	int count[3] = { 0 }, before[64];
	char key[32];

	(void)state;
	for (int k = 0; k < 64; k++) {
		snprintf(key, sizeof(key), "prompt %d", k);
		before[k] = pick_key(p, key, 0);
		assert_int_equal(pick_key(p, key, 0), before[k]); /* same key, same instance */
		count[before[k]]++;
	}
	for (int i = 0; i < 3; i++)
		assert_true(count[i] > 5); /* spread, roughly evenly */

	/* Eject instance 0: only its keys move; the others stay put. */
	model_pool_done(p, model_pool_pick(p, "x", 1, 6, 0), 0, 0);
	model_pool_done(p, model_pool_pick(p, "x", 1, 6, 0), 0, 0);
	assert_false(model_pool_is_up(p, 0));
	for (int k = 0; k < 64; k++) {
		int now;

		snprintf(key, sizeof(key), "prompt %d", k);
		now = pick_key(p, key, 10);
		if (before[k] == 0)
			assert_int_not_equal(now, 0);
		else
			assert_int_equal(now, before[k]);
	}
	/* Readmitted by a health check: its keys come back. */
	model_pool_health(p, 0, 1, 20);
	for (int k = 0; k < 64; k++) {
		snprintf(key, sizeof(key), "prompt %d", k);
		assert_int_equal(pick_key(p, key, 20), before[k]);
	}
	model_pool_free(p);
}

static void least_inflight_prefers_idle(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_LEAST_INFLIGHT, 0);
	int a, b, c, d;

	(void)state;
	a = model_pool_pick(p, NULL, 0, 0, 0);
	b = model_pool_pick(p, NULL, 0, 0, 0);
	c = model_pool_pick(p, NULL, 0, 0, 0);
	/* Three calls in flight spread over three instances. */
	assert_true(a != b && b != c && a != c);
	model_pool_done(p, b, 1, 0);
	/* b is the only idle one now. */
	d = model_pool_pick(p, NULL, 0, 0, 0);
	assert_int_equal(d, b);
	assert_int_equal(model_pool_in_flight(p, (size_t)a), 1);
	model_pool_done(p, a, 1, 0);
	model_pool_done(p, c, 1, 0);
	model_pool_done(p, d, 1, 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(model_pool_in_flight(p, i), 0);
	model_pool_free(p);
}

static void eject_after_failures_then_probe(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_ROUND_ROBIN, 0);
	uint64_t not_b = ~(1ULL << 1);

	(void)state;
	/* One failure is not enough (eject_after 2). */
	assert_int_equal(model_pool_pick(p, NULL, 0, not_b, 0), 1);
	model_pool_done(p, 1, 0, 0);
	assert_true(model_pool_is_up(p, 1));
	/* A success in between resets the count. */
	assert_int_equal(model_pool_pick(p, NULL, 0, not_b, 0), 1);
	model_pool_done(p, 1, 1, 0);
	assert_int_equal(model_pool_pick(p, NULL, 0, not_b, 0), 1);
	model_pool_done(p, 1, 0, 100);
	assert_true(model_pool_is_up(p, 1));
	assert_int_equal(model_pool_pick(p, NULL, 0, not_b, 100), 1);
	model_pool_done(p, 1, 0, 100);
	assert_false(model_pool_is_up(p, 1));

	/* Ejected: never chosen while others are up, before eject_ms. */
	for (int k = 0; k < 10; k++) {
		int i = model_pool_pick(p, NULL, 0, 0, 500);

		assert_int_not_equal(i, 1);
		model_pool_done(p, i, 1, 500);
	}
	/* Asked for it alone (everything else tried): tried rather than nothing. */
	assert_int_equal(model_pool_pick(p, NULL, 0, not_b, 500), 1);
	model_pool_done(p, 1, 0, 500); /* still failing: stays out, clock restarts */
	assert_false(model_pool_is_up(p, 1));

	/* After eject_ms it is probed again; a success puts it back. */
	{
		int got = 0;

		for (int k = 0; k < 3; k++) {
			int i = model_pool_pick(p, NULL, 0, 0, 1600);

			got |= i == 1;
			model_pool_done(p, i, 1, 1600);
		}
		assert_true(got);
	}
	assert_true(model_pool_is_up(p, 1));
	model_pool_free(p);
}

static void health_checks_eject_and_readmit(void **state)
{
	struct model_pool *p = pool(MODEL_POOL_ROUND_ROBIN, 0);

	(void)state;
	model_pool_health(p, 2, 0, 0);
	assert_false(model_pool_is_up(p, 2));
	for (int k = 0; k < 6; k++) {
		int i = model_pool_pick(p, NULL, 0, 0, 10);

		assert_int_not_equal(i, 2);
		model_pool_done(p, i, 1, 10);
	}
	model_pool_health(p, 2, 1, 20);
	assert_true(model_pool_is_up(p, 2));
	model_pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_urls),
		cmocka_unit_test(policy_names),
		cmocka_unit_test(round_robin_cycles),
		cmocka_unit_test(tried_instances_are_skipped),
		cmocka_unit_test(hash_is_stable_and_spreads),
		cmocka_unit_test(least_inflight_prefers_idle),
		cmocka_unit_test(eject_after_failures_then_probe),
		cmocka_unit_test(health_checks_eject_and_readmit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
