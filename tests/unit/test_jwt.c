/* Unit tests of common/vp_jwt.c: HS256 and EdDSA verification, every refusal rule
 * (algorithm confusion, alg none, tampering, claims, shapes, sizes), a known-answer
 * HS256 vector computed with Python's hmac, and signing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vp_jwt.h"

#define NOW            INT64_C(1800000000)
#define TEST_SECRET    "a-test-secret-of-32-bytes-long!!"
#define HS256_HEADER   "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define EDDSA_HEADER   "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}"
/* Pieces of hand-written payloads. */
#define SUB_U          "\"sub\":\"u\","
#define NO_ROLES       "\"roles\":[],"
#define EXP_LATER      "\"exp\":1900000000"
#define ISS_OK         "\"iss\":\"https://auth.vetpms.test\","
#define GOOD_PAYLOAD \
	"{\"sub\":\"user-42\",\"tid\":\"0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6\"," \
	"\"roles\":[\"vet\",\"admin\"],\"exp\":1800003600,\"iat\":1799999000," \
	"\"iss\":\"https://auth.vetpms.test\",\"aud\":\"vetpms-api\"}"

/* Computed independently:
 * python3 -c 'import hmac,hashlib,base64; b=lambda x: base64.urlsafe_b64encode(x)
 *   .rstrip(b"=").decode(); si=b(H)+"."+b(P);
 *   print(si+"."+b(hmac.new(b"a-test-secret-of-32-bytes-long!!",si.encode(),
 *   hashlib.sha256).digest()))' with H, P the two JSON texts below. */
#define KAT_PAYLOAD \
	"{\"sub\":\"vet-1\",\"tid\":\"0192F3A4-B5C6-7D8E-9FA0-B1C2D3E4F5A6\",\"roles\":[\"vet\"," \
	"\"nurse\",\"groomer\"],\"exp\":2000000000,\"iat\":1700000000,\"iss\":\"vetpms\"," \
	"\"aud\":\"vetpms-api\"}"
#define KAT_TOKEN \
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." \
	"eyJzdWIiOiJ2ZXQtMSIsInRpZCI6IjAxOTJGM0E0LUI1QzYtN0Q4RS05RkEwLUIxQzJEM0U0RjVBNiIs" \
	"InJvbGVzIjpbInZldCIsIm51cnNlIiwiZ3Jvb21lciJdLCJleHAiOjIwMDAwMDAwMDAsImlhdCI6MTcw" \
	"MDAwMDAwMCwiaXNzIjoidmV0cG1zIiwiYXVkIjoidmV0cG1zLWFwaSJ9." \
	"LvrHYZukbM2TMZXRxAqgxBEmLkmnBKKVVTiU9-kusb0"

typedef struct Fixture {
	VpJwtVerifier hs;    /* HS256 with TEST_SECRET, no iss/aud checks */
	VpJwtVerifier ed;    /* EdDSA with ed_sk's public key */
	unsigned char ed_sk[crypto_sign_SECRETKEYBYTES];
} Fixture;

static int setup(void **state)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	Fixture *f;

	if (sodium_init() < 0)
		return -1;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	if (vp_jwt_key_from_hs256_secret(&f->hs.key, TEST_SECRET) != 0)
		return -1;
	crypto_sign_keypair(pk, f->ed_sk);
	f->ed.key.alg = VP_JWT_EDDSA;
	memcpy(f->ed.key.public_key, pk, sizeof(pk));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void append_b64url(char *out, size_t cap, const void *bin, size_t len)
{
	size_t at = strlen(out);

	assert_true(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <=
		    cap - at);
	sodium_bin2base64(out + at, cap - at, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void append_str(char *out, size_t cap, const char *text)
{
	size_t at = strlen(out), n = strlen(text);

	assert_true(at + n < cap);
	memcpy(out + at, text, n + 1);
}

/* signed_part + "." + its HS256 signature under TEST_SECRET, malloc'd. */
static char *sign_raw_hs(const char *signed_part)
{
	unsigned char sig[crypto_auth_hmacsha256_BYTES];
	size_t cap = strlen(signed_part) + 64;
	crypto_auth_hmacsha256_state st;
	char *token = calloc(1, cap);

	assert_non_null(token);
	append_str(token, cap, signed_part);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)TEST_SECRET, strlen(TEST_SECRET));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, strlen(token));
	crypto_auth_hmacsha256_final(&st, sig);
	append_str(token, cap, ".");
	append_b64url(token, cap, sig, sizeof(sig));
	return token;
}

