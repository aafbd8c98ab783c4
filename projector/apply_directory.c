/* Read models of the practice's directory: tenants, staff and clients. One
 * prepared statement per event type; version = the aggregate's seq. An update
 * of a row that is not there is a violated invariant (dead letter). */
#include <stdio.h>

#include "projector.h"
#include "vp_json.h"

const PjStatement pj_directory_statements[] = {
	{"tenant_provisioned",
	 "INSERT INTO tenants (id, tenant_id, name, timezone, currency, version, created_at) "
	 "VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::integer, $7::timestamptz)"},
	{"staff_registered",
	 "INSERT INTO staff (tenant_id, id, name, role, email, license_number, version, "
	 "created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7::integer, "
	 "$8::timestamptz, $8::timestamptz)"},
	{"staff_deactivated",
	 "UPDATE staff SET active = false, deactivated_reason = $3, version = $4::integer, "
	 "updated_at = $5::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid"},
	{"client_registered",
	 "INSERT INTO clients (tenant_id, id, first_name, last_name, email, phone, address, "
	 "version, created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, "
	 "$8::integer, $9::timestamptz, $9::timestamptz)"},
	/* Only the keys present in data change: $n::boolean says "present". */
	{"client_contact_updated",
	 "UPDATE clients SET email = CASE WHEN $3::boolean THEN $4 ELSE email END, "
	 "phone = CASE WHEN $5::boolean THEN $6 ELSE phone END, "
	 "address = CASE WHEN $7::boolean THEN $8 ELSE address END, "
	 "version = $9::integer, updated_at = $10::timestamptz "
	 "WHERE tenant_id = $1::uuid AND id = $2::uuid"},
	{"client_deactivated",
	 "UPDATE clients SET active = false, deactivated_reason = $3, version = $4::integer, "
	 "updated_at = $5::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid"},
	{NULL, NULL},
};

PjApplyResult pj_apply_tenant_provisioned(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->aggregate_id,
				ev->tenant_id,
				vp_json_str(ev->data, "name"),
				vp_json_str(ev->data, "timezone"),
				vp_json_str(ev->data, "currency"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "tenant_provisioned", 7, params, why, cap), why,
			     cap, "tenant not inserted");
}

PjApplyResult pj_apply_staff_registered(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				vp_json_str(ev->data, "name"),
				vp_json_str(ev->data, "role"),
				vp_json_str(ev->data, "email"),
				vp_json_str(ev->data, "license_number"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "staff_registered", 8, params, why, cap), why,
			     cap, "staff not inserted");
}

PjApplyResult pj_apply_staff_deactivated(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id, ev->aggregate_id, vp_json_str(ev->data, "reason"),
				env.seq, env.at};
	return pj_apply_rows(pj_apply_exec(conn, "staff_deactivated", 5, params, why, cap), why,
			     cap, "staff member not found in the read model");
}

PjApplyResult pj_apply_client_registered(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				vp_json_str(ev->data, "first_name"),
				vp_json_str(ev->data, "last_name"),
				vp_json_str(ev->data, "email"),
				vp_json_str(ev->data, "phone"),
				vp_json_str(ev->data, "address"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "client_registered", 9, params, why, cap), why,
			     cap, "client not inserted");
}

static const char *present(const VpEvent *ev, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(ev->data, name) ? "true" : "false";
}

PjApplyResult pj_apply_client_contact_updated(PGconn *conn, const VpEvent *ev, char *why,
					      size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id,
				ev->aggregate_id,
				present(ev, "email"),
				vp_json_str(ev->data, "email"),
				present(ev, "phone"),
				vp_json_str(ev->data, "phone"),
				present(ev, "address"),
				vp_json_str(ev->data, "address"),
				env.seq,
				env.at};
	return pj_apply_rows(pj_apply_exec(conn, "client_contact_updated", 10, params, why, cap),
			     why, cap, "client not found in the read model");
}

PjApplyResult pj_apply_client_deactivated(PGconn *conn, const VpEvent *ev, char *why, size_t cap)
{
	PjEnvText env;
	pj_env_text(ev, &env);
	const char *params[] = {ev->tenant_id, ev->aggregate_id, vp_json_str(ev->data, "reason"),
				env.seq, env.at};
	return pj_apply_rows(pj_apply_exec(conn, "client_deactivated", 5, params, why, cap), why,
			     cap, "client not found in the read model");
}
