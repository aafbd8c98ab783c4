/* Opaque, tamper-proof pagination cursors: base64url(payload) "." base64url(tag),
 * tag = HMAC-SHA-256(key, payload). The payload is the daemon's own text (a
 * keyset position); clients can read it but any change fails verification.
 * libsodium only; the caller has run sodium_init(). */
#ifndef VP_CURSOR_H
#define VP_CURSOR_H

#include <stddef.h>

#define VP_CURSOR_MAX_PAYLOAD 512
#define VP_CURSOR_KEY_BYTES   32

typedef struct VpCursorKey {
	unsigned char bytes[VP_CURSOR_KEY_BYTES];
} VpCursorKey;

/* A key derived from secret (any length ≥ 16 bytes) and a context label, so the
 * same secret used for JWTs gives an unrelated cursor key. 0 or -1. */
int vp_cursor_key_derive(VpCursorKey *key, const char *secret, size_t secret_len,
			 const char *label);

/* A random key (cursors then die with the process). */
void vp_cursor_key_random(VpCursorKey *key);

/* malloc'd NUL-terminated cursor text; NULL when payload is empty, longer than
 * VP_CURSOR_MAX_PAYLOAD or memory runs out. */
char *vp_cursor_encode(const VpCursorKey *key, const char *payload, size_t len);

/* Verifies cursor (len bytes, need not be NUL-terminated) and copies its payload
 * NUL-terminated into out. 0, or -1 (out emptied) when it is malformed, too long,
 * does not fit in out_cap or its tag does not match (constant-time check). */
int vp_cursor_decode(const VpCursorKey *key, const char *cursor, size_t len, char *out,
		     size_t out_cap);

#endif
