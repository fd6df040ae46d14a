/*
 * Fuzz target: the PDF extractor's part in ragd's process. Poppler parses
 * the client's PDF in the ragd-extract-pdf helper, a separate process under
 * CPU and memory limits whose crash is an error for that file (see
 * extract_pdf.c); what ragd itself parses is the helper's framed output,
 * which after a compromised or crashing helper is as hostile as the PDF. The
 * input is that output: magic, then "<tag> <len>\n<bytes>" frames.
 */
#include <string.h>

#include "core/sbuf.h"
#include "fuzz_extract.h"
#include "text/extract_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct extract_builder b;
	struct extract_document d = { 0 };
	struct rag_err err = { 0 };
	struct sbuf out;
	int rc;

	sbuf_init(&out, size);
	sbuf_add(&out, data, size);
	xb_init(&b);
	rc = extract_pdf_frames(&out, &b, &err);
	if (rc == 0 && xb_finish(&b, EXTRACT_PDF, &d, &err) == 0) {
		fuzz_check_document(&d);
		fuzz_check_blocks_roundtrip(&d);
		extract_document_release(&d);
	}
	xb_release(&b); /* as extract_document: safe after xb_finish */
	sbuf_release(&out);
	return 0;
}
