/*
 * The "hnsw" index: hnswlib 0.6.2 (Debian's header-only libhnswlib-dev)
 * compiled here with the build's flags, behind the vindex ops.
 *
 * Ids are hnswlib labels. hnswlib's addPoint on an existing label updates
 * that element in place (unmarking it if it was deleted), remove is
 * markDelete, and deleted slots are never reused by 0.6.2: capacity grows
 * with churn (doubling via resizeIndex) and a rebuild from the store
 * reclaims it. ef is fixed at ef_search; since searchKnn explores
 * max(ef, k) candidates, a search that needs more asks for a larger k
 * instead of changing shared state.
 *
 * Filtered search (0.6.2 has no filter functor): ask for k, then 4x as
 * many, ..., keeping the results the filter keeps, until k are kept; past
 * HNSW_FILTER_EXACT candidates (a very selective filter), or whenever the
 * graph returns fewer than it should, scan every live element exactly.
 * So a search returns k results whenever k matches exist, like flat.
 * Scores are recomputed with vindex_dot over the stored vectors, so they
 * equal the flat index's and ties order by id.
 *
 * Snapshot payload: hnswlib's own serialisation (saveIndex), produced and
 * consumed through a memfd, since 0.6.2 only speaks file names. The ids
 * section lists the live ids and is checked against the loaded graph.
 *
 * Locking: lock (writer-preferring rwlock) guards the hnswlib object;
 * searches, save, count, memory and check hold it shared, add and remove
 * exclusive. hnswlib's own searchKnn is const and safe to run concurrently.
 */
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include "core/rag_error.h"
#include "index/vindex.h"
#include "index/vindex_backends.h"
#include "index/vindex_snapshot.h"
}

#include "core/banned.h"

#define HNSW_CAP_MIN 1024	  /* first capacity: resizeIndex copies everything */
#define HNSW_FILTER_EXACT 4096	  /* candidates asked for before an exact filtered scan */
#define HNSW_PARALLEL_MIN 256	  /* batches this large are inserted by several threads */
#define HNSW_THREADS_MAX 4	  /* graph inserts contend on locks beyond this */

