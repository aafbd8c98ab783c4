/* Unit tests of common/vp_auth.c (the bearer check both daemons use: scheme in
 * any case, spaces, missing or empty tokens, one leeway) and of the token's sub
 * rules in vp_jwt (it becomes the event's actor: 1-128 bytes of UTF-8 without
 * control characters, never cut). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vp_auth.h"
#include "vp_event.h"

#define NOW	    INT64_C(1800000000)
#define TEST_SECRET "a-test-secret-of-32-bytes-long!!"

static VpJwtVerifier verifier;

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	memset(&verifier, 0, sizeof(verifier));
	verifier.leeway_s = VP_AUTH_LEEWAY_S;
	return vp_jwt_key_from_hs256_secret(&verifier.key, TEST_SECRET);
}

/* A token over {"sub":<sub_json>,"roles":["vet"],"exp":exp}; sub_json is raw
 * JSON text (it may hold escapes or bytes that are not UTF-8). */
static char *token_with(const char *sub_json, int64_t exp)
{
	char payload[1024];
	snprintf(payload, sizeof(payload), "{\"sub\":%s,\"roles\":[\"vet\"],\"exp\":%lld}", sub_json,
		 (long long)exp);
	char *token = vp_jwt_sign(&verifier.key, NULL, payload);
	assert_non_null(token);
	return token;
}

static int auth(const char *header, VpClaims *claims, VpError *err)
{
	vp_error_clear(err);
	return vp_auth_bearer(&verifier, header, NOW, claims, err);
}

static void assert_401(const char *header, const char *message)
{
	VpClaims claims;
	VpError err;
	assert_int_equal(auth(header, &claims, &err), -1);
	assert_int_equal(err.status, 401);
	assert_string_equal(err.code, VP_ERR_UNAUTHENTICATED);
	assert_string_equal(err.message, message);
}

static void scheme_is_case_insensitive(void **state)
{
	(void)state;
	char *token = token_with("\"u-1\"", NOW + 60);
	const char *schemes[] = {"Bearer ", "bearer ", "BEARER ", "bEaReR   "};
	char header[2048];
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		VpClaims claims;
		VpError err;
		snprintf(header, sizeof(header), "%s%s  ", schemes[i], token);
		assert_int_equal(auth(header, &claims, &err), 0);
		assert_string_equal(claims.sub, "u-1");
		assert_int_equal(claims.roles, VP_ROLE_VET);
	}
	free(token);
}

static void malformed_headers_are_401(void **state)
{
	(void)state;
	char *token = token_with("\"u-1\"", NOW + 60);
	char header[2048];
	assert_401(NULL, "a Bearer token is required");
	assert_401("", "a Bearer token is required");
	assert_401("Bearer", "a Bearer token is required");
	assert_401("Bearer    ", "a Bearer token is required");
	assert_401("Basic dTpw", "Authorization must be a Bearer token");
	snprintf(header, sizeof(header), "Bearer%s", token);
	assert_401(header, "Authorization must be a Bearer token");
	snprintf(header, sizeof(header), "Bearers %s", token);
	assert_401(header, "Authorization must be a Bearer token");
	assert_401("Bearer not-a-jwt", "invalid token: malformed token");
	free(token);
}

static void one_leeway_on_expiry(void **state)
{
	(void)state;
	char header[2048];
	char *inside = token_with("\"u\"", NOW - VP_AUTH_LEEWAY_S + 1);
	char *outside = token_with("\"u\"", NOW - VP_AUTH_LEEWAY_S);
	VpClaims claims;
	VpError err;
	snprintf(header, sizeof(header), "Bearer %s", inside);
	assert_int_equal(auth(header, &claims, &err), 0);
	snprintf(header, sizeof(header), "Bearer %s", outside);
	assert_401(header, "invalid token: expired");
	free(inside);
	free(outside);
}

/* --- the cache of verified tokens ---------------------------------------- */

static void cached_token_still_expires(void **state)
{
	(void)state;
	char header[2048];
	char *token = token_with("\"u-cache\"", NOW + 60);
	VpClaims claims;
	VpError err;
	vp_auth_cache_clear();
	snprintf(header, sizeof(header), "Bearer %s", token);
	assert_int_equal(auth(header, &claims, &err), 0); /* verified, cached */
	uint64_t hits = vp_auth_cache_hits();
	assert_int_equal(auth(header, &claims, &err), 0);
	assert_int_equal(vp_auth_cache_hits(), hits + 1);
	assert_string_equal(claims.sub, "u-cache");
	assert_int_equal(claims.roles, VP_ROLE_VET);
	assert_int_equal(claims.exp, NOW + 60);
	/* the same token, from the cache, at and after exp + leeway */
	vp_error_clear(&err);
	assert_int_equal(vp_auth_bearer(&verifier, header, NOW + 60 + VP_AUTH_LEEWAY_S - 1, &claims,
					&err),
			 0);
	vp_error_clear(&err);
	assert_int_equal(vp_auth_bearer(&verifier, header, NOW + 60 + VP_AUTH_LEEWAY_S, &claims,
					&err),
			 -1);
	assert_int_equal(vp_auth_cache_hits(), hits + 3);
	assert_int_equal(err.status, 401);
	assert_string_equal(err.message, "invalid token: expired");
	assert_string_equal(claims.sub, "");
	free(token);
}

