/*
 * Tests of the cluster-wide quotas (src/auth/auth_quota_redis.c): the
 * pure pieces (key names, the UTC day and its boundary, Retry-After
 * rounding), then against a real redis-server the test starts on a free
 * loopback port (its absence is a failure, not a skip): two registries
 * (as two instances) share one request bucket, one day's ingest bytes and
 * generated tokens; the key names and their expiry; usage read from
 * Redis; threads on one registry admit exactly the burst; a child process
 * after fork() gets connections of its own; Redis too slow (the decision
 * waits no longer than the timeout, then the local limits decide); and
 * Redis dying (the local limits decide, the error metric counts) and
 * coming back (shared again, the lost script reloaded).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_int.h"
#include "cache/cache.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "obs/metrics.h"

static int port;
static pid_t server = -1;
static char dir[] = "/tmp/ragd-test-quota-XXXXXX";
static char url[64];

#include "redis_test_server.h"

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	port = free_port();
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	start_redis();
	return 0;
}

static int teardown(void **state)
{
	char path[64];

	(void)state;
	stop_redis();
	snprintf(path, sizeof(path), "%s/dump.rdb", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* A registry with one configured key (its limits in `limits`), as an instance would have. */
struct inst {
	struct auth *a;
	struct auth_principal p;
};

static char token[AUTH_TOKEN_MAX], key_id[AUTH_ID_HEX + 1], keys[512];

/* A fresh key with limits for the instances made next (distinct keys: no state shared). */
static void new_key(const char *limits)
{
	char spec[200];

	assert_int_equal(auth_token_new(token, key_id, spec, sizeof(spec)), 0);
	snprintf(keys, sizeof(keys), "tenant=acme;role=writer;%s;%s", limits, spec);
}

static void inst_open(struct inst *in, const char *redis_url)
{
	struct auth_options o = { .enabled = true, .keys = keys, .key_cache_s = 10,
				  .quota_redis_url = redis_url, .quota_redis_timeout_ms = 200 };
	struct rag_err err = { 0 };
	char header[AUTH_TOKEN_MAX + 16];

	in->a = auth_new(&o, NULL, &err);
	assert_non_null(in->a);
	snprintf(header, sizeof(header), "Bearer %s", token);
	assert_int_equal(auth_verify(in->a, header, &in->p, &err), 0);
}

static int admit(struct inst *in, enum auth_quota q, int64_t amount, int *retry)
{
	struct rag_err err = { 0 };

	return auth_admit(in->a, &in->p, q, amount, retry, &err);
}

static double redis_errors(void)
{
	struct metric *m = metrics_counter("ragd_quota_redis_errors_total",
					   "Quota checks and charges that Redis did not answer (the"
					   " request used this instance's limits instead)", NULL);

	return metric_value(metric_default(m));
}

/* One integer reply of a command sent with a link of the test's own. */
static int64_t redis_int(const char *cmd, const char *arg)
{
	struct rag_err err = { 0 };
	struct cache_link *l = cache_link_new(url, 1000, 1, NULL, "test", &err);
	struct redis_cmd c = { 2, { cmd, arg }, { strlen(cmd), strlen(arg) } };
	struct cache_reply r;

	assert_non_null(l);
	assert_int_equal(cache_link_call(l, &c, 1, &r), 0);
	cache_link_free(l);
	assert_int_equal(r.type, CACHE_REPLY_INT);
	return r.ints[0];
}

static void test_key_names_days_and_retry(void **state)
{
	char buf[AUTH_QUOTA_PREFIX_MAX], tiny[8];

	(void)state;
	assert_int_equal(auth_quota_key_prefix("0123456789abcdef", buf, sizeof(buf)), 30);
	assert_string_equal(buf, "ragd:quota:{0123456789abcdef}:");
	assert_int_equal(auth_quota_key_prefix("0123456789abcdef", tiny, sizeof(tiny)),
			 RAG_EINVAL);
	/* 2026-11-27 is day 20419; its last millisecond is still that day. */
	assert_int_equal(auth_quota_day(0), 0);
	assert_int_equal(auth_quota_day(20419LL * AUTH_DAY_MS), 20419);
	assert_int_equal(auth_quota_day(20420LL * AUTH_DAY_MS - 1), 20419);
	assert_int_equal(auth_quota_day(20420LL * AUTH_DAY_MS), 20420);
	assert_int_equal(auth_quota_until_midnight_s(20419LL * AUTH_DAY_MS), 86400);
	assert_int_equal(auth_quota_until_midnight_s(20420LL * AUTH_DAY_MS - 1), 1);
	assert_int_equal(auth_quota_until_midnight_s(20420LL * AUTH_DAY_MS - 1000), 1);
	assert_int_equal(auth_quota_until_midnight_s(20420LL * AUTH_DAY_MS - 1001), 2);
	/* Retry-After: whole seconds up, never 0 (a 429 must say "later"). */
	assert_int_equal(auth_quota_retry_s(0), 1);
	assert_int_equal(auth_quota_retry_s(1), 1);
	assert_int_equal(auth_quota_retry_s(1000), 1);
	assert_int_equal(auth_quota_retry_s(1001), 2);
	assert_int_equal(auth_quota_retry_s(86400000), 86400);
}

