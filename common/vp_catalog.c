/* The event catalog (see vp_catalog.h): the data tables of every event type
 * and the strict check an event passes before the writer appends it and
 * after the projector reads it. */
#include "vp_catalog.h"

#include <stdio.h>
#include <string.h>

#include "vp_money.h"
#include "vp_time.h"
#include "vp_uuid.h"

const char *const vp_enum_species[] = {"canine", "feline", "equine", "bovine", "ovine",
				       "caprine", "porcine", "avian", "rabbit", "rodent",
				       "reptile", "other", NULL};
const char *const vp_enum_sexes[] = {"male", "female", "unknown", NULL};
const char *const vp_enum_appointment_statuses[] = {"scheduled", "checked_in", "in_progress",
						    "completed", "canceled",   "no_show",
						    NULL};
const char *const vp_enum_staff_roles[] = {VP_STAFF_ROLE_VET, "nurse", "receptionist", "admin",
					   NULL};
const char *const vp_enum_allergy_severities[] = {"mild", "moderate", "severe", NULL};
const char *const vp_enum_appointment_types[] = {"consultation", "vaccination", "surgery",
						 "dental",	 "follow_up",	"emergency",
						 "grooming",	 "other",	NULL};

const char *const vp_enum_record_types[] = {"consultation", "vaccination", "surgery",
					    "dental",	    "emergency",   "follow_up",
					    "telemedicine", "necropsy",	   NULL};
const char *const vp_enum_diagnosis_statuses[] = {"presumptive", "differential", "confirmed",
						  NULL};
/* DOMAIN.md names only `vaccination`; the rest is the project's choice
 * (docs/decisions.md). */
const char *const vp_enum_treatment_types[] = {"vaccination", "medication", "procedure",
					       "surgery",     "dental",	    "diagnostic",
					       "therapy",     "other",	    NULL};
const char *const vp_enum_medication_routes[] = {
	"oral",	      "topical", "subcutaneous", "intramuscular", "intravenous",
	"ophthalmic", "otic",	 "inhaled",	 "rectal",	  "other",	   NULL};

const char *const vp_enum_item_categories[] = {"medication", "vaccine", "consumable", "food",
					       "retail",     "equipment", "other",	    NULL};
/* `count` carries a counted quantity (the writer turns it into the delta);
 * the others a delta. */
const char *const vp_enum_adjustment_reasons[] = {"count", "damage",   "expired", "lost",
						  "returned", "other", NULL};
const char *const vp_enum_payment_methods[] = {"cash", "card", "bank_transfer", "insurance",
					       "other", NULL};
const char *const vp_enum_invoice_statuses[] = {"draft", "issued", "partially_paid", "paid",
						"void", NULL};

#define COUNT(table) (sizeof(table) / sizeof((table)[0]))

static const VpJsonField tenant_provisioned[] = {VP_F_TENANT_NAME, VP_F_TIMEZONE,
						 VP_F_CURRENCY};
static const VpJsonField staff_registered[] = {VP_F_STAFF_NAME, VP_F_STAFF_ROLE, VP_F_EMAIL,
					       VP_F_LICENSE_NUMBER};
static const VpJsonField reason_only[] = {VP_F_REASON};
static const VpJsonField appointment_canceled[] = {VP_F_CANCEL_REASON};
static const VpJsonField interval[] = {VP_F_START, VP_F_END};
static const VpJsonField availability_published[] = {
	{.name = "blocks", .type = VP_JSON_ARRAY, .required = true, .min_len = 1,
	 .max_len = VP_MAX_AVAILABILITY_BLOCKS, .fields = interval, .n_fields = COUNT(interval)},
};
static const VpJsonField client_registered[] = {VP_F_FIRST_NAME, VP_F_LAST_NAME, VP_F_EMAIL,
						VP_F_PHONE, VP_F_ADDRESS};
static const VpJsonField client_contact_updated[] = {VP_F_EMAIL, VP_F_PHONE, VP_F_ADDRESS};
/* v2 (issue 18, common/vp_sealed.h): the personal fields sealed under the
 * client's data key, {"n": nonce, "c": ciphertext} each, base64url; the data
 * key's id; blind indexes of email and phone (keyed BLAKE2b, hex). */
