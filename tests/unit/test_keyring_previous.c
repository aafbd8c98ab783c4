/* Unit tests of the previous master key during a rotation (common/vp_keyring.c,
 * vp_key_master_previous_load in common/vp_crypto.c; docs/privacy.md, "Key
 * operations"): a keyring holding current B and previous A takes tenant
 * records under either, opens the clients of both, and wraps new tenants
 * under B only; a record under a third key C is refused naming every key
 * held; without the previous key a record under A is refused as before. The
 * previous key is loaded like the master key (a private file, else the
 * environment's text) and refused when it is the current key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "vp_json.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "keyring_records.h"
#include "write_file.h"

#define TENANT_A "0190a1b2-0000-7000-8000-00000000000a"
#define TENANT_B "0190a1b2-0000-7000-8000-00000000000b"
#define TENANT_N "0190a1b2-0000-7000-8000-00000000000e"
#define CLIENT_A "0190a1b2-0000-7000-8000-0000000000a1"
#define CLIENT_B "0190a1b2-0000-7000-8000-0000000000b1"
#define CLIENT_N "0190a1b2-0000-7000-8000-0000000000e1"

static char why[512];
static VpKey *master_a, *master_b, *master_c;

static int setup(void **state)
{
	(void)state;
	if (vp_crypto_init(why, sizeof(why)) < 0)
		return -1;
	master_a = vp_key_random(why, sizeof(why));
	master_b = vp_key_random(why, sizeof(why));
	master_c = vp_key_random(why, sizeof(why));
	return master_a && master_b && master_c ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	master_a = vp_key_free(master_a);
	master_b = vp_key_free(master_b);
	master_c = vp_key_free(master_c);
	return 0;
}

static int take(VpKeyring *kr, const char *name, const char *value)
{
	return vp_keyring_take(kr, name, strlen(name), value, strlen(value), why, sizeof(why));
}

/* The kek_id of a tenant record's value. */
static void kek_of(const char *value, char out[VP_KEY_ID_CHARS + 1])
{
	cJSON *v = cJSON_Parse(value);
	const char *kek = vp_json_str(v, "kek_id");
	assert_non_null(kek);
	snprintf(out, VP_KEY_ID_CHARS + 1, "%s", kek);
	cJSON_Delete(v);
}

/* The client's data key opens in kr, with the id its record gives. */
static void opens(VpKeyring *kr, const char *tenant, const char *client, const Made *m)
{
	VpKey *key = vp_key_random(why, sizeof(why));
	char id[VP_KEY_ID_CHARS + 1] = "", key_id[VP_KEY_ID_CHARS + 1];
	assert_int_equal(vp_keyring_client_key(kr, tenant, client, 0, key, id, why, sizeof(why)),
			 VP_KEYRING_OK);
	vp_key_id(key, key_id);
	assert_string_equal(key_id, m->id);
	assert_string_equal(id, m->id);
	vp_key_free(key);
}

