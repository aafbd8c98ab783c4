/* libFuzzer target: bearer tokens (common/vp_jwt.c, common/vp_auth.c). The first
 * byte picks a mode:
 *   0  the rest is a token from a client, checked by an HS256 and an EdDSA
 *      verifier: one that is accepted must carry the signature the key makes
 *      over its first two parts (recomputed here: HMAC-SHA-256, or Ed25519,
 *      which is deterministic), so bytes without the key never verify;
 *   1  the rest is a payload, signed with vp_jwt_sign for each key: the claims
 *      code then sees any payload; whatever it accepts, another key, another
 *      algorithm or any one byte changed must not;
 *   2  the rest is "header NUL payload", signed here with the HS256 key: the
 *      header rules (alg, typ, crit) see any header.
 * In every mode vp_auth_bearer("Bearer " token) agrees with vp_jwt_verify,
 * on the first call and on the cached second one, and accepted claims hold
 * what vp_jwt.h promises. */
#include "fuzz.h"

#include <sodium.h>
#include <cjson/cJSON.h>

#include "vp_auth.h"
#include "vp_json.h"
#include "vp_jwt.h"
#include "vp_uuid.h"

#define NOW_S	    INT64_C(1800000000) /* 2027-01-15 */
#define HS_SECRET   "fuzz-hs256-secret-0123456789abcdef"
#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static VpJwtVerifier hs_verifier, ed_verifier, other_hs_verifier;
static unsigned char ed_secret_key[crypto_sign_SECRETKEYBYTES];

static void keys_once(void)
{
	static bool ready;
	unsigned char seed[crypto_sign_SEEDBYTES];

	if (ready)
		return;
	FUZZ_CHECK(sodium_init() >= 0, "sodium_init");
	FUZZ_CHECK(vp_jwt_key_from_hs256_secret(&hs_verifier.key, HS_SECRET) == 0, "hs key");
	FUZZ_CHECK(vp_jwt_key_from_hs256_secret(&other_hs_verifier.key, HS_SECRET "x") == 0,
		   "hs key");
	memset(seed, 7, sizeof(seed));
	ed_verifier.key.alg = VP_JWT_EDDSA;
	FUZZ_CHECK(crypto_sign_seed_keypair(ed_verifier.key.public_key, ed_secret_key, seed) == 0,
		   "ed key");
	hs_verifier.leeway_s = ed_verifier.leeway_s = VP_AUTH_LEEWAY_S;
	ready = true;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* What an accepted token's claims promise (vp_jwt.h). */
static void check_claims(const VpClaims *c)
{
	size_t sub_len = strnlen(c->sub, sizeof(c->sub));
	VpUuid tid;
	char canonical[37];

	FUZZ_CHECK(sub_len >= 1 && sub_len <= VP_JWT_MAX_SUB_LEN, "sub of %zu bytes", sub_len);
	FUZZ_CHECK(vp_utf8_printable(c->sub, sub_len), "sub %s", c->sub);
	FUZZ_CHECK(NOW_S < c->exp + VP_AUTH_LEEWAY_S, "expired at %lld", (long long)c->exp);
	FUZZ_CHECK(!c->has_nbf || c->nbf - VP_AUTH_LEEWAY_S <= NOW_S, "nbf %lld",
		   (long long)c->nbf);
	FUZZ_CHECK(c->roles < (VP_ROLE_OPS << 1), "roles %#x", c->roles);
	if (c->has_tid) {
		FUZZ_CHECK(vp_uuid_parse(c->tid, strlen(c->tid), &tid) == 0, "tid %s", c->tid);
		vp_uuid_format(&tid, canonical);
		FUZZ_CHECK(strcmp(canonical, c->tid) == 0, "tid %s not canonical", c->tid);
	} else {
		FUZZ_CHECK(c->tid[0] == '\0', "tid %s without has_tid", c->tid);
	}
}

/* The signature an accepted token must carry, made here without vp_jwt.c. */
static void check_signed_with_key(const VpJwtVerifier *v, const char *token, size_t len)
{
	const char *last_dot = memrchr(token, '.', len);
	unsigned char sig[crypto_sign_BYTES];
	char expected[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, B64_VARIANT)];
	size_t signed_len;

	FUZZ_CHECK(last_dot != NULL, "accepted token without a dot");
	signed_len = (size_t)(last_dot - token);
	if (v->key.alg == VP_JWT_HS256) {
		crypto_auth_hmacsha256_state st;

		crypto_auth_hmacsha256_init(&st, (const unsigned char *)HS_SECRET,
					    strlen(HS_SECRET));
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, signed_len);
		crypto_auth_hmacsha256_final(&st, sig);
		sodium_bin2base64(expected, sizeof(expected), sig, crypto_auth_hmacsha256_BYTES,
				  B64_VARIANT);
	} else {
		crypto_sign_detached(sig, NULL, (const unsigned char *)token, signed_len,
				     ed_secret_key);
		sodium_bin2base64(expected, sizeof(expected), sig, crypto_sign_BYTES, B64_VARIANT);
	}
	FUZZ_CHECK(len - signed_len - 1 == strlen(expected) &&
		       memcmp(last_dot + 1, expected, strlen(expected)) == 0,
		   "accepted %.*s, whose signature is not %s", (int)len, token, expected);
}

/* vp_jwt_verify, its invariants, and vp_auth_bearer's agreement (twice: the
 * second answer may come from its cache). 0 when the token is accepted. */
