/* The event envelope of EVENTS.md, shared by the writer (encode) and the
 * projector (decode): one JSON object per Kafka record, key = tenant_id,
 * headers `type` and `v` (the writer adds headers of its own, see
 * cmd-writer/writer.h; consumers ignore them). `data` stays a cJSON object:
 * each consumer reads the fields it needs, and the JSON Schemas in
 * schema/events/ say what they are. */
#ifndef VP_EVENT_H
#define VP_EVENT_H

#include <stdint.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "vp_buf.h"

#define VP_EVENT_MAX_COMMAND_ID 255
#define VP_EVENT_MAX_ACTOR      128

typedef struct VpEvent {
	char id[37];
	char type[48];
	int v;
	char tenant_id[37];
	char aggregate[24];
	char aggregate_id[37];
	int64_t seq;
	char command_id[VP_EVENT_MAX_COMMAND_ID + 1];
	char actor[VP_EVENT_MAX_ACTOR + 1];
	int64_t at_us; /* microseconds since the epoch, UTC */
	cJSON *data;   /* owned: vp_event_release frees it */
} VpEvent;

/* The most bytes an encoded envelope may take (a Kafka record holds 1 MB). */
#define VP_EVENT_MAX_ENCODED (1024 * 1024)

/* Envelope JSON (malloc'd, NUL-terminated) with `at` to the microsecond. */
char *vp_event_encode(const VpEvent *ev);
/* The same text appended to out, so a caller can reuse one buffer for many
 * events; 0, or -1 with out->oom set. */
int vp_event_encode_into(const VpEvent *ev, VpBuf *out);

/* Parses and checks the envelope: every field present with its type, UUIDs
 * canonical, v ≥ 1, seq ≥ 1, at RFC 3339, data an object. On -1 `why` says what
 * is wrong and ev holds nothing to release. */
int vp_event_decode(const char *json, size_t len, VpEvent *ev, char *why, size_t why_cap);

void vp_event_release(VpEvent *ev);

#endif
