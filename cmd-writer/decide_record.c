/* Medical record commands (DOMAIN.md § Medical records): open, vitals, SOAP,
 * diagnoses, treatments, prescriptions, signing and addenda. A signed record
 * is locked, and so is an unsigned one past the tenant's record_lock_hours
 * since its opening (no event: time decides); a locked record takes addenda
 * only. Vitals with a weight also record the patient's weight: two events,
 * one transaction. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_time.h"
#include "vp_uuid.h"

static const char *const vital_measurements[] = {
	"temperature_c",  "pulse_bpm", "respiration_rpm",      "systolic_mmhg",
	"diastolic_mmhg", "weight",    "body_condition_score", "pain_score",
};
static const char *const soap_fields[] = {"subjective", "objective", "assessment", "plan",
					  "additional_notes"};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool present(const cJSON *body, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	return v && !cJSON_IsNull(v);
}

static void new_id(char out[37])
{
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, out);
}

/* An instant a person or device stamped: not in the future (a few minutes of
 * clock skew tolerated, as for measured_at). */
static void check_not_future(const cJSON *body, const char *name, int64_t now_us, VpError *err)
{
	const char *text = vp_json_str(body, name);
	int64_t us;
	if (text && vp_time_parse_rfc3339(text, strlen(text), &us) == 0 &&
	    us > now_us + WR_FUTURE_SKEW_US)
		vp_error_add_detail(err, name, "must not be in the future");
}

static void begin_event(WrDecision *d, const char *type, int64_t seq)
{
	d->aggregate = VP_AGG_MEDICAL_RECORD;
	d->type = type;
	d->seq = seq;
	d->data = cJSON_CreateObject();
}

/* The command's record: exists (404), If-Match (412), and for a change
 * (`change`), not locked (RECORD_LOCKED). NULL with err set otherwise. */
static const WrRecord *target_record(const WrDecision *d, bool change, VpError *err)
{
	const WrRecord *r = wr_map_get(&d->tenant->records, d->target_id);
	if (!r) {
		wr_not_found(err, "medical record", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, r->version, err) < 0)
		return NULL;
	if (change && wr_record_locked(d->tenant, r, d->now_us)) {
		vp_error_set(err, 409, "RECORD_LOCKED", "medical record %s is %s", d->target_id,
			     r->is_signed ? "signed" : "past the tenant's record lock period");
		return NULL;
	}
	return r;
}

/* ---- OpenMedicalRecord ---- */

static void validate_open(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *text = vp_json_str(body, "visit_date");
	int32_t days;
	/* the tenant-local bound is checked in decide; no zone is ahead of UTC+14 */
	if (text && vp_date_parse(text, strlen(text), &days) == 0 &&
	    days > vp_date_from_us(now_us) + 1)
		vp_error_add_detail(err, "visit_date", "must not be in the future");
}

/* appointment_id: an appointment of this patient (400 on the field otherwise,
 * DOMAIN.md), not yet holding a record (ALREADY_EXISTS). */
