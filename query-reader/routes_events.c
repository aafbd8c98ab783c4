/* GET /v1/events?aggregate_id=&type=&after=&cursor=: the tenant's audit trail,
 * events as stored (the envelope) plus their "position" "P:O", oldest first by
 * (partition, offset). `after` is a plain position "P:O" (what the writer
 * answers in X-Consistency-Token): events strictly after it. `cursor` is the
 * opaque next_cursor of a previous page; both at once is refused. */
#include <string.h>

#include "routes.h"

static const RdStatement events_list = {
	"rd_events_list",
	"WITH page AS ("
	" SELECT e.*, row_number() OVER (ORDER BY e.partition, e.\"offset\") AS rn"
	" FROM (SELECT * FROM read.event_log e"
	"  WHERE e.tenant_id = $1::uuid"
	"   AND ($3::int IS NULL OR (e.partition, e.\"offset\") > ($3::int, $4::bigint))"
	"   AND ($5::uuid IS NULL OR e.aggregate_id = $5::uuid)"
	"   AND ($6::text IS NULL OR e.type = $6::text)"
	"  ORDER BY e.partition, e.\"offset\" LIMIT $2::int + 1) e)"
	" SELECT (SELECT coalesce(json_agg(e.envelope || jsonb_build_object('position',"
	"   e.partition || ':' || e.\"offset\") ORDER BY e.rn), '[]'::json)"
	"   FROM page e WHERE e.rn <= $2::int)::text,"
	"  k.k1, k.k2"
	" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT e.partition::text AS k1,"
	"  e.\"offset\"::text AS k2 FROM page e WHERE e.rn = $2::int"
	"  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
	6};

static int bind_events(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *after = vp_http_query(r, "after");
	char text[24];
	int partition;
	int64_t offset;

	(void)id;
	if (after && vp_http_query(r, "cursor")) {
		vp_error_add_detail(err, "after", "cannot be combined with cursor");
	} else if (after) {
		if (rd_consistency_parse(after, &partition, &offset) < 0) {
			vp_error_add_detail(err, "after", "must be a position P:O");
		} else {
			snprintf(text, sizeof(text), "%d", partition);
			if (rd_param_set(rq, 2, text) < 0)
				return -1;
			snprintf(text, sizeof(text), "%lld", (long long)offset);
			if (rd_param_set(rq, 3, text) < 0)
				return -1;
		}
	}
	if (rd_bind_uuid_query(rq, r, "aggregate_id", 4, err) < 0)
		return -1;
	return rd_bind_text_query(rq, r, "type", 5, 128, err);
}

const RdRoute rd_routes_events[] = {
	{"/v1/events", VP_ROLE_ADMIN | VP_ROLE_OPS, &events_list, RD_SHAPE_LIST, "events",
	 bind_events},
	{NULL},
};
