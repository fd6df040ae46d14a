/*
 * Cluster-wide quotas: each key's request bucket and daily counters kept
 * in one Redis server (auth.quota_redis_url) that every instance and
 * worker process shares, so N of them give a key its limits once, not N
 * times, and a restart keeps the day's counts.
 *
 * One Lua script does every operation, so each is one atomic round trip
 * (EVALSHA; EVAL when the server answers NOSCRIPT, e.g. after it was
 * restarted; the first call sends EVAL and SCRIPT LOAD together to learn
 * the SHA-1). The script reads the clock with TIME: Redis's clock, not the
 * instances', so instances whose clocks disagree still share one bucket
 * and one UTC day.
 *
 * The request bucket is GCRA (the generic cell rate algorithm), which is
 * a token bucket stored as one number: the "theoretical arrival time" tat
 * at which the bucket would be full again. With an emission interval
 * T = 1/requests_per_s, a request at now is admitted when
 * max(tat, now) + T - now <= burst * T, and then tat moves on by T; when
 * refused, it may retry in max(tat, now) + T - burst * T - now. That is
 * exactly the in-process bucket (auth_quota.c): burst requests at once,
 * then requests_per_s. tat is kept in integer microseconds (as text: Lua
 * would print a float with 14 digits) and expires when the bucket is full.
 *
 * Daily counters are INCRBY on a key per UTC day, EXPIREAT the next
 * midnight plus AUTH_QUOTA_DAY_SLACK_S (the usage report still finds the
 * day's count for a while; the next day's key is a new one anyway). Totals
 * and rejections since the key was first used are fields of one hash that
 * does not expire. Keys (KEYS[1] is the prefix; the script appends the
 * rest):
 *
 *	ragd:quota:{<key id>}:tat             the request bucket (µs)
 *	ragd:quota:{<key id>}:ingest:<day>    ingest bytes of UTC day <day>
 *	ragd:quota:{<key id>}:tokens:<day>    generated tokens of that day
 *	ragd:quota:{<key id>}:totals          hash: requests, ingest_bytes,
 *	                                      tokens, rejected_<kind>
 *
 * <day> is the number of days since 1970-01-01 (UTC). The key id is public
 * (it labels metrics); no secret, hash or tenant name is ever written. The
 * braces are a Redis Cluster hash tag, so one key's names share a slot.
 *
 * Failure: the link (src/cache, cache_link) bounds every exchange by
 * auth.quota_redis_timeout_ms and, after a failure, answers at once for
 * its back-off, then tries again. The caller then admits by this
 * instance's in-process limits (fail open to the per-instance limits, as
 * without Redis; never fail the request): a Redis outage weakens the
 * limits to N times per key, it does not take the API down. Each such
 * request counts in ragd_quota_redis_errors_total; the outage and the
 * recovery are logged at most once per AUTH_QUOTA_LOG_INTERVAL_MS.
 * Charges made while Redis was away are not replayed into it.
 *
 * Rejected alternatives: a MULTI/EXEC of GET and SET (two round trips and a
 * WATCH retry loop under contention); INCR with a per-second key (a fixed
 * window lets 2x the rate through at a window edge and has no burst);
 * the instances' clocks (skew would split a day or bend the bucket).
 */
#include "auth/auth_int.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define AUTH_QUOTA_DAY_SLACK_S 3600          /* a day's counters outlive it by an hour */
#define AUTH_QUOTA_LOG_INTERVAL_MS 60000     /* an outage fills no log: a line a minute */
#define AUTH_QUOTA_POOL 8                    /* idle connections: the HTTP pool's threads */
#define NUM_MAX 32                           /* "%.17g" of a double, or an int64 */

