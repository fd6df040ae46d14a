/*
 * Unit tests for obs/metrics and obs/process: exact sums of sharded
 * counters under threads, gauges, histogram buckets, label escaping,
 * registration rules, child removal, collectors, number formatting, the
 * process sampler, and the whole exposition checked by `promtool check
 * metrics` when promtool is installed.
 *
 * Every test starts and ends with an empty registry (metrics_shutdown).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/rag_error.h"
#include "core/sbuf.h"
#include "obs/metrics.h"
#include "obs/process.h"

#define N_THREADS 4
#define N_INCS 100000
#define N_MANY_THREADS 40 /* more than the shards: threads share shards */

static int reset(void **state)
{
	(void)state;
	metrics_process_stop();
	metrics_shutdown();
	return 0;
}

/* The rendered exposition; caller frees. */
static char *render(void)
{
	struct sbuf out = SBUF_INIT;

	assert_int_equal(metrics_render(&out), 0);
	assert_int_equal(sbuf_check(&out), 0);
	return sbuf_detach(&out, NULL);
}

/* The line starting with `series ` in text, or NULL. */
static const char *find_line(const char *text, const char *series)
{
	size_t len = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, len) == 0 && p[len] == ' ')
			return p;
	return NULL;
}

/* The value of the sample named series (name plus labels, exactly as rendered). */
static double sample(const char *text, const char *series)
{
	const char *p = find_line(text, series);

	if (!p)
		fail_msg("no sample '%s' in:\n%s", series, text);
	return strtod(p + strlen(series) + 1, NULL);
}

struct worker {
	struct metric_child *counter;
	struct metric_child *hist;
	int n;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->n; i++) {
		metric_inc(w->counter);
		metric_observe(w->hist, (double)(i % 4));
	}
	return NULL;
}

static void run_threads(int n_threads, int n, struct metric_child *counter,
			struct metric_child *hist)
{
	pthread_t t[N_MANY_THREADS];
	struct worker w = { counter, hist, n };

	for (int i = 0; i < n_threads; i++)
		assert_int_equal(pthread_create(&t[i], NULL, work, &w), 0);
	for (int i = 0; i < n_threads; i++)
		pthread_join(t[i], NULL);
}

static void test_counter_threads(void **state)
{
	static const double b[] = { 0, 1, 2 };
	struct metric *m = metrics_counter("ops_total", "Operations", NULL);
	struct metric *h = metrics_histogram("op_value", "Values", NULL, b, 3);
	struct metric_child *c = metric_default(m), *hc = metric_default(h);
	char *text;

	(void)state;
	assert_non_null(c);
	run_threads(N_THREADS, N_INCS, c, hc);
	assert_true(metric_value(c) == N_THREADS * N_INCS);
	assert_true(metric_value(hc) == N_THREADS * N_INCS);
	assert_true(metric_sum(hc) == N_THREADS * (N_INCS / 4) * 6.0);
	text = render();
	assert_true(sample(text, "ops_total") == 400000);
	assert_non_null(strstr(text, "\nops_total 400000\n"));
	assert_true(sample(text, "op_value_bucket{le=\"0\"}") == N_THREADS * N_INCS / 4);
	assert_true(sample(text, "op_value_bucket{le=\"+Inf\"}") == N_THREADS * N_INCS);
	free(text);

	run_threads(N_MANY_THREADS, 10000, c, hc);
	assert_true(metric_value(c) == N_THREADS * N_INCS + N_MANY_THREADS * 10000);

	metric_add(c, 2.5);
	metric_add(c, 3);
	metric_add(c, -1);  /* counters never go down: ignored */
	metric_add(c, NAN); /* ignored */
	metric_set(c, 7);   /* not a gauge: ignored */
	assert_true(metric_value(c) == N_THREADS * N_INCS + N_MANY_THREADS * 10000 + 5.5);
}

