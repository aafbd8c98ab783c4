/* Unit tests of projector/apply_keys.c, the step that opens client events
 * before their rows run: a plain-text (v1) event of a client whose key record
 * is an erasure marker (a rebuild after EraseClient) applies as the erased
 * client's, its members in place; another client's v1 event is left as it
 * is; events of other types are not touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "projector.h"
#include "vp_sealed.h"

#define TENANT	"0190a1b2-0000-7000-8000-000000000001"
#define ERASED	"0190a1b2-0000-7000-8000-000000000002"
#define KEPT	"0190a1b2-0000-7000-8000-000000000003"

static char why[512];

/* ev's data after pj_keys_open, as compact text (malloc'd). */
static char *opened(const char *type, const char *client, const char *data)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"id\":\"0190a1b2-0000-7000-8000-0000000000aa\",\"type\":\"%s\",\"v\":1,"
		 "\"tenant_id\":\"" TENANT "\",\"aggregate\":\"client\",\"aggregate_id\":\"%s\","
		 "\"seq\":1,\"command_id\":\"c\",\"actor\":\"a\",\"at\":\"2026-01-01T00:00:00Z\","
		 "\"data\":%s}",
		 type, client, data);
	VpEvent ev;
	assert_int_equal(vp_event_decode(text, strlen(text), &ev, why, sizeof(why)), 0);
	assert_int_equal(pj_keys_open(&ev, why, sizeof(why)), PJ_APPLIED);
	char *out = cJSON_PrintUnformatted(ev.data);
	vp_event_release(&ev);
	return out;
}

static void expect(const char *type, const char *client, const char *data, const char *want)
{
	char *got = opened(type, client, data);
	assert_string_equal(got, want);
	free(got);
}

static void an_erased_clients_v1_events_apply_as_the_erased_clients(void **state)
{
	(void)state;
	assert_int_equal(vp_crypto_init(why, sizeof(why)), 0);
	VpKey *master = vp_key_random(why, sizeof(why));
	VpKeyring *kr = master ? vp_keyring_new(master, why, sizeof(why)) : NULL;
	assert_non_null(kr);
	char name[128], *marker = vp_keyrec_erased_value(0);
	vp_keyrec_name(TENANT, ERASED, name, sizeof(name));
	assert_int_equal(vp_keyring_take(kr, name, strlen(name), marker, strlen(marker), why,
					 sizeof(why)),
			 VP_KEYRING_OK);
	free(marker);
	pj_keys_use(kr, 0);

	expect("ClientRegistered", ERASED,
	       "{\"first_name\":\"Ada\",\"last_name\":\"Q\",\"email\":\"a@b.c\",\"phone\":null,"
	       "\"address\":\"1 Lane\"}",
	       "{\"first_name\":\"erased\",\"last_name\":\"client\",\"email\":null,\"phone\":null,"
	       "\"address\":null}");
	expect("ClientContactUpdated", ERASED, "{\"phone\":\"+44 1\"}", "{\"phone\":null}");
	/* not erased: as it is */
	expect("ClientContactUpdated", KEPT, "{\"phone\":\"+44 1\"}", "{\"phone\":\"+44 1\"}");
	/* another type of the erased client: not a personal event */
	expect("ClientDeactivated", ERASED, "{\"reason\":\"moved away\"}",
	       "{\"reason\":\"moved away\"}");

	pj_keys_use(NULL, 0);
	vp_keyring_free(kr);
	vp_key_free(master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_erased_clients_v1_events_apply_as_the_erased_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
