/* Medical record decisions on a write model built by the writer's own evolve
 * function: opening (types, deceased patients, appointments, visit_date in
 * the tenant's zone), vitals ranges and the weight's second event, the SOAP
 * merge and the nurse's limits, one primary diagnosis, treatments' states,
 * prescriptions, signing, locking (signed, and by time), addenda; every
 * event checked against the catalog, every refusal leaving the model as it
 * was. Also the TZif offset against the C library's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "decide.h"
#include "state.h"
#include "vp_catalog.h"
#include "wr_harness.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define TENANT  "01a20807-0000-7000-8000-000000000001"
#define CLIENT  "01a20807-0000-7000-8000-000000000002"
#define VET     "01a20807-0000-7000-8000-0000000000a1"
#define PAT     "01a20807-0000-7000-8000-0000000000b1"
#define PAT2    "01a20807-0000-7000-8000-0000000000b2"
#define DEAD    "01a20807-0000-7000-8000-0000000000b3"
#define APPT    "01a20807-0000-7000-8000-0000000000c1"
#define APPT2   "01a20807-0000-7000-8000-0000000000c2"
#define REC     "01a20807-0000-7000-8000-0000000000d1"
#define REC2    "01a20807-0000-7000-8000-0000000000d2"
#define NOPE    "01a20807-0000-7000-8000-0000000000ff"
#define HOUR    (3600 * VP_US_PER_SEC)
/* 2026-11-24T23:33:20Z: already the 25th in Pacific/Auckland (UTC+13) */
#define BASE_NOW 1795563200000000LL

static const WrRecord *record(Fixture *f, const char *id)
{
	return wr_map_get(&wr_state_tenant(&f->state, TENANT)->records, id);
}

static int setup(void **state)
{
	Fixture *f = fixture_new(TENANT);
	f->now = BASE_NOW - 48 * HOUR;
	f->roles = VP_ROLE_PLATFORM_ADMIN | VP_ROLE_ADMIN | VP_ROLE_VET;
	ok(f, "ProvisionTenant", TENANT,
	   "{\"name\":\"C\",\"timezone\":\"Pacific/Auckland\",\"currency\":\"NZD\"}");
	ok(f, "RegisterClient", CLIENT, "{\"first_name\":\"A\",\"last_name\":\"B\"}");
	ok(f, "RegisterStaff", VET, "{\"name\":\"V\",\"role\":\"veterinarian\"}");
	const char *pat = "{\"client_id\":\"" CLIENT "\",\"name\":\"P\",\"species\":\"canine\","
			  "\"sex\":\"male\"}";
	ok(f, "RegisterPatient", PAT, pat);
	ok(f, "RegisterPatient", PAT2, pat);
	ok(f, "RegisterPatient", DEAD, pat);
	ok(f, "RecordPatientDeath", DEAD, "{\"date\":\"2026-11-20\"}");
	ok(f, "ScheduleAppointment", APPT,
	   "{\"patient_id\":\"" PAT "\",\"vet_id\":\"" VET "\",\"start\":\"2026-11-23T09:00:00Z\","
	   "\"end\":\"2026-11-23T09:30:00Z\",\"type\":\"consultation\"}");
	ok(f, "ScheduleAppointment", APPT2,
	   "{\"patient_id\":\"" PAT2 "\",\"vet_id\":\"" VET "\",\"start\":\"2026-11-23T10:00:00Z\","
	   "\"end\":\"2026-11-23T10:30:00Z\",\"type\":\"consultation\"}");
	f->now = BASE_NOW;
	f->roles = VP_ROLE_VET;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	*state = fixture_free(*state);
	return 0;
}

static void open_rec(Fixture *f, const char *id)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"patient_id\":\"%s\",\"record_type\":\"consultation\"}",
		 PAT);
	ok(f, "OpenMedicalRecord", id, body);
}

