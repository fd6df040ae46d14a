/*
 * The "chroma" vector index: a vindex whose vectors live in a collection
 * on a Chroma server (see chroma_client.h), one Chroma collection per
 * index. It implements vindex.h's contract with these differences, which
 * a remote index cannot avoid:
 *
 *   - add, remove and search make HTTP calls; they may fail with RAG_EBUSY
 *     (the server is down or slower than the client's timeout) or RAG_EIO,
 *     and recover by themselves once the server answers again.
 *   - add is not atomic across Chroma requests: after an error some of the
 *     vectors may be in. Upserts are idempotent, so replaying the same add
 *     (what the change-log follower does) converges.
 *   - remove cannot report a failure: ids Chroma did not confirm deleting
 *     are kept as pending, excluded from every search and sent again before
 *     the next write, search or save; a save with removals still pending
 *     fails rather than record a state the server does not have.
 *   - scores are 1 - Chroma's inner-product distance (Chroma computes in
 *     float32 and answers in float32: within ~1e-6 of the flat index's
 *     scores); Chroma's HNSW is approximate, so rankings can differ from
 *     the exact scan on large collections.
 *   - a filtered search over a small allowed set (the filter's ids hint,
 *     at most VINDEX_CHROMA_WHERE_MAX ids) asks Chroma for those ids only;
 *     otherwise it over-fetches, calling keep on the answers, and asks again
 *     for four times as many until it has k kept or Chroma has no more.
 *   - the snapshot is a small JSON file naming the server, tenant,
 *     database, collection (name and id), dimension, record count and
 *     seq; loading it checks all of them against the server, so a wiped or
 *     recreated collection is rebuilt from the store instead of trusted.
 *
 * Thread-safety: as vindex.h (searches run concurrently; writes are
 * serialised against everything else).
 */
#ifndef RAGD_INDEX_VINDEX_CHROMA_H
#define RAGD_INDEX_VINDEX_CHROMA_H

#include <stddef.h>
#include <stdint.h>

struct chroma_client;
struct rag_err;
struct vindex;

#define VINDEX_CHROMA_WHERE_MAX 1024 /* allowed ids sent as a where clause: ~8 KB of JSON */

struct vindex_chroma_options {
	struct chroma_client *client; /* borrowed: must outlive the index */
	const char *collection;       /* the collection's name on the server; copied.
				       * Chroma wants 3-512 of [A-Za-z0-9._-], starting
				       * and ending with a letter or digit. */
};

/*
 * An empty index: drops any collection of that name on the server and
 * creates it anew (inner-product space), so a rebuild never keeps stale
 * records. dim must be 1..VINDEX_DIM_MAX. Returns NULL with err set
 * (RAG_EBUSY when the server is down). Caller frees with vindex_free.
 */
struct vindex *vindex_chroma_new(const struct vindex_chroma_options *opts, size_t dim,
				 struct rag_err *err);

/*
 * Attaches to the collection a snapshot at path records, after checking
 * the snapshot (format, dimension expect_dim when non-zero, same server,
 * tenant, database and collection name as opts) and the server (the
 * collection still has that id and holds the recorded number of records).
 * Stores the snapshot's seq in *seq_out (may be NULL). Any mismatch or
 * error returns NULL with err saying what, and the caller rebuilds with
 * vindex_chroma_new.
 */
struct vindex *vindex_chroma_load(const struct vindex_chroma_options *opts, const char *path,
				  size_t expect_dim, uint64_t *seq_out, struct rag_err *err);

#endif
