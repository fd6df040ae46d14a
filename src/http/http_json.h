/*
 * JSON request decoding and response encoding for the handlers, on jansson.
 * Every decoding failure writes a 400 into the response naming the field
 * and the problem, and returns a negative code; handlers just return.
 *
 * Thread-safety: stateless.
 */
#ifndef RAGD_HTTP_HTTP_JSON_H
#define RAGD_HTTP_HTTP_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "http/http.h"

/*
 * Parses the body as a JSON object whose keys are all in `allowed`
 * (NULL-terminated). Returns a new reference (json_decref) or NULL after
 * writing the error: malformed JSON (with line and column), invalid UTF-8
 * (naming the field that holds it where it can be told), not an object,
 * unknown field.
 */
json_t *http_json_body(struct http_req *req, struct http_resp *resp, const char *const *allowed);

/*
 * Reads a string field. Missing: with required, an error; else *out stays
 * as the caller set it. Returns 0 or a negative code (error written).
 * *out borrows from obj.
 */
int http_json_string(json_t *obj, const char *key, int required, const char **out,
		     size_t *len_out, struct http_resp *resp);

/* Reads an integer field within [min, max]; missing leaves *out as set. */
int http_json_int(json_t *obj, const char *key, long long min, long long max, long long *out,
		  struct http_resp *resp);

/*
 * Reads an optional object field and serialises it compactly into *out
 * (caller frees); missing gives NULL. Arrays, strings and numbers are errors.
 */
int http_json_object_text(json_t *obj, const char *key, char **out, struct http_resp *resp);

/* Serialises v (reference stolen) into resp with the given status. */
void http_json_reply(struct http_resp *resp, int status, json_t *v);

/* Parses a JSON object text from the store; NULL or bad text gives {}. */
json_t *http_json_parse_object(const char *text);

#endif
