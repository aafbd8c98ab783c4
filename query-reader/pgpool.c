/* Non-blocking libpq on libevent, after pgbouncer's test/asynctest.c:
 * PQconnectStart/PQconnectPoll for the handshake, then pipeline mode: one
 * query is [Parse of statements this connection has not prepared yet]
 * [set_config of the tenant] Execute of the statement, Sync — one round trip,
 * one implicit transaction. PQflush while it returns 1 (wait for EV_WRITE),
 * PQconsumeInput on EV_READ and PQisBusy/PQgetResult until the Sync result.
 * Nothing here blocks the loop. A failed connection is retried after RETRY_MS
 * and prepares its statements again. */
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "vp_log.h"

#define MAX_PARAMS        16
#define MAX_QUEUED        10000
#define MAX_PREPARED      64
#define RETRY_MS          1000

/* The tenant for row-level security, local to the pipeline's transaction. */
static const RdStatement set_tenant = {
	"rd_set_tenant", "SELECT set_config('vetpms.tenant_id', $1::text, true)", 1};

typedef struct PgQuery {
	const RdStatement *stmt;
	char tenant_id[37]; /* empty: no tenant */
	char *params[MAX_PARAMS];
	RdPgCallback cb;
	void *arg;
	struct PgQuery *next;
} PgQuery;

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY } ConnState;

typedef struct PgConn {
	RdPgPool *pool;
	PGconn *conn;
	ConnState state;
	struct event *io;
	struct event *retry;
	PgQuery *current;
	/* statements prepared on this connection */
	const RdStatement *prepared[MAX_PREPARED];
	int n_prepared;
	/* the pipeline in flight: commands 0..n_preparing-1 are Parse steps, then
	 * the tenant (when set), then the statement at main_index */
	const RdStatement *preparing[2];
	int n_preparing;
	int main_index;
	int command_index;
	PGresult *main_result;
	bool renew; /* the session's statements went stale: reconnect after this query */
	char query_error[256];
	char error[256];
} PgConn;

struct RdPgPool {
	struct event_base *base;
	char *dsn;
	int size;
	PgConn *conns;
	PgQuery *queue_head;
	PgQuery *queue_tail;
	int queued;
};

static void conn_start(PgConn *c);
static void conn_dispatch(PgConn *c);

static void query_free(PgQuery *q)
{
	if (!q)
		return;
	for (int i = 0; i < MAX_PARAMS; i++)
		free(q->params[i]);
	free(q);
}

/* (Re)arms the socket event for what libpq waits on. The socket can change
 * during a handshake, so the event is rebuilt each time. */
static void conn_wait(PgConn *c, short what, event_callback_fn fn)
{
	if (c->io)
		event_free(c->io);
	c->io = event_new(c->pool->base, PQsocket(c->conn), what, fn, c);
	if (!c->io || event_add(c->io, NULL) < 0)
		vp_log_error(NULL, "pgpool", "cannot arm the socket event");
}

static void finish_query(PgConn *c, const char *error)
{
	PgQuery *q = c->current;
	c->current = NULL;
	if (q) {
		q->cb(error ? NULL : c->main_result, error, q->arg);
		query_free(q);
	}
	PQclear(c->main_result);
	c->main_result = NULL;
}

static void on_retry(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	conn_start(arg);
}

/* Closes the session; its prepared statements go with it. */
static void conn_close(PgConn *c)
{
	if (c->io) {
		event_free(c->io);
		c->io = NULL;
	}
	PQfinish(c->conn);
	c->conn = NULL;
	c->state = CONN_DOWN;
	c->n_prepared = 0;
}

/* Drops the connection, fails its query, schedules a reconnect. */
static void conn_broken(PgConn *c, const char *why)
{
	snprintf(c->error, sizeof(c->error), "%s", why);
	c->error[strcspn(c->error, "\n")] = '\0';
	vp_log_warn(NULL, "pg_connection", "%s", c->error);
	conn_close(c);
	finish_query(c, "database connection lost");
	struct timeval later = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
	evtimer_add(c->retry, &later);
}

