/* Unit tests of common/vp_keyrec_newer.c: which record of a key-record name
 * counts, read in either order (a keys topic written before
 * vp_keyrec_partition holds a name's records on two partitions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vp_keyrec_newer.h"

#define OLD_TENANT                                                                                 \
	"{\"kind\":\"tenant\",\"kek_id\":\"aaaa\",\"key_id\":\"k1\",\"wrapped\":\"w-old\","        \
	"\"created_at\":\"2026-01-01T00:00:00.000001Z\"}"
#define NEW_TENANT                                                                                 \
	"{\"kind\":\"tenant\",\"kek_id\":\"bbbb\",\"key_id\":\"k1\",\"wrapped\":\"w-new\","        \
	"\"created_at\":\"2026-11-30T12:00:00+01:00\"}"
#define UNDATED_TENANT "{\"kind\":\"tenant\",\"kek_id\":\"cccc\",\"wrapped\":\"w\"}"
#define BAD_DATE_TENANT                                                                            \
	"{\"kind\":\"tenant\",\"kek_id\":\"dddd\",\"wrapped\":\"w\","                              \
	"\"created_at\":\"yesterday\"}"
#define CLIENT_A                                                                                   \
	"{\"kind\":\"client\",\"kek_id\":\"k1\",\"key_id\":\"ca\",\"wrapped\":\"wa\","             \
	"\"created_at\":\"2026-11-30T00:00:00Z\"}"
#define CLIENT_B                                                                                   \
	"{\"kind\":\"client\",\"kek_id\":\"k1\",\"key_id\":\"cb\",\"wrapped\":\"wb\","             \
	"\"created_at\":\"2020-01-01T00:00:00Z\"}"
#define ERASED "{\"kind\":\"erased\",\"erased_at\":\"2026-11-30T10:00:00Z\"}"

static VpKeyrecRank rank(const char *value)
{
	return vp_keyrec_rank(value, value ? strlen(value) : 0);
}

/* The value that counts after reading a, then b (as a reader keeping one
 * value per name does: NULL a tombstone). */
static const char *after(const char *a, const char *b)
{
	VpKeyrecRank held = rank(a), next = rank(b);
	return vp_keyrec_supersedes(&held, &next) ? b : a;
}

static void the_newest_tenant_record_counts_in_either_order(void **state)
{
	(void)state;
	assert_string_equal(after(OLD_TENANT, NEW_TENANT), NEW_TENANT);
	assert_string_equal(after(NEW_TENANT, OLD_TENANT), NEW_TENANT);
	/* created_at with an offset: compared as instants */
	VpKeyrecRank r = rank(NEW_TENANT);
	assert_true(r.dated);
	assert_int_equal(r.state, VP_KEYREC_KEY);
	assert_int_equal(r.created_us, INT64_C(1796036400000000)); /* 11:00Z */
}

static void a_tenant_record_without_a_date_is_older_than_any(void **state)
{
	(void)state;
	const char *undated[] = {UNDATED_TENANT, BAD_DATE_TENANT};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rank(undated[i]).created_us, INT64_MIN);
		assert_string_equal(after(undated[i], OLD_TENANT), OLD_TENANT);
		assert_string_equal(after(OLD_TENANT, undated[i]), OLD_TENANT);
	}
	/* two without: the later read, as within one partition */
	assert_string_equal(after(UNDATED_TENANT, BAD_DATE_TENANT), BAD_DATE_TENANT);
	assert_string_equal(after(BAD_DATE_TENANT, UNDATED_TENANT), UNDATED_TENANT);
}

static void of_two_tenant_records_of_one_instant_the_later_read_counts(void **state)
{
	(void)state;
	const char *again = "{\"kind\":\"tenant\",\"kek_id\":\"eeee\",\"wrapped\":\"w2\","
			    "\"created_at\":\"2026-01-01T00:00:00.000001Z\"}";
	assert_string_equal(after(OLD_TENANT, again), again);
	assert_string_equal(after(again, OLD_TENANT), OLD_TENANT);
}

static void an_erasure_marker_counts_in_either_order(void **state)
{
	(void)state;
	assert_string_equal(after(CLIENT_A, ERASED), ERASED);
	assert_string_equal(after(ERASED, CLIENT_A), ERASED); /* a late copy of the key */
	assert_string_equal(after(ERASED, CLIENT_B), ERASED);
	assert_int_equal(rank(ERASED).state, VP_KEYREC_MARKER);
	assert_false(rank(ERASED).dated);
}

static void of_a_clients_key_records_the_later_read_counts(void **state)
{
	(void)state;
	/* client records are not ordered by created_at (only tenant records are) */
	assert_false(rank(CLIENT_A).dated);
	assert_string_equal(after(CLIENT_A, CLIENT_B), CLIENT_B);
	assert_string_equal(after(CLIENT_B, CLIENT_A), CLIENT_A);
}

static void a_tombstone_supersedes_any_record_and_any_record_follows_one(void **state)
{
	(void)state;
	const char *records[] = {OLD_TENANT, NEW_TENANT, UNDATED_TENANT, CLIENT_A, ERASED};
	for (size_t i = 0; i < sizeof(records) / sizeof(*records); i++) {
		assert_null(after(records[i], NULL));
		assert_string_equal(after(NULL, records[i]), records[i]);
	}
	assert_int_equal(rank(NULL).state, VP_KEYREC_NOTHING);
	/* nothing held: the first record counts */
	VpKeyrecRank none = {VP_KEYREC_NOTHING, false, INT64_MIN}, old = rank(OLD_TENANT);
	assert_true(vp_keyrec_supersedes(&none, &old));
}

static void a_value_that_is_not_json_is_an_undated_key(void **state)
{
	(void)state;
	VpKeyrecRank r = vp_keyrec_rank("{not json", 9);
	assert_int_equal(r.state, VP_KEYREC_KEY);
	assert_false(r.dated);
	/* a length shorter than the text: only that much is read */
	r = vp_keyrec_rank(ERASED "garbage", strlen(ERASED));
	assert_int_equal(r.state, VP_KEYREC_MARKER);
	assert_string_equal(after("{not json", ERASED), ERASED);
	assert_string_equal(after(ERASED, "{not json"), ERASED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_newest_tenant_record_counts_in_either_order),
	    cmocka_unit_test(a_tenant_record_without_a_date_is_older_than_any),
	    cmocka_unit_test(of_two_tenant_records_of_one_instant_the_later_read_counts),
	    cmocka_unit_test(an_erasure_marker_counts_in_either_order),
	    cmocka_unit_test(of_a_clients_key_records_the_later_read_counts),
	    cmocka_unit_test(a_tombstone_supersedes_any_record_and_any_record_follows_one),
	    cmocka_unit_test(a_value_that_is_not_json_is_an_undated_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
