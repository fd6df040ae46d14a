/*
 * Process metrics: a sampler thread that keeps two gauges current.
 *
 *   cpu_usage_percentage  CPU time (user + system, all threads) the process
 *                         used over the last interval, as a percentage of
 *                         ONE core: a process keeping two cores busy reads
 *                         200, a fully busy 16-core machine 1600.
 *   memory_usage_bytes    resident set size, from /proc/self/statm.
 *
 * Thread-safety: every function may be called from any thread; start and
 * stop pair up (one sampler per process). Stop the sampler before
 * metrics_shutdown().
 */
#ifndef RAGD_OBS_PROCESS_H
#define RAGD_OBS_PROCESS_H

#define METRICS_PROCESS_INTERVAL_MS 1000 /* default: one sample per scrape-ish period */

/*
 * Registers both gauges, takes a first sample and starts the sampler thread,
 * which samples every interval_ms (<= 0 means METRICS_PROCESS_INTERVAL_MS).
 * Returns 0, RAG_EBUSY when already running, RAG_ENOMEM when the gauges
 * cannot be registered, or RAG_EINTERNAL when the thread cannot start.
 */
int metrics_process_start(int interval_ms);

/* Stops and joins the sampler, waking it at once; a no-op when not running. */
void metrics_process_stop(void);

/*
 * Takes one sample now (registering the gauges if needed). The CPU
 * percentage covers the time since the previous sample; the first sample
 * ever covers the time since the process started.
 */
void metrics_process_sample_now(void);

#endif
