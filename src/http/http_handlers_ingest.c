/*
 * Bulk ingestion and document browsing routes: batch JSON ingest and
 * multipart file upload (both answered 202 with a job id: the documents
 * are embedded in the background, see rag_jobs.c), job status and cancel,
 * paginated document listing with metadata filters, a document's chunks.
 *
 * The rule for 202: every batch and every upload is a job, whatever its
 * size, so a client has one code path (poll the job) and a slow embedder
 * never holds a connection; POST .../documents stays synchronous for one
 * document.
 *
 * Server-side paths in a batch ("path" instead of "text") are refused
 * unless ingest.root is configured, and then must resolve (symlinks
 * included, by realpath) to a regular file below that root.
 */
#include "http/http_handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "http/http_json.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"

#include "core/banned.h"

#define HTTP_LIST_DEFAULT 100 /* documents per page unless asked */
#define HTTP_LIST_MAX 1000    /* a page's documents at most */
#define HTTP_JOB_ERRORS_MAX 100 /* per-file errors a job status lists */

/* Items being built for a job; their strings and bodies are owned here. */
struct batch {
	struct store_job_item *items;
	size_t n, alloc;
};

static void batch_release(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free((char *)b->items[i].doc_id);
		free((char *)b->items[i].name);
		free((char *)b->items[i].content_type);
		free((char *)b->items[i].format);
		free((char *)b->items[i].metadata_json);
		free((void *)b->items[i].body);
	}
	free(b->items);
}

static struct store_job_item *batch_add(struct batch *b)
{
	if (b->n == b->alloc) {
		size_t alloc = b->alloc ? 2 * b->alloc : 16;
		struct store_job_item *grown = reallocarray(b->items, alloc, sizeof(*grown));

		if (!grown)
			return NULL;
		b->items = grown;
		b->alloc = alloc;
	}
	memset(&b->items[b->n], 0, sizeof(b->items[0]));
	return &b->items[b->n++];
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/*
 * Reads the server-side file `path` (relative to the ingest root, or
 * absolute inside it) into *body. The resolved path must lie below the
 * root: ".." and symlinks that lead out are refused like any other path
 * outside it.
 */
static int read_confined(struct http_ctx *ctx, const char *path, const char *field, void **body,
			 size_t *len, struct rag_err *err)
{
	char root[PATH_MAX], full[PATH_MAX], *joined = NULL;
	struct stat sb;
	size_t root_len;
	char *buf;
	ssize_t got = 0;
	int fd, rc = 0;

	if (!ctx->ingest_root || !*ctx->ingest_root)
		return rag_err_set(err, RAG_EINVAL, field,
				   "server-side paths are not accepted (ingest.root is not set)");
	if (!realpath(ctx->ingest_root, root))
		return rag_err_set(err, RAG_EIO, field, "ingest root '%s': %s", ctx->ingest_root,
				   strerror(errno));
	if (path[0] == '/')
		joined = strdup(path);
	else if (asprintf(&joined, "%s/%s", root, path) < 0)
		joined = NULL;
	if (!joined)
		return rag_err_set(err, RAG_ENOMEM, field, "out of memory");
	if (!realpath(joined, full)) {
		free(joined);
		return rag_err_set(err, RAG_EINVAL, field, "path '%s' does not exist", path);
	}
	free(joined);
	root_len = strlen(root);
	if (strncmp(full, root, root_len) != 0 || (full[root_len] != '/' && root_len > 1))
		return rag_err_set(err, RAG_EINVAL, field, "path '%s' is outside the ingest root",
				   path);
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		return rag_err_set(err, RAG_EINVAL, field, "path '%s' is not a readable file", path);
	}
	if ((size_t)sb.st_size > ctx->max_file_bytes) {
		close(fd);
		return rag_err_set(err, RAG_ETOOBIG, field,
				   "file '%s' is %lld bytes, over ingest.max_file_bytes (%zu)", path,
				   (long long)sb.st_size, ctx->max_file_bytes);
	}
	buf = malloc((size_t)sb.st_size + 1);
	while (buf && (size_t)got < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)sb.st_size - (size_t)got);

		if (r <= 0)
			break;
		got += r;
	}
	close(fd);
	if (!buf || (size_t)got != (size_t)sb.st_size) {
		free(buf);
		rc = rag_err_set(err, RAG_EIO, field, "cannot read '%s'", path);
		return rc;
	}
	*body = buf;
	*len = (size_t)got;
	return 0;
}

