/*
 * Content hashes: BLAKE2b (libsodium's crypto_generichash) over a list of
 * byte strings, written as lowercase hex. Used for document content hashes
 * (is this upsert a change?), chunk content addresses (may this vector be
 * reused?) and model fingerprints.
 *
 * A keyed-free cryptographic hash rather than FNV or xxHash: a chunk whose
 * address collides with another's would silently get that chunk's vector,
 * and documents come from clients, so collisions must be infeasible to
 * craft, not merely unlikely.
 *
 * Thread-safety: all functions may be called from any thread.
 */
#ifndef RAGD_CORE_HASH_H
#define RAGD_CORE_HASH_H

#include <stddef.h>

#define HASH_BYTES 16                /* 128 bits: collision-free at any realistic count */
#define HASH_HEX_LEN (2 * HASH_BYTES) /* characters of hash_hex's output, NUL excluded */

/*
 * Hashes the n parts (part i is parts[i][0..lens[i])) as one string, each
 * part prefixed by its length so that ("ab","c") and ("a","bc") differ.
 * Writes HASH_HEX_LEN hex digits and a NUL into out.
 */
void hash_hex(const void *const *parts, const size_t *lens, size_t n,
	      char out[HASH_HEX_LEN + 1]);

/* Streams a file through the hash: 0, or -1 with errno set. */
int hash_file_hex(const char *path, char out[HASH_HEX_LEN + 1]);

#endif
