/* GET /v1/stream: Server-Sent Events of the token's tenant (docs/streaming.md).
 *
 * Fed from read.event_log, never from Kafka: a row is there only once the
 * projector has committed it, so a client that reads on an event sees the
 * change. Progress arrives by the loop's LISTEN connection (consistency.c
 * calls rd_streams_progress after each NOTIFY); the rows are read through the
 * loop's async pool, never blocking the loop.
 *
 * Per loop, the streams of one tenant share a Feed: one query per tenant and
 * notification (not one per stream), whose rows go to every member. A stream
 * that starts behind the feed (Last-Event-ID, ?after=) first reads pages of
 * its own (catching up, the next page once the socket took the last one) and
 * joins the feed only when it is not behind it; every stream keeps its own
 * position and takes only rows after it, so joining can neither lose nor
 * repeat an event. Order is (partition, offset): a tenant's events all live
 * in one partition (the writer picks it from the tenant id), so that is the
 * log's order.
 *
 * Lifetime: a stream ends when its peer goes (evhttp's close callback), when
 * it is dropped as too slow (its connection freed at once: the client sees a
 * cut and resumes with Last-Event-ID) and at shutdown (a clean end of the
 * chunked answer). A stream or feed with a query in flight is only marked
 * closed; the query's callback frees it without touching anything else. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "reader.h"
#include "routes.h"
#include "vp_auth.h"
#include "vp_buf.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_log.h"
#include "vp_uuid.h"

#define PAGE_ROWS      500
#define PAGE_ROWS_TEXT "500"
#define RETRY_MS       1000
#define TENANT_BUCKETS 256
#define EVENT_TEXT_MAX 4096

static const RdStatement stream_head = {
	"rd_stream_head",
	"SELECT partition, \"offset\" FROM read.event_log WHERE tenant_id = $1::uuid"
	" ORDER BY partition DESC, \"offset\" DESC LIMIT 1",
	1};

static const RdStatement stream_after = {
	"rd_stream_after",
	"SELECT partition, \"offset\", type, aggregate, aggregate_id::text, " RD_RFC3339("at")
	" FROM read.event_log WHERE tenant_id = $1::uuid"
	" AND (partition, \"offset\") > ($2::int, $3::bigint)"
	" ORDER BY partition, \"offset\" LIMIT " PAGE_ROWS_TEXT,
	3};

/* --- pure parts (tests/unit/test_rd_stream.c) -------------------------- */

int rd_stream_pos_cmp(RdStreamPos a, RdStreamPos b)
{
	if (a.partition != b.partition)
		return a.partition < b.partition ? -1 : 1;
	if (a.offset != b.offset)
		return a.offset < b.offset ? -1 : 1;
	return 0;
}

static bool is_catalog_type(const char *type, size_t len)
{
	for (size_t i = 0; i < vp_catalog_len; i++)
		if (strlen(vp_catalog[i].type) == len && !memcmp(vp_catalog[i].type, type, len))
			return true;
	return false;
}

int rd_stream_filter_parse(RdStreamFilter *f, const char *types, const char *aggregate_id,
			   VpError *err)
{
	memset(f, 0, sizeof(*f));
	if (aggregate_id) {
		VpUuid id;
		if (vp_uuid_parse(aggregate_id, strlen(aggregate_id), &id) < 0) {
			vp_error_add_detail(err, "aggregate_id", "must be a UUID");
		} else {
			vp_uuid_format(&id, f->aggregate_id);
			f->has_aggregate = true;
		}
	}
	if (!types)
		return 0;
	const char *s = types;
	for (;;) {
		size_t len = strcspn(s, ",");
		if (len == 0 || len >= sizeof(f->types[0]) || !is_catalog_type(s, len)) {
			vp_error_add_detail(err, "types",
					    "must be a comma-separated list of event types");
			return -1;
		}
		bool seen = false;
		for (int i = 0; i < f->n_types && !seen; i++)
			seen = strlen(f->types[i]) == len && !memcmp(f->types[i], s, len);
		if (!seen) {
			if (f->n_types == RD_STREAM_MAX_TYPES) {
				vp_error_add_detail(err, "types", "at most %d types",
						    RD_STREAM_MAX_TYPES);
				return -1;
			}
			memcpy(f->types[f->n_types], s, len);
			f->types[f->n_types++][len] = '\0';
		}
		if (s[len] == '\0')
			return 0;
		s += len + 1;
	}
}

