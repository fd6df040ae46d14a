/*
 * A pass over JSON bytes before they are parsed, bounding what the parser
 * would build: nesting depth (jansson recurses per level, up to 2048) and
 * the number of values (each one a heap object of ~50 bytes or more, so a
 * 16 MiB body of "[1,1,1,..." would cost hundreds of MiB once parsed).
 *
 * The scan only tracks strings and brackets; it does not validate. Text it
 * lets through still goes to the real parser, which reports syntax errors.
 *
 * Thread-safety: stateless.
 */
#ifndef RAGD_CORE_JSON_SCAN_H
#define RAGD_CORE_JSON_SCAN_H

#include <stddef.h>

struct rag_err;

struct json_limits {
	int max_depth;       /* objects and arrays nested in each other; <= 0: no limit */
	size_t max_elements; /* array elements and object members, all levels; 0: no limit */
};

/*
 * Checks s[0..len) against lim. Returns 0, RAG_EINVAL naming `field` when
 * nesting goes deeper than max_depth, or RAG_ETOOBIG naming `field` when
 * there are more than max_elements elements. The message quotes the limit
 * and the config key that sets it (limits.max_json_depth, limits.max_json_elements).
 */
int json_scan(const char *s, size_t len, const struct json_limits *lim, const char *field,
	      struct rag_err *err);

#endif
