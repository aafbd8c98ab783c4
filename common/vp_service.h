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
/* Runs the loop until stopped; returns 0 on a clean stop. */
int vp_service_run(VpService *s);
/* Thread-safe (needs evthread_use_pthreads() at start). */
void vp_service_stop(VpService *s);
void vp_service_close(VpService *s);
int vp_service_port(const VpService *s);

#endif
