/*
 * Jobs: large ingests run in the background by worker threads of the
 * engine, from a queue that lives in the store (store.h, "jobs").
 *
 * A submit writes the job and all its inputs in one transaction and wakes a
 * worker; the client gets the job id at once (HTTP 202) and polls
 * GET /v1/jobs/{id}. A worker claims a job (a lease in the store), then
 * takes its pending items in small batches and upserts each document
 * through rag_ingest. An item that writes its document is recorded done
 * (its input dropped, the job's counters and lease updated) by the
 * document's own commit (store_doc_put with the item named); one that
 * writes nothing (failed, unchanged) is recorded in a transaction of its
 * own. So:
 * - a crash (kill -9) loses at most the item in progress; after a restart,
 *   a worker claims the job once its lease has expired and goes on with the
 *   items still pending. No item whose document was committed is pending,
 *   so none is applied twice: a client's write to that document after the
 *   item's application (acknowledged, maybe newer) is never overwritten by
 *   a rerun, and an item without an id does not come back as a second
 *   document under a new one. The store refuses a put whose item is no
 *   longer pending (RAG_EALREADY: another worker that took the job over
 *   applied it) and the worker moves on.
 * - cancel marks the job cancelled in the store; the worker notices at its
 *   next item (the item's put or finish is refused) and stops.
 * - a file that fails (unsupported, malformed, too big) is recorded with its
 *   reason and the job goes on.
 * - an item refused for a reason of the moment (RAG_ENOSPACE: the disk is
 *   full; RAG_EBUSY), or whose outcome cannot be recorded, is not failed:
 *   the worker waits JOB_RETRY_MS and runs it again, so a job held up by a
 *   full disk goes on once space is freed. The lease is renewed by each
 *   item recorded, so a wait longer than ingest.job_lease_ms lets another
 *   process take the job over (both may then run an item: the first put
 *   records it, the second is refused, a second "unchanged" counts once).
 *
 * Workers of one process never take each other's jobs (the claim skips
 * leases held by this engine's owner id); other processes on the same store
 * take over only expired leases.
 */
#include "rag/rag_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rag_error.h"

#include "core/banned.h"

#define JOB_ITEMS_BATCH 8      /* items read per store call: bodies can be large */
#define JOB_POLL_MS 1000       /* look for jobs of other processes and expired leases */
#define JOB_MAX_ITEMS 100000   /* documents in one job: bounds a request's transaction */
#define JOB_RETRY_MS 1000      /* wait before retrying an item refused for want of space */