#define SEALED_TEXT_MAX 2048 /* a 500-byte address sealed is ~690 characters */
static const VpJsonField sealed_value[] = {
	{.name = "n", .type = VP_JSON_STRING, .required = true, .min_len = 1, .max_len = 64},
	{.name = "c", .type = VP_JSON_STRING, .required = true, .min_len = 1,
	 .max_len = SEALED_TEXT_MAX},
};
#define SEALED(n, req) {.name = n, .type = VP_JSON_OBJECT, .required = req, \
			.fields = sealed_value, .n_fields = COUNT(sealed_value)}
static const VpJsonField sealed_registered[] = {
	SEALED("first_name", true), SEALED("last_name", true), SEALED("email", false),
	SEALED("phone", false), SEALED("address", false),
};
static const VpJsonField sealed_contact[] = {
	SEALED("email", false), SEALED("phone", false), SEALED("address", false),
};
#define F_KEY_ID     {.name = "key_id", .type = VP_JSON_STRING, .required = true, .min_len = 1, .max_len = 64}
#define F_EMAIL_BIDX VP_TEXT("email_bidx", 64)
#define F_PHONE_BIDX VP_TEXT("phone_bidx", 64)
/* EraseClient's reason (required: who asked, on what ground; never a
 * personal field). docs/privacy.md. */
static const VpJsonField client_erased[] = {VP_F_CANCEL_REASON};
static const VpJsonField client_registered_v2[] = {
	F_KEY_ID,
	{.name = "sealed", .type = VP_JSON_OBJECT, .required = true, .fields = sealed_registered,
	 .n_fields = COUNT(sealed_registered)},
	F_EMAIL_BIDX, F_PHONE_BIDX,
};
static const VpJsonField client_contact_updated_v2[] = {
	F_KEY_ID,
	{.name = "sealed", .type = VP_JSON_OBJECT, .required = true, .fields = sealed_contact,
	 .n_fields = COUNT(sealed_contact)},
	F_EMAIL_BIDX, F_PHONE_BIDX,
};
/* v3: the personal members present sealed as one object, one nonce and one
 * ciphertext ({"n", "c"}); which members it holds is only known opened. */
#define SEALED_ALL_MAX 8192 /* all five fields at their limits, escaped, sealed */
static const VpJsonField sealed_all[] = {
	{.name = "n", .type = VP_JSON_STRING, .required = true, .min_len = 1, .max_len = 64},
	{.name = "c", .type = VP_JSON_STRING, .required = true, .min_len = 1,
	 .max_len = SEALED_ALL_MAX},
};
static const VpJsonField client_sealed_v3[] = {
	F_KEY_ID,
	{.name = "sealed", .type = VP_JSON_OBJECT, .required = true, .fields = sealed_all,
	 .n_fields = COUNT(sealed_all)},
	F_EMAIL_BIDX, F_PHONE_BIDX,
};
static const VpJsonField patient_registered[] = {
	VP_TYPED("client_id", VP_JSON_UUID, true),
	VP_F_PATIENT_NAME,
	VP_F_SPECIES,
	VP_F_BREED,
	VP_F_SEX,
	VP_F_NEUTERED,
	VP_F_DATE_OF_BIRTH,
	VP_TEXT("microchip", 15),
	VP_F_COLOR,
	{.name = "weight_g", .type = VP_JSON_INT, .min = 1, .max = 2147483647},
};
static const VpJsonField weight_recorded[] = {
	{.name = "weight_g", .type = VP_JSON_INT, .required = true, .min = 1, .max = 2147483647},
	VP_TYPED("measured_at", VP_JSON_TIME, true),
};
static const VpJsonField allergy_added[] = {VP_F_ALLERGEN, VP_F_REACTION, VP_F_SEVERITY};
static const VpJsonField condition_added[] = {VP_F_CONDITION_NAME, VP_F_DIAGNOSED_ON,
					      VP_F_CONDITION_NOTES};
