/* JWT verification and signing for vp_jwt.h. The header is read only to check the
 * algorithm against the configured key (the token never chooses it); the payload
 * is decoded and parsed only after the signature over "header.payload" holds. */
#include "vp_jwt.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "vp_json.h"
#include "vp_uuid.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* Largest decoded part of a token that passed the length check. */
#define MAX_PART_BYTES (VP_JWT_MAX_TOKEN_LEN / 4 * 3 + 3)
#define HS256_SIG_BYTES crypto_auth_hmacsha256_BYTES
#define EDDSA_SIG_BYTES crypto_sign_BYTES
/* NumericDate values beyond 2^53 are not exact doubles; refuse them. */
#define MAX_NUMERIC_DATE 9007199254740992.0

static const struct {
	unsigned bit;
	const char *name;
} role_table[] = {
	{VP_ROLE_PLATFORM_ADMIN, "platform-admin"},
	{VP_ROLE_ADMIN, "admin"},
	{VP_ROLE_VET, "vet"},
	{VP_ROLE_NURSE, "nurse"},
	{VP_ROLE_RECEPTION, "reception"},
	{VP_ROLE_ANALYST, "analyst"},
	{VP_ROLE_OPS, "ops"},
	{VP_ROLE_PLATFORM_OPS, "platform-ops"},
};

unsigned vp_role_parse(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++) {
		if (strcmp(name, role_table[i].name) == 0)
			return role_table[i].bit;
	}
	return 0;
}

const char *vp_role_name(unsigned role_bit)
{
	size_t i;

	for (i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++) {
		if (role_table[i].bit == role_bit)
			return role_table[i].name;
	}
	return NULL;
}

static void set_why(char *why, size_t why_cap, const char *reason)
{
	size_t n;

	if (why == NULL || why_cap == 0)
		return;
	n = strlen(reason);
	if (n >= why_cap)
		n = why_cap - 1;
	memcpy(why, reason, n);
	why[n] = '\0';
}

static bool is_b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Strict base64url without padding, the whole input consumed (no whitespace). The
 * alphabet is checked here because libsodium 1.0.18 decodes every byte >= 0x80 as
 * '_', which would let one token have many spellings. */
static int decode_part(const char *b64, size_t b64_len, unsigned char *bin, size_t bin_cap,
		       size_t *bin_len)
{
	size_t i;

	*bin_len = 0;
	for (i = 0; i < b64_len; i++) {
		if (!is_b64url_char(b64[i]))
			return -1;
	}
	if (b64_len == 0)
		return 0;
	return sodium_base642bin(bin, bin_cap, b64, b64_len, NULL, bin_len, NULL, B64_VARIANT);
}

/* Decodes a JSON part and parses it as one object with nothing after it. The
 * decoded bytes must hold no NUL, which would hide trailing bytes from cJSON. */
static cJSON *parse_object_part(const char *b64, size_t b64_len, char *scratch, bool *bad_b64)
{
	size_t n;
	const char *end = NULL;
	cJSON *obj;

	*bad_b64 = false;
	if (decode_part(b64, b64_len, (unsigned char *)scratch, MAX_PART_BYTES, &n) != 0) {
		*bad_b64 = true;
		return NULL;
	}
	scratch[n] = '\0';
	if (n == 0 || memchr(scratch, '\0', n) != NULL)
		return NULL;
	obj = cJSON_ParseWithOpts(scratch, &end, 1);
	if (obj != NULL && !cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

/* Members named name (case-sensitive); a claim given twice is ambiguous. */
static int count_members(const cJSON *obj, const char *name)
{
	const cJSON *item;
	int n = 0;

	cJSON_ArrayForEach(item, obj)
	{
		if (item->string != NULL && strcmp(item->string, name) == 0)
			n++;
	}
	return n;
}

/* A NumericDate member: absent -> 1, invalid -> -1, else 0 with *out set, rounded
 * toward the stricter side (exp down, nbf up). */
static int numeric_date(const cJSON *obj, const char *name, bool round_up, int64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;
	int64_t t;

	if (item == NULL)
		return 1;
	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	/* Written so NaN fails too. */
	if (!(d >= -MAX_NUMERIC_DATE && d <= MAX_NUMERIC_DATE))
		return -1;
	t = (int64_t)d;
	if (round_up && (double)t < d)
		t++;
	if (!round_up && (double)t > d)
		t--;
	*out = t;
	return 0;
}

static const char *check_header(const VpJwtVerifier *v, const cJSON *header)
{
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
	const char *want;

	if (count_members(header, "alg") != 1 || count_members(header, "typ") > 1 ||
	    !cJSON_IsString(alg))
		return "bad header";
	switch (v->key.alg) {
	case VP_JWT_HS256:
		want = "HS256";
		break;
	case VP_JWT_EDDSA:
		want = "EdDSA";
		break;
	default:
		return "bad key";
	}
	if (strcmp(alg->valuestring, want) != 0)
		return "alg not allowed";
	if (typ != NULL && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0))
		return "bad typ";
	if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL)
		return "crit not supported";
	return NULL;
}

