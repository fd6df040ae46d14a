/*
 * The engine's side of the cache: what names a collection's state in a
 * key, the rest of an answer's key, and search results and answers as
 * compact cache values.
 *
 * A value is: magic, hit count, then per hit the score (f32), chunk id,
 * ordinal, start and end (u64 each), and three length-prefixed strings
 * (document id, text, metadata JSON). No JSON: it would double the size
 * and cost a parse per hit. Values are only read by the ragd that wrote
 * them or a peer of the same build (the key's "v1" and the magic change
 * together), but they come from a shared server, so decoding checks every
 * length and treats anything malformed as a miss.
 */
#include "rag/rag_int.h"
#include "rag/rag_answer.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/rag_error.h"
#include "core/sbuf.h"

#include "core/banned.h"

#define HITS_MAGIC 0x31525352u /* "RSR1": ragd search result, layout 1 */
#define ANSWER_MAGIC 0x31414152u /* "RAA1": ragd answer, layout 1 */

void rag_cache_key_collection(struct cache_key_builder *b, const struct rag_coll *coll,
			      int64_t seq)
{
	/* Results depend on the code too: a rolling upgrade must not serve old rankings. */
	cache_key_add_str(b, "build", RAGD_VERSION "+" RAGD_GIT_SHA,
			  strlen(RAGD_VERSION "+" RAGD_GIT_SHA));
	cache_key_add_str(b, "tenant", coll->c.tenant, strlen(coll->c.tenant));
	cache_key_add_i64(b, "collection", coll->c.id);
	cache_key_add_i64(b, "created", coll->c.created_at);
	cache_key_add_i64(b, "seq", seq);
}

static void put_u32(struct sbuf *sb, uint32_t v)
{
	sbuf_add(sb, &v, sizeof(v));
}

static void put_u64(struct sbuf *sb, uint64_t v)
{
	sbuf_add(sb, &v, sizeof(v));
}

static void put_str(struct sbuf *sb, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	put_u32(sb, (uint32_t)len);
	sbuf_add(sb, s ? s : "", len);
}

int rag_cache_encode_hits(const struct rag_search_result *res, void **out, size_t *len)
{
	struct sbuf sb = SBUF_INIT;

	put_u32(&sb, HITS_MAGIC);
	put_u32(&sb, (uint32_t)res->n_hits);
	for (size_t i = 0; i < res->n_hits; i++) {
		const struct rag_hit *h = &res->hits[i];

		sbuf_add(&sb, &h->score, sizeof(h->score));
		put_u64(&sb, (uint64_t)h->chunk.id);
		put_u64(&sb, h->chunk.ordinal);
		put_u64(&sb, h->chunk.start_byte);
		put_u64(&sb, h->chunk.end_byte);
		put_str(&sb, h->chunk.document_id);
		put_str(&sb, h->chunk.text);
		put_str(&sb, h->chunk.metadata_json);
	}
	if (sbuf_error(&sb)) {
		sbuf_release(&sb);
		return RAG_ENOMEM;
	}
	*out = sbuf_detach(&sb, len);
	return 0;
}

struct reader {
	const unsigned char *p;
	size_t left;
	int bad;
};

static void take(struct reader *r, void *dst, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = 1;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
}

static uint64_t get_u64(struct reader *r)
{
	uint64_t v;

	take(r, &v, sizeof(v));
	return v;
}

/* A NUL-terminated copy of the next string, or NULL (r->bad set). */
static char *get_str(struct reader *r)
{
	uint32_t len;
	char *s;

	take(r, &len, sizeof(len));
	if (r->bad || r->left < len) {
		r->bad = 1;
		return NULL;
	}
	s = malloc((size_t)len + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, r->p, len);
	s[len] = '\0';
	r->p += len;
	r->left -= len;
	return s;
}

int rag_cache_decode_hits(const void *val, size_t len, struct rag_search_result *res)
{
	struct reader r = { val, len, 0 };
	uint32_t magic = 0, n = 0;

	memset(res, 0, sizeof(*res));
	take(&r, &magic, sizeof(magic));
	take(&r, &n, sizeof(n));
	/* Each hit takes at least 48 bytes: a count beyond that is a broken value. */
	if (r.bad || magic != HITS_MAGIC || n > r.left / 48)
		return RAG_EINVAL;
	res->hits = calloc(n ? n : 1, sizeof(*res->hits));
	if (!res->hits)
		return RAG_EINVAL;
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct rag_hit *h = &res->hits[i];

		res->n_hits = i + 1;
		take(&r, &h->score, sizeof(h->score));
		h->chunk.id = (int64_t)get_u64(&r);
		h->chunk.ordinal = get_u64(&r);
		h->chunk.start_byte = get_u64(&r);
		h->chunk.end_byte = get_u64(&r);
		h->chunk.found = 1;
		h->chunk.document_id = get_str(&r);
		h->chunk.text = r.bad ? NULL : get_str(&r);
		h->chunk.metadata_json = r.bad ? NULL : get_str(&r);
	}
	if (r.bad || r.left != 0) {
		rag_search_result_release(res);
		return RAG_EINVAL;
	}
	return 0;
}