/* Replaces a healthy connection whose session went stale by a fresh one at
 * once (no retry delay: the server is up). */
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

static void note_error(PgConn *c, const PGresult *res)
{
	if (is_stale_session_error(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
		c->renew = true;
	if (c->query_error[0])
		return; /* the first error explains the rest (PIPELINE_ABORTED) */
	const char *msg = PQresultErrorMessage(res);
	snprintf(c->query_error, sizeof(c->query_error), "%s",
		 msg && *msg ? msg : PQresStatus(PQresultStatus(res)));
	c->query_error[strcspn(c->query_error, "\n")] = '\0';
}

/* One result of the pipeline; true once its Sync has arrived. */
static bool take_result(PgConn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	switch (st) {
	case PGRES_PIPELINE_SYNC:
		PQclear(res);
		return true;
	case PGRES_COMMAND_OK:
		if (c->command_index < c->n_preparing)
			mark_prepared(c, c->preparing[c->command_index]);
		break;
	case PGRES_TUPLES_OK:
		if (c->command_index == c->main_index) {
			PQclear(c->main_result);
			c->main_result = res;
			return false;
		}
		break;
	default:
		note_error(c, res);
	}
	PQclear(res);
	return false;
}

static void on_query_io(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	PgConn *c = arg;
	if (events & EV_WRITE) {
		int flushed = PQflush(c->conn);
		if (flushed < 0) {
			conn_broken(c, PQerrorMessage(c->conn));
			return;
		}
		if (flushed == 1) {
			conn_wait(c, EV_READ | EV_WRITE, on_query_io);
			return;
		}
	}
	if ((events & EV_READ) && !PQconsumeInput(c->conn)) {
		conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	while (!PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			/* the end of one command's results in the pipeline */
			c->command_index++;
			if (c->command_index > c->main_index + 1) {
				conn_broken(c, "pipeline out of step");
				return;
			}
			continue;
		}
		if (take_result(c, res)) {
			bool ok = !c->query_error[0] && c->main_result;
			finish_query(c, ok ? NULL : c->query_error[0] ? c->query_error : "no result");
			if (c->renew) {
				vp_log_info(NULL, "pg_connection", "session renewed after: %s",
					    c->query_error[0] ? c->query_error : "a schema swap");
				conn_renew(c);
				return;
			}
			c->state = CONN_IDLE;
			conn_dispatch(c);
			return;
		}
	}
	conn_wait(c, EV_READ, on_query_io);
}

/* An idle connection still watches its socket: a server that goes away is
 * noticed at once instead of on the next query. */
static void on_idle_io(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	PgConn *c = arg;
	if (!PQconsumeInput(c->conn)) {
		conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	conn_wait(c, EV_READ, on_idle_io);
}

static int send_prepare(PgConn *c, const RdStatement *stmt)
{
	if (is_prepared(c, stmt))
		return 0;
	if (!PQsendPrepare(c->conn, stmt->name, stmt->sql, stmt->n_params, NULL))
		return -1;
	c->preparing[c->n_preparing++] = stmt;
	return 0;
}

/* Sends one query as a pipeline; -1 when libpq refused (connection broken). */
static int send_pipeline(PgConn *c, const PgQuery *q)
{
	const char *tenant[] = {q->tenant_id};
	bool with_tenant = q->tenant_id[0] != '\0';

	c->n_preparing = 0;
	c->command_index = 0;
	c->query_error[0] = '\0';
	if ((with_tenant && send_prepare(c, &set_tenant) < 0) || send_prepare(c, q->stmt) < 0)
		return -1;
	c->main_index = c->n_preparing + (with_tenant ? 1 : 0);
	if (with_tenant && !PQsendQueryPrepared(c->conn, set_tenant.name, 1, tenant, NULL, NULL, 0))
		return -1;
	if (!PQsendQueryPrepared(c->conn, q->stmt->name, q->stmt->n_params,
				 (const char *const *)q->params, NULL, NULL, 0))
		return -1;
	return PQpipelineSync(c->conn) ? 0 : -1;
}

/* Takes the next queued query onto an idle connection, or watches it idle. */
static void conn_dispatch(PgConn *c)
{
	RdPgPool *pool = c->pool;
	PgQuery *q = pool->queue_head;
	if (c->state != CONN_IDLE)
		return;
	if (!q) {
		conn_wait(c, EV_READ, on_idle_io);
		return;
	}
	pool->queue_head = q->next;
	if (!pool->queue_head)
		pool->queue_tail = NULL;
	pool->queued--;
	c->current = q;
	c->state = CONN_BUSY;
	if (send_pipeline(c, q) < 0) {
		conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	int flushed = PQflush(c->conn);
	if (flushed < 0)
		conn_broken(c, PQerrorMessage(c->conn));
	else
		conn_wait(c, flushed ? EV_READ | EV_WRITE : EV_READ, on_query_io);
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
		c->state = CONN_IDLE;
		conn_dispatch(c);
		return;
	default:
		conn_broken(c, PQerrorMessage(c->conn));
	}
}

static void conn_start(PgConn *c)
{
	c->n_prepared = 0;
	c->renew = false;
	c->conn = PQconnectStart(c->pool->dsn);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		conn_broken(c, c->conn ? PQerrorMessage(c->conn) : "out of memory");
		return;
	}
	c->state = CONN_CONNECTING;
	conn_wait(c, EV_WRITE, on_connect_io);
}

RdPgPool *rd_pgpool_new(struct event_base *base, const char *dsn, int size)
{
	RdPgPool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->base = base;
	pool->size = size;
	pool->dsn = strdup(dsn);
	pool->conns = calloc((size_t)size, sizeof(PgConn));
	if (!pool->dsn || !pool->conns)
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
	PgQuery *q = calloc(1, sizeof(*q));
	if (!q || stmt->n_params > MAX_PARAMS)
		goto fail;
	q->stmt = stmt;
	if (tenant_id)
		snprintf(q->tenant_id, sizeof(q->tenant_id), "%s", tenant_id);
	for (int i = 0; i < stmt->n_params; i++) {
		const char *p = params[i];
		q->params[i] = p ? strdup(p) : NULL;
		if (p && !q->params[i])
			goto fail;
	}
	q->cb = cb;
	q->arg = arg;
	return q;
fail:
	query_free(q);
	return NULL;
}

int rd_pgpool_query(RdPgPool *pool, const RdStatement *stmt, const char *tenant_id,
		    const char *const *params, RdPgCallback cb, void *arg)
{
	if (pool->queued >= MAX_QUEUED)
		return -1;
	PgQuery *q = query_new(stmt, tenant_id, params, cb, arg);
	if (!q)
		return -1;
	if (pool->queue_tail)
		pool->queue_tail->next = q;
	else
		pool->queue_head = q;
	pool->queue_tail = q;
	pool->queued++;
	for (int i = 0; i < pool->size && pool->queue_head; i++)
		conn_dispatch(&pool->conns[i]);
	return 0;
}

int rd_pgpool_healthy(const RdPgPool *pool)
{
	int healthy = 0;
	for (int i = 0; i < pool->size; i++)
		healthy += pool->conns[i].state == CONN_IDLE || pool->conns[i].state == CONN_BUSY;
	return healthy;
}

RdPgPool *rd_pgpool_free(RdPgPool *pool)
{
	if (!pool)
		return NULL;
	for (int i = 0; pool->conns && i < pool->size; i++) {
		PgConn *c = &pool->conns[i];
		if (c->io)
			event_free(c->io);
		if (c->retry)
			event_free(c->retry);
		finish_query(c, "shutting down");
		PQfinish(c->conn);
	}
	while (pool->queue_head) {
		PgQuery *q = pool->queue_head;
		pool->queue_head = q->next;
		q->cb(NULL, "shutting down", q->arg);
		query_free(q);
	}
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
		if (c->state == CONN_IDLE) {
			conn_renew(c);
			renewed++;
		} else if (c->state == CONN_BUSY) {
			c->renew = true;
		}
	}
	vp_log_info(NULL, "pg_connection", "schema swapped: %d idle session(s) renewed", renewed);
}
