/* Patient commands: RegisterPatient, RecordWeight, AddAllergy,
 * AddChronicCondition, TransferPatient, RecordPatientDeath. Weights arrive in
 * kg, g or lb and are stored as whole grams (1 lb = 453.59237 g, half to even).
 * Microchips: ISO 11784 (15 digits) or legacy FDX-A/AVID (9-10 letters or
 * digits, stored upper-case), unique among the tenant's living patients. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define MAX_WEIGHT_G 5000000 /* 5 t: above any patient a clinic treats */

static const char *const units[] = {"kg", "g", "lb", NULL};

/* Grams from value+unit, rounded half to even; 0 when not representable. */
static long long weight_grams(double value, const char *unit)
{
	double grams = value * (!strcmp(unit, "kg") ? 1000.0 : !strcmp(unit, "lb") ? 453.59237 : 1.0);
	if (!(grams > 0) || grams > MAX_WEIGHT_G)
		return 0;
	long long whole = (long long)nearbyint(grams); /* default rounding: half to even */
	return whole >= 1 ? whole : 0;
}

/* Checks {value, unit} found at `prefix` ("weight." or ""); 0 grams = invalid. */
long long wr_check_weight(const cJSON *obj, const char *prefix, VpError *err)
{
	double value;
	const char *unit = vp_json_str(obj, "unit");
	if (!vp_json_number(obj, "value", &value) || !unit)
		return 0; /* the field table reports missing or mistyped parts */
	long long grams = weight_grams(value, unit);
	if (!grams)
		vp_error_add_detail(err, prefix[0] ? "weight.value" : "value",
				    "must be greater than 0 and at most %d kg", MAX_WEIGHT_G / 1000);
	return grams;
}

/* 15 digits, or 9-10 letters/digits (upper-cased into out). */
static bool normalise_microchip(const char *in, char out[16])
{
	size_t len = strlen(in);
	bool digits = true;
	if (len < 9 || len > 15 || (len > 10 && len != 15))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isascii((unsigned char)in[i]) || !isalnum((unsigned char)in[i]))
			return false;
		digits = digits && isdigit((unsigned char)in[i]);
		out[i] = (char)toupper((unsigned char)in[i]);
	}
	out[len] = '\0';
	return len != 15 || digits;
}

/* A date is not in the future: today in the furthest-ahead timezone (UTC+14)
 * is at most one day after today in UTC. */
static void check_past_date(const cJSON *body, const char *name, int64_t now_us, VpError *err)
{
	const char *text = vp_json_str(body, name);
	int32_t days;
	if (text && vp_date_parse(text, strlen(text), &days) == 0 &&
	    days > vp_date_from_us(now_us) + 1)
		vp_error_add_detail(err, name, "must not be in the future");
}

static void validate_register(const cJSON *body, int64_t now_us, VpError *err)
{
	const cJSON *weight = cJSON_GetObjectItemCaseSensitive(body, "weight");
	const char *chip = vp_json_str(body, "microchip");
	char normalised[16];
	if (cJSON_IsObject(weight))
		wr_check_weight(weight, "weight.", err);
	if (chip && !normalise_microchip(chip, normalised))
		vp_error_add_detail(err, "microchip", "must be 15 digits (ISO 11784) or 9-10 "
						      "letters or digits (FDX-A/AVID)");
	check_past_date(body, "date_of_birth", now_us, err);
}

static const WrPatient *living_patient(WrDecision *d, VpError *err)
{
	const WrPatient *p = wr_map_get(&d->tenant->patients, d->target_id);
	if (!p) {
		wr_not_found(err, "patient", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, p->version, err) < 0)
		return NULL;
	if (!p->alive) {
		vp_error_set(err, 409, "PATIENT_INACTIVE", "patient %s is deceased", d->target_id);
		return NULL;
	}
	return p;
}

static int require_active_client(WrDecision *d, const char *client_id, VpError *err)
{
	const WrClient *c = wr_map_get(&d->tenant->clients, client_id);
	if (!c)
		return wr_not_found(err, "client", client_id);
	if (!c->active)
		return vp_error_set(err, 409, "INVALID_STATE", "client %s is inactive", client_id);
	return 0;
}

