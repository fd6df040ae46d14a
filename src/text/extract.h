/*
 * Extractors: turn document bytes (plain text, Markdown, HTML, PDF) into one
 * UTF-8 text plus the structure the chunkers keep with every chunk: section
 * paths (headings) and page numbers.
 *
 * The extracted text is what chunks' byte offsets point into. Structure is a
 * list of blocks covering the text in order; each block says where it starts
 * and ends, which page it is on (PDF; 0 elsewhere), the heading path it sits
 * under ("Install > Linux"), and whether it must not be split mid-line (code
 * blocks, tables).
 *
 * Thread-safety: extract_document may run on many threads at once; it holds
 * no global state (PDF extraction runs in a helper process).
 */
#ifndef RAGD_TEXT_EXTRACT_H
#define RAGD_TEXT_EXTRACT_H

#include <stddef.h>

struct rag_err;

enum extract_format {
	EXTRACT_AUTO = 0, /* sniff the bytes, then the name's extension */
	EXTRACT_TEXT,
	EXTRACT_MARKDOWN,
	EXTRACT_HTML,
	EXTRACT_PDF,
};

enum extract_block_kind {
	EXTRACT_BLOCK_HEADING = 0,
	EXTRACT_BLOCK_PARAGRAPH,
	EXTRACT_BLOCK_LIST,
	EXTRACT_BLOCK_CODE,  /* never split mid-line */
	EXTRACT_BLOCK_TABLE, /* never split mid-line (a row is a line) */
};

struct extract_block {
	size_t start, end;   /* byte range in the extracted text */
	enum extract_block_kind kind;
	unsigned page;       /* 1-based PDF page; 0 when the format has none */
	int level;           /* heading level 1..6 for headings, else 0 */
	const char *section; /* heading path, e.g. "Install > Linux"; "" at top; owned by the document */
};

struct extract_document {
	char *text;      /* UTF-8, NUL-terminated, no BOM, \n line ends */
	size_t text_len;
	char *title;     /* HTML <title>, first Markdown H1, PDF Title; NULL if none */
	enum extract_format format; /* the format actually used */
	struct extract_block *blocks;
	size_t n_blocks;
	unsigned n_pages; /* PDF only */
	void *priv_;      /* the extractor's own allocations (section strings) */
};

struct extract_options {
	enum extract_format format; /* EXTRACT_AUTO or forced */
	const char *name;           /* file name or NULL: its extension helps AUTO */
	const char *content_type;   /* MIME type or NULL: wins over the extension */
	size_t max_bytes;           /* input limit, 0 = no limit */
	/*
	 * PDF helper process (see extract_pdf.c). pdf_helper is the path of the
	 * ragd-extract-pdf executable; NULL looks in $RAGD_EXTRACT_PDF, then next
	 * to the running executable (/proc/self/exe). 0 for the limits means the
	 * defaults below.
	 */
	const char *pdf_helper;
	unsigned pdf_timeout_ms;  /* wall clock for one PDF (also bounds CPU time) */
	size_t pdf_memory_bytes;  /* address-space limit of the helper (RLIMIT_AS) */
};

#define EXTRACT_PDF_TIMEOUT_MS 30000                  /* a 500-page report takes ~5 s here */
#define EXTRACT_PDF_MEMORY_BYTES ((size_t)1 << 30)    /* poppler needs ~10x the file at worst */

/*
 * Extracts data[0..len). Errors: RAG_EUNSUPPORTED (binary or unknown format,
 * an encoding that cannot be converted: the HTTP layer answers 415), RAG_EINVAL
 * (a malformed or truncated file, the message says what), RAG_ETOOBIG,
 * RAG_ENOMEM. On error *doc is left empty and needs no release.
 */
int extract_document(const void *data, size_t len, const struct extract_options *opts,
		     struct extract_document *doc, struct rag_err *err);

/* Frees what extract_document allocated; the struct is left zeroed. */
void extract_document_release(struct extract_document *doc);

/*
 * Plain text:  BOMs dropped; UTF-16 (LE/BE, with a BOM, or without one when
 *   every other byte of ASCII text is NUL) converted to UTF-8; input that is
 *   not UTF-8 is read as Windows-1252 (a superset of Latin-1's printable
 *   characters) when it has no valid multi-byte UTF-8 sequence at all, else
 *   rejected (RAG_EUNSUPPORTED) quoting the offset of the first bad byte;
 *   CRLF and CR become LF. Blocks: paragraphs between blank lines.
 * Markdown:    decoded as plain text, then parsed with cmark; the text is the
 *   Markdown source itself (so offsets point into what the user wrote), one
 *   block per top-level cmark block; pipe tables (not in CommonMark) become
 *   TABLE blocks, fenced and indented code CODE blocks.
 * HTML:        libxml2's HTML parser; <main>, else role="main", else
 *   <article>, else <body>; script, style, nav, header, footer, aside,
 *   noscript, template, form and role=navigation/banner/contentinfo dropped;
 *   h1-h6 make the section path, <pre> a CODE block, a table a TABLE block
 *   with one row per line (cells joined with " | "); whitespace collapsed.
 * PDF:         poppler in a helper process; pages joined by a blank line,
 *   each page's paragraphs become blocks carrying the page number.
 */

/*
 * The structure of an extracted document (format and blocks: ranges, kinds,
 * pages, levels, section paths) as compact text, so that it can be stored
 * next to the text and the document cut again later with another chunker
 * without the original bytes:
 *
 *   B1 <format> <n_sections> <n_blocks>\n
 *   <len>:<section path bytes>\n          n_sections times, distinct paths
 *   <start> <end> <kind> <page> <level> <section index>\n   n_blocks times
 *
 * encode: 0 and *out (caller frees with free(); NUL-terminated) or RAG_ENOMEM.
 */
int extract_blocks_encode(const struct extract_document *doc, char **out,
			  struct rag_err *err);

/*
 * Rebuilds an extracted document from its text (text_len bytes, copied) and
 * what extract_blocks_encode made of it (enc, NUL-terminated). RAG_EINVAL
 * for an encoding that is damaged or does not fit the text (a block out of
 * range or out of order, an unknown kind or section). On success the caller
 * releases *doc with extract_document_release; on error it is left empty.
 */
int extract_blocks_decode(const char *text, size_t text_len, const char *enc,
			  struct extract_document *doc, struct rag_err *err);

/* "text", "markdown", "html", "pdf" (and "auto"); parse returns -1 if unknown. */
const char *extract_format_name(enum extract_format f);
int extract_format_parse(const char *name, enum extract_format *out);

#endif