bool rd_stream_filter_match(const RdStreamFilter *f, const char *type, const char *aggregate_id)
{
	if (f->has_aggregate && strcmp(f->aggregate_id, aggregate_id) != 0)
		return false;
	if (f->n_types == 0)
		return true;
	for (int i = 0; i < f->n_types; i++)
		if (!strcmp(f->types[i], type))
			return true;
	return false;
}

int rd_stream_start_parse(const char *last_event_id, const char *after, RdStreamPos *pos,
			  bool *has_pos, VpError *err)
{
	/* Last-Event-ID wins: a browser reconnecting keeps the URL it started
	 * with (and its ?after=) and adds the header. An empty one means none
	 * (what EventSource sends before any id). */
	const char *text = last_event_id && *last_event_id ? last_event_id : after;
	const char *field = text == after ? "after" : "Last-Event-ID";
	*has_pos = false;
	if (!text)
		return 0;
	if (rd_consistency_parse(text, &pos->partition, &pos->offset) < 0) {
		vp_error_add_detail(err, field, "must be a position P:O");
		return -1;
	}
	*has_pos = true;
	return 0;
}

/* `event:` must stay on its line whatever the log holds. */
static int append_line_safe(VpBuf *out, const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f && vp_buf_append(out, s, 1) < 0)
			return -1;
	return 0;
}

int rd_stream_format_event(VpBuf *out, const RdStreamEvent *ev)
{
	char position[40];
	snprintf(position, sizeof(position), "%d:%lld", ev->pos.partition,
		 (long long)ev->pos.offset);
	vp_buf_printf(out, "id: %s\nevent: ", position);
	append_line_safe(out, ev->type);
	vp_buf_puts(out, "\ndata: {\"type\":");
	vp_json_write_string(out, ev->type);
	vp_buf_puts(out, ",\"aggregate\":");
	vp_json_write_string(out, ev->aggregate);
	vp_buf_puts(out, ",\"aggregate_id\":");
	vp_json_write_string(out, ev->aggregate_id);
	vp_buf_printf(out, ",\"position\":\"%s\",\"at\":", position);
	vp_json_write_string(out, ev->at);
	return vp_buf_puts(out, "}\n\n");
}

/* --- caps, per process ------------------------------------------------- */

typedef struct TenantCount {
	char tenant[37];
	long open;
	struct TenantCount *next;
} TenantCount;

static pthread_mutex_t caps_lock = PTHREAD_MUTEX_INITIALIZER;
static long caps_total;
static TenantCount *caps_tenants[TENANT_BUCKETS];

