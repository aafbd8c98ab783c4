/* Unit tests of common/vp_sealed.c: a client event's data sealed and opened
 * again (the v3 shape and the upcast back to v1's; v2 still read), null and
 * absent members,
 * a tampered, moved or foreign value refused, blind index normalisation, key
 * records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "vp_json.h"
#include "vp_keyring.h"
#include "vp_sealed.h"

#define TENANT "0190a1b2-0000-7000-8000-000000000001"
#define CLIENT "0190a1b2-0000-7000-8000-000000000002"
#define OTHER  "0190a1b2-0000-7000-8000-000000000003"

static char why[512];
static VpKey *data_key, *index_key;

static int setup(void **state)
{
	(void)state;
	if (vp_crypto_init(why, sizeof(why)) < 0)
		return -1;
	VpKey *tenant = vp_key_random(why, sizeof(why));
	data_key = vp_key_random(why, sizeof(why));
	index_key = tenant ? vp_key_derive_index(tenant, why, sizeof(why)) : NULL;
	vp_key_free(tenant);
	return data_key && index_key ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	vp_key_free(data_key);
	vp_key_free(index_key);
	return 0;
}

static cJSON *registered(void)
{
	cJSON *d = cJSON_Parse("{\"first_name\":\"Ada\",\"last_name\":\"Lovelace\","
			       "\"email\":\"Ada@Example.org\",\"phone\":\"+44 20 7946-0000\","
			       "\"address\":null}");
	assert_non_null(d);
	return d;
}

#define REGISTERED "ClientRegistered"
#define UPDATED    "ClientContactUpdated"

static cJSON *seal_as(const cJSON *plain, const char *type, const char *client)
{
	cJSON *sealed = vp_sealed_seal(plain, &(VpSealedOf){type, TENANT, client}, data_key, NULL,
				       index_key, why, sizeof(why));
	if (!sealed)
		fail_msg("%s", why);
	return sealed;
}

static cJSON *seal_or_fail(const cJSON *plain, const char *client)
{
	return seal_as(plain, REGISTERED, client);
}

static cJSON *open_as(const cJSON *sealed, int v, const char *type, const char *client)
{
	return vp_sealed_open(sealed, v, &(VpSealedOf){type, TENANT, client}, data_key, NULL, why,
			      sizeof(why));
}

static void a_registration_seals_and_opens_back_to_its_plain_data(void **state)
{
	(void)state;
	cJSON *plain = registered();
	cJSON *sealed = seal_or_fail(plain, CLIENT);
	char *text = cJSON_PrintUnformatted(sealed);
	/* nothing personal in the sealed form, not even which members it holds */
	assert_null(strstr(text, "Ada"));
	assert_null(strstr(text, "Lovelace"));
	assert_null(strstr(text, "Example"));
	assert_null(strstr(text, "7946"));
	assert_null(strstr(text, "address"));
	free(text);
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(sealed, "sealed");
	assert_int_equal(cJSON_GetArraySize(fields), 2); /* one nonce, one ciphertext */
	assert_int_equal(strlen(vp_json_str(fields, "n")), 32);
	assert_non_null(vp_json_str(fields, "c"));
	assert_non_null(vp_sealed_key_id(sealed));
	assert_int_equal(strlen(vp_json_str(sealed, "email_bidx")), 64);

	cJSON *opened = open_as(sealed, VP_SEALED_V, REGISTERED, CLIENT);
	if (!opened)
		fail_msg("%s", why);
	assert_string_equal(vp_json_str(opened, "first_name"), "Ada");
	assert_string_equal(vp_json_str(opened, "last_name"), "Lovelace");
	assert_string_equal(vp_json_str(opened, "email"), "Ada@Example.org");
	assert_string_equal(vp_json_str(opened, "phone"), "+44 20 7946-0000");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(opened, "address")));
	assert_string_equal(vp_json_str(opened, "email_bidx"), vp_json_str(sealed, "email_bidx"));
	cJSON_Delete(opened);
	cJSON_Delete(sealed);
	cJSON_Delete(plain);
}