static const VpJsonField patient_transferred[] = {
	VP_TYPED("from_client_id", VP_JSON_UUID, true),
	VP_TYPED("to_client_id", VP_JSON_UUID, true),
};
static const VpJsonField patient_died[] = {VP_F_DEATH_DATE};
static const VpJsonField appointment_scheduled[] = {
	VP_F_PATIENT_ID, VP_F_VET_ID, VP_F_START, VP_F_END, VP_F_APPOINTMENT_TYPE,
	VP_F_APPOINTMENT_REASON,
};
static const VpJsonField appointment_rescheduled[] = {VP_F_START, VP_F_END, VP_F_VET_ID};
static const VpJsonField at_only[] = {VP_TYPED("at", VP_JSON_TIME, true)};
static const VpJsonField appointment_completed[] = {VP_TYPED("at", VP_JSON_TIME, true),
						    VP_F_VISIT_NOTES};
/* The archive settings are optional (added in issue 17): events before them
 * stay valid, and the projector keeps a setting an event does not carry. */
static const VpJsonField tenant_settings_changed[] = {
	VP_F_RECORD_LOCK_HOURS, VP_F_ARCHIVE_APPOINTMENTS_DAYS, VP_F_ARCHIVE_RECORDS_DAYS};
static const VpJsonField medical_record_opened[] = {
	VP_F_PATIENT_ID,
	VP_F_APPOINTMENT_ID,
	VP_F_RECORD_TYPE,
	VP_F_CHIEF_COMPLAINT,
	VP_TYPED("visit_date", VP_JSON_DATE, true),
};
static const VpJsonField vitals_recorded[] = {
	VP_TYPED("vitals_id", VP_JSON_UUID, true),
	VP_TYPED("recorded_at", VP_JSON_TIME, true),
	/* tenths of a degree Celsius: 25.0-45.0 °C */
	{.name = "temperature_dc", .type = VP_JSON_INT, .min = 250, .max = 450},
	VP_F_PULSE_BPM,
	VP_F_RESPIRATION_RPM,
	VP_F_SYSTOLIC_MMHG,
	VP_F_DIASTOLIC_MMHG,
	{.name = "weight_g", .type = VP_JSON_INT, .min = 1, .max = 2147483647},
	VP_F_BODY_CONDITION,
	VP_F_PAIN_SCORE,
};
/* Only the fields changed: absent keeps, a string replaces, null clears. */
static const VpJsonField soap_note_written[] = {
	VP_TEXT("subjective", VP_MAX_SOAP_TEXT), VP_TEXT("objective", VP_MAX_SOAP_TEXT),
	VP_TEXT("assessment", VP_MAX_SOAP_TEXT), VP_TEXT("plan", VP_MAX_SOAP_TEXT),
	VP_TEXT("additional_notes", VP_MAX_SOAP_TEXT),
};
static const VpJsonField diagnosis_added[] = {
	VP_TYPED("diagnosis_id", VP_JSON_UUID, true),
	VP_F_DIAGNOSIS_NAME,
	VP_F_DIAGNOSIS_CODE,
	VP_ENUM("status", true, vp_enum_diagnosis_statuses),
	VP_F_CLINICAL_NOTES,
	VP_TYPED("primary", VP_JSON_BOOL, true),
};
static const VpJsonField diagnosis_retracted[] = {
	VP_TYPED("diagnosis_id", VP_JSON_UUID, true),
	VP_F_RETRACT_REASON,
};
static const VpJsonField treatment_added[] = {
	VP_TYPED("treatment_id", VP_JSON_UUID, true),
	VP_F_TREATMENT_NAME,
	VP_F_TREATMENT_TYPE,
	VP_F_DESCRIPTION,
	VP_F_PERFORMED_AT,
	VP_F_NEXT_DUE_ON,
};
static const VpJsonField treatment_performed[] = {
	VP_TYPED("treatment_id", VP_JSON_UUID, true),
	VP_TYPED("performed_at", VP_JSON_TIME, true),
};
static const VpJsonField treatment_canceled[] = {
	VP_TYPED("treatment_id", VP_JSON_UUID, true),
	VP_F_RETRACT_REASON,
};
static const VpJsonField medication_prescribed[] = {
	VP_TYPED("prescription_id", VP_JSON_UUID, true),
	VP_F_MEDICATION,
	VP_F_DOSAGE,
	VP_F_FREQUENCY,
	VP_F_ROUTE,
	VP_F_DURATION_DAYS,
	{.name = "quantity_milli", .type = VP_JSON_INT, .min = 1, .max = VP_MAX_QUANTITY_MILLI},
	{.name = "refills", .type = VP_JSON_INT, .required = true, .min = 0, .max = 12},
	VP_F_INSTRUCTIONS,
	VP_F_ITEM_ID,
};
static const VpJsonField addendum_added[] = {
	VP_TYPED("addendum_id", VP_JSON_UUID, true),
	VP_F_ADDENDUM_TEXT,
};
#define MILLI(n, req, lo) {.name = n, .type = VP_JSON_INT, .required = req, .min = lo, .max = VP_MAX_QUANTITY_MILLI}
static const VpJsonField inventory_item_created[] = {
	VP_F_ITEM_CODE,
	VP_F_ITEM_NAME,
	VP_F_ITEM_CATEGORY,
	VP_F_ITEM_UNIT,
	VP_TYPED("controlled", VP_JSON_BOOL, true),
	VP_TYPED("requires_prescription", VP_JSON_BOOL, true),
	MILLI("reorder_point_milli", false, 0),
	MILLI("reorder_quantity_milli", false, 0),
	VP_F_SALE_PRICE_CENTS,
	VP_F_TAX_RATE_BP,
};
/* Only the fields changed (never code nor controlled). */
static const VpJsonField inventory_item_updated[] = {
	VP_TEXT("name", 200),
	VP_ENUM("category", false, vp_enum_item_categories),
	VP_TEXT("unit", 20),
	VP_F_REQUIRES_PRESCRIPTION,
	MILLI("reorder_point_milli", false, 0),
	MILLI("reorder_quantity_milli", false, 0),
	VP_F_SALE_PRICE_CENTS,
	VP_F_TAX_RATE_BP,
};
static const VpJsonField stock_received[] = {
	VP_F_BATCH_NUMBER,
	VP_F_LOT_NUMBER,
	VP_F_EXPIRY_DATE,
	MILLI("quantity_milli", true, 1),
	VP_F_UNIT_COST_CENTS,
	VP_F_SUPPLIER_INVOICE,
};
static const VpJsonField allocation[] = {
	VP_F_BATCH_NUMBER,
	MILLI("quantity_milli", true, 1),
};
static const VpJsonField stock_dispensed[] = {
	{.name = "allocations", .type = VP_JSON_ARRAY, .required = true, .min_len = 1,
	 .max_len = VP_MAX_ALLOCATIONS, .fields = allocation, .n_fields = COUNT(allocation)},
	VP_F_PRESCRIPTION_ID,
	VP_TYPED("patient_id", VP_JSON_UUID, false),
	VP_TYPED("invoice_id", VP_JSON_UUID, false),
	VP_F_WITNESS_ID,
};
static const VpJsonField stock_adjusted[] = {
	VP_F_BATCH_NUMBER,
	{.name = "delta_milli", .type = VP_JSON_INT, .required = true,
	 .min = -VP_MAX_QUANTITY_MILLI, .max = VP_MAX_QUANTITY_MILLI},
	VP_F_ADJUSTMENT_REASON,
	VP_F_WITNESS_ID,
};
#define CENTS(n, lo) {.name = n, .type = VP_JSON_INT, .required = true, .min = lo, .max = VP_MAX_CENTS}
static const VpJsonField invoice_created[] = {
	VP_F_CLIENT_ID,
	VP_F_APPOINTMENT_ID,
};
static const VpJsonField invoice_line_added[] = {
	VP_TYPED("line_id", VP_JSON_UUID, true),
	VP_F_LINE_DESCRIPTION,
	{.name = "quantity_milli", .type = VP_JSON_INT, .required = true, .min = 1,
	 .max = VP_MAX_LINE_QUANTITY_MILLI},
	{.name = "unit_price_cents", .type = VP_JSON_INT, .required = true, .min = 0,
	 .max = VP_MAX_UNIT_PRICE_CENTS},
	{.name = "discount_bp", .type = VP_JSON_INT, .required = true, .min = 0, .max = 10000},
	{.name = "tax_rate_bp", .type = VP_JSON_INT, .required = true, .min = 0, .max = 10000},
	CENTS("net_cents", 0),
	CENTS("discount_cents", 0),
	CENTS("tax_cents", 0),
	CENTS("line_total_cents", 0),
	VP_F_ITEM_ID,
};
static const VpJsonField invoice_line_removed[] = {
	VP_TYPED("line_id", VP_JSON_UUID, true),
};
static const VpJsonField invoice_issued[] = {
	VP_TEXT1("number", VP_INVOICE_NUMBER_CAP - 1),
	VP_TYPED("issued_on", VP_JSON_DATE, true),
	VP_TYPED("due_on", VP_JSON_DATE, true),
	CENTS("total_cents", 0),
};
static const VpJsonField payment_recorded[] = {
	VP_TYPED("payment_id", VP_JSON_UUID, true),
	VP_F_AMOUNT_CENTS,
	VP_F_PAYMENT_METHOD,
	VP_F_PAYMENT_REFERENCE,
	VP_TYPED("received_on", VP_JSON_DATE, true),
};
static const VpJsonField payment_refunded[] = {
	VP_TYPED("refund_id", VP_JSON_UUID, true),
	VP_TYPED("payment_id", VP_JSON_UUID, true),
	VP_F_AMOUNT_CENTS,
	VP_F_REFUND_REASON,
};
static const VpJsonField invoice_voided[] = {VP_F_VOID_REASON};

