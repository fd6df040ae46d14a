/*
 * Structured logging as JSON lines.
 *
 * Each call formats the whole line into an sbuf and hands it to one
 * write(2): no lock, no stdio buffering shared between threads, and a line
 * is never split by another thread's. The message is formatted with
 * vsnprintf first and then JSON-escaped, so any bytes (newlines, quotes,
 * invalid UTF-8) in it still give one valid JSON line. A short write (full
 * pipe, signal) is finished with further writes; interleaving is then
 * possible but only under conditions where the alternative is losing the
 * line. Write errors are ignored: there is nowhere left to report them.
 *
 * Timestamps are UTC via gmtime_r, which does not take the tz lock that
 * localtime_r does.
 */
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/banned.h"

#define LOG_LINE_HINT 256 /* a typical line fits without regrowing */

static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_int log_fd = STDERR_FILENO;
static char log_process[32]; /* log_set_process: set once, before threads start */

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(int level)
{
	if (level < LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	if (level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int log_get_level(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool log_enabled(int level)
{
	return level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_level_parse(const char *s, int *out)
{
	if (!s)
		return RAG_EINVAL;
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return RAG_EINVAL;
}

const char *log_level_name(int level)
{
	if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR)
		return "info";
	return level_names[level];
}

void log_set_fd(int fd)
{
	atomic_store_explicit(&log_fd, fd < 0 ? STDERR_FILENO : fd, memory_order_relaxed);
}

void log_set_process(int worker)
{
	if (worker < 0)
		log_process[0] = '\0';
	else
		snprintf(log_process, sizeof(log_process), "\"worker\":%d", worker);
}

static void add_timestamp(struct sbuf *sb)
{
	struct timespec ts;
	struct tm tm;
	char buf[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	sbuf_addf(sb, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

void log_vkv(int level, const char *json_fields, const char *fmt, va_list ap)
{
	struct sbuf line, msg = SBUF_INIT;
	int saved_errno = errno; /* callers often log right before reading errno */

	if (!log_enabled(level))
		return;
	sbuf_init(&line, LOG_LINE_HINT);
	sbuf_vaddf(&msg, fmt, ap);
	sbuf_addstr(&line, "{\"ts\":\"");
	add_timestamp(&line);
	sbuf_addf(&line, "\",\"level\":\"%s\",\"msg\":", log_level_name(level));
	sbuf_add_json_str(&line, msg.buf, msg.len);
	if (log_process[0])
		sbuf_addf(&line, ",%s", log_process);
	if (json_fields && json_fields[0]) {
		sbuf_addch(&line, ',');
		sbuf_addstr(&line, json_fields);
	}
	sbuf_addstr(&line, "}\n");
	if (sbuf_error(&line) == 0 && sbuf_error(&msg) == 0)
		write_all(atomic_load_explicit(&log_fd, memory_order_relaxed), line.buf, line.len);
	sbuf_release(&msg);
	sbuf_release(&line);
	errno = saved_errno;
}

void log_kv(int level, const char *json_fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vkv(level, json_fields, fmt, ap);
	va_end(ap);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vkv(level, NULL, fmt, ap);
	va_end(ap);
}
