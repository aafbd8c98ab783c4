/* Read model of patients: the patient row (with the owner's names, the latest
 * weight, allergies and conditions denormalised into it) and the history
 * tables weights, allergies and conditions. Each event is one statement: a
 * CTE updates the patient and inserts the history row only when the patient is
 * there, so "0 rows" means the invariant failed (dead letter). */
#include <stddef.h>

#include "apply_runner.h"
#include "vp_catalog.h"

#define NOT_FOUND "patient not found in the read model"

const PjApplyRow pj_patient_rows[] = {
	/* The owner's names come from clients; the registration weight is also the
	 * first row of weights, so "latest by measured_at" holds from the start. */
	{.type = VP_EV_PATIENT_REGISTERED,
	 .stmt = "patient_registered",
	 .sql = "WITH p AS (INSERT INTO patients (tenant_id, id, client_id, client_first_name, "
		"client_last_name, name, species, breed, sex, neutered, date_of_birth, microchip, "
		"color, weight_kg, version, created_at, updated_at) "
		"SELECT $1::uuid, $2::uuid, c.id, c.first_name, c.last_name, $4, $5, $6, $7, "
		"$8::boolean, $9::date, $10, $11, round($12::integer / 1000.0, 3), $13::integer, "
		"$14::timestamptz, $14::timestamptz FROM clients c "
		"WHERE c.tenant_id = $1::uuid AND c.id = $3::uuid RETURNING tenant_id, id), "
		"w AS (INSERT INTO weights (tenant_id, patient_id, event_id, weight_g, measured_at) "
		"SELECT p.tenant_id, p.id, $15::uuid, $12::integer, $14::timestamptz FROM p "
		"WHERE $12::integer IS NOT NULL RETURNING 1) "
		"SELECT 1 FROM p",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("client_id"), PJ_TEXT("name"),
		    PJ_TEXT("species"), PJ_TEXT("breed"), PJ_TEXT("sex"), PJ_BOOL("neutered"),
		    PJ_TEXT("date_of_birth"), PJ_TEXT("microchip"), PJ_TEXT("color"),
		    PJ_INT("weight_g"), PJ_SEQ, PJ_AT, PJ_EVENT_ID},
	 .not_applied = "owner (client) not found in the read model"},
	{.type = VP_EV_WEIGHT_RECORDED,
	 .stmt = "weight_recorded",
	 .sql = "WITH p AS (UPDATE patients SET weight_kg = CASE WHEN EXISTS (SELECT 1 FROM "
		"weights w WHERE w.tenant_id = $1::uuid AND w.patient_id = $2::uuid "
		"AND (w.measured_at, w.event_id) > ($5::timestamptz, $3::uuid)) THEN weight_kg "
		"ELSE round($4::integer / 1000.0, 3) END, version = $6::integer, "
		"updated_at = $7::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid "
		"RETURNING tenant_id, id) "
		"INSERT INTO weights (tenant_id, patient_id, event_id, weight_g, measured_at) "
		"SELECT tenant_id, id, $3::uuid, $4::integer, $5::timestamptz FROM p",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_EVENT_ID, PJ_INT("weight_g"),
		    PJ_TEXT("measured_at"), PJ_SEQ, PJ_AT},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_ALLERGY_ADDED,
	 .stmt = "allergy_added",
	 .sql = "WITH p AS (UPDATE patients SET allergies = allergies || jsonb_build_array("
		"jsonb_build_object('allergen', $4::text, 'reaction', $5::text, 'severity', "
		"$6::text)), version = $7::integer, updated_at = $8::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING tenant_id, id) "
		"INSERT INTO allergies (tenant_id, patient_id, event_id, allergen, reaction, "
		"severity, recorded_at) SELECT tenant_id, id, $3::uuid, $4::text, $5::text, "
		"$6::text, $8::timestamptz FROM p",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_EVENT_ID, PJ_TEXT("allergen"), PJ_TEXT("reaction"),
		    PJ_TEXT("severity"), PJ_SEQ, PJ_AT},
	 .not_applied = NOT_FOUND},
	{.type = VP_EV_CHRONIC_CONDITION_ADDED,
	 .stmt = "condition_added",
	 .sql = "WITH p AS (UPDATE patients SET conditions = conditions || jsonb_build_array("
		"jsonb_build_object('name', $4::text, 'diagnosed_on', $5::text, 'notes', "
		"$6::text)), version = $7::integer, updated_at = $8::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING tenant_id, id) "
		"INSERT INTO conditions (tenant_id, patient_id, event_id, name, diagnosed_on, notes, "
		"recorded_at) SELECT tenant_id, id, $3::uuid, $4::text, $5::text::date, $6::text, "
		"$8::timestamptz FROM p",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_EVENT_ID, PJ_TEXT("name"), PJ_TEXT("diagnosed_on"),
		    PJ_TEXT("notes"), PJ_SEQ, PJ_AT},
	 .not_applied = NOT_FOUND},
	/* The patient's active appointments follow the new owner; finished ones
	 * keep the owner they had. */
	{.type = VP_EV_PATIENT_TRANSFERRED,
	 .stmt = "patient_transferred",
	 .sql = "WITH p AS (UPDATE patients p SET client_id = c.id, "
		"client_first_name = c.first_name, "
		"client_last_name = c.last_name, version = $5::integer, updated_at = $6::timestamptz "
		"FROM clients c WHERE p.tenant_id = $1::uuid AND p.id = $2::uuid "
		"AND p.client_id = $3::uuid AND c.tenant_id = $1::uuid AND c.id = $4::uuid "
		"RETURNING p.tenant_id, p.id, p.client_id, p.client_first_name, "
		"p.client_last_name), "
		"a AS (UPDATE appointments a SET client_id = p.client_id, "
		"client_first_name = p.client_first_name, client_last_name = p.client_last_name "
		"FROM p WHERE a.tenant_id = p.tenant_id AND a.patient_id = p.id "
		"AND a.status IN ('scheduled', 'checked_in', 'in_progress') RETURNING 1) "
		"SELECT 1 FROM p",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("from_client_id"), PJ_TEXT("to_client_id"),
		    PJ_SEQ, PJ_AT},
	 .not_applied = "patient with that owner, or the new owner, not found in the read model"},
	{.type = VP_EV_PATIENT_DIED,
	 .stmt = "patient_died",
	 .sql = "UPDATE patients SET status = 'deceased', date_of_death = $3::date, "
		"version = $4::integer, updated_at = $5::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("date"), PJ_SEQ, PJ_AT},
	 .not_applied = NOT_FOUND},
	{.type = NULL},
};
