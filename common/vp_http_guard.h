/* Limits on the connections of a daemon's HTTP server, which libevent 2.1's
 * evhttp does not have: a cap on open connections per process (the ones over
 * it are answered 503 UNAVAILABLE and closed, never left to spin the accept
 * loop), a deadline for a request to arrive whole (headers and body: a
 * client trickling bytes is cut off), and an idle timeout for keep-alive
 * connections (evhttp's own timeout). Each connection accepted by evhttp is
 * wrapped in a pass-through filter bufferevent, which tells us when its
 * bytes arrive and when it is freed. */
#ifndef VP_HTTP_GUARD_H
#define VP_HTTP_GUARD_H

#include <stdbool.h>
#include <event2/http.h>

typedef struct VpHttpLimits {
	long max_connections;    /* open connections per process */
	long idle_timeout_ms;    /* a keep-alive connection with no request */
	long request_timeout_ms; /* first byte of a request to its last */
} VpHttpLimits;

/* The three config items of the limits, for a daemon's VpConfigItem table
 * (vp_config.h): the same names in every daemon. */
#define VP_HTTP_LIMIT_ITEMS(limits)                                                              \
	VP_CF_INT("http-max-connections", "VETPMS_HTTP_MAX_CONNECTIONS",                        \
		  &(limits).max_connections, "1024", 1, 100000,                                  \
		  "open HTTP connections per process; the ones over it get 503 and are closed"), \
	    VP_CF_INT("http-idle-timeout-ms", "VETPMS_HTTP_IDLE_TIMEOUT_MS",                    \
		      &(limits).idle_timeout_ms, "30000", 100, 3600000,                         \
		      "keep-alive connections idle this long are closed"),                      \
	    VP_CF_INT("http-request-timeout-ms", "VETPMS_HTTP_REQUEST_TIMEOUT_MS",              \
		      &(limits).request_timeout_ms, "10000", 100, 3600000,                      \
		      "a request must arrive whole (headers and body) this soon after its "     \
		      "first byte, else its connection is closed")

/* Sets the limits of every evhttp guarded after this call (at start-up, before
 * any loop runs; the defaults above apply until then). Also raises the soft
 * limit of open files to the hard one, so that the cap, not the descriptors,
 * is what runs out. */
void vp_http_guard_set_limits(const VpHttpLimits *limits);

/* Guards an evhttp: wraps its connections and sets its idle timeout. */
void vp_http_guard(struct evhttp *http);

/* Pauses accepting for 100 ms when accept() fails (out of descriptors)
 * instead of letting the listener spin; bound may be NULL. */
void vp_http_guard_listener(struct evhttp_bound_socket *bound);

/* At the start of a request's handling: stops its arrival deadline. False
 * when its connection is over the cap: answer 503 and close it. */
bool vp_http_guard_admit(struct evhttp_request *req);

#endif
