/*
 * The extractive fallback: with no generator configured, the answer is the
 * sentences of the retrieved sources that share most words with the
 * question, each cited, so that the endpoint always answers from the
 * documents and never invents.
 *
 * Sentences: a rule-based splitter (end punctuation, then white space, then
 * something that can start a sentence), with the usual exceptions for
 * abbreviations and initials. A trained splitter (Punkt) would do better
 * on odd text; no C library of one is packaged, and for picking evidence
 * sentences an occasional bad split costs little.
 *
 * Scoring: the number of distinct question words (lower-cased, stop words
 * dropped, a crude plural 's' stripped) the sentence contains, divided by
 * a gentle length penalty, plus a small bonus for the source's rank.
 */
#include "rag/rag_answer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define EXTRACT_MAX_WORDS 32   /* distinct question words considered */
#define EXTRACT_WORD_MAX 32    /* bytes of one word kept for comparison */
#define EXTRACT_MAX_SENTENCES 512 /* per source */

static const char *const abbrevs[] = { "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st",
				       "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "no",
				       "fig", "al", "approx", "u.s", "jan", "feb", "aug", "sept",
				       "oct", "nov", "dec", NULL };

static const char *const stop_words[] = {
	"a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or",
	"is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "what", "which",
	"who", "whom", "when", "where", "why", "how", "did", "do", "does", "as", "into", "than",
	"there", "their", "they", "he", "she", "his", "her", "has", "have", "had", "not", "can",
	"many", "much", "name", NULL
};

/* The word before position i (exclusive), lower-cased into buf; its length. */
static size_t word_before(const char *t, size_t i, char *buf, size_t cap)
{
	size_t s = i, n = 0;

	while (s > 0 && (isalnum((unsigned char)t[s - 1]) || t[s - 1] == '.'))
		s--;
	for (size_t k = s; k < i && n + 1 < cap; k++)
		buf[n++] = (char)tolower((unsigned char)t[k]);
	buf[n] = '\0';
	return n;
}

static int is_abbrev(const char *t, size_t dot)
{
	char w[16];
	size_t n = word_before(t, dot, w, sizeof(w));

	if (n == 1 && isalpha((unsigned char)w[0]))
		return 1; /* an initial: "J. Smith" */
	for (size_t i = 0; abbrevs[i]; i++)
		if (strcmp(w, abbrevs[i]) == 0)
			return 1;
	return 0;
}

static size_t add_span(const char *t, size_t s, size_t e, struct rag_span *out, size_t n,
		       size_t cap)
{
	while (s < e && isspace((unsigned char)t[s]))
		s++;
	while (e > s && isspace((unsigned char)t[e - 1]))
		e--;
	if (e > s && n < cap)
		out[n++] = (struct rag_span){ s, e };
	return n;
}

size_t rag_sentences(const char *t, size_t len, struct rag_span *out, size_t cap)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i < len; i++) {
		size_t end, j;

		if (t[i] == '\n' && i + 1 < len && t[i + 1] == '\n') {
			n = add_span(t, start, i, out, n, cap);
			start = i + 1;
			continue;
		}
		if (t[i] != '.' && t[i] != '!' && t[i] != '?')
			continue;
		end = i + 1;
		while (end < len && strchr("\"')]", t[end]))
			end++;
		if (end < len && !isspace((unsigned char)t[end]))
			continue;
		for (j = end; j < len && isspace((unsigned char)t[j]); j++)
			;
		if (j < len && !isupper((unsigned char)t[j]) && !isdigit((unsigned char)t[j]) &&
		    t[j] != '"' && t[j] != '\'' && !((unsigned char)t[j] & 0x80))
			continue;
		if (t[i] == '.' && is_abbrev(t, i))
			continue;
		n = add_span(t, start, end, out, n, cap);
		start = end;
		i = end - 1;
	}
	return add_span(t, start, len, out, n, cap);
}