static void an_update_keeps_absent_members_absent(void **state)
{
	(void)state;
	cJSON *plain = cJSON_Parse("{\"phone\":null,\"address\":\"1 \\\"Quoted\\\" Row\"}");
	cJSON *sealed = seal_as(plain, UPDATED, CLIENT);
	assert_null(cJSON_GetObjectItemCaseSensitive(sealed, "email_bidx"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(sealed, "phone_bidx")));
	cJSON *opened = open_as(sealed, VP_SEALED_V, UPDATED, CLIENT);
	assert_non_null(opened);
	assert_null(cJSON_GetObjectItemCaseSensitive(opened, "email"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(opened, "phone")));
	assert_string_equal(vp_json_str(opened, "address"), "1 \"Quoted\" Row");
	cJSON_Delete(opened);
	cJSON_Delete(sealed);
	cJSON_Delete(plain);
}

/* Flips one character of the text at sealed.<path...>.c. */
static void tamper(cJSON *sealed, const char *field)
{
	cJSON *f = cJSON_GetObjectItemCaseSensitive(sealed, "sealed");
	if (field)
		f = cJSON_GetObjectItemCaseSensitive(f, field);
	cJSON *c = cJSON_GetObjectItemCaseSensitive(f, "c");
	char *text = strdup(c->valuestring);
	text[2] = text[2] == 'A' ? 'B' : 'A';
	cJSON_SetValuestring(c, text);
	free(text);
}

/* text sealed under data_key for the client's `what` (the event type in
 * v3, the field in v2) into a new {"n", "c"} member of obj named name. */
static void seal_into(cJSON *obj, const char *name, const char *text, const char *client,
		      const char *what)
{
	char aad[192];
	VpBuf nonce, c;
	vp_buf_init(&nonce, 4096);
	vp_buf_init(&c, 4096);
	snprintf(aad, sizeof(aad), "client:%s:%s:%s", TENANT, client, what);
	assert_int_equal(vp_field_seal(data_key, text, strlen(text), aad, &nonce, &c, why,
				       sizeof(why)), 0);
	cJSON *f = cJSON_AddObjectToObject(obj, name);
	cJSON_AddStringToObject(f, "n", vp_buf_str(&nonce));
	cJSON_AddStringToObject(f, "c", vp_buf_str(&c));
	vp_buf_free(&nonce);
	vp_buf_free(&c);
}

/* A data object naming data_key's id, its "sealed" member still to come. */
static cJSON *keyed_data(void)
{
	char key_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(data_key, key_id);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "key_id", key_id);
	return d;
}

/* A v3 data object whose sealed text is `text` as given, sealed rightly. */
static cJSON *sealed_text(const char *text, const char *type)
{
	cJSON *d = keyed_data();
	seal_into(d, "sealed", text, CLIENT, type);
	return d;
}

static void a_tampered_moved_or_foreign_value_does_not_open(void **state)
{
	(void)state;
	cJSON *plain = registered();
	cJSON *sealed = seal_or_fail(plain, CLIENT);
	/* another client's associated data */
	assert_null(open_as(sealed, VP_SEALED_V, REGISTERED, OTHER));
	assert_non_null(strstr(why, "does not open"));
	/* another event type's */
	assert_null(open_as(sealed, VP_SEALED_V, UPDATED, CLIENT));
	assert_non_null(strstr(why, "does not open"));
	/* read as the other sealed version */
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, CLIENT));
	cJSON_Delete(sealed);
	/* a changed ciphertext */
	sealed = seal_or_fail(plain, CLIENT);
	tamper(sealed, NULL);
	assert_null(open_as(sealed, VP_SEALED_V, REGISTERED, CLIENT));
	assert_non_null(strstr(why, "does not open"));
	cJSON_Delete(sealed);
	/* another key: refused by its id before anything is opened */
	sealed = seal_or_fail(plain, CLIENT);
	VpKey *other = vp_key_random(why, sizeof(why));
	assert_null(vp_sealed_open(sealed, VP_SEALED_V, &(VpSealedOf){REGISTERED, TENANT, CLIENT},
				   other, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "not the client's key"));
	vp_key_free(other);
	cJSON_Delete(sealed);
	/* sealed rightly but not what the type holds: refused opened */
	const char *wrong[][2] = {
		{REGISTERED, "{\"first_name\":\"A\",\"last_name\":\"B\",\"notes\":null}"},
		{REGISTERED, "{\"first_name\":\"A\",\"last_name\":\"B\",\"phone\":7}"},
		{REGISTERED, "{\"first_name\":\"A\"}"},
		{UPDATED, "{\"first_name\":\"A\"}"},
		{REGISTERED, "[\"A\",\"B\"]"},
		{REGISTERED, "not json"},
		{UPDATED, ""},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		sealed = sealed_text(wrong[i][1], wrong[i][0]);
		assert_null(open_as(sealed, VP_SEALED_V, wrong[i][0], CLIENT));
		cJSON_Delete(sealed);
	}
	sealed = sealed_text("{\"email\":null}", UPDATED); /* and the control: it opens */
	cJSON *opened = open_as(sealed, VP_SEALED_V, UPDATED, CLIENT);
	assert_non_null(opened);
	cJSON_Delete(opened);
	cJSON_Delete(sealed);
	cJSON_Delete(plain);
}

