/*
 * Asynchronous responses and server-sent events.
 *
 * A handler that would block (model inference) calls http_async(): the
 * server suspends the connection, so no HTTP thread waits, and runs the
 * work on a thread of its own. The work answers through the stream either
 * with one whole reply (http_stream_reply: any status, e.g. 503 when the
 * generator's queue is full) or with server-sent events
 * (http_stream_event: the first one sends 200 text/event-stream). Events
 * pass through a small bounded buffer: a slow reader slows the work down
 * instead of growing memory.
 *
 * A client that disconnects, or a server that stops, makes
 * http_stream_event return non-zero and http_stream_gone 1: the work
 * should stop (a generator's on_token returns non-zero).
 *
 * Thread-safety: a stream is shared by the server's threads and the work's
 * thread; every function here may be called from either. The server-side
 * functions (http_stream_attach and below) are for http_server.c only.
 */
#ifndef RAGD_HTTP_HTTP_STREAM_H
#define RAGD_HTTP_HTTP_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "http/http.h"

struct MHD_Connection;
struct MHD_Response;
struct http_stream;
struct http_server;

/* The work: runs on its own thread, answers through s, owns arg (frees it). */
typedef void (*http_async_fn)(struct http_stream *s, void *arg);

/*
 * From a handler: answer this request from fn(s, arg) on a worker thread.
 * Sets resp->stream; the handler then returns without writing a body.
 * Returns 0, or RAG_ENOMEM with the error written into resp (and fn not
 * called: the caller frees arg).
 */
int http_async(struct http_req *req, struct http_resp *resp, http_async_fn fn, void *arg);

/*
 * From the work: the whole response (status, JSON body; resp->body is
 * taken, resp->retry_after_s honoured). Only before any event; later calls
 * are ignored (after events, send an "error" event instead).
 */
void http_stream_reply(struct http_stream *s, struct http_resp *resp);

/*
 * From the work: one event, "event: <event>\ndata: <data>\n\n" (data one
 * line of JSON; with event NULL, the data line alone, as OpenAI's streams
 * have it). The first sends the 200 headers. Blocks while the buffer
 * is full. Returns 0, or 1 when the client is gone (stop working).
 */
int http_stream_event(struct http_stream *s, const char *event, const char *data, size_t len);

/* 1 once the client has disconnected or the server is stopping. */
int http_stream_gone(struct http_stream *s);

/* The request id, for logs from the work (borrowed while s lives). */
const char *http_stream_request_id(struct http_stream *s);

/* --- for http_server.c --- */

/* What the connection should answer once resumed. */
enum http_stream_state {
	HTTP_STREAM_PENDING,  /* nothing decided yet */
	HTTP_STREAM_REPLY,    /* a whole reply is ready */
	HTTP_STREAM_EVENTS,   /* events: answer 200 text/event-stream from the reader */
	HTTP_STREAM_ABORTED,  /* gone before anything was decided */
};

/*
 * Binds the stream to its suspended connection and starts the work.
 * Returns 0, or -1 when no thread could be started (the caller answers
 * 503 and releases the stream).
 */
int http_stream_launch(struct http_stream *s, struct http_server *srv,
		       struct MHD_Connection *conn, const char *request_id);

/* The state; with REPLY, moves the reply into *resp. */
enum http_stream_state http_stream_take(struct http_stream *s, struct http_resp *resp);

/* A libmicrohttpd response reading the events (200, text/event-stream). */
struct MHD_Response *http_stream_response(struct http_stream *s);

/* The connection finished (completed or dropped): the client is gone. */
void http_stream_close(struct http_stream *s);

/* Server stopping: the work must stop; a suspended connection is resumed. */
void http_stream_cancel(struct http_stream *s);

/* Drops one reference (the connection's or the work's). NULL-safe. */
void http_stream_unref(struct http_stream *s);

/* Cancels every stream whose request has not completed (server stopping); returns how many. */
int http_stream_cancel_all(void);

/* Workers still running, server-wide (they hold the engine). */
int http_stream_workers(void);

#endif
