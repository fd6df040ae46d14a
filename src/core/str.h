/*
 * Borrowed string views for parsing: a pointer and a length, never assumed
 * to be NUL-terminated (after nginx's ngx_str_t). A struct str owns nothing;
 * it is valid as long as the bytes it points at are.
 *
 * Thread-safety: plain values; the helpers keep no state.
 */
#ifndef RAGD_CORE_STR_H
#define RAGD_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct str {
	const char *p;
	size_t len;
};

#define STR_LIT(s) ((struct str){ (s), sizeof(s) - 1 })

/* A view of the NUL-terminated s (NULL gives the empty view); borrows s. */
static inline struct str str_from_cstr(const char *s)
{
	struct str v = { s ? s : "", s ? strlen(s) : 0 };
	return v;
}

/* A view of len bytes at p; borrows p. */
static inline struct str str_from_mem(const char *p, size_t len)
{
	struct str v = { p, len };
	return v;
}

/* True when the view's bytes equal the NUL-terminated s exactly. */
static inline bool str_eq_cstr(struct str a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

/* True when both views hold the same bytes. */
static inline bool str_eq(struct str a, struct str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* True when the view starts with the NUL-terminated prefix. */
static inline bool str_has_prefix(struct str a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && (n == 0 || memcmp(a.p, prefix, n) == 0);
}

/* The value of a hexadecimal digit (either case), or -1. */
static inline int str_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
