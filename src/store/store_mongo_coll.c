/*
 * The MongoDB store's collections.
 *
 * A collection is two documents: collections/{_id: cid, ...} holds its
 * settings and seq, and names/{_id: key(tenant, name), cid} maps the name a
 * client uses to the id. The name map is what makes a create unique (the
 * _id of names) and a swap atomic without transactions: a swap rewrites
 * the one names document of `name` to point at the staged collection's id,
 * so a reader resolving `name` sees the old collection or the new one,
 * never none. The name inside the collection document follows afterwards
 * (it serves lookups by id).
 *
 * A delete removes the name first (from then on the collection is gone for
 * every reader), then the collection document, then its data by cid. A
 * crash half-way leaves data under a cid nothing names; cids are never
 * reused, so it is invisible, and deleting that data is all a cleanup
 * needs (store_mongo_purge).
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

/* Fills *out from a collection document; the name and tenant from the names doc when given. */
static int read_collection(const bson_t *d, const bson_t *name_doc, struct store_collection *out,
			   struct rag_err *err)
{
	const bson_t *nd = name_doc ? name_doc : d;
	int rc;

	out->id = sm_get_int(d, "_id");
	out->dim = (int)sm_get_int(d, "dim");
	out->chunk_size = (int)sm_get_int(d, "chunk_size");
	out->chunk_overlap = (int)sm_get_int(d, "chunk_overlap");
	out->created_at = sm_get_int(d, "created_at");
	out->seq = sm_get_int(d, "seq");
	rc = sm_get_str(nd, "tenant", &out->tenant, err);
	if (!rc)
		rc = sm_get_str(nd, "name", &out->name, err);
	if (!rc)
		rc = sm_get_str(d, "embed_model", &out->embed_model, err);
	if (!rc)
		rc = sm_get_str(d, "config_json", &out->config_json, err);
	if (rc)
		store_collection_release(out);
	return rc;
}

/* The names document of tenant's name in *out (always initialised): 1 found, 0 not, or an error. */
static int find_name(struct sm_conn *c, const char *tenant, const char *name, bson_t *out,
		     struct rag_err *err)
{
	mongoc_collection_t *names = sm_coll(c, SM_NAMES);
	char *key = sm_key2(tenant, name);
	bson_t *q;
	int rc;

	if (!key) {
		mongoc_collection_destroy(names);
		bson_init(out);
		return sm_oom(err);
	}
	q = BCON_NEW("_id", BCON_UTF8(key));
	rc = sm_find_one(c, names, q, NULL, NULL, out, err);
	if (rc != 1)
		bson_init(out);
	bson_destroy(q);
	free(key);
	mongoc_collection_destroy(names);
	return rc;
}

/* The collection document of cid in *out (always initialised): 1, 0 or an error. */
static int find_coll(struct sm_conn *c, int64_t cid, bson_t *out, struct rag_err *err)
{
	mongoc_collection_t *colls = sm_coll(c, SM_COLLECTIONS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid));
	int rc = sm_find_one(c, colls, q, NULL, NULL, out, err);

	if (rc != 1)
		bson_init(out);
	bson_destroy(q);
	mongoc_collection_destroy(colls);
	return rc;
}

