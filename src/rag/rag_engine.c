/*
 * The engine's collection registry and its change-log follower.
 *
 * Collections live in a hash map keyed by tenant and name, each a refcounted
 * struct rag_coll holding its index. The map's rwlock is held only for
 * lookups and swaps, never across index builds or model calls. A collection
 * this engine has not seen (created by another process on the same store)
 * is loaded on first use; the follower thread also discovers new and
 * deleted collections on each poll, then replays each collection's log.
 */
#include "rag/rag_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hashmap.h"
#include "core/log.h"
#include "core/rag_error.h"
#include "core/sbuf.h"
#include "index/lexical.h"
#include "index/vindex.h"
#include "model/embedder.h"
#include "text/chunk.h"
#include "text/utf8.h"

#include "core/banned.h"

#define RAG_NAME_MAX 64 /* collection names appear in URLs, paths and metric labels */

double rag_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int rag_deadline_check(double deadline, const char *what, const char *key, int timeout_ms,
		       struct rag_err *err)
{
	if (deadline <= 0 || rag_now_ms() <= deadline)
		return 0;
	return rag_err_set(err, RAG_ETIMEOUT, NULL, "%s ran past its deadline of %d ms (%s)", what,
			   timeout_ms, key);
}

void rag_engine_default_options(struct rag_engine_options *o)
{
	memset(o, 0, sizeof(*o));
	o->data_dir = "./data";
	o->load_indexes = 1;
	o->snapshot = 1;
	o->follow_interval_ms = 100;
	o->follow_max_backoff_ms = 1000;
	o->max_top_k = 1000;
	o->chunk_size = 128;
	o->chunk_overlap = 16;
}

int rag_check_name(const char *name, const char *field, const char *what, struct rag_err *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > RAG_NAME_MAX)
		return rag_err_set(err, RAG_EINVAL, field, "%s must be 1 to %d characters", what,
				   RAG_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '-' && c != '.')))
			return rag_err_set(err, RAG_EINVAL, field,
					   "%s may hold only letters, digits, '_', '-' and '.', "
					   "and must start with a letter or digit", what);
	}
	return 0;
}

int rag_check_text(const char *s, size_t len, const char *field, struct rag_err *err)
{
	size_t bad = 0, i;

	if (!s)
		return rag_err_set(err, RAG_EINVAL, field, "%s is required", field);
	if (!utf8_valid(s, len, &bad))
		return rag_err_set(err, RAG_EINVAL, field,
				   "%s is not valid UTF-8 (bad byte at offset %zu)", field, bad);
	for (i = 0; i < len; i++)
		if (!strchr(" \t\r\n\f\v", s[i]))
			break;
	if (i == len)
		return rag_err_set(err, RAG_EINVAL, field, "%s is empty", field);
	return 0;
}

static void key_of(struct sbuf *sb, const char *tenant, const char *name)
{
	sbuf_addstr(sb, tenant);
	sbuf_addch(sb, 0x1f);
	sbuf_addstr(sb, name);
}

void rag_coll_unref(struct rag_coll *coll)
{
	if (!coll || atomic_fetch_sub(&coll->refs, 1) != 1)
		return;
	vindex_free(coll->vi);
	lexical_free(coll->lx);
	store_collection_release(&coll->c);
	pthread_mutex_destroy(&coll->apply_mu);
	pthread_rwlock_destroy(&coll->write_gate);
	free(coll);
}

/* Makes a collection object from the store's record (taken over) and loads its index. */
static struct rag_coll *coll_open(struct rag_engine *eng, struct store_collection *c,
				  struct rag_err *err)
{
	struct rag_coll *coll = calloc(1, sizeof(*coll));

