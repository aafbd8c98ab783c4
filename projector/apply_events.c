/* The event catalog of EVENTS.md and the apply entry point: every event goes to
 * event_log (which also makes a replayed event a no-op: its id is already
 * there), its data is checked against the JSON Schema of schema/events/, then
 * the read model module of its type applies it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"
#include "vp_json.h"
#include "vp_time.h"

static const char *const species_values[] = {"canine", "feline", "equine", "bovine", "ovine",
					      "caprine", "porcine", "avian", "rabbit", "rodent",
					      "reptile", "other", NULL};
static const char *const sex_values[] = {"male", "female", "unknown", NULL};
static const char *const role_values[] = {"veterinarian", "nurse", "receptionist", "admin",
					  NULL};
static const char *const severity_values[] = {"mild", "moderate", "severe", NULL};

#define STR(n, req, max)	 {.name = n, .type = VP_JSON_STRING, .required = req, .max_len = max}
#define STR1(n, max)		 {.name = n, .type = VP_JSON_STRING, .required = true, .max_len = max, .min_len = 1}
#define ENUM(n, req, values)	 {.name = n, .type = VP_JSON_STRING, .required = req, .enum_values = values}
#define TYPED(n, t, req)	 {.name = n, .type = t, .required = req}
#define COUNT(table)		 (sizeof(table) / sizeof(table[0]))

/* Nullable members are optional here ("null counts as absent"); the schemas
 * list them as required keys, which the writer always sends. */
static const VpJsonField tenant_provisioned[] = {
	STR1("name", 200), STR1("timezone", 64), STR1("currency", 3),
};
static const VpJsonField staff_registered[] = {
	STR1("name", 200), ENUM("role", true, role_values), STR("email", false, 254),
	STR("license_number", false, 64),
};
static const VpJsonField reason_only[] = {STR("reason", false, 500)};
static const VpJsonField client_registered[] = {
	STR1("first_name", 100), STR1("last_name", 100), STR("email", false, 254),
	STR("phone", false, 40), STR("address", false, 500),
};
static const VpJsonField client_contact_updated[] = {
	STR("email", false, 254), STR("phone", false, 40), STR("address", false, 500),
};
static const VpJsonField patient_registered[] = {
	TYPED("client_id", VP_JSON_UUID, true),
	STR1("name", 100),
	ENUM("species", true, species_values),
	STR("breed", false, 100),
	ENUM("sex", true, sex_values),
	TYPED("neutered", VP_JSON_BOOL, false),
	TYPED("date_of_birth", VP_JSON_DATE, false),
	STR("microchip", false, 15),
	STR("color", false, 100),
	{.name = "weight_g", .type = VP_JSON_INT, .min = 1, .max = 2147483647},
};
static const VpJsonField weight_recorded[] = {
	{.name = "weight_g", .type = VP_JSON_INT, .required = true, .min = 1, .max = 2147483647},
	TYPED("measured_at", VP_JSON_TIME, true),
};
static const VpJsonField allergy_added[] = {
	STR1("allergen", 200), STR("reaction", false, 500),
	ENUM("severity", false, severity_values),
};
static const VpJsonField condition_added[] = {
	STR1("name", 200), TYPED("diagnosed_on", VP_JSON_DATE, false), STR("notes", false, 2000),
};
static const VpJsonField patient_transferred[] = {
	TYPED("from_client_id", VP_JSON_UUID, true), TYPED("to_client_id", VP_JSON_UUID, true),
};
static const VpJsonField patient_died[] = {TYPED("date", VP_JSON_DATE, true)};
static const VpJsonField interval[] = {
	TYPED("start", VP_JSON_TIME, true), TYPED("end", VP_JSON_TIME, true),
};
static const VpJsonField availability_published[] = {
	{.name = "blocks", .type = VP_JSON_ARRAY, .required = true, .min_len = 1, .max_len = 1000,
	 .fields = interval, .n_fields = COUNT(interval)},
};
static const VpJsonField appointment_scheduled[] = {
	TYPED("patient_id", VP_JSON_UUID, true), TYPED("vet_id", VP_JSON_UUID, true),
	TYPED("start", VP_JSON_TIME, true),	 TYPED("end", VP_JSON_TIME, true),
	STR1("type", 64),			 STR("reason", false, 2000),
};
static const VpJsonField appointment_rescheduled[] = {
	TYPED("start", VP_JSON_TIME, true), TYPED("end", VP_JSON_TIME, true),
	TYPED("vet_id", VP_JSON_UUID, true),
};
static const VpJsonField at_only[] = {TYPED("at", VP_JSON_TIME, true)};
static const VpJsonField appointment_completed[] = {
	TYPED("at", VP_JSON_TIME, true), STR("notes", false, 10000),
};

