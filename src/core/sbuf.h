/*
 * sbuf: a growable byte string (after git's strbuf).
 *
 * Invariants, checked by sbuf_check():
 *   - buf is never NULL and buf[len] == '\0' always, so buf can be handed to
 *     any C string function (the bytes may still contain NULs of their own);
 *   - alloc == 0 means buf points at a shared static "" that is never
 *     written; otherwise buf is malloc'd with alloc > len bytes;
 *   - allocation failure is sticky: once `failed` is set every append is a
 *     no-op, so a caller builds the whole string and checks once at the end
 *     (sbuf_error()). Sizes are overflow-checked, so a huge length fails
 *     cleanly rather than wrapping.
 *
 * Thread-safety: an sbuf belongs to one thread at a time.
 */
#ifndef RAGD_CORE_SBUF_H
#define RAGD_CORE_SBUF_H

#include <stdarg.h>
#include <stddef.h>

struct sbuf {
	char *buf;
	size_t len;
	size_t alloc;
	int failed;
};

/* The shared empty buffer that unallocated sbufs point at; never written. */
extern char sbuf_empty_[1];

#define SBUF_INIT { sbuf_empty_, 0, 0, 0 }

/* Initialises sb empty, preallocating room for hint bytes when hint > 0 (a
 * failed preallocation sets `failed`). */
void sbuf_init(struct sbuf *sb, size_t hint);

/* Frees sb's memory and leaves it empty and initialised (failed cleared);
 * NULL-safe. */
void sbuf_release(struct sbuf *sb);

/*
 * Ensures room for extra more bytes plus the NUL without reallocating.
 * Returns 0, or RAG_ENOMEM (and sets `failed`) on overflow or allocation
 * failure, or if sb had already failed. Pointers into buf are invalidated.
 */
int sbuf_grow(struct sbuf *sb, size_t extra);

/* Appends len bytes at data (which may hold NULs and may not alias sb). */
void sbuf_add(struct sbuf *sb, const void *data, size_t len);

/* Appends the NUL-terminated s. */
void sbuf_addstr(struct sbuf *sb, const char *s);

/* Appends one byte. */
void sbuf_addch(struct sbuf *sb, int c);

/* Appends printf-style formatted text. */
void sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same with a va_list (consumed). */
void sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Appends data[0..len) as a quoted JSON string: '"', '\\' and control
 * characters are escaped (\n, \t, ... or \u00XX), valid UTF-8 passes through
 * unchanged, and each byte of an invalid UTF-8 sequence becomes U+FFFD, so
 * the output is always valid JSON and valid UTF-8.
 */
void sbuf_add_json_str(struct sbuf *sb, const char *data, size_t len);

/* Empties sb, keeping its allocation; `failed` is kept too. */
void sbuf_reset(struct sbuf *sb);

/* Shortens sb to len bytes (len <= sb->len). */
void sbuf_truncate(struct sbuf *sb, size_t len);

/*
 * Hands the string to the caller, who frees it with free(), and leaves sb
 * empty and initialised. *len_out (may be NULL) receives the length. Returns
 * NULL (and releases sb) if sb had failed; an empty sbuf gives a malloc'd "".
 */
char *sbuf_detach(struct sbuf *sb, size_t *len_out);

/* 0, or RAG_ENOMEM when an earlier operation on sb failed. */
int sbuf_error(const struct sbuf *sb);

/* 0 when sb's invariants hold, RAG_EINTERNAL otherwise (for tests). */
int sbuf_check(const struct sbuf *sb);

#endif
