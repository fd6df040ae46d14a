/*
 * The MongoDB store's locks between processes (store_mongo.c explains
 * why writes need them): a collection's write lock, whose document also
 * carries the intent of the write in progress so that the next holder can
 * finish or undo the write of one that died, and named mutexes for the
 * read-modify-writes that servers without atomic updates (FerretDB) would
 * otherwise interleave.
 *
 * Both are documents in `locks` taken by an insert: the unique _id makes
 * the insert atomic on every server. A holder renews nothing: a lock
 * outlives its lease only when its holder died (or stalled longer than the
 * lease, which sm_lock_intent detects before the write's commit point).
 * Waiters poll with exponential back-off up to SM_LOCK_POLL_MAX_US.
 */
#include "store/store_mongo_int.h"

#include "core/rag_error.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "core/banned.h"

/*
 * One try at the lock: takes it when free (insert) or expired (its holder
 * died: recover its intent first). 1 taken, 2 taken after a recovery, 0
 * held by another, or an error.
 */
static int lock_try(struct sm_conn *c, mongoc_collection_t *locks, int64_t cid,
		    struct rag_err *err)
{
	struct store_mongo *sm = c->sm;
	int64_t now = sm_now_ms(), until = now + sm->opts.lock_lease_ms;
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid), "until", "{", "$lt", BCON_INT64(now), "}");
	bson_t *u = BCON_NEW("$set", "{", "owner", BCON_UTF8(sm->owner), "until",
			     BCON_INT64(until), "}");
	bson_t *doc = BCON_NEW("_id", BCON_INT64(cid), "owner", BCON_UTF8(sm->owner), "until",
			       BCON_INT64(until));
	bson_t old, opts = BSON_INITIALIZER;
	bson_iter_t it;
	bson_error_t e;
	int found = 0, rc;

	rc = sm_find_modify(c, locks, q, u, 0, 0, &old, &found, err);
	if (rc == 0 && found) {
		rc = 1;
		if (bson_iter_init_find(&it, &old, "intent") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
			const uint8_t *data;
			uint32_t len;
			bson_t intent;

			bson_iter_document(&it, &len, &data);
			bson_init_static(&intent, data, len);
			rc = store_mongo_recover(c, cid, &intent, err);
			rc = rc < 0 ? rc : 2;
		}
	} else if (rc == 0) {
		sm_write_opts(sm, &opts);
		if (mongoc_collection_insert_one(locks, doc, &opts, NULL, &e))
			rc = 1;
		else if (e.code != SM_DUP_KEY)
			rc = sm_fail(c, &e, err);
	}
	bson_destroy(&old);
	bson_destroy(&opts);
	bson_destroy(q);
	bson_destroy(u);
	bson_destroy(doc);
	return rc;
}

int sm_lock(struct sm_conn *c, int64_t cid, struct rag_err *err)
{
	struct store_mongo *sm = c->sm;
	mongoc_collection_t *locks = sm_coll(c, SM_LOCKS);
	int64_t deadline = sm_now_ms() + sm->opts.lock_timeout_ms;
	useconds_t wait_us = 1000;
	int rc;

	pthread_mutex_lock(&sm->write_lock);
	for (;;) {
		rc = lock_try(c, locks, cid, err);
		if (rc != 0)
			break;
		if (sm_now_ms() > deadline) {
			rc = rag_err_set(err, RAG_EBUSY, NULL,
					 "store: %s: collection %lld is being written by another"
					 " process (lock wait over %d ms)",
					 c->what, (long long)cid, sm->opts.lock_timeout_ms);
			break;
		}
		usleep(wait_us);
		wait_us = wait_us * 2 > SM_LOCK_POLL_MAX_US ? SM_LOCK_POLL_MAX_US : wait_us * 2;
	}
	mongoc_collection_destroy(locks);
	if (rc < 0) {
		pthread_mutex_unlock(&sm->write_lock);
		return rc;
	}
	/* A recovered intent is done: clear it so that a later takeover does not redo it. */
	if (rc == 1)
		return 0;
	if (rc == 2) {
		bson_t *q = BCON_NEW("_id", BCON_INT64(cid), "owner", BCON_UTF8(sm->owner));
		bson_t *u = BCON_NEW("$unset", "{", "intent", BCON_UTF8(""), "}");

		locks = sm_coll(c, SM_LOCKS);
		rc = sm_find_modify(c, locks, q, u, 0, 0, NULL, NULL, err);
		mongoc_collection_destroy(locks);
		bson_destroy(q);
		bson_destroy(u);
		if (rc < 0)
			sm_unlock(c, cid);
	}
	return rc;
}

