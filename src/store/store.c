/*
 * The store's front: argument checks that hold for every backend, then a
 * call through the backend's ops table, plus the release functions for what
 * the store hands out.
 *
 * Checking client-shaped input (names, chunk ranges, dims) here rather than
 * in each backend means a second backend cannot forget one, and its tests
 * can assume valid input. Anything that needs the stored state (does the
 * collection exist, is the dim right) stays in the backend, inside its
 * transaction.
 */
#include "store/store.h"

#include "core/rag_error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

struct store_options store_default_options(void)
{
	struct store_options o = {
		.pool_size = STORE_DEFAULT_POOL_SIZE,
		.busy_timeout_ms = STORE_DEFAULT_BUSY_TIMEOUT_MS,
		.sync = STORE_SYNC_FULL,
	};
	return o;
}

void store_free(struct store *st)
{
	if (st)
		st->ops->free(st);
}

const char *store_backend_name(const struct store *st)
{
	return st->ops->name;
}

static int check_name(const char *what, const char *field, const char *s, struct rag_err *err)
{
	if (!s || !*s)
		return rag_err_set(err, RAG_EINVAL, field, "%s must not be empty", what);
	return 0;
}

int store_collection_create(struct store *st, const char *tenant,
			    const struct store_collection *spec, int64_t *id_out,
			    struct rag_err *err)
{
	int rc;

	assert(st && spec);
	rc = check_name("tenant", "tenant", tenant, err);
	if (!rc)
		rc = check_name("collection name", "name", spec->name, err);
	if (!rc)
		rc = check_name("embedding model", "embed_model", spec->embed_model, err);
	if (rc)
		return rc;
	if (spec->dim <= 0)
		return rag_err_set(err, RAG_EINVAL, "dim", "dim must be positive, not %d", spec->dim);
	if (spec->chunk_size <= 0)
		return rag_err_set(err, RAG_EINVAL, "chunk_size", "chunk_size must be positive, not %d",
				   spec->chunk_size);
	if (spec->chunk_overlap < 0 || spec->chunk_overlap >= spec->chunk_size)
		return rag_err_set(err, RAG_EINVAL, "chunk_overlap",
				   "chunk_overlap must be in [0, chunk_size), not %d",
				   spec->chunk_overlap);
	return st->ops->collection_create(st, tenant, spec, id_out, err);
}

int store_collection_get(struct store *st, const char *tenant, const char *name,
			 struct store_collection *out, struct rag_err *err)
{
	assert(st && tenant && name && out);
	memset(out, 0, sizeof(*out));
	return st->ops->collection_get(st, tenant, name, out, err);
}

int store_collection_get_by_id(struct store *st, int64_t collection_id,
			       struct store_collection *out, struct rag_err *err)
{
	assert(st && out);
	memset(out, 0, sizeof(*out));
	return st->ops->collection_get_by_id(st, collection_id, out, err);
}

int store_collection_list(struct store *st, const char *tenant, struct store_collection **out,
			  size_t *n_out, struct rag_err *err)
{
	assert(st && tenant && out && n_out);
	*out = NULL;
	*n_out = 0;
	return st->ops->collection_list(st, tenant, out, n_out, err);
}

int store_collection_list_all(struct store *st, struct store_collection **out, size_t *n_out,
			      struct rag_err *err)
{
	assert(st && out && n_out);
	*out = NULL;
	*n_out = 0;
	return st->ops->collection_list(st, NULL, out, n_out, err);
}

int store_collection_delete(struct store *st, const char *tenant, const char *name,
			    struct rag_err *err)
{
	assert(st && tenant && name);
	return st->ops->collection_delete(st, tenant, name, err);
}

int store_collection_seq(struct store *st, int64_t collection_id, int64_t *seq_out,
			 struct rag_err *err)
{
	assert(st && seq_out);
	return st->ops->collection_seq(st, collection_id, seq_out, err);
}

void store_collection_release(struct store_collection *c)
{
	if (!c)
		return;
	free((char *)c->tenant);
	free((char *)c->name);
	free((char *)c->embed_model);
	free((char *)c->config_json);
	memset(c, 0, sizeof(*c));
}

void store_collection_list_free(struct store_collection *list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		store_collection_release(&list[i]);
	free(list);
}