static TenantCount **caps_slot(const char *tenant)
{
	unsigned h = 2166136261u;
	for (const char *s = tenant; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	TenantCount **at = &caps_tenants[h % TENANT_BUCKETS];
	while (*at && strcmp((*at)->tenant, tenant) != 0)
		at = &(*at)->next;
	return at;
}

typedef enum { CAP_OK, CAP_TOTAL, CAP_TENANT, CAP_OOM } CapResult;

static CapResult caps_take(const char *tenant, long max_total, long max_tenant)
{
	CapResult result = CAP_OK;
	pthread_mutex_lock(&caps_lock);
	TenantCount **at = caps_slot(tenant);
	if (caps_total >= max_total)
		result = CAP_TOTAL;
	else if (*at && (*at)->open >= max_tenant)
		result = CAP_TENANT;
	else if (!*at && (max_tenant < 1 || !(*at = calloc(1, sizeof(**at)))))
		result = max_tenant < 1 ? CAP_TENANT : CAP_OOM;
	if (result == CAP_OK) {
		snprintf((*at)->tenant, sizeof((*at)->tenant), "%s", tenant);
		(*at)->open++;
		caps_total++;
	}
	pthread_mutex_unlock(&caps_lock);
	return result;
}

static void caps_release(const char *tenant)
{
	pthread_mutex_lock(&caps_lock);
	TenantCount **at = caps_slot(tenant);
	if (*at && --(*at)->open == 0) {
		TenantCount *gone = *at;
		*at = gone->next;
		free(gone);
	}
	caps_total--;
	pthread_mutex_unlock(&caps_lock);
}

/* --- metrics ----------------------------------------------------------- */

static VpMetric *open_gauge;
static VpMetric *events_total;
static VpMetric *drops_total;
static VpMetric *refused_total;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
	open_gauge = vp_metrics_gauge("vetpms_reader_streams_open", NULL,
				      "GET /v1/stream answers open in this process");
	events_total = vp_metrics_counter("vetpms_reader_stream_events_sent_total", NULL,
					  "events written to streams");
	drops_total = vp_metrics_counter("vetpms_reader_stream_drops_total", NULL,
					 "streams cut because their client read too slowly "
					 "(VETPMS_STREAM_BUFFER_BYTES pending)");
	refused_total = vp_metrics_counter("vetpms_reader_stream_refused_total", NULL,
					   "streams refused over VETPMS_STREAM_MAX or "
					   "VETPMS_STREAM_MAX_PER_TENANT");
}

/* --- streams and feeds ------------------------------------------------- */

typedef enum { ST_STARTING, ST_CATCHING, ST_LIVE } StreamState;

typedef struct Feed Feed;
typedef struct Stream Stream;

struct Stream {
	RdStreams *hub;
	VpHttpRequest http; /* its req until the end; for the request id and a 503 */
	char tenant_id[37];
	RdStreamFilter filter;
	RdStreamPos pos; /* the last event this client has passed (sent or filtered) */
	StreamState state;
	bool started;       /* the 200 and its headers are out */
	bool busy;          /* a query of its own is in flight */
	bool closed;        /* ended; freed by the query's callback */
	bool waiting_drain; /* catching up: the next page once the socket took this one */
	Feed *feed;
	Stream *feed_next;
	Stream *feed_prev;
	Stream *next; /* in the hub */
	Stream *prev;
	struct event *retry;
};

struct Feed {
	RdStreams *hub;
	char tenant_id[37];
	RdStreamPos last; /* every member has passed every event up to here */
	int partition;    /* where the tenant's events were seen; -1 before */
	bool fetching;
	bool again;  /* progress arrived while fetching */
	bool orphan; /* no member left while fetching: freed by the callback */
	Stream *members;
	Feed *next;
	Feed *prev;
	struct event *retry;
};

struct RdStreams {
	RdLoop *loop;
	const RdConfig *cfg;
	Stream *streams;
	Feed *feeds;
	struct event *heartbeat;
};

static void catchup_fetch(Stream *s);
static void feed_kick(Feed *f);

static void on_written(struct evhttp_connection *evcon, void *arg);
static void on_peer_closed(struct evhttp_connection *evcon, void *arg);

/* Bytes sent to the stream that its client has not acknowledged yet: in our
 * buffers and in the kernel's send queue (SIOCOUTQ), which on its own can
 * hold megabytes of a client that stopped reading. */
static size_t pending_bytes(Stream *s)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(s->http.req);
	if (!evcon)
		return 0;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct bufferevent *under = bufferevent_get_underlying(bev);
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev)) +
			 (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
	int queued = 0;
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (fd >= 0 && ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0)
		pending += (size_t)queued;
	return pending;
}

static void feed_free(Feed *f)
{
	if (f->retry)
		event_free(f->retry);
	free(f);
}

