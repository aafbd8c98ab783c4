/* Archiving (docs/operations.md § Archiving; schema/migrations/012_archive.sql):
 * the live projector moves its tenants' closed rows past their settings from
 * the live tables into the archive_* children, in bounded batches, each one
 * statement (one transaction): DELETE FROM ONLY the live table ... RETURNING,
 * INSERT into the child. A record moves with its vitals, diagnoses,
 * treatments, prescriptions and addenda in the same statement.
 *
 * Why in the consume loop, between batches (pj_archive_step), on the loop's
 * own connection: no event of the tenants whose partitions this process owns
 * is being applied meanwhile, so a live statement never meets a row that
 * moved under it (an UPDATE waiting on a row that a concurrent archive batch
 * deletes would find nothing and dead-letter the event). Tenants of
 * partitions this process does not own are left to the process that owns
 * them. Each step works at most STEP_BUDGET_US, then the loop applies the
 * next batch of events: a pass never holds live projection up for long.
 *
 * A pass starts on the timer (archive_interval_s after the last one, 0 = off)
 * or at once for a pending archive_runs row (`vetctl archive run`), which it
 * reports into. A pass stopped half-way (kill -9, PostgreSQL lost) left only
 * whole batches behind; the next pass goes on from there, and a pending run
 * is taken up again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_archive.h"
#include "vp_log.h"
#include "vp_metrics.h"
#include "vp_pg.h"
#include "vp_time.h"

#define STEP_BUDGET_US (100 * 1000)
#define POLL_US VP_US_PER_SEC

/* The archived row: the live row's columns by name, and archived_at ($4).
 * By name (jsonb), not by position: a column added to the live table later
 * is appended to the child after archived_at. LATERAL: one call per row
 * (`(f(x)).*` would call it once per column). */
#define AS_ARCHIVED_WITH(child, rows, more)                                                  \
	"INSERT INTO " child " SELECT r.* FROM " rows " x CROSS JOIN LATERAL"                  \
	" jsonb_populate_record(NULL::" child ", to_jsonb(x) || jsonb_build_object("           \
	"'archived_at', $4::timestamptz" more ")) r RETURNING 1"
#define AS_ARCHIVED(child, rows) AS_ARCHIVED_WITH(child, rows, "")

/* $1 tenant, $2 cutoff, $3 batch size, $4 archived_at. Any $3 of the rows
 * due, in no order: an ORDER BY would sort every due row again for each
 * batch (the status index gives them per status), which made a pass of
 * 200,000 rows quadratic. */
static const char move_appointments[] =
    "WITH picked AS (SELECT a.id FROM " VP_ARCHIVE_APPOINTMENTS_DUE
    " LIMIT $3::int FOR UPDATE),"
    " moved AS (DELETE FROM ONLY appointments a USING picked p"
    "  WHERE a.tenant_id = $1::uuid AND a.id = p.id RETURNING a.*),"
    " ins AS (" AS_ARCHIVED("archive_appointments", "moved") ")"
    " SELECT (SELECT count(*) FROM ins), 0, 0, 0, 0, 0";

/* A record's children leave with it: picked is the batch's records. */
#define MOVE_CHILD(t, from)                                                                  \
	" d_" t " AS (DELETE FROM ONLY " t " x USING " from                                     \
	"  WHERE x.tenant_id = $1::uuid AND x.record_id = p.id RETURNING x.*),"                 \
	" i_" t " AS (" AS_ARCHIVED("archive_" t, "d_" t) "),"
#define CHILD_COUNTS                                                                         \
	" (SELECT count(*) FROM i_vitals), (SELECT count(*) FROM i_diagnoses),"                 \
	" (SELECT count(*) FROM i_treatments), (SELECT count(*) FROM i_prescriptions),"         \
	" (SELECT count(*) FROM i_addenda)"

