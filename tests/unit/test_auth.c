/*
 * Tests of src/auth: tokens and their hashes, configured keys (key files
 * and id + hash entries, their errors), store keys created, verified and
 * revoked in a real SQLite store, tenant scoping of revocation and
 * listing, the request token bucket and the daily quotas; and the YAML
 * list form of auth.keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "store/store.h"
#include "store/store_sqlite.h"

struct fixture {
	char dir[64];
	struct store *st;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rag_err err = { 0 };

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ragd-test-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->st = store_sqlite_open(f->dir, NULL, &err);
	assert_non_null(f->st);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct auth *new_auth(const char *keys, struct store *st, struct rag_err *err)
{
	struct auth_options o = { .enabled = true, .keys = keys, .key_cache_s = 10,
				  .defaults = { 0, 0, 0, 0 } };

	return auth_new(&o, st, err);
}

static void bearer(char *out, size_t size, const char *token)
{
	snprintf(out, size, "Bearer %s", token);
}

static void test_config_hash_entry(void **state)
{
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], spec[200], keys[300], hdr[128];
	struct rag_err err = { 0 };
	struct auth_principal p;
	struct auth *a;

	(void)state;
	assert_int_equal(auth_token_new(token, id, spec, sizeof(spec)), 0);
	assert_int_equal(strlen(token), 5 + AUTH_ID_HEX + 1 + AUTH_SECRET_HEX);
	/* The entry holds no secret: only the id and the salted hash. */
	assert_null(strstr(spec, token + 5 + AUTH_ID_HEX + 1));
	snprintf(keys, sizeof(keys), "tenant=acme;role=writer;%s", spec);
	a = new_auth(keys, NULL, &err);
	assert_non_null(a);
	bearer(hdr, sizeof(hdr), token);
	assert_int_equal(auth_verify(a, hdr, &p, &err), 0);
	assert_string_equal(p.tenant, "acme");
	assert_string_equal(p.key_id, id);
	assert_int_equal(p.role, AUTH_ROLE_WRITER);
	/* Scheme case does not matter; the secret does. */
	hdr[0] = 'b';
	assert_int_equal(auth_verify(a, hdr, &p, NULL), 0);
	hdr[strlen(hdr) - 1] = hdr[strlen(hdr) - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(auth_verify(a, hdr, &p, NULL), RAG_EUNAUTHORIZED);
	assert_int_equal(auth_verify(a, NULL, &p, NULL), RAG_EUNAUTHORIZED);
	assert_int_equal(auth_verify(a, "Basic abc", &p, NULL), RAG_EUNAUTHORIZED);
	assert_int_equal(auth_verify(a, "Bearer ragd_short", &p, NULL), RAG_EUNAUTHORIZED);
	/* An unknown id with no store attached: not loaded yet. */
	bearer(hdr, sizeof(hdr), token);
	hdr[7 + 5] = hdr[7 + 5] == '0' ? '1' : '0';
	assert_int_equal(auth_verify(a, hdr, &p, NULL), RAG_EBUSY);
	auth_free(a);
}

static void test_config_key_file_and_errors(void **state)
{
	struct fixture *f = *state;
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], path[128], keys[400], hdr[128];
	struct rag_err err = { 0 };
	struct auth_principal p;
	struct auth *a;
	FILE *fp;

	assert_int_equal(auth_token_new(token, id, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/admin.key", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n", token);
	fclose(fp);
	snprintf(keys, sizeof(keys), "tenant=t1; role=admin; key_file=%s; requests_per_s=5", path);
	a = new_auth(keys, f->st, &err);
	assert_non_null(a);
	bearer(hdr, sizeof(hdr), token);
	assert_int_equal(auth_verify(a, hdr, &p, &err), 0);
	assert_string_equal(p.tenant, "t1");
	assert_int_equal(p.role, AUTH_ROLE_ADMIN);
	/* A configured key cannot be revoked through the API. */
	assert_int_equal(auth_key_revoke(a, "t1", id, NULL), RAG_ECONFLICT);
	auth_free(a);

	memset(&err, 0, sizeof(err));
	assert_null(new_auth("tenant=t1;role=boss;key_file=/nonexistent", NULL, &err));
	assert_string_equal(err.field, "auth.keys");
	assert_non_null(strstr(err.msg, "boss"));
	memset(&err, 0, sizeof(err));
	assert_null(new_auth("tenant=t1;role=admin;key_file=/nonexistent", NULL, &err));
	assert_non_null(strstr(err.msg, "/nonexistent"));
	memset(&err, 0, sizeof(err));
	assert_null(new_auth("tenant=a b;role=admin;key_file=/x", NULL, &err));
	assert_non_null(strstr(err.msg, "tenant"));
	memset(&err, 0, sizeof(err));
	assert_null(new_auth("tenant=a;role=admin;colour=red", NULL, &err));
	assert_non_null(strstr(err.msg, "colour"));
	memset(&err, 0, sizeof(err));
	assert_null(new_auth("tenant=a;role=admin;id=0123456789abcdef;hash=zz", NULL, &err));
	assert_non_null(strstr(err.msg, "hash"));
}

