/* Connection limits for evhttp (see vp_http_guard.h).
 *
 * evhttp creates each accepted connection's bufferevent through the callback
 * set with evhttp_set_bevcb; ours returns a pass-through filter over a socket
 * bufferevent, so that (1) its input callback sees when a request's first bytes
 * arrive and starts the request's deadline, and (2) its context is freed with
 * the connection, which keeps the count of open connections exact. The
 * connection of a request is found again by its bufferevent in a small table
 * (evhttp keeps no user data on a connection). When the deadline passes the
 * connection gets a read timeout event, which evhttp answers by closing it. */
#include "vp_http_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "vp_log.h"
#include "vp_metrics.h"

#define TABLE_SIZE 4096 /* buckets; chains hold the rest */
#define ACCEPT_PAUSE_MS 100

typedef struct Conn {
	struct bufferevent *filter; /* the bufferevent evhttp holds */
	struct bufferevent *under;  /* the socket's, under filter */
	struct event *deadline;     /* the request's arrival deadline */
	struct event *kick;         /* moves a reply through the filter (on_output_added) */
	bool refused;               /* over the cap when accepted */
	bool handling;              /* between admit and the reply's last byte */
	struct Conn *next;          /* in its table bucket */
} Conn;

static VpHttpLimits limits = {1024, 30000, 10000};
static atomic_long open_connections;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static Conn *table[TABLE_SIZE];

static VpMetric *open_gauge;
static VpMetric *refused_total;
static VpMetric *timeouts_total;
static VpMetric *accept_errors_total;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
	open_gauge = vp_metrics_gauge("vetpms_http_connections_open", NULL,
				      "HTTP connections open in this process");
	refused_total = vp_metrics_counter("vetpms_http_connections_refused_total", NULL,
					   "connections over VETPMS_HTTP_MAX_CONNECTIONS, answered "
					   "503 and closed");
	timeouts_total = vp_metrics_counter("vetpms_http_request_timeouts_total", NULL,
					    "connections closed because a request did not arrive "
					    "whole within VETPMS_HTTP_REQUEST_TIMEOUT_MS");
	accept_errors_total = vp_metrics_counter("vetpms_http_accept_errors_total", NULL,
						 "accept() failures (out of descriptors); "
						 "accepting pauses 100 ms after each");
}

static size_t bucket_of(const struct bufferevent *bev)
{
	uintptr_t p = (uintptr_t)bev;
	return (size_t)((p >> 4) ^ (p >> 16)) % TABLE_SIZE;
}

static void table_add(Conn *c)
{
	size_t b = bucket_of(c->filter);
	pthread_mutex_lock(&table_lock);
	c->next = table[b];
	table[b] = c;
	pthread_mutex_unlock(&table_lock);
}

static void table_remove(Conn *c)
{
	size_t b = bucket_of(c->filter);
	pthread_mutex_lock(&table_lock);
	for (Conn **at = &table[b]; *at; at = &(*at)->next) {
		if (*at == c) {
			*at = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
}

/* Only the connection's own loop thread calls this and frees the connection,
 * so the entry cannot go away between the lookup and its use. */
static Conn *table_find(const struct bufferevent *bev)
{
	Conn *c;
	pthread_mutex_lock(&table_lock);
	for (c = table[bucket_of(bev)]; c && c->filter != bev; c = c->next)
		;
	pthread_mutex_unlock(&table_lock);
	return c;
}

static Conn *conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	return evcon ? table_find(evhttp_connection_get_bufferevent(evcon)) : NULL;
}

static void start_deadline(Conn *c)
{
	struct timeval tv = {limits.request_timeout_ms / 1000,
			     (limits.request_timeout_ms % 1000) * 1000};
	if (!evtimer_pending(c->deadline, NULL))
		evtimer_add(c->deadline, &tv);
}

/* evhttp treats a read timeout as the end of the connection (no answer). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	Conn *c = arg;
	if (c->handling)
		return;
	vp_metric_add(timeouts_total, 1);
	vp_log_debug(NULL, "http_request_timeout", "a request did not arrive whole in %ld ms",
		     limits.request_timeout_ms);
	bufferevent_trigger_event(c->filter, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

/* Passes every byte through (as libevent's null filter does); the first bytes
 * of a request start its deadline. */
static enum bufferevent_filter_result on_input(struct evbuffer *src, struct evbuffer *dst,
					       ev_ssize_t limit, enum bufferevent_flush_mode mode,
					       void *arg)
{
	(void)mode;
	Conn *c = arg;
	if (!c->handling && evbuffer_get_length(src) > 0)
		start_deadline(c);
	return evbuffer_remove_buffer(src, dst, (size_t)limit) >= 0 ? BEV_OK : BEV_ERROR;
}

/* Our own pass-through, not libevent's null filter (in 2.1.12 it reports an
 * error whenever it moved bytes). BEV_NEED_MORE instead of BEV_OK: the filter
 * would then tell evhttp "written" as soon as the bytes reach the socket's
 * bufferevent, and evhttp, when it closes the connection after a reply,
 * shuts the socket down for writing at once and loses what was not written
 * yet. on_socket_output says "written" when the socket has taken it all. */
static enum bufferevent_filter_result on_output(struct evbuffer *src, struct evbuffer *dst,
						ev_ssize_t limit, enum bufferevent_flush_mode mode,
						void *arg)
{
	(void)mode;
	(void)arg;
	return evbuffer_remove_buffer(src, dst, (size_t)limit) >= 0 ? BEV_NEED_MORE : BEV_ERROR;
}

static void on_socket_output(struct evbuffer *buf, const struct evbuffer_cb_info *info,
			     void *arg)
{
	Conn *c = arg;
	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0 && c->filter &&
	    evbuffer_get_length(bufferevent_get_output(c->filter)) == 0)
		bufferevent_trigger(c->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

/* libevent 2.1's filter moves output only while its EV_WRITE is enabled, and
 * enabling it later does not move what is already waiting. evhttp adds a
 * reply's bytes first and enables EV_WRITE right after, so without this the
 * reply would wait for an unrelated event. A deferred flush, run after
 * evhttp's call has returned, moves it. */
static void kick_output(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	Conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(c->filter)) > 0)
		bufferevent_flush(c->filter, EV_WRITE, BEV_NORMAL);
}

