/*
 * The HTTP layer's metrics: the design's request families
 * (requests_per_second, response_time_ms, active_connections,
 * queries_per_second) and per-route counts and latencies.
 *
 * Children are resolved once per (route, status) and published with an
 * atomic pointer, so recording a request takes no lock.
 *
 * Thread-safety: all functions may be called from any thread.
 */
#ifndef RAGD_HTTP_HTTP_METRICS_H
#define RAGD_HTTP_HTTP_METRICS_H

/* Registers the families; call once before serving. Returns 0 or RAG_ENOMEM. */
int http_metrics_init(void);

/* One finished request: route_id from the router (-1 unmatched), its status and duration. */
void http_metrics_request(int route_id, int status, double ms);

/* A connection opened (+1) or closed (-1). */
void http_metrics_connection(int delta);

#endif
