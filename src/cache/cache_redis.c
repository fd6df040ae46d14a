/*
 * Redis through hiredis 0.14 (blocking API): a node with a small pool of
 * connections, and the standalone backend on one node.
 *
 * A request takes a connection off the node's idle stack (or connects),
 * writes its commands in one go, reads the replies and puts the connection
 * back; so each worker thread in flight has its own connection, and at most
 * pool_size idle ones are kept. The blocking API with socket timeouts
 * (connect, read and write all bounded by timeout_ms) is enough: a request
 * never waits on Redis longer than the timeout, and async hiredis would
 * need an event loop the HTTP threads do not have.
 *
 * Failure: a refused connection, a timeout or a broken reply marks the
 * node down for REDIS_BACKOFF_MS, during which calls fail at once (the
 * caller goes on without the cache); the first call after that tries
 * again. A reused connection that fails (not by timing out) is first
 * retried once on a fresh one, because after a Redis restart every pooled
 * connection is stale while the server is fine.
 *
 * Values travel as binary-safe bulk strings: SET key value EX ttl.
 *
 * The same node serves other modules through cache_link (cache.h): the
 * quotas keep their counters in Redis with it, so there is one Redis
 * client in the code base. Its replies are reduced to integers and short
 * strings (struct cache_reply) so hiredis stays in this layer.
 */
#include "cache/cache_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"

#include "core/banned.h"

int64_t cache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int redis_node_init(struct redis_node *n, const char *host, int port, int timeout_ms,
		    int pool_size, const char *backend, const struct redis_auth *auth)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->host, sizeof(n->host), "%s", host);
	if (auth)
		n->auth = *auth;
	n->port = port;
	n->timeout_ms = timeout_ms > 0 ? timeout_ms : 100;
	n->pool_size = pool_size > 0 ? pool_size : 1;
	n->backend = backend;
	n->log_name = "cache";
	n->pid = getpid();
	n->idle = calloc((size_t)n->pool_size, sizeof(*n->idle));
	if (!n->idle)
		return RAG_ENOMEM;
	pthread_mutex_init(&n->mu, NULL);
	atomic_init(&n->down_until_ms, 0);
	atomic_init(&n->up, 0);
	return 0;
}

static void drop_idle(struct redis_node *n)
{
	pthread_mutex_lock(&n->mu);
	while (n->n_idle > 0)
		redisFree(n->idle[--n->n_idle]);
	pthread_mutex_unlock(&n->mu);
}

void redis_node_release(struct redis_node *n)
{
	if (!n->idle)
		return;
	drop_idle(n);
	pthread_mutex_destroy(&n->mu);
	free(n->idle);
	n->idle = NULL;
}

int redis_node_down(struct redis_node *n)
{
	return cache_now_ms() < atomic_load(&n->down_until_ms);
}

int redis_auth_send(redisContext *c, const struct redis_auth *a, char *why, size_t why_size)
{
	redisReply *r;
	int rc = 0;

	if (!a || !a->pass[0])
		return 0;
	if (a->user[0])
		r = redisCommand(c, "AUTH %b %b", a->user, strlen(a->user), a->pass,
				 strlen(a->pass));
	else
		r = redisCommand(c, "AUTH %b", a->pass, strlen(a->pass));
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(why, why_size, "AUTH refused: %s",
			 r ? r->str : c->errstr[0] ? c->errstr : "no reply");
		rc = -1;
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

/* A pooled or new connection; NULL with why set. */
static redisContext *take(struct redis_node *n, int *reused, char *why, size_t why_size)
{
	struct timeval tv = { n->timeout_ms / 1000, (n->timeout_ms % 1000) * 1000 };
	redisContext *c = NULL;

	pthread_mutex_lock(&n->mu);
	if (n->pid != getpid()) {
		/* Inherited through fork(): the parent owns those sessions. */
		while (n->n_idle > 0)
			redisFree(n->idle[--n->n_idle]);
		n->pid = getpid();
	}
	if (n->n_idle > 0)
		c = n->idle[--n->n_idle];
	pthread_mutex_unlock(&n->mu);
	*reused = c != NULL;
	if (c)
		return c;
	snprintf(why, why_size, "cannot connect");
	c = redisConnectWithTimeout(n->host, n->port, tv);
	if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK &&
	    redis_auth_send(c, &n->auth, why, why_size) == 0)
		return c;
	if (c)
		log_debug("redis %s:%d: %s", n->host, n->port, c->err ? c->errstr : why);
	redisFree(c);
	return NULL;
}

