/* vetctl archive run [--tenant T] [--dry-run]: one archive pass now
 * (docs/operations.md § Archiving).
 *   run            records a request in <schema>.archive_runs and waits while
 *                  the live projector moves the rows (projector/archive.c),
 *                  with its progress on stderr: vetctl never moves rows itself
 *                  (only the process applying a tenant's events may, between
 *                  its batches)
 *   run --dry-run  counts, per tenant, what a pass would move now (one JSON
 *                  object per line on stdout) and changes nothing
 * Connects as the projector (or a superuser). Exit codes: 0 done, 1 failed
 * or not finished in time (the request stays), 2 usage, 3 unknown tenant. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vetctl.h"
#include "vp_archive.h"
#include "vp_config.h"
#include "vp_pg.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define EXIT_UNKNOWN_TENANT 3
#define POLL_US (200 * 1000)

typedef struct ArOptions {
	char *dsn;
	char *schema;
	char *tenant;
	char *by;
	bool dry_run;
	long timeout_s;
} ArOptions;

static const char usage[] =
	"usage: vetctl archive run [--tenant T] [--dry-run] [--timeout-s N]\n"
	"  moves closed appointments and signed medical records older than each tenant's\n"
	"  archive_*_after_days into the archive tables, through the live projector;\n"
	"  --dry-run prints what would move (JSON per tenant) and changes nothing\n"
	"  --dsn (VETPMS_PROJECTOR_DSN): the projector's or a superuser's connection\n"
	"  --by (VETPMS_OPERATOR, else $USER): who asked, recorded in archive_runs\n";

/* The children of the records due: one count over the five tables. */
#define CHILD_COUNT(t)                                                                       \
	"(SELECT count(*) FROM ONLY " t " x WHERE x.tenant_id = $1::uuid AND x.record_id IN"  \
	" (SELECT m.id FROM " VP_ARCHIVE_RECORDS_DUE "))"

static const char count_appointments[] = "SELECT count(*) FROM " VP_ARCHIVE_APPOINTMENTS_DUE;
static const char count_records[] =
    "SELECT (SELECT count(*) FROM " VP_ARCHIVE_RECORDS_DUE "), " CHILD_COUNT("vitals") " + "
    CHILD_COUNT("diagnoses") " + " CHILD_COUNT("treatments") " + " CHILD_COUNT("prescriptions")
    " + " CHILD_COUNT("addenda");

static int set_schema(PGconn *conn, const char *schema, char *why, size_t why_cap)
{
	const char *params[] = {schema};
	return vp_pg_exec_built(conn, "SELECT format('SET search_path = %I, public', $1::text)", 1,
				params, why, why_cap);
}

/* The count(s) of one statement for one tenant and cutoff; 0s when the
 * tenant's setting is "never" (cutoff ""). */
static int count(PGconn *conn, const char *sql, const char *tenant, const char *cutoff,
		 long long *a, long long *b, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[2] = {tenant, cutoff};
	*a = 0;
	if (b)
		*b = 0;
	if (!*cutoff)
		return 0;
	if (vp_pg_exec(conn, sql, 2, params, &res, why, why_cap) < 0)
		return -1;
	*a = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (b)
		*b = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}

static void cutoff_text(int64_t now_us, const char *days, char *out, size_t cap)
{
	int64_t cutoff;
	out[0] = '\0';
	if (vp_archive_cutoff(now_us, strtol(days, NULL, 10), &cutoff))
		vp_time_format_rfc3339_us(cutoff, out, cap);
}

/* One JSON line per tenant, a total on stderr. The cutoffs are the ones the
 * projector would take at this moment. */