static void test_gauge(void **state)
{
	struct metric *g = metrics_gauge("queue_depth", "Queued jobs", NULL);
	struct metric_child *c = metric_default(g);
	char *text;

	(void)state;
	assert_true(metric_value(c) == 0);
	metric_set(c, 5);
	metric_add(c, 2.5);
	metric_inc(c);
	metric_add(c, -1);
	assert_true(metric_value(c) == 7.5);
	metric_set(c, 0.1);
	assert_true(metric_value(c) == 0.1); /* exact: a set is a store */
	text = render();
	assert_non_null(strstr(text, "# HELP queue_depth Queued jobs\n"
				     "# TYPE queue_depth gauge\n"
				     "queue_depth 0.1\n"));
	free(text);
	metric_set(c, -3);
	metric_observe(c, 1); /* not a histogram: ignored */
	assert_true(metric_value(c) == -3);

	/* Every update accepts NULL. */
	metric_inc(NULL);
	metric_add(NULL, 1);
	metric_set(NULL, 1);
	metric_observe(NULL, 1);
	assert_true(isnan(metric_value(NULL)));
}

static void test_histogram(void **state)
{
	static const double b[] = { 1, 2.5, 5 };
	static const char *const labels[] = { "op", NULL };
	static const char *const get[] = { "get" };
	struct metric *h = metrics_histogram("lat_ms", "Latency", labels, b, 3);
	struct metric_child *c = metric_child(h, get);
	const double obs[] = { 0.5, 1, 2, 3, 10 };
	char *text;

	(void)state;
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		metric_observe(c, obs[i]);
	text = render();
	assert_non_null(strstr(text, "# HELP lat_ms Latency\n"
				     "# TYPE lat_ms histogram\n"
				     "lat_ms_bucket{op=\"get\",le=\"1\"} 2\n"
				     "lat_ms_bucket{op=\"get\",le=\"2.5\"} 3\n"
				     "lat_ms_bucket{op=\"get\",le=\"5\"} 4\n"
				     "lat_ms_bucket{op=\"get\",le=\"+Inf\"} 5\n"
				     "lat_ms_sum{op=\"get\"} 16.5\n"
				     "lat_ms_count{op=\"get\"} 5\n"));
	free(text);
	assert_true(metric_value(c) == 5);
	assert_true(metric_sum(c) == 16.5);

	/* A histogram with many buckets takes the binary search. */
	{
		double many[40];
		struct metric_child *d;

		for (int i = 0; i < 40; i++)
			many[i] = i + 1;
		d = metric_default(metrics_histogram("big", "Big", NULL, many, 40));
		for (int v = 0; v <= 41; v++)
			metric_observe(d, v);
		text = render();
		assert_true(sample(text, "big_bucket{le=\"1\"}") == 2);   /* 0 and 1 */
		assert_true(sample(text, "big_bucket{le=\"20\"}") == 21);
		assert_true(sample(text, "big_bucket{le=\"40\"}") == 41);
		assert_true(sample(text, "big_bucket{le=\"+Inf\"}") == 42);
		assert_true(sample(text, "big_count") == 42);
		free(text);
	}

	/* The shared millisecond buckets. */
	assert_int_equal(METRICS_MS_N_BUCKETS, 13);
	assert_true(METRICS_MS_BUCKETS[0] == 1 && METRICS_MS_BUCKETS[12] == 10000);
	assert_non_null(metrics_histogram("ms", "ms", NULL, METRICS_MS_BUCKETS,
					  METRICS_MS_N_BUCKETS));
}

static void test_escaping(void **state)
{
	static const char *const labels[] = { "path", "k", NULL };
	static const char *const vals[] = { "a\"b\\c\nd", "" };
	struct metric *m = metrics_counter("esc_total", "Help with \\ and\nnewline and \"quotes\"",
					   labels);
	char *text;

	(void)state;
	metric_inc(metric_child(m, vals));
	text = render();
	assert_non_null(strstr(text, "# HELP esc_total Help with \\\\ and\\nnewline and "
				     "\"quotes\"\n"));
	assert_non_null(strstr(text, "\nesc_total{path=\"a\\\"b\\\\c\\nd\",k=\"\"} 1\n"));
	free(text);
}

