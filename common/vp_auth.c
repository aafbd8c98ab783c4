/* Bearer authentication (see vp_auth.h), with a cache of verified tokens: a
 * client sends the same token on every request, and the signature check was
 * among the writer's own CPU costs (issue 14). */
#include "vp_auth.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "vp_ratelimit.h"
#include "vp_time.h"

#define SCHEME	   "Bearer"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

/* --- the cache of verified tokens -----------------------------------------
 * Keyed by the BLAKE2b digest of the verifier's key, issuer and audience and
 * the exact token text, so only a byte-identical token under the same verifier
 * hits: another signature over the same claims is another key and is
 * verified in full. Only successful verifications enter it; a hit still
 * re-applies the time rules (exp and nbf with the leeway, vp_jwt_check_times).
 * A fixed ring of entries, the oldest overwritten first, with a chained hash
 * index over it; one mutex, since the reader's worker threads share it (the
 * lock covers a lookup or an insert, never the verification). */
#define CACHE_ENTRIES 4096 /* a power of two: the bucket is the digest's low bits */
#define NO_ENTRY      (-1)

typedef struct AuthCacheEntry {
	unsigned char digest[crypto_generichash_BYTES];
	VpClaims claims;
	int32_t next_in_bucket;
	bool in_use;
} AuthCacheEntry;

static struct {
	pthread_mutex_t lock;
	AuthCacheEntry entries[CACHE_ENTRIES];
	int32_t buckets[CACHE_ENTRIES]; /* first entry of each chain, or NO_ENTRY */
	uint32_t oldest;		/* the ring slot the next insert takes */
	bool ready;			/* buckets set to NO_ENTRY */
	uint64_t hits;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void hash_string(crypto_generichash_state *st, const char *s)
{
	/* a length prefix keeps (issuer, audience) pairs apart; NULL != "" */
	uint64_t len = s ? strlen(s) + 1 : 0;

	crypto_generichash_update(st, (const unsigned char *)&len, sizeof(len));
	if (s)
		crypto_generichash_update(st, (const unsigned char *)s, len);
}

static void token_digest(const VpJwtVerifier *v, const char *token, size_t len,
			 unsigned char digest[crypto_generichash_BYTES])
{
	crypto_generichash_state st;
	uint64_t alg = (uint64_t)v->key.alg, secret_len = v->key.secret_len;

	crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)&alg, sizeof(alg));
	crypto_generichash_update(&st, (const unsigned char *)&secret_len, sizeof(secret_len));
	crypto_generichash_update(&st, v->key.secret, v->key.secret_len);
	crypto_generichash_update(&st, v->key.public_key, sizeof(v->key.public_key));
	hash_string(&st, v->issuer);
	hash_string(&st, v->audience);
	crypto_generichash_update(&st, (const unsigned char *)token, len);
	crypto_generichash_final(&st, digest, crypto_generichash_BYTES);
}

static uint32_t bucket_of(const unsigned char *digest)
{
	uint32_t b;

	memcpy(&b, digest, sizeof(b));
	return b & (CACHE_ENTRIES - 1);
}

/* Caller holds the lock. */
static void cache_prepare(void)
{
	if (cache.ready)
		return;
	for (size_t i = 0; i < CACHE_ENTRIES; i++)
		cache.buckets[i] = NO_ENTRY;
	cache.ready = true;
}

