/* The lag benchmark's load generator: RegisterPatient commands at a steady
 * rate (open loop, on a pool of keep-alive connections) to cmd-writer; for one
 * acknowledged command in `sample_every`, polls query-reader's
 * GET /v1/patients/{id} every poll_ms (no consistency token) until it answers
 * 200. Lag = that moment minus the acknowledgement.
 *   lag_probe WRITER_PORT READER_PORT TOKEN CLIENT_ID RATE SECONDS SAMPLE_EVERY POLL_MS
 * Prints one JSON object with the achieved rate, ack and lag percentiles. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "vp_time.h"

#define WRITER_CONNS 64
#define READER_CONNS 8
#define MAX_SAMPLES 200000

typedef struct LagConn {
	struct evhttp_connection *conn;
	bool busy;
} LagConn;

/* An acknowledged command whose visibility is being polled. */
typedef struct LagProbe {
	char id[37];
	int64_t acked_us;
	struct event *timer;
	struct LagProbe *next_waiting; /* waiting for a free reader connection */
} LagProbe;

typedef struct LagSend {
	LagConn *via;
	int64_t sent_us;
} LagSend;

static struct event_base *base;
static LagConn writers[WRITER_CONNS], readers[READER_CONNS];
static char auth[2048], body_prefix[256];
static long rate, sample_every, poll_ms;
static int64_t started_us, send_until_us;
static long sent, acked, errors, probes_started, probes_done, polls;
static double ack_ms[MAX_SAMPLES], lag_ms[MAX_SAMPLES];
static long n_ack, n_lag;
static LagProbe *waiting_head;

static LagConn *idle(LagConn *pool, int n)
{
	for (int i = 0; i < n; i++)
		if (!pool[i].busy)
			return &pool[i];
	return NULL;
}

static void add_headers(struct evhttp_request *req, bool json)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", "127.0.0.1");
	evhttp_add_header(h, "Authorization", auth);
	if (json)
		evhttp_add_header(h, "Content-Type", "application/json");
}

static void poll_probe(LagProbe *p);

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	poll_probe(arg);
}

static void retry_later(LagProbe *p)
{
	struct timeval tv = {0, poll_ms * 1000};
	evtimer_add(p->timer, &tv);
}

typedef struct LagPoll {
	LagProbe *probe;
	LagConn *via;
} LagPoll;

static void on_poll_answer(struct evhttp_request *req, void *arg)
{
	LagPoll *poll = arg;
	LagProbe *p = poll->probe;
	poll->via->busy = false;
	free(poll);
	if (req && evhttp_request_get_response_code(req) == 200) {
		if (n_lag < MAX_SAMPLES)
			lag_ms[n_lag++] = (double)(vp_time_mono_us() - p->acked_us) / 1000.0;
		probes_done++;
		event_free(p->timer);
		free(p);
	} else {
		retry_later(p);
	}
	/* a reader connection is free: serve a probe that waited for one */
	if (waiting_head) {
		LagProbe *next = waiting_head;
		waiting_head = next->next_waiting;
		poll_probe(next);
	}
}

static void poll_probe(LagProbe *p)
{
	char uri[80];
	LagConn *c = idle(readers, READER_CONNS);
	if (!c) {
		p->next_waiting = waiting_head;
		waiting_head = p;
		return;
	}
	LagPoll *poll = malloc(sizeof(*poll));
	if (!poll)
		return;
	poll->probe = p;
	poll->via = c;
	struct evhttp_request *req = evhttp_request_new(on_poll_answer, poll);
	add_headers(req, false);
	snprintf(uri, sizeof(uri), "/v1/patients/%s", p->id);
	c->busy = true;
	polls++;
	evhttp_make_request(c->conn, req, EVHTTP_REQ_GET, uri);
}

static void start_probe(const char *answer, size_t len, int64_t acked_us)
{
	const char *key = "\"id\":\"";
	char text[512];
	size_t n = len < sizeof(text) - 1 ? len : sizeof(text) - 1;
	memcpy(text, answer, n);
	text[n] = '\0';
	const char *at = strstr(text, key);
	if (!at || strlen(at + strlen(key)) < 36)
		return;
	LagProbe *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	memcpy(p->id, at + strlen(key), 36);
	p->acked_us = acked_us;
	p->timer = evtimer_new(base, on_poll_timer, p);
	probes_started++;
	poll_probe(p);
}