namespace {

struct hnsw {
	struct vindex base;
	pthread_rwlock_t lock;
	hnswlib::InnerProductSpace *space;
	hnswlib::HierarchicalNSW<float> *g;
	size_t ef_search;
};

struct hit {
	float score;
	int64_t id;
};

bool better(const hit &a, const hit &b)
{
	return a.score > b.score || (a.score == b.score && a.id < b.id);
}

size_t live_count(const hnsw *h)
{
	return h->g->cur_element_count - h->g->num_deleted_;
}

float score_of(const hnsw *h, hnswlib::tableint in, const float *q)
{
	float s = vindex_dot(q, (const float *)h->g->getDataByInternalId(in), h->base.dim);
	return std::isnan(s) ? -INFINITY : s;
}

/* Every live element the filter keeps, exactly: the fallback for rare matches. */
void exact_scan(const hnsw *h, const float *q, const struct vindex_filter *filter,
		std::vector<hit> &out)
{
	out.clear();
	for (hnswlib::tableint in = 0; in < h->g->cur_element_count; in++) {
		if (h->g->isMarkedDeleted(in))
			continue;
		int64_t id = (int64_t)h->g->getExternalLabel(in);
		if (filter && !filter->keep(filter->ctx, id))
			continue;
		out.push_back({ score_of(h, in, q), id });
	}
}

int hnsw_search(struct vindex *vi, const float *query, size_t k,
		const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		size_t *n_out, struct rag_err *err)
{
	hnsw *h = (hnsw *)vi;
	std::vector<hit> hits;

	if (!n_out)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL n_out");
	*n_out = 0;
	if (!query || (k > 0 && !out_ids))
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_search: NULL query or output");
	for (size_t i = 0; i < vi->dim; i++)
		if (!std::isfinite(query[i]))
			return rag_err_set(err, RAG_EINVAL, "vector",
					   "query vector has a non-finite component %zu", i);
	if (filter && !filter->keep)
		filter = NULL;

	pthread_rwlock_rdlock(&h->lock);
	try {
		size_t live = live_count(h);
		size_t want = std::min(k, live);
		size_t ask = want;
		bool exact = false;

		while (want > 0) {
			auto pq = h->g->searchKnn(query, ask);
			size_t got = pq.size();
			hits.clear();
			for (; !pq.empty(); pq.pop()) {
				auto in = h->g->label_lookup_.at(pq.top().second);
				int64_t id = (int64_t)pq.top().second;
				if (filter && !filter->keep(filter->ctx, id))
					continue;
				hits.push_back({ score_of(h, in, query), id });
			}
			if (hits.size() >= want)
				break;
			/* The graph gave fewer than asked: it cannot do better, scan. */
			if (got < std::min(ask, live) || ask >= live || ask >= HNSW_FILTER_EXACT) {
				exact = true;
				break;
			}
			ask = std::min(ask * 4, live);
		}
		if (exact)
			exact_scan(h, query, filter, hits);
		size_t n = std::min(hits.size(), want);
		std::partial_sort(hits.begin(), hits.begin() + n, hits.end(), better);
		for (size_t i = 0; i < n; i++) {
			out_ids[i] = hits[i].id;
			if (out_scores)
				out_scores[i] = hits[i].score;
		}
		*n_out = n;
	} catch (const std::bad_alloc &) {
		pthread_rwlock_unlock(&h->lock);
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory searching the hnsw index");
	} catch (const std::exception &e) {
		pthread_rwlock_unlock(&h->lock);
		return rag_err_set(err, RAG_EINTERNAL, NULL, "hnsw search failed: %s", e.what());
	}
	pthread_rwlock_unlock(&h->lock);
	return 0;
}

/*
 * Inserts a batch. hnswlib's addPoint is safe to call from several threads,
 * and a graph build is CPU-bound, so a large batch of distinct ids is split
 * across threads. A batch that repeats an id goes in order on one thread,
 * so its last vector wins, as the contract asks. Caller holds lock
 * exclusive.
 */
void insert(hnsw *h, const int64_t *ids, const float *vecs, size_t n)
{
	size_t dim = h->base.dim, n_threads = 1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (n >= HNSW_PARALLEL_MIN && cpus > 1) {
		std::unordered_set<int64_t> seen(ids, ids + n);
		if (seen.size() == n)
			n_threads = std::min((size_t)cpus, (size_t)HNSW_THREADS_MAX);
	}
	std::vector<std::thread> threads;
	std::vector<std::exception_ptr> errs(n_threads);
	auto work = [&](size_t t) {
		try {
			for (size_t i = t; i < n; i += n_threads)
				h->g->addPoint(vecs + i * dim, (hnswlib::labeltype)ids[i]);
		} catch (...) {
			errs[t] = std::current_exception();
		}
	};
	for (size_t t = 1; t < n_threads; t++)
		threads.emplace_back(work, t);
	work(0);
	for (auto &th : threads)
		th.join();
	for (auto &e : errs)
		if (e)
			std::rethrow_exception(e);
}

int hnsw_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
	     struct rag_err *err)
{
	hnsw *h = (hnsw *)vi;
	size_t dim = vi->dim;
	int rc = 0;

	if (n == 0)
		return 0;
	if (!ids || !vecs)
		return rag_err_set(err, RAG_EINVAL, NULL, "vindex_add: NULL ids or vectors");
	if (n > SIZE_MAX / sizeof(float) / dim)
		return rag_err_set(err, RAG_ETOOBIG, NULL, "vindex_add: %zu vectors is too many", n);
	for (size_t i = 0; i < n * dim; i++)
		if (!std::isfinite(vecs[i]))
			return rag_err_set(err, RAG_EINVAL, "vectors",
					   "vector for id %lld has a non-finite component %zu",
					   (long long)ids[i / dim], i % dim);

	pthread_rwlock_wrlock(&h->lock);
	try {
		size_t fresh = 0;
		for (size_t i = 0; i < n; i++)
			fresh += h->g->label_lookup_.count((hnswlib::labeltype)ids[i]) == 0;
		size_t need = h->g->cur_element_count + fresh;
		if (need > h->g->max_elements_)
			h->g->resizeIndex(std::max(need, 2 * h->g->max_elements_));
		insert(h, ids, vecs, n);
	} catch (const std::bad_alloc &) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory growing the hnsw index");
	} catch (const std::exception &e) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "cannot grow the hnsw index: %s", e.what());
	}
	pthread_rwlock_unlock(&h->lock);
	return rc;
}