static int check_appointment(const WrDecision *d, const char *appointment_id,
			     const char *patient_id, VpError *err)
{
	const WrAppointment *a = wr_map_get(&d->tenant->appointments, appointment_id);
	if (!a || strcmp(a->patient_id, patient_id) != 0) {
		vp_error_add_detail(err, "appointment_id", "must be an appointment of patient %s",
				    patient_id);
		vp_error_finish_validation(err);
		return -1;
	}
	if (wr_map_get(&d->tenant->appointment_records, appointment_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS",
				    "appointment %s already has a medical record", appointment_id);
	return 0;
}

/* visit_date as given (not after the tenant-local today), else that today. */
static int visit_date(const WrDecision *d, char out[11], VpError *err)
{
	int32_t today = wr_tenant_today(d);
	const char *given = vp_json_str(d->body, "visit_date");
	int32_t days = today;
	if (given && vp_date_parse(given, strlen(given), &days) == 0 && days > today) {
		vp_error_add_detail(err, "visit_date", "must not be after the clinic's local date");
		vp_error_finish_validation(err);
		return -1;
	}
	vp_date_format(days, out, 11);
	return 0;
}

static int decide_open(WrDecision *d, VpError *err)
{
	const char *patient_id = vp_json_str(d->body, "patient_id");
	const char *appointment_id = vp_json_str(d->body, "appointment_id");
	const char *record_type = vp_json_str(d->body, "record_type");
	char date[11];
	if (wr_map_get(&d->tenant->records, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "medical record %s already exists",
				    d->target_id);
	const WrPatient *p = wr_map_get(&d->tenant->patients, patient_id);
	if (!p)
		return wr_not_found(err, "patient", patient_id);
	if (!p->alive && strcmp(record_type, "necropsy") != 0)
		return vp_error_set(err, 409, "PATIENT_INACTIVE",
				    "patient %s is deceased: only a necropsy record can be opened",
				    patient_id);
	if (appointment_id && check_appointment(d, appointment_id, patient_id, err) < 0)
		return -1;
	if (visit_date(d, date, err) < 0)
		return -1;
	begin_event(d, VP_EV_MEDICAL_RECORD_OPENED, 1);
	wr_copy_field(d->data, d->body, "patient_id");
	wr_copy_field(d->data, d->body, "appointment_id");
	wr_copy_field(d->data, d->body, "record_type");
	wr_copy_field(d->data, d->body, "chief_complaint");
	cJSON_AddStringToObject(d->data, "visit_date", date);
	return 0;
}

/* ---- RecordVitals ---- */

/* temperature_c with at most one decimal, as tenths; -1 when it has more. */
static long temperature_tenths(double celsius)
{
	double tenths = celsius * 10.0;
	double whole = nearbyint(tenths);
	return fabs(tenths - whole) < 1e-6 ? (long)whole : -1;
}

static void validate_vitals(const cJSON *body, int64_t now_us, VpError *err)
{
	double celsius, systolic, diastolic;
	bool any = false;
	for (size_t i = 0; i < N(vital_measurements); i++)
		any = any || present(body, vital_measurements[i]);
	if (!any)
		vp_error_add_detail(err, "body", "must carry at least one measurement");
	if (vp_json_number(body, "temperature_c", &celsius) && temperature_tenths(celsius) < 0)
		vp_error_add_detail(err, "temperature_c", "must have at most one decimal");
	bool has_sys = present(body, "systolic_mmhg"), has_dia = present(body, "diastolic_mmhg");
	const char *given = has_sys ? "systolic_mmhg" : "diastolic_mmhg";
	if (has_sys != has_dia)
		vp_error_add_detail(err, has_sys ? "diastolic_mmhg" : "systolic_mmhg",
				    "is required with %s", given);
	if (vp_json_number(body, "systolic_mmhg", &systolic) &&
	    vp_json_number(body, "diastolic_mmhg", &diastolic) && systolic <= diastolic)
		vp_error_add_detail(err, "systolic_mmhg", "must be greater than diastolic_mmhg");
	const cJSON *weight = cJSON_GetObjectItemCaseSensitive(body, "weight");
	if (cJSON_IsObject(weight))
		wr_check_weight(weight, "weight.", err);
	check_not_future(body, "recorded_at", now_us, err);
}

static void add_int_or_null(cJSON *data, const char *name, const cJSON *body)
{
	double value;
	if (vp_json_number(body, name, &value))
		cJSON_AddNumberToObject(data, name, value);
	else
		cJSON_AddNullToObject(data, name);
}

/* The patient's WeightRecorded of the same instant, after VitalsRecorded. */
static int add_weight_event(WrDecision *d, const WrRecord *r, long long grams, int64_t at_us,
			    VpError *err)
{
	const WrPatient *p = wr_map_get(&d->tenant->patients, r->patient_id);
	if (!p)
		return wr_not_found(err, "patient", r->patient_id);
	cJSON *data = cJSON_CreateObject();
	if (data) {
		cJSON_AddNumberToObject(data, "weight_g", (double)grams);
		wr_add_time(data, "measured_at", at_us);
	}
	return wr_decision_add(d, VP_AGG_PATIENT, r->patient_id, VP_EV_WEIGHT_RECORDED,
			       p->version + 1, data, err);
}

static int decide_vitals(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	const cJSON *weight = cJSON_GetObjectItemCaseSensitive(d->body, "weight");
	char vitals_id[37];
	double celsius;
	long long grams = 0;
	int64_t at_us = d->now_us;
	if (!r)
		return -1;
	if (present(d->body, "recorded_at"))
		at_us = wr_body_time(d->body, "recorded_at");
	begin_event(d, VP_EV_VITALS_RECORDED, r->version + 1);
	new_id(vitals_id);
	cJSON_AddStringToObject(d->data, "vitals_id", vitals_id);
	wr_add_time(d->data, "recorded_at", at_us);
	if (vp_json_number(d->body, "temperature_c", &celsius))
		cJSON_AddNumberToObject(d->data, "temperature_dc",
					(double)temperature_tenths(celsius));
	else
		cJSON_AddNullToObject(d->data, "temperature_dc");
	add_int_or_null(d->data, "pulse_bpm", d->body);
	add_int_or_null(d->data, "respiration_rpm", d->body);
	add_int_or_null(d->data, "systolic_mmhg", d->body);
	add_int_or_null(d->data, "diastolic_mmhg", d->body);
	if (cJSON_IsObject(weight))
		grams = wr_check_weight(weight, "weight.", err);
	if (grams)
		cJSON_AddNumberToObject(d->data, "weight_g", (double)grams);
	else
		cJSON_AddNullToObject(d->data, "weight_g");
	add_int_or_null(d->data, "body_condition_score", d->body);
	add_int_or_null(d->data, "pain_score", d->body);
	return grams ? add_weight_event(d, r, grams, at_us, err) : 0;
}

/* ---- WriteSoapNote ---- */

static void validate_soap(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	for (size_t i = 0; i < N(soap_fields); i++)
		if (cJSON_GetObjectItemCaseSensitive(body, soap_fields[i]))
			return;
	vp_error_add_detail(err, "body", "must carry at least one of subjective, objective, "
					 "assessment, plan, additional_notes");
}

/* Nurses write the subjective and objective parts only (DOMAIN.md). */
static int check_soap_role(const WrDecision *d, VpError *err)
{
	static const char *const vet_only[] = {"assessment", "plan", "additional_notes"};
	if (d->roles & VP_ROLE_VET)
		return 0;
	for (size_t i = 0; i < N(vet_only); i++)
		if (cJSON_GetObjectItemCaseSensitive(d->body, vet_only[i]))
			return vp_error_set(err, 403, VP_ERR_FORBIDDEN,
					    "a nurse writes only subjective and objective; %s "
					    "needs a vet",
					    vet_only[i]);
	return 0;
}

/* Merge: an absent field keeps its text, a string replaces it, null clears
 * it; the event carries only the fields sent. */
static int decide_soap(WrDecision *d, VpError *err)
{
	if (check_soap_role(d, err) < 0)
		return -1;
	const WrRecord *r = target_record(d, true, err);
	if (!r)
		return -1;
	begin_event(d, VP_EV_SOAP_NOTE_WRITTEN, r->version + 1);
	for (size_t i = 0; i < N(soap_fields); i++)
		if (cJSON_GetObjectItemCaseSensitive(d->body, soap_fields[i]))
			wr_copy_field(d->data, d->body, soap_fields[i]);
	return 0;
}

/* ---- Diagnoses ---- */

static int decide_diagnosis(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	const char *status = vp_json_str(d->body, "status");
	char diagnosis_id[37];
	if (!r)
		return -1;
	begin_event(d, VP_EV_DIAGNOSIS_ADDED, r->version + 1);
	new_id(diagnosis_id);
	cJSON_AddStringToObject(d->data, "diagnosis_id", diagnosis_id);
	wr_copy_field(d->data, d->body, "name");
	wr_copy_field(d->data, d->body, "code");
	cJSON_AddStringToObject(d->data, "status", status ? status : "confirmed");
	wr_copy_field(d->data, d->body, "notes");
	/* a new primary demotes the old one: the read model applies the event */
	cJSON_AddBoolToObject(d->data, "primary",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d->body, "primary")));
	return 0;
}