int store_mongo_collection_create(struct store *st, const char *tenant,
				  const struct store_collection *spec, int64_t *id_out,
				  struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *colls = NULL, *names = NULL;
	bson_t *doc = NULL, *name_doc = NULL, opts = BSON_INITIALIZER;
	char *key = sm_key2(tenant, spec->name);
	bson_error_t e;
	int64_t id = 0;
	int rc;

	sm_conn_get(st->impl, &c, "create collection");
	if (!key) {
		rc = sm_oom(err);
		goto out;
	}
	rc = sm_alloc(&c, "collection_id", 1, &id, err);
	if (rc)
		goto out;
	sm_write_opts(c.sm, &opts);
	colls = sm_coll(&c, SM_COLLECTIONS);
	names = sm_coll(&c, SM_NAMES);
	doc = BCON_NEW("_id", BCON_INT64(id), "tenant", BCON_UTF8(tenant), "name",
		       BCON_UTF8(spec->name), "embed_model", BCON_UTF8(spec->embed_model), "dim",
		       BCON_INT32(spec->dim), "chunk_size", BCON_INT32(spec->chunk_size),
		       "chunk_overlap", BCON_INT32(spec->chunk_overlap), "config_json",
		       BCON_UTF8(spec->config_json ? spec->config_json : "{}"), "created_at",
		       BCON_INT64(sm_now_ms()), "seq", BCON_INT64(0));
	name_doc = BCON_NEW("_id", BCON_UTF8(key), "tenant", BCON_UTF8(tenant), "name",
			    BCON_UTF8(spec->name), "cid", BCON_INT64(id));
	if (!mongoc_collection_insert_one(colls, doc, &opts, NULL, &e)) {
		rc = sm_fail(&c, &e, err);
		goto out;
	}
	/* The name is the commit point: until it exists, the collection is invisible. */
	if (!mongoc_collection_insert_one(names, name_doc, &opts, NULL, &e)) {
		bson_t *q = BCON_NEW("_id", BCON_INT64(id));

		mongoc_collection_delete_one(colls, q, NULL, NULL, NULL);
		bson_destroy(q);
		rc = sm_fail(&c, &e, NULL) == RAG_ECONFLICT
			     ? rag_err_set(err, RAG_ECONFLICT, "name",
					   "collection '%s' already exists", spec->name)
			     : sm_fail(&c, &e, err);
		goto out;
	}
	if (id_out)
		*id_out = id;
out:
	bson_destroy(doc);
	bson_destroy(name_doc);
	bson_destroy(&opts);
	mongoc_collection_destroy(colls);
	mongoc_collection_destroy(names);
	free(key);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_collection_get(struct store *st, const char *tenant, const char *name,
			       struct store_collection *out, struct rag_err *err)
{
	struct sm_conn c;
	bson_t nd, cd = BSON_INITIALIZER;
	int rc;

	sm_conn_get(st->impl, &c, "get collection");
	rc = find_name(&c, tenant, name, &nd, err);
	if (rc == 1) {
		bson_destroy(&cd);
		rc = find_coll(&c, sm_get_int(&nd, "cid"), &cd, err);
	}
	if (rc == 1)
		rc = read_collection(&cd, &nd, out, err);
	else if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", name);
	bson_destroy(&nd);
	bson_destroy(&cd);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_collection_get_by_id(struct store *st, int64_t collection_id,
				     struct store_collection *out, struct rag_err *err)
{
	struct sm_conn c;
	bson_t cd;
	int rc;

	sm_conn_get(st->impl, &c, "get collection");
	rc = find_coll(&c, collection_id, &cd, err);
	if (rc == 1)
		rc = read_collection(&cd, NULL, out, err);
	else if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection %lld not found",
				 (long long)collection_id);
	bson_destroy(&cd);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_collection_list(struct store *st, const char *tenant,
				struct store_collection **out, size_t *n_out, struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *names;
	mongoc_cursor_t *cur;
	struct store_collection *list = NULL, *grown;
	size_t n = 0, alloc = 0;
	bson_t *q = tenant ? BCON_NEW("tenant", BCON_UTF8(tenant)) : bson_new();
	bson_t *opts = BCON_NEW("sort", "{", "tenant", BCON_INT32(1), "name", BCON_INT32(1), "}");
	const bson_t *nd;
	bson_error_t e;
	int rc = 0;

	sm_conn_get(st->impl, &c, "list collections");
	names = sm_coll(&c, SM_NAMES);
	cur = mongoc_collection_find_with_opts(names, q, opts, c.sm->primary);
	while (!rc && mongoc_cursor_next(cur, &nd)) {
		bson_t cd;
		int found;

		/* A name whose collection is gone is a delete half-way: skip it. */
		found = find_coll(&c, sm_get_int(nd, "cid"), &cd, err);
		if (found == 1 && n == alloc) {
			alloc = alloc ? 2 * alloc : 8;
			grown = reallocarray(list, alloc, sizeof(*list));
			if (!grown)
				found = sm_oom(err);
			else
				list = grown;
		}
		if (found == 1) {
			memset(&list[n], 0, sizeof(list[n]));
			found = read_collection(&cd, nd, &list[n], err);
			if (found == 0)
				n++;
		}
		rc = found < 0 ? found : 0;
		bson_destroy(&cd);
	}
	if (!rc && mongoc_cursor_error(cur, &e))
		rc = sm_fail(&c, &e, err);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(names);
	bson_destroy(q);
	bson_destroy(opts);
	sm_conn_put(&c);
	if (rc || n == 0) {
		store_collection_list_free(list, n);
		return rc;
	}
	*out = list;
	*n_out = n;
	return 0;
}

/* Deletes every document of coll whose field key equals cid. */
static int delete_by(struct sm_conn *c, const char *coll_name, const char *key, int64_t cid,
		     struct rag_err *err)
{
	bson_t *q = BCON_NEW(key, BCON_INT64(cid));
	int rc = sm_delete_many(c, coll_name, q, err);

	bson_destroy(q);
	return rc;
}

int store_mongo_purge(struct sm_conn *c, int64_t cid, struct rag_err *err)
{
	int rc = delete_by(c, SM_CHUNKS, "c", cid, err);

	if (!rc)
		rc = delete_by(c, SM_DOCS, "c", cid, err);
	if (!rc)
		rc = delete_by(c, SM_CHANGES, "c", cid, err);
	if (!rc)
		rc = delete_by(c, SM_COLLECTIONS, "_id", cid, err);
	return rc;
}

int store_mongo_collection_delete(struct store *st, const char *tenant, const char *name,
				  struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *names = NULL;
	bson_t nd, *q = NULL, opts = BSON_INITIALIZER;
	char *key = sm_key2(tenant, name);
	bson_error_t e;
	int64_t cid;
	int rc;

	sm_conn_get(st->impl, &c, "delete collection");
	if (!key) {
		bson_init(&nd);
		rc = sm_oom(err);
		goto out;
	}
	rc = find_name(&c, tenant, name, &nd, err);
	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", name);
	if (rc < 0)
		goto out;
	cid = sm_get_int(&nd, "cid");
	/* Under the write lock, so no put of this collection is half-way meanwhile. */
	rc = sm_lock(&c, cid, err);
	if (rc < 0)
		goto out;
	names = sm_coll(&c, SM_NAMES);
	q = BCON_NEW("_id", BCON_UTF8(key), "cid", BCON_INT64(cid));
	sm_write_opts(c.sm, &opts);
	if (!mongoc_collection_delete_one(names, q, &opts, NULL, &e))
		rc = sm_fail(&c, &e, err);
	if (!rc)
		rc = store_mongo_purge(&c, cid, err);
	sm_unlock(&c, cid);
out:
	bson_destroy(&nd);
	bson_destroy(q);
	bson_destroy(&opts);
	mongoc_collection_destroy(names);
	free(key);
	sm_conn_put(&c);
	return rc;
}

int store_mongo_collection_seq(struct store *st, int64_t collection_id, int64_t *seq_out,
			       struct rag_err *err)
{
	struct sm_conn c;
	int dim;
	int rc;

	sm_conn_get(st->impl, &c, "read collection seq");
	rc = sm_coll_state(&c, collection_id, &dim, seq_out, err);
	sm_conn_put(&c);
	return rc;
}

/* Sets the name kept in collection cid's document (for lookups by id). */
static int set_coll_name(struct sm_conn *c, int64_t cid, const char *name, struct rag_err *err)
{
	mongoc_collection_t *colls = sm_coll(c, SM_COLLECTIONS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid));
	bson_t *u = BCON_NEW("$set", "{", "name", BCON_UTF8(name), "}");
	int rc = sm_find_modify(c, colls, q, u, 0, 0, NULL, NULL, err);

	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(colls);
	return rc;
}

/* Resolves tenant's name to its cid; RAG_ENOTFOUND worded. */
static int resolve(struct sm_conn *c, const char *tenant, const char *name, int64_t *cid,
		   struct rag_err *err)
{
	bson_t nd;
	int rc = find_name(c, tenant, name, &nd, err);

	if (rc == 0)
		rc = rag_err_set(err, RAG_ENOTFOUND, NULL, "collection '%s' not found", name);
	if (rc == 1) {
		*cid = sm_get_int(&nd, "cid");
		rc = 0;
	}
	bson_destroy(&nd);
	return rc;
}

/*
 * Under the source's write lock (the one every document write takes):
 * fails with RAG_EBUSY unless its seq is expect_seq (< 0: no check), then
 * marks it retired, so that from here no write to it can succeed.
 */
static int retire(struct sm_conn *c, int64_t cid, int64_t expect_seq, struct rag_err *err)
{
	mongoc_collection_t *colls;
	bson_t *q, *u;
	int64_t seq;
	int dim, rc = sm_coll_state(c, cid, &dim, &seq, err);

	if (rc)
		return rc;
	if (expect_seq >= 0 && seq != expect_seq)
		return rag_err_set(err, RAG_EBUSY, NULL,
				   "collection %lld changed (seq %lld, expected %lld)", (long long)cid,
				   (long long)seq, (long long)expect_seq);
	colls = sm_coll(c, SM_COLLECTIONS);
	q = BCON_NEW("_id", BCON_INT64(cid));
	u = BCON_NEW("$set", "{", "retired", BCON_INT64(1), "}");
	rc = sm_find_modify(c, colls, q, u, 0, 0, NULL, NULL, err);
	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(colls);
	return rc;
}

/* Clears the retired mark of a swap that did not happen. */
static void unretire(struct sm_conn *c, int64_t cid)
{
	mongoc_collection_t *colls = sm_coll(c, SM_COLLECTIONS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid));
	bson_t *u = BCON_NEW("$set", "{", "retired", BCON_INT64(0), "}");

	sm_find_modify(c, colls, q, u, 0, 0, NULL, NULL, NULL);
	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(colls);
}

