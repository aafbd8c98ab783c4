/* HTTP helpers over evhttp (see vp_http.h): request id, URI decoding, routing,
 * the body, content-type and method checks, and the one reply path.
 *
 * Body size, as measured against libevent 2.1.12 (tests/unit/test_http.c proves
 * each line):
 *   body <= 64 KiB (VP_HTTP_MAX_BODY)        handled normally (up to 1 MiB on the
 *                                            one route vp_http_allow_large_body
 *                                            names: the writer's tenant import).
 *   64 KiB < body <= 1 MiB (LIBEVENT_MAX)    libevent reads it whole (Content-Length
 *                                            or chunked; sends 100 Continue when
 *                                            asked), then vp_http_request_init
 *                                            refuses it: OUR JSON 413, keep-alive.
 *   Content-Length > 1 MiB                   libevent answers by itself right after
 *                                            the headers, before any body byte is
 *                                            read and without 100 Continue: HTML
 *                                            413, Connection: close, no
 *                                            X-Request-Id. Our handler never runs.
 *   chunked body passing 1 MiB               the same HTML 413 once the running
 *                                            total passes 1 MiB.
 * libevent 2.1 has no hook between the headers and the body for a server request
 * (evhttp_set_newreqcb arrived in 2.2), so the last two cannot be ours short of
 * re-parsing headers in a bufferevent filter. EVHTTP_SERVER_LINGERING_CLOSE is
 * left off on purpose: with it libevent drains the whole declared body before
 * answering, so a client waiting on "Expect: 100-continue" hangs until timeout.
 * Headers (request line included) over VP_HTTP_MAX_HEADERS: libevent's HTML 400.
 * Methods other than those set in vp_http_listen: libevent's HTML 501.
 *
 * The only logging here is the debug line of each reply. */
#include "vp_http.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/http_struct.h> /* major, minor: see evhttp_send_error */
#include <event2/util.h>

#include "vp_json.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define REQUEST_ID_MAX 64

static const struct {
	enum evhttp_cmd_type method;
	const char *name;
} method_names[] = {
    {EVHTTP_REQ_GET, "GET"},	     {EVHTTP_REQ_HEAD, "HEAD"},	  {EVHTTP_REQ_POST, "POST"},
    {EVHTTP_REQ_PUT, "PUT"},	     {EVHTTP_REQ_PATCH, "PATCH"}, {EVHTTP_REQ_DELETE, "DELETE"},
    {EVHTTP_REQ_OPTIONS, "OPTIONS"}, {EVHTTP_REQ_TRACE, "TRACE"}, {EVHTTP_REQ_CONNECT, "CONNECT"},
};

static const char *method_name(enum evhttp_cmd_type method)
{
	for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (method_names[i].method == method)
			return method_names[i].name;
	return "?";
}

