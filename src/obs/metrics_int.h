/*
 * What the registry (metrics.c) and the text renderer (metrics_render.c)
 * share: the family and child layout. Not for the rest of ragd, which uses
 * obs/metrics.h.
 */
#ifndef RAGD_OBS_METRICS_INT_H
#define RAGD_OBS_METRICS_INT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/metrics.h"

struct sbuf;

#define METRICS_LINE 64      /* cache line: cells never share one across shards */
#define METRICS_MAX_BUCKETS 64 /* more is a mistake, and bounds a histogram child */

enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

/* A histogram shard is METRICS_LINE-rounded: { sum bits, slots[n_bounds + 1] }. */

struct metric_child {
	int kind;
	struct metric *family;       /* borrowed; the registry owns both */
	unsigned char *cells;        /* into this allocation, METRICS_LINE aligned */
	size_t shard_stride;         /* histogram: bytes per shard */
	const double *bounds;        /* histogram: the family's, n_bounds of them */
	size_t n_bounds;
	char *key;                   /* hashmap key, owned */
	char *values[METRICS_MAX_LABELS]; /* owned copies */
	struct metric_child *next_dead; /* graveyard link, under reg.lock */
};

struct metric {
	int kind;
	char *name;
	char *help;
	char *labels[METRICS_MAX_LABELS];
	size_t n_labels;
	double *bounds;
	size_t n_bounds;
	/* Under reg.lock: */
	struct metric_child **children;
	size_t n_children;
	size_t alloc_children;
	struct hashmap *by_key;
	/* The label-less child, read lock-free by metric_default. */
	_Atomic(struct metric_child *) dflt;
};

/* Sums the shards into counts[0..n_bounds] (non-cumulative) and *sum. */
void metrics_hist_read(struct metric_child *c, uint64_t *counts, double *sum);

/* Appends family m and its children; caller holds the registry's lock. */
void metrics_render_family(struct sbuf *out, const struct metric *m);

#endif
