/*
 * Choosing an index backend per collection: the spec (type and parameters),
 * its checks and JSON form, and the table that maps a type to its
 * constructors and snapshot kind.
 *
 * Adding a backend is one row in `backends` (plus its constructors in
 * vindex_backends.h and, if it takes parameters, a line in spec_check and
 * vindex_spec_json): the rest of the server only sees struct vindex_spec.
 * vindex_load dispatches on the snapshot's kind through the same table, so
 * any snapshot loads as the index that wrote it, and vindex_open adds the
 * check that it is the type the collection asked for.
 */
#include "index/vindex.h"
#include "index/vindex_backends.h"
#include "index/vindex_flat.h"
#include "index/vindex_snapshot.h"
#include "core/rag_error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

#define SPEC_M_MIN 2		/* hnswlib needs at least two links to connect a graph */
#define SPEC_M_MAX 128		/* beyond this memory grows with no recall to gain */
#define SPEC_EF_MIN 1
#define SPEC_EF_MAX 4096	/* ef is a per-query candidate list: bounds its cost */
#define SPEC_EFC_MIN 8
#define SPEC_NPROBE_MAX 65536	/* FAISS IVF with more lists than this is not a use we test */
#define SPEC_RESCORE_MAX 10000
#define SPEC_FACTORY_NUM_MAX 65536 /* "HNSW999999" would allocate megabytes per vector */	/* re-scoring more than this is a slower flat scan */

struct backend {
	const char *type;
	uint32_t kind; /* VINDEX_SNAPSHOT_KIND_* */
	struct vindex *(*create)(size_t dim, const struct vindex_spec *spec, struct rag_err *err);
	struct vindex *(*adopt)(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				struct rag_err *err);
};

static struct vindex *flat_create(size_t dim, const struct vindex_spec *spec,
				  struct rag_err *err)
{
	struct vindex *vi = vindex_flat_new(dim);

	(void)spec;
	if (!vi)
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating a flat index");
	return vi;
}

static struct vindex *flat_int8_create(size_t dim, const struct vindex_spec *spec,
				       struct rag_err *err)
{
	struct vindex *vi = vindex_flat_int8_new(dim, spec ? spec->rescore : 0);

	if (!vi)
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating a flat_int8 index");
	return vi;
}

/* The flat kinds' payload is exactly the n vectors. */
static int flat_payload_ok(struct vindex_snapshot *snap, struct rag_err *err)
{
	if (snap->payload_len / sizeof(float) / snap->dim != snap->n ||
	    snap->payload_len != snap->n * snap->dim * sizeof(float)) {
		rag_err_set(err, RAG_EINVAL, NULL,
			    "%zu payload bytes, but %zu vectors of dimension %zu need %zu bytes",
			    snap->payload_len, snap->n, snap->dim,
			    snap->n * snap->dim * sizeof(float));
		vindex_snapshot_release(snap);
		return 0;
	}
	return 1;
}

static struct vindex *flat_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				 struct rag_err *err)
{
	(void)spec;
	if (!flat_payload_ok(snap, err))
		return NULL;
	struct vindex *vi = vindex_flat_adopt(snap->dim, snap->n, snap->ids, snap->payload, err);
	snap->ids = NULL;
	snap->payload = NULL;
	return vi;
}

static struct vindex *flat_int8_adopt(const struct vindex_spec *spec,
				      struct vindex_snapshot *snap, struct rag_err *err)
{
	if (!flat_payload_ok(snap, err))
		return NULL;
	struct vindex *vi = vindex_flat_int8_adopt(snap->dim, spec ? spec->rescore : 0, snap->n,
						   snap->ids, snap->payload, err);
	snap->ids = NULL;
	snap->payload = NULL;
	return vi;
}

static const struct backend backends[] = {
	{ "flat", VINDEX_SNAPSHOT_KIND_FLAT, flat_create, flat_adopt },
	{ "flat_int8", VINDEX_SNAPSHOT_KIND_FLAT_INT8, flat_int8_create, flat_int8_adopt },
	{ "hnsw", VINDEX_SNAPSHOT_KIND_HNSW, vindex_hnsw_new, vindex_hnsw_adopt },
	{ "faiss", VINDEX_SNAPSHOT_KIND_FAISS, vindex_faiss_new, vindex_faiss_adopt },
	{ "chroma", VINDEX_SNAPSHOT_KIND_CHROMA, vindex_chroma_new, vindex_chroma_adopt },
};

static const struct backend *by_type(const char *type)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i].type, type) == 0)
			return &backends[i];
	return NULL;
}

static const struct backend *by_kind(uint32_t kind)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].kind == kind)
			return &backends[i];
	return NULL;
}

struct vindex_spec vindex_spec_default(void)
{
	struct vindex_spec s = {
		.type = "flat",
		.m = 16,
		.ef_construction = 200,
		.ef_search = 64,
		.rescore = FLAT_RESCORE_DEFAULT,
		.nprobe = 16,
		.factory = "IVF1024,PQ48",
		.shards = 1,
	};
	return s;
}

static int range(size_t v, size_t lo, size_t hi, const char *field, struct rag_err *err)
{
	if (v >= lo && v <= hi)
		return 0;
	return rag_err_set(err, RAG_EINVAL, field, "%s must be between %zu and %zu", field, lo,
			   hi);
}

