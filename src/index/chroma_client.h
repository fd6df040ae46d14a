/*
 * chroma_client: the few calls of a Chroma server's HTTP API v2 that the
 * chroma vector index needs, over libcurl, with the JSON encoding and
 * decoding exposed for unit tests.
 *
 * Everything lives under /api/v2/tenants/{tenant}/databases/{database}/;
 * the tenant and database are created on first use when missing. ragd
 * always sends the embeddings itself (base64 little-endian float32 on
 * writes, the compact form Chroma accepts; decimal floats in queries, the
 * only form its query endpoint takes) and never configures an embedding
 * function, so Chroma never embeds anything. Records are keyed by the
 * decimal chunk id and carry it again as the integer metadata "rid", which
 * lets a query be restricted to a set of ids with `where: {rid: {$in}}`
 * (Chroma's own `ids` restriction fails when an id is not in the
 * collection, a `where` does not).
 *
 * Errors from the transport and the server are translated once, here:
 * a connection refused, a timeout or a 502/503/504 answer is RAG_EBUSY
 * (the server is down or slow: retry later, 503 to clients); 404 is
 * RAG_ENOTFOUND; other 4xx answers are RAG_EINTERNAL (we sent something
 * Chroma rejects: a bug, or a collection of another dimension); other
 * 5xx and unreadable answers are RAG_EIO. Messages quote the server's URL
 * and its own error text.
 *
 * Thread-safety: a client may be used by any number of threads at once.
 * It keeps a small pool of libcurl handles so concurrent calls each have
 * their own connection and sequential calls reuse a kept-alive one.
 */
#ifndef RAGD_INDEX_CHROMA_CLIENT_H
#define RAGD_INDEX_CHROMA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;
struct sbuf;
struct chroma_client;

#define CHROMA_ID_MAX 64 /* a collection id is a UUID (36 characters) */

/* Start from chroma_client_default_options(); strings are copied by _new. */
struct chroma_client_options {
	const char *url;         /* e.g. "http://127.0.0.1:8000", no path */
	const char *tenant;      /* "default_tenant" */
	const char *database;    /* "default_database" */
	long timeout_ms;         /* whole request, connection included */
	long connect_timeout_ms; /* connection set-up alone */
};

struct chroma_client_options chroma_client_default_options(void);

/*
 * A client for the server at opts->url. Contacts nothing (the first call
 * does). Returns NULL with err set for a URL that is not http:// or
 * https://, empty names, non-positive timeouts, or out of memory. Free
 * with chroma_client_free.
 */
struct chroma_client *chroma_client_new(const struct chroma_client_options *opts,
					struct rag_err *err);

/* Frees the client and its connections; NULL-safe. No call may be running. */
void chroma_client_free(struct chroma_client *cl);

/* The server URL, tenant and database the client was made for (borrowed from the client). */
const char *chroma_client_url(const struct chroma_client *cl);
const char *chroma_client_tenant(const struct chroma_client *cl);
const char *chroma_client_database(const struct chroma_client *cl);

/* GET /api/v2/heartbeat: 0 when the server answers, else RAG_EBUSY. */
int chroma_heartbeat(struct chroma_client *cl, struct rag_err *err);

/* A collection's shape: its vectors' dimension and its HNSW parameters. */
struct chroma_collection_params {
	size_t dim;
	size_t max_neighbors;   /* HNSW M */
	size_t ef_construction;
	size_t ef_search;
};

/*
 * Gets or creates the collection `name` (inner-product space, no embedding
 * function, p's HNSW parameters when it is created), creating the tenant
 * and database first when missing, and writes its id into id_out. A
 * collection that exists with vectors of another dimension is
 * RAG_ECONFLICT.
 */
int chroma_collection_ensure(struct chroma_client *cl, const char *name,
			     const struct chroma_collection_params *p, char id_out[CHROMA_ID_MAX],
			     struct rag_err *err);

/*
 * The id of the collection `name`, and whether it is `expect_id`: 0 when
 * it exists with that id, RAG_ENOTFOUND when it does not exist,
 * RAG_ECONFLICT when it exists with another id (recreated since).
 */
