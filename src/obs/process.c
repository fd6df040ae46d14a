/*
 * Process sampler: CPU usage and resident memory as gauges.
 *
 * CPU time is CLOCK_PROCESS_CPUTIME_ID (user + system of every thread, in
 * nanoseconds; getrusage would do too, /proc/self/stat only counts in 10 ms
 * ticks). Each sample divides the CPU time used since the previous sample
 * by the monotonic wall time elapsed, times 100: a percentage of one core,
 * so several busy cores read above 100, as top(1) shows it. The first
 * sample has no predecessor and measures from process start instead
 * (starttime in /proc/self/stat against CLOCK_BOOTTIME).
 *
 * RSS is the second field of /proc/self/statm (pages) times the page size;
 * when the file cannot be read the gauge keeps its last value.
 *
 * The thread sleeps on a condition variable bound to CLOCK_MONOTONIC with a
 * timeout of one interval, so metrics_process_stop wakes it at once and a
 * wall-clock jump neither stalls nor hurries it. Gauges are looked up by
 * name on each sample (registration returns the existing family) rather
 * than cached, so a metrics_shutdown between tests leaves no stale handle.
 *
 * Locking: lock guards running, stopping, prev_* and the thread handle;
 * samples are taken under it too, so two concurrent samples cannot both
 * measure against the same predecessor.
 */
#include "obs/process.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rag_error.h"
#include "obs/metrics.h"
#include "core/banned.h"

#define CPU_NAME "cpu_usage_percentage"
#define CPU_HELP "Process CPU time over the last sampling interval, in percent of one core " \
		 "(two busy cores read 200)"
#define MEM_NAME "memory_usage_bytes"
#define MEM_HELP "Process resident set size in bytes"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static pthread_t thread;
static bool running, stopping;
static int interval_ms;
static bool have_prev;
static double prev_cpu, prev_wall;

static void init_wake(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &attr);
	pthread_condattr_destroy(&attr);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads a small /proc file into buf, NUL-terminated; false on failure. */
static bool read_proc(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n > 0;
}

/* Seconds since the process started, or 0 when /proc does not say. */
static double process_age_s(void)
{
	char buf[1024];
	unsigned long long start = 0;
	const char *p;
	long hz = sysconf(_SC_CLK_TCK);

	if (hz <= 0 || !read_proc("/proc/self/stat", buf, sizeof(buf)))
		return 0;
	/* comm may hold spaces and ')': fields restart after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ')' come fields 3..: starttime is field 22, the 20th of them. */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			  "%*d %*d %llu", &start) != 1)
		return 0;
	return clock_s(CLOCK_BOOTTIME) - (double)start / (double)hz;
}

static double rss_bytes(void)
{
	char buf[256];
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0 || !read_proc("/proc/self/statm", buf, sizeof(buf)) ||
	    sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -1;
	return (double)resident * (double)page;
}

/* Takes a sample; lock held. Returns 0 or RAG_ENOMEM. */
static int sample_locked(void)
{
	struct metric *cpu = metrics_gauge(CPU_NAME, CPU_HELP, NULL);
	struct metric *mem = metrics_gauge(MEM_NAME, MEM_HELP, NULL);
	double now_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	double now_wall = clock_s(CLOCK_MONOTONIC);
	double dwall, rss;

	if (!cpu || !mem)
		return RAG_ENOMEM;
	if (have_prev) {
		dwall = now_wall - prev_wall;
		if (dwall > 0)
			metric_set(metric_default(cpu), 100.0 * (now_cpu - prev_cpu) / dwall);
	} else {
		dwall = process_age_s();
		if (dwall > 0)
			metric_set(metric_default(cpu), 100.0 * now_cpu / dwall);
	}
	prev_cpu = now_cpu;
	prev_wall = now_wall;
	have_prev = true;
	rss = rss_bytes();
	if (rss >= 0)
		metric_set(metric_default(mem), rss);
	return 0;
}

void metrics_process_sample_now(void)
{
	pthread_mutex_lock(&lock);
	sample_locked();
	pthread_mutex_unlock(&lock);
}

static void *sampler(void *arg)
{
	struct timespec deadline;

	(void)arg;
	pthread_mutex_lock(&lock);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	while (!stopping) {
		deadline.tv_sec += interval_ms / 1000;
		deadline.tv_nsec += (long)(interval_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		/* Sleep to the deadline; spurious wake-ups go back to sleep. */
		while (!stopping && pthread_cond_timedwait(&wake, &lock, &deadline) == 0)
			;
		if (!stopping)
			sample_locked();
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int metrics_process_start(int ms)
{
	int rc = 0;

	pthread_once(&wake_once, init_wake);
	pthread_mutex_lock(&lock);
	if (running) {
		rc = RAG_EBUSY;
		goto out;
	}
	rc = sample_locked();
	if (rc < 0)
		goto out;
	interval_ms = ms > 0 ? ms : METRICS_PROCESS_INTERVAL_MS;
	stopping = false;
	if (pthread_create(&thread, NULL, sampler, NULL) != 0) {
		rc = RAG_EINTERNAL;
		goto out;
	}
	running = true;
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

void metrics_process_stop(void)
{
	pthread_t t;

	pthread_once(&wake_once, init_wake);
	pthread_mutex_lock(&lock);
	/* running stays set until joined, so a racing start cannot reset stopping
	 * under the old thread's feet; a racing stop leaves the join to the first. */
	if (!running || stopping) {
		pthread_mutex_unlock(&lock);
		return;
	}
	stopping = true;
	t = thread;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	pthread_mutex_lock(&lock);
	running = false;
	pthread_mutex_unlock(&lock);
}
