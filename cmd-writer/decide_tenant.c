/* ProvisionTenant: a clinic joins the platform. Timezones are checked against
 * the system zoneinfo database, which PostgreSQL reads too (the projector's AT
 * TIME ZONE must never refuse a tenant's zone: every appointment of the tenant
 * would be dead-lettered); currencies are ISO 4217 shaped codes. A keyed
 * command without `id` names the tenant derived from the caller and the key. */
#include <limits.h>
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

/* RFC 8536: "TZif", a version byte, 15 reserved bytes, then six big-endian
 * 32-bit counts. A version 2+ file repeats header and data with 64-bit times
 * after the version 1 data block; readers use the second, so both are checked
 * ("zic -b slim" writes a near-empty first block whatever the zone holds). */
#define TZIF_HEADER_LEN 44

typedef struct TzifCounts {
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} TzifCounts;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header at f's position; its version byte, '\0' for version 1. */
static bool tzif_header(FILE *f, char *version, TzifCounts *c)
{
	unsigned char h[TZIF_HEADER_LEN];
	if (fread(h, 1, sizeof(h), f) != sizeof(h) || memcmp(h, "TZif", 4) != 0)
		return false;
	*version = (char)h[4];
	c->isutcnt = be32(h + 20);
	c->isstdcnt = be32(h + 24);
	c->leapcnt = be32(h + 28);
	c->timecnt = be32(h + 32);
	c->typecnt = be32(h + 36);
	c->charcnt = be32(h + 40);
	return *version == '\0' || (*version >= '2' && *version <= '9');
}

/* Leap seconds (the right/ zones) count TAI-like seconds that PostgreSQL
 * refuses, and a zone without a local time type describes nothing. */
static bool tzif_counts_usable(const TzifCounts *c)
{
	return c->leapcnt == 0 && c->typecnt >= 1;
}

/* Bytes of a version 1 data block (32-bit transition times and leap records). */
static long tzif_v1_data_len(const TzifCounts *c)
{
	return (long)c->timecnt * 5 + (long)c->typecnt * 6 + (long)c->charcnt +
	       (long)c->leapcnt * 8 + (long)c->isstdcnt + (long)c->isutcnt;
}

static bool tzif_usable(FILE *f)
{
	TzifCounts v1, v2;
	char version, version2;
	if (!tzif_header(f, &version, &v1) || !tzif_counts_usable(&v1))
		return false;
	if (version == '\0')
		return true;
	if (fseek(f, tzif_v1_data_len(&v1), SEEK_CUR) != 0)
		return false;
	return tzif_header(f, &version2, &v2) && version2 == version && tzif_counts_usable(&v2);
}

/* TZif files that are no zone: "localtime" is this host's setting (another host,
 * PostgreSQL's, may say something else), "posixrules" is zic's template for
 * POSIX TZ strings. Neither is in the tz database's list of zones. */
static bool host_file(const char *tz)
{
	return !strcmp(tz, "localtime") || !strcmp(tz, "posixrules");
}

bool wr_timezone_known(const char *zoneinfo_dir, const char *tz)
{
	char path[PATH_MAX];
	struct stat st;
	bool usable;
	FILE *f;
	if (!*tz || strstr(tz, "..") || strstr(tz, "//") || tz[0] == '/' ||
	    tz[strlen(tz) - 1] == '/' || strlen(tz) > 64 || host_file(tz))
		return false;
	for (const char *c = tz; *c; c++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/", *c))
			return false;
	if (snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir, tz) >= (int)sizeof(path))
		return false;
	/* stat first: opening a FIFO or a device would block or read forever */
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	f = fopen(path, "rb");
	if (!f)
		return false;
	usable = tzif_usable(f);
	fclose(f);
	return usable;
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
	if (tz && !wr_timezone_known(WR_ZONEINFO_DIR, tz))
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

static const char *const archive_settings[] = {"archive_appointments_after_days",
					      "archive_records_after_days"};

/* A member given a value (null is "not given", as the catalog reads it). */
static bool given(const cJSON *body, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(body, name);
	return item && !cJSON_IsNull(item);
}

/* The settings of the token's own tenant: another tenant's id is reported as
 * not found (API.md: never reveal that it exists). */
static int decide_settings(WrDecision *d, VpError *err)
{
	if (strcmp(d->target_id, d->tenant_id) != 0)
		return wr_not_found(err, "tenant", d->target_id);
	if (wr_check_version(d, d->tenant->version, err) < 0)
		return -1;
	d->aggregate = VP_AGG_TENANT;
	d->type = VP_EV_TENANT_SETTINGS_CHANGED;
	d->seq = d->tenant->version + 1;
	d->data = cJSON_CreateObject();
	/* The event always carries record_lock_hours (required since v1): the
	 * current value when the body changes only the archive settings. Those
	 * are carried only when given; the projector keeps what is not. */
	if (given(d->body, "record_lock_hours"))
		wr_copy_field(d->data, d->body, "record_lock_hours");
	else
		cJSON_AddNumberToObject(d->data, "record_lock_hours",
					(double)d->tenant->record_lock_hours);
	for (size_t i = 0; i < sizeof(archive_settings) / sizeof(archive_settings[0]); i++)
		if (given(d->body, archive_settings[i]))
			wr_copy_field(d->data, d->body, archive_settings[i]);
	return 0;
}

/* A PATCH that names no setting changes nothing: refused, like a body
 * without record_lock_hours was before the archive settings came. */
static void validate_settings(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	if (given(body, "record_lock_hours"))
		return;
	for (size_t i = 0; i < sizeof(archive_settings) / sizeof(archive_settings[0]); i++)
		if (given(body, archive_settings[i]))
			return;
	vp_error_add_detail(err, "record_lock_hours",
			    "is required when no other setting is given");
}

static const VpJsonField settings_fields[] = {
	{.name = "record_lock_hours", .type = VP_JSON_INT, .min = 0, .max = 8760},
	VP_F_ARCHIVE_APPOINTMENTS_DAYS,
	VP_F_ARCHIVE_RECORDS_DAYS,
	VP_F_COMMAND_ID,
};

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
	{"ChangeTenantSettings", EVHTTP_REQ_PATCH, "/v1/tenants/{id}/settings", VP_ROLE_ADMIN,
	 settings_fields, sizeof(settings_fields) / sizeof(settings_fields[0]), false, NULL,
	 validate_settings, decide_settings},
};
const size_t wr_n_tenant_commands = sizeof(wr_tenant_commands) / sizeof(wr_tenant_commands[0]);
