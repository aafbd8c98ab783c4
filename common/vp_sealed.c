/* Sealing and opening the personal fields of client events (vp_sealed.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "vp_buf.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_sealed.h"
#include "vp_time.h"

const char *const vp_personal_fields[] = {"first_name", "last_name", "email", "phone", "address",
					  NULL};

/* The fields with a blind index, and the data member holding each. */
static const char *const indexed_fields[] = {"email", "phone", NULL};
static const char *const index_members[] = {"email_bidx", "phone_bidx", NULL};

#define FIELD_MAX 1024 /* a normalised value's bound: the catalog's limits are lower */
#define SEALED_TEXT_MAX (1u << 20) /* a sealed or wrapped value's text, bounded */
/* A client's personal members as one text fit here (longer ones move to the
 * heap): sealing a registration then allocates no buffer. */
#define STACK_TEXT 512

/* A string member under a constant name (a literal): the name is not
 * copied, one allocation less per member of every sealed event. */
static cJSON *add_string(cJSON *object, const char *const_name, const char *value)
{
	cJSON *item = cJSON_CreateString(value);
	if (item && !cJSON_AddItemToObjectCS(object, const_name, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

const char *const vp_sealed_types[] = {VP_EV_CLIENT_REGISTERED, VP_EV_CLIENT_CONTACT_UPDATED, NULL};

bool vp_sealed_type(const char *type)
{
	for (const char *const *t = vp_sealed_types; *t; t++)
		if (!strcmp(type, *t))
			return true;
	return false;
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

const char *const *vp_sealed_fields_of(const char *type)
{
	static const char *const contact[] = {"email", "phone", "address", NULL};
	return !strcmp(type, VP_EV_CLIENT_CONTACT_UPDATED) ? contact : vp_personal_fields;
}

cJSON *vp_sealed_erased_value(const char *field)
{
	return !strcmp(field, "first_name")  ? cJSON_CreateString("erased")
	       : !strcmp(field, "last_name") ? cJSON_CreateString("client")
					     : cJSON_CreateNull();
}

int vp_sealed_erase_plain(cJSON *data, const char *type)
{
	for (const char *const *f = vp_sealed_fields_of(type); *f; f++) {
		if (!cJSON_GetObjectItemCaseSensitive(data, *f))
			continue;
		cJSON *value = vp_sealed_erased_value(*f);
		if (!value || !cJSON_ReplaceItemInObjectCaseSensitive(data, *f, value)) {
			cJSON_Delete(value);
			return -1;
		}
	}
	return 0;
}

static bool is_field_of(const char *type, const char *name)
{
	for (const char *const *f = vp_sealed_fields_of(type); *f; f++)
		if (!strcmp(*f, name))
			return true;
	return false;
}

/* parts joined into out (cap bytes, cut to fit): no printf on a path run
 * twice per client event */
static void join(const char *const *parts, size_t n_parts, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < n_parts; i++) {
		size_t len = strlen(parts[i]);
		if (n + len >= cap)
			len = cap - 1 - n;
		memcpy(out + n, parts[i], len);
		n += len;
	}
	out[n] = '\0';
}

/* "client:<tenant>:<client>:<what>" (what: the event type in v3, the field
 * in v2), built without printf: it runs once per field opened. */
static void aad_for(const VpSealedOf *of, const char *what, char *out, size_t cap)
{
	const char *parts[] = {"client:", of->tenant_id, ":", of->client_id, ":", what};
	join(parts, sizeof(parts) / sizeof(parts[0]), out, cap);
}

static int add_index(cJSON *data, const VpKey *index_key, const char *field, const char *member,
		     const char *value)
{
	char norm[FIELD_MAX], hex[65];
	if (!value)
		return cJSON_AddNullToObject(data, member) ? 0 : -1;
	size_t n = vp_sealed_normalise(field, value, norm, sizeof(norm));
	vp_blind_index(index_key, field, norm, n, hex);
	return add_string(data, member, hex) ? 0 : -1;
}

/* The personal members of plain present, as one JSON object's text (a
 * member that is not a string is null, as v1 wrote it). A member's name is
 * an identifier of vp_personal_fields, so it goes in with its quotes, colon
 * and comma in one append, not through the escaping string writer (a tenth
 * of the sealing's own work). */
static int fields_text(const cJSON *plain, VpBuf *out)
{
	char lead[40] = "{";
	size_t n_lead = 1;
	int rc = 0;
	for (size_t i = 0; vp_personal_fields[i] && rc == 0; i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(plain, vp_personal_fields[i]);
		if (!item)
			continue; /* absent stays absent: "unchanged" in ContactUpdated */
		size_t len = strlen(vp_personal_fields[i]);
		if (len + 4 > sizeof(lead))
			return -1; /* no field's name is that long */
		lead[n_lead++] = '"';
		memcpy(lead + n_lead, vp_personal_fields[i], len);
		n_lead += len;
		lead[n_lead++] = '"';
		lead[n_lead++] = ':';
		rc = vp_buf_append(out, lead, n_lead);
		if (rc == 0)
			rc = cJSON_IsString(item) ? vp_json_write_string(out, item->valuestring)
						  : vp_buf_append(out, "null", 4);
		lead[0] = ',';
		n_lead = 1;
	}
	if (rc == 0) /* lead is still "{" when no member was present */
		rc = lead[0] == '{' ? vp_buf_append(out, "{}", 2) : vp_buf_append(out, "}", 1);
	return rc;
}

/* {"n": nonce, "c": ciphertext} of plain's personal members, or NULL. */
static cJSON *seal_fields(const cJSON *plain, const VpSealedOf *of, const VpKey *key,
			  char *why, size_t why_cap)
{
	char aad[192], text_room[STACK_TEXT], nonce_room[64], sealed_room[STACK_TEXT * 4 / 3 + 32];
	VpBuf text, nonce, sealed;
	vp_buf_init_on(&text, text_room, sizeof(text_room), SEALED_TEXT_MAX);
	vp_buf_init_on(&nonce, nonce_room, sizeof(nonce_room), SEALED_TEXT_MAX);
	vp_buf_init_on(&sealed, sealed_room, sizeof(sealed_room), SEALED_TEXT_MAX);
	aad_for(of, of->type, aad, sizeof(aad));
	cJSON *out = NULL;
	if (fields_text(plain, &text) < 0)
		snprintf(why, why_cap, "out of memory");
	else if (vp_field_seal(key, text.data, text.len, aad, &nonce, &sealed, why, why_cap) == 0) {
		out = cJSON_CreateObject();
		if (out && (!add_string(out, "n", vp_buf_str(&nonce)) ||
			    !add_string(out, "c", vp_buf_str(&sealed)))) {
			cJSON_Delete(out);
			out = NULL;
		}
		if (!out)
			snprintf(why, why_cap, "out of memory");
	}
	/* the plaintext goes no further: a text that outgrew the stack left
	 * its first part there */
	if (text.data != text_room)
		sodium_memzero(text.data, text.cap);
	sodium_memzero(text_room, sizeof(text_room));
	vp_buf_free(&text);
	vp_buf_free(&nonce);
	vp_buf_free(&sealed);
	return out;
}

cJSON *vp_sealed_seal(const cJSON *plain, const VpSealedOf *of, const VpKey *data_key,
		      const char *key_id, const VpKey *index_key, char *why, size_t why_cap)
{
	char computed[VP_KEY_ID_CHARS + 1];
	if (!key_id || !*key_id) {
		vp_key_id(data_key, computed);
		key_id = computed;
	}
	cJSON *data = cJSON_CreateObject();
	cJSON *fields = seal_fields(plain, of, data_key, why, why_cap);
	if (!fields) {
		cJSON_Delete(data);
		return NULL;
	}
	if (!data || !add_string(data, "key_id", key_id) ||
	    !cJSON_AddItemToObjectCS(data, "sealed", fields)) {
		cJSON_Delete(fields);
		goto oom;
	}
	for (size_t i = 0; indexed_fields[i]; i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(plain, indexed_fields[i]);
		if (item && add_index(data, index_key, indexed_fields[i], index_members[i],
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

/* One sealed text opened into plain; 0 or -1 with why (prefixed by what). */
static int open_text(const VpKey *key, const char *aad, const char *what, const cJSON *sealed,
		     VpBuf *plain, char *why, size_t why_cap)
{
	const char *nonce = vp_json_str(sealed, "n"), *text = vp_json_str(sealed, "c");
	char inner[192];
	if (!nonce || !text) {
		snprintf(why, why_cap, "%s: not a sealed value", what);
		return -1;
	}
	if (vp_field_open(key, nonce, text, aad, plain, inner, sizeof(inner)) < 0) {
		snprintf(why, why_cap, "%s: %s", what, inner);
		return -1;
	}
	return 0;
}

static void plain_free(VpBuf *plain)
{
	if (plain->data)
		sodium_memzero(plain->data, plain->cap); /* the plaintext goes no further */
	vp_buf_free(plain);
}

/* v2: one sealed member opened into out under name; 0 or -1 with why. */
static int open_one(const VpKey *key, const VpSealedOf *of, const char *name,
		    const cJSON *sealed, cJSON *out, char *why, size_t why_cap)
{
	char aad[192], what[48];
	if (cJSON_IsNull(sealed))
		return cJSON_AddNullToObject(out, name) ? 0 : -1;
	aad_for(of, name, aad, sizeof(aad));
	snprintf(what, sizeof(what), "sealed.%s", name);
	VpBuf plain;
	vp_buf_init(&plain, SEALED_TEXT_MAX);
	int rc = open_text(key, aad, what, sealed, &plain, why, why_cap);
	if (rc == 0 && !cJSON_AddStringToObject(out, name, vp_buf_str(&plain))) {
		snprintf(why, why_cap, "out of memory");
		rc = -1;
	}
	plain_free(&plain);
	return rc;
}

/* v2: each member of fields opened on its own. */
static cJSON *open_v2(const cJSON *fields, const VpSealedOf *of, const VpKey *key, char *why,
		      size_t why_cap)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *item;
	cJSON_ArrayForEach(item, fields)
	{
		if (!is_field_of(of->type, item->string)) {
			snprintf(why, why_cap, "sealed.%s is not a personal field", item->string);
			cJSON_Delete(out);
			return NULL;
		}
		if (!out || open_one(key, of, item->string, item, out, why, why_cap) < 0) {
			if (!out)
				snprintf(why, why_cap, "out of memory");
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

/* Whether opened (v3's plaintext) is an object of the type's personal
 * fields, each a string or null, the names of a registration present. */
static bool v3_shape_ok(const cJSON *opened, const char *type, char *why, size_t why_cap)
{
	const cJSON *item;
	if (!cJSON_IsObject(opened)) {
		snprintf(why, why_cap, "sealed: not an object of personal fields");
		return false;
	}
	cJSON_ArrayForEach(item, opened)
	{
		if (!is_field_of(type, item->string) ||
		    !(cJSON_IsString(item) || cJSON_IsNull(item))) {
			snprintf(why, why_cap, "sealed: %s is not a personal field of %s",
				 item->string, type);
			return false;
		}
	}
	if (!strcmp(type, VP_EV_CLIENT_REGISTERED) &&
	    (!vp_json_str(opened, "first_name") || !vp_json_str(opened, "last_name"))) {
		snprintf(why, why_cap, "sealed: a registration without its names");
		return false;
	}
	return true;
}

/* v3: the one sealed object opened and parsed. */
static cJSON *open_v3(const cJSON *sealed, const VpSealedOf *of, const VpKey *key, char *why,
		      size_t why_cap)
{
	char aad[192];
	VpBuf plain;
	vp_buf_init(&plain, SEALED_TEXT_MAX);
	aad_for(of, of->type, aad, sizeof(aad));
	cJSON *out = NULL;
	if (open_text(key, aad, "sealed", sealed, &plain, why, why_cap) == 0) {
		out = cJSON_ParseWithLength(plain.data, plain.len);
		if (!v3_shape_ok(out, of->type, why, why_cap)) {
			cJSON_Delete(out);
			out = NULL;
		}
	}
	plain_free(&plain);
	return out;
}

cJSON *vp_sealed_open(const cJSON *data, int v, const VpSealedOf *of, const VpKey *data_key,
		      const char *key_id, char *why, size_t why_cap)
{
	char computed[VP_KEY_ID_CHARS + 1];
	const char *named = vp_sealed_key_id(data);
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(data, "sealed");
	if (!key_id || !*key_id) {
		vp_key_id(data_key, computed);
		key_id = computed;
	}
	if (!named || strcmp(named, key_id) != 0) {
		snprintf(why, why_cap, "sealed with key %s, not the client's key %s",
			 named ? named : "(none)", key_id);
		return NULL;
	}
	if (!cJSON_IsObject(fields)) {
		snprintf(why, why_cap, "data.sealed is not an object");
		return NULL;
	}
	cJSON *out = v == VP_SEALED_V_FIRST ? open_v2(fields, of, data_key, why, why_cap)
					    : open_v3(fields, of, data_key, why, why_cap);
	for (size_t i = 0; out && indexed_fields[i]; i++) {
		const char *member = index_members[i];
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
	const char *parts[] = {client_id ? VP_KEYREC_CLIENT : VP_KEYREC_TENANT, ":", tenant_id,
			       ":", client_id};
	join(parts, client_id ? 5 : 3, out, cap);
}

char *vp_keyrec_text(const char *name, const char *kek_id, const char *key_id,
		     const char *wrapped, int64_t now_us)
{
	char at[40];
	bool tenant = !strncmp(name, VP_KEYREC_TENANT ":", sizeof(VP_KEYREC_TENANT));
	vp_time_format_rfc3339_us(now_us, at, sizeof(at));
	/* joined, not built with cJSON nor printed: every part is hex,
	 * base64url or a timestamp, nothing to escape, and this runs once per
	 * new client */
	const char *parts[] = {"{\"kind\":\"", tenant ? VP_KEYREC_TENANT : VP_KEYREC_CLIENT,
			       "\",\"kek_id\":\"", kek_id, "\",\"key_id\":\"", key_id,
			       "\",\"wrapped\":\"", wrapped, "\",\"created_at\":\"", at, "\"}"};
	size_t cap = strlen(wrapped) + 2 * VP_KEY_ID_CHARS + sizeof(at) + 96;
	char *text = malloc(cap);
	if (text)
		join(parts, sizeof(parts) / sizeof(parts[0]), text, cap);
	return text;
}

char *vp_keyrec_master_value(const char *kek_id, int64_t now_us)
{
	char at[40];
	vp_time_format_rfc3339_us(now_us, at, sizeof(at));
	const char *parts[] = {"{\"kind\":\"" VP_KEYREC_MASTER "\",\"kek_id\":\"", kek_id,
			       "\",\"created_at\":\"", at, "\"}"};
	size_t cap = strlen(kek_id) + sizeof(at) + 64;
	char *text = malloc(cap);
	if (text)
		join(parts, sizeof(parts) / sizeof(parts[0]), text, cap);
	return text;
}

bool vp_keyrec_is_master(const char *name, size_t len)
{
	return len == strlen(VP_KEYREC_MASTER_NAME) && !memcmp(name, VP_KEYREC_MASTER_NAME, len);
}

char *vp_keyrec_value(const VpKey *kek, const VpKey *key, const char *name, int64_t now_us,
		      char *why, size_t why_cap)
{
	char kek_id[VP_KEY_ID_CHARS + 1], key_id[VP_KEY_ID_CHARS + 1], room[VP_WRAPPED_CHARS + 1];
	VpBuf wrapped;
	vp_buf_init_on(&wrapped, room, sizeof(room), SEALED_TEXT_MAX);
	if (vp_key_wrap(kek, key, name, &wrapped, why, why_cap) < 0) {
		vp_buf_free(&wrapped);
		return NULL;
	}
	vp_key_id(kek, kek_id);
	vp_key_id(key, key_id);
	char *text = vp_keyrec_text(name, kek_id, key_id, vp_buf_str(&wrapped), now_us);
	if (!text)
		snprintf(why, why_cap, "out of memory");
	vp_buf_free(&wrapped);
	return text;
}
