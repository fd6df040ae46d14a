/*
 * Metrics registry: families, children and their values; the Prometheus
 * text format is written by metrics_render.c.
 *
 * Layout. The registry is an array of families in registration order. Each
 * family keeps its children in an array in creation order (the render
 * order) plus a hashmap from an encoded key of the label values to the
 * child, for lookup. A family without labels gets its one child at
 * registration, so it renders as 0 from the start, as the Prometheus client
 * libraries do; a family with labels and no children renders only its
 * # HELP and # TYPE lines.
 *
 * Hot path. A child is one allocation: a read-only header on its own cache
 * line, then the value cells, each on cache lines of their own:
 *   - counter: METRICS_N_SHARDS shards of { uint64 n; double bits f }.
 *     Integral adds (metric_inc, metric_add(3)) go to n with one
 *     fetch_add, so the common case is exact up to 2^64; fractional adds go
 *     to f by a CAS loop on the bit pattern. The value is sum(n) + sum(f).
 *   - gauge: one shared double (bit pattern in a uint64). metric_set is a
 *     plain atomic store, so it is exact; metric_add/metric_inc CAS on it.
 *     Sharding a gauge would make set() either inexact or a multi-word
 *     reset, and gauges are rarely hot.
 *   - histogram: per shard, the sum (double bits, CAS) and one count per
 *     bucket, non-cumulative, the last slot for values above the largest
 *     bound. _count is derived as the total of the slots rather than kept
 *     apart, so a render racing with observations still always has
 *     le="+Inf" == _count, which Prometheus requires; only _sum may be one
 *     observation ahead or behind.
 * A thread picks its shard once, round-robin from a global counter, and
 * keeps it in a thread-local; with more threads than shards two threads
 * share a shard, which costs contention but never correctness, since every
 * cell is an atomic RMW. All hot-path atomics are relaxed: a render is a
 * best-effort snapshot and nothing is published through these values.
 *
 * Removal. metric_child_remove unlinks the child from its family at once
 * (it stops being rendered and a later lookup creates a fresh one at 0),
 * but the memory goes to a graveyard freed only by metrics_shutdown: a
 * thread may still hold the handle, and freeing it would turn a harmless
 * late update into a use-after-free. Removals are rare (a deleted
 * collection), so the cost is a few KiB per removal. Rejected: refcounting
 * handles (an atomic on every update, and callers would have to release)
 * and hazard pointers (far more machinery than the problem deserves).
 *
 * Locking: reg.lock guards the family array, every family's children
 * array, hashmap and graveyard; a family's immutable fields (name, help,
 * labels, bounds, kind) are read without it. reg.collect_lock guards the
 * collector list and is held while collectors run, so that once
 * metrics_remove_collector returns its callback is not running and never
 * will again. render takes reg.lock for the families, releases it, then
 * takes collect_lock; the two are never nested, so collectors may use the
 * rest of this API (but not add or remove collectors).
 */
#include "obs/metrics.h"
#include "obs/metrics_int.h"

#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "core/banned.h"

#define METRICS_N_SHARDS 16  /* enough for the worker pool; 1 KiB per counter child */

const double METRICS_MS_BUCKETS[] = { 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
				      10000 };
const size_t METRICS_MS_N_BUCKETS = sizeof(METRICS_MS_BUCKETS) / sizeof(METRICS_MS_BUCKETS[0]);

struct counter_shard {
	alignas(METRICS_LINE) _Atomic uint64_t n; /* integral increments */
	_Atomic uint64_t f;                        /* double bits: fractional adds */
};

struct collector {
	metrics_collector_fn fn;
	void *ctx;
};

static struct {
	pthread_mutex_t lock;
	struct metric **families;
	size_t n_families;
	size_t alloc_families;
	struct metric_child *dead;

	pthread_mutex_t collect_lock;
	struct collector *collectors;
	size_t n_collectors;
	size_t alloc_collectors;
} reg = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.collect_lock = PTHREAD_MUTEX_INITIALIZER,
};

static atomic_uint next_shard;
static _Thread_local int my_shard = -1;

static inline unsigned shard_index(void)
{
	if (__builtin_expect(my_shard < 0, 0))
		my_shard = (int)(atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
				 METRICS_N_SHARDS);
	return (unsigned)my_shard;
}