static void opening_rules(void **state)
{
	Fixture *f = *state;
	refused(f, "OpenMedicalRecord", REC, "{\"patient_id\":\"" PAT "\",\"record_type\":\"x\"}",
		400, "VALIDATION_ERROR");
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" NOPE "\",\"record_type\":\"surgery\"}", 404, "NOT_FOUND");
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" DEAD "\",\"record_type\":\"consultation\"}", 409,
		"PATIENT_INACTIVE");
	/* an appointment of another patient, or none: 400 on appointment_id */
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" PAT "\",\"appointment_id\":\"" APPT2
		"\",\"record_type\":\"surgery\"}",
		400, "VALIDATION_ERROR");
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" PAT "\",\"appointment_id\":\"" NOPE
		"\",\"record_type\":\"surgery\"}",
		400, "VALIDATION_ERROR");
	/* the 26th is future in Auckland; the 25th is its today though UTC's is the 24th */
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" PAT "\",\"record_type\":\"surgery\",\"visit_date\":\"2026-11-26\"}",
		400, "VALIDATION_ERROR");
	ok(f, "OpenMedicalRecord", REC,
	   "{\"patient_id\":\"" PAT "\",\"appointment_id\":\"" APPT "\",\"record_type\":\"surgery\","
	   "\"visit_date\":\"2026-11-25\"}");
	assert_string_equal(last_str(f, 0, "visit_date"), "2026-11-25");
	refused(f, "OpenMedicalRecord", REC2,
		"{\"patient_id\":\"" PAT "\",\"appointment_id\":\"" APPT
		"\",\"record_type\":\"surgery\"}",
		409, "ALREADY_EXISTS");
	refused(f, "OpenMedicalRecord", REC,
		"{\"patient_id\":\"" PAT "\",\"record_type\":\"surgery\"}", 409, "ALREADY_EXISTS");
	/* the default visit_date is the tenant-local date of opening */
	ok(f, "OpenMedicalRecord", REC2, "{\"patient_id\":\"" DEAD "\",\"record_type\":\"necropsy\"}");
	assert_string_equal(last_str(f, 0, "visit_date"), "2026-11-25");
	assert_null(last_str(f, 0, "appointment_id"));
	assert_int_equal(record(f, REC2)->version, 1);
}

static void vitals_ranges_and_the_weight_event(void **state)
{
	Fixture *f = *state;
	open_rec(f, REC);
	refused(f, "RecordVitals", REC, "{}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"temperature_c\":38.55}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"temperature_c\":45.1}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"temperature_c\":24.9}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"pulse_bpm\":0}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"respiration_rpm\":201}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"systolic_mmhg\":120}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"systolic_mmhg\":80,\"diastolic_mmhg\":80}", 400,
		"VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"body_condition_score\":10}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"pain_score\":11}", 400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", REC, "{\"pain_score\":1,\"recorded_at\":\"2027-01-01T00:00:00Z\"}",
		400, "VALIDATION_ERROR");
	refused(f, "RecordVitals", NOPE, "{\"pain_score\":1}", 404, "NOT_FOUND");
	ok(f, "RecordVitals", REC,
	   "{\"temperature_c\":38.5,\"systolic_mmhg\":120,\"diastolic_mmhg\":80,\"pain_score\":0}");
	assert_int_equal(f->n_last, 1);
	assert_int_equal((int)last_num(f, 0, "temperature_dc"), 385);
	const WrPatient *p = wr_map_get(&wr_state_tenant(&f->state, TENANT)->patients, PAT);
	int64_t patient_version = p->version;
	ok(f, "RecordVitals", REC, "{\"weight\":{\"value\":12.5,\"unit\":\"kg\"},\"pulse_bpm\":90}");
	assert_int_equal(f->n_last, 2);
	assert_string_equal(f->last_types[0], "VitalsRecorded");
	assert_string_equal(f->last_types[1], "WeightRecorded");
	assert_int_equal((int)last_num(f, 0, "weight_g"), 12500);
	assert_int_equal((int)last_num(f, 1, "weight_g"), 12500);
	assert_string_equal(last_str(f, 0, "recorded_at"), last_str(f, 1, "measured_at"));
	assert_int_equal(p->version, patient_version + 1);
	assert_int_equal(record(f, REC)->version, 3);
}

static void soap_merge_and_the_nurses_limits(void **state)
{
	Fixture *f = *state;
	open_rec(f, REC);
	refused(f, "WriteSoapNote", REC, "{}", 400, "VALIDATION_ERROR");
	f->roles = VP_ROLE_NURSE;
	refused(f, "WriteSoapNote", REC, "{\"subjective\":\"s\",\"assessment\":\"a\"}", 403,
		"FORBIDDEN");
	refused(f, "WriteSoapNote", REC, "{\"plan\":null}", 403, "FORBIDDEN");
	ok(f, "WriteSoapNote", REC, "{\"subjective\":\"s\",\"objective\":\"o\"}");
	assert_false(record(f, REC)->has_assessment);
	f->roles = VP_ROLE_VET;
	ok(f, "WriteSoapNote", REC, "{\"assessment\":\"otitis\"}");
	assert_int_equal(cJSON_GetArraySize(f->last[0]), 1); /* only what was sent */
	assert_true(record(f, REC)->has_assessment);
	ok(f, "WriteSoapNote", REC, "{\"assessment\":null,\"plan\":\"p\"}");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(f->last[0], "assessment")));
	assert_false(record(f, REC)->has_assessment);
	char *big = malloc(VP_MAX_SOAP_TEXT + 64);
	assert_non_null(big);
	memcpy(big, "{\"plan\":\"", 9);
	memset(big + 9, 'x', VP_MAX_SOAP_TEXT + 1);
	memcpy(big + 9 + VP_MAX_SOAP_TEXT + 1, "\"}", 3);
	refused(f, "WriteSoapNote", REC, big, 400, "VALIDATION_ERROR");
	free(big);
}