static void reply_job(struct http_resp *resp, const char *job_id, size_t n)
{
	char link[64];

	snprintf(link, sizeof(link), "/v1/jobs/%s", job_id);
	http_json_reply(resp, 202,
			json_pack("{s:s, s:s, s:I, s:s}", "job_id", job_id, "state", "queued",
				  "documents", (json_int_t)n, "status_url", link));
}

static int submit(struct http_req *req, struct http_resp *resp, struct batch *b)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };
	char job_id[RAG_JOB_ID_MAX + 1];

	if (!eng)
		return 0;
	if (rag_job_submit(eng, req->who.tenant, req->params[0], b->items, b->n, job_id,
			   &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	reply_job(resp, job_id, b->n);
	return 0;
}

/* One entry of a batch's "documents" array into an item; field names its place. */
static int batch_item(struct http_req *req, json_t *d, size_t i, struct store_job_item *it,
		      struct http_resp *resp)
{
	static const char *const keys[] = { "id", "text", "path", "format", "content_type",
					    "metadata", NULL };
	const char *id = NULL, *text = NULL, *path = NULL, *format = NULL, *ct = NULL;
	struct rag_err err = { 0 };
	char field[64], *meta = NULL;
	size_t text_len = 0;
	const char *key;
	json_t *v;

	snprintf(field, sizeof(field), "documents[%zu]", i);
	if (!json_is_object(d)) {
		http_errorf(resp, RAG_EINVAL, field, "%s must be an object", field);
		return -1;
	}
	json_object_foreach(d, key, v) {
		size_t k = 0;

		while (keys[k] && strcmp(keys[k], key) != 0)
			k++;
		if (!keys[k]) {
			http_errorf(resp, RAG_EINVAL, field, "%s: unknown field '%s'", field, key);
			return -1;
		}
	}
	if (http_json_string(d, "id", 0, &id, NULL, resp) < 0 ||
	    http_json_string(d, "text", 0, &text, &text_len, resp) < 0 ||
	    http_json_string(d, "path", 0, &path, NULL, resp) < 0 ||
	    http_json_string(d, "format", 0, &format, NULL, resp) < 0 ||
	    http_json_string(d, "content_type", 0, &ct, NULL, resp) < 0 ||
	    http_json_object_text(d, "metadata", &meta, resp) < 0)
		return -1;
	if (!text == !path) {
		free(meta);
		http_errorf(resp, RAG_EINVAL, field, "%s needs exactly one of 'text' and 'path'",
			    field);
		return -1;
	}
	it->doc_id = dup_or_null(id);
	it->metadata_json = meta;
	it->content_type = dup_or_null(ct);
	if (text) {
		void *body = malloc(text_len + 1);

		if (body)
			memcpy(body, text, text_len);
		it->body = body;
		it->body_len = text_len;
		it->format = strdup(format ? format : "");
	} else {
		const char *base = strrchr(path, '/');
		void *body = NULL;
		size_t len = 0;

		snprintf(field, sizeof(field), "documents[%zu].path", i);
		if (read_confined(req->ctx, path, field, &body, &len, &err) < 0) {
			http_error(resp, &err);
			return -1;
		}
		it->body = body;
		it->body_len = len;
		it->name = strdup(base ? base + 1 : path);
		it->format = strdup(format ? format : "auto");
	}
	if (!it->body || !it->format) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
		return -1;
	}
	return 0;
}

int http_documents_batch(struct http_req *req, struct http_resp *resp)
{
	static const char *const allowed[] = { "documents", NULL };
	struct batch b = { 0 };
	json_t *body, *docs;
	size_t i;

	body = http_json_body(req, resp, allowed);
	if (!body)
		return 0;
	docs = json_object_get(body, "documents");
	if (!json_is_array(docs) || json_array_size(docs) == 0) {
		http_errorf(resp, RAG_EINVAL, "documents",
			    "field 'documents' must be a non-empty array");
		goto out;
	}
	for (i = 0; i < json_array_size(docs); i++) {
		struct store_job_item *it = batch_add(&b);

		if (!it) {
			http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
			goto out;
		}
		if (batch_item(req, json_array_get(docs, i), i, it, resp) < 0)
			goto out;
	}
	submit(req, resp, &b);
out:
	batch_release(&b);
	json_decref(body);
	return 0;
}