size_t hnsw_remove(struct vindex *vi, const int64_t *ids, size_t n)
{
	hnsw *h = (hnsw *)vi;
	size_t removed = 0;

	if (!ids)
		return 0;
	pthread_rwlock_wrlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		auto it = h->g->label_lookup_.find((hnswlib::labeltype)ids[i]);
		if (it == h->g->label_lookup_.end() || h->g->isMarkedDeleted(it->second))
			continue;
		h->g->markDeletedInternal(it->second);
		removed++;
	}
	pthread_rwlock_unlock(&h->lock);
	return removed;
}

size_t hnsw_count(struct vindex *vi)
{
	hnsw *h = (hnsw *)vi;

	pthread_rwlock_rdlock(&h->lock);
	size_t n = live_count(h);
	pthread_rwlock_unlock(&h->lock);
	return n;
}

size_t hnsw_memory(struct vindex *vi)
{
	hnsw *h = (hnsw *)vi;

	pthread_rwlock_rdlock(&h->lock);
	const auto *g = h->g;
	size_t per_level = g->size_links_per_element_;
	size_t bytes = sizeof(*h) + g->max_elements_ * (g->size_data_per_element_ + sizeof(void *) +
						       sizeof(int) + sizeof(std::mutex)) +
		       g->label_lookup_.size() * 32; /* one hash node each */
	for (size_t i = 0; i < g->cur_element_count; i++)
		bytes += (size_t)g->element_levels_[i] * per_level;
	pthread_rwlock_unlock(&h->lock);
	return bytes;
}

/* A memfd to hand hnswlib as a file name; -1 with errno on failure. */
int memfd(char *name, size_t len)
{
	int fd = memfd_create("ragd-hnsw", MFD_CLOEXEC);

	if (fd >= 0)
		snprintf(name, len, "/proc/self/fd/%d", fd);
	return fd;
}

int hnsw_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err)
{
	hnsw *h = (hnsw *)vi;
	std::vector<int64_t> ids;
	char name[64];
	void *blob = MAP_FAILED;
	struct stat st;
	int rc = 0;
	int fd = memfd(name, sizeof(name));

	if (fd < 0)
		return rag_err_set(err, RAG_EIO, NULL, "cannot save hnsw index: memfd: %s",
				   strerror(errno));
	pthread_rwlock_rdlock(&h->lock);
	try {
		ids.reserve(live_count(h));
		for (hnswlib::tableint in = 0; in < h->g->cur_element_count; in++)
			if (!h->g->isMarkedDeleted(in))
				ids.push_back((int64_t)h->g->getExternalLabel(in));
		h->g->saveIndex(name);
	} catch (const std::exception &e) {
		rc = rag_err_set(err, RAG_EIO, NULL, "cannot save hnsw index: %s", e.what());
	}
	pthread_rwlock_unlock(&h->lock);
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = rag_err_set(err, RAG_EIO, NULL, "cannot save hnsw index: %s", strerror(errno));
	if (rc == 0 && st.st_size > 0) {
		blob = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (blob == MAP_FAILED)
			rc = rag_err_set(err, RAG_EIO, NULL, "cannot save hnsw index: mmap: %s",
					 strerror(errno));
	}
	if (rc == 0)
		rc = vindex_snapshot_write(path, VINDEX_SNAPSHOT_KIND_HNSW, vi->dim, ids.size(),
					   ids.data(), blob == MAP_FAILED ? "" : blob,
					   blob == MAP_FAILED ? 0 : (size_t)st.st_size, seq, err);
	if (blob != MAP_FAILED)
		munmap(blob, (size_t)st.st_size);
	close(fd);
	return rc;
}

int hnsw_check(struct vindex *vi, struct rag_err *err)
{
	hnsw *h = (hnsw *)vi;
	const hnswlib::HierarchicalNSW<float> *g = h->g;
	size_t deleted = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&h->lock);
	if (g->cur_element_count > g->max_elements_ ||
	    g->label_lookup_.size() != g->cur_element_count) {
		rc = rag_err_set(err, RAG_EINTERNAL, NULL,
				 "hnsw index sizes broken: %zu elements, %zu labels, capacity %zu",
				 (size_t)g->cur_element_count, g->label_lookup_.size(),
				 g->max_elements_);
		goto out;
	}
	for (hnswlib::tableint in = 0; in < g->cur_element_count; in++) {
		auto it = g->label_lookup_.find(g->getExternalLabel(in));
		deleted += g->isMarkedDeleted(in);
		if (it == g->label_lookup_.end() || it->second != in) {
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "hnsw index: element %u's label does not map back",
					 (unsigned)in);
			goto out;
		}
	}
	if (deleted != g->num_deleted_)
		rc = rag_err_set(err, RAG_EINTERNAL, NULL,
				 "hnsw index: %zu elements deleted, counter says %zu", deleted,
				 (size_t)g->num_deleted_);
