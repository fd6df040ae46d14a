/*
 * Asynchronous responses and server-sent events on libmicrohttpd's
 * suspend/resume.
 *
 * The handler's thread suspends the connection and starts a worker; the
 * worker decides what the answer is (a whole reply, or events) and resumes
 * the connection, whereupon libmicrohttpd calls the access handler again
 * and the server queues either the reply or a response whose content
 * reader drains the event buffer. When the buffer is empty the reader
 * suspends the connection and returns 0; the next event resumes it. So no
 * HTTP thread ever waits for the model, and an idle stream costs a buffer
 * and a suspended socket.
 *
 * While a connection is suspended libmicrohttpd does not notice a
 * disconnect; it notices at the next write, which comes with the next
 * token (tens of milliseconds), and then the request-completed callback
 * marks the stream gone, so the worker's next event returns 1 and the
 * generation stops.
 *
 * Shutdown: libmicrohttpd aborts in MHD_stop_daemon while a connection is
 * suspended, so the server first cancels every stream (gone, resumed) and
 * waits for their connections to finish and their workers to return.
 *
 * Locking: each stream's `mu` guards everything below it in the struct;
 * `cond` wakes a worker waiting for room in the buffer. The registry of
 * live streams has its own lock, taken before a stream's, never after.
 * References: the connection holds one (until the request completes), the
 * registry one (from launch until the request completes), the worker one
 * (until fn returns), the event response one (until libmicrohttpd
 * destroys it).
 */
#include "http/http_stream.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

#define STREAM_BUFFER_MAX (64 * 1024) /* event bytes a slow client may leave unread */
#define STREAM_BLOCK 4096             /* bytes libmicrohttpd asks the reader for at once */
#define STREAM_STACK (512 * 1024)     /* the work's thread: inference runs in llama's threads */