static void hs256(const VpJwtKey *key, const char *msg, size_t msg_len,
		  unsigned char mac[HS256_SIG_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key->secret, key->secret_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, msg_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

static const char *check_signature(const VpJwtKey *key, const char *signed_part,
				   size_t signed_len, const char *sig_b64, size_t sig_b64_len)
{
	unsigned char sig[EDDSA_SIG_BYTES];
	unsigned char mac[HS256_SIG_BYTES];
	size_t want_len = key->alg == VP_JWT_HS256 ? HS256_SIG_BYTES : EDDSA_SIG_BYTES;
	size_t sig_len;

	/* Unpadded base64 of n bytes is ceil(4n/3) chars: 43 for 32, 86 for 64. */
	if (sig_b64_len != (want_len * 4 + 2) / 3)
		return "bad signature";
	if (decode_part(sig_b64, sig_b64_len, sig, sizeof(sig), &sig_len) != 0)
		return "bad base64";
	if (sig_len != want_len)
		return "bad signature";
	if (key->alg == VP_JWT_HS256) {
		if (key->secret_len == 0 || key->secret_len > sizeof(key->secret))
			return "bad key";
		hs256(key, signed_part, signed_len, mac);
		if (sodium_memcmp(mac, sig, HS256_SIG_BYTES) != 0)
			return "bad signature";
		return NULL;
	}
	if (crypto_sign_verify_detached(sig, (const unsigned char *)signed_part, signed_len,
					key->public_key) != 0)
		return "bad signature";
	return NULL;
}

static bool aud_matches(const cJSON *aud, const char *audience)
{
	const cJSON *item;

	if (cJSON_IsString(aud))
		return strcmp(aud->valuestring, audience) == 0;
	if (!cJSON_IsArray(aud))
		return false;
	cJSON_ArrayForEach(item, aud)
	{
		if (!cJSON_IsString(item))
			return false;
		if (strcmp(item->valuestring, audience) == 0)
			return true;
	}
	return false;
}

/* |exp|, |nbf| <= 2^53 and leeway fits an int: no overflow. */
static bool expired(int64_t leeway, int64_t exp, int64_t now_s)
{
	return !(now_s < exp + leeway);
}

static bool not_yet_valid(int64_t leeway, int64_t nbf, int64_t now_s)
{
	return nbf - leeway > now_s;
}

const char *vp_jwt_check_times(const VpJwtVerifier *v, const VpClaims *claims, int64_t now_s)
{
	int64_t leeway = v->leeway_s > 0 ? v->leeway_s : 0;

	if (expired(leeway, claims->exp, now_s))
		return "expired";
	if (claims->has_nbf && not_yet_valid(leeway, claims->nbf, now_s))
		return "not yet valid";
	return NULL;
}

static const char *read_claims(const VpJwtVerifier *v, const cJSON *payload, int64_t now_s,
			       VpClaims *out)
{
	static const char *const single[] = {"exp", "nbf", "iat", "sub", "tid",
					     "roles", "iss", "aud"};
	int64_t leeway = v->leeway_s > 0 ? v->leeway_s : 0;
	const cJSON *item, *role;
	int64_t nbf;
	size_t i, n;
	int rc;

	for (i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		if (count_members(payload, single[i]) > 1)
			return "bad payload";
	}

	rc = numeric_date(payload, "exp", false, &out->exp);
	if (rc == 1)
		return "exp missing";
	if (rc != 0)
		return "bad exp";
	if (expired(leeway, out->exp, now_s))
		return "expired";
	rc = numeric_date(payload, "nbf", true, &nbf);
	if (rc == -1)
		return "bad nbf";
	if (rc == 0 && not_yet_valid(leeway, nbf, now_s))
		return "not yet valid";
	out->nbf = rc == 0 ? nbf : 0;
	out->has_nbf = rc == 0;
	if (numeric_date(payload, "iat", false, &out->iat) == -1)
		return "bad iat";

	item = cJSON_GetObjectItemCaseSensitive(payload, "sub");
	if (!cJSON_IsString(item))
		return "bad sub";
	n = strlen(item->valuestring);
	/* sub becomes every event's actor: one that the log would cut or store
	 * as broken text is no identity we can act for (cJSON passes raw bytes
	 * through, and \u escapes make control characters). */
	if (n == 0 || n > VP_JWT_MAX_SUB_LEN || !vp_utf8_printable(item->valuestring, n))
		return "bad sub";
	memcpy(out->sub, item->valuestring, n + 1);

	item = cJSON_GetObjectItemCaseSensitive(payload, "tid");
	if (item != NULL) {
		VpUuid tid;

		if (!cJSON_IsString(item) ||
		    vp_uuid_parse(item->valuestring, strlen(item->valuestring), &tid) != 0)
			return "bad tid";
		vp_uuid_format(&tid, out->tid);
		out->has_tid = true;
	}

	item = cJSON_GetObjectItemCaseSensitive(payload, "roles");
	if (!cJSON_IsArray(item))
		return "bad roles";
	cJSON_ArrayForEach(role, item)
	{
		if (!cJSON_IsString(role))
			return "bad roles";
		out->roles |= vp_role_parse(role->valuestring);
	}

	if (v->issuer != NULL) {
		item = cJSON_GetObjectItemCaseSensitive(payload, "iss");
		if (!cJSON_IsString(item) || strcmp(item->valuestring, v->issuer) != 0)
			return "wrong issuer";
	}
	if (v->audience != NULL &&
	    !aud_matches(cJSON_GetObjectItemCaseSensitive(payload, "aud"), v->audience))
		return "wrong audience";
	return NULL;
}

int vp_jwt_verify(const VpJwtVerifier *v, const char *token, size_t len, int64_t now_s,
		  VpClaims *out, char *why, size_t why_cap)
{
	char scratch[MAX_PART_BYTES + 1];
	const char *dot1, *dot2;
	const char *reason = NULL;
	cJSON *header = NULL, *payload = NULL;
	bool bad_b64;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (v == NULL || token == NULL || out == NULL) {
		reason = "bad argument";
		goto done;
	}
	if (len > VP_JWT_MAX_TOKEN_LEN) {
		reason = "token too long";
		goto done;
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
		reason = "malformed token";
		goto done;
	}

	header = parse_object_part(token, (size_t)(dot1 - token), scratch, &bad_b64);
	if (header == NULL) {
		reason = bad_b64 ? "bad base64" : "bad header";
		goto done;
	}
	reason = check_header(v, header);
	if (reason != NULL)
		goto done;

	reason = check_signature(&v->key, token, (size_t)(dot2 - token), dot2 + 1,
				 len - (size_t)(dot2 + 1 - token));
	if (reason != NULL)
		goto done;

	payload = parse_object_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), scratch, &bad_b64);
	if (payload == NULL) {
		reason = bad_b64 ? "bad base64" : "bad payload";
		goto done;
	}
	reason = read_claims(v, payload, now_s, out);

done:
	cJSON_Delete(header);
	cJSON_Delete(payload);
	if (reason != NULL) {
		if (out != NULL)
			memset(out, 0, sizeof(*out));
		set_why(why, why_cap, reason);
		return -1;
	}
	return 0;
}

