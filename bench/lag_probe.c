/* The lag benchmark's load generator: RegisterPatient commands at a steady
 * rate (open loop, on a pool of keep-alive connections) to cmd-writer; for one
 * acknowledged command in `sample_every`, polls query-reader's
 * GET /v1/patients/{id} every poll_ms (no consistency token) until it answers
 * 200. Lag = that moment minus the acknowledgement.
 *   lag_probe WRITER_PORT READER_PORT TOKEN CLIENT_ID RATE SECONDS SAMPLE_EVERY POLL_MS
 *             [BROKERS TOPIC PG_DSN]
 * With the last three, the lag of each sampled command is broken down by stage
 * (docs/bench.md, "lag by stage"), all on CLOCK_REALTIME: a read_committed
 * consumer of its own sees the record at the ack's position, the event_log
 * row's bench_applied_at (a column run.py adds to the bench's database only)
 * and commit timestamp (track_commit_timestamp), a LISTEN on the projector's
 * progress channel, then the reader's 200. The daemons are not touched.
 * Prints one JSON object with the achieved rate, ack and lag percentiles. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "vp_kafka.h"
#include "vp_pg.h"
#include "vp_time.h"

#define WRITER_CONNS 64
#define READER_CONNS 8
#define MAX_SAMPLES  200000
#define MAX_PROBES   20000
#define MAX_PARTS    64

typedef struct LagConn {
	struct evhttp_connection *conn;
	bool busy;
} LagConn;

/* An acknowledged command whose visibility is being polled. */
typedef struct LagProbe {
	char id[37];
	int64_t acked_us;
	int32_t partition; /* the ack's position, -1 when it had none */
	int64_t offset;
	int64_t sent_real_us, acked_real_us;
	struct event *timer;
	struct LagProbe *next_waiting; /* waiting for a free reader connection */
} LagProbe;

typedef struct LagSend {
	LagConn *via;
	int64_t sent_us, sent_real_us;
} LagSend;

/* The moments of a sampled command, in the order they happen. */
enum { AT_SENT, AT_ACKED, AT_IN_KAFKA, AT_APPLIED, AT_COMMITTED, AT_NOTIFIED, AT_VISIBLE, N_AT };

/* A sampled command: its position and its moments, CLOCK_REALTIME
 * microseconds (0 = not seen). */
typedef struct StageTimes {
	int32_t partition;
	int64_t offset;
	int64_t at[N_AT];
} StageTimes;

/* When something was first seen at a position of one partition, in order. */
typedef struct SeenAt {
	int64_t offset; /* a record's offset, or a NOTIFY's next_offset */
	int64_t at_us;
} SeenAt;

typedef struct SeenList {
	SeenAt *items;
	size_t n, cap;
} SeenList;

static struct event_base *base;
static LagConn writers[WRITER_CONNS], readers[READER_CONNS];
static char auth[2048], body_prefix[256];
static long rate, sample_every, poll_ms;
static int64_t started_us, send_until_us;
static long sent, acked, errors, probes_started, probes_done, polls;
static double ack_ms[MAX_SAMPLES], lag_ms[MAX_SAMPLES];
static long n_ack, n_lag;
static LagProbe *waiting_head;
static StageTimes stage_samples[MAX_PROBES];
static long n_stage;

/* The stage breakdown's watchers: the Kafka consumer runs on its own thread
 * (written there, read after the join); the LISTEN connection on the loop. */
static rd_kafka_t *kafka;
static pthread_t kafka_thread;
static atomic_bool kafka_stop;
static SeenList in_kafka[MAX_PARTS], notified[MAX_PARTS];
static PGconn *listener;
static struct event *listener_event;

static int seen_add(SeenList *l, int64_t offset, int64_t at_us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		SeenAt *items = realloc(l->items, cap * sizeof(*items));
		if (!items)
			return -1;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = (SeenAt){offset, at_us};
	return 0;
}

/* The first entry whose offset satisfies `offset >= want` (records) or
 * `offset > want` (a NOTIFY's next_offset covers want); 0 when none. */
