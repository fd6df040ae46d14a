/*
 * Model pool transport: JSON POSTs with libcurl's easy interface, retries
 * across instances within a deadline, and the health-check thread.
 *
 * Easy handles are kept on a small stack after use so that their open
 * connections are reused (keep-alive) by the next call on any thread; the
 * multi interface would save threads, but every caller here is already a
 * request thread that must wait for the answer, so blocking calls are
 * simpler and cost nothing extra.
 *
 * Locking: curl_mu guards idle/n_idle; stop_mu/stop_cond wake the health
 * thread at shutdown. Routing state is model_pool.c's (its mu).
 */
#include "model/model_pool.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/model_pool_int.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define POOL_IDLE_MAX 16        /* handles kept: one per request thread is plenty */
#define POOL_HEALTH_TIMEOUT_MS 2000 /* a health answer slower than this is a failure */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static CURL *handle_take(struct model_pool *p)
{
	CURL *h = NULL;

	pthread_mutex_lock(&p->curl_mu);
	if (p->n_idle > 0)
		h = p->idle[--p->n_idle];
	pthread_mutex_unlock(&p->curl_mu);
	if (h)
		curl_easy_reset(h); /* options go, connections stay */
	else
		h = curl_easy_init();
	return h;
}

static void handle_give(struct model_pool *p, CURL *h)
{
	pthread_mutex_lock(&p->curl_mu);
	if (p->n_idle < POOL_IDLE_MAX) {
		p->idle[p->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&p->curl_mu);
	if (h)
		curl_easy_cleanup(h);
}

struct attempt {
	CURL *h;
	const struct model_pool_request *req;
	struct sbuf *out;   /* the 2xx body when not streaming */
	struct sbuf errbody; /* a non-2xx body, for the message */
	long status;
	int delivered;      /* on_data got something: no retry */
	int cancelled;      /* on_data asked to stop */
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct attempt *a = arg;
	size_t len = size * nmemb;

	if (a->status == 0)
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status < 200 || a->status >= 300) {
		if (a->errbody.len < 4096)
			sbuf_add(&a->errbody, data, len);
		return len;
	}
	if (!a->req->on_data) {
		sbuf_add(a->out, data, len);
		return sbuf_error(a->out) ? 0 : len;
	}
	a->delivered = 1;
	if (a->req->on_data(a->req->ctx, data, len) != 0) {
		a->cancelled = 1;
		return 0;
	}
	return len;
}

/* The message in an OpenAI- or ragd-shaped error body, else the body's start. */
static void error_message(const struct sbuf *body, char *out, size_t size)
{
	json_t *root = json_loadb(body->buf, body->len, 0, NULL);
	json_t *msg = json_object_get(json_object_get(root, "error"), "message");

	if (json_is_string(msg))
		snprintf(out, size, "%s", json_string_value(msg));
	else
		snprintf(out, size, "%.*s", (int)(body->len < 200 ? body->len : 200), body->buf);
	json_decref(root);
}

/* One attempt on instance i; returns the curl code, fills a->status. */
static CURLcode attempt_on(struct model_pool *p, size_t i, struct attempt *a, long timeout_ms)
{
	struct curl_slist *hdrs = NULL;
	struct sbuf url = SBUF_INIT, auth = SBUF_INIT;
	CURLcode rc;

	sbuf_addf(&url, "%s%s", p->in[i].url, a->req->path);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (p->api_key) {
		sbuf_addf(&auth, "Authorization: Bearer %s", p->api_key);
		hdrs = curl_slist_append(hdrs, auth.buf);
	}
	curl_easy_setopt(a->h, CURLOPT_URL, url.buf);
	curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, a->req->body);
	curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->req->body_len);
	curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT_MS, (long)p->opts.connect_timeout_ms);
	curl_easy_setopt(a->h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(a->h, CURLOPT_WRITEDATA, a);
	rc = curl_easy_perform(a->h);
	if (a->status == 0)
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
	curl_slist_free_all(hdrs);
	sbuf_release(&url);
	sbuf_release(&auth);
	return rc;
}

int model_pool_post(struct model_pool *p, const struct model_pool_request *req,
		    struct sbuf *out, struct rag_err *err)
{
	double start = model_pool_now_ms();
	double deadline = start + (req->deadline_ms > 0 ? req->deadline_ms : p->opts.deadline_ms);
	const void *key = req->key ? req->key : req->body;
	size_t key_len = req->key ? req->key_len : req->body_len;
	char last[256] = "no instance was tried";
	uint64_t tried = 0;
	int rc = RAG_EBUSY;
	CURL *h;