/* Out of the hub's list; freed now, or by its fetch's callback. */
static void feed_release(Feed *f)
{
	RdStreams *hub = f->hub;
	if (f->prev)
		f->prev->next = f->next;
	else
		hub->feeds = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (f->fetching)
		f->orphan = true;
	else
		feed_free(f);
}

static void feed_leave(Stream *s)
{
	Feed *f = s->feed;
	if (!f)
		return;
	if (s->feed_prev)
		s->feed_prev->feed_next = s->feed_next;
	else
		f->members = s->feed_next;
	if (s->feed_next)
		s->feed_next->feed_prev = s->feed_prev;
	s->feed = NULL;
	s->feed_next = s->feed_prev = NULL;
	if (!f->members)
		feed_release(f);
}

static void stream_free_memory(Stream *s)
{
	if (s->retry)
		event_free(s->retry);
	free(s);
}

/* Out of the hub and its feed, caps and gauge given back; the request is the
 * caller's business. Freed now, or by the query in flight. */
static void stream_forget(Stream *s)
{
	RdStreams *hub = s->hub;
	feed_leave(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		hub->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	caps_release(s->tenant_id);
	vp_metric_add(open_gauge, -1);
	s->http.req = NULL;
	if (s->busy)
		s->closed = true;
	else
		stream_free_memory(s);
}

/* The peer went (or its connection failed): evhttp frees the connection
 * right after this. A request detached from it (libevent 2.1 does so for a
 * request not finished yet) is ours to free. */
static void on_peer_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	Stream *s = arg;
	struct evhttp_request *req = s->http.req;
	vp_log_info(s->http.request_id, "stream_closed", "the client went");
	stream_forget(s);
	if (req && !evhttp_request_get_connection(req))
		evhttp_send_reply_end(req);
}

/* A clean end (shutdown, or an error before the 200). */
static void stream_end(Stream *s, int status, const char *code, const char *msg)
{
	struct evhttp_request *req = s->http.req;
	struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (req && !s->started) {
		VpError err;
		vp_error_clear(&err);
		vp_error_set(&err, status, code, "%s", msg);
		vp_http_reply_error(&s->http, &err);
	} else if (req) {
		evhttp_send_reply_end(req);
	}
	stream_forget(s);
}

/* Too slow: the connection goes at once, buffered bytes with it. */
static void stream_drop(Stream *s, size_t pending)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(s->http.req);
	vp_metric_add(drops_total, 1);
	vp_log_warn(s->http.request_id, "stream_dropped",
		    "tenant %s: %zu bytes not taken by the client (limit %ld); at %d:%lld",
		    s->tenant_id, pending, s->hub->cfg->stream_buffer_bytes, s->pos.partition,
		    (long long)s->pos.offset);
	stream_forget(s);
	if (evcon) {
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon); /* frees the request too */
	}
}

/* Sends what buf holds; false when the stream is gone: dropped because its
 * client still had not taken the bytes sent before, over the limit. So what
 * one stream holds stays under the limit plus one page of events. */
static bool stream_send(Stream *s, struct evbuffer *buf)
{
	if (evbuffer_get_length(buf) == 0)
		return true;
	size_t pending = pending_bytes(s);
	if (pending > (size_t)s->hub->cfg->stream_buffer_bytes) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		stream_drop(s, pending);
		return false;
	}
	if (evhttp_request_get_connection(s->http.req))
		evhttp_send_reply_chunk_with_cb(s->http.req, buf, on_written, s);
	evbuffer_drain(buf, evbuffer_get_length(buf));
	return true;
}

/* Every byte sent so far left for the socket. */
static void on_written(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	Stream *s = arg;
	if (s->waiting_drain && !s->busy && !s->closed) {
		s->waiting_drain = false;
		catchup_fetch(s);
	}
}

