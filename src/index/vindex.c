/*
 * The vindex_* entry points: argument checks shared by every backend, then a
 * call through the backend's ops. Backends stay free of NULL-index checks and
 * callers never see the vtable.
 */
#include "index/vindex.h"
#include "core/rag_error.h"

int vindex_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
	       struct rag_err *err)
{
	if (!vi)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_add: NULL index");
	return vi->ops->add(vi, ids, vecs, n, err);
}

size_t vindex_remove(struct vindex *vi, const int64_t *ids, size_t n)
{
	if (!vi || n == 0)
		return 0;
	return vi->ops->remove(vi, ids, n);
}

int vindex_search(struct vindex *vi, const float *query, size_t k,
		  const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		  size_t *n_out, struct rag_err *err)
{
	if (!vi) {
		if (n_out)
			*n_out = 0;
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL index");
	}
	return vi->ops->search(vi, query, k, filter, out_ids, out_scores, n_out, err);
}

size_t vindex_count(struct vindex *vi)
{
	return vi ? vi->ops->count(vi) : 0;
}

size_t vindex_dim(struct vindex *vi)
{
	return vi ? vi->dim : 0;
}

size_t vindex_memory(struct vindex *vi)
{
	return vi ? vi->ops->memory(vi) : 0;
}

const char *vindex_kind(struct vindex *vi)
{
	return vi ? vi->ops->name : "";
}

int vindex_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err)
{
	if (!vi || !path || !*path)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_save: NULL index or empty path");
	return vi->ops->save(vi, path, seq, err);
}

int vindex_check(struct vindex *vi, struct rag_err *err)
{
	if (!vi)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_check: NULL index");
	return vi->ops->check(vi, err);
}

void vindex_free(struct vindex *vi)
{
	if (vi)
		vi->ops->free(vi);
}

int vindex_drop(struct vindex *vi, struct rag_err *err)
{
	return vi && vi->ops->drop ? vi->ops->drop(vi, err) : 0;
}
