/*
 * Unit tests for the Redis backends against a real redis-server that the
 * test starts on a free loopback port (Debian's redis-server must be
 * installed; its absence is a failure, not a skip): get/put/del, binary
 * values, TTLs, one-round-trip multi-get, the server dying (calls fail at
 * once, the node backs off) and coming back on the same port (the cache
 * works again by itself), two levels over Redis, and the cluster backend
 * pointed at a server that is not a cluster (bypass, no crash), and
 * passwords and ACL users in redis:// URLs. The real
 * 6-node cluster is exercised end to end in tests/e2e/test_cache_cluster.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/rag_error.h"

static int port;
static pid_t server = -1;
static char dir[] = "/tmp/ragd-test-redis-XXXXXX";

#include "redis_test_server.h"

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	port = free_port();
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

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int get(struct cache *c, const char *key, void **val, size_t *len)
{
	*val = NULL;
	*len = 0;
	return c->ops->get(c, key, strlen(key), val, len);
}

static void test_roundtrip(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 1000, 4, NULL);
	const unsigned char bin[] = { 0, 1, 2, 0, 255, '\r', '\n', 0 };
	struct cache_stats st;
	void *val;
	size_t len;

	(void)state;
	assert_non_null(c);
	c->ops->del(c, "t:k", 3);
	assert_int_equal(get(c, "t:k", &val, &len), RAG_ENOTFOUND);
	assert_int_equal(c->ops->put(c, "t:k", 3, bin, sizeof(bin), 60), 0);
	assert_int_equal(get(c, "t:k", &val, &len), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(val, bin, sizeof(bin)); /* binary-safe */
	free(val);
	assert_int_equal(c->ops->del(c, "t:k", 3), 0);
	assert_int_equal(get(c, "t:k", &val, &len), RAG_ENOTFOUND);
	assert_int_equal(c->ops->stats(c, &st), 1);
	assert_string_equal(st.backend, "redis");
	assert_int_equal(st.up, 1);
	cache_free(c);
}

static void test_ttl(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 1000, 4, NULL);
	void *val;
	size_t len;

	(void)state;
	assert_int_equal(c->ops->put(c, "t:ttl", 5, "x", 1, 1), 0);
	assert_int_equal(get(c, "t:ttl", &val, &len), 0);
	free(val);
	usleep(1200 * 1000);
	assert_int_equal(get(c, "t:ttl", &val, &len), RAG_ENOTFOUND);
	cache_free(c);
}

static void test_mget(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 1000, 4, NULL);
	const char *keys[3] = { "t:m0", "t:m1", "t:m2" };
	size_t klens[3] = { 4, 4, 4 }, lens[3];
	void *vals[3] = { NULL, NULL, NULL };
	int rcs[3];

	(void)state;
	c->ops->del(c, "t:m1", 4);
	assert_int_equal(c->ops->put(c, "t:m0", 4, "zero", 4, 60), 0);
	assert_int_equal(c->ops->put(c, "t:m2", 4, "two", 3, 60), 0);
	assert_non_null(c->ops->mget);
	c->ops->mget(c, keys, klens, 3, vals, lens, rcs);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], RAG_ENOTFOUND);
	assert_int_equal(rcs[2], 0);
	assert_memory_equal(vals[0], "zero", 4);
	assert_memory_equal(vals[2], "two", 3);
	assert_int_equal(lens[2], 3);
	free(vals[0]);
	free(vals[2]);
	cache_free(c);
}

/* Many threads share the pool; every value read back is the one written. */
static void *hammer(void *arg)
{
	struct cache *c = arg;
	char key[32], want[32];

	for (int i = 0; i < 300; i++) {
		void *val = NULL;
		size_t len = 0;

		snprintf(key, sizeof(key), "t:h%d", i % 37);
		snprintf(want, sizeof(want), "value %d", i % 37);
		c->ops->put(c, key, strlen(key), want, strlen(want), 60);
		if (c->ops->get(c, key, strlen(key), &val, &len) != 0 || len != strlen(want) ||
		    memcmp(val, want, len) != 0) {
			free(val);
			return (void *)1;
		}
		free(val);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 2000, 2, NULL);
	pthread_t t[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, c), 0);
	for (int i = 0; i < 6; i++) {
		void *bad = NULL;

		pthread_join(t[i], &bad);
		assert_null(bad);
	}
	cache_free(c);
}

