/*
 * Fuzz target: metadata filters (rag_filter_parse), the JSON a client sends
 * as "filter" in searches and document listings.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/rag_error.h"
#include "rag/rag_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rag_filter *f = NULL;
	struct rag_err err = { 0 };

	if (rag_filter_parse((const char *)data, size, &f, &err) == 0) {
		(void)rag_filter_tree(f);
		rag_filter_free(f);
	} else if (f || !err.msg[0]) {
		abort(); /* a failure leaves no filter and says why */
	}
	return 0;
}
