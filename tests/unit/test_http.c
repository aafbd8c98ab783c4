/* Tests of the HTTP helpers against a real evhttp server on 127.0.0.1 (any free
 * port) running in its own thread, driven by a raw-socket client so that every
 * byte on the wire (status, headers, JSON body) is what gets asserted. Also pins
 * down libevent 2.1's own behaviour above its body cap (see vp_http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <event2/event.h>
#include <sodium.h>

#include "vp_buf.h"
#include "vp_http.h"
#include "vp_json.h"
#include "vp_log.h"

typedef struct TestServer {
	struct event_base *base;
	struct evhttp *http;
	int port;
	pthread_t thread;
} TestServer;

typedef struct Response {
	int status;
	char *raw;	   /* the whole response, NUL-terminated */
	size_t header_len; /* bytes up to and including the blank line */
	const char *body;
	size_t body_len;
	cJSON *json; /* body parsed, when it is JSON */
} Response;

static TestServer server;

/* ---- the server side: a handler built from the helpers under test ---- */

static void reply_cjson(VpHttpRequest *r, int status, cJSON *json)
{
	char *text = vp_json_print(json);
	assert_non_null(text);
	vp_http_reply_json(r, status, text, strlen(text));
	free(text);
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct event_base *base = arg;
	VpHttpRequest r;
	VpError err;
	cJSON *body = NULL;
	cJSON *answer = NULL;

	vp_error_clear(&err);
	if (vp_http_request_init(&r, req, &err) < 0)
		goto fail;
	if (strcmp(r.path, "/quit") == 0) {
		vp_http_reply_text(&r, 200, NULL, "bye", 3);
		event_base_loopbreak(base);
	} else if (vp_http_route_match(&r, "/v1/echo")) {
		if (vp_http_require_method(&r, EVHTTP_REQ_POST, &err) < 0 ||
		    vp_http_read_json(&r, &body, &err) < 0)
			goto fail;
		reply_cjson(&r, 200, body);
	} else if (vp_http_route_match(&r, "/v1/optional")) {
		if (vp_http_read_json_or_empty(&r, &body, &err) < 0)
			goto fail;
		reply_cjson(&r, 200, body);
	} else if (vp_http_route_match(&r, "/v1/things")) {
		if (vp_http_require_method(&r, EVHTTP_REQ_GET | EVHTTP_REQ_POST, &err) < 0)
			goto fail;
		vp_http_reply_json(&r, 200, "{\"ok\":true}", 11);
	} else if (vp_http_route_match(&r, "/v1/staff/{id}/deactivate") ||
		   vp_http_route_match(&r, "/v1/staff/{id}/availability/{day}")) {
		cJSON *params;

		answer = cJSON_CreateObject();
		params = cJSON_AddArrayToObject(answer, "params");
		for (int i = 0; i < r.n_params; i++)
			cJSON_AddItemToArray(params, cJSON_CreateString(r.params[i]));
		reply_cjson(&r, 200, answer);
	} else if (vp_http_route_match(&r, "/v1/big/{id}")) {
		/* the large-body route: the body read, the capture still r's */
		if (vp_http_read_json(&r, &body, &err) < 0)
			goto fail;
		answer = cJSON_CreateObject();
		cJSON_AddStringToObject(answer, "id", r.params[0]);
		reply_cjson(&r, 200, answer);
	} else if (vp_http_route_match(&r, "/v1/query")) {
		answer = cJSON_CreateObject();
		cJSON_AddStringToObject(answer, "path", r.path);
		if (vp_http_query(&r, "search"))
			cJSON_AddStringToObject(answer, "search", vp_http_query(&r, "search"));
		if (vp_http_query(&r, "x"))
			cJSON_AddStringToObject(answer, "x", vp_http_query(&r, "x"));
		if (vp_http_query(&r, "e"))
			cJSON_AddStringToObject(answer, "e", vp_http_query(&r, "e"));
		if (vp_http_query(&r, "SEARCH"))
			cJSON_AddStringToObject(answer, "SEARCH", vp_http_query(&r, "SEARCH"));
		reply_cjson(&r, 200, answer);
	} else if (vp_http_route_match(&r, "/v1/twice")) {
		vp_http_reply_json(&r, 200, "{\"first\":true}", 14);
		vp_http_reply_json(&r, 201, "{\"second\":true}", 15);
		vp_error_set(&err, 500, VP_ERR_INTERNAL, "too late");
		vp_http_reply_error(&r, &err);
	} else if (vp_http_route_match(&r, "/v1/unavailable")) {
		vp_error_set(&err, 503, VP_ERR_UNAVAILABLE, "Kafka unreachable");
		goto fail;
	} else if (vp_http_route_match(&r, "/v1/limited")) {
		vp_error_set(&err, 429, VP_ERR_RATE_LIMITED, "slow down");
		goto fail;
	} else if (vp_http_route_match(&r, "/v1/nostatus")) {
		goto fail; /* err never set: must become a 500 */
	} else if (vp_http_route_match(&r, "/v1/metrics")) {
		vp_http_add_header(&r, "X-Extra", "1");
		vp_http_reply_text(&r, 200, "text/plain; version=0.0.4", "up 1\n", 5);
	} else {
		vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no route for %s", r.path);
		goto fail;
	}
	goto done;
fail:
	vp_http_reply_error(&r, &err);
done:
	cJSON_Delete(body);
	cJSON_Delete(answer);
	vp_http_request_release(&r);
}