/* A stream answer outlives the HTTP timeouts of vp_http_guard: no read
 * timeout (the client sends nothing more), and a dead peer is found by the
 * heartbeats it cannot acknowledge (TCP_USER_TIMEOUT) or a socket that takes
 * nothing for as long (write timeout). Connection: close, so that a
 * connection whose stream ended never goes back to keep-alive without its
 * idle timeout. */
static void stream_start_response(Stream *s)
{
	struct evhttp_request *req = s->http.req;
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "text/event-stream");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Request-Id", s->http.request_id);
	evhttp_add_header(headers, "X-Accel-Buffering", "no");
	evhttp_add_header(headers, "Connection", "close");
	evhttp_send_reply_start(req, 200, "OK");
	s->started = true;
	s->http.replied = true;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (!evcon)
		return;
	long dead_ms = s->hub->cfg->stream_dead_peer_ms;
	struct timeval dead = {dead_ms / 1000, (dead_ms % 1000) * 1000};
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct bufferevent *under = bufferevent_get_underlying(bev);
	bufferevent_set_timeouts(bev, NULL, NULL);
	if (under)
		bufferevent_set_timeouts(under, NULL, &dead);
	evutil_socket_t fd = bufferevent_getfd(bev);
	unsigned int user_timeout = (unsigned int)dead_ms;
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	vp_log_info(s->http.request_id, "stream_opened", "tenant %s after %d:%lld", s->tenant_id,
		    s->pos.partition, (long long)s->pos.offset);
}

/* One row of stream_after. */
static void row_event(const PGresult *res, int i, RdStreamEvent *ev)
{
	ev->pos.partition = atoi(PQgetvalue(res, i, 0));
	ev->pos.offset = strtoll(PQgetvalue(res, i, 1), NULL, 10);
	ev->type = PQgetvalue(res, i, 2);
	ev->aggregate = PQgetvalue(res, i, 3);
	ev->aggregate_id = PQgetvalue(res, i, 4);
	ev->at = PQgetvalue(res, i, 5);
}

/* The rows after s->pos that pass its filter into one chunk; s->pos moves to
 * the last row. False when the stream was dropped; *wrote whether it sent any. */
static bool deliver_rows(Stream *s, const PGresult *res, struct evbuffer *chunk, VpBuf *text,
			 bool *wrote)
{
	int n = PQntuples(res);
	int64_t sent = 0;
	for (int i = 0; i < n; i++) {
		RdStreamEvent ev;
		row_event(res, i, &ev);
		if (rd_stream_pos_cmp(ev.pos, s->pos) <= 0)
			continue;
		s->pos = ev.pos;
		if (!rd_stream_filter_match(&s->filter, ev.type, ev.aggregate_id))
			continue;
		vp_buf_reset(text);
		if (rd_stream_format_event(text, &ev) == 0 &&
		    evbuffer_add(chunk, vp_buf_str(text), text->len) == 0)
			sent++;
	}
	vp_metric_add(events_total, sent);
	*wrote = evbuffer_get_length(chunk) > 0;
	return stream_send(s, chunk);
}

static Feed *feed_of(RdStreams *hub, const char *tenant_id)
{
	for (Feed *f = hub->feeds; f; f = f->next)
		if (!strcmp(f->tenant_id, tenant_id))
			return f;
	return NULL;
}

static void on_feed_retry(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	feed_kick(arg);
}

static Feed *feed_new(RdStreams *hub, const char *tenant_id, RdStreamPos last)
{
	Feed *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->hub = hub;
	snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", tenant_id);
	f->last = last;
	f->partition = last.partition;
	f->retry = evtimer_new(hub->loop->base, on_feed_retry, f);
	if (!f->retry) {
		free(f);
		return NULL;
	}
	f->next = hub->feeds;
	if (hub->feeds)
		hub->feeds->prev = f;
	hub->feeds = f;
	return f;
}

static void feed_fetch(Feed *f);

