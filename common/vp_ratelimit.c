/* Token buckets per token and per tenant (see vp_ratelimit.h).
 *
 * One table for both kinds of key (a tenant's key is the BLAKE2b of its id,
 * so it never equals a token's), open addressing over a window of slots; when
 * the window is full the stalest bucket gives its slot to the new key. A
 * bucket idle for burst/per_s seconds is full again anyway, so evicting the
 * stalest only forgets a client that was quiet; a client hammering the
 * daemon stays in its slot. Amounts are in millionths of a request, so the
 * refill is exact integer arithmetic. */
#include "vp_ratelimit.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sodium.h>

#include "vp_metrics.h"

#define SLOTS 8192 /* power of two */
#define WINDOW 16
#define ONE 1000000LL /* one request */

typedef struct Bucket {
	unsigned char key[32];
	int64_t amount; /* in millionths of a request */
	int64_t last_us;
	bool used;
} Bucket;

typedef struct Kind {
	int64_t per_s;
	int64_t burst;
	VpMetric *refused;
} Kind;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Bucket table[SLOTS];
static Kind token_kind, tenant_kind;

void vp_ratelimit_configure(const VpRateLimits *l)
{
	pthread_mutex_lock(&lock);
	token_kind = (Kind){l->token_per_s, l->token_burst, NULL};
	tenant_kind = (Kind){l->tenant_per_s, l->tenant_burst, NULL};
	token_kind.refused = vp_metrics_counter("vetpms_http_rate_limited_total", "scope=\"token\"",
						"requests answered 429: over the token's or the "
						"tenant's rate (VETPMS_RATE_*)");
	tenant_kind.refused = vp_metrics_counter("vetpms_http_rate_limited_total",
						 "scope=\"tenant\"", NULL);
	memset(table, 0, sizeof(table));
	pthread_mutex_unlock(&lock);
}

/* key's bucket, made full when new: in an empty slot of its window, else in
 * the window's stalest one (never `keep`, the bucket the caller holds). */
static Bucket *find(const unsigned char key[32], const Kind *kind, const Bucket *keep)
{
	size_t start;
	Bucket *victim = NULL;

	memcpy(&start, key, sizeof(start));
	for (size_t i = 0; i < WINDOW; i++) {
		Bucket *b = &table[(start + i) & (SLOTS - 1)];
		if (b->used && !memcmp(b->key, key, 32))
			return b;
		if (b == keep)
			continue;
		if (!b->used) {
			if (!victim || victim->used)
				victim = b;
		} else if (!victim || (victim->used && b->last_us < victim->last_us)) {
			victim = b;
		}
	}
	memcpy(victim->key, key, 32);
	victim->amount = kind->burst * ONE;
	victim->last_us = 0;
	victim->used = true;
	return victim;
}

/* Refills b to now; the whole seconds until it holds one request, 0 if it does. */
static int64_t refill(Bucket *b, const Kind *kind, int64_t now_us)
{
	int64_t cap = kind->burst * ONE;
	int64_t elapsed = now_us - b->last_us;

	if (b->last_us && elapsed > 0) {
		/* enough to fill any bucket; keeps elapsed * per_s from overflowing */
		if (elapsed > cap / kind->per_s + 1)
			elapsed = cap / kind->per_s + 1;
		b->amount += elapsed * kind->per_s;
		if (b->amount > cap)
			b->amount = cap;
	}
	if (elapsed > 0 || !b->last_us)
		b->last_us = now_us;
	if (b->amount >= ONE)
		return 0;
	int64_t per_s = kind->per_s * ONE; /* millionths a second */
	return (ONE - b->amount + per_s - 1) / per_s;
}

int vp_ratelimit_admit(const unsigned char token_key[32], const char *tenant, int64_t now_us,
		       VpError *err)
{
	unsigned char tenant_key[32];
	Bucket *by_token = NULL, *by_tenant = NULL;
	int64_t wait_token = 0, wait_tenant = 0;
	bool limit_tenant = tenant && *tenant && tenant_kind.per_s > 0;

	if (token_kind.per_s <= 0 && !limit_tenant)
		return 0;
	if (limit_tenant)
		crypto_generichash(tenant_key, sizeof(tenant_key), (const unsigned char *)tenant,
				   strlen(tenant), (const unsigned char *)"tenant", 6);
	pthread_mutex_lock(&lock);
	if (token_kind.per_s > 0) {
		by_token = find(token_key, &token_kind, NULL);
		wait_token = refill(by_token, &token_kind, now_us);
	}
	if (limit_tenant) {
		by_tenant = find(tenant_key, &tenant_kind, by_token);
		wait_tenant = refill(by_tenant, &tenant_kind, now_us);
	}
	if (wait_token == 0 && wait_tenant == 0) {
		if (by_token)
			by_token->amount -= ONE;
		if (by_tenant)
			by_tenant->amount -= ONE;
	}
	pthread_mutex_unlock(&lock);
	if (wait_token == 0 && wait_tenant == 0)
		return 0;
	vp_metric_add(wait_token ? token_kind.refused : tenant_kind.refused, 1);
	vp_error_set(err, 429, VP_ERR_RATE_LIMITED, "too many requests %s: retry in %lld s",
		     wait_token ? "with this token" : "for this tenant",
		     (long long)(wait_token > wait_tenant ? wait_token : wait_tenant));
	err->retry_after_s = (int)(wait_token > wait_tenant ? wait_token : wait_tenant);
	return -1;
}
