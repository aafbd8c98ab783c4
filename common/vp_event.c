/* The event envelope (see vp_event.h): encode for the writer, strict decode for
 * the projector. Decoding never trusts a member's type; every failure names the
 * member so a dead letter says what was wrong. */
#include "vp_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_buf.h"
#include "vp_error.h"
#include "vp_json.h"
#include "vp_time.h"
#include "vp_uuid.h"

static int fail(char *why, size_t why_cap, const char *member, const char *issue)
{
	if (why && why_cap)
		snprintf(why, why_cap, "envelope: %s %s", member, issue);
	return -1;
}

/* A string member of 1..cap-1 bytes copied into out. */
static int take_string(const cJSON *root, const char *member, char *out, size_t cap, char *why,
		       size_t why_cap)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, member);
	if (!item || cJSON_IsNull(item))
		return fail(why, why_cap, member, "is required");
	if (!cJSON_IsString(item) || !item->valuestring)
		return fail(why, why_cap, member, "must be a string");
	size_t len = strlen(item->valuestring);
	if (len == 0)
		return fail(why, why_cap, member, "must not be empty");
	if (len >= cap)
		return fail(why, why_cap, member, "is too long");
	memcpy(out, item->valuestring, len + 1);
	return 0;
}

/* A canonical UUID member, stored lower case. */
static int take_uuid(const cJSON *root, const char *member, char out[37], char *why,
		     size_t why_cap)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, member);
	VpUuid parsed;
	if (!item || cJSON_IsNull(item))
		return fail(why, why_cap, member, "is required");
	if (!cJSON_IsString(item) || !item->valuestring)
		return fail(why, why_cap, member, "must be a string");
	if (vp_uuid_parse(item->valuestring, strlen(item->valuestring), &parsed) < 0)
		return fail(why, why_cap, member, "must be a canonical UUID");
	vp_uuid_format(&parsed, out);
	return 0;
}

static int take_int(const cJSON *root, const char *member, long long min, long long max,
		    long long *out, char *why, size_t why_cap)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, member);
	if (!item || cJSON_IsNull(item))
		return fail(why, why_cap, member, "is required");
	if (!vp_json_int(root, member, out))
		return fail(why, why_cap, member, "must be an integer");
	if (*out < min || *out > max)
		return fail(why, why_cap, member, "is out of range");
	return 0;
}

/* The type is an identifier: letters and digits only, so it is safe in logs,
 * headers and metric labels. */
static int check_type_name(const char *type, char *why, size_t why_cap)
{
	for (const char *p = type; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return fail(why, why_cap, "type", "must be letters and digits");
	}
	return 0;
}

int vp_event_decode(const char *json, size_t len, VpEvent *ev, char *why, size_t why_cap)
{
	cJSON *root = NULL;
	VpError err;
	VpEvent out;
	long long number;
	int rc = -1;

	memset(&out, 0, sizeof(out));
	vp_error_clear(&err);
	if (!json || vp_json_parse(json, len, &root, &err) < 0) {
		snprintf(why, why_cap, "not JSON: %s%s%s", err.message,
			 err.n_details ? ": " : "", err.n_details ? err.details[0].issue : "");
		goto done;
	}
	if (!cJSON_IsObject(root)) {
		fail(why, why_cap, "value", "must be a JSON object");
		goto done;
	}
	if (take_uuid(root, "id", out.id, why, why_cap) < 0 ||
	    take_string(root, "type", out.type, sizeof(out.type), why, why_cap) < 0 ||
	    check_type_name(out.type, why, why_cap) < 0 ||
	    take_int(root, "v", 1, 1000000, &number, why, why_cap) < 0)
		goto done;
	out.v = (int)number;
	if (take_uuid(root, "tenant_id", out.tenant_id, why, why_cap) < 0 ||
	    take_string(root, "aggregate", out.aggregate, sizeof(out.aggregate), why, why_cap) < 0 ||
	    take_uuid(root, "aggregate_id", out.aggregate_id, why, why_cap) < 0 ||
	    take_int(root, "seq", 1, VP_JSON_MAX_SAFE_INT, &number, why, why_cap) < 0)
		goto done;
	out.seq = number;
	if (take_string(root, "command_id", out.command_id, sizeof(out.command_id), why, why_cap) <
		    0 ||
	    take_string(root, "actor", out.actor, sizeof(out.actor), why, why_cap) < 0)
		goto done;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "at");
	if (!at || cJSON_IsNull(at)) {
		fail(why, why_cap, "at", "is required");
		goto done;
	}
	if (!cJSON_IsString(at) || !at->valuestring ||
	    vp_time_parse_rfc3339(at->valuestring, strlen(at->valuestring), &out.at_us) < 0) {
		fail(why, why_cap, "at", "must be an RFC 3339 time");
		goto done;
	}
	cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (!data || cJSON_IsNull(data)) {
		fail(why, why_cap, "data", "is required");
		goto done;
	}
	if (!cJSON_IsObject(data)) {
		fail(why, why_cap, "data", "must be an object");
		goto done;
	}
	out.data = cJSON_DetachItemViaPointer(root, data);
	*ev = out;
	rc = 0;
done:
	cJSON_Delete(root);
	return rc;
}

/* "name": as a member's opening; names are ours and need no escaping. */
static int write_member_name(VpBuf *out, const char *name, bool first)
{
	if (!first && vp_buf_append(out, ",", 1) < 0)
		return -1;
	return vp_buf_printf(out, "\"%s\":", name);
}

static int write_string_member(VpBuf *out, const char *name, const char *value)
{
	if (write_member_name(out, name, false) < 0)
		return -1;
	return vp_json_write_string(out, value);
}

/* The members in the order cJSON gave them when the envelope was a tree, so
 * the log reads the same before and after. Integers as integer text: a double
 * with 15 significant digits would round a seq above 10^15. */
int vp_event_encode_into(const VpEvent *ev, VpBuf *out)
{
	char at[VP_TIME_RFC3339_MAX];
	if (vp_time_format_rfc3339_us(ev->at_us, at, sizeof(at)) == 0) {
		out->oom = true;
		return -1;
	}
	if (vp_buf_append(out, "{", 1) < 0 || write_member_name(out, "id", true) < 0 ||
	    vp_json_write_string(out, ev->id) < 0 || write_string_member(out, "type", ev->type) < 0 ||
	    vp_buf_printf(out, ",\"v\":%d", ev->v) < 0 ||
	    write_string_member(out, "tenant_id", ev->tenant_id) < 0 ||
	    write_string_member(out, "aggregate", ev->aggregate) < 0 ||
	    write_string_member(out, "aggregate_id", ev->aggregate_id) < 0 ||
	    vp_buf_printf(out, ",\"seq\":%lld", (long long)ev->seq) < 0 ||
	    write_string_member(out, "command_id", ev->command_id) < 0 ||
	    write_string_member(out, "actor", ev->actor) < 0 ||
	    write_string_member(out, "at", at) < 0 || write_member_name(out, "data", false) < 0)
		return -1;
	if (ev->data ? vp_json_write(out, ev->data) : vp_buf_append(out, "{}", 2))
		return -1;
	return vp_buf_append(out, "}", 1);
}

char *vp_event_encode(const VpEvent *ev)
{
	VpBuf out;
	vp_buf_init(&out, VP_EVENT_MAX_ENCODED);
	if (vp_event_encode_into(ev, &out) < 0) {
		vp_buf_free(&out);
		return NULL;
	}
	return vp_buf_take(&out);
}

void vp_event_release(VpEvent *ev)
{
	if (!ev)
		return;
	cJSON_Delete(ev->data);
	ev->data = NULL;
}
