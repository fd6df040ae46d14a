/*
 * GET /metrics: the registry in Prometheus text format 0.0.4.
 */
#include "http/http_handlers.h"

#include "core/rag_error.h"
#include "obs/metrics.h"

#include "core/banned.h"

int http_metrics(struct http_req *req, struct http_resp *resp)
{
	(void)req;
	sbuf_reset(&resp->body);
	if (metrics_render(&resp->body) < 0) {
		http_errorf(resp, RAG_ENOMEM, NULL, "out of memory rendering metrics");
		return 0;
	}
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return 0;
}
