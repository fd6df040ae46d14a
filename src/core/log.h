/*
 * Structured logging: one JSON object per line on stderr (or the fd set by
 * log_set_fd), e.g.
 *
 *	{"ts":"2026-11-27T04:05:06.123Z","level":"info","msg":"listening","port":8080}
 *
 * ts is UTC with milliseconds; msg is the printf-formatted message,
 * JSON-escaped. log_kv appends caller-supplied fields.
 *
 * Thread-safety: all functions may be called from any thread. Each line is
 * built in memory and written with a single write(2), so lines from
 * different threads never interleave (for pipes, lines up to PIPE_BUF bytes
 * are atomic by POSIX; regular files opened O_APPEND and ttys in practice).
 * The level and fd are atomics: changing them is safe at any time.
 */
#ifndef RAGD_CORE_LOG_H
#define RAGD_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* Not LOG_DEBUG/LOG_INFO: <syslog.h> defines those as macros. */
enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO = 1,
	LOG_LEVEL_WARN = 2,
	LOG_LEVEL_ERROR = 3,
};

/* Lines below level are dropped; the default is LOG_LEVEL_INFO. Values out
 * of range are clamped. */
void log_set_level(int level);

/* The current level. */
int log_get_level(void);

/* True when a line at level would be written (to skip costly arguments). */
bool log_enabled(int level);

/*
 * Parses "debug", "info", "warn" (or "warning") and "error", case-
 * insensitively, into *out. Returns 0, or RAG_EINVAL (leaving *out alone)
 * for anything else, including NULL.
 */
int log_level_parse(const char *s, int *out);

/* "debug", "info", "warn" or "error"; "info" for an unknown level. */
const char *log_level_name(int level);

/* Sends lines to fd instead of stderr (for tests); the fd stays the
 * caller's. A negative fd restores stderr. */
void log_set_fd(int fd);

/*
 * Tags every later line with "worker":N after "msg" (worker processes share
 * one stderr); a negative N removes the tag. Not thread-safe: call it
 * before other threads log (a worker calls it first thing after fork).
 */
void log_set_process(int worker);

/* Writes a line at level with the printf-formatted message. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Same, with json_fields (may be NULL or "") appended inside the object
 * after "msg": a preformatted fragment such as `"status":200,"path":"/x"`,
 * without leading or trailing comma. The caller is responsible for it being
 * valid JSON (build it with sbuf_add_json_str for strings).
 */
void log_kv(int level, const char *json_fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* log_kv with a va_list (consumed). */
void log_vkv(int level, const char *json_fields, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* The level is tested before the arguments are evaluated. */
#define log_at_(level, ...)                                                                        \
	do {                                                                                       \
		if (log_enabled(level))                                                            \
			log_msg((level), __VA_ARGS__);                                             \
	} while (0)

#define log_debug(...) log_at_(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_at_(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_at_(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_at_(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
