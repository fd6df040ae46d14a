/*
 * Sharding across instances (see rag_shard.h): the shard map, the peers'
 * health and the fan-out of a dense search.
 *
 * Fan-out: the shards to ask for are those not held here. Each round picks,
 * for every shard still needed, one holder not tried yet in this search:
 * first the healthy ones (no failure within backoff_ms), rotating among
 * them so replicas share the load, then those in back-off (better a slow
 * answer than none). One request per chosen instance covers every needed
 * shard it holds. The round's requests run in parallel on one libcurl
 * multi handle, each limited to what is left of the deadline; an instance
 * that fails (connection refused, timeout, non-200, a body that is not an
 * answer, or one that does not hold what the map says) goes into back-off
 * and its shards return to the needed set for the next round.
 *
 * Merging is exact: every instance returns its k best by inner product,
 * and the global k best are among the union of those (a vector outside an
 * instance's k best has k better ones there). Scores travel as JSON
 * numbers printed with 17 digits, so a float comes back bit-identical, and
 * ties are broken by the smaller id as vindex_search does.
 *
 * Alternatives rejected: hedged requests to both replicas (twice the load
 * for a tail-latency gain loopback tests cannot show); a partial answer
 * flagged in the response (a client that ignores the flag gets silently
 * worse results; a 503 is retried by every HTTP client).
 */
#include "rag/rag_shard.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/ring.h"
#include "core/sbuf.h"

#include "core/banned.h"

#define SHARD_PEERS_MAX 256     /* instances in one cluster's map */
#define SHARD_BODY_MAX (64 << 20) /* an answer's bytes: k ids and scores are far less */
#define SHARD_CONNECT_MS 500    /* loopback or a cluster network: longer means down */

struct peer {
	char *url;              /* base URL, no trailing '/' */
	uint64_t mask;          /* the shards it holds */
	_Atomic int64_t failed_ms; /* monotonic ms of its last failure; 0 = none */
};

struct rag_shards {
	struct ring *ring;
	size_t n_shards;
	uint64_t held;
	struct peer *peers;
	size_t n_peers;
	int timeout_ms, backoff_ms;
	atomic_uint next; /* rotates the choice among healthy replicas */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rag_shard_default_options(struct rag_shard_options *o)
{
	memset(o, 0, sizeof(*o));
	o->holds = "";
	o->ordinal = -1;
	o->peers = "";
	o->peer_pattern = "";
	o->vnodes = RING_VNODES_DEFAULT;
	o->timeout_ms = 2000;
	o->backoff_ms = 2000;
}

/* "0,2" (len bytes) into a mask of shards below n; RAG_EINVAL naming field. */
static int parse_set(const char *s, size_t len, size_t n, const char *field, uint64_t *mask,
		     struct rag_err *err)
{
	size_t i = 0;

	*mask = 0;
	while (i < len) {
		unsigned long v = 0;
		size_t digits = 0;

		while (i < len && isdigit((unsigned char)s[i]) && digits < 4) {
			v = v * 10 + (unsigned long)(s[i++] - '0');
			digits++;
		}
		if (digits == 0 || v >= n || (i < len && s[i] != ',') || (i + 1 == len))
			return rag_err_set(err, RAG_EINVAL, field,
					   "%s: '%.*s' must list shard numbers 0..%zu separated by ','",
					   field, (int)len, s, n - 1);
		*mask |= 1ULL << v;
		if (i < len)
			i++;
	}
	if (!*mask)
		return rag_err_set(err, RAG_EINVAL, field, "%s: no shard listed", field);
	return 0;
}

static int add_peer(struct rag_shards *sh, const char *url, size_t url_len, uint64_t mask,
		    struct rag_err *err)
{
	struct peer *p;

