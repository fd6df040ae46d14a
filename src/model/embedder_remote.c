/*
 * Remote embedder: POST /v1/embeddings to a pool of OpenAI-compatible
 * servers (other ragd instances, vLLM, llama.cpp's server, OpenAI).
 *
 * Texts go up in requests of at most EMBED_REMOTE_BATCH, as floats (every
 * OpenAI-compatible server speaks that; base64 is not universal), and come
 * back reordered by `index` and L2-normalised (not every server
 * normalises). The routing key is the request body, so with the hash
 * policy equal inputs reach the same warm instance.
 *
 * The dimension is learnt at start from one probe embedding. Token counts,
 * which the chunkers ask for, cannot be had from an OpenAI-compatible API:
 * they are estimated as one token per EMBED_REMOTE_BYTES_PER_TOKEN bytes,
 * an over-estimate for English WordPiece and BPE vocabularies (about 4.5
 * bytes a token), so chunks stay within the window the server reads.
 */
#include "model/embedder.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/model_pool.h"

#include "core/banned.h"

#define EMBED_REMOTE_BATCH 256         /* texts per upstream request */
#define EMBED_REMOTE_BYTES_PER_TOKEN 4 /* see the estimate above */

struct embedder_remote {
	struct embedder base;
	struct model_pool *pool;
};

void embedder_remote_default_options(struct embedder_remote_options *o)
{
	model_pool_default_options(&o->pool);
	o->pool.name = "embedder";
	o->model = "all-MiniLM-L6-v2";
	o->max_tokens = 512;
}

static void normalize(float *v, size_t dim)
{
	double sum = 0.0;

	for (size_t i = 0; i < dim; i++)
		sum += (double)v[i] * v[i];
	if (sum > 0.0) {
		float inv = (float)(1.0 / sqrt(sum));

		for (size_t i = 0; i < dim; i++)
			v[i] *= inv;
	}
}

/*
 * Parses an embeddings response for n texts into out (n * dim floats). With
 * *dim 0 (the probe) the dimension is taken from the first vector.
 */
static int parse(const struct sbuf *body, size_t n, size_t *dim, float *out,
		 struct rag_err *err)
{
	json_t *root = json_loadb(body->buf, body->len, 0, NULL), *data, *item;
	size_t i, got = 0;
	int rc = 0;

	data = json_object_get(root, "data");
	if (!json_is_array(data) || json_array_size(data) != n) {
		rc = rag_err_set(err, RAG_EIO, NULL,
				 "model server answered without %zu embeddings in 'data'", n);
		goto out;
	}
	json_array_foreach(data, i, item) {
		json_t *vec = json_object_get(item, "embedding"), *x;
		json_t *idx = json_object_get(item, "index");
		size_t at = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i, d;

		if (*dim == 0 && json_is_array(vec))
			*dim = json_array_size(vec);
		if (!json_is_array(vec) || json_array_size(vec) != *dim || at >= n || *dim == 0) {
			rc = rag_err_set(err, RAG_EIO, NULL,
					 "model server sent embedding %zu malformed or not of %zu "
					 "dimensions", i, *dim);
			goto out;
		}
		if (!out)
			continue;
		json_array_foreach(vec, d, x)
			out[at * *dim + d] = (float)json_number_value(x);
		normalize(out + at * *dim, *dim);
		got++;
	}
	if (out && got != n)
		rc = rag_err_set(err, RAG_EIO, NULL, "model server sent duplicate indexes");
out:
	json_decref(root);
	return rc;
}

static int embed_batch(struct embedder_remote *r, const char *const *texts, const size_t *lens,
		       size_t n, size_t *dim, float *out, struct rag_err *err)
{
	struct model_pool_request req = { .path = "/v1/embeddings" };
	struct sbuf body = SBUF_INIT, resp = SBUF_INIT;
	int rc;

	sbuf_addstr(&body, "{\"model\":");
	sbuf_add_json_str(&body, r->base.name, strlen(r->base.name));
	sbuf_addstr(&body, ",\"encoding_format\":\"float\",\"input\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_addch(&body, ',');
		sbuf_add_json_str(&body, texts[i], lens[i]);
	}
	sbuf_addstr(&body, "]}");
	if (sbuf_error(&body)) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory building a request");
		goto out;
	}
	req.body = body.buf;
	req.body_len = body.len;
	rc = model_pool_post(r->pool, &req, &resp, err);
	if (rc == 0)
		rc = parse(&resp, n, dim, out, err);
out:
	sbuf_release(&body);
	sbuf_release(&resp);
	return rc;
}

static int embed(struct embedder *e, const char *const *texts, const size_t *lens, size_t n,
		 float *out, struct rag_err *err)
{
	struct embedder_remote *r = (struct embedder_remote *)e;

	for (size_t first = 0; first < n; first += EMBED_REMOTE_BATCH) {
		size_t count = n - first < EMBED_REMOTE_BATCH ? n - first : EMBED_REMOTE_BATCH;
		size_t dim = r->base.dim;
		int rc = embed_batch(r, texts + first, lens + first, count, &dim,
				     out + first * r->base.dim, err);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int count_tokens(struct embedder *e, const char *text, size_t len)
{
	(void)e, (void)text;
	if (len / EMBED_REMOTE_BYTES_PER_TOKEN > (size_t)INT32_MAX)
		return RAG_ETOOBIG;
	return (int)((len + EMBED_REMOTE_BYTES_PER_TOKEN - 1) / EMBED_REMOTE_BYTES_PER_TOKEN);
}

static void free_remote(struct embedder *e)
{
	struct embedder_remote *r = (struct embedder_remote *)e;

	model_pool_free(r->pool);
	free(r);
}

static const struct embedder_ops remote_ops = {
	.embed = embed,
	.count_tokens = count_tokens,
	.free = free_remote,
};

struct embedder *embedder_remote_new(const struct embedder_remote_options *o,
				     struct rag_err *err)
{
	struct embedder_remote *r = calloc(1, sizeof(*r));
	static const char *const probe[] = { "dimension probe" };
	static const size_t probe_len[] = { 15 };
	size_t dim = 0;

	if (!r) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	r->base.ops = &remote_ops;
	snprintf(r->base.name, sizeof(r->base.name), "%s", o->model);
	r->base.max_tokens = o->max_tokens;
	r->pool = model_pool_new(&o->pool, err);
	if (!r->pool)
		goto fail;
	if (embed_batch(r, probe, probe_len, 1, &dim, NULL, err) < 0)
		goto fail;
	r->base.dim = dim;
	/*
	 * The weights are out of sight: the configured name and the dimension
	 * stand for them, so vectors (and reused chunks) are still told apart
	 * from a local model's and from another remote model's.
	 */
	snprintf(r->base.fingerprint, sizeof(r->base.fingerprint), "%s@remote/%zu", r->base.name,
		 dim);
	log_info("remote embedder '%s': %zu dimensions, %zu instances", r->base.name, dim,
		 model_pool_size(r->pool));
	return &r->base;
fail:
	free_remote(&r->base);
	return NULL;
}
