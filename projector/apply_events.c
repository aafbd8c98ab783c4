/* The apply entry point: an event is checked against the event catalog
 * (common/vp_catalog.h), goes to event_log (which also makes a replayed event
 * a no-op: its id is already there), then the read model module of its type
 * applies it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_time.h"

/* The read model's handler of each event type; a catalogued type without
 * one only goes to event_log. What an event must hold is the catalog's
 * (common/vp_catalog.c), checked before any handler runs. */
typedef struct Handler {
	const char *type;
	PjApplyFn apply;
} Handler;

static const Handler handlers[] = {
	{VP_EV_TENANT_PROVISIONED, pj_apply_tenant_provisioned},
	{VP_EV_STAFF_REGISTERED, pj_apply_staff_registered},
	{VP_EV_STAFF_DEACTIVATED, pj_apply_staff_deactivated},
	{VP_EV_AVAILABILITY_PUBLISHED, pj_apply_availability_published},
	{VP_EV_AVAILABILITY_WITHDRAWN, pj_apply_availability_withdrawn},
	{VP_EV_CLIENT_REGISTERED, pj_apply_client_registered},
	{VP_EV_CLIENT_CONTACT_UPDATED, pj_apply_client_contact_updated},
	{VP_EV_CLIENT_DEACTIVATED, pj_apply_client_deactivated},
	{VP_EV_PATIENT_REGISTERED, pj_apply_patient_registered},
	{VP_EV_WEIGHT_RECORDED, pj_apply_weight_recorded},
	{VP_EV_ALLERGY_ADDED, pj_apply_allergy_added},
	{VP_EV_CHRONIC_CONDITION_ADDED, pj_apply_condition_added},
	{VP_EV_PATIENT_TRANSFERRED, pj_apply_patient_transferred},
	{VP_EV_PATIENT_DIED, pj_apply_patient_died},
	{VP_EV_APPOINTMENT_SCHEDULED, pj_apply_appointment_scheduled},
	{VP_EV_APPOINTMENT_RESCHEDULED, pj_apply_appointment_rescheduled},
	{VP_EV_APPOINTMENT_CHECKED_IN, pj_apply_appointment_checked_in},
	{VP_EV_APPOINTMENT_STARTED, pj_apply_appointment_started},
	{VP_EV_APPOINTMENT_COMPLETED, pj_apply_appointment_completed},
	{VP_EV_APPOINTMENT_CANCELED, pj_apply_appointment_canceled},
	{VP_EV_APPOINTMENT_NO_SHOW, pj_apply_appointment_no_show},
};

#define COUNT(table) (sizeof(table) / sizeof(table[0]))

static const PjStatement event_statements[] = {
	{"event_log_insert",
	 "INSERT INTO event_log (tenant_id, event_id, partition, \"offset\", type, v, aggregate, "
	 "aggregate_id, seq, command_id, actor, at, envelope) VALUES ($1::uuid, $2::uuid, "
	 "$3::integer, $4::bigint, $5, $6::integer, $7, $8::uuid, $9::integer, $10, $11, "
	 "$12::timestamptz, $13::jsonb) ON CONFLICT DO NOTHING"},
	{NULL, NULL},
};

int pj_apply_prepare(PGconn *conn, char *why, size_t why_cap)
{
	if (pj_prepare_statements(conn, event_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_directory_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_patient_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_scheduling_statements, why, why_cap) < 0)
		return -1;
	return 0;
}

void pj_env_text(const VpEvent *ev, PjEnvText *out)
{
	snprintf(out->seq, sizeof(out->seq), "%lld", (long long)ev->seq);
	if (vp_time_format_rfc3339_us(ev->at_us, out->at, sizeof(out->at)) == 0)
		snprintf(out->at, sizeof(out->at), "%s", "infinity"); /* not reachable: decoded */
}

const char *pj_data_int(const cJSON *data, const char *name, char *buf, size_t cap)
{
	long long value;
	if (!vp_json_int(data, name, &value))
		return NULL;
	snprintf(buf, cap, "%lld", value);
	return buf;
}

const char *pj_data_bool(const cJSON *data, const char *name)
{
	bool value;
	if (!vp_json_bool(data, name, &value))
		return NULL;
	return value ? "true" : "false";
}

static PjApplyFn handler_find(const char *type)
{
	for (size_t i = 0; i < COUNT(handlers); i++)
		if (!strcmp(handlers[i].type, type))
			return handlers[i].apply;
	return NULL;
}

static PjApplyResult from_rows(long rows, char *why, size_t why_cap, const char *what)
{
	if (rows == PJ_EXEC_FAILED)
		return PJ_FAILED;
	if (rows == PJ_EXEC_REJECTED)
		return PJ_REJECTED;
	if (rows == 0) {
		snprintf(why, why_cap, "%s", what);
		return PJ_REJECTED;
	}
	return PJ_APPLIED;
}

PjApplyResult pj_apply_event(PGconn *conn, const VpEvent *ev, const char *raw, size_t raw_len,
			     int32_t partition, int64_t offset, char *why, size_t why_cap)
{
	if (vp_catalog_check(ev, why, why_cap) < 0)
		return PJ_REJECTED;
	PjApplyFn apply = handler_find(ev->type);

	char *envelope = malloc(raw_len + 1);
	if (!envelope) {
		snprintf(why, why_cap, "out of memory");
		return PJ_FAILED;
	}
	memcpy(envelope, raw, raw_len);
	envelope[raw_len] = '\0';
	char partition_text[16], offset_text[24], v_text[16];
	PjEnvText env;
	pj_env_text(ev, &env);
	snprintf(partition_text, sizeof(partition_text), "%d", (int)partition);
	snprintf(offset_text, sizeof(offset_text), "%lld", (long long)offset);
	snprintf(v_text, sizeof(v_text), "%d", ev->v);
	const char *params[] = {ev->tenant_id, ev->id,        partition_text, offset_text,
				ev->type,      v_text,        ev->aggregate,  ev->aggregate_id,
				env.seq,       ev->command_id, ev->actor,     env.at,
				envelope};
	long rows = pj_apply_exec(conn, "event_log_insert", 13, params, why, why_cap);
	free(envelope);
	if (rows == 0)
		return PJ_DUPLICATE;
	PjApplyResult result = from_rows(rows, why, why_cap, "");
	if (result != PJ_APPLIED || !apply)
		return result;
	return apply(conn, ev, why, why_cap);
}

bool pj_event_feeds_views(const VpEvent *ev)
{
	return !strcmp(ev->aggregate, VP_AGG_APPOINTMENT);
}

PjApplyResult pj_apply_rows(long rows, char *why, size_t why_cap, const char *what)
{
	return from_rows(rows, why, why_cap, what);
}
