/*
 * Recursive and structure-aware chunking of an extracted document.
 *
 * Algorithm, one pass, bottom-up counts: the document's blocks are grouped
 * into sections (a new one at each heading, except that a section holding
 * only headings absorbs a deeper heading that follows it, so "Install" +
 * "Linux" + text stays one section with the path "Install > Linux"). Each
 * block is split(): a range no longer than RANGE_COUNT_BYTES bytes per token
 * allowed is counted whole and, if it fits max_tokens, becomes one unit;
 * otherwise it is cut at its kind's next separator (sentences for prose;
 * lines for lists, code and tables; then words; then code points) and each
 * part is split() in turn. Counts add up from the parts, and when the parts
 * of a range turn out to fit together they are replaced by the range itself,
 * so the largest unit that fits is always the one kept (a paragraph that fits
 * is never cut). The same collapse is tried for a whole section and, in the
 * recursive strategy, the whole document. A final greedy pass merges
 * consecutive units up to max_tokens, never across sections in the
 * structured strategy, and never two units with no whitespace between them
 * (halves of a word cut at code points, whose counts do not add).
 *
 * Counting is the expensive part (it runs the model's tokenizer): each unit
 * is counted once, and a range is re-counted as parts only when it was
 * counted whole and did not fit. Sums of unit counts are exact for
 * tokenizers that split at whitespace first (WordPiece), which is what makes
 * "never over max_tokens" hold without tokenising chunks again.
 *
 * Alternatives rejected: top-down splitting (count the range, split, count
 * the parts, ...) tokenises each byte once per level; LangChain-style
 * character budgets cannot promise the model's limit.
 */
#include "text/chunk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/vec.h"
#include "text/extract.h"
#include "text/utf8.h"

#include "core/banned.h"

/*
 * Ranges up to this many bytes per allowed token are counted whole first:
 * English prose runs ~4-5 bytes per WordPiece token, so such a range usually
 * fits; longer ones almost never do and go straight to their parts.
 */
#define RANGE_COUNT_BYTES 6

enum level { LV_LINE, LV_SENTENCE, LV_WORD, LV_CHAR };

static const enum level lv_prose[] = { LV_SENTENCE, LV_WORD, LV_CHAR };
static const enum level lv_lines[] = { LV_LINE, LV_SENTENCE, LV_WORD, LV_CHAR };
static const enum level lv_code[] = { LV_LINE, LV_WORD, LV_CHAR };

struct unit {
	size_t start, end, n_tokens;
	size_t section; /* index of the section it belongs to */
};

struct splitter {
	const char *t;
	const struct chunk_options *o;
	struct unit *v;
	size_t n, alloc;
};

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int push(struct splitter *sp, size_t start, size_t end, size_t n_tokens)
{
	if (rag_grow((void **)&sp->v, &sp->alloc, sp->n + 1, sizeof(*sp->v)))
		return RAG_ENOMEM;
	sp->v[sp->n].start = start;
	sp->v[sp->n].end = end;
	sp->v[sp->n].n_tokens = n_tokens;
	sp->v[sp->n].section = 0;
	sp->n++;
	return 0;
}

static int count(struct splitter *sp, size_t start, size_t end)
{
	return sp->o->count(sp->o->count_ctx, sp->t + start, end - start);
}

