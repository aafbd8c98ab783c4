/* Read model of medical records (schema/migrations/006_medical_records.sql):
 * the record row and its vitals, diagnoses, treatments, prescriptions and
 * addenda, and the tenant's auto-lock period. Every record event is one
 * statement whose CTE updates the record (version = the event's seq) and
 * whose child row is written only from that CTE, so an unknown record (or
 * diagnosis, treatment) is "0 rows": a dead letter. */
#include <stddef.h>

#include "apply_runner.h"
#include "vp_catalog.h"

#define NOT_FOUND "medical record not found in the read model"

/* The record row touched by every event after the opening one. */
#define TOUCH_RECORD(seq, at)                                                                \
	"UPDATE medical_records SET version = " seq "::integer, updated_at = " at              \
	"::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid "                           \
	"RETURNING tenant_id, id, patient_id, visit_date"

/* SOAP merge: absent keeps, a string replaces, null clears. */
#define SOAP_FIELD(col, present, value)                                                       \
	col " = CASE WHEN " present "::boolean THEN " value "::text ELSE " col " END"

const PjApplyRow pj_record_rows[] = {
	{.type = VP_EV_TENANT_SETTINGS_CHANGED,
	 .stmt = "tenant_settings_changed",
	 /* the archive settings are optional: absent keeps the tenant's */
	 .sql = "UPDATE tenants SET record_lock_hours = $3::integer, version = $4::integer, "
		"archive_appointments_after_days = coalesce($5::integer, "
		"archive_appointments_after_days), archive_records_after_days = "
		"coalesce($6::integer, archive_records_after_days) "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_INT("record_lock_hours"), PJ_SEQ,
		    PJ_INT("archive_appointments_after_days"), PJ_INT("archive_records_after_days")},
	 .not_applied = "tenant not found in the read model"},
	/* The patient must be known: its id is what every list keys on. */
	{.type = VP_EV_MEDICAL_RECORD_OPENED,
	 .stmt = "medical_record_opened",
	 .sql = "INSERT INTO medical_records (tenant_id, id, patient_id, appointment_id, "
		"record_type, chief_complaint, visit_date, opened_at, opened_by, version, "
		"updated_at) SELECT $1::uuid, $2::uuid, p.id, $4::uuid, $5, $6, $7::date, "
		"$9::timestamptz, $10, $8::integer, $9::timestamptz FROM patients p "
		"WHERE p.tenant_id = $1::uuid AND p.id = $3::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("patient_id"), PJ_TEXT("appointment_id"),
		    PJ_TEXT("record_type"), PJ_TEXT("chief_complaint"), PJ_TEXT("visit_date"),
		    PJ_SEQ, PJ_AT, PJ_ACTOR},
	 .not_applied = "patient not found in the read model"},
	/* A weight in vitals is stored here only: the WeightRecorded event of the
	 * same transaction updates the patient. */
	{.type = VP_EV_VITALS_RECORDED,
	 .stmt = "vitals_recorded",
	 .sql = "WITH r AS (" TOUCH_RECORD("$3", "$4") ") "
		"INSERT INTO vitals (tenant_id, record_id, id, patient_id, recorded_at, "
		"recorded_by, temperature_dc, pulse_bpm, respiration_rpm, systolic_mmhg, "
		"diastolic_mmhg, weight_g, body_condition_score, pain_score) "
		"SELECT r.tenant_id, r.id, $5::uuid, r.patient_id, $6::timestamptz, $7, "
		"$8::integer, $9::integer, $10::integer, $11::integer, $12::integer, $13::integer, "
		"$14::integer, $15::integer FROM r",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("vitals_id"),
		    PJ_TEXT("recorded_at"), PJ_ACTOR, PJ_INT("temperature_dc"), PJ_INT("pulse_bpm"),
		    PJ_INT("respiration_rpm"), PJ_INT("systolic_mmhg"), PJ_INT("diastolic_mmhg"),
		    PJ_INT("weight_g"), PJ_INT("body_condition_score"), PJ_INT("pain_score")},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_SOAP_NOTE_WRITTEN,
	 .stmt = "soap_note_written",
	 .sql = "UPDATE medical_records SET " SOAP_FIELD("subjective", "$5", "$6") ", "
		SOAP_FIELD("objective", "$7", "$8") ", " SOAP_FIELD("assessment", "$9", "$10") ", "
		SOAP_FIELD("plan", "$11", "$12") ", "
		SOAP_FIELD("additional_notes", "$13", "$14") ", "
		"version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_PRESENT("subjective"),
		    PJ_TEXT("subjective"), PJ_PRESENT("objective"), PJ_TEXT("objective"),
		    PJ_PRESENT("assessment"), PJ_TEXT("assessment"), PJ_PRESENT("plan"),
		    PJ_TEXT("plan"), PJ_PRESENT("additional_notes"), PJ_TEXT("additional_notes")},
	 .not_applied = NOT_FOUND},
	/* A new primary demotes the old one in this statement. The insert reads
	 * the demotion's count so that it runs first: the unique index of one
	 * primary per record is checked row by row, and an unreferenced CTE
	 * would only run after the insert. */
	{.type = VP_EV_DIAGNOSIS_ADDED,
	 .stmt = "diagnosis_added",
	 .sql = "WITH r AS (UPDATE medical_records SET version = $3::integer, "
		"updated_at = $4::timestamptz, "
		"primary_diagnosis_id = CASE WHEN $10::boolean THEN $5::uuid "
		"ELSE primary_diagnosis_id END, "
		"primary_diagnosis_name = CASE WHEN $10::boolean THEN $6::text "
		"ELSE primary_diagnosis_name END, "
		"primary_diagnosis_code = CASE WHEN $10::boolean THEN $7::text "
		"ELSE primary_diagnosis_code END "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid "
		"RETURNING tenant_id, id, patient_id, visit_date), "
		"demoted AS (UPDATE diagnoses d SET is_primary = false FROM r "
		"WHERE $10::boolean AND d.tenant_id = r.tenant_id AND d.record_id = r.id "
		"AND d.is_primary RETURNING 1) "
		"INSERT INTO diagnoses (tenant_id, record_id, id, patient_id, name, code, status, "
		"notes, is_primary, added_at, added_by, visit_date) "
		"SELECT r.tenant_id, r.id, $5::uuid, r.patient_id, $6, $7, $8, $9, $10::boolean, "
		"$4::timestamptz, $11, r.visit_date FROM r "
		"WHERE (SELECT count(*) FROM demoted) >= 0",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("diagnosis_id"),
		    PJ_TEXT("name"), PJ_TEXT("code"), PJ_TEXT("status"), PJ_TEXT("notes"),
		    PJ_BOOL("primary"), PJ_ACTOR},
	 .not_applied = NOT_FOUND},
	/* A retracted diagnosis stops being the primary one (the record then
	 * has none until a new primary is added). */
	{.type = VP_EV_DIAGNOSIS_RETRACTED,
	 .stmt = "diagnosis_retracted",
	 .sql = "WITH d AS (UPDATE diagnoses SET retracted = true, retract_reason = $6, "
		"retracted_at = $4::timestamptz, is_primary = false "
		"WHERE tenant_id = $1::uuid AND record_id = $2::uuid AND id = $5::uuid "
		"RETURNING id) "
		"UPDATE medical_records SET version = $3::integer, updated_at = $4::timestamptz, "
		"primary_diagnosis_id = CASE WHEN primary_diagnosis_id = $5::uuid THEN NULL "
		"ELSE primary_diagnosis_id END, "
		"primary_diagnosis_name = CASE WHEN primary_diagnosis_id = $5::uuid THEN NULL "
		"ELSE primary_diagnosis_name END, "
		"primary_diagnosis_code = CASE WHEN primary_diagnosis_id = $5::uuid THEN NULL "
		"ELSE primary_diagnosis_code END "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM d)",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("diagnosis_id"),
		    PJ_TEXT("reason")},
	 .not_applied = "diagnosis of that medical record not found in the read model"},
	{.type = VP_EV_TREATMENT_ADDED,
	 .stmt = "treatment_added",
	 .sql = "WITH r AS (" TOUCH_RECORD("$3", "$4") ") "
		"INSERT INTO treatments (tenant_id, record_id, id, patient_id, name, "
		"treatment_type, description, status, performed_at, next_due_on, added_at, "
		"added_by, visit_date) "
		"SELECT r.tenant_id, r.id, $5::uuid, r.patient_id, $6, $7, $8, "
		"CASE WHEN $9::timestamptz IS NULL THEN 'planned' ELSE 'performed' END, "
		"$9::timestamptz, $10::date, $4::timestamptz, $11, r.visit_date FROM r",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("treatment_id"),
		    PJ_TEXT("name"), PJ_TEXT("treatment_type"), PJ_TEXT("description"),
		    PJ_TEXT("performed_at"), PJ_TEXT("next_due_on"), PJ_ACTOR},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_TREATMENT_PERFORMED,
	 .stmt = "treatment_performed",
	 .sql = "WITH t AS (UPDATE treatments SET status = 'performed', "
		"performed_at = $6::timestamptz WHERE tenant_id = $1::uuid "
		"AND record_id = $2::uuid AND id = $5::uuid RETURNING id) "
		"UPDATE medical_records SET version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM t)",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("treatment_id"),
		    PJ_TEXT("performed_at")},
	 .not_applied = "treatment of that medical record not found in the read model"},
	{.type = VP_EV_TREATMENT_CANCELED,
	 .stmt = "treatment_canceled",
	 .sql = "WITH t AS (UPDATE treatments SET status = 'canceled', cancel_reason = $6 "
		"WHERE tenant_id = $1::uuid AND record_id = $2::uuid AND id = $5::uuid "
		"RETURNING id) "
		"UPDATE medical_records SET version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid AND EXISTS (SELECT 1 FROM t)",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("treatment_id"),
		    PJ_TEXT("reason")},
	 .not_applied = "treatment of that medical record not found in the read model"},
	{.type = VP_EV_MEDICATION_PRESCRIBED,
	 .stmt = "medication_prescribed",
	 .sql = "WITH r AS (" TOUCH_RECORD("$3", "$4") ") "
		"INSERT INTO prescriptions (tenant_id, record_id, id, patient_id, medication, "
		"dosage, frequency, route, duration_days, quantity_milli, refills, instructions, "
		"item_id, prescribed_at, prescribed_by) "
		"SELECT r.tenant_id, r.id, $5::uuid, r.patient_id, $6, $7, $8, $9, $10::integer, "
		"$11::bigint, $12::integer, $13, $14::uuid, $4::timestamptz, $15 FROM r",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("prescription_id"),
		    PJ_TEXT("medication"), PJ_TEXT("dosage"), PJ_TEXT("frequency"),
		    PJ_TEXT("route"), PJ_INT("duration_days"), PJ_INT("quantity_milli"),
		    PJ_INT("refills"), PJ_TEXT("instructions"), PJ_TEXT("item_id"), PJ_ACTOR},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_MEDICAL_RECORD_SIGNED,
	 .stmt = "medical_record_signed",
	 .sql = "UPDATE medical_records SET status = 'signed', signed_at = $4::timestamptz, "
		"signed_by = $5, version = $3::integer, updated_at = $4::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_ACTOR},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_ADDENDUM_ADDED,
	 .stmt = "addendum_added",
	 .sql = "WITH r AS (" TOUCH_RECORD("$3", "$4") ") "
		"INSERT INTO addenda (tenant_id, record_id, id, author, at, text) "
		"SELECT r.tenant_id, r.id, $5::uuid, $7, $4::timestamptz, $6 FROM r",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_SEQ, PJ_AT, PJ_TEXT("addendum_id"),
		    PJ_TEXT("text"), PJ_ACTOR},
	 .not_applied = NOT_FOUND},
	{.type = NULL},
};