static void test_store_keys_and_tenants(void **state)
{
	struct fixture *f = *state;
	struct auth_key_spec spec = { .tenant = "acme", .role = AUTH_ROLE_READER,
				      .name = "ci", .limits = { -1, -1, -1, -1 } };
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], token2[AUTH_TOKEN_MAX];
	char id2[AUTH_ID_HEX + 1], hdr[128];
	struct rag_err err = { 0 };
	struct auth_principal p;
	struct sbuf sb = SBUF_INIT;
	struct store_key k;
	struct auth *a = new_auth("", f->st, &err);

	assert_non_null(a);
	assert_int_equal(auth_key_create(a, &spec, token, id, &err), 0);
	spec.tenant = "globex";
	spec.role = AUTH_ROLE_ADMIN;
	assert_int_equal(auth_key_create(a, &spec, token2, id2, &err), 0);
	/* The store has the hash, never the token. */
	assert_int_equal(store_key_get(f->st, id, &k, &err), 0);
	assert_string_equal(k.tenant, "acme");
	assert_null(strstr(k.hash_hex, token + 5 + AUTH_ID_HEX + 1));
	store_key_release(&k);

	bearer(hdr, sizeof(hdr), token);
	assert_int_equal(auth_verify(a, hdr, &p, &err), 0);
	assert_string_equal(p.tenant, "acme");
	assert_int_equal(p.role, AUTH_ROLE_READER);
	/* Listing is per tenant. */
	assert_int_equal(auth_keys_json(a, "acme", &sb, &err), 0);
	assert_non_null(strstr(sb.buf, id));
	assert_null(strstr(sb.buf, id2));
	assert_null(strstr(sb.buf, "hash"));
	sbuf_release(&sb);
	/* Another tenant cannot revoke it: as if it did not exist. */
	assert_int_equal(auth_key_revoke(a, "globex", id, NULL), RAG_ENOTFOUND);
	assert_int_equal(auth_verify(a, hdr, &p, NULL), 0);
	assert_int_equal(auth_key_revoke(a, "acme", id, NULL), 0);
	assert_int_equal(auth_verify(a, hdr, &p, NULL), RAG_EUNAUTHORIZED);
	/* A second instance on the same store knows the other key, not the revoked one. */
	{
		struct auth *b = new_auth("", f->st, &err);

		assert_int_equal(auth_verify(b, hdr, &p, NULL), RAG_EUNAUTHORIZED);
		bearer(hdr, sizeof(hdr), token2);
		assert_int_equal(auth_verify(b, hdr, &p, NULL), 0);
		assert_string_equal(p.tenant, "globex");
		auth_free(b);
	}
	spec.tenant = "bad tenant";
	assert_int_equal(auth_key_create(a, &spec, token, id, NULL), RAG_EINVAL);
	auth_free(a);
}