static int64_t data_int(const cJSON *data, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* A line's amounts are the arithmetic of vp_line_amounts, to the cent. */
static int line_amounts_rule(const cJSON *data, char *why, size_t why_cap)
{
	static const char *const names[] = {"net_cents", "discount_cents", "tax_cents",
					    "line_total_cents"};
	VpLineAmounts a;
	vp_line_amounts(data_int(data, "quantity_milli"), data_int(data, "unit_price_cents"),
			data_int(data, "discount_bp"), data_int(data, "tax_rate_bp"), &a);
	const int64_t want[] = {a.net_cents, a.discount_cents, a.tax_cents, a.line_total_cents};
	for (size_t i = 0; i < COUNT(names); i++)
		if (data_int(data, names[i]) != want[i]) {
			snprintf(why, why_cap, "data.%s must be %lld (quantity, price and rates)",
				 names[i], (long long)want[i]);
			return -1;
		}
	return 0;
}

/* The number is INV-nnnnnn; due_on is not before issued_on. */
static int invoice_issued_rule(const cJSON *data, char *why, size_t why_cap)
{
	const cJSON *number = cJSON_GetObjectItemCaseSensitive(data, "number");
	const char *issued = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "issued_on"));
	const char *due = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "due_on"));
	if (vp_invoice_number_seq(cJSON_GetStringValue(number)) < 0) {
		snprintf(why, why_cap, "data.number must be INV- and at least six digits");
		return -1;
	}
	if (issued && due && strcmp(due, issued) < 0) { /* YYYY-MM-DD sorts as text */
		snprintf(why, why_cap, "data.due_on must not be before data.issued_on");
		return -1;
	}
	return 0;
}

