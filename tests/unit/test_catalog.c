/* Unit tests of common/vp_catalog.c: the check every event passes before the
 * writer appends it and after the projector reads it. Each refusal below is a
 * record that would have poisoned the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vp_catalog.h"

#define TENANT "0193a5c2-7b1e-7000-8000-000000000001"
#define CLIENT "0193a5c2-7b1e-7000-8000-000000000002"
#define PATIENT "0193a5c2-7b1e-7000-8000-000000000003"

/* An envelope text around a data object, the way the writer prints it. */
static char *envelope(const char *type, const char *aggregate, const char *actor,
		      const char *data)
{
	size_t cap = strlen(data) + strlen(actor) + 512;
	char *text = malloc(cap);
	assert_non_null(text);
	snprintf(text, cap,
		 "{\"id\":\"0193a5c2-7b1e-7000-8000-0000000000aa\",\"type\":\"%s\",\"v\":1,"
		 "\"tenant_id\":\"" TENANT "\",\"aggregate\":\"%s\",\"aggregate_id\":\"" PATIENT
		 "\",\"seq\":2,\"command_id\":\"c-1\",\"actor\":\"%s\","
		 "\"at\":\"2026-11-30T10:00:00.000000Z\",\"data\":%s}",
		 type, aggregate, actor, data);
	return text;
}

/* 0 or -1 from vp_catalog_check_encoded; why (when wanted) gets the reason. */
static int check(const char *type, const char *aggregate, const char *actor, const char *data,
		 char *why, size_t cap)
{
	char scratch[256];
	char *text = envelope(type, aggregate, actor, data);
	int rc = vp_catalog_check_encoded(text, strlen(text), why ? why : scratch,
					  why ? cap : sizeof(scratch));
	free(text);
	return rc;
}

static void good_events_pass(void **state)
{
	(void)state;
	assert_int_equal(check(VP_EV_WEIGHT_RECORDED, VP_AGG_PATIENT, "vet-1",
			       "{\"weight_g\":12500,\"measured_at\":\"2026-11-30T09:00:00Z\"}", NULL,
			       0),
			 0);
	assert_int_equal(check(VP_EV_PATIENT_TRANSFERRED, VP_AGG_PATIENT, "rec\xc3\xa9",
			       "{\"from_client_id\":\"" CLIENT "\",\"to_client_id\":\"" CLIENT "\"}",
			       NULL, 0),
			 0);
	assert_int_equal(check(VP_EV_APPOINTMENT_NO_SHOW, VP_AGG_APPOINTMENT, "a", "{}", NULL, 0),
			 0);
	assert_int_equal(check(VP_EV_AVAILABILITY_PUBLISHED, VP_AGG_STAFF, "a",
			       "{\"blocks\":[{\"start\":\"2026-12-01T09:00:00Z\","
			       "\"end\":\"2026-12-01T12:00:00Z\"}]}",
			       NULL, 0),
			 0);
}