/* v2, the first sealed form (one sealed value per field), as the writer
 * wrote it before v3: each field under "client:<t>:<c>:<field>". */
static cJSON *sealed_v2(const cJSON *plain, const char *client)
{
	cJSON *d = keyed_data(), *fields = cJSON_AddObjectToObject(d, "sealed");
	const cJSON *item;
	cJSON_ArrayForEach(item, plain)
	{
		if (cJSON_IsString(item))
			seal_into(fields, item->string, item->valuestring, client, item->string);
		else
			cJSON_AddNullToObject(fields, item->string);
	}
	return d;
}

static void v2_events_still_open_and_refuse_a_moved_field(void **state)
{
	(void)state;
	cJSON *plain = registered();
	cJSON *sealed = sealed_v2(plain, CLIENT);
	cJSON *opened = open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, CLIENT);
	if (!opened)
		fail_msg("%s", why);
	assert_string_equal(vp_json_str(opened, "last_name"), "Lovelace");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(opened, "address")));
	cJSON_Delete(opened);
	/* a value moved to another field */
	cJSON *fields = cJSON_GetObjectItemCaseSensitive(sealed, "sealed");
	cJSON *moved = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(fields, "email"), true);
	cJSON_ReplaceItemInObjectCaseSensitive(fields, "phone", moved);
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, CLIENT));
	assert_non_null(strstr(why, "sealed.phone"));
	cJSON_Delete(sealed);
	/* a changed ciphertext, another client, a member that is no personal field */
	sealed = sealed_v2(plain, CLIENT);
	tamper(sealed, "last_name");
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, CLIENT));
	assert_non_null(strstr(why, "sealed.last_name"));
	cJSON_Delete(sealed);
	sealed = sealed_v2(plain, CLIENT);
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, OTHER));
	/* an update holds no names */
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, UPDATED, CLIENT));
	cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(sealed, "sealed"), "notes",
			      cJSON_CreateNull());
	assert_null(open_as(sealed, VP_SEALED_V_FIRST, REGISTERED, CLIENT));
	assert_non_null(strstr(why, "not a personal field"));
	cJSON_Delete(sealed);
	cJSON_Delete(plain);
}

