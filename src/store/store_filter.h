/*
 * Metadata filters: a small expression tree over a document's metadata,
 * built by the HTTP layer from the request's JSON and evaluated by the
 * store (SQLite compiles it to SQL over json_extract).
 *
 * Thread-safety: a filter is immutable once built; share it freely.
 */
#ifndef RAGD_STORE_STORE_FILTER_H
#define RAGD_STORE_STORE_FILTER_H

#include <stddef.h>

#define FILTER_MAX_NODES 64 /* conditions in one filter: a bound on SQL size and cost */
#define FILTER_MAX_DEPTH 8

enum filter_op {
	FILTER_AND,
	FILTER_OR,
	FILTER_EQ,
	FILTER_NE,
	FILTER_IN,
	FILTER_NIN,
	FILTER_GT,
	FILTER_GTE,
	FILTER_LT,
	FILTER_LTE,
};

enum filter_type { FILTER_STRING, FILTER_NUMBER, FILTER_BOOL };

struct filter_value {
	enum filter_type type;
	const char *s; /* FILTER_STRING */
	double n;      /* FILTER_NUMBER */
	int b;         /* FILTER_BOOL */
};

/*
 * A node: AND/OR over children, or a comparison of the metadata field at
 * `path` (dotted: "author.name") with values (one, or several for IN/NIN).
 */
struct store_filter {
	enum filter_op op;
	const char *path;
	struct filter_value *values;
	size_t n_values;
	struct store_filter *children;
	size_t n_children;
};

#endif
