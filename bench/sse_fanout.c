/* The stream fan-out benchmark's subscribers and its ceiling (docs/bench.md,
 * "stream"): SUBSCRIBERS connections to query-reader's GET /v1/stream of one
 * tenant, read for SECONDS on one libevent loop; each event's delivery
 * latency is its arrival (CLOCK_REALTIME) minus its `at` (the writer's clock,
 * same machine). Checked on the way: per subscriber, ids strictly ascending.
 *
 * The ceiling, on the same loop and for the same events: a bare libpq
 * connection LISTENing on the projector's progress channel. An event's
 * ceiling latency is the arrival of the first notification that covers its
 * offset minus its `at` (read from read.event_log at the end): the moment
 * the committed event could first be known to anyone fed from the read model.
 *   sse_fanout READER_PORT TOKEN SUBSCRIBERS SECONDS PG_DSN TENANT_ID
 * Prints one JSON object. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "vp_pg.h"
#include "vp_time.h"

#define MAX_SAMPLES (8 * 1000 * 1000)
#define MAX_NOTES   (1000 * 1000)

typedef struct Sub {
	struct bufferevent *bev;
	bool headers_done;
	bool ok;
	int64_t last_partition;
	int64_t last_offset;
	int64_t events;
	bool ended;
} Sub;

typedef struct Note {
	int partition;
	int64_t next_offset;
	int64_t at_us;
} Note;

static int64_t *samples;
static size_t n_samples;
static int64_t out_of_order;
static int64_t deliveries;
static Note *notes;
static size_t n_notes;
static int subs_ended;
static PGconn *listener;
static struct event *listen_ev;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t i = (size_t)(p * (double)(n - 1));
	return (double)v[i] / 1000.0;
}

/* One SSE event's text (without its blank line). */
static void take_event(Sub *s, const char *ev, size_t len, int64_t arrived)
{
	const char *id = memmem(ev, len, "id: ", 4);
	const char *at = memmem(ev, len, "\"at\":\"", 6);
	if (!id || !at)
		return; /* a heartbeat */
	long long p = 0, o = 0;
	if (sscanf(id + 4, "%lld:%lld", &p, &o) != 2)
		return;
	if (p < s->last_partition || (p == s->last_partition && o <= s->last_offset))
		out_of_order++;
	s->last_partition = p;
	s->last_offset = o;
	s->events++;
	deliveries++;
	const char *end = memchr(at + 6, '"', len - (size_t)(at + 6 - ev));
	int64_t at_us;
	if (end && vp_time_parse_rfc3339(at + 6, (size_t)(end - at - 6), &at_us) == 0 &&
	    n_samples < MAX_SAMPLES)
		samples[n_samples++] = arrived - at_us;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	Sub *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int64_t arrived = now_us();
	if (!s->headers_done) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0)
			return;
		char status[16] = {0};
		evbuffer_copyout(in, status, 12);
		s->ok = !strncmp(status + 9, "200", 3);
		evbuffer_drain(in, (size_t)p.pos + 4);
		s->headers_done = true;
	}
	/* Chunked framing: chunk-size lines are taken apart from the events by
	 * the SSE blank-line rule: an event is the text between "id: " and the
	 * next "\n\n"; chunk sizes never fall inside one (one chunk holds whole
	 * events). */
	for (;;) {
		struct evbuffer_ptr p = evbuffer_search(in, "\n\n", 2, NULL);
		if (p.pos < 0)
			return;
		size_t len = (size_t)p.pos;
		char *text = (char *)evbuffer_pullup(in, (ev_ssize_t)len + 2);
		take_event(s, text, len, arrived);
		evbuffer_drain(in, len + 2);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	Sub *s = arg;
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		s->ended = true;
		subs_ended++;
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int64_t t = now_us();
	if (!PQconsumeInput(listener))
		return;
	PGnotify *n;
	while ((n = PQnotifies(listener)) != NULL) {
		int p;
		long long o;
		if (sscanf(n->extra, "%d:%lld", &p, &o) == 2 && n_notes < MAX_NOTES)
			notes[n_notes++] = (Note){p, o, t};
		PQfreemem(n);
	}
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

/* The ceiling: per event of the tenant since start, the first notification
 * whose next_offset passed it, minus its `at`. */
static size_t ceiling_samples(const char *tenant, int64_t since_us, int64_t *out, size_t cap)
{
	char since[32];
	snprintf(since, sizeof(since), "%" PRId64, since_us);
	const char *params[] = {tenant, since};
	PGresult *res = PQexecParams(
		listener,
		"SELECT partition, \"offset\", (extract(epoch FROM at) * 1000000)::bigint"
		" FROM read.event_log WHERE tenant_id = $1::uuid"
		" AND at >= to_timestamp($2::bigint / 1000000.0) ORDER BY partition, \"offset\"",
		2, NULL, params, NULL, NULL, 0);
	size_t n = 0;
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(res) && n < cap; i++) {
			int p = atoi(PQgetvalue(res, i, 0));
			int64_t o = strtoll(PQgetvalue(res, i, 1), NULL, 10);
			int64_t at = strtoll(PQgetvalue(res, i, 2), NULL, 10);
			for (size_t k = 0; k < n_notes; k++) {
				if (notes[k].partition == p && notes[k].next_offset > o) {
					out[n++] = notes[k].at_us - at;
					break;
				}
			}
		}
	} else {
		fprintf(stderr, "sse_fanout: %s", PQerrorMessage(listener));
	}
	PQclear(res);
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr,
			"usage: sse_fanout READER_PORT TOKEN SUBSCRIBERS SECONDS PG_DSN TENANT_ID\n");
		return 2;
	}
	int port = atoi(argv[1]);
	const char *token = argv[2];
	int n_subs = atoi(argv[3]);
	int seconds = atoi(argv[4]);
	samples = malloc(sizeof(*samples) * MAX_SAMPLES);
	notes = malloc(sizeof(*notes) * MAX_NOTES);
	Sub *subs = calloc((size_t)n_subs, sizeof(*subs));
	struct event_base *base = event_base_new();
	listener = PQconnectdb(argv[5]);
	if (!samples || !notes || !subs || !base || PQstatus(listener) != CONNECTION_OK) {
		fprintf(stderr, "sse_fanout: cannot start: %s", PQerrorMessage(listener));
		return 1;
	}
	PQclear(PQexec(listener, "LISTEN " VP_PROGRESS_CHANNEL));
	listen_ev = event_new(base, PQsocket(listener), EV_READ | EV_PERSIST, on_notify, NULL);
	event_add(listen_ev, NULL);
	int64_t started = now_us();

	char request[4096];
	int req_len = snprintf(request, sizeof(request),
			       "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			       "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
			       token);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	for (int i = 0; i < n_subs; i++) {
		Sub *s = &subs[i];
		s->last_partition = -1;
		s->last_offset = -1;
		s->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
		bufferevent_enable(s->bev, EV_READ);
		if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			fprintf(stderr, "sse_fanout: connect failed\n");
			return 1;
		}
		bufferevent_write(s->bev, request, (size_t)req_len);
	}
	struct timeval run = {seconds, 0};
	event_base_once(base, -1, EV_TIMEOUT, on_stop, base, &run);
	event_base_dispatch(base);

	int64_t *ceiling = malloc(sizeof(*ceiling) * MAX_SAMPLES);
	size_t n_ceiling = ceiling ? ceiling_samples(argv[6], started, ceiling, MAX_SAMPLES) : 0;
	qsort(samples, n_samples, sizeof(*samples), cmp_i64);
	if (n_ceiling)
		qsort(ceiling, n_ceiling, sizeof(*ceiling), cmp_i64);
	int64_t min_events = INT64_MAX, max_events = 0;
	int ok = 0;
	for (int i = 0; i < n_subs; i++) {
		ok += subs[i].ok;
		if (subs[i].events < min_events)
			min_events = subs[i].events;
		if (subs[i].events > max_events)
			max_events = subs[i].events;
	}
	printf("{\"subscribers\":%d,\"ok\":%d,\"ended\":%d,\"deliveries\":%" PRId64
	       ",\"seconds\":%.3f,\"min_events\":%" PRId64 ",\"max_events\":%" PRId64
	       ",\"out_of_order\":%" PRId64 ",\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f"
	       ",\"notes\":%zu,\"ceiling_events\":%zu,\"ceiling_p50_ms\":%.2f"
	       ",\"ceiling_p99_ms\":%.2f}\n",
	       n_subs, ok, subs_ended, deliveries, (double)(now_us() - started) / 1e6,
	       n_subs ? min_events : 0, max_events, out_of_order,
	       pct_ms(samples, n_samples, 0.50), pct_ms(samples, n_samples, 0.99),
	       pct_ms(samples, n_samples, 1.0), n_notes, n_ceiling,
	       pct_ms(ceiling, n_ceiling, 0.50), pct_ms(ceiling, n_ceiling, 0.99));
	for (int i = 0; i < n_subs; i++)
		bufferevent_free(subs[i].bev);
	event_free(listen_ev);
	PQfinish(listener);
	event_base_free(base);
	free(subs);
	free(samples);
	free(notes);
	free(ceiling);
	return 0;
}
