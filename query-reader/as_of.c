/* History as of a moment (docs/history.md): GET /v1/patients/{id}?as_of= and
 * GET /v1/medical-records/{id}?as_of= answer the resource as it stood then.
 * The answer is folded from read.event_log with the projector's own handlers
 * (projector/apply_*.c, linked in as libvpapply.a): in one transaction, temp
 * copies of the read model's tables shadow schema read (search_path =
 * pg_temp, read), the chosen events are applied by pj_apply_event exactly as
 * the live projector applies them, the route's usual statement runs over the
 * temp tables, and the transaction rolls back.
 *
 * A fold blocks on its own connection, so it runs on a thread of its own and
 * hands its result back to the loop with event_active; at most max_folds run
 * per loop (503 beyond). The loop owns the jobs list: only it adds, answers
 * and frees jobs, and it joins each thread before freeing what it used. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "apply_runner.h"
#include "projector.h"
#include "reader.h"
#include "routes.h"
#include "vp_event.h"
#include "vp_log.h"
#include "vp_pg.h"
#include "vp_time.h"

/* Rounds of id-following from the resource: a record (0) names its patient
 * (1), whose events name its owners (2); an appointment names its vet. */
#define FOLLOW_DEPTH 3

typedef enum { FOLD_OK, FOLD_BEFORE_HISTORY, FOLD_FAILED } FoldOutcome;

typedef struct AsOfJob AsOfJob;
struct AsOfJob {
	TAILQ_ENTRY(AsOfJob) link;
	RdAsOf *owner;
	RdRequest *rq; /* the fold's until the loop answers it */
	pthread_t thread;
	struct event *done; /* on the loop: the fold has ended */
	FoldOutcome outcome;
	PGresult *res; /* FOLD_OK: the route statement's result */
	char why[512]; /* FOLD_FAILED: for the log */
	int events;    /* applied (or skipped) events, for the log */
	int64_t started_us;
	/* For the log: when the connection was up, the temp tables made, the
	 * handlers prepared and the events applied (0: not reached). */
	int64_t connected_us, tables_us, prepared_us, applied_us;
};

struct RdAsOf {
	struct event_base *base;
	char *dsn;
	long deadline_ms;
	int max_folds;
	int running;
	atomic_bool stopping;
	TAILQ_HEAD(, AsOfJob) jobs;
};

/* --- pure parts (tests/unit/test_rd_as_of.c) ------------------------------ */

int rd_asof_parse(const char *text, int64_t now_us, int64_t *out_us, VpError *err)
{
	if (vp_time_parse_rfc3339(text, strlen(text), out_us) < 0) {
		vp_error_add_detail(err, "as_of", "must be an RFC 3339 date-time");
		return -1;
	}
	if (*out_us > now_us) {
		vp_error_add_detail(err, "as_of", "must not be in the future");
		return -1;
	}
	return 0;
}

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$';
}

/* Clock readings a statement could hide besides now(): refused rather than
 * answered from the real clock. */
static const char *const other_clocks[] = {
    "current_timestamp", "current_date",    "current_time",	   "localtimestamp",
    "localtime",	 "clock_timestamp", "statement_timestamp", "transaction_timestamp",
    "timeofday",
};