	while (url_len > 0 && url[url_len - 1] == '/')
		url_len--;
	if (url_len < 8 || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		return rag_err_set(err, RAG_EINVAL, "sharding.peers",
				   "sharding.peers: '%.*s' must start with http:// or https://",
				   (int)url_len, url);
	if (sh->n_peers == SHARD_PEERS_MAX)
		return rag_err_set(err, RAG_EINVAL, "sharding.peers",
				   "sharding.peers: more than %d instances", SHARD_PEERS_MAX);
	p = &sh->peers[sh->n_peers];
	p->url = strndup(url, url_len);
	if (!p->url)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	p->mask = mask;
	atomic_store(&p->failed_ms, 0);
	sh->n_peers++;
	return 0;
}

/* "URL=0,1 URL=1;URL=0" into sh->peers. */
static int parse_peers(struct rag_shards *sh, const char *s, struct rag_err *err)
{
	while (*s) {
		size_t len = strcspn(s, " \t\n;");
		const char *eq = memchr(s, '=', len);
		uint64_t mask;
		int rc;

		if (len == 0) {
			s++;
			continue;
		}
		if (!eq)
			return rag_err_set(err, RAG_EINVAL, "sharding.peers",
					   "sharding.peers: '%.*s' must be URL=SHARDS, e.g. "
					   "http://10.0.0.7:8080=0,1",
					   (int)len, s);
		rc = parse_set(eq + 1, len - (size_t)(eq + 1 - s), sh->n_shards, "sharding.peers",
			       &mask, err);
		if (rc == 0)
			rc = add_peer(sh, s, (size_t)(eq - s), mask, err);
		if (rc < 0)
			return rc;
		s += len;
	}
	return 0;
}

/* pattern with "{i}" for i in 0..n-1, instance i holding shard i % n_shards. */
static int expand_pattern(struct rag_shards *sh, const char *pattern, int n,
			  struct rag_err *err)
{
	const char *at = strstr(pattern, "{i}");

