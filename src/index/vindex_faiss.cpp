/*
 * The "faiss" index: any FAISS index_factory string (Debian's libfaiss-dev
 * 1.7.3) behind the vindex ops, e.g. "IVF1024,PQ48" for a large collection.
 *
 * The vectors themselves stay in an inner flat index (the f32 truth): a
 * search re-scores FAISS's best `rescore` candidates exactly from it, so
 * scores equal the flat index's and a compressed index (PQ) loses little
 * recall; a filter too selective for FAISS's candidates falls back to an
 * exact filtered scan of it; and the FAISS index can be trained from it.
 * The price is memory: f32 vectors plus FAISS's codes. IVF-PQ here saves
 * search time, not memory.
 *
 * Training: an index that needs it (IVF, PQ) is built only once the
 * collection holds train_min vectors (FAISS's advice for k-means: 39 per
 * IVF list, 39 per PQ centroid, FAISS_TRAIN_MIN for anything else); before that every
 * search is the exact flat scan. At that point the index is trained on
 * everything the collection holds and filled; later vectors are added to
 * it as they come. An index that needs no training (HNSW32, Flat) is
 * built at once.
 *
 * Labels: FAISS gets sequential labels (its own add order); label_id maps
 * a label back to our id, -1 once that vector was removed or replaced, and
 * id_label maps a live id to its current label. Nothing is removed from
 * the FAISS index itself (not every FAISS index supports remove_ids), so
 * churn costs memory until the next rebuild from the store.
 *
 * Shards (spec->shards > 1, the design's IndexShards for large
 * collections): the FAISS index is a faiss::IndexShards of that many
 * sub-indexes, each an IndexIDMap over the factory's index, searched in
 * parallel by IndexShards's own threads (one per shard) and merged by it.
 * A vector goes to shard id % shards with its label, so each shard holds
 * a fixed part of the collection; IVF shards are all trained on the whole
 * collection (the same centroids), so a query probes the same lists in
 * each and recall matches the unsharded index. Everything else (labels,
 * re-scoring, exact fallback) is as above.
 *
 * Snapshot payload: the n vectors (f32, in the ids section's order), then
 * u64 n_labels and n_labels int64 label_id entries, then FAISS's
 * write_index serialisation (nothing when not yet built); sharded, instead
 * of the latter, SHARD_MAGIC, u32 n_shards and per shard u64 length and
 * write_index of its IndexIDMap (FAISS 1.7.3 cannot serialise IndexShards).
 *
 * Locking: lock guards ix, label_id and id_label; searches, save, count,
 * memory and check hold it shared, add and remove exclusive. The inner
 * flat index has its own lock and is only written under ours.
 */
#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexShards.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>
#include <pthread.h>

extern "C" {
#include "core/rag_error.h"
#include "index/vindex.h"
#include "index/vindex_backends.h"
#include "index/vindex_flat.h"
#include "index/vindex_snapshot.h"
}

#include "core/banned.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LSAN_IGNORE_BEGIN() __lsan_disable()
#define LSAN_IGNORE_END() __lsan_enable()
#else
#define LSAN_IGNORE_BEGIN() ((void)0)
#define LSAN_IGNORE_END() ((void)0)
#endif

#define FAISS_TRAIN_MIN 10000	/* 39 x 256: FAISS warns below this for k-means of 256 */
#define FAISS_TRAIN_PER_LIST 39 /* FAISS's minimum training points per IVF list */
#define FAISS_EXACT_AT 4096	/* candidates asked for before an exact filtered scan */
#define SHARD_MAGIC "RSHD"	/* sharded payload; no FAISS fourcc starts so */