static const char script[] =
	"local p = KEYS[1]\n"
	"local op = ARGV[1]\n"
	"if redis.replicate_commands then redis.replicate_commands() end\n"
	"local t = redis.call('TIME')\n"
	"local s = tonumber(t[1])\n"
	"local now = s * 1000000 + tonumber(t[2])\n"
	"local day = math.floor(s / 86400)\n"
	"local midnight = (day + 1) * 86400\n"
	"local left_ms = math.ceil((midnight * 1000000 - now) / 1000)\n"
	"local tot = p .. 'totals'\n"
	"local function used(k) return tonumber(redis.call('GET', k) or '0') end\n"
	"local function charge(k, n)\n"
	"  redis.call('INCRBY', k, n)\n"
	"  redis.call('EXPIREAT', k, midnight + tonumber(ARGV[4]))\n"
	"end\n"
	"if op == 'req' then\n"
	"  local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"  if rate > 0 then\n"
	"    local k = p .. 'tat'\n"
	"    local iv = 1000000 / rate\n"
	"    local new = math.max(used(k), now) + iv\n"
	"    if new - now > burst * iv + 1 then\n"
	"      redis.call('HINCRBY', tot, 'rejected_requests', 1)\n"
	"      return {0, math.ceil((new - now - burst * iv) / 1000)}\n"
	"    end\n"
	"    redis.call('SET', k, string.format('%d', math.floor(new)), 'PX',\n"
	"               math.ceil((new - now) / 1000) + 1000)\n"
	"  end\n"
	"  redis.call('HINCRBY', tot, 'requests', 1)\n"
	"  return {1, 0}\n"
	"elseif op == 'ingest' then\n"
	"  local n, limit = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"  local k = p .. 'ingest:' .. day\n"
	"  if limit > 0 and used(k) + n > limit then\n"
	"    redis.call('HINCRBY', tot, 'rejected_ingest_bytes', 1)\n"
	"    return {0, left_ms}\n"
	"  end\n"
	"  charge(k, n)\n"
	"  redis.call('HINCRBY', tot, 'ingest_bytes', n)\n"
	"  return {1, 0}\n"
	"elseif op == 'tokens' then\n"
	"  local limit = tonumber(ARGV[3])\n"
	"  if limit > 0 and used(p .. 'tokens:' .. day) >= limit then\n"
	"    redis.call('HINCRBY', tot, 'rejected_generated_tokens', 1)\n"
	"    return {0, left_ms}\n"
	"  end\n"
	"  return {1, 0}\n"
	"elseif op == 'charge' then\n"
	"  local n = tonumber(ARGV[2])\n"
	"  charge(p .. 'tokens:' .. day, n)\n"
	"  redis.call('HINCRBY', tot, 'tokens', n)\n"
	"  return {1, 0}\n"
	"end\n"
	"local h = redis.call('HMGET', tot, 'requests', 'ingest_bytes', 'tokens',\n"
	"                     'rejected_requests', 'rejected_ingest_bytes',\n"
	"                     'rejected_generated_tokens')\n"
	"local r = {}\n"
	"for i = 1, 6 do r[i] = tonumber(h[i] or '0') end\n"
	"r[7] = used(p .. 'ingest:' .. day)\n"
	"r[8] = used(p .. 'tokens:' .. day)\n"
	"return r\n";

/*
 * Locking: link is thread-safe; sha is written once under sha_lock before
 * have_sha is set (release) and never changes after, so readers that saw
 * have_sha (acquire) read it without the lock. The log state is atomics.
 */
struct auth_quota_redis {
	struct cache_link *link;
	pthread_mutex_t sha_lock;
	char sha[41];
	atomic_int have_sha;
	atomic_int down;                /* 1 after a logged failure, until a call succeeds */
	_Atomic int64_t logged_ms;      /* when the last outage or recovery line was logged */
	_Atomic int64_t failed;         /* failures since that line */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct metric_child *m_errors;

static void register_families(void)
{
	struct metric *m = metrics_counter("ragd_quota_redis_errors_total",
					   "Quota checks and charges that Redis did not answer (the"
					   " request used this instance's limits instead)", NULL);

	m_errors = metric_default(m);
}

struct auth_quota_redis *auth_quota_redis_new(const char *url, int timeout_ms,
					      struct rag_err *err)
{
	struct auth_quota_redis *qr;