/* Next word of t from *pos, lower-cased into w; its length (0 at the end). */
static size_t next_word(const char *t, size_t len, size_t *pos, char *w)
{
	size_t i = *pos, n = 0;

	while (i < len && !isalnum((unsigned char)t[i]) && !((unsigned char)t[i] & 0x80))
		i++;
	while (i < len && (isalnum((unsigned char)t[i]) || ((unsigned char)t[i] & 0x80))) {
		if (n + 1 < EXTRACT_WORD_MAX)
			w[n++] = (char)tolower((unsigned char)t[i]);
		i++;
	}
	if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's')
		n--; /* plural */
	w[n] = '\0';
	*pos = i;
	return n;
}

static int is_stop(const char *w)
{
	for (size_t i = 0; stop_words[i]; i++)
		if (strcmp(w, stop_words[i]) == 0)
			return 1;
	return 0;
}

struct qwords {
	char w[EXTRACT_MAX_WORDS][EXTRACT_WORD_MAX];
	size_t n;
};

static void question_words(const char *q, size_t len, struct qwords *qw)
{
	char w[EXTRACT_WORD_MAX];
	size_t pos = 0, n;

	qw->n = 0;
	while ((n = next_word(q, len, &pos, w)) > 0) {
		int dup = 0;

		if (is_stop(w) || qw->n == EXTRACT_MAX_WORDS)
			continue;
		for (size_t i = 0; i < qw->n && !dup; i++)
			dup = strcmp(qw->w[i], w) == 0;
		if (!dup)
			memcpy(qw->w[qw->n++], w, n + 1);
	}
}

static double score(const char *t, size_t len, const struct qwords *qw)
{
	char w[EXTRACT_WORD_MAX];
	int seen[EXTRACT_MAX_WORDS] = { 0 };
	size_t pos = 0, words = 0, hits = 0;

	while (next_word(t, len, &pos, w) > 0) {
		words++;
		for (size_t i = 0; i < qw->n; i++)
			if (!seen[i] && strcmp(qw->w[i], w) == 0) {
				seen[i] = 1;
				hits++;
			}
	}
	if (hits == 0)
		return 0;
	return (double)hits / (1.0 + 0.1 * sqrt((double)words));
}

struct cand {
	size_t src;
	struct rag_span span;
	double score;
};

static int by_score(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return x->span.start < y->span.start ? -1 : 1;
}

size_t rag_extract(const char *question, size_t question_len, const struct rag_source *src,
		   size_t n_src, size_t max_sentences, struct sbuf *out)
{
	struct rag_span *spans = malloc(EXTRACT_MAX_SENTENCES * sizeof(*spans));
	struct cand *c = NULL;
	struct qwords qw;
	size_t n_c = 0, cap = 0, used = 0;

	if (!spans || n_src == 0) {
		free(spans);
		return 0;
	}
	question_words(question, question_len, &qw);
	for (size_t s = 0; s < n_src; s++) {
		size_t n = rag_sentences(src[s].text, src[s].len, spans, EXTRACT_MAX_SENTENCES);

		for (size_t k = 0; k < n; k++) {
			double sc = score(src[s].text + spans[k].start,
					  spans[k].end - spans[k].start, &qw);

			if (sc <= 0)
				continue;
			if (n_c == cap) {
				struct cand *nc = realloc(c, (cap ? cap * 2 : 64) * sizeof(*c));

				if (!nc)
					break;
				c = nc;
				cap = cap ? cap * 2 : 64;
			}
			c[n_c++] = (struct cand){ s, spans[k], sc + 0.01 * (double)(n_src - s) };
		}
	}
	if (n_c > 0)
		qsort(c, n_c, sizeof(*c), by_score);
	for (size_t i = 0; i < n_c && used < max_sentences; i++, used++) {
		if (used)
			sbuf_addch(out, ' ');
		sbuf_add(out, src[c[i].src].text + c[i].span.start,
			 c[i].span.end - c[i].span.start);
		sbuf_addf(out, " [%zu]", c[i].src + 1);
	}
	if (used == 0 && rag_sentences(src[0].text, src[0].len, spans, 1) == 1) {
		sbuf_add(out, src[0].text + spans[0].start, spans[0].end - spans[0].start);
		sbuf_addstr(out, " [1]");
		used = 1;
	}
	free(c);
	free(spans);
	return used;
}
