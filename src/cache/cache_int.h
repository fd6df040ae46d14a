/*
 * Internals shared by the cache's files: address parsing, and a Redis node
 * (one server address with a pool of hiredis connections) that the
 * standalone backend uses once and the cluster backend once per node.
 * Not for other layers.
 */
#ifndef RAGD_CACHE_CACHE_INT_H
#define RAGD_CACHE_CACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache/cache.h"

struct redisContext;
struct redisReply;

#define CACHE_HOST_MAX 256 /* a DNS name's length */
#define CACHE_MGET_MAX CACHE_GET_MANY_MAX

/*
 * Parses "host:port" or "redis://[user:password@]host:port" (len bytes;
 * port 6379 when absent; credentials skipped) into host (NUL-terminated)
 * and *port. 0 or RAG_EINVAL. (cache_url.c)
 */
int cache_parse_addr(const char *s, size_t len, char *host, size_t host_size, int *port);

/* Where the host starts in s[0..len): after "redis://" and any "user:pass@". */
size_t cache_url_userinfo_end(const char *s, size_t len);

/*
 * The credentials of a URL or comma-separated list into *out (zeroed when
 * it has none). RAG_EINVAL naming field when they are not
 * [user]:password, or when two addresses of a list carry different ones.
 */
int cache_parse_auth(const char *url, struct redis_auth *out, const char *field,
		     struct rag_err *err);

/*
 * Sends AUTH on a fresh connection when a has a password. 0, or -1 with
 * why (why_size bytes) saying what the server answered.
 */
int redis_auth_send(struct redisContext *c, const struct redis_auth *a, char *why,
		    size_t why_size);

/*
 * One Redis server. Connections are taken from the idle stack (or made)
 * for one pipeline and put back; at most pool_size stay idle. After a
 * failure to connect or talk, the node is "down" for REDIS_BACKOFF_MS:
 * calls fail at once instead of each paying a timeout, then one call tries
 * again. The first failure and the recovery are logged once each.
 *
 * Connections belong to the process that made them: a node used in a
 * child after fork() drops the idle ones it inherited (closing its copies
 * of their sockets) instead of talking over them, so a parent and its
 * workers never share a hiredis context.
 *
 * Locking: `mu` guards idle/n_idle and pid; down_until_ms and up are
 * atomics; host, port, auth, the timeouts and the labels are immutable after
 * init.
 */
struct redis_node {
	char host[CACHE_HOST_MAX];
	int port;
	int timeout_ms;
	int pool_size;
	pthread_mutex_t mu;
	struct redisContext **idle;
	size_t n_idle;
	_Atomic int64_t down_until_ms;
	atomic_int up;          /* 1 after a command answered, 0 after a failure */
	pid_t pid;              /* the process the idle connections were made in */
	const char *backend;    /* the cache errors' label; NULL: not counted there */
	const char *log_name;   /* log lines' prefix ("cache"); NULL: the node logs nothing */
	struct redis_auth auth; /* sent on each new connection; pass "" = none */
};

#define REDIS_BACKOFF_MS 500 /* a dead server costs one try per half second */

/* 0, or RAG_ENOMEM. */
int redis_node_init(struct redis_node *n, const char *host, int port, int timeout_ms,
		    int pool_size, const char *backend, const struct redis_auth *auth);
void redis_node_release(struct redis_node *n);

/* 1 while the node is in its back-off after a failure. */
int redis_node_down(struct redis_node *n);

/*
 * Sends n commands in one write and reads their n replies (pipelining).
 * 0: replies[i] set (caller frees each with freeReplyObject; an error reply
 * is a reply, not a failure). RAG_EBUSY: the node is down or the exchange
 * failed (no replies kept; the node is marked down, unless a reused
 * connection had simply gone stale, in which case a fresh one is tried
 * first).
 */
int redis_node_pipeline(struct redis_node *n, const struct redis_cmd *cmds, size_t n_cmds,
			struct redisReply **replies);

/* PING, for the log line at start: logs the node unavailable if it is. */
void redis_node_ping(struct redis_node *n);

/* Builds GET key / SET key val EX ttl / DEL key (argv borrows key and val). */
void redis_cmd_get(struct redis_cmd *c, const char *key, size_t key_len);
void redis_cmd_set(struct redis_cmd *c, const char *key, size_t key_len, const void *val,
		   size_t val_len, char ttl_buf[24], int ttl_s);
void redis_cmd_del(struct redis_cmd *c, const char *key, size_t key_len);

/* A GET reply as cache_get answers it: 0 with a copy, RAG_ENOTFOUND, or RAG_EBUSY. */
int redis_reply_value(struct redisReply *r, void **val, size_t *val_len);

int64_t cache_now_ms(void);

#endif
