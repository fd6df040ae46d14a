/*
 * Vector index snapshots: an atomic write and a validating read. The
 * backend named by the header's kind then checks its own payload
 * (vindex_factory.c dispatches).
 *
 * A snapshot only saves a rebuild from the store, so the loader trusts
 * nothing: every header field is range-checked, the file length must equal
 * what the header implies (with overflow-checked arithmetic), and a checksum
 * covers header and payload, so a torn, truncated or bit-flipped file is
 * rejected with a message and the caller rebuilds. The layout is documented
 * in vindex_snapshot.h.
 *
 * Checksum: FNV-1a 64 over 8-byte words in four interleaved lanes, folded
 * together at the end, chained across header, ids and vectors. Byte-wise
 * FNV-1a runs at ~1 byte per cycle, a third of a second for a 300 MB index;
 * four word lanes run about as fast as the disk. Each step is a bijection of
 * the lane state, so any single changed word (any flipped bit) changes the
 * result. It detects corruption, not tampering. CRC32C would need a table or
 * SSE4.2 dispatch for the same job.
 *
 * Writes go to path.tmp, are fsynced, renamed over path, and the directory is
 * fsynced, so a crash leaves the old snapshot or the new one; so does a
 * full disk (RAG_ENOSPACE): the partial path.tmp is removed, path is
 * untouched.
 */
#include "index/vindex_snapshot.h"
#include "index/vindex.h"
#include "core/rag_error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC "RAGDVIX\n" /* 8 bytes; fails on a byte-swapped host too */
#define SNAP_HEADER_LEN 48     /* see the layout in vindex_snapshot.h */
#define SNAP_SUM_OFFSET 40     /* the checksum field; bytes before it are summed */
#define SNAP_IO_CHUNK (1u << 30) /* largest single read()/write(): Linux caps near 2 GiB */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t checksum(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t lane[4], w;
	size_t i = 0;

	for (int j = 0; j < 4; j++)
		lane[j] = seed ^ ((uint64_t)(j + 1) * 0x9e3779b97f4a7c15ULL);
	for (; i + 32 <= len; i += 32) {
		for (int j = 0; j < 4; j++) {
			memcpy(&w, p + i + 8 * j, 8);
			lane[j] = (lane[j] ^ w) * FNV_PRIME;
		}
	}
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		lane[0] = (lane[0] ^ w) * FNV_PRIME;
	}
	for (; i < len; i++)
		lane[1] = (lane[1] ^ p[i]) * FNV_PRIME;
	uint64_t h = (seed ^ (uint64_t)len) * FNV_PRIME;
	for (int j = 0; j < 4; j++)
		h = (h ^ lane[j]) * FNV_PRIME;
	return h;
}

static uint64_t file_sum(const unsigned char *hdr, const void *ids, size_t ids_len,
			 const void *vecs, size_t vecs_len)
{
	uint64_t h = checksum(hdr, SNAP_SUM_OFFSET, FNV_OFFSET);

	h = checksum(ids, ids_len, h);
	return checksum(vecs, vecs_len, h);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len < SNAP_IO_CHUNK ? len : SNAP_IO_CHUNK);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Returns 0, or -1 with errno set (0 for a short file). */