static void on_feed_rows(const PGresult *res, const char *error, void *arg)
{
	Feed *f = arg;
	f->fetching = false;
	if (f->orphan) {
		feed_free(f);
		return;
	}
	if (error) {
		struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
		vp_log_warn(NULL, "stream_feed", "tenant %s: %s; again in %d ms", f->tenant_id, error,
			    RETRY_MS);
		evtimer_add(f->retry, &later);
		return;
	}
	int n = PQntuples(res);
	if (n > 0) {
		struct evbuffer *chunk = evbuffer_new();
		if (!chunk) {
			struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
			evtimer_add(f->retry, &later);
			return;
		}
		RdStreamEvent last;
		row_event(res, n - 1, &last);
		f->last = last.pos;
		f->partition = last.pos.partition;
		VpBuf text;
		vp_buf_init(&text, EVENT_TEXT_MAX);
		/* A member may be dropped while delivering, and the feed freed with
		 * its last member: hold the next one first, look the feed up after. */
		RdStreams *hub = f->hub;
		char tenant[37];
		snprintf(tenant, sizeof(tenant), "%s", f->tenant_id);
		for (Stream *s = f->members, *next; s; s = next) {
			next = s->feed_next;
			bool wrote;
			deliver_rows(s, res, chunk, &text, &wrote);
		}
		vp_buf_free(&text);
		evbuffer_free(chunk);
		f = feed_of(hub, tenant);
		if (!f)
			return;
	}
	if (n == PAGE_ROWS || f->again) {
		f->again = false;
		feed_fetch(f);
	}
}

static void feed_fetch(Feed *f)
{
	char partition[16], offset[24];
	snprintf(partition, sizeof(partition), "%d", f->last.partition);
	snprintf(offset, sizeof(offset), "%lld", (long long)f->last.offset);
	const char *params[] = {f->tenant_id, partition, offset};
	if (rd_pgpool_query(f->hub->loop->pool, &stream_after, f->tenant_id, params, on_feed_rows,
			    f) < 0) {
		struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
		evtimer_add(f->retry, &later);
		return;
	}
	f->fetching = true;
}

static void feed_kick(Feed *f)
{
	if (f->fetching)
		f->again = true;
	else
		feed_fetch(f);
}

/* Joins the tenant's feed when it is not ahead of s; else catches up more. */
static void try_join(Stream *s)
{
	RdStreams *hub = s->hub;
	Feed *f = feed_of(hub, s->tenant_id);
	if (f && rd_stream_pos_cmp(f->last, s->pos) > 0) {
		catchup_fetch(s);
		return;
	}
	if (!f && !(f = feed_new(hub, s->tenant_id, s->pos))) {
		stream_end(s, 503, VP_ERR_UNAVAILABLE, "out of memory");
		return;
	}
	s->feed = f;
	s->feed_next = f->members;
	if (f->members)
		f->members->feed_prev = s;
	f->members = s;
	s->state = ST_LIVE;
	/* What was committed between our last read and joining was notified
	 * before the feed knew of s (or before the feed existed). */
	feed_kick(f);
}

static void on_stream_retry(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	catchup_fetch(arg);
}

/* A query of the stream's own failed: 503 before the 200, else later again. */
static void stream_query_failed(Stream *s, const char *error)
{
	vp_log_warn(s->http.request_id, "stream_query_failed", "%s", error);
	if (!s->started) {
		stream_end(s, 503, VP_ERR_UNAVAILABLE, "the read model is unavailable");
		return;
	}
	struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
	evtimer_add(s->retry, &later);
}