static bool cache_lookup(const unsigned char *digest, VpClaims *claims)
{
	bool found = false;

	pthread_mutex_lock(&cache.lock);
	cache_prepare();
	for (int32_t i = cache.buckets[bucket_of(digest)]; i != NO_ENTRY;
	     i = cache.entries[i].next_in_bucket) {
		if (memcmp(cache.entries[i].digest, digest, sizeof(cache.entries[i].digest)) == 0) {
			*claims = cache.entries[i].claims;
			cache.hits++;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&cache.lock);
	return found;
}

/* Caller holds the lock: takes entry slot out of its bucket's chain. */
static void cache_unlink(int32_t slot)
{
	int32_t *link = &cache.buckets[bucket_of(cache.entries[slot].digest)];

	while (*link != NO_ENTRY && *link != slot)
		link = &cache.entries[*link].next_in_bucket;
	if (*link == slot)
		*link = cache.entries[slot].next_in_bucket;
	cache.entries[slot].in_use = false;
}

static void cache_insert(const unsigned char *digest, const VpClaims *claims)
{
	pthread_mutex_lock(&cache.lock);
	cache_prepare();
	/* Two threads may verify the same new token at once: keep one entry. */
	for (int32_t i = cache.buckets[bucket_of(digest)]; i != NO_ENTRY;
	     i = cache.entries[i].next_in_bucket) {
		if (memcmp(cache.entries[i].digest, digest, sizeof(cache.entries[i].digest)) == 0)
			goto done;
	}
	int32_t slot = (int32_t)cache.oldest;
	AuthCacheEntry *e = &cache.entries[slot];
	if (e->in_use)
		cache_unlink(slot);
	memcpy(e->digest, digest, sizeof(e->digest));
	e->claims = *claims;
	e->in_use = true;
	e->next_in_bucket = cache.buckets[bucket_of(digest)];
	cache.buckets[bucket_of(digest)] = slot;
	cache.oldest = (cache.oldest + 1) & (CACHE_ENTRIES - 1);
done:
	pthread_mutex_unlock(&cache.lock);
}

uint64_t vp_auth_cache_hits(void)
{
	uint64_t hits;

	pthread_mutex_lock(&cache.lock);
	hits = cache.hits;
	pthread_mutex_unlock(&cache.lock);
	return hits;
}

void vp_auth_cache_clear(void)
{
	pthread_mutex_lock(&cache.lock);
	cache.ready = false;
	cache_prepare();
	for (size_t i = 0; i < CACHE_ENTRIES; i++)
		cache.entries[i].in_use = false;
	cache.oldest = 0;
	pthread_mutex_unlock(&cache.lock);
}

/* --- the header ----------------------------------------------------------- */

int vp_auth_bearer(const VpJwtVerifier *v, const char *authorization, int64_t now_s,
		   VpClaims *claims, VpError *err)
{
	char why[64] = "";
	unsigned char digest[crypto_generichash_BYTES];
	bool cacheable = false;
	const char *token;
	size_t len;

	memset(claims, 0, sizeof(*claims));
	if (!authorization || !*authorization)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "a Bearer token is required");
	if (strncasecmp(authorization, SCHEME, SCHEME_LEN) != 0 ||
	    (authorization[SCHEME_LEN] != ' ' && authorization[SCHEME_LEN] != '\0'))
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED,
				    "Authorization must be a Bearer token");
	token = authorization + SCHEME_LEN;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	if (len == 0)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "a Bearer token is required");
	if (len > VP_JWT_MAX_TOKEN_LEN) /* vp_jwt_verify's answer; not worth a digest */
		goto verify;
	token_digest(v, token, len, digest);
	if (cache_lookup(digest, claims)) {
		const char *late = vp_jwt_check_times(v, claims, now_s);

		if (!late)
			return vp_ratelimit_admit(digest, claims->has_tid ? claims->tid : NULL, vp_time_mono_us(), err);
		memset(claims, 0, sizeof(*claims));
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "invalid token: %s", late);
	}
	cacheable = true;
verify:
	if (vp_jwt_verify(v, token, len, now_s, claims, why, sizeof(why)) < 0)
		return vp_error_set(err, 401, VP_ERR_UNAUTHENTICATED, "invalid token: %s", why);
	if (!cacheable) /* over VP_JWT_MAX_TOKEN_LEN: never verifies */
		return 0;
	cache_insert(digest, claims);
	return vp_ratelimit_admit(digest, claims->has_tid ? claims->tid : NULL, vp_time_mono_us(), err);
}
