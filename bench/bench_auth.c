/*
 * The cost authentication adds to every request, in one process: verifying
 * a Bearer key (parse, look the slot up, keyed BLAKE2b of the secret,
 * constant-time compare) and admitting it through the request token bucket,
 * one million times, single-threaded and from two threads at once (the
 * slot's lock is then contended). The verified key is a configured one, so
 * the store is not read; a stored key is read once per auth.key_cache_s.
 *
 *   cmake --build build --target bench_auth && ./build/bench_auth [N]
 *
 * Prints Markdown rows for bench/RESULTS.md.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "auth/auth.h"
#include "core/rag_error.h"

static char header[AUTH_TOKEN_MAX + 16];
static struct auth *a;
static long n_calls;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct auth_principal p;
	int retry;

	(void)arg;
	for (long i = 0; i < n_calls; i++)
		if (auth_verify(a, header, &p, NULL) != 0 ||
		    auth_admit(a, &p, AUTH_QUOTA_REQUESTS, 1, &retry, NULL) != 0)
			abort();
	return NULL;
}

int main(int argc, char **argv)
{
	char token[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1], spec[200], keys[300];
	struct auth_options o = { .enabled = true, .key_cache_s = 10 };
	struct rag_err err = { 0 };
	pthread_t t[2];
	double t0, one, two;

	n_calls = argc > 1 ? atol(argv[1]) : 1000000;
	auth_token_new(token, id, spec, sizeof(spec));
	snprintf(keys, sizeof(keys), "tenant=bench;role=reader;%s", spec);
	snprintf(header, sizeof(header), "Bearer %s", token);
	o.keys = keys;
	a = auth_new(&o, NULL, &err);
	if (!a) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	t0 = now_s();
	run(NULL);
	one = (now_s() - t0) / (double)n_calls;
	t0 = now_s();
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, run, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	two = (now_s() - t0) / (double)(2 * n_calls);
	printf("| verify + admit one request, 1 thread (%ld calls) | %.0f ns |\n", n_calls,
	       one * 1e9);
	printf("| same, 2 threads on the same key (wall time per request) | %.0f ns |\n",
	       two * 1e9);
	auth_free(a);
	return 0;
}