void rag_random_hex(char *out, size_t n_bytes)
{
	unsigned char raw[16];

	if (n_bytes > sizeof(raw))
		n_bytes = sizeof(raw);
	if (getrandom(raw, n_bytes, 0) != (ssize_t)n_bytes) {
		int64_t t = rag_wall_ms() ^ (int64_t)getpid();

		memcpy(raw, &t, n_bytes < sizeof(t) ? n_bytes : sizeof(t));
	}
	for (size_t i = 0; i < n_bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

int rag_job_submit(struct rag_engine *eng, const char *tenant, const char *collection,
		   const struct store_job_item *items, size_t n_items, char *id_out,
		   struct rag_err *err)
{
	struct store_job job = { 0 };
	struct rag_coll *coll;
	char id[40] = "job_";
	int rc;

	if (n_items == 0)
		return rag_err_set(err, RAG_EINVAL, "documents", "no documents to ingest");
	if (n_items > JOB_MAX_ITEMS)
		return rag_err_set(err, RAG_ETOOBIG, "documents",
				   "at most %d documents in one job", JOB_MAX_ITEMS);
	coll = rag_coll_acquire(eng, tenant, collection, err);
	if (!coll)
		return err && err->code ? err->code : RAG_ENOTFOUND;
	rag_coll_unref(coll);
	rag_random_hex(id + 4, 12);
	job.id = id;
	job.tenant = tenant;
	job.collection = collection;
	job.kind = "ingest";
	job.spec_json = "{}";
	rc = store_job_create(eng->store, &job, items, n_items, err);
	if (rc < 0)
		return rc;
	snprintf(id_out, RAG_JOB_ID_MAX + 1, "%s", id);
	rag_jobs_wake(eng);
	return 0;
}

void rag_jobs_wake(struct rag_engine *eng)
{
	pthread_mutex_lock(&eng->stop_mu);
	eng->jobs_pending++;
	pthread_cond_broadcast(&eng->jobs_cond);
	pthread_mutex_unlock(&eng->stop_mu);
}

/* Whether the job is still running in the store; a failed read says yes (the finish will tell). */
static int job_running(struct rag_engine *eng, const char *id)
{
	struct store_job now;
	int running = 1;

	if (store_job_get(eng->store, NULL, id, &now, NULL) == 0) {
		running = now.state == STORE_JOB_RUNNING;
		store_job_release(&now);
	}
	return running;
}

/* What became of an item: what the worker still has to record, or why not. */
enum item_outcome {
	ITEM_RETRY = 0,     /* refused for a reason of the moment: nothing recorded, run it again */
	ITEM_DONE = 1,      /* states 1-3 are store_job_item states, to record */
	ITEM_FAILED = 2,
	ITEM_UNCHANGED = 3,
	ITEM_RECORDED = 4,  /* the store recorded it with the document (or had before) */
	ITEM_CANCELLED = 5, /* the job is no longer running: nothing written */
};

/*
 * Runs one item. An ingest hands the item to the store with the document
 * (rag_doc_in.job), which records it done in the same commit: a crash
 * right after that commit cannot leave it pending, to be applied a second
 * time over whatever a client wrote since. So a document written is
 * ITEM_RECORDED, and only the outcomes that write no document (failed,
 * unchanged) are left for store_job_item_finish.
 */
static enum item_outcome run_item(struct rag_engine *eng, const struct store_job *job,
				  const struct store_job_item *it, int64_t *n_chunks, char *why,
				  size_t why_len)
{
	struct store_job_ref ref = { .job_id = job->id, .idx = it->idx,
				     .n_bytes = (int64_t)it->body_len,
				     .lease_ms = eng->opts.job_lease_ms };
	struct rag_doc_in doc = { 0 };
	struct rag_ingest_result res;
	struct rag_err err = { 0 };
	int rc;

	doc.id = it->doc_id && *it->doc_id ? it->doc_id : NULL;
	doc.text = it->body;
	doc.text_len = it->body_len;
	doc.metadata_json = it->metadata_json && *it->metadata_json ? it->metadata_json : NULL;
	doc.format = it->format && *it->format ? it->format : NULL;
	doc.name = it->name && *it->name ? it->name : NULL;
	doc.content_type = it->content_type && *it->content_type ? it->content_type : NULL;
	doc.job = &ref;
	*n_chunks = 0;
	if (rag_job_switches(job->kind)) {
		/* Writes only the private staging collection: a rerun is harmless. */
		if (rag_reembed_item(eng, job, it->doc_id, n_chunks, &err) < 0) {
			snprintf(why, why_len, "%s", err.msg);
			return ITEM_FAILED;
		}
		return ITEM_DONE;
	}
	rc = rag_ingest(eng, job->tenant, job->collection, &doc, &res, &err);
	if (rc == 0)
		return res.unchanged ? ITEM_UNCHANGED : ITEM_RECORDED;
	snprintf(why, why_len, "%s", err.msg);
	if (rc == RAG_EALREADY)
		return ITEM_RECORDED; /* applied by an earlier run whose finish we did not see */
	if (rc == RAG_ENOSPACE || rc == RAG_EBUSY)
		return ITEM_RETRY;
	/* The store's word for a job no longer running; any other conflict is the item's. */
	if (rc == RAG_ECONFLICT && !job_running(eng, job->id))
		return ITEM_CANCELLED;
	return ITEM_FAILED;
}

static int stopping(struct rag_engine *eng)
{
	int stop;

	pthread_mutex_lock(&eng->stop_mu);
	stop = eng->stop;
	pthread_mutex_unlock(&eng->stop_mu);
	return stop;
}

/* Sleeps ms unless the engine stops meanwhile. */
static void pause_ms(struct rag_engine *eng, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&eng->stop_mu);
	if (!eng->stop) /* rag_jobs_stop broadcasts jobs_cond; a new job may wake it early */
		pthread_cond_timedwait(&eng->jobs_cond, &eng->stop_mu, &ts);
	pthread_mutex_unlock(&eng->stop_mu);
}

/* Works through a claimed job until it is done, cancelled, or the engine stops. */
static void run_job(struct rag_engine *eng, const char *id)
{
	struct store_job job;
	struct rag_err err = { 0 };
	int cancelled = 0;

	if (store_job_get(eng->store, NULL, id, &job, &err) < 0) {
		log_warn("job '%s': %s", id, err.msg);
		return;
	}
	log_info("job '%s' running (%s): %lld documents of '%s'", id, job.kind,
		 (long long)job.n_total, job.collection);
	if (rag_job_switches(job.kind) && rag_reembed_prepare(eng, &job, &err) < 0) {
		store_job_finish(eng->store, id, STORE_JOB_FAILED, err.msg, NULL);
		log_warn("job '%s' failed: %s", id, err.msg);
		store_job_release(&job);
		return;
	}
	while (!cancelled && !stopping(eng)) {
		struct store_job_item *items = NULL;
		size_t n = 0;

		if (store_job_items_next(eng->store, id, JOB_ITEMS_BATCH, &items, &n, &err) < 0) {
			log_warn("job '%s': %s", id, err.msg);
			break;
		}
		if (n == 0) {
			struct store_job now;
			int all_failed;

			store_job_release(&job);
			if (store_job_get(eng->store, NULL, id, &now, &err) < 0)
				break;
			all_failed = now.n_total > 0 && now.n_failed == now.n_total;
			if (rag_job_switches(now.kind)) {
				/* A document that failed would be missing after the switch. */
				all_failed = now.n_failed > 0;
				if (!all_failed && rag_reembed_finish(eng, &now, &err) < 0) {
					store_job_finish(eng->store, id, STORE_JOB_FAILED, err.msg, NULL);
					log_warn("job '%s' failed: %s", id, err.msg);
					rag_reembed_abandon(eng, &now);
					store_job_release(&now);
					return;
				}
			}
			if (all_failed && rag_job_switches(now.kind))
				rag_reembed_abandon(eng, &now);
			store_job_finish(eng->store, id,
					 all_failed ? STORE_JOB_FAILED : STORE_JOB_SUCCEEDED,
					 !all_failed ? NULL
					 : rag_job_switches(now.kind)
						 ? "some documents failed: the collection was not switched"
						 : "every document failed",
					 NULL);
			log_info("job '%s' %s: %lld done, %lld unchanged, %lld failed", id,
				 all_failed ? "failed" : "succeeded", (long long)now.n_done,
				 (long long)now.n_skipped, (long long)now.n_failed);
			store_job_release(&now);
			return;
		}
		for (size_t i = 0; i < n && !cancelled && !stopping(eng); i++) {
			char why[RAG_ERR_MSG_MAX] = "";
			int64_t n_chunks;
			enum item_outcome state = run_item(eng, &job, &items[i], &n_chunks, why,
							   sizeof(why));
			int rc;

			if (state == ITEM_CANCELLED) {
				cancelled = 1;
				break;
			}
			if (state == ITEM_RECORDED)
				continue;
			if (state == ITEM_RETRY) {
				/*
				 * Not the document's fault: wait and take the same
				 * items again rather than fail them (or spin).
				 */
				log_warn("job '%s': item %lld waits: %s", id,
					 (long long)items[i].idx, why);
				pause_ms(eng, JOB_RETRY_MS);
				break;
			}
			rag_err_clear(&err);
			rc = store_job_item_finish(eng->store, id, items[i].idx, (int)state,
						   state == ITEM_FAILED ? why : NULL, n_chunks,
						   (int64_t)items[i].body_len, eng->opts.job_lease_ms,
						   &err);
			if (rc == RAG_ECONFLICT) {
				cancelled = 1;
			} else if (rc < 0) {
				log_warn("job '%s': %s", id, err.msg);
				pause_ms(eng, JOB_RETRY_MS); /* a full disk: the item is run again */
				break;
			}
		}
		store_job_items_free(items, n);
	}
	if (cancelled && rag_job_switches(job.kind))
		rag_reembed_abandon(eng, &job);
	if (cancelled)
		log_info("job '%s' cancelled", id);
	store_job_release(&job);
}

static void *worker_main(void *arg)
{
	struct rag_engine *eng = arg;

	for (;;) {
		struct rag_err err = { 0 };
		char *id = NULL;

		if (stopping(eng))
			break;
		if (store_job_claim(eng->store, eng->job_owner, eng->opts.job_lease_ms, &id,
				    &err) < 0)
			log_warn("job queue: %s", err.msg);
		if (id) {
			run_job(eng, id);
			free(id);
			continue;
		}
		pthread_mutex_lock(&eng->stop_mu);
		if (!eng->stop && eng->jobs_pending == 0) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += JOB_POLL_MS / 1000;
			pthread_cond_timedwait(&eng->jobs_cond, &eng->stop_mu, &ts);
		}
		eng->jobs_pending = 0;
		pthread_mutex_unlock(&eng->stop_mu);
	}
	return NULL;
}

