/*
 * Metadata filters from their JSON form (a Mongo-like subset):
 *
 *   {"lang": "en"}                          equality (string, number, boolean)
 *   {"year": {"$gte": 2000, "$lt": 2010}}   $eq $ne $gt $gte $lt $lte $in $nin
 *   {"$or": [{...}, {...}]}, {"$and": [...]}
 *   {"author.name": "Ada"}                  dotted paths reach nested objects
 *
 * Several keys in one object are AND-ed. $ne and $nin also match documents
 * without the field. Ranges compare numbers with numbers and strings with
 * strings (ISO dates order as text).
 *
 * Thread-safety: a parsed filter is immutable; share it freely.
 */
#ifndef RAGD_RAG_RAG_FILTER_H
#define RAGD_RAG_RAG_FILTER_H

#include <stddef.h>

struct rag_err;
struct rag_filter;
struct store_filter;

/*
 * Parses JSON text (len bytes). An empty object gives *out NULL: no
 * filter. Errors are RAG_EINVAL naming the field "filter" with what is
 * wrong and where. Free with rag_filter_free.
 */
int rag_filter_parse(const char *json, size_t len, struct rag_filter **out, struct rag_err *err);

/* The expression tree, borrowed until rag_filter_free. */
const struct store_filter *rag_filter_tree(const struct rag_filter *f);

void rag_filter_free(struct rag_filter *f);

#endif