static const char move_records[] =
    "WITH picked AS (SELECT m.id FROM " VP_ARCHIVE_RECORDS_DUE
    " LIMIT $3::int FOR UPDATE),"
    " moved AS (DELETE FROM ONLY medical_records m USING picked p"
    "  WHERE m.tenant_id = $1::uuid AND m.id = p.id RETURNING m.*),"
    " ins AS (" AS_ARCHIVED_WITH("archive_medical_records", "moved",
				", 'archived_version', x.version") "),"
    MOVE_CHILD("vitals", "picked p")
    MOVE_CHILD("diagnoses", "picked p")
    MOVE_CHILD("treatments", "picked p")
    MOVE_CHILD("prescriptions", "picked p")
    MOVE_CHILD("addenda", "picked p")
    " done AS (SELECT 1)"
    " SELECT (SELECT count(*) FROM ins)," CHILD_COUNTS;

/* Children written after their record was archived (an addendum on an old
 * signed record: applied through the parent tables, the record's version
 * moved past archived_version, the addendum in the live child table) follow
 * their record. $2 and $3 are not used (every move binds the same four). */
static const char move_late_children[] =
    "WITH p AS (UPDATE archive_medical_records r SET archived_version = r.version"
    "  WHERE r.tenant_id = $1::uuid AND r.version <> r.archived_version"
    "  AND $2::text IS NOT NULL AND $3::int > 0 RETURNING r.id),"
    MOVE_CHILD("vitals", "p")
    MOVE_CHILD("diagnoses", "p")
    MOVE_CHILD("treatments", "p")
    MOVE_CHILD("prescriptions", "p")
    MOVE_CHILD("addenda", "p")
    " done AS (SELECT 1)"
    " SELECT 0," CHILD_COUNTS;

static const char count_appointments[] = "SELECT count(*) FROM " VP_ARCHIVE_APPOINTMENTS_DUE;
static const char count_records[] = "SELECT count(*) FROM " VP_ARCHIVE_RECORDS_DUE;

/* $1 only this tenant ('' = all), $2 the owned partitions (int[] text). */
static const char list_tenants[] =
    "SELECT t.id::text, t.archive_appointments_after_days, t.archive_records_after_days"
    " FROM tenants t WHERE ($1 = '' OR t.id::text = $1) AND EXISTS (SELECT 1"
    "  FROM event_log e WHERE e.tenant_id = t.id AND e.partition = ANY($2::int[]))"
    " ORDER BY t.id";

/* A batch first takes the tenant's partition's offsets row FOR SHARE: the
 * tenant rebuild (rebuild_tenant.c) holds it FOR UPDATE while it replaces
 * the tenant's rows, so the two never interleave. $1 tenant, $2 topic. */
static const char fence[] =
    "SELECT 1 FROM projection_offsets o WHERE o.topic = $2 AND o.partition ="
    " (SELECT e.partition FROM event_log e WHERE e.tenant_id = $1::uuid LIMIT 1) FOR SHARE";

static const char pending_run[] =
    "SELECT id, coalesce(only_tenant::text, '') FROM archive_runs"
    " WHERE finished_at IS NULL ORDER BY id LIMIT 1";
static const char run_started[] =
    "UPDATE archive_runs SET started_at = coalesce(started_at, now()) WHERE id = $1::bigint";
static const char run_progress[] =
    "UPDATE archive_runs SET moved = $2::bigint, left_estimate = $3::bigint"
    " WHERE id = $1::bigint";
static const char run_finished[] =
    "UPDATE archive_runs SET finished_at = now(), moved = $2::bigint, left_estimate = 0,"
    " error = nullif($3, '') WHERE id = $1::bigint";

enum { PHASE_COUNT, PHASE_APPOINTMENTS, PHASE_RECORDS, PHASE_LATE, PHASE_NEXT };

#define N_TABLES (2 + VP_ARCHIVE_N_CHILDREN)

struct PjArchive {
	const char *topic;
	long interval_s;
	long batch;
	int64_t next_due_us; /* monotonic; the timer's next pass */
	int64_t next_poll_us;
	bool active;
	long long run_id; /* 0: the timer's pass */
	char only_tenant[40];
	PGresult *tenants;
	int tenant_at, phase;
	char cutoff_appointments[40], cutoff_records[40], archived_at[40];
	long long moved, due;
	int64_t started_us;
	VpMetric *moved_total[N_TABLES];
	VpMetric *passes_total;
};

