/* The writer's tenant import (cmd-writer/import.c) against its model: what a
 * batch must be, where it may start (an empty probe, a batch that already
 * landed, a gap), a tenant that exists, and the model after a batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "vp_json.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"
#include "vp_uuid.h"
#include "writer.h"

#define DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER  "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void new_id(char out[37])
{
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, out);
}

/* An encoded envelope of the tenant; malloc'd. */
static char *envelope(const char *tenant, const char *type, const char *aggregate,
		      const char *aggregate_id, int seq, const char *data)
{
	VpEvent ev = {.v = 1, .seq = seq, .at_us = vp_time_now_us()};
	new_id(ev.id);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", tenant);
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", aggregate);
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", aggregate_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "cmd-%s", ev.id);
	snprintf(ev.actor, sizeof(ev.actor), "old-deployment-user");
	ev.data = cJSON_Parse(data);
	assert_non_null(ev.data);
	char *text = vp_event_encode(&ev);
	cJSON_Delete(ev.data);
	assert_non_null(text);
	return text;
}

static char *provisioned(const char *tenant)
{
	return envelope(tenant, "TenantProvisioned", "tenant", tenant, 1,
			"{\"name\":\"Clinic\",\"timezone\":\"UTC\",\"currency\":\"EUR\"}");
}

static char *client(const char *tenant)
{
	char id[37];
	new_id(id);
	return envelope(tenant, "ClientRegistered", "client", id, 1,
			"{\"first_name\":\"Ann\",\"last_name\":\"Smith\"}");
}

/* {"import":digest,"from":from,"events":[lines...]} */
static cJSON *body(const char *digest, long long from, char **lines, int n)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "import", digest);
	cJSON_AddNumberToObject(b, "from", (double)from);
	cJSON *events = cJSON_AddArrayToObject(b, "events");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(events, cJSON_CreateString(lines[i]));
	return b;
}

/* parse + position + apply, as the route runs them: 0 appended (to the
 * model), 1 nothing to append, -1 refused (err). */
static int import_batch(WrState *s, const char *tenant, cJSON *b, int64_t *next, VpError *err)
{
	WrImportBatch batch;
	size_t applied = 0;
	vp_error_clear(err);
	int rc = wr_import_parse(b, tenant, &batch, err);
	if (rc == 0)
		rc = wr_import_position(s, &batch, next, err);
	if (rc == 0)
		rc = wr_import_apply(s, &batch, &applied, err);
	wr_import_release(&batch);
	cJSON_Delete(b);
	return rc;
}

static void a_batch_lands_once_and_the_import_resumes_at_next(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	int64_t next = -1;
	char tenant[37];
	new_id(tenant);
	wr_state_init(&s);
	char *lines[] = {provisioned(tenant), client(tenant), client(tenant)};

	/* the probe of a tenant this deployment does not know: start at 0 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 0), &next, &err), 1);
	assert_int_equal(next, 0);
	assert_null(wr_state_tenant(&s, tenant));
	/* the first two events: the model has the tenant and knows where the import is */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 2), &next, &err), 0);
	const WrTenant *t = wr_state_tenant(&s, tenant);
	assert_non_null(t);
	assert_string_equal(t->import_digest, DIGEST);
	assert_int_equal(t->import_next, 2);
	/* the same batch again (its answer was lost): nothing appended, next is 2 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 2), &next, &err), 1);
	assert_int_equal(next, 2);
	/* a batch overlapping what landed, or leaving a gap: 409 with where to go on */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 1, lines + 1, 2), &next, &err), -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.code, WR_ERR_IMPORT_POSITION);
	assert_string_equal(err.details[0].issue, "must be 2");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 3, lines + 2, 1), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_IMPORT_POSITION);
	/* another file for this tenant is another tenant's history: refused */
	assert_int_equal(import_batch(&s, tenant, body(OTHER, 0, lines, 0), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	/* the rest, from 2 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 2, lines + 2, 1), &next, &err), 0);
	assert_int_equal(wr_state_tenant(&s, tenant)->import_next, 3);
	for (int i = 0; i < 3; i++)
		free(lines[i]);
	wr_state_clear(&s);
}

static void a_tenant_made_here_is_never_imported_into(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	VpEvent ev;
	int64_t next;
	char tenant[37], why[256];
	new_id(tenant);
	wr_state_init(&s);
	char *line = provisioned(tenant);
	assert_int_equal(vp_event_decode(line, strlen(line), &ev, why, sizeof(why)), 0);
	assert_int_equal(wr_state_apply(&s, &ev, NULL, why, sizeof(why)), 0); /* a command's */
	vp_event_release(&ev);
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, &line, 0), &next, &err), -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, &line, 1), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	free(line);
	wr_state_clear(&s);
}

