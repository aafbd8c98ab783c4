/* Read models of the practice's directory: tenants, staff and clients. One
 * prepared statement per event type; version = the aggregate's seq. An update
 * of a row that is not there is a violated invariant (dead letter). */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "apply_runner.h"
#include "projector.h"
#include "vp_buf.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_sealed.h"

/* The two texts ClientErased's statement takes from vp_sealed.c: the
 * personal members of an erased client as one JSON object
 * (vp_sealed_erased_value of every vp_personal_fields: the read tables and
 * the v1 envelopes then read as an export of the client does), and the
 * types of the events carrying them as a text[] literal. Made at the first
 * erasure, each in storage of its own (the buffers never allocate); when
 * that fails (out of memory for a value) the erasure fails and the next one
 * tries again, rather than half-erasing. */
static char erased_json[512];
static char sealed_types[128];
static bool erased_made;
static pthread_mutex_t erased_lock = PTHREAD_MUTEX_INITIALIZER;

static int make_erased_texts(void)
{
	VpBuf json, types;
	vp_buf_init_on(&json, erased_json, sizeof(erased_json), sizeof(erased_json) - 1);
	vp_buf_init_on(&types, sealed_types, sizeof(sealed_types), sizeof(sealed_types) - 1);
	vp_buf_puts(&json, "{");
	for (const char *const *f = vp_personal_fields; *f; f++) {
		cJSON *value = vp_sealed_erased_value(*f);
		vp_buf_puts(&json, f == vp_personal_fields ? "" : ",");
		vp_json_write_string(&json, *f);
		vp_buf_puts(&json, ":");
		vp_json_write(&json, value); /* NULL (out of memory) sets oom */
		cJSON_Delete(value);
	}
	vp_buf_puts(&json, "}");
	vp_buf_puts(&types, "{");
	for (const char *const *t = vp_sealed_types; *t; t++) {
		vp_buf_puts(&types, t == vp_sealed_types ? "" : ",");
		vp_buf_puts(&types, *t);
	}
	vp_buf_puts(&types, "}");
	return json.oom || types.oom ? -1 : 0;
}

static PjApplyResult client_erased(PGconn *conn, const PjApplyRow *row, const VpEvent *ev,
				   char *why, size_t why_cap)
{
	PjEnvText env;
	pthread_mutex_lock(&erased_lock);
	if (!erased_made)
		erased_made = make_erased_texts() == 0;
	bool made = erased_made; /* the texts are not written again once made */
	pthread_mutex_unlock(&erased_lock);
	if (!made) {
		snprintf(why, why_cap, "out of memory making the erased client's fields");
		return PJ_FAILED;
	}
	pj_env_text(ev, &env);
	const char *values[] = {ev->tenant_id, ev->aggregate_id, env.seq, env.at, erased_json,
				sealed_types};
	return pj_apply_rows(pj_apply_exec(conn, row->stmt, 6, values, why, why_cap), why,
			     why_cap, row->not_applied);
}