/* libevent's own phrase for a code it does not know is a vague "Client Error". */
static const struct {
	int status;
	const char *phrase;
} reason_phrases[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {415, "Unsupported Media Type"},
    {421, "Misdirected Request"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *reason_phrase(int status)
{
	for (size_t i = 0; i < sizeof(reason_phrases) / sizeof(reason_phrases[0]); i++)
		if (reason_phrases[i].status == status)
			return reason_phrases[i].phrase;
	return NULL; /* libevent picks a generic phrase */
}

static bool is_request_id_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

static void set_request_id(VpHttpRequest *r)
{
	const char *sent =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Request-Id");
	size_t len = 0;
	VpUuid id;

	if (sent) {
		while (len <= REQUEST_ID_MAX && sent[len] && is_request_id_char(sent[len]))
			len++;
		if (len >= 1 && len <= REQUEST_ID_MAX && sent[len] == '\0') {
			memcpy(r->request_id, sent, len);
			r->request_id[len] = '\0';
			return;
		}
	}
	vp_uuid_v7(&id);
	vp_uuid_format(&id, r->request_id);
}

/* Strict decimal, as libevent itself insists on; -1 when not a number. */
static long long parse_content_length(const char *text)
{
	long long value = 0;

	if (!text || !*text)
		return -1;
	for (; *text; text++) {
		if (*text < '0' || *text > '9')
			return -1;
		if (value > (INT64_MAX - 9) / 10)
			return INT64_MAX;
		value = value * 10 + (*text - '0');
	}
	return value;
}

/* The one route that may take bodies up to libevent's cap (the writer's
 * tenant import: vp_http_allow_large_body), NULL when none. */
static const char *large_body_route;

void vp_http_allow_large_body(const char *pattern)
{
	large_body_route = pattern;
}

/* r's body limit: VP_HTTP_MAX_BODY, or libevent's cap on the large-body route
 * (a POST; r->path must be parsed). The match's captures are not r's to keep:
 * the handler routes r itself. */
static long long body_limit(VpHttpRequest *r)
{
	long long limit = VP_HTTP_MAX_BODY;
	if (large_body_route && r->path[0] && r->method == EVHTTP_REQ_POST) {
		VpHttpRequest probe;
		memcpy(probe.path, r->path, sizeof(probe.path));
		if (vp_http_route_match(&probe, large_body_route))
			limit = VP_HTTP_LIBEVENT_MAX_BODY;
	}
	return limit;
}

static int check_body_size(VpHttpRequest *r, long long limit, VpError *err)
{
	const char *declared =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Length");
	size_t held = evbuffer_get_length(evhttp_request_get_input_buffer(r->req));

	if (parse_content_length(declared) > limit || held > (size_t)limit)
		return vp_error_set(err, 413, VP_ERR_TOO_LARGE,
				    "request body is larger than %lld bytes", limit);
	return 0;
}

/* Every decoded query key and value must be UTF-8; "%00" (a NUL once decoded)
 * would silently cut a value short, so the raw text may not hold it. */
static int parse_query(VpHttpRequest *r, const char *raw, VpError *err)
{
	const struct evkeyval *kv;

	if (strstr(raw, "%00"))
		return vp_error_set(err, 400, VP_ERR_VALIDATION, "query must not contain NUL");
	if (evhttp_parse_query_str(raw, &r->query) < 0)
		return vp_error_set(err, 400, VP_ERR_VALIDATION, "malformed query string");
	r->query_parsed = true;
	TAILQ_FOREACH(kv, &r->query, next)
	{
		if (!vp_json_utf8_valid(kv->key, strlen(kv->key)) ||
		    !vp_json_utf8_valid(kv->value, strlen(kv->value)))
			return vp_error_set(err, 400, VP_ERR_VALIDATION, "query must be UTF-8");
	}
	return 0;
}

static int parse_uri(VpHttpRequest *r, VpError *err)
{
	const char *raw = evhttp_request_get_uri(r->req);
	struct evhttp_uri *uri = NULL;
	const char *raw_path;
	const char *raw_query;
	char *decoded = NULL;
	size_t decoded_len = 0;
	int rc = -1;

	/* Non-conformant: tolerate what real clients send; we decode and check
	 * the parts ourselves below. */
	uri = raw ? evhttp_uri_parse_with_flags(raw, EVHTTP_URI_NONCONFORMANT) : NULL;
	if (!uri) {
		vp_error_set(err, 400, VP_ERR_VALIDATION, "malformed request URI");
		goto done;
	}
	raw_path = evhttp_uri_get_path(uri);
	decoded = evhttp_uridecode(raw_path ? raw_path : "", 0, &decoded_len);
	if (!decoded) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
		goto done;
	}
	if (memchr(decoded, '\0', decoded_len)) {
		vp_error_set(err, 400, VP_ERR_VALIDATION, "path must not contain NUL");
		goto done;
	}
	if (decoded_len >= VP_HTTP_MAX_PATH) {
		vp_error_set(err, 400, VP_ERR_VALIDATION, "path is longer than %d bytes",
			     VP_HTTP_MAX_PATH - 1);
		goto done;
	}
	if (!vp_json_utf8_valid(decoded, decoded_len)) {
		vp_error_set(err, 400, VP_ERR_VALIDATION, "path must be UTF-8");
		goto done;
	}
	memcpy(r->path, decoded, decoded_len + 1);
	raw_query = evhttp_uri_get_query(uri);
	if (raw_query && *raw_query && parse_query(r, raw_query, err) < 0)
		goto done;
	rc = 0;
done:
	free(decoded);
	if (uri)
		evhttp_uri_free(uri);
	return rc;
}

int vp_http_request_init(VpHttpRequest *r, struct evhttp_request *req, VpError *err)
{
	memset(r, 0, sizeof(*r));
	TAILQ_INIT(&r->query);
	r->req = req;
	r->method = evhttp_request_get_command(req);
	r->started_us = vp_time_mono_us();
	set_request_id(r);
	/* the route decides the limit, so the path is parsed first when the
	 * body is over the common limit (a bad URI with a big body: 400) */
	if (check_body_size(r, large_body_route ? VP_HTTP_LIBEVENT_MAX_BODY : VP_HTTP_MAX_BODY,
			    err) < 0 ||
	    parse_uri(r, err) < 0)
		return -1;
	r->max_body = body_limit(r);
	return check_body_size(r, r->max_body, err);
}

void vp_http_request_release(VpHttpRequest *r)
{
	if (!r)
		return;
	/* Clearing an initialised, empty list is harmless. */
	if (TAILQ_FIRST(&r->query))
		evhttp_clear_headers(&r->query);
	TAILQ_INIT(&r->query);
	r->query_parsed = false;
}

const char *vp_http_query(const VpHttpRequest *r, const char *name)
{
	const struct evkeyval *kv;

	/* Case-sensitive, unlike evhttp_find_header; the first occurrence wins. */
	TAILQ_FOREACH(kv, &r->query, next)
	{
		if (strcmp(kv->key, name) == 0)
			return kv->value;
	}
	return NULL;
}

const char *vp_http_header(const VpHttpRequest *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

bool vp_http_route_match(VpHttpRequest *r, const char *pattern)
{
	char captured[VP_HTTP_MAX_PARAMS][VP_HTTP_MAX_PARAM_LEN];
	const char *p = pattern;
	const char *s = r->path;
	int n = 0;

	r->n_params = 0;
	for (;;) {
		size_t p_len;
		size_t s_len;

		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		p_len = strcspn(p, "/");
		s_len = strcspn(s, "/");
		if (p_len >= 2 && p[0] == '{' && p[p_len - 1] == '}') {
			if (s_len == 0 || s_len >= VP_HTTP_MAX_PARAM_LEN || n >= VP_HTTP_MAX_PARAMS)
				return false;
			memcpy(captured[n], s, s_len);
			captured[n][s_len] = '\0';
			n++;
		} else if (p_len != s_len || memcmp(p, s, p_len) != 0) {
			return false;
		}
		p += p_len;
		s += s_len;
		if (*p == '\0' && *s == '\0')
			break;
	}
	memcpy(r->params, captured, sizeof(captured[0]) * (size_t)n);
	r->n_params = n;
	return true;
}

int vp_http_require_method(VpHttpRequest *r, unsigned allowed, VpError *err)
{
	size_t used = 0;

	if (r->method & allowed)
		return 0;
	if (r->method == EVHTTP_REQ_HEAD && (allowed & EVHTTP_REQ_GET))
		return 0;
	if (allowed & EVHTTP_REQ_GET)
		allowed |= EVHTTP_REQ_HEAD;
	r->allow[0] = '\0';
	for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
		const char *name = method_names[i].name;
		size_t len = strlen(name);

		if (!(allowed & method_names[i].method))
			continue;
		if (used + len + 3 > sizeof(r->allow))
			break;
		if (used) {
			memcpy(r->allow + used, ", ", 2);
			used += 2;
		}
		memcpy(r->allow + used, name, len + 1);
		used += len;
	}
	return vp_error_set(err, 405, VP_ERR_METHOD, "method %s is not allowed here",
			    method_name(r->method));
}

/* application/json, any case, then nothing or ';' parameters (RFC 9110 media
 * type); white space around the type is tolerated. */
static bool is_json_content_type(const char *value)
{
	static const char json_type[] = "application/json";
	const size_t type_len = sizeof(json_type) - 1;

	if (!value)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	if (evutil_ascii_strncasecmp(value, json_type, type_len) != 0)
		return false;
	value += type_len;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}

static int read_json(VpHttpRequest *r, bool empty_is_object, cJSON **out, VpError *err)
{
	struct evbuffer *input = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(input);
	const char *content_type = vp_http_header(r, "Content-Type");
	const char *text;
	cJSON *parsed = NULL;

	*out = NULL;
	if (check_body_size(r, r->max_body ? r->max_body : VP_HTTP_MAX_BODY, err) < 0)
		return -1;
	if (len == 0 && empty_is_object && (!content_type || is_json_content_type(content_type))) {
		*out = cJSON_CreateObject();
		if (!*out)
			return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
		return 0;
	}
	if (!is_json_content_type(content_type))
		return vp_error_set(err, 415, VP_ERR_MEDIA_TYPE,
				    "Content-Type must be application/json");
	if (len == 0)
		return vp_error_set(err, 400, VP_ERR_VALIDATION, "body must be a JSON object");
	text = (const char *)evbuffer_pullup(input, -1);
	if (!text)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "out of memory");
	if (vp_json_parse(text, len, &parsed, err) < 0)
		return -1;
	if (!cJSON_IsObject(parsed)) {
		cJSON_Delete(parsed);
		return vp_error_set(err, 400, VP_ERR_VALIDATION, "body must be a JSON object");
	}
	*out = parsed;
	return 0;
}