char *rd_asof_sql(const char *sql, int as_of_param, bool *reads_now)
{
	*reads_now = false;
	for (size_t i = 0; i < sizeof(other_clocks) / sizeof(other_clocks[0]); i++)
		if (strcasestr(sql, other_clocks[i]))
			return NULL;
	char now_param[24];
	int now_len = snprintf(now_param, sizeof(now_param), "$%d::timestamptz", as_of_param);
	/* Each "read." becomes "pg_temp." (3 more bytes), each "now()" the
	 * parameter: at most now_len bytes more per 5. */
	size_t cap = strlen(sql) * (size_t)(now_len + 3) + 1;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = 0;
	for (const char *s = sql; *s;) {
		bool boundary = s == sql || !ident_char(s[-1]);
		if (boundary && !strncmp(s, "read.", 5)) {
			memcpy(out + n, "pg_temp.", 8);
			n += 8;
			s += 5;
		} else if (boundary && !strncasecmp(s, "now()", 5)) {
			memcpy(out + n, now_param, (size_t)now_len);
			n += (size_t)now_len;
			*reads_now = true;
			s += 5;
		} else {
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	return out;
}

/* --- the fold (on its thread, blocking) ---------------------------------- */

/* Every base table of schema read, copied empty (with its defaults, checks,
 * generated columns and indexes) as a temp table of the same name, dropped
 * with the transaction. Row-level security is not copied: every row the fold
 * writes is the tenant's. A table the reader may not read (dead_letters) is
 * shadowed by an empty temp table of its columns (pg_attribute is public):
 * a handler that writes it (ClientErased scrubs the client's dead letters)
 * then writes nothing, where it used to fail the fold with "permission
 * denied" and every history of an erased client's patient with it. */
static const char create_temp_tables[] =
    "DO $$ DECLARE t record; BEGIN"
    " FOR t IN SELECT c.oid, c.relname, has_table_privilege(c.oid, 'SELECT') AS readable"
    "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    "  WHERE n.nspname = 'read' AND c.relkind IN ('r', 'p') AND NOT c.relispartition LOOP"
    "  IF t.readable THEN"
    "   EXECUTE format('CREATE TEMP TABLE %I (LIKE read.%I INCLUDING ALL) ON COMMIT DROP',"
    "    t.relname, t.relname);"
    "  ELSE"
    "   EXECUTE format('CREATE TEMP TABLE %I (%s) ON COMMIT DROP', t.relname,"
    "    (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),"
    "      ', ' ORDER BY a.attnum) FROM pg_attribute a"
    "     WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped));"
    "  END IF;"
    " END LOOP; END $$";

/* NULL: the tenant has no event; false: as_of is before its first one. */
static const char history_starts[] =
    "SELECT (SELECT e.at FROM read.event_log e WHERE e.tenant_id = $1::uuid"
    " ORDER BY e.partition, e.\"offset\" LIMIT 1) <= $2::timestamptz";

/* The events up to as_of of the resource, of the aggregates its events name
 * in *_id members (FOLLOW_DEPTH rounds: what its handlers read, such as the
 * patient of a record and the owners of a patient) and of the tenant itself
 * (its settings), in log order: one tenant's events are in one partition. */
static const char choose_events[] =
    "WITH RECURSIVE ids(id, depth) AS ("
    " VALUES ($3::uuid, 0), ($1::uuid, 0)"
    " UNION"
    " SELECT m.value::uuid, ids.depth + 1 FROM ids"
    "  JOIN read.event_log e ON e.tenant_id = $1::uuid AND e.aggregate_id = ids.id"
    "   AND e.at <= $2::timestamptz"
    "  CROSS JOIN LATERAL jsonb_each_text(e.envelope->'data') m"
    "  WHERE ids.depth < $4::int AND m.key LIKE '%\\_id'"
    "   AND m.value ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')"
    " SELECT e.envelope::text, e.partition, e.\"offset\" FROM read.event_log e"
    " WHERE e.tenant_id = $1::uuid AND e.at <= $2::timestamptz"
    "  AND e.aggregate_id IN (SELECT id FROM ids)"
    " ORDER BY e.partition, e.\"offset\"";

static int exec(PGconn *conn, const char *sql, AsOfJob *job)
{
	return vp_pg_exec(conn, sql, 0, NULL, NULL, job->why, sizeof(job->why));
}

/* One event, as the live projector applies it: a rejected event (a dead
 * letter there) leaves nothing behind, rolled back to its savepoint. */
static int apply_one(PGconn *conn, const char *raw, size_t len, int32_t partition, int64_t offset,
		     AsOfJob *job)
{
	VpEvent ev;
	char why[512];
	if (vp_event_decode(raw, len, &ev, why, sizeof(why)) < 0)
		return 0; /* the projector dead-letters it too: never applied */
	if (exec(conn, "SAVEPOINT fold_event", job) < 0) {
		vp_event_release(&ev);
		return -1;
	}
	PjApplyResult r = pj_apply_event(conn, &ev, raw, len, partition, offset, why, sizeof(why));
	vp_event_release(&ev);
	if (r == PJ_FAILED) {
		snprintf(job->why, sizeof(job->why), "%s", why);
		return -1;
	}
	job->events++;
	return exec(conn,
		    r == PJ_REJECTED ? "ROLLBACK TO SAVEPOINT fold_event"
				     : "RELEASE SAVEPOINT fold_event",
		    job);
}

static int apply_all(PGconn *conn, const PGresult *events, AsOfJob *job)
{
	int64_t deadline = job->started_us + job->owner->deadline_ms * 1000; /* the whole fold's */
	for (int i = 0; i < PQntuples(events); i++) {
		if (atomic_load(&job->owner->stopping) || vp_time_mono_us() > deadline) {
			snprintf(job->why, sizeof(job->why), "stopped or past the deadline");
			return -1;
		}
		if (apply_one(conn, PQgetvalue(events, i, 0), (size_t)PQgetlength(events, i, 0),
			      (int32_t)atoi(PQgetvalue(events, i, 1)),
			      strtoll(PQgetvalue(events, i, 2), NULL, 10), job) < 0)
			return -1;
	}
	return 0;
}

/* The route's statement over the temp tables: its parameters, then as_of. */
static int answer(PGconn *conn, const char *as_of, AsOfJob *job)
{
	const RdStatement *stmt = job->rq->route->stmt;
	bool reads_now;
	char *sql = rd_asof_sql(stmt->sql, stmt->n_params + 1, &reads_now);
	const char *params[RD_MAX_PARAMS + 1];
	if (!sql || stmt->n_params > RD_MAX_PARAMS) {
		free(sql);
		snprintf(job->why, sizeof(job->why), "%s: cannot be answered as of", stmt->name);
		return -1;
	}
	for (int i = 0; i < stmt->n_params; i++)
		params[i] = job->rq->params[i];
	params[stmt->n_params] = as_of; /* only when the statement reads now() */
	int rc = vp_pg_exec(conn, sql, stmt->n_params + reads_now, params, &job->res, job->why,
			    sizeof(job->why));
	free(sql);
	return rc;
}

static int fold_in(PGconn *conn, AsOfJob *job)
{
	RdRequest *rq = job->rq;
	char as_of[40], timeout[24], depth[8];
	PGresult *res = NULL;
	vp_time_format_rfc3339_us(rq->as_of_us, as_of, sizeof(as_of));
	snprintf(timeout, sizeof(timeout), "%ld", job->owner->deadline_ms);
	snprintf(depth, sizeof(depth), "%d", FOLLOW_DEPTH);
	const char *timeout_params[] = {timeout};
	const char *tenant_params[] = {rq->tenant_id};
	const char *history_params[] = {rq->tenant_id, as_of};
	const char *event_params[] = {rq->tenant_id, as_of, rq->params[1], depth};

	if (vp_pg_exec(conn, "SELECT set_config('statement_timeout', $1, false)", 1, timeout_params,
		       NULL, job->why, sizeof(job->why)) < 0 ||
	    exec(conn, "BEGIN", job) < 0 ||
	    vp_pg_exec(conn, "SELECT set_config('vetpms.tenant_id', $1, true)", 1, tenant_params,
		       NULL, job->why, sizeof(job->why)) < 0 ||
	    vp_pg_exec(conn, history_starts, 2, history_params, &res, job->why, sizeof(job->why)) <
		0)
		goto fail;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		return FOLD_BEFORE_HISTORY;
	}
	PQclear(res);
	res = NULL;
	if (vp_pg_exec(conn, choose_events, 4, event_params, &res, job->why, sizeof(job->why)) <
		0 ||
	    exec(conn, create_temp_tables, job) < 0 ||
	    exec(conn, "SET LOCAL search_path = pg_temp, read", job) < 0)
		goto fail;
	job->tables_us = vp_time_mono_us();
	if (pj_apply_prepare(conn, job->why, sizeof(job->why)) < 0)
		goto fail;
	job->prepared_us = vp_time_mono_us();
	if (apply_all(conn, res, job) < 0)
		goto fail;
	job->applied_us = vp_time_mono_us();
	if (answer(conn, as_of, job) < 0)
		goto fail;
	PQclear(res);
	return exec(conn, "ROLLBACK", job) < 0 ? FOLD_FAILED : FOLD_OK;
fail:
	PQclear(res);
	return FOLD_FAILED;
}

static void *fold_main(void *arg)
{
	AsOfJob *job = arg;
	PGconn *conn =
	    vp_pg_connect(job->owner->dsn, "vetpms-reader-as-of", job->why, sizeof(job->why));
	job->connected_us = vp_time_mono_us();
	job->outcome = conn ? fold_in(conn, job) : FOLD_FAILED;
	if (job->outcome != FOLD_OK && job->res) {
		PQclear(job->res);
		job->res = NULL;
	}
	if (conn)
		PQfinish(conn); /* a failed transaction ends with its session */
	/* The last thing this thread does: the loop joins it, then frees job. */
	event_active(job->done, EV_READ, 0);
	return NULL;
}

/* --- on the loop ---------------------------------------------------------- */

static void job_free(AsOfJob *job)
{
	TAILQ_REMOVE(&job->owner->jobs, job, link);
	job->owner->running--;
	if (job->res)
		PQclear(job->res);
	event_free(job->done);
	free(job);
}

static void on_done(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	AsOfJob *job = arg;
	RdRequest *rq = job->rq;
	VpError err;
	pthread_join(job->thread, NULL);
	vp_error_clear(&err);
	if (job->outcome == FOLD_BEFORE_HISTORY) {
		vp_error_add_detail(&err, "as_of", "is before the tenant's first event");
		vp_error_finish_validation(&err);
		rd_request_reply_error(rq, &err);
	} else if (job->outcome == FOLD_FAILED) {
		rd_request_result(NULL, job->why, rq);
	} else {
		vp_log_debug(
		    rq->http.request_id, "as_of_fold",
		    "%s: %d events in %lld ms (connect %lld, choose and copy %lld, prepare %lld, "
		    "apply %lld)",
		    rq->route->stmt->name, job->events,
		    (long long)(vp_time_mono_us() - job->started_us) / 1000,
		    (long long)(job->connected_us - job->started_us) / 1000,
		    (long long)(job->tables_us - job->connected_us) / 1000,
		    (long long)(job->prepared_us - job->tables_us) / 1000,
		    (long long)(job->applied_us - job->prepared_us) / 1000);
		rd_request_result(job->res, NULL, rq);
	}
	job_free(job);
}

RdAsOf *rd_asof_new(struct event_base *base, const char *dsn, long deadline_ms, int max_folds)
{
	RdAsOf *a = calloc(1, sizeof(*a));
	if (!a || !(a->dsn = strdup(dsn))) {
		free(a);
		return NULL;
	}
	a->base = base;
	a->deadline_ms = deadline_ms;
	a->max_folds = max_folds;
	atomic_init(&a->stopping, false);
	TAILQ_INIT(&a->jobs);
	return a;
}

int rd_asof_start(RdAsOf *a, RdRequest *rq)
{
	if (a->running >= a->max_folds)
		return -1;
	AsOfJob *job = calloc(1, sizeof(*job));
	if (!job)
		return -1;
	job->owner = a;
	job->rq = rq;
	job->started_us = vp_time_mono_us();
	job->done = event_new(a->base, -1, 0, on_done, job);
	if (!job->done) {
		free(job);
		return -1;
	}
	TAILQ_INSERT_TAIL(&a->jobs, job, link);
	a->running++;
	if (pthread_create(&job->thread, NULL, fold_main, job) != 0) {
		job->rq = NULL;
		job_free(job);
		return -1;
	}
	return 0;
}

/* At shutdown (the loop has stopped): each fold stops at its next event (or
 * its statement's timeout), is joined, and its request answered 503. */
RdAsOf *rd_asof_free(RdAsOf *a)
{
	if (!a)
		return NULL;
	atomic_store(&a->stopping, true);
	AsOfJob *job;
	while ((job = TAILQ_FIRST(&a->jobs))) {
		pthread_join(job->thread, NULL);
		rd_request_result(NULL, "shutting down", job->rq);
		job_free(job);
	}
	free(a->dsn);
	free(a);
	return NULL;
}
