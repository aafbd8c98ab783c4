/* Sealing and opening the personal fields of client events (vp_sealed.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "vp_buf.h"
#include "vp_catalog.h"
#include "vp_sealed.h"
#include "vp_time.h"

const char *const vp_personal_fields[] = {"first_name", "last_name", "email", "phone", "address",
					  NULL};

/* The fields with a blind index, and the data member holding it. */
static const char *const indexed_fields[] = {"email", "phone", NULL};

#define FIELD_MAX 1024 /* a normalised value's bound: the catalog's limits are lower */
#define SEALED_TEXT_MAX (1u << 20) /* a sealed or wrapped value's text, bounded */

bool vp_sealed_type(const char *type)
{
	return !strcmp(type, VP_EV_CLIENT_REGISTERED) || !strcmp(type, VP_EV_CLIENT_CONTACT_UPDATED);
}

size_t vp_sealed_normalise(const char *field, const char *value, char *out, size_t cap)
{
	size_t n = 0;
	if (cap == 0)
		return 0;
	const char *start = value, *end = value + strlen(value);
	while (start < end && isspace((unsigned char)*start))
		start++;
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	bool phone = !strcmp(field, "phone"), email = !strcmp(field, "email");
	for (const char *p = start; p < end && n + 1 < cap; p++) {
		unsigned char c = (unsigned char)*p;
		if (phone && !isdigit(c) && !(c == '+' && n == 0))
			continue; /* "+44 (20) 7946-0000" and "+442079460000" match */
		out[n++] = email ? (char)tolower(c) : (char)c;
	}
	out[n] = '\0';
	return n;
}

static void aad_for(const char *tenant_id, const char *client_id, const char *field, char *out,
		    size_t cap)
{
	snprintf(out, cap, "client:%s:%s:%s", tenant_id, client_id, field);
}

/* {"n": nonce, "c": ciphertext} of one value, or NULL with why. */
static cJSON *seal_one(const VpKey *key, const char *aad, const char *value, char *why,
		       size_t why_cap)
{
	VpBuf nonce, sealed;
	vp_buf_init(&nonce, SEALED_TEXT_MAX);
	vp_buf_init(&sealed, SEALED_TEXT_MAX);
	cJSON *out = NULL;
	if (vp_field_seal(key, value, strlen(value), aad, &nonce, &sealed, why, why_cap) == 0) {
		out = cJSON_CreateObject();
		if (out && (!cJSON_AddStringToObject(out, "n", vp_buf_str(&nonce)) ||
			    !cJSON_AddStringToObject(out, "c", vp_buf_str(&sealed)))) {
			cJSON_Delete(out);
			out = NULL;
		}
		if (!out)
			snprintf(why, why_cap, "out of memory");
	}
	vp_buf_free(&nonce);
	vp_buf_free(&sealed);
	return out;
}

static int add_index(cJSON *data, const VpKey *index_key, const char *field, const char *value)
{
	char member[32], norm[FIELD_MAX], hex[65];
	snprintf(member, sizeof(member), "%s_bidx", field);
	if (!value)
		return cJSON_AddNullToObject(data, member) ? 0 : -1;
	size_t n = vp_sealed_normalise(field, value, norm, sizeof(norm));
	vp_blind_index(index_key, field, norm, n, hex);
	return cJSON_AddStringToObject(data, member, hex) ? 0 : -1;
}