static void *serve(void *arg)
{
	TestServer *s = arg;
	event_base_dispatch(s->base);
	return NULL;
}

/* ---- the client side: raw sockets ---- */

static int connect_server(void)
{
	struct sockaddr_in address;
	struct timeval timeout = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	address.sin_port = htons((uint16_t)server.port);
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	return fd;
}

/* Sends everything it can; a server that answers early and closes may cut the
 * upload short, which some tests expect. */
static void send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

static const char *find_header_in(const char *headers, size_t len, const char *name)
{
	size_t name_len = strlen(name);
	const char *line = memchr(headers, '\n', len);

	while (line && (size_t)(line - headers) + 1 < len) {
		line++;
		if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
			line += name_len + 1;
			while (*line == ' ')
				line++;
			return line;
		}
		line = memchr(line, '\n', len - (size_t)(line - headers));
	}
	return NULL;
}

/* Reads exactly one response off fd, so that pipelined answers stay apart: the
 * headers a byte at a time, then Content-Length bytes of body (or up to EOF
 * without one). */
static void read_response(int fd, Response *out)
{
	VpBuf raw;
	char chunk[65536];
	const char *length_header;
	size_t want = SIZE_MAX;

	memset(out, 0, sizeof(*out));
	vp_buf_init(&raw, 8 * 1024 * 1024);
	while (raw.len < 4 || memcmp(raw.data + raw.len - 4, "\r\n\r\n", 4) != 0) {
		if (recv(fd, chunk, 1, 0) != 1)
			break;
		assert_int_equal(vp_buf_append(&raw, chunk, 1), 0);
	}
	out->header_len = raw.len;
	assert_true(out->header_len > 0);
	length_header = find_header_in(raw.data, raw.len, "Content-Length");
	if (length_header)
		want = raw.len + strtoul(length_header, NULL, 10);
	while (raw.len < want) {
		size_t room = want - raw.len < sizeof(chunk) ? want - raw.len : sizeof(chunk);
		ssize_t n = recv(fd, chunk, room, 0);
		if (n <= 0)
			break;
		assert_int_equal(vp_buf_append(&raw, chunk, (size_t)n), 0);
	}
	out->raw = vp_buf_take(&raw);
	assert_non_null(out->raw);
	assert_int_equal(sscanf(out->raw, "HTTP/1.1 %d ", &out->status), 1);
	out->body = out->raw + out->header_len;
	out->body_len = strlen(out->body);
	if (want != SIZE_MAX)
		assert_int_equal(out->header_len + out->body_len, want);
	out->json = cJSON_ParseWithLength(out->body, out->body_len);
}

static const char *header(const Response *resp, const char *name)
{
	static char value[512];
	const char *start = find_header_in(resp->raw, resp->header_len, name);
	size_t len;

	if (!start)
		return NULL;
	len = strcspn(start, "\r\n");
	assert_true(len < sizeof(value));
	memcpy(value, start, len);
	value[len] = '\0';
	return value;
}

static void response_free(Response *resp)
{
	cJSON_Delete(resp->json);
	free(resp->raw);
	memset(resp, 0, sizeof(*resp));
}

/* Sends raw bytes on a fresh connection and reads one response. */
static void exchange_raw(const char *data, size_t len, Response *out)
{
	int fd = connect_server();
	send_all(fd, data, len);
	read_response(fd, out);
	close(fd);
}