static void test_bad_url_names_the_field(void **state)
{
	struct auth_options o = { .enabled = true, .keys = "", .key_cache_s = 10,
				  .quota_redis_url = "redis://host:notaport" };
	struct rag_err err = { 0 };

	(void)state;
	assert_null(auth_new(&o, NULL, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_string_equal(err.field, "auth.quota_redis_url");
}

static void test_two_instances_share_one_bucket(void **state)
{
	struct inst x, y;
	int retry = 0, admitted = 0, rc = 0;

	(void)state;
	new_key("requests_per_s=0.01;burst=3");
	inst_open(&x, url);
	inst_open(&y, url);
	for (int i = 0; i < 10; i++)
		if (admit(i % 2 ? &y : &x, AUTH_QUOTA_REQUESTS, 1, &retry) == 0)
			admitted++;
	assert_int_equal(admitted, 3); /* alone, each would admit 3 */
	rc = admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry);
	assert_int_equal(rc, RAG_ERATELIMIT);
	assert_true(retry >= 90 && retry <= 100); /* one request per 100 s */
	auth_free(x.a);
	auth_free(y.a);
}

static void test_daily_counters_are_shared_named_and_expire(void **state)
{
	struct inst x, y;
	struct sbuf out = SBUF_INIT;
	char name[128];
	int64_t day = auth_quota_day(auth_wall_ms()), ttl;
	int retry = 0;

	(void)state;
	new_key("ingest_bytes_per_day=100;tokens_per_day=10");
	inst_open(&x, url);
	inst_open(&y, url);
	assert_int_equal(admit(&x, AUTH_QUOTA_INGEST_BYTES, 60, &retry), 0);
	assert_int_equal(admit(&y, AUTH_QUOTA_INGEST_BYTES, 60, &retry), RAG_ERATELIMIT);
	assert_true(retry >= 1 && retry <= 86400);
	assert_true(abs(retry - auth_quota_until_midnight_s(auth_wall_ms())) <= 2);
	assert_int_equal(admit(&y, AUTH_QUOTA_INGEST_BYTES, 40, &retry), 0);
	/* Tokens: charged on one, the other sees the day spent. */
	assert_int_equal(admit(&y, AUTH_QUOTA_TOKENS, 0, &retry), 0);
	auth_charge_tokens(x.a, &x.p, 10);
	assert_int_equal(admit(&y, AUTH_QUOTA_TOKENS, 0, &retry), RAG_ERATELIMIT);

	/* Names: prefixed, the key id in a hash tag, the UTC day; never the tenant. */
	snprintf(name, sizeof(name), "ragd:quota:{%s}:ingest:%lld", key_id, (long long)day);
	assert_int_equal(redis_int("EXISTS", name), 1);
	ttl = redis_int("TTL", name);
	assert_true(ttl > 0 && ttl <= auth_quota_until_midnight_s(auth_wall_ms()) + 3600 + 2);
	assert_true(ttl >= auth_quota_until_midnight_s(auth_wall_ms()) + 3600 - 5);
	snprintf(name, sizeof(name), "ragd:quota:{%s}:tokens:%lld", key_id, (long long)day);
	assert_int_equal(redis_int("EXISTS", name), 1);
	snprintf(name, sizeof(name), "ragd:quota:{%s}:totals", key_id);
	assert_int_equal(redis_int("EXISTS", name), 1);
	assert_int_equal(redis_int("TTL", name), -1); /* totals do not expire */

	/* Usage from either instance: every instance's numbers. */
	assert_int_equal(auth_usage_json(x.a, "acme", key_id, &out, NULL), 0);
	assert_non_null(strstr(out.buf, "\"scope\":\"cluster\""));
	assert_non_null(strstr(out.buf, "\"ingest_bytes_today\":100,"));
	assert_non_null(strstr(out.buf, "\"ingest_bytes_total\":100,"));
	assert_non_null(strstr(out.buf, "\"tokens_today\":10,"));
	assert_non_null(strstr(out.buf, "\"ingest_bytes\":1,"));
	assert_non_null(strstr(out.buf, "\"generated_tokens\":1}"));
	assert_null(strstr(out.buf, "acme"));
	sbuf_release(&out);
	auth_free(x.a);
	auth_free(y.a);
}

struct hammer {
	struct inst *in;
	atomic_int admitted;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	int retry;

	for (int i = 0; i < 25; i++)
		if (admit(h->in, AUTH_QUOTA_REQUESTS, 1, &retry) == 0)
			atomic_fetch_add(&h->admitted, 1);
	return NULL;
}

static void test_threads_admit_exactly_the_burst(void **state)
{
	struct inst x;
	struct hammer h = { &x, 0 };
	pthread_t t[4];
	double errors = redis_errors();

	(void)state;
	new_key("requests_per_s=0.001;burst=40");
	inst_open(&x, url);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&h.admitted), 40);
	assert_true(redis_errors() == errors);
	auth_free(x.a);
}

