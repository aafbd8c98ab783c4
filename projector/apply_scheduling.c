/* Read model of scheduling: vets' availability blocks and appointments. Each
 * event is one statement that returns a row only when its aggregate (and
 * the rows it denormalises from) exist, so "0 rows" is a violated invariant
 * (dead letter). The dashboard and daily statistics follow the appointments
 * table through its trigger (migration 003), in the same transaction. The
 * status machine is the writer's: the projector records the transitions it is
 * given and does not re-check them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_runner.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_time.h"

/* An availability event changes the staff aggregate: its version follows. */
#define STAFF_BUMP                                                                                 \
	"WITH s AS (UPDATE staff SET version = $3::integer, updated_at = $4::timestamptz "         \
	"WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING tenant_id, id) "

/* Appointment transitions: $1 tenant, $2 appointment, $3 version, $4 at. */
#define APPOINTMENT_SET(assignments)                                                               \
	"UPDATE appointments SET " assignments ", version = $3::integer, "                         \
	"updated_at = $4::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid"
#define TRANSITION_PARAMS PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT

#define NO_STAFF       "staff member not found in the read model"
#define NO_APPOINTMENT "appointment not found in the read model"

/* [start, end) of data (or of one block): both present, end after start. */
static int check_interval(const cJSON *obj, const char *where, char *why, size_t cap)
{
	const char *start = vp_json_str(obj, "start");
	const char *end = vp_json_str(obj, "end");
	int64_t start_us, end_us;
	if (!start || !end || vp_time_parse_rfc3339(start, strlen(start), &start_us) < 0 ||
	    vp_time_parse_rfc3339(end, strlen(end), &end_us) < 0 || end_us <= start_us) {
		snprintf(why, cap, "%s: end must be after start", where);
		return -1;
	}
	return 0;
}

static int check_data_interval(const VpEvent *ev, char *why, size_t cap)
{
	return check_interval(ev->data, "data", why, cap);
}

static int check_blocks(const VpEvent *ev, char *why, size_t cap)
{
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(ev->data, "blocks");
	const cJSON *block;
	char where[32];
	int i = 0;
	cJSON_ArrayForEach(block, blocks)
	{
		snprintf(where, sizeof(where), "data.blocks[%d]", i++);
		if (check_interval(block, where, why, cap) < 0)
			return -1;
	}
	return 0;
}

/* Code, not a parameter list: the blocks go to the statement as one JSON
 * array, printed here. */
static PjApplyResult publish_blocks(PGconn *conn, const PjApplyRow *row, const VpEvent *ev,
				    char *why, size_t cap)
{
	PjEnvText env;
	char *blocks_text = vp_json_print(cJSON_GetObjectItemCaseSensitive(ev->data, "blocks"));
	if (!blocks_text) {
		snprintf(why, cap, "out of memory");
		return PJ_FAILED;
	}
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id, ev->aggregate_id, env.seq, env.at, blocks_text};
	long rows = pj_apply_exec(conn, row->stmt, 5, params, why, cap);
	free(blocks_text);
	return pj_apply_rows(rows, why, cap, row->not_applied);
}