static void on_catchup_rows(const PGresult *res, const char *error, void *arg)
{
	Stream *s = arg;
	s->busy = false;
	if (s->closed) {
		stream_free_memory(s);
		return;
	}
	if (error) {
		stream_query_failed(s, error);
		return;
	}
	if (!s->started)
		stream_start_response(s);
	struct evbuffer *chunk = evbuffer_new();
	VpBuf text;
	vp_buf_init(&text, EVENT_TEXT_MAX);
	bool wrote = false;
	bool alive = chunk && deliver_rows(s, res, chunk, &text, &wrote);
	vp_buf_free(&text);
	if (chunk)
		evbuffer_free(chunk);
	if (!chunk) {
		stream_end(s, 503, VP_ERR_UNAVAILABLE, "out of memory");
		return;
	}
	if (!alive)
		return;
	if (PQntuples(res) < PAGE_ROWS) {
		try_join(s);
	} else if (wrote) {
		/* on_written asks for the next page once the socket took this one
		 * (it fires for what was just added; nothing added, nothing fires) */
		s->waiting_drain = true;
	} else {
		catchup_fetch(s);
	}
}

static void catchup_fetch(Stream *s)
{
	char partition[16], offset[24];
	s->state = ST_CATCHING;
	snprintf(partition, sizeof(partition), "%d", s->pos.partition);
	snprintf(offset, sizeof(offset), "%lld", (long long)s->pos.offset);
	const char *params[] = {s->tenant_id, partition, offset};
	if (rd_pgpool_query(s->hub->loop->pool, &stream_after, s->tenant_id, params,
			    on_catchup_rows, s) < 0) {
		stream_query_failed(s, "too many queries waiting");
		return;
	}
	s->busy = true;
}

/* A stream without a position starts after the tenant's last event. */
static void on_head(const PGresult *res, const char *error, void *arg)
{
	Stream *s = arg;
	s->busy = false;
	if (s->closed) {
		stream_free_memory(s);
		return;
	}
	if (error) {
		stream_query_failed(s, error);
		return;
	}
	s->pos.partition = -1;
	s->pos.offset = -1;
	if (PQntuples(res) == 1) {
		s->pos.partition = atoi(PQgetvalue(res, 0, 0));
		s->pos.offset = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	}
	stream_start_response(s);
	try_join(s);
}

/* --- the hub ----------------------------------------------------------- */

static void on_heartbeat(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	RdStreams *hub = arg;
	struct evbuffer *beat = evbuffer_new();
	if (!beat)
		return;
	for (Stream *s = hub->streams, *next; s; s = next) {
		next = s->next;
		if (!s->started)
			continue;
		evbuffer_add(beat, ": heartbeat\n\n", 13);
		stream_send(s, beat);
	}
	evbuffer_free(beat);
	/* A safety net under NOTIFY: a notification lost (LISTEN reconnecting)
	 * costs at most one heartbeat of delay. */
	for (Feed *f = hub->feeds; f; f = f->next)
		feed_kick(f);
}

void rd_streams_progress(int partition, void *arg)
{
	RdStreams *hub = arg;
	for (Feed *f = hub->feeds; f; f = f->next)
		if (partition < 0 || f->partition < 0 || f->partition == partition)
			feed_kick(f);
}

RdStreams *rd_streams_new(RdLoop *loop, const RdConfig *cfg)
{
	pthread_once(&metrics_once, register_metrics);
	RdStreams *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return NULL;
	hub->loop = loop;
	hub->cfg = cfg;
	hub->heartbeat = event_new(loop->base, -1, EV_PERSIST, on_heartbeat, hub);
	struct timeval every = {cfg->stream_heartbeat_ms / 1000,
				(cfg->stream_heartbeat_ms % 1000) * 1000};
	if (!hub->heartbeat || event_add(hub->heartbeat, &every) < 0) {
		if (hub->heartbeat)
			event_free(hub->heartbeat);
		free(hub);
		return NULL;
	}
	return hub;
}

RdStreams *rd_streams_free(RdStreams *hub)
{
	if (!hub)
		return NULL;
	while (hub->streams)
		stream_end(hub->streams, 503, VP_ERR_UNAVAILABLE, "shutting down");
	event_free(hub->heartbeat);
	free(hub);
	return NULL;
}

/* --- the route --------------------------------------------------------- */

