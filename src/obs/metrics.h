/*
 * Metrics: a process-wide registry of counters, gauges and histograms,
 * rendered in the Prometheus text exposition format 0.0.4.
 *
 * A metric family is registered once (name, help, label names); a child is
 * one combination of label values, looked up once and then kept as a
 * handle. Updating a child is lock-free: values are spread over per-thread
 * shards of relaxed atomics and summed only when rendered, so the hot path
 * never contends on a cache line. Registration and child lookup take a
 * mutex and may allocate; do them at start-up or cache the handle.
 *
 * Collectors are callbacks run at render time, for values that are cheaper
 * to read than to track (index sizes per collection, change-log lag, RSS).
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef RAGD_OBS_METRICS_H
#define RAGD_OBS_METRICS_H

#include <stddef.h>

struct sbuf;
struct metric;       /* a family */
struct metric_child; /* one label combination of a family */

#define METRICS_MAX_LABELS 4 /* labels per family */

/*
 * Register families in the global registry. label_names is NULL-terminated
 * (NULL for none). Registering a name twice returns the first family if the
 * kind and labels match, else NULL. Never freed before metrics_shutdown().
 * buckets: upper bounds in increasing order, without +Inf.
 */
struct metric *metrics_counter(const char *name, const char *help, const char *const *label_names);
struct metric *metrics_gauge(const char *name, const char *help, const char *const *label_names);
struct metric *metrics_histogram(const char *name, const char *help,
				 const char *const *label_names, const double *buckets,
				 size_t n_buckets);

/*
 * The child for label values (as many as the family has label names; NULL
 * for a family without labels). Creates it on first use; NULL only on
 * allocation failure, and every update function accepts NULL and does
 * nothing, so callers need not check.
 */
struct metric_child *metric_child(struct metric *m, const char *const *label_values);

/* Shorthand for families without labels. */
struct metric_child *metric_default(struct metric *m);

void metric_inc(struct metric_child *c);               /* counter or gauge + 1 */
void metric_add(struct metric_child *c, double v);     /* counter (v >= 0) or gauge */
void metric_set(struct metric_child *c, double v);     /* gauge */
void metric_observe(struct metric_child *c, double v); /* histogram */

/* Removes a child (e.g. a deleted collection's gauges); the handle dies. */
void metric_child_remove(struct metric *m, const char *const *label_values);

/*
 * Reads a child, summing its shards (a snapshot, not atomic across shards):
 * the value of a counter or gauge, the observation count of a histogram;
 * NaN for NULL. For tests, /health and collectors that derive values.
 */
double metric_value(struct metric_child *c);

/* The sum of a histogram's observations; NaN for NULL or another kind. */
double metric_sum(struct metric_child *c);

/*
 * Appends v as the exposition format writes numbers: integers below 2^53
 * without exponent ("42"), others in the shortest of %.15g..%.17g that
 * round-trips, and "NaN", "+Inf", "-Inf". For collectors.
 */
void metrics_format_value(struct sbuf *out, double v);

/*
 * A collector appends complete exposition lines (with its own # HELP and
 * # TYPE) to out at render time. ctx is borrowed until removed.
 */
typedef void (*metrics_collector_fn)(void *ctx, struct sbuf *out);
int metrics_add_collector(metrics_collector_fn fn, void *ctx);
void metrics_remove_collector(metrics_collector_fn fn, void *ctx);

/* Renders every family and collector; returns 0 or RAG_ENOMEM. */
int metrics_render(struct sbuf *out);

/* Frees the registry; only at exit, with no thread updating. */
void metrics_shutdown(void);

/* Bucket sets in milliseconds shared by the latency histograms. */
extern const double METRICS_MS_BUCKETS[];
extern const size_t METRICS_MS_N_BUCKETS;

#endif
