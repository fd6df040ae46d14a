/*
 * The engine's embedding models: its own (loaded by the caller, always
 * there) and the ones named in models.embedders, loaded on first use, so
 * that collections on different models (and a collection moving from one
 * model to another, see rag_reembed.c) share one server. A collection
 * records its model's name; the name is resolved here.
 */
#include "rag/rag_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rag_error.h"
#include "model/embedder.h"

#include "core/banned.h"

static int add(struct rag_engine *eng, const char *name, size_t name_len, const char *path,
	       size_t path_len, struct embedder *emb)
{
	struct rag_model *grown = reallocarray(eng->models, eng->n_models + 1, sizeof(*grown));
	struct rag_model *m;

	if (!grown)
		return RAG_ENOMEM;
	eng->models = grown;
	m = &eng->models[eng->n_models];
	memset(m, 0, sizeof(*m));
	m->name = strndup(name, name_len);
	m->path = path ? strndup(path, path_len) : NULL;
	m->emb = emb;
	if (!m->name || (path && !m->path)) {
		free(m->name);
		free(m->path);
		return RAG_ENOMEM;
	}
	eng->n_models++;
	return 0;
}

int rag_models_init(struct rag_engine *eng, struct rag_err *err)
{
	const char *p = eng->opts.embedders ? eng->opts.embedders : "";

	pthread_mutex_init(&eng->models_mu, NULL);
	if (add(eng, eng->emb->name, strlen(eng->emb->name), NULL, 0, eng->emb) < 0)
		return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
	while (*p) {
		size_t len = strcspn(p, ","), eq = strcspn(p, "=");

		if (len > 0 && (eq >= len || eq == 0 || eq + 1 == len))
			return rag_err_set(err, RAG_EINVAL, "models.embedders",
					   "models.embedders: '%.*s' is not name=path", (int)len, p);
		if (len > 0 && add(eng, p, eq, p + eq + 1, len - eq - 1, NULL) < 0)
			return rag_err_set(err, RAG_ENOMEM, NULL, "out of memory");
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

void rag_models_release(struct rag_engine *eng)
{
	for (size_t i = 0; i < eng->n_models; i++) {
		if (eng->models[i].owned)
			embedder_free(eng->models[i].emb);
		free(eng->models[i].name);
		free(eng->models[i].path);
	}
	free(eng->models);
	eng->models = NULL;
	eng->n_models = 0;
	pthread_mutex_destroy(&eng->models_mu);
}

struct embedder *rag_embedder(struct rag_engine *eng, const char *name, const char *field,
			      struct rag_err *err)
{
	struct embedder *emb = NULL;
	struct rag_model *m = NULL;

	pthread_mutex_lock(&eng->models_mu);
	for (size_t i = 0; i < eng->n_models && !m; i++)
		if (strcmp(eng->models[i].name, name) == 0)
			m = &eng->models[i];
	if (!m) {
		rag_err_set(err, RAG_EINVAL, field,
			    "embedding model '%s' is not configured (models.embedder,"
			    " models.embedders)", name);
	} else if (!m->emb && !eng->opts.load_embedder) {
		rag_err_set(err, RAG_EUNSUPPORTED, field, "embedding model '%s' cannot be loaded here",
			    name);
	} else if (!m->emb) {
		m->emb = eng->opts.load_embedder(eng->opts.load_ctx, m->path, err);
		m->owned = m->emb != NULL;
		if (m->emb)
			log_info("embedding model '%s' loaded from '%s'", m->name, m->path);
	}
	emb = m ? m->emb : NULL;
	pthread_mutex_unlock(&eng->models_mu);
	return emb;
}

struct embedder *rag_coll_embedder(struct rag_coll *coll, struct rag_err *err)
{
	if (!coll->emb)
		rag_err_set(err, RAG_EBUSY, NULL,
			    "collection '%s' uses embedding model '%s', which is not configured here",
			    coll->c.name, coll->c.embed_model);
	return coll->emb;
}
