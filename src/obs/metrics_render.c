/*
 * The Prometheus text format (0.0.4) of one metric family: # HELP and
 * # TYPE lines, then a line per child (histograms: cumulative buckets,
 * _sum and _count). The registry (metrics.c) holds its lock around it.
 *
 * Numbers are formatted with snprintf, which honours LC_NUMERIC: ragd never
 * calls setlocale, so it is "C" and the decimal point is '.'.
 */
#include "obs/metrics.h"
#include "obs/metrics_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/sbuf.h"
#include "core/banned.h"

static const char *const kind_names[] = { "counter", "gauge", "histogram" };

/*
 * Formats v into buf (room for METRICS_NUM_MAX bytes) as Prometheus reads
 * it; returns buf or a static string.
 */
#define METRICS_NUM_MAX 32 /* "%.17g" of any double with sign and exponent fits */
static const char *fmt_value(char *buf, double v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v == 0)
		return "0"; /* also for -0.0 */
	/* Below 2^53 every integer is exact and %.0f prints all its digits. */
	if (fabs(v) < 0x1p53 && v == trunc(v)) {
		snprintf(buf, METRICS_NUM_MAX, "%.0f", v);
		return buf;
	}
	/* The shortest of %.15g..%.17g that reads back as the same double. */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, METRICS_NUM_MAX, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

void metrics_format_value(struct sbuf *out, double v)
{
	char buf[METRICS_NUM_MAX];

	sbuf_addstr(out, fmt_value(buf, v));
}

/* HELP text escapes backslash and newline; label values also escape '"'. */
static void add_escaped(struct sbuf *out, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (quote && *s == '"')
			esc = "\\\"";
		if (!esc)
			continue;
		sbuf_add(out, run, (size_t)(s - run));
		sbuf_addstr(out, esc);
		run = s + 1;
	}
	sbuf_add(out, run, (size_t)(s - run));
}

/*
 * name{labels[,le="x"]} with the suffix ("_bucket", ...) after name; le may
 * be NULL. Writes no braces when there is no label at all.
 */
static void add_series(struct sbuf *out, const struct metric *m, const struct metric_child *c,
		       const char *suffix, const char *le)
{
	sbuf_addstr(out, m->name);
	sbuf_addstr(out, suffix);
	if (!m->n_labels && !le)
		return;
	sbuf_addch(out, '{');
	for (size_t i = 0; i < m->n_labels; i++) {
		if (i)
			sbuf_addch(out, ',');
		sbuf_addstr(out, m->labels[i]);
		sbuf_addstr(out, "=\"");
		add_escaped(out, c->values[i], true);
		sbuf_addch(out, '"');
	}
	if (le) {
		if (m->n_labels)
			sbuf_addch(out, ',');
		sbuf_addstr(out, "le=\"");
		sbuf_addstr(out, le);
		sbuf_addch(out, '"');
	}
	sbuf_addch(out, '}');
}

static void render_histogram(struct sbuf *out, const struct metric *m, struct metric_child *c)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	uint64_t cum = 0;
	double sum;

	metrics_hist_read(c, counts, &sum);
	for (size_t b = 0; b <= m->n_bounds; b++) {
		char buf[METRICS_NUM_MAX];

		cum += counts[b];
		add_series(out, m, c, "_bucket",
			   b < m->n_bounds ? fmt_value(buf, m->bounds[b]) : "+Inf");
		sbuf_addf(out, " %llu\n", (unsigned long long)cum);
	}
	add_series(out, m, c, "_sum", NULL);
	sbuf_addch(out, ' ');
	metrics_format_value(out, sum);
	sbuf_addch(out, '\n');
	add_series(out, m, c, "_count", NULL);
	sbuf_addf(out, " %llu\n", (unsigned long long)cum);
}

void metrics_render_family(struct sbuf *out, const struct metric *m)
{
	sbuf_addstr(out, "# HELP ");
	sbuf_addstr(out, m->name);
	sbuf_addch(out, ' ');
	add_escaped(out, m->help, false);
	sbuf_addf(out, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
	for (size_t i = 0; i < m->n_children; i++) {
		struct metric_child *c = m->children[i];

		if (m->kind == KIND_HISTOGRAM) {
			render_histogram(out, m, c);
			continue;
		}
		add_series(out, m, c, "", NULL);
		sbuf_addch(out, ' ');
		metrics_format_value(out, metric_value(c));
		sbuf_addch(out, '\n');
	}
}
