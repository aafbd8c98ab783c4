/* vetctl deadletters: the events the projector could not apply
 * (<schema>.dead_letters, schema/migrations/011_dead_letter_resolution.sql).
 *   list     one JSON object per line, open ones (dead or redrive) unless --status
 *   show     one dead letter with its envelope
 *   redrive  marks them 'redrive' and waits while the live projector applies
 *            them through its own handlers (projector/redrive.c): vetctl never
 *            writes the read model itself
 *   discard  gives them up with a reason; who, when and why stay in the row
 * Connects as the projector (or a superuser): no tenant role reads dead letters.
 * Exit codes: 0 done, 1 failed or refused, 2 usage. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "vetctl.h"
#include "vp_config.h"
#include "vp_pg.h"
#include "vp_time.h"
#include "vp_uuid.h"

typedef struct DlOptions {
	char *dsn;
	char *schema;
	char *tenant;
	char *type;
	char *at;
	char *status;
	char *reason;
	char *by;
	bool all;
	bool dry_run;
	long timeout_s;
} DlOptions;

static const char usage[] =
	"usage: vetctl deadletters list    [--tenant T] [--type TYPE] [--status S[,S]|all]\n"
	"       vetctl deadletters show    --at P:O\n"
	"       vetctl deadletters redrive (--at P:O[,P:O] | --tenant T | --type TYPE | --all)"
	" [--dry-run] [--timeout-s N]\n"
	"       vetctl deadletters discard --reason TEXT (--at ... | --tenant | --type | --all)"
	" [--dry-run]\n"
	"  statuses: dead, redrive (requested), redriven, discarded; list shows dead,redrive\n"
	"  --dsn (VETPMS_PROJECTOR_DSN): the projector's or a superuser's connection\n"
	"  --by (VETPMS_OPERATOR, else $USER): who redrives or discards, recorded in the row\n";

/* The row as one JSON object; the selection every subcommand shares: $1
 * tenant, $2 type, $3 "P:O,P:O" ('' = any). */
#define DL_JSON                                                                               \
	"jsonb_strip_nulls(jsonb_build_object('at', partition || ':' || \"offset\", "          \
	"'partition', partition, 'offset', \"offset\", 'tenant_id', tenant_id, 'type', type, " \
	"'aggregate_id', aggregate_id, 'status', status, 'error', error, 'recorded_at', "      \
	"recorded_at, 'last_error', last_error, 'requested_by', requested_by, 'requested_at', " \
	"requested_at, 'resolved_by', resolved_by, 'resolved_at', resolved_at, 'reason', "     \
	"reason))::text"
#define DL_SELECTION                                                                          \
	"($1 = '' OR tenant_id::text = $1) AND ($2 = '' OR type = $2) AND ($3 = '' OR "        \
	"partition || ':' || \"offset\" = ANY (string_to_array($3, ',')))"

static int set_schema(PGconn *conn, const char *schema, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	const char *params[] = {schema};
	if (vp_pg_exec(conn, "SELECT format('SET search_path = %I, public', $1::text)", 1, params,
		       &res, why, why_cap) < 0)
		return -1;
	int rc = vp_pg_exec(conn, PQgetvalue(res, 0, 0), 0, NULL, NULL, why, why_cap);
	PQclear(res);
	return rc;
}

/* Prints the first column of every row, one per line; the row count or -1. */
static int print_rows(PGconn *conn, const char *sql, int n, const char *const *params,
		      char *why, size_t why_cap)
{
	PGresult *res = NULL;
	if (vp_pg_exec(conn, sql, n, params, &res, why, why_cap) < 0)
		return -1;
	int rows = PQntuples(res);
	for (int r = 0; r < rows; r++)
		printf("%s\n", PQgetvalue(res, r, 0));
	PQclear(res);
	fflush(stdout);
	return rows;
}

/* --at is P:O[,P:O...] with digits only (the SQL compares it as text). */
static bool positions_ok(const char *at)
{
	bool colon = false, digit = false;
	for (const char *c = at; *c; c++) {
		if (*c >= '0' && *c <= '9')
			digit = true;
		else if (*c == ':' && digit && !colon)
			colon = true, digit = false;
		else if (*c == ',' && colon && digit)
			colon = false, digit = false;
		else
			return false;
	}
	return !*at || (colon && digit);
}