static void test_empty_family(void **state)
{
	static const char *const labels[] = { "collection", NULL };
	char *text;

	(void)state;
	assert_non_null(metrics_gauge("docs", "Documents per collection", labels));
	assert_non_null(metrics_counter("plain_total", "No labels", NULL));
	text = render();
	assert_string_equal(text, "# HELP docs Documents per collection\n"
				  "# TYPE docs gauge\n"
				  "# HELP plain_total No labels\n"
				  "# TYPE plain_total counter\n"
				  "plain_total 0\n");
	free(text);
}

static void test_registration(void **state)
{
	static const char *const ab[] = { "a", "b", NULL };
	static const char *const ba[] = { "b", "a", NULL };
	static const char *const dup[] = { "a", "a", NULL };
	static const char *const le[] = { "le", NULL };
	static const char *const under[] = { "__x", NULL };
	static const char *const five[] = { "a", "b", "c", "d", "e", NULL };
	static const double b1[] = { 1, 2 }, b2[] = { 1, 3 }, bad[] = { 2, 1 };
	static const double inf[] = { 1, 2, INFINITY };
	struct metric *m = metrics_counter("reqs_total", "Requests", ab);

	(void)state;
	assert_non_null(m);
	assert_ptr_equal(metrics_counter("reqs_total", "Other help", ab), m);
	assert_null(metrics_gauge("reqs_total", "Requests", ab));
	assert_null(metrics_counter("reqs_total", "Requests", ba));
	assert_null(metrics_counter("reqs_total", "Requests", NULL));

	struct metric *h = metrics_histogram("h", "H", NULL, b1, 2);

	assert_non_null(h);
	assert_ptr_equal(metrics_histogram("h", "H", NULL, b1, 2), h);
	assert_ptr_equal(metrics_histogram("h", "H", NULL, inf, 3), h); /* +Inf implied */
	assert_null(metrics_histogram("h", "H", NULL, b2, 2));
	assert_null(metrics_histogram("h", "H", NULL, b1, 1));

	assert_null(metrics_counter("", "x", NULL));
	assert_null(metrics_counter("1abc", "x", NULL));
	assert_null(metrics_counter("a-b", "x", NULL));
	assert_null(metrics_counter(NULL, "x", NULL));
	assert_non_null(metrics_counter("ns:sub_total", "colons are allowed", NULL));
	assert_null(metrics_counter("x", "x", dup));
	assert_null(metrics_counter("x", "x", under));
	assert_null(metrics_counter("x", "x", five));
	assert_null(metrics_histogram("x", "x", le, b1, 2));
	assert_null(metrics_histogram("x", "x", NULL, bad, 2));
	assert_non_null(metrics_gauge("x", NULL, le)); /* le is only reserved in histograms */

	/* A labelled family has no default child; children are found again. */
	static const char *const v1[] = { "1", "2" };
	static const char *const v1b[] = { "1", "2", NULL };

	assert_null(metric_default(m));
	assert_null(metric_child(m, NULL));
	assert_ptr_equal(metric_child(m, v1), metric_child(m, v1b));
	assert_ptr_equal(metric_default(h), metric_child(h, NULL));
}