/* AppointmentNoShow carries no data: an empty table, so data must be {}. */
static const VpJsonField no_data[] = {{.name = NULL}};

#define SPEC(t, agg, table)    {t, 1, agg, true, table, COUNT(table), NULL}
#define SPEC_RULE(t, agg, table, r) {t, 1, agg, true, table, COUNT(table), r}
#define SPEC_EMPTY(t, agg)     {t, 1, agg, true, no_data, 0, NULL}

const VpEventSpec vp_catalog[] = {
	SPEC(VP_EV_TENANT_PROVISIONED, VP_AGG_TENANT, tenant_provisioned),
	SPEC(VP_EV_TENANT_SETTINGS_CHANGED, VP_AGG_TENANT, tenant_settings_changed),
	SPEC(VP_EV_STAFF_REGISTERED, VP_AGG_STAFF, staff_registered),
	SPEC(VP_EV_STAFF_DEACTIVATED, VP_AGG_STAFF, reason_only),
	SPEC(VP_EV_AVAILABILITY_PUBLISHED, VP_AGG_STAFF, availability_published),
	SPEC(VP_EV_AVAILABILITY_WITHDRAWN, VP_AGG_STAFF, interval),
	SPEC(VP_EV_CLIENT_REGISTERED, VP_AGG_CLIENT, client_registered),
	SPEC(VP_EV_CLIENT_CONTACT_UPDATED, VP_AGG_CLIENT, client_contact_updated),
	{VP_EV_CLIENT_REGISTERED, 2, VP_AGG_CLIENT, true, client_registered_v2,
	 COUNT(client_registered_v2), NULL},
	{VP_EV_CLIENT_CONTACT_UPDATED, 2, VP_AGG_CLIENT, true, client_contact_updated_v2,
	 COUNT(client_contact_updated_v2), NULL},
	{VP_EV_CLIENT_REGISTERED, 3, VP_AGG_CLIENT, true, client_sealed_v3,
	 COUNT(client_sealed_v3), NULL},
	{VP_EV_CLIENT_CONTACT_UPDATED, 3, VP_AGG_CLIENT, true, client_sealed_v3,
	 COUNT(client_sealed_v3), NULL},
	SPEC(VP_EV_CLIENT_DEACTIVATED, VP_AGG_CLIENT, reason_only),
	SPEC(VP_EV_CLIENT_ERASED, VP_AGG_CLIENT, client_erased),
	SPEC(VP_EV_PATIENT_REGISTERED, VP_AGG_PATIENT, patient_registered),
	SPEC(VP_EV_WEIGHT_RECORDED, VP_AGG_PATIENT, weight_recorded),
	SPEC(VP_EV_ALLERGY_ADDED, VP_AGG_PATIENT, allergy_added),
	SPEC(VP_EV_CHRONIC_CONDITION_ADDED, VP_AGG_PATIENT, condition_added),
	SPEC(VP_EV_PATIENT_TRANSFERRED, VP_AGG_PATIENT, patient_transferred),
	SPEC(VP_EV_PATIENT_DIED, VP_AGG_PATIENT, patient_died),
	SPEC(VP_EV_APPOINTMENT_SCHEDULED, VP_AGG_APPOINTMENT, appointment_scheduled),
	SPEC(VP_EV_APPOINTMENT_RESCHEDULED, VP_AGG_APPOINTMENT, appointment_rescheduled),
	SPEC(VP_EV_APPOINTMENT_CHECKED_IN, VP_AGG_APPOINTMENT, at_only),
	SPEC(VP_EV_APPOINTMENT_STARTED, VP_AGG_APPOINTMENT, at_only),
	SPEC(VP_EV_APPOINTMENT_COMPLETED, VP_AGG_APPOINTMENT, appointment_completed),
	SPEC(VP_EV_APPOINTMENT_CANCELED, VP_AGG_APPOINTMENT, appointment_canceled),
	SPEC_EMPTY(VP_EV_APPOINTMENT_NO_SHOW, VP_AGG_APPOINTMENT),
	SPEC(VP_EV_MEDICAL_RECORD_OPENED, VP_AGG_MEDICAL_RECORD, medical_record_opened),
	SPEC(VP_EV_VITALS_RECORDED, VP_AGG_MEDICAL_RECORD, vitals_recorded),
	SPEC(VP_EV_SOAP_NOTE_WRITTEN, VP_AGG_MEDICAL_RECORD, soap_note_written),
	SPEC(VP_EV_DIAGNOSIS_ADDED, VP_AGG_MEDICAL_RECORD, diagnosis_added),
	SPEC(VP_EV_DIAGNOSIS_RETRACTED, VP_AGG_MEDICAL_RECORD, diagnosis_retracted),
	SPEC(VP_EV_TREATMENT_ADDED, VP_AGG_MEDICAL_RECORD, treatment_added),
	SPEC(VP_EV_TREATMENT_PERFORMED, VP_AGG_MEDICAL_RECORD, treatment_performed),
	SPEC(VP_EV_TREATMENT_CANCELED, VP_AGG_MEDICAL_RECORD, treatment_canceled),
	SPEC(VP_EV_MEDICATION_PRESCRIBED, VP_AGG_MEDICAL_RECORD, medication_prescribed),
	SPEC_EMPTY(VP_EV_MEDICAL_RECORD_SIGNED, VP_AGG_MEDICAL_RECORD),
	SPEC(VP_EV_ADDENDUM_ADDED, VP_AGG_MEDICAL_RECORD, addendum_added),
	SPEC(VP_EV_INVENTORY_ITEM_CREATED, VP_AGG_INVENTORY_ITEM, inventory_item_created),
	SPEC(VP_EV_INVENTORY_ITEM_UPDATED, VP_AGG_INVENTORY_ITEM, inventory_item_updated),
	SPEC(VP_EV_INVENTORY_ITEM_DEACTIVATED, VP_AGG_INVENTORY_ITEM, reason_only),
	SPEC(VP_EV_STOCK_RECEIVED, VP_AGG_INVENTORY_ITEM, stock_received),
	SPEC(VP_EV_STOCK_DISPENSED, VP_AGG_INVENTORY_ITEM, stock_dispensed),
	SPEC(VP_EV_STOCK_ADJUSTED, VP_AGG_INVENTORY_ITEM, stock_adjusted),
	SPEC(VP_EV_INVOICE_CREATED, VP_AGG_INVOICE, invoice_created),
	SPEC_RULE(VP_EV_INVOICE_LINE_ADDED, VP_AGG_INVOICE, invoice_line_added, line_amounts_rule),
	SPEC(VP_EV_INVOICE_LINE_REMOVED, VP_AGG_INVOICE, invoice_line_removed),
	SPEC_RULE(VP_EV_INVOICE_ISSUED, VP_AGG_INVOICE, invoice_issued, invoice_issued_rule),
	SPEC(VP_EV_PAYMENT_RECORDED, VP_AGG_INVOICE, payment_recorded),
	SPEC(VP_EV_PAYMENT_REFUNDED, VP_AGG_INVOICE, payment_refunded),
	SPEC(VP_EV_INVOICE_VOIDED, VP_AGG_INVOICE, invoice_voided),
};
const size_t vp_catalog_len = COUNT(vp_catalog);

