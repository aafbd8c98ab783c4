/* Signed pagination cursors (see vp_cursor.h). */
#include "vp_cursor.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TAG_BYTES   crypto_auth_hmacsha256_BYTES

int vp_cursor_key_derive(VpCursorKey *key, const char *secret, size_t secret_len,
			 const char *label)
{
	crypto_auth_hmacsha256_state st;

	if (!secret || secret_len < 16 || !label)
		return -1;
	/* HMAC(secret, label) is a PRF output: a key independent of other uses of
	 * the secret (HKDF-Extract style with the label as the message). */
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, strlen(label));
	crypto_auth_hmacsha256_final(&st, key->bytes);
	sodium_memzero(&st, sizeof(st));
	return 0;
}

void vp_cursor_key_random(VpCursorKey *key)
{
	randombytes_buf(key->bytes, sizeof(key->bytes));
}

static void tag_of(const VpCursorKey *key, const unsigned char *payload, size_t len,
		   unsigned char tag[TAG_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key->bytes, sizeof(key->bytes));
	crypto_auth_hmacsha256_update(&st, payload, len);
	crypto_auth_hmacsha256_final(&st, tag);
}

char *vp_cursor_encode(const VpCursorKey *key, const char *payload, size_t len)
{
	unsigned char tag[TAG_BYTES];
	size_t payload_b64 = sodium_base64_encoded_len(len, B64_VARIANT);
	size_t tag_b64 = sodium_base64_encoded_len(TAG_BYTES, B64_VARIANT);
	char *out;

	if (!payload || len == 0 || len > VP_CURSOR_MAX_PAYLOAD)
		return NULL;
	/* each encoded length counts its own NUL: one becomes the '.' */
	out = malloc(payload_b64 + tag_b64);
	if (!out)
		return NULL;
	tag_of(key, (const unsigned char *)payload, len, tag);
	sodium_bin2base64(out, payload_b64, (const unsigned char *)payload, len, B64_VARIANT);
	size_t used = strlen(out);
	out[used++] = '.';
	sodium_bin2base64(out + used, tag_b64, tag, TAG_BYTES, B64_VARIANT);
	return out;
}

int vp_cursor_decode(const VpCursorKey *key, const char *cursor, size_t len, char *out,
		     size_t out_cap)
{
	unsigned char payload[VP_CURSOR_MAX_PAYLOAD];
	unsigned char tag[TAG_BYTES];
	unsigned char expected[TAG_BYTES];
	size_t payload_len = 0;
	size_t tag_len = 0;
	const char *end = NULL;
	const char *dot;

	if (out_cap > 0)
		out[0] = '\0';
	if (!cursor || out_cap == 0 ||
	    len > sodium_base64_encoded_len(VP_CURSOR_MAX_PAYLOAD, B64_VARIANT) +
			  sodium_base64_encoded_len(TAG_BYTES, B64_VARIANT))
		return -1;
	dot = memchr(cursor, '.', len);
	if (!dot || dot == cursor)
		return -1;
	if (sodium_base642bin(payload, sizeof(payload), cursor, (size_t)(dot - cursor), NULL,
			      &payload_len, &end, B64_VARIANT) != 0 ||
	    end != dot || payload_len == 0)
		return -1;
	if (sodium_base642bin(tag, sizeof(tag), dot + 1, len - (size_t)(dot - cursor) - 1, NULL,
			      &tag_len, &end, B64_VARIANT) != 0 ||
	    end != cursor + len || tag_len != TAG_BYTES)
		return -1;
	tag_of(key, payload, payload_len, expected);
	if (sodium_memcmp(tag, expected, TAG_BYTES) != 0)
		return -1;
	if (payload_len >= out_cap || memchr(payload, '\0', payload_len))
		return -1;
	memcpy(out, payload, payload_len);
	out[payload_len] = '\0';
	return 0;
}
