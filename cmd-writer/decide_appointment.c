/* Appointment commands: ScheduleAppointment, RescheduleAppointment, and the
 * status machine scheduled -> checked_in -> in_progress -> completed,
 * scheduled|checked_in -> canceled, scheduled -> no_show once start has passed.
 * A booking needs an active veterinarian, an active patient (alive, client not
 * deactivated), no overlap with the vet's or the patient's other active
 * appointments (half-open [start, end), checked in O(log n) against their
 * `booked` interval sets), and, when the vet published availability, one block
 * holding the whole appointment. */
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_time.h"
#include "vp_uuid.h"

#define MAX_APPOINTMENT_US (12 * 3600 * VP_US_PER_SEC)

/* The body's id field in canonical lower case (out), or false when absent. */
static bool body_id(const cJSON *body, const char *name, char out[37])
{
	const char *text = vp_json_str(body, name);
	VpUuid u;
	if (!text || vp_uuid_parse(text, strlen(text), &u) < 0)
		return false;
	vp_uuid_format(&u, out);
	return true;
}

/* start in the future, end after start and at most 12 h later. */
static void validate_interval(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *s = vp_json_str(body, "start"), *e = vp_json_str(body, "end");
	int64_t start, end;
	bool has_start = s && vp_time_parse_rfc3339(s, strlen(s), &start) == 0;
	bool has_end = e && vp_time_parse_rfc3339(e, strlen(e), &end) == 0;
	if (has_start && start <= now_us)
		vp_error_add_detail(err, "start", "must be in the future");
	if (has_start && has_end && end <= start)
		vp_error_add_detail(err, "end", "must be after start");
	else if (has_start && has_end && end - start > MAX_APPOINTMENT_US)
		vp_error_add_detail(err, "end", "must be at most 12 h after start");
}

static int require_active_patient(const WrDecision *d, const char *id, VpError *err)
{
	const WrPatient *p = wr_map_get(&d->tenant->patients, id);
	if (!p)
		return wr_not_found(err, "patient", id);
	if (!p->alive)
		return vp_error_set(err, 409, "PATIENT_INACTIVE", "patient %s is deceased", id);
	const WrClient *c = wr_map_get(&d->tenant->clients, p->client_id);
	if (c && !c->active)
		return vp_error_set(err, 409, "PATIENT_INACTIVE",
				    "the client of patient %s is deactivated", id);
	return 0;
}

/* Every booking rule, in the contract's order. `self` is the appointment
 * being rescheduled (its own interval does not count against it), or NULL. */
static int check_booking(const WrDecision *d, const char *vet_id, const char *patient_id,
			 int64_t start, int64_t end, const WrAppointment *self, VpError *err)
{
	const WrStaff *vet = wr_active_vet(d, vet_id, err);
	if (!vet || require_active_patient(d, patient_id, err) < 0)
		return -1;
	const WrPatient *patient = wr_map_get(&d->tenant->patients, patient_id);
	WrInterval own = {self ? self->start_us : 0, self ? self->end_us : 0};
	/* the vet's set holds our own interval only when the vet stays the same */
	const WrInterval *vet_skip = self && !strcmp(self->vet_id, vet_id) ? &own : NULL;
	const WrInterval *patient_skip = self ? &own : NULL;
	if (wr_intervals_overlaps(&vet->booked, start, end, vet_skip))
		return vp_error_set(err, 409, "SLOT_UNAVAILABLE",
				    "the vet has another appointment in that interval");
	if (wr_intervals_overlaps(&patient->booked, start, end, patient_skip))
		return vp_error_set(err, 409, "SLOT_UNAVAILABLE",
				    "the patient has another appointment in that interval");
	if (vet->blocks.count > 0 && !wr_intervals_contains(&vet->blocks, start, end))
		return vp_error_set(err, 409, "OUTSIDE_AVAILABILITY",
				    "the interval is not inside one of the vet's published blocks");
	return 0;
}

static void begin_event(WrDecision *d, const char *type, int64_t seq)
{
	d->aggregate = VP_AGG_APPOINTMENT;
	d->type = type;
	d->seq = seq;
	d->data = cJSON_CreateObject();
}

static int decide_schedule(WrDecision *d, VpError *err)
{
	char vet_id[37], patient_id[37];
	int64_t start = wr_body_time(d->body, "start"), end = wr_body_time(d->body, "end");
	if (wr_map_get(&d->tenant->appointments, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "appointment %s already exists",
				    d->target_id);
	body_id(d->body, "vet_id", vet_id);
	body_id(d->body, "patient_id", patient_id);
	if (check_booking(d, vet_id, patient_id, start, end, NULL, err) < 0)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_SCHEDULED, 1);
	cJSON_AddStringToObject(d->data, "patient_id", patient_id);
	cJSON_AddStringToObject(d->data, "vet_id", vet_id);
	wr_add_time(d->data, "start", start);
	wr_add_time(d->data, "end", end);
	wr_copy_field(d->data, d->body, "type");
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* The appointment of the path, at the If-Match version, in one of the
 * `allowed` statuses (bit mask of 1 << WrApptStatus). */
static const WrAppointment *appointment_in(const WrDecision *d, unsigned allowed, VpError *err)
{
	const WrAppointment *a = wr_map_get(&d->tenant->appointments, d->target_id);
	if (!a) {
		wr_not_found(err, "appointment", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, a->version, err) < 0)
		return NULL;
	if (!(allowed & (1u << a->status))) {
		vp_error_set(err, 409, "INVALID_STATE", "not allowed while the appointment is %s",
			     vp_enum_appointment_statuses[a->status]);
		return NULL;
	}
	return a;
}

#define ALLOW(s) (1u << (s))

static int decide_reschedule(WrDecision *d, VpError *err)
{
	char vet_id[37];
	int64_t start = wr_body_time(d->body, "start"), end = wr_body_time(d->body, "end");
	const WrAppointment *a = appointment_in(d, ALLOW(WR_APPT_SCHEDULED), err);
	if (!a)
		return -1;
	if (!body_id(d->body, "vet_id", vet_id))
		snprintf(vet_id, sizeof(vet_id), "%s", a->vet_id);
	if (check_booking(d, vet_id, a->patient_id, start, end, a, err) < 0)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_RESCHEDULED, a->version + 1);
	wr_add_time(d->data, "start", start);
	wr_add_time(d->data, "end", end);
	cJSON_AddStringToObject(d->data, "vet_id", vet_id);
	return 0;
}