const VpEventSpec *vp_catalog_find(const char *type, int v)
{
	for (size_t i = 0; i < vp_catalog_len; i++)
		if (vp_catalog[i].v == v && !strcmp(vp_catalog[i].type, type))
			return &vp_catalog[i];
	return NULL;
}

static bool known_type(const char *type)
{
	for (size_t i = 0; i < vp_catalog_len; i++)
		if (!strcmp(vp_catalog[i].type, type))
			return true;
	return false;
}

/* C0 controls and DEL: they have no place in an identifier that lands in
 * logs, headers and the read model. */
static bool has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7F)
			return true;
	return false;
}

/* What vp_json_check lets through but the log must not hold: upper-case
 * UUIDs (the writer's model is keyed by the canonical form). */
static int check_canonical(const cJSON *obj, const VpJsonField *fields, size_t n, const char *path,
			   char *why, size_t why_cap)
{
	char child[128];
	for (size_t i = 0; i < n; i++) {
		const VpJsonField *f = &fields[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->name);
		bool nested = (f->type == VP_JSON_OBJECT || f->type == VP_JSON_ARRAY) && f->fields;
		if (!item || cJSON_IsNull(item) || (f->type != VP_JSON_UUID && !nested))
			continue; /* nothing to check: no printf for its path */
		snprintf(child, sizeof(child), "%s.%s", path, f->name);
		if (f->type == VP_JSON_UUID) {
			VpUuid u;
			char canonical[37];
			if (!cJSON_IsString(item) ||
			    vp_uuid_parse(item->valuestring, strlen(item->valuestring), &u) < 0)
				continue; /* vp_json_check has refused it already */
			vp_uuid_format(&u, canonical);
			if (strcmp(canonical, item->valuestring) != 0) {
				snprintf(why, why_cap, "%s must be a lower-case UUID", child);
				return -1;
			}
		} else if (f->type == VP_JSON_OBJECT && f->fields) {
			if (check_canonical(item, f->fields, f->n_fields, child, why, why_cap) < 0)
				return -1;
		} else if (f->type == VP_JSON_ARRAY && f->fields) {
			const cJSON *element;
			size_t index = 0;
			cJSON_ArrayForEach(element, item)
			{
				char element_path[160];
				snprintf(element_path, sizeof(element_path), "%s[%zu]", child, index++);
				if (check_canonical(element, f->fields, f->n_fields, element_path,
						    why, why_cap) < 0)
					return -1;
			}
		}
	}
	return 0;
}

