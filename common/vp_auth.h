/* Bearer authentication shared by the daemons: the Authorization header's value
 * to the token's claims, or the 401 the API answers. One function and one clock
 * leeway, so a token the writer accepts is one the reader accepts too. */
#ifndef VP_AUTH_H
#define VP_AUTH_H

#include <stdint.h>

#include "vp_error.h"
#include "vp_jwt.h"

/* Clock skew allowed on exp and nbf, in seconds, for every daemon's verifier
 * (docs/decisions.md: why 5). */
#define VP_AUTH_LEEWAY_S 5

/* authorization: the header's value, NULL when absent. "Bearer" in any case
 * (RFC 7235: schemes are case-insensitive), one or more spaces, the token;
 * trailing blanks are ignored. 0 with *claims filled, or -1 with err set to
 * 401 UNAUTHENTICATED ("a Bearer token is required", "Authorization must be a
 * Bearer token", "invalid token: <vp_jwt_verify's reason>"). The caller adds
 * WWW-Authenticate if it answers with one. A token that verifies may still be
 * refused: 429 RATE_LIMITED over its own or its tenant's rate (vp_ratelimit.h). */
int vp_auth_bearer(const VpJwtVerifier *v, const char *authorization, int64_t now_s,
		   VpClaims *claims, VpError *err);

/* vp_auth_bearer remembers the claims of the last 4096 tokens it verified (per
 * process, thread-safe) and skips the signature check for a byte-identical
 * token under the same verifier; exp and nbf are checked on every use. How
 * many calls the cache answered, and emptying it (for tests). */
uint64_t vp_auth_cache_hits(void);
void vp_auth_cache_clear(void);

#endif
