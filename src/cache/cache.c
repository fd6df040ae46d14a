/*
 * The cache front: key building, the configured backend's construction,
 * and the counting every lookup goes through (hits, misses, bypasses).
 *
 * Keys are a 128-bit BLAKE2b (libsodium's crypto_generichash) over the
 * fields, each written as name, length and bytes. A fast non-cryptographic
 * hash (xxHash, FNV) would be quicker by nanoseconds but lets a client who
 * chooses query texts aim for a collision with another tenant's key; at
 * ~1 µs a key, BLAKE2b costs nothing next to a search.
 *
 * The Redis Cluster slot function (CRC16-XMODEM, as the cluster spec gives
 * it) is written here: hiredis 0.14 has none, and the table is 512 bytes.
 */
#include "cache/cache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define CACHE_KEY_PREFIX "ragd:v1:" /* bump the version when a value's layout changes */
#define CACHE_HASH_BYTES 16         /* 128 bits: collisions need ~2^64 keys */
#define CACHE_SLOTS 16384           /* Redis Cluster's fixed slot count */

static const char *const kind_names[CACHE_N_KINDS] = { "embedding", "search", "answer" };
static const char kind_chars[CACHE_N_KINDS] = { 'e', 's', 'a' };

const char *cache_kind_name(enum cache_kind kind)
{
	return (unsigned)kind < CACHE_N_KINDS ? kind_names[kind] : "unknown";
}

/* --- metrics --- */

static struct {
	struct metric *hits, *misses, *bypass, *errors;
	struct metric_child *hit[CACHE_N_KINDS], *miss[CACHE_N_KINDS];
	struct metric_child *unavailable[CACHE_N_KINDS], *asked[CACHE_N_KINDS];
} m;

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_families(void)
{
	static const char *const kind_label[] = { "cache", NULL };
	static const char *const bypass_labels[] = { "cache", "reason", NULL };
	static const char *const backend_label[] = { "backend", NULL };

	m.hits = metrics_counter("ragd_cache_hits_total", "Cache hits by cache", kind_label);
	m.misses = metrics_counter("ragd_cache_misses_total", "Cache misses by cache", kind_label);
	m.bypass = metrics_counter(
		"ragd_cache_bypass_total",
		"Lookups that went on without the cache: backend unavailable, or the client asked",
		bypass_labels);
	m.errors = metrics_counter("ragd_cache_errors_total",
				   "Failed cache backend commands (connection, timeout, reply)",
				   backend_label);
	for (int k = 0; k < CACHE_N_KINDS; k++) {
		const char *v[] = { kind_names[k], NULL };
		const char *un[] = { kind_names[k], "unavailable", NULL };
		const char *ask[] = { kind_names[k], "request", NULL };

		m.hit[k] = metric_child(m.hits, v);
		m.miss[k] = metric_child(m.misses, v);
		m.unavailable[k] = metric_child(m.bypass, un);
		m.asked[k] = metric_child(m.bypass, ask);
	}
}

void cache_metrics_register(void)
{
	pthread_once(&metrics_once, register_families);
}

void cache_count_bypass(enum cache_kind kind)
{
	cache_metrics_register();
	if ((unsigned)kind < CACHE_N_KINDS)
		metric_inc(m.asked[kind]);
}

void cache_count_error(const char *backend)
{
	const char *v[] = { backend, NULL };

	cache_metrics_register();
	metric_inc(metric_child(m.errors, v));
}

/* Entries, bytes and reachability per backend, read at scrape time. */
static void collect(void *ctx, struct sbuf *out)
{
	struct cache *c = ctx;
	struct cache_stats st[CACHE_MAX_STATS];
	size_t n = c->ops->stats ? c->ops->stats(c, st) : 0;

	sbuf_addstr(out, "# HELP ragd_cache_entries Entries in the in-process cache\n"
			 "# TYPE ragd_cache_entries gauge\n");
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].backend, "lru") == 0)
			sbuf_addf(out, "ragd_cache_entries{backend=\"lru\"} %zu\n", st[i].entries);
	sbuf_addstr(out, "# HELP ragd_cache_memory_bytes Bytes the in-process cache holds, "
			 "overhead included\n# TYPE ragd_cache_memory_bytes gauge\n");
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].backend, "lru") == 0)
			sbuf_addf(out, "ragd_cache_memory_bytes{backend=\"lru\"} %zu\n", st[i].bytes);
	sbuf_addstr(out, "# HELP ragd_cache_evictions_total Entries the in-process cache dropped "
			 "for room\n# TYPE ragd_cache_evictions_total counter\n");
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].backend, "lru") == 0)
			sbuf_addf(out, "ragd_cache_evictions_total{backend=\"lru\"} %llu\n",
				  (unsigned long long)st[i].evictions);
	sbuf_addstr(out, "# HELP ragd_cache_up 1 when the shared cache answered its last command\n"
			 "# TYPE ragd_cache_up gauge\n");
	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i].backend, "lru") != 0)
			sbuf_addf(out, "ragd_cache_up{backend=\"%s\"} %d\n", st[i].backend, st[i].up);
}

