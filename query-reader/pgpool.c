/* Non-blocking libpq on libevent, after pgbouncer's test/asynctest.c:
 * PQconnectStart/PQconnectPoll for the handshake, then pipeline mode. Each
 * query is its own segment of the connection's pipeline: [Parse of statements
 * this connection has not prepared yet] [set_config of the tenant] Execute of
 * the statement, Sync — one implicit transaction, and an error ends at its
 * Sync, so it fails only its own query. Several queries (up to MAX_IN_FLIGHT)
 * ride one connection at once: the backend goes on to the next without
 * waiting for this loop to read the last answer and send again.
 *
 * Once connected, a connection keeps one persistent read event for its life
 * and a write event armed only while PQflush has output left; PQconsumeInput
 * on EV_READ then PQisBusy/PQgetResult, answers in the order sent. Queries are
 * only sent by the pump (an event made active by rd_pgpool_query, run later in
 * the same loop iteration, and the end of a read), never from inside a
 * callback, so a callback may query or renew freely. Nothing here blocks the
 * loop. A failed connection is retried after RETRY_MS and prepares its
 * statements again.
 *
 * Deadlines (a PostgreSQL that is down, unreachable or frozen must cost a
 * client a 503 within deadline_ms, never a hang): a sweep every SWEEP_MS
 * fails queued queries older than the deadline, and drops a connection whose
 * oldest query in flight, or whose handshake, is older than it (a frozen
 * server keeps the TCP connection alive, so only a clock notices). The
 * sessions also carry statement_timeout = deadline_ms (the server cancels a
 * slow query itself) and TCP keepalives (a vanished host). */
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "vp_log.h"
#include "vp_time.h"

#define MAX_PARAMS        16
#define MAX_QUEUED        10000
#define MAX_PREPARED      64
#define MAX_IN_FLIGHT     16
#define RETRY_MS          1000
#define SWEEP_MS          250

/* The tenant for row-level security, local to the pipeline's transaction. */
static const RdStatement set_tenant = {
	"rd_set_tenant", "SELECT set_config('vetpms.tenant_id', $1::text, true)", 1};

/* One query: queued in the pool, then in flight on a connection. Parameters
 * are copied into the same allocation (text after the struct). */
typedef struct PgQuery {
	const RdStatement *stmt;
	char tenant_id[37]; /* empty: no tenant */
	const char *params[MAX_PARAMS];
	RdPgCallback cb;
	void *arg;
	struct PgQuery *next;
	/* its segment of the pipeline: commands 0..n_preparing-1 are Parse
	 * steps, then the tenant (when set), then the statement at main_index */
	const RdStatement *preparing[2];
	int n_preparing;
	int main_index;
	int command_index;
	PGresult *main_result;
	int64_t queued_us; /* when rd_pgpool_query took it: its deadline counts from here */
	int64_t sent_us;   /* when it left on a connection */
	bool retried;
	char error[256];
	char sqlstate[6];
} PgQuery;

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY } ConnState;

typedef struct PgConn {
	RdPgPool *pool;
	PGconn *conn;
	ConnState state;
	struct event *io;       /* connecting: one step's wait; ready: persistent EV_READ */
	struct event *write_io; /* ready: armed while PQflush has output left */
	struct event *retry;
	int64_t connecting_since_us;
	/* sent, answer not complete yet (until its Sync), oldest first */
	PgQuery *sent_head;
	PgQuery *sent_tail;
	int n_sent;
	bool preparing;  /* the query in flight prepares a statement: it goes alone */
	bool stale_seen; /* a query of this session failed as a stale session */
	/* statements prepared on this connection */
	const RdStatement *prepared[MAX_PREPARED];
	int n_prepared;
	bool renew; /* the session's statements went stale: reconnect once drained */
	char renew_why[256];
	char error[256];
} PgConn;

