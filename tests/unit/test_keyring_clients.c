/* Unit tests of a keyring's client entries (common/vp_keyring.c): the
 * wrapped key is kept as bytes, decoded when its record is taken; a record
 * whose text is not a wrapped key is taken and refused at use, for that
 * client only ("not a wrapped key"), as when entries kept the text; the
 * erasure marker is final in either order (and found under any tenant for a
 * record naming none); a tombstone counts the entry it
 * removes as the kind it was (a tenant under another master key too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_keyring.h"
#include "vp_sealed.h"

#include "keyring_records.h"

#define TENANT "0190a1b2-0000-7000-8000-00000000000a"
#define CLIENT "0190a1b2-0000-7000-8000-0000000000a1"
#define OTHER "0190a1b2-0000-7000-8000-0000000000a2"

static char why[512];
static VpKey *master, *other_master;

static int setup(void **state)
{
	(void)state;
	if (vp_crypto_init(why, sizeof(why)) < 0)
		return -1;
	master = vp_key_random(why, sizeof(why));
	other_master = vp_key_random(why, sizeof(why));
	return master && other_master ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	master = vp_key_free(master);
	other_master = vp_key_free(other_master);
	return 0;
}

static int take(VpKeyring *kr, const char *name, const char *value)
{
	return vp_keyring_take(kr, name, strlen(name), value, value ? strlen(value) : 0, why,
			       sizeof(why));
}

static int client_key(VpKeyring *kr, const char *client, char id[VP_KEY_ID_CHARS + 1])
{
	VpKey *key = vp_key_random(why, sizeof(why));
	int rc = vp_keyring_client_key(kr, TENANT, client, 0, key, id, why, sizeof(why));
	vp_key_free(key);
	return rc;
}

static void a_client_key_read_from_its_record_opens_with_its_id(void **state)
{
	(void)state;
	Made m;
	made_under(master, TENANT, CLIENT, &m);
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, m.rec[1].name, m.rec[1].value), VP_KEYRING_OK);
	char id[VP_KEY_ID_CHARS + 1] = "";
	assert_int_equal(client_key(kr, CLIENT, id), VP_KEYRING_OK);
	assert_string_equal(id, m.id);
	assert_int_equal(vp_keyring_clients(kr), 1);
	assert_int_equal(vp_keyring_tenants(kr), 1);
	vp_keyring_free(kr);
	vp_key_records_release(m.rec, m.n);
}

/* A client record whose "wrapped" is not a wrapped key's text (cut, or
 * not base64url) is taken: the read goes on, and only that client's key is
 * refused when asked for, naming why. */
static void a_record_that_is_not_a_wrapped_key_is_refused_at_use_only(void **state)
{
	(void)state;
	Made m;
	made_under(master, TENANT, CLIENT, &m);
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
	static const char *const bad[] = {"abc", "!!!!", ""};
	char name[128], value[256], id[VP_KEY_ID_CHARS + 1];
	vp_keyrec_name(TENANT, CLIENT, name, sizeof(name));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(value, sizeof(value),
			 "{\"kind\":\"client\",\"kek_id\":\"x\",\"key_id\":\"%s\",\"wrapped\":\"%s\"}",
			 m.id, bad[i]);
		VpKeyring *fresh = vp_keyring_new(master, why, sizeof(why));
		assert_int_equal(take(fresh, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
		assert_int_equal(take(fresh, name, value), VP_KEYRING_OK);
		assert_int_equal(client_key(fresh, CLIENT, id), VP_KEYRING_FAILED);
		assert_string_equal(why, "not a wrapped key");
		vp_keyring_free(fresh);
	}
	/* the good record taken after a bad one opens */
	snprintf(value, sizeof(value),
		 "{\"kind\":\"client\",\"kek_id\":\"x\",\"key_id\":\"%s\",\"wrapped\":\"abc\"}", m.id);
	assert_int_equal(take(kr, name, value), VP_KEYRING_OK);
	assert_int_equal(take(kr, m.rec[1].name, m.rec[1].value), VP_KEYRING_OK);
	assert_int_equal(client_key(kr, CLIENT, id), VP_KEYRING_OK);
	assert_string_equal(id, m.id);
	vp_keyring_free(kr);
	vp_key_records_release(m.rec, m.n);
}

/* A wrapped key changed by one character does not open: the bytes kept are
 * the record's, authenticated at use. */
static void a_changed_wrapped_key_does_not_open(void **state)
{
	(void)state;
	Made m;
	made_under(master, TENANT, CLIENT, &m);
	char *changed = strdup(m.rec[1].value);
	char *w = strstr(changed, "\"wrapped\":\"");
	assert_non_null(w);
	w += strlen("\"wrapped\":\"");
	w[10] = w[10] == 'A' ? 'B' : 'A';
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, m.rec[1].name, changed), VP_KEYRING_OK);
	char id[VP_KEY_ID_CHARS + 1];
	assert_int_equal(client_key(kr, CLIENT, id), VP_KEYRING_FAILED);
	assert_non_null(strstr(why, "does not open"));
	vp_keyring_free(kr);
	free(changed);
	vp_key_records_release(m.rec, m.n);
}

/* The erasure marker is final whichever comes first; the other client of
 * the tenant still opens. */