/* One request with Connection: close; `headers` are extra lines, each ending in
 * \r\n; a NULL body sends no Content-Length. */
static void exchange(const char *method, const char *target, const char *headers, const char *body,
		     size_t body_len, Response *out)
{
	VpBuf request;

	vp_buf_init(&request, 4 * 1024 * 1024);
	vp_buf_printf(&request, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
		      method, target, headers ? headers : "");
	if (body)
		vp_buf_printf(&request, "Content-Length: %zu\r\n", body_len);
	vp_buf_puts(&request, "\r\n");
	if (body)
		vp_buf_append(&request, body, body_len);
	assert_false(request.oom);
	exchange_raw(request.data, request.len, out);
	vp_buf_free(&request);
}

static void post_json(const char *target, const char *body, Response *out)
{
	exchange("POST", target, "Content-Type: application/json\r\n", body, strlen(body), out);
}

static const char *error_code(const Response *resp)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(resp->json, "error");
	return vp_json_str(error, "code");
}

static const char *error_message(const Response *resp)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(resp->json, "error");
	return vp_json_str(error, "message");
}

/* Every answer of ours: the common headers, and for errors the contract body
 * whose request_id is the header's. */
static void assert_our_answer(const Response *resp)
{
	const char *request_id = header(resp, "X-Request-Id");
	const cJSON *error;

	assert_non_null(request_id);
	assert_non_null(header(resp, "Cache-Control"));
	assert_string_equal(header(resp, "Cache-Control"), "no-store");
	if (resp->status < 400)
		return;
	assert_string_equal(header(resp, "Content-Type"), "application/json");
	error = cJSON_GetObjectItemCaseSensitive(resp->json, "error");
	assert_non_null(error);
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(error, "details")));
	assert_non_null(vp_json_str(error, "timestamp"));
	assert_string_equal(vp_json_str(error, "request_id"), header(resp, "X-Request-Id"));
}

/* ---- tests ---- */

static void test_json_echo(void **state)
{
	static const char body[] = "{\"name\":\"Zo\xc3\xab \\\"Rex\\\"\",\"n\":[1,2]}";
	Response resp;
	(void)state;
	exchange("POST", "/v1/echo", "Content-Type: application/json; charset=utf-8\r\n", body,
		 strlen(body), &resp);
	assert_int_equal(resp.status, 200);
	assert_our_answer(&resp);
	assert_string_equal(header(&resp, "Content-Type"), "application/json");
	assert_string_equal(resp.body, body);
	assert_int_equal(strlen(header(&resp, "X-Request-Id")), 36); /* a fresh UUIDv7 */
	assert_int_equal(header(&resp, "X-Request-Id")[14], '7');
	response_free(&resp);

	/* The media type is case-insensitive, parameters and spaces allowed. */
	exchange("POST", "/v1/echo", "Content-Type: Application/JSON ; Charset=UTF-8\r\n", "{}", 2,
		 &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{}");
	response_free(&resp);
}

static void test_unsupported_media_type(void **state)
{
	static const char *const refused[] = {
	    "Content-Type: text/plain\r\n", "Content-Type: application/jsonx\r\n",
	    "Content-Type: application/json-patch+json\r\n", "", NULL};
	Response resp;
	(void)state;
	for (int i = 0; refused[i]; i++) {
		exchange("POST", "/v1/echo", refused[i], "{}", 2, &resp);
		assert_int_equal(resp.status, 415);
		assert_our_answer(&resp);
		assert_string_equal(error_code(&resp), "UNSUPPORTED_MEDIA_TYPE");
		response_free(&resp);
	}
}

static void test_body_over_64k_gets_our_json_413(void **state)
{
	size_t len = 70 * 1024;
	char *body = malloc(len);
	Response resp;
	(void)state;
	assert_non_null(body);
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	exchange("POST", "/v1/echo", "Content-Type: application/json\r\n", body, len, &resp);
	assert_int_equal(resp.status, 413);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "PAYLOAD_TOO_LARGE");
	response_free(&resp);

	/* Exactly 64 KiB is still fine. */
	body[VP_HTTP_MAX_BODY - 1] = '}';
	exchange("POST", "/v1/echo", "Content-Type: application/json\r\n", body, VP_HTTP_MAX_BODY,
		 &resp);
	assert_int_equal(resp.status, 200);
	response_free(&resp);

	/* Whatever the route and content type: the size is checked first. */
	exchange("PUT", "/nowhere", "Content-Type: text/plain\r\n", body, len, &resp);
	assert_int_equal(resp.status, 413);
	assert_our_answer(&resp);
	response_free(&resp);
	free(body);
}

