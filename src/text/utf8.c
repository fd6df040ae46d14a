/*
 * UTF-8 validation after the Unicode Standard's table 3-7 of well-formed
 * byte sequences. A hand-written loop: utf8proc would add a dependency for
 * forty lines, and this layer only needs validity and boundaries.
 */
#include "text/utf8.h"

#include "core/banned.h"

size_t utf8_char_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];

	if (avail == 0 || c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : 0xBF;

		if (avail < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;

		if (avail < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

int utf8_valid(const char *s, size_t len, size_t *bad_at)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n;

		if (u[i] >= 0x01 && u[i] < 0x80) {
			i++;
			continue;
		}
		n = utf8_char_len(u + i, len - i);
		if (n == 0) {
			if (bad_at)
				*bad_at = i;
			return 0;
		}
		i += n;
	}
	return 1;
}

size_t utf8_floor(const char *s, size_t len, size_t pos)
{
	if (pos >= len)
		return len;
	while (pos > 0 && ((unsigned char)s[pos] & 0xC0) == 0x80)
		pos--;
	return pos;
}
