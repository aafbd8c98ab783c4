/* The apply entry point: an event is checked against the event catalog
 * (common/vp_catalog.h), goes to event_log (which also makes a replayed event
 * a no-op: its id is already there), then the row of its type in a read
 * model's table (apply_<read model>.c) applies it, run by apply_runner.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_runner.h"
#include "projector.h"
#include "vp_catalog.h"

/* Every read model's rows. A catalogued type without a row only goes to
 * event_log; what an event must hold is the catalog's, checked before any
 * row runs. */
static const PjApplyRow *const read_models[] = {
	pj_directory_rows,
	pj_patient_rows,
	pj_scheduling_rows,
	pj_record_rows,
	pj_stock_rows,
	pj_billing_rows,
};

#define COUNT(table) (sizeof(table) / sizeof(table[0]))

static const PjStatement event_statements[] = {
	/* Only the event's id makes a duplicate (a replay). Another event already
	 * at this (partition, offset) (a recreated topic, another topic projected
	 * into this schema, rows written by hand) violates the unique position: a
	 * dead letter, never an event skipped in silence. */
	{"event_log_insert",
	 "INSERT INTO event_log (tenant_id, event_id, partition, \"offset\", type, v, aggregate, "
	 "aggregate_id, seq, command_id, actor, at, envelope) VALUES ($1::uuid, $2::uuid, "
	 "$3::integer, $4::bigint, $5, $6::integer, $7, $8::uuid, $9::integer, $10, $11, "
	 "$12::timestamptz, $13::jsonb) ON CONFLICT (tenant_id, event_id) DO NOTHING"},
	{NULL, NULL},
};

int pj_apply_prepare(PGconn *conn, char *why, size_t why_cap)
{
	if (pj_prepare_statements(conn, event_statements, why, why_cap) < 0)
		return -1;
	for (size_t i = 0; i < COUNT(read_models); i++)
		if (pj_prepare_rows(conn, read_models[i], why, why_cap) < 0)
			return -1;
	return 0;
}

static const PjApplyRow *row_find(const char *type)
{
	for (size_t i = 0; i < COUNT(read_models); i++)
		for (const PjApplyRow *row = read_models[i]; row->type; row++)
			if (!strcmp(row->type, type))
				return row;
	return NULL;
}

/* The event_log row: the envelope as received, at its Kafka position. 0 rows
 * (PJ_DUPLICATE) when the event id or the position is already there. */
static PjApplyResult log_event(PGconn *conn, const VpEvent *ev, const char *raw, size_t raw_len,
			       int32_t partition, int64_t offset, char *why, size_t why_cap)
{
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
	return pj_apply_rows(rows, why, why_cap, "");
}

PjApplyResult pj_apply_event(PGconn *conn, const VpEvent *ev, const char *raw, size_t raw_len,
			     int32_t partition, int64_t offset, char *why, size_t why_cap)
{
	if (vp_catalog_check(ev, why, why_cap) < 0)
		return PJ_REJECTED;
	PjApplyResult result = log_event(conn, ev, raw, raw_len, partition, offset, why, why_cap);
	const PjApplyRow *row = row_find(ev->type);
	if (result != PJ_APPLIED || !row)
		return result;
	return pj_run_row(conn, row, ev, why, why_cap);
}
