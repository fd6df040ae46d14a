/*
 * The answer prompt: a template with {sources} and {question}, the sources
 * numbered from 1 so that the model can cite them as [n].
 *
 * Sources are ranked best first, so when the window is short the tail is
 * left out whole rather than every source being shortened: a source the
 * model sees is one it can quote. Only the first source is ever cut (at a
 * UTF-8 boundary, by halving until it fits), so that a huge chunk still
 * yields an answer. Token counts come from the generator's tokenizer; the
 * placeholders are filled in one pass, so a question containing
 * "{sources}" is not expanded twice.
 */
#include "rag/rag_answer.h"

#include <string.h>

#include "core/rag_error.h"
#include "text/utf8.h"

#include "core/banned.h"

#define PROMPT_BYTES_PER_TOKEN 4 /* when no tokenizer is given */

int rag_prompt_check(const char *tmpl, const char *field, struct rag_err *err)
{
	if (!strstr(tmpl, "{sources}") || !strstr(tmpl, "{question}"))
		return rag_err_set(err, RAG_EINVAL, field,
				   "%s: the template must contain {sources} and {question}", field);
	return 0;
}

static int count(rag_count_fn fn, void *ctx, const char *text, size_t len)
{
	return fn ? fn(ctx, text, len) : (int)((len + PROMPT_BYTES_PER_TOKEN - 1) /
					       PROMPT_BYTES_PER_TOKEN);
}

static void add_source(struct sbuf *sb, size_t n, const char *text, size_t len)
{
	if (n > 1)
		sbuf_addstr(sb, "\n\n");
	sbuf_addf(sb, "[%zu] ", n);
	sbuf_add(sb, text, len);
}

/* Fills the template with the sources text already made. */
static void fill(const char *tmpl, const char *q, size_t q_len, const struct sbuf *sources,
		 struct sbuf *out)
{
	const char *p = tmpl;

	while (*p) {
		if (strncmp(p, "{sources}", 9) == 0) {
			sbuf_add(out, sources->buf, sources->len);
			p += 9;
		} else if (strncmp(p, "{question}", 10) == 0) {
			sbuf_add(out, q, q_len);
			p += 10;
		} else {
			sbuf_addch(out, *p++);
		}
	}
}

int rag_prompt_build(const char *tmpl, const char *question, size_t question_len,
		     const struct rag_source *src, size_t n_src, size_t budget_tokens,
		     rag_count_fn count_fn, void *count_ctx, struct sbuf *out, size_t *n_used,
		     struct rag_err *err)
{
	struct sbuf sources = SBUF_INIT, probe = SBUF_INIT;
	size_t used = 0, fixed, avail;
	int n;

	if (!tmpl || !tmpl[0])
		tmpl = RAG_DEFAULT_TEMPLATE;
	*n_used = 0;
	fill(tmpl, question, question_len, &sources, &probe);
	n = count(count_fn, count_ctx, probe.buf, probe.len);
	sbuf_release(&probe);
	if (n < 0)
		return rag_err_set(err, n, "question", "the question could not be tokenised");
	fixed = (size_t)n;
	if (fixed >= budget_tokens)
		return rag_err_set(err, RAG_ETOOBIG, "question",
				   "the question leaves no room for sources in the model's window");
	avail = budget_tokens - fixed;
	for (size_t i = 0; i < n_src; i++) {
		size_t len = src[i].len, before = sources.len;
		int t;

		for (;;) {
			add_source(&sources, used + 1, src[i].text, len);
			t = count(count_fn, count_ctx, sources.buf, sources.len);
			if (t >= 0 && (size_t)t <= avail)
				break;
			sbuf_truncate(&sources, before);
			if (used > 0 || len < 16) {
				len = 0;
				break;
			}
			len = utf8_floor(src[i].text, src[i].len, len / 2);
		}
		if (len == 0)
			break;
		used++;
	}
	fill(tmpl, question, question_len, &sources, out);
	sbuf_release(&sources);
	*n_used = used;
	if (sbuf_error(out))
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory building the prompt");
	return 0;
}