/* A token built by hand (not by vp_jwt_sign): any header, signed with the HMAC key
 * given, or with the Ed25519 secret key when hmac_key is NULL. Caller frees. */
static char *forge(const char *header, const char *payload, const void *hmac_key,
		   size_t hmac_key_len, const unsigned char *ed_sk)
{
	size_t cap = 4 * (strlen(header) + strlen(payload)) / 3 + 200;
	unsigned char sig[crypto_sign_BYTES];
	size_t sig_len;
	char *token = calloc(1, cap);

	assert_non_null(token);
	append_b64url(token, cap, header, strlen(header));
	append_str(token, cap, ".");
	append_b64url(token, cap, payload, strlen(payload));
	if (hmac_key != NULL) {
		crypto_auth_hmacsha256_state st;

		crypto_auth_hmacsha256_init(&st, hmac_key, hmac_key_len);
		crypto_auth_hmacsha256_update(&st, (unsigned char *)token, strlen(token));
		crypto_auth_hmacsha256_final(&st, sig);
		sig_len = crypto_auth_hmacsha256_BYTES;
	} else {
		crypto_sign_detached(sig, NULL, (unsigned char *)token, strlen(token), ed_sk);
		sig_len = crypto_sign_BYTES;
	}
	append_str(token, cap, ".");
	append_b64url(token, cap, sig, sig_len);
	return token;
}

static char *forge_hs(const char *header, const char *payload)
{
	return forge(header, payload, TEST_SECRET, strlen(TEST_SECRET), NULL);
}

static int verify_str(const VpJwtVerifier *v, const char *token, VpClaims *claims, char *why)
{
	why[0] = '\0';
	return vp_jwt_verify(v, token, strlen(token), NOW, claims, why, 64);
}

/* Expects the refusal reason for an HS256 token over payload. */
static void expect_hs_payload_refused(const Fixture *f, const char *payload, const char *reason)
{
	char *token = forge_hs(HS256_HEADER, payload);
	VpClaims claims;
	char why[64];

	if (verify_str(&f->hs, token, &claims, why) != -1)
		fail_msg("accepted payload %s", payload);
	if (strcmp(why, reason) != 0)
		fail_msg("payload %s: why \"%s\", expected \"%s\"", payload, why, reason);
	assert_int_equal(claims.roles, 0);
	assert_string_equal(claims.sub, "");
	free(token);
}

static void expect_refused(const VpJwtVerifier *v, const char *token, const char *reason)
{
	VpClaims claims;
	char why[64];

	if (verify_str(v, token, &claims, why) != -1)
		fail_msg("accepted %s", token);
	if (strcmp(why, reason) != 0)
		fail_msg("%s: why \"%s\", expected \"%s\"", token, why, reason);
}