static void a_keyring_with_the_previous_key_reads_both_and_wraps_under_the_current(void **state)
{
	(void)state;
	Made under_a, under_b;
	made_under(master_a, TENANT_A, CLIENT_A, &under_a);
	made_under(master_b, TENANT_B, CLIENT_B, &under_b);

	VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
	vp_keyring_accept_previous(kr, master_a);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(take(kr, under_a.rec[i].name, under_a.rec[i].value), VP_KEYRING_OK);
		assert_int_equal(take(kr, under_b.rec[i].name, under_b.rec[i].value), VP_KEYRING_OK);
	}
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_tenants(kr), 2);
	opens(kr, TENANT_A, CLIENT_A, &under_a);
	opens(kr, TENANT_B, CLIENT_B, &under_b);

	/* something new: a new tenant's key is wrapped under the current key B
	 * only, and opens in a keyring holding B alone */
	Made fresh = {0};
	VpKey *data = vp_key_random(why, sizeof(why));
	assert_int_equal(vp_keyring_new_client(kr, TENANT_N, CLIENT_N, 2000000, data, fresh.id,
					       fresh.rec, &fresh.n, why, sizeof(why)),
			 0);
	assert_int_equal(fresh.n, 2);
	assert_string_equal(fresh.rec[0].name, "tenant:" TENANT_N);
	char kek[VP_KEY_ID_CHARS + 1], b_id[VP_KEY_ID_CHARS + 1];
	kek_of(fresh.rec[0].value, kek);
	vp_key_id(master_b, b_id);
	assert_string_equal(kek, b_id);
	VpKeyring *only_b = vp_keyring_new(master_b, why, sizeof(why));
	for (int i = 0; i < 2; i++)
		assert_int_equal(take(only_b, fresh.rec[i].name, fresh.rec[i].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(only_b, why, sizeof(why)), VP_KEYRING_OK);
	opens(only_b, TENANT_N, CLIENT_N, &fresh);
	/* and a keyring holding A alone refuses it: nothing new is under A */
	VpKeyring *only_a = vp_keyring_new(master_a, why, sizeof(why));
	assert_int_equal(take(only_a, fresh.rec[0].name, fresh.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(only_a, why, sizeof(why)),
			 VP_KEYRING_WRONG_MASTER);

	vp_keyring_free(only_a);
	vp_keyring_free(only_b);
	vp_key_free(data);
	vp_key_records_release(fresh.rec, fresh.n);
	vp_keyring_free(kr);
	vp_key_records_release(under_a.rec, under_a.n);
	vp_key_records_release(under_b.rec, under_b.n);
}

static void a_record_under_neither_key_is_refused_naming_every_key_held(void **state)
{
	(void)state;
	Made under_a, under_c;
	made_under(master_a, TENANT_A, CLIENT_A, &under_a);
	made_under(master_c, TENANT_B, CLIENT_B, &under_c);
	char a_id[VP_KEY_ID_CHARS + 1], b_id[VP_KEY_ID_CHARS + 1], c_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(master_a, a_id);
	vp_key_id(master_b, b_id);
	vp_key_id(master_c, c_id);

	/* current B, previous A: C is refused, the message names C, B and A */
	VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
	vp_keyring_accept_previous(kr, master_a);
	assert_int_equal(take(kr, under_a.rec[0].name, under_a.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, under_c.rec[0].name, under_c.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	char expected[256];
	snprintf(expected, sizeof(expected),
		 "wrapped under master key %s, but this daemon holds master key %s and previous "
		 "master key %s",
		 c_id, b_id, a_id);
	assert_non_null(strstr(why, expected));
	assert_non_null(strstr(why, "tenant:" TENANT_B));
	vp_keyring_free(kr);

	/* current B without a previous key: the record under A is refused as
	 * before the previous key existed (the message names A and B only) */
	kr = vp_keyring_new(master_b, why, sizeof(why));
	assert_int_equal(take(kr, under_a.rec[0].name, under_a.rec[0].value), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	snprintf(expected, sizeof(expected),
		 "wrapped under master key %s, but this daemon holds master key %s:", a_id, b_id);
	assert_non_null(strstr(why, expected));
	assert_null(strstr(why, "previous"));
	/* accepting no previous key (NULL) is the same keyring */
	vp_keyring_accept_previous(kr, NULL);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	vp_keyring_free(kr);

	vp_key_records_release(under_a.rec, under_a.n);
	vp_key_records_release(under_c.rec, under_c.n);
}

/* After `keys rotate-master` the topic holds the tenant's record under A and
 * then the newer one under B: a keyring holding both takes the newer one in
 * either read order, and so does one holding B alone. */
static void the_rotated_record_counts_with_or_without_the_previous_key(void **state)
{
	(void)state;
	Made under_a;
	made_under(master_a, TENANT_A, CLIENT_A, &under_a);
	char *rotated = vp_keyrec_rewrap(master_a, master_b, under_a.rec[0].name,
					 under_a.rec[0].value, 2000000, why, sizeof(why));
	assert_non_null(rotated);
	const char *orders[2][2] = {{under_a.rec[0].value, rotated},
				    {rotated, under_a.rec[0].value}};
	for (int i = 0; i < 2; i++)
		for (int with_previous = 0; with_previous < 2; with_previous++) {
			VpKeyring *kr = vp_keyring_new(master_b, why, sizeof(why));
			if (with_previous)
				vp_keyring_accept_previous(kr, master_a);
			for (int j = 0; j < 2; j++)
				assert_int_equal(take(kr, under_a.rec[0].name, orders[i][j]),
						 VP_KEYRING_OK);
			assert_int_equal(take(kr, under_a.rec[1].name, under_a.rec[1].value),
					 VP_KEYRING_OK);
			assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)),
					 VP_KEYRING_OK);
			opens(kr, TENANT_A, CLIENT_A, &under_a);
			vp_keyring_free(kr);
		}
	free(rotated);
	vp_key_records_release(under_a.rec, under_a.n);
}

/* A daemon holding A alone that took the tenant's record under A, then the
 * rotation's under B while running: wrong at its next start, but the key it
 * unwrapped still opens the tenant's clients, so a running projector is not
 * stopped by it after a failed batch (vp_keyring_keyless_tenant); a tenant
 * whose only record is under B is what stops it. */
static void a_rotation_seen_while_running_leaves_the_unwrapped_key_serving(void **state)
{
	(void)state;
	Made under_a, under_b;
	made_under(master_a, TENANT_A, CLIENT_A, &under_a);
	made_under(master_b, TENANT_B, CLIENT_B, &under_b);
	char *rotated = vp_keyrec_rewrap(master_a, master_b, under_a.rec[0].name,
					 under_a.rec[0].value, 2000000, why, sizeof(why));
	assert_non_null(rotated);
	VpKeyring *kr = vp_keyring_new(master_a, why, sizeof(why));
	for (int i = 0; i < 2; i++)
		assert_int_equal(take(kr, under_a.rec[i].name, under_a.rec[i].value), VP_KEYRING_OK);
	assert_int_equal(take(kr, under_a.rec[0].name, rotated), VP_KEYRING_OK);
	assert_int_equal(vp_keyring_wrong_master(kr, why, sizeof(why)), VP_KEYRING_WRONG_MASTER);
	assert_false(vp_keyring_keyless_tenant(kr, why, sizeof(why)));
	opens(kr, TENANT_A, CLIENT_A, &under_a);
	for (int i = 0; i < 2; i++)
		assert_int_equal(take(kr, under_b.rec[i].name, under_b.rec[i].value), VP_KEYRING_OK);
	why[0] = '\0';
	assert_true(vp_keyring_keyless_tenant(kr, why, sizeof(why)));
	assert_non_null(strstr(why, "tenant:" TENANT_B));
	vp_keyring_free(kr);
	free(rotated);
	vp_key_records_release(under_a.rec, under_a.n);
	vp_key_records_release(under_b.rec, under_b.n);
}

/* A topic of before the master record, rotated: a daemon holding A took
 * the tenant's key under A, then a writer holding B and previous A records
 * B as the first master record. That is the rotation, not a daemon started
 * on an empty topic with another key: the running daemon is not refused
 * (its next start is); a keyring with no tenant key is. */
static void a_first_master_record_under_another_key_refuses_only_a_keyless_keyring(void **state)
{
	(void)state;
	Made under_a;
	made_under(master_a, TENANT_A, CLIENT_A, &under_a);
	char b_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(master_b, b_id);
	char *record = vp_keyrec_master_value(b_id, 3000000);
	assert_non_null(record);
	VpKeyring *with_tenant = vp_keyring_new(master_a, why, sizeof(why));
	VpKeyring *keyless = vp_keyring_new(master_a, why, sizeof(why));
	for (int i = 0; i < 2; i++)
		assert_int_equal(take(with_tenant, under_a.rec[i].name, under_a.rec[i].value),
				 VP_KEYRING_OK);
	assert_int_equal(take(with_tenant, VP_KEYREC_MASTER_NAME, record), VP_KEYRING_OK);
	assert_int_equal(take(keyless, VP_KEYREC_MASTER_NAME, record), VP_KEYRING_OK);
	assert_false(vp_keyring_master_refused(with_tenant, why, sizeof(why)));
	assert_int_equal(vp_keyring_wrong_master(with_tenant, why, sizeof(why)),
			 VP_KEYRING_WRONG_MASTER);
	opens(with_tenant, TENANT_A, CLIENT_A, &under_a);
	assert_true(vp_keyring_master_refused(keyless, why, sizeof(why)));
	vp_keyring_free(with_tenant);
	vp_keyring_free(keyless);
	free(record);
	vp_key_records_release(under_a.rec, under_a.n);
}

static void the_previous_key_loads_like_the_master_key_and_is_not_the_current(void **state)
{
	(void)state;
	const char *text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
	char path[] = "/tmp/vp_previous_master_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", 0600);
	VpKey *previous = NULL;

	/* none given: no key and no error */
	assert_int_equal(vp_key_master_previous_load("", "", master_b, &previous, why, sizeof(why)),
			 0);
	assert_null(previous);
	assert_int_equal(
		vp_key_master_previous_load(NULL, NULL, master_b, &previous, why, sizeof(why)), 0);
	assert_null(previous);

	/* the file, else the environment's text: the same key */
	char file_id[VP_KEY_ID_CHARS + 1], env_id[VP_KEY_ID_CHARS + 1];
	assert_int_equal(
		vp_key_master_previous_load(path, "", master_b, &previous, why, sizeof(why)), 0);
	assert_non_null(previous);
	vp_key_id(previous, file_id);
	previous = vp_key_free(previous);
	assert_int_equal(
		vp_key_master_previous_load("", text, master_b, &previous, why, sizeof(why)), 0);
	assert_non_null(previous);
	vp_key_id(previous, env_id);
	assert_string_equal(file_id, env_id);

	/* equal to the current key: refused, saying so */
	VpKey *same = NULL;
	assert_int_equal(
		vp_key_master_previous_load(path, "", previous, &same, why, sizeof(why)), -1);
	assert_null(same);
	assert_non_null(strstr(why, "the previous master key is the current one"));
	previous = vp_key_free(previous);

	/* readable by others: refused as the master key's file is */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(
		vp_key_master_previous_load(path, "", master_b, &previous, why, sizeof(why)), -1);
	assert_null(previous);
	assert_non_null(strstr(why, "previous master key file"));
	assert_non_null(strstr(why, "chmod 600"));
	/* not a key: refused without the text */
	write_file(path, "AAECAwQF\n", 0600);
	assert_int_equal(
		vp_key_master_previous_load(path, "", master_b, &previous, why, sizeof(why)), -1);
	assert_null(strstr(why, "AAECAwQF"));
	assert_int_equal(
		vp_key_master_previous_load("", "AAECAwQF", master_b, &previous, why, sizeof(why)),
		-1);
	assert_non_null(strstr(why, "VETPMS_MASTER_KEY_PREVIOUS"));
	assert_null(strstr(why, "AAECAwQF"));
	unlink(path);
	/* a file named but missing is an error, not "none" */
	assert_int_equal(
		vp_key_master_previous_load(path, text, master_b, &previous, why, sizeof(why)), -1);
	assert_null(previous);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_keyring_with_the_previous_key_reads_both_and_wraps_under_the_current),
		cmocka_unit_test(a_record_under_neither_key_is_refused_naming_every_key_held),
		cmocka_unit_test(the_rotated_record_counts_with_or_without_the_previous_key),
		cmocka_unit_test(a_rotation_seen_while_running_leaves_the_unwrapped_key_serving),
		cmocka_unit_test(a_first_master_record_under_another_key_refuses_only_a_keyless_keyring),
		cmocka_unit_test(the_previous_key_loads_like_the_master_key_and_is_not_the_current),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
