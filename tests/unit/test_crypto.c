/* Unit tests of common/vp_crypto.c: keys from text and files, wrapping, sealed
 * fields (tampering, wrong key, moved field), blind indexes, command MACs. */
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
#include <sodium.h>

#include "vp_crypto.h"
#include "write_file.h"

static char why[512];

static int setup(void **state)
{
	(void)state;
	return vp_crypto_init(why, sizeof(why));
}

static VpKey *key_or_fail(VpKey *key)
{
	if (!key)
		fail_msg("%s", why);
	return key;
}

static void keys_round_trip_as_text_and_have_stable_ids(void **state)
{
	(void)state;
	VpKey *a = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *b = key_or_fail(vp_key_random(why, sizeof(why)));
	char id_a[VP_KEY_ID_CHARS + 1], id_b[VP_KEY_ID_CHARS + 1], id_c[VP_KEY_ID_CHARS + 1];
	vp_key_id(a, id_a);
	vp_key_id(b, id_b);
	assert_int_equal(strlen(id_a), VP_KEY_ID_CHARS);
	assert_string_not_equal(id_a, id_b);
	VpKey *c = key_or_fail(vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", why,
						 sizeof(why)));
	VpKey *d = key_or_fail(vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", why,
						 sizeof(why)));
	vp_key_id(c, id_c);
	vp_key_id(d, id_a);
	assert_string_equal(id_c, id_a);
	/* too short, too long, not base64url: refused without echoing the text */
	assert_null(vp_key_from_text("AAECAwQF", why, sizeof(why)));
	assert_null(strstr(why, "AAECAwQF"));
	assert_null(vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", why,
				     sizeof(why)));
	assert_null(vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH+8", why,
				     sizeof(why)));
	vp_key_free(a);
	vp_key_free(b);
	vp_key_free(c);
	vp_key_free(d);
}

static void a_wrapped_key_opens_only_under_its_kek_and_context(void **state)
{
	(void)state;
	VpKey *master = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *other = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *tenant = key_or_fail(vp_key_random(why, sizeof(why)));
	VpBuf wrapped;
	vp_buf_init(&wrapped, 1024);
	assert_int_equal(vp_key_wrap(master, tenant, "tenant:t1", &wrapped, why, sizeof(why)), 0);
	const char *text = vp_buf_str(&wrapped);
	VpKey *back = key_or_fail(vp_key_unwrap(master, text, "tenant:t1", why, sizeof(why)));
	char id1[VP_KEY_ID_CHARS + 1], id2[VP_KEY_ID_CHARS + 1];
	vp_key_id(tenant, id1);
	vp_key_id(back, id2);
	assert_string_equal(id1, id2);
	assert_null(vp_key_unwrap(other, text, "tenant:t1", why, sizeof(why)));
	assert_non_null(strstr(why, "does not open"));
	assert_null(vp_key_unwrap(master, text, "tenant:t2", why, sizeof(why)));
	/* one character changed */
	char *changed = strdup(text);
	changed[10] = changed[10] == 'A' ? 'B' : 'A';
	assert_null(vp_key_unwrap(master, changed, "tenant:t1", why, sizeof(why)));
	assert_null(vp_key_unwrap(master, "not base64!", "tenant:t1", why, sizeof(why)));
	assert_null(vp_key_unwrap(master, "", "tenant:t1", why, sizeof(why)));
	/* two wraps of one key differ (fresh nonces) */
	VpBuf again;
	vp_buf_init(&again, 1024);
	assert_int_equal(vp_key_wrap(master, tenant, "tenant:t1", &again, why, sizeof(why)), 0);
	assert_string_not_equal(vp_buf_str(&again), text);
	free(changed);
	vp_buf_free(&again);
	vp_buf_free(&wrapped);
	vp_key_free(back);
	vp_key_free(tenant);
	vp_key_free(other);
	vp_key_free(master);
}