static void hs256_valid_token_gives_claims(void **state)
{
	Fixture *f = *state;
	char *token = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	VpClaims claims;
	char why[64];

	assert_non_null(token);
	assert_int_equal(verify_str(&f->hs, token, &claims, why), 0);
	assert_string_equal(claims.sub, "user-42");
	assert_true(claims.has_tid);
	assert_string_equal(claims.tid, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6");
	assert_int_equal(claims.roles, VP_ROLE_VET | VP_ROLE_ADMIN);
	assert_int_equal(claims.exp, 1800003600);
	assert_int_equal(claims.iat, 1799999000);
	free(token);
}

static void eddsa_valid_token_gives_claims(void **state)
{
	Fixture *f = *state;
	char *token = vp_jwt_sign(&f->ed.key, f->ed_sk, GOOD_PAYLOAD);
	char *by_hand = forge(EDDSA_HEADER, GOOD_PAYLOAD, NULL, 0, f->ed_sk);
	VpClaims claims;
	char why[64];

	assert_non_null(token);
	assert_int_equal(verify_str(&f->ed, token, &claims, why), 0);
	assert_string_equal(claims.sub, "user-42");
	assert_int_equal(claims.roles, VP_ROLE_VET | VP_ROLE_ADMIN);
	/* Ed25519 is deterministic: the hand-built token is the same text. */
	assert_string_equal(token, by_hand);
	assert_null(vp_jwt_sign(&f->ed.key, NULL, GOOD_PAYLOAD));
	free(by_hand);
	free(token);
}

static void hs256_known_answer_vector(void **state)
{
	Fixture *f = *state;
	char *signed_here = vp_jwt_sign(&f->hs.key, NULL, KAT_PAYLOAD);
	VpJwtVerifier v = f->hs;
	VpClaims claims;
	char why[64];

	v.issuer = "vetpms";
	v.audience = "vetpms-api";
	assert_int_equal(verify_str(&v, KAT_TOKEN, &claims, why), 0);
	assert_string_equal(claims.sub, "vet-1");
	assert_string_equal(claims.tid, "0192f3a4-b5c6-7d8e-9fa0-b1c2d3e4f5a6"); /* lowered */
	assert_int_equal(claims.roles, VP_ROLE_VET | VP_ROLE_NURSE);           /* groomer ignored */
	assert_int_equal(claims.exp, 2000000000);
	assert_int_equal(claims.iat, 1700000000);
	assert_non_null(signed_here);
	assert_string_equal(signed_here, KAT_TOKEN);
	free(signed_here);
}

static void expired_and_missing_exp_refused(void **state)
{
	Fixture *f = *state;
	VpJwtVerifier lenient = f->hs;
	char *token;
	VpClaims claims;
	char why[64];

	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":1799999999}", "expired");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":1800000000}", "expired");
	expect_hs_payload_refused(f, "{" SUB_U "\"roles\":[]}", "exp missing");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":\"1900000000\"}", "bad exp");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":null}", "bad exp");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":1e300}", "bad exp");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":-1e300}", "bad exp");
	/* exp a second ago passes with 30 s of leeway; exp 31 s ago does not. */
	lenient.leeway_s = 30;
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES "\"exp\":1799999999}");
	assert_int_equal(verify_str(&lenient, token, &claims, why), 0);
	assert_int_equal(claims.iat, 0);
	free(token);
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES "\"exp\":1799999970}");
	assert_int_equal(verify_str(&lenient, token, &claims, why), -1);
	assert_string_equal(why, "expired");
	free(token);
	/* A fractional exp counts down: 1800000000.5 is already expired at NOW. */
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES "\"exp\":1800000000.5}", "expired");
}

static void nbf_in_future_refused(void **state)
{
	Fixture *f = *state;
	VpJwtVerifier lenient = f->hs;
	char *token;
	VpClaims claims;
	char why[64];

	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES EXP_LATER ",\"nbf\":1800000001}",
				  "not yet valid");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES EXP_LATER ",\"nbf\":\"x\"}",
				  "bad nbf");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES EXP_LATER ",\"iat\":true}",
				  "bad iat");
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES EXP_LATER ",\"nbf\":1800000000}");
	assert_int_equal(verify_str(&f->hs, token, &claims, why), 0);
	free(token);
	lenient.leeway_s = 5;
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES EXP_LATER ",\"nbf\":1800000005}");
	assert_int_equal(verify_str(&lenient, token, &claims, why), 0);
	free(token);
}

/* Replaces the character at i with another base64url character. */
static void flip_char(char *token, size_t i)
{
	token[i] = token[i] == 'A' ? 'B' : 'A';
}

static void tampered_signature_or_payload_refused(void **state)
{
	Fixture *f = *state;
	char *token = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	char *ed_token = vp_jwt_sign(&f->ed.key, f->ed_sk, GOOD_PAYLOAD);
	char *dot;

	assert_non_null(token);
	assert_non_null(ed_token);
	flip_char(token, strlen(token) - 10);
	expect_refused(&f->hs, token, "bad signature");
	flip_char(token, strlen(token) - 10);
	dot = strchr(token, '.');
	flip_char(token, (size_t)(dot - token) + 5);
	expect_refused(&f->hs, token, "bad signature");

	flip_char(ed_token, strlen(ed_token) - 10);
	expect_refused(&f->ed, ed_token, "bad signature");
	flip_char(ed_token, strlen(ed_token) - 10);
	dot = strchr(ed_token, '.');
	flip_char(ed_token, (size_t)(dot - ed_token) + 5);
	expect_refused(&f->ed, ed_token, "bad signature");
	free(ed_token);
	free(token);

	/* Right format, wrong secret. */
	token = forge(HS256_HEADER, GOOD_PAYLOAD, "another-secret-entirely-32-bytes", 32, NULL);
	expect_refused(&f->hs, token, "bad signature");
	free(token);
}