	if (!at)
		return rag_err_set(err, RAG_EINVAL, "sharding.peer_pattern",
				   "sharding.peer_pattern: '%s' has no {i}", pattern);
	if (n < 1)
		return rag_err_set(err, RAG_EINVAL, "sharding.instances",
				   "sharding.instances must be set with sharding.peer_pattern");
	for (int i = 0; i < n; i++) {
		struct sbuf sb = SBUF_INIT;
		char *url;
		int rc;

		sbuf_add(&sb, pattern, (size_t)(at - pattern));
		sbuf_addf(&sb, "%d%s", i, at + 3);
		url = sbuf_detach(&sb, NULL);
		if (!url)
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		rc = add_peer(sh, url, strlen(url), 1ULL << ((size_t)i % sh->n_shards), err);
		free(url);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct rag_shards *rag_shards_new(const struct rag_shard_options *o, struct rag_err *err)
{
	struct rag_shards *sh;
	uint64_t all, covered = 0;
	int rc = 0;

	if (o->n_shards == 0)
		return NULL;
	if (o->n_shards < 0 || o->n_shards > RING_SHARDS_MAX) {
		rag_err_set(err, RAG_EINVAL, "sharding.shards", "sharding.shards must be 0 to %d",
			    RING_SHARDS_MAX);
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT); /* now, while start-up is single-threaded */
	sh = calloc(1, sizeof(*sh));
	if (sh)
		sh->peers = calloc(SHARD_PEERS_MAX, sizeof(*sh->peers));
	if (!sh || !sh->peers) {
		rag_shards_free(sh);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	sh->n_shards = (size_t)o->n_shards;
	sh->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	sh->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 2000;
	sh->ring = ring_new(sh->n_shards, (size_t)o->vnodes);
	if (!sh->ring)
		rc = rag_err_set(err, RAG_EINVAL, "sharding.vnodes",
				 "sharding.vnodes must be 1 to %d", RING_VNODES_MAX);
	all = sh->n_shards == 64 ? UINT64_MAX : (1ULL << sh->n_shards) - 1;
	if (rc == 0 && o->holds && o->holds[0])
		rc = parse_set(o->holds, strlen(o->holds), sh->n_shards, "sharding.holds", &sh->held,
			       err);
	else if (rc == 0 && o->ordinal >= 0)
		sh->held = 1ULL << ((size_t)o->ordinal % sh->n_shards);
	else if (rc == 0)
		rc = rag_err_set(err, RAG_EINVAL, "sharding.holds",
				 "sharding.holds (or sharding.ordinal, RAGD_SHARD_ORDINAL) must say "
				 "which shards this instance holds");
	if (rc == 0 && o->peers)
		rc = parse_peers(sh, o->peers, err);
	if (rc == 0 && o->peer_pattern && o->peer_pattern[0])
		rc = expand_pattern(sh, o->peer_pattern, o->instances, err);
	for (size_t i = 0; rc == 0 && i < sh->n_peers; i++)
		covered |= sh->peers[i].mask;
	if (rc == 0 && ((covered | sh->held) & all) != all) {
		size_t s = 0;

		while ((covered | sh->held) & (1ULL << s))
			s++;
		rc = rag_err_set(err, RAG_EINVAL, "sharding.peers",
				 "sharding.peers: shard %zu is held by no instance", s);
	}
	if (rc < 0) {
		rag_shards_free(sh);
		return NULL;
	}
	return sh;
}

void rag_shards_free(struct rag_shards *sh)
{
	if (!sh)
		return;
	for (size_t i = 0; sh->peers && i < sh->n_peers; i++)
		free(sh->peers[i].url);
	free(sh->peers);
	ring_free(sh->ring);
	free(sh);
}

size_t rag_shards_of(const struct rag_shards *sh, const char *doc_id)
{
	return sh ? ring_shard(sh->ring, doc_id, strlen(doc_id)) : 0;
}

int rag_shards_holds(const struct rag_shards *sh, const char *doc_id)
{
	return !sh || (sh->held >> rag_shards_of(sh, doc_id)) & 1;
}

size_t rag_shards_count(const struct rag_shards *sh)
{
	return sh ? sh->n_shards : 0;
}

uint64_t rag_shards_held(const struct rag_shards *sh)
{
	return sh ? sh->held : 0;
}

int rag_shards_remote(const struct rag_shards *sh)
{
	return sh && sh->held != (sh->n_shards == 64 ? UINT64_MAX : (1ULL << sh->n_shards) - 1);
}

/* --- the fan-out --- */

struct call {
	struct peer *peer;
	uint64_t covers; /* the needed shards this request answers for */
	CURL *h;
	struct curl_slist *headers;
	struct sbuf body;
	int too_big;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;

	if (c->body.len + size * nmemb > SHARD_BODY_MAX) {
		c->too_big = 1;
		return 0;
	}
	sbuf_add(&c->body, data, size * nmemb);
	return size * nmemb;
}

/* The request body: collection, vector, k and filter as JSON. */
static char *request_body(const char *collection, const float *vec, size_t dim, size_t k,
			  const char *filter_json)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_addstr(&sb, "{\"collection\":");
	sbuf_add_json_str(&sb, collection, strlen(collection));
	sbuf_addf(&sb, ",\"k\":%zu,\"vector\":[", k);
	for (size_t i = 0; i < dim; i++)
		sbuf_addf(&sb, "%s%.9g", i ? "," : "", (double)vec[i]); /* 9 digits: a float exactly */
	sbuf_addch(&sb, ']');
	if (filter_json && filter_json[0]) {
		sbuf_addstr(&sb, ",\"filter\":");
		sbuf_addstr(&sb, filter_json);
	}
	sbuf_addch(&sb, '}');
	return sbuf_detach(&sb, NULL);
}

/* Picks a holder of shard s not tried yet: healthy ones first, rotating. */
static struct peer *choose(struct rag_shards *sh, size_t s, const unsigned char *tried,
			   int64_t now)
{
	size_t start = atomic_fetch_add(&sh->next, 1) % (sh->n_peers ? sh->n_peers : 1);
	struct peer *sick = NULL;

	for (size_t j = 0; j < sh->n_peers; j++) {
		size_t i = (start + j) % sh->n_peers;
		struct peer *p = &sh->peers[i];
		int64_t failed = atomic_load(&p->failed_ms);

		if (tried[i] || !((p->mask >> s) & 1))
			continue;
		if (failed == 0 || now - failed >= sh->backoff_ms)
			return p;
		if (!sick || failed < atomic_load(&sick->failed_ms))
			sick = p;
	}
	return sick;
}

struct merge {
	int64_t *ids;
	float *scores;
	size_t n, k;
};

/* Inserts (id, score) into the best-first list, dropping what falls past k. */
static void merge_one(struct merge *m, int64_t id, float score)
{
	size_t at = m->n;

	for (size_t i = 0; i < m->n; i++)
		if (m->ids[i] == id)
			return; /* a shard two instances answered for */
	while (at > 0 && (m->scores[at - 1] < score ||
			  (m->scores[at - 1] == score && m->ids[at - 1] > id)))
		at--;
	if (at >= m->k)
		return;
	if (m->n == m->k)
		m->n--;
	memmove(&m->ids[at + 1], &m->ids[at], (m->n - at) * sizeof(*m->ids));
	memmove(&m->scores[at + 1], &m->scores[at], (m->n - at) * sizeof(*m->scores));
	m->ids[at] = id;
	m->scores[at] = score;
	m->n++;
}

/* Reads an answer {"ids":[...],"scores":[...],"shards":[...]}; 0 or -1. */
static int take_answer(struct call *c, struct merge *m)
{
	json_t *root = json_loadb(c->body.buf, c->body.len, 0, NULL);
	json_t *ids = json_object_get(root, "ids"), *scores = json_object_get(root, "scores");
	json_t *shards = json_object_get(root, "shards"), *v;
	uint64_t holds = 0;
	size_t i;
	int rc = -1;

	if (!json_is_array(ids) || !json_is_array(scores) || !json_is_array(shards) ||
	    json_array_size(ids) != json_array_size(scores))
		goto out;
	json_array_foreach(shards, i, v) {
		if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 64)
			holds |= 1ULL << json_integer_value(v);
	}
	if ((holds & c->covers) != c->covers) {
		log_warn("shard instance %s does not hold the shards the map says", c->peer->url);
		goto out;
	}
	for (i = 0; i < json_array_size(ids); i++) {
		json_t *id = json_array_get(ids, i), *sc = json_array_get(scores, i);

		if (!json_is_integer(id) || !json_is_number(sc))
			goto out;
	}
	for (i = 0; i < json_array_size(ids); i++)
		merge_one(m, json_integer_value(json_array_get(ids, i)),
			  (float)json_number_value(json_array_get(scores, i)));
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static int call_start(CURLM *multi, struct call *c, const char *body, const char *auth_line,
		      int64_t left_ms)
{
	struct sbuf url = SBUF_INIT;
	char *u;

	sbuf_init(&c->body, 4096);
	sbuf_addf(&url, "%s%s", c->peer->url, RAG_SHARD_PATH);
	u = sbuf_detach(&url, NULL);
	c->h = curl_easy_init();
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->headers && auth_line) {
		struct curl_slist *more = curl_slist_append(c->headers, auth_line);

		if (!more) {
			curl_slist_free_all(c->headers);
			c->headers = NULL;
		} else {
			c->headers = more;
		}
	}
	if (!u || !c->h || !c->headers) {
		free(u);
		return -1;
	}
	curl_easy_setopt(c->h, CURLOPT_URL, u);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->h, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)(left_ms > 0 ? left_ms : 1));
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(left_ms < SHARD_CONNECT_MS ? (left_ms > 0 ? left_ms : 1)
							   : SHARD_CONNECT_MS));
	curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
	free(u);
	return curl_multi_add_handle(multi, c->h) == CURLM_OK ? 0 : -1;
}

