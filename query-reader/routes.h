/* The pieces the route files share: the heap request of an asynchronous query,
 * the route table entry and the parameter binders. Statement parameter
 * conventions: $1 is always the tenant; an item takes $2 = the path id (an item
 * without one, a computed answer, binds its own from $2); a list
 * takes $2 = limit, $3/$4 = the keyset position (NULL on the first page) and
 * its filters from $5, and answers one row (data, next k1, next k2[, parent
 * exists[, a JSON object whose members go beside data]]). */
#ifndef ROUTES_H
#define ROUTES_H

#include "reader.h"

#define RD_MAX_PARAMS 10

/* Timestamps as RFC 3339 in UTC with Z, fraction only when not zero. */
#define RD_RFC3339(x)                                                                        \
	"(rtrim(rtrim(to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "  \
	"'0'), '.') || 'Z')"
/* Thousandths (quantity_milli) as a number with 3 places. */
#define RD_QTY(milli) "round((" milli ") / 1000.0, 3)"
/* The ISO 4217 exponent of the currency code c (SQL text), with p the
 * parameter bound by rd_bind_currency_exponents; NULL when c is. */
#define RD_CURRENCY_EXPONENT(c, p)                                                           \
	"(CASE WHEN " c " IS NULL THEN NULL ELSE coalesce((" p "::jsonb ->> upper(" c          \
	"::text))::int, 2) END)"

typedef enum { RD_SHAPE_ITEM, RD_SHAPE_LIST } RdShape;

typedef struct RdRoute {
	const char *pattern;
	unsigned roles; /* VP_ROLE_* bits allowed */
	const RdStatement *stmt;
	RdShape shape;
	const char *cursor_kind; /* lists: first field of the cursor payload */
	/* Extra parameters from the query string (id: the canonical path id or
	 * NULL); bad input adds details to err; -1 only on out of memory. */
	int (*bind)(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err);
	/* Items answered as of a moment too (?as_of=, as_of.c): the roles that
	 * may ask (instead of roles); 0 when the route ignores as_of. */
	unsigned as_of_roles;
} RdRoute;

/* Parameter text most requests need (tenant, id, limit, a cursor) fits in
 * param_text; a longer value gets its own allocation (bit set in heap_params). */
#define RD_PARAM_TEXT 256

struct RdRequest {
	VpHttpRequest http; /* copied; owns the evhttp_request until the reply */
	RdLoop *loop;
	const RdRoute *route;
	char tenant_id[37];
	char *params[RD_MAX_PARAMS];
	unsigned heap_params;
	size_t param_text_used;
	char param_text[RD_PARAM_TEXT];
	int limit;
	bool has_as_of;   /* ?as_of= given: answered by a fold (as_of.c) */
	int64_t as_of_us; /* checked: not in the future */
};

/* The answer of rq from a statement's result (or error, then 503), and an
 * error answer; both free rq. For answers computed off the pool (as_of.c). */
void rd_request_result(const PGresult *res, const char *error, void *arg);
void rd_request_reply_error(RdRequest *rq, VpError *err);

/* Tables of the route files, each ending with an entry whose pattern is NULL. */
extern const RdRoute rd_routes_clients[];
extern const RdRoute rd_routes_patients[];
extern const RdRoute rd_routes_staff[];
extern const RdRoute rd_routes_events[];
extern const RdRoute rd_routes_scheduling[];
extern const RdRoute rd_routes_records[];
extern const RdRoute rd_routes_stock[];
extern const RdRoute rd_routes_billing[];
/* routes_table.c: all of them, NULL-terminated. */
extern const RdRoute *const rd_route_groups[];

/* Who may ask for an item as of a moment (as_of.c). */
#define RD_ROLES_AS_OF (VP_ROLE_ADMIN | VP_ROLE_VET | VP_ROLE_NURSE)
#define RD_ROLES_CLINIC (VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET | VP_ROLE_NURSE)
#define RD_ROLES_TENANT                                                                      \
	(VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET | VP_ROLE_NURSE | VP_ROLE_ANALYST |    \
	 VP_ROLE_OPS)

int rd_param_set(RdRequest *rq, int index, const char *value);
int rd_uuid_canonical(const char *s, char out[37]);
int rd_bind_uuid_query(RdRequest *rq, VpHttpRequest *r, const char *name, int index,
		       VpError *err);
int rd_bind_text_query(RdRequest *rq, VpHttpRequest *r, const char *name, int index,
		       size_t max_len, VpError *err);
int rd_bind_search(RdRequest *rq, VpHttpRequest *r, int index, VpError *err);
/* params[index] = the currencies whose exponent is not 2, a JSON object
 * ({"BHD":3,"JPY":0,...}) for RD_CURRENCY_EXPONENT. */
int rd_bind_currency_exponents(RdRequest *rq, int index);

#endif
