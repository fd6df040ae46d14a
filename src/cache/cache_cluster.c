/*
 * Redis Cluster, on hiredis 0.14 (which has no cluster support): slot
 * routing, redirections and topology refresh, kept small.
 *
 * Routing: a key's slot is CRC16(key) mod 16384 (cache_key_slot, hash tags
 * honoured); slots[] maps each slot to the node serving it, learned from
 * CLUSTER SLOTS. Each node is a redis_node (cache_redis.c) with its own
 * connection pool and back-off.
 *
 * Redirections, as the cluster spec asks of a client:
 *   MOVED slot host:port  the slot lives elsewhere now: remember it for
 *                         that slot, refresh the whole table (rate-limited),
 *                         and retry there;
 *   ASK slot host:port    the slot is migrating: retry there once, preceded
 *                         by ASKING in the same pipeline, without remembering.
 * At most CLUSTER_MAX_REDIRECTS hops per command.
 *
 * Failover: a dead master makes its node fail (connection refused or
 * timeout: the node backs off); the failed command triggers a refresh from
 * any other known node (masters and replicas are all remembered), and is
 * retried once if the slot now has another owner. Until the replica is
 * promoted the refresh keeps naming the dead master, so lookups on its
 * slots are bypassed (the request goes on without the cache); once it is
 * promoted the next refresh routes there and the cache works again. Errors
 * like CLUSTERDOWN or TRYAGAIN are bypasses too.
 *
 * Refresh is synchronous on the thread that needs it but at most once per
 * CLUSTER_REFRESH_MIN_MS, and only one thread at a time (others go on with
 * the table they have).
 *
 * Locking: `lock` (rwlock) guards slots[] and n_nodes; nodes[i] is written
 * once, before n_nodes covers it, and never freed before the cache, so a
 * node pointer read under the lock stays valid after it. refresh_mu
 * serialises refreshes.
 */
#include "cache/cache_int.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"

#include "core/banned.h"

#define CLUSTER_SLOTS 16384
#define CLUSTER_MAX_NODES 128     /* masters and replicas remembered; more are ignored */
#define CLUSTER_MAX_REDIRECTS 5   /* MOVED/ASK hops before giving up on one command */
#define CLUSTER_REFRESH_MIN_MS 100 /* a failover storm refreshes ten times a second at most */
#define NO_NODE 0xFFFF

struct cluster {
	struct cache base;
	int timeout_ms, pool_size;
	struct redis_auth auth; /* every node's, the seeds' and those CLUSTER SLOTS names */
	pthread_rwlock_t lock;
	uint16_t slots[CLUSTER_SLOTS];
	struct redis_node *nodes[CLUSTER_MAX_NODES];
	size_t n_nodes;
	pthread_mutex_t refresh_mu;
	_Atomic int64_t last_refresh_ms;
	atomic_int up; /* the last command got an answer */
};

/* The node's index, adding it when new; -1 when the table is full or out of memory. */
static int node_index(struct cluster *cl, const char *host, int port)
{
	struct redis_node *n;
	int idx = -1;

	pthread_rwlock_rdlock(&cl->lock);
	for (size_t i = 0; i < cl->n_nodes && idx < 0; i++)
		if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
			idx = (int)i;
	pthread_rwlock_unlock(&cl->lock);
	if (idx >= 0)
		return idx;
	n = malloc(sizeof(*n));
	if (!n || redis_node_init(n, host, port, cl->timeout_ms, cl->pool_size,
				  "redis-cluster", &cl->auth) < 0) {
		free(n);
		return -1;
	}
	pthread_rwlock_wrlock(&cl->lock);
	for (size_t i = 0; i < cl->n_nodes && idx < 0; i++)
		if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
			idx = (int)i;
	if (idx < 0 && cl->n_nodes < CLUSTER_MAX_NODES) {
		cl->nodes[cl->n_nodes] = n;
		idx = (int)cl->n_nodes++;
		n = NULL;
	}
	pthread_rwlock_unlock(&cl->lock);
	if (n) {
		redis_node_release(n);
		free(n);
	}
	return idx;
}

static struct redis_node *node_for_slot(struct cluster *cl, unsigned slot)
{
	struct redis_node *n = NULL;

	pthread_rwlock_rdlock(&cl->lock);
	if (cl->slots[slot] != NO_NODE)
		n = cl->nodes[cl->slots[slot]];
	pthread_rwlock_unlock(&cl->lock);
	return n;
}