static void alg_none_refused(void **state)
{
	Fixture *f = *state;
	char token[512] = "";
	static const char *const headers[] = {
		"{\"alg\":\"none\",\"typ\":\"JWT\"}",
		"{\"alg\":\"None\"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS512\"}",
		"{\"alg\":\"RS256\"}",
		"{\"alg\":\"eddsa\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		token[0] = '\0';
		append_b64url(token, sizeof(token), headers[i], strlen(headers[i]));
		append_str(token, sizeof(token), ".");
		append_b64url(token, sizeof(token), GOOD_PAYLOAD, strlen(GOOD_PAYLOAD));
		append_str(token, sizeof(token), ".");
		expect_refused(&f->hs, token, "alg not allowed");
		expect_refused(&f->ed, token, "alg not allowed");
	}
}

static void algorithm_confusion_refused(void **state)
{
	Fixture *f = *state;
	char *hs_token = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	char *ed_token = vp_jwt_sign(&f->ed.key, f->ed_sk, GOOD_PAYLOAD);
	/* The classic attack: HMAC keyed with the verifier's public key. */
	char *public_as_secret = forge(HS256_HEADER, GOOD_PAYLOAD, f->ed.key.public_key,
				       sizeof(f->ed.key.public_key), NULL);

	expect_refused(&f->ed, hs_token, "alg not allowed");
	expect_refused(&f->hs, ed_token, "alg not allowed");
	expect_refused(&f->ed, public_as_secret, "alg not allowed");
	free(public_as_secret);
	free(ed_token);
	free(hs_token);
}

static void header_rules_enforced(void **state)
{
	Fixture *f = *state;
	static const struct {
		const char *header;
		const char *reason;
	} cases[] = {
		{"{\"alg\":\"HS256\",\"typ\":\"jwt+x\"}", "bad typ"},
		{"{\"alg\":\"HS256\",\"typ\":7}", "bad typ"},
		{"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "crit not supported"},
		{"{\"typ\":\"JWT\"}", "bad header"},
		{"{\"alg\":256}", "bad header"},
		{"{\"alg\":\"HS256\",\"alg\":\"none\"}", "bad header"},
		{"[\"HS256\"]", "bad header"},
		{"{\"alg\":\"HS256\"", "bad header"},
		{"{\"alg\":\"HS256\"}x", "bad header"},
		{"", "bad header"},
	};
	VpClaims claims;
	char why[64];
	char *token;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		token = forge_hs(cases[i].header, GOOD_PAYLOAD);
		expect_refused(&f->hs, token, cases[i].reason);
		free(token);
	}
	/* typ may be absent. */
	token = forge_hs("{\"alg\":\"HS256\"}", GOOD_PAYLOAD);
	assert_int_equal(verify_str(&f->hs, token, &claims, why), 0);
	free(token);
}