static int dry_run(PGconn *conn, const ArOptions *o, char *why, size_t why_cap)
{
	PGresult *tenants = NULL;
	const char *params[1] = {o->tenant};
	long long total = 0;
	int64_t now_us = vp_time_now_us();
	if (vp_pg_exec(conn,
		       "SELECT id::text, archive_appointments_after_days, archive_records_after_days"
		       " FROM tenants WHERE ($1 = '' OR id::text = $1) ORDER BY id",
		       1, params, &tenants, why, why_cap) < 0)
		return -1;
	for (int i = 0; i < PQntuples(tenants); i++) {
		const char *t = PQgetvalue(tenants, i, 0);
		char appt_cut[40], rec_cut[40];
		long long appts, records, children;
		cutoff_text(now_us, PQgetvalue(tenants, i, 1), appt_cut, sizeof(appt_cut));
		cutoff_text(now_us, PQgetvalue(tenants, i, 2), rec_cut, sizeof(rec_cut));
		if (count(conn, count_appointments, t, appt_cut, &appts, NULL, why, why_cap) < 0 ||
		    count(conn, count_records, t, rec_cut, &records, &children, why, why_cap) < 0) {
			PQclear(tenants);
			return -1;
		}
		printf("{\"tenant_id\":\"%s\",\"appointments\":%lld,\"medical_records\":%lld,"
		       "\"record_children\":%lld,\"appointments_before\":%s%s%s,"
		       "\"records_before\":%s%s%s}\n",
		       t, appts, records, children, *appt_cut ? "\"" : "",
		       *appt_cut ? appt_cut : "null", *appt_cut ? "\"" : "", *rec_cut ? "\"" : "",
		       *rec_cut ? rec_cut : "null", *rec_cut ? "\"" : "");
		total += appts + records + children;
	}
	fflush(stdout);
	fprintf(stderr, "dry run: %lld row(s) of %d tenant(s) would be archived; nothing changed\n",
		total, PQntuples(tenants));
	PQclear(tenants);
	return 0;
}

/* Polls the run's row until it is finished or the timeout; progress on
 * stderr. 0 done, 1 failed or not finished, -1 error. */
static int await_run(PGconn *conn, const ArOptions *o, const char *id, char *why, size_t why_cap)
{
	const char *params[1] = {id};
	VcProgress progress;
	int64_t deadline = vp_time_mono_us() + (int64_t)o->timeout_s * VP_US_PER_SEC;
	vc_progress_start(&progress, "archive", 0);
	for (;;) {
		PGresult *res = NULL;
		if (vp_pg_exec(conn,
			       "SELECT started_at IS NOT NULL, finished_at IS NOT NULL, moved,"
			       " coalesce(left_estimate, -1), coalesce(error, '')"
			       " FROM archive_runs WHERE id = $1::bigint",
			       1, params, &res, why, why_cap) < 0)
			return -1;
		if (PQntuples(res) != 1) {
			PQclear(res);
			snprintf(why, why_cap, "archive run %s vanished (a whole rebuild swapped the "
				 "schema?)", id);
			return -1;
		}
		bool started = PQgetvalue(res, 0, 0)[0] == 't';
		bool finished = PQgetvalue(res, 0, 1)[0] == 't';
		long long moved = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		long long left = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		char error[512], position[96];
		snprintf(error, sizeof(error), "%s", PQgetvalue(res, 0, 4));
		PQclear(res);
		bool over = finished || vp_time_mono_us() >= deadline;
		long eta = vp_archive_eta_s(moved, left, vp_time_mono_us() - progress.started_us);
		char eta_text[32] = "";
		if (eta >= 0 && !finished)
			snprintf(eta_text, sizeof(eta_text), ", %ld s left", eta);
		snprintf(position, sizeof(position), "%s, %lld row(s) left%s",
			 finished ? "finished" : started ? "moving" : "queued", left < 0 ? 0 : left,
			 eta_text);
		vc_progress_report(&progress, moved, position, over);
		if (finished && *error) {
			fprintf(stderr, "vetctl: archive run %s failed: %s\n", id, error);
			return 1;
		}
		if (finished) {
			printf("{\"run\":%s,\"moved\":%lld}\n", id, moved);
			return 0;
		}
		if (over) {
			fprintf(stderr, "vetctl: archive run %s not finished in %ld s; it stays "
				"requested (is the projector running?)\n", id, o->timeout_s);
			return 1;
		}
		usleep(POLL_US);
	}
}

