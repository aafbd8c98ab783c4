/* A blocking HTTP/1.1 client for vetctl (libevent's evhttp, one keep-alive
 * connection that libevent re-opens after a failure): POST a JSON body with a
 * bearer token, wait for the answer or the timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "vetctl.h"

struct VcHttp {
	struct event_base *base;
	struct evhttp_connection *conn;
	char host[256];
	char *token;
};

VcHttp *vc_http_new(const char *url, const char *token, int timeout_s, char *why, size_t why_cap)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	VcHttp *h = calloc(1, sizeof(*h));
	const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
	int port = uri ? evhttp_uri_get_port(uri) : -1;
	if (!h || !host || !uri || strcmp(evhttp_uri_get_scheme(uri) ? evhttp_uri_get_scheme(uri)
								       : "", "http") != 0) {
		snprintf(why, why_cap, "--writer must be http://host:port");
		goto fail;
	}
	snprintf(h->host, sizeof(h->host), "%s", host);
	h->token = strdup(token);
	h->base = event_base_new();
	h->conn = h->base ? evhttp_connection_base_new(h->base, NULL, host,
							(unsigned short)(port > 0 ? port : 80))
			  : NULL;
	if (!h->token || !h->conn) {
		snprintf(why, why_cap, "cannot set up the HTTP client");
		goto fail;
	}
	evhttp_connection_set_timeout(h->conn, timeout_s);
	evhttp_uri_free(uri);
	return h;
fail:
	if (uri)
		evhttp_uri_free(uri);
	vc_http_free(h);
	return NULL;
}

void vc_http_free(VcHttp *h)
{
	if (!h)
		return;
	if (h->conn)
		evhttp_connection_free(h->conn);
	if (h->base)
		event_base_free(h->base);
	free(h->token);
	free(h);
}

static void on_reply(struct evhttp_request *req, void *arg)
{
	VcHttpReply *out = arg;
	out->done = true;
	if (!req || evhttp_request_get_response_code(req) == 0) {
		out->status = 0; /* no answer: connection refused, reset or timed out */
		return;
	}
	out->status = evhttp_request_get_response_code(req);
	const char *retry = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
	out->retry_after_s = retry ? atoi(retry) : 0;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	out->body = malloc(len + 1);
	if (out->body) {
		evbuffer_remove(in, out->body, len);
		out->body[len] = '\0';
	}
}

/* Nagle off on the connection's socket (which libevent has made by now,
 * connected or connecting; a reconnect makes a new one, hence every time): a
 * request's last small segment otherwise waits for the ACK of the one before,
 * which the writer's kernel delays up to 40 ms — that was most of an import
 * batch's round trip (docs/bench.md). */
static void no_delay(VcHttp *h)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(h->conn));
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int vc_http_post(VcHttp *h, const char *path, const char *json, size_t len, VcHttpReply *out)
{
	char auth[2048];
	memset(out, 0, sizeof(*out));
	struct evhttp_request *req = evhttp_request_new(on_reply, out);
	if (!req)
		return -1;
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	snprintf(auth, sizeof(auth), "Bearer %s", h->token);
	evhttp_add_header(headers, "Host", h->host);
	evhttp_add_header(headers, "Content-Type", "application/json");
	evhttp_add_header(headers, "Authorization", auth);
	evbuffer_add(evhttp_request_get_output_buffer(req), json, len);
	if (evhttp_make_request(h->conn, req, EVHTTP_REQ_POST, path) != 0)
		return -1; /* libevent freed the request */
	no_delay(h);
	while (!out->done && event_base_loop(h->base, EVLOOP_ONCE) == 0)
		;
	return out->done ? 0 : -1;
}

void vc_http_reply_release(VcHttpReply *r)
{
	free(r->body);
	r->body = NULL;
}