int chroma_collection_check(struct chroma_client *cl, const char *name, const char *expect_id,
			    struct rag_err *err);

/* Deletes the collection `name`; one that does not exist is not an error. */
int chroma_collection_drop(struct chroma_client *cl, const char *name, struct rag_err *err);

/* Number of records in collection `id`. */
int chroma_count(struct chroma_client *cl, const char *id, size_t *n_out, struct rag_err *err);

/*
 * Upserts n records (ids, and n * dim floats row-major, both borrowed) into
 * collection `id`, in requests of at most CHROMA_WRITE_BATCH records. Not
 * atomic across requests: on failure a prefix may have been written (an
 * upsert is idempotent, so the caller simply retries).
 */
#define CHROMA_WRITE_BATCH 1024 /* ~2 MB a request at 384 dims; Chroma allows 5461 */
int chroma_upsert(struct chroma_client *cl, const char *id, const int64_t *ids,
		  const float *vecs, size_t n, size_t dim, struct rag_err *err);

/* Deletes the records with the given ids from collection `id`; missing ids are ignored. */
int chroma_delete(struct chroma_client *cl, const char *id, const int64_t *ids, size_t n,
		  struct rag_err *err);

/* One nearest-neighbour query. */
struct chroma_query {
	const float *vec;        /* dim floats, borrowed */
	size_t dim;
	size_t n_results;        /* >= 1: Chroma drops the connection on 0 */
	const int64_t *where_ids; /* when non-NULL, only these records (n_where_ids >= 1) */
	size_t n_where_ids;
};

/*
 * Runs q on collection `id`: writes up to q->n_results ids and Chroma's
 * distances (1 - inner product in our space), nearest first, into out_ids
 * and out_dists (room for q->n_results each) and their number into *n_out.
 */
int chroma_query(struct chroma_client *cl, const char *id, const struct chroma_query *q,
		 int64_t *out_ids, float *out_dists, size_t *n_out, struct rag_err *err);

/* --- the JSON bodies, exposed for tests (chroma_codec.c) --- */

/*
 * Standard base64 (RFC 4648, with padding) of len bytes into out, which
 * needs 4 * ((len + 2) / 3) + 1 bytes; NUL-terminates and returns the
 * length written.
 */
size_t chroma_base64(const void *data, size_t len, char *out);

/* Appends the body of an upsert of n records to sb. Returns 0 or RAG_ENOMEM. */
int chroma_encode_upsert(struct sbuf *sb, const int64_t *ids, const float *vecs, size_t n,
			 size_t dim);

/* Appends the body of a delete by ids to sb. Returns 0 or RAG_ENOMEM. */
int chroma_encode_delete(struct sbuf *sb, const int64_t *ids, size_t n);

/*
 * Appends the body of q to sb. Returns 0, RAG_EINVAL (n_results 0, a NaN
 * or infinite component) or RAG_ENOMEM.
 */
int chroma_encode_query(struct sbuf *sb, const struct chroma_query *q);

/*
 * Parses a query answer (one query) into out_ids and out_dists (room for
 * max each), nearest first as Chroma sent them. RAG_EIO when the body is
 * not a query answer, holds an id that is not a decimal int64 or a
 * missing distance, or has more than max results.
 */
int chroma_decode_query(const char *body, size_t len, size_t max, int64_t *out_ids,
			float *out_dists, size_t *n_out, struct rag_err *err);

/*
 * Parses a collection (as GET or POST .../collections answer it): its id
 * into id_out and its dimension into *dim_out (0 while it holds no
 * vectors). RAG_EIO when the body is not one.
 */
int chroma_decode_collection(const char *body, size_t len, char id_out[CHROMA_ID_MAX],
			     size_t *dim_out, struct rag_err *err);

/*
 * Chroma's error text, "NotFoundError: Collection [x] does not exist",
 * from an error body into msg (msg_len bytes, NUL-terminated); the raw
 * body, shortened, when it is not Chroma's {"error","message"} shape.
 */
void chroma_decode_error(const char *body, size_t len, char *msg, size_t msg_len);

#endif