/* The form's plain fields and its files, gathered before any is used. */
struct upload {
	struct batch b;
	char *metadata;
	char *format;
	size_t max_file;
};

static int on_part(void *ctx, const struct http_part *p, struct rag_err *err)
{
	struct upload *u = ctx;
	struct store_job_item *it;
	void *body;

	if (!p->filename) {
		char **slot = strcmp(p->name, "metadata") == 0 ? &u->metadata
			      : strcmp(p->name, "format") == 0 ? &u->format
							       : NULL;

		if (!slot)
			return rag_err_set(err, RAG_EINVAL, p->name,
					   "unknown form field '%s' (files, 'metadata', 'format')",
					   p->name);
		free(*slot);
		*slot = strndup(p->data, p->len);
		return *slot ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	if (p->len > u->max_file)
		return rag_err_set(err, RAG_ETOOBIG, p->name,
				   "file '%s' is %zu bytes, over ingest.max_file_bytes (%zu)",
				   p->filename, p->len, u->max_file);
	it = batch_add(&u->b);
	body = malloc(p->len + 1);
	if (!it || !body) {
		free(body);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	}
	memcpy(body, p->data, p->len);
	it->body = body;
	it->body_len = p->len;
	it->name = strdup(p->filename);
	it->content_type = dup_or_null(p->content_type);
	return it->name ? 0 : rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
}

int http_documents_upload(struct http_req *req, struct http_resp *resp)
{
	struct upload u = { .max_file = req->ctx->max_file_bytes };
	struct rag_err err = { 0 };
	json_t *meta = NULL;

	if (http_multipart_each(req, on_part, &u, &err) < 0) {
		http_error(resp, &err);
		goto out;
	}
	if (u.b.n == 0) {
		http_errorf(resp, RAG_EINVAL, "file", "the form holds no file");
		goto out;
	}
	if (u.metadata) {
		json_error_t jerr;

		meta = json_loads(u.metadata, 0, &jerr);
		if (!json_is_object(meta)) {
			http_errorf(resp, RAG_EINVAL, "metadata", "form field 'metadata' must be a"
				    " JSON object");
			goto out;
		}
	}
	for (size_t i = 0; i < u.b.n; i++) {
		struct store_job_item *it = &u.b.items[i];
		char id[RAG_DOC_ID_MAX + 1];

		rag_doc_id_from_name(it->name, id, sizeof(id));
		it->doc_id = strdup(id);
		it->format = strdup(u.format ? u.format : "auto");
		it->metadata_json = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (!it->doc_id || !it->format) {
			http_errorf(resp, RAG_ENOMEM, NULL, "out of memory");
			goto out;
		}
	}
	submit(req, resp, &u.b);
out:
	json_decref(meta);
	free(u.metadata);
	free(u.format);
	batch_release(&u.b);
	return 0;
}

/* Documents (or chunks, or bytes) per second, and the seconds left, from the counters. */
static json_t *job_json(const struct store_job *j, int64_t now, struct store_job_item *errs,
			size_t n_errs)
{
	int64_t end = j->finished_at ? j->finished_at : now;
	double secs = j->started_at ? (double)(end - j->started_at) / 1000.0 : 0;
	int64_t processed = j->n_done + j->n_failed + j->n_skipped;
	double docs_s = secs > 0 ? (double)processed / secs : 0;
	json_t *eta = json_null(), *arr = json_array();

	if (j->state <= STORE_JOB_RUNNING && docs_s > 0)
		eta = json_real((double)(j->n_total - processed) / docs_s);
	else if (j->state > STORE_JOB_RUNNING)
		eta = json_real(0);
	for (size_t i = 0; i < n_errs; i++)
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "index",
						     (json_int_t)errs[i].idx, "id", errs[i].doc_id,
						     "file", errs[i].name, "error", errs[i].error));
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
			  " s:{s:f, s:f, s:f, s:f}, s:o, s:o, s:I, s:I, s:I, s:o}",
			 "id", j->id, "collection", j->collection, "kind", j->kind, "state",
			 store_job_state_name(j->state), "counts", "total", (json_int_t)j->n_total,
			 "done", (json_int_t)j->n_done, "unchanged", (json_int_t)j->n_skipped,
			 "failed", (json_int_t)j->n_failed, "pending",
			 (json_int_t)(j->n_total - processed), "chunks", (json_int_t)j->n_chunks,
			 "bytes", (json_int_t)j->n_bytes, "throughput", "documents_per_s", docs_s,
			 "chunks_per_s", secs > 0 ? (double)j->n_chunks / secs : 0.0, "mb_per_s",
			 secs > 0 ? (double)j->n_bytes / 1e6 / secs : 0.0, "elapsed_s", secs,
			 "eta_s", eta, "errors", arr, "created_at", (json_int_t)j->created_at,
			 "started_at", (json_int_t)j->started_at, "finished_at",
			 (json_int_t)j->finished_at, "error", *j->error ? json_string(j->error) : json_null());
}