	pthread_once(&curl_once, curl_init);
	h = handle_take(p);
	if (!h)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory for an HTTP handle");
	for (;;) {
		struct attempt a = { .h = h, .req = req, .out = out };
		double now = model_pool_now_ms(), left = deadline - now, t_end;
		long timeout = p->opts.request_timeout_ms;
		int i, outcome;
		CURLcode cc;

		if (left < 1)
			break;
		i = model_pool_pick(p, key, key_len, tried, now);
		if (i < 0)
			break;
		tried |= 1ULL << i;
		if (timeout > (long)left)
			timeout = (long)left;
		sbuf_init(&a.errbody, 0);
		if (out)
			sbuf_reset(out);
		cc = attempt_on(p, (size_t)i, &a, timeout);
		t_end = model_pool_now_ms();
		if (cc == CURLE_OK && a.status >= 200 && a.status < 300)
			outcome = POOL_OK;
		else if (a.cancelled)
			outcome = POOL_OK;
		else if (cc == CURLE_OK && a.status >= 400 && a.status < 500 && a.status != 408 &&
			 a.status != 429)
			outcome = POOL_CLIENT_ERROR;
		else
			outcome = POOL_FAILED;
		metric_inc(p->in[i].m_requests[outcome]);
		metric_observe(p->in[i].m_duration, t_end - now);
		model_pool_done(p, i, outcome != POOL_FAILED, t_end);
		if (outcome == POOL_OK) {
			rc = out && sbuf_error(out) ? rag_err_set(err, RAG_ENOMEM, NULL,
								  "out of memory reading a response")
						    : 0;
			sbuf_release(&a.errbody);
			break;
		}
		if (cc != CURLE_OK)
			snprintf(last, sizeof(last), "%s: %s", p->in[i].url, curl_easy_strerror(cc));
		else
			error_message(&a.errbody, last, sizeof(last));
		sbuf_release(&a.errbody);
		if (outcome == POOL_CLIENT_ERROR) {
			rc = rag_err_set(err, a.status == 404 ? RAG_ENOTFOUND : RAG_EINVAL, NULL,
					 "model server %s refused the request (%ld): %s",
					 p->in[i].url, a.status, last);
			break;
		}
		log_warn("model pool '%s': %s failed (%s), %s", p->name, p->in[i].url, last,
			 a.delivered ? "mid-stream, not retried" : "retrying elsewhere");
		if (a.delivered) {
			rc = rag_err_set(err, RAG_EIO, NULL, "model server %s failed mid-answer: %s",
					 p->in[i].url, last);
			break;
		}
	}
	handle_give(p, h);
	if (rc == RAG_EBUSY)
		rag_err_set(err, RAG_EBUSY, NULL,
			    "no model instance of '%s' answered within %.0f ms (last: %s)", p->name,
			    model_pool_now_ms() - start, last);
	return rc;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data, (void)arg;
	return size * nmemb;
}

static int check_one(struct model_pool *p, CURL *h, size_t i)
{
	struct sbuf url = SBUF_INIT;
	long status = 0;
	CURLcode cc;

	sbuf_addf(&url, "%s%s", p->in[i].url, p->health_path);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url.buf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)p->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)POOL_HEALTH_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	sbuf_release(&url);
	return cc == CURLE_OK && status >= 200 && status < 300;
}

static void *health_main(void *arg)
{
	struct model_pool *p = arg;
	CURL *h = curl_easy_init();

	pthread_mutex_lock(&p->stop_mu);
	while (!p->stopping) {
		struct timespec ts;

		pthread_mutex_unlock(&p->stop_mu);
		for (size_t i = 0; h && i < p->n; i++) {
			int was_up = model_pool_is_up(p, i), ok = check_one(p, h, i);

			model_pool_health(p, i, ok, model_pool_now_ms());
			if (was_up != ok)
				log_info("model pool '%s': %s %s", p->name, p->in[i].url,
					 ok ? "answers again: readmitted" : "failed its health check: ejected");
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += p->opts.health_interval_ms / 1000;
		ts.tv_nsec += (long)(p->opts.health_interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&p->stop_mu);
		while (!p->stopping &&
		       pthread_cond_timedwait(&p->stop_cond, &p->stop_mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&p->stop_mu);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

int pool_http_start(struct model_pool *p, struct rag_err *err)
{
	pthread_once(&curl_once, curl_init);
	pthread_mutex_init(&p->curl_mu, NULL);
	pthread_mutex_init(&p->stop_mu, NULL);
	pthread_cond_init(&p->stop_cond, NULL);
	p->http_started = 1;
	if (p->opts.health_interval_ms <= 0)
		return 0;
	if (pthread_create(&p->health, NULL, health_main, p) != 0)
		return rag_err_set(err, RAG_EINTERNAL, NULL, "cannot start the health-check thread");
	p->health_started = 1;
	return 0;
}

void pool_http_stop(struct model_pool *p)
{
	if (!p->http_started)
		return;
	if (p->health_started) {
		pthread_mutex_lock(&p->stop_mu);
		p->stopping = 1;
		pthread_cond_signal(&p->stop_cond);
		pthread_mutex_unlock(&p->stop_mu);
		pthread_join(p->health, NULL);
		p->health_started = 0;
	}
	for (int i = 0; i < p->n_idle; i++)
		curl_easy_cleanup(p->idle[i]);
	p->n_idle = 0;
	pthread_mutex_destroy(&p->curl_mu);
	pthread_mutex_destroy(&p->stop_mu);
	pthread_cond_destroy(&p->stop_cond);
	p->http_started = 0;
}