cJSON *vp_sealed_seal(const cJSON *plain, const char *tenant_id, const char *client_id,
		      const VpKey *data_key, const VpKey *index_key, char *why, size_t why_cap)
{
	char key_id[VP_KEY_ID_CHARS + 1], aad[160];
	vp_key_id(data_key, key_id);
	cJSON *data = cJSON_CreateObject();
	cJSON *fields = cJSON_CreateObject();
	if (!data || !fields || !cJSON_AddStringToObject(data, "key_id", key_id) ||
	    !cJSON_AddItemToObject(data, "sealed", fields)) {
		cJSON_Delete(fields);
		goto oom;
	}
	for (size_t i = 0; vp_personal_fields[i]; i++) {
		const char *name = vp_personal_fields[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(plain, name);
		if (!item)
			continue; /* absent stays absent: "unchanged" in ContactUpdated */
		cJSON *sealed = NULL;
		if (cJSON_IsString(item)) {
			aad_for(tenant_id, client_id, name, aad, sizeof(aad));
			sealed = seal_one(data_key, aad, item->valuestring, why, why_cap);
			if (!sealed) {
				cJSON_Delete(data);
				return NULL;
			}
		} else
			sealed = cJSON_CreateNull();
		if (!sealed || !cJSON_AddItemToObject(fields, name, sealed))
			goto oom;
	}
	for (size_t i = 0; indexed_fields[i]; i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(plain, indexed_fields[i]);
		if (item && add_index(data, index_key, indexed_fields[i],
				      cJSON_IsString(item) ? item->valuestring : NULL) < 0)
			goto oom;
	}
	return data;
oom:
	cJSON_Delete(data);
	snprintf(why, why_cap, "out of memory");
	return NULL;
}

const char *vp_sealed_key_id(const cJSON *data)
{
	return vp_json_str(data, "key_id");
}

/* One sealed member opened into out under name; 0 or -1 with why. */
static int open_one(const VpKey *key, const char *aad, const char *name, const cJSON *sealed,
		    cJSON *out, char *why, size_t why_cap)
{
	if (cJSON_IsNull(sealed))
		return cJSON_AddNullToObject(out, name) ? 0 : -1;
	const char *nonce = vp_json_str(sealed, "n"), *text = vp_json_str(sealed, "c");
	if (!nonce || !text) {
		snprintf(why, why_cap, "sealed.%s: not a sealed value", name);
		return -1;
	}
	VpBuf plain;
	vp_buf_init(&plain, SEALED_TEXT_MAX);
	char inner[192];
	int rc = vp_field_open(key, nonce, text, aad, &plain, inner, sizeof(inner));
	if (rc < 0)
		snprintf(why, why_cap, "sealed.%s: %s", name, inner);
	else if (!cJSON_AddStringToObject(out, name, vp_buf_str(&plain))) {
		snprintf(why, why_cap, "out of memory");
		rc = -1;
	}
	if (plain.data)
		sodium_memzero(plain.data, plain.cap); /* the plaintext goes no further */
	vp_buf_free(&plain);
	return rc;
}

cJSON *vp_sealed_open(const cJSON *data, const char *tenant_id, const char *client_id,
		      const VpKey *data_key, char *why, size_t why_cap)
{
	char key_id[VP_KEY_ID_CHARS + 1], aad[160];
	const char *named = vp_sealed_key_id(data);
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(data, "sealed");
	vp_key_id(data_key, key_id);
	if (!named || strcmp(named, key_id) != 0) {
		snprintf(why, why_cap, "sealed with key %s, not the client's key %s",
			 named ? named : "(none)", key_id);
		return NULL;
	}
	if (!cJSON_IsObject(fields)) {
		snprintf(why, why_cap, "data.sealed is not an object");
		return NULL;
	}
	cJSON *out = cJSON_CreateObject();
	const cJSON *item;
	cJSON_ArrayForEach(item, fields)
	{
		bool personal = false;
		for (size_t i = 0; vp_personal_fields[i] && !personal; i++)
			personal = !strcmp(item->string, vp_personal_fields[i]);
		if (!personal) {
			snprintf(why, why_cap, "sealed.%s is not a personal field", item->string);
			cJSON_Delete(out);
			return NULL;
		}
		aad_for(tenant_id, client_id, item->string, aad, sizeof(aad));
		if (!out || open_one(data_key, aad, item->string, item, out, why, why_cap) < 0) {
			if (!out)
				snprintf(why, why_cap, "out of memory");
			cJSON_Delete(out);
			return NULL;
		}
	}
	for (size_t i = 0; indexed_fields[i]; i++) {
		char member[32];
		snprintf(member, sizeof(member), "%s_bidx", indexed_fields[i]);
		const cJSON *bidx = cJSON_GetObjectItemCaseSensitive(data, member);
		if (bidx && !cJSON_AddItemToObject(out, member, cJSON_Duplicate(bidx, false))) {
			snprintf(why, why_cap, "out of memory");
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

void vp_keyrec_name(const char *tenant_id, const char *client_id, char *out, size_t cap)
{
	if (client_id)
		snprintf(out, cap, "%s:%s:%s", VP_KEYREC_CLIENT, tenant_id, client_id);
	else
		snprintf(out, cap, "%s:%s", VP_KEYREC_TENANT, tenant_id);
}

char *vp_keyrec_value(const VpKey *kek, const VpKey *key, const char *name, int64_t now_us,
		      char *why, size_t why_cap)
{
	char kek_id[VP_KEY_ID_CHARS + 1], key_id[VP_KEY_ID_CHARS + 1], at[40];
	VpBuf wrapped;
	vp_buf_init(&wrapped, SEALED_TEXT_MAX);
	if (vp_key_wrap(kek, key, name, &wrapped, why, why_cap) < 0) {
		vp_buf_free(&wrapped);
		return NULL;
	}
	vp_key_id(kek, kek_id);
	vp_key_id(key, key_id);
	vp_time_format_rfc3339_us(now_us, at, sizeof(at));
	bool tenant = !strncmp(name, VP_KEYREC_TENANT ":", sizeof(VP_KEYREC_TENANT));
	cJSON *v = cJSON_CreateObject();
	char *text = NULL;
	if (v && cJSON_AddStringToObject(v, "kind", tenant ? VP_KEYREC_TENANT : VP_KEYREC_CLIENT) &&
	    cJSON_AddStringToObject(v, "kek_id", kek_id) &&
	    cJSON_AddStringToObject(v, "key_id", key_id) &&
	    cJSON_AddStringToObject(v, "wrapped", vp_buf_str(&wrapped)) &&
	    cJSON_AddStringToObject(v, "created_at", at))
		text = cJSON_PrintUnformatted(v);
	if (!text)
		snprintf(why, why_cap, "out of memory");
	cJSON_Delete(v);
	vp_buf_free(&wrapped);
	return text;
}