static void one_primary_and_retraction(void **state)
{
	Fixture *f = *state;
	open_rec(f, REC);
	refused(f, "AddDiagnosis", REC, "{\"name\":\"x\",\"status\":\"maybe\"}", 400,
		"VALIDATION_ERROR");
	ok(f, "AddDiagnosis", REC, "{\"name\":\"Otitis\",\"code\":\"V123\",\"primary\":true}");
	assert_string_equal(last_str(f, 0, "status"), "confirmed");
	char first[37];
	snprintf(first, sizeof(first), "%s", last_str(f, 0, "diagnosis_id"));
	ok(f, "AddDiagnosis", REC, "{\"name\":\"Dermatitis\",\"primary\":true,\"status\":\"presumptive\"}");
	const WrRecord *r = record(f, REC);
	assert_int_equal(r->n_diagnoses, 2);
	assert_false(r->diagnoses[0].primary);
	assert_true(r->diagnoses[1].primary);
	refused_item(f, "RetractDiagnosis", REC, NOPE, "{\"reason\":\"r\"}", 404, "NOT_FOUND");
	refused_item(f, "RetractDiagnosis", REC, first, "{}", 400, "VALIDATION_ERROR");
	ok_item(f, "RetractDiagnosis", REC, first, "{\"reason\":\"wrong\"}");
	refused_item(f, "RetractDiagnosis", REC, first, "{\"reason\":\"again\"}", 409,
		     "INVALID_STATE");
}

static void treatments_move_only_from_planned(void **state)
{
	Fixture *f = *state;
	char planned[37], done[37];
	open_rec(f, REC);
	refused(f, "AddTreatment", REC,
		"{\"name\":\"x\",\"treatment_type\":\"procedure\",\"next_due_on\":\"2027-01-01\"}",
		400, "VALIDATION_ERROR");
	ok(f, "AddTreatment", REC,
	   "{\"name\":\"Rabies\",\"treatment_type\":\"vaccination\",\"next_due_on\":\"2027-11-24\"}");
	snprintf(planned, sizeof(planned), "%s", last_str(f, 0, "treatment_id"));
	ok(f, "AddTreatment", REC,
	   "{\"name\":\"Clean\",\"treatment_type\":\"procedure\","
	   "\"performed_at\":\"2026-11-24T20:00:00+01:00\"}");
	snprintf(done, sizeof(done), "%s", last_str(f, 0, "treatment_id"));
	assert_string_equal(last_str(f, 0, "performed_at"), "2026-11-24T19:00:00Z");
	refused_item(f, "PerformTreatment", REC, done, "{}", 409, "INVALID_STATE");
	refused_item(f, "CancelTreatment", REC, done, "{\"reason\":\"r\"}", 409, "INVALID_STATE");
	refused_item(f, "PerformTreatment", REC, NOPE, "{}", 404, "NOT_FOUND");
	ok_item(f, "PerformTreatment", REC, planned, "{}");
	refused_item(f, "CancelTreatment", REC, planned, "{\"reason\":\"r\"}", 409,
		     "INVALID_STATE");
}

static void prescriptions(void **state)
{
	Fixture *f = *state;
	open_rec(f, REC);
	const char *base = "\"medication\":\"Amoxicillin\",\"dosage\":\"250 mg\","
			   "\"frequency\":\"bid\",\"route\":\"oral\"";
	char body[512];
	snprintf(body, sizeof(body), "{%s,\"route\":\"nasal\"}", base);
	refused(f, "PrescribeMedication", REC, "{\"medication\":\"A\",\"dosage\":\"1\","
		"\"frequency\":\"bid\",\"route\":\"nasal\"}", 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"duration_days\":366}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"quantity\":1.0005}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"quantity\":0}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"refills\":13}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" NOPE "\"}", base);
	refused(f, "PrescribeMedication", REC, body, 400, "VALIDATION_ERROR");
	snprintf(body, sizeof(body), "{%s,\"item_id\":\"" NOPE "\",\"quantity\":2}", base);
	refused(f, "PrescribeMedication", REC, body, 404, "NOT_FOUND");
	snprintf(body, sizeof(body), "{%s,\"quantity\":14.125,\"duration_days\":7}", base);
	ok(f, "PrescribeMedication", REC, body);
	assert_int_equal((long long)last_num(f, 0, "quantity_milli"), 14125);
	assert_int_equal((int)last_num(f, 0, "refills"), 0);
}