/* An address element of CLUSTER SLOTS: [host, port, id, ...]; "" host = the asked node's. */
static int addr_index(struct cluster *cl, const redisReply *a, const struct redis_node *asked)
{
	char host[CACHE_HOST_MAX];

	if (a->type != REDIS_REPLY_ARRAY || a->elements < 2 ||
	    a->element[0]->type != REDIS_REPLY_STRING ||
	    a->element[1]->type != REDIS_REPLY_INTEGER)
		return -1;
	if (a->element[0]->len == 0 || a->element[0]->len >= sizeof(host))
		snprintf(host, sizeof(host), "%s", asked->host);
	else
		snprintf(host, sizeof(host), "%.*s", (int)a->element[0]->len, a->element[0]->str);
	return node_index(cl, host, (int)a->element[1]->integer);
}

/* Builds a slot table from one CLUSTER SLOTS reply; 0 or -1 for a malformed one. */
static int parse_slots(struct cluster *cl, const redisReply *r, const struct redis_node *asked,
		       uint16_t *table)
{
	size_t covered = 0;

	if (r->type != REDIS_REPLY_ARRAY)
		return -1;
	for (size_t i = 0; i < CLUSTER_SLOTS; i++)
		table[i] = NO_NODE;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		long long lo, hi;
		int master;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			return -1;
		lo = e->element[0]->integer;
		hi = e->element[1]->integer;
		if (lo < 0 || hi >= CLUSTER_SLOTS || lo > hi)
			return -1;
		master = addr_index(cl, e->element[2], asked);
		for (size_t j = 3; j < e->elements; j++)
			addr_index(cl, e->element[j], asked); /* replicas: refresh sources later */
		if (master < 0)
			continue;
		for (long long s = lo; s <= hi; s++)
			table[s] = (uint16_t)master;
		covered += (size_t)(hi - lo + 1);
	}
	return covered > 0 ? 0 : -1;
}