/* Appends the unpadded base64url of bin at token + *pos; cap counts from token. */
static void append_b64(char *token, size_t *pos, size_t cap, const void *bin, size_t bin_len)
{
	sodium_bin2base64(token + *pos, cap - *pos, bin, bin_len, B64_VARIANT);
	*pos += strlen(token + *pos);
}

char *vp_jwt_sign(const VpJwtKey *key, const unsigned char *ed25519_secret_key,
		  const char *payload_json)
{
	unsigned char sig[EDDSA_SIG_BYTES];
	size_t sig_len, payload_len, cap, pos = 0;
	const char *header;
	char *token = NULL;

	if (key == NULL || payload_json == NULL)
		return NULL;
	if (key->alg == VP_JWT_HS256) {
		if (key->secret_len == 0 || key->secret_len > sizeof(key->secret))
			return NULL;
		header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	} else if (key->alg == VP_JWT_EDDSA) {
		if (ed25519_secret_key == NULL)
			return NULL;
		header = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
	} else {
		return NULL;
	}
	payload_len = strlen(payload_json);
	if (payload_len > VP_JWT_MAX_TOKEN_LEN)
		return NULL;

	/* Each ENCODED_LEN counts a NUL: room for the two dots and the final NUL. */
	cap = sodium_base64_ENCODED_LEN(strlen(header), B64_VARIANT) +
	      sodium_base64_ENCODED_LEN(payload_len, B64_VARIANT) +
	      sodium_base64_ENCODED_LEN(sizeof(sig), B64_VARIANT);
	token = malloc(cap);
	if (token == NULL)
		return NULL;
	append_b64(token, &pos, cap, header, strlen(header));
	token[pos++] = '.';
	append_b64(token, &pos, cap, payload_json, payload_len);

	if (key->alg == VP_JWT_HS256) {
		hs256(key, token, pos, sig);
		sig_len = HS256_SIG_BYTES;
	} else if (crypto_sign_detached(sig, NULL, (const unsigned char *)token, pos,
					ed25519_secret_key) != 0) {
		goto fail;
	} else {
		sig_len = EDDSA_SIG_BYTES;
	}
	token[pos++] = '.';
	append_b64(token, &pos, cap, sig, sig_len);
	if (pos > VP_JWT_MAX_TOKEN_LEN)
		goto fail;
	return token;

fail:
	free(token);
	return NULL;
}