static void bad_batches_are_refused_before_the_model(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	int64_t next;
	char tenant[37], other[37];
	new_id(tenant);
	new_id(other);
	wr_state_init(&s);
	char *mine[] = {provisioned(tenant), client(tenant)};
	char *theirs[] = {provisioned(other)};
	char poison[] = "{\"id\":\"not an envelope\"}";
	char *poisoned[] = {mine[0], poison};

	/* the digest, from, events */
	assert_int_equal(import_batch(&s, tenant, body("ABC", 0, mine, 1), &next, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.details[0].field, "import");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, -1, mine, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "from");
	cJSON *numbers = body(DIGEST, 0, mine, 0);
	cJSON_AddItemToArray(cJSON_GetObjectItem(numbers, "events"), cJSON_CreateNumber(1));
	assert_int_equal(import_batch(&s, tenant, numbers, &next, &err), -1);
	assert_string_equal(err.details[0].field, "events");
	/* a line the catalog refuses, another tenant's, a first that provisions nothing */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, poisoned, 2), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[1]");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, theirs, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[0]");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, mine + 1, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[0]");
	/* nothing of it reached the model */
	assert_null(wr_state_tenant(&s, tenant));
	assert_null(wr_state_tenant(&s, other));
	free(mine[0]);
	free(mine[1]);
	free(theirs[0]);
	wr_state_clear(&s);
}

/* A key's text (base64url) and the key. */
static VpKey *text_key(char text[64])
{
	unsigned char bytes[VP_KEY_BYTES];
	char why[128];
	randombytes_buf(bytes, sizeof(bytes));
	sodium_bin2base64(text, 64, bytes, sizeof(bytes), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	VpKey *key = vp_key_from_text(text, why, sizeof(why));
	assert_non_null(key);
	return key;
}

static void add_key(cJSON *b, const char *name, const char *value)
{
	cJSON *keys = cJSON_GetObjectItem(b, "keys");
	if (!keys)
		keys = cJSON_AddArrayToObject(b, "keys");
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "name", name);
	cJSON_AddStringToObject(k, "value", value);
	cJSON_AddItemToArray(keys, k);
}

/* The first batch of a file with keys: the tenant key arrives under the
 * transport key and leaves rewrapped under this writer's master key (the
 * same key), client records and erasure markers as they came; a wrong
 * transport key, the tenant's record without one, or another tenant's record
 * are refused (400) before the model. A later batch carries client records
 * without the tenant's and without the transport key: taken when the model's
 * keyring holds the tenant key (a batch before brought it), refused (400)
 * when it does not. */