int http_job_get(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct store_job_item *errs = NULL;
	struct rag_err err = { 0 };
	struct store_job job;
	size_t n_errs = 0;

	if (!eng)
		return 0;
	if (rag_job_get(eng, req->who.tenant, req->params[0], &job, &err) < 0 ||
	    rag_job_errors(eng, job.id, HTTP_JOB_ERRORS_MAX, &errs, &n_errs, &err) < 0) {
		store_job_release(&job);
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, job_json(&job, rag_engine_wall_ms(), errs, n_errs));
	store_job_items_free(errs, n_errs);
	store_job_release(&job);
	return 0;
}

int http_job_cancel(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct rag_err err = { 0 };

	if (!eng)
		return 0;
	if (rag_job_cancel(eng, req->who.tenant, req->params[0], &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	http_json_reply(resp, 200, json_pack("{s:s, s:s}", "id", req->params[0], "state",
					     "cancelled"));
	return 0;
}

int http_documents_list(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	const char *limit_s = http_query_param(req, "limit"), *filter_s = http_query_param(req, "filter");
	struct store_doc_query q = { http_query_param(req, "cursor"), HTTP_LIST_DEFAULT, NULL };
	struct rag_filter *filter = NULL;
	struct store_doc *docs = NULL;
	struct rag_err err = { 0 };
	size_t n = 0;
	json_t *arr;

	if (!eng)
		return 0;
	if (limit_s) {
		char *end;
		long v = strtol(limit_s, &end, 10);

		if (end == limit_s || *end || v < 1 || v > HTTP_LIST_MAX) {
			http_errorf(resp, RAG_EINVAL, "limit", "limit must be 1 to %d",
				    HTTP_LIST_MAX);
			return 0;
		}
		q.limit = (size_t)v;
	}
	if (filter_s && rag_filter_parse(filter_s, strlen(filter_s), &filter, &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	q.filter = rag_filter_tree(filter);
	if (rag_doc_list(eng, req->who.tenant, req->params[0], &q, &docs, &n, &err) < 0) {
		rag_filter_free(filter);
		http_error(resp, &err);
		return 0;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(
			arr, json_pack("{s:s, s:o, s:s, s:I, s:I, s:I}", "id", docs[i].id,
				       "metadata", http_json_parse_object(docs[i].metadata_json),
				       "content_hash", docs[i].content_hash, "chunks",
				       (json_int_t)docs[i].n_chunks, "created_at",
				       (json_int_t)docs[i].created_at, "updated_at",
				       (json_int_t)docs[i].updated_at));
	http_json_reply(resp, 200, json_pack("{s:o, s:o}", "documents", arr, "next_cursor",
					     n == q.limit ? json_string(docs[n - 1].id) : json_null()));
	store_doc_list_free(docs, n);
	rag_filter_free(filter);
	return 0;
}

int http_document_chunks(struct http_req *req, struct http_resp *resp)
{
	struct rag_engine *eng = http_engine(req, resp);
	struct store_hit *hits = NULL;
	struct rag_err err = { 0 };
	size_t n = 0;
	json_t *arr;

	if (!eng)
		return 0;
	if (rag_doc_chunks(eng, req->who.tenant, req->params[0], req->params[1], &hits, &n,
			   &err) < 0) {
		http_error(resp, &err);
		return 0;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(
			arr, json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "chunk_id",
				       (json_int_t)hits[i].id, "ordinal", (json_int_t)hits[i].ordinal,
				       "start", (json_int_t)hits[i].start_byte, "end",
				       (json_int_t)hits[i].end_byte, "page", (json_int_t)hits[i].page,
				       "section", hits[i].section, "text", hits[i].text, "hash",
				       hits[i].hash, "model", hits[i].model));
	http_json_reply(resp, 200, json_pack("{s:s, s:o}", "document_id", req->params[1],
					     "chunks", arr));
	store_hits_release(hits, n);
	free(hits);
	return 0;
}