static void on_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info,
			    void *arg)
{
	(void)buf;
	Conn *c = arg;
	if (info->n_added > 0 && !event_pending(c->kick, EV_TIMEOUT, NULL))
		event_active(c->kick, EV_TIMEOUT, 1);
}

/* The filter's context, freed once evhttp has freed the connection. */
static void free_conn(void *arg)
{
	Conn *c = arg;
	table_remove(c);
	evbuffer_remove_cb(bufferevent_get_output(c->under), on_socket_output, c);
	event_free(c->deadline);
	event_free(c->kick);
	atomic_fetch_sub(&open_connections, 1);
	vp_metric_add(open_gauge, -1);
	free(c);
}

/* evhttp's bufferevent factory. NULL lets evhttp make a plain one (only when
 * out of memory: that connection is then neither counted nor timed). */
static struct bufferevent *new_connection(struct event_base *base, void *arg)
{
	(void)arg;
	Conn *c = calloc(1, sizeof(*c));
	struct bufferevent *under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c) {
		c->under = under;
		c->deadline = evtimer_new(base, on_deadline, c);
		c->kick = evtimer_new(base, kick_output, c);
	}
	if (c && c->deadline && c->kick && under)
		c->filter = bufferevent_filter_new(under, on_input, on_output,
						   BEV_OPT_CLOSE_ON_FREE, free_conn, c);
	if (!c || !c->filter) {
		if (under)
			bufferevent_free(under);
		if (c && c->deadline)
			event_free(c->deadline);
		if (c && c->kick)
			event_free(c->kick);
		free(c);
		return NULL;
	}
	/* From here on bufferevent_free(c->filter) undoes everything (free_conn). */
	c->refused = atomic_fetch_add(&open_connections, 1) + 1 > limits.max_connections;
	vp_metric_add(open_gauge, 1);
	table_add(c);
	if (!evbuffer_add_cb(bufferevent_get_output(c->filter), on_output_added, c) ||
	    !evbuffer_add_cb(bufferevent_get_output(under), on_socket_output, c)) {
		bufferevent_free(c->filter);
		return NULL;
	}
	return c->filter;
}

static void on_reply_sent(struct evhttp_request *req, void *arg)
{
	(void)arg;
	Conn *c = conn_of(req);
	if (!c)
		return;
	c->handling = false;
	/* A pipelined request already read in part runs against the clock too. */
	if (evbuffer_get_length(bufferevent_get_input(c->filter)) > 0)
		start_deadline(c);
}

bool vp_http_guard_admit(struct evhttp_request *req)
{
	Conn *c = conn_of(req);
	if (!c)
		return true;
	c->handling = true;
	evtimer_del(c->deadline);
	evhttp_request_set_on_complete_cb(req, on_reply_sent, NULL);
	if (c->refused)
		vp_metric_add(refused_total, 1);
	return !c->refused;
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}

/* Out of descriptors, accept() fails at once on every loop turn: pause the
 * listener instead of spinning, and try again a little later. */
static void on_accept_error(struct evconnlistener *listener, void *arg)
{
	(void)arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
	vp_metric_add(accept_errors_total, 1);
	vp_log_warn(NULL, "accept_failed", "%s; not accepting for %d ms",
		    evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
	evconnlistener_disable(listener);
	event_base_once(evconnlistener_get_base(listener), -1, EV_TIMEOUT, resume_accepting,
			listener, &pause);
}

void vp_http_guard_set_limits(const VpHttpLimits *l)
{
	struct rlimit files;
	limits = *l;
	if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
		files.rlim_cur = files.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &files) < 0)
			vp_log_warn(NULL, "startup", "cannot raise the open files limit: %s",
				    strerror(errno));
	}
}

void vp_http_guard(struct evhttp *http)
{
	struct timeval idle = {limits.idle_timeout_ms / 1000,
			       (limits.idle_timeout_ms % 1000) * 1000};
	pthread_once(&metrics_once, register_metrics);
	evhttp_set_bevcb(http, new_connection, NULL);
	evhttp_set_timeout_tv(http, &idle);
}

void vp_http_guard_listener(struct evhttp_bound_socket *bound)
{
	struct evconnlistener *listener = bound ? evhttp_bound_socket_get_listener(bound) : NULL;
	if (listener)
		evconnlistener_set_error_cb(listener, on_accept_error);
}