static void test_down_and_back(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 1000, 4, NULL);
	struct cache_stats st;
	double t0;
	void *val;
	size_t len;
	int rc = 0;

	(void)state;
	assert_int_equal(c->ops->put(c, "t:d", 3, "v", 1, 60), 0);
	stop_redis();
	/* The pooled connection is stale and the server gone: a bypass. */
	assert_int_equal(get(c, "t:d", &val, &len), RAG_EBUSY);
	c->ops->stats(c, &st);
	assert_int_equal(st.up, 0);
	/* In the back-off, calls fail at once without touching the network. */
	t0 = now_ms();
	for (int i = 0; i < 100; i++)
		assert_int_equal(get(c, "t:d", &val, &len), RAG_EBUSY);
	assert_true(now_ms() - t0 < 50);
	assert_true(c->ops->put(c, "t:d", 3, "v", 1, 60) < 0);

	start_redis(); /* same port, empty */
	t0 = now_ms();
	while (now_ms() - t0 < 3000) {
		rc = get(c, "t:d", &val, &len);
		if (rc != RAG_EBUSY)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(rc, RAG_ENOTFOUND); /* back, and empty */
	assert_int_equal(c->ops->put(c, "t:d", 3, "v2", 2, 60), 0);
	assert_int_equal(get(c, "t:d", &val, &len), 0);
	assert_memory_equal(val, "v2", 2);
	free(val);
	c->ops->stats(c, &st);
	assert_int_equal(st.up, 1);
	cache_free(c);
}

/* A server that stalls (DEBUG SLEEP) costs one timeout, then is bypassed at once. */
static void test_slow_server(void **state)
{
	struct cache *c = cache_redis_new("127.0.0.1", port, 100, 4, NULL);
	char cmd[128];
	double t0;
	void *val;
	size_t len;
	int rc = 0;

	(void)state;
	assert_int_equal(c->ops->put(c, "t:s", 3, "v", 1, 60), 0);
	snprintf(cmd, sizeof(cmd), "redis-cli -p %d DEBUG SLEEP 1.5 >/dev/null 2>&1 &", port);
	assert_int_equal(system(cmd), 0);
	usleep(200 * 1000); /* let the sleep begin */
	t0 = now_ms();
	assert_int_equal(get(c, "t:s", &val, &len), RAG_EBUSY);
	assert_true(now_ms() - t0 < 1000); /* the 100 ms timeout, not the 1.5 s stall */
	t0 = now_ms();
	assert_int_equal(get(c, "t:s", &val, &len), RAG_EBUSY);
	assert_true(now_ms() - t0 < 20); /* backing off */
	t0 = now_ms();
	while (now_ms() - t0 < 5000) {
		rc = get(c, "t:s", &val, &len);
		if (rc == 0)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(rc, 0); /* back by itself once the server answers */
	free(val);
	cache_free(c);
}

/* The front: two levels over this Redis, built from options. */
static void test_two_level_options(void **state)
{
	struct cache_options o;
	struct rag_err err = { 0 };
	struct cache_stats st[CACHE_MAX_STATS];
	struct cache_key_builder kb;
	struct cache_key k;
	char url[64];
	struct cache *c;
	void *val;
	size_t len;

	(void)state;
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	cache_default_options(&o);
	o.backend = CACHE_BACKEND_TWO_LEVEL;
	o.redis_url = url;
	o.timeout_ms = 1000;
	c = cache_new(&o, &err);
	assert_non_null(c);
	assert_int_equal(c->ops->stats(c, st), 2);
	assert_string_equal(st[0].backend, "lru");
	assert_string_equal(st[1].backend, "redis");
	cache_key_begin(&kb, CACHE_ANSWER);
	cache_key_add_str(&kb, "question", "why", 3);
	assert_int_equal(cache_key_end(&kb, &k), 0);
	cache_del(c, &k);
	assert_int_equal(cache_get(c, &k, &val, &len), RAG_ENOTFOUND);
	cache_put(c, &k, "because", 7, 60);
	assert_int_equal(cache_get(c, &k, &val, &len), 0);
	assert_memory_equal(val, "because", 7);
	free(val);
	cache_free(c);
}

/* A cluster client pointed at a plain server: CLUSTER SLOTS fails, lookups bypass. */
static void test_cluster_on_plain_server(void **state)
{
	struct rag_err err = { 0 };
	char seeds[64];
	struct cache *c;
	void *val;
	size_t len;

	(void)state;
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", port);
	c = cache_cluster_new(seeds, 1000, 2, NULL, &err);
	assert_non_null(c);
	assert_int_equal(get(c, "t:c", &val, &len), RAG_EBUSY);
	assert_true(c->ops->put(c, "t:c", 3, "v", 1, 60) < 0);
	cache_free(c);
	assert_null(cache_cluster_new("127.0.0.1:notaport", 1000, 2, NULL, &err));
	assert_int_equal(err.code, RAG_EINVAL);
}

/* --- change notices (cache_pubsub.c) --- */

static atomic_int notices_a, notices_b;

static void count_a(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&notices_a, 1);
}