int store_mongo_collection_swap(struct store *st, const char *tenant, const char *name,
				const char *staged, const char *retired, int64_t expect_seq,
				struct rag_err *err)
{
	struct sm_conn c;
	mongoc_collection_t *names = NULL;
	char *k_name = sm_key2(tenant, name), *k_staged = sm_key2(tenant, staged);
	char *k_retired = sm_key2(tenant, retired);
	bson_t *doc = NULL, *q = NULL, *u = NULL, opts = BSON_INITIALIZER;
	bson_error_t e;
	int64_t old_id = 0, new_id = 0;
	int found = 0, locked = 0, rc = 0;

	sm_conn_get(st->impl, &c, "swap collections");
	if (!k_name || !k_staged || !k_retired) {
		rc = sm_oom(err);
		goto out;
	}
	rc = resolve(&c, tenant, name, &old_id, err);
	if (!rc)
		rc = resolve(&c, tenant, staged, &new_id, err);
	if (!rc) {
		rc = sm_lock(&c, old_id, err);
		locked = rc >= 0;
		rc = rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = retire(&c, old_id, expect_seq, err);
	if (rc)
		goto out;
	names = sm_coll(&c, SM_NAMES);
	sm_write_opts(c.sm, &opts);
	/* 1. The old collection gets its retired name too (unique: the conflict check). */
	doc = BCON_NEW("_id", BCON_UTF8(k_retired), "tenant", BCON_UTF8(tenant), "name",
		       BCON_UTF8(retired), "cid", BCON_INT64(old_id));
	if (!mongoc_collection_insert_one(names, doc, &opts, NULL, &e)) {
		unretire(&c, old_id);
		rc = sm_fail(&c, &e, NULL) == RAG_ECONFLICT
			     ? rag_err_set(err, RAG_ECONFLICT, NULL,
					   "collection '%s' already exists", retired)
			     : sm_fail(&c, &e, err);
		goto out;
	}
	/* 2. The commit point: name points at the staged collection, in one atomic write. */
	q = BCON_NEW("_id", BCON_UTF8(k_name), "cid", BCON_INT64(old_id));
	u = BCON_NEW("$set", "{", "cid", BCON_INT64(new_id), "}");
	rc = sm_find_modify(&c, names, q, u, 0, 0, NULL, &found, err);
	if (!rc && !found)
		rc = rag_err_set(err, RAG_ECONFLICT, NULL,
				 "collection '%s' changed during the swap", name);
	if (rc) {
		bson_t *undo = BCON_NEW("_id", BCON_UTF8(k_retired));

		unretire(&c, old_id);
		mongoc_collection_delete_one(names, undo, NULL, NULL, NULL);
		bson_destroy(undo);
		goto out;
	}
	/* 3. The staged name goes; the collection documents follow the names. */
	bson_destroy(q);
	q = BCON_NEW("_id", BCON_UTF8(k_staged), "cid", BCON_INT64(new_id));
	if (!mongoc_collection_delete_one(names, q, &opts, NULL, &e))
		rc = sm_fail(&c, &e, err);
	if (!rc)
		rc = set_coll_name(&c, old_id, retired, err);
	if (!rc)
		rc = set_coll_name(&c, new_id, name, err);
out:
	if (locked)
		sm_unlock(&c, old_id);
	bson_destroy(doc);
	bson_destroy(q);
	bson_destroy(u);
	bson_destroy(&opts);
	mongoc_collection_destroy(names);
	free(k_name);
	free(k_staged);
	free(k_retired);
	sm_conn_put(&c);
	return rc;
}