static void give(struct redis_node *n, redisContext *c)
{
	pthread_mutex_lock(&n->mu);
	if (n->n_idle < (size_t)n->pool_size) {
		n->idle[n->n_idle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&n->mu);
	redisFree(c);
}

static void mark_down(struct redis_node *n, const char *why)
{
	atomic_store(&n->down_until_ms, cache_now_ms() + REDIS_BACKOFF_MS);
	if (n->backend)
		cache_count_error(n->backend);
	if (atomic_exchange(&n->up, 0) && n->log_name)
		log_warn("%s: redis %s:%d unavailable (%s); requests go on without it",
			 n->log_name, n->host, n->port, why);
	drop_idle(n);
}

static void mark_up(struct redis_node *n)
{
	if (!atomic_exchange(&n->up, 1) && n->log_name)
		log_info("%s: redis %s:%d answering", n->log_name, n->host, n->port);
}

/*
 * One attempt on one connection; 0, or -1 with c broken (caller frees it)
 * and *timed_out set when the server was too slow rather than gone.
 */
static int exchange(redisContext *c, const struct redis_cmd *cmds, size_t n_cmds,
		    struct redisReply **replies, int *timed_out)
{
	size_t got = 0;

	*timed_out = 0;
	for (size_t i = 0; i < n_cmds; i++)
		if (redisAppendCommandArgv(c, cmds[i].argc, (const char **)cmds[i].argv,
					   cmds[i].lens) != REDIS_OK) /* hiredis 0.14 lacks a const */
			return -1;
	for (; got < n_cmds; got++) {
		void *r = NULL;

		if (redisGetReply(c, &r) != REDIS_OK || !r) {
			*timed_out = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		replies[got] = r;
	}
	if (got == n_cmds)
		return 0;
	for (size_t i = 0; i < got; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
	return -1;
}

int redis_node_pipeline(struct redis_node *n, const struct redis_cmd *cmds, size_t n_cmds,
			struct redisReply **replies)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int reused = 0, timed_out = 0;
		char why[160];
		redisContext *c;

		if (redis_node_down(n))
			return RAG_EBUSY;
		c = take(n, &reused, why, sizeof(why));
		if (!c) {
			mark_down(n, why);
			return RAG_EBUSY;
		}
		if (exchange(c, cmds, n_cmds, replies, &timed_out) == 0) {
			give(n, c);
			mark_up(n);
			return 0;
		}
		if (!reused || timed_out) {
			mark_down(n, timed_out ? "timeout" : c->errstr[0] ? c->errstr : "no reply");
			redisFree(c);
			return RAG_EBUSY;
		}
		redisFree(c); /* stale pooled connection: one more try on a fresh one */
	}
	return RAG_EBUSY;
}

void redis_node_ping(struct redis_node *n)
{
	struct redis_cmd cmd = { 1, { "PING" }, { 4 } };
	struct redisReply *reply = NULL;

	if (redis_node_pipeline(n, &cmd, 1, &reply) == 0)
		freeReplyObject(reply);
}

void redis_cmd_get(struct redis_cmd *c, const char *key, size_t key_len)
{
	*c = (struct redis_cmd){ 2, { "GET", key }, { 3, key_len } };
}

void redis_cmd_set(struct redis_cmd *c, const char *key, size_t key_len, const void *val,
		   size_t val_len, char ttl_buf[24], int ttl_s)
{
	size_t n = (size_t)snprintf(ttl_buf, 24, "%d", ttl_s);

	*c = (struct redis_cmd){ 5, { "SET", key, val, "EX", ttl_buf },
				 { 3, key_len, val_len, 2, n } };
}

void redis_cmd_del(struct redis_cmd *c, const char *key, size_t key_len)
{
	*c = (struct redis_cmd){ 2, { "DEL", key }, { 3, key_len } };
}

int redis_reply_value(struct redisReply *r, void **val, size_t *val_len)
{
	if (r->type == REDIS_REPLY_NIL)
		return RAG_ENOTFOUND;
	if (r->type != REDIS_REPLY_STRING)
		return RAG_EBUSY;
	*val = malloc(r->len ? r->len : 1);
	if (!*val)
		return RAG_ENOMEM;
	memcpy(*val, r->str, r->len);
	*val_len = r->len;
	return 0;
}

/* --- the standalone backend --- */

struct redis_cache {
	struct cache base;
	struct redis_node node;
};

static int r_get(struct cache *c, const char *key, size_t key_len, void **val, size_t *val_len)
{
	struct redis_cache *rc = (struct redis_cache *)c;
	struct redis_cmd cmd;
	struct redisReply *reply = NULL;
	int rv;

	redis_cmd_get(&cmd, key, key_len);
	rv = redis_node_pipeline(&rc->node, &cmd, 1, &reply);
	if (rv < 0)
		return rv;
	rv = redis_reply_value(reply, val, val_len);
	if (rv == RAG_EBUSY)
		cache_count_error("redis");
	freeReplyObject(reply);
	return rv;
}

/* Every GET in one round trip: on a search miss, the embedding's lookup rides along. */
static void r_mget(struct cache *c, const char *const *keys, const size_t *key_lens, size_t n,
		   void **vals, size_t *val_lens, int *rcs)
{
	struct redis_cache *rc = (struct redis_cache *)c;
	struct redis_cmd cmds[CACHE_MGET_MAX] = { 0 };
	struct redisReply *replies[CACHE_MGET_MAX] = { 0 };
	int rv;

	for (size_t i = 0; i < n; i++)
		redis_cmd_get(&cmds[i], keys[i], key_lens[i]);
	rv = redis_node_pipeline(&rc->node, cmds, n, replies);
	for (size_t i = 0; i < n; i++) {
		rcs[i] = rv < 0 ? rv : redis_reply_value(replies[i], &vals[i], &val_lens[i]);
		if (replies[i])
			freeReplyObject(replies[i]);
	}
}

static int r_put(struct cache *c, const char *key, size_t key_len, const void *val,
		 size_t val_len, int ttl_s)
{
	struct redis_cache *rc = (struct redis_cache *)c;
	struct redis_cmd cmd;
	struct redisReply *reply = NULL;
	char ttl[24];
	int rv;

	redis_cmd_set(&cmd, key, key_len, val, val_len, ttl, ttl_s);
	rv = redis_node_pipeline(&rc->node, &cmd, 1, &reply);
	if (rv < 0)
		return rv;
	if (reply->type == REDIS_REPLY_ERROR) {
		log_debug("cache: redis SET: %s", reply->str);
		cache_count_error("redis");
		rv = RAG_EIO;
	}
	freeReplyObject(reply);
	return rv;
}

static int r_del(struct cache *c, const char *key, size_t key_len)
{
	struct redis_cache *rc = (struct redis_cache *)c;
	struct redis_cmd cmd;
	struct redisReply *reply = NULL;
	int rv;

	redis_cmd_del(&cmd, key, key_len);
	rv = redis_node_pipeline(&rc->node, &cmd, 1, &reply);
	if (rv == 0)
		freeReplyObject(reply);
	return rv;
}

static size_t r_stats(struct cache *c, struct cache_stats *out)
{
	struct redis_cache *rc = (struct redis_cache *)c;

	memset(out, 0, sizeof(*out));
	out->backend = "redis";
	out->up = atomic_load(&rc->node.up);
	return 1;
}

static void r_free(struct cache *c)
{
	struct redis_cache *rc = (struct redis_cache *)c;

	redis_node_release(&rc->node);
	free(rc);
}

static const struct cache_ops redis_ops = { "redis", r_get, r_mget, r_put, r_del, r_stats, r_free };

struct cache *cache_redis_new(const char *host, int port, int timeout_ms, int pool_size,
			      const struct redis_auth *auth)
{
	struct redis_cache *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->base.ops = &redis_ops;
	if (redis_node_init(&rc->node, host, port, timeout_ms, pool_size, "redis", auth) < 0) {
		free(rc);
		return NULL;
	}
	/* Log the state at start, once, rather than on the first request. */
	atomic_store(&rc->node.up, 1);
	redis_node_ping(&rc->node);
	return &rc->base;
}

/* --- a link for other modules --- */

struct cache_link {
	struct redis_node node;
	char addr[CACHE_HOST_MAX + 8];
};

struct cache_link *cache_link_new(const char *url, int timeout_ms, int pool_size,
				  const char *log_name, const char *field, struct rag_err *err)
{
	struct cache_link *l;
	struct redis_auth auth;
	char host[CACHE_HOST_MAX];
	int port;

	if (cache_parse_addr(url, strlen(url), host, sizeof(host), &port) < 0) {
		rag_err_set(err, RAG_EINVAL, field, "%s: '%s' is not host:port", field,
			    url + cache_url_userinfo_end(url, strlen(url)));
		return NULL;
	}
	if (cache_parse_auth(url, &auth, field, err) < 0)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l || redis_node_init(&l->node, host, port, timeout_ms, pool_size, NULL, &auth) < 0) {
		free(l);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	l->node.log_name = log_name;
	snprintf(l->addr, sizeof(l->addr), "%s:%d", host, port);
	return l;
}

/* Digits only (with a sign): what Lua's numbers and INCRBY's counters look like. */
static int parse_int(const char *s, size_t len, int64_t *out)
{
	char buf[24], *end;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return *end || errno ? -1 : 0;
}

static void reduce(const redisReply *r, struct cache_reply *out)
{
	memset(out, 0, sizeof(*out));
	switch (r->type) {
	case REDIS_REPLY_INTEGER:
		out->type = CACHE_REPLY_INT;
		out->ints[0] = r->integer;
		out->n_ints = 1;
		break;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		out->type = CACHE_REPLY_STR;
		snprintf(out->str, sizeof(out->str), "%.*s", (int)r->len, r->str);
		if (parse_int(r->str, r->len, &out->ints[0]) == 0)
			out->n_ints = 1;
		break;
	case REDIS_REPLY_ERROR:
		out->type = CACHE_REPLY_ERROR;
		snprintf(out->str, sizeof(out->str), "%.*s", (int)r->len, r->str);
		break;
	case REDIS_REPLY_ARRAY:
		out->type = CACHE_REPLY_ARRAY;
		for (size_t i = 0; i < r->elements && i < CACHE_REPLY_INTS; i++) {
			const redisReply *e = r->element[i];

			if (e->type == REDIS_REPLY_INTEGER)
				out->ints[i] = e->integer;
			else if (e->type == REDIS_REPLY_STRING && parse_int(e->str, e->len,
									  &out->ints[i]) < 0)
				out->ints[i] = 0;
			out->n_ints = i + 1;
		}
		break;
	default:
		out->type = CACHE_REPLY_NIL;
	}
}

int cache_link_call(struct cache_link *l, const struct redis_cmd *cmds, size_t n_cmds,
		    struct cache_reply *replies)
{
	struct redisReply *one[4] = { 0 }, **raw = n_cmds <= 4 ? one : calloc(n_cmds, sizeof(*raw));
	int rc;

	if (!raw)
		return RAG_ENOMEM;
	rc = redis_node_pipeline(&l->node, cmds, n_cmds, raw);
	for (size_t i = 0; rc == 0 && i < n_cmds; i++) {
		reduce(raw[i], &replies[i]);
		freeReplyObject(raw[i]);
	}
	if (raw != one)
		free(raw);
	return rc;
}

const char *cache_link_addr(const struct cache_link *l)
{
	return l->addr;
}

void cache_link_free(struct cache_link *l)
{
	if (!l)
		return;
	redis_node_release(&l->node);
	free(l);
}