/* Cuts start..end into the longest code point prefixes that fit (as chunk_fixed). */
static int cut_chars(struct splitter *sp, size_t start, size_t end, size_t *total)
{
	const char *t = sp->t;

	while (start < end) {
		size_t lo = start, hi = end, lo_n = 0;
		int rc;

		for (;;) {
			size_t mid = utf8_floor(t, end, lo + (hi - lo) / 2);

			if (mid <= lo) {
				size_t n = utf8_char_len((const unsigned char *)t + lo, end - lo);

				mid = lo + (n ? n : 1);
			}
			if (mid >= hi)
				break;
			rc = count(sp, start, mid);
			if (rc < 0)
				return rc;
			if ((size_t)rc <= sp->o->max_tokens) {
				lo = mid;
				lo_n = (size_t)rc;
			} else {
				hi = mid;
			}
		}
		if (lo == start) {
			size_t n = utf8_char_len((const unsigned char *)t + start, end - start);

			lo = start + (n ? n : 1);
			rc = count(sp, start, lo);
			if (rc < 0)
				return rc;
			lo_n = (size_t)rc;
		}
		if (hi == end && lo < end) {
			/* The whole rest may fit: the search never tried it. */
			rc = count(sp, start, end);
			if (rc < 0)
				return rc;
			if ((size_t)rc <= sp->o->max_tokens) {
				lo = end;
				lo_n = (size_t)rc;
			}
		}
		rc = push(sp, start, lo, lo_n);
		if (rc < 0)
			return rc;
		*total += lo_n;
		start = lo;
	}
	return 0;
}

/* End of the part that starts at i (< end) at this level. */
static size_t part_end(const char *t, size_t i, size_t end, enum level lv)
{
	switch (lv) {
	case LV_LINE: {
		const char *nl = memchr(t + i, '\n', end - i);

		return nl ? (size_t)(nl - t) + 1 : end;
	}
	case LV_SENTENCE:
		for (; i < end; i++) {
			unsigned char c = (unsigned char)t[i];

			if (c == '.' || c == '!' || c == '?') {
				size_t j = i + 1;

				while (j < end && strchr("\"')]", t[j]) && t[j])
					j++;
				if (j == end || is_space((unsigned char)t[j]))
					return j;
			} else if (c == 0xE3 && i + 2 < end && (unsigned char)t[i + 1] == 0x80 &&
				   (unsigned char)t[i + 2] == 0x82) {
				return i + 3; /* ideographic full stop */
			}
		}
		return end;
	case LV_WORD:
		while (i < end && !is_space((unsigned char)t[i]))
			i++;
		return i;
	default:
		return end;
	}
}

/*
 * Splits start..end into units (see the file comment); *total gets its token
 * count. known_over: the range was counted already and does not fit.
 */
static int split(struct splitter *sp, size_t start, size_t end, const enum level *lv,
		 int known_over, size_t *total)
{
	size_t max = sp->o->max_tokens, mark, sum = 0, i;
	int rc;

	*total = 0;
	while (start < end && is_space((unsigned char)sp->t[start]))
		start++;
	while (end > start && is_space((unsigned char)sp->t[end - 1]))
		end--;
	if (start == end)
		return 0;
	if (!known_over && (*lv == LV_CHAR || (end - start) / RANGE_COUNT_BYTES <= max)) {
		rc = count(sp, start, end);
		if (rc < 0)
			return rc;
		if ((size_t)rc <= max) {
			*total = (size_t)rc;
			return push(sp, start, end, (size_t)rc);
		}
		known_over = 1;
	}
	if (*lv == LV_CHAR)
		return cut_chars(sp, start, end, total);
	mark = sp->n;
	for (i = start; i < end;) {
		size_t e = part_end(sp->t, i, end, *lv), n;

		if (e <= i)
			e = i + 1;
		/* The whole range is one part: go down a level without recounting. */
		rc = split(sp, i, e, lv + 1, known_over && i == start && e == end, &n);
		if (rc < 0)
			return rc;
		sum += n;
		i = e;
		while (i < end && is_space((unsigned char)sp->t[i]))
			i++;
	}
	if (sum <= max && sp->n - mark > 1) {
		sp->n = mark;
		rc = push(sp, start, end, sum);
		if (rc < 0)
			return rc;
	}
	*total = sum;
	return 0;
}

static const enum level *levels_of(enum extract_block_kind kind)
{
	switch (kind) {
	case EXTRACT_BLOCK_CODE:
	case EXTRACT_BLOCK_TABLE:
		return lv_code;
	case EXTRACT_BLOCK_LIST:
		return lv_lines;
	default:
		return lv_prose;
	}
}

static int check_blocks(const struct extract_document *doc)
{
	size_t prev = 0;

	for (size_t i = 0; i < doc->n_blocks; i++) {
		const struct extract_block *b = &doc->blocks[i];

		if (b->start < prev || b->end < b->start || b->end > doc->text_len)
			return -1;
		prev = b->end;
	}
	return 0;
}

