/* Scheduling decisions on a write model built by the writer's own evolve
 * function: input rules, vet and patient checks, half-open overlap for the vet
 * and the patient, availability blocks (publish, containment, withdraw), the
 * appointment status machine, reschedule excluding itself, and a model rebuilt
 * from the produced events equal to the live one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "decide.h"
#include "wr_harness.h"
#include "state.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define TENANT   "01a20807-0000-7000-8000-000000000001"
#define CLIENT   "01a20807-0000-7000-8000-000000000002"
#define CLIENT2  "01a20807-0000-7000-8000-000000000003"
#define VET      "01a20807-0000-7000-8000-0000000000a1"
#define VET2     "01a20807-0000-7000-8000-0000000000a2"
#define NURSE    "01a20807-0000-7000-8000-0000000000a3"
#define PAT      "01a20807-0000-7000-8000-0000000000b1"
#define PAT2     "01a20807-0000-7000-8000-0000000000b2"
#define PAT3     "01a20807-0000-7000-8000-0000000000b3"
#define HOUR     (3600 * VP_US_PER_SEC)
#define MIN      (60 * VP_US_PER_SEC)
#define BASE_NOW 1795400000000000LL /* 2026-11-24 */

/* An event of f->log into s, as a rebuild reads it from the log. */
static void replay(Fixture *f, WrState *s, const cJSON *rec)
{
	static int n;
	wr_test_apply(s, f->tenant_id, cJSON_GetObjectItem(rec, "aggregate")->valuestring,
		      cJSON_GetObjectItem(rec, "aggregate_id")->valuestring,
		      cJSON_GetObjectItem(rec, "type")->valuestring,
		      (int64_t)cJSON_GetObjectItem(rec, "seq")->valuedouble,
		      cJSON_GetObjectItem(rec, "data"),
		      (int64_t)cJSON_GetObjectItem(rec, "at_us")->valuedouble, n++);
}

/* run_item with the decided event's data, the caller's to free, in data_out. */
static int run(Fixture *f, const char *name, const char *target, const char *body_json,
	       int64_t if_match, VpError *err, cJSON **data_out)
{
	int rc = run_item(f, name, target, NULL, body_json, if_match, err);
	if (rc == 0 && data_out)
		*data_out = cJSON_Duplicate(f->last[0], true);
	return rc;
}

/* An RFC 3339 instant `minutes` after BASE_NOW, in a static ring of buffers. */
static const char *at(int64_t minutes)
{
	static char ring[8][VP_TIME_RFC3339_MAX];
	static int next;
	char *buf = ring[next++ % 8];
	vp_time_format_rfc3339(BASE_NOW + minutes * MIN, buf, VP_TIME_RFC3339_MAX);
	return buf;
}

static char body_buf[1024];

static const char *appt(const char *patient, const char *vet, int64_t from_min, int64_t to_min)
{
	snprintf(body_buf, sizeof(body_buf),
		 "{\"patient_id\":\"%s\",\"vet_id\":\"%s\",\"start\":\"%s\",\"end\":\"%s\","
		 "\"type\":\"consultation\"}",
		 patient, vet, at(from_min), at(to_min));
	return body_buf;
}

static const char *span(int64_t from_min, int64_t to_min)
{
	snprintf(body_buf, sizeof(body_buf), "{\"start\":\"%s\",\"end\":\"%s\"}", at(from_min),
		 at(to_min));
	return body_buf;
}

static const char *blocks(int64_t a, int64_t b, int64_t c, int64_t d)
{
	snprintf(body_buf, sizeof(body_buf),
		 "{\"blocks\":[{\"start\":\"%s\",\"end\":\"%s\"},{\"start\":\"%s\",\"end\":\"%s\"}]}",
		 at(a), at(b), at(c), at(d));
	return body_buf;
}

static const char *appt_id(int n)
{
	static char ring[4][37];
	static int next;
	char *buf = ring[next++ % 4];
	snprintf(buf, 37, "01a20807-0000-7000-8000-%012d", 1000 + n);
	return buf;
}