void vp_http_wipe_body(VpHttpRequest *r)
{
	struct evbuffer *input = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(input);
	unsigned char *text = len ? evbuffer_pullup(input, -1) : NULL;
	if (text)
		explicit_bzero(text, len);
}

int vp_http_read_json(VpHttpRequest *r, cJSON **out, VpError *err)
{
	return read_json(r, false, out, err);
}

int vp_http_read_json_or_empty(VpHttpRequest *r, cJSON **out, VpError *err)
{
	return read_json(r, true, out, err);
}

void vp_http_add_header(VpHttpRequest *r, const char *name, const char *value)
{
	/* libevent refuses values with bare CR/LF (header injection). */
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

static void set_header(struct evkeyvalq *headers, const char *name, const char *value)
{
	evhttp_remove_header(headers, name);
	evhttp_add_header(headers, name, value);
}

/* Every daemon's HTTP answers are counted here, where they all pass. */
static VpMetric *requests_by_class[5];
static VpMetric *request_duration;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
	static const char *const labels[5] = {"class=\"1xx\"", "class=\"2xx\"", "class=\"3xx\"",
					      "class=\"4xx\"", "class=\"5xx\""};
	for (int i = 0; i < 5; i++)
		requests_by_class[i] = vp_metrics_counter(
			"vetpms_http_requests_total", labels[i], "HTTP answers by status class");
	request_duration = vp_metrics_histogram("vetpms_http_request_duration_seconds", NULL,
						"time from request parsed to answer sent");
}

