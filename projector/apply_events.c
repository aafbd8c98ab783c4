/* The apply entry point: an event is checked against the event catalog
 * (common/vp_catalog.h), goes to event_log (which also makes a replayed event
 * a no-op: its id is already there), then the row of its type in a read
 * model's table (apply_<read model>.c) applies it, run by apply_runner.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_runner.h"
#include "projector.h"
#include "vp_buf.h"
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
	/* A pipelined batch's events in one statement, a column per array (the
	 * same rules: a duplicate id is skipped, a taken position fails it). */
	{"event_log_insert_many",
	 "INSERT INTO event_log (tenant_id, event_id, partition, \"offset\", type, v, aggregate, "
	 "aggregate_id, seq, command_id, actor, at, envelope) SELECT * FROM unnest($1::uuid[], "
	 "$2::uuid[], $3::integer[], $4::bigint[], $5::text[], $6::integer[], $7::text[], "
	 "$8::uuid[], $9::integer[], $10::text[], $11::text[], $12::timestamptz[], $13::jsonb[]) "
	 "ON CONFLICT (tenant_id, event_id) DO NOTHING"},
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

/* Appends text as one element of a PostgreSQL array literal: quoted, with
 * its quotes and backslashes escaped. */
static void array_add(VpBuf *array, const char *text, size_t len)
{
	vp_buf_append(array, array->len > 1 ? ",\"" : "\"", array->len > 1 ? 2 : 1);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '"' && text[i] != '\\')
			continue;
		vp_buf_append(array, text + start, i - start);
		vp_buf_append(array, "\\", 1);
		start = i;
	}
	vp_buf_append(array, text + start, len - start);
	vp_buf_append(array, "\"", 1);
}

#define LOG_COLUMNS	13
#define LOG_ARRAY_LIMIT (256u << 20)

long pj_log_events(PGconn *conn, const PjLogEntry *entries, int n, char *why, size_t why_cap)
{
	VpBuf columns[LOG_COLUMNS];
	const char *params[LOG_COLUMNS];
	long rows = PJ_EXEC_FAILED;

	for (int c = 0; c < LOG_COLUMNS; c++) {
		vp_buf_init(&columns[c], LOG_ARRAY_LIMIT);
		vp_buf_append(&columns[c], "{", 1);
	}
	for (int i = 0; i < n; i++) {
		const PjLogEntry *e = &entries[i];
		char partition_text[16], offset_text[24], v_text[16];
		PjEnvText env;
		pj_env_text(e->ev, &env);
		snprintf(partition_text, sizeof(partition_text), "%d", (int)e->partition);
		snprintf(offset_text, sizeof(offset_text), "%lld", (long long)e->offset);
		snprintf(v_text, sizeof(v_text), "%d", e->ev->v);
		const char *values[LOG_COLUMNS - 1] = {
		    e->ev->tenant_id, e->ev->id,	   partition_text,	offset_text,
		    e->ev->type,      v_text,	   e->ev->aggregate,	e->ev->aggregate_id,
		    env.seq,	      e->ev->command_id, e->ev->actor,		env.at};
		for (int c = 0; c < LOG_COLUMNS - 1; c++)
			array_add(&columns[c], values[c], strlen(values[c]));
		/* The envelope as received; text stops at a NUL as a parameter would. */
		array_add(&columns[LOG_COLUMNS - 1], e->raw, strnlen(e->raw, e->raw_len));
	}
	for (int c = 0; c < LOG_COLUMNS; c++) {
		vp_buf_append(&columns[c], "}", 1);
		if (columns[c].oom) {
			snprintf(why, why_cap, "event_log arrays: out of memory");
			goto done;
		}
		params[c] = vp_buf_str(&columns[c]);
	}
	rows = pj_apply_exec(conn, "event_log_insert_many", LOG_COLUMNS, params, why, why_cap);
done:
	for (int c = 0; c < LOG_COLUMNS; c++)
		vp_buf_free(&columns[c]);
	return rows;
}

/* Test only (tests/e2e/test_deadletters.py): VETPMS_PROJECTOR_TEST_REJECT_TYPE
 * names an event type this process pretends it cannot apply, standing in for
 * a projector bug; the same projector started without it is "the fix". Read
 * once: every applier thread checks it. */
static const char *test_reject_type;
static pthread_once_t test_reject_once = PTHREAD_ONCE_INIT;

static void test_reject_load(void)
{
	const char *type = getenv("VETPMS_PROJECTOR_TEST_REJECT_TYPE");
	test_reject_type = type && *type ? type : NULL;
}

/* PJ_APPLIED, PJ_REJECTED, or PJ_FAILED when the event cannot be opened
 * for want of the right master key (not the event's fault, apply_keys.c). */
static PjApplyResult check_event(const VpEvent *ev, char *why, size_t why_cap)
{
	pthread_once(&test_reject_once, test_reject_load);
	if (test_reject_type && !strcmp(ev->type, test_reject_type)) {
		snprintf(why, why_cap, "%s: refused by VETPMS_PROJECTOR_TEST_REJECT_TYPE", ev->type);
		return PJ_REJECTED;
	}
	if (vp_catalog_check(ev, why, why_cap) < 0)
		return PJ_REJECTED;
	/* checked sealed, then opened for the rows (apply_keys.c) */
	return pj_keys_open(ev, why, why_cap);
}

PjApplyResult pj_apply_check(const VpEvent *ev, char *why, size_t why_cap)
{
	return check_event(ev, why, why_cap);
}

PjApplyResult pj_apply_model(PGconn *conn, const VpEvent *ev, char *why, size_t why_cap)
{
	const PjApplyRow *row = row_find(ev->type);
	return row ? pj_run_row(conn, row, ev, why, why_cap) : PJ_APPLIED;
}

PjApplyResult pj_apply_event(PGconn *conn, const VpEvent *ev, const char *raw, size_t raw_len,
			     int32_t partition, int64_t offset, char *why, size_t why_cap)
{
	PjApplyResult checked = check_event(ev, why, why_cap);
	if (checked != PJ_APPLIED)
		return checked;
	PjApplyResult result = log_event(conn, ev, raw, raw_len, partition, offset, why, why_cap);
	const PjApplyRow *row = row_find(ev->type);
	if (result != PJ_APPLIED || !row)
		return result;
	return pj_run_row(conn, row, ev, why, why_cap);
}
