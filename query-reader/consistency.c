/* Read-your-writes: a request carrying a consistency token "P:O" (partition,
 * offset of the writer's last event) waits until the projector's next_offset
 * of partition P is above O. Progress arrives without polling: one non-blocking
 * connection per loop runs LISTEN vetpms_progress (the projector NOTIFYs
 * "<partition>:<next_offset>" after each committed batch), and each wait
 * starts with one look at read.projection_offsets, which also covers a
 * notification sent before this loop was listening. Offsets only grow, so the
 * highest value seen per partition is kept and compared. */
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "vp_pg.h"
#include "vp_log.h"

#define LISTEN_RETRY_MS 1000

static const RdStatement offset_of_partition = {
	"rd_offset_of_partition",
	"SELECT next_offset FROM read.projection_offsets WHERE topic = $1 AND partition = $2::int",
	2};

struct RdWaiter {
	RdConsistency *cs;
	int partition;
	int64_t offset;
	RdReachedFn fn;
	void *arg;
	struct event *timer; /* the deadline; also activated at once when reached */
	RdWaiter *prev;
	RdWaiter *next;
};

typedef enum { LISTEN_DOWN, LISTEN_CONNECTING, LISTEN_STARTING, LISTEN_UP } ListenState;

struct RdConsistency {
	struct event_base *base;
	RdPgPool *pool;
	char *dsn;
	char *topic;
	long wait_ms;
	int64_t next_offset[RD_MAX_PARTITIONS]; /* highest seen; 0 = nothing applied */
	RdWaiter *waiters;
	PGconn *conn;
	ListenState state;
	struct event *io;
	struct event *retry;
	RdProgressFn progress_fn; /* the streams of this loop (stream.c) */
	void *progress_arg;
};

/* A table check in flight; owns nothing but its own memory. */
typedef struct OffsetCheck {
	RdConsistency *cs;
	int partition;
} OffsetCheck;

static void listen_start(RdConsistency *cs);

int rd_consistency_parse(const char *token, int *partition, int64_t *offset)
{
	int64_t p = 0, o = 0;
	const char *s = token;
	int digits = 0;

	if (!s)
		return -1;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		p = p * 10 + (*s - '0');
		if (p >= RD_MAX_PARTITIONS)
			return -1;
	}
	if (digits == 0 || *s != ':')
		return -1;
	s++;
	for (digits = 0; *s >= '0' && *s <= '9'; s++, digits++) {
		if (o > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		o = o * 10 + (*s - '0');
	}
	if (digits == 0 || *s != '\0')
		return -1;
	*partition = (int)p;
	*offset = o;
	return 0;
}

