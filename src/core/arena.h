/*
 * arena: per-request memory (after nginx pools and PostgreSQL memory
 * contexts). Everything allocated from an arena lives until arena_free,
 * which releases it all at once and first runs the registered cleanup
 * hooks; request-scoped memory is never freed piecemeal.
 *
 * Thread-safety: an arena belongs to one thread at a time (one request).
 */
#ifndef RAGD_CORE_ARENA_H
#define RAGD_CORE_ARENA_H

#include <stddef.h>

struct arena;

/* A new arena whose first block holds about block_size bytes (0 picks a
 * default). Returns NULL when out of memory; free with arena_free. */
struct arena *arena_new(size_t block_size);

/* Runs the cleanup hooks, newest first, then frees every allocation and the
 * arena itself; NULL-safe. */
void arena_free(struct arena *a);

/* size bytes aligned for any type (alignof(max_align_t)), uninitialised;
 * NULL on overflow or when out of memory. A size of 0 gives a unique
 * pointer. Owned by the arena until arena_free. */
void *arena_alloc(struct arena *a, size_t size);

/* Same with the given alignment, a power of two (up to 4096). */
void *arena_alloc_align(struct arena *a, size_t size, size_t align);

/* arena_alloc of n * size zeroed bytes, overflow-checked. */
void *arena_calloc(struct arena *a, size_t n, size_t size);

/* A NUL-terminated copy of s in the arena, or NULL when out of memory. */
char *arena_strdup(struct arena *a, const char *s);

/* A NUL-terminated copy of the first len bytes at s (no more than up to a
 * NUL within them), or NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Copy of len bytes at p (which may hold NULs), plus a NUL; NULL on OOM. */
char *arena_memdup(struct arena *a, const void *p, size_t len);

/*
 * Registers fn(arg) to run when the arena is freed, newest first (so a hook
 * added later, for something built on top of an earlier one, runs first).
 * Returns 0, or RAG_ENOMEM, in which case fn is not registered and the
 * caller must release arg itself.
 */
int arena_add_cleanup(struct arena *a, void (*fn)(void *arg), void *arg);

/* Bytes obtained from malloc so far, for metrics and limits. */
size_t arena_allocated(const struct arena *a);

#endif