static int decide_retract(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	if (!r)
		return -1;
	const WrDiagnosis *dx = wr_record_diagnosis(r, d->item_id ? d->item_id : "");
	if (!dx)
		return wr_not_found(err, "diagnosis", d->item_id ? d->item_id : "");
	if (dx->retracted)
		return vp_error_set(err, 409, "INVALID_STATE", "diagnosis %s is already retracted",
				    dx->id);
	begin_event(d, VP_EV_DIAGNOSIS_RETRACTED, r->version + 1);
	cJSON_AddStringToObject(d->data, "diagnosis_id", dx->id);
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* ---- Treatments ---- */

static void validate_treatment(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *type = vp_json_str(body, "treatment_type");
	check_not_future(body, "performed_at", now_us, err);
	if (present(body, "next_due_on") && type && strcmp(type, "vaccination") != 0)
		vp_error_add_detail(err, "next_due_on", "is only for a vaccination");
}

static int decide_treatment(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	char treatment_id[37];
	if (!r)
		return -1;
	begin_event(d, VP_EV_TREATMENT_ADDED, r->version + 1);
	new_id(treatment_id);
	cJSON_AddStringToObject(d->data, "treatment_id", treatment_id);
	wr_copy_field(d->data, d->body, "name");
	wr_copy_field(d->data, d->body, "treatment_type");
	wr_copy_field(d->data, d->body, "description");
	if (present(d->body, "performed_at"))
		wr_add_time(d->data, "performed_at", wr_body_time(d->body, "performed_at"));
	else
		cJSON_AddNullToObject(d->data, "performed_at");
	wr_copy_field(d->data, d->body, "next_due_on");
	return 0;
}

/* The planned treatment {treatment_id} of the record; INVALID_STATE once
 * performed or canceled. */
static const WrTreatment *planned_treatment(const WrDecision *d, const WrRecord *r, VpError *err)
{
	const WrTreatment *tr = wr_record_treatment(r, d->item_id ? d->item_id : "");
	if (!tr) {
		wr_not_found(err, "treatment", d->item_id ? d->item_id : "");
		return NULL;
	}
	if (tr->status != WR_TREATMENT_PLANNED) {
		vp_error_set(err, 409, "INVALID_STATE", "treatment %s is %s, not planned", tr->id,
			     tr->status == WR_TREATMENT_PERFORMED ? "performed" : "canceled");
		return NULL;
	}
	return tr;
}

static void validate_perform(const cJSON *body, int64_t now_us, VpError *err)
{
	check_not_future(body, "performed_at", now_us, err);
}

static int decide_perform(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	const WrTreatment *tr = r ? planned_treatment(d, r, err) : NULL;
	if (!tr)
		return -1;
	begin_event(d, VP_EV_TREATMENT_PERFORMED, r->version + 1);
	cJSON_AddStringToObject(d->data, "treatment_id", tr->id);
	wr_add_time(d->data, "performed_at", present(d->body, "performed_at")
						     ? wr_body_time(d->body, "performed_at")
						     : d->now_us);
	return 0;
}

static int decide_cancel(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	const WrTreatment *tr = r ? planned_treatment(d, r, err) : NULL;
	if (!tr)
		return -1;
	begin_event(d, VP_EV_TREATMENT_CANCELED, r->version + 1);
	cJSON_AddStringToObject(d->data, "treatment_id", tr->id);
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* ---- PrescribeMedication ---- */

static void validate_prescription(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	const cJSON *quantity = cJSON_GetObjectItemCaseSensitive(body, "quantity");
	int64_t milli;
	if (cJSON_IsNumber(quantity) && (wr_decimal_milli(quantity, &milli) < 0 || milli < 1))
		vp_error_add_detail(err, "quantity",
				    "must be greater than 0 with at most three decimals");
	if (present(body, "item_id") && !present(body, "quantity"))
		vp_error_add_detail(err, "quantity", "is required with item_id");
}

/* item_id: an active item (ITEM_INACTIVE); a controlled one needs a
 * prescriber with a license_number. The prescriber is the actor: the token's
 * sub names the staff member (as for a vet's own availability), and a sub that
 * names no licensed staff cannot prescribe a controlled item. */
static int check_prescribed_item(const WrDecision *d, const char *item_id, VpError *err)
{
	const WrItem *it = wr_map_get(&d->tenant->items, item_id);
	char actor[37] = "";
	if (!it)
		return wr_not_found(err, "inventory item", item_id);
	if (!it->active)
		return vp_error_set(err, 409, "ITEM_INACTIVE", "inventory item %s is inactive",
				    item_id);
	if (!it->controlled)
		return 0;
	for (size_t i = 0; d->actor && d->actor[i] && i < sizeof(actor) - 1; i++)
		actor[i] = (char)tolower((unsigned char)d->actor[i]);
	const WrStaff *st = strlen(d->actor ? d->actor : "") == 36
				    ? wr_map_get(&d->tenant->staff, actor)
				    : NULL;
	if (!st || !st->licensed)
		return vp_error_set(err, 409, "LICENSE_REQUIRED",
				    "a controlled item needs a prescriber with a license_number");
	return 0;
}

static int decide_prescription(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, true, err);
	const char *item_id = vp_json_str(d->body, "item_id");
	char prescription_id[37];
	double refills = 0;
	int64_t milli = 0;
	if (!r)
		return -1;
	if (item_id && check_prescribed_item(d, item_id, err) < 0)
		return -1;
	begin_event(d, VP_EV_MEDICATION_PRESCRIBED, r->version + 1);
	new_id(prescription_id);
	cJSON_AddStringToObject(d->data, "prescription_id", prescription_id);
	wr_copy_field(d->data, d->body, "medication");
	wr_copy_field(d->data, d->body, "dosage");
	wr_copy_field(d->data, d->body, "frequency");
	wr_copy_field(d->data, d->body, "route");
	wr_copy_field(d->data, d->body, "duration_days");
	if (wr_decimal_milli(cJSON_GetObjectItemCaseSensitive(d->body, "quantity"), &milli) == 0)
		cJSON_AddNumberToObject(d->data, "quantity_milli", (double)milli);
	else
		cJSON_AddNullToObject(d->data, "quantity_milli");
	vp_json_number(d->body, "refills", &refills);
	cJSON_AddNumberToObject(d->data, "refills", refills);
	wr_copy_field(d->data, d->body, "instructions");
	wr_copy_field(d->data, d->body, "item_id");
	return 0;
}

/* ---- SignMedicalRecord, AddAddendum ---- */

static bool has_live_diagnosis(const WrRecord *r)
{
	for (size_t i = 0; i < r->n_diagnoses; i++)
		if (!r->diagnoses[i].retracted)
			return true;
	return false;
}

static int decide_sign(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, false, err);
	if (!r)
		return -1;
	if (r->is_signed)
		return vp_error_set(err, 409, "INVALID_STATE",
				    "medical record %s is already signed", d->target_id);
	if (wr_record_locked(d->tenant, r, d->now_us))
		return vp_error_set(err, 409, "RECORD_LOCKED",
				    "medical record %s is past the tenant's record lock period",
				    d->target_id);
	if (!r->has_assessment && !has_live_diagnosis(r))
		return vp_error_set(err, 409, "RECORD_INCOMPLETE",
				    "medical record %s needs an assessment or a diagnosis to be "
				    "signed",
				    d->target_id);
	begin_event(d, VP_EV_MEDICAL_RECORD_SIGNED, r->version + 1);
	return 0;
}