static int decide_check_in(WrDecision *d, VpError *err)
{
	const WrAppointment *a = appointment_in(d, ALLOW(WR_APPT_SCHEDULED), err);
	if (!a)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_CHECKED_IN, a->version + 1);
	wr_add_time(d->data, "at", d->now_us);
	return 0;
}

static int decide_start(WrDecision *d, VpError *err)
{
	const WrAppointment *a = appointment_in(d, ALLOW(WR_APPT_CHECKED_IN), err);
	if (!a)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_STARTED, a->version + 1);
	wr_add_time(d->data, "at", d->now_us);
	return 0;
}

static int decide_complete(WrDecision *d, VpError *err)
{
	const WrAppointment *a = appointment_in(d, ALLOW(WR_APPT_IN_PROGRESS), err);
	if (!a)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_COMPLETED, a->version + 1);
	wr_add_time(d->data, "at", d->now_us);
	wr_copy_field(d->data, d->body, "notes");
	return 0;
}

static int decide_cancel(WrDecision *d, VpError *err)
{
	const WrAppointment *a =
		appointment_in(d, ALLOW(WR_APPT_SCHEDULED) | ALLOW(WR_APPT_CHECKED_IN), err);
	if (!a)
		return -1;
	begin_event(d, VP_EV_APPOINTMENT_CANCELED, a->version + 1);
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

static int decide_no_show(WrDecision *d, VpError *err)
{
	const WrAppointment *a = appointment_in(d, ALLOW(WR_APPT_SCHEDULED), err);
	if (!a)
		return -1;
	if (d->now_us < a->start_us)
		return vp_error_set(err, 409, "INVALID_STATE",
				    "a no-show can be recorded only once the start has passed");
	begin_event(d, VP_EV_APPOINTMENT_NO_SHOW, a->version + 1);
	return 0;
}

#define CMD_ID VP_F_COMMAND_ID
static const VpJsonField schedule_fields[] = {
	VP_F_PATIENT_ID,
	VP_F_VET_ID,
	VP_F_START,
	VP_F_END,
	VP_F_APPOINTMENT_TYPE,
	VP_F_APPOINTMENT_REASON,
	{.name = "id", .type = VP_JSON_UUID},
	CMD_ID,
};
static const VpJsonField reschedule_fields[] = {
	VP_F_START,
	VP_F_END,
	{.name = "vet_id", .type = VP_JSON_UUID}, /* absent: the same vet */
	CMD_ID,
};
static const VpJsonField no_fields[] = {
	CMD_ID,
};
static const VpJsonField complete_fields[] = {
	VP_F_VISIT_NOTES,
	CMD_ID,
};
static const VpJsonField cancel_fields[] = {
	VP_F_CANCEL_REASON,
	CMD_ID,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
const WrCommand wr_appointment_commands[] = {
	{"ScheduleAppointment", EVHTTP_REQ_POST, "/v1/appointments", VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET,
	 schedule_fields, N(schedule_fields), true, "/v1/appointments/", validate_interval,
	 decide_schedule},
	{"RescheduleAppointment", EVHTTP_REQ_POST, "/v1/appointments/{id}/reschedule",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET, reschedule_fields, N(reschedule_fields), false, NULL,
	 validate_interval, decide_reschedule},
	{"CheckInAppointment", EVHTTP_REQ_POST, "/v1/appointments/{id}/check-in",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_NURSE, no_fields, N(no_fields), false, NULL,
	 NULL, decide_check_in},
	{"StartAppointment", EVHTTP_REQ_POST, "/v1/appointments/{id}/start", VP_ROLE_VET,
	 no_fields, N(no_fields), false, NULL, NULL, decide_start},
	{"CompleteAppointment", EVHTTP_REQ_POST, "/v1/appointments/{id}/complete", VP_ROLE_VET,
	 complete_fields, N(complete_fields), false, NULL, NULL, decide_complete},
	{"CancelAppointment", EVHTTP_REQ_POST, "/v1/appointments/{id}/cancel",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET, cancel_fields, N(cancel_fields), false, NULL, NULL,
	 decide_cancel},
	{"MarkNoShow", EVHTTP_REQ_POST, "/v1/appointments/{id}/no-show",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION, no_fields, N(no_fields), false, NULL, NULL,
	 decide_no_show},
};
const size_t wr_n_appointment_commands = N(wr_appointment_commands);