static void test_a_forked_child_has_its_own_connections(void **state)
{
	struct inst x;
	int retry = 0, status = 0, fails = 0;
	double errors;
	pid_t child;

	(void)state;
	new_key("requests_per_s=0.001;burst=1000");
	inst_open(&x, url);
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), 0); /* pools a connection */
	errors = redis_errors();
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (int i = 0; i < 200; i++)
			if (admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry) != 0)
				_exit(2);
		_exit(redis_errors() == errors ? 0 : 3);
	}
	/* Both at once: over one shared socket their replies would cross. */
	for (int i = 0; i < 200; i++)
		fails += admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry) != 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(fails, 0);
	assert_true(redis_errors() == errors);
	auth_free(x.a);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* DEBUG SLEEP on a connection of its own: the server answers nobody meanwhile. */
static void *stall(void *arg)
{
	struct rag_err err = { 0 };
	struct cache_link *l = cache_link_new(url, 5000, 1, NULL, "test", &err);
	struct redis_cmd c = { 3, { "DEBUG", "SLEEP", arg }, { 5, 5, strlen(arg) } };
	struct cache_reply r;

	cache_link_call(l, &c, 1, &r);
	cache_link_free(l);
	return NULL;
}

static void test_slow_redis_is_waited_for_no_longer_than_the_timeout(void **state)
{
	struct inst x;
	pthread_t t;
	double errors, t0, took;
	int retry = 0;

	(void)state;
	new_key("requests_per_s=0.001;burst=5");
	inst_open(&x, url); /* quota_redis_timeout_ms 200 */
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), 0);
	errors = redis_errors();
	assert_int_equal(pthread_create(&t, NULL, stall, "1.5"), 0);
	usleep(100 * 1000);
	t0 = now_ms();
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), 0); /* local bucket: full */
	took = now_ms() - t0;
	assert_true(took >= 150 && took < 1000);
	assert_true(redis_errors() == errors + 1);
	/* In the back-off that follows, decisions do not wait at all. */
	t0 = now_ms();
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), 0);
	assert_true(now_ms() - t0 < 50);
	assert_true(redis_errors() == errors + 2);
	pthread_join(t, NULL);
	auth_free(x.a);
}

static void test_redis_down_falls_back_and_comes_back(void **state)
{
	struct inst x, y;
	struct sbuf out = SBUF_INIT;
	int retry = 0, admitted = 0;
	double errors;

	(void)state;
	new_key("requests_per_s=0.001;burst=2");
	inst_open(&x, url);
	inst_open(&y, url);
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), 0);
	assert_int_equal(admit(&y, AUTH_QUOTA_REQUESTS, 1, &retry), 0);
	assert_int_equal(admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry), RAG_ERATELIMIT);

	stop_redis();
	errors = redis_errors();
	/* Each instance's own bucket decides: full, as it was never drawn on. */
	for (int i = 0; i < 3; i++)
		admitted += admit(&x, AUTH_QUOTA_REQUESTS, 1, &retry) == 0;
	assert_int_equal(admitted, 2);
	assert_int_equal(retry >= 1, 1);
	assert_true(redis_errors() >= errors + 3);
	assert_int_equal(auth_usage_json(y.a, "acme", key_id, &out, NULL), 0);
	assert_non_null(strstr(out.buf, "\"scope\":\"instance\""));
	sbuf_release(&out);

	/* Back (empty, the script forgotten): shared again once the back-off is over. */
	start_redis();
	usleep(700 * 1000);
	admitted = 0;
	for (int i = 0; i < 6; i++)
		admitted += admit(i % 2 ? &y : &x, AUTH_QUOTA_REQUESTS, 1, &retry) == 0;
	assert_int_equal(admitted, 2);
	auth_free(x.a);
	auth_free(y.a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_names_days_and_retry),
		cmocka_unit_test(test_bad_url_names_the_field),
		cmocka_unit_test(test_two_instances_share_one_bucket),
		cmocka_unit_test(test_daily_counters_are_shared_named_and_expire),
		cmocka_unit_test(test_threads_admit_exactly_the_burst),
		cmocka_unit_test(test_a_forked_child_has_its_own_connections),
		cmocka_unit_test(test_slow_redis_is_waited_for_no_longer_than_the_timeout),
		cmocka_unit_test(test_redis_down_falls_back_and_comes_back),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