struct RdPgPool {
	struct event_base *base;
	char *dsn;
	int size;
	PgConn *conns;
	struct event *pump;
	struct event *sweep;
	long deadline_ms;
	PgQuery *queue_head;
	PgQuery *queue_tail;
	int queued;
	bool closing;
};

static void conn_start(PgConn *c);
static void pool_pump(RdPgPool *pool);

static PgQuery *query_free(PgQuery *q)
{
	if (q)
		PQclear(q->main_result);
	free(q);
	return NULL;
}

static void queue_push(RdPgPool *pool, PgQuery *q, bool at_head)
{
	q->next = NULL;
	if (!pool->queue_head) {
		pool->queue_head = pool->queue_tail = q;
	} else if (at_head) {
		q->next = pool->queue_head;
		pool->queue_head = q;
	} else {
		pool->queue_tail->next = q;
		pool->queue_tail = q;
	}
	pool->queued++;
}

static PgQuery *queue_pop(RdPgPool *pool)
{
	PgQuery *q = pool->queue_head;
	if (!q)
		return NULL;
	pool->queue_head = q->next;
	if (!pool->queue_head)
		pool->queue_tail = NULL;
	pool->queued--;
	q->next = NULL;
	return q;
}

/* Runs the pump later in this loop iteration (after the callbacks already
 * due, so the queries they add leave together). */
static void pool_wake(RdPgPool *pool)
{
	if (pool->pump)
		event_active(pool->pump, EV_TIMEOUT, 0);
}

/* The connection step's wait while connecting; the socket can change during a
 * handshake, so the event is rebuilt each time. */
static void conn_wait(PgConn *c, short what, event_callback_fn fn)
{
	if (c->io)
		event_free(c->io);
	c->io = event_new(c->pool->base, PQsocket(c->conn), what, fn, c);
	if (!c->io || event_add(c->io, NULL) < 0)
		vp_log_error(NULL, "pgpool", "cannot arm the socket event");
}

static void finish_query(PgQuery *q, const char *error)
{
	q->cb(error ? NULL : q->main_result, error, q->arg);
	query_free(q);
}

static void on_retry(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	conn_start(arg);
}

/* Closes the session; its prepared statements go with it. The queries in
 * flight are the caller's to finish. */
static void conn_close(PgConn *c)
{
	if (c->io)
		event_free(c->io);
	if (c->write_io)
		event_free(c->write_io);
	c->io = NULL;
	c->write_io = NULL;
	PQfinish(c->conn);
	c->conn = NULL;
	c->state = CONN_DOWN;
	c->n_prepared = 0;
	c->preparing = false;
	c->stale_seen = false;
}

/* Fails every query in flight on c (taken off it first: the callbacks only
 * queue, they never send). */
static void fail_sent(PgConn *c, const char *error)
{
	PgQuery *q = c->sent_head;
	c->sent_head = c->sent_tail = NULL;
	c->n_sent = 0;
	while (q) {
		PgQuery *next = q->next;
		finish_query(q, error);
		q = next;
	}
}

/* Drops the connection, fails its queries, schedules a reconnect. */
static void conn_broken(PgConn *c, const char *why)
{
	snprintf(c->error, sizeof(c->error), "%s", why);
	c->error[strcspn(c->error, "\n")] = '\0';
	vp_log_warn(NULL, "pg_connection", "%s", c->error);
	conn_close(c);
	fail_sent(c, "database connection lost");
	struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
	evtimer_add(c->retry, &later);
}

/* Replaces a healthy connection whose session went stale by a fresh one at
 * once (no retry delay: the server is up). Nothing is in flight on it. */
static void conn_renew(PgConn *c)
{
	conn_close(c);
	conn_start(c);
}

static bool is_prepared(const PgConn *c, const RdStatement *stmt)
{
	for (int i = 0; i < c->n_prepared; i++)
		if (c->prepared[i] == stmt)
			return true;
	return false;
}

static void mark_prepared(PgConn *c, const RdStatement *stmt)
{
	if (!is_prepared(c, stmt) && c->n_prepared < MAX_PREPARED)
		c->prepared[c->n_prepared++] = stmt;
}

