/*
 * `ragd search [--collection NAME] [--top-k K] [--json] QUERY` and
 * `ragd embed TEXT...`: the read side of the pipeline from a shell, on the
 * same data directory a server may be using.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "model/embedder.h"
#include "rag/rag_engine.h"
#include "rag/rag_filter.h"
#include "store/store.h"

#include "core/banned.h"

static void print_hit_json(const struct rag_hit *h)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_addstr(&sb, "{\"document_id\":");
	sbuf_add_json_str(&sb, h->chunk.document_id, strlen(h->chunk.document_id));
	sbuf_addf(&sb, ",\"chunk_id\":%lld,\"score\":%.6f,\"text\":", (long long)h->chunk.id,
		  (double)h->score);
	sbuf_add_json_str(&sb, h->chunk.text, strlen(h->chunk.text));
	sbuf_addf(&sb, ",\"metadata\":%s}", h->chunk.metadata_json ? h->chunk.metadata_json : "{}");
	puts(sb.buf);
	sbuf_release(&sb);
}

int cli_search(int argc, char **argv)
{
	const char *collection = "default", *top_k_s = "5", *mode = "hybrid", *filter_s = NULL;
	int json = 0;
	const struct cli_flag flags[] = {
		{ "--collection", &collection, NULL },
		{ "--top-k", &top_k_s, NULL },
		{ "--mode", &mode, NULL },
		{ "--filter", &filter_s, NULL },
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	struct cli_app app;
	struct rag_search_result res = { 0 };
	struct rag_query q = { 0 };
	struct rag_filter *filter = NULL;
	struct rag_err err = { 0 };
	char *end;
	long top_k;
	int rc = 1;

	if (cli_setup(&app, argc, argv, 2, flags) < 0) {
		rc = 2;
		goto out;
	}
	top_k = strtol(top_k_s, &end, 10);
	if (app.n_args != 1 || *end || end == top_k_s || top_k < 1) {
		fprintf(stderr, "usage: ragd search [--collection NAME] [--top-k K>=1] "
				"[--mode dense|lexical|hybrid] [--filter JSON] [--json] QUERY\n");
		rc = 2;
		goto out;
	}
	if (rag_mode_parse(mode, &q.mode, &err) < 0) {
		fprintf(stderr, "ragd search: --%s\n", err.msg);
		rc = 2;
		goto out;
	}
	if (filter_s && rag_filter_parse(filter_s, strlen(filter_s), &filter, &err) < 0) {
		fprintf(stderr, "ragd search: --filter: %s\n", err.msg);
		rc = 2;
		goto out;
	}
	q.filter = rag_filter_tree(filter);
	if (cli_open(&app, 1, 1, 0) < 0)
		goto out;
	q.text = app.args[0];
	q.len = strlen(app.args[0]);
	q.top_k = (size_t)top_k;
	q.alpha = 0.5;
	q.fusion = RAG_FUSION_WEIGHTED;
	if (rag_search(app.eng, STORE_DEFAULT_TENANT, collection, &q, &res, &err) < 0) {
		fprintf(stderr, "ragd search: %s\n", err.msg);
		goto out;
	}
	for (size_t i = 0; i < res.n_hits; i++) {
		const struct rag_hit *h = &res.hits[i];

		if (json) {
			print_hit_json(h);
			continue;
		}
		printf("%zu. %.4f  %s#%zu\n   %.*s%s\n", i + 1, (double)h->score,
		       h->chunk.document_id, h->chunk.ordinal, 200, h->chunk.text,
		       strlen(h->chunk.text) > 200 ? "..." : "");
	}
	rc = 0;
out:
	rag_filter_free(filter);
	rag_search_result_release(&res);
	cli_app_release(&app);
	return rc;
}

int cli_embed(int argc, char **argv)
{
	int query = 0;
	const struct cli_flag flags[] = { { "--query", NULL, &query }, { NULL, NULL, NULL } };
	struct cli_app app;
	struct rag_err err = { 0 };
	float *vec = NULL;
	int rc = 1;

	if (cli_setup(&app, argc, argv, 2, flags) < 0) {
		rc = 2;
		goto out;
	}
	if (app.n_args == 0) {
		fprintf(stderr, "usage: ragd embed [--query] TEXT...  (prints one JSON array per "
				"text; --query embeds them as search queries, with the model's "
				"query prefix)\n");
		rc = 2;
		goto out;
	}
	if (cli_open(&app, 0, 0, 0) < 0)
		goto out;
	vec = malloc(app.emb->dim * sizeof(float));
	if (!vec)
		goto out;
	for (size_t i = 0; i < app.n_args; i++) {
		const char *t = app.args[i];
		size_t len = strlen(t);
		struct sbuf sb = SBUF_INIT;

		if ((query ? embedder_embed_query(app.emb, t, len, vec, &err)
			   : embedder_embed(app.emb, &t, &len, 1, vec, &err)) < 0) {
			fprintf(stderr, "ragd embed: %s\n", err.msg);
			goto out;
		}
		sbuf_addch(&sb, '[');
		for (size_t d = 0; d < app.emb->dim; d++)
			sbuf_addf(&sb, "%s%.7g", d ? "," : "", (double)vec[d]);
		sbuf_addch(&sb, ']');
		puts(sb.buf);
		sbuf_release(&sb);
	}
	rc = 0;
out:
	free(vec);
	cli_app_release(&app);
	return rc;
}
