/*
 * Schema version 5 of the SQLite store: a document's extracted structure
 * kept next to its text (NULL when none was given), and collection swaps
 * that check the source's seq and retire it, so that a write racing a
 * model or chunker change is either seen by the swap or refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 2

struct fixture {
	char dir[64];
	struct store *st;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ragd-test-v5-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->st = store_sqlite_open(f->dir, NULL, NULL);
	assert_non_null(f->st);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static int64_t make(struct fixture *f, const char *name)
{
	struct store_collection spec = { .name = name, .embed_model = "m", .dim = DIM,
					 .chunk_size = 16 };
	int64_t id = 0;

	assert_int_equal(store_collection_create(f->st, "default", &spec, &id, NULL), 0);
	return id;
}

/* Puts a one-chunk document; blocks may be NULL. Returns the store's code. */
static int put(struct fixture *f, int64_t cid, const char *id, const char *text,
	       const char *blocks)
{
	struct store_chunk ch = { .start_byte = 0, .end_byte = strlen(text), .text = text };
	struct store_doc doc = { .id = id, .text = text, .blocks = blocks };
	float vec[DIM] = { 1, 0 };
	struct store_put p = { .doc = &doc, .chunks = &ch, .n_chunks = 1, .vecs = vec,
			       .dim = DIM };

	return store_doc_put(f->st, cid, &p, NULL, NULL);
}

static void test_blocks(void **state)
{
	struct fixture *f = *state;
	int64_t cid = make(f, "c");
	struct store_doc doc;
	struct store_doc *list = NULL;
	size_t n = 0;
	struct store_doc_query q = { NULL, 10, NULL };

	assert_int_equal(put(f, cid, "a", "alpha", "B1 1 1 1\n0:\n0 5 1 0 0 0\n"), 0);
	assert_int_equal(put(f, cid, "b", "beta", NULL), 0);
	assert_int_equal(store_doc_get(f->st, cid, "a", &doc, NULL), 0);
	assert_string_equal(doc.blocks, "B1 1 1 1\n0:\n0 5 1 0 0 0\n");
	store_doc_release(&doc);
	assert_int_equal(store_doc_get(f->st, cid, "b", &doc, NULL), 0);
	assert_null(doc.blocks);
	store_doc_release(&doc);
	/* A replacement replaces the structure too, including with none. */
	assert_int_equal(put(f, cid, "a", "alpha2", NULL), 0);
	assert_int_equal(store_doc_get(f->st, cid, "a", &doc, NULL), 0);
	assert_null(doc.blocks);
	store_doc_release(&doc);
	/* Listings do not carry it. */
	assert_int_equal(store_doc_list(f->st, cid, &q, &list, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_null(list[0].blocks);
	store_doc_list_free(list, n);
}

static void test_swap_checks_seq_and_retires(void **state)
{
	struct fixture *f = *state;
	int64_t src = make(f, "c"), staged = make(f, ".staged"), seq = 0;
	struct store_collection now;
	struct rag_err err = { 0 };

	assert_int_equal(put(f, src, "a", "alpha", NULL), 0);
	assert_int_equal(store_collection_seq(f->st, src, &seq, NULL), 0);
	/* A write after the caller's look: the swap refuses and nothing moves. */
	assert_int_equal(put(f, src, "b", "beta", NULL), 0);
	assert_int_equal(store_collection_swap(f->st, "default", "c", ".staged", ".retired", seq,
					       &err),
			 RAG_EBUSY);
	assert_non_null(strstr(err.msg, "changed"));
	assert_int_equal(store_collection_get(f->st, "default", "c", &now, NULL), 0);
	assert_int_equal(now.id, src);
	store_collection_release(&now);
	assert_int_equal(put(f, src, "c", "gamma", NULL), 0); /* still writable */
	/* With the current seq it swaps. */
	assert_int_equal(store_collection_seq(f->st, src, &seq, NULL), 0);
	assert_int_equal(store_collection_swap(f->st, "default", "c", ".staged", ".retired", seq,
					       NULL),
			 0);
	assert_int_equal(store_collection_get(f->st, "default", "c", &now, NULL), 0);
	assert_int_equal(now.id, staged);
	store_collection_release(&now);
	/* The retired one is readable but refuses writes and deletes. */
	rag_err_clear(&err);
	assert_int_equal(put(f, src, "d", "delta", NULL), RAG_ENOTFOUND);
	assert_int_equal(store_doc_delete(f->st, src, "a", NULL, &err), RAG_ENOTFOUND);
	assert_non_null(strstr(err.msg, "replaced"));
	{
		char *hash = NULL;

		assert_int_equal(store_doc_hash(f->st, src, "a", &hash, NULL, NULL), 0);
		free(hash);
	}
	assert_int_equal(put(f, staged, "d", "delta", NULL), 0);
	/* Without a seq to check (-1) it swaps whatever was written. */
	make(f, ".again");
	assert_int_equal(put(f, staged, "e", "eps", NULL), 0);
	assert_int_equal(store_collection_swap(f->st, "default", "c", ".again", ".retired2", -1,
					       NULL),
			 0);
	assert_int_equal(store_collection_delete(f->st, "default", ".retired", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_checks_seq_and_retires, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
