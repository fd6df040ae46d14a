/*
 * Change notices over Redis pub/sub: the low-latency nudge for change-log
 * followers (rag_engine.c polls the log with back-off; a notice makes it
 * look at once).
 *
 * Publishing goes through a redis_node (cache_int.h): a pooled connection,
 * PUBLISH with the node's timeout, and its back-off when Redis is down, so
 * a write never waits on a dead Redis for more than one timeout per
 * REDIS_BACKOFF_MS.
 *
 * Subscribing needs a connection of its own that blocks on reads: a thread
 * connects, sends SUBSCRIBE, then polls the socket every
 * CACHE_PUBSUB_POLL_MS (so that free() can stop it without closing the
 * socket under it) and hands every message to on_notice. hiredis' blocking
 * redisGetReply with a read timeout was rejected: a timeout leaves the
 * context in an error state, so each idle period would cost a reconnection.
 * After every (re)connection on_notice runs once, because notices published
 * while the subscriber was away are gone (pub/sub keeps nothing).
 *
 * The payload is the publisher's pid, for logs; receivers ignore it.
 */
#include "cache/cache_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"

#include "core/banned.h"

#define PUBSUB_BACKOFF_MIN_MS 100  /* first retry after a lost subscription */
#define PUBSUB_BACKOFF_MAX_MS 5000 /* a long Redis outage costs one try per 5 s */

/*
 * Locking: node has its own lock; stop is atomic; the rest is immutable
 * once the thread runs.
 */
struct cache_pubsub {
	struct redis_node node; /* publishing */
	char host[CACHE_HOST_MAX];
	int port;
	int timeout_ms;
	char *channel;
	void (*on_notice)(void *ctx);
	void *ctx;
	pthread_t thread;
	int has_thread;
	atomic_int stop;
};

/* Sleeps ms in CACHE_PUBSUB_POLL_MS steps; returns 1 when asked to stop. */
static int nap(struct cache_pubsub *ps, int ms)
{
	while (ms > 0 && !atomic_load(&ps->stop)) {
		int step = ms < CACHE_PUBSUB_POLL_MS ? ms : CACHE_PUBSUB_POLL_MS;

		usleep((useconds_t)step * 1000);
		ms -= step;
	}
	return atomic_load(&ps->stop);
}

static int is_message(const redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	       r->element[0]->type == REDIS_REPLY_STRING &&
	       strcmp(r->element[0]->str, "message") == 0;
}

/* Hands every complete reply in the reader to on_notice; -1 on a protocol error. */
static int drain(struct cache_pubsub *ps, redisContext *c)
{
	void *reply = NULL;

	for (;;) {
		if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
			return -1;
		if (!reply)
			return 0;
		if (is_message(reply))
			ps->on_notice(ps->ctx);
		freeReplyObject(reply);
	}
}

/* One subscription: returns when the connection breaks or stop is set. */
static void listen_on(struct cache_pubsub *ps, redisContext *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	ps->on_notice(ps->ctx);
	if (drain(ps, c) < 0)
		return;
	while (!atomic_load(&ps->stop)) {
		int r = poll(&pfd, 1, CACHE_PUBSUB_POLL_MS);

		if (r < 0 && errno != EINTR)
			return;
		if (r <= 0)
			continue;
		if (redisBufferRead(c) != REDIS_OK || drain(ps, c) < 0)
			return;
	}
}

/* A subscribed connection; NULL with why (why_size bytes) set. */
static redisContext *subscribe(struct cache_pubsub *ps, char *why, size_t why_size)
{
	struct timeval tv = { ps->timeout_ms / 1000, (ps->timeout_ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(ps->host, ps->port, tv);
	redisReply *r;

	snprintf(why, why_size, "cannot connect");
	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	if (redis_auth_send(c, &ps->node.auth, why, why_size) < 0) {
		redisFree(c);
		return NULL;
	}
	r = redisCommand(c, "SUBSCRIBE %b", ps->channel, strlen(ps->channel));
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		snprintf(why, why_size, "SUBSCRIBE refused: %s",
			 r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
		if (r)
			freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static void *sub_main(void *arg)
{
	struct cache_pubsub *ps = arg;
	int backoff = PUBSUB_BACKOFF_MIN_MS;
	int warned = 0;

	while (!atomic_load(&ps->stop)) {
		char why[160];
		redisContext *c = subscribe(ps, why, sizeof(why));

		if (!c) {
			if (!warned++)
				log_warn("replication: cannot subscribe to redis %s:%d (%s); "
					 "followers poll without nudges until it answers",
					 ps->host, ps->port, why);
			if (nap(ps, backoff))
				break;
			backoff = backoff * 2 > PUBSUB_BACKOFF_MAX_MS ? PUBSUB_BACKOFF_MAX_MS
								      : backoff * 2;
			continue;
		}
		if (warned)
			log_info("replication: subscribed to redis %s:%d", ps->host, ps->port);
		warned = 0;
		backoff = PUBSUB_BACKOFF_MIN_MS;
		listen_on(ps, c);
		redisFree(c);
	}
	return NULL;
}

struct cache_pubsub *cache_pubsub_new(const struct cache_pubsub_options *o, struct rag_err *err)
{
	struct cache_pubsub *ps = calloc(1, sizeof(*ps));
	const char *url = o->redis_url;
	struct redis_auth auth;

	if (!ps) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	atomic_init(&ps->stop, 0);
	if (cache_parse_addr(url, strlen(url), ps->host, sizeof(ps->host), &ps->port) < 0) {
		rag_err_set(err, RAG_EINVAL, "replication.redis_url",
			    "'%s' is not a Redis address (host:port or redis://host:port)",
			    url + cache_url_userinfo_end(url, strlen(url)));
		free(ps);
		return NULL;
	}
	if (cache_parse_auth(url, &auth, "replication.redis_url", err) < 0) {
		free(ps);
		return NULL;
	}
	ps->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 100;
	ps->channel = strdup(o->channel);
	ps->on_notice = o->on_notice;
	ps->ctx = o->ctx;
	if (!ps->channel ||
	    redis_node_init(&ps->node, ps->host, ps->port, ps->timeout_ms, 2, "pubsub",
			    &auth) < 0) {
		free(ps->channel);
		free(ps);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	if (pthread_create(&ps->thread, NULL, sub_main, ps) != 0) {
		cache_pubsub_free(ps);
		rag_err_set(err, RAG_EINTERNAL, NULL, "cannot start the subscriber thread");
		return NULL;
	}
	ps->has_thread = 1;
	return ps;
}

void cache_pubsub_publish(struct cache_pubsub *ps)
{
	struct redis_cmd cmd = { .argc = 3 };
	struct redisReply *reply = NULL;
	char pid[24];

	if (!ps)
		return;
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	cmd.argv[0] = "PUBLISH";
	cmd.lens[0] = 7;
	cmd.argv[1] = ps->channel;
	cmd.lens[1] = strlen(ps->channel);
	cmd.argv[2] = pid;
	cmd.lens[2] = strlen(pid);
	if (redis_node_pipeline(&ps->node, &cmd, 1, &reply) == 0)
		freeReplyObject(reply);
}

void cache_pubsub_free(struct cache_pubsub *ps)
{
	if (!ps)
		return;
	atomic_store(&ps->stop, 1);
	if (ps->has_thread)
		pthread_join(ps->thread, NULL);
	redis_node_release(&ps->node);
	free(ps->channel);
	free(ps);
}