/* Errors after which this session's prepared statements may stay wrong: the
 * objects they name were replaced (a blue/green rebuild swaps schema `read`,
 * a migration alters it). A fresh session prepares them again; other errors
 * are the query's own. */
static bool is_stale_session_error(const char *sqlstate)
{
	static const char *const stale[] = {
		"0A000", /* cached plan must not change result type */
		"42P01", /* undefined table */
		"42703", /* undefined column */
		"42883", /* undefined function */
		"3F000", /* invalid schema name */
		"XX000", /* "cache lookup failed for function": a dropped one */
	};
	for (size_t i = 0; sqlstate && i < sizeof(stale) / sizeof(stale[0]); i++)
		if (!strcmp(sqlstate, stale[i]))
			return true;
	return false;
}

static void note_error(PgQuery *q, const PGresult *res)
{
	if (q->error[0])
		return; /* the first error explains the rest (PIPELINE_ABORTED) */
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	snprintf(q->sqlstate, sizeof(q->sqlstate), "%s", state ? state : "");
	const char *msg = PQresultErrorMessage(res);
	snprintf(q->error, sizeof(q->error), "%s",
		 msg && *msg ? msg : PQresStatus(PQresultStatus(res)));
	q->error[strcspn(q->error, "\n")] = '\0';
}

/* One result of the head query's segment; true once its Sync has arrived. */
static bool take_result(PgConn *c, PgQuery *q, PGresult *res)
{
	switch (PQresultStatus(res)) {
	case PGRES_PIPELINE_SYNC:
		PQclear(res);
		return true;
	case PGRES_COMMAND_OK:
		if (q->command_index < q->n_preparing)
			mark_prepared(c, q->preparing[q->command_index]);
		break;
	case PGRES_TUPLES_OK:
		if (q->command_index == q->main_index) {
			PQclear(q->main_result);
			q->main_result = res;
			return false;
		}
		break;
	default:
		note_error(q, res);
	}
	PQclear(res);
	return false;
}

/* The head query's answer is complete: off the connection, then answered.
 * A query that failed only because an earlier query of the same session found
 * it stale goes back to the front of the queue, once: with one query per
 * session at a time it would have gone to a fresh session. */
static void complete_head(PgConn *c)
{
	PgQuery *q = c->sent_head;
	c->sent_head = q->next;
	if (!c->sent_head)
		c->sent_tail = NULL;
	c->n_sent--;
	q->next = NULL;
	if (q->n_preparing > 0)
		c->preparing = false;
	bool stale = q->error[0] && (is_stale_session_error(q->sqlstate) ||
				      !strcmp(q->sqlstate, "26000") /* no such statement */);
	if (stale)
		c->renew = true;
	if (stale && c->stale_seen && !q->retried && !c->pool->closing) {
		q->retried = true;
		q->n_preparing = q->main_index = q->command_index = 0;
		q->error[0] = q->sqlstate[0] = '\0';
		PQclear(q->main_result);
		q->main_result = NULL;
		queue_push(c->pool, q, true);
		return;
	}
	if (stale && !c->stale_seen) {
		c->stale_seen = true;
		snprintf(c->renew_why, sizeof(c->renew_why), "%s", q->error);
	}
	bool ok = !q->error[0] && q->main_result;
	finish_query(q, ok ? NULL : q->error[0] ? q->error : "no result");
}

/* Reads what arrived and answers every query whose segment is complete. */
static void conn_read(PgConn *c)
{
	if (!PQconsumeInput(c->conn)) {
		conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	while (c->sent_head && !PQisBusy(c->conn)) {
		PgQuery *q = c->sent_head;
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			/* the end of one command's results in the pipeline */
			if (++q->command_index > q->main_index + 1) {
				conn_broken(c, "pipeline out of step");
				return;
			}
			continue;
		}
		if (take_result(c, q, res))
			complete_head(c);
	}
	if (c->renew && c->n_sent == 0) {
		vp_log_info(NULL, "pg_connection", "session renewed after: %s",
			    c->renew_why[0] ? c->renew_why : "a schema swap");
		conn_renew(c);
	}
}