static void sealed_fields_open_with_their_key_and_place_only(void **state)
{
	(void)state;
	VpKey *data = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *other = key_or_fail(vp_key_random(why, sizeof(why)));
	VpBuf nonce, sealed, plain;
	vp_buf_init(&nonce, 1024);
	vp_buf_init(&sealed, 4096);
	vp_buf_init(&plain, 4096);
	const char *email = "ann.smith@example.org";
	const char *aad = "client:t1:c1:email";
	assert_int_equal(vp_field_seal(data, email, strlen(email), aad, &nonce, &sealed, why,
				       sizeof(why)),
			 0);
	assert_null(strstr(vp_buf_str(&sealed), "ann"));
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), vp_buf_str(&sealed), aad, &plain,
				       why, sizeof(why)),
			 0);
	assert_string_equal(vp_buf_str(&plain), email);
	vp_buf_reset(&plain);
	/* the wrong key, another field, another client, a tampered byte: refused */
	assert_int_equal(vp_field_open(other, vp_buf_str(&nonce), vp_buf_str(&sealed), aad, &plain,
				       why, sizeof(why)),
			 -1);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), vp_buf_str(&sealed),
				       "client:t1:c1:phone", &plain, why, sizeof(why)),
			 -1);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), vp_buf_str(&sealed),
				       "client:t1:c2:email", &plain, why, sizeof(why)),
			 -1);
	char *tampered = strdup(vp_buf_str(&sealed));
	tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), tampered, aad, &plain, why,
				       sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "does not open"));
	assert_int_equal(vp_field_open(data, "short", vp_buf_str(&sealed), aad, &plain, why,
				       sizeof(why)),
			 -1);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), "", aad, &plain, why, sizeof(why)),
			 -1);
	/* only canonical base64url (the decoder is ours, not libsodium's): no
	 * padding, no '+' or '/', no lone or non-zero-padded last character */
	char text[1024];
	const char *base = vp_buf_str(&sealed);
	size_t n = strlen(base);
	snprintf(text, sizeof(text), "%s=", base);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad, &plain, why,
				       sizeof(why)), -1);
	snprintf(text, sizeof(text), "%sA", base);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad, &plain, why,
				       sizeof(why)), -1);
	snprintf(text, sizeof(text), "%s", base);
	text[1] = '+';
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad, &plain, why,
				       sizeof(why)), -1);
	text[1] = base[1];
	/* a character that is not base64url anywhere: in any place of a group
	 * of four (decoded a group at a time) or of the last, shorter one */
	for (size_t i = 0; i < n; i++) {
		for (const char *bad = "+/=.~ "; *bad; bad++) {
			text[i] = *bad;
			assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad,
						       &plain, why, sizeof(why)),
					 -1);
		}
		text[i] = base[i];
	}
	/* cut anywhere: refused (no lone character, the tag does not match) */
	for (size_t len = 0; len < n; len++) {
		snprintf(text, sizeof(text), "%.*s", (int)len, base);
		assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad, &plain, why,
					       sizeof(why)),
				 -1);
	}
	snprintf(text, sizeof(text), "%s", base);
	/* 21 + 16 bytes: 50 characters, the last one holding 2 bits and 4 zero
	 * bits (so one of A, Q, g, w); the next letter (B, R, h, x) decodes to
	 * the same bytes but sets one of the 4: still refused */
	assert_int_equal(n, 50);
	assert_non_null(strchr("AQgw", base[n - 1]));
	text[n - 1] = (char)(base[n - 1] + 1);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), text, aad, &plain, why,
				       sizeof(why)), -1);
	char nonce_text[64];
	snprintf(nonce_text, sizeof(nonce_text), "%s", vp_buf_str(&nonce));
	nonce_text[0] = '/';
	assert_int_equal(vp_field_open(data, nonce_text, base, aad, &plain, why, sizeof(why)),
			 -1);
	assert_int_equal(plain.len, 0);
	/* an empty value seals and opens too */
	vp_buf_reset(&nonce);
	vp_buf_reset(&sealed);
	assert_int_equal(vp_field_seal(data, "", 0, aad, &nonce, &sealed, why, sizeof(why)), 0);
	assert_int_equal(vp_field_open(data, vp_buf_str(&nonce), vp_buf_str(&sealed), aad, &plain,
				       why, sizeof(why)),
			 0);
	assert_string_equal(vp_buf_str(&plain), "");
	free(tampered);
	vp_buf_free(&nonce);
	vp_buf_free(&sealed);
	vp_buf_free(&plain);
	vp_key_free(other);
	vp_key_free(data);
}

