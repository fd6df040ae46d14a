/*
 * Unit tests for the worker supervisor (src/cli/cli_workers.c) with real
 * processes: the restart back-off, a crashed worker restarted while the
 * other keeps running, SIGTERM forwarded and the exit status, a worker
 * failing at its first start stopping them all, and the shared nudge
 * between workers. The supervisor runs in a child of the test (it blocks
 * until signalled); workers report what they do on a pipe.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

enum mode { CRASH_ONCE, FAIL_AT_START, NUDGE };

struct test_ctx {
	enum mode mode;
	int report; /* pipe: workers write "index generation event\n" */
};

static void say(struct test_ctx *t, int index, int generation, const char *event)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%d %d %s\n", index, generation, event);

	if (write(t->report, line, (size_t)n) != n)
		_exit(99);
}

static atomic_int nudged;

static void on_notice(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&nudged, 1);
}

static int worker(void *ctx, int index, int generation)
{
	struct test_ctx *t = ctx;
	sigset_t term;
	int sig;

	if (t->mode == FAIL_AT_START && index == 1)
		return 3;
	if (t->mode == CRASH_ONCE && index == 0 && generation == 1) {
		say(t, index, generation, "crashing");
		raise(SIGKILL);
	}
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	if (t->mode == NUDGE) {
		atomic_init(&nudged, 0);
		assert_int_equal(cli_workers_watch_start(on_notice, NULL), 0);
		say(t, index, generation, "watching");
		if (index == 0) {
			usleep(300 * 1000); /* the sibling is watching by then */
			cli_workers_notify();
		}
		for (int i = 0; i < 2000 && atomic_load(&nudged) == 0; i++)
			usleep(1000);
		say(t, index, generation, atomic_load(&nudged) > 0 ? "nudged" : "not-nudged");
		cli_workers_watch_stop();
	} else {
		say(t, index, generation, "serving");
	}
	sigwait(&term, &sig);
	return 0;
}

/* Starts the supervisor with 2 workers in a child; returns its pid. */
static pid_t supervise(struct test_ctx *t, int fds[2])
{
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	t->report = fds[1];
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cli_workers_options o = { .n_workers = 2, .shutdown_timeout_s = 5 };

		close(fds[0]);
		exit(cli_workers_run(&o, worker, t));
	}
	close(fds[1]);
	return pid;
}

/* Reads report lines until `want` has been seen (or 20 s); all lines read go to log. */
static int read_until(int fd, const char *want, char *log, size_t size)
{
	size_t len = strlen(log);
	time_t end = time(NULL) + 20;

	while (!strstr(log, want) && time(NULL) < end && len + 1 < size) {
		ssize_t n = read(fd, log + len, size - len - 1);

		if (n <= 0)
			break;
		len += (size_t)n;
		log[len] = '\0';
	}
	return strstr(log, want) != NULL;
}

static int exit_status(pid_t pid)
{
	int status = 0;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(cli_workers_backoff_ms(0, 50), 100);
	assert_int_equal(cli_workers_backoff_ms(100, 50), 200);
	assert_int_equal(cli_workers_backoff_ms(8000, 50), 10000);
	assert_int_equal(cli_workers_backoff_ms(10000, 9999), 10000);
	assert_int_equal(cli_workers_backoff_ms(10000, 10000), 0); /* it had run long enough */
}

static void test_crash_restart_and_stop(void **state)
{
	struct test_ctx t = { .mode = CRASH_ONCE };
	char log[4096] = "";
	int fds[2];
	pid_t sup;

	(void)state;
	sup = supervise(&t, fds);
	assert_true(read_until(fds[0], "0 1 crashing", log, sizeof(log)));
	assert_true(read_until(fds[0], "0 2 serving", log, sizeof(log)));
	assert_true(read_until(fds[0], "1 1 serving", log, sizeof(log)));
	assert_null(strstr(log, "1 2 ")); /* the other worker was left alone */
	kill(sup, SIGTERM);
	assert_int_equal(exit_status(sup), 0); /* the crash before the stop is not a failure */
	close(fds[0]);
}

static void test_fail_at_first_start(void **state)
{
	struct test_ctx t = { .mode = FAIL_AT_START };
	time_t t0 = time(NULL);
	int fds[2];
	pid_t sup;

	(void)state;
	sup = supervise(&t, fds);
	assert_int_equal(exit_status(sup), 1);
	assert_true(time(NULL) - t0 < 15);
	close(fds[0]);
}

static void test_nudge_between_workers(void **state)
{
	struct test_ctx t = { .mode = NUDGE };
	char log[4096] = "";
	int fds[2];
	pid_t sup;

	(void)state;
	sup = supervise(&t, fds);
	assert_true(read_until(fds[0], "0 1 nudged", log, sizeof(log)));
	assert_true(read_until(fds[0], "1 1 nudged", log, sizeof(log)));
	assert_null(strstr(log, "not-nudged"));
	kill(sup, SIGTERM);
	assert_int_equal(exit_status(sup), 0);
	close(fds[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_crash_restart_and_stop),
		cmocka_unit_test(test_fail_at_first_start),
		cmocka_unit_test(test_nudge_between_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