/* --- keys --- */

void cache_key_begin(struct cache_key_builder *b, enum cache_kind kind)
{
	b->kind = kind;
	sbuf_init(&b->buf, 256);
}

static void add_field(struct cache_key_builder *b, const char *name, char type, const void *p,
		      size_t len)
{
	uint64_t n = len;

	sbuf_addstr(&b->buf, name);
	sbuf_addch(&b->buf, '\0');
	sbuf_addch(&b->buf, type);
	sbuf_add(&b->buf, &n, sizeof(n));
	sbuf_add(&b->buf, p, len);
}

void cache_key_add_str(struct cache_key_builder *b, const char *name, const char *s, size_t len)
{
	add_field(b, name, 's', s ? s : "", s ? len : 0);
}

void cache_key_add_i64(struct cache_key_builder *b, const char *name, int64_t v)
{
	add_field(b, name, 'i', &v, sizeof(v));
}

void cache_key_add_f64(struct cache_key_builder *b, const char *name, double v)
{
	add_field(b, name, 'f', &v, sizeof(v));
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

/* libsodium asks for sodium_init before use; it picks the fastest BLAKE2b. */
static void init_sodium(void)
{
	if (sodium_init() < 0)
		abort(); /* only when /dev/urandom is missing: nothing would work */
}

void cache_hash_hex(const void *data, size_t len, char out[33])
{
	unsigned char h[CACHE_HASH_BYTES];

	pthread_once(&sodium_once, init_sodium);

	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	hex(h, sizeof(h), out);
}

int cache_key_end(struct cache_key_builder *b, struct cache_key *out)
{
	char digest[2 * CACHE_HASH_BYTES + 1];
	int failed = sbuf_error(&b->buf);

	memset(out, 0, sizeof(*out));
	if (!failed) {
		cache_hash_hex(b->buf.buf, b->buf.len, digest);
		out->kind = b->kind;
		out->len = (size_t)snprintf(out->text, sizeof(out->text), CACHE_KEY_PREFIX "%c:%s",
					    kind_chars[(unsigned)b->kind < CACHE_N_KINDS ? b->kind : 0],
					    digest);
	}
	sbuf_release(&b->buf);
	return failed ? RAG_ENOMEM : 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char *cache_normalize_text(const char *s, size_t len, size_t *len_out)
{
	char *out = malloc(len + 1);
	size_t n = 0;
	int gap = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (is_space(s[i])) {
			gap = n > 0;
			continue;
		}
		if (gap)
			out[n++] = ' ';
		gap = 0;
		out[n++] = s[i];
	}
	out[n] = '\0';
	*len_out = n;
	return out;
}

/*
 * CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis Cluster
 * uses. Bit by bit: keys are ~40 bytes, so a table would save ~100 ns.
 */
uint16_t cache_crc16(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int bit = 0; bit < 8; bit++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc;
}

/* The hash tag rule: hash only what is between the first '{' and the next '}', if non-empty. */
unsigned cache_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);

	if (open) {
		size_t rest = len - (size_t)(open - key) - 1;
		const char *close = memchr(open + 1, '}', rest);

		if (close && close > open + 1)
			return cache_crc16(open + 1, (size_t)(close - open - 1)) % CACHE_SLOTS;
	}
	return cache_crc16(key, len) % CACHE_SLOTS;
}

/* --- construction --- */

int cache_backend_parse(const char *s, enum cache_backend *out)
{
	static const struct {
		const char *name;
		enum cache_backend b;
	} names[] = {
		{ "none", CACHE_BACKEND_NONE },       { "lru", CACHE_BACKEND_LRU },
		{ "redis", CACHE_BACKEND_REDIS },     { "redis-cluster", CACHE_BACKEND_CLUSTER },
		{ "two-level", CACHE_BACKEND_TWO_LEVEL },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].b;
			return 0;
		}
	}
	return RAG_EINVAL;
}

void cache_default_options(struct cache_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->backend = CACHE_BACKEND_LRU;
	opts->lru_bytes = 64u << 20;
	opts->lru_shards = CACHE_LRU_SHARDS;
	opts->redis_url = "redis://127.0.0.1:6379";
	opts->timeout_ms = 100;
	opts->pool_size = 8;
}

/* The comma-separated addresses as "h:p,h:p" without schemes, into out. */
static int seed_list(const char *url, struct sbuf *out, size_t *n_out, struct rag_err *err)
{
	const char *p = url;

	*n_out = 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		char host[CACHE_HOST_MAX];
		int port;

		if (cache_parse_addr(p, len, host, sizeof(host), &port) < 0)
			return rag_err_set(err, RAG_EINVAL, "cache.redis.url",
					   "cache.redis.url: '%.*s' is not host:port",
					   (int)(len - cache_url_userinfo_end(p, len)),
					   p + cache_url_userinfo_end(p, len));
		sbuf_addf(out, "%s%s:%d", *n_out ? "," : "", host, port);
		(*n_out)++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (*n_out == 0)
		return rag_err_set(err, RAG_EINVAL, "cache.redis.url", "cache.redis.url is empty");
	return sbuf_error(out) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory") : 0;
}