static void issuer_and_audience_checked(void **state)
{
	Fixture *f = *state;
	VpJwtVerifier v = f->hs;
	char *token = forge_hs(HS256_HEADER, GOOD_PAYLOAD);
	VpClaims claims;
	char why[64];

	v.issuer = "https://auth.vetpms.test";
	v.audience = "vetpms-api";
	assert_int_equal(verify_str(&v, token, &claims, why), 0);
	v.issuer = "https://evil.test";
	expect_refused(&v, token, "wrong issuer");
	v.issuer = "https://auth.vetpms.test";
	v.audience = "other-api";
	expect_refused(&v, token, "wrong audience");
	free(token);

	v.audience = "vetpms-api";
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES EXP_LATER ","
				       "\"iss\":\"https://auth.vetpms.test\","
				       "\"aud\":[\"billing\",\"vetpms-api\"]}");
	assert_int_equal(verify_str(&v, token, &claims, why), 0);
	free(token);
	token = forge_hs(HS256_HEADER,
			 "{" SUB_U NO_ROLES ISS_OK "\"aud\":[\"billing\"]," EXP_LATER "}");
	expect_refused(&v, token, "wrong audience");
	free(token);
	token = forge_hs(HS256_HEADER,
			 "{" SUB_U NO_ROLES ISS_OK "\"aud\":[1,\"vetpms-api\"]," EXP_LATER "}");
	expect_refused(&v, token, "wrong audience");
	free(token);
	token = forge_hs(HS256_HEADER, "{" SUB_U NO_ROLES EXP_LATER "}");
	expect_refused(&v, token, "wrong issuer");
	v.issuer = NULL;
	expect_refused(&v, token, "wrong audience");
	v.audience = NULL;
	assert_int_equal(verify_str(&v, token, &claims, why), 0);
	free(token);
}

static void bad_base64_refused(void **state)
{
	Fixture *f = *state;
	char *good = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	char buf[2048];
	char *dot1, *dot2;
	size_t n;

	assert_non_null(good);
	n = strlen(good);
	dot1 = strchr(good, '.');
	dot2 = strchr(dot1 + 1, '.');

	/* Padding on the header. */
	snprintf(buf, sizeof(buf), "%.*s=%s", (int)(dot1 - good), good, dot1);
	expect_refused(&f->hs, buf, "bad base64");
	/* Standard-alphabet characters and whitespace in the payload. */
	snprintf(buf, sizeof(buf), "%.*s+%s", (int)(dot2 - good), good, dot2);
	expect_refused(&f->hs, buf, "bad signature");
	snprintf(buf, sizeof(buf), "%.*s/A%s", (int)(dot1 - good + 1), good, dot1 + 1);
	expect_refused(&f->hs, buf, "bad signature");
	snprintf(buf, sizeof(buf), "%.*s %s", (int)(dot1 - good + 3), good, dot1 + 3);
	expect_refused(&f->hs, buf, "bad signature");
	/* A payload that is not base64 under a valid signature. */
	free(good);
	good = sign_raw_hs("eyJhbGciOiJIUzI1NiJ9.eyJz=dWIi");
	expect_refused(&f->hs, good, "bad base64");
	free(good);
	good = forge_hs(HS256_HEADER, GOOD_PAYLOAD);
	/* Signature with padding, a trailing newline, or the standard alphabet. */
	snprintf(buf, sizeof(buf), "%s=", good);
	expect_refused(&f->hs, buf, "bad signature");
	snprintf(buf, sizeof(buf), "%s\n", good);
	expect_refused(&f->hs, buf, "bad signature");
	n = strlen(good);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[n - 5] = '+';
	expect_refused(&f->hs, buf, "bad base64");
	/* libsodium 1.0.18 alone would read any byte >= 0x80 as '_'. */
	snprintf(buf, sizeof(buf), "%s", good);
	buf[n - 7] = (char)0xDF;
	expect_refused(&f->hs, buf, "bad base64");
	/* Non-canonical last character (nonzero spare bits). */
	snprintf(buf, sizeof(buf), "%s", good);
	buf[n - 1] = buf[n - 1] == 'B' ? 'C' : 'B';
	expect_refused(&f->hs, buf, "bad base64");
	free(good);
}

static void wrong_number_of_parts_refused(void **state)
{
	Fixture *f = *state;
	char *good = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	char buf[2048];

	assert_non_null(good);
	snprintf(buf, sizeof(buf), "%s", good);
	*strrchr(buf, '.') = '\0';
	expect_refused(&f->hs, buf, "malformed token");
	snprintf(buf, sizeof(buf), "%s.", good);
	expect_refused(&f->hs, buf, "malformed token");
	snprintf(buf, sizeof(buf), "%s.AAAA", good);
	expect_refused(&f->hs, buf, "malformed token");
	expect_refused(&f->hs, "", "malformed token");
	expect_refused(&f->hs, "abc", "malformed token");
	expect_refused(&f->hs, "..", "bad header");
	expect_refused(&f->hs, "...", "malformed token");
	free(good);
}