static void waiter_unlink(RdWaiter *w)
{
	RdConsistency *cs = w->cs;
	if (w->prev)
		w->prev->next = w->next;
	else
		cs->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

static void waiter_end(RdWaiter *w, RdWaitOutcome outcome)
{
	RdReachedFn fn = w->fn;
	void *arg = w->arg;
	waiter_unlink(w);
	event_free(w->timer);
	free(w);
	fn(outcome, arg);
}

/* Deadline, or activated early by wake_waiters: the outcome is whatever the
 * offsets say now. */
static void on_waiter_timer(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	RdWaiter *w = arg;
	bool reached = w->cs->next_offset[w->partition] > w->offset;
	waiter_end(w, reached ? RD_WAIT_REACHED : RD_WAIT_TIMEOUT);
}

static void advance(RdConsistency *cs, int partition, int64_t next_offset)
{
	if (partition < 0 || partition >= RD_MAX_PARTITIONS ||
	    next_offset <= cs->next_offset[partition])
		return;
	cs->next_offset[partition] = next_offset;
	if (cs->progress_fn)
		cs->progress_fn(partition, cs->progress_arg);
	for (RdWaiter *w = cs->waiters; w; w = w->next)
		if (w->partition == partition && next_offset > w->offset)
			event_active(w->timer, EV_TIMEOUT, 1);
}

static void on_offset_checked(const PGresult *res, const char *error, void *arg)
{
	OffsetCheck *check = arg;
	if (error)
		vp_log_warn(NULL, "consistency", "offset check failed: %s", error);
	else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		advance(check->cs, check->partition, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	free(check);
}

static void check_table(RdConsistency *cs, int partition)
{
	char partition_text[16];
	OffsetCheck *check = malloc(sizeof(*check));
	if (!check)
		return; /* the deadline or a notification still ends the wait */
	check->cs = cs;
	check->partition = partition;
	snprintf(partition_text, sizeof(partition_text), "%d", partition);
	const char *params[] = {cs->topic, partition_text};
	if (rd_pgpool_query(cs->pool, &offset_of_partition, NULL, params, on_offset_checked,
			    check) < 0)
		free(check);
}

RdWaiter *rd_consistency_wait(RdConsistency *cs, int partition, int64_t offset, RdReachedFn fn,
			      void *arg)
{
	RdWaiter *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cs = cs;
	w->partition = partition;
	w->offset = offset;
	w->fn = fn;
	w->arg = arg;
	w->timer = evtimer_new(cs->base, on_waiter_timer, w);
	struct timeval deadline = {cs->wait_ms / 1000, (cs->wait_ms % 1000) * 1000};
	if (!w->timer || evtimer_add(w->timer, &deadline) < 0) {
		if (w->timer)
			event_free(w->timer);
		free(w);
		return NULL;
	}
	w->next = cs->waiters;
	if (cs->waiters)
		cs->waiters->prev = w;
	cs->waiters = w;
	if (cs->next_offset[partition] > offset)
		event_active(w->timer, EV_TIMEOUT, 1);
	else
		check_table(cs, partition);
	return w;
}

/* --- the LISTEN connection -------------------------------------------- */

static void listen_wait(RdConsistency *cs, short what, event_callback_fn fn)
{
	if (cs->io)
		event_free(cs->io);
	cs->io = event_new(cs->base, PQsocket(cs->conn), what, fn, cs);
	if (!cs->io || event_add(cs->io, NULL) < 0)
		vp_log_error(NULL, "consistency", "cannot arm the socket event");
}

static void on_listen_retry(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	listen_start(arg);
}

static void listen_broken(RdConsistency *cs, const char *why)
{
	char reason[256];
	snprintf(reason, sizeof(reason), "%s", why);
	reason[strcspn(reason, "\n")] = '\0';
	vp_log_warn(NULL, "consistency", "LISTEN connection: %s", reason);
	if (cs->io) {
		event_free(cs->io);
		cs->io = NULL;
	}
	PQfinish(cs->conn);
	cs->conn = NULL;
	cs->state = LISTEN_DOWN;
	struct timeval later = {LISTEN_RETRY_MS / 1000, (LISTEN_RETRY_MS % 1000) * 1000};
	evtimer_add(cs->retry, &later);
}

static void take_notifications(RdConsistency *cs)
{
	PGnotify *n;
	while ((n = PQnotifies(cs->conn)) != NULL) {
		int partition;
		int64_t next_offset;
		if (!strcmp(n->extra, VP_PROGRESS_SCHEMA_SWAPPED))
			rd_pgpool_renew(cs->pool);
		else if (rd_consistency_parse(n->extra, &partition, &next_offset) == 0)
			advance(cs, partition, next_offset);
		else
			vp_log_warn(NULL, "consistency", "ignored progress payload of %zu bytes",
				    strlen(n->extra));
		PQfreemem(n);
	}
}

static void on_listen_io(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	RdConsistency *cs = arg;
	if (events & EV_WRITE) {
		int flushed = PQflush(cs->conn);
		if (flushed < 0) {
			listen_broken(cs, PQerrorMessage(cs->conn));
			return;
		}
		if (flushed == 1) {
			listen_wait(cs, EV_READ | EV_WRITE, on_listen_io);
			return;
		}
	}
	if ((events & EV_READ) && !PQconsumeInput(cs->conn)) {
		listen_broken(cs, PQerrorMessage(cs->conn));
		return;
	}
	while (!PQisBusy(cs->conn)) {
		PGresult *res = PQgetResult(cs->conn);
		if (!res)
			break;
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK) {
			listen_broken(cs, PQresultErrorMessage(res));
			PQclear(res);
			return;
		}
		PQclear(res);
		if (cs->state == LISTEN_STARTING) {
			/* Listening from now on; what was applied before is in the
			 * table: look again for every partition someone waits on. */
			cs->state = LISTEN_UP;
			vp_log_debug(NULL, "consistency", "listening on " VP_PROGRESS_CHANNEL);
			for (RdWaiter *w = cs->waiters; w; w = w->next)
				check_table(cs, w->partition);
			if (cs->progress_fn)
				cs->progress_fn(-1, cs->progress_arg);
		}
	}
	take_notifications(cs);
	listen_wait(cs, EV_READ, on_listen_io);
}

static void on_listen_connect(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	RdConsistency *cs = arg;
	switch (PQconnectPoll(cs->conn)) {
	case PGRES_POLLING_READING:
		listen_wait(cs, EV_READ, on_listen_connect);
		return;
	case PGRES_POLLING_WRITING:
		listen_wait(cs, EV_WRITE, on_listen_connect);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(cs->conn, 1) < 0 ||
		    !PQsendQuery(cs->conn, "LISTEN " VP_PROGRESS_CHANNEL)) {
			listen_broken(cs, PQerrorMessage(cs->conn));
			return;
		}
		cs->state = LISTEN_STARTING;
		on_listen_io(-1, EV_WRITE, cs);
		return;
	default:
		listen_broken(cs, PQerrorMessage(cs->conn));
	}
}

static void listen_start(RdConsistency *cs)
{
	cs->conn = PQconnectStart(cs->dsn);
	if (!cs->conn || PQstatus(cs->conn) == CONNECTION_BAD) {
		listen_broken(cs, cs->conn ? PQerrorMessage(cs->conn) : "out of memory");
		return;
	}
	cs->state = LISTEN_CONNECTING;
	listen_wait(cs, EV_WRITE, on_listen_connect);
}

RdConsistency *rd_consistency_new(struct event_base *base, const char *dsn, const char *topic,
				  RdPgPool *pool, long wait_ms)
{
	RdConsistency *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->base = base;
	cs->pool = pool;
	cs->wait_ms = wait_ms;
	cs->dsn = strdup(dsn);
	cs->topic = strdup(topic);
	cs->retry = evtimer_new(base, on_listen_retry, cs);
	if (!cs->dsn || !cs->topic || !cs->retry)
		return rd_consistency_free(cs);
	listen_start(cs);
	return cs;
}

void rd_consistency_on_progress(RdConsistency *cs, RdProgressFn fn, void *arg)
{
	cs->progress_fn = fn;
	cs->progress_arg = arg;
}

RdConsistency *rd_consistency_free(RdConsistency *cs)
{
	if (!cs)
		return NULL;
	while (cs->waiters)
		waiter_end(cs->waiters, RD_WAIT_SHUTDOWN);
	if (cs->io)
		event_free(cs->io);
	if (cs->retry)
		event_free(cs->retry);
	PQfinish(cs->conn);
	free(cs->dsn);
	free(cs->topic);
	free(cs);
	return NULL;
}
