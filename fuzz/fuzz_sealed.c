/* libFuzzer target: sealed personal fields (common/vp_sealed.c) as the
 * projector opens them off the log, and as the writer seals them. The first
 * byte picks a mode; the rest is JSON text.
 *
 * Mode 0, any data object as a client event's data (v2 or v3, by the second
 * byte), opened under the fixed data key for each sealed type: refused with
 * a reason, or (a seed sealed under that key) opened into the type's
 * personal fields only, each a string or null, a v3 registration with its
 * names, plus the blind indexes data names.
 *
 * Mode 1, any data object as plain (v1) data, sealed for each sealed type:
 * a seal refused gives a reason; a sealed one opens under the same key, for
 * the same type and client, into exactly the personal members plain has (a
 * member that is not a string as null), with email_bidx / phone_bidx when
 * email / phone are present, each the same as sealing again gives (a blind
 * index is deterministic, the ciphertext is not). It does not open for
 * another client or type, nor with any one character of its ciphertext or
 * nonce changed. Data the writer never seals (a registration without both
 * names, a contact update with a name) is refused at opening. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "vp_catalog.h"
#include "vp_crypto.h"
#include "vp_error.h"
#include "vp_json.h"
#include "vp_sealed.h"

#define TENANT "01a23656-0000-7000-8000-000000000001"
#define CLIENT "01a23656-0000-7000-8000-000000000002"
#define OTHER  "01a23656-0000-7000-8000-000000000003"

static VpKey *data_key, *index_key;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char why[128];
	if (vp_crypto_init(why, sizeof(why)) < 0 ||
	    !(data_key = vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", why,
					  sizeof(why))) ||
	    !(index_key = vp_key_from_text("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8", why,
					   sizeof(why)))) {
		fprintf(stderr, "fuzz_sealed: %s\n", why);
		abort();
	}
	return 0;
}

/* Whether name is one of the personal fields type carries. */
static bool field_of(const char *type, const char *name)
{
	for (const char *const *f = vp_sealed_fields_of(type); *f; f++)
		if (!strcmp(*f, name))
			return true;
	return false;
}

/* What opened holds: the type's personal fields, each a string or null (a
 * v3 registration's names strings: v2 opened each field on its own, and the
 * catalog's check of the opened data asks for the names), and the blind
 * indexes data names. */
static void check_opened(const cJSON *opened, const cJSON *data, const char *type, int v)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, opened)
	{
		bool bidx = !strcmp(item->string, "email_bidx") || !strcmp(item->string, "phone_bidx");
		FUZZ_CHECK(bidx || (field_of(type, item->string) &&
				    (cJSON_IsString(item) || cJSON_IsNull(item))),
			   "opened %s holds %s", type, item->string);
		FUZZ_CHECK(!bidx || cJSON_Compare(item,
						  cJSON_GetObjectItemCaseSensitive(data,
										   item->string),
						  true),
			   "%s is not the one data names", item->string);
	}
	FUZZ_CHECK(v != VP_SEALED_V || strcmp(type, VP_EV_CLIENT_REGISTERED) != 0 ||
		       (vp_json_str(opened, "first_name") && vp_json_str(opened, "last_name")),
		   "a registration opened without its names");
}

static void open_any(const cJSON *data, int v)
{
	VpSealedOf of = {VP_EV_CLIENT_REGISTERED, TENANT, CLIENT};
	for (int t = 0; vp_sealed_types[t]; t++) {
		char why[256] = "";
		of.type = vp_sealed_types[t];
		cJSON *opened = vp_sealed_open(data, v, &of, data_key, NULL, why, sizeof(why));
		FUZZ_CHECK(opened || why[0] != '\0', "refused without a reason");
		if (opened)
			check_opened(opened, data, of.type, v);
		cJSON_Delete(opened);
	}
}

/* The member plain's name gives, as sealing keeps it: a string, or null. */
static bool same_member(const cJSON *plain, const cJSON *opened, const char *name)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(plain, name);
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(opened, name);
	if (!p)
		return !o;
	if (!o)
		return false;
	if (cJSON_IsString(p))
		return cJSON_IsString(o) && !strcmp(p->valuestring, o->valuestring);
	return cJSON_IsNull(o);
}

/* sealed with one character of sealed.<member> changed opens no more. */
static void check_tampered(cJSON *sealed, const VpSealedOf *of, const char *member, size_t at)
{
	cJSON *text = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(sealed, "sealed"), member);
	FUZZ_CHECK(cJSON_IsString(text) && text->valuestring[0], "sealed.%s is no text", member);
	char *s = text->valuestring;
	size_t i = at % strlen(s);
	char was = s[i];
	s[i] = was == 'A' ? 'B' : 'A';
	char why[256] = "";
	cJSON *opened = vp_sealed_open(sealed, VP_SEALED_V, of, data_key, NULL, why, sizeof(why));
	FUZZ_CHECK(!opened, "opened with sealed.%s changed at %zu", member, i);
	s[i] = was;
}

