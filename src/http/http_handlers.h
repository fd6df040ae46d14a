/*
 * The API's handlers, one per route (see http_router.c). Each reads the
 * request, calls the rag layer, and writes JSON into the response.
 */
#ifndef RAGD_HTTP_HTTP_HANDLERS_H
#define RAGD_HTTP_HTTP_HANDLERS_H

#include "http/http.h"

int http_health(struct http_req *req, struct http_resp *resp);
int http_ready(struct http_req *req, struct http_resp *resp);
int http_metrics(struct http_req *req, struct http_resp *resp);
int http_collection_create(struct http_req *req, struct http_resp *resp);
int http_collection_list(struct http_req *req, struct http_resp *resp);
int http_collection_get(struct http_req *req, struct http_resp *resp);
int http_collection_delete(struct http_req *req, struct http_resp *resp);
/* PATCH: a new embedding model, applied by a background job (202). */
int http_collection_update(struct http_req *req, struct http_resp *resp);
int http_document_put(struct http_req *req, struct http_resp *resp);
int http_document_get(struct http_req *req, struct http_resp *resp);
int http_document_delete(struct http_req *req, struct http_resp *resp);
int http_search(struct http_req *req, struct http_resp *resp);
int http_shard_search(struct http_req *req, struct http_resp *resp); /* internal: one instance's shards */
/* POST /v1/collections/{name}/query: answered by a worker (http_handlers_query.c). */
int http_query(struct http_req *req, struct http_resp *resp);

/*
 * The OpenAI-compatible model routes (http_handlers_openai.c): GET /v1/models,
 * GET /v1/models/{model}, POST /v1/embeddings. Errors in OpenAI's shape.
 */
int http_oai_models(struct http_req *req, struct http_resp *resp);
int http_oai_model(struct http_req *req, struct http_resp *resp);
int http_oai_embeddings(struct http_req *req, struct http_resp *resp);

/* POST /v1/chat/completions (http_handlers_chat.c): generation or RAG, streamed on request. */
int http_oai_chat(struct http_req *req, struct http_resp *resp);

/* Bulk ingest, jobs and document browsing (http_handlers_ingest.c). */
int http_documents_batch(struct http_req *req, struct http_resp *resp);
int http_documents_upload(struct http_req *req, struct http_resp *resp);
int http_documents_list(struct http_req *req, struct http_resp *resp);
int http_document_chunks(struct http_req *req, struct http_resp *resp);
int http_job_get(struct http_req *req, struct http_resp *resp);
int http_job_cancel(struct http_req *req, struct http_resp *resp);

/*
 * The admin API (http_handlers_admin.c), admin role, scoped to the
 * caller's tenant: POST /v1/admin/keys (the token is in the 201 answer
 * only), GET /v1/admin/keys, DELETE /v1/admin/keys/{id}, GET
 * /v1/admin/usage and GET /v1/admin/usage/{id}.
 */
int http_admin_key_create(struct http_req *req, struct http_resp *resp);
int http_admin_key_list(struct http_req *req, struct http_resp *resp);
int http_admin_key_revoke(struct http_req *req, struct http_resp *resp);
int http_admin_usage(struct http_req *req, struct http_resp *resp);

/*
 * GET /openapi.json (always) and the docs pages GET /docs, GET /redoc and
 * GET /docs/assets/{file}, which answer 404 when ctx->docs_enabled is 0 or
 * the Swagger UI and ReDoc bundles were not built in (http_handlers_docs.c).
 */
int http_openapi(struct http_req *req, struct http_resp *resp);
int http_docs_swagger(struct http_req *req, struct http_resp *resp);
int http_docs_redoc(struct http_req *req, struct http_resp *resp);
int http_docs_asset(struct http_req *req, struct http_resp *resp);

#endif
