/*
 * Error codes, their names and their HTTP statuses: the one table.
 */
#include "core/rag_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	int code;
	const char *name;
	int http_status;
} codes[] = {
	{ RAG_OK, "ok", 200 },
	{ RAG_EINVAL, "invalid_argument", 400 },
	{ RAG_ENOTFOUND, "not_found", 404 },
	{ RAG_ECONFLICT, "conflict", 409 },
	{ RAG_ENOMEM, "out_of_memory", 503 },
	{ RAG_EIO, "io_error", 500 },
	{ RAG_EBUSY, "unavailable", 503 },
	{ RAG_EINTERNAL, "internal", 500 },
	{ RAG_ETOOBIG, "too_large", 413 },
	{ RAG_EUNSUPPORTED, "unsupported", 415 },
	{ RAG_EUNAUTHORIZED, "unauthorized", 401 },
	{ RAG_EFORBIDDEN, "forbidden", 403 },
	{ RAG_ERATELIMIT, "rate_limited", 429 },
	{ RAG_ENOSPACE, "insufficient_storage", 507 },
	{ RAG_ETIMEOUT, "deadline_exceeded", 504 },
	{ RAG_EALREADY, "already_applied", 409 },
};

void rag_err_clear(struct rag_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->field[0] = '\0';
	err->msg[0] = '\0';
}

static void vset(struct rag_err *err, int code, const char *field, const char *fmt, va_list ap)
{
	err->code = code;
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int rag_err_set(struct rag_err *err, int code, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->code != 0)
		return code;
	va_start(ap, fmt);
	vset(err, code, field, fmt, ap);
	va_end(ap);
	return code;
}

int rag_err_reset(struct rag_err *err, int code, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	vset(err, code, field, fmt, ap);
	va_end(ap);
	return code;
}

const char *rag_err_name(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].name;
	return "internal";
}

int rag_err_http_status(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].http_status;
	return 500;
}
