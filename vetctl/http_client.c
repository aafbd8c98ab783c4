/* An HTTP/1.1 client for vetctl (libevent's evhttp): POST a JSON body with a
 * bearer token and wait for the answer or the timeout — blocking
 * (vc_http_post), or on one of several keep-alive connections at once
 * (vc_http_send, then vc_http_wait until the replies are done), which libevent
 * re-opens after a failure. One request at a time per connection: libevent's
 * server reads a connection's next request only after answering the last, so
 * requests in flight at once need a connection each. */
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
	struct evhttp_connection *conn[VC_HTTP_MAX_CONNS];
	int n_conns;
	char host[256];
	char *token;
};

VcHttp *vc_http_new(const char *url, const char *token, int timeout_s, int n_conns, char *why,
		   size_t why_cap)
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
	h->n_conns = n_conns < 1 ? 1 : n_conns > VC_HTTP_MAX_CONNS ? VC_HTTP_MAX_CONNS : n_conns;
	for (int i = 0; h->base && i < h->n_conns; i++) {
		h->conn[i] = evhttp_connection_base_new(h->base, NULL, host,
							(unsigned short)(port > 0 ? port : 80));
		if (!h->conn[i])
			break;
		evhttp_connection_set_timeout(h->conn[i], timeout_s);
	}
	if (!h->token || !h->conn[h->n_conns - 1]) {
		snprintf(why, why_cap, "cannot set up the HTTP client");
		goto fail;
	}
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
	for (int i = 0; i < h->n_conns; i++)
		if (h->conn[i])
			evhttp_connection_free(h->conn[i]);
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
static void no_delay(struct evhttp_connection *conn)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int vc_http_send(VcHttp *h, int slot, const char *path, const char *json, size_t len,
		 VcHttpReply *out)
{
	char auth[2048];
	memset(out, 0, sizeof(*out));
	if (slot < 0 || slot >= h->n_conns)
		return -1;
	struct evhttp_request *req = evhttp_request_new(on_reply, out);
	if (!req)
		return -1;
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	snprintf(auth, sizeof(auth), "Bearer %s", h->token);
	evhttp_add_header(headers, "Host", h->host);
	evhttp_add_header(headers, "Content-Type", "application/json");
	evhttp_add_header(headers, "Authorization", auth);
	evbuffer_add(evhttp_request_get_output_buffer(req), json, len);
	if (evhttp_make_request(h->conn[slot], req, EVHTTP_REQ_POST, path) != 0)
		return -1; /* libevent freed the request */
	no_delay(h->conn[slot]);
	return 0;
}

int vc_http_wait(VcHttp *h)
{
	return event_base_loop(h->base, EVLOOP_ONCE) == 0 ? 0 : -1;
}

int vc_http_post(VcHttp *h, const char *path, const char *json, size_t len, VcHttpReply *out)
{
	if (vc_http_send(h, 0, path, json, len, out) < 0)
		return -1;
	while (!out->done && vc_http_wait(h) == 0)
		;
	return out->done ? 0 : -1;
}

void vc_http_reply_release(VcHttpReply *r)
{
	free(r->body);
	r->body = NULL;
}