static int cmd_list(PGconn *conn, const DlOptions *o, char *why, size_t why_cap)
{
	const char *params[] = {o->tenant, o->type, o->at, *o->status ? o->status : "dead,redrive"};
	int rows = print_rows(conn, "SELECT " DL_JSON " FROM dead_letters WHERE " DL_SELECTION
				    " AND ($4 = 'all' OR status = ANY (string_to_array($4, ','))) "
				    "ORDER BY partition, \"offset\"",
			      4, params, why, why_cap);
	if (rows >= 0)
		fprintf(stderr, "%d dead letter(s)\n", rows);
	return rows < 0 ? -1 : 0;
}

/* The envelope as JSON when the payload is JSON, else its bytes in base64;
 * null when its client's erasure removed it. */
static int add_payload(PGconn *conn, const DlOptions *o, cJSON *row, char *why, size_t why_cap)
{
	const char *params[] = {"", "", o->at};
	PGresult *res = PQexecParams(conn, "SELECT payload FROM dead_letters WHERE " DL_SELECTION,
				     3, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, why_cap, "%s", PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	const char *bytes = PQgetvalue(res, 0, 0);
	size_t len = (size_t)PQgetlength(res, 0, 0);
	bool removed = PQgetisnull(res, 0, 0);
	cJSON *envelope = removed ? NULL : cJSON_ParseWithLength(bytes, len);
	if (removed) {
		/* removed by its client's erasure (the row's reason says so) */
		cJSON_AddNullToObject(row, "envelope");
	} else if (envelope) {
		cJSON_AddItemToObject(row, "envelope", envelope);
	} else {
		size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = malloc(cap);
		if (b64) {
			sodium_bin2base64(b64, cap, (const unsigned char *)bytes, len,
					  sodium_base64_VARIANT_ORIGINAL);
			cJSON_AddStringToObject(row, "payload_base64", b64);
		}
		free(b64);
	}
	PQclear(res);
	return 0;
}

static int cmd_show(PGconn *conn, const DlOptions *o, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	if (!*o->at || strchr(o->at, ',')) {
		snprintf(why, why_cap, "show takes one --at P:O");
		return -1;
	}
	const char *params[] = {"", "", o->at};
	if (vp_pg_exec(conn, "SELECT " DL_JSON " FROM dead_letters WHERE " DL_SELECTION, 3, params,
		       &res, why, why_cap) < 0)
		return -1;
	if (PQntuples(res) != 1) {
		snprintf(why, why_cap, "no dead letter at %s", o->at);
		PQclear(res);
		return -1;
	}
	cJSON *row = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	int rc = row ? add_payload(conn, o, row, why, why_cap) : -1;
	char *text = rc == 0 ? cJSON_Print(row) : NULL;
	if (text)
		printf("%s\n", text);
	else if (rc == 0)
		snprintf(why, why_cap, "out of memory"), rc = -1;
	free(text);
	cJSON_Delete(row);
	return rc;
}

static bool has_selection(const DlOptions *o, char *why, size_t why_cap)
{
	if (*o->tenant || *o->type || *o->at || o->all)
		return true;
	snprintf(why, why_cap, "choose the dead letters: --at, --tenant, --type, or --all");
	return false;
}

static int dry_run(PGconn *conn, const DlOptions *o, const char *action, char *why,
		   size_t why_cap)
{
	const char *params[] = {o->tenant, o->type, o->at};
	int rows = print_rows(conn, "SELECT " DL_JSON " FROM dead_letters WHERE " DL_SELECTION
				    " AND status = 'dead' ORDER BY partition, \"offset\"",
			      3, params, why, why_cap);
	if (rows >= 0)
		fprintf(stderr, "dry run: %d dead letter(s) would be %s\n", rows, action);
	return rows < 0 ? -1 : 0;
}

/* Waits until the projector has taken every request of `requested` ("P:O,..."),
 * reporting progress; then prints them. 0 all redriven, 1 some refused or not
 * taken in time, -1 error. */
static int await_redrive(PGconn *conn, const DlOptions *o, const char *requested, int n,
			 char *why, size_t why_cap)
{
	const char *params[] = {"", "", requested};
	int64_t deadline = vp_time_mono_us() + o->timeout_s * VP_US_PER_SEC;
	VcProgress progress;
	vc_progress_start(&progress, "redrive", n);
	long long waiting = n, redriven = 0;
	char position[48] = "";
	for (;;) {
		PGresult *res = NULL;
		if (vp_pg_exec(conn, "SELECT count(*) FILTER (WHERE status = 'redrive'), count(*) "
				     "FILTER (WHERE status = 'redriven'), coalesce(max(partition || "
				     "':' || \"offset\") FILTER (WHERE status <> 'redrive'), '') "
				     "FROM dead_letters WHERE " DL_SELECTION,
			       3, params, &res, why, why_cap) < 0)
			return -1;
		waiting = atoll(PQgetvalue(res, 0, 0));
		redriven = atoll(PQgetvalue(res, 0, 1));
		snprintf(position, sizeof(position), "%s", PQgetvalue(res, 0, 2));
		PQclear(res);
		bool over = waiting == 0 || vp_time_mono_us() >= deadline;
		vc_progress_report(&progress, n - waiting, position, over);
		if (over)
			break;
		usleep(200 * 1000); /* polling the row states: the projector takes them within 1 s */
	}
	if (print_rows(conn, "SELECT " DL_JSON " FROM dead_letters WHERE " DL_SELECTION
			     " ORDER BY partition, \"offset\"", 3, params, why, why_cap) < 0)
		return -1;
	if (waiting > 0)
		fprintf(stderr, "vetctl: %lld redrive(s) not taken by a live projector in %ld s; they "
				"stay requested (is the projector running?)\n", waiting, o->timeout_s);
	if (n - waiting - redriven > 0)
		fprintf(stderr, "vetctl: %lld redrive(s) refused: see last_error\n",
			n - waiting - redriven);
	fprintf(stderr, "%lld of %d dead letter(s) redriven\n", redriven, n);
	return redriven == n ? 0 : 1;
}

static int cmd_redrive(PGconn *conn, const DlOptions *o, char *why, size_t why_cap)
{
	PGresult *res = NULL;
	if (!has_selection(o, why, why_cap))
		return -1;
	if (o->dry_run)
		return dry_run(conn, o, "redriven", why, why_cap);
	const char *params[] = {o->tenant, o->type, o->at, o->by};
	if (vp_pg_exec(conn, "WITH r AS (UPDATE dead_letters SET status = 'redrive', requested_by "
			     "= $4 || ' (' || session_user || ')', requested_at = now(), last_error "
			     "= NULL WHERE " DL_SELECTION " AND status = 'dead' RETURNING partition, "
			     "\"offset\") SELECT count(*), coalesce(string_agg(partition || ':' || "
			     "\"offset\", ','), '') FROM r",
		       4, params, &res, why, why_cap) < 0)
		return -1;
	int n = atoi(PQgetvalue(res, 0, 0));
	char *requested = strdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!requested) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	int rc = 0;
	if (n == 0)
		fprintf(stderr, "no dead letter to redrive\n");
	else
		rc = await_redrive(conn, o, requested, n, why, why_cap);
	free(requested);
	return rc;
}