int vp_jwt_key_from_hs256_secret(VpJwtKey *key, const char *secret)
{
	size_t n;

	if (key == NULL || secret == NULL)
		return -1;
	n = strnlen(secret, sizeof(key->secret) + 1);
	if (n < 16 || n > sizeof(key->secret))
		return -1;
	memset(key, 0, sizeof(*key));
	key->alg = VP_JWT_HS256;
	memcpy(key->secret, secret, n);
	key->secret_len = n;
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Either alphabet and padding; see decode_part on bytes >= 0x80. */
static bool is_b64_any_char(char c)
{
	return is_b64url_char(c) || c == '+' || c == '/' || c == '=';
}

int vp_jwt_key_from_ed25519_public_b64(VpJwtKey *key, const char *b64)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL,
		sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING,
	};
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	size_t start = 0, end, i, pk_len;

	if (key == NULL || b64 == NULL)
		return -1;
	end = strlen(b64);
	while (start < end && is_space(b64[start]))
		start++;
	while (end > start && is_space(b64[end - 1]))
		end--;
	for (i = start; i < end; i++) {
		if (!is_b64_any_char(b64[i]))
			return -1;
	}
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		if (sodium_base642bin(pk, sizeof(pk), b64 + start, end - start, NULL, &pk_len, NULL,
				      variants[i]) == 0 &&
		    pk_len == sizeof(pk)) {
			memset(key, 0, sizeof(*key));
			key->alg = VP_JWT_EDDSA;
			memcpy(key->public_key, pk, sizeof(pk));
			return 0;
		}
	}
	return -1;
}