static void count_b(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&notices_b, 1);
}

/* Waits up to ms for *n to reach want; returns the value seen. */
static int wait_count(atomic_int *n, int want, int ms)
{
	for (int i = 0; i < ms && atomic_load(n) < want; i++)
		usleep(1000);
	return atomic_load(n);
}

static struct cache_pubsub *pubsub(const char *channel, void (*cb)(void *))
{
	char url[64];
	struct cache_pubsub_options o = { .redis_url = url, .channel = channel, .timeout_ms = 200,
					  .on_notice = cb };
	struct rag_err err = { 0 };
	struct cache_pubsub *ps;

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	ps = cache_pubsub_new(&o, &err);
	assert_non_null(ps);
	return ps;
}

static void test_pubsub(void **state)
{
	struct cache_pubsub_options bad = { .redis_url = "127.0.0.1:notaport", .channel = "c",
					    .on_notice = count_a };
	struct rag_err err = { 0 };
	struct cache_pubsub *a, *b, *other;
	int base_a, base_b;

	(void)state;
	assert_null(cache_pubsub_new(&bad, &err));
	assert_int_equal(err.code, RAG_EINVAL);
	assert_string_equal(err.field, "replication.redis_url");

	a = pubsub("ragd:test", count_a);
	b = pubsub("ragd:test", count_b);
	other = pubsub("ragd:elsewhere", count_a);
	/* Each subscriber notices once on (re)connecting: it may have missed some. */
	assert_true(wait_count(&notices_a, 2, 2000) >= 2);
	assert_true(wait_count(&notices_b, 1, 2000) >= 1);
	usleep(50 * 1000);
	base_a = atomic_load(&notices_a);
	base_b = atomic_load(&notices_b);
	cache_pubsub_publish(a);
	assert_int_equal(wait_count(&notices_b, base_b + 1, 2000), base_b + 1);
	assert_int_equal(wait_count(&notices_a, base_a + 1, 2000), base_a + 1); /* own, not other's */
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&notices_a), base_a + 1);

	/* Redis restarts: publishing fails fast meanwhile; the subscriber comes back. */
	stop_redis();
	{
		double t0 = now_ms();

		cache_pubsub_publish(a);
		cache_pubsub_publish(a);
		assert_true(now_ms() - t0 < 1000);
	}
	base_b = atomic_load(&notices_b);
	start_redis();
	assert_true(wait_count(&notices_b, base_b + 1, 10000) >= base_b + 1); /* resubscribed */
	usleep(600 * 1000); /* the publisher's back-off (REDIS_BACKOFF_MS) */
	base_b = atomic_load(&notices_b);
	cache_pubsub_publish(a);
	assert_true(wait_count(&notices_b, base_b + 1, 2000) >= base_b + 1);
	cache_pubsub_free(other);
	cache_pubsub_free(b);
	cache_pubsub_free(a);
	cache_pubsub_free(NULL);
}

/* One command on a link; the reply's type. */
static enum cache_reply_type call(struct cache_link *l, int argc, const char **argv,
				  struct cache_reply *r)
{
	struct redis_cmd cmd = { argc, { 0 }, { 0 } };

	for (int i = 0; i < argc; i++) {
		cmd.argv[i] = argv[i];
		cmd.lens[i] = strlen(argv[i]);
	}
	assert_int_equal(cache_link_call(l, &cmd, 1, r), 0);
	return r->type;
}

static struct cache *redis_cache(const char *url, struct rag_err *err)
{
	struct cache_options o;

	cache_default_options(&o);
	o.backend = CACHE_BACKEND_REDIS;
	o.redis_url = url;
	o.timeout_ms = 1000;
	return cache_new(&o, err);
}

/*
 * A server with a password (requirepass) and an ACL user: URLs carrying
 * them (percent-escaped) work for the cache, a link and pub/sub; a wrong
 * or missing password is a bypass, never an error to the caller; malformed
 * credentials are refused at start without echoing them.
 */
