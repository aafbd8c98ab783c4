/* Request rate limits per token and per tenant: token buckets (a bucket holds
 * up to `burst` requests and refills at `per_s` a second), checked after a
 * token is verified (vp_auth_bearer), so both daemons limit the same way.
 * A refused request takes nothing from either bucket and is answered 429
 * RATE_LIMITED with Retry-After: the seconds until the bucket that refused it
 * holds a request again. */
#ifndef VP_RATELIMIT_H
#define VP_RATELIMIT_H

#include <stdint.h>

#include "vp_error.h"

typedef struct VpRateLimits {
	long token_per_s;  /* 0: no limit per token */
	long token_burst;
	long tenant_per_s; /* 0: no limit per tenant */
	long tenant_burst;
} VpRateLimits;

/* The four config items, for a daemon's VpConfigItem table (vp_config.h). */
#define VP_RATE_LIMIT_ITEMS(limits)                                                              \
	VP_CF_INT("rate-token-per-s", "VETPMS_RATE_TOKEN_PER_S", &(limits).token_per_s, "500",  \
		  0, 1000000, "requests a second one token may make (0: no limit)"),             \
	    VP_CF_INT("rate-token-burst", "VETPMS_RATE_TOKEN_BURST", &(limits).token_burst,     \
		      "1000", 1, 10000000, "requests one token may make at once"),              \
	    VP_CF_INT("rate-tenant-per-s", "VETPMS_RATE_TENANT_PER_S",                          \
		      &(limits).tenant_per_s, "2000", 0, 1000000,                               \
		      "requests a second all tokens of one tenant may make (0: no limit)"),     \
	    VP_CF_INT("rate-tenant-burst", "VETPMS_RATE_TENANT_BURST",                          \
		      &(limits).tenant_burst, "4000", 1, 10000000,                              \
		      "requests all tokens of one tenant may make at once")

/* Sets the limits (at start-up; until then nothing is limited) and empties
 * the buckets. */
void vp_ratelimit_configure(const VpRateLimits *limits);

/* One request of the token whose digest is token_key (32 bytes) and of
 * tenant (NULL or "" for a token without one: only the token's bucket).
 * 0 when admitted; -1 with err set to 429 RATE_LIMITED and its retry_after_s. */
int vp_ratelimit_admit(const unsigned char token_key[32], const char *tenant, int64_t now_us,
		       VpError *err);

#endif
