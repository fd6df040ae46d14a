/*
 * multipart/form-data bodies (http.h, http_multipart_each): libmicrohttpd's
 * post processor splits the buffered body into parts, and each part is
 * collected whole (name, file name, content type, bytes) before the
 * caller's callback sees it. The body is already within the request size
 * limit, so a part is too.
 */
#include "http/http.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

/* Collects one part at a time from libmicrohttpd's post processor. */
struct parts {
	int (*cb)(void *ctx, const struct http_part *part, struct rag_err *err);
	void *ctx;
	struct rag_err *err;
	char *name, *filename, *content_type;
	struct sbuf data;
	int open; /* a part is being collected */
	int rc;
};

static void part_flush(struct parts *p)
{
	struct http_part part;

	if (!p->open)
		return;
	p->open = 0;
	if (p->rc == 0 && sbuf_error(&p->data))
		p->rc = rag_err_set(p->err, RAG_ENOMEM, "body", "out of memory for the upload");
	if (p->rc == 0) {
		part.name = p->name ? p->name : "";
		part.filename = p->filename;
		part.content_type = p->content_type;
		part.data = p->data.buf;
		part.len = p->data.len;
		p->rc = p->cb(p->ctx, &part, p->err);
	}
	free(p->name);
	free(p->filename);
	free(p->content_type);
	p->name = p->filename = p->content_type = NULL;
	sbuf_reset(&p->data);
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *content_type,
			       const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	struct parts *p = cls;

	(void)kind, (void)transfer_encoding;
	if (off == 0) {
		part_flush(p);
		if (p->rc)
			return MHD_NO;
		p->open = 1;
		p->name = key ? strdup(key) : NULL;
		p->filename = filename ? strdup(filename) : NULL;
		p->content_type = content_type ? strdup(content_type) : NULL;
	}
	sbuf_add(&p->data, data, size);
	return MHD_YES;
}

int http_multipart_each(struct http_req *req,
			int (*cb)(void *ctx, const struct http_part *part, struct rag_err *err),
			void *ctx, struct rag_err *err)
{
	const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct parts p = { .cb = cb, .ctx = ctx, .err = err };
	struct MHD_PostProcessor *pp;
	enum MHD_Result ok;

	if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return rag_err_set(err, RAG_EINVAL, "body",
				   "the body must be multipart/form-data with one part per file");
	pp = MHD_create_post_processor(req->conn, 65536, on_part, &p);
	if (!pp)
		return rag_err_set(err, RAG_EINVAL, "body",
				   "multipart/form-data without a boundary");
	sbuf_init(&p.data, 0);
	ok = MHD_post_process(pp, req->body, req->body_len);
	MHD_destroy_post_processor(pp);
	if (p.rc == 0 && ok != MHD_YES)
		p.rc = rag_err_set(err, RAG_EINVAL, "body", "malformed multipart/form-data body");
	part_flush(&p);
	free(p.name);
	free(p.filename);
	free(p.content_type);
	sbuf_release(&p.data);
	return p.rc;
}