static void test_child_remove(void **state)
{
	static const char *const labels[] = { "collection", NULL };
	static const char *const a[] = { "a" };
	static const char *const b[] = { "b" };
	static const char *const c[] = { "c" };
	struct metric *m = metrics_gauge("chunks", "Chunks", labels);
	struct metric_child *ca = metric_child(m, a), *cb = metric_child(m, b);
	char *text;

	(void)state;
	metric_set(ca, 1);
	metric_set(cb, 2);
	metric_set(metric_child(m, c), 3);
	metric_child_remove(m, b);
	metric_child_remove(m, b); /* twice is harmless */
	metric_set(cb, 5);         /* a stale handle is still safe to update */
	text = render();
	assert_non_null(strstr(text, "chunks{collection=\"a\"} 1\n"
				     "chunks{collection=\"c\"} 3\n"));
	assert_null(strstr(text, "collection=\"b\""));
	free(text);

	cb = metric_child(m, b); /* recreated from zero, rendered last */
	assert_true(metric_value(cb) == 0);
	text = render();
	assert_non_null(strstr(text, "chunks{collection=\"c\"} 3\n"
				     "chunks{collection=\"b\"} 0\n"));
	free(text);

	/* The default child of a label-less family can go and come back. */
	struct metric *u = metrics_counter("u_total", "U", NULL);

	metric_inc(metric_default(u));
	metric_child_remove(u, NULL);
	text = render();
	assert_null(find_line(text, "u_total"));
	free(text);
	assert_true(metric_value(metric_default(u)) == 0);
}

static void collect(void *ctx, struct sbuf *out)
{
	int *calls = ctx;

	(*calls)++;
	sbuf_addstr(out, "# HELP extra_items Items from a collector\n"
			 "# TYPE extra_items gauge\n");
	sbuf_addstr(out, "extra_items ");
	metrics_format_value(out, 12);
	sbuf_addch(out, '\n');
}

static void test_collector(void **state)
{
	int calls = 0;
	char *text;

	(void)state;
	assert_non_null(metrics_counter("first_total", "First", NULL));
	assert_int_equal(metrics_add_collector(collect, &calls), 0);
	assert_int_equal(metrics_add_collector(collect, &calls), RAG_ECONFLICT);
	assert_int_equal(metrics_add_collector(NULL, NULL), RAG_EINVAL);
	text = render();
	assert_int_equal(calls, 1);
	/* Collectors come after the families. */
	assert_true(strstr(text, "extra_items 12\n") > strstr(text, "first_total 0\n"));
	free(text);
	metrics_remove_collector(collect, &calls);
	text = render();
	assert_int_equal(calls, 1);
	assert_null(strstr(text, "extra_items"));
	free(text);
}

static void test_format(void **state)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
		{ 42, "42" },
		{ -7, "-7" },
		{ 0, "0" },
		{ -0.0, "0" },
		{ 0.1, "0.1" },
		{ 2.5, "2.5" },
		{ 1e300, "1e+300" },
		{ 1e17, "1e+17" },
		{ 0.30000000000000004, "0.30000000000000004" },
		{ 9007199254740991.0, "9007199254740991" },
		{ 1.0 / 3, "0.3333333333333333" },
		{ NAN, "NaN" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sbuf sb = SBUF_INIT;

		metrics_format_value(&sb, cases[i].v);
		assert_string_equal(sb.buf, cases[i].s);
		if (!isnan(cases[i].v))
			assert_true(strtod(sb.buf, NULL) == cases[i].v);
		sbuf_release(&sb);
	}
}

static void busy_ms(int ms)
{
	struct timespec t0, t;
	volatile double x = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 10000; i++)
			x += i;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

