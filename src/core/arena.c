/*
 * arena: bump allocation in a list of blocks.
 *
 * Allocations are carved from the newest block by bumping an offset; when it
 * does not fit, a new block twice the previous size (capped at
 * ARENA_MAX_BLOCK) is chained in front. The unused tail of the old block is
 * abandoned rather than searched: requests are short-lived, so simplicity
 * wins over the few bytes. An allocation larger than a quarter of the
 * current block size gets a dedicated block chained behind the current one,
 * so it does not waste the current block's remaining space.
 *
 * Cleanup hooks are a singly linked list allocated from the arena itself and
 * run newest first at arena_free, before any block is released, so a hook
 * may still read arena memory.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/vec.h"
#include "core/banned.h"

#define ARENA_DEFAULT_BLOCK 4096       /* one page: a small request fits */
#define ARENA_MAX_BLOCK (1024 * 1024)  /* past this, doubling wastes more than it saves */
#define ARENA_MAX_ALIGN 4096           /* page alignment is the most anyone needs */

struct block {
	struct block *next;
	size_t size; /* usable bytes in data */
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *arg);
	void *arg;
};

struct arena {
	struct block *head; /* current block; the others only wait to be freed */
	struct cleanup *cleanups;
	size_t next_size;
	size_t allocated;
};

static struct block *block_new(size_t size)
{
	int overflow = 0;
	size_t bytes = rag_size_add(sizeof(struct block), size, &overflow);
	struct block *b;

	if (overflow)
		return NULL;
	b = malloc(bytes);
	if (!b)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct arena *arena_new(size_t block_size)
{
	struct arena *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->next_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
	return a;
}

void arena_free(struct arena *a)
{
	struct block *b, *next;

	if (!a)
		return;
	for (struct cleanup *c = a->cleanups; c; c = c->next)
		c->fn(c->arg);
	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

/* Offset at or after used where an object aligned to align can start in b. */
static size_t align_up(const struct block *b, size_t used, size_t align, int *overflow)
{
	uintptr_t p = (uintptr_t)(b->data + used);
	uintptr_t pad = (align - (p & (align - 1))) & (align - 1);

	return rag_size_add(used, pad, overflow);
}

void *arena_alloc_align(struct arena *a, size_t size, size_t align)
{
	int overflow = 0;
	struct block *b = a->head;
	struct block *nb;
	size_t off, need, bsize;
	bool dedicated;

	if (align == 0 || (align & (align - 1)) || align > ARENA_MAX_ALIGN)
		return NULL;
	if (size == 0)
		size = 1;
	if (b) {
		off = align_up(b, b->used, align, &overflow);
		if (!overflow && off <= b->size && size <= b->size - off) {
			b->used = off + size;
			return b->data + off;
		}
	}
	overflow = 0;
	/* Room for the object plus worst-case padding beyond max_align_t. */
	need = rag_size_add(size, align > alignof(max_align_t) ? align : 0, &overflow);
	if (overflow)
		return NULL;
	dedicated = b && need > a->next_size / 4;
	if (dedicated) {
		bsize = need;
	} else {
		bsize = a->next_size > need ? a->next_size : need;
		if (a->next_size < ARENA_MAX_BLOCK)
			a->next_size *= 2;
	}
	nb = block_new(bsize);
	if (!nb)
		return NULL;
	a->allocated += bsize;
	if (dedicated) {
		nb->next = b->next;
		b->next = nb;
	} else {
		nb->next = b;
		a->head = nb;
	}
	off = align_up(nb, 0, align, &overflow);
	nb->used = off + size;
	return nb->data + off;
}

void *arena_alloc(struct arena *a, size_t size)
{
	return arena_alloc_align(a, size, alignof(max_align_t));
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
	int overflow = 0;
	size_t bytes = rag_size_mul(n, size, &overflow);
	void *p;

	if (overflow)
		return NULL;
	p = arena_alloc(a, bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

char *arena_memdup(struct arena *a, const void *p, size_t len)
{
	int overflow = 0;
	size_t bytes = rag_size_add(len, 1, &overflow);
	char *s;

	if (overflow)
		return NULL;
	s = arena_alloc_align(a, bytes, 1);
	if (!s)
		return NULL;
	if (len)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
	return arena_memdup(a, s, strnlen(s, len));
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_memdup(a, s, strlen(s));
}

int arena_add_cleanup(struct arena *a, void (*fn)(void *arg), void *arg)
{
	struct cleanup *c = arena_alloc(a, sizeof(*c));

	if (!c)
		return RAG_ENOMEM;
	c->fn = fn;
	c->arg = arg;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

size_t arena_allocated(const struct arena *a)
{
	return a->allocated;
}