typedef struct CatalogEntry {
	const char *type;
	const char *aggregate;
	const VpJsonField *fields; /* NULL: no read model yet, only event_log */
	size_t n_fields;
	PjApplyFn apply;
} CatalogEntry;

#define APPLIED(t, agg, table, fn) {t, agg, table, COUNT(table), fn}
#define LOGGED(t, agg)		    {t, agg, NULL, 0, NULL}
#define APPLIED_NO_DATA(t, agg, fn) {t, agg, NULL, 0, fn}

static const CatalogEntry catalog[] = {
	APPLIED("TenantProvisioned", "tenant", tenant_provisioned, pj_apply_tenant_provisioned),
	APPLIED("StaffRegistered", "staff", staff_registered, pj_apply_staff_registered),
	APPLIED("StaffDeactivated", "staff", reason_only, pj_apply_staff_deactivated),
	APPLIED("AvailabilityPublished", "staff", availability_published,
		pj_apply_availability_published),
	APPLIED("AvailabilityWithdrawn", "staff", interval, pj_apply_availability_withdrawn),
	APPLIED("ClientRegistered", "client", client_registered, pj_apply_client_registered),
	APPLIED("ClientContactUpdated", "client", client_contact_updated,
		pj_apply_client_contact_updated),
	APPLIED("ClientDeactivated", "client", reason_only, pj_apply_client_deactivated),
	APPLIED("PatientRegistered", "patient", patient_registered, pj_apply_patient_registered),
	APPLIED("WeightRecorded", "patient", weight_recorded, pj_apply_weight_recorded),
	APPLIED("AllergyAdded", "patient", allergy_added, pj_apply_allergy_added),
	APPLIED("ChronicConditionAdded", "patient", condition_added, pj_apply_condition_added),
	APPLIED("PatientTransferred", "patient", patient_transferred,
		pj_apply_patient_transferred),
	APPLIED("PatientDied", "patient", patient_died, pj_apply_patient_died),
	APPLIED("AppointmentScheduled", "appointment", appointment_scheduled,
		pj_apply_appointment_scheduled),
	APPLIED("AppointmentRescheduled", "appointment", appointment_rescheduled,
		pj_apply_appointment_rescheduled),
	APPLIED("AppointmentCheckedIn", "appointment", at_only, pj_apply_appointment_checked_in),
	APPLIED("AppointmentStarted", "appointment", at_only, pj_apply_appointment_started),
	APPLIED("AppointmentCompleted", "appointment", appointment_completed,
		pj_apply_appointment_completed),
	APPLIED("AppointmentCanceled", "appointment", reason_only, pj_apply_appointment_canceled),
	APPLIED_NO_DATA("AppointmentNoShow", "appointment", pj_apply_appointment_no_show),
	LOGGED("MedicalRecordOpened", "medical_record"),
	LOGGED("VitalsRecorded", "medical_record"),
	LOGGED("SoapNoteWritten", "medical_record"),
	LOGGED("DiagnosisAdded", "medical_record"),
	LOGGED("TreatmentAdded", "medical_record"),
	LOGGED("MedicationPrescribed", "medical_record"),
	LOGGED("MedicalRecordSigned", "medical_record"),
	LOGGED("AddendumAdded", "medical_record"),
	LOGGED("InventoryItemCreated", "inventory_item"),
	LOGGED("StockReceived", "inventory_item"),
	LOGGED("StockDispensed", "inventory_item"),
	LOGGED("StockAdjusted", "inventory_item"),
	LOGGED("InvoiceCreated", "invoice"),
	LOGGED("InvoiceLineAdded", "invoice"),
	LOGGED("InvoiceIssued", "invoice"),
	LOGGED("PaymentRecorded", "invoice"),
	LOGGED("InvoiceVoided", "invoice"),
};

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

