/*
 * The index backends as the factory sees them (internal to src/index;
 * callers use vindex_create / vindex_open in vindex.h). Each backend gives
 * a constructor for an empty index and one that takes over a snapshot read
 * by vindex_snapshot_read. The C++ shims (vindex_hnsw.cpp, vindex_faiss.cpp)
 * export these with C linkage.
 */
#ifndef RAGD_INDEX_VINDEX_BACKENDS_H
#define RAGD_INDEX_VINDEX_BACKENDS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rag_err;
struct vindex;
struct vindex_spec;
struct vindex_snapshot;

/*
 * Backend constructors. *_new: an empty index for dim-float vectors with
 * spec's parameters (already checked by vindex_spec_check). *_adopt: the
 * index in snap (its kind already matched), parameters not stored in the
 * snapshot from spec (NULL: defaults); takes over snap's buffers on success
 * and failure alike, and returns NULL with err saying what is wrong (the
 * caller prefixes the path).
 */
struct vindex *vindex_hnsw_new(size_t dim, const struct vindex_spec *spec,
			       struct rag_err *err);
struct vindex *vindex_hnsw_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				 struct rag_err *err);
struct vindex *vindex_faiss_new(size_t dim, const struct vindex_spec *spec,
				struct rag_err *err);
struct vindex *vindex_faiss_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				  struct rag_err *err);

/*
 * The chroma index (vindex_chroma.c): spec->chroma and
 * spec->chroma_collection say where. _new drops any collection of that name
 * and creates it empty; _adopt checks the snapshot's record of the server,
 * collection, id and count against spec and the server.
 */
struct vindex *vindex_chroma_new(size_t dim, const struct vindex_spec *spec,
				 struct rag_err *err);
struct vindex *vindex_chroma_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				   struct rag_err *err);

/* 0 if FAISS's index_factory accepts factory for dim, else RAG_EINVAL saying why. */
int vindex_faiss_check_factory(const char *factory, size_t dim, struct rag_err *err);

#ifdef __cplusplus
}
#endif

#endif
