/*
 * PDF through the ragd-extract-pdf helper process.
 *
 * Poppler is GPL and a large parser that sees hostile files: it runs in its
 * own process (extract_pdf_helper.c), so the server neither links it nor
 * dies with it. Per document: posix_spawn the helper with a socketpair as its
 * stdin and stdout (a socket, not a pipe, so that a helper that dies early
 * gives EPIPE via MSG_NOSIGNAL instead of SIGPIPE in the server), stderr to
 * /dev/null and every other descriptor closed; prlimit() its address space
 * and CPU time before the first byte is written (limits survive exec, and the
 * helper reads all of stdin before parsing, so no parsing runs unlimited);
 * then one poll() loop writes the PDF and reads the framed output (see
 * extract_int.h) until EOF or the wall-clock deadline, when the helper is
 * killed. A helper that exits non-zero, dies on a signal or writes a
 * malformed frame makes the file RAG_EINVAL, never the server's problem.
 *
 * Page texts are joined by blank lines; their paragraphs become blocks that
 * carry the page number. Text from the helper is checked again here: CRLF
 * and form feeds become LF, other control characters are dropped, invalid
 * UTF-8 is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "text/extract_int.h"
#include "text/utf8.h"

#include "core/banned.h"

#define PDF_HELPER_NAME "ragd-extract-pdf"
#define PDF_MAX_OUTPUT ((size_t)256 << 20) /* text of a PDF, far above any real one */

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int helper_path(const struct extract_options *o, char *out, size_t size)
{
	const char *env = getenv("RAGD_EXTRACT_PDF");
	ssize_t n;
	char *slash;

	if (o && o->pdf_helper && o->pdf_helper[0]) {
		snprintf(out, size, "%s", o->pdf_helper);
		return 0;
	}
	if (env && env[0]) {
		snprintf(out, size, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", out, size - 1);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (!slash || (size_t)(slash - out) + sizeof("/" PDF_HELPER_NAME) > size)
		return -1;
	snprintf(slash, size - (size_t)(slash - out), "/%s", PDF_HELPER_NAME);
	return 0;
}

struct run {
	pid_t pid;
	int fd;
	struct sbuf out;
};

static int spawn(const char *path, const struct extract_options *o, struct run *r,
		 struct rag_err *err)
{
	size_t mem = o && o->pdf_memory_bytes ? o->pdf_memory_bytes : EXTRACT_PDF_MEMORY_BYTES;
	unsigned ms = o && o->pdf_timeout_ms ? o->pdf_timeout_ms : EXTRACT_PDF_TIMEOUT_MS;
	struct rlimit as = { mem, mem }, cpu = { ms / 1000 + 1, ms / 1000 + 2 };
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)PDF_HELPER_NAME, NULL };
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return rag_err_set(err, RAG_EIO, NULL, "socketpair for the PDF helper: %s",
				   strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	rc = posix_spawn(&r->pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc != 0) {
		r->pid = -1;
		close(sv[0]);
		return rag_err_set(err, RAG_EUNSUPPORTED, "file",
				   "PDF extraction is not available: cannot start '%s': %s", path,
				   strerror(rc));
	}
	r->fd = sv[0];
	/* The helper blocks on stdin until we write, so these land before parsing. */
	if (prlimit(r->pid, RLIMIT_AS, &as, NULL) < 0 || prlimit(r->pid, RLIMIT_CPU, &cpu, NULL) < 0) {
		kill(r->pid, SIGKILL);
		return rag_err_set(err, RAG_EINTERNAL, NULL, "cannot limit the PDF helper: %s",
				   strerror(errno));
	}
	fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Feeds data and collects output until EOF; RAG_EINVAL at the deadline. */
static int exchange(struct run *r, const char *data, size_t len, unsigned timeout_ms,
		    struct rag_err *err)
{
	double deadline = now_ms() + timeout_ms;
	size_t sent = 0;
	int writing = 1;

	for (;;) {
		struct pollfd p = { r->fd, POLLIN | (writing ? POLLOUT : 0), 0 };
		double left = deadline - now_ms();
		int n;

		if (left <= 0)
			return rag_err_set(err, RAG_EINVAL, "file",
					   "PDF extraction took longer than %u ms", timeout_ms);
		n = poll(&p, 1, (int)left + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return rag_err_set(err, RAG_EIO, NULL, "poll on the PDF helper: %s",
					   strerror(errno));
		if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = sent < len ? send(r->fd, data + sent, len - sent, MSG_NOSIGNAL)
					       : 0;

			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				writing = 0; /* it stopped reading: its output says why */
				shutdown(r->fd, SHUT_WR);
			} else if (w > 0) {
				sent += (size_t)w;
			}
			if (writing && sent == len) {
				shutdown(r->fd, SHUT_WR);
				writing = 0;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got;

			if (sbuf_grow(&r->out, 65536) < 0)
				return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory reading PDF text");
			got = recv(r->fd, r->out.buf + r->out.len, 65536, 0);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0)
				return 0;
			r->out.len += (size_t)got;
			r->out.buf[r->out.len] = '\0';
			if (r->out.len > PDF_MAX_OUTPUT)
				return rag_err_set(err, RAG_ETOOBIG, "file",
						   "PDF text is over %zu bytes", PDF_MAX_OUTPUT);
		}
	}
}

/* Appends page text, cleaned (see the file comment). */
static int add_page(struct extract_builder *b, const char *s, size_t len)
{
	size_t start;

	if (b->text.len)
		sbuf_add(&b->text, "\n\n", 2);
	start = b->text.len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r') {
			sbuf_addch(&b->text, '\n');
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else if (c == '\f' || c == '\v') {
			sbuf_addch(&b->text, '\n');
		} else if (c >= 0x20 || c == '\n' || c == '\t') {
			sbuf_addch(&b->text, c);
		}
	}
	if (sbuf_error(&b->text))
		return RAG_ENOMEM;
	if (!utf8_valid(b->text.buf + start, b->text.len - start, NULL))
		return RAG_EINVAL;
	xb_mark_paragraphs(b, start);
	/* An empty page leaves its separator: take it back. */
	if (b->n_blocks == 0 || b->blocks[b->n_blocks - 1].start < start)
		sbuf_truncate(&b->text, start >= 2 ? start - 2 : start);
	return 0;
}