static void blind_indexes_see_through_case_spaces_and_phone_punctuation(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(vp_sealed_normalise("email", "  Ada@Example.ORG ", out, sizeof(out)), 15);
	assert_string_equal(out, "ada@example.org");
	vp_sealed_normalise("phone", " +44 (20) 7946-0000", out, sizeof(out));
	assert_string_equal(out, "+442079460000");
	vp_sealed_normalise("phone", "020 7946+0000", out, sizeof(out));
	assert_string_equal(out, "02079460000");
	vp_sealed_normalise("email", "x", out, 1);
	assert_string_equal(out, "");

	cJSON *a = cJSON_Parse("{\"email\":\"ADA@example.org \",\"phone\":\"+442079460000\"}");
	cJSON *b = cJSON_Parse("{\"email\":\"ada@example.org\",\"phone\":\"+44 20 7946 0000\"}");
	cJSON *sa = seal_or_fail(a, CLIENT), *sb = seal_or_fail(b, OTHER);
	assert_string_equal(vp_json_str(sa, "email_bidx"), vp_json_str(sb, "email_bidx"));
	assert_string_equal(vp_json_str(sa, "phone_bidx"), vp_json_str(sb, "phone_bidx"));
	assert_string_not_equal(vp_json_str(sa, "email_bidx"), vp_json_str(sa, "phone_bidx"));
	cJSON_Delete(sa);
	cJSON_Delete(sb);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void key_records_name_their_keys_and_unwrap_under_their_kek(void **state)
{
	(void)state;
	char name[128];
	vp_keyrec_name(TENANT, CLIENT, name, sizeof(name));
	assert_string_equal(name, "client:" TENANT ":" CLIENT);
	vp_keyrec_name(TENANT, NULL, name, sizeof(name));
	assert_string_equal(name, "tenant:" TENANT);
	VpKey *kek = vp_key_random(why, sizeof(why));
	char *text = vp_keyrec_value(kek, data_key, name, 0, why, sizeof(why));
	assert_non_null(text);
	cJSON *v = cJSON_Parse(text);
	char kek_id[VP_KEY_ID_CHARS + 1], key_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(kek, kek_id);
	vp_key_id(data_key, key_id);
	assert_string_equal(vp_json_str(v, "kind"), "tenant");
	assert_string_equal(vp_json_str(v, "kek_id"), kek_id);
	assert_string_equal(vp_json_str(v, "key_id"), key_id);
	VpKey *back = vp_key_unwrap(kek, vp_json_str(v, "wrapped"), name, why, sizeof(why));
	assert_non_null(back);
	char back_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(back, back_id);
	assert_string_equal(back_id, key_id);
	/* the record key is the context: another name does not unwrap */
	assert_null(vp_key_unwrap(kek, vp_json_str(v, "wrapped"), "tenant:x", why, sizeof(why)));
	vp_key_free(back);
	vp_key_free(kek);
	cJSON_Delete(v);
	free(text);
}

/* Export/import: a tenant key carried from one master key to another
 * through a transport key stays the same key; a record under another key,
 * or a client's record, is not rewrapped. */
static void a_tenant_key_rewraps_to_another_kek_as_the_same_key(void **state)
{
	(void)state;
	char name[128], key_id[VP_KEY_ID_CHARS + 1], to_id[VP_KEY_ID_CHARS + 1];
	vp_keyrec_name(TENANT, NULL, name, sizeof(name));
	VpKey *from = vp_key_random(why, sizeof(why)), *to = vp_key_random(why, sizeof(why));
	char *text = vp_keyrec_value(from, data_key, name, 0, why, sizeof(why));
	char *moved = vp_keyrec_rewrap(from, to, name, text, 0, why, sizeof(why));
	assert_non_null(moved);
	cJSON *v = cJSON_Parse(moved);
	vp_key_id(data_key, key_id);
	vp_key_id(to, to_id);
	assert_string_equal(vp_json_str(v, "key_id"), key_id);
	assert_string_equal(vp_json_str(v, "kek_id"), to_id);
	VpKey *back = vp_key_unwrap(to, vp_json_str(v, "wrapped"), name, why, sizeof(why));
	assert_non_null(back);
	char back_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(back, back_id);
	assert_string_equal(back_id, key_id);
	/* the wrong key: refused, naming the record's kek, never the key */
	assert_null(vp_keyrec_rewrap(to, from, name, text, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "wrapped under key"));
	/* a client's record is not a tenant key */
	char cname[128];
	vp_keyrec_name(TENANT, CLIENT, cname, sizeof(cname));
	char *client = vp_keyrec_value(from, data_key, cname, 0, why, sizeof(why));
	assert_null(vp_keyrec_rewrap(from, to, cname, client, 0, why, sizeof(why)));
	assert_null(vp_keyrec_rewrap(from, to, name, "{not json", 0, why, sizeof(why)));
	free(client);
	vp_key_free(back);
	vp_key_free(from);
	vp_key_free(to);
	cJSON_Delete(v);
	free(moved);
	free(text);
}

static int take(VpKeyring *kr, const char *name, const char *value)
{
	return vp_keyring_take(kr, name, strlen(name), value, value ? strlen(value) : 0, why,
			       sizeof(why));
}

/* The writer makes a new client's keys; a second keyring that reads those
 * records (as the projector does from the topic) opens the same data key;
 * an erasure marker destroys it for good, a late copy of the key changes
 * nothing. */
static void a_keyring_reads_the_records_another_made_and_honours_erasure(void **state)
{
	(void)state;
	VpKey *master = vp_key_random(why, sizeof(why));
	VpKeyring *writer = vp_keyring_new(master, why, sizeof(why));
	VpKeyRecord rec[2] = {0};
	int n = 0;
	VpKey *made = vp_key_random(why, sizeof(why)), *opened = vp_key_random(why, sizeof(why));
	char made_id[VP_KEY_ID_CHARS + 1], id[VP_KEY_ID_CHARS + 1];
	assert_int_equal(vp_keyring_new_client(writer, TENANT, CLIENT, 0, made, made_id, rec, &n,
					       why, sizeof(why)), 0);
	vp_key_id(made, id);
	assert_string_equal(made_id, id); /* the id handed back is the key's */
	assert_int_equal(n, 2); /* the tenant's key first, then the client's */
	assert_string_equal(rec[0].name, "tenant:" TENANT);
	assert_string_equal(rec[1].name, "client:" TENANT ":" CLIENT);

	VpKeyring *reader = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(vp_keyring_client_key(reader, TENANT, CLIENT, 0, opened, NULL, why, sizeof(why)),
			 VP_KEYRING_NONE);
	for (int i = n - 1; i >= 0; i--) /* any order: client keys stay wrapped until used */
		assert_int_equal(take(reader, rec[i].name, rec[i].value), VP_KEYRING_OK);
	char read_id[VP_KEY_ID_CHARS + 1] = "";
	assert_int_equal(vp_keyring_client_key(reader, TENANT, CLIENT, 0, opened, read_id, why,
					       sizeof(why)),
			 VP_KEYRING_OK);
	assert_string_equal(read_id, made_id); /* the id its record gives */
	char a[VP_KEY_ID_CHARS + 1], b[VP_KEY_ID_CHARS + 1];
	vp_key_id(made, a);
	vp_key_id(opened, b);
	assert_string_equal(a, b);
	VpKey *index = vp_key_random(why, sizeof(why));
	assert_int_equal(vp_keyring_index_key(reader, TENANT, index, why, sizeof(why)), 0);
	assert_int_equal(vp_keyring_index_key(reader, OTHER, index, why, sizeof(why)), -1);
	vp_key_free(index);

	char *erased = vp_keyrec_erased_value(0);
	assert_int_equal(take(reader, rec[1].name, erased), VP_KEYRING_OK);
	assert_int_equal(take(reader, rec[1].name, rec[1].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_client_key(reader, TENANT, CLIENT, 0, opened, NULL, why, sizeof(why)),
			 VP_KEYRING_ERASED);
	/* a record that is no key record is refused */
	assert_int_equal(take(reader, "client:" TENANT ":" OTHER, "{}"), VP_KEYRING_FAILED);
	free(erased);

	/* a command that failed before its append: the writer forgets what it made */
	vp_keyring_forget(writer, rec, n);
	assert_int_equal(vp_keyring_tenants(writer), 0);
	assert_int_equal(vp_keyring_clients(writer), 0);
	vp_key_records_release(rec, n);
	vp_key_free(made);
	vp_key_free(opened);
	vp_keyring_free(reader);
	vp_keyring_free(writer);
	vp_key_free(master);
}

/* A keys topic written before key records went on their tenant's partition
 * holds, after `keys rotate-master`, the old record on one partition and the
 * new on another: the keyring keeps the newest (created_at), in either
 * read order, so neither master key's daemon is refused for the other's. */
static void the_newest_tenant_record_counts_in_either_order(void **state)
{
	(void)state;
	char name[128];
	vp_keyrec_name(TENANT, NULL, name, sizeof(name));
	VpKey *old_master = vp_key_random(why, sizeof(why)), *new_master = vp_key_random(why, sizeof(why));
	VpKey *tenant_key = vp_key_random(why, sizeof(why)), *index = vp_key_random(why, sizeof(why));
	char *old_rec = vp_keyrec_value(old_master, tenant_key, name, 1000000, why, sizeof(why));
	char *new_rec = vp_keyrec_rewrap(old_master, new_master, name, old_rec, 2000000, why,
					 sizeof(why));
	assert_non_null(old_rec);
	assert_non_null(new_rec);
	const char *orders[2][2] = {{old_rec, new_rec}, {new_rec, old_rec}};
	for (int i = 0; i < 2; i++) {
		VpKeyring *now = vp_keyring_new(new_master, why, sizeof(why));
		VpKeyring *before = vp_keyring_new(old_master, why, sizeof(why));
		for (int j = 0; j < 2; j++) {
			assert_int_equal(take(now, name, orders[i][j]), VP_KEYRING_OK);
			assert_int_equal(take(before, name, orders[i][j]), VP_KEYRING_OK);
		}
		assert_int_equal(vp_keyring_wrong_master(now, why, sizeof(why)), VP_KEYRING_OK);
		assert_int_equal(vp_keyring_index_key(now, TENANT, index, why, sizeof(why)), 0);
		/* the old master key's daemon is refused: the newest is not under it */
		assert_int_equal(vp_keyring_wrong_master(before, why, sizeof(why)),
				 VP_KEYRING_WRONG_MASTER);
		vp_keyring_free(now);
		vp_keyring_free(before);
	}
	free(old_rec);
	free(new_rec);
	vp_key_free(old_master);
	vp_key_free(new_master);
	vp_key_free(tenant_key);
	vp_key_free(index);
}

static void data_equals(const char *type, const char *before, const char *after)
{
	cJSON *data = cJSON_Parse(before), *want = cJSON_Parse(after);
	assert_non_null(data);
	assert_int_equal(vp_sealed_erase_plain(data, type), 0);
	char *got = cJSON_PrintUnformatted(data), *expected = cJSON_PrintUnformatted(want);
	assert_string_equal(got, expected);
	free(got);
	free(expected);
	cJSON_Delete(data);
	cJSON_Delete(want);
}

/* vetctl tenant export writes an erased client's v1 events so: the members
 * given read as the erased client's, in their place; absent ones stay
 * absent (an update's "unchanged"); a registration's names too. */
static void an_erased_clients_plain_data_keeps_its_members_and_no_value(void **state)
{
	(void)state;
	data_equals("ClientRegistered",
		    "{\"first_name\":\"Ada\",\"last_name\":\"Q\",\"email\":\"a@b.c\","
		    "\"phone\":null,\"address\":\"1 Lane\"}",
		    "{\"first_name\":\"erased\",\"last_name\":\"client\",\"email\":null,"
		    "\"phone\":null,\"address\":null}");
	data_equals("ClientContactUpdated", "{\"phone\":\"+44 1\"}", "{\"phone\":null}");
	data_equals("ClientContactUpdated", "{}", "{}");
	/* a member that is no personal field of the type is left alone */
	data_equals("ClientContactUpdated", "{\"first_name\":\"Ada\",\"email\":\"a@b.c\"}",
		    "{\"first_name\":\"Ada\",\"email\":null}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_registration_seals_and_opens_back_to_its_plain_data),
		cmocka_unit_test(an_update_keeps_absent_members_absent),
		cmocka_unit_test(a_tampered_moved_or_foreign_value_does_not_open),
		cmocka_unit_test(v2_events_still_open_and_refuse_a_moved_field),
		cmocka_unit_test(blind_indexes_see_through_case_spaces_and_phone_punctuation),
		cmocka_unit_test(key_records_name_their_keys_and_unwrap_under_their_kek),
		cmocka_unit_test(a_keyring_reads_the_records_another_made_and_honours_erasure),
		cmocka_unit_test(a_tenant_key_rewraps_to_another_kek_as_the_same_key),
		cmocka_unit_test(the_newest_tenant_record_counts_in_either_order),
		cmocka_unit_test(an_erased_clients_plain_data_keeps_its_members_and_no_value),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