static void test_process(void **state)
{
	struct metric_child *mem, *cpu;
	struct timespec t0, t1;
	char *text;

	(void)state;
	metrics_process_sample_now();
	mem = metric_default(metrics_gauge("memory_usage_bytes", "", NULL));
	cpu = metric_default(metrics_gauge("cpu_usage_percentage", "", NULL));
	assert_true(metric_value(mem) > 0);
	busy_ms(50);
	metrics_process_sample_now();
	/* One busy thread: about 100, with slack for a loaded machine. */
	assert_true(metric_value(cpu) > 10);
	assert_true(metric_value(cpu) < 150 * 16);

	/* The thread samples, and stop wakes it long before its interval. */
	assert_int_equal(metrics_process_start(10), 0);
	assert_int_equal(metrics_process_start(10), RAG_EBUSY);
	metric_set(mem, 0);
	for (int i = 0; i < 200 && metric_value(mem) == 0; i++)
		busy_ms(5);
	assert_true(metric_value(mem) > 0);
	metrics_process_stop();
	metrics_process_stop();
	assert_int_equal(metrics_process_start(60000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	metrics_process_stop();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	text = render();
	assert_non_null(strstr(text, "# TYPE cpu_usage_percentage gauge\n"));
	assert_non_null(strstr(text, "# TYPE memory_usage_bytes gauge\n"));
	free(text);
}

#define PROMTOOL_LINT_ONLY 3 /* promtool's lintErrExitCode */

/* Runs cmd with text on its stdin; returns its exit status, or -1. */
static int pipe_to(const char *cmd, const char *text)
{
	FILE *p = popen(cmd, "w");
	int status;

	if (!p)
		return -1;
	fputs(text, p);
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_promtool(void **state)
{
	static const char *const labels[] = { "collection", "op", NULL };
	static const char *const v1[] = { "docs \"main\"", "get\\put\nx" };
	static const char *const v2[] = { "other", "" };
	static const char *const empty[] = { "collection", NULL };
	struct metric *c, *g, *h;
	char *text;
	int status, calls = 0;

	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0)
		skip();
	c = metrics_counter("ragd_ops_total", "Operations, with \\ and\nnewline", labels);
	g = metrics_gauge("ragd_temp", "Odd values", labels);
	h = metrics_histogram("ragd_lat_ms", "Latency in ms", labels, METRICS_MS_BUCKETS,
			      METRICS_MS_N_BUCKETS);
	metrics_histogram("ragd_plain_ms", "No labels", NULL, METRICS_MS_BUCKETS,
			  METRICS_MS_N_BUCKETS);
	metrics_gauge("ragd_empty", "No children yet", empty);
	metric_add(metric_child(c, v1), 3.25);
	metric_inc(metric_child(c, v2));
	metric_set(metric_child(g, v1), NAN);
	metric_set(metric_child(g, v2), -INFINITY);
	for (int i = 0; i < 100; i++)
		metric_observe(metric_child(h, v1), i * 1.7);
	metrics_process_sample_now();
	assert_int_equal(metrics_add_collector(collect, &calls), 0);
	text = render();

	/*
	 * promtool exits 1 on a parse error and 3 on lint findings alone (naming
	 * advice such as "_ms" being an abbreviated unit), which are not ours to
	 * judge here; its output is shown only when it fails.
	 */
	status = pipe_to("promtool check metrics >/dev/null 2>&1", text);
	if (status != 0 && status != PROMTOOL_LINT_ONLY) {
		pipe_to("promtool check metrics", text);
		fail_msg("promtool check metrics exited %d on:\n%s", status, text);
	}
	/* And the check does catch a malformed exposition. */
	assert_int_equal(pipe_to("promtool check metrics >/dev/null 2>&1", "x{a=\"b} 1\n"), 1);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter_threads, reset, reset),
		cmocka_unit_test_setup_teardown(test_gauge, reset, reset),
		cmocka_unit_test_setup_teardown(test_histogram, reset, reset),
		cmocka_unit_test_setup_teardown(test_escaping, reset, reset),
		cmocka_unit_test_setup_teardown(test_empty_family, reset, reset),
		cmocka_unit_test_setup_teardown(test_registration, reset, reset),
		cmocka_unit_test_setup_teardown(test_child_remove, reset, reset),
		cmocka_unit_test_setup_teardown(test_collector, reset, reset),
		cmocka_unit_test_setup_teardown(test_format, reset, reset),
		cmocka_unit_test_setup_teardown(test_process, reset, reset),
		cmocka_unit_test_setup_teardown(test_promtool, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
