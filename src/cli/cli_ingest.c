/*
 * `ragd ingest [options] PATH...`: stores files as documents, creating the
 * collection with the defaults if it does not exist.
 *
 * A PATH that is a file becomes one document whose id is --id (one file
 * only) or the file's base name; "-" reads standard input. A PATH that is a
 * directory is walked (symlinks not followed): each regular file whose path
 * relative to it matches --include (comma-separated globs, default all) and
 * no --exclude glob becomes a document whose id is that relative path ('/'
 * as ':'), with metadata {"source_root": DIR, "path": relative path}. The
 * format is sniffed from the bytes and the name unless --format forces one.
 *
 * Every upsert is decided by content hash, so a re-run skips unchanged
 * files without embedding anything. --sync then deletes the documents that
 * came from a walked DIR whose file is gone; --watch keeps following the
 * trees (inotify), ingesting files as they are written (after a short quiet
 * period) and, with --sync, deleting documents of removed files, until
 * SIGINT or SIGTERM.
 *
 * Output: a JSON line per file on stdout. Progress on stderr: a bar
 * redrawn in place on a terminal, else a log line every couple of seconds.
 * A file that fails (unreadable, unsupported, malformed, too big) is
 * reported at the end with its reason; the others go on. SIGINT or SIGTERM
 * stops after the file in progress, still printing the summary. Exit status
 * 1 if any file failed or the run was interrupted.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hash.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "rag/rag_engine.h"
#include "store/store.h"
#include "store/store_filter.h"

#include "core/banned.h"

#define CLI_DEFAULT_COLLECTION "default" /* what `ragd search` looks in by default */
#define INGEST_LOG_EVERY_MS 2000         /* plain progress lines, when not on a terminal */
#define INGEST_DEBOUNCE_MS 300           /* --watch: wait for writes to settle */
#define INGEST_SYNC_PAGE 500             /* documents per listing page in --sync */

/* One file to ingest: its path, and for walked trees its root and relative path. */
struct file {
	char *path;
	const char *root; /* borrowed from the walk; NULL for files named directly */
	char *rel;
};

struct ingest {
	struct cli_app *app;
	const char *collection, *id, *format, *include, *exclude;
	int sync, watch, tty;
	struct file *files;
	size_t n_files, alloc;
	struct sbuf errors; /* "path: reason\n" per failed file */
	size_t n_failed, n_stored, n_unchanged, n_deleted, n_chunks, done;
	size_t bytes;
	double t0, last_log, extract_ms, chunk_ms, embed_ms, store_ms;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int read_all(const char *path, struct sbuf *sb)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char buf[65536];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(sb, buf, n);
	if (ferror(f) || sbuf_error(sb)) {
		if (f != stdin)
			fclose(f);
		errno = errno ? errno : ENOMEM;
		return -1;
	}
	if (f != stdin)
		fclose(f);
	return 0;
}