static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t r = read(fd, p, len < SNAP_IO_CHUNK ? len : SNAP_IO_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static const char *errstr(int e, char *buf, size_t len)
{
	return e ? strerror_r(e, buf, len) : "unexpected end of file";
}

static int fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -1;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int vindex_snapshot_write(const char *path, uint32_t kind, size_t dim, size_t n,
			  const int64_t *ids, const void *payload, size_t payload_len,
			  uint64_t seq, struct rag_err *err)
{
	unsigned char hdr[SNAP_HEADER_LEN];
	uint32_t version = VINDEX_SNAPSHOT_VERSION;
	uint64_t d = dim, count = n, sum;
	char tmp[PATH_MAX], ebuf[128];
	const char *step;
	int fd, e;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return rag_err_set(err, RAG_EINVAL, NULL, "snapshot path '%s' is too long", path);
	memcpy(hdr, SNAP_MAGIC, 8);
	memcpy(hdr + 8, &version, 4);
	memcpy(hdr + 12, &kind, 4);
	memcpy(hdr + 16, &d, 8);
	memcpy(hdr + 24, &count, 8);
	memcpy(hdr + 32, &seq, 8);
	sum = file_sum(hdr, ids, n * sizeof(*ids), payload, payload_len);
	memcpy(hdr + SNAP_SUM_OFFSET, &sum, 8);

	step = "create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	step = "write";
	if (write_all(fd, hdr, sizeof(hdr)) < 0 || write_all(fd, ids, n * sizeof(*ids)) < 0 ||
	    write_all(fd, payload, payload_len) < 0)
		goto fail_close;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail_close;
	step = "close";
	if (close(fd) < 0) {
		fd = -1;
		goto fail_unlink;
	}
	step = "rename";
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	if (fsync_dir(path) < 0)
		return rag_err_set(err, RAG_EIO, NULL,
				   "cannot fsync the directory of vector snapshot '%s': %s", path,
				   errstr(errno, ebuf, sizeof(ebuf)));
	return 0;

fail_close:
	e = errno;
	close(fd);
	errno = e;
fail_unlink:
	e = errno;
	unlink(tmp);
	errno = e;
fail:
	e = errno;
	return rag_err_set(err, e == ENOSPC || e == EDQUOT ? RAG_ENOSPACE : RAG_EIO, NULL,
			   "cannot %s vector snapshot '%s': %s", step, tmp,
			   errstr(e, ebuf, sizeof(ebuf)));
}

/* Rejects a file with a message naming it and what is wrong with it. */
#define BAD(...)                                                               \
	do {                                                                   \
		rc = rag_err_set(err, RAG_EINVAL, NULL, __VA_ARGS__);          \
		goto cleanup;                                                  \
	} while (0)

int vindex_snapshot_read(const char *path, size_t expect_dim, struct vindex_snapshot *out,
			 struct rag_err *err)
{
	unsigned char hdr[SNAP_HEADER_LEN];
	uint32_t version, kind;
	uint64_t dim, n, seq, sum;
	int64_t *ids = NULL;
	void *payload = NULL;
	char ebuf[128];
	struct stat st;
	int fd = -1, rc = 0;

	memset(out, 0, sizeof(*out));
	if (!path)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_load: NULL path");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rag_err_set(err, errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, NULL,
				   "cannot open vector snapshot '%s': %s", path,
				   errstr(errno, ebuf, sizeof(ebuf)));
	if (fstat(fd, &st) < 0) {
		rc = rag_err_set(err, RAG_EIO, NULL, "cannot stat vector snapshot '%s': %s", path,
				 errstr(errno, ebuf, sizeof(ebuf)));
		goto cleanup;
	}
	if (st.st_size < SNAP_HEADER_LEN)
		BAD("vector snapshot '%s' is truncated: %lld bytes, less than its header", path,
		    (long long)st.st_size);
	if (read_all(fd, hdr, sizeof(hdr)) < 0)
		goto io_error;
	if (memcmp(hdr, SNAP_MAGIC, 8) != 0)
		BAD("'%s' is not a vector snapshot (bad magic)", path);
	memcpy(&version, hdr + 8, 4);
	memcpy(&kind, hdr + 12, 4);
	memcpy(&dim, hdr + 16, 8);
	memcpy(&n, hdr + 24, 8);
	memcpy(&seq, hdr + 32, 8);
	memcpy(&sum, hdr + SNAP_SUM_OFFSET, 8);
	if (version != VINDEX_SNAPSHOT_VERSION)
		BAD("vector snapshot '%s' has format version %u; this build reads %u", path,
		    (unsigned)version, (unsigned)VINDEX_SNAPSHOT_VERSION);
	if (dim == 0 || dim > VINDEX_DIM_MAX)
		BAD("vector snapshot '%s' has invalid dimension %llu", path,
		    (unsigned long long)dim);
	if (expect_dim && dim != expect_dim)
		BAD("vector snapshot '%s' has dimension %llu, expected %zu", path,
		    (unsigned long long)dim, expect_dim);
	uint64_t body = (uint64_t)st.st_size - SNAP_HEADER_LEN;
	if (n > body / sizeof(int64_t))
		BAD("vector snapshot '%s' is %lld bytes, too short for %llu ids", path,
		    (long long)st.st_size, (unsigned long long)n);
	size_t payload_len = body - n * sizeof(int64_t);
	/* The flat kinds' payload is the vectors: check the length before reading. */
	if ((kind == VINDEX_SNAPSHOT_KIND_FLAT || kind == VINDEX_SNAPSHOT_KIND_FLAT_INT8) &&
	    (n > body / (sizeof(int64_t) + dim * sizeof(float)) ||
	     payload_len != n * dim * sizeof(float)))
		BAD("vector snapshot '%s' is %lld bytes, but %llu vectors of dimension %llu need "
		    "%llu",
		    path, (long long)st.st_size, (unsigned long long)n, (unsigned long long)dim,
		    (unsigned long long)(SNAP_HEADER_LEN + n * (sizeof(int64_t) + dim * sizeof(float))));
	ids = malloc(n ? n * sizeof(*ids) : 1);
	payload = malloc(payload_len ? payload_len : 1);
	if (!ids || !payload) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL,
				 "out of memory loading %llu vectors from snapshot '%s'",
				 (unsigned long long)n, path);
		goto cleanup;
	}
	if (read_all(fd, ids, n * sizeof(*ids)) < 0 || read_all(fd, payload, payload_len) < 0)
		goto io_error;
	if (file_sum(hdr, ids, n * sizeof(*ids), payload, payload_len) != sum)
		BAD("vector snapshot '%s' is corrupt: checksum mismatch", path);
	*out = (struct vindex_snapshot){ .kind = kind, .dim = dim, .n = n, .seq = seq,
					 .ids = ids, .payload = payload,
					 .payload_len = payload_len };
	ids = NULL;
	payload = NULL;
	goto cleanup;

io_error:
	rc = rag_err_set(err, errno ? RAG_EIO : RAG_EINVAL, NULL,
			 "cannot read vector snapshot '%s': %s", path,
			 errstr(errno, ebuf, sizeof(ebuf)));
cleanup:
	free(ids);
	free(payload);
	close(fd);
	return rc;
}

void vindex_snapshot_release(struct vindex_snapshot *snap)
{
	free(snap->ids);
	free(snap->payload);
	snap->ids = NULL;
	snap->payload = NULL;
}