out:
	pthread_rwlock_unlock(&h->lock);
	return rc;
}

void hnsw_free(struct vindex *vi)
{
	hnsw *h = (hnsw *)vi;

	pthread_rwlock_destroy(&h->lock);
	delete h->g;
	delete h->space;
	delete h;
}

const struct vindex_ops hnsw_ops = {
	"hnsw", hnsw_add, hnsw_remove, hnsw_search, hnsw_count,
	hnsw_memory, hnsw_save, hnsw_check, hnsw_free, NULL,
};

/* The shell of an index without its graph; NULL on ENOMEM. */
hnsw *shell(size_t dim, const struct vindex_spec *spec)
{
	hnsw *h = new (std::nothrow) hnsw();
	pthread_rwlockattr_t attr;

	if (!h)
		return NULL;
	h->base.ops = &hnsw_ops;
	h->base.dim = dim;
	h->ef_search = spec ? spec->ef_search : vindex_spec_default().ef_search;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int rc = pthread_rwlock_init(&h->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	h->space = rc == 0 ? new (std::nothrow) hnswlib::InnerProductSpace(dim) : NULL;
	if (!h->space) {
		if (rc == 0)
			pthread_rwlock_destroy(&h->lock);
		delete h;
		return NULL;
	}
	return h;
}

} /* namespace */

struct vindex *vindex_hnsw_new(size_t dim, const struct vindex_spec *spec, struct rag_err *err)
{
	hnsw *h = shell(dim, spec);

	if (!h) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating an hnsw index");
		return NULL;
	}
	try {
		h->g = new hnswlib::HierarchicalNSW<float>(h->space, HNSW_CAP_MIN, spec->m,
							    spec->ef_construction);
		h->g->setEf(h->ef_search);
	} catch (const std::exception &e) {
		hnsw_free(&h->base);
		rag_err_set(err, RAG_ENOMEM, NULL, "cannot create an hnsw index: %s", e.what());
		return NULL;
	}
	return &h->base;
}

struct vindex *vindex_hnsw_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				 struct rag_err *err)
{
	hnsw *h = shell(snap->dim, spec);
	char name[64];
	int fd = -1;

	if (!h) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading an hnsw index");
		goto fail;
	}
	fd = memfd(name, sizeof(name));
	if (fd < 0 || pwrite(fd, snap->payload, snap->payload_len, 0) !=
			      (ssize_t)snap->payload_len) {
		rag_err_set(err, RAG_EIO, NULL, "cannot stage the hnsw graph: %s", strerror(errno));
		goto fail;
	}
	try {
		/* loadIndex counts deletions into num_deleted_ without zeroing it first. */
		h->g = new hnswlib::HierarchicalNSW<float>(h->space);
		h->g->num_deleted_ = 0;
		h->g->loadIndex(std::string(name), h->space);
	} catch (const std::exception &e) {
		rag_err_set(err, RAG_EINVAL, NULL, "hnsw graph unreadable: %s", e.what());
		goto fail;
	}
	if (h->g->data_size_ != snap->dim * sizeof(float) || live_count(h) != snap->n) {
		rag_err_set(err, RAG_EINVAL, NULL,
			    "hnsw graph holds %zu live vectors of %zu bytes, header says %zu of "
			    "dimension %zu",
			    live_count(h), h->g->data_size_, snap->n, snap->dim);
		goto fail;
	}
	for (size_t i = 0; i < snap->n; i++) {
		auto it = h->g->label_lookup_.find((hnswlib::labeltype)snap->ids[i]);
		if (it == h->g->label_lookup_.end() || h->g->isMarkedDeleted(it->second)) {
			rag_err_set(err, RAG_EINVAL, NULL, "id %lld is not in the hnsw graph",
				    (long long)snap->ids[i]);
			goto fail;
		}
	}
	h->g->setEf(h->ef_search);
	close(fd);
	vindex_snapshot_release(snap);
	return &h->base;
fail:
	if (fd >= 0)
		close(fd);
	if (h)
		hnsw_free(&h->base);
	vindex_snapshot_release(snap);
	return NULL;
}
