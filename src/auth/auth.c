/*
 * API keys: tokens, their hashes, the registry of known keys, and
 * verification of a request's Authorization header.
 *
 * The hash. A key's secret is 256 bits from the system's CSPRNG, not a
 * password a person chose: nobody can guess it, so stretching it (Argon2,
 * crypto_pwhash) buys nothing and would cost ~50-500 ms and many MiB per
 * request, or force a cache of verified plaintext secrets in memory. What
 * a leaked table must not give away is the secret itself and any use of
 * one hash for another deployment; a keyed BLAKE2b (libsodium's
 * crypto_generichash) of the secret with a random per-key 128-bit salt as
 * the key does both: it is a one-way function of a full-entropy input, and
 * the salt makes equal secrets (or a precomputed table) useless. One hash
 * costs well under a microsecond. Comparison is constant-time
 * (sodium_memcmp), and an unknown id, a revoked key and a wrong secret
 * answer with the same message.
 *
 * The registry. Every key this instance has seen is a slot in a hash map
 * by id: configured keys at start, store keys on first use. A store key is
 * trusted for auth.key_cache_s, then read again, so a revocation on another
 * instance takes effect within that time; the revoking instance marks the
 * slot at once. Unknown ids are not cached (a flood of random ids costs one
 * indexed store read each and no memory).
 *
 * Slots are never freed while the server runs: a principal borrows its
 * tenant and key id from its slot, and answers run on workers that may
 * outlive a revocation. A slot costs about 300 bytes, a key revoked and
 * re-created each second for a year about 10 GB: keys are not created
 * that way.
 */
#include "auth/auth_int.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/hashmap.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "store/store.h"

#include "core/banned.h"

#define AUTH_PREFIX "ragd_"
#define AUTH_KEY_FILE_MAX 4096 /* a key file holds one token and maybe a newline */

static const char *const role_names[] = { "none", "reader", "writer", "admin" };

const char *auth_role_name(enum auth_role role)
{
	return (unsigned)role < 4 ? role_names[role] : "none";
}

int auth_role_parse(const char *s, const char *field, enum auth_role *out, struct rag_err *err)
{
	for (int i = AUTH_ROLE_READER; i <= AUTH_ROLE_ADMIN; i++)
		if (s && strcmp(s, role_names[i]) == 0) {
			*out = (enum auth_role)i;
			return 0;
		}
	return rag_err_set(err, RAG_EINVAL, field, "role '%s' is not one of reader, writer, admin",
			   s ? s : "");
}

