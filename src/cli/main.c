/*
 * ragd's entry point: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#include "core/banned.h"

static const char usage[] =
	"usage: ragd COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  serve                 run the HTTP API\n"
	"  ingest FILE...        store files as documents (--collection NAME, --id ID)\n"
	"  search QUERY          search (--collection NAME, --top-k K, --mode M, --json)\n"
	"  embed TEXT...         print embeddings as JSON arrays (--query: embed them as\n"
	"                        search queries, with the model's query prefix)\n"
	"  eval --dataset DIR    retrieval quality on a BEIR dataset (--modes, --json FILE,\n"
	"                        --index TYPE|JSON: the collection's vector index)\n"
	"  key new|create        an API key (--tenant T --role reader|writer|admin): new\n"
	"                        prints a token and its auth.keys entry; create stores it\n"
	"  version               print the version\n"
	"\n"
	"options for every command:\n"
	"  --config FILE         YAML configuration (also RAGD_CONFIG)\n"
	"  --data-dir DIR        data directory (also RAGD_DATA_DIR)\n"
	"  --port N              HTTP port (also RAGD_PORT)\n"
	"  --host ADDR           address to listen on\n"
	"  --model FILE          embedding model GGUF\n"
	"  --log-level LEVEL     debug, info, warn or error\n"
	"  --chroma-url URL      Chroma server of collections whose index type is chroma\n"
	"  --set KEY=VALUE       any configuration key, e.g. --set chunking.size=200\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "help";

	if (strcmp(cmd, "serve") == 0)
		return cli_serve(argc, argv);
	if (strcmp(cmd, "ingest") == 0)
		return cli_ingest(argc, argv);
	if (strcmp(cmd, "search") == 0)
		return cli_search(argc, argv);
	if (strcmp(cmd, "embed") == 0)
		return cli_embed(argc, argv);
	if (strcmp(cmd, "eval") == 0)
		return cli_eval(argc, argv);
	if (strcmp(cmd, "key") == 0)
		return cli_key(argc, argv);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("ragd %s (%s)\n", RAGD_VERSION, RAGD_GIT_SHA);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "ragd: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
