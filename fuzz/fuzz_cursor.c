/* libFuzzer target: pagination cursors (common/vp_cursor.c). The first byte
 * picks a mode: the rest decoded as a cursor a client sent (and one that
 * decodes must be the very text the key encodes for its payload: no second
 * spelling, no forgery), or the rest as a payload encoded then decoded (the
 * same payload back; any one byte changed, or too small a buffer, refused). */
#include "fuzz.h"

#include <sodium.h>

#include "vp_cursor.h"

static VpCursorKey key, other_key;

static void keys_once(void)
{
	static bool ready;
	static const char secret[] = "fuzz-cursor-secret-0123456789";

	if (ready)
		return;
	FUZZ_CHECK(sodium_init() >= 0, "sodium_init");
	FUZZ_CHECK(vp_cursor_key_derive(&key, secret, strlen(secret), "cursor") == 0, "key");
	FUZZ_CHECK(vp_cursor_key_derive(&other_key, secret, strlen(secret), "other") == 0, "key");
	ready = true;
}

static void check_client_cursor(const char *cursor, size_t len)
{
	char payload[VP_CURSOR_MAX_PAYLOAD + 1];

	if (vp_cursor_decode(&key, cursor, len, payload, sizeof(payload)) != 0) {
		FUZZ_CHECK(payload[0] == '\0', "a refused cursor leaves a payload");
		return;
	}
	size_t payload_len = strlen(payload);
	char *again = vp_cursor_encode(&key, payload, payload_len);
	FUZZ_CHECK(again != NULL, "payload of %zu bytes decoded but does not encode", payload_len);
	FUZZ_CHECK(strlen(again) == len && memcmp(again, cursor, len) == 0,
		   "cursor %.*s decodes but is not the encoding %s", (int)len, cursor, again);
	free(again);
	FUZZ_CHECK(vp_cursor_decode(&other_key, cursor, len, payload, sizeof(payload)) != 0,
		   "another key accepts %.*s", (int)len, cursor);
}

static void check_round_trip(const char *payload, size_t len, size_t flip_at)
{
	char back[VP_CURSOR_MAX_PAYLOAD + 1];
	char *cursor = vp_cursor_encode(&key, payload, len);
	bool encodable = len >= 1 && len <= VP_CURSOR_MAX_PAYLOAD;

	FUZZ_CHECK((cursor != NULL) == encodable, "payload of %zu bytes", len);
	if (!cursor)
		return;
	size_t cursor_len = strlen(cursor);
	int rc = vp_cursor_decode(&key, cursor, cursor_len, back, sizeof(back));
	/* Payloads are the daemons' own text: one holding NUL is refused on the way
	 * back, since the caller gets it NUL-terminated. */
	if (memchr(payload, '\0', len)) {
		FUZZ_CHECK(rc != 0, "a payload with NUL decodes");
	} else {
		FUZZ_CHECK(rc == 0 && strlen(back) == len && memcmp(back, payload, len) == 0,
			   "%s does not give its payload back", cursor);
		FUZZ_CHECK(vp_cursor_decode(&key, cursor, cursor_len, back, len) != 0 &&
			       back[0] == '\0',
			   "payload of %zu bytes fits in as many", len);
		cursor[flip_at % cursor_len] ^= 0x01;
		FUZZ_CHECK(vp_cursor_decode(&key, cursor, cursor_len, back, sizeof(back)) != 0,
			   "changed cursor %s still decodes", cursor);
	}
	free(cursor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	if (size == 0)
		return 0;
	keys_once();
	/* exactly size - 1 bytes, no NUL after them: ASan sees a read past len */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & 1)
		check_round_trip(copy, size - 1, data[0] >> 1);
	else
		check_client_cursor(copy, size - 1);
	free(copy);
	return 0;
}