struct http_stream {
	atomic_int refs;
	http_async_fn fn;
	void *arg;
	char request_id[80];
	struct http_stream *next, *prev; /* the registry, under reg_mu */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct MHD_Connection *conn; /* NULL once the request completed */
	enum http_stream_state state;
	struct http_resp reply; /* with HTTP_STREAM_REPLY */
	struct sbuf buf;        /* events not read yet, from `off` */
	size_t off;
	int suspended; /* the connection waits for us */
	int finished;  /* fn returned */
	int gone;      /* client disconnected or server stopping */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct http_stream *reg_head;
static atomic_int n_workers;

static void reg_add(struct http_stream *s)
{
	pthread_mutex_lock(&reg_mu);
	s->next = reg_head;
	if (reg_head)
		reg_head->prev = s;
	reg_head = s;
	pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(struct http_stream *s)
{
	pthread_mutex_lock(&reg_mu);
	if (s->prev)
		s->prev->next = s->next;
	else if (reg_head == s)
		reg_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	pthread_mutex_unlock(&reg_mu);
}

int http_async(struct http_req *req, struct http_resp *resp, http_async_fn fn, void *arg)
{
	struct http_stream *s = calloc(1, sizeof(*s));

	(void)req;
	if (!s) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		return RAG_ENOMEM;
	}
	atomic_init(&s->refs, 1);
	s->fn = fn;
	s->arg = arg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	sbuf_init(&s->buf, 0);
	sbuf_init(&s->reply.body, 0);
	s->state = HTTP_STREAM_PENDING;
	resp->stream = s;
	return 0;
}

void http_stream_unref(struct http_stream *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	sbuf_release(&s->buf);
	sbuf_release(&s->reply.body);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Resumes the connection if it waits for us. Under s->mu. */
static void wake(struct http_stream *s)
{
	if (s->suspended && s->conn) {
		s->suspended = 0;
		MHD_resume_connection(s->conn);
	}
}

static void *worker(void *arg)
{
	struct http_stream *s = arg;

	s->fn(s, s->arg);
	pthread_mutex_lock(&s->mu);
	s->finished = 1;
	if (s->state == HTTP_STREAM_PENDING && !s->gone) {
		s->reply.status = 500;
		sbuf_reset(&s->reply.body);
		http_errorf(&s->reply, RAG_EINTERNAL, NULL, "the request produced no response");
		s->state = HTTP_STREAM_REPLY;
	}
	wake(s);
	pthread_mutex_unlock(&s->mu);
	http_stream_unref(s);
	atomic_fetch_sub(&n_workers, 1);
	return NULL;
}

int http_stream_launch(struct http_stream *s, struct http_server *srv,
		       struct MHD_Connection *conn, const char *request_id)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	(void)srv;
	snprintf(s->request_id, sizeof(s->request_id), "%s", request_id);
	atomic_fetch_add(&s->refs, 1); /* the registry's, dropped by http_stream_close */
	reg_add(s);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, STREAM_STACK);
	pthread_mutex_lock(&s->mu);
	s->conn = conn;
	atomic_fetch_add(&s->refs, 1);
	atomic_fetch_add(&n_workers, 1);
	rc = pthread_create(&t, &attr, worker, s);
	if (rc == 0) {
		s->suspended = 1;
		MHD_suspend_connection(conn);
	} else {
		atomic_fetch_sub(&s->refs, 1);
		atomic_fetch_sub(&n_workers, 1);
		s->conn = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

void http_stream_reply(struct http_stream *s, struct http_resp *resp)
{
	pthread_mutex_lock(&s->mu);
	if (s->state == HTTP_STREAM_PENDING) {
		sbuf_release(&s->reply.body);
		s->reply = *resp;
		s->reply.stream = NULL;
		sbuf_init(&resp->body, 0);
		s->state = HTTP_STREAM_REPLY;
		wake(s);
	}
	pthread_mutex_unlock(&s->mu);
}

int http_stream_event(struct http_stream *s, const char *event, const char *data, size_t len)
{
	int gone;

	pthread_mutex_lock(&s->mu);
	if (s->state == HTTP_STREAM_PENDING && !s->gone)
		s->state = HTTP_STREAM_EVENTS;
	if (s->state == HTTP_STREAM_EVENTS && !s->gone) {
		if (event)
			sbuf_addf(&s->buf, "event: %s\n", event);
		sbuf_addstr(&s->buf, "data: ");
		sbuf_add(&s->buf, data, len);
		sbuf_addstr(&s->buf, "\n\n");
		wake(s);
		while (s->buf.len - s->off > STREAM_BUFFER_MAX && !s->gone)
			pthread_cond_wait(&s->cond, &s->mu);
	}
	gone = s->gone || sbuf_error(&s->buf) != 0;
	pthread_mutex_unlock(&s->mu);
	return gone;
}

int http_stream_gone(struct http_stream *s)
{
	int gone;

	pthread_mutex_lock(&s->mu);
	gone = s->gone;
	pthread_mutex_unlock(&s->mu);
	return gone;
}

const char *http_stream_request_id(struct http_stream *s)
{
	return s->request_id;
}

enum http_stream_state http_stream_take(struct http_stream *s, struct http_resp *resp)
{
	enum http_stream_state st;

	pthread_mutex_lock(&s->mu);
	st = s->state;
	if (st == HTTP_STREAM_PENDING && s->gone) {
		st = HTTP_STREAM_ABORTED;
	} else if (st == HTTP_STREAM_PENDING && s->conn) {
		s->suspended = 1; /* woken early: wait again */
		MHD_suspend_connection(s->conn);
	} else if (st == HTTP_STREAM_REPLY) {
		sbuf_release(&resp->body);
		*resp = s->reply;
		sbuf_init(&s->reply.body, 0);
	}
	pthread_mutex_unlock(&s->mu);
	return st;
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_stream *s = cls;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&s->mu);
	if (s->buf.len > s->off) {
		size_t k = s->buf.len - s->off < max ? s->buf.len - s->off : max;

		memcpy(out, s->buf.buf + s->off, k);
		s->off += k;
		if (s->off == s->buf.len) {
			sbuf_reset(&s->buf);
			s->off = 0;
		}
		pthread_cond_broadcast(&s->cond);
		n = (ssize_t)k;
	} else if (s->gone) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (s->finished) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->suspended = 1;
		MHD_suspend_connection(s->conn);
		n = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void reader_free(void *cls)
{
	http_stream_unref(cls);
}

struct MHD_Response *http_stream_response(struct http_stream *s)
{
	struct MHD_Response *r;

	atomic_fetch_add(&s->refs, 1);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, reader, s,
					      reader_free);
	if (!r) {
		atomic_fetch_sub(&s->refs, 1);
		return NULL;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass events at once */
	return r;
}

void http_stream_close(struct http_stream *s)
{
	int registered;

	pthread_mutex_lock(&reg_mu);
	registered = reg_head == s || s->prev || s->next;
	pthread_mutex_unlock(&reg_mu);
	pthread_mutex_lock(&s->mu);
	s->gone = 1;
	s->conn = NULL;
	s->suspended = 0;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	if (registered) {
		reg_remove(s);
		http_stream_unref(s);
	}
}

void http_stream_cancel(struct http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->gone = 1;
	pthread_cond_broadcast(&s->cond);
	wake(s);
	pthread_mutex_unlock(&s->mu);
}

int http_stream_cancel_all(void)
{
	struct http_stream *batch[64];
	int live = 0;
	size_t n = 0;

	/* References taken under the registry lock, cancels made outside it. */
	pthread_mutex_lock(&reg_mu);
	for (struct http_stream *s = reg_head; s; s = s->next) {
		live++;
		if (n < 64) {
			atomic_fetch_add(&s->refs, 1);
			batch[n++] = s;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	for (size_t i = 0; i < n; i++) {
		http_stream_cancel(batch[i]);
		http_stream_unref(batch[i]);
	}
	return live;
}

int http_stream_workers(void)
{
	return atomic_load(&n_workers);
}