int vindex_spec_check(const struct vindex_spec *spec, size_t dim, struct rag_err *err)
{
	int rc;

	if (!spec)
		return rag_err_set(err, RAG_EINVAL, "index", "index: NULL spec");
	if (!memchr(spec->type, 0, sizeof(spec->type)) || !by_type(spec->type)) {
		char names[128] = "";
		size_t off = 0;
		for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s'%s'",
						i ? ", " : "", backends[i].type);
		return rag_err_set(err, RAG_EINVAL, "index.type", "index.type must be one of %s",
				   names);
	}
	rc = range(spec->m, SPEC_M_MIN, SPEC_M_MAX, "index.m", err);
	if (rc == 0)
		rc = range(spec->ef_construction, SPEC_EFC_MIN, SPEC_EF_MAX,
			   "index.ef_construction", err);
	if (rc == 0)
		rc = range(spec->ef_search, SPEC_EF_MIN, SPEC_EF_MAX, "index.ef_search", err);
	if (rc == 0)
		rc = range(spec->rescore, 1, SPEC_RESCORE_MAX, "index.rescore", err);
	if (rc == 0)
		rc = range(spec->nprobe, 1, SPEC_NPROBE_MAX, "index.nprobe", err);
	if (rc == 0)
		rc = range(spec->shards, 1, VINDEX_SHARDS_MAX, "index.shards", err);
	if (rc < 0)
		return rc;
	/* Checked for every type: it is stored and shown even when unused. */
	if (!memchr(spec->factory, 0, sizeof(spec->factory)) || !spec->factory[0])
		return rag_err_set(err, RAG_EINVAL, "index.factory",
				   "index.factory must be a FAISS factory string of 1 to %d characters",
				   VINDEX_FACTORY_MAX - 1);
	size_t num = 0;
	for (const char *p = spec->factory; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr(",_.=", *p))
			return rag_err_set(err, RAG_EINVAL, "index.factory",
					   "index.factory may hold letters, digits and ',_.=' only");
		num = isdigit((unsigned char)*p) ? num * 10 + (size_t)(*p - '0') : 0;
		if (num > SPEC_FACTORY_NUM_MAX)
			return rag_err_set(err, RAG_EINVAL, "index.factory",
					   "index.factory: numbers above %d are refused",
					   SPEC_FACTORY_NUM_MAX);
	}
	if (strcmp(spec->type, "faiss") == 0)
		rc = vindex_faiss_check_factory(spec->factory, dim, err);
	return rc;
}

size_t vindex_spec_json(const struct vindex_spec *spec, char *buf, size_t len)
{
	int n;

	if (strcmp(spec->type, "hnsw") == 0 || strcmp(spec->type, "chroma") == 0)
		n = snprintf(buf, len, "{\"type\":\"%s\",\"m\":%zu,\"ef_construction\":%zu,"
				       "\"ef_search\":%zu}",
			     spec->type, spec->m, spec->ef_construction, spec->ef_search);
	else if (strcmp(spec->type, "flat_int8") == 0)
		n = snprintf(buf, len, "{\"type\":\"flat_int8\",\"rescore\":%zu}", spec->rescore);
	else if (strcmp(spec->type, "faiss") == 0)
		/* Factory strings are checked by FAISS: letters, digits, ',', '_' and '.' only. */
		n = snprintf(buf, len,
			     "{\"type\":\"faiss\",\"factory\":\"%s\",\"nprobe\":%zu,"
			     "\"ef_search\":%zu,\"rescore\":%zu,\"shards\":%zu}",
			     spec->factory, spec->nprobe, spec->ef_search, spec->rescore,
			     spec->shards);
	else
		n = snprintf(buf, len, "{\"type\":\"%s\"}", spec->type);
	return n < 0 ? 0 : (size_t)n;
}

struct vindex *vindex_create(const struct vindex_spec *spec, size_t dim, struct rag_err *err)
{
	if (dim == 0 || dim > VINDEX_DIM_MAX) {
		rag_err_set(err, RAG_EINVAL, NULL, "vector dimension %zu is out of range", dim);
		return NULL;
	}
	if (vindex_spec_check(spec, dim, err) < 0)
		return NULL;
	return by_type(spec->type)->create(dim, spec, err);
}

/* Loads path as whatever index wrote it; want, if not NULL, must match. */
static struct vindex *load(const struct vindex_spec *want, const char *path, size_t dim,
			   uint64_t *seq_out, struct rag_err *err)
{
	struct vindex_snapshot snap;
	const struct backend *b;
	struct vindex *vi;

	if (vindex_snapshot_read(path, dim, &snap, err) < 0)
		return NULL;
	b = by_kind(snap.kind);
	if (!b || (want && strcmp(b->type, want->type) != 0)) {
		if (b)
			rag_err_set(err, RAG_EINVAL, NULL,
				    "vector snapshot '%s' holds a %s index, not %s", path, b->type,
				    want->type);
		else
			rag_err_set(err, RAG_EINVAL, NULL,
				    "vector snapshot '%s' holds unknown index kind %u", path,
				    (unsigned)snap.kind);
		vindex_snapshot_release(&snap);
		return NULL;
	}
	uint64_t seq = snap.seq;
	struct rag_err inner = { 0 };
	vi = b->adopt(want, &snap, &inner);
	vindex_snapshot_release(&snap);
	if (!vi) {
		rag_err_set(err, inner.code ? inner.code : RAG_EINVAL, NULL,
			    "vector snapshot '%s' is invalid: %s", path, inner.msg);
		return NULL;
	}
	if (seq_out)
		*seq_out = seq;
	return vi;
}

struct vindex *vindex_load(const char *path, size_t expect_dim, uint64_t *seq_out,
			   struct rag_err *err)
{
	return load(NULL, path, expect_dim, seq_out, err);
}

struct vindex *vindex_open(const struct vindex_spec *spec, const char *path, size_t dim,
			   uint64_t *seq_out, struct rag_err *err)
{
	if (vindex_spec_check(spec, dim, err) < 0)
		return NULL;
	return load(spec, path, dim, seq_out, err);
}