static void payload_shape_refused(void **state)
{
	Fixture *f = *state;

	expect_hs_payload_refused(f, "[1,2]", "bad payload");
	expect_hs_payload_refused(f, "\"sub\"", "bad payload");
	expect_hs_payload_refused(f, "1900000000", "bad payload");
	expect_hs_payload_refused(f, "{\"sub\":\"u\"", "bad payload");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES EXP_LATER "}{}", "bad payload");
	expect_hs_payload_refused(f, "", "bad payload");
	expect_hs_payload_refused(f, "{" SUB_U NO_ROLES EXP_LATER ",\"exp\":1}",
				  "bad payload");
}

static void payload_with_nul_refused(void **state)
{
	Fixture *f = *state;
	static const char payload[] = "{" SUB_U NO_ROLES EXP_LATER "}\0{}";
	char signed_part[1024] = "";
	char *token;

	append_b64url(signed_part, sizeof(signed_part), HS256_HEADER, strlen(HS256_HEADER));
	append_str(signed_part, sizeof(signed_part), ".");
	append_b64url(signed_part, sizeof(signed_part), payload, sizeof(payload) - 1);
	token = sign_raw_hs(signed_part);
	expect_refused(&f->hs, token, "bad payload");
	free(token);
}

static void roles_sub_and_tid_rules(void **state)
{
	Fixture *f = *state;
	char payload[512];
	char long_sub[VP_JWT_MAX_SUB_LEN + 2];
	char *token;
	VpClaims claims;
	char why[64];

	expect_hs_payload_refused(f, "{" SUB_U "\"roles\":\"vet\"," EXP_LATER "}", "bad roles");
	expect_hs_payload_refused(f, "{" SUB_U "\"roles\":{\"vet\":1}," EXP_LATER "}",
				  "bad roles");
	expect_hs_payload_refused(f, "{" SUB_U "\"roles\":[\"vet\",3]," EXP_LATER "}",
				  "bad roles");
	expect_hs_payload_refused(f, "{" SUB_U "\"exp\":1900000000}", "bad roles");
	expect_hs_payload_refused(f, "{" NO_ROLES EXP_LATER "}", "bad sub");
	expect_hs_payload_refused(f, "{\"sub\":\"\"," NO_ROLES EXP_LATER "}", "bad sub");
	expect_hs_payload_refused(f, "{\"sub\":42," NO_ROLES EXP_LATER "}", "bad sub");
	expect_hs_payload_refused(f, "{" SUB_U "\"tid\":\"clinic-1\"," NO_ROLES EXP_LATER "}",
				  "bad tid");
	expect_hs_payload_refused(
		f, "{" SUB_U "\"tid\":\"0192f3a4b5c67d8e9fa0b1c2d3e4f5a6\"," NO_ROLES EXP_LATER "}",
		"bad tid");
	expect_hs_payload_refused(f, "{" SUB_U "\"tid\":7," NO_ROLES EXP_LATER "}", "bad tid");
	expect_hs_payload_refused(f, "{" SUB_U "\"tid\":null," NO_ROLES EXP_LATER "}",
				  "bad tid");

	memset(long_sub, 's', VP_JWT_MAX_SUB_LEN + 1);
	long_sub[VP_JWT_MAX_SUB_LEN + 1] = '\0';
	snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"," NO_ROLES EXP_LATER "}", long_sub);
	expect_hs_payload_refused(f, payload, "bad sub");
	long_sub[VP_JWT_MAX_SUB_LEN] = '\0';
	snprintf(payload, sizeof(payload),
		 "{\"sub\":\"%s\",\"roles\":[\"platform-admin\",\"ops\",\"analyst\",\"reception\","
		 "\"nurse\",\"Vet\"]," EXP_LATER "}",
		 long_sub);
	token = forge_hs(HS256_HEADER, payload);
	assert_int_equal(verify_str(&f->hs, token, &claims, why), 0);
	assert_int_equal(strlen(claims.sub), VP_JWT_MAX_SUB_LEN);
	assert_false(claims.has_tid);
	assert_int_equal(claims.roles, VP_ROLE_PLATFORM_ADMIN | VP_ROLE_OPS | VP_ROLE_ANALYST |
					       VP_ROLE_RECEPTION | VP_ROLE_NURSE);
	free(token);
}