static int64_t seen_first(const SeenList *l, int64_t want, bool past)
{
	for (size_t i = 0; i < l->n; i++)
		if (past ? l->items[i].offset > want : l->items[i].offset == want)
			return l->items[i].at_us;
	return 0;
}

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
		if (p->partition >= 0 && n_stage < MAX_PROBES)
			stage_samples[n_stage++] = (StageTimes){
			    .partition = p->partition,
			    .offset = p->offset,
			    .at[AT_SENT] = p->sent_real_us,
			    .at[AT_ACKED] = p->acked_real_us,
			    .at[AT_VISIBLE] = vp_time_now_us(),
			};
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

/* "position":"<partition>:<offset>" of an acknowledgement, or -1. */
static int32_t ack_position(const char *text, int64_t *offset)
{
	const char *at = strstr(text, "\"position\":\"");
	long long o;
	int p;
	if (!at || sscanf(at + strlen("\"position\":\""), "%d:%lld", &p, &o) != 2 || p < 0 ||
	    p >= MAX_PARTS)
		return -1;
	*offset = o;
	return p;
}

static void start_probe(const char *answer, size_t len, int64_t acked_us, const LagSend *send,
			int64_t acked_real_us)
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
	p->partition = ack_position(text, &p->offset);
	p->sent_real_us = send->sent_real_us;
	p->acked_real_us = acked_real_us;
	p->timer = evtimer_new(base, on_poll_timer, p);
	probes_started++;
	poll_probe(p);
}

