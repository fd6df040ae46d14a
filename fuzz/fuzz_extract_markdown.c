/* Fuzz target: the markdown extractor (see fuzz_extract.h for what is checked). */
#include "fuzz_extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_extract(data, size, EXTRACT_MARKDOWN);
}
