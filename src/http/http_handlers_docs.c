/*
 * The API's own description: GET /openapi.json (the OpenAPI 3.1 document,
 * docs/openapi.json), and two pages that render it, GET /docs (Swagger UI)
 * and GET /redoc (ReDoc), with their JavaScript and CSS under
 * GET /docs/assets/{file}.
 *
 * Everything is embedded into the binary at build time with the assembler's
 * .incbin, so one file serves it all and the pages work with no network
 * access. CMake passes the paths (RAGD_OPENAPI_PATH always;
 * RAGD_DOCS_ASSETS_DIR only when scripts/docs-assets.sh fetched the Swagger
 * UI and ReDoc bundles) and lists the files as this object's dependencies,
 * so editing docs/openapi.json rebuilds it. Rejected: a CMake step that
 * turns 3 MB of JavaScript into a C array (a 15 MB source file, slow to
 * compile) and reading the files at run time (a second thing to deploy, and
 * the spec served could drift from the binary serving it).
 *
 * Without the bundles the build still succeeds and the pages answer 404
 * saying so. With docs disabled (environment=production) the pages and
 * assets answer 404; /openapi.json stays, as clients generate code from it.
 *
 * Each response copies its blob into the response body (the server frees
 * bodies it sends): 3 MB at most, only on a developer's page load.
 */
#include "http/http_handlers.h"

#include <string.h>

#include "core/rag_error.h"

#include "core/banned.h"

/*
 * Defines hidden symbols NAME and NAME_end around the bytes of the file at
 * PATH (a string literal), in .rodata, followed by one NUL so that text
 * files are also C strings. ".previous" returns to the compiler's section.
 */
#define INCBIN(name, path)                                                  \
	__asm__(".section .rodata\n"                                        \
		".balign 16\n"                                              \
		".globl " #name "\n"                                        \
		".hidden " #name "\n"                                       \
		".globl " #name "_end\n"                                    \
		".hidden " #name "_end\n" #name ":\n"                       \
		".incbin \"" path "\"\n" #name "_end:\n"                    \
		".byte 0\n"                                                 \
		".previous\n");                                             \
	extern const char name[] __attribute__((visibility("hidden"))); \
	extern const char name##_end[] __attribute__((visibility("hidden")))

#ifndef RAGD_OPENAPI_PATH
#error "RAGD_OPENAPI_PATH must name docs/openapi.json (set by CMakeLists.txt)"
#endif

INCBIN(ragd_openapi_json, RAGD_OPENAPI_PATH);

#ifdef RAGD_DOCS_ASSETS_DIR
INCBIN(ragd_swagger_ui_js, RAGD_DOCS_ASSETS_DIR "/swagger-ui-bundle.js");
INCBIN(ragd_swagger_ui_css, RAGD_DOCS_ASSETS_DIR "/swagger-ui.css");
INCBIN(ragd_redoc_js, RAGD_DOCS_ASSETS_DIR "/redoc.standalone.js");
#endif

#define HTTP_CT_HTML "text/html; charset=utf-8"
#define HTTP_CT_JS "application/javascript; charset=utf-8"
#define HTTP_CT_CSS "text/css; charset=utf-8"

struct asset {
	const char *name; /* the {file} in /docs/assets/{file} */
	const char *content_type;
	const char *start, *end;
};

static const struct asset assets[] = {
#ifdef RAGD_DOCS_ASSETS_DIR
	{ "swagger-ui-bundle.js", HTTP_CT_JS, ragd_swagger_ui_js, ragd_swagger_ui_js_end },
	{ "swagger-ui.css", HTTP_CT_CSS, ragd_swagger_ui_css, ragd_swagger_ui_css_end },
	{ "redoc.standalone.js", HTTP_CT_JS, ragd_redoc_js, ragd_redoc_js_end },
#endif
	{ NULL, NULL, NULL, NULL },
};

/*
 * The pages use absolute asset paths so that /docs/ (which the router
 * treats as /docs) resolves them the same. Swagger UI's validatorUrl is
 * turned off: it would send the spec to validator.swagger.io.
 */
static const char swagger_page[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\">\n"
	"<head>\n"
	"<meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>ragd API - Swagger UI</title>\n"
	"<link rel=\"stylesheet\" href=\"/docs/assets/swagger-ui.css\">\n"
	"</head>\n"
	"<body>\n"
	"<div id=\"swagger-ui\"></div>\n"
	"<script src=\"/docs/assets/swagger-ui-bundle.js\"></script>\n"
	"<script>\n"
	"window.ui = SwaggerUIBundle({ url: \"/openapi.json\", dom_id: \"#swagger-ui\",\n"
	"\tdeepLinking: true, validatorUrl: null });\n"
	"</script>\n"
	"</body>\n"
	"</html>\n";

static const char redoc_page[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\">\n"
	"<head>\n"
	"<meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>ragd API - ReDoc</title>\n"
	"</head>\n"
	"<body>\n"
	"<redoc spec-url=\"/openapi.json\"></redoc>\n"
	"<script src=\"/docs/assets/redoc.standalone.js\"></script>\n"
	"</body>\n"
	"</html>\n";

static void reply_bytes(struct http_resp *resp, const char *content_type, const char *data,
			size_t len)
{
	sbuf_reset(&resp->body);
	sbuf_add(&resp->body, data, len);
	resp->status = 200;
	resp->content_type = content_type; /* the server answers 503 if the copy failed */
}

/* 0 when the docs pages may be served; else writes the 404 and returns -1. */
static int docs_available(struct http_req *req, struct http_resp *resp)
{
	if (!req->ctx->docs_enabled) {
		http_errorf(resp, RAG_ENOTFOUND, NULL,
			    "API docs pages are disabled in this environment; "
			    "the OpenAPI document is at /openapi.json");
		return -1;
	}
	if (!assets[0].name) {
		http_errorf(resp, RAG_ENOTFOUND, NULL,
			    "the API docs assets were not built into this ragd "
			    "(run scripts/docs-assets.sh, then reconfigure and rebuild); "
			    "the OpenAPI document is at /openapi.json");
		return -1;
	}
	return 0;
}

int http_openapi(struct http_req *req, struct http_resp *resp)
{
	(void)req;
	reply_bytes(resp, "application/json", ragd_openapi_json,
		    (size_t)(ragd_openapi_json_end - ragd_openapi_json));
	resp->cache_control = "public, max-age=3600"; /* fixed per build; the ETag tells builds apart */
	return 0;
}

int http_docs_swagger(struct http_req *req, struct http_resp *resp)
{
	if (docs_available(req, resp) == 0)
		reply_bytes(resp, HTTP_CT_HTML, swagger_page, sizeof(swagger_page) - 1);
	return 0;
}

int http_docs_redoc(struct http_req *req, struct http_resp *resp)
{
	if (docs_available(req, resp) == 0)
		reply_bytes(resp, HTTP_CT_HTML, redoc_page, sizeof(redoc_page) - 1);
	return 0;
}

int http_docs_asset(struct http_req *req, struct http_resp *resp)
{
	if (docs_available(req, resp) < 0)
		return 0;
	for (const struct asset *a = assets; a->name; a++) {
		if (strcmp(a->name, req->params[0]) == 0) {
			reply_bytes(resp, a->content_type, a->start, (size_t)(a->end - a->start));
			resp->cache_control = "public, max-age=86400";
			return 0;
		}
	}
	http_errorf(resp, RAG_ENOTFOUND, NULL, "no docs asset '%s'", req->params[0]);
	return 0;
}