int rag_answer_cache_key(struct cache_key_builder *b, const struct rag_ask *q,
			 const char *model, const char *prompt_template, double min_score,
			 struct cache_key *out)
{
	cache_key_add_i64(b, "mode", q->mode);
	cache_key_add_i64(b, "top_k", (int64_t)q->top_k);
	if (q->filter_key)
		cache_key_add_str(b, "filter", q->filter_key, strlen(q->filter_key));
	cache_key_add_str(b, "question", q->question, q->len);
	cache_key_add_i64(b, "max_tokens", q->max_tokens);
	cache_key_add_f64(b, "temperature", q->temperature);
	cache_key_add_str(b, "model", model, strlen(model));
	cache_key_add_str(b, "template", prompt_template, strlen(prompt_template));
	cache_key_add_f64(b, "min_score", min_score);
	return cache_key_end(b, out);
}

/* The static strings an answer's kind and finish reason may be. */
static const char *const kinds[] = { "generated", "extractive", "no_answer" };
static const char *const finishes[] = { "stop", "length" };

static int str_index(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return (int)i;
	return -1;
}

int rag_cache_encode_answer(const struct rag_answer *a, void **out, size_t *len)
{
	struct sbuf sb = SBUF_INIT;
	int kind = str_index(a->kind, kinds, 3);
	int fin = a->usage.finish_reason ? str_index(a->usage.finish_reason, finishes, 2) : 0;

	if (kind < 0 || fin < 0 || a->usage.stopped)
		return RAG_EINVAL;
	put_u32(&sb, ANSWER_MAGIC);
	put_u32(&sb, (uint32_t)kind);
	put_u32(&sb, (uint32_t)fin);
	put_u64(&sb, a->n_sources);
	put_u64(&sb, a->n_invalid);
	put_u64(&sb, a->usage.prompt_tokens);
	put_u64(&sb, a->usage.completion_tokens);
	put_u32(&sb, (uint32_t)a->text.len);
	sbuf_add(&sb, a->text.buf ? a->text.buf : "", a->text.len);
	put_str(&sb, a->query);
	put_u32(&sb, (uint32_t)a->n_citations);
	for (size_t i = 0; i < a->n_citations; i++) {
		const struct rag_citation *c = &a->citations[i];

		put_u32(&sb, (uint32_t)c->n);
		sbuf_add(&sb, &c->score, sizeof(c->score));
		put_u64(&sb, (uint64_t)c->chunk_id);
		put_u64(&sb, c->start_byte);
		put_u64(&sb, c->end_byte);
		put_str(&sb, c->document_id);
		put_str(&sb, c->text);
	}
	if (sbuf_error(&sb)) {
		sbuf_release(&sb);
		return RAG_ENOMEM;
	}
	*out = sbuf_detach(&sb, len);
	return 0;
}

static uint32_t get_u32(struct reader *r)
{
	uint32_t v;

	take(r, &v, sizeof(v));
	return v;
}

int rag_cache_decode_answer(const void *val, size_t len, struct rag_answer *a)
{
	struct reader r = { val, len, 0 };
	uint32_t magic, kind, fin, n;
	char *text;

	memset(a, 0, sizeof(*a));
	sbuf_init(&a->text, 0);
	magic = get_u32(&r);
	kind = get_u32(&r);
	fin = get_u32(&r);
	a->n_sources = get_u64(&r);
	a->n_invalid = get_u64(&r);
	a->usage.prompt_tokens = get_u64(&r);
	a->usage.completion_tokens = get_u64(&r);
	if (r.bad || magic != ANSWER_MAGIC || kind >= 3 || fin >= 2)
		return RAG_EINVAL;
	a->kind = kinds[kind];
	a->usage.finish_reason = finishes[fin];
	text = get_str(&r);
	if (text)
		sbuf_addstr(&a->text, text);
	free(text);
	a->query = r.bad ? NULL : get_str(&r);
	n = get_u32(&r);
	/* Each citation takes at least 40 bytes: a count beyond that is a broken value. */
	if (!r.bad && n <= r.left / 40)
		a->citations = calloc(n ? n : 1, sizeof(*a->citations));
	if (!a->citations)
		r.bad = 1;
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct rag_citation *c = &a->citations[i];

		a->n_citations = i + 1;
		c->n = (int)get_u32(&r);
		take(&r, &c->score, sizeof(c->score));
		c->chunk_id = (int64_t)get_u64(&r);
		c->start_byte = get_u64(&r);
		c->end_byte = get_u64(&r);
		c->document_id = get_str(&r);
		c->text = r.bad ? NULL : get_str(&r);
	}
	if (r.bad || r.left != 0 || sbuf_error(&a->text)) {
		rag_answer_release(a);
		return RAG_EINVAL;
	}
	return 0;
}