static int setup(void **state)
{
	Fixture *f = fixture_new(TENANT);
	f->now = BASE_NOW;
	f->actor = "admin-user";
	f->roles = VP_ROLE_ADMIN | VP_ROLE_PLATFORM_ADMIN;
	f->log = cJSON_CreateArray();
	ok(f, "ProvisionTenant", TENANT, "{\"name\":\"A\",\"timezone\":\"UTC\",\"currency\":\"EUR\"}");
	ok(f, "RegisterClient", CLIENT, "{\"first_name\":\"A\",\"last_name\":\"B\"}");
	ok(f, "RegisterClient", CLIENT2, "{\"first_name\":\"C\",\"last_name\":\"D\"}");
	ok(f, "RegisterStaff", VET, "{\"name\":\"Dr A\",\"role\":\"veterinarian\"}");
	ok(f, "RegisterStaff", VET2, "{\"name\":\"Dr B\",\"role\":\"veterinarian\"}");
	ok(f, "RegisterStaff", NURSE, "{\"name\":\"N\",\"role\":\"nurse\"}");
	const char *pets[][2] = {{PAT, CLIENT}, {PAT2, CLIENT}, {PAT3, CLIENT2}};
	for (int i = 0; i < 3; i++) {
		char body[256];
		snprintf(body, sizeof(body),
			 "{\"client_id\":\"%s\",\"name\":\"Rex\",\"species\":\"canine\","
			 "\"sex\":\"male\"}",
			 pets[i][1]);
		ok(f, "RegisterPatient", pets[i][0], body);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	*state = fixture_free(*state);
	return 0;
}

static const WrStaff *staff(Fixture *f, const char *id)
{
	return wr_map_get(&wr_state_tenant(&f->state, TENANT)->staff, id);
}

static void half_open_overlap_for_vet_and_patient(void **state)
{
	Fixture *f = *state;
	cJSON *data = NULL;
	VpError err;
	assert_int_equal(run(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET, 60, 90), -1, &err,
			     &data),
			 0);
	assert_string_equal(cJSON_GetObjectItem(data, "start")->valuestring, at(60));
	assert_string_equal(cJSON_GetObjectItem(data, "vet_id")->valuestring, VET);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(data, "reason")));
	cJSON_Delete(data);
	/* [60, 90) and [90, 120) touch: both allowed, as is [30, 60) */
	ok(f, "ScheduleAppointment", appt_id(2), appt(PAT2, VET, 90, 120));
	ok(f, "ScheduleAppointment", appt_id(3), appt(PAT3, VET, 30, 60));
	refused(f, "ScheduleAppointment", appt_id(4), appt(PAT3, VET, 89, 91), 409,
		"SLOT_UNAVAILABLE");
	/* the patient is busy too, whichever vet */
	refused(f, "ScheduleAppointment", appt_id(4), appt(PAT, VET2, 75, 80), 409,
		"SLOT_UNAVAILABLE");
	ok(f, "ScheduleAppointment", appt_id(4), appt(PAT, VET2, 120, 130));
	refused(f, "ScheduleAppointment", appt_id(4), appt(PAT3, VET2, 1, 600), 409,
		"ALREADY_EXISTS");
	assert_int_equal(staff(f, VET)->booked.count, 3);
}