static void count_reply(const VpHttpRequest *r, int status)
{
	pthread_once(&metrics_once, register_metrics);
	if (status >= 100 && status < 600)
		vp_metric_add(requests_by_class[status / 100 - 1], 1);
	vp_metric_observe_us(request_duration, vp_time_mono_us() - r->started_us);
}

void vp_http_metrics_init(void)
{
	pthread_once(&metrics_once, register_metrics);
}

static void send_reply(VpHttpRequest *r, int status, const char *content_type, const char *body,
		       size_t len)
{
	struct evkeyvalq *headers;
	struct evbuffer *output;

	if (r->replied)
		return; /* a second reply is an internal bug; the first one stands */
	r->replied = true;
	headers = evhttp_request_get_output_headers(r->req);
	output = evhttp_request_get_output_buffer(r->req);
	set_header(headers, "X-Request-Id", r->request_id);
	set_header(headers, "Content-Type", content_type);
	/* no-store unless the handler chose (the reader's static files: no-cache) */
	if (!evhttp_find_header(headers, "Cache-Control"))
		set_header(headers, "Cache-Control", "no-store");
	if ((status == 429 || status == 503) && !evhttp_find_header(headers, "Retry-After"))
		set_header(headers, "Retry-After", "1");
	if (status == 405 && r->allow[0])
		set_header(headers, "Allow", r->allow);
	/* libevent 2.1 omits Content-Length on HEAD but still writes a body it is
	 * given, which would corrupt the next response on the connection. */
	if (r->method != EVHTTP_REQ_HEAD && len > 0 && evbuffer_add(output, body, len) < 0) {
		evbuffer_drain(output, evbuffer_get_length(output));
		status = 500;
	}
	evhttp_send_reply(r->req, status, reason_phrase(status), NULL);
	count_reply(r, status);
	vp_log_debug(r->request_id, "http_request", "method=%s path=%s status=%d us=%lld",
		     method_name(r->method), r->path, status,
		     (long long)(vp_time_mono_us() - r->started_us));
}

