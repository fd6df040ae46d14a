/*
 * sbuf: growable string. See sbuf.h for the invariants.
 *
 * Growth is geometric (1.5x, at least SBUF_MIN_ALLOC) with every size
 * computation overflow-checked. An unallocated sbuf points at the static
 * sbuf_empty_ so that buf is never NULL and initialisation cannot fail;
 * nothing ever writes through it because every write first calls
 * sbuf_grow(), which replaces it. Failure is sticky rather than reported per
 * call so that a long chain of appends needs a single check.
 */
#include "core/sbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/vec.h"
#include "core/banned.h"

#define SBUF_MIN_ALLOC 64 /* most strings we build are small JSON bits */

char sbuf_empty_[1];

void sbuf_init(struct sbuf *sb, size_t hint)
{
	sb->buf = sbuf_empty_;
	sb->len = 0;
	sb->alloc = 0;
	sb->failed = 0;
	if (hint)
		sbuf_grow(sb, hint);
}

void sbuf_release(struct sbuf *sb)
{
	if (!sb)
		return;
	if (sb->alloc)
		free(sb->buf);
	sbuf_init(sb, 0);
}

int sbuf_grow(struct sbuf *sb, size_t extra)
{
	int overflow = 0;
	size_t need, n;
	char *p;

	if (sb->failed)
		return RAG_ENOMEM;
	need = rag_size_add(rag_size_add(sb->len, extra, &overflow), 1, &overflow);
	if (overflow)
		goto fail;
	if (need <= sb->alloc)
		return 0;
	n = rag_size_add(sb->alloc, sb->alloc / 2, &overflow);
	if (overflow || n < need)
		n = need;
	if (n < SBUF_MIN_ALLOC)
		n = SBUF_MIN_ALLOC;
	p = realloc(sb->alloc ? sb->buf : NULL, n);
	if (!p)
		goto fail;
	if (!sb->alloc)
		p[0] = '\0';
	sb->buf = p;
	sb->alloc = n;
	return 0;
fail:
	sb->failed = 1;
	return RAG_ENOMEM;
}

void sbuf_add(struct sbuf *sb, const void *data, size_t len)
{
	if (len == 0 || sbuf_grow(sb, len) != 0)
		return;
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void sbuf_addstr(struct sbuf *sb, const char *s)
{
	sbuf_add(sb, s, strlen(s));
}

void sbuf_addch(struct sbuf *sb, int c)
{
	if (sbuf_grow(sb, 1) != 0)
		return;
	sb->buf[sb->len++] = (char)c;
	sb->buf[sb->len] = '\0';
}

void sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (sbuf_grow(sb, SBUF_MIN_ALLOC) != 0)
		return;
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		sb->failed = 1;
		return;
	}
	if ((size_t)n >= sb->alloc - sb->len) {
		if (sbuf_grow(sb, (size_t)n) != 0) {
			sb->buf[sb->len] = '\0';
			return;
		}
		n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
	}
	sb->len += (size_t)n;
}

void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is
 * invalid: truncated, overlong, a surrogate or above U+10FFFF (RFC 3629).
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void sbuf_add_json_str(struct sbuf *sb, const char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0, run;

	sbuf_addch(sb, '"');
	while (i < len) {
		/* Copy the longest run that needs no escaping in one go. */
		run = 0;
		while (i + run < len) {
			unsigned char c = s[i + run];
			size_t n;

			if (c < 0x20 || c == '"' || c == '\\')
				break;
			n = utf8_seq_len(s + i + run, len - i - run);
			if (n == 0)
				break;
			run += n;
		}
		sbuf_add(sb, s + i, run);
		i += run;
		if (i >= len)
			break;
		switch (s[i]) {
		case '"': sbuf_add(sb, "\\\"", 2); break;
		case '\\': sbuf_add(sb, "\\\\", 2); break;
		case '\n': sbuf_add(sb, "\\n", 2); break;
		case '\r': sbuf_add(sb, "\\r", 2); break;
		case '\t': sbuf_add(sb, "\\t", 2); break;
		case '\b': sbuf_add(sb, "\\b", 2); break;
		case '\f': sbuf_add(sb, "\\f", 2); break;
		default:
			if (s[i] < 0x20) {
				char esc[6] = { '\\', 'u', '0', '0', hex[s[i] >> 4], hex[s[i] & 15] };
				sbuf_add(sb, esc, sizeof(esc));
			} else {
				sbuf_add(sb, "\xef\xbf\xbd", 3); /* U+FFFD for a bad byte */
			}
		}
		i++;
	}
	sbuf_addch(sb, '"');
}

void sbuf_reset(struct sbuf *sb)
{
	sbuf_truncate(sb, 0);
}

void sbuf_truncate(struct sbuf *sb, size_t len)
{
	if (len >= sb->len)
		return;
	sb->len = len;
	if (sb->alloc)
		sb->buf[len] = '\0';
}

char *sbuf_detach(struct sbuf *sb, size_t *len_out)
{
	char *s;

	if (len_out)
		*len_out = 0;
	if (sb->failed) {
		sbuf_release(sb);
		return NULL;
	}
	if (!sb->alloc) {
		s = malloc(1);
		if (s)
			s[0] = '\0';
		return s;
	}
	s = sb->buf;
	if (len_out)
		*len_out = sb->len;
	sbuf_init(sb, 0);
	return s;
}

int sbuf_error(const struct sbuf *sb)
{
	return sb->failed ? RAG_ENOMEM : 0;
}

int sbuf_check(const struct sbuf *sb)
{
	if (!sb || !sb->buf)
		return RAG_EINTERNAL;
	if (sb->alloc == 0)
		return sb->buf == sbuf_empty_ && sb->len == 0 && sbuf_empty_[0] == '\0' ?
			       0 :
			       RAG_EINTERNAL;
	if (sb->buf == sbuf_empty_ || sb->len >= sb->alloc || sb->buf[sb->len] != '\0')
		return RAG_EINTERNAL;
	return 0;
}