static int request_run(PGconn *conn, const ArOptions *o, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[2] = {o->tenant, o->by};
	if (vp_pg_exec(conn,
		       "INSERT INTO archive_runs (only_tenant, requested_by)"
		       " VALUES (nullif($1, '')::uuid, $2) RETURNING id::text",
		       2, params, &res, why, why_cap) < 0)
		return -1;
	char id[24];
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	fprintf(stderr, "archive run %s requested\n", id);
	return await_run(conn, o, id, why, why_cap);
}

static int tenant_known(PGconn *conn, const char *tenant, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[1] = {tenant};
	if (!*tenant)
		return 1;
	if (vp_pg_exec(conn, "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1::uuid)", 1,
		       params, &res, why, why_cap) < 0)
		return -1;
	int known = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return known;
}

static int run(const ArOptions *o, char *why, size_t why_cap)
{
	PGconn *conn = vp_pg_connect(o->dsn, "vetctl", why, why_cap);
	int rc = -1;
	if (!conn || set_schema(conn, o->schema, why, why_cap) < 0)
		goto done;
	int known = tenant_known(conn, o->tenant, why, why_cap);
	if (known <= 0) {
		if (known == 0)
			fprintf(stderr, "vetctl: no tenant %s in the read model\n", o->tenant);
		rc = known == 0 ? EXIT_UNKNOWN_TENANT : -1;
		goto done;
	}
	rc = o->dry_run ? dry_run(conn, o, why, why_cap) : request_run(conn, o, why, why_cap);
done:
	if (conn)
		PQfinish(conn);
	return rc;
}

static int check_options(ArOptions *o, char *why, size_t why_cap)
{
	if (*o->tenant) {
		VpUuid tenant;
		if (vp_uuid_parse(o->tenant, strlen(o->tenant), &tenant) < 0) {
			snprintf(why, why_cap, "--tenant must be a UUID");
			return -1;
		}
		vp_uuid_format(&tenant, o->tenant); /* canonical lower case, same length */
	}
	if (!*o->by) {
		const char *user = getenv("USER");
		free(o->by);
		o->by = strdup(user && *user ? user : "unknown");
	}
	return o->by ? 0 : -1;
}

int vc_cmd_archive(int argc, char **argv)
{
	ArOptions o = {0};
	char why[512] = "";
	const VpConfigItem items[] = {
		VP_CF_STR("dsn", "VETPMS_PROJECTOR_DSN", &o.dsn,
			  "host=127.0.0.1 port=55432 dbname=vetpms user=vetpms_projector",
			  "libpq connection string of the projector role (or a superuser)"),
		VP_CF_STR("schema", "VETPMS_READ_SCHEMA", &o.schema, "read", "read model schema"),
		VP_CF_STR("tenant", NULL, &o.tenant, "", "only this tenant (a UUID)"),
		VP_CF_STR("by", "VETPMS_OPERATOR", &o.by, "", "who asks (default $USER), recorded"),
		VP_CF_BOOL("dry-run", NULL, &o.dry_run, "false", "say what would move, change nothing"),
		VP_CF_INT("timeout-s", NULL, &o.timeout_s, "600", 1, 86400,
			  "longest wait for the projector to finish the pass"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		bool help = argc >= 2 && !strcmp(argv[1], "--help");
		fputs(usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	int rc = vp_config_load(items, n, argc - 1, argv + 1, "vetctl archive run", NULL, why,
				sizeof(why));
	if (rc == 0 && check_options(&o, why, sizeof(why)) < 0)
		rc = -1;
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "vetctl: %s\n%s", why, usage);
		vp_config_free(items, n);
		return rc < 0 ? 2 : 0;
	}
	rc = run(&o, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "vetctl: archive run: %s\n", why);
	vp_config_free(items, n);
	return rc < 0 ? 1 : rc;
}