	pthread_once(&once, register_families);
	qr = calloc(1, sizeof(*qr));
	if (!qr) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	qr->link = cache_link_new(url, timeout_ms, AUTH_QUOTA_POOL, NULL, "auth.quota_redis_url",
				  err);
	if (!qr->link) {
		free(qr);
		return NULL;
	}
	pthread_mutex_init(&qr->sha_lock, NULL);
	atomic_init(&qr->have_sha, 0);
	atomic_init(&qr->down, 0);
	atomic_init(&qr->logged_ms, 0);
	atomic_init(&qr->failed, 0);
	return qr;
}

void auth_quota_redis_free(struct auth_quota_redis *qr)
{
	if (!qr)
		return;
	cache_link_free(qr->link);
	pthread_mutex_destroy(&qr->sha_lock);
	free(qr);
}

int auth_quota_key_prefix(const char *id, char *buf, size_t size)
{
	int n = snprintf(buf, size, "ragd:quota:{%s}:", id);

	return n < 0 || (size_t)n >= size ? RAG_EINVAL : n;
}

int64_t auth_quota_day(int64_t unix_ms)
{
	return unix_ms / AUTH_DAY_MS;
}

int auth_quota_until_midnight_s(int64_t unix_ms)
{
	int64_t left = AUTH_DAY_MS - unix_ms % AUTH_DAY_MS;

	return (int)((left + 999) / 1000);
}

int auth_quota_retry_s(int64_t ms)
{
	int64_t s = (ms + 999) / 1000;

	return s < 1 ? 1 : s > INT32_MAX ? INT32_MAX : (int)s;
}

/*
 * A failure: counted always, logged at most once per interval (with how
 * many there were since the last line); only a logged outage has its
 * recovery logged, so a flapping server writes two lines a minute at most.
 */
static void note_failure(struct auth_quota_redis *qr, const char *why)
{
	int64_t now = auth_now_ms(), last = atomic_load(&qr->logged_ms);
	int64_t n = atomic_fetch_add(&qr->failed, 1) + 1;

	metric_inc(m_errors);
	if ((last == 0 || now - last >= AUTH_QUOTA_LOG_INTERVAL_MS) &&
	    atomic_compare_exchange_strong(&qr->logged_ms, &last, now)) {
		atomic_fetch_sub(&qr->failed, n);
		atomic_store(&qr->down, 1);
		log_warn("quota: redis %s %s: %" PRId64 " quota decision(s) used this instance's"
			 " limits instead (next line in %d s at the earliest)",
			 cache_link_addr(qr->link), why, n, AUTH_QUOTA_LOG_INTERVAL_MS / 1000);
	}
}

static void note_success(struct auth_quota_redis *qr)
{
	if (atomic_load(&qr->down) && atomic_exchange(&qr->down, 0))
		log_info("quota: redis %s answering: limits are cluster-wide again",
			 cache_link_addr(qr->link));
}

/* One script call: the key's prefix, the operation and up to three numbers. */
struct call {
	char prefix[AUTH_QUOTA_PREFIX_MAX];
	const char *op;
	char a[NUM_MAX], b[NUM_MAX];
};

static void fill(struct redis_cmd *c, const struct auth_quota_redis *qr, int eval,
		 const struct call *k)
{
	static const char slack[] = "3600";

	_Static_assert(AUTH_QUOTA_DAY_SLACK_S == 3600, "slack[] spells AUTH_QUOTA_DAY_SLACK_S");
	*c = (struct redis_cmd){
		8,
		{ eval ? "EVAL" : "EVALSHA", eval ? script : qr->sha, "1", k->prefix, k->op, k->a,
		  k->b, slack },
		{ eval ? 4 : 7, eval ? sizeof(script) - 1 : 40, 1, strlen(k->prefix), strlen(k->op),
		  strlen(k->a), strlen(k->b), sizeof(slack) - 1 },
	};
}

/*
 * Runs calls[0..n) in one round trip (two when the server lost the
 * script) into out[0..n). 0, or RAG_EBUSY (Redis away or slow) or RAG_EIO
 * (an answer that is not the script's) after noting the failure.
 */
static int run(struct auth_quota_redis *qr, const struct call *calls, size_t n,
	       struct cache_reply *out)
{
	struct redis_cmd *cmds = calloc(n + 1, sizeof(*cmds));
	struct cache_reply *r = calloc(n + 1, sizeof(*r));
	int have = atomic_load_explicit(&qr->have_sha, memory_order_acquire), rc = RAG_ENOMEM;
	size_t n_cmds = n;

