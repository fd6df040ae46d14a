/*
 * Snapshot file format shared by the index backends (internal to src/index).
 *
 * Layout, host byte order (x86-64 and arm64: little-endian; a file from a
 * big-endian host fails the magic check):
 *
 *   offset  size   field
 *   0       8      magic "RAGDVIX\n"
 *   8       4      format version (VINDEX_SNAPSHOT_VERSION)
 *   12      4      kind (VINDEX_SNAPSHOT_KIND_*: which backend wrote it)
 *   16      8      dim
 *   24      8      count n
 *   32      8      seq: the change-log sequence the snapshot reflects
 *   40      8      checksum over bytes 0..39, then the ids, then the payload
 *   48      8n     ids, int64: the live ids
 *   48+8n   ...    payload, to the end of the file: the backend's own
 *
 * The flat kinds' payload is the vectors, float32, row-major (4nd bytes);
 * hnsw and faiss describe theirs in their files. The checksum is FNV-1a 64 run in
 * four interleaved lanes over 8-byte words (see vindex_snapshot.c); any
 * single flipped bit changes it.
 *
 * Thread-safety: the functions keep no state.
 */
#ifndef RAGD_INDEX_VINDEX_SNAPSHOT_H
#define RAGD_INDEX_VINDEX_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

struct rag_err;

#define VINDEX_SNAPSHOT_VERSION 1 /* bump on any layout change; old files are rebuilt */
#define VINDEX_SNAPSHOT_KIND_FLAT 1
#define VINDEX_SNAPSHOT_KIND_FLAT_INT8 2
#define VINDEX_SNAPSHOT_KIND_HNSW 3
#define VINDEX_SNAPSHOT_KIND_FAISS 4
#define VINDEX_SNAPSHOT_KIND_CHROMA 5 /* no ids; the payload says where the vectors are */

/*
 * Atomically writes a snapshot of n ids and a payload (both borrowed for the
 * call) to path via path.tmp, fsync, rename and a directory fsync. Returns
 * 0, RAG_EINVAL or RAG_EIO.
 */
int vindex_snapshot_write(const char *path, uint32_t kind, size_t dim, size_t n,
			  const int64_t *ids, const void *payload, size_t payload_len,
			  uint64_t seq, struct rag_err *err);

/* A snapshot read back: ids and payload are owned (vindex_snapshot_release). */
struct vindex_snapshot {
	uint32_t kind;
	size_t dim, n;
	uint64_t seq;
	int64_t *ids;
	void *payload;
	size_t payload_len;
};

/*
 * Reads and validates the frame of a snapshot: magic, version, dimension
 * (expect_dim when non-zero), lengths and checksum. The payload is checked
 * by the backend. Returns 0, RAG_ENOTFOUND, RAG_EIO, RAG_EINVAL (corrupt,
 * with a message naming the file) or RAG_ENOMEM; *out is empty on error.
 */
int vindex_snapshot_read(const char *path, size_t expect_dim, struct vindex_snapshot *out,
			 struct rag_err *err);

/* Frees what vindex_snapshot_read allocated. */
void vindex_snapshot_release(struct vindex_snapshot *snap);

#endif
