/* libFuzzer target: event envelopes as the projector reads them off Kafka
 * (common/vp_event.c decode, common/vp_catalog.c check). Any bytes: decode
 * either refuses with a reason or gives an envelope; that envelope encoded
 * (the writer's path) decodes to the same envelope and encodes to the same
 * text again, and the catalog gives the same verdict on the original and on
 * the re-encoded text; an event the catalog accepts whole
 * (vp_catalog_check_encoded) is one vp_event_decode and vp_catalog_check
 * accept too. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "vp_catalog.h"
#include "vp_event.h"

static void check_same(const VpEvent *a, const VpEvent *b, const char *text)
{
	FUZZ_CHECK(!strcmp(a->id, b->id) && !strcmp(a->type, b->type) && a->v == b->v &&
		       !strcmp(a->tenant_id, b->tenant_id) && !strcmp(a->aggregate, b->aggregate) &&
		       !strcmp(a->aggregate_id, b->aggregate_id) && a->seq == b->seq &&
		       !strcmp(a->command_id, b->command_id) && !strcmp(a->actor, b->actor) &&
		       a->at_us == b->at_us,
		   "envelope changed by encode/decode: %s", text);
	FUZZ_CHECK(cJSON_Compare(a->data, b->data, true), "data changed by encode/decode: %s",
		   text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256] = "", why_again[256] = "";
	VpEvent ev, again;
	/* exactly size bytes, no NUL after them: ASan sees a read past len */
	char *json = malloc(size ? size : 1);

	if (!json)
		return 0;
	if (size)
		memcpy(json, data, size);
	int whole = vp_catalog_check_encoded(json, size, why, sizeof(why));
	if (vp_event_decode(json, size, &ev, why, sizeof(why)) < 0) {
		FUZZ_CHECK(whole < 0, "the catalog accepts what decode refuses");
		FUZZ_CHECK(why[0] != '\0', "refused without a reason");
		free(json);
		return 0;
	}
	FUZZ_CHECK(ev.data && cJSON_IsObject(ev.data), "decoded data is not an object");
	FUZZ_CHECK(ev.v >= 1 && ev.seq >= 1, "v %d seq %lld", ev.v, (long long)ev.seq);
	int checked = vp_catalog_check(&ev, why, sizeof(why));
	FUZZ_CHECK(whole < 0 || checked == 0, "the whole check passes, vp_catalog_check: %s", why);

	char *text = vp_event_encode(&ev);
	FUZZ_CHECK(text != NULL, "a decoded envelope does not encode");
	/* Only data the catalog accepts is held to an exact round trip: cJSON
	 * keeps numbers as doubles, so e.g. 1e400 in a refused event reads back
	 * as null. */
	if (vp_event_decode(text, strlen(text), &again, why_again, sizeof(why_again)) < 0)
		FUZZ_CHECK(false, "the encoding of a decoded envelope is refused (%s): %s",
			   why_again, text);
	if (checked == 0) {
		check_same(&ev, &again, text);
		char *text_again = vp_event_encode(&again);
		FUZZ_CHECK(text_again && !strcmp(text, text_again), "encodings differ: %s / %s",
			   text, text_again);
		free(text_again);
		FUZZ_CHECK(vp_catalog_check(&again, why_again, sizeof(why_again)) == 0,
			   "accepted, re-encoded refused (%s): %s", why_again, text);
		int whole_again =
		    vp_catalog_check_encoded(text, strlen(text), why_again, sizeof(why_again));
		FUZZ_CHECK((whole_again == 0) == (whole == 0),
			   "whole check %d on the input, %d on its encoding (%s): %s", whole,
			   whole_again, why_again, text);
	}
	vp_event_release(&again);
	free(text);
	vp_event_release(&ev);
	free(json);
	return 0;
}