static void input_rules_report_every_field(void **state)
{
	Fixture *f = *state;
	VpError err;
	snprintf(body_buf, sizeof(body_buf),
		 "{\"patient_id\":\"%s\",\"vet_id\":\"nope\",\"start\":\"%s\",\"end\":\"%s\","
		 "\"type\":\"haircut\",\"extra\":1}",
		 PAT, at(-5), at(-10));
	assert_int_equal(run(f, "ScheduleAppointment", appt_id(1), body_buf, -1, &err, NULL), -1);
	assert_int_equal(err.status, 400);
	const char *want[] = {"vet_id", "type", "extra", "start", "end"};
	assert_int_equal(err.n_details, 5);
	for (int i = 0; i < 5; i++) {
		bool found = false;
		for (int j = 0; j < err.n_details; j++)
			found = found || !strcmp(err.details[j].field, want[i]);
		if (!found)
			fail_msg("no detail for %s", want[i]);
	}
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET, 60, 60 + 12 * 60 + 1), 400,
		"VALIDATION_ERROR");
	ok(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET, 60, 60 + 12 * 60));
	refused(f, "ScheduleAppointment", appt_id(2), "{}", 400, "VALIDATION_ERROR");
	refused(f, "CancelAppointment", appt_id(1), "{}", 400, "VALIDATION_ERROR");
	refused(f, "CancelAppointment", appt_id(1), "{\"reason\":\"\"}", 400, "VALIDATION_ERROR");
}

static void vet_and_patient_must_be_active(void **state)
{
	Fixture *f = *state;
	const char *ghost = "01a20807-0000-7000-8000-0000000000ff";
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT, ghost, 60, 90), 404, "NOT_FOUND");
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT, NURSE, 60, 90), 409,
		"NOT_A_VETERINARIAN");
	refused(f, "ScheduleAppointment", appt_id(1), appt(ghost, VET, 60, 90), 404, "NOT_FOUND");
	ok(f, "DeactivateStaff", VET2, "{}");
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET2, 60, 90), 409,
		"STAFF_INACTIVE");
	ok(f, "RecordPatientDeath", PAT, "{\"date\":\"2026-01-01\"}");
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET, 60, 90), 409,
		"PATIENT_INACTIVE");
	ok(f, "DeactivateClient", CLIENT2, "{}");
	refused(f, "ScheduleAppointment", appt_id(1), appt(PAT3, VET, 60, 90), 409,
		"PATIENT_INACTIVE");
	ok(f, "ScheduleAppointment", appt_id(1), appt(PAT2, VET, 60, 90));
}

static void availability_blocks_contain_appointments(void **state)
{
	Fixture *f = *state;
	/* without blocks any time is bookable */
	ok(f, "ScheduleAppointment", appt_id(1), appt(PAT, VET, 30, 45));
	ok(f, "PublishAvailability", VET, blocks(60, 180, 180, 240));
	refused(f, "ScheduleAppointment", appt_id(2), appt(PAT2, VET, 170, 190), 409,
		"OUTSIDE_AVAILABILITY");
	refused(f, "ScheduleAppointment", appt_id(2), appt(PAT2, VET, 230, 250), 409,
		"OUTSIDE_AVAILABILITY");
	ok(f, "ScheduleAppointment", appt_id(2), appt(PAT2, VET, 60, 180));
	ok(f, "ScheduleAppointment", appt_id(3), appt(PAT3, VET, 180, 240));
	/* overlapping the published blocks: 409; within the body: 400 */
	refused(f, "PublishAvailability", VET, blocks(0, 61, 300, 360), 409, "SLOT_UNAVAILABLE");
	refused(f, "PublishAvailability", VET, blocks(300, 400, 399, 420), 400,
		"VALIDATION_ERROR");
	refused(f, "PublishAvailability", VET, blocks(300, 300 + 24 * 60 + 1, 2000, 2001), 400,
		"VALIDATION_ERROR");
	refused(f, "PublishAvailability", NURSE, blocks(300, 400, 400, 420), 409,
		"NOT_A_VETERINARIAN");
	/* a vet acts only for themself */
	f->roles = VP_ROLE_VET;
	f->actor = VET2;
	refused(f, "PublishAvailability", VET, blocks(300, 400, 400, 420), 403, "FORBIDDEN");
	refused(f, "WithdrawAvailability", VET, span(300, 400), 403, "FORBIDDEN");
	ok(f, "PublishAvailability", VET2, blocks(300, 400, 400, 420));
	/* withdraw: refused while an active appointment overlaps */
	f->actor = VET;
	refused(f, "WithdrawAvailability", VET, span(100, 110), 409, "INVALID_STATE");
	ok(f, "CancelAppointment", appt_id(2), "{\"reason\":\"ill\"}");
	ok(f, "WithdrawAvailability", VET, span(100, 110)); /* splits [60, 180) */
	const WrStaff *vet = staff(f, VET);
	assert_int_equal(vet->blocks.count, 3);
	assert_true(vet->blocks.items[0].end == BASE_NOW + 100 * MIN);
	assert_true(vet->blocks.items[1].start == BASE_NOW + 110 * MIN);
	refused(f, "ScheduleAppointment", appt_id(4), appt(PAT2, VET, 90, 120), 409,
		"OUTSIDE_AVAILABILITY");
	ok(f, "ScheduleAppointment", appt_id(4), appt(PAT2, VET, 110, 180));
	refused(f, "WithdrawAvailability", VET, span(200, 100), 400, "VALIDATION_ERROR");
}