/* Parses "<tag> <len>\n<bytes>" at *pos. */
static int next_frame(const struct sbuf *o, size_t *pos, char *tag, const char **data,
		      size_t *len)
{
	const char *p = o->buf + *pos, *end = o->buf + o->len;
	char *stop;
	unsigned long long n;

	if (end - p < 4 || p[1] != ' ' || p[2] < '0' || p[2] > '9')
		return -1;
	errno = 0;
	n = strtoull(p + 2, &stop, 10);
	if (errno || stop >= end || *stop != '\n' || n > (unsigned long long)(end - stop - 1))
		return -1;
	*tag = p[0];
	*data = stop + 1;
	*len = (size_t)n;
	*pos = (size_t)(stop + 1 - o->buf) + (size_t)n;
	return 0;
}

int extract_pdf_frames(const struct sbuf *o, struct extract_builder *b, struct rag_err *err)
{
	size_t pos = sizeof(EXTRACT_PDF_MAGIC) - 1, len;
	unsigned page = 0, n_pages = 0;
	const char *data;
	char tag;
	int rc;

	if (o->len < pos || memcmp(o->buf, EXTRACT_PDF_MAGIC, pos) != 0)
		return 1;
	while (pos < o->len) {
		if (next_frame(o, &pos, &tag, &data, &len) < 0)
			return 1;
		switch (tag) {
		case 'E':
			return rag_err_set(err, RAG_EINVAL, "file", "PDF could not be read: %.*s",
					   (int)(len > 300 ? 300 : len), data);
		case 'N':
			n_pages = (unsigned)strtoul(data, NULL, 10);
			break;
		case 'T':
			if (utf8_valid(data, len, NULL))
				xb_title(b, data, len);
			break;
		case 'P':
			b->page = ++page;
			rc = add_page(b, data, len);
			if (rc == RAG_ENOMEM)
				return rag_err_set(err, rc, NULL, "out of memory for PDF text");
			if (rc < 0)
				return rag_err_set(err, RAG_EINVAL, "file",
						   "PDF page %u has text that is not valid UTF-8", page);
			break;
		case 'D':
			if (page != n_pages)
				return 1;
			if (n_pages == 0)
				return rag_err_set(err, RAG_EINVAL, "file", "PDF has no pages");
			b->page = n_pages;
			return 0;
		default:
			return 1;
		}
	}
	return 1; /* no 'D': the helper stopped early */
}

static const char *describe(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(buf, size,
			 "the PDF helper was killed by signal %d (a crash on this file, or its "
			 "memory or CPU limit)",
			 WTERMSIG(status));
	else
		snprintf(buf, size, "the PDF helper exited with status %d", WEXITSTATUS(status));
	return buf;
}

int extract_pdf(const char *data, size_t len, const struct extract_options *opts,
		struct extract_builder *b, struct rag_err *err)
{
	unsigned timeout = opts && opts->pdf_timeout_ms ? opts->pdf_timeout_ms
							: EXTRACT_PDF_TIMEOUT_MS;
	struct run r = { -1, -1, SBUF_INIT };
	char path[PATH_MAX], why[160];
	int rc, status = 0;

	if (!memmem(data, len < 1024 ? len : 1024, "%PDF-", 5))
		return rag_err_set(err, RAG_EINVAL, "file", "not a PDF: no %%PDF- header");
	if (helper_path(opts, path, sizeof(path)) < 0 || access(path, X_OK) < 0)
		return rag_err_set(err, RAG_EUNSUPPORTED, "file",
				   "PDF extraction is not available: helper '%s' not found",
				   PDF_HELPER_NAME);
	rc = spawn(path, opts, &r, err);
	if (r.pid <= 0)
		return rc;
	if (rc == 0)
		rc = exchange(&r, data, len, timeout, err);
	if (rc < 0)
		kill(r.pid, SIGKILL);
	close(r.fd);
	while (waitpid(r.pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0) {
		rc = extract_pdf_frames(&r.out, b, err);
		if (rc > 0)
			rc = rag_err_set(err, RAG_EINVAL, "file", "PDF could not be read: %s",
					 WIFEXITED(status) && WEXITSTATUS(status) == 0
						 ? "malformed helper output"
						 : describe(status, why, sizeof(why)));
	}
	sbuf_release(&r.out);
	return rc;
}