/* Addenda amend what can no longer change: a locked record only. */
static int decide_addendum(WrDecision *d, VpError *err)
{
	const WrRecord *r = target_record(d, false, err);
	char addendum_id[37];
	if (!r)
		return -1;
	if (!wr_record_locked(d->tenant, r, d->now_us))
		return vp_error_set(err, 409, "INVALID_STATE",
				    "medical record %s is not locked: change it instead of "
				    "adding an addendum",
				    d->target_id);
	begin_event(d, VP_EV_ADDENDUM_ADDED, r->version + 1);
	new_id(addendum_id);
	cJSON_AddStringToObject(d->data, "addendum_id", addendum_id);
	wr_copy_field(d->data, d->body, "text");
	return 0;
}

/* ---- the table ---- */

#define CMD_ID VP_F_COMMAND_ID
static const VpJsonField open_fields[] = {
	VP_F_PATIENT_ID, VP_F_APPOINTMENT_ID, VP_F_RECORD_TYPE, VP_F_CHIEF_COMPLAINT,
	VP_F_VISIT_DATE, {.name = "id", .type = VP_JSON_UUID}, CMD_ID,
};
static const VpJsonField vitals_fields[] = {
	{.name = "temperature_c", .type = VP_JSON_NUMBER, .min = 25, .max = 45},
	VP_F_PULSE_BPM,
	VP_F_RESPIRATION_RPM,
	VP_F_SYSTOLIC_MMHG,
	VP_F_DIASTOLIC_MMHG,
	{.name = "weight", .type = VP_JSON_OBJECT, .fields = wr_weight_parts, .n_fields = 2},
	VP_F_BODY_CONDITION,
	VP_F_PAIN_SCORE,
	VP_F_RECORDED_AT,
	CMD_ID,
};
static const VpJsonField soap_fields_table[] = {
	VP_TEXT("subjective", VP_MAX_SOAP_TEXT),
	VP_TEXT("objective", VP_MAX_SOAP_TEXT),
	VP_TEXT("assessment", VP_MAX_SOAP_TEXT),
	VP_TEXT("plan", VP_MAX_SOAP_TEXT),
	VP_TEXT("additional_notes", VP_MAX_SOAP_TEXT),
	CMD_ID,
};
static const VpJsonField diagnosis_fields[] = {
	VP_F_DIAGNOSIS_NAME,   VP_F_DIAGNOSIS_CODE, VP_F_DIAGNOSIS_STATUS,
	VP_F_CLINICAL_NOTES,   VP_TYPED("primary", VP_JSON_BOOL, false), CMD_ID,
};
static const VpJsonField reason_fields[] = {VP_F_RETRACT_REASON, CMD_ID};
static const VpJsonField treatment_fields[] = {
	VP_F_TREATMENT_NAME, VP_F_TREATMENT_TYPE, VP_F_DESCRIPTION,
	VP_F_PERFORMED_AT,   VP_F_NEXT_DUE_ON,	  CMD_ID,
};
static const VpJsonField perform_fields[] = {VP_F_PERFORMED_AT, CMD_ID};
static const VpJsonField prescription_fields[] = {
	VP_F_MEDICATION,
	VP_F_DOSAGE,
	VP_F_FREQUENCY,
	VP_F_ROUTE,
	VP_F_DURATION_DAYS,
	{.name = "quantity", .type = VP_JSON_NUMBER},
	VP_F_REFILLS,
	VP_F_INSTRUCTIONS,
	VP_F_ITEM_ID,
	CMD_ID,
};
static const VpJsonField sign_fields[] = {CMD_ID};
static const VpJsonField addendum_fields[] = {VP_F_ADDENDUM_TEXT, CMD_ID};