static int check_data(const VpEventSpec *spec, const cJSON *data, char *why, size_t why_cap)
{
	VpError err;
	vp_error_clear(&err);
	if (vp_json_check(data, spec->fields, spec->n_fields, false, &err) < 0) {
		if (err.n_details > 0)
			snprintf(why, why_cap, "data.%s %s", err.details[0].field,
				 err.details[0].issue);
		else
			snprintf(why, why_cap, "data is invalid");
		return -1;
	}
	if (check_canonical(data, spec->fields, spec->n_fields, "data", why, why_cap) < 0)
		return -1;
	return spec->rule ? spec->rule(data, why, why_cap) : 0;
}

int vp_catalog_check(const VpEvent *ev, char *why, size_t why_cap)
{
	const VpEventSpec *spec = vp_catalog_find(ev->type, ev->v);
	if (!spec) {
		if (known_type(ev->type))
			snprintf(why, why_cap, "%s v%d is not a known version", ev->type, ev->v);
		else
			snprintf(why, why_cap, "unknown event type %s", ev->type);
		return -1;
	}
	if (strcmp(ev->aggregate, spec->aggregate) != 0) {
		snprintf(why, why_cap, "%s belongs to aggregate %s, not %s", ev->type,
			 spec->aggregate, ev->aggregate);
		return -1;
	}
	if (has_control(ev->actor)) {
		snprintf(why, why_cap, "envelope: actor must not hold control characters");
		return -1;
	}
	if (has_control(ev->command_id)) {
		snprintf(why, why_cap, "envelope: command_id must not hold control characters");
		return -1;
	}
	if (ev->at_us < VP_TIME_MIN_US || ev->at_us > VP_TIME_MAX_US) {
		snprintf(why, why_cap, "envelope: at is outside years 0001-9999");
		return -1;
	}
	if (!spec->specified)
		return 0;
	return check_data(spec, ev->data, why, why_cap);
}