static void call_release(CURLM *multi, struct call *c)
{
	if (c->h) {
		curl_multi_remove_handle(multi, c->h);
		curl_easy_cleanup(c->h);
	}
	curl_slist_free_all(c->headers);
	sbuf_release(&c->body);
	memset(c, 0, sizeof(*c));
}

/* Runs the round's calls to completion; *need loses the shards answered for. */
static void run_round(CURLM *multi, struct call *calls, size_t n_calls, struct merge *m,
		      uint64_t *need)
{
	int running = 1;

	while (running) {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &left))) {
			struct call *c = NULL;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result == CURLE_OK && status == 200 && !c->too_big &&
			    !sbuf_error(&c->body) && take_answer(c, m) == 0) {
				atomic_store(&c->peer->failed_ms, 0);
				*need &= ~c->covers;
			} else {
				log_warn("shard instance %s failed: %s (HTTP %ld)", c->peer->url,
					 msg->data.result == CURLE_OK ? "bad answer"
								      : curl_easy_strerror(msg->data.result),
					 status);
				atomic_store(&c->peer->failed_ms, mono_ms());
			}
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	for (size_t i = 0; i < n_calls; i++)
		call_release(multi, &calls[i]);
}

int rag_shards_search(struct rag_shards *sh, const char *collection, const float *vec,
		      size_t dim, size_t k, const char *filter_json, const char *authorization,
		      int64_t *ids, float *scores, size_t *n, struct rag_err *err)
{
	struct merge m = { ids, scores, *n, k };
	uint64_t all = sh->n_shards == 64 ? UINT64_MAX : (1ULL << sh->n_shards) - 1;
	uint64_t need = all & ~sh->held;
	int64_t deadline = mono_ms() + sh->timeout_ms;
	unsigned char *tried = calloc(sh->n_peers ? sh->n_peers : 1, 1);
	struct call *calls = calloc(sh->n_peers ? sh->n_peers : 1, sizeof(*calls));
	char *body = request_body(collection, vec, dim, k, filter_json);
	CURLM *multi = curl_multi_init();
	char *auth_line = NULL;
	int rc = 0;

	/* The caller's key goes on as it came (never with a line break: one header). */
	if (authorization && *authorization && !strpbrk(authorization, "\r\n")) {
		struct sbuf line = SBUF_INIT;

		sbuf_addf(&line, "Authorization: %s", authorization);
		auth_line = sbuf_detach(&line, NULL);
		if (!auth_line) {
			free(tried);
			free(calls);
			free(body);
			curl_multi_cleanup(multi);
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory fanning out a search");
		}
	}

	if (!tried || !calls || !body || !multi) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory fanning out a search");
		goto out;
	}
	while (need && rc == 0) {
		int64_t now = mono_ms();
		uint64_t planned = 0;
		size_t n_calls = 0;

		for (size_t s = 0; s < sh->n_shards && rc == 0; s++) {
			struct peer *p;

			if (!((need >> s) & 1) || ((planned >> s) & 1))
				continue;
			p = now < deadline ? choose(sh, s, tried, now) : NULL;
			if (!p) {
				rc = rag_err_set(err, RAG_EBUSY, NULL,
						 "shard %zu of %zu is unavailable: no instance holding "
						 "it answered",
						 s, sh->n_shards);
				break;
			}
			tried[p - sh->peers] = 1;
			calls[n_calls].peer = p;
			calls[n_calls].covers = need & p->mask & ~planned;
			planned |= calls[n_calls].covers;
			if (call_start(multi, &calls[n_calls], body, auth_line, deadline - now) < 0) {
				call_release(multi, &calls[n_calls]);
				rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory fanning out");
				break;
			}
			n_calls++;
		}
		if (rc == 0)
			run_round(multi, calls, n_calls, &m, &need);
		else
			for (size_t i = 0; i < n_calls; i++)
				call_release(multi, &calls[i]);
	}
	*n = m.n;
out:
	if (multi)
		curl_multi_cleanup(multi);
	free(auth_line);
	free(body);
	free(calls);
	free(tried);
	return rc;
}