const PjApplyRow pj_directory_rows[] = {
	{.type = VP_EV_TENANT_PROVISIONED,
	 .stmt = "tenant_provisioned",
	 .sql = "INSERT INTO tenants (id, tenant_id, name, timezone, currency, version, created_at) "
		"VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::integer, $7::timestamptz)",
	 .params = {PJ_AGGREGATE, PJ_TENANT, PJ_TEXT("name"), PJ_TEXT("timezone"),
		    PJ_TEXT("currency"), PJ_SEQ, PJ_AT},
	 .not_applied = "tenant not inserted"},
	{.type = VP_EV_STAFF_REGISTERED,
	 .stmt = "staff_registered",
	 .sql = "INSERT INTO staff (tenant_id, id, name, role, email, license_number, version, "
		"created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7::integer, "
		"$8::timestamptz, $8::timestamptz)",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("name"), PJ_TEXT("role"), PJ_TEXT("email"),
		    PJ_TEXT("license_number"), PJ_SEQ, PJ_AT},
	 .not_applied = "staff not inserted"},
	{.type = VP_EV_STAFF_DEACTIVATED,
	 .stmt = "staff_deactivated",
	 .sql = "UPDATE staff SET active = false, deactivated_reason = $3, version = $4::integer, "
		"updated_at = $5::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("reason"), PJ_SEQ, PJ_AT},
	 .not_applied = "staff member not found in the read model"},
	{.type = VP_EV_CLIENT_REGISTERED,
	 .stmt = "client_registered",
	 .sql = "INSERT INTO clients (tenant_id, id, first_name, last_name, email, phone, address, "
		"version, created_at, updated_at, email_bidx, phone_bidx) VALUES ($1::uuid, "
		"$2::uuid, $3, $4, $5, $6, $7, $8::integer, $9::timestamptz, $9::timestamptz, $10, "
		"$11)",
	 /* v2 arrives opened (apply_keys.c) with its blind indexes; v1 has none */
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("first_name"), PJ_TEXT("last_name"),
		    PJ_TEXT("email"), PJ_TEXT("phone"), PJ_TEXT("address"), PJ_SEQ, PJ_AT,
		    PJ_TEXT("email_bidx"), PJ_TEXT("phone_bidx")},
	 .not_applied = "client not inserted"},
	/* Only the keys present in data change: $n::boolean says "present". */
	{.type = VP_EV_CLIENT_CONTACT_UPDATED,
	 .stmt = "client_contact_updated",
	 .sql = "UPDATE clients SET email = CASE WHEN $3::boolean THEN $4 ELSE email END, "
		"phone = CASE WHEN $5::boolean THEN $6 ELSE phone END, "
		"address = CASE WHEN $7::boolean THEN $8 ELSE address END, "
		"email_bidx = CASE WHEN $3::boolean THEN $11 ELSE email_bidx END, "
		"phone_bidx = CASE WHEN $5::boolean THEN $12 ELSE phone_bidx END, "
		"version = $9::integer, updated_at = $10::timestamptz "
		"WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_PRESENT("email"), PJ_TEXT("email"),
		    PJ_PRESENT("phone"), PJ_TEXT("phone"), PJ_PRESENT("address"),
		    PJ_TEXT("address"), PJ_SEQ, PJ_AT, PJ_TEXT("email_bidx"),
		    PJ_TEXT("phone_bidx")},
	 .not_applied = "client not found in the read model"},
	{.type = VP_EV_CLIENT_DEACTIVATED,
	 .stmt = "client_deactivated",
	 .sql = "UPDATE clients SET active = false, deactivated_reason = $3, version = $4::integer, "
		"updated_at = $5::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid",
	 .params = {PJ_TENANT, PJ_AGGREGATE, PJ_TEXT("reason"), PJ_SEQ, PJ_AT},
	 .not_applied = "client not found in the read model"},
	/* EraseClient (docs/privacy.md): the client's personal fields leave
	 * every read table at once, in the event's transaction: the client row
	 * reads as an erased client, the copies of its name in patients and
	 * appointments (and through the rollup trigger the appointment
	 * dashboard) follow, and so do the client's plain-text (v1) events in
	 * event_log (GET /v1/events, the stream and the history folds read
	 * them): their personal members read as the erased client's, as
	 * vp_sealed_erase_plain writes them into an export. What an erased
	 * client reads as ($5) and which events carry personal fields ($6) come
	 * from vp_sealed.c (client_erased below), never spelled here. Sealed
	 * events there stay sealed: their key is gone. The client's
	 * dead-lettered client events lose their payload and are discarded,
	 * saying why: a redrive after the erasure is refused anyway (log order),
	 * and a v1 one holds the fields in clear; so do the tenant's records
	 * that did not decode and name the client's id (named_ids, the ids
	 * their bytes hold in any case, projector/deadletter.c: a torn client
	 * event may hold its fields), and those of no tenant (a record key
	 * naming none) that name it: a random id names one client only.
	 * Clinical and financial rows stay, linked by id. */
	{.type = VP_EV_CLIENT_ERASED,
	 .stmt = "client_erased",
	 .sql = "WITH c AS (UPDATE clients SET first_name = $5::jsonb->>'first_name', "
		"last_name = $5::jsonb->>'last_name', email = $5::jsonb->>'email', "
		"phone = $5::jsonb->>'phone', address = $5::jsonb->>'address', email_bidx = NULL, "
		"phone_bidx = NULL, active = false, version = $3::integer, updated_at = "
		"$4::timestamptz WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING id), "
		"p AS (UPDATE patients SET client_first_name = $5::jsonb->>'first_name', "
		"client_last_name = $5::jsonb->>'last_name' "
		"WHERE tenant_id = $1::uuid AND client_id = $2::uuid), "
		"a AS (UPDATE appointments SET client_first_name = $5::jsonb->>'first_name', "
		"client_last_name = $5::jsonb->>'last_name' "
		"WHERE tenant_id = $1::uuid AND client_id = $2::uuid), "
		"l AS (UPDATE event_log SET envelope = jsonb_set(envelope, '{data}', "
		"(envelope->'data') || (SELECT coalesce(jsonb_object_agg(e.key, e.value), "
		"'{}'::jsonb) FROM jsonb_each($5::jsonb) e WHERE envelope->'data' ? e.key)) "
		"WHERE tenant_id = $1::uuid AND aggregate_id = $2::uuid AND aggregate = 'client' "
		"AND v = 1 AND type = ANY($6::text[])), "
		"d AS (UPDATE dead_letters SET payload = NULL, status = CASE WHEN status IN "
		"('dead', 'redrive') THEN 'discarded' ELSE status END, resolved_by = "
		"coalesce(resolved_by, 'projector'), resolved_at = coalesce(resolved_at, "
		"$4::timestamptz), reason = coalesce(reason, '" PJ_ERASED_DEAD_LETTER "') "
		"WHERE payload IS NOT NULL AND ((tenant_id = $1::uuid AND aggregate_id = "
		"$2::uuid::text AND type = ANY($6::text[])) OR ((tenant_id = $1::uuid OR "
		"tenant_id IS NULL) AND type IS NULL AND named_ids @> ARRAY[$2::uuid]))) "
		"SELECT id FROM c",
	 .not_applied = "client not found in the read model",
	 .apply = client_erased},
	{.type = NULL},
};