/* The one route vp_http_allow_large_body names (the writer's tenant import)
 * takes a POST up to libevent's cap; every other route, and another method
 * on that one, keeps the 64 KiB limit. */
static void test_the_large_body_route_takes_up_to_1_mib(void **state)
{
	size_t len = VP_HTTP_LIBEVENT_MAX_BODY;
	char *body = malloc(len);
	Response resp;
	(void)state;
	assert_non_null(body);
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	vp_http_allow_large_body("/v1/big/{id}");
	exchange("POST", "/v1/big/x7", "Content-Type: application/json\r\n", body, len, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{\"id\":\"x7\"}");
	response_free(&resp);

	exchange("POST", "/v1/echo", "Content-Type: application/json\r\n", body, 70 * 1024,
		 &resp);
	assert_int_equal(resp.status, 413);
	assert_string_equal(error_code(&resp), "PAYLOAD_TOO_LARGE");
	response_free(&resp);
	exchange("PUT", "/v1/big/x7", "Content-Type: application/json\r\n", body, 70 * 1024,
		 &resp);
	assert_int_equal(resp.status, 413);
	response_free(&resp);
	vp_http_allow_large_body(NULL);
	exchange("POST", "/v1/big/x7", "Content-Type: application/json\r\n", body, 70 * 1024,
		 &resp);
	assert_int_equal(resp.status, 413);
	response_free(&resp);
	free(body);
}

static void test_413_keeps_the_connection_usable(void **state)
{
	size_t len = 100 * 1024;
	VpBuf request;
	Response first;
	Response second;
	int fd;
	(void)state;
	vp_buf_init(&request, 1 << 20);
	vp_buf_printf(&request,
		      "POST /v1/echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json"
		      "\r\nContent-Length: %zu\r\n\r\n",
		      len);
	for (size_t i = 0; i < len; i++)
		vp_buf_append(&request, "1", 1);
	vp_buf_puts(&request, "GET /v1/things HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
	assert_false(request.oom);
	fd = connect_server();
	send_all(fd, request.data, request.len);
	read_response(fd, &first);
	read_response(fd, &second);
	close(fd);
	assert_int_equal(first.status, 413);
	assert_string_equal(error_code(&first), "PAYLOAD_TOO_LARGE");
	assert_int_equal(second.status, 200);
	assert_string_equal(second.body, "{\"ok\":true}");
	response_free(&first);
	response_free(&second);
	vp_buf_free(&request);
}

static void test_chunked_body_over_64k_gets_our_json_413(void **state)
{
	size_t len = 70 * 1024;
	VpBuf request;
	Response resp;
	(void)state;
	vp_buf_init(&request, 1 << 20);
	vp_buf_printf(&request,
		      "POST /v1/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
		      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
		      "%zx\r\n",
		      len);
	for (size_t i = 0; i < len; i++)
		vp_buf_append(&request, " ", 1);
	vp_buf_puts(&request, "\r\n0\r\n\r\n");
	exchange_raw(request.data, request.len, &resp);
	assert_int_equal(resp.status, 413);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "PAYLOAD_TOO_LARGE");
	response_free(&resp);
	vp_buf_free(&request);
}

/* Above VP_HTTP_LIBEVENT_MAX_BODY libevent 2.1 answers by itself, before any
 * handler, through evhttp_send_error: ours (vp_http.c), so the answer is the
 * contract's JSON with X-Request-Id, and the connection is closed. Also pins
 * that the override is bound (the executable exports it). */
static void test_claim_over_libevent_cap_gets_our_413(void **state)
{
	static const char claim[] = "POST /v1/echo HTTP/1.1\r\nHost: a\r\nContent-Type: "
				    "application/json\r\nContent-Length: 2097152\r\n\r\n";
	static const char expect[] = "POST /v1/echo HTTP/1.1\r\nHost: a\r\nContent-Type: "
				     "application/json\r\nExpect: 100-continue\r\n"
				     "Content-Length: 2097152\r\n\r\n";
	Response resp;
	(void)state;
	/* Content-Length alone, no body sent: answered at once, nothing read. */
	exchange_raw(claim, sizeof(claim) - 1, &resp);
	assert_int_equal(resp.status, 413);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "PAYLOAD_TOO_LARGE");
	assert_string_equal(header(&resp, "Connection"), "close");
	response_free(&resp);

	/* Expect: 100-continue: refused without a 100 Continue. */
	exchange_raw(expect, sizeof(expect) - 1, &resp);
	assert_int_equal(resp.status, 413);
	assert_null(strstr(resp.raw, "100 Continue"));
	response_free(&resp);
}

