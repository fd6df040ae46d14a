/*
 * The store under test for test_store.c and test_store_v2.c, which only use
 * store_* calls: SQLite in a temporary directory, or, when the file is
 * compiled with RAGD_TEST_STORE_MONGO (the *_mongo test executables), the
 * MongoDB backend against a real MongoDB-wire-compatible server.
 *
 * The server: $RAGD_TEST_MONGODB_URI when set (a MongoDB the caller runs),
 * else FerretDB started here on a free loopback port with its SQLite
 * backend in a temporary directory, stopped at exit. The binary is
 * $RAGD_FERRETDB, else scripts/ferretdb.sh's cache
 * (~/.cache/ragd/ferretdb-v1.24.2/ferretdb); without one the tests fail
 * with a message saying how to get it.
 *
 * Each test directory maps to its own database (named after the
 * directory), so a test that reopens its store finds its data again and
 * tests never see each other's.
 */
#ifndef RAGD_TESTS_STORE_TEST_BACKEND_H
#define RAGD_TESTS_STORE_TEST_BACKEND_H

#include "core/rag_error.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#ifdef RAGD_TEST_STORE_MONGO
#include "store/store_mongo.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_FERRETDB_VERSION "v1.24.2" /* scripts/ferretdb.sh builds this one */

extern char **environ;

static pid_t ferret_pid;
static char ferret_dir[64];
static char mongo_uri[128];

static void ferret_stop(void)
{
	char cmd[128];
	int status;

	if (ferret_pid > 0) {
		kill(ferret_pid, SIGTERM);
		waitpid(ferret_pid, &status, 0);
		ferret_pid = 0;
	}
	if (ferret_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ferret_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", ferret_dir);
	}
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* The server's URI, starting FerretDB on first use; NULL when there is none to start. */
static inline const char *test_mongo_uri(void)
{
	const char *env = getenv("RAGD_TEST_MONGODB_URI");
	char bin[512], url[96], listen[48], state[80];
	struct stat sb;
	int port;

	if (env && *env)
		return env;
	if (mongo_uri[0])
		return mongo_uri;
	if (getenv("RAGD_FERRETDB"))
		snprintf(bin, sizeof(bin), "%s", getenv("RAGD_FERRETDB"));
	else
		snprintf(bin, sizeof(bin), "%s/.cache/ragd/ferretdb-" TEST_FERRETDB_VERSION
			 "/ferretdb", getenv("HOME") ? getenv("HOME") : "/root");
	if (stat(bin, &sb) != 0)
		return NULL;
	snprintf(ferret_dir, sizeof(ferret_dir), "/tmp/ragd-ferretdb-XXXXXX");
	if (!mkdtemp(ferret_dir))
		return NULL;
	port = free_port();
	snprintf(url, sizeof(url), "--sqlite-url=file:%s/", ferret_dir);
	snprintf(listen, sizeof(listen), "--listen-addr=127.0.0.1:%d", port);
	snprintf(state, sizeof(state), "--state-dir=%s", ferret_dir);
	{
		char *argv[] = { bin, "--handler=sqlite", url, listen, state, "--debug-addr=-",
				 "--telemetry=disable", "--log-level=error", NULL };

		if (posix_spawn(&ferret_pid, bin, NULL, NULL, argv, environ) != 0)
			return NULL;
	}
	atexit(ferret_stop);
	for (int i = 0; i < 400 && !port_open(port); i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	snprintf(mongo_uri, sizeof(mongo_uri), "mongodb://127.0.0.1:%d/", port);
	return mongo_uri;
}
#endif

/*
 * Opens the store under test for dir (o may be NULL; MongoDB ignores it).
 * NULL with err set when it cannot: with MongoDB, RAG_EUNSUPPORTED when no
 * server could be had.
 */
static inline struct store *test_store_open(const char *dir, const struct store_options *o,
				     struct rag_err *err)
{
#ifdef RAGD_TEST_STORE_MONGO
	struct store_mongo_options mo = store_mongo_default_options();
	const char *base = strrchr(dir, '/');
	char db[64];
	size_t n = 0;

	(void)o;
	mo.uri = test_mongo_uri();
	if (!mo.uri) {
		rag_err_set(err, RAG_EUNSUPPORTED, NULL,
			    "no MongoDB: set RAGD_TEST_MONGODB_URI or run scripts/ferretdb.sh");
		return NULL;
	}
	/* Database names allow letters, digits, '_' and '-': keep those of dir's name. */
	for (const char *p = base ? base + 1 : dir; *p && n < sizeof(db) - 1; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
			db[n++] = *p;
	db[n] = '\0';
	mo.database = db;
	mo.write_majority = 1;
	return store_mongo_open(&mo, err);
#else
	return store_sqlite_open(dir, o, err);
#endif
}

#endif