void vp_http_reply_json(VpHttpRequest *r, int status, const char *json, size_t len)
{
	send_reply(r, status, "application/json", json, len);
}

void vp_http_reply_text(VpHttpRequest *r, int status, const char *content_type, const char *body,
			size_t len)
{
	send_reply(r, status, content_type ? content_type : "text/plain; charset=utf-8", body, len);
}

void vp_http_reply_error(VpHttpRequest *r, const VpError *err)
{
	VpError internal;
	char fallback[256];
	char timestamp[VP_TIME_RFC3339_MAX];
	char *body;
	int len;

	if (r->replied)
		return;
	if (!err || err->status < 400 || err->status > 599) {
		vp_error_clear(&internal);
		vp_error_set(&internal, 500, VP_ERR_INTERNAL, "internal error");
		err = &internal;
	}
	if ((err->status == 429 || err->status == 503) && err->retry_after_s > 0) {
		char seconds[16];
		snprintf(seconds, sizeof(seconds), "%d", err->retry_after_s);
		set_header(evhttp_request_get_output_headers(r->req), "Retry-After", seconds);
	}
	body = vp_error_body_json(err, r->request_id, vp_time_now_us());
	if (body) {
		send_reply(r, err->status, "application/json", body, strlen(body));
		free(body);
		return;
	}
	/* Out of memory: a fixed body; the request id needs no escaping (only
	 * [A-Za-z0-9._:-] or a UUID ever gets in). */
	if (vp_time_format_rfc3339(vp_time_now_us() / 1000000 * 1000000, timestamp,
				   sizeof(timestamp)) == 0)
		timestamp[0] = '\0';
	len = snprintf(fallback, sizeof(fallback),
		       "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\","
		       "\"details\":[],\"timestamp\":\"%s\",\"request_id\":\"%s\"}}",
		       timestamp, r->request_id);
	if (len < 0 || (size_t)len >= sizeof(fallback))
		len = 0;
	send_reply(r, 500, "application/json", fallback, (size_t)len);
}