static void test_chunked_over_libevent_cap_gets_our_413(void **state)
{
	size_t len = VP_HTTP_LIBEVENT_MAX_BODY + 1024;
	VpBuf request;
	Response resp;
	(void)state;
	vp_buf_init(&request, 2 * 1024 * 1024);
	vp_buf_printf(&request,
		      "POST /v1/echo HTTP/1.1\r\nHost: a\r\nContent-Type: "
		      "application/json\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
		      len);
	for (size_t i = 0; i < len; i++)
		vp_buf_append(&request, " ", 1);
	vp_buf_puts(&request, "\r\n0\r\n\r\n");
	assert_false(request.oom);
	exchange_raw(request.data, request.len, &resp);
	assert_int_equal(resp.status, 413);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "PAYLOAD_TOO_LARGE");
	response_free(&resp);
	vp_buf_free(&request);
}

static void test_malformed_json(void **state)
{
	static const char *const bodies[] = {"{\"a\":", "{\"a\":1} x", "{\"a\":\"\xff\"}",
					     "{\"a\":\"\\u0000\"}", NULL};
	Response resp;
	const cJSON *detail;
	(void)state;
	for (int i = 0; bodies[i]; i++) {
		post_json("/v1/echo", bodies[i], &resp);
		assert_int_equal(resp.status, 400);
		assert_our_answer(&resp);
		assert_string_equal(error_code(&resp), "VALIDATION_ERROR");
		assert_string_equal(error_message(&resp), "malformed JSON body");
		detail = cJSON_GetArrayItem(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(resp.json, "error"), "details"), 0);
		assert_string_equal(vp_json_str(detail, "field"), "body");
		response_free(&resp);
	}
	post_json("/v1/echo", "{} x", &resp);
	detail = cJSON_GetArrayItem(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(resp.json, "error"), "details"), 0);
	assert_string_equal(vp_json_str(detail, "issue"),
			    "unexpected data after the JSON value at byte 3");
	response_free(&resp);
	post_json("/v1/echo", "{}  \r\n\t", &resp); /* trailing white space is fine */
	assert_int_equal(resp.status, 200);
	response_free(&resp);
}

static void test_body_must_be_an_object(void **state)
{
	static const char *const bodies[] = {"[1,2]", "\"text\"", "42", "null", "", NULL};
	Response resp;
	(void)state;
	for (int i = 0; bodies[i]; i++) {
		post_json("/v1/echo", bodies[i], &resp);
		assert_int_equal(resp.status, 400);
		assert_our_answer(&resp);
		assert_string_equal(error_code(&resp), "VALIDATION_ERROR");
		assert_string_equal(error_message(&resp), "body must be a JSON object");
		response_free(&resp);
	}
}

