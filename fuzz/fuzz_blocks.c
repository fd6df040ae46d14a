/*
 * Fuzz target: extract_blocks_decode, the reader of a document's stored
 * structure (documents.blocks) that re-chunking trusts to cut the text. A
 * damaged row must be RAG_EINVAL, never a read outside the text. The input
 * is the text, a NUL byte, then the encoding; a decoded document must hold
 * what fuzz_check_document checks of any extracted one.
 */
#include <string.h>

#include "fuzz_extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	struct extract_document d = { 0 };
	struct rag_err err = { 0 };
	size_t text_len;
	char *enc;

	if (!nul)
		return 0;
	text_len = (size_t)(nul - data);
	if (!utf8_valid((const char *)data, text_len, NULL))
		return 0; /* stored texts are UTF-8: the store wrote them */
	enc = strndup((const char *)nul + 1, size - text_len - 1);
	if (!enc)
		return 0;
	if (extract_blocks_decode((const char *)data, text_len, enc, &d, &err) == 0) {
		fuzz_check_document(&d);
		extract_document_release(&d);
	} else if (!err.msg[0]) {
		fprintf(stderr, "decoding failed without a message\n");
		abort();
	}
	free(enc);
	return 0;
}
