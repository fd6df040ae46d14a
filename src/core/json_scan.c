/*
 * JSON pre-scan (see json_scan.h). One pass, no allocation: a byte outside a
 * string that opens an object or array goes one level down, a closing one
 * comes back up, and elements are counted as a container that is not empty
 * plus one per comma, which is exact for valid JSON. Inside strings only the
 * backslash matters (it hides the next byte). Bracket mismatches are left
 * to the parser.
 */
#include "core/json_scan.h"

#include "core/rag_error.h"

#include "core/banned.h"

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int json_scan(const char *s, size_t len, const struct json_limits *lim, const char *field,
	      struct rag_err *err)
{
	size_t n_elements = 0;
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '{':
		case '[': {
			size_t j = i + 1;

			if (++depth > lim->max_depth && lim->max_depth > 0)
				return rag_err_set(err, RAG_EINVAL, field,
						   "JSON nested deeper than %d levels "
						   "(limits.max_json_depth)",
						   lim->max_depth);
			while (j < len && is_space(s[j]))
				j++;
			if (j < len && s[j] != '}' && s[j] != ']')
				n_elements++;
			break;
		}
		case '}':
		case ']':
			depth--;
			break;
		case ',':
			n_elements++;
			break;
		default:
			continue;
		}
		if (lim->max_elements && n_elements > lim->max_elements)
			return rag_err_set(err, RAG_ETOOBIG, field,
					   "JSON has more than %zu array elements and object members "
					   "(limits.max_json_elements)",
					   lim->max_elements);
	}
	return 0;
}