static int check_request(RdLoop *loop, VpHttpRequest *r, VpClaims *claims, Stream *s,
			 VpError *err)
{
	if (vp_http_require_method(r, EVHTTP_REQ_GET, err) < 0 ||
	    vp_auth_bearer(&loop->shared->verifier, vp_http_header(r, "Authorization"),
			   (int64_t)time(NULL), claims, err) < 0)
		return -1;
	if (!(claims->roles & RD_ROLES_TENANT))
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "role not allowed");
	if (!claims->has_tid)
		return vp_error_set(err, 403, VP_ERR_FORBIDDEN, "a tenant token is required");
	bool has_pos;
	rd_stream_start_parse(vp_http_header(r, "Last-Event-ID"), vp_http_query(r, "after"),
			      &s->pos, &has_pos, err);
	rd_stream_filter_parse(&s->filter, vp_http_query(r, "types"),
			       vp_http_query(r, "aggregate_id"), err);
	if (vp_error_finish_validation(err))
		return -1;
	s->state = has_pos ? ST_CATCHING : ST_STARTING;
	return 0;
}

static void refuse(VpHttpRequest *r, VpError *err)
{
	if (err->status == 401)
		vp_http_add_header(r, "WWW-Authenticate", "Bearer");
	vp_http_reply_error(r, err);
}

bool rd_stream_route(VpHttpRequest *r, RdLoop *loop)
{
	VpClaims claims;
	VpError err;
	if (!vp_http_route_match(r, "/v1/stream"))
		return false;
	vp_error_clear(&err);
	Stream *s = calloc(1, sizeof(*s));
	if (!s || !loop->pool || !loop->streams) {
		vp_error_set(&err, 503, VP_ERR_UNAVAILABLE, s ? "shutting down" : "out of memory");
		free(s);
		refuse(r, &err);
		return true;
	}
	if (check_request(loop, r, &claims, s, &err) < 0) {
		free(s);
		refuse(r, &err);
		return true;
	}
	if (r->method == EVHTTP_REQ_HEAD) {
		free(s);
		vp_http_reply_text(r, 200, "text/event-stream", "", 0);
		return true;
	}
	const RdConfig *cfg = loop->shared->cfg;
	CapResult cap = caps_take(claims.tid, cfg->stream_max, cfg->stream_max_per_tenant);
	if (cap != CAP_OK) {
		free(s);
		vp_metric_add(refused_total, cap == CAP_OOM ? 0 : 1);
		if (cap == CAP_TENANT)
			vp_error_set(&err, 429, VP_ERR_RATE_LIMITED,
				     "too many streams open for this tenant (%ld)",
				     cfg->stream_max_per_tenant);
		else
			vp_error_set(&err, 503, VP_ERR_UNAVAILABLE, "too many streams open");
		refuse(r, &err);
		return true;
	}
	vp_metric_add(open_gauge, 1);
	RdStreams *hub = loop->streams;
	s->hub = hub;
	snprintf(s->tenant_id, sizeof(s->tenant_id), "%s", claims.tid);
	/* The copy keeps what a reply needs; the query list stays with r. */
	s->http = *r;
	TAILQ_INIT(&s->http.query);
	s->http.query_parsed = false;
	s->next = hub->streams;
	if (hub->streams)
		hub->streams->prev = s;
	hub->streams = s;
	s->retry = evtimer_new(loop->base, on_stream_retry, s);
	evhttp_connection_set_closecb(evhttp_request_get_connection(r->req), on_peer_closed, s);
	if (!s->retry) {
		stream_end(s, 503, VP_ERR_UNAVAILABLE, "out of memory");
		return true;
	}
	if (s->state == ST_CATCHING) {
		catchup_fetch(s);
	} else {
		const char *params[] = {s->tenant_id};
		if (rd_pgpool_query(loop->pool, &stream_head, s->tenant_id, params, on_head, s) < 0)
			stream_end(s, 503, VP_ERR_UNAVAILABLE, "too many queries waiting");
		else
			s->busy = true;
	}
	return true;
}