static void cached_token_still_waits_for_nbf(void **state)
{
	(void)state;
	char header[2048];
	char payload[256];
	VpClaims claims;
	VpError err;
	vp_auth_cache_clear();
	snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"roles\":[\"vet\"],\"exp\":%lld,\"nbf\":%lld}",
		 (long long)(NOW + 600), (long long)(NOW - 10));
	char *token = vp_jwt_sign(&verifier.key, NULL, payload);
	assert_non_null(token);
	snprintf(header, sizeof(header), "Bearer %s", token);
	assert_int_equal(auth(header, &claims, &err), 0);
	/* a clock stepped back: the cached claims meet nbf again */
	vp_error_clear(&err);
	assert_int_equal(vp_auth_bearer(&verifier, header, NOW - 10 - VP_AUTH_LEEWAY_S - 1,
					&claims, &err),
			 -1);
	assert_string_equal(err.message, "invalid token: not yet valid");
	free(token);
}

static void other_signature_of_same_claims_is_not_cached(void **state)
{
	(void)state;
	char header[2048];
	const char *payload = "{\"sub\":\"u-1\",\"roles\":[\"admin\"],\"exp\":1800000060}";
	VpJwtKey other_key;
	VpClaims claims;
	VpError err;
	vp_auth_cache_clear();
	assert_int_equal(vp_jwt_key_from_hs256_secret(&other_key, "another-secret-of-32-bytes-long!"),
			 0);
	char *good = vp_jwt_sign(&verifier.key, NULL, payload);
	char *forged = vp_jwt_sign(&other_key, NULL, payload);
	assert_non_null(good);
	assert_non_null(forged);
	/* same header and claims, only the signature differs */
	assert_memory_equal(good, forged, (size_t)(strrchr(good, '.') - good));
	snprintf(header, sizeof(header), "Bearer %s", good);
	assert_int_equal(auth(header, &claims, &err), 0);
	assert_int_equal(auth(header, &claims, &err), 0);
	snprintf(header, sizeof(header), "Bearer %s", forged);
	assert_401(header, "invalid token: bad signature");
	assert_401(header, "invalid token: bad signature"); /* the failure is not cached */
	/* the same token under another verifier's key is verified by that one */
	VpJwtVerifier saved = verifier;
	verifier.key = other_key;
	snprintf(header, sizeof(header), "Bearer %s", good);
	assert_401(header, "invalid token: bad signature");
	verifier = saved;
	free(good);
	free(forged);
}

/* Verifies a token of sub "e-<i>" and says whether the cache answered. */
static bool auth_numbered(int i)
{
	char name[16], sub_json[32], header[2048];
	VpClaims claims;
	VpError err;
	snprintf(name, sizeof(name), "e-%d", i);
	snprintf(sub_json, sizeof(sub_json), "\"%s\"", name);
	char *token = token_with(sub_json, NOW + 60);
	snprintf(header, sizeof(header), "Bearer %s", token);
	uint64_t hits = vp_auth_cache_hits();
	assert_int_equal(auth(header, &claims, &err), 0);
	assert_string_equal(claims.sub, name);
	free(token);
	return vp_auth_cache_hits() == hits + 1;
}

static void oldest_token_is_evicted(void **state)
{
	(void)state;
	vp_auth_cache_clear();
	assert_false(auth_numbered(0));
	assert_true(auth_numbered(0));
	for (int i = 1; i < 4096; i++) /* fills the cache: 0 is the oldest */
		assert_false(auth_numbered(i));
	assert_true(auth_numbered(0));
	assert_true(auth_numbered(1));
	assert_false(auth_numbered(4096)); /* takes the place of 0 */
	assert_false(auth_numbered(0));    /* evicted, verified again */
	assert_true(auth_numbered(4096));
	assert_true(auth_numbered(2));
}

static void assert_sub(const char *sub_json, bool good)
{
	char header[4096];
	char *token = token_with(sub_json, NOW + 60);
	VpClaims claims;
	VpError err;
	snprintf(header, sizeof(header), "Bearer %s", token);
	if (good) {
		if (auth(header, &claims, &err) != 0)
			fail_msg("sub %s refused: %s", sub_json, err.message);
	} else {
		assert_401(header, "invalid token: bad sub");
	}
	free(token);
}

static void sub_is_printable_utf8_of_1_to_128_bytes(void **state)
{
	(void)state;
	char json[600];
	char e_acute_64[129] = "";
	for (int i = 0; i < 64; i++)
		strcat(e_acute_64, "\xc3\xa9");
	assert_int_equal(VP_JWT_MAX_SUB_LEN, VP_EVENT_MAX_ACTOR);
	snprintf(json, sizeof(json), "\"%s\"", e_acute_64); /* 128 bytes */
	assert_sub(json, true);
	snprintf(json, sizeof(json), "\"x%s\"", e_acute_64); /* 129 bytes */
	assert_sub(json, false);
	assert_sub("\"vet \xe2\x82\xac 1\"", true);
	assert_sub("\"\"", false);
	assert_sub("\"a\\u0001b\"", false);
	assert_sub("\"a\\tb\"", false);
	assert_sub("\"a\\u007f\"", false);
	assert_sub("\"a\\u0085\"", false); /* C1 NEL */
	assert_sub("\"a\xff\xfe\"", false);
	assert_sub("\"\xc0\xaf\"", false); /* overlong */
	assert_sub("\"\xed\xa0\x80\"", false); /* a surrogate */
	assert_sub("42", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scheme_is_case_insensitive),
		cmocka_unit_test(malformed_headers_are_401),
		cmocka_unit_test(one_leeway_on_expiry),
		cmocka_unit_test(sub_is_printable_utf8_of_1_to_128_bytes),
		cmocka_unit_test(cached_token_still_expires),
		cmocka_unit_test(cached_token_still_waits_for_nbf),
		cmocka_unit_test(other_signature_of_same_claims_is_not_cached),
		cmocka_unit_test(oldest_token_is_evicted),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