/* Re-reads the slot table from the first node that answers; rate-limited unless forced. */
static void refresh(struct cluster *cl, int force)
{
	static const struct redis_cmd cmd = { 2, { "CLUSTER", "SLOTS" }, { 7, 5 } };
	int64_t now = cache_now_ms();
	uint16_t *table;
	size_t n;

	if (!force && now - atomic_load(&cl->last_refresh_ms) < CLUSTER_REFRESH_MIN_MS)
		return;
	if (pthread_mutex_trylock(&cl->refresh_mu) != 0)
		return;
	atomic_store(&cl->last_refresh_ms, now);
	table = malloc(sizeof(cl->slots));
	pthread_rwlock_rdlock(&cl->lock);
	n = cl->n_nodes;
	pthread_rwlock_unlock(&cl->lock);
	for (size_t i = 0; table && i < n; i++) {
		struct redis_node *node = cl->nodes[i];
		struct redisReply *r = NULL;

		if (redis_node_down(node) || redis_node_pipeline(node, &cmd, 1, &r) < 0)
			continue;
		if (parse_slots(cl, r, node, table) == 0) {
			pthread_rwlock_wrlock(&cl->lock);
			memcpy(cl->slots, table, sizeof(cl->slots));
			pthread_rwlock_unlock(&cl->lock);
			freeReplyObject(r);
			break;
		}
		freeReplyObject(r);
	}
	free(table);
	pthread_mutex_unlock(&cl->refresh_mu);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the target node's index, or -1. */
static int redirect_target(struct cluster *cl, const redisReply *r, int *ask)
{
	const char *p;
	char host[CACHE_HOST_MAX];
	int port;

	*ask = strncmp(r->str, "ASK ", 4) == 0;
	if (!*ask && strncmp(r->str, "MOVED ", 6) != 0)
		return -1;
	p = memrchr(r->str, ' ', r->len);
	if (!p || cache_parse_addr(p + 1, r->len - (size_t)(p + 1 - r->str), host, sizeof(host),
				   &port) < 0)
		return -1;
	return node_index(cl, host, port);
}

/*
 * Runs one command on the key's node, following redirections. 0 with *out
 * (caller frees), or RAG_EBUSY when the cluster cannot answer for the key.
 */
static int run(struct cluster *cl, const char *key, size_t key_len, const struct redis_cmd *cmd,
	       redisReply **out)
{
	static const struct redis_cmd asking_cmd = { 1, { "ASKING" }, { 6 } };
	unsigned slot = cache_key_slot(key, key_len);
	struct redis_node *node = node_for_slot(cl, slot);
	int asking = 0;

	for (int hop = 0; hop <= CLUSTER_MAX_REDIRECTS; hop++) {
		struct redis_cmd cmds[2];
		redisReply *replies[2] = { NULL, NULL };
		size_t n = 0;
		int target, ask;
		redisReply *r;

		if (!node) {
			refresh(cl, 0);
			node = node_for_slot(cl, slot);
			if (!node)
				break;
		}
		if (asking)
			cmds[n++] = asking_cmd;
		cmds[n++] = *cmd;
		if (redis_node_pipeline(node, cmds, n, replies) < 0) {
			struct redis_node *again;

			refresh(cl, 0);
			again = node_for_slot(cl, slot);
			if (!again || again == node)
				break;
			node = again;
			asking = 0;
			continue;
		}
		if (asking)
			freeReplyObject(replies[0]);
		r = replies[n - 1];
		if (r->type != REDIS_REPLY_ERROR) {
			atomic_store(&cl->up, 1);
			*out = r;
			return 0;
		}
		target = redirect_target(cl, r, &ask);
		if (target < 0) {
			/* CLUSTERDOWN, TRYAGAIN, LOADING...: this time, no cache. */
			log_debug("cache: redis cluster: %s", r->str);
			freeReplyObject(r);
			break;
		}
		freeReplyObject(r);
		if (!ask) {
			pthread_rwlock_wrlock(&cl->lock);
			cl->slots[slot] = (uint16_t)target;
			pthread_rwlock_unlock(&cl->lock);
			refresh(cl, 0);
		}
		pthread_rwlock_rdlock(&cl->lock);
		node = cl->nodes[target];
		pthread_rwlock_unlock(&cl->lock);
		asking = ask;
	}
	atomic_store(&cl->up, 0);
	cache_count_error("redis-cluster");
	return RAG_EBUSY;
}

static int c_get(struct cache *c, const char *key, size_t key_len, void **val, size_t *val_len)
{
	struct redis_cmd cmd;
	redisReply *r = NULL;
	int rc;

	redis_cmd_get(&cmd, key, key_len);
	rc = run((struct cluster *)c, key, key_len, &cmd, &r);
	if (rc < 0)
		return rc;
	rc = redis_reply_value(r, val, val_len);
	freeReplyObject(r);
	return rc;
}

static int c_put(struct cache *c, const char *key, size_t key_len, const void *val,
		 size_t val_len, int ttl_s)
{
	struct redis_cmd cmd;
	redisReply *r = NULL;
	char ttl[24];
	int rc;

	redis_cmd_set(&cmd, key, key_len, val, val_len, ttl, ttl_s);
	rc = run((struct cluster *)c, key, key_len, &cmd, &r);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

static int c_del(struct cache *c, const char *key, size_t key_len)
{
	struct redis_cmd cmd;
	redisReply *r = NULL;
	int rc;

	redis_cmd_del(&cmd, key, key_len);
	rc = run((struct cluster *)c, key, key_len, &cmd, &r);
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

static size_t c_stats(struct cache *c, struct cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->backend = "redis-cluster";
	out->up = atomic_load(&((struct cluster *)c)->up);
	return 1;
}

static void c_free(struct cache *c)
{
	struct cluster *cl = (struct cluster *)c;

	for (size_t i = 0; i < cl->n_nodes; i++) {
		redis_node_release(cl->nodes[i]);
		free(cl->nodes[i]);
	}
	pthread_rwlock_destroy(&cl->lock);
	pthread_mutex_destroy(&cl->refresh_mu);
	free(cl);
}

/* mget loops: keys of one request hash to different slots, usually different nodes. */
static const struct cache_ops cluster_ops = { "redis-cluster", c_get,  NULL, c_put,
					      c_del,           c_stats, c_free };

struct cache *cache_cluster_new(const char *seeds, int timeout_ms, int pool_size,
				const struct redis_auth *auth, struct rag_err *err)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	const char *p = seeds;

	if (!cl) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	cl->base.ops = &cluster_ops;
	cl->timeout_ms = timeout_ms;
	cl->pool_size = pool_size;
	if (auth)
		cl->auth = *auth;
	pthread_rwlock_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->refresh_mu, NULL);
	for (size_t i = 0; i < CLUSTER_SLOTS; i++)
		cl->slots[i] = NO_NODE;
	while (*p) {
		size_t len = strcspn(p, ",");
		char host[CACHE_HOST_MAX];
		int port;

		if (cache_parse_addr(p, len, host, sizeof(host), &port) < 0 ||
		    node_index(cl, host, port) < 0) {
			rag_err_set(err, RAG_EINVAL, "cache.redis.url",
				    "cache.redis.url: bad cluster node '%.*s'", (int)len, p);
			c_free(&cl->base);
			return NULL;
		}
		p += len + (p[len] == ',');
	}
	refresh(cl, 1);
	if (!node_for_slot(cl, 0) && !node_for_slot(cl, CLUSTER_SLOTS - 1))
		log_warn("cache: no redis cluster node answered CLUSTER SLOTS (%s); requests go "
			 "on without the cache until one does", seeds);
	else
		atomic_store(&cl->up, 1);
	return &cl->base;
}
