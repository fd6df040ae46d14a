/*
 * Snapshot file format shared by the index backends (internal to src/index).
 *
 * Layout, host byte order (x86-64 and arm64: little-endian; a file from a
 * big-endian host fails the magic check):
 *
 *   offset  size   field
 *   0       8      magic "RAGDVIX\n"
 *   8       4      format version (VINDEX_SNAPSHOT_VERSION)
 *   12      4      kind (1 = flat float32)
 *   16      8      dim
 *   24      8      count n
 *   32      8      seq: the change-log sequence the snapshot reflects
 *   40      8      checksum over bytes 0..39, then the ids, then the vectors
 *   48      8n     ids, int64
 *   48+8n   4nd    vectors, float32, row-major
 *
 * The file is exactly 48 + 8n + 4nd bytes. The checksum is FNV-1a 64 run in
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

/*
 * Atomically writes a snapshot of n vectors (borrowed for the call) to path
 * via path.tmp, fsync, rename and a directory fsync. Returns 0, RAG_EINVAL
 * or RAG_EIO.
 */
int vindex_snapshot_write(const char *path, uint32_t kind, size_t dim, size_t n,
			  const int64_t *ids, const float *vecs, uint64_t seq,
			  struct rag_err *err);

/*
 * Atomically replaces path with len bytes of data (borrowed), the same way:
 * for backends whose snapshot is not vectors (a remote index records where
 * its vectors are). Returns 0, RAG_EINVAL or RAG_EIO.
 */
int vindex_snapshot_write_bytes(const char *path, const void *data, size_t len,
				struct rag_err *err);

#endif