/* Result columns of the move statements: appointments or records, then the
 * children in MOVE_CHILD's order (CHILD_COUNTS). */
static const char *const table_labels[N_TABLES] = {
	"table=\"appointments\"", "table=\"medical_records\"", "table=\"vitals\"",
	"table=\"diagnoses\"",	  "table=\"treatments\"",      "table=\"prescriptions\"",
	"table=\"addenda\""};

PjArchive *pj_archive_new(const PjConfig *cfg)
{
	PjArchive *ar = calloc(1, sizeof(*ar));
	if (!ar)
		return NULL;
	ar->topic = cfg->topic;
	ar->interval_s = cfg->archive_interval_s;
	ar->batch = cfg->archive_batch;
	/* the first timed pass one period after start: a restart loop must not
	 * turn into an archive loop, and the tests' stacks never see one */
	ar->next_due_us = vp_time_mono_us() + (int64_t)ar->interval_s * VP_US_PER_SEC;
	for (int i = 0; i < N_TABLES; i++)
		ar->moved_total[i] = vp_metrics_counter("vetpms_projector_archived_rows_total",
							table_labels[i],
							"Rows moved into the archive tables, by "
							"live table");
	ar->passes_total = vp_metrics_counter("vetpms_projector_archive_passes_total", NULL,
					      "Archive passes finished");
	return ar;
}

static void end_pass(PjArchive *ar)
{
	PQclear(ar->tenants);
	ar->tenants = NULL;
	ar->active = false;
}

PjArchive *pj_archive_free(PjArchive *ar)
{
	if (ar)
		end_pass(ar);
	free(ar);
	return NULL;
}

void pj_archive_abandon(PjArchive *ar)
{
	if (ar && ar->active) {
		vp_log_info(NULL, "archive", "pass abandoned (re-seek or PostgreSQL lost); "
			    "a pending run is taken up again");
		end_pass(ar);
	}
}

bool pj_archive_busy(const PjArchive *ar)
{
	return ar && ar->active;
}

/* "{0,3}": the partitions this process applies; NULL-free. */
static void owned_array(const bool *owned, int n_owned, char *out, size_t cap)
{
	size_t len = (size_t)snprintf(out, cap, "{");
	for (int i = 0; i < n_owned && len + 16 < cap; i++)
		if (owned[i])
			len += (size_t)snprintf(out + len, cap - len, "%s%d", len > 1 ? "," : "", i);
	snprintf(out + len, cap - len, "}");
}

static int run_update(PGconn *conn, const char *sql, const PjArchive *ar, const char *error,
		      char *why, size_t why_cap)
{
	char id[24], moved[24], due[24];
	snprintf(id, sizeof(id), "%lld", ar->run_id);
	snprintf(moved, sizeof(moved), "%lld", ar->moved);
	long long left = ar->due > ar->moved ? ar->due - ar->moved : 0;
	snprintf(due, sizeof(due), "%lld", left);
	const char *params[3] = {id, moved, sql == run_finished ? (error ? error : "") : due};
	int n = sql == run_started ? 1 : 3;
	if (ar->run_id == 0)
		return 0;
	return vp_pg_exec(conn, sql, n, params, NULL, why, why_cap);
}

