/* Unit tests of vetctl/keys_status.c (vetctl keys status): tenant key records
 * counted under the master key each names, superseded ones too (they stay in
 * the topic until compaction), and each tenant's newest one; client records
 * and markers are not counted (they are under tenant keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys_status.h"

#define T1 "tenant:0190a1b2-0000-7000-8000-000000000001"
#define T2 "tenant:0190a1b2-0000-7000-8000-000000000002"
#define C1 "client:0190a1b2-0000-7000-8000-000000000001:0190a1b2-0000-7000-8000-000000000009"
#define REC(kek, at) "{\"kind\":\"tenant\",\"kek_id\":\"" kek "\",\"created_at\":\"" at "\"}"
#define OLD_AT "2026-01-01T00:00:00Z"
#define NEW_AT "2026-11-30T00:00:00Z"
#define CLIENT "{\"kind\":\"client\",\"kek_id\":\"tenantkeyid00000\",\"wrapped\":\"w\"}"
#define ERASED "{\"kind\":\"erased\",\"erased_at\":\"2026-11-30T10:00:00Z\"}"

static void take(VcKeysStatus *s, const char *name, const char *value)
{
	assert_int_equal(vc_status_take(s, name, strlen(name), value, value ? strlen(value) : 0), 0);
}

static void status_is(VcKeysStatus *s, const char *current, const char *previous,
		      const char *want)
{
	char *json = vc_status_json(s, "vetpms.keys", current, previous);
	assert_non_null(json);
	assert_string_equal(json, want);
	free(json);
}

static void superseded_records_count_until_compaction(void **state)
{
	(void)state;
	VcKeysStatus s = {0};
	/* t1 rotated a -> b, read new first (another partition order) */
	take(&s, T1, REC("bbbbbbbbbbbbbbbb", NEW_AT));
	take(&s, T1, REC("aaaaaaaaaaaaaaaa", OLD_AT));
	take(&s, T2, REC("aaaaaaaaaaaaaaaa", OLD_AT));
	take(&s, T2, REC("bbbbbbbbbbbbbbbb", NEW_AT));
	take(&s, C1, CLIENT);
	take(&s, C1, ERASED);
	status_is(&s, "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa",
		  "{\"topic\":\"vetpms.keys\",\"tenants\":2,\"records\":4,\"unnamed\":0,"
		  "\"held\":{\"current\":\"bbbbbbbbbbbbbbbb\",\"previous\":\"aaaaaaaaaaaaaaaa\"},"
		  "\"master_keys\":{"
		  "\"aaaaaaaaaaaaaaaa\":{\"records\":2,\"newest\":0,\"held\":\"previous\"},"
		  "\"bbbbbbbbbbbbbbbb\":{\"records\":2,\"newest\":2,\"held\":\"current\"}},\"master\":null}");
	/* asked again: the same (newest is counted afresh) */
	status_is(&s, "bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa",
		  "{\"topic\":\"vetpms.keys\",\"tenants\":2,\"records\":4,\"unnamed\":0,"
		  "\"held\":{\"current\":\"bbbbbbbbbbbbbbbb\",\"previous\":\"aaaaaaaaaaaaaaaa\"},"
		  "\"master_keys\":{"
		  "\"aaaaaaaaaaaaaaaa\":{\"records\":2,\"newest\":0,\"held\":\"previous\"},"
		  "\"bbbbbbbbbbbbbbbb\":{\"records\":2,\"newest\":2,\"held\":\"current\"}},\"master\":null}");
	vc_status_release(&s);
}

static void keys_held_are_listed_with_nothing_under_them(void **state)
{
	(void)state;
	VcKeysStatus s = {0};
	take(&s, T1, REC("cccccccccccccccc", NEW_AT));
	status_is(&s, "bbbbbbbbbbbbbbbb", NULL,
		  "{\"topic\":\"vetpms.keys\",\"tenants\":1,\"records\":1,\"unnamed\":0,"
		  "\"held\":{\"current\":\"bbbbbbbbbbbbbbbb\",\"previous\":null},"
		  "\"master_keys\":{"
		  "\"bbbbbbbbbbbbbbbb\":{\"records\":0,\"newest\":0,\"held\":\"current\"},"
		  "\"cccccccccccccccc\":{\"records\":1,\"newest\":1,\"held\":null}},\"master\":null}");
	vc_status_release(&s);
}

static void no_keys_held_and_an_empty_topic(void **state)
{
	(void)state;
	VcKeysStatus s = {0};
	status_is(&s, NULL, NULL,
		  "{\"topic\":\"vetpms.keys\",\"tenants\":0,\"records\":0,\"unnamed\":0,"
		  "\"held\":{\"current\":null,\"previous\":null},\"master_keys\":{},\"master\":null}");
	vc_status_release(&s);
}

static void a_record_naming_no_master_key_is_unnamed_and_a_tombstone_ends_a_tenant(void **state)
{
	(void)state;
	VcKeysStatus s = {0};
	take(&s, T1, "{\"kind\":\"tenant\"}");
	take(&s, T1, "not json");
	take(&s, T2, REC("aaaaaaaaaaaaaaaa", OLD_AT));
	take(&s, T2, NULL);
	status_is(&s, NULL, NULL,
		  "{\"topic\":\"vetpms.keys\",\"tenants\":1,\"records\":3,\"unnamed\":2,"
		  "\"held\":{\"current\":null,\"previous\":null},\"master_keys\":{"
		  "\"aaaaaaaaaaaaaaaa\":{\"records\":1,\"newest\":0,\"held\":null}},\"master\":null}");
	vc_status_release(&s);
}

#define MASTER(kek, at) "{\"kind\":\"master\",\"kek_id\":\"" kek "\",\"created_at\":\"" at "\"}"

/* The master record: the newest by created_at in either read order, kept
 * apart from the tenant counts; a tombstone drops it. */
static void the_master_record_names_the_newest_key_and_counts_as_no_tenant(void **state)
{
	(void)state;
	const char *order[2][2] = {{MASTER("aaaaaaaaaaaaaaaa", OLD_AT),
				    MASTER("bbbbbbbbbbbbbbbb", NEW_AT)},
				   {MASTER("bbbbbbbbbbbbbbbb", NEW_AT),
				    MASTER("aaaaaaaaaaaaaaaa", OLD_AT)}};
	for (int i = 0; i < 2; i++) {
		VcKeysStatus s = {0};
		take(&s, "master", order[i][0]);
		take(&s, "master", order[i][1]);
		status_is(&s, NULL, NULL,
			  "{\"topic\":\"vetpms.keys\",\"tenants\":0,\"records\":0,\"unnamed\":0,"
			  "\"held\":{\"current\":null,\"previous\":null},\"master_keys\":{},"
			  "\"master\":\"bbbbbbbbbbbbbbbb\"}");
		take(&s, "master", NULL);
		status_is(&s, NULL, NULL,
			  "{\"topic\":\"vetpms.keys\",\"tenants\":0,\"records\":0,\"unnamed\":0,"
			  "\"held\":{\"current\":null,\"previous\":null},\"master_keys\":{},"
			  "\"master\":null}");
		vc_status_release(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(superseded_records_count_until_compaction),
	    cmocka_unit_test(the_master_record_names_the_newest_key_and_counts_as_no_tenant),
	    cmocka_unit_test(keys_held_are_listed_with_nothing_under_them),
	    cmocka_unit_test(no_keys_held_and_an_empty_topic),
	    cmocka_unit_test(a_record_naming_no_master_key_is_unnamed_and_a_tombstone_ends_a_tenant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
