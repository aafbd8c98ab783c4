/* ProvisionTenant: a clinic joins the platform. Timezones are checked against
 * the system zoneinfo database; currencies are ISO 4217 shaped codes. A keyed
 * command without `id` names the tenant derived from the caller and the key. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_uuid.h"

#define TENANT_ID_DOMAIN "vetpms:ProvisionTenant:id:v1"

static void hash_be32(crypto_generichash_state *st, uint32_t n)
{
	const unsigned char be[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
				     (unsigned char)(n >> 8), (unsigned char)n};
	crypto_generichash_update(st, be, sizeof(be));
}

/* Length-prefixed, so ("ab", "c") and ("a", "bc") hash apart. */
static void hash_str(crypto_generichash_state *st, const char *s)
{
	size_t len = strlen(s);
	hash_be32(st, (uint32_t)len);
	crypto_generichash_update(st, (const unsigned char *)s, len);
}

void wr_tenant_id_for_key(const char *sub, const char *key, uint32_t attempt, char out[37])
{
	crypto_generichash_state st;
	VpUuid u;
	crypto_generichash_init(&st, NULL, 0, sizeof(u.bytes));
	hash_str(&st, TENANT_ID_DOMAIN);
	hash_str(&st, sub);
	hash_str(&st, key);
	hash_be32(&st, attempt);
	crypto_generichash_final(&st, u.bytes, sizeof(u.bytes));
	u.bytes[6] = (unsigned char)(0x80u | (u.bytes[6] & 0x0Fu)); /* version 8 */
	u.bytes[8] = (unsigned char)(0x80u | (u.bytes[8] & 0x3Fu)); /* variant 10 */
	vp_uuid_format(&u, out);
}

/* An IANA name: letters, digits, '_', '-', '+', '/' segments, no "..", present
 * as a regular file under /usr/share/zoneinfo. */
static bool timezone_exists(const char *tz)
{
	char path[160];
	struct stat st;
	if (!*tz || strstr(tz, "..") || tz[0] == '/' || strlen(tz) > 64)
		return false;
	for (const char *c = tz; *c; c++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/", *c))
			return false;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool currency_shaped(const char *c)
{
	return strlen(c) == 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' &&
	       c[2] >= 'A' && c[2] <= 'Z';
}

static void validate_provision(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	const char *tz = vp_json_str(body, "timezone");
	const char *currency = vp_json_str(body, "currency");
	if (tz && !timezone_exists(tz))
		vp_error_add_detail(err, "timezone", "must be an IANA timezone such as Europe/London");
	if (currency && !currency_shaped(currency))
		vp_error_add_detail(err, "currency", "must be an ISO 4217 code (3 upper-case letters)");
}

static int decide_provision(WrDecision *d, VpError *err)
{
	if (d->tenant)
		return vp_error_set(err, 409, "ALREADY_EXISTS", "tenant %s already exists",
				    d->tenant_id);
	d->aggregate = VP_AGG_TENANT;
	d->type = VP_EV_TENANT_PROVISIONED;
	d->seq = 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "name");
	wr_copy_field(d->data, d->body, "timezone");
	wr_copy_field(d->data, d->body, "currency");
	return 0;
}

static const VpJsonField provision_fields[] = {
	VP_F_TENANT_NAME,
	VP_F_TIMEZONE,
	VP_F_CURRENCY,
	{.name = "id", .type = VP_JSON_UUID},
	VP_F_COMMAND_ID,
};

const WrCommand wr_tenant_commands[] = {
	{"ProvisionTenant", EVHTTP_REQ_POST, "/v1/tenants", VP_ROLE_PLATFORM_ADMIN, provision_fields,
	 sizeof(provision_fields) / sizeof(provision_fields[0]), true, "/v1/tenants/",
	 validate_provision, decide_provision},
};
const size_t wr_n_tenant_commands = sizeof(wr_tenant_commands) / sizeof(wr_tenant_commands[0]);