static void oversized_token_refused(void **state)
{
	Fixture *f = *state;
	const char *prefix = "{" SUB_U NO_ROLES EXP_LATER ",\"pad\":\"";
	size_t pad = 6200;
	size_t cap = strlen(prefix) + pad + 3;
	char *payload = calloc(1, cap);
	char *token;
	char *junk;

	assert_non_null(payload);
	append_str(payload, cap, prefix);
	memset(payload + strlen(prefix), 'x', pad);
	append_str(payload, cap, "\"}");
	assert_null(vp_jwt_sign(&f->hs.key, NULL, payload));
	token = forge_hs(HS256_HEADER, payload);
	assert_true(strlen(token) > VP_JWT_MAX_TOKEN_LEN);
	expect_refused(&f->hs, token, "token too long");
	free(token);
	free(payload);

	junk = malloc(VP_JWT_MAX_TOKEN_LEN + 1);
	assert_non_null(junk);
	memset(junk, 'A', VP_JWT_MAX_TOKEN_LEN + 1);
	{
		VpClaims claims;
		char why[64];

		assert_int_equal(vp_jwt_verify(&f->hs, junk, VP_JWT_MAX_TOKEN_LEN + 1, NOW, &claims,
					       why, sizeof(why)),
				 -1);
		assert_string_equal(why, "token too long");
		/* At the limit the length passes and the shape is what fails. */
		assert_int_equal(vp_jwt_verify(&f->hs, junk, VP_JWT_MAX_TOKEN_LEN, NOW, &claims,
					       why, sizeof(why)),
				 -1);
		assert_string_equal(why, "malformed token");
	}
	free(junk);
}

static void len_bounds_the_token_and_why_is_truncated(void **state)
{
	Fixture *f = *state;
	char *token = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	size_t n = strlen(token);
	char *exact = malloc(n);
	VpClaims claims;
	char why[4];

	assert_non_null(exact);
	memcpy(exact, token, n); /* no NUL: reading past len would trip ASan */
	assert_int_equal(vp_jwt_verify(&f->hs, exact, n, NOW, &claims, NULL, 0), 0);
	assert_int_equal(vp_jwt_verify(&f->hs, exact, n - 1, NOW, &claims, why, sizeof(why)), -1);
	assert_string_equal(why, "bad"); /* truncated to the buffer */
	assert_int_equal(vp_jwt_verify(&f->hs, exact, n, NOW + 3600, &claims, NULL, 0), -1);
	free(exact);
	free(token);
}

/* Random corruptions of valid tokens: never a crash, never accepted. */
static void mutated_tokens_never_verify(void **state)
{
	Fixture *f = *state;
	char *tokens[2];
	const VpJwtVerifier *verifiers[2] = {&f->hs, &f->ed};
	unsigned char rnd[3];
	VpClaims claims;
	char why[64];
	int t, i;

	tokens[0] = vp_jwt_sign(&f->hs.key, NULL, GOOD_PAYLOAD);
	tokens[1] = vp_jwt_sign(&f->ed.key, f->ed_sk, GOOD_PAYLOAD);
	assert_non_null(tokens[0]);
	assert_non_null(tokens[1]);
	for (t = 0; t < 2; t++) {
		size_t n = strlen(tokens[t]);
		char *copy = malloc(n);

		assert_non_null(copy);
		for (i = 0; i < 20000; i++) {
			size_t at, len = n;

			memcpy(copy, tokens[t], n);
			randombytes_buf(rnd, sizeof(rnd));
			at = ((size_t)rnd[0] << 8 | rnd[1]) % n;
			if (rnd[2] == 0)
				len = at; /* truncation */
			else if (copy[at] == (char)rnd[2])
				continue;
			else
				copy[at] = (char)rnd[2];
			assert_int_equal(vp_jwt_verify(verifiers[t], copy, len, NOW, &claims, why,
						       sizeof(why)),
					 -1);
		}
		free(copy);
	}
	free(tokens[0]);
	free(tokens[1]);
}