/* Collapses units [mark, n) to one covering start..end when they fit together. */
static int collapse(struct splitter *sp, size_t mark, size_t start, size_t end, size_t sum)
{
	if (sum > sp->o->max_tokens || sp->n - mark <= 1)
		return 0;
	sp->n = mark;
	return push(sp, sp->v[mark].start < start ? sp->v[mark].start : start, end, sum);
}

/* Units for every block, tagged with their section; collapses where they fit. */
static int make_units(struct splitter *sp, const struct extract_document *doc,
		      const struct extract_block *blocks, size_t n_blocks, enum chunk_strategy s)
{
	size_t doc_sum = 0, section = 0, i = 0;
	int rc;

	while (i < n_blocks) {
		size_t first = i, mark = sp->n, sum = 0, j;
		int only_headings = blocks[i].kind == EXTRACT_BLOCK_HEADING;
		int level = blocks[i].level;

		/* The section: up to the next heading not absorbed (see the file comment). */
		for (j = i + 1; j < n_blocks; j++) {
			if (blocks[j].kind == EXTRACT_BLOCK_HEADING) {
				if (!only_headings || blocks[j].level <= level)
					break;
				level = blocks[j].level;
			} else {
				only_headings = 0;
			}
		}
		for (i = first; i < j; i++) {
			size_t n;

			rc = split(sp, blocks[i].start, blocks[i].end, levels_of(blocks[i].kind), 0,
				   &n);
			if (rc < 0)
				return rc;
			sum += n;
		}
		if (sp->n > mark) {
			rc = collapse(sp, mark, sp->v[mark].start, sp->v[sp->n - 1].end, sum);
			if (rc < 0)
				return rc;
		}
		for (size_t k = mark; k < sp->n; k++)
			sp->v[k].section = section;
		section++;
		doc_sum += sum;
	}
	(void)doc;
	if (s == CHUNK_RECURSIVE && sp->n > 1)
		return collapse(sp, 0, sp->v[0].start, sp->v[sp->n - 1].end, doc_sum);
	return 0;
}

static int mergeable(const struct splitter *sp, size_t a, size_t b, enum chunk_strategy s)
{
	if (sp->v[a].end >= sp->v[b].start)
		return 0;
	return s != CHUNK_STRUCTURED || sp->v[a].section == sp->v[b].section;
}

static int merge(struct splitter *sp, enum chunk_strategy s, struct chunk_piece **out,
		 size_t *n_out)
{
	size_t max = sp->o->max_tokens, overlap = sp->o->overlap_tokens, first = 0, n = 0;
	struct chunk_piece *p = calloc(sp->n ? sp->n : 1, sizeof(*p));

	if (!p)
		return RAG_ENOMEM;
	while (first < sp->n) {
		size_t last = first, total = sp->v[first].n_tokens, next, tail;

		while (last + 1 < sp->n && total + sp->v[last + 1].n_tokens <= max &&
		       mergeable(sp, last, last + 1, s))
			total += sp->v[++last].n_tokens;
		p[n].start = sp->v[first].start;
		p[n].end = sp->v[last].end;
		p[n].n_tokens = total;
		n++;
		if (last + 1 == sp->n)
			break;
		next = last + 1;
		tail = 0;
		while (next - 1 > first && tail + sp->v[next - 1].n_tokens <= overlap &&
		       mergeable(sp, next - 1, next, s))
			tail += sp->v[--next].n_tokens;
		/* The overlap must leave room for the next unit, or nothing moves on. */
		while (next <= last && tail + sp->v[last + 1].n_tokens > max)
			tail -= sp->v[next++].n_tokens;
		first = next;
	}
	*out = p;
	*n_out = n;
	return 0;
}