/* A pending run, else the timer: 1 a pass started, 0 none due, -1 error. */
static int start_pass(PjArchive *ar, PGconn *conn, const bool *owned, int n_owned, char *why,
		      size_t why_cap)
{
	PGresult *res = NULL;
	char parts[1024];
	int64_t now = vp_time_mono_us();
	if (now < ar->next_poll_us)
		return 0;
	ar->next_poll_us = now + POLL_US;
	if (vp_pg_exec(conn, pending_run, 0, NULL, &res, why, why_cap) < 0)
		return -1;
	ar->run_id = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	snprintf(ar->only_tenant, sizeof(ar->only_tenant), "%s",
		 PQntuples(res) ? PQgetvalue(res, 0, 1) : "");
	PQclear(res);
	if (ar->run_id == 0 && (ar->interval_s == 0 || now < ar->next_due_us))
		return 0;
	owned_array(owned, n_owned, parts, sizeof(parts));
	if (!strcmp(parts, "{}"))
		return 0; /* no partition assigned yet: nothing is ours to move */
	const char *params[2] = {ar->only_tenant, parts};
	if (vp_pg_exec(conn, list_tenants, 2, params, &ar->tenants, why, why_cap) < 0)
		return -1;
	if (ar->run_id && *ar->only_tenant && PQntuples(ar->tenants) == 0) {
		/* the tenant's partition is another process's: the run is its */
		PQclear(ar->tenants);
		ar->tenants = NULL;
		return 0;
	}
	if (run_update(conn, run_started, ar, NULL, why, why_cap) < 0) {
		PQclear(ar->tenants);
		ar->tenants = NULL;
		return -1;
	}
	vp_time_format_rfc3339_us(vp_time_now_us(), ar->archived_at, sizeof(ar->archived_at));
	ar->active = true;
	ar->tenant_at = 0;
	ar->phase = PHASE_COUNT;
	ar->moved = ar->due = 0;
	ar->started_us = now;
	vp_log_info(NULL, "archive", "pass started (%s, %d tenants)",
		    ar->run_id ? "requested" : "timer", PQntuples(ar->tenants));
	return 1;
}

/* The tenant's cutoffs from its settings and the pass's start. */
static void set_cutoffs(PjArchive *ar)
{
	int64_t now_us = 0, cutoff;
	vp_time_parse_rfc3339(ar->archived_at, strlen(ar->archived_at), &now_us);
	long appt_days = strtol(PQgetvalue(ar->tenants, ar->tenant_at, 1), NULL, 10);
	long rec_days = strtol(PQgetvalue(ar->tenants, ar->tenant_at, 2), NULL, 10);
	ar->cutoff_appointments[0] = ar->cutoff_records[0] = '\0';
	if (vp_archive_cutoff(now_us, appt_days, &cutoff))
		vp_time_format_rfc3339_us(cutoff, ar->cutoff_appointments,
					  sizeof(ar->cutoff_appointments));
	if (vp_archive_cutoff(now_us, rec_days, &cutoff))
		vp_time_format_rfc3339_us(cutoff, ar->cutoff_records, sizeof(ar->cutoff_records));
}