static inline uint64_t dbits(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static inline double bitsd(uint64_t u)
{
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

/* Adds v to the double stored as bits in *cell. */
static inline void atomic_add_double(_Atomic uint64_t *cell, double v)
{
	uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(cell, &old, dbits(bitsd(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static size_t round_line(size_t n)
{
	return (n + METRICS_LINE - 1) / METRICS_LINE * METRICS_LINE;
}

/* ---- hot path ---------------------------------------------------------- */

static inline struct counter_shard *counter_shard(struct metric_child *c)
{
	return (struct counter_shard *)c->cells + shard_index();
}

static inline _Atomic uint64_t *gauge_cell(struct metric_child *c)
{
	return (_Atomic uint64_t *)c->cells;
}

static inline _Atomic uint64_t *hist_shard(struct metric_child *c, unsigned i)
{
	return (_Atomic uint64_t *)(c->cells + (size_t)i * c->shard_stride);
}

void metric_inc(struct metric_child *c)
{
	if (!c)
		return;
	if (c->kind == KIND_COUNTER)
		atomic_fetch_add_explicit(&counter_shard(c)->n, 1, memory_order_relaxed);
	else if (c->kind == KIND_GAUGE)
		atomic_add_double(gauge_cell(c), 1.0);
}

void metric_add(struct metric_child *c, double v)
{
	if (!c)
		return;
	if (c->kind == KIND_COUNTER) {
		/* Counters only go up; NaN and negatives are dropped (!(v >= 0)). */
		if (!(v >= 0))
			return;
		if (v < 0x1p53 && v == (double)(uint64_t)v)
			atomic_fetch_add_explicit(&counter_shard(c)->n, (uint64_t)v,
						  memory_order_relaxed);
		else
			atomic_add_double(&counter_shard(c)->f, v);
	} else if (c->kind == KIND_GAUGE) {
		atomic_add_double(gauge_cell(c), v);
	}
}

void metric_set(struct metric_child *c, double v)
{
	if (c && c->kind == KIND_GAUGE)
		atomic_store_explicit(gauge_cell(c), dbits(v), memory_order_relaxed);
}

/* The slot of v: the first bound >= v, or n_bounds for +Inf (and NaN). */
static inline size_t bucket_slot(const double *bounds, size_t n_bounds, double v)
{
	size_t lo = 0, hi = n_bounds;

	if (n_bounds <= 16) {
		while (lo < n_bounds && !(v <= bounds[lo]))
			lo++;
		return lo;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void metric_observe(struct metric_child *c, double v)
{
	_Atomic uint64_t *s;

	if (!c || c->kind != KIND_HISTOGRAM)
		return;
	s = hist_shard(c, shard_index());
	atomic_fetch_add_explicit(&s[1 + bucket_slot(c->bounds, c->n_bounds, v)], 1,
				  memory_order_relaxed);
	atomic_add_double(&s[0], v);
}

/* ---- reading values ---------------------------------------------------- */

static double counter_value(struct metric_child *c)
{
	struct counter_shard *s = (struct counter_shard *)c->cells;
	uint64_t n = 0;
	double f = 0;

	for (unsigned i = 0; i < METRICS_N_SHARDS; i++) {
		n += atomic_load_explicit(&s[i].n, memory_order_relaxed);
		f += bitsd(atomic_load_explicit(&s[i].f, memory_order_relaxed));
	}
	return (double)n + f;
}

void metrics_hist_read(struct metric_child *c, uint64_t *counts, double *sum)
{
	*sum = 0;
	memset(counts, 0, (c->n_bounds + 1) * sizeof(*counts));
	for (unsigned i = 0; i < METRICS_N_SHARDS; i++) {
		_Atomic uint64_t *s = hist_shard(c, i);

		*sum += bitsd(atomic_load_explicit(&s[0], memory_order_relaxed));
		for (size_t b = 0; b <= c->n_bounds; b++)
			counts[b] += atomic_load_explicit(&s[1 + b], memory_order_relaxed);
	}
}

double metric_value(struct metric_child *c)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	uint64_t total = 0;
	double sum;

	if (!c)
		return NAN;
	if (c->kind == KIND_COUNTER)
		return counter_value(c);
	if (c->kind == KIND_GAUGE)
		return bitsd(atomic_load_explicit(gauge_cell(c), memory_order_relaxed));
	metrics_hist_read(c, counts, &sum);
	for (size_t b = 0; b <= c->n_bounds; b++)
		total += counts[b];
	return (double)total;
}

double metric_sum(struct metric_child *c)
{
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	double sum;

	if (!c || c->kind != KIND_HISTOGRAM)
		return NAN;
	metrics_hist_read(c, counts, &sum);
	return sum;
}

/* ---- registration ------------------------------------------------------ */

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':');

		if (!ok)
			return false;
	}
	return true;
}

static void child_free(struct metric_child *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
		free(c->values[i]);
	free(c->key);
	free(c);
}

static void family_free(struct metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_children; i++)
		child_free(m->children[i]);
	free(m->children);
	hashmap_free(m->by_key);
	for (size_t i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m->bounds);
	free(m->help);
	free(m->name);
	free(m);
}

/* True when an existing family is the one a second registration asks for. */
static bool same_family(const struct metric *m, int kind, const char *const *label_names,
			size_t n_labels, const double *bounds, size_t n_bounds)
{
	if (m->kind != kind || m->n_labels != n_labels || m->n_bounds != n_bounds)
		return false;
	for (size_t i = 0; i < n_labels; i++)
		if (strcmp(m->labels[i], label_names[i]) != 0)
			return false;
	for (size_t i = 0; i < n_bounds; i++)
		if (m->bounds[i] != bounds[i])
			return false;
	return true;
}

static struct metric_child *child_get_locked(struct metric *m, const char *const *label_values);

static struct metric *family_new(int kind, const char *name, const char *help,
				 const char *const *label_names, size_t n_labels,
				 const double *bounds, size_t n_bounds)
{
	struct metric *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->kind = kind;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	m->by_key = hashmap_new(0);
	if (!m->name || !m->help || !m->by_key)
		goto fail;
	for (size_t i = 0; i < n_labels; i++) {
		m->labels[i] = strdup(label_names[i]);
		if (!m->labels[i])
			goto fail;
		m->n_labels++;
	}
	if (n_bounds) {
		m->bounds = malloc(n_bounds * sizeof(*bounds));
		if (!m->bounds)
			goto fail;
		memcpy(m->bounds, bounds, n_bounds * sizeof(*bounds));
	}
	m->n_bounds = n_bounds;
	return m;
fail:
	family_free(m);
	return NULL;
}

static struct metric *reg_family(int kind, const char *name, const char *help,
				 const char *const *label_names, const double *bounds,
				 size_t n_bounds)
{
	struct metric *m = NULL;
	size_t n_labels = 0;

	if (!valid_name(name, true))
		return NULL;
	for (; label_names && label_names[n_labels]; n_labels++) {
		const char *l = label_names[n_labels];

		if (n_labels == METRICS_MAX_LABELS || !valid_name(l, false) ||
		    strncmp(l, "__", 2) == 0 || (kind == KIND_HISTOGRAM && !strcmp(l, "le")))
			return NULL;
		for (size_t j = 0; j < n_labels; j++)
			if (!strcmp(l, label_names[j]))
				return NULL;
	}
	/* A trailing +Inf is implied; accept it and drop it. */
	if (n_bounds && isinf(bounds[n_bounds - 1]) && bounds[n_bounds - 1] > 0)
		n_bounds--;
	if (n_bounds > METRICS_MAX_BUCKETS || (n_bounds && !bounds))
		return NULL;
	for (size_t i = 0; i < n_bounds; i++)
		if (isnan(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
			return NULL;

	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n_families; i++) {
		if (strcmp(reg.families[i]->name, name) != 0)
			continue;
		m = reg.families[i];
		if (!same_family(m, kind, label_names, n_labels, bounds, n_bounds))
			m = NULL;
		goto out;
	}
	if (reg.n_families == reg.alloc_families) {
		size_t alloc = reg.alloc_families ? 2 * reg.alloc_families : 32;
		struct metric **p = realloc(reg.families, alloc * sizeof(*p));

		if (!p)
			goto out;
		reg.families = p;
		reg.alloc_families = alloc;
	}
	m = family_new(kind, name, help, label_names, n_labels, bounds, n_bounds);
	if (!m)
		goto out;
	if (n_labels == 0 && !child_get_locked(m, NULL)) {
		family_free(m);
		m = NULL;
		goto out;
	}
	reg.families[reg.n_families++] = m;
out:
	pthread_mutex_unlock(&reg.lock);
	return m;
}

struct metric *metrics_counter(const char *name, const char *help, const char *const *label_names)
{
	return reg_family(KIND_COUNTER, name, help, label_names, NULL, 0);
}

struct metric *metrics_gauge(const char *name, const char *help, const char *const *label_names)
{
	return reg_family(KIND_GAUGE, name, help, label_names, NULL, 0);
}

struct metric *metrics_histogram(const char *name, const char *help,
				 const char *const *label_names, const double *buckets,
				 size_t n_buckets)
{
	return reg_family(KIND_HISTOGRAM, name, help, label_names, buckets, n_buckets);
}

/* ---- children ---------------------------------------------------------- */

/*
 * The hashmap key of a label-value tuple: each value as "<len>:<bytes>", so
 * no choice of separator can make two tuples collide. Caller frees.
 */
static char *child_key(const struct metric *m, const char *const *label_values)
{
	struct sbuf key = SBUF_INIT;

	for (size_t i = 0; i < m->n_labels; i++) {
		const char *v = label_values[i] ? label_values[i] : "";

		sbuf_addf(&key, "%zu:", strlen(v));
		sbuf_addstr(&key, v);
	}
	return sbuf_detach(&key, NULL);
}

static struct metric_child *child_new(struct metric *m, const char *const *label_values)
{
	size_t head = round_line(sizeof(struct metric_child));
	size_t stride = 0, cells;
	struct metric_child *c;

	if (m->kind == KIND_COUNTER) {
		cells = METRICS_N_SHARDS * sizeof(struct counter_shard);
	} else if (m->kind == KIND_GAUGE) {
		cells = METRICS_LINE;
	} else {
		stride = round_line((m->n_bounds + 2) * sizeof(uint64_t));
		cells = METRICS_N_SHARDS * stride;
	}
	/* Zeroed bits are 0 for uint64 and +0.0 for double: every cell starts at 0. */
	c = aligned_alloc(METRICS_LINE, head + cells);
	if (!c)
		return NULL;
	memset(c, 0, head + cells);
	c->kind = m->kind;
	c->family = m;
	c->cells = (unsigned char *)c + head;
	c->shard_stride = stride;
	c->bounds = m->bounds;
	c->n_bounds = m->n_bounds;
	for (size_t i = 0; i < m->n_labels; i++) {
		c->values[i] = strdup(label_values[i] ? label_values[i] : "");
		if (!c->values[i])
			goto fail;
	}
	c->key = child_key(m, label_values);
	if (!c->key)
		goto fail;
	return c;
fail:
	child_free(c);
	return NULL;
}

static struct metric_child *child_get_locked(struct metric *m, const char *const *label_values)
{
	struct metric_child *c;
	char *key;

	if (m->n_labels && !label_values)
		return NULL;
	key = child_key(m, label_values);
	if (!key)
		return NULL;
	c = hashmap_get(m->by_key, key);
	free(key);
	if (c)
		return c;
	if (m->n_children == m->alloc_children) {
		size_t alloc = m->alloc_children ? 2 * m->alloc_children : 4;
		struct metric_child **p = realloc(m->children, alloc * sizeof(*p));

		if (!p)
			return NULL;
		m->children = p;
		m->alloc_children = alloc;
	}
	c = child_new(m, label_values);
	if (!c)
		return NULL;
	if (hashmap_put(m->by_key, c->key, c, NULL) < 0) {
		child_free(c);
		return NULL;
	}
	m->children[m->n_children++] = c;
	if (m->n_labels == 0)
		atomic_store_explicit(&m->dflt, c, memory_order_release);
	return c;
}

struct metric_child *metric_child(struct metric *m, const char *const *label_values)
{
	struct metric_child *c;

	if (!m)
		return NULL;
	if (m->n_labels == 0) {
		c = atomic_load_explicit(&m->dflt, memory_order_acquire);
		if (c)
			return c;
	}
	pthread_mutex_lock(&reg.lock);
	c = child_get_locked(m, label_values);
	pthread_mutex_unlock(&reg.lock);
	return c;
}

struct metric_child *metric_default(struct metric *m)
{
	if (!m || m->n_labels)
		return NULL;
	return metric_child(m, NULL);
}

void metric_child_remove(struct metric *m, const char *const *label_values)
{
	struct metric_child *c = NULL;
	void *old = NULL;
	char *key;

	if (!m || (m->n_labels && !label_values))
		return;
	pthread_mutex_lock(&reg.lock);
	key = child_key(m, label_values);
	if (key && hashmap_remove(m->by_key, key, &old) == 0)
		c = old;
	free(key);
	if (c) {
		for (size_t i = 0; i < m->n_children; i++) {
			if (m->children[i] != c)
				continue;
			memmove(&m->children[i], &m->children[i + 1],
				(m->n_children - i - 1) * sizeof(*m->children));
			m->n_children--;
			break;
		}
		if (m->n_labels == 0)
			atomic_store_explicit(&m->dflt, NULL, memory_order_release);
		c->next_dead = reg.dead;
		reg.dead = c;
	}
	pthread_mutex_unlock(&reg.lock);
}

/* ---- collectors -------------------------------------------------------- */

int metrics_add_collector(metrics_collector_fn fn, void *ctx)
{
	int rc = 0;

	if (!fn)
		return RAG_EINVAL;
	pthread_mutex_lock(&reg.collect_lock);
	for (size_t i = 0; i < reg.n_collectors; i++) {
		if (reg.collectors[i].fn == fn && reg.collectors[i].ctx == ctx) {
			rc = RAG_ECONFLICT;
			goto out;
		}
	}
	if (reg.n_collectors == reg.alloc_collectors) {
		size_t alloc = reg.alloc_collectors ? 2 * reg.alloc_collectors : 8;
		struct collector *p = realloc(reg.collectors, alloc * sizeof(*p));

		if (!p) {
			rc = RAG_ENOMEM;
			goto out;
		}
		reg.collectors = p;
		reg.alloc_collectors = alloc;
	}
	reg.collectors[reg.n_collectors].fn = fn;
	reg.collectors[reg.n_collectors].ctx = ctx;
	reg.n_collectors++;
out:
	pthread_mutex_unlock(&reg.collect_lock);
	return rc;
}

void metrics_remove_collector(metrics_collector_fn fn, void *ctx)
{
	pthread_mutex_lock(&reg.collect_lock);
	for (size_t i = 0; i < reg.n_collectors; i++) {
		if (reg.collectors[i].fn != fn || reg.collectors[i].ctx != ctx)
			continue;
		memmove(&reg.collectors[i], &reg.collectors[i + 1],
			(reg.n_collectors - i - 1) * sizeof(*reg.collectors));
		reg.n_collectors--;
		break;
	}
	pthread_mutex_unlock(&reg.collect_lock);
}

/* ---- rendering (the text format: metrics_render.c) ---------------------- */

int metrics_render(struct sbuf *out)
{
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n_families; i++)
		metrics_render_family(out, reg.families[i]);
	pthread_mutex_unlock(&reg.lock);

	pthread_mutex_lock(&reg.collect_lock);
	for (size_t i = 0; i < reg.n_collectors; i++)
		reg.collectors[i].fn(reg.collectors[i].ctx, out);
	pthread_mutex_unlock(&reg.collect_lock);
	return sbuf_error(out) ? RAG_ENOMEM : 0;
}

void metrics_shutdown(void)
{
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n_families; i++)
		family_free(reg.families[i]);
	free(reg.families);
	reg.families = NULL;
	reg.n_families = reg.alloc_families = 0;
	while (reg.dead) {
		struct metric_child *c = reg.dead;

		reg.dead = c->next_dead;
		child_free(c);
	}
	pthread_mutex_unlock(&reg.lock);

	pthread_mutex_lock(&reg.collect_lock);
	free(reg.collectors);
	reg.collectors = NULL;
	reg.n_collectors = reg.alloc_collectors = 0;
	pthread_mutex_unlock(&reg.collect_lock);
}