int sm_lock_intent(struct sm_conn *c, int64_t cid, const bson_t *intent, struct rag_err *err)
{
	struct store_mongo *sm = c->sm;
	mongoc_collection_t *locks = sm_coll(c, SM_LOCKS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid), "owner", BCON_UTF8(sm->owner));
	bson_t *u = BCON_NEW("$set", "{", "intent", BCON_DOCUMENT(intent), "until",
			     BCON_INT64(sm_now_ms() + sm->opts.lock_lease_ms), "}");
	int found = 0;
	int rc = sm_find_modify(c, locks, q, u, 0, 0, NULL, &found, err);

	if (rc == 0 && !found)
		rc = rag_err_set(err, RAG_EBUSY, NULL,
				 "store: %s: the write lock of collection %lld expired and was"
				 " taken over; nothing was written", c->what, (long long)cid);
	bson_destroy(q);
	bson_destroy(u);
	mongoc_collection_destroy(locks);
	return rc;
}

void sm_unlock(struct sm_conn *c, int64_t cid)
{
	mongoc_collection_t *locks = sm_coll(c, SM_LOCKS);
	bson_t *q = BCON_NEW("_id", BCON_INT64(cid), "owner", BCON_UTF8(c->sm->owner));

	/* On failure the lease runs out and the next writer finds no intent to redo. */
	mongoc_collection_delete_one(locks, q, NULL, NULL, NULL);
	bson_destroy(q);
	mongoc_collection_destroy(locks);
	pthread_mutex_unlock(&c->sm->write_lock);
}

int sm_mutex_take(struct sm_conn *c, const char *name, struct rag_err *err)
{
	struct store_mongo *sm = c->sm;
	mongoc_collection_t *locks = sm_coll(c, SM_LOCKS);
	int64_t deadline = sm_now_ms() + sm->opts.lock_timeout_ms;
	useconds_t wait_us = 500;
	bson_error_t e;
	int rc = 0;

	for (;;) {
		int64_t now = sm_now_ms();
		bson_t *doc = BCON_NEW("_id", BCON_UTF8(name), "owner", BCON_UTF8(sm->owner),
				       "until", BCON_INT64(now + sm->opts.lock_lease_ms));
		bson_t *stale = BCON_NEW("_id", BCON_UTF8(name), "until", "{", "$lt",
					 BCON_INT64(now), "}");
		bool ok = mongoc_collection_insert_one(locks, doc, NULL, NULL, &e);

		if (!ok && e.code == SM_DUP_KEY)
			mongoc_collection_delete_one(locks, stale, NULL, NULL, NULL); /* holder died */
		bson_destroy(doc);
		bson_destroy(stale);
		if (ok)
			break;
		if (e.code != SM_DUP_KEY) {
			rc = sm_fail(c, &e, err);
			break;
		}
		if (now > deadline) {
			rc = rag_err_set(err, RAG_EBUSY, NULL, "store: %s: '%s' is held by another"
					 " process (wait over %d ms)", c->what, name,
					 sm->opts.lock_timeout_ms);
			break;
		}
		usleep(wait_us);
		wait_us = wait_us * 2 > SM_LOCK_POLL_MAX_US ? SM_LOCK_POLL_MAX_US : wait_us * 2;
	}
	mongoc_collection_destroy(locks);
	return rc;
}

void sm_mutex_drop(struct sm_conn *c, const char *name)
{
	mongoc_collection_t *locks = sm_coll(c, SM_LOCKS);
	bson_t *q = BCON_NEW("_id", BCON_UTF8(name), "owner", BCON_UTF8(c->sm->owner));

	mongoc_collection_delete_one(locks, q, NULL, NULL, NULL);
	bson_destroy(q);
	mongoc_collection_destroy(locks);
}