	if (!cmds || !r)
		goto out;
	for (size_t i = 0; i < n; i++)
		fill(&cmds[i], qr, !have, &calls[i]);
	if (!have)
		cmds[n_cmds++] = (struct redis_cmd){ 3, { "SCRIPT", "LOAD", script },
						     { 6, 4, sizeof(script) - 1 } };
	rc = cache_link_call(qr->link, cmds, n_cmds, r);
	if (rc == 0 && have && r[0].type == CACHE_REPLY_ERROR &&
	    strncmp(r[0].str, "NOSCRIPT", 8) == 0) {
		for (size_t i = 0; i < n; i++)
			fill(&cmds[i], qr, 1, &calls[i]);
		rc = cache_link_call(qr->link, cmds, n, r);
	}
	if (rc == 0 && !have && r[n].type == CACHE_REPLY_STR && strlen(r[n].str) == 40) {
		pthread_mutex_lock(&qr->sha_lock);
		if (!atomic_load(&qr->have_sha)) {
			memcpy(qr->sha, r[n].str, 41);
			atomic_store_explicit(&qr->have_sha, 1, memory_order_release);
		}
		pthread_mutex_unlock(&qr->sha_lock);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (r[i].type != CACHE_REPLY_ARRAY || r[i].n_ints < 2) {
			log_debug("quota: redis: unexpected reply: %s", r[i].str);
			rc = RAG_EIO;
		}
		out[i] = r[i];
	}
out:
	if (rc == 0)
		note_success(qr);
	else
		note_failure(qr, rc == RAG_EIO ? "answered with an error" : "did not answer");
	free(cmds);
	free(r);
	return rc;
}

static int call_init(struct call *k, const char *id, const char *op)
{
	k->op = op;
	k->a[0] = '0';
	k->a[1] = '\0';
	memcpy(k->b, k->a, 2);
	return auth_quota_key_prefix(id, k->prefix, sizeof(k->prefix)) < 0 ? RAG_EINVAL : 0;
}

int auth_quota_redis_admit(struct auth_quota_redis *qr, const char *id, enum auth_quota q,
			   int64_t amount, const struct auth_limits *l, int64_t *retry_ms)
{
	static const char *const ops[3] = { "req", "ingest", "tokens" };
	struct call k;
	struct cache_reply r;
	int rc;

	*retry_ms = 0;
	if (call_init(&k, id, ops[q]) < 0)
		return RAG_EINVAL;
	if (q == AUTH_QUOTA_REQUESTS) {
		snprintf(k.a, sizeof(k.a), "%.17g", l->requests_per_s);
		snprintf(k.b, sizeof(k.b), "%" PRId64, auth_burst(l));
	} else {
		snprintf(k.a, sizeof(k.a), "%" PRId64, amount);
		snprintf(k.b, sizeof(k.b), "%" PRId64,
			 q == AUTH_QUOTA_INGEST_BYTES ? l->ingest_bytes_per_day : l->tokens_per_day);
	}
	rc = run(qr, &k, 1, &r);
	if (rc < 0)
		return rc;
	if (r.ints[0] == 1)
		return 0;
	*retry_ms = r.ints[1];
	return RAG_ERATELIMIT;
}

int auth_quota_redis_charge(struct auth_quota_redis *qr, const char *id, int64_t n)
{
	struct call k;
	struct cache_reply r;

	if (call_init(&k, id, "charge") < 0)
		return RAG_EINVAL;
	snprintf(k.a, sizeof(k.a), "%" PRId64, n);
	return run(qr, &k, 1, &r);
}

int auth_quota_redis_usage(struct auth_quota_redis *qr, const char *const *ids, size_t n,
			   struct auth_quota_usage *out)
{
	struct call *k = calloc(n ? n : 1, sizeof(*k));
	struct cache_reply *r = calloc(n ? n : 1, sizeof(*r));
	int rc = RAG_ENOMEM;

	if (!k || !r)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (call_init(&k[i], ids[i], "usage") < 0) {
			rc = RAG_EINVAL;
			goto out;
		}
	rc = n ? run(qr, k, n, r) : 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const int64_t *v = r[i].ints;

		if (r[i].n_ints < 8) {
			rc = RAG_EIO;
			break;
		}
		out[i] = (struct auth_quota_usage){
			.requests_total = v[0], .ingest_total = v[1], .tokens_total = v[2],
			.rejected = { v[3], v[4], v[5] },
			.ingest_today = v[6], .tokens_today = v[7],
		};
	}
out:
	free(k);
	free(r);
	return rc;
}
