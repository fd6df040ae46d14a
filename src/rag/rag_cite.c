/*
 * Citations in generated text: "[n]", "[n, m]" (also "[n,m]", "[n; m]")
 * and "[n][m]" (two groups). A number outside 1..n_sources refers to no
 * source the model was shown: it is removed, and counted so that the
 * caller can report it (ragd_citations_invalid_total). Brackets holding
 * anything but numbers and separators ("[see above]", "[a]") are text, not
 * citations, and are left alone.
 *
 * The text is rewritten in one pass into a new buffer: a group keeps its
 * valid numbers in their order ("[1, 9]" with two sources becomes "[1]"),
 * and a group left empty disappears with the space before it.
 */
#include "rag/rag_answer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define CITE_MAX_NUMS 16 /* numbers in one bracket; longer lists are not citations */

/* Parses a group at s ('[' first); its numbers and length, or 0 when it is none. */
static size_t parse_group(const char *s, size_t len, long *nums, size_t *n_nums)
{
	size_t i = 1;

	*n_nums = 0;
	for (;;) {
		long v = 0;
		size_t digits = 0;

		while (i < len && s[i] == ' ')
			i++;
		while (i < len && isdigit((unsigned char)s[i]) && digits < 6) {
			v = v * 10 + (s[i++] - '0');
			digits++;
		}
		if (digits == 0 || digits == 6 || *n_nums == CITE_MAX_NUMS)
			return 0;
		nums[(*n_nums)++] = v;
		while (i < len && s[i] == ' ')
			i++;
		if (i < len && s[i] == ']')
			return i + 1;
		if (i < len && (s[i] == ',' || s[i] == ';')) {
			i++;
			continue;
		}
		return 0;
	}
}

size_t rag_cite_clean(struct sbuf *text, size_t n_sources, int *cited, size_t *n_cited)
{
	struct sbuf out = SBUF_INIT;
	size_t invalid = 0, i = 0;

	*n_cited = 0;
	while (i < text->len) {
		long nums[CITE_MAX_NUMS];
		size_t n_nums, glen = text->buf[i] == '[' ?
				parse_group(text->buf + i, text->len - i, nums, &n_nums) : 0;
		size_t kept = 0;

		if (glen == 0) {
			sbuf_addch(&out, text->buf[i++]);
			continue;
		}
		for (size_t k = 0; k < n_nums; k++) {
			size_t c;

			if (nums[k] < 1 || (size_t)nums[k] > n_sources) {
				invalid++;
				continue;
			}
			sbuf_addstr(&out, kept ? ", " : "[");
			sbuf_addf(&out, "%ld", nums[k]);
			kept++;
			for (c = 0; c < *n_cited && cited[c] != (int)nums[k]; c++)
				;
			if (c == *n_cited)
				cited[(*n_cited)++] = (int)nums[k];
		}
		if (kept)
			sbuf_addch(&out, ']');
		else if (out.len > 0 && out.buf[out.len - 1] == ' ' &&
			 (i + glen >= text->len || strchr(" .,;:!?)]", text->buf[i + glen])))
			sbuf_truncate(&out, out.len - 1);
		i += glen;
	}
	if (!sbuf_error(&out)) {
		sbuf_release(text);
		*text = out;
	} else {
		sbuf_release(&out);
	}
	return invalid;
}
