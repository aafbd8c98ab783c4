/* Read model of patients: the patient row (with the owner's names, the latest
 * weight, allergies and conditions denormalised into it) and the history
 * tables weights, allergies and conditions. Each handler is one statement: a
 * CTE updates the patient and inserts the history row only when the patient is
 * there, so "0 rows" means the invariant failed (dead letter). */
#include <stdio.h>

#include "projector.h"
#include "vp_json.h"

const PjStatement pj_patient_statements[] = {
	/* The owner's names come from clients; the registration weight is also the
	 * first row of weights, so "latest by measured_at" holds from the start. */
	{"patient_registered",
	 "WITH p AS (INSERT INTO patients (tenant_id, id, client_id, client_first_name, "
	 "client_last_name, name, species, breed, sex, neutered, date_of_birth, microchip, color, "
	 "weight_kg, version, created_at, updated_at) "
	 "SELECT $1::uuid, $2::uuid, c.id, c.first_name, c.last_name, $4, $5, $6, $7, "
	 "$8::boolean, $9::date, $10, $11, round($12::integer / 1000.0, 3), $13::integer, "
	 "$14::timestamptz, $14::timestamptz FROM clients c "
	 "WHERE c.tenant_id = $1::uuid AND c.id = $3::uuid RETURNING tenant_id, id), "
	 "w AS (INSERT INTO weights (tenant_id, patient_id, event_id, weight_g, measured_at) "
	 "SELECT p.tenant_id, p.id, $15::uuid, $12::integer, $14::timestamptz FROM p "
	 "WHERE $12::integer IS NOT NULL RETURNING 1) "
	 "SELECT 1 FROM p"},
	{"weight_recorded",
	 "WITH p AS (UPDATE patients SET weight_kg = CASE WHEN EXISTS (SELECT 1 FROM weights w "
	 "WHERE w.tenant_id = $1::uuid AND w.patient_id = $2::uuid "
	 "AND (w.measured_at, w.event_id) > ($5::timestamptz, $3::uuid)) THEN weight_kg "
	 "ELSE round($4::integer / 1000.0, 3) END, version = $6::integer, "
	 "updated_at = $7::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid "
	 "RETURNING tenant_id, id) "
	 "INSERT INTO weights (tenant_id, patient_id, event_id, weight_g, measured_at) "
	 "SELECT tenant_id, id, $3::uuid, $4::integer, $5::timestamptz FROM p"},
	{"allergy_added",
	 "WITH p AS (UPDATE patients SET allergies = allergies || jsonb_build_array("
	 "jsonb_build_object('allergen', $4::text, 'reaction', $5::text, 'severity', $6::text)), "
	 "version = $7::integer, updated_at = $8::timestamptz "
	 "WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING tenant_id, id) "
	 "INSERT INTO allergies (tenant_id, patient_id, event_id, allergen, reaction, severity, "
	 "recorded_at) SELECT tenant_id, id, $3::uuid, $4::text, $5::text, $6::text, "
	 "$8::timestamptz FROM p"},
	{"condition_added",
	 "WITH p AS (UPDATE patients SET conditions = conditions || jsonb_build_array("
	 "jsonb_build_object('name', $4::text, 'diagnosed_on', $5::text, 'notes', $6::text)), "
	 "version = $7::integer, updated_at = $8::timestamptz "
	 "WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING tenant_id, id) "
	 "INSERT INTO conditions (tenant_id, patient_id, event_id, name, diagnosed_on, notes, "
	 "recorded_at) SELECT tenant_id, id, $3::uuid, $4::text, $5::text::date, $6::text, "
	 "$8::timestamptz FROM p"},
	/* The patient's active appointments follow the new owner; finished ones
	 * keep the owner they had. */
	{"patient_transferred",
	 "WITH p AS (UPDATE patients p SET client_id = c.id, client_first_name = c.first_name, "
	 "client_last_name = c.last_name, version = $5::integer, updated_at = $6::timestamptz "
	 "FROM clients c WHERE p.tenant_id = $1::uuid AND p.id = $2::uuid "
	 "AND p.client_id = $3::uuid AND c.tenant_id = $1::uuid AND c.id = $4::uuid "
	 "RETURNING p.tenant_id, p.id, p.client_id, p.client_first_name, p.client_last_name), "
	 "a AS (UPDATE appointments a SET client_id = p.client_id, "
	 "client_first_name = p.client_first_name, client_last_name = p.client_last_name "
	 "FROM p WHERE a.tenant_id = p.tenant_id AND a.patient_id = p.id "
	 "AND a.status IN ('scheduled', 'checked_in', 'in_progress') RETURNING 1) "
	 "SELECT 1 FROM p"},
	{"patient_died",
	 "UPDATE patients SET status = 'deceased', date_of_death = $3::date, "
	 "version = $4::integer, updated_at = $5::timestamptz "
	 "WHERE tenant_id = $1::uuid AND id = $2::uuid"},
	{NULL, NULL},
};

#define NOT_FOUND "patient not found in the read model"

PjApplyResult pj_apply_patient_registered(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	char weight[24];
	pj_env_text(ev, &env);
	const cJSON *d = ev->data;
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				vp_json_str(d, "client_id"),
				vp_json_str(d, "name"),
				vp_json_str(d, "species"),
				vp_json_str(d, "breed"),
				vp_json_str(d, "sex"),
				pj_data_bool(d, "neutered"),
				vp_json_str(d, "date_of_birth"),
				vp_json_str(d, "microchip"),
				vp_json_str(d, "color"),
				pj_data_int(d, "weight_g", weight, sizeof(weight)),
				env.seq,
				env.at,
				ev->id};
	return pj_apply_rows(pj_apply_exec(conn, "patient_registered", 15, params, why, cap), why,
			     cap, "owner (client) not found in the read model");
}

PjApplyResult pj_apply_weight_recorded(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	char weight[24];
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				ev->id,
				pj_data_int(ev->data, "weight_g", weight, sizeof(weight)),
				vp_json_str(ev->data, "measured_at"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "weight_recorded", 7, params, why, cap), why, cap,
			     NOT_FOUND);
}

PjApplyResult pj_apply_allergy_added(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				ev->id,
				vp_json_str(ev->data, "allergen"),
				vp_json_str(ev->data, "reaction"),
				vp_json_str(ev->data, "severity"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "allergy_added", 8, params, why, cap), why, cap,
			     NOT_FOUND);
}

PjApplyResult pj_apply_condition_added(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				ev->id,
				vp_json_str(ev->data, "name"),
				vp_json_str(ev->data, "diagnosed_on"),
				vp_json_str(ev->data, "notes"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "condition_added", 8, params, why, cap), why, cap,
			     NOT_FOUND);
}

PjApplyResult pj_apply_patient_transferred(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				vp_json_str(ev->data, "from_client_id"),
				vp_json_str(ev->data, "to_client_id"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "patient_transferred", 6, params, why, cap), why,
			     cap, "patient with that owner, or the new owner, not found in the read model");
}

PjApplyResult pj_apply_patient_died(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id, ev->aggregate_id, vp_json_str(ev->data, "date"),
				env.seq, env.at};
	return pj_apply_rows(pj_apply_exec(conn, "patient_died", 5, params, why, cap), why, cap,
			     NOT_FOUND);
}