int64_t auth_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t auth_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool auth_tenant_valid(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > AUTH_TENANT_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

void auth_hash_secret(const char *secret, size_t len, const unsigned char salt[16],
		      unsigned char hash[32])
{
	crypto_generichash(hash, AUTH_HASH_BYTES, (const unsigned char *)secret, len, salt,
			   AUTH_SALT_BYTES);
}

static bool is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

static int from_hex(const char *hex, size_t hex_len, unsigned char *out, size_t n)
{
	size_t got = 0;

	if (hex_len != 2 * n ||
	    sodium_hex2bin(out, n, hex, hex_len, NULL, &got, NULL) != 0 || got != n)
		return -1;
	return 0;
}

/* Splits "ragd_<id>_<secret>": pointers into token; -1 when malformed. */
static int token_split(const char *token, size_t len, const char **id, const char **secret)
{
	size_t plen = strlen(AUTH_PREFIX);

	if (len != plen + AUTH_ID_HEX + 1 + AUTH_SECRET_HEX || strncmp(token, AUTH_PREFIX, plen) != 0 ||
	    token[plen + AUTH_ID_HEX] != '_' || !is_hex(token + plen, AUTH_ID_HEX) ||
	    !is_hex(token + plen + AUTH_ID_HEX + 1, AUTH_SECRET_HEX))
		return -1;
	*id = token + plen;
	*secret = token + plen + AUTH_ID_HEX + 1;
	return 0;
}

int auth_token_new(char token[AUTH_TOKEN_MAX], char id[AUTH_ID_HEX + 1], char *hash_spec,
		   size_t hash_spec_size)
{
	unsigned char rid[AUTH_ID_HEX / 2], secret[AUTH_SECRET_HEX / 2], salt[AUTH_SALT_BYTES];
	unsigned char hash[AUTH_HASH_BYTES];
	char secret_hex[AUTH_SECRET_HEX + 1], salt_hex[2 * AUTH_SALT_BYTES + 1];
	char hash_hex[2 * AUTH_HASH_BYTES + 1];

	if (sodium_init() < 0)
		return RAG_EINTERNAL;
	randombytes_buf(rid, sizeof(rid));
	randombytes_buf(secret, sizeof(secret));
	randombytes_buf(salt, sizeof(salt));
	sodium_bin2hex(id, AUTH_ID_HEX + 1, rid, sizeof(rid));
	sodium_bin2hex(secret_hex, sizeof(secret_hex), secret, sizeof(secret));
	sodium_bin2hex(salt_hex, sizeof(salt_hex), salt, sizeof(salt));
	auth_hash_secret(secret_hex, AUTH_SECRET_HEX, salt, hash);
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
	snprintf(token, AUTH_TOKEN_MAX, AUTH_PREFIX "%s_%s", id, secret_hex);
	if (hash_spec)
		snprintf(hash_spec, hash_spec_size, "id=%s;hash=%s:%s", id, salt_hex, hash_hex);
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(secret_hex, sizeof(secret_hex));
	return 0;
}

struct auth_limits auth_effective(const struct auth *a, const struct auth_limits *own)
{
	struct auth_limits l = a->defaults;

	if (own->requests_per_s >= 0)
		l.requests_per_s = own->requests_per_s;
	if (own->burst >= 0)
		l.burst = own->burst;
	if (own->ingest_bytes_per_day >= 0)
		l.ingest_bytes_per_day = own->ingest_bytes_per_day;
	if (own->tokens_per_day >= 0)
		l.tokens_per_day = own->tokens_per_day;
	return l;
}

/* A new slot (not yet in the map); NULL when out of memory. */
static struct auth_slot *slot_new(const char *id, const char *tenant, bool from_config)
{
	struct auth_slot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = strdup(id);
	s->tenant = strdup(tenant);
	s->name = strdup("");
	if (!s->id || !s->tenant || !s->name) {
		free(s->id);
		free(s->tenant);
		free(s->name);
		free(s);
		return NULL;
	}
	s->from_config = from_config;
	s->own = (struct auth_limits){ -1, -1, -1, -1 };
	pthread_mutex_init(&s->qlock, NULL);
	auth_slot_quota_init(s);
	return s;
}

static void slot_free(struct auth_slot *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->qlock);
	free(s->id);
	free(s->tenant);
	free(s->name);
	free(s);
}

/* --- configured keys: "field=value;field=value" entries, comma-separated --- */

struct entry {
	char tenant[AUTH_TENANT_MAX + 1];
	char role[16];
	char id[AUTH_ID_HEX + 1];
	char name[128];
	char key_file[1024];
	char hash[2 * (AUTH_SALT_BYTES + AUTH_HASH_BYTES) + 2];
	struct auth_limits limits;
};