static int cmd_discard(PGconn *conn, const DlOptions *o, char *why, size_t why_cap)
{
	if (!*o->reason) {
		snprintf(why, why_cap, "discard needs --reason: a discard is recorded, never silent");
		return -1;
	}
	if (!has_selection(o, why, why_cap))
		return -1;
	if (o->dry_run)
		return dry_run(conn, o, "discarded", why, why_cap);
	const char *params[] = {o->tenant, o->type, o->at, o->by, o->reason};
	int rows = print_rows(conn, "UPDATE dead_letters SET status = 'discarded', resolved_by = $4 "
				    "|| ' (' || session_user || ')', resolved_at = now(), reason = $5 "
				    "WHERE " DL_SELECTION " AND status = 'dead' RETURNING " DL_JSON,
			      5, params, why, why_cap);
	if (rows >= 0)
		fprintf(stderr, "%d dead letter(s) discarded\n", rows);
	return rows < 0 ? -1 : 0;
}

/* Checks the options and canonicalises --tenant; 0, or -1 with why. */
static int check_options(DlOptions *o, char *why, size_t why_cap)
{
	if (*o->tenant) {
		VpUuid tenant;
		if (vp_uuid_parse(o->tenant, strlen(o->tenant), &tenant) < 0) {
			snprintf(why, why_cap, "--tenant must be a UUID");
			return -1;
		}
		vp_uuid_format(&tenant, o->tenant); /* canonical lower case, same length */
	}
	if (!positions_ok(o->at)) {
		snprintf(why, why_cap, "--at must be P:O[,P:O...] (partition:offset)");
		return -1;
	}
	if (!*o->by) {
		const char *user = getenv("USER");
		free(o->by);
		o->by = strdup(user && *user ? user : "unknown");
	}
	return o->by ? 0 : -1;
}

