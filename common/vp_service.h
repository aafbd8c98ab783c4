/* The HTTP face every daemon shares: an evhttp server on its own event_base that
 * answers GET /healthz, /readyz and /metrics itself and hands every other request
 * to the daemon's router; SIGTERM/SIGINT end the loop cleanly. */
#ifndef VP_SERVICE_H
#define VP_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "vp_http.h"

/* Fills why and returns false while the daemon cannot serve (readyz → 503). */
typedef bool (*VpReadyFn)(void *arg, char *why, size_t why_cap);
/* Handles one request (must reply); return false for "no such route" (→ 404). */
typedef bool (*VpRouteFn)(VpHttpRequest *r, void *arg);

typedef struct VpService {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *sig_term;
	struct event *sig_int;
	VpReadyFn ready;
	void *ready_arg;
	VpRouteFn route;
	void *route_arg;
} VpService;

/* Creates the loop and binds host:port. With handle_signals, SIGTERM and SIGINT
 * stop the loop (daemons that run the loop on a side thread pass false). */
int vp_service_open(VpService *s, const char *host, int port, bool handle_signals,
		    VpError *err);
/* A non-blocking, close-on-exec TCP listening socket on host:port (port 0 = any
 * free port), bound as vp_http_listen binds. With reuse_port (SO_REUSEPORT)
 * several sockets can listen on one port and the kernel spreads connections
 * between them: one per loop, each given to vp_service_open_on_fd. Returns the
 * fd, or -1 with err set. */
int vp_service_bind(const char *host, int port, bool reuse_port, VpError *err);
/* Like vp_service_open, but accepts on an already listening socket (one of the
 * SO_REUSEPORT sockets above). Takes fd in every case: vp_service_close (or a
 * failure here) closes it. */
int vp_service_open_on_fd(VpService *s, int fd, bool handle_signals, VpError *err);
/* Runs the loop until stopped; returns 0 on a clean stop. */
int vp_service_run(VpService *s);
/* Thread-safe (needs evthread_use_pthreads() at start). */
void vp_service_stop(VpService *s);
/* After the loop has stopped: closes the listening socket, then runs the loop
 * for up to grace_ms more so that replies already queued (the 503s of the
 * requests a daemon ended at shutdown) reach their clients before
 * vp_service_close drops the connections. Requests still arriving on open
 * connections go to the handlers as usual, which should refuse them. */
void vp_service_drain(VpService *s, int grace_ms);
void vp_service_close(VpService *s);
int vp_service_port(const VpService *s);

#endif
