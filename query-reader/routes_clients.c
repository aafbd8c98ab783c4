/* GET /v1/clients (newest first, typo-tolerant search) and /v1/clients/{id}
 * with its patients summary and balance. Search: word similarity (pg_trgm `<%`, threshold
 * pg_trgm.word_similarity_threshold, default 0.6) of the search text against
 * any part of names, email and phone, or the text anywhere in them (LIKE with
 * wildcards escaped); both use the trigram index, through read.client_page_ids
 * (schema/migrations/004_search_functions.sql says why a function). */
#include "routes.h"

#define CLIENT_JSON(c)                                                                       \
	"'id', " c ".id, 'first_name', " c ".first_name, 'last_name', " c ".last_name, "       \
	"'email', " c ".email, 'phone', " c ".phone, 'address', " c ".address, "                \
	"'active', " c ".active, 'version', " c ".version, "                                    \
	"'created_at', " RD_RFC3339(c ".created_at") ", "                                      \
	"'updated_at', " RD_RFC3339(c ".updated_at")

static const RdStatement clients_list = {
	"rd_clients_list",
	"WITH page AS ("
	" SELECT c.*, m.rn FROM read.client_page_ids($5::text, $3::timestamptz, $4::uuid,"
	"   $2::int + 1) WITH ORDINALITY AS m(id, rn)"
	"  JOIN read.clients c ON c.tenant_id = $1::uuid AND c.id = m.id)"
	" SELECT (SELECT coalesce(json_agg(json_build_object(" CLIENT_JSON("p") ") ORDER BY p.rn),"
	"   '[]'::json) FROM page p WHERE p.rn <= $2::int)::text,"
	"  k.k1, k.k2"
	" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT p.created_at::text AS k1, p.id::text AS k2"
	"  FROM page p WHERE p.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
	"  k ON true",
	5};

/* $3 the currency exponents. balance_cents: what the client owes, the sum of
 * its invoices' balances (non-zero only while issued or partially paid). */
static const RdStatement client_get = {
	"rd_client_get",
	"SELECT json_build_object(" CLIENT_JSON("c") ","
	" 'patients', coalesce((SELECT json_agg(json_build_object('id', p.id, 'name', p.name,"
	"   'species', p.species, 'status', p.status) ORDER BY p.created_at, p.id)"
	"  FROM read.patients p WHERE p.tenant_id = c.tenant_id AND p.client_id = c.id),"
	"  '[]'::json),"
	" 'balance_cents', (SELECT coalesce(sum(i.balance_cents), 0)::bigint"
	"  FROM read.invoices i WHERE i.tenant_id = c.tenant_id AND i.client_id = c.id),"
	" 'currency', t.currency::text,"
	" 'currency_exponent', " RD_CURRENCY_EXPONENT("t.currency", "$3") ")::text"
	" FROM read.clients c LEFT JOIN read.tenants t ON t.id = c.tenant_id"
	" WHERE c.tenant_id = $1::uuid AND c.id = $2::uuid",
	3};

static int bind_list(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)id;
	return rd_bind_search(rq, r, 4, err);
}

static int bind_get(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)r;
	(void)id;
	(void)err;
	return rd_bind_currency_exponents(rq, 2);
}

const RdRoute rd_routes_clients[] = {
	{"/v1/clients", RD_ROLES_CLINIC, &clients_list, RD_SHAPE_LIST, "clients", bind_list},
	{"/v1/clients/{id}", RD_ROLES_CLINIC, &client_get, RD_SHAPE_ITEM, NULL, bind_get},
	{NULL},
};