static int verify(const VpJwtVerifier *v, const char *token, size_t len)
{
	VpClaims claims, bearer_claims;
	char why[64] = "";
	VpError err;
	int rc = vp_jwt_verify(v, token, len, NOW_S, &claims, why, sizeof(why));

	if (rc == 0) {
		check_claims(&claims);
		check_signed_with_key(v, token, len);
	} else {
		FUZZ_CHECK(rc == -1 && why[0] != '\0', "rc %d why \"%s\"", rc, why);
		FUZZ_CHECK(all_zero(&claims, sizeof(claims)), "refused (%s) with claims", why);
	}
	if (memchr(token, '\0', len) || len > VP_JWT_MAX_TOKEN_LEN)
		return rc;
	char *header = malloc(len + sizeof("Bearer "));
	if (!header)
		return rc;
	memcpy(header, "Bearer ", 7);
	memcpy(header + 7, token, len);
	header[len + 7] = '\0';
	for (int round = 0; round < 2; round++) {
		vp_error_clear(&err);
		int bearer_rc = vp_auth_bearer(v, header, NOW_S, &bearer_claims, &err);
		/* the header form drops blanks around the token; so does nothing else */
		bool trimmed =
		    len > 0 && (token[0] == ' ' || token[len - 1] == ' ' || token[len - 1] == '\t');
		if (trimmed)
			break;
		FUZZ_CHECK(bearer_rc == rc, "vp_auth_bearer %d, vp_jwt_verify %d (%s)", bearer_rc,
			   rc, why);
		if (rc == 0)
			FUZZ_CHECK(memcmp(&bearer_claims, &claims, sizeof(claims)) == 0,
				   "vp_auth_bearer's claims differ (round %d)", round);
		else
			FUZZ_CHECK(err.status == 401, "status %d", err.status);
	}
	free(header);
	return rc;
}

static void check_signed_payload(const char *payload, size_t flip_at)
{
	const VpJwtVerifier *verifiers[] = {&hs_verifier, &ed_verifier};
	char *token;

	for (size_t i = 0; i < 2; i++) {
		const VpJwtVerifier *v = verifiers[i];

		token = vp_jwt_sign(&v->key, v == &ed_verifier ? ed_secret_key : NULL, payload);
		if (!token)
			continue;
		size_t len = strlen(token);
		if (verify(v, token, len) == 0) {
			FUZZ_CHECK(verify(verifiers[1 - i], token, len) != 0, "other alg accepts");
			FUZZ_CHECK(verify(&other_hs_verifier, token, len) != 0,
				   "other key accepts");
			token[flip_at % len] ^= 0x01;
			FUZZ_CHECK(verify(v, token, len) != 0, "changed token %s accepted", token);
		}
		free(token);
	}
}

/* "header NUL payload" (no NUL: the payload under a standard header). */
static void check_header_and_payload(const char *text, size_t size)
{
	const char *nul = memchr(text, '\0', size);
	const char *header = nul ? text : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	size_t header_len = nul ? (size_t)(nul - text) : strlen(header);
	const char *payload = nul ? nul + 1 : text;
	size_t payload_len = nul ? size - header_len - 1 : size;
	size_t cap = sodium_base64_ENCODED_LEN(header_len, B64_VARIANT) +
		     sodium_base64_ENCODED_LEN(payload_len, B64_VARIANT) +
		     sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, B64_VARIANT);
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *token = malloc(cap);
	size_t pos;

	if (!token)
		return;
	sodium_bin2base64(token, cap, (const unsigned char *)header, header_len, B64_VARIANT);
	pos = strlen(token);
	token[pos++] = '.';
	sodium_bin2base64(token + pos, cap - pos, (const unsigned char *)payload, payload_len,
			  B64_VARIANT);
	pos += strlen(token + pos);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)HS_SECRET, strlen(HS_SECRET));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, pos);
	crypto_auth_hmacsha256_final(&st, mac);
	token[pos++] = '.';
	sodium_bin2base64(token + pos, cap - pos, mac, sizeof(mac), B64_VARIANT);
	if (verify(&hs_verifier, token, strlen(token)) == 0) {
		/* then the header named HS256, exactly once, typ JWT if any, no crit */
		char *header_text = fuzz_text((const uint8_t *)header, header_len);
		cJSON *h = header_text ? cJSON_Parse(header_text) : NULL;
		const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
		if (header_text) {
			FUZZ_CHECK(cJSON_IsString(alg) && !strcmp(alg->valuestring, "HS256"),
				   "header %s accepted", header_text);
			FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(h, "crit"), "crit in %s",
				   header_text);
		}
		cJSON_Delete(h);
		free(header_text);
	}
	free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size == 0)
		return 0;
	keys_once();
	switch (data[0] % 3) {
	case 0:
		/* exactly size - 1 bytes: ASan sees a read past the token */
		text = malloc(size - 1 ? size - 1 : 1);
		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		verify(&hs_verifier, text, size - 1);
		verify(&ed_verifier, text, size - 1);
		free(text);
		break;
	case 1:
		text = fuzz_text(data + 1, size - 1);
		if (text)
			check_signed_payload(text, data[0] >> 2);
		free(text);
		break;
	case 2:
		text = fuzz_text(data + 1, size - 1);
		if (text)
			check_header_and_payload(text, size - 1);
		free(text);
		break;
	}
	return 0;
}
