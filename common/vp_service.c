/* Shared daemon HTTP skeleton (see vp_service.h). */
#include "vp_service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "vp_http_guard.h"
#include "vp_log.h"
#include "vp_metrics.h"

static void reply_health(VpHttpRequest *r)
{
	static const char body[] = "{\"status\":\"ok\"}";
	vp_http_reply_json(r, 200, body, sizeof(body) - 1);
}

static void reply_ready(VpService *s, VpHttpRequest *r)
{
	static const char body[] = "{\"status\":\"ready\"}";
	char why[256] = "not ready";
	if (!s->ready || s->ready(s->ready_arg, why, sizeof(why))) {
		vp_http_reply_json(r, 200, body, sizeof(body) - 1);
		return;
	}
	VpError err;
	vp_error_clear(&err);
	vp_error_set(&err, 503, VP_ERR_UNAVAILABLE, "not ready: %s", why);
	vp_http_reply_error(r, &err);
}

static void reply_metrics(VpHttpRequest *r)
{
	size_t len = 0;
	char *text = vp_metrics_render(&len);
	if (!text) {
		VpError err;
		vp_error_clear(&err);
		vp_error_set(&err, 500, VP_ERR_INTERNAL, "out of memory");
		vp_http_reply_error(r, &err);
		return;
	}
	vp_http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

/* The built-in endpoints answer GET (and HEAD); true when path was one of them. */
static bool handle_builtin(VpService *s, VpHttpRequest *r)
{
	bool health = !strcmp(r->path, "/healthz");
	bool ready = !strcmp(r->path, "/readyz");
	bool metrics = !strcmp(r->path, "/metrics");
	if (!health && !ready && !metrics)
		return false;
	VpError err;
	vp_error_clear(&err);
	if (vp_http_require_method(r, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, &err) < 0)
		vp_http_reply_error(r, &err);
	else if (health)
		reply_health(r);
	else if (ready)
		reply_ready(s, r);
	else
		reply_metrics(r);
	return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	VpService *s = arg;
	VpHttpRequest r;
	VpError err;
	vp_error_clear(&err);
	bool admitted = vp_http_guard_admit(req);
	if (vp_http_request_init(&r, req, &err) < 0) {
		vp_http_reply_error(&r, &err);
	} else if (!admitted) {
		vp_error_set(&err, 503, VP_ERR_UNAVAILABLE,
			     "too many connections: try again on a new one");
		vp_http_add_header(&r, "Connection", "close");
		vp_http_reply_error(&r, &err);
	} else if (!handle_builtin(s, &r) && !(s->route && s->route(&r, s->route_arg))) {
		vp_error_set(&err, 404, VP_ERR_NOT_FOUND, "no route for %s", r.path);
		vp_http_reply_error(&r, &err);
	}
	vp_http_request_release(&r);
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
	(void)events;
	VpService *s = arg;
	vp_log_info(NULL, "signal", "received signal %d, stopping", (int)sig);
	event_base_loopexit(s->base, NULL);
}

/* The request handler and, with handle_signals, SIGTERM/SIGINT on s->base. */
static int finish_open(VpService *s, bool handle_signals, VpError *err)
{
	vp_http_guard(s->http);
	vp_http_guard_listener(s->bound);
	evhttp_set_gencb(s->http, on_request, s);
	if (!handle_signals)
		return 0;
	s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
	if (!s->sig_term || !s->sig_int || evsignal_add(s->sig_term, NULL) < 0 ||
	    evsignal_add(s->sig_int, NULL) < 0)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot install signal handlers");
	return 0;
}

int vp_service_open(VpService *s, const char *host, int port, bool handle_signals,
		    VpError *err)
{
	vp_http_metrics_init();
	s->base = event_base_new();
	if (!s->base)
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot create event loop");
	s->http = vp_http_listen(s->base, host, port, &s->bound, err);
	if (!s->http)
		return -1;
	return finish_open(s, handle_signals, err);
}

/* Binds as libevent's evhttp_bind_socket_with_handle does (first address of
 * a passive lookup, SO_REUSEADDR, SO_KEEPALIVE, backlog 128), so a daemon on
 * a shared socket behaves like one on its own: a port in use still fails. */
int vp_service_bind(const char *host, int port, bool reuse_port, VpError *err)
{
	struct evutil_addrinfo hints;
	struct evutil_addrinfo *found = NULL;
	char port_text[8];
	int on = 1;
	int fd = -1;

	if (port < 0 || port > 65535) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "port %d is out of range", port);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	snprintf(port_text, sizeof(port_text), "%d", port);
	int rc = evutil_getaddrinfo(host, port_text, &hints, &found);
	if (rc != 0) {
		vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot resolve %s: %s", host ? host : "*",
			     evutil_gai_strerror(rc));
		goto done;
	}
	fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
	    (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) ||
	    bind(fd, found->ai_addr, found->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		int saved = errno;
		vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot listen on %s:%d: %s",
			     host ? host : "*", port, strerror(saved));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
done:
	if (found)
		evutil_freeaddrinfo(found);
	return fd;
}

/* What evhttp_accept_socket_with_handle does in libevent 2.1, unrolled so that
 * who closes fd is certain on every failure: the evconnlistener closes it on
 * free (LEV_OPT_CLOSE_ON_FREE); before it exists, we do. Backlog 0: the
 * socket is already listening. */
int vp_service_open_on_fd(VpService *s, int fd, bool handle_signals, VpError *err)
{
	struct evconnlistener *listener = NULL;

	vp_http_metrics_init();
	s->base = event_base_new();
	s->http = s->base ? evhttp_new(s->base) : NULL;
	if (s->http)
		listener = evconnlistener_new(s->base, NULL, NULL,
					      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
						  LEV_OPT_CLOSE_ON_FREE,
					      0, fd);
	if (!listener) {
		if (fd >= 0)
			close(fd);
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot create the HTTP loop");
	}
	vp_http_configure(s->http);
	s->bound = evhttp_bind_listener(s->http, listener);
	if (!s->bound) {
		evconnlistener_free(listener);
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot accept on the socket");
	}
	return finish_open(s, handle_signals, err);
}

int vp_service_run(VpService *s)
{
	return event_base_dispatch(s->base) < 0 ? -1 : 0;
}

void vp_service_stop(VpService *s)
{
	if (s->base)
		event_base_loopexit(s->base, NULL);
}

void vp_service_drain(VpService *s, int grace_ms)
{
	struct timeval grace = {grace_ms / 1000, (grace_ms % 1000) * 1000};
	if (!s->base)
		return;
	if (s->http && s->bound) {
		evhttp_del_accept_socket(s->http, s->bound);
		s->bound = NULL;
	}
	event_base_loopexit(s->base, &grace);
	event_base_dispatch(s->base);
}

int vp_service_port(const VpService *s)
{
	return s->bound ? vp_http_bound_port(s->bound) : -1;
}

void vp_service_close(VpService *s)
{
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->http)
		evhttp_free(s->http);
	if (s->base)
		event_base_free(s->base);
	memset(s, 0, sizeof(*s));
}