static int run(const char *action, DlOptions *o, char *why, size_t why_cap)
{
	PGconn *conn = vp_pg_connect(o->dsn, "vetctl", why, why_cap);
	int rc = -1;
	if (!conn || set_schema(conn, o->schema, why, why_cap) < 0)
		goto done;
	if (!strcmp(action, "list"))
		rc = cmd_list(conn, o, why, why_cap);
	else if (!strcmp(action, "show"))
		rc = cmd_show(conn, o, why, why_cap);
	else if (!strcmp(action, "redrive"))
		rc = cmd_redrive(conn, o, why, why_cap);
	else
		rc = cmd_discard(conn, o, why, why_cap);
done:
	if (conn)
		PQfinish(conn);
	return rc;
}

int vc_cmd_deadletters(int argc, char **argv)
{
	DlOptions o = {0};
	char why[512] = "";
	const VpConfigItem items[] = {
		VP_CF_STR("dsn", "VETPMS_PROJECTOR_DSN", &o.dsn,
			  "host=127.0.0.1 port=55432 dbname=vetpms user=vetpms_projector",
			  "libpq connection string of the projector role (or a superuser)"),
		VP_CF_STR("schema", "VETPMS_READ_SCHEMA", &o.schema, "read", "read model schema"),
		VP_CF_STR("tenant", NULL, &o.tenant, "", "only this tenant's dead letters"),
		VP_CF_STR("type", NULL, &o.type, "", "only this event type's"),
		VP_CF_STR("at", NULL, &o.at, "", "only these positions P:O[,P:O...]"),
		VP_CF_STR("status", NULL, &o.status, "", "list: dead,redrive (default), or all"),
		VP_CF_STR("reason", NULL, &o.reason, "", "discard: why (recorded)"),
		VP_CF_STR("by", "VETPMS_OPERATOR", &o.by, "", "who acts (default $USER), recorded"),
		VP_CF_BOOL("all", NULL, &o.all, "false", "redrive/discard: every dead one"),
		VP_CF_BOOL("dry-run", NULL, &o.dry_run, "false", "say what would change, change nothing"),
		VP_CF_INT("timeout-s", NULL, &o.timeout_s, "60", 1, 86400,
			  "redrive: longest wait for the projector"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);
	static const char *const actions[] = {"list", "show", "redrive", "discard"};
	bool known = false;
	for (size_t i = 0; argc >= 2 && i < sizeof(actions) / sizeof(actions[0]); i++)
		known = known || !strcmp(argv[1], actions[i]);
	if (!known) {
		bool help = argc >= 2 && !strcmp(argv[1], "--help");
		fputs(usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	int rc = vp_config_load(items, n, argc - 1, argv + 1, "vetctl deadletters", NULL, why,
				sizeof(why));
	if (rc == 0 && check_options(&o, why, sizeof(why)) < 0)
		rc = -1;
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "vetctl: %s\n%s", why, usage);
		vp_config_free(items, n);
		return rc < 0 ? 2 : 0;
	}
	rc = run(argv[1], &o, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "vetctl: deadletters %s: %s\n", argv[1], why);
	vp_config_free(items, n);
	return rc < 0 ? 1 : rc;
}
