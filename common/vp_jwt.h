/* Bearer tokens: verification of JWS-compact JWTs (HS256 or EdDSA/Ed25519) into the
 * claims the daemons authorise with, and signing for the ops CLI and tests.
 * libsodium only; the caller has run sodium_init(). */
#ifndef VP_JWT_H
#define VP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VP_JWT_MAX_TOKEN_LEN 8192
#define VP_JWT_MAX_SUB_LEN   128 /* = VP_EVENT_MAX_ACTOR: sub is stored as the actor */

enum {
	VP_ROLE_PLATFORM_ADMIN = 1u << 0,
	VP_ROLE_ADMIN = 1u << 1,
	VP_ROLE_VET = 1u << 2,
	VP_ROLE_NURSE = 1u << 3,
	VP_ROLE_RECEPTION = 1u << 4,
	VP_ROLE_ANALYST = 1u << 5,
	VP_ROLE_OPS = 1u << 6,
	/* Platform operations across tenants (the writer's tenant import): never
	 * in a tenant's token; the import also requires that the token names no
	 * tenant. */
	VP_ROLE_PLATFORM_OPS = 1u << 7,
};

/* "platform-admin" "admin" "vet" "nurse" "reception" "analyst" "ops" "platform-ops" (exact case)
 * -> its bit; 0 when unknown or NULL. */
unsigned vp_role_parse(const char *name);

/* The name of one role bit; NULL for 0, several bits or an unknown bit. */
const char *vp_role_name(unsigned role_bit);

typedef enum { VP_JWT_HS256 = 1, VP_JWT_EDDSA = 2 } VpJwtAlg;

typedef struct VpJwtKey {
	VpJwtAlg alg;
	unsigned char secret[256]; /* HS256 */
	size_t secret_len;
	unsigned char public_key[32]; /* EdDSA, crypto_sign_PUBLICKEYBYTES */
} VpJwtKey;

typedef struct VpJwtVerifier {
	VpJwtKey key;         /* the one algorithm accepted is key.alg */
	const char *issuer;   /* NULL: not checked */
	const char *audience; /* NULL: not checked */
	int leeway_s;         /* clock skew allowed on exp and nbf; negative counts as 0 */
} VpJwtVerifier;

typedef struct VpClaims {
	char sub[VP_JWT_MAX_SUB_LEN + 1];
	char tid[37]; /* canonical lower-case UUID when has_tid */
	bool has_tid;
	unsigned roles; /* VP_ROLE_* bits; unknown role names are ignored */
	int64_t exp;    /* seconds since the epoch */
	int64_t iat;    /* 0 when absent */
	int64_t nbf;    /* when has_nbf */
	bool has_nbf;
} VpClaims;

/* Verifies token (len bytes, need not be NUL-terminated) at now_s (Unix seconds).
 * 0 with *out filled, or -1 with *out zeroed and a short reason in why (may be
 * NULL): "token too long", "malformed token", "bad base64", "bad header",
 * "alg not allowed", "bad typ", "crit not supported", "bad key", "bad signature",
 * "bad payload", "exp missing", "bad exp", "expired", "bad nbf", "not yet valid",
 * "bad iat", "bad sub" (not 1-128 bytes of UTF-8 free of control characters),
 * "bad tid", "bad roles", "wrong issuer", "wrong audience". */
int vp_jwt_verify(const VpJwtVerifier *v, const char *token, size_t len, int64_t now_s,
		  VpClaims *out, char *why, size_t why_cap);

/* The time rules of vp_jwt_verify alone, on claims it filled before: NULL when
 * they hold at now_s, else "expired" or "not yet valid" (the same checks, leeway
 * and order). For a cache of verified tokens (vp_auth.c), which must re-apply
 * them on every use. */
const char *vp_jwt_check_times(const VpJwtVerifier *v, const VpClaims *claims, int64_t now_s);

/* A token over payload_json (used as given) with header {"alg":"HS256","typ":"JWT"}
 * or {"alg":"EdDSA","typ":"JWT"} per key->alg; EdDSA needs the 64-byte libsodium
 * secret key, HS256 takes NULL. malloc'd, the caller frees; NULL on error or when
 * the token would exceed VP_JWT_MAX_TOKEN_LEN. */
char *vp_jwt_sign(const VpJwtKey *key, const unsigned char *ed25519_secret_key,
		  const char *payload_json);

/* HS256 key from the raw bytes of secret (16-256 bytes, else -1). */
int vp_jwt_key_from_hs256_secret(VpJwtKey *key, const char *secret);

/* EdDSA key from the standard or URL-safe base64 (padded or not) of the 32-byte
 * public key; surrounding whitespace is ignored. 0 or -1. */
int vp_jwt_key_from_ed25519_public_b64(VpJwtKey *key, const char *b64);

#endif