static void on_command_answer(struct evhttp_request *req, void *arg)
{
	LagSend *s = arg;
	int64_t now = vp_time_mono_us(), now_real = vp_time_now_us();
	s->via->busy = false;
	if (req && evhttp_request_get_response_code(req) == 201) {
		if (n_ack < MAX_SAMPLES)
			ack_ms[n_ack++] = (double)(now - s->sent_us) / 1000.0;
		if (acked++ % sample_every == 0) {
			struct evbuffer *in = evhttp_request_get_input_buffer(req);
			size_t len = evbuffer_get_length(in);
			start_probe((const char *)evbuffer_pullup(in, -1), len, now, s, now_real);
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
	s->sent_real_us = vp_time_now_us();
	struct evhttp_request *req = evhttp_request_new(on_command_answer, s);
	add_headers(req, true);
	int len =
	    snprintf(body, sizeof(body), "%s\"Lag %ld\",\"species\":\"canine\",\"sex\":\"male\"}",
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

/* --- the stage breakdown ------------------------------------------------- */

static void *consume_records(void *arg)
{
	(void)arg;
	while (!atomic_load(&kafka_stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(kafka, 100);
		if (!m)
			continue;
		int64_t now = vp_time_now_us();
		if (!m->err && m->partition >= 0 && m->partition < MAX_PARTS)
			seen_add(&in_kafka[m->partition], m->offset, now);
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

/* A read_committed consumer (the projector's settings, vp_kafka.c) assigned
 * every partition at its high watermark: from then on it sees each committed
 * record, with the same fetch path the projector has. */
static int kafka_watch(const char *brokers, const char *topic)
{
	char why[512];
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_conf_t *conf = vp_kafka_consumer_conf_new(brokers, "lag_probe", "bench-lag-probe",
							   NULL, why, sizeof(why));
	if (!conf)
		goto fail;
	kafka = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!kafka) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_topic_t *t = rd_kafka_topic_new(kafka, topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(kafka, 0, t, &md, 10000);
	rd_kafka_topic_destroy(t);
	if (err || md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(why, sizeof(why), "metadata of %s: %s", topic, rd_kafka_err2str(err));
		goto fail;
	}
	int n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
	for (int p = 0; p < n && p < MAX_PARTS; p++) {
		int64_t low, high;
		err = rd_kafka_query_watermark_offsets(kafka, topic, p, &low, &high, 10000);
		if (err) {
			snprintf(why, sizeof(why), "watermarks: %s", rd_kafka_err2str(err));
			rd_kafka_topic_partition_list_destroy(parts);
			goto fail;
		}
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = high;
	}
	err = rd_kafka_assign(kafka, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		snprintf(why, sizeof(why), "assign: %s", rd_kafka_err2str(err));
		goto fail;
	}
	if (pthread_create(&kafka_thread, NULL, consume_records, NULL) != 0) {
		snprintf(why, sizeof(why), "thread");
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "lag_probe: kafka: %s\n", why);
	return -1;
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int64_t now = vp_time_now_us();
	PGnotify *n;
	if (PQconsumeInput(listener) != 1)
		return;
	while ((n = PQnotifies(listener))) {
		long long next;
		int part;
		if (sscanf(n->extra, "%d:%lld", &part, &next) == 2 && part >= 0 && part < MAX_PARTS)
			seen_add(&notified[part], next, now);
		PQfreemem(n);
	}
}

/* LISTEN on the live schema's progress channel, as the reader does
 * (consistency.c): a NOTIFY "<partition>:<next_offset>" covers the offsets
 * below next_offset. */
static int listen_progress(const char *dsn)
{
	listener = PQconnectdb(dsn);
	if (PQstatus(listener) != CONNECTION_OK) {
		fprintf(stderr, "lag_probe: postgres: %s", PQerrorMessage(listener));
		return -1;
	}
	PGresult *res = PQexec(listener, "LISTEN " VP_PROGRESS_CHANNEL);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok || PQsetnonblocking(listener, 1) != 0) {
		fprintf(stderr, "lag_probe: LISTEN: %s", PQerrorMessage(listener));
		return -1;
	}
	listener_event = event_new(base, PQsocket(listener), EV_READ | EV_PERSIST, on_notify, NULL);
	return event_add(listener_event, NULL);
}

/* After the run: each sample's event_log row, its bench_applied_at (the
 * clock_timestamp() of its insert) and the commit time of its transaction. */
static int fetch_row_times(void)
{
	size_t cap = (size_t)n_stage * 24 + 4;
	char *parts = malloc(cap), *offsets = malloc(cap);
	int rc = -1;
	if (!parts || !offsets)
		goto done;
	size_t np = 0, no = 0;
	parts[np++] = '{';
	offsets[no++] = '{';
	for (long i = 0; i < n_stage; i++) {
		np += (size_t)snprintf(parts + np, cap - np, "%s%d", i ? "," : "",
				       stage_samples[i].partition);
		no += (size_t)snprintf(offsets + no, cap - no, "%s%lld", i ? "," : "",
				       (long long)stage_samples[i].offset);
	}
	snprintf(parts + np, cap - np, "}");
	snprintf(offsets + no, cap - no, "}");
	const char *params[] = {parts, offsets};
	PQsetnonblocking(listener, 0);
	PGresult *res =
	    PQexecParams(listener,
			 "SELECT s.i - 1, (extract(epoch FROM e.bench_applied_at) * 1e6)::int8, "
			 "(extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) * 1e6)::int8 "
			 "FROM unnest($1::int[], $2::int8[]) WITH ORDINALITY AS s(p, o, i) "
			 "JOIN read.event_log e ON e.partition = s.p AND e.\"offset\" = s.o",
			 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "lag_probe: event_log times: %s", PQerrorMessage(listener));
	} else {
		for (int r = 0; r < PQntuples(res); r++) {
			long i = atol(PQgetvalue(res, r, 0));
			if (i < 0 || i >= n_stage)
				continue;
			if (!PQgetisnull(res, r, 1))
				stage_samples[i].at[AT_APPLIED] = atoll(PQgetvalue(res, r, 1));
			if (!PQgetisnull(res, r, 2))
				stage_samples[i].at[AT_COMMITTED] = atoll(PQgetvalue(res, r, 2));
		}
		rc = 0;
	}
	PQclear(res);
done:
	free(parts);
	free(offsets);
	return rc;
}

/* Percentiles of to - from over the samples that have both moments. */
static void print_stage(const char *name, int from, int to, bool last)
{
	static double ms[MAX_PROBES];
	long n = 0;
	for (long i = 0; i < n_stage; i++) {
		int64_t a = stage_samples[i].at[from], b = stage_samples[i].at[to];
		if (a && b)
			ms[n++] = (double)(b - a) / 1000.0;
	}
	qsort(ms, (size_t)n, sizeof(double), cmp_double);
	printf("\"%s\":{\"n\":%ld,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f}%s", name, n,
	       pct(ms, n, 50), pct(ms, n, 99), n ? ms[n - 1] : 0.0, last ? "" : ",");
}

static void print_stages(void)
{
	for (long i = 0; i < n_stage; i++) {
		StageTimes *s = &stage_samples[i];
		s->at[AT_IN_KAFKA] = seen_first(&in_kafka[s->partition], s->offset, false);
		s->at[AT_NOTIFIED] = seen_first(&notified[s->partition], s->offset, true);
	}
	printf(",\"stage_samples\":%ld,\"stages\":{", n_stage);
	/* one stage each: from the previous moment to this one */
	print_stage("ack_to_kafka", AT_ACKED, AT_IN_KAFKA, false);
	print_stage("kafka_to_applied", AT_IN_KAFKA, AT_APPLIED, false);
	print_stage("applied_to_committed", AT_APPLIED, AT_COMMITTED, false);
	print_stage("committed_to_notified", AT_COMMITTED, AT_NOTIFIED, false);
	print_stage("notified_to_visible", AT_NOTIFIED, AT_VISIBLE, true);
	printf("},\"since_ack\":{");
	/* the same moments counted from the acknowledgement */
	print_stage("kafka", AT_ACKED, AT_IN_KAFKA, false);
	print_stage("applied", AT_ACKED, AT_APPLIED, false);
	print_stage("committed", AT_ACKED, AT_COMMITTED, false);
	print_stage("notified", AT_ACKED, AT_NOTIFIED, false);
	print_stage("visible", AT_ACKED, AT_VISIBLE, true);
	printf("}");
}

int main(int argc, char **argv)
{
	if (argc != 9 && argc != 12) {
		fprintf(stderr,
			"usage: lag_probe WRITER_PORT READER_PORT TOKEN CLIENT_ID RATE SECONDS "
			"SAMPLE_EVERY POLL_MS [BROKERS TOPIC PG_DSN]\n");
		return 2;
	}
	bool stages = argc == 12;
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
	if (stages) {
		if (kafka_watch(argv[9], argv[10]) < 0 || listen_progress(argv[11]) < 0)
			return 1;
		sleep(1); /* the consumer's first fetch is under way before any command */
	}
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
	       "\"polls\":%ld,\"lag_p50_ms\":%.2f,\"lag_p99_ms\":%.2f,\"lag_max_ms\":%.2f",
	       rate, sent, acked, errors, (double)acked / elapsed, pct(ack_ms, n_ack, 50),
	       pct(ack_ms, n_ack, 99), probes_started, probes_done, polls, pct(lag_ms, n_lag, 50),
	       pct(lag_ms, n_lag, 99), n_lag ? lag_ms[n_lag - 1] : 0.0);
	if (stages) {
		usleep(200000); /* the probe's consumer is never the last to see a record */
		atomic_store(&kafka_stop, true);
		pthread_join(kafka_thread, NULL);
		rd_kafka_consumer_close(kafka);
		rd_kafka_destroy(kafka);
		on_notify(-1, 0, NULL);
		fetch_row_times();
		print_stages();
		event_free(listener_event);
		PQfinish(listener);
		for (int p = 0; p < MAX_PARTS; p++) {
			free(in_kafka[p].items);
			free(notified[p].items);
		}
	}
	printf("}\n");
	event_free(tick);
	for (int i = 0; i < WRITER_CONNS; i++)
		evhttp_connection_free(writers[i].conn);
	for (int i = 0; i < READER_CONNS; i++)
		evhttp_connection_free(readers[i].conn);
	event_base_free(base);
	return 0;
}
