/*
 * Token-measured fixed-window chunker.
 *
 * Algorithm: one pass splits the text into words (maximal runs of bytes that
 * are not ASCII whitespace) and asks the model's tokenizer for each word's
 * token count; a word over max_tokens is cut into pieces at code point
 * boundaries, each piece the longest prefix that fits (binary search over the
 * byte length). A second pass packs consecutive words greedily into windows of
 * at most max_tokens; the next window starts at the earliest word after the
 * current start such that the words from it to the end of the window hold at
 * most overlap_tokens. Windows thus overlap by whole words and always move
 * forward.
 *
 * Alternatives rejected: tokenising the whole text once and cutting token
 * arrays gives no byte offsets with llama.cpp's API (pieces are normalised,
 * lowercased, accent-stripped), and counting characters instead of tokens
 * would let chunks exceed the model's window.
 */
#include "text/chunk.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/rag_error.h"
#include "text/utf8.h"

#include "core/banned.h"

struct word {
	size_t start, end, n_tokens;
};

struct words {
	struct word *v;
	size_t n, alloc;
};

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int push(struct words *w, size_t start, size_t end, size_t n_tokens)
{
	if (w->n == w->alloc) {
		size_t alloc = w->alloc ? w->alloc * 2 : 256;
		struct word *v;

		if (alloc > SIZE_MAX / sizeof(*v))
			return RAG_ENOMEM;
		v = realloc(w->v, alloc * sizeof(*v));
		if (!v)
			return RAG_ENOMEM;
		w->v = v;
		w->alloc = alloc;
	}
	w->v[w->n].start = start;
	w->v[w->n].end = end;
	w->v[w->n].n_tokens = n_tokens;
	w->n++;
	return 0;
}

/*
 * Cuts an over-long word into pieces of at most max tokens each: binary search
 * over code point boundaries for the longest prefix that fits. Invariant:
 * start..lo fits (lo == start is the empty prefix), start..hi does not.
 */
static int split_long(const char *text, size_t start, size_t end, const struct chunk_options *o,
		      struct words *w)
{
	while (start < end) {
		size_t lo = start, hi = end, lo_n = 0;
		int rc;

		for (;;) {
			size_t mid = utf8_floor(text, end, lo + (hi - lo) / 2);

			if (mid <= lo) {
				size_t n = utf8_char_len((const unsigned char *)text + lo, end - lo);

				mid = lo + (n ? n : 1);
			}
			if (mid >= hi)
				break;
			rc = o->count(o->count_ctx, text + start, mid - start);
			if (rc < 0)
				return rc;
			if ((size_t)rc <= o->max_tokens) {
				lo = mid;
				lo_n = (size_t)rc;
			} else {
				hi = mid;
			}
		}
		if (lo == start) {
			/* Not even one code point fits: take one anyway. */
			size_t n = utf8_char_len((const unsigned char *)text + start, end - start);

			lo = start + (n ? n : 1);
			rc = o->count(o->count_ctx, text + start, lo - start);
			if (rc < 0)
				return rc;
			lo_n = (size_t)rc;
		}
		rc = push(w, start, lo, lo_n);
		if (rc < 0)
			return rc;
		start = lo;
	}
	return 0;
}

static int split_words(const char *text, size_t len, const struct chunk_options *o,
		       struct words *w)
{
	size_t i = 0;

	while (i < len) {
		size_t start;
		int rc;

		while (i < len && is_space((unsigned char)text[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_space((unsigned char)text[i]))
			i++;
		rc = o->count(o->count_ctx, text + start, i - start);
		if (rc < 0)
			return rc;
		if ((size_t)rc > o->max_tokens)
			rc = split_long(text, start, i, o, w);
		else
			rc = push(w, start, i, (size_t)rc);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int chunk_fixed(const char *text, size_t len, const struct chunk_options *opts,
		struct chunk_span **out, size_t *n_out, struct rag_err *err)
{
	struct words w = { 0 };
	struct chunk_span *spans = NULL;
	size_t n_spans = 0, first = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	if (!opts || !opts->count || opts->max_tokens == 0 ||
	    opts->overlap_tokens >= opts->max_tokens)
		return rag_err_set(err, RAG_EINVAL, "chunk_overlap",
				   "chunk overlap must be smaller than the chunk size");
	rc = split_words(text, len, opts, &w);
	if (rc < 0)
		goto fail;
	/* Every window holds at least one word and ends later than the previous. */
	spans = calloc(w.n ? w.n : 1, sizeof(*spans));
	if (!spans) {
		rc = RAG_ENOMEM;
		goto fail;
	}
	while (first < w.n) {
		size_t last = first, total = w.v[first].n_tokens, next, tail;

		while (last + 1 < w.n && total + w.v[last + 1].n_tokens <= opts->max_tokens)
			total += w.v[++last].n_tokens;
		spans[n_spans].start = w.v[first].start;
		spans[n_spans].end = w.v[last].end;
		spans[n_spans].n_tokens = total;
		n_spans++;
		if (last + 1 == w.n)
			break;
		next = last + 1;
		tail = 0;
		while (next - 1 > first && tail + w.v[next - 1].n_tokens <= opts->overlap_tokens)
			tail += w.v[--next].n_tokens;
		/* Leave room for the next word, or the next window would repeat this one's tail. */
		while (next <= last && tail + w.v[last + 1].n_tokens > opts->max_tokens)
			tail -= w.v[next++].n_tokens;
		first = next;
	}
	free(w.v);
	*out = n_spans ? spans : NULL;
	if (!n_spans)
		free(spans);
	*n_out = n_spans;
	return 0;
fail:
	free(w.v);
	free(spans);
	if (rc == RAG_ENOMEM)
		return rag_err_set(err, rc, NULL, "out of memory while chunking");
	return rag_err_set(err, rc, NULL, "token counting failed while chunking");
}