/* Index of the block holding byte pos (the last one starting at or before it). */
static size_t block_at(const struct extract_block *b, size_t n, size_t pos)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (b[mid].start <= pos)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void annotate(struct chunk_piece *p, size_t n, const struct extract_block *b,
		     size_t n_blocks)
{
	for (size_t i = 0; i < n; i++) {
		size_t first = block_at(b, n_blocks, p[i].start);
		size_t last = block_at(b, n_blocks, p[i].end - 1), k = first;

		while (k < last && b[k].kind == EXTRACT_BLOCK_HEADING)
			k++;
		p[i].ordinal = i;
		p[i].page_first = b[first].page;
		p[i].page_last = b[last].page;
		p[i].section = b[k].section ? b[k].section : "";
	}
}

static const char *const strategy_names[] = {
	[CHUNK_FIXED] = "fixed",
	[CHUNK_RECURSIVE] = "recursive",
	[CHUNK_STRUCTURED] = "structured",
};

const char *chunk_strategy_name(enum chunk_strategy s)
{
	if ((size_t)s < sizeof(strategy_names) / sizeof(strategy_names[0]))
		return strategy_names[s];
	return "unknown";
}

int chunk_strategy_parse(const char *name, enum chunk_strategy *out)
{
	for (size_t i = 0; name && i < sizeof(strategy_names) / sizeof(strategy_names[0]); i++) {
		if (strcmp(name, strategy_names[i]) == 0) {
			*out = (enum chunk_strategy)i;
			return 0;
		}
	}
	return -1;
}

static int fixed(const struct extract_document *doc, const struct chunk_options *opts,
		 struct chunk_piece **out, size_t *n_out, struct rag_err *err)
{
	struct chunk_span *spans = NULL;
	struct chunk_piece *p;
	size_t n = 0;
	int rc = chunk_fixed(doc->text, doc->text_len, opts, &spans, &n, err);

	if (rc < 0 || n == 0)
		return rc;
	p = calloc(n, sizeof(*p));
	if (!p) {
		free(spans);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while chunking");
	}
	for (size_t i = 0; i < n; i++) {
		p[i].start = spans[i].start;
		p[i].end = spans[i].end;
		p[i].n_tokens = spans[i].n_tokens;
	}
	free(spans);
	*out = p;
	*n_out = n;
	return 0;
}

int chunk_document(const struct extract_document *doc, const struct chunk_options *opts,
		   enum chunk_strategy s, struct chunk_piece **out, size_t *n_out,
		   struct rag_err *err)
{
	struct extract_block whole = { 0, doc->text_len, EXTRACT_BLOCK_PARAGRAPH, 0, 0, "" };
	const struct extract_block *blocks = doc->n_blocks ? doc->blocks : &whole;
	size_t n_blocks = doc->n_blocks ? doc->n_blocks : 1;
	struct splitter sp = { doc->text, opts, NULL, 0, 0 };
	int rc;

	*out = NULL;
	*n_out = 0;
	if (!opts || !opts->count || opts->max_tokens == 0 ||
	    opts->overlap_tokens >= opts->max_tokens)
		return rag_err_set(err, RAG_EINVAL, "chunk_overlap",
				   "chunk overlap must be smaller than the chunk size");
	if ((size_t)s >= sizeof(strategy_names) / sizeof(strategy_names[0]))
		return rag_err_set(err, RAG_EINVAL, "chunker", "unknown chunker %d", (int)s);
	if (check_blocks(doc) < 0)
		return rag_err_set(err, RAG_EINVAL, NULL, "document blocks overlap or leave the text");
	if (doc->text_len == 0)
		return 0;
	if (s == CHUNK_FIXED) {
		rc = fixed(doc, opts, out, n_out, err);
	} else {
		rc = make_units(&sp, doc, blocks, n_blocks, s);
		if (rc == 0 && sp.n)
			rc = merge(&sp, s, out, n_out);
		free(sp.v);
		if (rc == RAG_ENOMEM)
			return rag_err_set(err, rc, NULL, "out of memory while chunking");
		if (rc < 0)
			return rag_err_set(err, rc, NULL, "token counting failed while chunking");
	}
	if (rc == 0)
		annotate(*out, *n_out, blocks, n_blocks);
	return rc;
}
