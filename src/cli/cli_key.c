/*
 * `ragd key`: API keys from the command line, for bootstrapping a tenant
 * before any admin key exists.
 *
 *   ragd key new --tenant T --role R      prints a new token and the
 *       auth.keys entry that accepts it (id and salted hash, no secret):
 *       the token goes to the client, the entry into the configuration.
 *   ragd key create --tenant T --role R [--name N]
 *       stores a new key in the data directory's store (as POST
 *       /v1/admin/keys does) and prints its token; a running server on
 *       the same store accepts it at once.
 *
 * The token is printed once, on stdout, and kept nowhere.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#include "core/banned.h"

static int key_new(const char *tenant, const char *role_name)
{
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], spec[200];
	struct rag_err err = { 0 };
	enum auth_role role;

	if (!auth_tenant_valid(tenant)) {
		fprintf(stderr, "ragd key: --tenant '%s' must be 1..%d of A-Z a-z 0-9 _ - .\n",
			tenant ? tenant : "", AUTH_TENANT_MAX);
		return 1;
	}
	if (auth_role_parse(role_name, "role", &role, &err) < 0) {
		fprintf(stderr, "ragd key: --role: %s\n", err.msg);
		return 1;
	}
	if (auth_token_new(token, id, spec, sizeof(spec)) < 0) {
		fprintf(stderr, "ragd key: cannot make a key\n");
		return 1;
	}
	printf("token: %s\nauth.keys entry: tenant=%s;role=%s;%s\n", token, tenant,
	       auth_role_name(role), spec);
	return 0;
}

static int key_create(struct cli_app *app, const char *tenant, const char *role_name,
		      const char *name)
{
	struct auth_options ao = { .enabled = true, .keys = "", .key_cache_s = 1 };
	struct auth_key_spec spec = { .tenant = tenant, .name = name,
				      .limits = { -1, -1, -1, -1 } };
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1];
	struct rag_err err = { 0 };
	struct store *st;
	struct auth *a;
	int rc = 1;

	if (auth_role_parse(role_name, "role", &spec.role, &err) < 0) {
		fprintf(stderr, "ragd key: --role: %s\n", err.msg);
		return 1;
	}
	st = store_sqlite_open(app->cfg->data_dir, NULL, &err);
	if (!st) {
		fprintf(stderr, "ragd key: cannot open the store: %s\n", err.msg);
		return 1;
	}
	a = auth_new(&ao, st, &err);
	if (a && auth_key_create(a, &spec, token, id, &err) == 0) {
		printf("id: %s\ntoken: %s\n", id, token);
		rc = 0;
	} else {
		fprintf(stderr, "ragd key: %s\n", err.msg);
	}
	auth_free(a);
	store_free(st);
	return rc;
}

int cli_key(int argc, char **argv)
{
	const char *tenant = NULL, *role = NULL, *name = NULL;
	const struct cli_flag flags[] = { { "--tenant", &tenant, NULL }, { "--role", &role, NULL },
					  { "--name", &name, NULL }, { NULL, NULL, NULL } };
	struct cli_app app;
	const char *verb;
	int rc = 1;

	if (cli_setup(&app, argc, argv, 2, flags) < 0)
		goto out;
	verb = app.n_args == 1 ? app.args[0] : "";
	if (strcmp(verb, "new") != 0 && strcmp(verb, "create") != 0) {
		fprintf(stderr, "usage: ragd key new|create --tenant TENANT --role"
			" reader|writer|admin [--name NAME]\n");
		rc = 2;
		goto out;
	}
	if (!tenant || !role) {
		fprintf(stderr, "ragd key: --tenant and --role are required\n");
		goto out;
	}
	rc = strcmp(verb, "new") == 0 ? key_new(tenant, role)
					 : key_create(&app, tenant, role, name);
out:
	cli_app_release(&app);
	return rc;
}
