/*
 * UTF-8 helpers for client text: validation with the offset of the first bad
 * byte, and code point boundaries so that nothing ever splits a character.
 *
 * Thread-safety: pure functions.
 */
#ifndef RAGD_TEXT_UTF8_H
#define RAGD_TEXT_UTF8_H

#include <stddef.h>

/*
 * Returns 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing past U+10FFFF), else 0 and, when bad_at is not NULL, the byte offset
 * of the first ill-formed sequence. NUL bytes count as ill-formed: client text
 * is stored as C strings further down.
 */
int utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Length in bytes of the well-formed code point starting at s (1..4), or 0. */
size_t utf8_char_len(const unsigned char *s, size_t avail);

/* The largest code point boundary <= pos in s[0..len); pos itself if it is one. */
size_t utf8_floor(const char *s, size_t len, size_t pos);

#endif