static void on_read(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	PgConn *c = arg;
	conn_read(c);
	pool_pump(c->pool);
}

/* Pushes pending output; arms the write event while some is left. */
static int conn_flush(PgConn *c)
{
	int flushed = PQflush(c->conn);
	if (flushed < 0) {
		conn_broken(c, PQerrorMessage(c->conn));
		return -1;
	}
	if (flushed == 1 && event_add(c->write_io, NULL) < 0) {
		conn_broken(c, "cannot arm the socket event");
		return -1;
	}
	return 0;
}

static void on_write(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	PgConn *c = arg;
	if (conn_flush(c) == 0)
		conn_read(c); /* libpq may have read while flushing */
	pool_pump(c->pool);
}

static int send_prepare(PgConn *c, PgQuery *q, const RdStatement *stmt)
{
	if (is_prepared(c, stmt))
		return 0;
	if (!PQsendPrepare(c->conn, stmt->name, stmt->sql, stmt->n_params, NULL))
		return -1;
	q->preparing[q->n_preparing++] = stmt;
	return 0;
}

/* Appends the query's segment to the pipeline; -1 when libpq refused
 * (connection broken). */
static int send_segment(PgConn *c, PgQuery *q)
{
	const char *tenant[] = {q->tenant_id};
	bool with_tenant = q->tenant_id[0] != '\0';

	q->n_preparing = 0;
	q->command_index = 0;
	if ((with_tenant && send_prepare(c, q, &set_tenant) < 0) || send_prepare(c, q, q->stmt) < 0)
		return -1;
	q->main_index = q->n_preparing + (with_tenant ? 1 : 0);
	if (with_tenant && !PQsendQueryPrepared(c->conn, set_tenant.name, 1, tenant, NULL, NULL, 0))
		return -1;
	if (!PQsendQueryPrepared(c->conn, q->stmt->name, q->stmt->n_params, q->params, NULL, NULL,
				 0))
		return -1;
	return PQpipelineSync(c->conn) ? 0 : -1;
}

static bool needs_prepare(const PgConn *c, const PgQuery *q)
{
	return (q->tenant_id[0] && !is_prepared(c, &set_tenant)) || !is_prepared(c, q->stmt);
}

/* Whether c may take q now. A query that prepares goes on an empty pipeline
 * and nothing joins it until its answer: a later query never depends on a
 * Parse that may yet fail. */
static bool can_take(const PgConn *c, const PgQuery *q)
{
	if (c->state != CONN_READY || c->renew || c->preparing)
		return false;
	if (needs_prepare(c, q))
		return c->n_sent == 0;
	return c->n_sent < MAX_IN_FLIGHT;
}

/* Sends q on c; false when the connection broke (q was failed with it). */
static bool conn_send(PgConn *c, PgQuery *q)
{
	if (needs_prepare(c, q))
		c->preparing = true;
	if (c->sent_tail)
		c->sent_tail->next = q;
	else
		c->sent_head = q;
	c->sent_tail = q;
	c->n_sent++;
	q->sent_us = vp_time_mono_us();
	if (send_segment(c, q) < 0) {
		conn_broken(c, PQerrorMessage(c->conn));
		return false;
	}
	return conn_flush(c) == 0;
}

/* Renews the sessions that wait for it and have drained, then hands queued
 * queries to the connections with the fewest in flight. */
static void pool_pump(RdPgPool *pool)
{
	for (int i = 0; i < pool->size; i++) {
		PgConn *c = &pool->conns[i];
		if (c->state == CONN_READY && c->renew && c->n_sent == 0)
			conn_renew(c);
	}
	while (pool->queue_head && !pool->closing) {
		PgConn *best = NULL;
		for (int i = 0; i < pool->size; i++) {
			PgConn *c = &pool->conns[i];
			if (can_take(c, pool->queue_head) && (!best || c->n_sent < best->n_sent))
				best = c;
		}
		if (!best)
			return;
		conn_send(best, queue_pop(pool));
	}
}