static void status_machine(void **state)
{
	Fixture *f = *state;
	const char *a = appt_id(1), *b = appt_id(2), *c = appt_id(3);
	VpError err;
	ok(f, "ScheduleAppointment", a, appt(PAT, VET, 60, 90));
	ok(f, "ScheduleAppointment", b, appt(PAT2, VET, 90, 120));
	ok(f, "ScheduleAppointment", c, appt(PAT3, VET, 120, 150));
	refused(f, "StartAppointment", a, "{}", 409, "INVALID_STATE");
	refused(f, "CompleteAppointment", a, "{}", 409, "INVALID_STATE");
	refused(f, "MarkNoShow", a, "{}", 409, "INVALID_STATE"); /* not started yet */
	ok(f, "CheckInAppointment", a, "{}");
	refused(f, "CheckInAppointment", a, "{}", 409, "INVALID_STATE");
	refused(f, "RescheduleAppointment", a, span(200, 230), 409, "INVALID_STATE");
	assert_int_equal(run(f, "StartAppointment", a, "{}", 1, &err, NULL), -1);
	assert_int_equal(err.status, 412);
	ok(f, "StartAppointment", a, "{}");
	refused(f, "CancelAppointment", a, "{\"reason\":\"x\"}", 409, "INVALID_STATE");
	cJSON *data = NULL;
	assert_int_equal(run(f, "CompleteAppointment", a, "{\"notes\":\"fine\"}", 3, &err, &data),
			 0);
	assert_string_equal(cJSON_GetObjectItem(data, "notes")->valuestring, "fine");
	assert_string_equal(cJSON_GetObjectItem(data, "at")->valuestring, at(0));
	cJSON_Delete(data);
	refused(f, "CancelAppointment", a, "{\"reason\":\"x\"}", 409, "INVALID_STATE");
	/* completed frees the slot */
	ok(f, "ScheduleAppointment", appt_id(4), appt(PAT, VET, 60, 90));
	ok(f, "CheckInAppointment", b, "{}");
	ok(f, "CancelAppointment", b, "{\"reason\":\"owner called\"}");
	refused(f, "MarkNoShow", b, "{}", 409, "INVALID_STATE");
	f->now = BASE_NOW + 120 * MIN; /* c starts now */
	ok(f, "MarkNoShow", c, "{}");
	refused(f, "MarkNoShow", c, "{}", 409, "INVALID_STATE");
	refused(f, "CheckInAppointment", c, "{}", 409, "INVALID_STATE");
	assert_int_equal(staff(f, VET)->booked.count, 1); /* only appt 4 */
	refused(f, "CheckInAppointment", "01a20807-0000-7000-8000-0000000000ff", "{}", 404,
		"NOT_FOUND");
}