int vp_catalog_check_encoded(const char *json, size_t len, char *why, size_t why_cap)
{
	VpEvent ev;
	if (vp_event_decode(json, len, &ev, why, why_cap) < 0)
		return -1;
	int rc = vp_catalog_check(&ev, why, why_cap);
	if (rc == 0 && !vp_catalog_find(ev.type, ev.v)->specified) {
		snprintf(why, why_cap, "%s has no data table in the catalog yet", ev.type);
		rc = -1;
	}
	vp_event_release(&ev);
	return rc;
}

cJSON *vp_catalog_describe(void)
{
	cJSON *all = cJSON_CreateArray();
	for (size_t i = 0; all && i < vp_catalog_len; i++) {
		const VpEventSpec *spec = &vp_catalog[i];
		cJSON *entry = cJSON_CreateObject();
		cJSON *fields = spec->specified
					? vp_json_fields_describe(spec->fields, spec->n_fields)
					: cJSON_CreateNull();
		if (!entry || !fields || !cJSON_AddStringToObject(entry, "type", spec->type) ||
		    !cJSON_AddNumberToObject(entry, "v", spec->v) ||
		    !cJSON_AddStringToObject(entry, "aggregate", spec->aggregate) ||
		    !cJSON_AddBoolToObject(entry, "specified", spec->specified) ||
		    !cJSON_AddItemToObject(entry, "fields", fields)) {
			cJSON_Delete(entry);
			cJSON_Delete(all);
			return NULL;
		}
		cJSON_AddItemToArray(all, entry);
	}
	return all;
}
