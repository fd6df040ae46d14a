/*
 * Per-request metrics. Label children are looked up under the registry's
 * mutex only the first time a (route, status) pair is seen; after that the
 * cached handle is read with one atomic load. Statuses outside the table
 * share the "other" slot so that clients cannot grow the label set.
 */
#include "http/http_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "http/http_router.h"
#include "obs/metrics.h"

#include "core/banned.h"

#define HTTP_METRICS_MAX_ROUTES 32 /* above the route table's size */

static const int statuses[] = { 200, 201, 304, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503 };
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]) + 1) /* + "other" */

static struct metric *requests, *response_time, *connections, *queries;
static struct metric *route_requests, *route_duration;
static struct metric_child *requests_c, *response_time_c, *connections_c, *queries_c;

/* Slot HTTP_METRICS_MAX_ROUTES is "unmatched". */
static _Atomic(struct metric_child *) by_status[HTTP_METRICS_MAX_ROUTES + 1][N_STATUS];
static _Atomic(struct metric_child *) durations[HTTP_METRICS_MAX_ROUTES + 1];
static int search_route = -1;

int http_metrics_init(void)
{
	static const char *const route_labels[] = { "route", "method", "status", NULL };
	static const char *const duration_labels[] = { "route", "method", NULL };

	requests = metrics_counter("requests_per_second",
				   "HTTP requests served (a counter: rate() gives requests per second)",
				   NULL);
	response_time = metrics_histogram("response_time_ms", "HTTP response time in milliseconds",
					  NULL, METRICS_MS_BUCKETS, METRICS_MS_N_BUCKETS);
	connections = metrics_gauge("active_connections", "Open HTTP connections", NULL);
	queries = metrics_counter("queries_per_second",
				  "Search and query requests (a counter: rate() gives queries per "
				  "second, the autoscaling signal)", NULL);
	route_requests = metrics_counter("ragd_http_requests_total",
					 "HTTP requests by route, method and status", route_labels);
	route_duration = metrics_histogram("ragd_http_request_duration_ms",
					   "HTTP response time by route in milliseconds",
					   duration_labels, METRICS_MS_BUCKETS, METRICS_MS_N_BUCKETS);
	if (!requests || !response_time || !connections || !queries || !route_requests ||
	    !route_duration)
		return -4; /* RAG_ENOMEM */
	requests_c = metric_default(requests);
	response_time_c = metric_default(response_time);
	connections_c = metric_default(connections);
	queries_c = metric_default(queries);
	for (size_t i = 0; i < http_route_count(); i++)
		if (strcmp(http_route_pattern(i), "/v1/collections/{name}/search") == 0)
			search_route = (int)i;
	return 0;
}

static size_t route_slot(int route_id)
{
	return route_id >= 0 && route_id < HTTP_METRICS_MAX_ROUTES ? (size_t)route_id
								    : HTTP_METRICS_MAX_ROUTES;
}

static struct metric_child *status_child(size_t slot, int route_id, int status)
{
	size_t k = N_STATUS - 1;
	struct metric_child *c;
	char code[16];

	for (size_t i = 0; i + 1 < N_STATUS; i++)
		if (statuses[i] == status)
			k = i;
	c = atomic_load_explicit(&by_status[slot][k], memory_order_acquire);
	if (c)
		return c;
	if (k == N_STATUS - 1)
		snprintf(code, sizeof(code), "other");
	else
		snprintf(code, sizeof(code), "%d", status);
	{
		const char *values[] = { http_route_pattern((size_t)route_id),
					 http_route_method((size_t)route_id), code, NULL };

		c = metric_child(route_requests, values);
	}
	atomic_store_explicit(&by_status[slot][k], c, memory_order_release);
	return c;
}

static struct metric_child *duration_child(size_t slot, int route_id)
{
	struct metric_child *c = atomic_load_explicit(&durations[slot], memory_order_acquire);
	const char *values[] = { http_route_pattern((size_t)route_id),
				 http_route_method((size_t)route_id), NULL };

	if (c)
		return c;
	c = metric_child(route_duration, values);
	atomic_store_explicit(&durations[slot], c, memory_order_release);
	return c;
}

void http_metrics_request(int route_id, int status, double ms)
{
	size_t slot = route_slot(route_id);

	metric_inc(requests_c);
	metric_observe(response_time_c, ms);
	metric_inc(status_child(slot, route_id, status));
	metric_observe(duration_child(slot, route_id), ms);
	if (route_id >= 0 && route_id == search_route)
		metric_inc(queries_c);
}

void http_metrics_connection(int delta)
{
	metric_add(connections_c, (double)delta);
}