static void test_auth(void **state)
{
	const char *pass = "s3cr:t@x/";
	const char *setpass[] = { "CONFIG", "SET", "requirepass", pass };
	const char *adduser[] = { "ACL", "SETUSER", "app", "on", ">app pass", "~*", "&*", "+@all" };
	const char *ping[] = { "PING" };
	char plain[64], url[128], user_url[128], wrong[128];
	struct cache_pubsub_options po = { .channel = "ragd:auth", .on_notice = count_b };
	struct cache_link *admin, *l;
	struct rag_err err = { 0 };
	struct cache_pubsub *ps;
	struct cache_reply r;
	struct cache *c;
	void *val;
	size_t len;
	int base;

	(void)state;
	snprintf(plain, sizeof(plain), "redis://127.0.0.1:%d", port);
	snprintf(url, sizeof(url), "redis://:s3cr%%3At%%40x%%2F@127.0.0.1:%d", port);
	snprintf(user_url, sizeof(user_url), "redis://app:app%%20pass@127.0.0.1:%d", port);
	snprintf(wrong, sizeof(wrong), "redis://:nope@127.0.0.1:%d", port);
	admin = cache_link_new(plain, 1000, 1, NULL, "f", &err);
	assert_non_null(admin);
	assert_int_equal(call(admin, 8, adduser, &r), CACHE_REPLY_STR);
	assert_int_equal(call(admin, 4, setpass, &r), CACHE_REPLY_STR); /* admin stays logged in */

	/* The cache, with the default user's password and with an ACL user. */
	c = redis_cache(url, &err);
	assert_non_null(c);
	assert_int_equal(c->ops->put(c, "t:auth", 6, "v", 1, 60), 0);
	assert_int_equal(get(c, "t:auth", &val, &len), 0);
	free(val);
	cache_free(c);
	c = redis_cache(user_url, &err);
	assert_non_null(c);
	assert_int_equal(get(c, "t:auth", &val, &len), 0);
	assert_memory_equal(val, "v", 1);
	free(val);
	cache_free(c);

	/* Wrong or no password: the cache is bypassed. */
	c = redis_cache(wrong, &err);
	assert_non_null(c);
	assert_int_equal(get(c, "t:auth", &val, &len), RAG_EBUSY);
	cache_free(c);
	c = redis_cache(plain, &err);
	assert_non_null(c);
	assert_int_equal(get(c, "t:auth", &val, &len), RAG_EBUSY);
	cache_free(c);

	/* A link (the quotas' client). */
	l = cache_link_new(url, 1000, 1, NULL, "auth.quota_redis_url", &err);
	assert_non_null(l);
	assert_int_equal(call(l, 1, ping, &r), CACHE_REPLY_STR);
	assert_string_equal(r.str, "PONG");
	assert_string_equal(cache_link_addr(l), plain + 8); /* no credentials in log lines */
	cache_link_free(l);

	/* Pub/sub: the subscriber and the publisher both authenticate. */
	po.redis_url = url;
	base = atomic_load(&notices_b);
	ps = cache_pubsub_new(&po, &err);
	assert_non_null(ps);
	assert_true(wait_count(&notices_b, base + 1, 5000) >= base + 1); /* subscribed */
	usleep(50 * 1000);
	base = atomic_load(&notices_b);
	cache_pubsub_publish(ps);
	assert_true(wait_count(&notices_b, base + 1, 2000) >= base + 1);
	cache_pubsub_free(ps);

	/* Malformed credentials: refused, naming the field, not echoing them. */
	c = redis_cache("redis://hunter2@127.0.0.1:1", &err);
	assert_null(c);
	assert_int_equal(err.code, RAG_EINVAL);
	assert_string_equal(err.field, "cache.redis.url");
	assert_null(strstr(err.msg, "hunter2"));
	memset(&err, 0, sizeof(err));
	assert_null(redis_cache("redis://:a@h:1,redis://:b@h:2", &err));
	assert_int_equal(err.code, RAG_EINVAL);
	memset(&err, 0, sizeof(err));
	assert_null(cache_link_new("redis://:%zz@h:1", 100, 1, NULL, "auth.quota_redis_url", &err));
	assert_string_equal(err.field, "auth.quota_redis_url");

	setpass[3] = "";
	assert_int_equal(call(admin, 4, setpass, &r), CACHE_REPLY_STR);
	cache_link_free(admin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_mget),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_two_level_options),
		cmocka_unit_test(test_cluster_on_plain_server),
		cmocka_unit_test(test_slow_server),
		cmocka_unit_test(test_down_and_back),
		cmocka_unit_test(test_pubsub),
		cmocka_unit_test(test_auth),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