#define REC "/v1/medical-records/{id}"
#define VET VP_ROLE_VET
#define CLINICAL (VP_ROLE_VET | VP_ROLE_NURSE)
const WrCommand wr_record_commands[] = {
	{"OpenMedicalRecord", EVHTTP_REQ_POST, "/v1/medical-records", CLINICAL, open_fields,
	 N(open_fields), true, "/v1/medical-records/", validate_open, decide_open},
	{"RecordVitals", EVHTTP_REQ_POST, REC "/vitals", CLINICAL, vitals_fields,
	 N(vitals_fields), false, NULL, validate_vitals, decide_vitals},
	{"WriteSoapNote", EVHTTP_REQ_POST, REC "/soap", CLINICAL, soap_fields_table,
	 N(soap_fields_table), false, NULL, validate_soap, decide_soap},
	{"AddDiagnosis", EVHTTP_REQ_POST, REC "/diagnoses", VET, diagnosis_fields,
	 N(diagnosis_fields), false, NULL, NULL, decide_diagnosis},
	{"RetractDiagnosis", EVHTTP_REQ_POST, REC "/diagnoses/{diagnosis_id}/retract", VET,
	 reason_fields, N(reason_fields), false, NULL, NULL, decide_retract},
	{"AddTreatment", EVHTTP_REQ_POST, REC "/treatments", CLINICAL, treatment_fields,
	 N(treatment_fields), false, NULL, validate_treatment, decide_treatment},
	{"PerformTreatment", EVHTTP_REQ_POST, REC "/treatments/{treatment_id}/perform", CLINICAL,
	 perform_fields, N(perform_fields), false, NULL, validate_perform, decide_perform},
	{"CancelTreatment", EVHTTP_REQ_POST, REC "/treatments/{treatment_id}/cancel", CLINICAL,
	 reason_fields, N(reason_fields), false, NULL, NULL, decide_cancel},
	{"PrescribeMedication", EVHTTP_REQ_POST, REC "/prescriptions", VET, prescription_fields,
	 N(prescription_fields), false, NULL, validate_prescription, decide_prescription},
	{"SignMedicalRecord", EVHTTP_REQ_POST, REC "/sign", VET, sign_fields, N(sign_fields), false,
	 NULL, NULL, decide_sign},
	{"AddAddendum", EVHTTP_REQ_POST, REC "/addenda", VET, addendum_fields,
	 N(addendum_fields), false, NULL, NULL, decide_addendum},
};
const size_t wr_n_record_commands = N(wr_record_commands);