static int entry_field(struct entry *e, const char *name, size_t name_len, const char *val,
		       size_t val_len, int n, struct rag_err *err)
{
	static const struct {
		const char *name;
		size_t off, size;
	} strs[] = {
		{ "tenant", offsetof(struct entry, tenant), AUTH_TENANT_MAX + 1 },
		{ "role", offsetof(struct entry, role), 16 },
		{ "id", offsetof(struct entry, id), AUTH_ID_HEX + 1 },
		{ "name", offsetof(struct entry, name), 128 },
		{ "key_file", offsetof(struct entry, key_file), 1024 },
		{ "hash", offsetof(struct entry, hash), sizeof(((struct entry *)0)->hash) },
	};
	static const struct {
		const char *name;
		size_t off;
	} nums[] = {
		{ "burst", offsetof(struct entry, limits.burst) },
		{ "ingest_bytes_per_day", offsetof(struct entry, limits.ingest_bytes_per_day) },
		{ "tokens_per_day", offsetof(struct entry, limits.tokens_per_day) },
	};
	char num[32];
	char *end;

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strlen(strs[i].name) != name_len || strncmp(strs[i].name, name, name_len) != 0)
			continue;
		if (val_len >= strs[i].size)
			return rag_err_set(err, RAG_EINVAL, "auth.keys",
					   "auth.keys: entry %d: %s is too long", n, strs[i].name);
		memcpy((char *)e + strs[i].off, val, val_len);
		((char *)e + strs[i].off)[val_len] = '\0';
		return 0;
	}
	if (val_len == 0 || val_len >= sizeof(num))
		goto bad_number;
	memcpy(num, val, val_len);
	num[val_len] = '\0';
	if (name_len == 14 && strncmp(name, "requests_per_s", 14) == 0) {
		errno = 0;
		e->limits.requests_per_s = strtod(num, &end);
		if (errno || *end || !(e->limits.requests_per_s >= 0))
			goto bad_number;
		return 0;
	}
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (strlen(nums[i].name) != name_len || strncmp(nums[i].name, name, name_len) != 0)
			continue;
		errno = 0;
		*(int64_t *)((char *)e + nums[i].off) = strtoll(num, &end, 10);
		if (errno || *end || *(int64_t *)((char *)e + nums[i].off) < 0)
			goto bad_number;
		return 0;
	}
	return rag_err_set(err, RAG_EINVAL, "auth.keys",
			   "auth.keys: entry %d: unknown field '%.*s' (tenant, role, key_file, id,"
			   " hash, name, requests_per_s, burst, ingest_bytes_per_day,"
			   " tokens_per_day)", n, (int)name_len, name);
bad_number:
	return rag_err_set(err, RAG_EINVAL, "auth.keys",
			   "auth.keys: entry %d: %.*s must be a number >= 0", n, (int)name_len, name);
}

/* Reads a token from a key file (one line) into token. */
static int read_key_file(const char *path, char *token, size_t size, int n, struct rag_err *err)
{
	FILE *f = fopen(path, "rb");
	size_t len;

	if (!f)
		return rag_err_set(err, RAG_EINVAL, "auth.keys",
				   "auth.keys: entry %d: cannot read key file '%s': %s", n, path,
				   strerror(errno));
	len = fread(token, 1, size - 1, f);
	fclose(f);
	token[len] = '\0';
	while (len > 0 && isspace((unsigned char)token[len - 1]))
		token[--len] = '\0';
	return 0;
}