int pj_prepare_statements(PGconn *conn, const PjStatement *table, char *why, size_t why_cap)
{
	for (const PjStatement *s = table; s->name; s++) {
		PGresult *res = PQprepare(conn, s->name, s->sql, 0, NULL);
		int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(why, why_cap, "prepare %s: %s", s->name,
				 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		if (!ok)
			return -1;
	}
	return 0;
}

int pj_apply_prepare(PGconn *conn, char *why, size_t why_cap)
{
	if (pj_prepare_statements(conn, event_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_directory_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_patient_statements, why, why_cap) < 0 ||
	    pj_prepare_statements(conn, pj_scheduling_statements, why, why_cap) < 0)
		return -1;
	return 0;
}

long pj_apply_exec(PGconn *conn, const char *stmt, int n_params, const char *const *params,
		   char *why, size_t why_cap)
{
	if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
		/* Pipelined batch: queue it; the caller checks the result later. */
		if (PQsendQueryPrepared(conn, stmt, n_params, params, NULL, NULL, 0) == 1)
			return 1;
		snprintf(why, why_cap, "%s: %s", stmt, PQerrorMessage(conn));
		why[strcspn(why, "\n")] = '\0';
		return PJ_EXEC_FAILED;
	}
	PGresult *res = PQexecPrepared(conn, stmt, n_params, params, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);
	long rows = PJ_EXEC_FAILED;

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		const char *affected = PQcmdTuples(res);
		rows = *affected ? strtol(affected, NULL, 10) : PQntuples(res);
		goto done;
	}
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(why, why_cap, "%s: %s", stmt,
		 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	why[strcspn(why, "\n")] = '\0';
	/* Class 22 (data exception) and 23 (integrity constraint violation) come
	 * from the event's values: retrying cannot help, so it is a dead letter.
	 * Anything else (connection, resources) fails the batch, which is retried. */
	if (state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2)))
		rows = PJ_EXEC_REJECTED;
done:
	PQclear(res);
	return rows;
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

static const CatalogEntry *catalog_find(const char *type)
{
	for (size_t i = 0; i < COUNT(catalog); i++)
		if (!strcmp(catalog[i].type, type))
			return &catalog[i];
	return NULL;
}

static int check_data(const CatalogEntry *entry, const VpEvent *ev, char *why, size_t why_cap)
{
	VpError err;
	vp_error_clear(&err);
	if (vp_json_check(ev->data, entry->fields, entry->n_fields, false, &err) == 0)
		return 0;
	if (err.n_details > 0)
		snprintf(why, why_cap, "data.%s %s", err.details[0].field, err.details[0].issue);
	else
		snprintf(why, why_cap, "data is invalid");
	return -1;
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
	const CatalogEntry *entry = catalog_find(ev->type);
	if (!entry) {
		snprintf(why, why_cap, "unknown event type %s", ev->type);
		return PJ_REJECTED;
	}
	if (ev->v != 1) {
		snprintf(why, why_cap, "%s v%d is not a known version", ev->type, ev->v);
		return PJ_REJECTED;
	}
	if (strcmp(ev->aggregate, entry->aggregate) != 0) {
		snprintf(why, why_cap, "%s belongs to aggregate %s, not %s", ev->type,
			 entry->aggregate, ev->aggregate);
		return PJ_REJECTED;
	}
	if (entry->fields && check_data(entry, ev, why, why_cap) < 0)
		return PJ_REJECTED;

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
	if (result != PJ_APPLIED || !entry->apply)
		return result;
	return entry->apply(conn, ev, why, why_cap);
}

bool pj_event_feeds_views(const VpEvent *ev)
{
	return !strcmp(ev->aggregate, "appointment");
}

PjApplyResult pj_apply_rows(long rows, char *why, size_t why_cap, const char *what)
{
	return from_rows(rows, why, why_cap, what);
}