static int check_put(const struct store_put *put, struct rag_err *err)
{
	const struct store_doc *doc = put->doc;
	size_t text_len;
	int rc;

	if (!doc)
		return rag_err_set(err, RAG_EINVAL, NULL, "no document to put");
	rc = check_name("document id", "id", doc->id, err);
	if (rc)
		return rc;
	if (!doc->text)
		return rag_err_set(err, RAG_EINVAL, "text", "document '%s' has no text", doc->id);
	if (put->n_chunks == 0 || !put->chunks || !put->vecs)
		return rag_err_set(err, RAG_EINVAL, "text", "document '%s' has no chunks", doc->id);
	if (put->dim <= 0)
		return rag_err_set(err, RAG_EINVAL, NULL, "embedding dim must be positive, not %d",
				   put->dim);
	if (put->job && (!put->job->job_id || !*put->job->job_id || put->job->idx < 0))
		return rag_err_set(err, RAG_EINVAL, NULL, "document '%s': no job item named",
				   doc->id);
	text_len = strlen(doc->text);
	for (size_t i = 0; i < put->n_chunks; i++) {
		const struct store_chunk *c = &put->chunks[i];

		if (!c->text || c->start_byte > c->end_byte || c->end_byte > text_len)
			return rag_err_set(err, RAG_EINVAL, NULL,
					   "document '%s': chunk %zu is not a range of its text",
					   doc->id, i);
	}
	return 0;
}

int store_doc_put(struct store *st, int64_t collection_id, const struct store_put *put,
		  struct store_put_result *res, struct rag_err *err)
{
	struct store_put_result ignored;
	int rc;

	assert(st && put);
	rc = check_put(put, err);
	if (rc)
		return rc;
	return st->ops->doc_put(st, collection_id, put, res ? res : &ignored, err);
}

int store_doc_get(struct store *st, int64_t collection_id, const char *doc_id,
		  struct store_doc *out, struct rag_err *err)
{
	assert(st && doc_id && out);
	memset(out, 0, sizeof(*out));
	return st->ops->doc_get(st, collection_id, doc_id, out, err);
}

int store_doc_delete(struct store *st, int64_t collection_id, const char *doc_id,
		     int64_t *seq_out, struct rag_err *err)
{
	int64_t ignored;

	assert(st && doc_id);
	return st->ops->doc_delete(st, collection_id, doc_id, seq_out ? seq_out : &ignored, err);
}

void store_doc_release(struct store_doc *doc)
{
	if (!doc)
		return;
	free((char *)doc->id);
	free((char *)doc->text);
	free((char *)doc->metadata_json);
	free((char *)doc->content_hash);
	free((char *)doc->blocks);
	memset(doc, 0, sizeof(*doc));
}

int store_chunks_get(struct store *st, int64_t collection_id, const int64_t *ids, size_t n,
		     struct store_hit *out, struct rag_err *err)
{
	assert(st && (n == 0 || (ids && out)));
	if (n)
		memset(out, 0, n * sizeof(*out));
	if (n == 0)
		return 0;
	return st->ops->chunks_get(st, collection_id, ids, n, out, err);
}

void store_hits_release(struct store_hit *hits, size_t n)
{
	if (!hits)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)hits[i].document_id);
		free((char *)hits[i].text);
		free((char *)hits[i].metadata_json);
		free((char *)hits[i].section);
		free((char *)hits[i].hash);
		free((char *)hits[i].model);
		memset(&hits[i], 0, sizeof(hits[i]));
	}
}

int store_chunks_scan(struct store *st, int64_t collection_id,
		      store_row_fn cb, void *ctx,
		      int64_t *seq_out, struct rag_err *err)
{
	int64_t ignored;

	assert(st && cb);
	return st->ops->chunks_scan(st, collection_id, cb, ctx, seq_out ? seq_out : &ignored, err);
}

int store_chunk_vectors(struct store *st, int64_t collection_id, int64_t first_id,
			int64_t last_id, store_row_fn cb,
			void *ctx, struct rag_err *err)
{
	assert(st && cb);
	if (first_id > last_id)
		return 0;
	return st->ops->chunk_vectors(st, collection_id, first_id, last_id, cb, ctx, err);
}

int store_changes(struct store *st, int64_t collection_id, int64_t since_seq, size_t limit,
		  struct store_change *out, size_t *n_out, struct rag_err *err)
{
	assert(st && n_out && (limit == 0 || out));
	*n_out = 0;
	if (limit)
		memset(out, 0, limit * sizeof(*out));
	return st->ops->changes(st, collection_id, since_seq, limit, out, n_out, err);
}

void store_changes_release(struct store_change *changes, size_t n)
{
	if (!changes)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)changes[i].document_id);
		memset(&changes[i], 0, sizeof(changes[i]));
	}
}

int store_ping(struct store *st, struct rag_err *err)
{
	return st->ops->ping ? st->ops->ping(st, err) : 0;
}

int store_filter_ids(struct store *st, int64_t collection_id, const struct store_filter *f,
		     int64_t **ids_out, size_t *n_out, struct rag_err *err)
{
	*ids_out = NULL;
	*n_out = 0;
	if (!st->ops->filter_ids)
		return rag_err_set(err, RAG_EUNSUPPORTED, "filter",
				   "this store cannot filter on metadata");
	return st->ops->filter_ids(st, collection_id, f, ids_out, n_out, err);
}