static void on_command_answer(struct evhttp_request *req, void *arg)
{
	LagSend *s = arg;
	int64_t now = vp_time_mono_us();
	s->via->busy = false;
	if (req && evhttp_request_get_response_code(req) == 201) {
		if (n_ack < MAX_SAMPLES)
			ack_ms[n_ack++] = (double)(now - s->sent_us) / 1000.0;
		if (acked++ % sample_every == 0) {
			struct evbuffer *in = evhttp_request_get_input_buffer(req);
			size_t len = evbuffer_get_length(in);
			start_probe((const char *)evbuffer_pullup(in, -1), len, now);
		}
	} else {
		errors++;
	}
	free(s);
}

static void send_command(LagConn *c)
{
	char body[512];
	LagSend *s = malloc(sizeof(*s));
	if (!s)
		return;
	s->via = c;
	s->sent_us = vp_time_mono_us();
	struct evhttp_request *req = evhttp_request_new(on_command_answer, s);
	add_headers(req, true);
	int len = snprintf(body, sizeof(body), "%s\"Lag %ld\",\"species\":\"canine\",\"sex\":\"male\"}",
			   body_prefix, sent);
	evbuffer_add(evhttp_request_get_output_buffer(req), body, (size_t)len);
	c->busy = true;
	sent++;
	evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, "/v1/patients");
}

/* Every millisecond: send what the schedule owes, as connections allow. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct event *self = arg;
	int64_t now = vp_time_mono_us();
	if (now < send_until_us) {
		long due = (long)((double)(now - started_us) * (double)rate / 1e6);
		LagConn *c;
		while (sent < due && (c = idle(writers, WRITER_CONNS)))
			send_command(c);
		return;
	}
	/* sending is over: wait for the answers and the probes (10 s at most) */
	bool writers_idle = true;
	for (int i = 0; i < WRITER_CONNS; i++)
		writers_idle = writers_idle && !writers[i].busy;
	if ((writers_idle && probes_done == probes_started) || now > send_until_us + 10000000) {
		event_del(self);
		event_base_loopexit(base, NULL);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, long n, int p)
{
	if (n == 0)
		return 0;
	long i = (n * p) / 100;
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: lag_probe WRITER_PORT READER_PORT TOKEN CLIENT_ID RATE SECONDS "
				"SAMPLE_EVERY POLL_MS\n");
		return 2;
	}
	int writer_port = atoi(argv[1]), reader_port = atoi(argv[2]);
	rate = atol(argv[5]);
	double seconds = atof(argv[6]);
	sample_every = atol(argv[7]);
	poll_ms = atol(argv[8]);
	if (rate < 1 || seconds <= 0 || sample_every < 1 || poll_ms < 1 || strlen(argv[4]) != 36) {
		fprintf(stderr, "lag_probe: bad arguments\n");
		return 2;
	}
	snprintf(auth, sizeof(auth), "Bearer %s", argv[3]);
	snprintf(body_prefix, sizeof(body_prefix), "{\"client_id\":\"%s\",\"name\":", argv[4]);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	for (int i = 0; i < WRITER_CONNS; i++)
		writers[i].conn = evhttp_connection_base_new(base, NULL, "127.0.0.1",
							     (unsigned short)writer_port);
	for (int i = 0; i < READER_CONNS; i++)
		readers[i].conn = evhttp_connection_base_new(base, NULL, "127.0.0.1",
							     (unsigned short)reader_port);
	struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, event_self_cbarg());
	struct timeval every = {0, 1000};
	started_us = vp_time_mono_us();
	send_until_us = started_us + (int64_t)(seconds * 1e6);
	event_add(tick, &every);
	event_base_dispatch(base);
	double elapsed = (double)(send_until_us - started_us) / 1e6;
	qsort(ack_ms, (size_t)n_ack, sizeof(double), cmp_double);
	qsort(lag_ms, (size_t)n_lag, sizeof(double), cmp_double);
	printf("{\"target_rate\":%ld,\"sent\":%ld,\"acked\":%ld,\"errors\":%ld,\"rate\":%.1f,"
	       "\"ack_p50_ms\":%.2f,\"ack_p99_ms\":%.2f,\"probes\":%ld,\"probes_seen\":%ld,"
	       "\"polls\":%ld,\"lag_p50_ms\":%.2f,\"lag_p99_ms\":%.2f,\"lag_max_ms\":%.2f}\n",
	       rate, sent, acked, errors, (double)acked / elapsed, pct(ack_ms, n_ack, 50),
	       pct(ack_ms, n_ack, 99), probes_started, probes_done, polls, pct(lag_ms, n_lag, 50),
	       pct(lag_ms, n_lag, 99), n_lag ? lag_ms[n_lag - 1] : 0.0);
	event_free(tick);
	for (int i = 0; i < WRITER_CONNS; i++)
		evhttp_connection_free(writers[i].conn);
	for (int i = 0; i < READER_CONNS; i++)
		evhttp_connection_free(readers[i].conn);
	event_base_free(base);
	return 0;
}
