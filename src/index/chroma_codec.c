/*
 * The JSON bodies of the Chroma calls (see chroma_client.h).
 *
 * Request bodies are written straight into an sbuf: they are flat arrays
 * of numbers and base64 strings, and building a jansson tree of 1024 x 384
 * reals only to serialise it again costs more than the request. Embeddings
 * on writes are base64 of little-endian float32 (what Chroma's own Python
 * client sends when the server says supports_base64_encoding): exact and
 * a third the size of decimal text. Query vectors must be decimal; "%.9g"
 * round-trips every float32 exactly.
 *
 * Base64 is the dozen lines below rather than libsodium's
 * sodium_bin2base64: one function did not seem worth a new library to link.
 *
 * Answers are parsed with jansson, strictly: anything unexpected is RAG_EIO
 * naming what was wrong, never a crash or a silently short result.
 */
#include "index/chroma_client.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

size_t chroma_base64(const void *data, size_t len, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = abc[(v >> 6) & 63];
		out[o++] = abc[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static void add_ids(struct sbuf *sb, const int64_t *ids, size_t n)
{
	sbuf_addstr(sb, "\"ids\":[");
	for (size_t i = 0; i < n; i++)
		sbuf_addf(sb, "%s\"%" PRId64 "\"", i ? "," : "", ids[i]);
	sbuf_addch(sb, ']');
}

int chroma_encode_upsert(struct sbuf *sb, const int64_t *ids, const float *vecs, size_t n,
			 size_t dim)
{
	size_t raw = dim * sizeof(float);
	char *b64 = malloc(4 * ((raw + 2) / 3) + 1);

	if (!b64)
		return RAG_ENOMEM;
	sbuf_addch(sb, '{');
	add_ids(sb, ids, n);
	sbuf_addstr(sb, ",\"embeddings\":[");
	for (size_t i = 0; i < n; i++) {
		/* x86-64 and arm64 are little-endian, as Chroma's base64 floats are. */
		size_t len = chroma_base64(vecs + i * dim, raw, b64);

		sbuf_addstr(sb, i ? ",\"" : "\"");
		sbuf_add(sb, b64, len);
		sbuf_addch(sb, '"');
	}
	sbuf_addstr(sb, "],\"metadatas\":[");
	for (size_t i = 0; i < n; i++)
		sbuf_addf(sb, "%s{\"rid\":%" PRId64 "}", i ? "," : "", ids[i]);
	sbuf_addstr(sb, "]}");
	free(b64);
	return sbuf_error(sb) ? RAG_ENOMEM : 0;
}

int chroma_encode_delete(struct sbuf *sb, const int64_t *ids, size_t n)
{
	sbuf_addch(sb, '{');
	add_ids(sb, ids, n);
	sbuf_addch(sb, '}');
	return sbuf_error(sb) ? RAG_ENOMEM : 0;
}

int chroma_encode_query(struct sbuf *sb, const struct chroma_query *q)
{
	if (q->n_results == 0 || !q->vec || (q->where_ids && q->n_where_ids == 0))
		return RAG_EINVAL;
	sbuf_addstr(sb, "{\"query_embeddings\":[[");
	for (size_t i = 0; i < q->dim; i++) {
		if (!isfinite(q->vec[i]))
			return RAG_EINVAL;
		sbuf_addf(sb, "%s%.9g", i ? "," : "", (double)q->vec[i]);
	}
	sbuf_addf(sb, "]],\"n_results\":%zu,\"include\":[\"distances\"]", q->n_results);
	if (q->where_ids) {
		sbuf_addstr(sb, ",\"where\":{\"rid\":{\"$in\":[");
		for (size_t i = 0; i < q->n_where_ids; i++)
			sbuf_addf(sb, "%s%" PRId64, i ? "," : "", q->where_ids[i]);
		sbuf_addstr(sb, "]}}");
	}
	sbuf_addch(sb, '}');
	return sbuf_error(sb) ? RAG_ENOMEM : 0;
}

static int parse_id(const char *s, int64_t *out)
{
	char *end;

	if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

int chroma_decode_query(const char *body, size_t len, size_t max, int64_t *out_ids,
			float *out_dists, size_t *n_out, struct rag_err *err)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	json_t *ids = json_array_get(json_object_get(root, "ids"), 0);
	json_t *dists = json_array_get(json_object_get(root, "distances"), 0);
	size_t n = json_array_size(ids);
	int rc = 0;

	*n_out = 0;
	if (!json_is_array(ids) || !json_is_array(dists) || json_array_size(dists) != n) {
		rc = rag_err_set(err, RAG_EIO, NULL,
				 "Chroma's query answer has no ids and distances of one length");
		goto out;
	}
	if (n > max) {
		rc = rag_err_set(err, RAG_EIO, NULL,
				 "Chroma answered %zu results where %zu were asked for", n, max);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(dists, i);

		if (parse_id(json_string_value(json_array_get(ids, i)), &out_ids[i]) < 0 ||
		    !json_is_number(d)) {
			rc = rag_err_set(err, RAG_EIO, NULL,
					 "Chroma's query answer holds a record that is not ragd's "
					 "(result %zu)", i);
			goto out;
		}
		out_dists[i] = (float)json_number_value(d);
	}
	*n_out = n;
out:
	json_decref(root);
	return rc;
}

int chroma_decode_collection(const char *body, size_t len, char id_out[CHROMA_ID_MAX],
			     size_t *dim_out, struct rag_err *err)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *id = json_string_value(json_object_get(root, "id"));
	json_t *dim = json_object_get(root, "dimension");
	int rc = 0;

	if (!id || !*id || strlen(id) >= CHROMA_ID_MAX ||
	    !(json_is_null(dim) || !dim || (json_is_integer(dim) && json_integer_value(dim) >= 0)))
		rc = rag_err_set(err, RAG_EIO, NULL, "Chroma's answer is not a collection");
	else {
		snprintf(id_out, CHROMA_ID_MAX, "%s", id);
		*dim_out = json_is_integer(dim) ? (size_t)json_integer_value(dim) : 0;
	}
	json_decref(root);
	return rc;
}

#define CHROMA_RAW_ERROR_MAX 200 /* bytes of a non-JSON error body worth quoting */

void chroma_decode_error(const char *body, size_t len, char *msg, size_t msg_len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *kind = json_string_value(json_object_get(root, "error"));
	const char *text = json_string_value(json_object_get(root, "message"));

	if (kind || text)
		snprintf(msg, msg_len, "%s%s%s", kind ? kind : "", kind && text ? ": " : "",
			 text ? text : "");
	else
		snprintf(msg, msg_len, "%.*s", (int)(len < CHROMA_RAW_ERROR_MAX ? len
									 : CHROMA_RAW_ERROR_MAX),
			 body ? body : "");
	json_decref(root);
}