static void test_optional_body_reads_as_empty_object(void **state)
{
	Response resp;
	(void)state;
	exchange("POST", "/v1/optional", NULL, "", 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{}");
	response_free(&resp);
	post_json("/v1/optional", "{\"notes\":\"x\"}", &resp);
	assert_string_equal(resp.body, "{\"notes\":\"x\"}");
	response_free(&resp);
	exchange("POST", "/v1/optional", "Content-Type: text/plain\r\n", "x", 1, &resp);
	assert_int_equal(resp.status, 415);
	response_free(&resp);
}

static void test_method_not_allowed_lists_allow(void **state)
{
	Response resp;
	(void)state;
	exchange("DELETE", "/v1/things", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "METHOD_NOT_ALLOWED");
	assert_string_equal(header(&resp, "Allow"), "GET, HEAD, POST");
	response_free(&resp);

	exchange("GET", "/v1/echo", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	assert_string_equal(header(&resp, "Allow"), "POST");
	response_free(&resp);

	/* OPTIONS and PATCH reach our handler (allowed methods set by listen). */
	exchange("PATCH", "/v1/things", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	response_free(&resp);
	exchange("OPTIONS", "/v1/things", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	response_free(&resp);

	/* TRACE reaches the handler too (CONNECT stops in libevent: 405 from
	 * our evhttp_send_error, without a body). */
	exchange("TRACE", "/v1/things", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	assert_string_equal(header(&resp, "Allow"), "GET, HEAD, POST");
	response_free(&resp);
}

static void test_head_gets_headers_only(void **state)
{
	static const char two[] = "HEAD /v1/things HTTP/1.1\r\nHost: a\r\n\r\n"
				  "GET /v1/things HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	char all[4096];
	size_t got = 0;
	ssize_t n;
	const char *head_end;
	int fd;
	(void)state;
	/* libevent 2.1 sends no Content-Length for HEAD, so a body would be read as
	 * the start of the next response: the GET's must follow the HEAD's headers. */
	fd = connect_server();
	send_all(fd, two, sizeof(two) - 1);
	while (got < sizeof(all) - 1 && (n = recv(fd, all + got, sizeof(all) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	all[got] = '\0';
	assert_int_equal(strncmp(all, "HTTP/1.1 200 ", 13), 0);
	assert_non_null(find_header_in(all, got, "X-Request-Id"));
	head_end = strstr(all, "\r\n\r\n");
	assert_non_null(head_end);
	assert_int_equal(strncmp(head_end + 4, "HTTP/1.1 200 ", 13), 0);
	assert_ptr_equal(strstr(all, "{"), strstr(all, "{\"ok\":true}"));
	assert_ptr_equal(strstr(all, "{\"ok\":true}") + 11, all + got);
}

static void test_request_id_echoed_or_generated(void **state)
{
	static const char *const refused[] = {
	    "X-Request-Id: bad id!\r\n", "X-Request-Id: \r\n", "X-Request-Id: caf\xc3\xa9\r\n",
	    "X-Request-Id: "
	    "a123456789b123456789c123456789d123456789e123456789f123456789g1234\r\n",
	    NULL};
	Response resp;
	(void)state;
	exchange("GET", "/v1/things", "X-Request-Id: abc-123.X:y_z\r\n", NULL, 0, &resp);
	assert_string_equal(header(&resp, "X-Request-Id"), "abc-123.X:y_z");
	response_free(&resp);
	/* 64 characters is the longest echoed. */
	exchange(
	    "GET", "/nowhere",
	    "X-Request-Id: a123456789b123456789c123456789d123456789e123456789f123456789g123\r\n",
	    NULL, 0, &resp);
	assert_int_equal(resp.status, 404);
	assert_our_answer(&resp);
	assert_string_equal(header(&resp, "X-Request-Id"),
			    "a123456789b123456789c123456789d123456789e123456789f123456789g123");
	response_free(&resp);
	for (int i = 0; refused[i]; i++) {
		exchange("GET", "/nowhere", refused[i], NULL, 0, &resp);
		assert_our_answer(&resp);
		assert_int_equal(strlen(header(&resp, "X-Request-Id")), 36);
		response_free(&resp);
	}
}

static void set_path(VpHttpRequest *r, const char *path)
{
	snprintf(r->path, sizeof(r->path), "%s", path);
}

static void test_route_matching(void **state)
{
	VpHttpRequest r;
	char long_id[VP_HTTP_MAX_PARAM_LEN + 1];
	(void)state;
	memset(&r, 0, sizeof(r));
	set_path(&r, "/v1/staff/0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b/deactivate");
	assert_true(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	assert_int_equal(r.n_params, 1);
	assert_string_equal(r.params[0], "0190b0a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}"));
	assert_int_equal(r.n_params, 0);
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate/{x}"));
	assert_false(vp_http_route_match(&r, "/v1/clients/{id}/deactivate"));

	set_path(&r, "/v1/staff/abc/deactivate/extra");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	set_path(&r, "/v1/staff/abc/deactivate/");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	set_path(&r, "/v1/staff//deactivate");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	set_path(&r, "/v1/staff/deactivate");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	set_path(&r, "/v1/staffx/abc/deactivate");
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));

	/* Segments of up to VP_HTTP_MAX_PARAM_LEN - 1 bytes are captured. */
	memset(long_id, 'a', VP_HTTP_MAX_PARAM_LEN - 1);
	long_id[VP_HTTP_MAX_PARAM_LEN - 1] = '\0';
	snprintf(r.path, sizeof(r.path), "/v1/staff/%s/deactivate", long_id);
	assert_true(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));
	assert_string_equal(r.params[0], long_id);
	long_id[VP_HTTP_MAX_PARAM_LEN - 1] = 'a';
	long_id[VP_HTTP_MAX_PARAM_LEN] = '\0';
	snprintf(r.path, sizeof(r.path), "/v1/staff/%s/deactivate", long_id);
	assert_false(vp_http_route_match(&r, "/v1/staff/{id}/deactivate"));

	/* Two captures, in order; literals only. */
	set_path(&r, "/v1/a/1/b/2");
	assert_true(vp_http_route_match(&r, "/v1/a/{x}/b/{y}"));
	assert_int_equal(r.n_params, 2);
	assert_string_equal(r.params[0], "1");
	assert_string_equal(r.params[1], "2");
	set_path(&r, "/healthz");
	assert_true(vp_http_route_match(&r, "/healthz"));
	assert_int_equal(r.n_params, 0);
	assert_false(vp_http_route_match(&r, "/health"));
	set_path(&r, "/");
	assert_true(vp_http_route_match(&r, "/"));
	assert_false(vp_http_route_match(&r, "/{x}"));
	r.path[0] = '\0';
	assert_false(vp_http_route_match(&r, "/"));
}

static void test_route_over_the_wire(void **state)
{
	Response resp;
	const cJSON *params;
	(void)state;
	exchange("POST", "/v1/staff/a%20b/deactivate", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 200);
	params = cJSON_GetObjectItem(resp.json, "params");
	assert_string_equal(cJSON_GetArrayItem(params, 0)->valuestring, "a b");
	response_free(&resp);
	exchange("GET", "/v1/staff/s1/availability/2026-11-22?x=1", NULL, NULL, 0, &resp);
	params = cJSON_GetObjectItem(resp.json, "params");
	assert_int_equal(cJSON_GetArraySize(params), 2);
	assert_string_equal(cJSON_GetArrayItem(params, 1)->valuestring, "2026-11-22");
	response_free(&resp);
	exchange("POST", "/v1/staff/abc/deactivate/extra", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 404);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "NOT_FOUND");
	response_free(&resp);
	exchange("POST", "/v1/staff//deactivate", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 404);
	response_free(&resp);
}

static void test_path_decoding_refusals(void **state)
{
	char target[700];
	Response resp;
	(void)state;
	exchange("GET", "/v1/sta%00ff", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	assert_our_answer(&resp);
	assert_string_equal(error_message(&resp), "path must not contain NUL");
	response_free(&resp);
	exchange("GET", "/v1/%ff", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	response_free(&resp);

	target[0] = '/';
	memset(target + 1, 'p', VP_HTTP_MAX_PATH - 1); /* 512 bytes: one too many */
	target[VP_HTTP_MAX_PATH] = '\0';
	exchange("GET", target, NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(error_message(&resp), "path is longer than 511 bytes");
	response_free(&resp);
	target[VP_HTTP_MAX_PATH - 1] = '\0'; /* 511 bytes: fits, no such route */
	exchange("GET", target, NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 404);
	response_free(&resp);
}

static void test_query_decoding(void **state)
{
	Response resp;
	(void)state;
	exchange("GET", "/v1/query?search=ana%20maria&x=a+b%2Bc&e=%C3%A9&search=second", NULL, NULL,
		 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(vp_json_str(resp.json, "path"), "/v1/query");
	assert_string_equal(vp_json_str(resp.json, "search"), "ana maria"); /* first wins */
	assert_string_equal(vp_json_str(resp.json, "x"), "a b+c");
	assert_string_equal(vp_json_str(resp.json, "e"), "\xc3\xa9");
	assert_null(vp_json_str(resp.json, "SEARCH")); /* names are case-sensitive */
	response_free(&resp);

	exchange("GET", "/v1/query?search=a%00b", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(error_message(&resp), "query must not contain NUL");
	response_free(&resp);
	exchange("GET", "/v1/query?search=%ff", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(error_message(&resp), "query must be UTF-8");
	response_free(&resp);
	exchange("GET", "/v1/query?", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 200);
	response_free(&resp);
}

static void test_reply_is_sent_once(void **state)
{
	static const char twice[] =
	    "GET /v1/twice HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	Response resp;
	char extra[256];
	int fd;
	(void)state;
	fd = connect_server();
	send_all(fd, twice, sizeof(twice) - 1);
	read_response(fd, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{\"first\":true}");
	/* Nothing after the first answer: the connection just ends. */
	assert_int_equal(recv(fd, extra, sizeof(extra), 0), 0);
	close(fd);
	response_free(&resp);
}

static void test_retry_after_and_internal_errors(void **state)
{
	Response resp;
	(void)state;
	exchange("GET", "/v1/unavailable", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 503);
	assert_our_answer(&resp);
	assert_string_equal(header(&resp, "Retry-After"), "1");
	assert_string_equal(error_code(&resp), "UNAVAILABLE");
	assert_string_equal(error_message(&resp), "Kafka unreachable");
	response_free(&resp);
	exchange("GET", "/v1/limited", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 429);
	assert_string_equal(header(&resp, "Retry-After"), "1");
	response_free(&resp);
	exchange("GET", "/v1/nostatus", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 500);
	assert_our_answer(&resp);
	assert_string_equal(error_code(&resp), "INTERNAL");
	assert_null(header(&resp, "Retry-After"));
	response_free(&resp);
}

static void test_text_reply_and_extra_header(void **state)
{
	Response resp;
	(void)state;
	exchange("GET", "/v1/metrics", NULL, NULL, 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_our_answer(&resp);
	assert_string_equal(header(&resp, "Content-Type"), "text/plain; version=0.0.4");
	assert_string_equal(header(&resp, "X-Extra"), "1");
	assert_string_equal(resp.body, "up 1\n");
	response_free(&resp);
}

static void test_listen_errors_and_port(void **state)
{
	struct evhttp_bound_socket *bound = NULL;
	struct evhttp *http;
	VpError err;
	(void)state;
	vp_error_clear(&err);
	assert_true(server.port > 0);
	/* The port in use: a clean error, nothing leaked. */
	http = vp_http_listen(server.base, "127.0.0.1", server.port, &bound, &err);
	assert_null(http);
	assert_null(bound);
	assert_int_equal(err.status, 500);
	assert_non_null(strstr(err.message, "cannot listen on 127.0.0.1:"));
	vp_error_clear(&err);
	assert_null(vp_http_listen(server.base, "127.0.0.1", 70000, NULL, &err));
	assert_int_equal(vp_http_bound_port(NULL), -1);
}

/* ---- setup ---- */

static int start_server(void **state)
{
	struct evhttp_bound_socket *bound = NULL;
	VpError err;
	(void)state;
	if (sodium_init() < 0)
		return -1;
	vp_log_init("test_http", VP_LOG_INFO);
	vp_error_clear(&err);
	server.base = event_base_new();
	if (!server.base)
		return -1;
	server.http = vp_http_listen(server.base, "127.0.0.1", 0, &bound, &err);
	if (!server.http)
		return -1;
	server.port = vp_http_bound_port(bound);
	if (server.port <= 0)
		return -1;
	evhttp_set_gencb(server.http, handle, server.base);
	return pthread_create(&server.thread, NULL, serve, &server) == 0 ? 0 : -1;
}

static int stop_server(void **state)
{
	static const char quit[] = "GET /quit HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd;
	(void)state;
	/* The loop stops inside the handler, so the answer is never written. */
	fd = connect_server();
	send_all(fd, quit, sizeof(quit) - 1);
	pthread_join(server.thread, NULL);
	close(fd);
	evhttp_free(server.http);
	event_base_free(server.base);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_echo),
	    cmocka_unit_test(test_unsupported_media_type),
	    cmocka_unit_test(test_body_over_64k_gets_our_json_413),
	    cmocka_unit_test(test_413_keeps_the_connection_usable),
	    cmocka_unit_test(test_chunked_body_over_64k_gets_our_json_413),
	    cmocka_unit_test(test_claim_over_libevent_cap_gets_our_413),
	    cmocka_unit_test(test_chunked_over_libevent_cap_gets_our_413),
	    cmocka_unit_test(test_malformed_json),
	    cmocka_unit_test(test_body_must_be_an_object),
	    cmocka_unit_test(test_optional_body_reads_as_empty_object),
	    cmocka_unit_test(test_method_not_allowed_lists_allow),
	    cmocka_unit_test(test_head_gets_headers_only),
	    cmocka_unit_test(test_request_id_echoed_or_generated),
	    cmocka_unit_test(test_route_matching),
	    cmocka_unit_test(test_route_over_the_wire),
	    cmocka_unit_test(test_path_decoding_refusals),
	    cmocka_unit_test(test_query_decoding),
	    cmocka_unit_test(test_reply_is_sent_once),
	    cmocka_unit_test(test_retry_after_and_internal_errors),
	    cmocka_unit_test(test_text_reply_and_extra_header),
	    cmocka_unit_test(test_listen_errors_and_port),
	    cmocka_unit_test(test_the_large_body_route_takes_up_to_1_mib),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