static void begin_event(WrDecision *d, const char *type, int64_t seq)
{
	d->aggregate = VP_AGG_PATIENT;
	d->type = type;
	d->seq = seq;
	d->data = cJSON_CreateObject();
}

static int decide_register(WrDecision *d, VpError *err)
{
	const char *client_id = vp_json_str(d->body, "client_id");
	const char *chip = vp_json_str(d->body, "microchip");
	const cJSON *weight = cJSON_GetObjectItemCaseSensitive(d->body, "weight");
	char normalised[16] = "";
	if (wr_map_get(&d->tenant->patients, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "patient %s already exists",
				    d->target_id);
	if (require_active_client(d, client_id, err) < 0)
		return -1;
	if (chip && normalise_microchip(chip, normalised) &&
	    wr_map_get(&d->tenant->microchips, normalised))
		return vp_error_set(err, 409, "DUPLICATE_MICROCHIP",
				    "microchip %s belongs to another living patient", normalised);
	begin_event(d, VP_EV_PATIENT_REGISTERED, 1);
	static const char *const copied[] = {"client_id", "name", "species", "breed", "sex",
					     "neutered", "date_of_birth"};
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		wr_copy_field(d->data, d->body, copied[i]);
	if (normalised[0])
		cJSON_AddStringToObject(d->data, "microchip", normalised);
	else
		cJSON_AddNullToObject(d->data, "microchip");
	wr_copy_field(d->data, d->body, "color");
	if (cJSON_IsObject(weight))
		cJSON_AddNumberToObject(d->data, "weight_g",
					(double)wr_check_weight(weight, "weight.", err));
	else
		cJSON_AddNullToObject(d->data, "weight_g");
	return 0;
}

static void validate_weight(const cJSON *body, int64_t now_us, VpError *err)
{
	const char *at = vp_json_str(body, "measured_at");
	int64_t us;
	wr_check_weight(body, "", err);
	/* a few minutes of clock skew between a device and us are tolerated */
	if (at && vp_time_parse_rfc3339(at, strlen(at), &us) == 0 && us > now_us + 300000000LL)
		vp_error_add_detail(err, "measured_at", "must not be in the future");
}

static int decide_weight(WrDecision *d, VpError *err)
{
	const WrPatient *p = living_patient(d, err);
	const char *at = vp_json_str(d->body, "measured_at");
	int64_t us = d->now_us;
	if (!p)
		return -1;
	if (at)
		vp_time_parse_rfc3339(at, strlen(at), &us);
	begin_event(d, VP_EV_WEIGHT_RECORDED, p->version + 1);
	cJSON_AddNumberToObject(d->data, "weight_g", (double)wr_check_weight(d->body, "", err));
	wr_add_time(d->data, "measured_at", us);
	return 0;
}

static int decide_allergy(WrDecision *d, VpError *err)
{
	const WrPatient *p = living_patient(d, err);
	if (!p)
		return -1;
	begin_event(d, VP_EV_ALLERGY_ADDED, p->version + 1);
	wr_copy_field(d->data, d->body, "allergen");
	wr_copy_field(d->data, d->body, "reaction");
	wr_copy_field(d->data, d->body, "severity");
	return 0;
}

static void validate_condition(const cJSON *body, int64_t now_us, VpError *err)
{
	check_past_date(body, "diagnosed_on", now_us, err);
}

static int decide_condition(WrDecision *d, VpError *err)
{
	const WrPatient *p = living_patient(d, err);
	if (!p)
		return -1;
	begin_event(d, VP_EV_CHRONIC_CONDITION_ADDED, p->version + 1);
	wr_copy_field(d->data, d->body, "name");
	wr_copy_field(d->data, d->body, "diagnosed_on");
	wr_copy_field(d->data, d->body, "notes");
	return 0;
}

static int decide_transfer(WrDecision *d, VpError *err)
{
	const WrPatient *p = living_patient(d, err);
	const char *to = vp_json_str(d->body, "client_id");
	if (!p || require_active_client(d, to, err) < 0)
		return -1;
	if (!strcmp(p->client_id, to))
		return vp_error_set(err, 409, "INVALID_STATE", "patient already belongs to client %s",
				    to);
	begin_event(d, VP_EV_PATIENT_TRANSFERRED, p->version + 1);
	cJSON_AddStringToObject(d->data, "from_client_id", p->client_id);
	cJSON_AddStringToObject(d->data, "to_client_id", to);
	return 0;
}

static void validate_death(const cJSON *body, int64_t now_us, VpError *err)
{
	check_past_date(body, "date", now_us, err);
}

static int decide_death(WrDecision *d, VpError *err)
{
	const WrPatient *p = living_patient(d, err);
	if (!p)
		return -1;
	begin_event(d, VP_EV_PATIENT_DIED, p->version + 1);
	wr_copy_field(d->data, d->body, "date");
	return 0;
}

#define CMD_ID VP_F_COMMAND_ID
const VpJsonField wr_weight_parts[2] = {
	{.name = "value", .type = VP_JSON_NUMBER, .required = true},
	{.name = "unit", .type = VP_JSON_STRING, .required = true, .enum_values = units},
};
static const VpJsonField register_fields[] = {
	{.name = "client_id", .type = VP_JSON_UUID, .required = true},
	VP_F_PATIENT_NAME,
	VP_F_SPECIES,
	VP_F_BREED,
	VP_F_SEX,
	VP_F_NEUTERED,
	VP_F_DATE_OF_BIRTH,
	{.name = "microchip", .type = VP_JSON_STRING, .max_len = 15}, /* normalised */
	VP_F_COLOR,
	{.name = "weight", .type = VP_JSON_OBJECT, .fields = wr_weight_parts, .n_fields = 2},
	{.name = "id", .type = VP_JSON_UUID},
	CMD_ID,
};
static const VpJsonField weight_fields[] = {
	{.name = "value", .type = VP_JSON_NUMBER, .required = true},
	{.name = "unit", .type = VP_JSON_STRING, .required = true, .enum_values = units},
	{.name = "measured_at", .type = VP_JSON_TIME},
	CMD_ID,
};
static const VpJsonField allergy_fields[] = {
	VP_F_ALLERGEN,
	VP_F_REACTION,
	VP_F_SEVERITY,
	CMD_ID,
};
static const VpJsonField condition_fields[] = {
	VP_F_CONDITION_NAME,
	VP_F_DIAGNOSED_ON,
	VP_F_CONDITION_NOTES,
	CMD_ID,
};
static const VpJsonField transfer_fields[] = {
	{.name = "client_id", .type = VP_JSON_UUID, .required = true},
	CMD_ID,
};
static const VpJsonField death_fields[] = {
	VP_F_DEATH_DATE,
	CMD_ID,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
const WrCommand wr_patient_commands[] = {
	{"RegisterPatient", EVHTTP_REQ_POST, "/v1/patients",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION | VP_ROLE_VET | VP_ROLE_NURSE, register_fields,
	 N(register_fields), true, "/v1/patients/", validate_register, decide_register},
	{"RecordWeight", EVHTTP_REQ_POST, "/v1/patients/{id}/weights", VP_ROLE_VET | VP_ROLE_NURSE,
	 weight_fields, N(weight_fields), false, NULL, validate_weight, decide_weight},
	{"AddAllergy", EVHTTP_REQ_POST, "/v1/patients/{id}/allergies", VP_ROLE_VET | VP_ROLE_NURSE,
	 allergy_fields, N(allergy_fields), false, NULL, NULL, decide_allergy},
	{"AddChronicCondition", EVHTTP_REQ_POST, "/v1/patients/{id}/conditions", VP_ROLE_VET,
	 condition_fields, N(condition_fields), false, NULL, validate_condition, decide_condition},
	{"TransferPatient", EVHTTP_REQ_POST, "/v1/patients/{id}/transfer",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION, transfer_fields, N(transfer_fields), false, NULL, NULL,
	 decide_transfer},
	{"RecordPatientDeath", EVHTTP_REQ_POST, "/v1/patients/{id}/deceased", VP_ROLE_VET,
	 death_fields, N(death_fields), false, NULL, validate_death, decide_death},
};
const size_t wr_n_patient_commands = N(wr_patient_commands);
