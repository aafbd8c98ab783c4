/* GET /v1/staff (by name, then id) and /v1/staff/{id}: any tenant role. */
#include "routes.h"

#define STAFF_JSON(s)                                                                        \
	"'id', " s ".id, 'name', " s ".name, 'role', " s ".role, 'email', " s ".email, "        \
	"'license_number', " s ".license_number, 'active', " s ".active, "                      \
	"'version', " s ".version, "                                                             \
	"'created_at', " RD_RFC3339(s ".created_at") ", "                                      \
	"'updated_at', " RD_RFC3339(s ".updated_at")

static const RdStatement staff_list = {
	"rd_staff_list",
	"WITH page AS ("
	" SELECT s.*, row_number() OVER (ORDER BY s.name, s.id) AS rn"
	" FROM (SELECT * FROM read.staff s"
	"  WHERE s.tenant_id = $1::uuid"
	"   AND ($3::text IS NULL OR (s.name, s.id) > ($3::text, $4::uuid))"
	"  ORDER BY s.name, s.id LIMIT $2::int + 1) s)"
	" SELECT (SELECT coalesce(json_agg(json_build_object(" STAFF_JSON("s") ") ORDER BY s.rn),"
	"   '[]'::json) FROM page s WHERE s.rn <= $2::int)::text,"
	"  k.k1, k.k2"
	" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT s.name AS k1, s.id::text AS k2"
	"  FROM page s WHERE s.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
	"  k ON true",
	4};

static const RdStatement staff_get = {
	"rd_staff_get",
	"SELECT json_build_object(" STAFF_JSON("s") ")::text"
	" FROM read.staff s WHERE s.tenant_id = $1::uuid AND s.id = $2::uuid",
	2};

const RdRoute rd_routes_staff[] = {
	{"/v1/staff", RD_ROLES_TENANT, &staff_list, RD_SHAPE_LIST, "staff", NULL},
	{"/v1/staff/{id}", RD_ROLES_TENANT, &staff_get, RD_SHAPE_ITEM, NULL, NULL},
	{NULL},
};
