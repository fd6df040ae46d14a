/*
 * BLAKE2b content hashes through libsodium (see hash.h). sodium_init runs
 * once; crypto_generichash is safe on any thread after it.
 */
#include "core/hash.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>

#include "core/banned.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	/* < 0 only when there is no entropy source, which hashing does not need. */
	if (sodium_init() < 0)
		return;
}

static void to_hex(const unsigned char *raw, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < HASH_BYTES; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

void hash_hex(const void *const *parts, const size_t *lens, size_t n,
	      char out[HASH_HEX_LEN + 1])
{
	crypto_generichash_state st;
	unsigned char raw[HASH_BYTES];

	pthread_once(&once, init);
	crypto_generichash_init(&st, NULL, 0, sizeof(raw));
	for (size_t i = 0; i < n; i++) {
		uint64_t len = lens[i];

		crypto_generichash_update(&st, (const unsigned char *)&len, sizeof(len));
		crypto_generichash_update(&st, parts[i], lens[i]);
	}
	crypto_generichash_final(&st, raw, sizeof(raw));
	to_hex(raw, out);
}

int hash_file_hex(const char *path, char out[HASH_HEX_LEN + 1])
{
	crypto_generichash_state st;
	unsigned char raw[HASH_BYTES], buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;
	int rc = 0;

	if (!f)
		return -1;
	pthread_once(&once, init);
	crypto_generichash_init(&st, NULL, 0, sizeof(raw));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		crypto_generichash_update(&st, buf, n);
	if (ferror(f))
		rc = -1;
	fclose(f);
	crypto_generichash_final(&st, raw, sizeof(raw));
	to_hex(raw, out);
	return rc;
}
