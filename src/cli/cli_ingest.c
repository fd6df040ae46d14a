/*
 * `ragd ingest [--collection NAME] [--id ID] FILE...`: reads each file (or
 * "-" for standard input) and stores it as one document, creating the
 * collection with the defaults if it does not exist. The document id is
 * --id for a single input, else the file's name, so ingesting a file again
 * replaces it. Prints a JSON line per file; exits 1 if any file failed.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "rag/rag_engine.h"
#include "store/store.h"

#include "core/banned.h"

#define CLI_DEFAULT_COLLECTION "default" /* what `ragd search` looks in by default */

static int read_all(const char *path, struct sbuf *sb)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char buf[65536];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(sb, buf, n);
	if (ferror(f) || sbuf_error(sb)) {
		if (f != stdin)
			fclose(f);
		return -1;
	}
	if (f != stdin)
		fclose(f);
	return 0;
}

/* The file's base name with characters an id may not hold replaced by '_'. */
static void id_from_path(const char *path, char *out, size_t size)
{
	const char *base = strrchr(path, '/');
	size_t k = 0;

	base = base ? base + 1 : path;
	for (; *base && k + 1 < size && k < RAG_DOC_ID_MAX; base++) {
		char c = *base;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':';

		out[k++] = ok ? c : '_';
	}
	out[k] = '\0';
}

static int ensure_collection(struct cli_app *app, const char *name)
{
	struct rag_collection_info info;
	struct rag_collection_spec spec = { name, NULL, 0, -1, NULL, NULL };
	struct rag_err err = { 0 };

	if (rag_collection_get(app->eng, STORE_DEFAULT_TENANT, name, &info, &err) == 0) {
		rag_collection_info_release(&info);
		return 0;
	}
	if (err.code != RAG_ENOTFOUND) {
		fprintf(stderr, "ragd ingest: %s\n", err.msg);
		return -1;
	}
	rag_err_clear(&err);
	if (rag_collection_create(app->eng, STORE_DEFAULT_TENANT, &spec, NULL, &err) < 0 &&
	    err.code != RAG_ECONFLICT) {
		fprintf(stderr, "ragd ingest: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int cli_ingest(int argc, char **argv)
{
	const char *collection = CLI_DEFAULT_COLLECTION, *id = NULL;
	const struct cli_flag flags[] = {
		{ "--collection", &collection, NULL },
		{ "--id", &id, NULL },
		{ NULL, NULL, NULL },
	};
	struct cli_app app;
	int failed = 0;

	if (cli_setup(&app, argc, argv, 2, flags) < 0) {
		cli_app_release(&app);
		return 2;
	}
	if (app.n_args == 0 || (id && app.n_args > 1)) {
		fprintf(stderr, "usage: ragd ingest [--collection NAME] [--id ID] FILE...\n"
				"       (--id only with a single FILE; '-' reads standard input)\n");
		cli_app_release(&app);
		return 2;
	}
	if (cli_open(&app, 1, 0, 0) < 0 || ensure_collection(&app, collection) < 0) {
		cli_app_release(&app);
		return 1;
	}
	for (size_t i = 0; i < app.n_args; i++) {
		struct sbuf text = SBUF_INIT;
		struct rag_doc_in doc = { 0 };
		struct rag_ingest_result res;
		struct rag_err err = { 0 };
		char doc_id[RAG_DOC_ID_MAX + 1];

		if (read_all(app.args[i], &text) < 0) {
			fprintf(stderr, "ragd ingest: cannot read '%s': %s\n", app.args[i],
				strerror(errno));
			failed++;
			sbuf_release(&text);
			continue;
		}
		id_from_path(app.args[i], doc_id, sizeof(doc_id));
		doc.id = id ? id : (strcmp(app.args[i], "-") == 0 ? NULL : doc_id);
		doc.text = text.buf;
		doc.text_len = text.len;
		if (rag_ingest(app.eng, STORE_DEFAULT_TENANT, collection, &doc, &res, &err) < 0) {
			fprintf(stderr, "ragd ingest: '%s': %s\n", app.args[i], err.msg);
			failed++;
		} else {
			printf("{\"file\":\"%s\",\"id\":\"%s\",\"collection\":\"%s\",\"chunks\":%zu}\n",
			       doc_id, res.id, collection, res.n_chunks);
		}
		sbuf_release(&text);
	}
	cli_app_release(&app);
	return failed ? 1 : 0;
}