namespace {

struct fx {
	struct vindex base;
	pthread_rwlock_t lock;
	struct vindex *flat;
	faiss::Index *ix;
	std::string factory;
	size_t train_min, nprobe, ef_search, rescore, n_shards;
	std::vector<int64_t> label_id;
	std::unordered_map<int64_t, int64_t> id_label;
};

struct hit {
	float score;
	int64_t id;
};

bool better(const hit &a, const hit &b)
{
	return a.score > b.score || (a.score == b.score && a.id < b.id);
}

void set_params_one(fx *f, faiss::Index *ix)
{
	faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(ix);
	if (ivf)
		ivf->nprobe = std::min(f->nprobe, ivf->nlist);
	auto *map = dynamic_cast<faiss::IndexIDMap *>(ix);
	auto *hnsw = dynamic_cast<faiss::IndexHNSW *>(map ? map->index : ix);
	if (hnsw)
		hnsw->hnsw.efSearch = (int)f->ef_search;
}

faiss::IndexShards *as_shards(faiss::Index *ix)
{
	return dynamic_cast<faiss::IndexShards *>(ix);
}

void set_search_params(fx *f)
{
	faiss::IndexShards *sh = as_shards(f->ix);

	if (!sh) {
		set_params_one(f, f->ix);
		return;
	}
	for (int i = 0; i < sh->count(); i++)
		set_params_one(f, sh->at(i));
	/* Each shard's search thread runs FAISS single-threaded, like a request thread. */
	sh->runOnIndex([](int, faiss::Index *) { omp_set_num_threads(1); });
}

/* An empty IndexShards (threaded, our labels) over n sub-indexes taken from subs. */
faiss::IndexShards *shards_of(size_t dim, std::vector<faiss::Index *> &subs)
{
	auto *sh = new faiss::IndexShards((int)dim, true, false);
	sh->own_fields = true;
	for (auto *&sub : subs) {
		sh->add_shard(sub);
		sub = NULL;
	}
	return sh;
}

/* A new unbuilt FAISS index for f: the factory's, or sharded IDMaps over it. */
faiss::Index *make_index(fx *f)
{
	if (f->n_shards <= 1)
		return faiss::index_factory((int)f->base.dim, f->factory.c_str(),
					    faiss::METRIC_INNER_PRODUCT);
	std::vector<faiss::Index *> subs(f->n_shards, NULL);
	try {
		for (auto &sub : subs) {
			std::unique_ptr<faiss::Index> inner(faiss::index_factory(
				(int)f->base.dim, f->factory.c_str(), faiss::METRIC_INNER_PRODUCT));
			auto *map = new faiss::IndexIDMap(inner.get());
			inner.release();
			map->own_fields = true;
			sub = map;
		}
		return shards_of(f->base.dim, subs);
	} catch (...) {
		for (auto *sub : subs)
			delete sub;
		throw;
	}
}

/* Adds n vectors under ids to the built FAISS index. Caller holds lock exclusive. */
void ix_add(fx *f, const int64_t *ids, const float *vecs, size_t n)
{
	faiss::IndexShards *sh = as_shards(f->ix);
	faiss::Index::idx_t label = (faiss::Index::idx_t)f->label_id.size();

	if (!sh) {
		f->ix->add((faiss::Index::idx_t)n, vecs);
	} else {
		/*
		 * Route each vector to shard id % n_shards with its label. Our
		 * write lock keeps searches (the shards' threads) out meanwhile.
		 */
		size_t n_sh = (size_t)sh->count(), dim = f->base.dim;
		std::vector<std::vector<float>> v(n_sh);
		std::vector<std::vector<faiss::Index::idx_t>> l(n_sh);
		for (size_t i = 0; i < n; i++) {
			size_t s = (size_t)((uint64_t)ids[i] % n_sh);
			v[s].insert(v[s].end(), vecs + i * dim, vecs + (i + 1) * dim);
			l[s].push_back(label + (faiss::Index::idx_t)i);
		}
		for (size_t s = 0; s < n_sh; s++)
			if (!l[s].empty())
				sh->at((int)s)->add_with_ids((faiss::Index::idx_t)l[s].size(),
							     v[s].data(), l[s].data());
		sh->syncWithSubIndexes();
	}
	for (size_t i = 0; i < n; i++) {
		auto it = f->id_label.find(ids[i]);
		if (it != f->id_label.end())
			f->label_id[(size_t)it->second] = -1;
		f->id_label[ids[i]] = (int64_t)f->label_id.size();
		f->label_id.push_back(ids[i]);
	}
}

/* Builds (and trains) the FAISS index from everything in flat. Caller holds lock. */
void build(fx *f)
{
	struct flat *fl = (struct flat *)f->flat;
	std::unique_ptr<faiss::Index> ix(make_index(f));

	pthread_rwlock_rdlock(&fl->lock);
	try {
		if (!ix->is_trained)
			ix->train((faiss::Index::idx_t)fl->n, fl->vecs);
		f->ix = ix.release();
		f->label_id.clear();
		f->id_label.clear();
		set_search_params(f);
		ix_add(f, fl->ids, fl->vecs, fl->n);
	} catch (...) {
		pthread_rwlock_unlock(&fl->lock);
		throw;
	}
	pthread_rwlock_unlock(&fl->lock);
}

int faiss_add(struct vindex *vi, const int64_t *ids, const float *vecs, size_t n,
	      struct rag_err *err)
{
	fx *f = (fx *)vi;
	int rc;