int store_key_put(struct store *st, const struct store_key *key, struct rag_err *err)
{
	int rc = check_name("key id", "id", key->id, err);

	if (!rc)
		rc = check_name("tenant", "tenant", key->tenant, err);
	if (!rc)
		rc = check_name("role", "role", key->role, err);
	if (!rc && (!key->salt_hex || !key->hash_hex))
		rc = rag_err_set(err, RAG_EINVAL, "hash", "a key needs its salt and hash");
	if (rc)
		return rc;
	if (!st->ops->key_put)
		return rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store keeps no API keys");
	return st->ops->key_put(st, key, err);
}

int store_key_get(struct store *st, const char *id, struct store_key *out, struct rag_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!id || !*id)
		return rag_err_set(err, RAG_ENOTFOUND, "id", "key '' not found");
	if (!st->ops->key_get)
		return rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store keeps no API keys");
	return st->ops->key_get(st, id, out, err);
}

int store_key_list(struct store *st, const char *tenant, struct store_key **out, size_t *n_out,
		   struct rag_err *err)
{
	*out = NULL;
	*n_out = 0;
	if (!st->ops->key_list)
		return rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store keeps no API keys");
	return st->ops->key_list(st, tenant, out, n_out, err);
}

int store_key_delete(struct store *st, const char *tenant, const char *id, struct rag_err *err)
{
	int rc = check_name("tenant", "tenant", tenant, err);

	if (!rc)
		rc = check_name("key id", "id", id, err);
	if (rc)
		return rc;
	if (!st->ops->key_delete)
		return rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store keeps no API keys");
	return st->ops->key_delete(st, tenant, id, err);
}

void store_key_release(struct store_key *key)
{
	if (!key)
		return;
	free((char *)key->id);
	free((char *)key->tenant);
	free((char *)key->role);
	free((char *)key->name);
	free((char *)key->salt_hex);
	free((char *)key->hash_hex);
	memset(key, 0, sizeof(*key));
}

void store_keys_free(struct store_key *keys, size_t n)
{
	for (size_t i = 0; keys && i < n; i++)
		store_key_release(&keys[i]);
	free(keys);
}

int store_session_append(struct store *st, const char *tenant, const char *session_id,
			 const struct store_message *msgs, size_t n, struct rag_err *err)
{
	if (!session_id || !session_id[0])
		return rag_err_set(err, RAG_EINVAL, "session_id", "session id must not be empty");
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].role[0] || !msgs[i].content)
			return rag_err_set(err, RAG_EINVAL, "messages",
					   "message %zu has no role or content", i);
	if (n == 0)
		return 0;
	if (!st->ops->session_append)
		return rag_err_set(err, RAG_EUNSUPPORTED, "session_id",
				   "this store keeps no sessions");
	return st->ops->session_append(st, tenant, session_id, msgs, n, err);
}

int store_session_history(struct store *st, const char *tenant, const char *session_id,
			  size_t limit, struct store_message **out, size_t *n_out,
			  struct rag_err *err)
{
	*out = NULL;
	*n_out = 0;
	if (!session_id || !session_id[0])
		return rag_err_set(err, RAG_EINVAL, "session_id", "session id must not be empty");
	if (limit == 0)
		return 0;
	if (!st->ops->session_history)
		return rag_err_set(err, RAG_EUNSUPPORTED, "session_id",
				   "this store keeps no sessions");
	return st->ops->session_history(st, tenant, session_id, limit, out, n_out, err);
}

void store_messages_free(struct store_message *msgs, size_t n)
{
	if (!msgs)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)msgs[i].role);
		free((char *)msgs[i].content);
	}
	free(msgs);
}

void store_doc_list_free(struct store_doc *docs, size_t n)
{
	for (size_t i = 0; docs && i < n; i++)
		store_doc_release(&docs[i]);
	free(docs);
}

int store_doc_hash(struct store *st, int64_t collection_id, const char *doc_id, char **hash_out,
		   size_t *n_chunks_out, struct rag_err *err)
{
	size_t ignored;

	assert(st && doc_id && hash_out);
	*hash_out = NULL;
	return st->ops->doc_hash(st, collection_id, doc_id, hash_out,
				 n_chunks_out ? n_chunks_out : &ignored, err);
}

int store_vectors_by_hash(struct store *st, int64_t collection_id, const char *const *hashes,
			  size_t n, int dim, float *vecs, unsigned char *found,
			  struct rag_err *err)
{
	assert(st && (n == 0 || (hashes && vecs && found)));
	if (n == 0)
		return 0;
	memset(found, 0, n);
	return st->ops->vectors_by_hash(st, collection_id, hashes, n, dim, vecs, found, err);
}

