/*
 * `server.workers: N`: a supervisor process forks N workers, each a whole
 * `ragd serve` (own listening socket on the same port with SO_REUSEPORT,
 * own thread pool, own indexes and models), and keeps them running.
 *
 * Why processes and SO_REUSEPORT rather than threads or one shared
 * listening socket: a worker that crashes (a model abort, a parser bug)
 * takes only its own connections down, and the kernel spreads new
 * connections over the workers' accept queues by hash, so no worker's
 * queue starves while another's overflows. The price is N copies of the
 * indexes and models, and that a write made by one worker reaches the
 * others through the store's change log, like separate instances: each
 * worker's follower polls the log, and a write nudges the others at once
 * through a futex word in memory shared by all of them (mapped before the
 * first fork, so restarted workers inherit it), see cli_workers_notify.
 *
 * Supervision: signals are blocked in the supervisor and taken with
 * sigtimedwait. A worker that exits while the supervisor is not stopping
 * is restarted: at once if it had run for CLI_WORKER_STABLE_MS, else after
 * a back-off that doubles from CLI_WORKER_BACKOFF_MIN_MS to
 * CLI_WORKER_BACKOFF_MAX_MS (a worker that cannot start must not fork in a
 * tight loop). A worker that exits with a failure status at its very
 * first start (a bad model path, a port taken) would fail again: the
 * supervisor then stops the others and exits 1, as a single server would.
 * SIGTERM and SIGINT are forwarded as SIGTERM (each worker
 * drains as a single server does), and workers still alive after
 * shutdown_timeout_s plus CLI_WORKER_GRACE_MS are killed. SIGHUP reopens
 * the supervisor's log and is forwarded. Workers ask the kernel for
 * SIGTERM should the supervisor die (PR_SET_PDEATHSIG), so none is
 * orphaned.
 *
 * State is per process (static): there is one supervisor per process, and
 * in a worker the shared word and its watcher thread are its own.
 */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#include "core/banned.h"

#define CLI_WORKER_STABLE_MS 10000     /* a worker that ran this long restarts at once */
#define CLI_WORKER_BACKOFF_MIN_MS 100  /* first delay for a worker that died young */
#define CLI_WORKER_BACKOFF_MAX_MS 10000 /* a worker that cannot start costs a fork per 10 s */
#define CLI_WORKER_GRACE_MS 10000      /* beyond shutdown_timeout_s: snapshots being saved */
#define CLI_WORKER_WATCH_MS 200        /* how soon the watcher notices it must stop */
#define CLI_WORKERS_MAX 256

/* Shared by the supervisor and every worker (MAP_SHARED, mapped before the forks). */
struct shared {
	_Atomic uint32_t changes; /* bumped by each write; a futex word */
};

static struct shared *shared;

struct slot {
	pid_t pid;          /* 0 while not running */
	int generation;     /* starts so far */
	int backoff_ms;     /* the next restart's delay if it dies young */
	int64_t started_ms;
	int64_t restart_at_ms; /* > 0: due to be started then */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_workers_backoff_ms(int prev_ms, long long lived_ms)
{
	if (lived_ms >= CLI_WORKER_STABLE_MS)
		return 0;
	if (prev_ms < CLI_WORKER_BACKOFF_MIN_MS)
		return CLI_WORKER_BACKOFF_MIN_MS;
	return prev_ms * 2 > CLI_WORKER_BACKOFF_MAX_MS ? CLI_WORKER_BACKOFF_MAX_MS : prev_ms * 2;
}

static void spawn(struct slot *s, int index, const sigset_t *old_mask,
		  int (*worker)(void *ctx, int index, int generation), void *ctx)
{
	pid_t parent = getpid();
	pid_t pid;

	s->generation++;
	fflush(NULL); /* or buffered output would be written by both */
	pid = fork();
	if (pid < 0) {
		log_error("worker %d: fork failed: %s", index, strerror(errno));
		s->restart_at_ms = mono_ms() + CLI_WORKER_BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		sigset_t mask = *old_mask;

		/* Stop signals stay blocked for the worker to sigwait: none is lost at start. */
		sigaddset(&mask, SIGTERM);
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGHUP);
		sigprocmask(SIG_SETMASK, &mask, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1); /* the supervisor died before prctl took effect */
		log_set_process(index);
		exit(worker(ctx, index, s->generation));
	}
	s->pid = pid;
	s->started_ms = mono_ms();
	s->restart_at_ms = 0;
	log_info("worker %d started (pid %ld, start %d)", index, (long)pid, s->generation);
}

/*
 * Worker i has exited with status: logs it, and unless stopping schedules
 * its restart. *failed: 1 for a worker that failed while stopping, 2 for
 * one that failed at its very first start (a bad model, a port taken:
 * it would fail again).
 */