static void test_quotas(void **state)
{
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], spec[200], keys[400], hdr[128];
	struct rag_err err = { 0 };
	struct auth_principal p, anon;
	struct sbuf sb = SBUF_INIT;
	struct auth *a;
	int retry = 0;

	(void)state;
	assert_int_equal(auth_token_new(token, id, spec, sizeof(spec)), 0);
	snprintf(keys, sizeof(keys), "tenant=q;role=writer;%s;requests_per_s=0.5;burst=2;"
		 "ingest_bytes_per_day=100;tokens_per_day=10", spec);
	a = new_auth(keys, NULL, &err);
	assert_non_null(a);
	bearer(hdr, sizeof(hdr), token);
	assert_int_equal(auth_verify(a, hdr, &p, &err), 0);
	/* Burst of 2, then the bucket is empty: 1 / 0.5 per s = 2 s to the next. */
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_REQUESTS, 1, &retry, NULL), 0);
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_REQUESTS, 1, &retry, NULL), 0);
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_REQUESTS, 1, &retry, &err), RAG_ERATELIMIT);
	assert_in_range(retry, 1, 2);
	assert_int_equal(rag_err_http_status(err.code), 429);
	/* Ingest bytes per day. */
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_INGEST_BYTES, 60, &retry, NULL), 0);
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_INGEST_BYTES, 50, &retry, NULL),
			 RAG_ERATELIMIT);
	assert_in_range(retry, 1, 86400);
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_INGEST_BYTES, 40, &retry, NULL), 0);
	/* Generated tokens: refused once the day's are spent. */
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_TOKENS, 0, &retry, NULL), 0);
	auth_charge_tokens(a, &p, 10);
	assert_int_equal(auth_admit(a, &p, AUTH_QUOTA_TOKENS, 0, &retry, NULL), RAG_ERATELIMIT);
	/* Usage shows it, for this tenant only. */
	assert_int_equal(auth_usage_json(a, "q", NULL, &sb, NULL), 0);
	assert_non_null(strstr(sb.buf, "\"ingest_bytes_today\":100"));
	assert_non_null(strstr(sb.buf, "\"tokens_today\":10"));
	assert_non_null(strstr(sb.buf, "\"requests\":1"));
	sbuf_reset(&sb);
	assert_int_equal(auth_usage_json(a, "other", NULL, &sb, NULL), 0);
	assert_string_equal(sb.buf, "[]");
	assert_int_equal(auth_usage_json(a, "other", id, &sb, NULL), RAG_ENOTFOUND);
	sbuf_release(&sb);
	/* Auth off: no quotas. */
	auth_anonymous(&anon);
	assert_string_equal(anon.tenant, STORE_DEFAULT_TENANT);
	assert_int_equal(auth_admit(a, &anon, AUTH_QUOTA_REQUESTS, 1, &retry, NULL), 0);
	auth_free(a);
}

static void test_yaml_list(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct config *cfg = config_new();
	struct rag_err err = { 0 };
	FILE *fp;

	snprintf(path, sizeof(path), "%s/ragd.yaml", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("auth:\n  enabled: true\n  keys:\n    - tenant: a\n      role: admin\n"
	      "      key_file: /run/a.key\n    - {tenant: b, role: reader, key_file: /run/b.key}\n"
	      "cors:\n  allowed_origins: [https://x.example, https://y.example]\n"
	      "server:\n  port: 9000\n", fp);
	fclose(fp);
	assert_int_equal(config_load_file(cfg, path, &err), 0);
	assert_true(cfg->auth.enabled);
	assert_string_equal(cfg->auth.keys, "tenant=a;role=admin;key_file=/run/a.key,"
					    "tenant=b;role=reader;key_file=/run/b.key");
	assert_string_equal(cfg->cors.allowed_origins, "https://x.example,https://y.example");
	assert_int_equal(cfg->server.port, 9000);
	/* Lists stay refused elsewhere. */
	fp = fopen(path, "w");
	fputs("server:\n  port: [1, 2]\n", fp);
	fclose(fp);
	memset(&err, 0, sizeof(err));
	assert_int_equal(config_load_file(cfg, path, &err), RAG_EINVAL);
	assert_non_null(strstr(err.msg, "lists are not supported"));
	assert_true(config_host_is_loopback("127.0.0.1"));
	assert_false(config_host_is_loopback("0.0.0.0"));
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_hash_entry),
		cmocka_unit_test_setup_teardown(test_config_key_file_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_keys_and_tenants, setup, teardown),
		cmocka_unit_test(test_quotas),
		cmocka_unit_test_setup_teardown(test_yaml_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