int rag_jobs_start(struct rag_engine *eng, struct rag_err *err)
{
	char host[64] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(eng->job_owner, sizeof(eng->job_owner), "%.64s/%d/", host, (int)getpid());
	rag_random_hex(eng->job_owner + strlen(eng->job_owner), 6);
	if (eng->opts.job_lease_ms <= 0)
		eng->opts.job_lease_ms = RAG_JOB_LEASE_MS;
	eng->workers = calloc((size_t)(eng->opts.job_workers > 0 ? eng->opts.job_workers : 1),
			      sizeof(*eng->workers));
	if (!eng->workers)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	for (int i = 0; i < eng->opts.job_workers; i++) {
		if (pthread_create(&eng->workers[i], NULL, worker_main, eng) != 0)
			return rag_err_set(err, RAG_EINTERNAL, NULL, "cannot start a job worker");
		eng->n_workers++;
	}
	return 0;
}

void rag_jobs_stop(struct rag_engine *eng)
{
	pthread_mutex_lock(&eng->stop_mu);
	eng->stop = 1;
	pthread_cond_broadcast(&eng->jobs_cond);
	pthread_mutex_unlock(&eng->stop_mu);
	for (int i = 0; i < eng->n_workers; i++)
		pthread_join(eng->workers[i], NULL);
	eng->n_workers = 0;
	free(eng->workers);
	eng->workers = NULL;
}

int rag_job_get(struct rag_engine *eng, const char *tenant, const char *id,
		struct store_job *out, struct rag_err *err)
{
	return store_job_get(eng->store, tenant, id, out, err);
}

int rag_job_cancel(struct rag_engine *eng, const char *tenant, const char *id,
		   struct rag_err *err)
{
	return store_job_cancel(eng->store, tenant, id, err);
}

int rag_job_errors(struct rag_engine *eng, const char *id, size_t limit,
		   struct store_job_item **out, size_t *n_out, struct rag_err *err)
{
	return store_job_errors(eng->store, id, limit, out, n_out, err);
}

int64_t rag_engine_wall_ms(void)
{
	return rag_wall_ms();
}
