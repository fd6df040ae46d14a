/*
 * Loaded models, by key, in an LRU: what serves a request that names a
 * model (a GGUF under models.dir) other than the ones loaded at start.
 *
 * An entry is any loaded model object (an embedder, a generator) under a
 * key made of its kind, path and the parameters it was loaded with, so the
 * same file loaded two ways is two entries. Entries are refcounted: an
 * entry in use is never evicted; when more than `capacity` entries are
 * loaded, the least recently used unused ones are freed. A miss loads
 * outside the lock; callers asking for a key being loaded wait for that
 * load instead of loading it twice. Weights are shared below this level
 * (model_weights.h): two entries for one file hold one copy of it.
 *
 * Metrics: ragd_model_cache_models (gauge), ragd_model_cache_hits_total,
 * ragd_model_cache_loads_total, ragd_model_cache_evictions_total; each load
 * is also observed in model_loading_time_ms by the backend.
 *
 * Thread-safety: every function may be called from many threads at once,
 * except model_cache_free.
 */
#ifndef RAGD_MODEL_MODEL_CACHE_H
#define RAGD_MODEL_MODEL_CACHE_H

#include <stddef.h>

struct rag_err;
struct embedder;
struct generator;
struct embedder_llama_options;
struct model_cache;

#define MODEL_CACHE_DEFAULT_CAPACITY 10

/* Loads the object for a key; NULL with err set on failure. */
typedef void *(*model_load_fn)(void *arg, struct rag_err *err);
typedef void (*model_free_fn)(void *obj);

/* A cache holding at most capacity (>= 1) unused entries. NULL when out of memory. */
struct model_cache *model_cache_new(size_t capacity);

/* Frees every entry (none may be in use) and the cache; NULL-safe. */
void model_cache_free(struct model_cache *c);

/*
 * The object under key, loading it with load(arg) on a miss (free_fn frees
 * it at eviction). The caller holds a reference until model_cache_release.
 * Returns NULL with err set when the load fails (nothing is cached then).
 */
void *model_cache_acquire(struct model_cache *c, const char *key, model_load_fn load,
			  model_free_fn free_fn, void *arg, struct rag_err *err);

/* Drops a reference taken by model_cache_acquire; may evict. */
void model_cache_release(struct model_cache *c, void *obj);

/* Entries loaded now (in use or not). */
size_t model_cache_count(struct model_cache *c);

/*
 * The llama.cpp embedder for opts (key: path and every option), loaded on
 * a miss. Release with model_cache_release.
 */
struct embedder *model_cache_embedder(struct model_cache *c,
				      const struct embedder_llama_options *opts,
				      struct rag_err *err);

/*
 * The llama.cpp generator for the GGUF at path with one context of
 * n_threads threads (key: kind, path and options), loaded on a miss.
 * Release with model_cache_release.
 */
struct generator *model_cache_generator(struct model_cache *c, const char *path, int n_threads,
					struct rag_err *err);

/*
 * Resolves a client's model name to dir/<name>.gguf when name is a plain
 * file name (1-128 of [A-Za-z0-9._-], not starting with '.') and the file
 * exists; writes the path into out (size bytes). Returns 0 or RAG_ENOTFOUND.
 */
int model_cache_resolve(const char *dir, const char *name, char *out, size_t size);

#endif