static void on_pump(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	pool_pump(arg);
}

/* The connection is up: its events for life, then work. */
static void conn_ready(PgConn *c)
{
	evutil_socket_t fd = PQsocket(c->conn);
	if (c->io)
		event_free(c->io);
	c->io = event_new(c->pool->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->write_io = event_new(c->pool->base, fd, EV_WRITE, on_write, c);
	if (!c->io || !c->write_io || event_add(c->io, NULL) < 0) {
		conn_broken(c, "cannot arm the socket event");
		return;
	}
	c->state = CONN_READY;
	pool_pump(c->pool);
}

static void on_connect_io(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	PgConn *c = arg;
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_READING:
		conn_wait(c, EV_READ, on_connect_io);
		return;
	case PGRES_POLLING_WRITING:
		conn_wait(c, EV_WRITE, on_connect_io);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->conn, 1) < 0 || !PQenterPipelineMode(c->conn)) {
			conn_broken(c, PQerrorMessage(c->conn));
			return;
		}
		conn_ready(c);
		return;
	default:
		conn_broken(c, PQerrorMessage(c->conn));
	}
}

/* The pool's dsn, with what makes a dead or frozen server show (see above);
 * keywords after dbname override the same ones in the dsn. */
static PGconn *connect_start(const RdPgPool *pool)
{
	char options[64];
	snprintf(options, sizeof(options), "-c statement_timeout=%ld", pool->deadline_ms);
	const char *keys[] = {"dbname",         "keepalives",          "keepalives_idle",
			      "keepalives_interval", "keepalives_count", "tcp_user_timeout",
			      "options",        NULL};
	const char *values[] = {pool->dsn, "1", "5", "2", "3", "10000", options, NULL};
	return PQconnectStartParams(keys, values, 1);
}

static void conn_start(PgConn *c)
{
	c->n_prepared = 0;
	c->renew = false;
	c->renew_why[0] = '\0';
	c->conn = connect_start(c->pool);
	c->connecting_since_us = vp_time_mono_us();
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		conn_broken(c, c->conn ? PQerrorMessage(c->conn) : "out of memory");
		return;
	}
	c->state = CONN_CONNECTING;
	conn_wait(c, EV_WRITE, on_connect_io);
}

/* Fails the queued queries past the deadline, and drops the connections
 * stuck in a handshake or on an answer past it (their queries fail too). */
static void on_sweep(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	RdPgPool *pool = arg;
	int64_t now = vp_time_mono_us();
	int64_t deadline_us = (int64_t)pool->deadline_ms * 1000;
	char why[128];

	for (int i = 0; i < pool->size; i++) {
		PgConn *c = &pool->conns[i];
		bool stuck_connecting = c->state == CONN_CONNECTING &&
					now - c->connecting_since_us > deadline_us;
		bool stuck_answering = c->state == CONN_READY && c->sent_head &&
				       now - c->sent_head->sent_us > deadline_us;
		if (!stuck_connecting && !stuck_answering)
			continue;
		snprintf(why, sizeof(why), "PostgreSQL did not %s within %ld ms",
			 stuck_connecting ? "accept the session" : "answer", pool->deadline_ms);
		conn_broken(c, why);
	}
	PgQuery *q = pool->queue_head, *late = NULL;
	pool->queue_head = pool->queue_tail = NULL;
	pool->queued = 0;
	while (q) {
		PgQuery *next = q->next;
		if (now - q->queued_us > deadline_us) {
			q->next = late;
			late = q;
		} else {
			queue_push(pool, q, false);
		}
		q = next;
	}
	while (late) {
		PgQuery *next = late->next;
		finish_query(late, "no database connection within the deadline");
		late = next;
	}
}

