/*
 * From an extracted document to the pieces the ingest path embeds: each a
 * byte range of the extracted text with the page and section path of the
 * block it starts in, plus its content address.
 *
 * The chunker is chosen per collection (config_json "chunker": structured,
 * the default for new collections, recursive or fixed; collections made
 * before chunkers were selectable have none and keep "fixed", the one they
 * were built with, so their content addresses stay valid); pieces are
 * measured in the embedding model's tokens. A piece's content address is
 * BLAKE2b(text, chunker settings, model fingerprint): the same words cut
 * the same way by the same model always have the same vector, so a vector
 * stored under that address may be reused instead of embedding again.
 */
#include "rag/rag_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rag_error.h"
#include "model/embedder.h"
#include "text/chunk.h"
#include "text/extract.h"

#include "core/banned.h"

static int count_cb(void *ctx, const char *text, size_t len)
{
	return embedder_count_tokens(ctx, text, len);
}

void rag_chunker_settings(const struct rag_coll *coll, char *out, size_t size)
{
	snprintf(out, size, "%s/%d/%d", chunk_strategy_name((enum chunk_strategy)coll->chunker),
		 coll->c.chunk_size, coll->c.chunk_overlap);
}

int rag_chunk_document(struct rag_engine *eng, struct rag_coll *coll,
		       const struct extract_document *xd, struct rag_piece **out, size_t *n_out,
		       struct rag_err *err)
{
	struct chunk_options co = { (size_t)coll->c.chunk_size, (size_t)coll->c.chunk_overlap,
				    count_cb, coll->emb };
	struct chunk_piece *spans = NULL;
	struct rag_piece *pieces;
	char settings[64];
	size_t n = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	(void)eng;
	if (!rag_coll_embedder(coll, err))
		return err && err->code ? err->code : RAG_EBUSY;
	rc = chunk_document(xd, &co, (enum chunk_strategy)coll->chunker, &spans, &n, err);
	if (rc < 0)
		return rc;
	if (n == 0)
		return 0;
	pieces = calloc(n, sizeof(*pieces));
	if (!pieces) {
		free(spans);
		return rag_err_set(err, RAG_ENOMEM, "text", "out of memory for this document");
	}
	rag_chunker_settings(coll, settings, sizeof(settings));
	for (size_t i = 0; i < n; i++) {
		const void *parts[3] = { xd->text + spans[i].start, settings,
					 coll->emb->fingerprint };
		size_t lens[3] = { spans[i].end - spans[i].start, strlen(settings),
				   strlen(coll->emb->fingerprint) };

		pieces[i].start = spans[i].start;
		pieces[i].end = spans[i].end;
		pieces[i].page = spans[i].page_first;
		pieces[i].section = spans[i].section ? spans[i].section : "";
		hash_hex(parts, lens, 3, pieces[i].hash);
	}
	free(spans);
	*out = pieces;
	*n_out = n;
	return 0;
}