	if (!coll) {
		store_collection_release(c);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	atomic_init(&coll->refs, 1);
	coll->c = *c;
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&coll->apply_mu, NULL);
	{
		pthread_rwlockattr_t attr;

		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&coll->write_gate, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	/* config_json is written by rag_collection_create alone: a fixed shape. */
	coll->porter = coll->c.config_json && strstr(coll->c.config_json, "\"stemming\":\"porter\"");
	if (rag_coll_index_spec(coll->c.config_json, &coll->ispec, err) < 0) {
		rag_coll_unref(coll);
		return NULL;
	}
	rag_coll_index_place(eng, coll);
	coll->chunker = CHUNK_FIXED;
	if (coll->c.config_json && strstr(coll->c.config_json, "\"chunker\":\"structured\""))
		coll->chunker = CHUNK_STRUCTURED;
	else if (coll->c.config_json && strstr(coll->c.config_json, "\"chunker\":\"recursive\""))
		coll->chunker = CHUNK_RECURSIVE;
	atomic_init(&coll->applied_seq, 0);
	atomic_init(&coll->caught_up_ms, rag_wall_ms());
	{
		struct rag_err merr = { 0 };

		coll->emb = rag_embedder(eng, coll->c.embed_model, NULL, &merr);
		if (!coll->emb)
			log_warn("collection '%s': %s", coll->c.name, merr.msg);
	}
	if (eng->opts.load_indexes && rag_index_load(eng, coll, err) < 0) {
		rag_coll_unref(coll);
		return NULL;
	}
	return coll;
}

/*
 * Puts coll in the registry unless another thread got there first; returns
 * the registered one with a reference for the caller.
 */
static struct rag_coll *registry_insert(struct rag_engine *eng, struct rag_coll *coll)
{
	struct sbuf key = SBUF_INIT;
	struct rag_coll *have;

	key_of(&key, coll->c.tenant, coll->c.name);
	pthread_rwlock_wrlock(&eng->lock);
	have = hashmap_get(eng->colls, key.buf);
	if (have && have->c.id == coll->c.id) {
		atomic_fetch_add(&have->refs, 1);
		pthread_rwlock_unlock(&eng->lock);
		rag_coll_unref(coll);
		sbuf_release(&key);
		return have;
	}
	if (hashmap_put(eng->colls, key.buf, coll, (void **)&have) < 0) {
		pthread_rwlock_unlock(&eng->lock);
		sbuf_release(&key);
		return coll; /* unregistered but usable: the caller's reference */
	}
	atomic_fetch_add(&coll->refs, 1);
	pthread_rwlock_unlock(&eng->lock);
	rag_coll_unref(have); /* a stale one of the same name, recreated elsewhere */
	sbuf_release(&key);
	return coll;
}

static void registry_remove(struct rag_engine *eng, const char *tenant, const char *name,
			    int64_t id)
{
	struct sbuf key = SBUF_INIT;
	struct rag_coll *have;

	key_of(&key, tenant, name);
	pthread_rwlock_wrlock(&eng->lock);
	have = hashmap_get(eng->colls, key.buf);
	if (have && (id == 0 || have->c.id == id))
		hashmap_remove(eng->colls, key.buf, NULL);
	else
		have = NULL;
	pthread_rwlock_unlock(&eng->lock);
	rag_coll_unref(have);
	sbuf_release(&key);
}

void rag_coll_forget(struct rag_engine *eng, const char *tenant, const char *name)
{
	registry_remove(eng, tenant, name, 0);
}

int rag_coll_replaced(struct rag_engine *eng, struct rag_coll *coll)
{
	struct store_collection now;
	int same;

	if (store_collection_get(eng->store, coll->c.tenant, coll->c.name, &now, NULL) < 0)
		same = 0;
	else
		same = now.id == coll->c.id;
	if (!same)
		registry_remove(eng, coll->c.tenant, coll->c.name, coll->c.id);
	store_collection_release(&now);
	return !same;
}

/* The registered collection with a reference for the caller, or NULL. */
static struct rag_coll *registry_get(struct rag_engine *eng, const char *tenant,
				     const char *name)
{
	struct sbuf key = SBUF_INIT;
	struct rag_coll *coll;

	key_of(&key, tenant, name);
	pthread_rwlock_rdlock(&eng->lock);
	coll = hashmap_get(eng->colls, key.buf);
	if (coll)
		atomic_fetch_add(&coll->refs, 1);
	pthread_rwlock_unlock(&eng->lock);
	sbuf_release(&key);
	return coll;
}

struct rag_coll *rag_coll_acquire(struct rag_engine *eng, const char *tenant, const char *name,
				  struct rag_err *err)
{
	struct rag_coll *coll = registry_get(eng, tenant, name);
	struct store_collection c;