/* Turns a parsed entry into a slot and adds it. */
static int entry_add(struct auth *a, struct entry *e, int n, struct rag_err *err)
{
	enum auth_role role;
	struct auth_slot *s;
	unsigned char salt[AUTH_SALT_BYTES], hash[AUTH_HASH_BYTES];
	char token[AUTH_KEY_FILE_MAX];
	const char *id, *secret, *colon;

	if (!auth_tenant_valid(e->tenant))
		return rag_err_set(err, RAG_EINVAL, "auth.keys",
				   "auth.keys: entry %d: tenant '%s' must be 1..%d of A-Z a-z 0-9 _ - .",
				   n, e->tenant, AUTH_TENANT_MAX);
	if (auth_role_parse(e->role, "auth.keys", &role, NULL) < 0)
		return rag_err_set(err, RAG_EINVAL, "auth.keys",
				   "auth.keys: entry %d: role '%s' is not one of reader, writer, admin",
				   n, e->role);
	if (e->key_file[0] && (e->id[0] || e->hash[0]))
		return rag_err_set(err, RAG_EINVAL, "auth.keys",
				   "auth.keys: entry %d: give key_file, or id and hash, not both", n);
	if (e->key_file[0]) {
		int rc = read_key_file(e->key_file, token, sizeof(token), n, err);

		if (rc)
			return rc;
		if (token_split(token, strlen(token), &id, &secret) < 0)
			return rag_err_set(err, RAG_EINVAL, "auth.keys",
					   "auth.keys: entry %d: key file '%s' does not hold a ragd key"
					   " (ragd_<16 hex>_<64 hex>)", n, e->key_file);
		memcpy(e->id, id, AUTH_ID_HEX);
		e->id[AUTH_ID_HEX] = '\0';
		randombytes_buf(salt, sizeof(salt));
		auth_hash_secret(secret, AUTH_SECRET_HEX, salt, hash);
		sodium_memzero(token, sizeof(token));
	} else {
		colon = strchr(e->hash, ':');
		if (strlen(e->id) != AUTH_ID_HEX || !is_hex(e->id, AUTH_ID_HEX) || !colon ||
		    from_hex(e->hash, (size_t)(colon - e->hash), salt, sizeof(salt)) < 0 ||
		    from_hex(colon + 1, strlen(colon + 1), hash, sizeof(hash)) < 0)
			return rag_err_set(err, RAG_EINVAL, "auth.keys",
					   "auth.keys: entry %d: needs key_file, or id (16 hex digits)"
					   " and hash (<32 hex>:<64 hex>, as `ragd key` prints)", n);
	}
	if (hashmap_get(a->slots, e->id))
		return rag_err_set(err, RAG_EINVAL, "auth.keys",
				   "auth.keys: entry %d: key id %s is configured twice", n, e->id);
	s = slot_new(e->id, e->tenant, true);
	if (!s)
		return rag_err_set(err, RAG_ENOMEM, "auth.keys", "out of memory");
	s->role = role;
	free(s->name);
	s->name = strdup(e->name);
	memcpy(s->salt, salt, sizeof(salt));
	memcpy(s->hash, hash, sizeof(hash));
	s->own = e->limits;
	if (!s->name || hashmap_put(a->slots, e->id, s, NULL) < 0) {
		slot_free(s);
		return rag_err_set(err, RAG_ENOMEM, "auth.keys", "out of memory");
	}
	return 0;
}

static int load_config_keys(struct auth *a, const char *text, struct rag_err *err)
{
	const char *p = text ? text : "";
	int n = 0;

	while (*p) {
		size_t len = strcspn(p, ",\n");
		const char *end = p + len, *q = p;
		struct entry e = { .limits = { -1, -1, -1, -1 } };
		bool any = false;
		int rc;

		n++;
		while (q < end) {
			size_t flen = strcspn(q, ";");
			const char *fend = q + flen < end ? q + flen : end, *eq;
			size_t span;

			while (q < fend && isspace((unsigned char)*q))
				q++;
			span = fend > q ? (size_t)(fend - q) : 0;
			eq = span ? memchr(q, '=', span) : NULL;
			if (span && !eq)
				return rag_err_set(err, RAG_EINVAL, "auth.keys",
						   "auth.keys: entry %d: '%.*s' is not field=value", n,
						   (int)(fend - q), q);
			if (eq) {
				const char *v = eq + 1, *ve = fend;

				while (ve > v && isspace((unsigned char)ve[-1]))
					ve--;
				rc = entry_field(&e, q, (size_t)(eq - q), v, (size_t)(ve - v), n, err);
				if (rc)
					return rc;
				any = true;
			}
			q = fend < end ? fend + 1 : end;
		}
		if (any) {
			rc = entry_add(a, &e, n, err);
			if (rc)
				return rc;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

struct auth *auth_new(const struct auth_options *opts, struct store *store, struct rag_err *err)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a || sodium_init() < 0) {
		free(a);
		rag_err_set(err, RAG_ENOMEM, NULL, "cannot set up authentication");
		return NULL;
	}
	a->enabled = opts->enabled;
	a->defaults = opts->defaults;
	a->key_cache_ms = (int64_t)opts->key_cache_s * 1000;
	atomic_init(&a->store, store);
	pthread_mutex_init(&a->lock, NULL);
	a->slots = hashmap_new(16);
	if (!a->slots || load_config_keys(a, opts->keys, err) < 0) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory"); /* kept if one was set */
		auth_free(a);
		return NULL;
	}
	if (opts->quota_redis_url && opts->quota_redis_url[0]) {
		a->qr = auth_quota_redis_new(opts->quota_redis_url,
					     opts->quota_redis_timeout_ms > 0
						     ? opts->quota_redis_timeout_ms : 50,
					     err);
		if (!a->qr) {
			auth_free(a);
			return NULL;
		}
	}
	return a;
}