	if (n == 0)
		return 0;
	pthread_rwlock_wrlock(&f->lock);
	rc = vindex_add(f->flat, ids, vecs, n, err);
	try {
		if (rc == 0 && f->ix) {
			/* The batch's last vector wins for a repeated id, as in flat. */
			ix_add(f, ids, vecs, n);
		} else if (rc == 0 && vindex_count(f->flat) >= f->train_min) {
			build(f);
		}
	} catch (const std::bad_alloc &) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory growing the faiss index");
	} catch (const std::exception &e) {
		rc = rag_err_set(err, RAG_EINTERNAL, NULL, "faiss index '%s' failed: %s",
				 f->factory.c_str(), e.what());
	}
	if (rc < 0 && rc != RAG_EINVAL && rc != RAG_ETOOBIG) {
		/*
		 * FAISS failed after the flat add: drop the FAISS index so the
		 * collection stays exact and consistent; it is rebuilt at the
		 * next add.
		 */
		delete f->ix;
		f->ix = NULL;
		f->label_id.clear();
		f->id_label.clear();
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

size_t faiss_remove(struct vindex *vi, const int64_t *ids, size_t n)
{
	fx *f = (fx *)vi;

	pthread_rwlock_wrlock(&f->lock);
	size_t removed = vindex_remove(f->flat, ids, n);
	for (size_t i = 0; f->ix && i < n; i++) {
		auto it = f->id_label.find(ids[i]);
		if (it == f->id_label.end())
			continue;
		f->label_id[(size_t)it->second] = -1;
		f->id_label.erase(it);
	}
	pthread_rwlock_unlock(&f->lock);
	return removed;
}

int faiss_search(struct vindex *vi, const float *query, size_t k,
		 const struct vindex_filter *filter, int64_t *out_ids, float *out_scores,
		 size_t *n_out, struct rag_err *err)
{
	fx *f = (fx *)vi;
	int rc = 0;

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

	pthread_rwlock_rdlock(&f->lock);
	size_t live = vindex_count(f->flat);
	size_t want = std::min(k, live);
	if (!f->ix || want == 0) {
		pthread_rwlock_unlock(&f->lock);
		return vindex_search(f->flat, query, k, filter, out_ids, out_scores, n_out, err);
	}
	/*
	 * One query is too little work for OpenMP: its team only spins against
	 * the other request threads. This thread's setting, not a global.
	 */
	omp_set_num_threads(1);
	try {
		std::vector<float> dist, vec(vi->dim);
		std::vector<faiss::Index::idx_t> lab;
		std::vector<hit> hits;
		size_t ask = std::max(want, f->rescore);
		/*
		 * Filtered, gather as many kept candidates as an unfiltered search
		 * re-scores, so a filter costs no recall: the kept ones sit deeper
		 * in FAISS's approximate ranking.
		 */
		size_t target = filter ? ask : want;
		bool exact = false;

		for (;;) {
			size_t total = (size_t)f->ix->ntotal;
			ask = std::min(ask, total);
			dist.resize(ask);
			lab.resize(ask);
			f->ix->search(1, query, (faiss::Index::idx_t)ask, dist.data(), lab.data());
			hits.clear();
			for (size_t i = 0; i < ask; i++) {
				if (lab[i] < 0)
					break;
				int64_t id = f->label_id[(size_t)lab[i]];
				if (id < 0 || (filter && !filter->keep(filter->ctx, id)))
					continue;
				if (vindex_flat_get(f->flat, id, vec.data()) == 0)
					hits.push_back({ vindex_dot(query, vec.data(), vi->dim), id });
			}
			if (hits.size() >= target)
				break;
			if (ask >= total || ask >= FAISS_EXACT_AT) {
				exact = hits.size() < want;
				break;
			}
			ask *= 4;
		}
		if (exact) {
			pthread_rwlock_unlock(&f->lock);
			return vindex_search(f->flat, query, k, filter, out_ids, out_scores, n_out,
					     err);
		}
		for (auto &h : hits)
			if (std::isnan(h.score))
				h.score = -INFINITY;
		size_t n = std::min(hits.size(), want);
		std::partial_sort(hits.begin(), hits.begin() + n, hits.end(), better);
		for (size_t i = 0; i < n; i++) {
			out_ids[i] = hits[i].id;
			if (out_scores)
				out_scores[i] = hits[i].score;
		}
		*n_out = n;
	} catch (const std::bad_alloc &) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory searching the faiss index");
	} catch (const std::exception &e) {
		rc = rag_err_set(err, RAG_EINTERNAL, NULL, "faiss search failed: %s", e.what());
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

/* Appends the FAISS index's serialisation (sharded: our framing) to w. */
void serialize(fx *f, faiss::VectorIOWriter &w)
{
	faiss::IndexShards *sh = as_shards(f->ix);

	if (!sh) {
		faiss::write_index(f->ix, &w);
		return;
	}
	uint32_t n_sh = (uint32_t)sh->count();
	w.data.insert(w.data.end(), SHARD_MAGIC, SHARD_MAGIC + 4);
	w.data.insert(w.data.end(), (const uint8_t *)&n_sh, (const uint8_t *)&n_sh + 4);
	for (int i = 0; i < sh->count(); i++) {
		size_t at = w.data.size();
		uint64_t len = 0;

		w.data.resize(at + 8);
		faiss::write_index(sh->at(i), &w);
		len = w.data.size() - at - 8;
		memcpy(w.data.data() + at, &len, 8);
	}
}

/* Reads what serialize wrote (len bytes at p); throws on anything else. */
faiss::Index *deserialize(size_t dim, const unsigned char *p, size_t len)
{
	if (len < 8 || memcmp(p, SHARD_MAGIC, 4) != 0) {
		faiss::VectorIOReader r;
		r.data.assign(p, p + len);
		return faiss::read_index(&r);
	}
	uint32_t n_sh;
	memcpy(&n_sh, p + 4, 4);
	if (n_sh < 2 || n_sh > VINDEX_SHARDS_MAX)
		throw std::runtime_error("bad shard count");
	std::vector<faiss::Index *> subs;
	size_t off = 8;
	try {
		for (uint32_t i = 0; i < n_sh; i++) {
			uint64_t sub_len;
			if (len - off < 8)
				throw std::runtime_error("shard payload truncated");
			memcpy(&sub_len, p + off, 8);
			off += 8;
			if (sub_len > len - off)
				throw std::runtime_error("shard payload truncated");
			faiss::VectorIOReader r;
			r.data.assign(p + off, p + off + sub_len);
			off += sub_len;
			faiss::Index *sub = faiss::read_index(&r);
			subs.push_back(sub);
			if (!dynamic_cast<faiss::IndexIDMap *>(sub) || sub->d != (int)dim)
				throw std::runtime_error("a shard is not an id map of this dimension");
		}
		if (off != len)
			throw std::runtime_error("bytes after the last shard");
		return shards_of(dim, subs);
	} catch (...) {
		for (auto *sub : subs)
			delete sub;
		throw;
	}
}

size_t faiss_count(struct vindex *vi)
{
	return vindex_count(((fx *)vi)->flat);
}

size_t faiss_memory(struct vindex *vi)
{
	fx *f = (fx *)vi;

	pthread_rwlock_rdlock(&f->lock);
	size_t bytes = sizeof(*f) + vindex_memory(f->flat) + f->label_id.size() * 8 +
		       f->id_label.size() * 32;
	if (f->ix) {
		/* FAISS keeps no memory counter: its serialised size is close. */
		faiss::VectorIOWriter w;
		try {
			serialize(f, w);
		} catch (...) {
		}
		bytes += w.data.size();
	}
	pthread_rwlock_unlock(&f->lock);
	return bytes;
}

int faiss_save(struct vindex *vi, const char *path, uint64_t seq, struct rag_err *err)
{
	fx *f = (fx *)vi;
	struct flat *fl = (struct flat *)f->flat;
	int rc = 0;

	pthread_rwlock_rdlock(&f->lock);
	pthread_rwlock_rdlock(&fl->lock);
	try {
		faiss::VectorIOWriter w;
		size_t vec_len = fl->n * vi->dim * sizeof(float);
		uint64_t n_labels = f->label_id.size();
		w.data.resize(vec_len + 8 + n_labels * 8);
		if (vec_len)
			memcpy(w.data.data(), fl->vecs, vec_len);
		memcpy(w.data.data() + vec_len, &n_labels, 8);
		if (n_labels)
			memcpy(w.data.data() + vec_len + 8, f->label_id.data(), n_labels * 8);
		if (f->ix)
			serialize(f, w);
		rc = vindex_snapshot_write(path, VINDEX_SNAPSHOT_KIND_FAISS, vi->dim, fl->n, fl->ids,
					   w.data.data(), w.data.size(), seq, err);
	} catch (const std::bad_alloc &) {
		rc = rag_err_set(err, RAG_ENOMEM, NULL, "out of memory saving the faiss index");
	} catch (const std::exception &e) {
		rc = rag_err_set(err, RAG_EIO, NULL, "cannot save the faiss index: %s", e.what());
	}
	pthread_rwlock_unlock(&fl->lock);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

int faiss_check(struct vindex *vi, struct rag_err *err)
{
	fx *f = (fx *)vi;
	int rc = vindex_check(f->flat, err);

	pthread_rwlock_rdlock(&f->lock);
	if (rc == 0 && f->ix) {
		size_t live = 0;
		for (size_t l = 0; l < f->label_id.size(); l++) {
			int64_t id = f->label_id[l];
			if (id < 0)
				continue;
			live++;
			auto it = f->id_label.find(id);
			if (it == f->id_label.end() || it->second != (int64_t)l) {
				rc = rag_err_set(err, RAG_EINTERNAL, NULL,
						 "faiss index: label %zu's id %lld does not map back",
						 l, (long long)id);
				break;
			}
		}
		if (rc == 0 && (live != f->id_label.size() || live != vindex_count(f->flat) ||
				(size_t)f->ix->ntotal != f->label_id.size()))
			rc = rag_err_set(err, RAG_EINTERNAL, NULL,
					 "faiss index: %zu live labels, %zu ids, %zu vectors, %zu "
					 "in faiss for %zu labels",
					 live, f->id_label.size(), vindex_count(f->flat),
					 (size_t)f->ix->ntotal, f->label_id.size());
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

void faiss_free(struct vindex *vi)
{
	fx *f = (fx *)vi;

	pthread_rwlock_destroy(&f->lock);
	vindex_free(f->flat);
	delete f->ix;
	delete f;
}

const struct vindex_ops faiss_ops = {
	"faiss", faiss_add, faiss_remove, faiss_search, faiss_count,
	faiss_memory, faiss_save, faiss_check, faiss_free, NULL,
};

/* How many vectors the factory's index needs before training: 0 if none. */
size_t train_min(const faiss::Index *ix)
{
	if (ix->is_trained)
		return 0;
	const faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(ix);
	if (!ivf)
		return FAISS_TRAIN_MIN; /* PQ, SQ, OPQ...: enough for their k-means */
	size_t need = ivf->nlist * FAISS_TRAIN_PER_LIST;
	auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(ivf);
	if (pq)
		need = std::max(need, (size_t)FAISS_TRAIN_PER_LIST << pq->pq.nbits);
	else if (!dynamic_cast<const faiss::IndexIVFFlat *>(ivf))
		need = std::max(need, (size_t)FAISS_TRAIN_MIN);
	return need;
}

/* An index with an empty flat and no FAISS index yet; NULL with err set. */
fx *shell(size_t dim, const struct vindex_spec *spec, struct rag_err *err)
{
	struct vindex_spec def = vindex_spec_default();
	pthread_rwlockattr_t attr;
	fx *f;

	if (!spec)
		spec = &def;
	f = new (std::nothrow) fx();
	if (!f) {
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating a faiss index");
		return NULL;
	}
	f->base.ops = &faiss_ops;
	f->base.dim = dim;
	f->factory = spec->factory;
	f->nprobe = spec->nprobe;
	f->ef_search = spec->ef_search;
	f->rescore = spec->rescore;
	f->n_shards = spec->shards > 0 ? spec->shards : 1;
	try {
		std::unique_ptr<faiss::Index> probe(faiss::index_factory(
			(int)dim, spec->factory, faiss::METRIC_INNER_PRODUCT));
		f->train_min = train_min(probe.get());
	} catch (const std::exception &e) {
		rag_err_set(err, RAG_EINVAL, "index.factory", "index.factory '%s': %s",
			    spec->factory, e.what());
		delete f;
		return NULL;
	}
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return f;
}

} /* namespace */

int vindex_faiss_check_factory(const char *factory, size_t dim, struct rag_err *err)
{
	/*
	 * FAISS 1.7.3 leaks the coarse quantizer when the rest of a factory
	 * string fails to parse ("IVF8,PQ7" for 16 dimensions): nothing to
	 * free from here, so the sanitizer build is told to ignore it.
	 */
	LSAN_IGNORE_BEGIN();
	try {
		std::unique_ptr<faiss::Index> ix(
			faiss::index_factory((int)dim, factory, faiss::METRIC_INNER_PRODUCT));
	} catch (const std::exception &e) {
		/* FAISS's messages lead with a source location: keep what follows it. */
		std::string msg = e.what();
		size_t at = msg.rfind("Error: ");
		if (at != std::string::npos)
			msg = msg.substr(at + 7);
		LSAN_IGNORE_END();
		return rag_err_set(err, RAG_EINVAL, "index.factory",
				   "index.factory '%s' is not a FAISS index for dimension %zu: %.200s",
				   factory, dim, msg.c_str());
	}
	LSAN_IGNORE_END();
	return 0;
}

struct vindex *vindex_faiss_new(size_t dim, const struct vindex_spec *spec, struct rag_err *err)
{
	fx *f = shell(dim, spec, err);

	if (!f)
		return NULL;
	f->flat = vindex_flat_new(dim);
	if (!f->flat) {
		faiss_free(&f->base);
		rag_err_set(err, RAG_ENOMEM, NULL, "out of memory creating a faiss index");
		return NULL;
	}
	if (f->train_min == 0) {
		try {
			build(f);
		} catch (const std::exception &e) {
			faiss_free(&f->base);
			rag_err_set(err, RAG_EINVAL, "index.factory", "index.factory '%s': %s",
				    f->factory.c_str(), e.what());
			return NULL;
		}
	}
	return &f->base;
}

struct vindex *vindex_faiss_adopt(const struct vindex_spec *spec, struct vindex_snapshot *snap,
				  struct rag_err *err)
{
	size_t vec_len = snap->n * snap->dim * sizeof(float);
	const unsigned char *p = (const unsigned char *)snap->payload;
	uint64_t n_labels = 0;
	fx *f = NULL;

	if (snap->n > SIZE_MAX / sizeof(float) / snap->dim || snap->payload_len < vec_len + 8) {
		rag_err_set(err, RAG_EINVAL, NULL, "faiss payload of %zu bytes is too short",
			    snap->payload_len);
		goto fail;
	}
	memcpy(&n_labels, p + vec_len, 8);
	if (n_labels > (snap->payload_len - vec_len - 8) / 8) {
		rag_err_set(err, RAG_EINVAL, NULL, "faiss payload too short for %llu labels",
			    (unsigned long long)n_labels);
		goto fail;
	}
	f = shell(snap->dim, spec, err);
	if (!f)
		goto fail;
	{
		int64_t *ids = (int64_t *)malloc(snap->n ? snap->n * 8 : 1);
		float *vecs = (float *)malloc(vec_len ? vec_len : 1);
		if (!ids || !vecs) {
			free(ids);
			free(vecs);
			rag_err_set(err, RAG_ENOMEM, NULL, "out of memory loading a faiss index");
			goto fail;
		}
		if (snap->n) {
			memcpy(ids, snap->ids, snap->n * 8);
			memcpy(vecs, p, vec_len);
		}
		f->flat = vindex_flat_adopt(snap->dim, snap->n, ids, vecs, err);
		if (!f->flat)
			goto fail;
	}
	try {
		size_t off = vec_len + 8 + n_labels * 8;
		f->label_id.resize(n_labels);
		if (n_labels)
			memcpy(f->label_id.data(), p + vec_len + 8, n_labels * 8);
		if (off < snap->payload_len) {
			f->ix = deserialize(snap->dim, p + off, snap->payload_len - off);
			faiss::IndexShards *sh = as_shards(f->ix);
			f->n_shards = sh ? (size_t)sh->count() : 1; /* as built */
			set_search_params(f);
		}
		for (size_t l = 0; l < n_labels; l++)
			if (f->label_id[l] >= 0 && !f->id_label.emplace(f->label_id[l], l).second)
				throw std::runtime_error("an id has two live labels");
		if (f->ix && (f->ix->d != (int)snap->dim || (size_t)f->ix->ntotal != n_labels))
			throw std::runtime_error("faiss index shape disagrees with the header");
		if (!f->ix && n_labels)
			throw std::runtime_error("labels without a faiss index");
		if (f->ix && f->id_label.size() != snap->n)
			throw std::runtime_error("live labels disagree with the ids");
		for (size_t i = 0; f->ix && i < snap->n; i++)
			if (!f->id_label.count(snap->ids[i]))
				throw std::runtime_error("an id has no label");
	} catch (const std::exception &e) {
		rag_err_set(err, RAG_EINVAL, NULL, "faiss index unreadable: %s", e.what());
		goto fail;
	}
	vindex_snapshot_release(snap);
	return &f->base;
fail:
	if (f)
		faiss_free(&f->base);
	vindex_snapshot_release(snap);
	return NULL;
}
