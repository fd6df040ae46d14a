/*
 * One error type for the whole project.
 *
 * Fallible functions return int: 0 on success, a negative RAG_E* code
 * otherwise. Details travel in an optional last parameter `struct rag_err *`
 * that the layer knowing the context fills in, quoting the subject
 * ("document 'abc' not found"), and naming the client-visible field when the
 * error is about one ("top_k"). Foreign error spaces (SQLite rc, errno,
 * llama.cpp) are translated once, in their adapter.
 *
 * Thread-safety: a struct rag_err belongs to one caller; the functions here
 * keep no state.
 */
#ifndef RAGD_CORE_RAG_ERROR_H
#define RAGD_CORE_RAG_ERROR_H

#include <stddef.h>

enum {
	RAG_OK = 0,
	RAG_EINVAL = -1,        /* bad argument or client input */
	RAG_ENOTFOUND = -2,     /* the named thing does not exist */
	RAG_ECONFLICT = -3,     /* it exists already / concurrent change */
	RAG_ENOMEM = -4,        /* allocation failed */
	RAG_EIO = -5,           /* storage or network I/O failed */
	RAG_EBUSY = -6,         /* temporarily unavailable: retry later */
	RAG_EINTERNAL = -7,     /* a bug or an invariant broken */
	RAG_ETOOBIG = -8,       /* input over a configured limit */
	RAG_EUNSUPPORTED = -9,  /* valid request for something not supported */
	RAG_EUNAUTHORIZED = -10, /* no credentials, or ones that are not valid */
	RAG_EFORBIDDEN = -11,   /* valid credentials whose role may not do this */
	RAG_ERATELIMIT = -12,   /* a quota or rate limit is spent: retry later */
	RAG_ENOSPACE = -13,     /* the disk (or a quota) is full: nothing was written */
	RAG_ETIMEOUT = -14,     /* the request's deadline passed (limits.*_timeout_ms) */
	RAG_EALREADY = -15,     /* a job item written again was already applied: nothing was written */
};

#define RAG_ERR_FIELD_MAX 64   /* longest field path a client can be told */
#define RAG_ERR_MSG_MAX 512    /* room for a message quoting a subject */

struct rag_err {
	int code;
	char field[RAG_ERR_FIELD_MAX]; /* "" when the error names no field */
	char msg[RAG_ERR_MSG_MAX];
};

/* Clears err (NULL-safe). */
void rag_err_clear(struct rag_err *err);

/*
 * Records code, field (may be NULL) and a printf-style message into err
 * (NULL-safe: with err NULL only the code is returned). Returns code, so a
 * caller can write `return rag_err_set(err, RAG_EINVAL, "top_k", "...")`.
 * An error already recorded is kept: the innermost layer's message wins.
 */
int rag_err_set(struct rag_err *err, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Same, replacing whatever err held. */
int rag_err_reset(struct rag_err *err, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Stable snake_case name of a code, e.g. "not_found"; never NULL. */
const char *rag_err_name(int code);

/* The HTTP status for a code: the one table that maps them. */
int rag_err_http_status(int code);

#endif
