/*
 * Plain text: byte-level decoding shared by the text and Markdown extractors,
 * and the binary check every text format goes through.
 *
 * Decoding, in order: a UTF-8 BOM is dropped; UTF-16 (a BOM, or no BOM but
 * NUL in nearly every other byte of the first 512, which is how ASCII-range
 * UTF-16 looks) is converted to UTF-8, with unpaired surrogates refused;
 * valid UTF-8 is kept; anything else is read as Windows-1252 (whose printable
 * range contains Latin-1's) when it holds no valid multi-byte UTF-8 sequence
 * at all, no C0 control other than tab/LF/FF/CR, and none of the five bytes
 * Windows-1252 leaves undefined. Text that mixes valid UTF-8 with bad bytes is
 * broken UTF-8, not Latin-1: refused with the offset of the first bad byte.
 * Line ends are then made LF (CRLF and lone CR).
 *
 * iconv was considered for the conversions; glibc's iconv needs the caller to
 * guess the encoding anyway, and the two conversions needed here are a table
 * and a surrogate check.
 */
#include <stdint.h>
#include <string.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "text/extract_int.h"
#include "text/utf8.h"

#include "core/banned.h"

#define SNIFF_BYTES 512 /* enough to see the pattern, small enough to stay cheap */

/* Windows-1252 0x80..0x9F; 0 marks the five undefined bytes. */
static const uint16_t cp1252[32] = {
	0x20AC, 0,	0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,	0x017D, 0,
	0,	0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,	0x017E, 0x0178,
};

static void add_cp(struct sbuf *out, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	sbuf_add(out, u, n);
}

/* 1 little-endian, 2 big-endian, 0 not UTF-16 by the look of it. */
static int utf16_guess(const unsigned char *d, size_t len)
{
	size_t n = len < SNIFF_BYTES ? len : SNIFF_BYTES, zero_even = 0, zero_odd = 0;

	if (len >= 2 && d[0] == 0xFF && d[1] == 0xFE)
		return 1;
	if (len >= 2 && d[0] == 0xFE && d[1] == 0xFF)
		return 2;
	n &= ~(size_t)1;
	if (n < 4)
		return 0;
	for (size_t i = 0; i < n; i += 2) {
		zero_even += d[i] == 0;
		zero_odd += d[i + 1] == 0;
	}
	if (zero_odd * 10 >= (n / 2) * 9 && zero_even == 0)
		return 1;
	if (zero_even * 10 >= (n / 2) * 9 && zero_odd == 0)
		return 2;
	return 0;
}

int extract_looks_binary(const unsigned char *d, size_t len, const char **what)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *name;
	} magics[] = {
		{ "\x89PNG", 4, "PNG image" },	    { "PK\x03\x04", 4, "ZIP archive" },
		{ "\x1f\x8b", 2, "gzip data" },	    { "\x7f" "ELF", 4, "ELF executable" },
		{ "\xff\xd8\xff", 3, "JPEG image" }, { "GIF8", 4, "GIF image" },
		{ "%PDF-", 5, "PDF" },
	};

	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		if (len >= magics[i].len && memcmp(d, magics[i].magic, magics[i].len) == 0) {
			*what = magics[i].name;
			return 1;
		}
	}
	if (utf16_guess(d, len))
		return 0;
	if (memchr(d, 0, len)) {
		*what = "NUL bytes";
		return 1;
	}
	return 0;
}

static int from_utf16(const unsigned char *d, size_t len, int le, size_t base, struct sbuf *out,
		      struct rag_err *err)
{
	size_t i = 0;