static void reschedule_excludes_itself_and_may_change_vet(void **state)
{
	Fixture *f = *state;
	const char *a = appt_id(1), *b = appt_id(2);
	cJSON *data = NULL;
	VpError err;
	ok(f, "ScheduleAppointment", a, appt(PAT, VET, 60, 120));
	ok(f, "ScheduleAppointment", b, appt(PAT2, VET, 120, 180));
	/* overlapping only its own old interval */
	assert_int_equal(run(f, "RescheduleAppointment", a, span(30, 90), 1, &err, &data), 0);
	assert_string_equal(cJSON_GetObjectItem(data, "vet_id")->valuestring, VET);
	cJSON_Delete(data);
	refused(f, "RescheduleAppointment", a, span(100, 130), 409, "SLOT_UNAVAILABLE");
	assert_int_equal(run(f, "RescheduleAppointment", a, span(100, 130), 1, &err, NULL), -1);
	assert_int_equal(err.status, 412);
	refused(f, "RescheduleAppointment", a, span(-30, 30), 400, "VALIDATION_ERROR");
	/* another vet: the old vet's bookings no longer matter, the new one's do */
	snprintf(body_buf, sizeof(body_buf), "{\"start\":\"%s\",\"end\":\"%s\",\"vet_id\":\"%s\"}",
		 at(130), at(170), VET2);
	ok(f, "RescheduleAppointment", a, body_buf);
	assert_int_equal(staff(f, VET)->booked.count, 1);
	assert_int_equal(staff(f, VET2)->booked.count, 1);
	/* same interval on VET2 for another appointment of another patient: taken */
	refused(f, "ScheduleAppointment", appt_id(4), appt(PAT3, VET2, 130, 170), 409,
		"SLOT_UNAVAILABLE");
	snprintf(body_buf, sizeof(body_buf), "{\"start\":\"%s\",\"end\":\"%s\",\"vet_id\":\"%s\"}",
		 at(130), at(170), NURSE);
	refused(f, "RescheduleAppointment", a, body_buf, 409, "NOT_A_VETERINARIAN");
}

/* The model rebuilt from the produced events holds the same intervals. */
static void rebuilt_model_equals_live_model(void **state)
{
	Fixture *f = *state;
	ok(f, "PublishAvailability", VET, blocks(0, 600, 700, 800));
	for (int i = 0; i < 8; i++)
		ok(f, "ScheduleAppointment", appt_id(10 + i),
		   appt(i % 2 ? PAT : PAT2, VET, 60 + 30 * i, 90 + 30 * i));
	ok(f, "CancelAppointment", appt_id(12), "{\"reason\":\"x\"}");
	ok(f, "RescheduleAppointment", appt_id(13), span(700, 730));
	ok(f, "WithdrawAvailability", VET, span(400, 650));
	WrState rebuilt;
	wr_state_init(&rebuilt);
	const cJSON *rec;
	cJSON_ArrayForEach(rec, f->log)
	{
		replay(f, &rebuilt, rec);
	}
	const WrStaff *live = staff(f, VET);
	const WrStaff *again = wr_map_get(&wr_state_tenant(&rebuilt, TENANT)->staff, VET);
	assert_int_equal(live->booked.count, 7);
	assert_int_equal(again->booked.count, live->booked.count);
	assert_memory_equal(again->booked.items, live->booked.items,
			    live->booked.count * sizeof(WrInterval));
	assert_int_equal(again->blocks.count, live->blocks.count);
	assert_memory_equal(again->blocks.items, live->blocks.items,
			    live->blocks.count * sizeof(WrInterval));
	wr_state_clear(&rebuilt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(half_open_overlap_for_vet_and_patient, setup,
						teardown),
		cmocka_unit_test_setup_teardown(input_rules_report_every_field, setup, teardown),
		cmocka_unit_test_setup_teardown(vet_and_patient_must_be_active, setup, teardown),
		cmocka_unit_test_setup_teardown(availability_blocks_contain_appointments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(status_machine, setup, teardown),
		cmocka_unit_test_setup_teardown(reschedule_excludes_itself_and_may_change_vet,
						setup, teardown),
		cmocka_unit_test_setup_teardown(rebuilt_model_equals_live_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