/* libevent answers a few requests itself, before any handler runs, with
 * evhttp_send_error and an HTML page: a request line or header it cannot parse
 * or headers over VP_HTTP_MAX_HEADERS (400), a body over
 * VP_HTTP_LIBEVENT_MAX_BODY (413), a method it does not let through (501:
 * CONNECT, whose target libevent parses as host:port). This definition
 * replaces libevent's for the whole process, so those answers carry the
 * contract's error body and X-Request-Id too: libevent calls
 * evhttp_send_error through its PLT, and the Makefile exports this symbol
 * from every executable (-Wl,--export-dynamic-symbol=evhttp_send_error), so
 * the dynamic linker binds libevent's calls here. test_http_limits.py fails
 * if that ever stops being true. The connection is closed after the answer:
 * what follows a request libevent could not read cannot be trusted. */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	VpHttpRequest r;
	VpError err;

	(void)reason;
	/* A request line libevent could not read leaves no version: answer as
	 * HTTP/1.1, as libevent's own page did (evhttp_send_page_). */
	if (!req->major || !req->minor) {
		req->major = 1;
		req->minor = 1;
	}
	memset(&r, 0, sizeof(r));
	r.req = req;
	r.method = evhttp_request_get_command(req);
	r.started_us = vp_time_mono_us();
	snprintf(r.path, sizeof(r.path), "%s", "(unread)");
	set_request_id(&r);
	vp_error_clear(&err);
	switch (error) {
	case HTTP_ENTITYTOOLARGE:
		vp_error_set(&err, 413, VP_ERR_TOO_LARGE,
			     "request body over %d bytes", VP_HTTP_LIBEVENT_MAX_BODY);
		break;
	case HTTP_NOTIMPLEMENTED:
		vp_error_set(&err, 405, VP_ERR_METHOD, "method not allowed");
		break;
	case HTTP_NOTFOUND:
		vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no such route");
		break;
	case HTTP_BADREQUEST:
		vp_error_set(&err, 400, VP_ERR_VALIDATION,
			     "malformed HTTP request: request line or headers unreadable, or "
			     "headers over %d bytes", VP_HTTP_MAX_HEADERS);
		break;
	default:
		vp_error_set(&err, error >= 400 && error <= 599 ? error : 400, VP_ERR_VALIDATION,
			     "request refused by the HTTP layer (%d)", error);
		break;
	}
	vp_http_add_header(&r, "Connection", "close");
	vp_http_reply_error(&r, &err);
}

/* TRACE reaches the handlers, which answer 405 with the route's Allow. */
void vp_http_configure(struct evhttp *http)
{
	evhttp_set_max_body_size(http, VP_HTTP_LIBEVENT_MAX_BODY);
	evhttp_set_max_headers_size(http, VP_HTTP_MAX_HEADERS);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PATCH |
					     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
					     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE);
}

struct evhttp *vp_http_listen(struct event_base *base, const char *host, int port,
			      struct evhttp_bound_socket **bound, VpError *err)
{
	struct evhttp_bound_socket *socket_handle;
	struct evhttp *http = NULL;

	if (bound)
		*bound = NULL;
	if (port < 0 || port > 65535) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "port %d is out of range", port);
		goto fail;
	}
	http = evhttp_new(base);
	if (!http) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "evhttp_new failed");
		goto fail;
	}
	vp_http_configure(http);
	socket_handle = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (!socket_handle) {
		int saved = errno;
		vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot listen on %s:%d: %s",
			     host ? host : "*", port, strerror(saved));
		goto fail;
	}
	if (bound)
		*bound = socket_handle;
	return http;
fail:
	if (http)
		evhttp_free(http);
	return NULL;
}

int vp_http_bound_port(struct evhttp_bound_socket *bound)
{
	struct sockaddr_storage address;
	socklen_t address_len = sizeof(address);
	evutil_socket_t fd;

	if (!bound)
		return -1;
	fd = evhttp_bound_socket_get_fd(bound);
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&address, &address_len) < 0)
		return -1;
	if (address.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&address)->sin_port);
	if (address.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
	return -1;
}