static void refusals_name_what_is_wrong(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(check("PatientAdopted", VP_AGG_PATIENT, "a", "{}", why, sizeof(why)), -1);
	assert_string_equal(why, "unknown event type PatientAdopted");
	assert_int_equal(check(VP_EV_PATIENT_DIED, VP_AGG_CLIENT, "a", "{\"date\":\"2026-01-01\"}",
			       why, sizeof(why)),
			 -1);
	assert_string_equal(why, "PatientDied belongs to aggregate patient, not client");
	assert_int_equal(check(VP_EV_WEIGHT_RECORDED, VP_AGG_PATIENT, "a",
			       "{\"weight_g\":1,\"measured_at\":\"0000-12-31T23:59:00Z\"}", why,
			       sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "data.measured_at"));
	assert_int_equal(check(VP_EV_WEIGHT_RECORDED, VP_AGG_PATIENT, "a",
			       "{\"weight_g\":1,\"measured_at\":\"\"}", why, sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "data.measured_at"));
	assert_int_equal(check(VP_EV_APPOINTMENT_NO_SHOW, VP_AGG_APPOINTMENT, "a",
			       "{\"extra\":1}", why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.extra is not a known field");
}

/* vp_json_check accepts upper-case UUIDs (commands may send them); the log
 * must hold only the canonical form, which the writer's model is keyed by. */
static void upper_case_ids_in_data_are_refused(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(check(VP_EV_PATIENT_TRANSFERRED, VP_AGG_PATIENT, "a",
			       "{\"from_client_id\":\"" CLIENT "\",\"to_client_id\":"
			       "\"0193A5C2-7B1E-7000-8000-000000000002\"}",
			       why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.to_client_id must be a lower-case UUID");
	assert_int_equal(check(VP_EV_APPOINTMENT_SCHEDULED, VP_AGG_APPOINTMENT, "a",
			       "{\"patient_id\":\"0193A5C2-7B1E-7000-8000-000000000003\","
			       "\"vet_id\":\"" CLIENT "\",\"start\":\"2026-12-01T09:00:00Z\","
			       "\"end\":\"2026-12-01T09:30:00Z\",\"type\":\"dental\",\"reason\":null}",
			       why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.patient_id must be a lower-case UUID");
}

static void stored_envelope_text_is_clean(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(check(VP_EV_PATIENT_DIED, VP_AGG_PATIENT, "a\\u0001b",
			       "{\"date\":\"2026-01-01\"}", why, sizeof(why)),
			 -1);
	assert_string_equal(why, "envelope: actor must not hold control characters");
	/* Raw bytes that are not UTF-8 never pass the strict parse. */
	assert_int_equal(check(VP_EV_PATIENT_DIED, VP_AGG_PATIENT, "\xff\xfe",
			       "{\"date\":\"2026-01-01\"}", why, sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "invalid UTF-8"));
}

#define LINE(net, disc, tax, total)                                                          \
	"{\"line_id\":\"" CLIENT "\",\"description\":\"Spay\",\"quantity_milli\":1500,"      \
	"\"unit_price_cents\":333,\"discount_bp\":1000,\"tax_rate_bp\":2000,"                  \
	"\"net_cents\":" net ",\"discount_cents\":" disc ",\"tax_cents\":" tax                 \
	",\"line_total_cents\":" total ",\"item_id\":null}"

/* A line's amounts are checked against the arithmetic: a writer bug that
 * miscounts a cent never reaches the log. 1.5 x 333 = 499.5 -> 500 (even);
 * 10 % of 500 = 50; 20 % of 450 = 90; 540. */
static void line_amounts_follow_the_arithmetic(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(check(VP_EV_INVOICE_LINE_ADDED, VP_AGG_INVOICE, "a",
			       LINE("500", "50", "90", "540"), why, sizeof(why)),
			 0);
	assert_int_equal(check(VP_EV_INVOICE_LINE_ADDED, VP_AGG_INVOICE, "a",
			       LINE("499", "50", "90", "539"), why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.net_cents must be 500 (quantity, price and rates)");
	assert_int_equal(check(VP_EV_INVOICE_LINE_ADDED, VP_AGG_INVOICE, "a",
			       LINE("500", "50", "90", "541"), why, sizeof(why)),
			 -1);
	assert_string_equal(why,
			    "data.line_total_cents must be 540 (quantity, price and rates)");
}

static void invoice_numbers_and_dates_are_checked(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(check(VP_EV_INVOICE_ISSUED, VP_AGG_INVOICE, "a",
			       "{\"number\":\"INV-000042\",\"issued_on\":\"2026-11-30\","
			       "\"due_on\":\"2026-12-30\",\"total_cents\":100}",
			       why, sizeof(why)),
			 0);
	assert_int_equal(check(VP_EV_INVOICE_ISSUED, VP_AGG_INVOICE, "a",
			       "{\"number\":\"INV-42\",\"issued_on\":\"2026-11-30\","
			       "\"due_on\":\"2026-12-30\",\"total_cents\":100}",
			       why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.number must be INV- and at least six digits");
	assert_int_equal(check(VP_EV_INVOICE_ISSUED, VP_AGG_INVOICE, "a",
			       "{\"number\":\"INV-000042\",\"issued_on\":\"2026-11-30\","
			       "\"due_on\":\"2026-11-29\",\"total_cents\":100}",
			       why, sizeof(why)),
			 -1);
	assert_string_equal(why, "data.due_on must not be before data.issued_on");
}

static void versions_and_names_are_unique(void **state)
{
	(void)state;
	for (size_t i = 0; i < vp_catalog_len; i++) {
		assert_ptr_equal(vp_catalog_find(vp_catalog[i].type, vp_catalog[i].v),
				 &vp_catalog[i]);
		assert_true(vp_catalog[i].specified || vp_catalog[i].n_fields == 0);
	}
	assert_null(vp_catalog_find(VP_EV_PATIENT_DIED, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_events_pass),
		cmocka_unit_test(refusals_name_what_is_wrong),
		cmocka_unit_test(upper_case_ids_in_data_are_refused),
		cmocka_unit_test(stored_envelope_text_is_clean),
		cmocka_unit_test(line_amounts_follow_the_arithmetic),
		cmocka_unit_test(invoice_numbers_and_dates_are_checked),
		cmocka_unit_test(versions_and_names_are_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