static void signing_locks_the_record(void **state)
{
	Fixture *f = *state;
	open_rec(f, REC);
	refused(f, "SignMedicalRecord", REC, "{}", 409, "RECORD_INCOMPLETE");
	refused(f, "AddAddendum", REC, "{\"text\":\"t\"}", 409, "INVALID_STATE");
	ok(f, "AddDiagnosis", REC, "{\"name\":\"Otitis\"}");
	char dx[37];
	snprintf(dx, sizeof(dx), "%s", last_str(f, 0, "diagnosis_id"));
	ok_item(f, "RetractDiagnosis", REC, dx, "{\"reason\":\"no\"}");
	refused(f, "SignMedicalRecord", REC, "{}", 409, "RECORD_INCOMPLETE");
	ok(f, "WriteSoapNote", REC, "{\"assessment\":\"healthy\"}");
	VpError err;
	assert_int_equal(run_item(f, "SignMedicalRecord", REC, NULL, "{}", 2, &err), -1);
	assert_int_equal(err.status, 412);
	ok(f, "SignMedicalRecord", REC, "{}");
	refused(f, "SignMedicalRecord", REC, "{}", 409, "INVALID_STATE");
	refused(f, "RecordVitals", REC, "{\"pulse_bpm\":80}", 409, "RECORD_LOCKED");
	refused(f, "WriteSoapNote", REC, "{\"plan\":\"p\"}", 409, "RECORD_LOCKED");
	refused(f, "AddDiagnosis", REC, "{\"name\":\"x\"}", 409, "RECORD_LOCKED");
	refused(f, "AddTreatment", REC, "{\"name\":\"x\",\"treatment_type\":\"other\"}", 409,
		"RECORD_LOCKED");
	refused(f, "PrescribeMedication", REC,
		"{\"medication\":\"A\",\"dosage\":\"1\",\"frequency\":\"bid\",\"route\":\"oral\"}",
		409, "RECORD_LOCKED");
	ok(f, "AddAddendum", REC, "{\"text\":\"late lab result\"}");
	refused(f, "AddAddendum", REC, "{\"text\":\"\"}", 400, "VALIDATION_ERROR");
	f->roles = VP_ROLE_NURSE;
	refused(f, "WriteSoapNote", REC, "{\"subjective\":\"s\"}", 409, "RECORD_LOCKED");
}

static void the_tenant_period_locks_by_time(void **state)
{
	Fixture *f = *state;
	f->roles = VP_ROLE_ADMIN;
	refused(f, "ChangeTenantSettings", TENANT, "{\"record_lock_hours\":8761}", 400,
		"VALIDATION_ERROR");
	refused(f, "ChangeTenantSettings", NOPE, "{\"record_lock_hours\":1}", 404, "NOT_FOUND");
	ok(f, "ChangeTenantSettings", TENANT, "{\"record_lock_hours\":2}");
	assert_int_equal(wr_state_tenant(&f->state, TENANT)->record_lock_hours, 2);
	f->roles = VP_ROLE_VET;
	open_rec(f, REC);
	f->now += 2 * HOUR; /* exactly at the bound: still open */
	ok(f, "RecordVitals", REC, "{\"pulse_bpm\":80}");
	refused(f, "AddAddendum", REC, "{\"text\":\"t\"}", 409, "INVALID_STATE");
	f->now += 1;
	refused(f, "RecordVitals", REC, "{\"pulse_bpm\":80}", 409, "RECORD_LOCKED");
	refused(f, "WriteSoapNote", REC, "{\"assessment\":\"a\"}", 409, "RECORD_LOCKED");
	refused(f, "SignMedicalRecord", REC, "{}", 409, "RECORD_LOCKED");
	ok(f, "AddAddendum", REC, "{\"text\":\"after the period\"}");
	/* 0 turns the period off: the record opens up again */
	f->roles = VP_ROLE_ADMIN;
	ok(f, "ChangeTenantSettings", TENANT, "{\"record_lock_hours\":0}");
	f->roles = VP_ROLE_VET;
	ok(f, "RecordVitals", REC, "{\"pulse_bpm\":81}");
}