int store_doc_list(struct store *st, int64_t collection_id, const struct store_doc_query *q,
		   struct store_doc **out, size_t *n_out, struct rag_err *err)
{
	assert(st && q && out && n_out);
	*out = NULL;
	*n_out = 0;
	if (q->limit == 0)
		return rag_err_set(err, RAG_EINVAL, "limit", "limit must be positive");
	return st->ops->doc_list(st, collection_id, q, out, n_out, err);
}

int store_doc_chunks(struct store *st, int64_t collection_id, const char *doc_id,
		     struct store_hit **out, size_t *n_out, struct rag_err *err)
{
	assert(st && doc_id && out && n_out);
	*out = NULL;
	*n_out = 0;
	return st->ops->doc_chunks(st, collection_id, doc_id, out, n_out, err);
}

const char *store_job_state_name(enum store_job_state s)
{
	static const char *const names[] = { "queued", "running", "succeeded", "failed",
					     "cancelled" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static int no_jobs(struct rag_err *err)
{
	return rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store has no job queue");
}

int store_job_create(struct store *st, const struct store_job *job,
		     const struct store_job_item *items, size_t n_items, struct rag_err *err)
{
	assert(st && job && job->id && job->tenant && job->collection && job->kind);
	return st->ops->job_create ? st->ops->job_create(st, job, items, n_items, err)
				   : no_jobs(err);
}

int store_job_get(struct store *st, const char *tenant, const char *id, struct store_job *out,
		  struct rag_err *err)
{
	assert(st && id && out);
	memset(out, 0, sizeof(*out));
	return st->ops->job_get ? st->ops->job_get(st, tenant, id, out, err) : no_jobs(err);
}

void store_job_release(struct store_job *job)
{
	if (!job)
		return;
	free((char *)job->id);
	free((char *)job->tenant);
	free((char *)job->collection);
	free((char *)job->kind);
	free((char *)job->spec_json);
	free((char *)job->error);
	memset(job, 0, sizeof(*job));
}

int store_job_errors(struct store *st, const char *id, size_t limit,
		     struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	assert(st && id && out && n_out);
	*out = NULL;
	*n_out = 0;
	return st->ops->job_errors ? st->ops->job_errors(st, id, limit, out, n_out, err)
				   : no_jobs(err);
}

int store_job_claim(struct store *st, const char *owner, int64_t lease_ms, char **id_out,
		    struct rag_err *err)
{
	assert(st && owner && id_out);
	*id_out = NULL;
	return st->ops->job_claim ? st->ops->job_claim(st, owner, lease_ms, id_out, err) : 0;
}

int store_job_items_next(struct store *st, const char *id, size_t limit,
			 struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	assert(st && id && out && n_out);
	*out = NULL;
	*n_out = 0;
	return st->ops->job_items_next ? st->ops->job_items_next(st, id, limit, out, n_out, err)
				       : no_jobs(err);
}

void store_job_items_free(struct store_job_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++) {
		free((char *)items[i].doc_id);
		free((char *)items[i].name);
		free((char *)items[i].content_type);
		free((char *)items[i].format);
		free((char *)items[i].metadata_json);
		free((void *)items[i].body);
		free((char *)items[i].error);
	}
	free(items);
}

int store_job_item_finish(struct store *st, const char *id, int64_t idx, int state,
			  const char *error, int64_t n_chunks, int64_t n_bytes,
			  int64_t lease_ms, struct rag_err *err)
{
	assert(st && id && state >= 1 && state <= 3);
	return st->ops->job_item_finish
		       ? st->ops->job_item_finish(st, id, idx, state, error, n_chunks, n_bytes,
						  lease_ms, err)
		       : no_jobs(err);
}

int store_job_finish(struct store *st, const char *id, enum store_job_state state,
		     const char *error, struct rag_err *err)
{
	assert(st && id && (state == STORE_JOB_SUCCEEDED || state == STORE_JOB_FAILED));
	return st->ops->job_finish ? st->ops->job_finish(st, id, (int)state, error, err)
				   : no_jobs(err);
}

int store_collection_swap(struct store *st, const char *tenant, const char *name,
			  const char *staged, const char *retired, int64_t expect_seq,
			  struct rag_err *err)
{
	assert(st && tenant && name && staged && retired);
	return st->ops->collection_swap
		       ? st->ops->collection_swap(st, tenant, name, staged, retired, expect_seq,
						  err)
		       : rag_err_set(err, RAG_EUNSUPPORTED, NULL, "this store cannot swap collections");
}

int store_job_cancel(struct store *st, const char *tenant, const char *id, struct rag_err *err)
{
	assert(st && tenant && id);
	return st->ops->job_cancel ? st->ops->job_cancel(st, tenant, id, err) : no_jobs(err);
}