static void an_erased_client_stays_erased_in_either_order(void **state)
{
	(void)state;
	Made m, o; /* one tenant key: o's records are its client's alone */
	VpKeyring *writer = vp_keyring_new(master, why, sizeof(why));
	made_in(writer, TENANT, CLIENT, &m, 2);
	made_in(writer, TENANT, OTHER, &o, 1);
	vp_keyring_free(writer);
	char *marker = vp_keyrec_erased_value(2000000);
	for (int order = 0; order < 2; order++) {
		VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
		assert_int_equal(take(kr, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
		assert_int_equal(take(kr, o.rec[0].name, o.rec[0].value), VP_KEYRING_OK);
		const char *first = order ? marker : m.rec[1].value;
		const char *then = order ? m.rec[1].value : marker;
		assert_int_equal(take(kr, m.rec[1].name, first), VP_KEYRING_OK);
		assert_int_equal(take(kr, m.rec[1].name, then), VP_KEYRING_OK);
		char id[VP_KEY_ID_CHARS + 1];
		assert_int_equal(client_key(kr, CLIENT, id), VP_KEYRING_ERASED);
		assert_true(vp_keyring_erased(kr, TENANT, CLIENT));
		/* a record naming no tenant asks under any tenant (deadletter.c) */
		assert_true(vp_keyring_erased(kr, NULL, CLIENT));
		assert_false(vp_keyring_erased(kr, NULL, OTHER));
		assert_false(vp_keyring_erased(kr, NULL, CLIENT + 1)); /* a suffix of the id */
		assert_false(vp_keyring_erased(kr, NULL, TENANT));
		/* a record of another name's shape names no client */
		char junk[160];
		snprintf(junk, sizeof(junk), "x%s", m.rec[1].name);
		assert_int_equal(take(kr, junk, marker), VP_KEYRING_OK);
		snprintf(junk, sizeof(junk), "client:%s:%s", TENANT + 1, OTHER);
		assert_int_equal(take(kr, junk, marker), VP_KEYRING_OK);
		assert_false(vp_keyring_erased(kr, NULL, OTHER));
		/* a second tenant's marker for the id, then a tombstone of each */
		snprintf(junk, sizeof(junk), "client:%s:%s", OTHER, CLIENT);
		assert_int_equal(take(kr, junk, marker), VP_KEYRING_OK);
		assert_int_equal(take(kr, junk, marker), VP_KEYRING_OK); /* a copy */
		assert_int_equal(take(kr, m.rec[1].name, NULL), VP_KEYRING_OK);
		assert_true(vp_keyring_erased(kr, NULL, CLIENT));
		assert_int_equal(take(kr, junk, NULL), VP_KEYRING_OK);
		assert_false(vp_keyring_erased(kr, NULL, CLIENT));
		assert_int_equal(client_key(kr, OTHER, id), VP_KEYRING_OK);
		assert_string_equal(id, o.id);
		vp_keyring_free(kr);
	}
	free(marker);
	vp_key_records_release(m.rec, m.n);
	vp_key_records_release(o.rec, o.n);
}

/* A tombstone removes what it names and the counts follow its kind: a
 * tenant held under another master key (no key, a reason) counts as a
 * tenant, not a client. */
static void tombstones_count_the_kind_they_remove(void **state)
{
	(void)state;
	Made m, theirs;
	made_under(master, TENANT, CLIENT, &m);
	made_under(other_master, TENANT, OTHER, &theirs); /* same tenant id, another master key */
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, theirs.rec[0].name, theirs.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	assert_int_equal(vp_keyring_tenants(kr), 1);
	assert_int_equal(take(kr, m.rec[1].name, m.rec[1].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_clients(kr), 1);
	assert_int_equal(take(kr, theirs.rec[0].name, NULL), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_tenants(kr), 0);
	assert_int_equal(vp_keyring_clients(kr), 1);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	assert_int_equal(take(kr, m.rec[1].name, NULL), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_clients(kr), 0);
	vp_keyring_free(kr);
	vp_key_records_release(m.rec, m.n);
	vp_key_records_release(theirs.rec, theirs.n);
}

/* A client whose tenant's only key record is under another master key is
 * WRONG_MASTER at once, naming both key ids, even to a follower that
 * would wait for a missing key (the projector stops on it, apply_keys.c);
 * a tenant that had a key before keeps opening its clients. */
static void a_tenant_key_only_under_another_master_is_wrong_master(void **state)
{
	(void)state;
	Made theirs, m;
	made_under(other_master, TENANT, CLIENT, &theirs);
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, theirs.rec[0].name, theirs.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, theirs.rec[1].name, theirs.rec[1].value), VP_KEYRING_OK);
	char id[VP_KEY_ID_CHARS + 1];
	assert_int_equal(client_key(kr, CLIENT, id), VP_KEYRING_WRONG_MASTER);
	assert_non_null(strstr(why, "but this daemon holds master key"));
	vp_keyring_free(kr);
	made_under(master, TENANT, OTHER, &m);
	kr = vp_keyring_new(master, why, sizeof(why));
	assert_int_equal(take(kr, m.rec[0].name, m.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, m.rec[1].name, m.rec[1].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, theirs.rec[0].name, theirs.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(client_key(kr, OTHER, id), VP_KEYRING_OK);
	vp_keyring_free(kr);
	vp_key_records_release(theirs.rec, theirs.n);
	vp_key_records_release(m.rec, m.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_client_key_read_from_its_record_opens_with_its_id),
	    cmocka_unit_test(a_record_that_is_not_a_wrapped_key_is_refused_at_use_only),
	    cmocka_unit_test(a_changed_wrapped_key_does_not_open),
	    cmocka_unit_test(an_erased_client_stays_erased_in_either_order),
	    cmocka_unit_test(tombstones_count_the_kind_they_remove),
	    cmocka_unit_test(a_tenant_key_only_under_another_master_is_wrong_master),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
