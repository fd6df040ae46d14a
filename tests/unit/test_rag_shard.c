/*
 * The shard map (rag_shard.h): settings parsed and checked with the key
 * named, holds from a list or an ordinal, peers from a list or a pattern,
 * documents routed by the ring, and a fan-out with no live holder failing
 * with RAG_EBUSY naming the shard (never a partial answer).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/ring.h"
#include "rag/rag_shard.h"

static struct rag_shard_options opts(int n, const char *holds, const char *peers)
{
	struct rag_shard_options o;

	rag_shard_default_options(&o);
	o.n_shards = n;
	o.holds = holds;
	o.peers = peers;
	return o;
}

static void expect_error(const struct rag_shard_options *o, const char *field, const char *msg)
{
	struct rag_err err = { 0 };

	assert_null(rag_shards_new(o, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_string_equal(err.field, field);
	if (msg && !strstr(err.msg, msg))
		fail_msg("'%s' does not say '%s'", err.msg, msg);
}

static void test_off(void **state)
{
	struct rag_shard_options o = opts(0, "", "");
	struct rag_err err = { 0 };

	(void)state;
	assert_null(rag_shards_new(&o, &err));
	assert_int_equal(err.code, 0);
	assert_true(rag_shards_holds(NULL, "anything"));
	assert_false(rag_shards_remote(NULL));
	assert_int_equal(rag_shards_count(NULL), 0);
}

static void test_bad_settings(void **state)
{
	struct rag_shard_options o;

	(void)state;
	o = opts(2, "2", "http://a:1=1");
	expect_error(&o, "sharding.holds", "0..1");
	o = opts(2, "0,", "http://a:1=1");
	expect_error(&o, "sharding.holds", NULL);
	o = opts(2, "", "http://a:1=1");
	expect_error(&o, "sharding.holds", "ordinal");
	o = opts(3, "0", "http://a:1=1");
	expect_error(&o, "sharding.peers", "shard 2 is held by no instance");
	o = opts(2, "0", "ftp://a:1=1");
	expect_error(&o, "sharding.peers", "http://");
	o = opts(2, "0", "http://a:1");
	expect_error(&o, "sharding.peers", "URL=SHARDS");
	o = opts(65, "0", "");
	expect_error(&o, "sharding.shards", NULL);
	o = opts(2, "0", "");
	o.peer_pattern = "http://ragd.ragd-headless:8080";
	o.instances = 2;
	expect_error(&o, "sharding.peer_pattern", "{i}");
	o.peer_pattern = "http://ragd-{i}.ragd-headless:8080";
	o.instances = 0;
	expect_error(&o, "sharding.instances", NULL);
	o = opts(2, "0", "http://a:1=1");
	o.vnodes = 0;
	expect_error(&o, "sharding.vnodes", NULL);
}

static void test_holds_and_routing(void **state)
{
	struct rag_shard_options o = opts(3, "0,2", " http://a:1=1;http://b:2/=0,1  ");
	struct rag_err err = { 0 };
	struct rag_shards *sh = rag_shards_new(&o, &err);
	struct ring *r = ring_new(3, RING_VNODES_DEFAULT);

	(void)state;
	assert_non_null(sh);
	assert_int_equal(rag_shards_count(sh), 3);
	assert_int_equal(rag_shards_held(sh), 5);
	assert_true(rag_shards_remote(sh));
	for (int i = 0; i < 200; i++) {
		char id[32];
		size_t s;

		snprintf(id, sizeof(id), "doc-%d", i);
		s = ring_shard(r, id, strlen(id));
		assert_int_equal(rag_shards_of(sh, id), s); /* the ring's, with the default vnodes */
		assert_int_equal(rag_shards_holds(sh, id), s != 1);
	}
	rag_shards_free(sh);
	ring_free(r);

	/* A StatefulSet: ordinal 5 of 2 shards holds shard 1; peers from the pattern. */
	o = opts(2, "", "");
	o.ordinal = 5;
	o.peer_pattern = "http://ragd-{i}.ragd-headless:8080";
	o.instances = 4;
	sh = rag_shards_new(&o, &err);
	assert_non_null(sh);
	assert_int_equal(rag_shards_held(sh), 2);
	rag_shards_free(sh);

	/* Holding every shard: nothing to ask anyone. */
	o = opts(2, "0,1", "");
	sh = rag_shards_new(&o, &err);
	assert_non_null(sh);
	assert_false(rag_shards_remote(sh));
	rag_shards_free(sh);
}

static void test_no_live_holder_is_busy(void **state)
{
	/* Port 1 on loopback refuses at once: both holders of shard 1 are down. */
	struct rag_shard_options o = opts(2, "0", "http://127.0.0.1:1=1 http://127.0.0.1:1/=1");
	struct rag_err err = { 0 };
	struct rag_shards *sh;
	float vec[4] = { 1, 0, 0, 0 };
	int64_t ids[3] = { 7 };
	float scores[3] = { 0.5f };
	size_t n = 1;

	(void)state;
	o.timeout_ms = 1000;
	sh = rag_shards_new(&o, &err);
	assert_non_null(sh);
	assert_int_equal(rag_shards_search(sh, "c", vec, 4, 3, NULL, NULL, ids, scores, &n, &err),
			 RAG_EBUSY);
	assert_non_null(strstr(err.msg, "shard 1 of 2"));
	/* Both were tried (each in back-off now), and the second search fails the same way. */
	rag_err_clear(&err);
	n = 1;
	assert_int_equal(rag_shards_search(sh, "c", vec, 4, 3, "{\"a\":1}", NULL, ids, scores, &n, &err),
			 RAG_EBUSY);
	assert_int_equal(ids[0], 7); /* the local results are left as they were */
	rag_shards_free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_bad_settings),
		cmocka_unit_test(test_holds_and_routing),
		cmocka_unit_test(test_no_live_holder_is_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