static struct cache *shared_cache(const struct cache_options *o, int cluster,
				  struct rag_err *err)
{
	struct sbuf seeds = SBUF_INIT;
	struct cache *c = NULL;
	size_t n = 0;
	struct redis_auth auth;
	char host[CACHE_HOST_MAX];
	int port;

	if (seed_list(o->redis_url, &seeds, &n, err) < 0 ||
	    cache_parse_auth(o->redis_url, &auth, "cache.redis.url", err) < 0)
		goto out;
	if (cluster < 0)
		cluster = n > 1;
	if (cluster) {
		c = cache_cluster_new(seeds.buf, o->timeout_ms, o->pool_size, &auth, err);
	} else {
		cache_parse_addr(seeds.buf, strcspn(seeds.buf, ","), host, sizeof(host), &port);
		c = cache_redis_new(host, port, o->timeout_ms, o->pool_size, &auth);
		if (!c)
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
out:
	sbuf_release(&seeds);
	return c;
}

struct cache *cache_new(const struct cache_options *o, struct rag_err *err)
{
	struct cache *c = NULL, *front, *back;

	cache_metrics_register();
	switch (o->backend) {
	case CACHE_BACKEND_NONE:
		return NULL;
	case CACHE_BACKEND_LRU:
		c = cache_lru_new(o->lru_bytes, o->lru_shards);
		if (!c)
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		break;
	case CACHE_BACKEND_REDIS:
		c = shared_cache(o, 0, err);
		break;
	case CACHE_BACKEND_CLUSTER:
		c = shared_cache(o, 1, err);
		break;
	case CACHE_BACKEND_TWO_LEVEL:
		front = cache_lru_new(o->lru_bytes, o->lru_shards);
		if (!front) {
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
			break;
		}
		back = shared_cache(o, -1, err);
		if (!back) {
			front->ops->free(front);
			break;
		}
		c = cache_two_level_new(front, back);
		if (!c)
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		break;
	}
	if (c && metrics_add_collector(collect, c) < 0) {
		c->ops->free(c);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	metrics_remove_collector(collect, c);
	c->ops->free(c);
}

/* --- use --- */

void cache_count(enum cache_kind kind, int rc)
{
	unsigned k = (unsigned)kind < CACHE_N_KINDS ? (unsigned)kind : 0;

	cache_metrics_register();
	if (rc == 0)
		metric_inc(m.hit[k]);
	else if (rc == RAG_ENOTFOUND)
		metric_inc(m.miss[k]);
	else
		metric_inc(m.unavailable[k]);
}

int cache_get(struct cache *c, const struct cache_key *key, void **val, size_t *len)
{
	int rc;

	*val = NULL;
	*len = 0;
	if (!c)
		return RAG_ENOTFOUND;
	rc = c->ops->get(c, key->text, key->len, val, len);
	if (rc < 0 && rc != RAG_ENOTFOUND)
		rc = RAG_EBUSY;
	cache_count(key->kind, rc);
	return rc;
}

void cache_get_many(struct cache *c, const struct cache_key *keys, size_t n, void **vals,
		    size_t *lens, int *rcs)
{
	const char *texts[CACHE_MGET_MAX] = { 0 };
	size_t tlens[CACHE_MGET_MAX] = { 0 };

	for (size_t i = 0; i < n; i++) {
		vals[i] = NULL;
		lens[i] = 0;
		rcs[i] = RAG_ENOTFOUND;
	}
	if (!c)
		return;
	if (!c->ops->mget || n > CACHE_MGET_MAX) {
		for (size_t i = 0; i < n; i++) {
			rcs[i] = c->ops->get(c, keys[i].text, keys[i].len, &vals[i], &lens[i]);
			if (rcs[i] < 0 && rcs[i] != RAG_ENOTFOUND)
				rcs[i] = RAG_EBUSY;
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		texts[i] = keys[i].text;
		tlens[i] = keys[i].len;
	}
	c->ops->mget(c, texts, tlens, n, vals, lens, rcs);
	for (size_t i = 0; i < n; i++)
		if (rcs[i] < 0 && rcs[i] != RAG_ENOTFOUND)
			rcs[i] = RAG_EBUSY;
}

void cache_put(struct cache *c, const struct cache_key *key, const void *val, size_t len,
	       int ttl_s)
{
	if (c)
		c->ops->put(c, key->text, key->len, val, len, ttl_s > 0 ? ttl_s : 1);
}

int cache_del(struct cache *c, const struct cache_key *key)
{
	return c ? c->ops->del(c, key->text, key->len) : 0;
}