void auth_set_store(struct auth *a, struct store *store)
{
	atomic_store(&a->store, store);
}

void auth_free(struct auth *a)
{
	struct hashmap_iter it;
	const char *key;
	void *val;

	if (!a)
		return;
	if (a->slots) {
		hashmap_iter_init(&it, a->slots);
		while (hashmap_iter_next(&it, &key, &val))
			slot_free(val);
		hashmap_free(a->slots);
	}
	auth_quota_redis_free(a->qr);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

bool auth_enabled(const struct auth *a)
{
	return a && a->enabled;
}

void auth_anonymous(struct auth_principal *out)
{
	out->tenant = STORE_DEFAULT_TENANT;
	out->key_id = "";
	out->role = AUTH_ROLE_ADMIN;
	out->slot = NULL;
}

/* Copies a store key's mutable facts into its slot. Caller holds a->lock. */
static int slot_update(struct auth_slot *s, const struct store_key *k)
{
	enum auth_role role;
	char *name;

	if (auth_role_parse(k->role, "role", &role, NULL) < 0 ||
	    from_hex(k->salt_hex, strlen(k->salt_hex), s->salt, sizeof(s->salt)) < 0 ||
	    from_hex(k->hash_hex, strlen(k->hash_hex), s->hash, sizeof(s->hash)) < 0)
		return RAG_EINTERNAL;
	name = strdup(k->name ? k->name : "");
	if (!name)
		return RAG_ENOMEM;
	free(s->name);
	s->name = name;
	s->role = role;
	s->own = (struct auth_limits){ k->requests_per_s, k->burst, k->ingest_bytes_per_day,
				       k->tokens_per_day };
	s->created_at = k->created_at;
	s->revoked = false;
	return 0;
}

int auth_slot_get(struct auth *a, const char *id, struct auth_slot **out, struct rag_err *err)
{
	struct store *st = atomic_load(&a->store);
	struct auth_slot *s;
	struct store_key k;
	int64_t now = auth_now_ms();
	struct rag_err serr = { 0 };
	int rc;

	*out = NULL;
	pthread_mutex_lock(&a->lock);
	s = hashmap_get(a->slots, id);
	if (s && (s->from_config || now - s->checked_ms < a->key_cache_ms)) {
		pthread_mutex_unlock(&a->lock);
		*out = s;
		return 0;
	}
	pthread_mutex_unlock(&a->lock);
	if (!st)
		return rag_err_set(err, RAG_EBUSY, NULL,
				   "ragd is starting: API keys are not loaded yet");
	rc = store_key_get(st, id, &k, &serr);
	if (rc < 0 && rc != RAG_ENOTFOUND)
		return rag_err_set(err, rc == RAG_EBUSY ? RAG_EBUSY : RAG_EIO, NULL,
				   "cannot check the API key: %s", serr.msg);
	pthread_mutex_lock(&a->lock);
	s = hashmap_get(a->slots, id);
	if (rc == RAG_ENOTFOUND) {
		if (s) {
			s->revoked = true;
			s->checked_ms = now;
		}
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	rc = 0;
	if (!s) {
		s = slot_new(id, k.tenant, false);
		if (!s || hashmap_put(a->slots, id, s, NULL) < 0) {
			slot_free(s);
			s = NULL;
			rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory checking the API key");
		}
	}
	/* A slot's tenant never changes: ids are unique and the store has no update op. */
	if (s && (strcmp(s->tenant, k.tenant) != 0 || slot_update(s, &k) < 0)) {
		s->revoked = true;
		s = NULL;
	}
	if (s)
		s->checked_ms = now;
	pthread_mutex_unlock(&a->lock);
	store_key_release(&k);
	*out = s;
	return rc;
}

int auth_verify(struct auth *a, const char *authorization, struct auth_principal *out,
		struct rag_err *err)
{
	const char *token, *id, *secret;
	char idz[AUTH_ID_HEX + 1];
	unsigned char hash[AUTH_HASH_BYTES];
	struct auth_slot *s;
	size_t len;
	bool ok;
	int rc;

	if (!authorization || !*authorization)
		return rag_err_set(err, RAG_EUNAUTHORIZED, "authorization",
				   "an API key is required: send 'Authorization: Bearer <key>'");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return rag_err_set(err, RAG_EUNAUTHORIZED, "authorization",
				   "the Authorization header must be 'Bearer <key>'");
	token = authorization + 7;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && token[len - 1] == ' ')
		len--;
	if (token_split(token, len, &id, &secret) < 0)
		return rag_err_set(err, RAG_EUNAUTHORIZED, "authorization",
				   "the API key is not valid");
	memcpy(idz, id, AUTH_ID_HEX);
	idz[AUTH_ID_HEX] = '\0';
	rc = auth_slot_get(a, idz, &s, err);
	if (rc)
		return rc;
	if (!s)
		return rag_err_set(err, RAG_EUNAUTHORIZED, "authorization",
				   "the API key is not valid");
	pthread_mutex_lock(&a->lock);
	auth_hash_secret(secret, AUTH_SECRET_HEX, s->salt, hash);
	ok = !s->revoked && sodium_memcmp(hash, s->hash, sizeof(hash)) == 0;
	out->role = s->role;
	pthread_mutex_unlock(&a->lock);
	if (!ok)
		return rag_err_set(err, RAG_EUNAUTHORIZED, "authorization",
				   "the API key is not valid");
	out->tenant = s->tenant;
	out->key_id = s->id;
	out->slot = s;
	return 0;
}

int auth_key_create(struct auth *a, const struct auth_key_spec *spec,
		    char token[AUTH_TOKEN_MAX], char id[AUTH_ID_HEX + 1], struct rag_err *err)
{
	struct store *st = atomic_load(&a->store);
	char spec_text[160], *salt_hex, *hash_hex;
	struct store_key k = { 0 };
	int rc;

	if (!auth_tenant_valid(spec->tenant))
		return rag_err_set(err, RAG_EINVAL, "tenant",
				   "tenant '%s' must be 1..%d of A-Z a-z 0-9 _ - .",
				   spec->tenant ? spec->tenant : "", AUTH_TENANT_MAX);
	if (!st)
		return rag_err_set(err, RAG_EBUSY, NULL, "ragd is starting: no store yet");
	rc = auth_token_new(token, id, spec_text, sizeof(spec_text));
	if (rc)
		return rag_err_set(err, rc, NULL, "cannot make a key");
	/* spec_text is "id=<id>;hash=<salt>:<hash>". */
	salt_hex = strstr(spec_text, "hash=") + 5;
	hash_hex = strchr(salt_hex, ':');
	*hash_hex++ = '\0';
	k.id = id;
	k.tenant = spec->tenant;
	k.role = auth_role_name(spec->role);
	k.name = spec->name ? spec->name : "";
	k.salt_hex = salt_hex;
	k.hash_hex = hash_hex;
	k.created_at = auth_wall_ms();
	k.requests_per_s = spec->limits.requests_per_s;
	k.burst = spec->limits.burst;
	k.ingest_bytes_per_day = spec->limits.ingest_bytes_per_day;
	k.tokens_per_day = spec->limits.tokens_per_day;
	rc = store_key_put(st, &k, err);
	if (rc)
		sodium_memzero(token, AUTH_TOKEN_MAX);
	return rc;
}

int auth_key_revoke(struct auth *a, const char *tenant, const char *id, struct rag_err *err)
{
	struct store *st = atomic_load(&a->store);
	struct auth_slot *s;
	int rc;

	pthread_mutex_lock(&a->lock);
	s = hashmap_get(a->slots, id);
	rc = s && s->from_config && strcmp(s->tenant, tenant) == 0 ? RAG_ECONFLICT : 0;
	pthread_mutex_unlock(&a->lock);
	if (rc)
		return rag_err_set(err, rc, "id",
				   "key '%s' is configured (auth.keys): remove it from the"
				   " configuration", id);
	if (!st)
		return rag_err_set(err, RAG_EBUSY, NULL, "ragd is starting: no store yet");
	rc = store_key_delete(st, tenant, id, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&a->lock);
	s = hashmap_get(a->slots, id);
	if (s && !s->from_config)
		s->revoked = true;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

static void key_json(struct sbuf *out, const struct auth *a, const char *id, const char *tenant,
		     const char *role, const char *name, const char *source, int64_t created_at,
		     const struct auth_limits *own)
{
	struct auth_limits eff = auth_effective(a, own);

	sbuf_addstr(out, "{\"id\":");
	sbuf_add_json_str(out, id, strlen(id));
	sbuf_addstr(out, ",\"tenant\":");
	sbuf_add_json_str(out, tenant, strlen(tenant));
	sbuf_addstr(out, ",\"role\":");
	sbuf_add_json_str(out, role, strlen(role));
	sbuf_addstr(out, ",\"name\":");
	sbuf_add_json_str(out, name, strlen(name));
	sbuf_addf(out, ",\"source\":\"%s\",\"created_at\":%lld,", source, (long long)created_at);
	auth_limits_json(out, &eff);
	sbuf_addch(out, '}');
}

int auth_keys_json(struct auth *a, const char *tenant, struct sbuf *out, struct rag_err *err)
{
	struct store *st = atomic_load(&a->store);
	struct store_key *keys = NULL;
	struct hashmap_iter it;
	const char *key;
	void *val;
	size_t n = 0;
	int first = 1, rc = 0;

	if (st)
		rc = store_key_list(st, tenant, &keys, &n, err);
	if (rc && rc != RAG_EUNSUPPORTED)
		return rc;
	sbuf_addch(out, '[');
	pthread_mutex_lock(&a->lock);
	hashmap_iter_init(&it, a->slots);
	while (hashmap_iter_next(&it, &key, &val)) {
		struct auth_slot *s = val;

		if (!s->from_config || strcmp(s->tenant, tenant) != 0)
			continue;
		if (!first)
			sbuf_addch(out, ',');
		first = 0;
		key_json(out, a, s->id, s->tenant, auth_role_name(s->role), s->name, "config", 0,
			 &s->own);
	}
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		struct auth_limits own = { keys[i].requests_per_s, keys[i].burst,
					   keys[i].ingest_bytes_per_day, keys[i].tokens_per_day };

		if (!first)
			sbuf_addch(out, ',');
		first = 0;
		key_json(out, a, keys[i].id, keys[i].tenant, keys[i].role, keys[i].name, "store",
			 keys[i].created_at, &own);
	}
	sbuf_addch(out, ']');
	store_keys_free(keys, n);
	return sbuf_error(out) ? rag_err_set(err, RAG_ENOMEM, NULL, "out of memory") : 0;
}
