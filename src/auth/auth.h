/*
 * API keys, tenants, roles and per-key quotas.
 *
 * A key is a token "ragd_<id>_<secret>": id is 16 hex digits, public (it
 * names the key in listings, logs and metrics labels), secret is 64 hex
 * digits (256 random bits). Clients send it as `Authorization: Bearer
 * <token>`, which is what OpenAI's clients send. Only a salted hash of the
 * secret is kept (auth.c explains the choice of hash). Each key belongs to
 * one tenant and has one role; every request is served as that tenant, so
 * tenancy is decided here, once, and never by anything the client names.
 *
 * Keys come from two places: the configuration (auth.keys: fixed for the
 * process's life) and the store (created and revoked through the admin
 * API, shared by every instance on the store; re-read after
 * auth.key_cache_s so that a key revoked elsewhere stops working within
 * that time, at once on the instance that revoked it).
 *
 * Quotas are per key: a token bucket for requests per second (with a
 * burst), and ingest bytes and generated tokens per UTC day. By default
 * they are kept in this process's memory, so N instances (or workers)
 * give a key up to N times its limits; with auth.quota_redis_url they are
 * kept in Redis and hold across every instance that shares it, falling
 * back to the per-process limits while Redis does not answer
 * (auth_quota_redis.c).
 *
 * Thread-safety: every function may be called from any thread once
 * auth_new has returned; auth_free only when no request is in flight.
 */
#ifndef RAGD_AUTH_AUTH_H
#define RAGD_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct auth_slot;
struct rag_err;
struct sbuf;
struct store;

#define AUTH_TOKEN_MAX 96    /* "ragd_" + 16 + "_" + 64 hex digits, NUL, room to spare */
#define AUTH_ID_HEX 16       /* 64-bit public id: unique enough, short enough for labels */
#define AUTH_SECRET_HEX 64   /* 256-bit secret: not guessable, so a fast hash is enough */
#define AUTH_TENANT_MAX 64   /* tenant names: 1..64 of [A-Za-z0-9_.-] */

enum auth_role {
	AUTH_ROLE_NONE = 0,   /* public routes: /health, /ready, /metrics, docs */
	AUTH_ROLE_READER = 1, /* search, query, chat, embeddings, reads */
	AUTH_ROLE_WRITER = 2, /* + ingest, delete, collections, jobs */
	AUTH_ROLE_ADMIN = 3,  /* + keys and usage of its tenant */
};

/* "reader", "writer", "admin" ("none" for AUTH_ROLE_NONE). */
const char *auth_role_name(enum auth_role role);

/* Parses a role name; RAG_EINVAL naming field when it is none of the three. */
int auth_role_parse(const char *s, const char *field, enum auth_role *out, struct rag_err *err);

/* Limits: 0 = unlimited. In key specs, -1 = the configured default. */
struct auth_limits {
	double requests_per_s;
	int64_t burst;                /* 0 = max(1, requests_per_s) */
	int64_t ingest_bytes_per_day;
	int64_t tokens_per_day;       /* generated (completion) tokens */
};

struct auth_options {
	bool enabled;
	const char *keys;        /* auth.keys as text: "f=v;f=v,f=v;..." (config.h) */
	struct auth_limits defaults;
	int key_cache_s;         /* how long a store key is trusted before it is re-read */
	const char *quota_redis_url; /* "" or NULL: quotas per process; else shared in Redis */
	int quota_redis_timeout_ms;  /* bound on each quota exchange with Redis; 0 = 50 */
};

/*
 * Creates the registry and loads the configured keys (reading key files).
 * store may be NULL and attached later with auth_set_store. NULL with err
 * (field "auth.keys") on a malformed entry or an unreadable key file.
 */
struct auth *auth_new(const struct auth_options *opts, struct store *store,
		      struct rag_err *err);

/* Attaches the store keys are kept in (borrowed; must outlive auth). */
void auth_set_store(struct auth *a, struct store *store);

/* Frees a (NULL-safe). No request may be in flight. */
void auth_free(struct auth *a);

bool auth_enabled(const struct auth *a);