static int count_due(PGconn *conn, const char *sql, const char *tenant, const char *cutoff,
		     long long *due, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[2] = {tenant, cutoff};
	if (!*cutoff)
		return 0; /* never */
	if (vp_pg_exec(conn, sql, 2, params, &res, why, why_cap) < 0)
		return -1;
	*due += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static int count_tenant(PjArchive *ar, PGconn *conn, const char *tenant, char *why,
			size_t why_cap)
{
	set_cutoffs(ar);
	return count_due(conn, count_appointments, tenant, ar->cutoff_appointments, &ar->due, why,
			 why_cap) < 0 ||
		       count_due(conn, count_records, tenant, ar->cutoff_records, &ar->due, why,
				 why_cap) < 0
		   ? -1
		   : 0;
}

static int exec0(PGconn *conn, const char *sql, char *why, size_t why_cap)
{
	return vp_pg_exec(conn, sql, 0, NULL, NULL, why, why_cap);
}

/* One batch, one transaction: the fence, the move statement, the run's
 * progress. *rows: the moved rows of the first table (appointments or
 * records), which says whether a full batch went. */
static int move(PjArchive *ar, PGconn *conn, const char *sql, const char *tenant,
		const char *cutoff, bool records, long long *rows, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	char batch[24];
	long long counts[1 + VP_ARCHIVE_N_CHILDREN];
	snprintf(batch, sizeof(batch), "%ld", ar->batch);
	const char *params[4] = {tenant, cutoff, batch, ar->archived_at};
	const char *fence_params[2] = {tenant, ar->topic};
	if (exec0(conn, "BEGIN", why, why_cap) < 0)
		return -1;
	if (vp_pg_exec(conn, fence, 2, fence_params, NULL, why, why_cap) < 0 ||
	    vp_pg_exec(conn, sql, 4, params, &res, why, why_cap) < 0)
		goto fail;
	long long moved_before = ar->moved;
	for (int i = 0; i <= VP_ARCHIVE_N_CHILDREN; i++) {
		counts[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
		ar->moved += counts[i];
	}
	PQclear(res);
	res = NULL;
	if (run_update(conn, run_progress, ar, NULL, why, why_cap) < 0 ||
	    exec0(conn, "COMMIT", why, why_cap) < 0) {
		ar->moved = moved_before;
		goto fail;
	}
	*rows = counts[0];
	vp_metric_add(ar->moved_total[records ? 1 : 0], counts[0]);
	for (int i = 0; i < VP_ARCHIVE_N_CHILDREN; i++)
		vp_metric_add(ar->moved_total[2 + i], counts[1 + i]);
	return 0;
fail:
	PQclear(res);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		char ignored[128];
		exec0(conn, "ROLLBACK", ignored, sizeof(ignored));
	}
	return -1;
}

/* One unit of work of the tenant at tenant_at: a count, a batch, the late
 * children, or moving on. */
static int work(PjArchive *ar, PGconn *conn, char *why, size_t why_cap)
{
	const char *tenant = PQgetvalue(ar->tenants, ar->tenant_at, 0);
	long long rows = 0;
	switch (ar->phase) {
	case PHASE_COUNT:
		if (count_tenant(ar, conn, tenant, why, why_cap) < 0)
			return -1;
		ar->phase = PHASE_APPOINTMENTS;
		return 0;
	case PHASE_APPOINTMENTS:
		if (*ar->cutoff_appointments &&
		    move(ar, conn, move_appointments, tenant, ar->cutoff_appointments, false, &rows,
			 why, why_cap) < 0)
			return -1;
		if (rows < ar->batch)
			ar->phase = PHASE_RECORDS;
		return 0;
	case PHASE_RECORDS:
		if (*ar->cutoff_records &&
		    move(ar, conn, move_records, tenant, ar->cutoff_records, true, &rows, why,
			 why_cap) < 0)
			return -1;
		if (rows < ar->batch)
			ar->phase = PHASE_LATE;
		return 0;
	case PHASE_LATE:
		if (move(ar, conn, move_late_children, tenant, "-", true, &rows, why, why_cap) < 0)
			return -1;
		ar->phase = PHASE_NEXT;
		return 0;
	default:
		ar->tenant_at++;
		ar->phase = PHASE_COUNT;
		return 0;
	}
}

static void finish_pass(PjArchive *ar, PGconn *conn, const char *error)
{
	char why[512];
	double secs = (double)(vp_time_mono_us() - ar->started_us) / 1e6;
	if (run_update(conn, run_finished, ar, error, why, sizeof(why)) < 0)
		vp_log_warn(NULL, "archive", "run %lld not marked finished: %s", ar->run_id, why);
	if (!error)
		vp_metric_add(ar->passes_total, 1);
	vp_log_info(NULL, "archive", "pass %s: %lld rows moved in %.2f s%s%s",
		    error ? "failed" : "done", ar->moved, secs, error ? ": " : "",
		    error ? error : "");
	ar->next_due_us = vp_time_mono_us() + (int64_t)ar->interval_s * VP_US_PER_SEC;
	end_pass(ar);
}

long pj_archive_step(PjArchive *ar, PGconn *conn, const bool *owned, int n_owned, char *why,
		     size_t why_cap)
{
	if (!ar->active) {
		int started = start_pass(ar, conn, owned, n_owned, why, why_cap);
		if (started <= 0)
			return started;
	}
	long long before = ar->moved;
	int64_t deadline = vp_time_mono_us() + STEP_BUDGET_US;
	while (ar->tenant_at < PQntuples(ar->tenants) && vp_time_mono_us() < deadline) {
		if (work(ar, conn, why, why_cap) < 0) {
			/* PostgreSQL lost: the run stays pending, taken up again;
			 * anything else is reported to it */
			if (vp_pg_ping(conn))
				finish_pass(ar, conn, why);
			else
				end_pass(ar);
			return -1;
		}
	}
	if (ar->tenant_at >= PQntuples(ar->tenants))
		finish_pass(ar, conn, NULL);
	return (long)(ar->moved - before);
}
