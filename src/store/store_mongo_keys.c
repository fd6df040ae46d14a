/*
 * API keys in MongoDB (collection keys): put, get by id, list per tenant,
 * delete, with the contract of store_sqlite_keys.c. A key is one document
 * whose _id is the key id, so a put is a plain insert whose unique _id
 * makes a second key of the same id a conflict on every server. Keys are
 * few and read once per key and cache period by the auth module
 * (src/auth/auth.c), so listing needs no index beyond _id.
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

/* A rate: stored as a double, but a key written by hand may hold an integer. */
static double get_double(const bson_t *b, const char *key)
{
	bson_iter_t it;

	if (bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_DOUBLE(&it))
		return bson_iter_double(&it);
	return (double)sm_get_int(b, key);
}

/* Reads key document d into k (strings owned; released on failure). */
static int read_key(const bson_t *d, struct store_key *k, struct rag_err *err)
{
	static const char *const fields[] = { "_id", "tenant", "role", "name", "salt", "hash" };
	const char **strs[] = { &k->id, &k->tenant, &k->role, &k->name, &k->salt_hex,
				&k->hash_hex };
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < 6; i++)
		rc = sm_get_str(d, fields[i], strs[i], err);
	k->created_at = sm_get_int(d, "created_at");
	k->requests_per_s = get_double(d, "requests_per_s");
	k->burst = sm_get_int(d, "burst");
	k->ingest_bytes_per_day = sm_get_int(d, "ingest_bytes_per_day");
	k->tokens_per_day = sm_get_int(d, "tokens_per_day");
	if (rc)
		store_key_release(k);
	return rc;
}

int store_mongo_key_put(struct store *st, const struct store_key *key, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *keys;
	bson_t opts = BSON_INITIALIZER;
	bson_error_t e;
	bson_t *doc;
	int rc = 0;

	doc = BCON_NEW("_id", BCON_UTF8(key->id), "tenant", BCON_UTF8(key->tenant), "role",
		       BCON_UTF8(key->role), "name", BCON_UTF8(key->name ? key->name : ""),
		       "salt", BCON_UTF8(key->salt_hex), "hash", BCON_UTF8(key->hash_hex),
		       "created_at", BCON_INT64(key->created_at ? key->created_at : sm_now_ms()),
		       "requests_per_s", BCON_DOUBLE(key->requests_per_s), "burst",
		       BCON_INT64(key->burst), "ingest_bytes_per_day",
		       BCON_INT64(key->ingest_bytes_per_day), "tokens_per_day",
		       BCON_INT64(key->tokens_per_day));
	sm_conn_get(st->impl, &c, "create key");
	sm_write_opts(c.sm, &opts);
	keys = sm_coll(&c, SM_KEYS);
	if (!mongoc_collection_insert_one(keys, doc, &opts, NULL, &e)) {
		rc = sm_fail(&c, &e, err);
		if (rc == RAG_ECONFLICT)
			rag_err_reset(err, RAG_ECONFLICT, "id", "key '%s' already exists", key->id);
	}
	mongoc_collection_destroy(keys);
	sm_conn_put(&c);
	bson_destroy(&opts);
	bson_destroy(doc);
	return rc;
}

int store_mongo_key_get(struct store *st, const char *id, struct store_key *out,
			struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *keys;
	bson_t *q = BCON_NEW("_id", BCON_UTF8(id));
	bson_t d;
	int rc;

	sm_conn_get(st->impl, &c, "read key");
	keys = sm_coll(&c, SM_KEYS);
	rc = sm_find_one(&c, keys, q, NULL, NULL, &d, err);
	if (rc == 1) {
		rc = read_key(&d, out, err);
		bson_destroy(&d);
	} else if (rc == 0) {
		rc = rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", id);
	}
	mongoc_collection_destroy(keys);
	sm_conn_put(&c);
	bson_destroy(q);
	return rc;
}

int store_mongo_key_list(struct store *st, const char *tenant, struct store_key **out,
			 size_t *n_out, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *coll;
	mongoc_cursor_t *cur;
	struct store_key *keys = NULL;
	size_t n = 0, cap = 0;
	bson_t *q = tenant ? BCON_NEW("tenant", BCON_UTF8(tenant)) : bson_new();
	bson_t *opts = BCON_NEW("sort", "{", "tenant", BCON_INT32(1), "created_at",
				BCON_INT32(1), "_id", BCON_INT32(1), "}");
	const bson_t *d;
	bson_error_t e;
	int rc = 0;

	sm_conn_get(st->impl, &c, "list keys");
	coll = sm_coll(&c, SM_KEYS);
	cur = mongoc_collection_find_with_opts(coll, q, opts, c.sm->primary);
	while (!rc && mongoc_cursor_next(cur, &d)) {
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct store_key *grown = reallocarray(keys, ncap, sizeof(*keys));

			if (!grown) {
				rc = sm_oom(err);
				break;
			}
			keys = grown;
			cap = ncap;
		}
		memset(&keys[n], 0, sizeof(keys[n]));
		rc = read_key(d, &keys[n], err);
		if (rc == 0)
			n++;
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(&c, &e, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	sm_conn_put(&c);
	bson_destroy(q);
	bson_destroy(opts);
	if (rc) {
		store_keys_free(keys, n);
		return rc;
	}
	*out = keys;
	*n_out = n;
	return 0;
}

int store_mongo_key_delete(struct store *st, const char *tenant, const char *id,
			   struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *keys;
	bson_t *q = BCON_NEW("_id", BCON_UTF8(id), "tenant", BCON_UTF8(tenant));
	bson_t opts = BSON_INITIALIZER, reply;
	bson_error_t e;
	int rc = 0;

	sm_conn_get(st->impl, &c, "delete key");
	sm_write_opts(c.sm, &opts);
	keys = sm_coll(&c, SM_KEYS);
	if (!mongoc_collection_delete_one(keys, q, &opts, &reply, &e))
		rc = sm_fail(&c, &e, err);
	else if (sm_get_int(&reply, "deletedCount") == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, "id", "key '%s' not found", id);
	bson_destroy(&reply);
	mongoc_collection_destroy(keys);
	sm_conn_put(&c);
	bson_destroy(&opts);
	bson_destroy(q);
	return rc;
}