/* Who a request is served as. tenant and key_id are borrowed until auth_free. */
struct auth_principal {
	const char *tenant;
	const char *key_id;      /* "" when auth is off */
	enum auth_role role;
	struct auth_slot *slot;  /* quota state; NULL when auth is off */
};

/*
 * Verifies an Authorization header value (may be NULL). 0 with *out
 * filled; RAG_EUNAUTHORIZED when it is missing, malformed, unknown, revoked
 * or wrong (one message for the last three, so a client cannot probe ids);
 * RAG_EBUSY when the key can only be in the store and no store is attached
 * yet; RAG_EIO when the store fails.
 */
int auth_verify(struct auth *a, const char *authorization, struct auth_principal *out,
		struct rag_err *err);

/* The principal every request has when auth is off: tenant "default", admin. */
void auth_anonymous(struct auth_principal *out);

enum auth_quota {
	AUTH_QUOTA_REQUESTS = 0,
	AUTH_QUOTA_INGEST_BYTES = 1,
	AUTH_QUOTA_TOKENS = 2,
};

/*
 * Admits amount of the quota for p: one request from the token bucket,
 * bytes of ingest, or (with amount 0) whether any generated tokens are
 * left today. 0 and counted; RAG_ERATELIMIT with *retry_after_s (>= 1)
 * when the limit is spent. Always 0 without a slot (auth off).
 */
int auth_admit(struct auth *a, const struct auth_principal *p, enum auth_quota q,
	       int64_t amount, int *retry_after_s, struct rag_err *err);

/* Counts a 401 (RAG_EUNAUTHORIZED) or 403 (RAG_EFORBIDDEN) in the metrics. */
void auth_note_refusal(int code);

/* Counts generated tokens after the fact (an answer may overshoot by one). */
void auth_charge_tokens(struct auth *a, const struct auth_principal *p, int64_t n);

/* A key to create; strings borrowed. */
struct auth_key_spec {
	const char *tenant;
	enum auth_role role;
	const char *name;            /* may be NULL */
	struct auth_limits limits;   /* -1 fields = defaults */
};

/*
 * Creates a key in the store: writes its token (shown to the client once,
 * never stored) into token and its id into id. RAG_EINVAL for a bad
 * tenant name; RAG_EBUSY without a store.
 */
int auth_key_create(struct auth *a, const struct auth_key_spec *spec,
		    char token[AUTH_TOKEN_MAX], char id[AUTH_ID_HEX + 1], struct rag_err *err);

/*
 * Revokes tenant's store key id: deleted from the store and refused at once
 * by this instance. RAG_ENOTFOUND when tenant has no such key (another
 * tenant's key included); RAG_ECONFLICT for a configured key.
 */
int auth_key_revoke(struct auth *a, const char *tenant, const char *id, struct rag_err *err);

/*
 * Appends to out a JSON array of tenant's keys (configured and stored):
 * id, tenant, role, name, source, created_at, limits (effective). No
 * secrets, no hashes.
 */
int auth_keys_json(struct auth *a, const char *tenant, struct sbuf *out, struct rag_err *err);

/*
 * Appends to out a JSON array with, per key of tenant this instance has
 * seen (only key id when non-NULL: RAG_ENOTFOUND when it is not the
 * tenant's), its limits and usage: requests, ingest bytes and generated
 * tokens today and in total, rejections per kind. With Redis the numbers
 * are every instance's, read from it in one round trip ("scope":
 * "cluster"); without it, or while it does not answer, this instance's
 * ("scope": "instance"). No lock is held while Redis is asked.
 */
int auth_usage_json(struct auth *a, const char *tenant, const char *key_id, struct sbuf *out,
		    struct rag_err *err);

/* True when s is a valid tenant name. */
bool auth_tenant_valid(const char *s);

/* Hashes a secret with salt (16 bytes) into hash (32 bytes): for tests and the CLI. */
void auth_hash_secret(const char *secret, size_t len, const unsigned char salt[16],
		      unsigned char hash[32]);

/*
 * Makes a new token and the config entry that accepts it without the token
 * itself ("id=...;hash=<salt hex>:<hash hex>"): for `ragd key`.
 */
int auth_token_new(char token[AUTH_TOKEN_MAX], char id[AUTH_ID_HEX + 1], char *hash_spec,
		   size_t hash_spec_size);

#endif