const PjApplyRow pj_scheduling_rows[] = {
	/* Identical blocks published twice are one block. */
	{.type = VP_EV_AVAILABILITY_PUBLISHED,
	 .stmt = "availability_published",
	 .sql = STAFF_BUMP
	 ", b AS (INSERT INTO availability_blocks (tenant_id, vet_id, start_at, end_at) "
	 "SELECT s.tenant_id, s.id, (b->>'start')::timestamptz, (b->>'end')::timestamptz "
	 "FROM s, jsonb_array_elements($5::jsonb) b ON CONFLICT DO NOTHING"
	 " RETURNING 1) SELECT 1 FROM s",
	 .not_applied = NO_STAFF,
	 .check = check_blocks,
	 .apply = publish_blocks},
	/* The blocks that overlap [$5, $6) are replaced by what is left of them
	 * (a block around the range splits in two). Blocks are at most 24 h, so
	 * only those starting after $5 - 24 h can overlap. */
	{.type = VP_EV_AVAILABILITY_WITHDRAWN,
	 .stmt = "availability_withdrawn",
	 .sql = STAFF_BUMP ", d AS (DELETE FROM availability_blocks b USING s "
			   "WHERE b.tenant_id = s.tenant_id AND b.vet_id = s.id "
			   "AND b.start_at > $5::timestamptz - interval '24 hours' "
			   "AND b.start_at < $6::timestamptz AND b.end_at > $5::timestamptz "
			   "RETURNING b.tenant_id, b.vet_id, b.start_at, b.end_at), "
			   "k AS (INSERT INTO availability_blocks (tenant_id, vet_id, start_at, "
			   "end_at) SELECT d.tenant_id, d.vet_id, lower(r), upper(r) FROM d, "
			   "unnest(tstzmultirange(tstzrange(d.start_at, d.end_at)) "
			   "- tstzmultirange(tstzrange($5::timestamptz, $6::timestamptz))) r "
			   "ON CONFLICT DO NOTHING RETURNING 1) SELECT 1 FROM s",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("start"), PJ_TEXT("end")},
	 .not_applied = NO_STAFF,
	 .check = check_data_interval},
	/* Names come from the patient (with its owner) and the vet as they are
	 * now; the local date from the tenant's timezone. */
	{.type = VP_EV_APPOINTMENT_SCHEDULED,
	 .stmt = "appointment_scheduled",
	 .sql = "INSERT INTO appointments (tenant_id, id, patient_id, patient_name, species, "
		"client_id, client_first_name, client_last_name, vet_id, vet_name, status, type, "
		"reason, start_at, end_at, local_date, version, created_at, updated_at) "
		"SELECT $1::uuid, $2::uuid, p.id, p.name, p.species, p.client_id, "
		"p.client_first_name, p.client_last_name, s.id, s.name, 'scheduled', $7, $8, "
		"$5::timestamptz, $6::timestamptz, "
		"($5::timestamptz AT TIME ZONE t.timezone)::date, $9::integer, $10::timestamptz, "
		"$10::timestamptz FROM patients p, staff s, tenants t "
		"WHERE p.tenant_id = $1::uuid AND p.id = $3::uuid AND s.tenant_id = $1::uuid "
		"AND s.id = $4::uuid AND t.id = $1::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("patient_id"), PJ_TEXT("vet_id"),
		    PJ_TEXT("start"), PJ_TEXT("end"), PJ_TEXT("type"), PJ_TEXT("reason"), PJ_SEQ,
		    PJ_AT},
	 .not_applied = "patient, vet or tenant not found in the read model",
	 .check = check_data_interval},
	{.type = VP_EV_APPOINTMENT_RESCHEDULED,
	 .stmt = "appointment_rescheduled",
	 .sql = "UPDATE appointments a SET start_at = $5::timestamptz, end_at = $6::timestamptz, "
		"local_date = ($5::timestamptz AT TIME ZONE t.timezone)::date, vet_id = s.id, "
		"vet_name = s.name, version = $3::integer, updated_at = $4::timestamptz "
		"FROM staff s, tenants t WHERE a.tenant_id = $1::uuid AND a.id = $2::uuid "
		"AND s.tenant_id = $1::uuid AND s.id = $7::uuid AND t.id = $1::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("start"), PJ_TEXT("end"),
		    PJ_TEXT("vet_id")},
	 .not_applied = "appointment or vet not found in the read model",
	 .check = check_data_interval},
	{.type = VP_EV_APPOINTMENT_CHECKED_IN,
	 .stmt = "appointment_checked_in",
	 .sql = APPOINTMENT_SET("status = 'checked_in', checked_in_at = $5::timestamptz"),
	 .params = {TRANSITION_PARAMS, PJ_TEXT("at")},
	 .not_applied = NO_APPOINTMENT},
	{.type = VP_EV_APPOINTMENT_STARTED,
	 .stmt = "appointment_started",
	 .sql = APPOINTMENT_SET("status = 'in_progress', actual_start = $5::timestamptz"),
	 .params = {TRANSITION_PARAMS, PJ_TEXT("at")},
	 .not_applied = NO_APPOINTMENT},
	{.type = VP_EV_APPOINTMENT_COMPLETED,
	 .stmt = "appointment_completed",
	 .sql = APPOINTMENT_SET("status = 'completed', actual_end = $5::timestamptz, notes = $6"),
	 .params = {TRANSITION_PARAMS, PJ_TEXT("at"), PJ_TEXT("notes")},
	 .not_applied = NO_APPOINTMENT},
	{.type = VP_EV_APPOINTMENT_CANCELED,
	 .stmt = "appointment_canceled",
	 .sql = APPOINTMENT_SET("status = 'canceled', cancel_reason = $5"),
	 .params = {TRANSITION_PARAMS, PJ_TEXT("reason")},
	 .not_applied = NO_APPOINTMENT},
	{.type = VP_EV_APPOINTMENT_NO_SHOW,
	 .stmt = "appointment_no_show",
	 .sql = APPOINTMENT_SET("status = 'no_show'"),
	 .params = {TRANSITION_PARAMS},
	 .not_applied = NO_APPOINTMENT},
	{.type = NULL},
};
