/* vetctl token: mints a development JWT (HS256, the secret of
 * VETPMS_JWT_HS256_SECRET or --secret-file) for the roles given. For local use
 * and tests; production tokens come from the identity provider. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "vetctl.h"
#include "vp_config.h"
#include "vp_jwt.h"
#include "vp_uuid.h"

typedef struct TokenOptions {
	char *roles;
	char *tenant;
	char *sub;
	char *secret;
	char *secret_file;
	char *issuer;
	char *audience;
	long ttl_s;
} TokenOptions;

/* Reads the first line of a secret file (no trailing newline). */
static char *read_secret_file(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *got = fgets(line, sizeof(line), f);
	fclose(f);
	if (!got)
		return NULL;
	line[strcspn(line, "\r\n")] = '\0';
	return strdup(line);
}

/* {"sub":…, "tid":…, "roles":[…], "iat":…, "exp":…, "iss"?, "aud"?} */
static char *build_claims(const TokenOptions *o, char *why, size_t why_cap)
{
	char *json = NULL;
	cJSON *claims = cJSON_CreateObject();
	cJSON *roles = cJSON_AddArrayToObject(claims, "roles");
	char *list = strdup(o->roles);
	if (!claims || !roles || !list) {
		snprintf(why, why_cap, "out of memory");
		goto done;
	}
	for (char *role = list, *next; role; role = next) {
		next = strchr(role, ',');
		if (next)
			*next++ = '\0';
		if (!*role)
			continue;
		if (!vp_role_parse(role)) {
			snprintf(why, why_cap, "unknown role '%s'", role);
			goto done;
		}
		cJSON_AddItemToArray(roles, cJSON_CreateString(role));
	}
	if (cJSON_GetArraySize(roles) == 0) {
		snprintf(why, why_cap, "--role is required (e.g. --role admin)");
		goto done;
	}
	VpUuid tid;
	if (*o->tenant && vp_uuid_parse(o->tenant, strlen(o->tenant), &tid) < 0) {
		snprintf(why, why_cap, "--tenant must be a UUID");
		goto done;
	}
	long long now = (long long)time(NULL);
	cJSON_AddStringToObject(claims, "sub", o->sub);
	if (*o->tenant) {
		char text[37];
		vp_uuid_format(&tid, text);
		cJSON_AddStringToObject(claims, "tid", text);
	}
	cJSON_AddNumberToObject(claims, "iat", (double)now);
	cJSON_AddNumberToObject(claims, "exp", (double)(now + o->ttl_s));
	if (*o->issuer)
		cJSON_AddStringToObject(claims, "iss", o->issuer);
	if (*o->audience)
		cJSON_AddStringToObject(claims, "aud", o->audience);
	json = cJSON_PrintUnformatted(claims);
	if (!json)
		snprintf(why, why_cap, "out of memory");
done:
	free(list);
	cJSON_Delete(claims);
	return json;
}

int vc_cmd_token(int argc, char **argv)
{
	TokenOptions o = {0};
	char why[512] = "";
	char *secret = NULL;
	char *claims = NULL;
	char *token = NULL;
	int rc = 1;
	const VpConfigItem items[] = {
		VP_CF_STR("role", NULL, &o.roles, "", "comma-separated roles"),
		VP_CF_STR("tenant", NULL, &o.tenant, "", "tenant id (absent: platform admin)"),
		VP_CF_STR("sub", NULL, &o.sub, "dev-user", "subject (user id)"),
		VP_CF_STR("secret", "VETPMS_JWT_HS256_SECRET", &o.secret, "", "HS256 secret"),
		VP_CF_STR("secret-file", "VETPMS_JWT_HS256_SECRET_FILE", &o.secret_file, "",
			  "file holding the HS256 secret (when --secret is empty)"),
		VP_CF_STR("issuer", "VETPMS_JWT_ISSUER", &o.issuer, "", "iss claim"),
		VP_CF_STR("audience", "VETPMS_JWT_AUDIENCE", &o.audience, "", "aud claim"),
		VP_CF_INT("ttl-s", NULL, &o.ttl_s, "86400", -86400, 31536000,
			  "lifetime in seconds (negative: already expired, for tests)"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);

	int loaded = vp_config_load(items, n, argc, argv, "vetctl token", NULL, why, sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		rc = loaded < 0 ? 2 : 0;
		goto done;
	}
	secret = *o.secret ? strdup(o.secret)
			   : (*o.secret_file ? read_secret_file(o.secret_file) : NULL);
	VpJwtKey key;
	if (!secret || vp_jwt_key_from_hs256_secret(&key, secret) < 0) {
		fprintf(stderr, "vetctl: an HS256 secret of 16-256 bytes is needed "
				"(VETPMS_JWT_HS256_SECRET or --secret-file)\n");
		goto done;
	}
	claims = build_claims(&o, why, sizeof(why));
	token = claims ? vp_jwt_sign(&key, NULL, claims) : NULL;
	if (!token) {
		fprintf(stderr, "vetctl: %s\n", *why ? why : "cannot sign the token");
		goto done;
	}
	printf("%s\n", token);
	rc = 0;
done:
	free(token);
	free(claims);
	free(secret);
	vp_config_free(items, n);
	return rc;
}