RdPgPool *rd_pgpool_new(struct event_base *base, const char *dsn, int size, long deadline_ms)
{
	RdPgPool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->base = base;
	pool->size = size;
	pool->dsn = strdup(dsn);
	pool->conns = calloc((size_t)size, sizeof(PgConn));
	pool->deadline_ms = deadline_ms;
	pool->pump = event_new(base, -1, 0, on_pump, pool);
	pool->sweep = event_new(base, -1, EV_PERSIST, on_sweep, pool);
	struct timeval every = {0, SWEEP_MS * 1000};
	if (!pool->dsn || !pool->conns || !pool->pump || !pool->sweep ||
	    event_add(pool->sweep, &every) < 0)
		return rd_pgpool_free(pool);
	for (int i = 0; i < size; i++) {
		PgConn *c = &pool->conns[i];
		c->pool = pool;
		c->retry = evtimer_new(base, on_retry, c);
		if (!c->retry)
			return rd_pgpool_free(pool);
		conn_start(c);
	}
	return pool;
}

static PgQuery *query_new(const RdStatement *stmt, const char *tenant_id,
			  const char *const *params, RdPgCallback cb, void *arg)
{
	size_t lens[MAX_PARAMS];
	size_t text_len = 0;

	if (stmt->n_params > MAX_PARAMS)
		return NULL;
	for (int i = 0; i < stmt->n_params; i++) {
		lens[i] = params[i] ? strlen(params[i]) + 1 : 0;
		text_len += lens[i];
	}
	PgQuery *q = calloc(1, sizeof(*q) + text_len);
	if (!q)
		return NULL;
	char *text = (char *)(q + 1);
	q->stmt = stmt;
	if (tenant_id)
		snprintf(q->tenant_id, sizeof(q->tenant_id), "%s", tenant_id);
	for (int i = 0; i < stmt->n_params; i++) {
		if (!params[i])
			continue;
		memcpy(text, params[i], lens[i]);
		q->params[i] = text;
		text += lens[i];
	}
	q->cb = cb;
	q->arg = arg;
	return q;
}

int rd_pgpool_query(RdPgPool *pool, const RdStatement *stmt, const char *tenant_id,
		    const char *const *params, RdPgCallback cb, void *arg)
{
	if (pool->closing || pool->queued >= MAX_QUEUED)
		return -1;
	PgQuery *q = query_new(stmt, tenant_id, params, cb, arg);
	if (!q)
		return -1;
	q->queued_us = vp_time_mono_us();
	queue_push(pool, q, false);
	pool_wake(pool);
	return 0;
}

int rd_pgpool_healthy(const RdPgPool *pool)
{
	int healthy = 0;
	for (int i = 0; i < pool->size; i++)
		healthy += pool->conns[i].state == CONN_READY;
	return healthy;
}

RdPgPool *rd_pgpool_free(RdPgPool *pool)
{
	if (!pool)
		return NULL;
	pool->closing = true;
	for (int i = 0; pool->conns && i < pool->size; i++) {
		PgConn *c = &pool->conns[i];
		conn_close(c);
		if (c->retry)
			event_free(c->retry);
		fail_sent(c, "shutting down");
	}
	PgQuery *q;
	while ((q = queue_pop(pool)) != NULL)
		finish_query(q, "shutting down");
	if (pool->pump)
		event_free(pool->pump);
	if (pool->sweep)
		event_free(pool->sweep);
	free(pool->conns);
	free(pool->dsn);
	free(pool);
	return NULL;
}

void rd_pgpool_renew(RdPgPool *pool)
{
	int renewed = 0;
	for (int i = 0; i < pool->size; i++) {
		PgConn *c = &pool->conns[i];
		if (c->state != CONN_READY)
			continue;
		c->renew = true;
		renewed += c->n_sent == 0;
	}
	pool_wake(pool); /* the pump renews the drained ones */
	vp_log_info(NULL, "pg_connection", "schema swapped: %d idle session(s) renewed", renewed);
}