	if (len % 2)
		return rag_err_set(err, RAG_EUNSUPPORTED, "file",
				   "UTF-16 text has an odd number of bytes (%zu)", len + base);
	while (i < len) {
		uint32_t u = le ? (uint32_t)(d[i] | d[i + 1] << 8) : (uint32_t)(d[i] << 8 | d[i + 1]);

		if (u >= 0xD800 && u <= 0xDBFF && i + 3 < len) {
			uint32_t l = le ? (uint32_t)(d[i + 2] | d[i + 3] << 8)
					: (uint32_t)(d[i + 2] << 8 | d[i + 3]);

			if (l >= 0xDC00 && l <= 0xDFFF) {
				add_cp(out, 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00));
				i += 4;
				continue;
			}
		}
		if ((u >= 0xD800 && u <= 0xDFFF) || u == 0)
			return rag_err_set(err, RAG_EUNSUPPORTED, "file",
					   "invalid UTF-16 at byte offset %zu", i + base);
		add_cp(out, u);
		i += 2;
	}
	return 0;
}

static int from_cp1252(const unsigned char *d, size_t len, size_t base, struct sbuf *out,
		       struct rag_err *err)
{
	size_t bad;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = d[i];

		if (c >= 0x80 && utf8_char_len(d + i, len - i) > 1) {
			utf8_valid((const char *)d, len, &bad);
			return rag_err_set(err, RAG_EUNSUPPORTED, "file",
					   "text is not valid UTF-8 (first bad byte at offset %zu)",
					   bad + base);
		}
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\f' && c != '\r') ||
		    (c >= 0x80 && c < 0xA0 && cp1252[c - 0x80] == 0))
			return rag_err_set(err, RAG_EUNSUPPORTED, "file",
					   "text is neither UTF-8 nor Latin-1 (byte 0x%02X at offset "
					   "%zu)",
					   c, i + base);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = d[i];

		if (c < 0x80)
			sbuf_addch(out, c);
		else if (c < 0xA0)
			add_cp(out, cp1252[c - 0x80]);
		else
			add_cp(out, c);
	}
	return 0;
}

/* Appends s[0..len) to out with CRLF and CR made LF. */
static void add_lf(struct sbuf *out, const char *s, size_t len)
{
	size_t i = 0;

	if (sbuf_grow(out, len))
		return;
	while (i < len) {
		const char *cr = memchr(s + i, '\r', len - i);
		size_t n = cr ? (size_t)(cr - (s + i)) : len - i;

		sbuf_add(out, s + i, n);
		i += n;
		if (!cr)
			break;
		sbuf_addch(out, '\n');
		i++;
		if (i < len && s[i] == '\n')
			i++;
	}
}

int extract_decode_text(const char *data, size_t len, struct sbuf *out, struct rag_err *err)
{
	const unsigned char *d = (const unsigned char *)data;
	struct sbuf tmp = SBUF_INIT;
	size_t skip = 0, start = out->len, n_bom = 0;
	int le, rc = 0;

	le = utf16_guess(d, len);
	if (le) {
		if (len >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF)))
			skip = 2;
		rc = from_utf16(d + skip, len - skip, le == 1, skip, &tmp, err);
	} else {
		if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
			skip = 3;
		if (utf8_valid(data + skip, len - skip, NULL)) {
			add_lf(out, data + skip, len - skip);
			goto out;
		}
		rc = from_cp1252(d + skip, len - skip, skip, &tmp, err);
	}
	if (rc == 0)
		add_lf(out, tmp.buf, tmp.len);
out:
	sbuf_release(&tmp);
	if (rc == 0 && sbuf_error(out))
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory while decoding text");
	/*
	 * More BOMs (U+FEFF) at the start are no text either, and cmark skips
	 * one there, which would shift every Markdown source position by three
	 * bytes (found by fuzz_chunk: a block ending inside a code point).
	 */
	while (rc == 0 && out->len - start - n_bom >= 3 &&
	       memcmp(out->buf + start + n_bom, "\xEF\xBB\xBF", 3) == 0)
		n_bom += 3;
	if (n_bom) {
		memmove(out->buf + start, out->buf + start + n_bom, out->len - start - n_bom);
		sbuf_truncate(out, out->len - n_bom);
	}
	return rc;
}

int extract_text(const char *data, size_t len, struct extract_builder *b, struct rag_err *err)
{
	int rc = extract_decode_text(data, len, &b->text, err);

	if (rc < 0)
		return rc;
	xb_mark_paragraphs(b, 0);
	return 0;
}
