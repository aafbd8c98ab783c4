/* GET /v1/patients (newest first; search typo-tolerant over patient name and
 * client last name, or an exact microchip; filters client_id and species),
 * /v1/patients/{id} with client, allergies and conditions (also as of a
 * moment: as_of.c), and
 * /v1/patients/{id}/weights (newest first). */
#include "routes.h"

#define PATIENT_JSON(p)                                                                      \
	"'id', " p ".id, 'name', " p ".name, 'species', " p ".species, 'breed', " p ".breed, "  \
	"'sex', " p ".sex, 'neutered', " p ".neutered, 'date_of_birth', " p ".date_of_birth, "  \
	"'microchip', " p ".microchip, 'color', " p ".color, 'weight_kg', " p ".weight_kg, "     \
	"'status', " p ".status, 'date_of_death', " p ".date_of_death, "                        \
	"'client_id', " p ".client_id, "                                                         \
	"'client', json_build_object('id', " p ".client_id, 'first_name', " p                    \
	".client_first_name, 'last_name', " p ".client_last_name), "                             \
	"'version', " p ".version, "                                                             \
	"'created_at', " RD_RFC3339(p ".created_at") ", "                                      \
	"'updated_at', " RD_RFC3339(p ".updated_at")

/* The page's ids come from read.patient_page_ids (schema/migrations/
 * 004_search_functions.sql says why a function); the join back goes through
 * row-level security like every read. */
static const RdStatement patients_list = {
	"rd_patients_list",
	"WITH page AS ("
	" SELECT p.*, m.rn FROM read.patient_page_ids($5::text, $6::uuid, $7::text,"
	"   $3::timestamptz, $4::uuid, $2::int + 1) WITH ORDINALITY AS m(id, rn)"
	"  JOIN read.patients p ON p.tenant_id = $1::uuid AND p.id = m.id)"
	" SELECT (SELECT coalesce(json_agg(json_build_object(" PATIENT_JSON("p") ") ORDER BY p.rn),"
	"   '[]'::json) FROM page p WHERE p.rn <= $2::int)::text,"
	"  k.k1, k.k2"
	" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.created_at::text AS k1, p.id::text AS k2"
	"  FROM page p WHERE p.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
	"  k ON true",
	7};

static const RdStatement patient_get = {
	"rd_patient_get",
	"SELECT json_build_object(" PATIENT_JSON("p") ","
	" 'allergies', p.allergies, 'conditions', p.conditions)::text"
	" FROM read.patients p WHERE p.tenant_id = $1::uuid AND p.id = $2::uuid",
	2};

static const RdStatement weights_list = {
	"rd_patient_weights",
	"WITH page AS ("
	" SELECT w.*, row_number() OVER (ORDER BY w.measured_at DESC, w.event_id DESC) AS rn"
	" FROM (SELECT * FROM read.weights w"
	"  WHERE w.tenant_id = $1::uuid AND w.patient_id = $5::uuid"
	"   AND ($3::timestamptz IS NULL"
	"        OR (w.measured_at, w.event_id) < ($3::timestamptz, $4::uuid))"
	"  ORDER BY w.measured_at DESC, w.event_id DESC LIMIT $2::int + 1) w)"
	" SELECT (SELECT coalesce(json_agg(json_build_object('id', w.event_id,"
	"   'weight_kg', round(w.weight_g / 1000.0, 3),"
	"   'measured_at', " RD_RFC3339("w.measured_at") ") ORDER BY w.rn),"
	"   '[]'::json) FROM page w WHERE w.rn <= $2::int)::text,"
	"  k.k1, k.k2,"
	"  EXISTS (SELECT 1 FROM read.patients p WHERE p.tenant_id = $1::uuid AND p.id = $5::uuid)"
	" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT w.measured_at::text AS k1,"
	"  w.event_id::text AS k2 FROM page w WHERE w.rn = $2::int"
	"  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
	5};

static int bind_list(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)id;
	if (rd_bind_search(rq, r, 4, err) < 0 || rd_bind_uuid_query(rq, r, "client_id", 5, err) < 0)
		return -1;
	return rd_bind_text_query(rq, r, "species", 6, 64, err);
}

static int bind_weights(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)r;
	(void)err;
	return rd_param_set(rq, 4, id);
}

const RdRoute rd_routes_patients[] = {
	{"/v1/patients", RD_ROLES_CLINIC, &patients_list, RD_SHAPE_LIST, "patients", bind_list},
	{"/v1/patients/{id}", RD_ROLES_CLINIC, &patient_get, RD_SHAPE_ITEM, NULL, NULL,
	 RD_ROLES_AS_OF},
	{"/v1/patients/{id}/weights", VP_ROLE_VET | VP_ROLE_NURSE, &weights_list, RD_SHAPE_LIST,
	 "weights", bind_weights},
	{NULL},
};