static void roles_parse_and_name(void **state)
{
	static const char *const names[] = {"platform-admin", "admin",   "vet", "nurse",
					    "reception",      "analyst", "ops", "platform-ops"};
	unsigned i;

	(void)state;
	for (i = 0; i < 8; i++) {
		assert_int_equal(vp_role_parse(names[i]), 1u << i);
		assert_string_equal(vp_role_name(1u << i), names[i]);
	}
	assert_int_equal(vp_role_parse("Admin"), 0);
	assert_int_equal(vp_role_parse("groomer"), 0);
	assert_int_equal(vp_role_parse(""), 0);
	assert_int_equal(vp_role_parse(NULL), 0);
	assert_null(vp_role_name(0));
	assert_null(vp_role_name(VP_ROLE_VET | VP_ROLE_NURSE));
	assert_null(vp_role_name(1u << 8));
}

static void key_constructors(void **state)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char b64[64], wrapped[80];
	char secret[258];
	VpJwtKey key;
	int variant;

	(void)state;
	memset(secret, 'k', sizeof(secret));
	secret[15] = '\0';
	assert_int_equal(vp_jwt_key_from_hs256_secret(&key, secret), -1);
	secret[15] = 'k';
	secret[16] = '\0';
	assert_int_equal(vp_jwt_key_from_hs256_secret(&key, secret), 0);
	assert_int_equal(key.alg, VP_JWT_HS256);
	assert_int_equal(key.secret_len, 16);
	secret[16] = 'k';
	secret[256] = '\0';
	assert_int_equal(vp_jwt_key_from_hs256_secret(&key, secret), 0);
	assert_int_equal(key.secret_len, 256);
	secret[256] = 'k';
	secret[257] = '\0';
	assert_int_equal(vp_jwt_key_from_hs256_secret(&key, secret), -1);
	assert_int_equal(vp_jwt_key_from_hs256_secret(&key, NULL), -1);

	crypto_sign_keypair(pk, sk);
	for (variant = 0; variant < 4; variant++) {
		static const int variants[] = {
			sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
			sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};

		sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), variants[variant]);
		memset(&key, 0, sizeof(key));
		assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, b64), 0);
		assert_int_equal(key.alg, VP_JWT_EDDSA);
		assert_memory_equal(key.public_key, pk, sizeof(pk));
	}
	snprintf(wrapped, sizeof(wrapped), "  %s\n", b64);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, wrapped), 0);
	assert_memory_equal(key.public_key, pk, sizeof(pk));
	/* 31 and 33 bytes, junk, empty. */
	sodium_bin2base64(b64, sizeof(b64), pk, 31, sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, b64), -1);
	sodium_bin2base64(b64, sizeof(b64), sk, 33, sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, b64), -1);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, "not base64 at all!"), -1);
	sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	b64[10] = (char)0xFF;
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, b64), -1);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, ""), -1);
	assert_int_equal(vp_jwt_key_from_ed25519_public_b64(&key, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hs256_valid_token_gives_claims),
		cmocka_unit_test(eddsa_valid_token_gives_claims),
		cmocka_unit_test(hs256_known_answer_vector),
		cmocka_unit_test(expired_and_missing_exp_refused),
		cmocka_unit_test(nbf_in_future_refused),
		cmocka_unit_test(tampered_signature_or_payload_refused),
		cmocka_unit_test(alg_none_refused),
		cmocka_unit_test(algorithm_confusion_refused),
		cmocka_unit_test(header_rules_enforced),
		cmocka_unit_test(issuer_and_audience_checked),
		cmocka_unit_test(bad_base64_refused),
		cmocka_unit_test(wrong_number_of_parts_refused),
		cmocka_unit_test(payload_shape_refused),
		cmocka_unit_test(payload_with_nul_refused),
		cmocka_unit_test(roles_sub_and_tid_rules),
		cmocka_unit_test(oversized_token_refused),
		cmocka_unit_test(len_bounds_the_token_and_why_is_truncated),
		cmocka_unit_test(mutated_tokens_never_verify),
		cmocka_unit_test(roles_parse_and_name),
		cmocka_unit_test(key_constructors),
	};

	return cmocka_run_group_tests_name("vp_jwt", tests, setup, teardown);
}
