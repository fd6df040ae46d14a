/*
 * Overflow-checked size arithmetic and array growth (after git's st_add /
 * ALLOC_GROW). Sizes that a client can influence go through these so that a
 * huge count becomes RAG_ENOMEM (and then 413/503) rather than a short
 * allocation and a heap overflow.
 *
 * Thread-safety: no state; the array being grown belongs to the caller.
 */
#ifndef RAGD_CORE_VEC_H
#define RAGD_CORE_VEC_H

#include <stddef.h>
#include <stdlib.h>

#include "core/rag_error.h"

/* a * b; on overflow sets *overflow to 1 (it is never cleared) and returns 0. */
static inline size_t rag_size_mul(size_t a, size_t b, int *overflow)
{
	size_t r;

	if (__builtin_mul_overflow(a, b, &r)) {
		*overflow = 1;
		return 0;
	}
	return r;
}

/* a + b; on overflow sets *overflow to 1 (it is never cleared) and returns 0. */
static inline size_t rag_size_add(size_t a, size_t b, int *overflow)
{
	size_t r;

	if (__builtin_add_overflow(a, b, &r)) {
		*overflow = 1;
		return 0;
	}
	return r;
}

/*
 * Makes the array *ptr (of *alloc elements of elem_size bytes) hold at least
 * need elements, growing by about 1.5x (at least 8) with realloc. On success
 * returns 0 and updates *ptr and *alloc; the new tail is uninitialised. On
 * overflow or allocation failure returns RAG_ENOMEM and leaves *ptr and
 * *alloc untouched (the old array is still valid and still the caller's).
 * The caller owns *ptr throughout and frees it with free().
 */
static inline int rag_grow(void **ptr, size_t *alloc, size_t need, size_t elem_size)
{
	int overflow = 0;
	size_t n, bytes;
	void *p;

	if (need <= *alloc)
		return 0;
	n = rag_size_add(*alloc, *alloc / 2, &overflow);
	if (overflow || n < need)
		n = need;
	if (n < 8)
		n = 8;
	overflow = 0;
	bytes = rag_size_mul(n, elem_size, &overflow);
	if (overflow || bytes == 0)
		return RAG_ENOMEM;
	p = realloc(*ptr, bytes);
	if (!p)
		return RAG_ENOMEM;
	*ptr = p;
	*alloc = n;
	return 0;
}

/*
 * VEC_GROW(ptr, alloc, need): rag_grow for a typed array `T *ptr` with a
 * size_t `alloc`; evaluates to 0 or RAG_ENOMEM. The pointer goes through a
 * void * temporary rather than a (void **) cast, which would alias a T * as
 * a void *.
 */
#define VEC_GROW(ptr, alloc, need)                                                          \
	__extension__({                                                                     \
		void *vec_p_ = (ptr);                                                       \
		int vec_rc_ = rag_grow(&vec_p_, &(alloc), (need), sizeof(*(ptr)));          \
		if (vec_rc_ == 0)                                                           \
			(ptr) = vec_p_;                                                     \
		vec_rc_;                                                                    \
	})

#endif