/* Does s match one of the comma-separated globs? A glob without '/' also tries the base name. */
static int match_any(const char *globs, const char *rel)
{
	const char *base = strrchr(rel, '/');
	char glob[256];

	base = base ? base + 1 : rel;
	for (const char *p = globs; *p;) {
		size_t len = strcspn(p, ",");

		if (len > 0 && len < sizeof(glob)) {
			memcpy(glob, p, len);
			glob[len] = '\0';
			if (fnmatch(glob, rel, FNM_PATHNAME | FNM_PERIOD) == 0 ||
			    fnmatch(glob, rel, 0) == 0 ||
			    (!strchr(glob, '/') && fnmatch(glob, base, 0) == 0))
				return 1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int wanted(const struct ingest *in, const char *rel)
{
	if (in->include && *in->include && !match_any(in->include, rel))
		return 0;
	return !(in->exclude && *in->exclude && match_any(in->exclude, rel));
}

static int add_file(struct ingest *in, const char *path, const char *root, const char *rel)
{
	struct file *f;

	if (in->n_files == in->alloc) {
		size_t alloc = in->alloc ? 2 * in->alloc : 64;
		struct file *grown = reallocarray(in->files, alloc, sizeof(*grown));

		if (!grown)
			return -1;
		in->files = grown;
		in->alloc = alloc;
	}
	f = &in->files[in->n_files];
	f->path = strdup(path);
	f->root = root;
	f->rel = rel ? strdup(rel) : NULL;
	if (!f->path || (rel && !f->rel)) {
		free(f->path);
		free(f->rel);
		return -1;
	}
	in->n_files++;
	return 0;
}

static void files_clear(struct ingest *in)
{
	for (size_t i = 0; i < in->n_files; i++) {
		free(in->files[i].path);
		free(in->files[i].rel);
	}
	in->n_files = 0;
}

/* nftw has no context argument: the walk in progress. */
static struct ingest *walk_in;
static const char *walk_root;
static size_t walk_root_len;
static int walk_failed;

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	const char *rel = path + walk_root_len;

	(void)sb, (void)ftw;
	while (*rel == '/')
		rel++;
	if (type == FTW_F && wanted(walk_in, rel) && add_file(walk_in, path, walk_root, rel) < 0)
		walk_failed = 1;
	return walk_failed ? -1 : 0;
}

/* Walks root (an absolute, resolved path) adding the wanted files, in name order. */
static int walk(struct ingest *in, const char *root)
{
	walk_in = in;
	walk_root = root;
	walk_root_len = strlen(root);
	walk_failed = 0;
	if (nftw(root, walk_cb, 32, FTW_PHYS) != 0 || walk_failed) {
		fprintf(stderr, "ragd ingest: cannot walk '%s': %s\n", root,
			walk_failed ? "out of memory" : strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The document id of a walked file: its relative path with '/' as ':' and
 * other characters an id may not hold as '_'; a path too long for an id
 * keeps its tail and gains a hash of the whole, so ids stay distinct.
 */
static void id_from_rel(const char *rel, char *out, size_t size)
{
	char tmp[PATH_MAX];
	size_t len = 0;

	for (const char *p = rel; *p && len + 1 < sizeof(tmp); p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':';

		tmp[len++] = c == '/' ? ':' : ok ? c : '_';
	}
	tmp[len] = '\0';
	if (len <= RAG_DOC_ID_MAX) {
		snprintf(out, size, "%s", tmp);
	} else {
		char hex[HASH_HEX_LEN + 1];
		const void *parts[1] = { rel };
		size_t lens[1] = { strlen(rel) };
		size_t keep = RAG_DOC_ID_MAX - HASH_HEX_LEN - 1;

		hash_hex(parts, lens, 1, hex);
		snprintf(out, size, "%s~%s", hex, tmp + len - keep);
	}
}

static void progress(struct ingest *in, int final)
{
	double t = now_ms(), secs = (t - in->t0) / 1000.0;
	double rate = secs > 0 ? (double)in->n_chunks / secs : 0;
	double files_s = secs > 0 ? (double)in->done / secs : 0;
	double eta = files_s > 0 ? (double)(in->n_files - in->done) / files_s : 0;

	if (in->tty) {
		int width = 30, fill = in->n_files ? (int)(width * in->done / in->n_files) : width;

		fprintf(stderr, "\r[%.*s%*s] %zu/%zu files  %.0f chunks/s  ETA %.0fs  %zu failed%s",
			fill, "##############################", width - fill, "", in->done,
			in->n_files, rate, eta, in->n_failed, final ? "\n" : " ");
		fflush(stderr);
		return;
	}
	if (!final && t - in->last_log < INGEST_LOG_EVERY_MS)
		return;
	in->last_log = t;
	fprintf(stderr, "ragd ingest: %zu/%zu files, %zu chunks, %.1f chunks/s, ETA %.0f s,"
		" %zu failed\n", in->done, in->n_files, in->n_chunks, rate, eta, in->n_failed);
}

static void fail(struct ingest *in, const char *path, const char *why)
{
	in->n_failed++;
	sbuf_addf(&in->errors, "  %s: %s\n", path, why);
	if (in->tty)
		fprintf(stderr, "\n");
	fprintf(stderr, "ragd ingest: '%s': %s\n", path, why);
}

static void ingest_one(struct ingest *in, const struct file *f)
{
	struct sbuf text = SBUF_INIT, meta = SBUF_INIT;
	struct rag_doc_in doc = { 0 };
	struct rag_ingest_result res;
	struct rag_err err = { 0 };
	char doc_id[RAG_DOC_ID_MAX + 1];

	if (read_all(f->path, &text) < 0) {
		char why[256];

		snprintf(why, sizeof(why), "cannot read: %s", strerror(errno));
		fail(in, f->path, why);
		goto out;
	}
	if (f->rel) {
		id_from_rel(f->rel, doc_id, sizeof(doc_id));
		sbuf_addstr(&meta, "{\"path\":");
		sbuf_add_json_str(&meta, f->rel, strlen(f->rel));
		sbuf_addstr(&meta, ",\"source_root\":");
		sbuf_add_json_str(&meta, f->root, strlen(f->root));
		sbuf_addch(&meta, '}');
		doc.metadata_json = meta.buf;
	} else {
		rag_doc_id_from_name(f->path, doc_id, sizeof(doc_id));
	}
	doc.id = in->id ? in->id : (strcmp(f->path, "-") == 0 ? NULL : doc_id);
	doc.text = text.buf;
	doc.text_len = text.len;
	doc.format = in->format ? in->format : "auto";
	doc.name = strcmp(f->path, "-") == 0 ? NULL : f->path;
	if (rag_ingest(in->app->eng, STORE_DEFAULT_TENANT, in->collection, &doc, &res, &err) < 0) {
		fail(in, f->path, err.msg);
		goto out;
	}
	in->bytes += text.len;
	in->n_chunks += res.unchanged ? 0 : res.n_chunks; /* chunks written by this run */
	in->extract_ms += res.extract_ms;
	in->chunk_ms += res.chunk_ms;
	in->embed_ms += res.embed_ms;
	in->store_ms += res.store_ms;
	if (res.unchanged)
		in->n_unchanged++;
	else
		in->n_stored++;
	{
		struct sbuf line = SBUF_INIT;

		sbuf_addstr(&line, "{\"file\":");
		sbuf_add_json_str(&line, f->rel ? f->rel : doc_id, strlen(f->rel ? f->rel : doc_id));
		sbuf_addstr(&line, ",\"id\":");
		sbuf_add_json_str(&line, res.id, strlen(res.id));
		sbuf_addstr(&line, ",\"collection\":");
		sbuf_add_json_str(&line, in->collection, strlen(in->collection));
		sbuf_addf(&line, ",\"chunks\":%zu,\"embedded\":%zu,\"unchanged\":%s}\n", res.n_chunks,
			  res.n_embedded, res.unchanged ? "true" : "false");
		fputs(line.buf, stdout);
		sbuf_release(&line);
	}
out:
	in->done++;
	progress(in, 0);
	sbuf_release(&text);
	sbuf_release(&meta);
}

/* Is rel (from root) among the files just walked? A linear scan is fine: --sync is rare. */
static int walked(const struct ingest *in, const char *root, const char *id)
{
	char doc_id[RAG_DOC_ID_MAX + 1];

	for (size_t i = 0; i < in->n_files; i++) {
		if (!in->files[i].rel || strcmp(in->files[i].root, root) != 0)
			continue;
		id_from_rel(in->files[i].rel, doc_id, sizeof(doc_id));
		if (strcmp(doc_id, id) == 0)
			return 1;
	}
	return 0;
}

/* --sync: deletes the documents from root whose file was not walked. */
static void sync_root(struct ingest *in, const char *root)
{
	struct filter_value v = { FILTER_STRING, root, 0, 0 };
	struct store_filter f = { FILTER_EQ, "source_root", &v, 1, NULL, 0 };
	struct store_doc_query q = { NULL, INGEST_SYNC_PAGE, &f };
	char cursor[RAG_DOC_ID_MAX + 1] = "";

	for (;;) {
		struct store_doc *docs = NULL;
		struct rag_err err = { 0 };
		size_t n = 0;

		q.after_id = *cursor ? cursor : NULL;
		if (rag_doc_list(in->app->eng, STORE_DEFAULT_TENANT, in->collection, &q, &docs, &n,
				 &err) < 0) {
			fail(in, root, err.msg);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			if (walked(in, root, docs[i].id))
				continue;
			if (rag_doc_delete(in->app->eng, STORE_DEFAULT_TENANT, in->collection,
					   docs[i].id, &err) < 0) {
				fail(in, docs[i].id, err.msg);
				rag_err_clear(&err);
				continue;
			}
			in->n_deleted++;
			printf("{\"id\":\"%s\",\"deleted\":true}\n", docs[i].id);
		}
		if (n > 0)
			snprintf(cursor, sizeof(cursor), "%s", docs[n - 1].id);
		store_doc_list_free(docs, n);
		if (n < INGEST_SYNC_PAGE)
			return;
	}
}

static int ensure_collection(struct cli_app *app, const char *name)
{
	struct rag_collection_info info;
	struct rag_collection_spec spec = { .name = name, .chunk_overlap = -1 };
	struct rag_err err = { 0 };

	if (rag_collection_get(app->eng, STORE_DEFAULT_TENANT, name, &info, &err) == 0) {
		rag_collection_info_release(&info);
		return 0;
	}
	if (err.code != RAG_ENOTFOUND) {
		fprintf(stderr, "ragd ingest: %s\n", err.msg);
		return -1;
	}
	rag_err_clear(&err);
	if (rag_collection_create(app->eng, STORE_DEFAULT_TENANT, &spec, NULL, &err) < 0 &&
	    err.code != RAG_ECONFLICT) {
		fprintf(stderr, "ragd ingest: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* Gathers every PATH's files; the roots of directories go to roots[] (caller frees). */
static int gather(struct ingest *in, char **roots, size_t *n_roots)
{
	*n_roots = 0;
	for (size_t i = 0; i < in->app->n_args; i++) {
		const char *arg = in->app->args[i];
		struct stat sb;

		if (strcmp(arg, "-") != 0 && stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			char *root = realpath(arg, NULL);

			if (!root || walk(in, root) < 0) {
				free(root);
				return -1;
			}
			roots[(*n_roots)++] = root;
		} else if (add_file(in, arg, NULL, NULL) < 0) {
			return -1;
		}
	}
	return 0;
}

/* --watch: inotify watch descriptors and the directories they name. */
struct watch {
	int fd;
	struct {
		int wd;
		char *dir;
	} *w;
	size_t n, alloc;
	char **pending; /* paths changed since the last batch, deduplicated */
	size_t n_pending, alloc_pending;
};

static struct watch *watch_in; /* nftw has no context argument */

static void watch_dir(struct watch *w, const char *dir)
{
	int wd = inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
						       IN_DELETE | IN_CREATE | IN_ONLYDIR);

	if (wd < 0) {
		fprintf(stderr, "ragd ingest: cannot watch '%s': %s\n", dir, strerror(errno));
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		if (w->w[i].wd == wd)
			return;
	if (w->n == w->alloc) {
		size_t alloc = w->alloc ? 2 * w->alloc : 64;
		void *grown = reallocarray(w->w, alloc, sizeof(*w->w));

		if (!grown)
			return;
		w->w = grown;
		w->alloc = alloc;
	}
	w->w[w->n].wd = wd;
	w->w[w->n].dir = strdup(dir);
	if (w->w[w->n].dir)
		w->n++;
}

static int watch_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)ftw;
	if (type == FTW_D)
		watch_dir(watch_in, path);
	return 0;
}

static void watch_tree(struct watch *w, const char *root)
{
	watch_in = w;
	nftw(root, watch_cb, 32, FTW_PHYS);
}

static void pend(struct watch *w, const char *path)
{
	for (size_t i = 0; i < w->n_pending; i++)
		if (strcmp(w->pending[i], path) == 0)
			return;
	if (w->n_pending == w->alloc_pending) {
		size_t alloc = w->alloc_pending ? 2 * w->alloc_pending : 64;
		char **grown = reallocarray(w->pending, alloc, sizeof(*grown));

		if (!grown)
			return;
		w->pending = grown;
		w->alloc_pending = alloc;
	}
	w->pending[w->n_pending] = strdup(path);
	if (w->pending[w->n_pending])
		w->n_pending++;
}

/* Reads the queued events: directories created get watched and walked, files pend. */
static void read_events(struct ingest *in, struct watch *w)
{
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len = read(w->fd, buf, sizeof(buf));

	(void)in;
	for (char *p = buf; len > 0 && p < buf + len;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		const char *dir = NULL;

		for (size_t i = 0; i < w->n && !dir; i++)
			if (w->w[i].wd == ev->wd)
				dir = w->w[i].dir;
		if (dir && ev->len > 0) {
			struct sbuf path = SBUF_INIT;

			sbuf_addf(&path, "%s/%s", dir, ev->name);
			if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
				size_t before = in->n_files;

				watch_tree(w, path.buf);
				walk(in, path.buf);
				for (size_t i = before; i < in->n_files; i++)
					pend(w, in->files[i].path);
			} else if (!(ev->mask & IN_ISDIR) && !(ev->mask & IN_CREATE)) {
				pend(w, path.buf);
			}
			sbuf_release(&path);
		}
		p += sizeof(*ev) + ev->len;
	}
}

/* Ingests or (with --sync) deletes what changed under roots. */
static void apply_pending(struct ingest *in, struct watch *w, char **roots, size_t n_roots)
{
	for (size_t i = 0; i < w->n_pending; i++) {
		const char *path = w->pending[i], *root = NULL, *rel;
		struct stat sb;

		for (size_t r = 0; r < n_roots && !root; r++) {
			size_t len = strlen(roots[r]);

			if (strncmp(path, roots[r], len) == 0 && path[len] == '/')
				root = roots[r];
		}
		if (!root)
			continue;
		rel = path + strlen(root) + 1;
		if (!wanted(in, rel))
			continue;
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			struct file f = { (char *)path, root, (char *)rel };

			ingest_one(in, &f);
		} else if (in->sync) {
			char doc_id[RAG_DOC_ID_MAX + 1];
			struct rag_err err = { 0 };

			id_from_rel(rel, doc_id, sizeof(doc_id));
			if (rag_doc_delete(in->app->eng, STORE_DEFAULT_TENANT, in->collection, doc_id,
					   &err) == 0) {
				in->n_deleted++;
				printf("{\"id\":\"%s\",\"deleted\":true}\n", doc_id);
			}
		}
		fflush(stdout);
	}
	for (size_t i = 0; i < w->n_pending; i++)
		free(w->pending[i]);
	w->n_pending = 0;
}

/* Follows the trees until SIGINT or SIGTERM; 0 on a clean stop. */
static int cli_ingest_watch(struct ingest *in, char **roots, size_t n_roots)
{
	struct watch w = { 0 };
	struct sigaction sa;
	double quiet_since = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	w.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w.fd < 0) {
		fprintf(stderr, "ragd ingest: --watch: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < n_roots; i++)
		watch_tree(&w, roots[i]);
	in->tty = 0;
	fprintf(stderr, "ragd ingest: watching %zu directories\n", w.n);
	fflush(stdout);
	while (!stop_requested) {
		struct pollfd pfd = { w.fd, POLLIN, 0 };
		int ready = poll(&pfd, 1, INGEST_DEBOUNCE_MS / 3);

		if (ready > 0) {
			read_events(in, &w);
			quiet_since = now_ms();
		} else if (w.n_pending > 0 && now_ms() - quiet_since >= INGEST_DEBOUNCE_MS) {
			apply_pending(in, &w, roots, n_roots);
		}
	}
	apply_pending(in, &w, roots, n_roots);
	close(w.fd);
	for (size_t i = 0; i < w.n; i++)
		free(w.w[i].dir);
	free(w.w);
	free(w.pending);
	fprintf(stderr, "ragd ingest: stopped watching; %zu stored, %zu deleted, %zu failed\n",
		in->n_stored, in->n_deleted, in->n_failed);
	return 0;
}

int cli_ingest(int argc, char **argv)
{
	struct ingest in = { 0 };
	const struct cli_flag flags[] = {
		{ "--collection", &in.collection, NULL },
		{ "--id", &in.id, NULL },
		{ "--include", &in.include, NULL },
		{ "--exclude", &in.exclude, NULL },
		{ "--format", &in.format, NULL },
		{ "--sync", NULL, &in.sync },
		{ "--watch", NULL, &in.watch },
		{ NULL, NULL, NULL },
	};
	struct cli_app app;
	char *roots[CLI_MAX_ARGS];
	size_t n_roots = 0;
	int rc = 1;

	in.collection = CLI_DEFAULT_COLLECTION;
	if (cli_setup(&app, argc, argv, 2, flags) < 0) {
		cli_app_release(&app);
		return 2;
	}
	if (app.n_args == 0 || (in.id && app.n_args > 1)) {
		fprintf(stderr, "usage: ragd ingest [--collection NAME] [--id ID] [--format FMT]\n"
				"                   [--include GLOBS] [--exclude GLOBS] [--sync] [--watch]"
				" PATH...\n"
				"       (PATH: a file, '-' for standard input, or a directory to walk;\n"
				"        --id only with a single file; GLOBS comma-separated)\n");
		cli_app_release(&app);
		return 2;
	}
	in.app = &app;
	in.tty = isatty(STDERR_FILENO);
	sbuf_init(&in.errors, 0);
	if (cli_open(&app, 1, 0, 0) < 0 || ensure_collection(&app, in.collection) < 0)
		goto out;
	if (gather(&in, roots, &n_roots) < 0)
		goto out;
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	in.t0 = now_ms();
	for (size_t i = 0; i < in.n_files && !stop_requested; i++)
		ingest_one(&in, &in.files[i]);
	if (stop_requested) {
		fprintf(stderr, "ragd ingest: interrupted after %zu of %zu files\n", in.done,
			in.n_files);
		in.watch = 0;
		in.sync = 0; /* files not visited are not gone */
	}
	if (in.sync)
		for (size_t i = 0; i < n_roots; i++)
			sync_root(&in, roots[i]);
	progress(&in, 1);
	fprintf(stderr, "ragd ingest: %zu stored, %zu unchanged, %zu deleted, %zu failed;"
		" %zu chunks, %.1f MB in %.1f s (extract %.0f ms, chunk %.0f ms, embed %.0f ms,"
		" store %.0f ms)\n", in.n_stored, in.n_unchanged, in.n_deleted, in.n_failed,
		in.n_chunks, (double)in.bytes / 1e6, (now_ms() - in.t0) / 1000.0, in.extract_ms,
		in.chunk_ms, in.embed_ms, in.store_ms);
	if (in.n_failed)
		fprintf(stderr, "ragd ingest: %zu files failed:\n%s", in.n_failed, in.errors.buf);
	if (in.watch)
		rc = cli_ingest_watch(&in, roots, n_roots);
	else
		rc = in.n_failed || stop_requested ? 1 : 0;
out:
	files_clear(&in);
	free(in.files);
	for (size_t i = 0; i < n_roots; i++)
		free(roots[i]);
	sbuf_release(&in.errors);
	cli_app_release(&app);
	return rc;
}