/* The TZif reader agrees with the C library's localtime_r for a few zones
 * and instants around their transitions. */
static void tzif_offsets_match_the_c_library(void **state)
{
	(void)state;
	const char *zones[] = {"Europe/London", "America/New_York", "Pacific/Auckland",
			       "Asia/Kolkata", "UTC", "Australia/Lord_Howe", "America/St_Johns"};
	const int64_t instants[] = {0, 1711846799, 1711846800, 1730000000, 1795995200,
				    2000000000, -1000000000};
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		setenv("TZ", zones[z], 1);
		tzset();
		for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
			time_t t = (time_t)instants[i];
			struct tm tm;
			int32_t offset = -1;
			assert_non_null(localtime_r(&t, &tm));
			assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, zones[z],
							  instants[i] * VP_US_PER_SEC, &offset),
					 0);
			if (offset != tm.tm_gmtoff)
				fail_msg("%s at %lld: %d, libc %ld", zones[z], (long long)instants[i],
					 offset, tm.tm_gmtoff);
		}
	}
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	free(saved);
	tzset();
	assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, "Not/AZone", 0, &(int32_t){0}), -1);
}

/* Each zone's file is read once however often it is asked (issue 14), and
 * the cached transitions give the answers the first read did. */
static void zone_file_is_read_once(void **state)
{
	(void)state;
	int32_t first = 0, again = 0;
	assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, "Europe/Paris", 1711846800 * VP_US_PER_SEC,
					  &first),
			 0);
	uint64_t loads = wr_tz_cache_loads();
	for (int i = 0; i < 100000; i++) {
		int64_t at_us = (1700000000 + (int64_t)i * 997) * VP_US_PER_SEC;
		int32_t date = wr_local_date(WR_ZONEINFO_DIR, "Europe/Paris", at_us);
		assert_true(date >= vp_date_from_us(at_us) - 1 && date <= vp_date_from_us(at_us) + 1);
	}
	assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, "Europe/Paris", 1711846800 * VP_US_PER_SEC,
					  &again),
			 0);
	assert_int_equal(again, first);
	assert_int_equal(first, 7200); /* CEST from 2024-03-31 01:00 UTC */
	assert_int_equal(wr_tz_cache_loads(), loads);
	/* an unknown zone is never cached as known */
	for (int i = 0; i < 3; i++)
		assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, "Not/AZone", 0, &(int32_t){0}), -1);
	assert_int_equal(wr_tz_cache_loads(), loads);
	/* more zones than the cache holds: still right, the oldest read again */
	const char *zones[] = {"UTC", "Asia/Tokyo", "Asia/Kolkata", "America/New_York",
			       "Europe/London", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
			       "Asia/Dubai", "Asia/Singapore", "Australia/Sydney",
			       "Pacific/Auckland", "America/Chicago", "America/Denver",
			       "America/Los_Angeles", "America/Sao_Paulo", "Africa/Lagos",
			       "Asia/Kathmandu"};
	uint64_t loads_before_round = 0;
	for (int round = 0; round < 2; round++) {
		loads_before_round = wr_tz_cache_loads();
		for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
			int32_t offset = -1;
			assert_int_equal(wr_tz_utc_offset(WR_ZONEINFO_DIR, zones[z],
							  1700000000 * VP_US_PER_SEC, &offset),
					 0);
			if (strcmp(zones[z], "Asia/Kathmandu") == 0)
				assert_int_equal(offset, 20700);
			if (strcmp(zones[z], "Asia/Tokyo") == 0)
				assert_int_equal(offset, 32400);
		}
	}
	/* 18 zones do not fit in 16 entries: the second round reads some again */
	assert_true(wr_tz_cache_loads() > loads_before_round);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(opening_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(vitals_ranges_and_the_weight_event, setup, teardown),
		cmocka_unit_test_setup_teardown(soap_merge_and_the_nurses_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(one_primary_and_retraction, setup, teardown),
		cmocka_unit_test_setup_teardown(treatments_move_only_from_planned, setup, teardown),
		cmocka_unit_test_setup_teardown(prescriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(signing_locks_the_record, setup, teardown),
		cmocka_unit_test_setup_teardown(the_tenant_period_locks_by_time, setup, teardown),
		cmocka_unit_test(tzif_offsets_match_the_c_library),
		cmocka_unit_test(zone_file_is_read_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
