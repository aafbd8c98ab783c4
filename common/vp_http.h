/* HTTP helpers over libevent's evhttp shared by the three daemons: request id,
 * routing by path pattern, the 64 KiB body limit (413), the JSON content type
 * (415), method checks (405) and the one reply path that sets the common headers
 * (X-Request-Id, Content-Type) and the contract's error body. */
#ifndef VP_HTTP_H
#define VP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <cjson/cJSON.h>

#include "vp_error.h"

#define VP_HTTP_MAX_BODY      (64 * 1024)
#define VP_HTTP_MAX_PATH      512
#define VP_HTTP_MAX_PARAMS    4
#define VP_HTTP_MAX_PARAM_LEN 128
/* What libevent itself buffers at most per request (body; all header lines). A
 * body between VP_HTTP_MAX_BODY and this gets our JSON 413; above it libevent
 * answers its own HTML 413 before any handler runs (see vp_http.c). */
#define VP_HTTP_LIBEVENT_MAX_BODY (1024 * 1024)
#define VP_HTTP_MAX_HEADERS       (32 * 1024)

typedef struct VpHttpRequest {
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	char request_id[65];      /* echoed X-Request-Id when sane, else a UUIDv7 */
	char path[VP_HTTP_MAX_PATH]; /* decoded path without the query string */
	struct evkeyvalq query;   /* decoded query parameters */
	bool query_parsed;
	char params[VP_HTTP_MAX_PARAMS][VP_HTTP_MAX_PARAM_LEN]; /* {name} captures of the route */
	int n_params;
	long long started_us;
	bool replied;
	char allow[64]; /* Allow header of a 405, set by vp_http_require_method */
	long long max_body; /* VP_HTTP_MAX_BODY, or more (vp_http_allow_large_body) */
} VpHttpRequest;

/* Fills request id, path and query. Returns -1 with err set on a body over
 * VP_HTTP_MAX_BODY (413, also when only Content-Length claims it) or a URI that
 * cannot be decoded (400: malformed, NUL, invalid UTF-8, path of
 * VP_HTTP_MAX_PATH bytes or more); the caller replies with vp_http_reply_error.
 * Call vp_http_request_release in every case. */
int vp_http_request_init(VpHttpRequest *r, struct evhttp_request *req, VpError *err);
void vp_http_request_release(VpHttpRequest *r);

const char *vp_http_query(const VpHttpRequest *r, const char *name);
const char *vp_http_header(const VpHttpRequest *r, const char *name);

/* POSTs to pattern (a route as vp_http_route_match takes it) may carry
 * bodies up to VP_HTTP_LIBEVENT_MAX_BODY instead of VP_HTTP_MAX_BODY: the
 * writer's tenant import, whose batches are one transaction each (fewer,
 * larger ones import several times faster, docs/bench.md). One route per
 * process; call before serving. */
void vp_http_allow_large_body(const char *pattern);

/* Matches "/v1/staff/{id}/deactivate" against r->path; each {x} captures one
 * non-empty segment (≤ VP_HTTP_MAX_PARAM_LEN-1 bytes) into r->params in order. */
bool vp_http_route_match(VpHttpRequest *r, const char *pattern);

/* Method check: `allowed` is a mask of enum evhttp_cmd_type values; HEAD passes
 * where GET does (libevent drops the body). On mismatch sets err to 405 and
 * remembers the Allow header for the reply; returns -1. */
int vp_http_require_method(VpHttpRequest *r, unsigned allowed, VpError *err);

/* Body ≤ VP_HTTP_MAX_BODY else 413; content type application/json (parameters
 * such as charset allowed) else 415; a strict JSON object (vp_json_parse) else
 * 400. On success *out owns the parsed object (cJSON_Delete it). */
int vp_http_read_json(VpHttpRequest *r, cJSON **out, VpError *err);

/* The same, except that an empty body (with or without a content type) reads as
 * an empty object: for commands whose fields are all optional. */
int vp_http_read_json_or_empty(VpHttpRequest *r, cJSON **out, VpError *err);
/* Zeroes the request's body as received (a body that carried a secret, e.g.
 * an import's transport key, read and parsed already). */
void vp_http_wipe_body(VpHttpRequest *r);

void vp_http_add_header(VpHttpRequest *r, const char *name, const char *value);

/* Replies. Every answer leaves through these: X-Request-Id, Content-Type and
 * Cache-Control: no-store set unless the handler added its own (Retry-After: 1 on 429 and 503), the request logged
 * at debug level with its status and duration. Only the first reply of a request
 * is sent; a later one is ignored. A HEAD request gets the headers only. */
void vp_http_reply_json(VpHttpRequest *r, int status, const char *json, size_t len);
void vp_http_reply_text(VpHttpRequest *r, int status, const char *content_type,
			const char *body, size_t len);
/* The contract's error body; 503 and 429 carry Retry-After (err->retry_after_s,
 * else 1), 405 its Allow. An
 * err without a status (an internal bug) is answered as 500 INTERNAL. */
void vp_http_reply_error(VpHttpRequest *r, const VpError *err);

/* Creates an evhttp on base bound to host:port (port 0 = any free port, read back
 * with vp_http_bound_port). Sets the body cap libevent enforces before our own
 * 64 KiB check, the header cap, and lets every method but CONNECT reach the
 * handler (405 is ours to answer; CONNECT gets it from evhttp_send_error). `bound` may be NULL. Returns NULL with err
 * set. The caller installs its handler with evhttp_set_gencb. */
struct evhttp *vp_http_listen(struct event_base *base, const char *host, int port,
			      struct evhttp_bound_socket **bound, VpError *err);
int vp_http_bound_port(struct evhttp_bound_socket *bound);

/* The settings every VetPMS evhttp gets: libevent's body and header caps and
 * the methods that reach our handler (the rest get 405 from us). */
void vp_http_configure(struct evhttp *http);

/* Registers the HTTP metrics (answers by status class, latency histogram) so
 * /metrics shows them from the start; replies register them lazily too. */
void vp_http_metrics_init(void); /* -1 on error */

#endif