/* libsodium's decoding of base64url text into bin; its length. */
static size_t sodium_decoded(const char *text, unsigned char *bin, size_t cap)
{
	size_t len = 0;
	assert_int_equal(sodium_base642bin(bin, cap, text, strlen(text), NULL, &len, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
			 0);
	return len;
}

/* The table encoder and hex (public bytes only) write what libsodium's
 * constant-time ones would: for each length modulo 3, libsodium decodes the
 * nonce and the text, its own AEAD opens them under the key's raw bytes, and
 * encoding them again gives the same text back; a key id is sodium_bin2hex
 * of its fingerprint. */
static void public_text_is_what_libsodium_would_write(void **state)
{
	(void)state;
	static const char label[] = "vetpms key id";
	unsigned char raw[VP_KEY_BYTES], fingerprint[VP_KEY_ID_CHARS / 2];
	char raw_text[64], id[VP_KEY_ID_CHARS + 1], expected[VP_KEY_ID_CHARS + 1];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(raw_text, sizeof(raw_text), raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	VpKey *data = key_or_fail(vp_key_from_text(raw_text, why, sizeof(why)));
	for (size_t len = 0; len < 40; len++) {
		char text[64] = "", again[256];
		unsigned char nonce[64], sealed[128], opened[64];
		unsigned long long opened_len = 0;
		memset(text, 'a' + (int)(len % 26), len);
		VpBuf nonce_text, sealed_text;
		vp_buf_init(&nonce_text, 1024);
		vp_buf_init(&sealed_text, 4096);
		assert_int_equal(vp_field_seal(data, text, len, "aad", &nonce_text, &sealed_text,
					       why, sizeof(why)),
				 0);
		size_t nonce_len = sodium_decoded(vp_buf_str(&nonce_text), nonce, sizeof(nonce));
		size_t sealed_len = sodium_decoded(vp_buf_str(&sealed_text), sealed, sizeof(sealed));
		assert_int_equal(nonce_len, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
					 opened, &opened_len, NULL, sealed, sealed_len,
					 (const unsigned char *)"aad", 3, nonce, raw),
				 0);
		assert_int_equal(opened_len, len);
		assert_memory_equal(opened, text, len);
		sodium_bin2base64(again, sizeof(again), sealed, sealed_len,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_string_equal(vp_buf_str(&sealed_text), again);
		vp_buf_free(&nonce_text);
		vp_buf_free(&sealed_text);
	}
	crypto_generichash(fingerprint, sizeof(fingerprint), (const unsigned char *)label,
			   sizeof(label) - 1, raw, sizeof(raw));
	sodium_bin2hex(expected, sizeof(expected), fingerprint, sizeof(fingerprint));
	vp_key_id(data, id);
	assert_string_equal(id, expected);
	vp_key_free(data);
}

static void blind_indexes_match_equal_values_of_one_tenant_only(void **state)
{
	(void)state;
	VpKey *t1 = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *t2 = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *i1 = key_or_fail(vp_key_derive_index(t1, why, sizeof(why)));
	VpKey *i1b = key_or_fail(vp_key_derive_index(t1, why, sizeof(why)));
	VpKey *i2 = key_or_fail(vp_key_derive_index(t2, why, sizeof(why)));
	char a[65], b[65], c[65], d[65], e[65];
	vp_blind_index(i1, "email", "ann@example.org", 15, a);
	vp_blind_index(i1b, "email", "ann@example.org", 15, b);
	vp_blind_index(i2, "email", "ann@example.org", 15, c);
	vp_blind_index(i1, "phone", "ann@example.org", 15, d);
	vp_blind_index(i1, "emai", "lann@example.org", 16, e);
	assert_int_equal(strlen(a), 64);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, d);
	assert_string_not_equal(a, e);
	/* the index key is not the tenant key */
	char id_t[VP_KEY_ID_CHARS + 1], id_i[VP_KEY_ID_CHARS + 1];
	vp_key_id(t1, id_t);
	vp_key_id(i1, id_i);
	assert_string_not_equal(id_t, id_i);
	vp_key_free(i2);
	vp_key_free(i1b);
	vp_key_free(i1);
	vp_key_free(t2);
	vp_key_free(t1);
}

static void the_master_key_comes_from_a_private_file_or_the_environment(void **state)
{
	(void)state;
	char path[] = "/tmp/vp_crypto_master_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	const char *text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
	write_file(path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", 0600);
	VpKey *from_file = key_or_fail(vp_key_master_load(path, "", why, sizeof(why)));
	VpKey *from_env = key_or_fail(vp_key_master_load("", text, why, sizeof(why)));
	char id1[VP_KEY_ID_CHARS + 1], id2[VP_KEY_ID_CHARS + 1];
	vp_key_id(from_file, id1);
	vp_key_id(from_env, id2);
	assert_string_equal(id1, id2);
	/* readable by others: refused, and the message says what to do */
	assert_int_equal(chmod(path, 0644), 0);
	assert_null(vp_key_master_load(path, text, why, sizeof(why)));
	assert_non_null(strstr(why, "chmod 600"));
	/* not a key: refused without the file's text */
	write_file(path, "AAECAwQF\n", 0600);
	assert_null(vp_key_master_load(path, "", why, sizeof(why)));
	assert_null(strstr(why, "AAECAwQF"));
	unlink(path);
	assert_null(vp_key_master_load(path, "", why, sizeof(why)));
	assert_null(vp_key_master_load("", "", why, sizeof(why)));
	assert_non_null(strstr(why, "VETPMS_MASTER_KEY_FILE"));
	vp_key_free(from_env);
	vp_key_free(from_file);
}

/* The writer's command MAC: keyed BLAKE2b-256 of the parts under a key
 * derived from the master key ("vpcmdmac", subkey 1), as libsodium computes
 * it from the raw bytes; not the plain SHA-256 the log used to carry, and
 * another master key gives another MAC. */
static void command_macs_are_keyed_by_the_master_key(void **state)
{
	(void)state;
	static const char text[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
	unsigned char raw[32], derived[32], digest[32];
	for (int i = 0; i < 32; i++)
		raw[i] = (unsigned char)i; /* what text decodes to */
	VpKey *master = key_or_fail(vp_key_from_text(text, why, sizeof(why)));
	VpKey *other = key_or_fail(vp_key_random(why, sizeof(why)));
	VpKey *key = key_or_fail(vp_key_derive_command(master, why, sizeof(why)));
	VpKey *other_key = key_or_fail(vp_key_derive_command(other, why, sizeof(why)));
	const void *parts[] = {"2 ", "/v1/clients", "{\"first_name\":\"Ada\"}"};
	const size_t lens[] = {2, sizeof("/v1/clients"), strlen(parts[2])};
	char mac[65], again[65], other_mac[65], expected[65], plain[65];
	vp_key_mac_hex(key, parts, lens, 3, mac);
	vp_key_mac_hex(key, parts, lens, 3, again);
	vp_key_mac_hex(other_key, parts, lens, 3, other_mac);
	assert_string_equal(mac, again);
	assert_string_not_equal(mac, other_mac);

	crypto_kdf_derive_from_key(derived, sizeof(derived), 1, "vpcmdmac", raw);
	crypto_generichash_state st;
	crypto_generichash_init(&st, derived, sizeof(derived), sizeof(digest));
	for (int i = 0; i < 3; i++)
		crypto_generichash_update(&st, parts[i], lens[i]);
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_bin2hex(expected, sizeof(expected), digest, sizeof(digest));
	assert_string_equal(mac, expected);

	crypto_hash_sha256_state sha;
	crypto_hash_sha256_init(&sha);
	for (int i = 0; i < 3; i++)
		crypto_hash_sha256_update(&sha, parts[i], lens[i]);
	crypto_hash_sha256_final(&sha, digest);
	sodium_bin2hex(plain, sizeof(plain), digest, sizeof(digest));
	assert_string_not_equal(mac, plain);
	vp_key_free(master);
	vp_key_free(other);
	vp_key_free(key);
	vp_key_free(other_key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys_round_trip_as_text_and_have_stable_ids),
		cmocka_unit_test(a_wrapped_key_opens_only_under_its_kek_and_context),
		cmocka_unit_test(sealed_fields_open_with_their_key_and_place_only),
		cmocka_unit_test(public_text_is_what_libsodium_would_write),
		cmocka_unit_test(blind_indexes_match_equal_values_of_one_tenant_only),
		cmocka_unit_test(the_master_key_comes_from_a_private_file_or_the_environment),
		cmocka_unit_test(command_macs_are_keyed_by_the_master_key),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