static void keys_ride_with_any_batch_rewrapped_under_our_master(void **state)
{
	(void)state;
	char why[256], master_text[64], transport_text[64], wrong_text[64];
	assert_int_equal(vp_crypto_init(why, sizeof(why)), 0);
	VpKey *master = text_key(master_text), *transport = text_key(transport_text);
	VpKey *wrong = text_key(wrong_text), *tkey = vp_key_random(why, sizeof(why));
	VpKey *ckey = vp_key_random(why, sizeof(why));
	setenv("VETPMS_MASTER_KEY", master_text, 1);
	WrConfig cfg;
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(wr_keys_init(&cfg, why, sizeof(why)), 0);
	unsetenv("VETPMS_MASTER_KEY");
	char tenant[37], other[37], c1[37], c2[37], tname[128], c1name[128], c2name[128];
	char oname[128];
	new_id(tenant);
	new_id(other);
	new_id(c1);
	new_id(c2);
	vp_keyrec_name(tenant, NULL, tname, sizeof(tname));
	vp_keyrec_name(tenant, c1, c1name, sizeof(c1name));
	vp_keyrec_name(tenant, c2, c2name, sizeof(c2name));
	vp_keyrec_name(other, c1, oname, sizeof(oname));
	char *tvalue = vp_keyrec_value(transport, tkey, tname, 0, why, sizeof(why));
	char *cvalue = vp_keyrec_value(tkey, ckey, c1name, 0, why, sizeof(why));
	char *erased = vp_keyrec_erased_value(0);
	char *lines[] = {provisioned(tenant), client(tenant)};
	WrImportBatch b;
	VpError err;

	cJSON *ok = body(DIGEST, 0, lines, 2);
	add_key(ok, tname, tvalue);
	add_key(ok, c1name, cvalue);
	add_key(ok, c2name, erased);
	cJSON_AddStringToObject(ok, "transport_key", transport_text);
	vp_error_clear(&err);
	size_t key_len = strlen(transport_text);
	assert_int_equal(wr_import_parse(ok, tenant, &b, &err), 0);
	assert_int_equal(b.n_keys, 3);
	/* the transport key's text is wiped in the parsed body once read */
	const char *left = cJSON_GetObjectItemCaseSensitive(ok, "transport_key")->valuestring;
	for (size_t i = 0; i < key_len; i++)
		assert_int_equal(left[i], 0);
	cJSON *t = cJSON_Parse(b.keys[0].value);
	char master_id[VP_KEY_ID_CHARS + 1], tkey_id[VP_KEY_ID_CHARS + 1];
	vp_key_id(master, master_id);
	vp_key_id(tkey, tkey_id);
	assert_string_equal(vp_json_str(t, "kek_id"), master_id);
	assert_string_equal(vp_json_str(t, "key_id"), tkey_id);
	assert_string_equal(b.keys[1].value, cvalue);
	assert_string_equal(b.keys[2].value, erased);
	assert_true(b.keys[2].erasure);
	cJSON_Delete(t);
	/* the model took the tenant key with that batch (wr_import_take_keys) */
	WrState s;
	wr_state_init(&s);
	s.keys = vp_keyring_new(wr_keys_master(), why, sizeof(why));
	assert_non_null(s.keys);
	assert_int_equal(vp_keyring_take(s.keys, b.keys[0].name, strlen(b.keys[0].name),
					 b.keys[0].value, strlen(b.keys[0].value), why, sizeof(why)),
			 VP_KEYRING_OK);
	wr_import_release(&b);

	/* the wrong transport key: refused naming transport_key, not the key */
	cJSON_ReplaceItemInObject(ok, "transport_key", cJSON_CreateString(wrong_text));
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(ok, tenant, &b, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.details[0].field, "transport_key");
	assert_null(strstr(err.details[0].issue, wrong_text));
	wr_import_release(&b);
	/* the tenant's record without the transport key it is wrapped under */
	cJSON_DeleteItemFromObject(ok, "transport_key");
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(ok, tenant, &b, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.details[0].field, "transport_key");
	wr_import_release(&b);
	cJSON_Delete(ok);
	/* keys in a later batch, without the transport key: a client's record
	 * (its first event is in the batch) and an erasure marker */
	cJSON *later = body(DIGEST, 1, lines + 1, 1);
	add_key(later, c1name, cvalue);
	add_key(later, c2name, erased);
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(later, tenant, &b, &err), 0);
	assert_int_equal(b.n_keys, 2);
	assert_string_equal(b.keys[0].value, cvalue);
	assert_true(b.keys[1].erasure);
	assert_int_equal(wr_import_keys_ok(&s, &b, &err), 0); /* the keyring holds the tenant's */
	wr_import_release(&b);
	/* keys with no event to ride with */
	cJSON *bare = body(DIGEST, 1, lines + 1, 0);
	add_key(bare, c1name, cvalue);
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(bare, tenant, &b, &err), -1);
	assert_string_equal(err.details[0].field, "keys");
	wr_import_release(&b);
	cJSON_Delete(bare);
	/* another tenant's record; client keys without the tenant's */
	cJSON *theirs = body(DIGEST, 0, lines, 2);
	add_key(theirs, tname, tvalue);
	add_key(theirs, oname, cvalue);
	cJSON_AddStringToObject(theirs, "transport_key", transport_text);
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(theirs, tenant, &b, &err), -1);
	assert_string_equal(err.details[0].field, "keys[1]");
	wr_import_release(&b);
	cJSON_Delete(theirs);
	/* client keys of a tenant whose key is neither in the batch nor held:
	 * the batch parses, the model's keyring refuses it (400, field keys) */
	WrState bare_state;
	wr_state_init(&bare_state);
	bare_state.keys = vp_keyring_new(wr_keys_master(), why, sizeof(why));
	vp_error_clear(&err);
	assert_int_equal(wr_import_parse(later, tenant, &b, &err), 0);
	assert_int_equal(wr_import_keys_ok(&bare_state, &b, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.details[0].field, "keys");
	wr_import_release(&b);
	bare_state.keys = vp_keyring_free(bare_state.keys);
	wr_state_clear(&bare_state);
	cJSON_Delete(later);
	s.keys = vp_keyring_free(s.keys);
	wr_state_clear(&s);

	for (int i = 0; i < 2; i++)
		free(lines[i]);
	free(tvalue);
	free(cvalue);
	free(erased);
	vp_key_free(master);
	vp_key_free(transport);
	vp_key_free(wrong);
	vp_key_free(tkey);
	vp_key_free(ckey);
	wr_keys_release();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_batch_lands_once_and_the_import_resumes_at_next),
		cmocka_unit_test(a_tenant_made_here_is_never_imported_into),
		cmocka_unit_test(keys_ride_with_any_batch_rewrapped_under_our_master),
		cmocka_unit_test(bad_batches_are_refused_before_the_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
