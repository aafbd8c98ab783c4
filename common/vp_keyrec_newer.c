/* Which record of a key-record name counts (vp_keyrec_newer.h). */
#include <string.h>

#include "vp_json.h"
#include "vp_keyrec_newer.h"
#include "vp_sealed.h"
#include "vp_time.h"

VpKeyrecRank vp_keyrec_rank_json(const cJSON *v)
{
	VpKeyrecRank r = {VP_KEYREC_NOTHING, false, INT64_MIN};
	if (!v)
		return r;
	const char *kind = vp_json_str(v, "kind"), *at = vp_json_str(v, "created_at");
	r.state = kind && !strcmp(kind, VP_KEYREC_ERASED) ? VP_KEYREC_MARKER : VP_KEYREC_KEY;
	/* a tenant's record and the master record are rewritten by a rotation */
	r.dated = kind && (!strcmp(kind, VP_KEYREC_TENANT) || !strcmp(kind, VP_KEYREC_MASTER));
	if (r.dated && at)
		vp_time_parse_rfc3339(at, strlen(at), &r.created_us); /* untouched if not */
	return r;
}

VpKeyrecRank vp_keyrec_rank(const char *value, size_t len)
{
	if (!value)
		return vp_keyrec_rank_json(NULL);
	cJSON *v = cJSON_ParseWithLength(value, len);
	VpKeyrecRank r = vp_keyrec_rank_json(v);
	if (!v)
		r.state = VP_KEYREC_KEY; /* a record, though not one of ours: not a tombstone */
	cJSON_Delete(v);
	return r;
}

bool vp_keyrec_supersedes(const VpKeyrecRank *held, const VpKeyrecRank *next)
{
	if (next->state == VP_KEYREC_NOTHING || held->state == VP_KEYREC_NOTHING)
		return true; /* a tombstone drops the name; after one, or none, any counts */
	if (held->state == VP_KEYREC_MARKER)
		return false; /* erasure is final */
	if (next->state == VP_KEYREC_MARKER)
		return true;
	if (held->dated && next->dated)
		return next->created_us >= held->created_us;
	return true;
}