	if (coll)
		return coll;
	/*
	 * Collections are opened one at a time, looking again once open_mu is
	 * held: two threads opening the same collection would each build its
	 * index, and a remote index is built by emptying the one collection on
	 * its server that both would share.
	 */
	pthread_mutex_lock(&eng->open_mu);
	coll = registry_get(eng, tenant, name);
	if (!coll && store_collection_get(eng->store, tenant, name, &c, err) == 0) {
		coll = coll_open(eng, &c, err);
		if (coll)
			coll = registry_insert(eng, coll);
	}
	pthread_mutex_unlock(&eng->open_mu);
	return coll;
}

const char *rag_engine_model(struct rag_engine *eng)
{
	return eng->emb->name;
}

struct embedder *rag_engine_embedder(struct rag_engine *eng)
{
	return eng->emb;
}

int rag_engine_ready(struct rag_engine *eng)
{
	return atomic_load(&eng->ready);
}

#define RAG_FOLLOWER_STALE_MIN_MS 10000 /* a pass may wait on a long write transaction */

int rag_engine_health(struct rag_engine *eng, struct rag_err *err)
{
	int64_t stale = 10 * (int64_t)(eng->opts.follow_max_backoff_ms > eng->opts.follow_interval_ms
					       ? eng->opts.follow_max_backoff_ms
					       : eng->opts.follow_interval_ms);
	int rc;

	if (!atomic_load(&eng->ready))
		return rag_err_set(err, RAG_EBUSY, NULL, "indexes are loading");
	rc = store_ping(eng->store, err);
	if (rc < 0)
		return rc;
	if (stale < RAG_FOLLOWER_STALE_MIN_MS)
		stale = RAG_FOLLOWER_STALE_MIN_MS;
	if (eng->has_follower && rag_wall_ms() - atomic_load(&eng->followed_ms) > stale)
		return rag_err_set(err, RAG_EBUSY, NULL,
				   "the change-log follower has not completed a pass for %lld ms",
				   (long long)(rag_wall_ms() - atomic_load(&eng->followed_ms)));
	return 0;
}

#define LEXICAL_PURGE_BATCH 256 /* FTS5 rows deleted per lock hold: ~80 ms here */
#define LEXICAL_PURGE_MS 50     /* per collection per follower pass */

/*
 * Deletes removed chunks from the lexical index a few at a time (see
 * lexical.h); returns how many are still pending, so that the follower
 * keeps its short interval until they are gone.
 */
static size_t purge_lexical(struct rag_coll *coll)
{
	double t0 = rag_now_ms();
	size_t left;

	if (!coll->lx)
		return 0;
	pthread_mutex_lock(&coll->apply_mu);
	while ((left = lexical_purge(coll->lx, LEXICAL_PURGE_BATCH)) > 0 &&
	       rag_now_ms() - t0 < LEXICAL_PURGE_MS)
		;
	pthread_mutex_unlock(&coll->apply_mu);
	return left;
}

/*
 * One follower pass: discover collections, drop deleted ones, replay logs.
 * Returns how much moved (changes applied, collections found or dropped):
 * 0 lets the follower back off.
 */
static int64_t follow_once(struct rag_engine *eng)
{
	int64_t moved = 0;
	struct store_collection *all = NULL;
	struct rag_coll **seen = NULL;
	struct hashmap_iter it;
	size_t n = 0, n_seen = 0, had;
	const char *key;
	void *val;
	struct rag_err err = { 0 };

	if (store_collection_list_all(eng->store, &all, &n, &err) < 0) {
		log_warn("change-log follower: %s", err.msg);
		return 0;
	}
	pthread_rwlock_rdlock(&eng->lock);
	had = hashmap_count(eng->colls);
	pthread_rwlock_unlock(&eng->lock);
	for (size_t i = 0; i < n; i++) {
		struct rag_coll *coll = rag_coll_acquire(eng, all[i].tenant, all[i].name, &err);
		int64_t before;

		if (coll && coll->c.id != all[i].id) {
			/* Deleted and recreated elsewhere: load the new one. */
			registry_remove(eng, all[i].tenant, all[i].name, coll->c.id);
			rag_coll_unref(coll);
			coll = rag_coll_acquire(eng, all[i].tenant, all[i].name, &err);
		}
		if (!coll) {
			log_warn("change-log follower: %s", err.msg);
			rag_err_clear(&err);
			continue;
		}
		before = atomic_load(&coll->applied_seq);
		if (rag_index_catch_up(eng, coll, &err) < 0) {
			log_warn("change-log follower: %s", err.msg);
			rag_err_clear(&err);
		}
		moved += atomic_load(&coll->applied_seq) - before;
		moved += purge_lexical(coll) > 0;
		rag_coll_unref(coll);
	}
	/* Drop what the store no longer has. */
	pthread_rwlock_rdlock(&eng->lock);
	seen = calloc(hashmap_count(eng->colls) + 1, sizeof(*seen));
	hashmap_iter_init(&it, eng->colls);
	while (seen && hashmap_iter_next(&it, &key, &val)) {
		struct rag_coll *coll = val;
		int found = 0;

		for (size_t i = 0; i < n && !found; i++)
			found = all[i].id == coll->c.id;
		if (!found) {
			atomic_fetch_add(&coll->refs, 1);
			seen[n_seen++] = coll;
		}
	}
	moved += (int64_t)n_seen + (hashmap_count(eng->colls) > had
					    ? (int64_t)(hashmap_count(eng->colls) - had) : 0);
	pthread_rwlock_unlock(&eng->lock);
	for (size_t i = 0; i < n_seen; i++) {
		char *path = rag_index_path(eng, seen[i]->c.id);

		registry_remove(eng, seen[i]->c.tenant, seen[i]->c.name, seen[i]->c.id);
		rag_index_drop(seen[i]);
		if (path)
			unlink(path);
		free(path);
		rag_coll_unref(seen[i]);
	}
	free(seen);
	store_collection_list_free(all, n);
	atomic_store(&eng->followed_ms, rag_wall_ms());
	return moved;
}

/* The absolute time ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/*
 * Polls every follow_interval_ms while the log moves; each idle pass doubles
 * the wait up to follow_max_backoff_ms, and a nudge (rag_engine_nudge) ends
 * the wait at once and resets it. A nudge that comes during a pass is kept
 * in `nudged` and starts the next pass without waiting.
 */
static void *follower_main(void *arg)
{
	struct rag_engine *eng = arg;
	long wait_ms = eng->opts.follow_interval_ms;
	long max_ms = eng->opts.follow_max_backoff_ms > eng->opts.follow_interval_ms
			      ? eng->opts.follow_max_backoff_ms
			      : eng->opts.follow_interval_ms;

	pthread_mutex_lock(&eng->stop_mu);
	while (!eng->stop) {
		struct timespec ts = deadline_in(wait_ms);
		int nudged;

		while (!eng->stop && !eng->nudged &&
		       pthread_cond_timedwait(&eng->stop_cond, &eng->stop_mu, &ts) == 0)
			;
		if (eng->stop)
			break;
		nudged = eng->nudged;
		eng->nudged = 0;
		pthread_mutex_unlock(&eng->stop_mu);
		if (follow_once(eng) > 0 || nudged)
			wait_ms = eng->opts.follow_interval_ms;
		else
			wait_ms = wait_ms * 2 > max_ms ? max_ms : wait_ms * 2;
		pthread_mutex_lock(&eng->stop_mu);
	}
	pthread_mutex_unlock(&eng->stop_mu);
	return NULL;
}

/*
 * Removes the snapshots of collections the store no longer has: a crash
 * between a collection's delete and the unlink of its snapshot leaves one
 * behind for good, as large as the index. Only ids below the highest live
 * one are swept: ids are never reused, so those collections are certainly
 * gone, while a higher id may belong to a collection another process on
 * this data directory created after the listing.
 */
static void sweep_snapshots(struct rag_engine *eng)
{
	struct store_collection *all = NULL;
	struct dirent *de;
	size_t n = 0;
	int64_t max_id = 0;
	DIR *dir;

	if (store_collection_list_all(eng->store, &all, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (all[i].id > max_id)
			max_id = all[i].id;
	dir = opendir(eng->index_dir);
	while (dir && (de = readdir(dir)) != NULL) {
		char *end;
		long long id = strtoll(de->d_name, &end, 10);
		int live = 0;

		if (end == de->d_name || id <= 0 || id >= max_id ||
		    (strcmp(end, ".vidx") != 0 && strcmp(end, ".vidx.tmp") != 0))
			continue;
		for (size_t i = 0; i < n && !live; i++)
			live = all[i].id == id;
		if (!live && unlinkat(dirfd(dir), de->d_name, 0) == 0)
			log_info("removed '%s/%s': its collection was deleted", eng->index_dir,
				 de->d_name);
	}
	if (dir)
		closedir(dir);
	store_collection_list_free(all, n);
}

void rag_engine_nudge(struct rag_engine *eng)
{
	if (!eng || !eng->has_follower)
		return;
	pthread_mutex_lock(&eng->stop_mu);
	eng->nudged = 1;
	pthread_cond_broadcast(&eng->stop_cond);
	pthread_mutex_unlock(&eng->stop_mu);
}

void rag_engine_changed(struct rag_engine *eng)
{
	if (eng->opts.on_change)
		eng->opts.on_change(eng->opts.on_change_ctx);
}

static int make_index_dir(struct rag_engine *eng, struct rag_err *err)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_addf(&sb, "%s/index", eng->opts.data_dir);
	if (sbuf_error(&sb))
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	if (mkdir(sb.buf, 0755) < 0 && errno != EEXIST) {
		rag_err_set(err, RAG_EIO, "data_dir", "cannot create '%s': %s", sb.buf,
			    strerror(errno));
		sbuf_release(&sb);
		return RAG_EIO;
	}
	eng->index_dir = sbuf_detach(&sb, NULL);
	return 0;
}

struct rag_engine *rag_engine_new(const struct rag_engine_options *opts, struct store *store,
				  struct embedder *emb, struct rag_err *err)
{
	struct rag_engine *eng = calloc(1, sizeof(*eng));

	if (!eng) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	eng->opts = *opts;
	eng->store = store;
	eng->emb = emb;
	pthread_rwlock_init(&eng->lock, NULL);
	pthread_mutex_init(&eng->open_mu, NULL);
	pthread_mutex_init(&eng->stop_mu, NULL);
	pthread_cond_init(&eng->stop_cond, NULL);
	pthread_cond_init(&eng->jobs_cond, NULL);
	eng->colls = hashmap_new(16);
	if (!eng->colls) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	if (make_index_dir(eng, err) < 0 || rag_models_init(eng, err) < 0)
		goto fail;
	if (opts->load_indexes) {
		double t0 = rag_now_ms();
		size_t n;

		follow_once(eng);
		sweep_snapshots(eng);
		n = hashmap_count(eng->colls);
		log_info("indexes loaded: %zu collections in %.0f ms", n, rag_now_ms() - t0);
	}
	atomic_store(&eng->ready, 1);
	atomic_store(&eng->followed_ms, rag_wall_ms());
	if (opts->load_indexes && rag_metrics_attach(eng) < 0) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	if (opts->job_workers > 0 && rag_jobs_start(eng, err) < 0)
		goto fail;
	if (opts->load_indexes && opts->follow_interval_ms > 0) {
		if (pthread_create(&eng->follower, NULL, follower_main, eng) != 0) {
			rag_err_set(err, RAG_EINTERNAL, NULL, "cannot start the follower thread");
			goto fail;
		}
		eng->has_follower = 1;
	}
	return eng;
fail:
	rag_engine_free(eng);
	return NULL;
}

void rag_engine_free(struct rag_engine *eng)
{
	struct hashmap_iter it;
	const char *key;
	void *val;

	if (!eng)
		return;
	rag_metrics_detach(eng);
	if (eng->workers)
		rag_jobs_stop(eng);
	if (eng->has_follower) {
		pthread_mutex_lock(&eng->stop_mu);
		eng->stop = 1;
		pthread_cond_signal(&eng->stop_cond);
		pthread_mutex_unlock(&eng->stop_mu);
		pthread_join(eng->follower, NULL);
	}
	if (eng->colls) {
		hashmap_iter_init(&it, eng->colls);
		while (hashmap_iter_next(&it, &key, &val)) {
			struct rag_err err = { 0 };

			if (eng->opts.snapshot && rag_index_snapshot(eng, val, &err) < 0)
				log_warn("snapshot not saved: %s", err.msg);
			rag_coll_unref(val);
		}
		hashmap_free(eng->colls);
	}
	pthread_rwlock_destroy(&eng->lock);
	pthread_mutex_destroy(&eng->open_mu);
	pthread_mutex_destroy(&eng->stop_mu);
	pthread_cond_destroy(&eng->stop_cond);
	pthread_cond_destroy(&eng->jobs_cond);
	if (eng->models)
		rag_models_release(eng);
	free(eng->index_dir);
	free(eng->prompt_template);
	free(eng);
}