/* Whether the writer could have sealed plain for type (it seals data the
 * catalog accepted): no personal member the type does not carry, and a
 * registration's names as strings. What else seals does not open. */
static bool sealable(const cJSON *plain, const char *type)
{
	for (size_t i = 0; vp_personal_fields[i]; i++)
		if (!field_of(type, vp_personal_fields[i]) &&
		    cJSON_GetObjectItemCaseSensitive(plain, vp_personal_fields[i]))
			return false;
	return strcmp(type, VP_EV_CLIENT_REGISTERED) != 0 ||
	       (vp_json_str(plain, "first_name") && vp_json_str(plain, "last_name"));
}

/* Each blind index present exactly when its field is, and the same in a
 * second sealing of plain. */
static void check_indexes(const cJSON *plain, const cJSON *opened, const cJSON *again)
{
	static const char *const indexed[][2] = {{"email", "email_bidx"}, {"phone", "phone_bidx"}};
	for (size_t i = 0; i < 2; i++) {
		const cJSON *bidx = cJSON_GetObjectItemCaseSensitive(opened, indexed[i][1]);
		FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(plain, indexed[i][0]) == !bidx,
			   "%s present, %s not (or the other way)", indexed[i][0], indexed[i][1]);
		FUZZ_CHECK(!bidx || cJSON_Compare(bidx,
						  cJSON_GetObjectItemCaseSensitive(again,
										   indexed[i][1]),
						  true),
			   "%s differs between two seals", indexed[i][1]);
	}
}

static void seal_and_open(const cJSON *plain, const char *type, size_t at)
{
	char why[256] = "";
	VpSealedOf of = {type, TENANT, CLIENT};
	cJSON *sealed = vp_sealed_seal(plain, &of, data_key, NULL, index_key, why, sizeof(why));
	if (!sealed) {
		FUZZ_CHECK(why[0] != '\0', "seal refused without a reason");
		return;
	}
	cJSON *opened = vp_sealed_open(sealed, VP_SEALED_V, &of, data_key, NULL, why, sizeof(why));
	if (!sealable(plain, type)) {
		FUZZ_CHECK(!opened, "%s data the writer never seals opened", type);
		cJSON_Delete(sealed);
		return;
	}
	FUZZ_CHECK(opened, "what was sealed does not open: %s", why);
	const char *const *fields = vp_sealed_fields_of(type);
	for (size_t i = 0; fields[i]; i++)
		FUZZ_CHECK(same_member(plain, opened, fields[i]), "%s changed by seal/open",
			   fields[i]);
	cJSON *again = vp_sealed_seal(plain, &of, data_key, NULL, index_key, why, sizeof(why));
	FUZZ_CHECK(again, "sealed once, refused the second time: %s", why);
	check_indexes(plain, opened, again);
	const char *other_type = strcmp(type, VP_EV_CLIENT_REGISTERED) == 0
					 ? VP_EV_CLIENT_CONTACT_UPDATED
					 : VP_EV_CLIENT_REGISTERED;
	const VpSealedOf moved[] = {{type, TENANT, OTHER}, {other_type, TENANT, CLIENT}};
	for (size_t i = 0; i < 2; i++)
		FUZZ_CHECK(!vp_sealed_open(sealed, VP_SEALED_V, &moved[i], data_key, NULL, why,
					   sizeof(why)),
			   "opened as %s of client %s", moved[i].type, moved[i].client_id);
	check_tampered(sealed, &of, "c", at);
	check_tampered(sealed, &of, "n", at);
	cJSON_Delete(again);
	cJSON_Delete(opened);
	cJSON_Delete(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int mode = data[0] % 2, v = data[1] % 2 ? VP_SEALED_V : VP_SEALED_V_FIRST;
	cJSON *parsed = NULL;
	VpError err;
	vp_error_clear(&err);
	if (vp_json_parse((const char *)data + 2, size - 2, &parsed, &err) < 0)
		return 0;
	if (cJSON_IsObject(parsed)) {
		if (mode == 0)
			open_any(parsed, v);
		else
			for (int t = 0; vp_sealed_types[t]; t++)
				seal_and_open(parsed, vp_sealed_types[t], size);
	}
	cJSON_Delete(parsed);
	return 0;
}
