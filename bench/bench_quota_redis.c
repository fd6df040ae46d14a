/*
 * The cost of a cluster-wide quota decision (auth.quota_redis_url) next to
 * the in-process one: auth_admit for one request through the token bucket,
 * in one process, against a redis-server on loopback; then the same from
 * two threads at once, an ingest-bytes admit, and a token charge. Each
 * Redis decision is one EVALSHA round trip.
 *
 *   redis-server --port 6399 --save '' --appendonly no &
 *   cmake --build build --target bench_quota_redis &&
 *     ./build/bench_quota_redis redis://127.0.0.1:6399 [N]
 *
 * Prints Markdown rows for bench/RESULTS.md (mean, p50 and p99 per call).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "auth/auth.h"
#include "core/rag_error.h"

static char header[AUTH_TOKEN_MAX + 16];
static long n_calls;

struct run {
	struct auth *a;
	enum auth_quota q;
	double *lat;   /* n_calls latencies in ns */
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *run(void *arg)
{
	struct run *r = arg;
	struct auth_principal p;
	int retry;

	if (auth_verify(r->a, header, &p, NULL) != 0)
		abort();
	for (long i = 0; i < n_calls; i++) {
		double t0 = now_ns();

		if (r->q == AUTH_QUOTA_TOKENS)
			auth_charge_tokens(r->a, &p, 1);
		else if (auth_admit(r->a, &p, r->q, 1, &retry, NULL) != 0)
			abort();
		r->lat[i] = now_ns() - t0;
	}
	return NULL;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void report(const char *what, double *lat, long n, double wall_ns)
{
	double sum = 0;

	for (long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, (size_t)n, sizeof(*lat), cmp);
	printf("| %s | %.2f µs | %.2f µs | %.2f µs | %.2f µs |\n", what, sum / n / 1e3,
	       lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, wall_ns / n / 1e3);
}

static struct auth *open_auth(const char *url)
{
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], spec[200];
	static char keys[400];
	struct auth_options o = { .enabled = true, .key_cache_s = 10,
				  .quota_redis_url = url, .quota_redis_timeout_ms = 1000 };
	struct rag_err err = { 0 };
	struct auth *a;

	if (!header[0]) {
		auth_token_new(token, id, spec, sizeof(spec));
		/* Limits no run reaches: every call is admitted, the work is the same. */
		snprintf(keys, sizeof(keys), "tenant=bench;role=writer;requests_per_s=1000000;"
			 "burst=1000000000;ingest_bytes_per_day=1000000000000;%s", spec);
		snprintf(header, sizeof(header), "Bearer %s", token);
	}
	o.keys = keys;
	a = auth_new(&o, NULL, &err);
	if (!a) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return a;
}

static void measure(const char *what, const char *url, enum auth_quota q, int threads)
{
	struct auth *a = open_auth(url);
	double *lat = calloc((size_t)(n_calls * threads), sizeof(*lat)), t0;
	struct run r[2];
	pthread_t t[2];

	if (!lat)
		abort();
	for (int i = 0; i < threads; i++)
		r[i] = (struct run){ a, q, lat + i * n_calls };
	run(&r[0]); /* warm: connections made, the script loaded */
	t0 = now_ns();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, run, &r[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	report(what, lat, n_calls * threads, now_ns() - t0);
	free(lat);
	auth_free(a);
}

int main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6399";

	n_calls = argc > 2 ? atol(argv[2]) : 20000;
	printf("| decision (%ld calls per thread) | mean | p50 | p99 | wall per call |\n", n_calls);
	printf("| --- | --- | --- | --- | --- |\n");
	measure("request admit, in process, 1 thread", "", AUTH_QUOTA_REQUESTS, 1);
	measure("request admit, Redis, 1 thread", url, AUTH_QUOTA_REQUESTS, 1);
	measure("request admit, Redis, 2 threads", url, AUTH_QUOTA_REQUESTS, 2);
	measure("ingest-bytes admit, Redis, 1 thread", url, AUTH_QUOTA_INGEST_BYTES, 1);
	measure("generated-token charge, Redis, 1 thread", url, AUTH_QUOTA_TOKENS, 1);
	return 0;
}