static void exited(struct slot *s, int i, int status, int stopping, int *failed)
{
	int64_t lived = mono_ms() - s->started_ms;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

	if (WIFSIGNALED(status))
		log_warn("worker %d (pid %ld) killed by signal %d after %lld ms", i, (long)s->pid,
			 WTERMSIG(status), (long long)lived);
	else if (code != 0 || !stopping)
		log_warn("worker %d (pid %ld) exited with status %d after %lld ms", i,
			 (long)s->pid, code, (long long)lived);
	s->pid = 0;
	if (stopping) {
		if (code != 0)
			*failed = 1; /* a crash before the stop was dealt with by restarting */
		return;
	}
	if (s->generation == 1 && code > 0) {
		*failed = 2;
		return;
	}
	s->backoff_ms = cli_workers_backoff_ms(s->backoff_ms, lived);
	s->restart_at_ms = mono_ms() + s->backoff_ms;
	if (s->backoff_ms > 0)
		log_warn("worker %d restarts in %d ms", i, s->backoff_ms);
}

/* Reaps exited workers. Returns how many are alive. */
static int reap(struct slot *slots, int n, int stopping, int *failed)
{
	int status, alive = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < n; i++)
			if (slots[i].pid == pid)
				exited(&slots[i], i, status, stopping, failed);
	for (int i = 0; i < n; i++)
		alive += slots[i].pid > 0;
	return alive;
}

static void signal_all(struct slot *slots, int n, int sig)
{
	for (int i = 0; i < n; i++)
		if (slots[i].pid > 0)
			kill(slots[i].pid, sig);
}

int cli_workers_run(const struct cli_workers_options *o,
		    int (*worker)(void *ctx, int index, int generation), void *ctx)
{
	struct slot slots[CLI_WORKERS_MAX] = { 0 };
	int n = o->n_workers > CLI_WORKERS_MAX ? CLI_WORKERS_MAX : o->n_workers;
	int stopping = 0, failed = 0;
	int64_t kill_at = 0;
	sigset_t set, old;

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED) {
		shared = NULL;
		log_error("workers: cannot map shared memory: %s", strerror(errno));
		return 1;
	}
	atomic_init(&shared->changes, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	log_info("supervisor (pid %ld): %d workers", (long)getpid(), n);
	for (int i = 0; i < n; i++)
		spawn(&slots[i], i, &old, worker, ctx);
	for (;;) {
		int64_t now = mono_ms(), wait_ms = 1000;
		struct timespec ts;
		int sig;

		for (int i = 0; i < n && !stopping; i++) {
			if (slots[i].pid == 0 && slots[i].restart_at_ms > 0 &&
			    slots[i].restart_at_ms <= now)
				spawn(&slots[i], i, &old, worker, ctx);
			if (slots[i].pid == 0 && slots[i].restart_at_ms > now &&
			    slots[i].restart_at_ms - now < wait_ms)
				wait_ms = slots[i].restart_at_ms - now;
		}
		ts.tv_sec = wait_ms / 1000;
		ts.tv_nsec = (wait_ms % 1000) * 1000000L;
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGHUP) {
			if (o->on_hup)
				o->on_hup(ctx);
			signal_all(slots, n, SIGHUP);
		} else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = 1;
			kill_at = mono_ms() + (int64_t)o->shutdown_timeout_s * 1000 +
				  CLI_WORKER_GRACE_MS;
			log_info("signal %d: stopping %d workers", sig, n);
			signal_all(slots, n, SIGTERM);
		}
		if (reap(slots, n, stopping, &failed) == 0 && stopping)
			break;
		if (failed == 2 && !stopping) {
			log_error("a worker failed at its first start: stopping the others");
			stopping = 1;
			kill_at = mono_ms() + (int64_t)o->shutdown_timeout_s * 1000 +
				  CLI_WORKER_GRACE_MS;
			signal_all(slots, n, SIGTERM);
			if (reap(slots, n, stopping, &failed) == 0)
				break;
		}
		if (stopping && mono_ms() > kill_at) {
			log_warn("workers still running past the shutdown deadline: killing them");
			signal_all(slots, n, SIGKILL);
			failed = 1;
			kill_at = mono_ms() + 1000 * 3600;
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return failed ? 1 : 0;
}

/* --- nudges between workers --- */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, 0);
}

void cli_workers_notify(void)
{
	if (!shared)
		return;
	atomic_fetch_add(&shared->changes, 1);
	futex(&shared->changes, FUTEX_WAKE, INT_MAX, NULL);
}

static struct {
	pthread_t thread;
	int running;
	atomic_int stop;
	void (*on_notice)(void *ctx);
	void *ctx;
} watch;

static void *watch_main(void *arg)
{
	uint32_t seen = atomic_load(&shared->changes);

	(void)arg;
	while (!atomic_load(&watch.stop)) {
		struct timespec ts = { 0, CLI_WORKER_WATCH_MS * 1000000L };
		uint32_t now;

		futex(&shared->changes, FUTEX_WAIT, seen, &ts);
		now = atomic_load(&shared->changes);
		if (now != seen) {
			seen = now;
			watch.on_notice(watch.ctx);
		}
	}
	return NULL;
}

int cli_workers_watch_start(void (*on_notice)(void *ctx), void *ctx)
{
	if (!shared || watch.running)
		return 0;
	watch.on_notice = on_notice;
	watch.ctx = ctx;
	atomic_init(&watch.stop, 0);
	if (pthread_create(&watch.thread, NULL, watch_main, NULL) != 0)
		return -1;
	watch.running = 1;
	return 0;
}

void cli_workers_watch_stop(void)
{
	if (!watch.running)
		return;
	atomic_store(&watch.stop, 1);
	pthread_join(watch.thread, NULL);
	watch.running = 0;
}
