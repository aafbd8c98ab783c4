/* The event catalog of EVENTS.md, written once: every event type's name,
 * aggregate, version and data field table, the enum lists and the field
 * definitions that commands and events share. The writer checks each event
 * against it before the event leaves (vp_catalog_check_encoded), the projector
 * and the writer's rebuild decode with it, vetctl prints it (`vetctl
 * catalog`), and a test holds schema/events/ against that print. Adding an
 * event type is one row in vp_catalog.c. */
#ifndef VP_CATALOG_H
#define VP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "vp_event.h"
#include "vp_json.h"

/* Aggregates. */
#define VP_AGG_TENANT         "tenant"
#define VP_AGG_STAFF          "staff"
#define VP_AGG_CLIENT         "client"
#define VP_AGG_PATIENT        "patient"
#define VP_AGG_APPOINTMENT    "appointment"
#define VP_AGG_MEDICAL_RECORD "medical_record"
#define VP_AGG_INVENTORY_ITEM "inventory_item"
#define VP_AGG_INVOICE        "invoice"

/* Event type names. */
#define VP_EV_TENANT_PROVISIONED        "TenantProvisioned"
#define VP_EV_TENANT_SETTINGS_CHANGED   "TenantSettingsChanged"
#define VP_EV_STAFF_REGISTERED          "StaffRegistered"
#define VP_EV_STAFF_DEACTIVATED         "StaffDeactivated"
#define VP_EV_AVAILABILITY_PUBLISHED    "AvailabilityPublished"
#define VP_EV_AVAILABILITY_WITHDRAWN    "AvailabilityWithdrawn"
#define VP_EV_CLIENT_REGISTERED         "ClientRegistered"
#define VP_EV_CLIENT_CONTACT_UPDATED    "ClientContactUpdated"
#define VP_EV_CLIENT_DEACTIVATED        "ClientDeactivated"
#define VP_EV_CLIENT_ERASED             "ClientErased"
#define VP_EV_PATIENT_REGISTERED        "PatientRegistered"
#define VP_EV_WEIGHT_RECORDED           "WeightRecorded"
#define VP_EV_ALLERGY_ADDED             "AllergyAdded"
#define VP_EV_CHRONIC_CONDITION_ADDED   "ChronicConditionAdded"
#define VP_EV_PATIENT_TRANSFERRED       "PatientTransferred"
#define VP_EV_PATIENT_DIED              "PatientDied"
#define VP_EV_APPOINTMENT_SCHEDULED     "AppointmentScheduled"
#define VP_EV_APPOINTMENT_RESCHEDULED   "AppointmentRescheduled"
#define VP_EV_APPOINTMENT_CHECKED_IN    "AppointmentCheckedIn"
#define VP_EV_APPOINTMENT_STARTED       "AppointmentStarted"
#define VP_EV_APPOINTMENT_COMPLETED     "AppointmentCompleted"
#define VP_EV_APPOINTMENT_CANCELED      "AppointmentCanceled"
#define VP_EV_APPOINTMENT_NO_SHOW       "AppointmentNoShow"
#define VP_EV_MEDICAL_RECORD_OPENED     "MedicalRecordOpened"
#define VP_EV_VITALS_RECORDED           "VitalsRecorded"
#define VP_EV_SOAP_NOTE_WRITTEN         "SoapNoteWritten"
#define VP_EV_DIAGNOSIS_ADDED           "DiagnosisAdded"
#define VP_EV_DIAGNOSIS_RETRACTED       "DiagnosisRetracted"
#define VP_EV_TREATMENT_ADDED           "TreatmentAdded"
#define VP_EV_TREATMENT_PERFORMED       "TreatmentPerformed"
#define VP_EV_TREATMENT_CANCELED        "TreatmentCanceled"
#define VP_EV_MEDICATION_PRESCRIBED     "MedicationPrescribed"
#define VP_EV_MEDICAL_RECORD_SIGNED     "MedicalRecordSigned"
#define VP_EV_ADDENDUM_ADDED            "AddendumAdded"
#define VP_EV_INVENTORY_ITEM_CREATED    "InventoryItemCreated"
#define VP_EV_INVENTORY_ITEM_UPDATED    "InventoryItemUpdated"
#define VP_EV_INVENTORY_ITEM_DEACTIVATED "InventoryItemDeactivated"
#define VP_EV_STOCK_RECEIVED            "StockReceived"
#define VP_EV_STOCK_DISPENSED           "StockDispensed"
#define VP_EV_STOCK_ADJUSTED            "StockAdjusted"
#define VP_EV_INVOICE_CREATED           "InvoiceCreated"
#define VP_EV_INVOICE_LINE_ADDED        "InvoiceLineAdded"
#define VP_EV_INVOICE_LINE_REMOVED      "InvoiceLineRemoved"
#define VP_EV_INVOICE_ISSUED            "InvoiceIssued"
#define VP_EV_PAYMENT_RECORDED          "PaymentRecorded"
#define VP_EV_PAYMENT_REFUNDED          "PaymentRefunded"
#define VP_EV_INVOICE_VOIDED            "InvoiceVoided"

/* Enum lists (NULL-terminated), shared by commands, events and read model. */
extern const char *const vp_enum_species[];
extern const char *const vp_enum_sexes[];
extern const char *const vp_enum_staff_roles[];
extern const char *const vp_enum_allergy_severities[];
extern const char *const vp_enum_appointment_types[];
/* An appointment's status as the writer's model (WrApptStatus, same order) and
 * the read model name it; events carry transitions, not this name. */
extern const char *const vp_enum_appointment_statuses[];
/* The staff role that may hold bookings and sign records. */
#define VP_STAFF_ROLE_VET "veterinarian"
extern const char *const vp_enum_record_types[];
extern const char *const vp_enum_diagnosis_statuses[];
extern const char *const vp_enum_treatment_types[];
extern const char *const vp_enum_medication_routes[];
extern const char *const vp_enum_item_categories[];
extern const char *const vp_enum_adjustment_reasons[];
extern const char *const vp_enum_payment_methods[];
/* An invoice's status as the read model names it (the writer's WrInvoiceStatus,
 * same order); events carry transitions, not this name. */
extern const char *const vp_enum_invoice_statuses[];

/* Field definitions a command takes as it is and its event carries as it is:
 * one limit for both sides, so the writer cannot accept what the projector
 * refuses. Nullable event members are optional ("null counts as absent"). */
#define VP_TEXT(n, max)  {.name = n, .type = VP_JSON_STRING, .max_len = max}
#define VP_TEXT1(n, max) {.name = n, .type = VP_JSON_STRING, .required = true, .max_len = max, .min_len = 1}
#define VP_ENUM(n, req, values) {.name = n, .type = VP_JSON_STRING, .required = req, .enum_values = values}
#define VP_TYPED(n, t, req) {.name = n, .type = t, .required = req}

#define VP_F_COMMAND_ID      {.name = "command_id", .type = VP_JSON_STRING, .max_len = VP_EVENT_MAX_COMMAND_ID, .min_len = 1}
#define VP_F_REASON          VP_TEXT("reason", 500)
#define VP_F_CANCEL_REASON   VP_TEXT1("reason", 500)
#define VP_F_TENANT_NAME     VP_TEXT1("name", 200)
#define VP_F_TIMEZONE        VP_TEXT1("timezone", 64)
#define VP_F_CURRENCY        VP_TEXT1("currency", 3)
#define VP_F_STAFF_NAME      VP_TEXT1("name", 200)
#define VP_F_STAFF_ROLE      VP_ENUM("role", true, vp_enum_staff_roles)
#define VP_F_EMAIL           VP_TEXT("email", 254)
#define VP_F_LICENSE_NUMBER  VP_TEXT("license_number", 64)
#define VP_F_FIRST_NAME      VP_TEXT1("first_name", 100)
#define VP_F_LAST_NAME       VP_TEXT1("last_name", 100)
#define VP_F_PHONE           VP_TEXT("phone", 40)
#define VP_F_ADDRESS         VP_TEXT("address", 500)
#define VP_F_PATIENT_NAME    VP_TEXT1("name", 100)
#define VP_F_SPECIES         VP_ENUM("species", true, vp_enum_species)
#define VP_F_BREED           VP_TEXT("breed", 100)
#define VP_F_SEX             VP_ENUM("sex", true, vp_enum_sexes)
#define VP_F_NEUTERED        VP_TYPED("neutered", VP_JSON_BOOL, false)
#define VP_F_DATE_OF_BIRTH   VP_TYPED("date_of_birth", VP_JSON_DATE, false)
#define VP_F_COLOR           VP_TEXT("color", 100)
#define VP_F_ALLERGEN        VP_TEXT1("allergen", 200)
#define VP_F_REACTION        VP_TEXT("reaction", 500)
#define VP_F_SEVERITY        VP_ENUM("severity", false, vp_enum_allergy_severities)
#define VP_F_CONDITION_NAME  VP_TEXT1("name", 200)
#define VP_F_DIAGNOSED_ON    VP_TYPED("diagnosed_on", VP_JSON_DATE, false)
#define VP_F_CONDITION_NOTES VP_TEXT("notes", 2000)
#define VP_F_DEATH_DATE      VP_TYPED("date", VP_JSON_DATE, true)
#define VP_F_START           VP_TYPED("start", VP_JSON_TIME, true)
#define VP_F_END             VP_TYPED("end", VP_JSON_TIME, true)
#define VP_F_PATIENT_ID      VP_TYPED("patient_id", VP_JSON_UUID, true)
#define VP_F_VET_ID          VP_TYPED("vet_id", VP_JSON_UUID, true)
#define VP_F_APPOINTMENT_TYPE VP_ENUM("type", true, vp_enum_appointment_types)
#define VP_F_APPOINTMENT_REASON VP_TEXT("reason", 500)
#define VP_F_VISIT_NOTES     VP_TEXT("notes", 10000)
#define VP_MAX_AVAILABILITY_BLOCKS 1000
/* Medical records (DOMAIN.md § Medical records). */
#define VP_F_RECORD_TYPE     VP_ENUM("record_type", true, vp_enum_record_types)
#define VP_F_APPOINTMENT_ID  VP_TYPED("appointment_id", VP_JSON_UUID, false)
#define VP_F_CHIEF_COMPLAINT VP_TEXT("chief_complaint", 2000)
#define VP_F_VISIT_DATE      VP_TYPED("visit_date", VP_JSON_DATE, false)
#define VP_F_RECORDED_AT     VP_TYPED("recorded_at", VP_JSON_TIME, false)
#define VP_F_PULSE_BPM       {.name = "pulse_bpm", .type = VP_JSON_INT, .min = 1, .max = 400}
#define VP_F_RESPIRATION_RPM {.name = "respiration_rpm", .type = VP_JSON_INT, .min = 1, .max = 200}
#define VP_F_SYSTOLIC_MMHG   {.name = "systolic_mmhg", .type = VP_JSON_INT, .min = 20, .max = 300}
#define VP_F_DIASTOLIC_MMHG  {.name = "diastolic_mmhg", .type = VP_JSON_INT, .min = 20, .max = 300}
#define VP_F_BODY_CONDITION  {.name = "body_condition_score", .type = VP_JSON_INT, .min = 1, .max = 9}
#define VP_F_PAIN_SCORE      {.name = "pain_score", .type = VP_JSON_INT, .min = 0, .max = 10}
#define VP_MAX_SOAP_TEXT     20000
#define VP_F_DIAGNOSIS_NAME  VP_TEXT1("name", 200)
#define VP_F_DIAGNOSIS_CODE  VP_TEXT("code", 50)
#define VP_F_DIAGNOSIS_STATUS VP_ENUM("status", false, vp_enum_diagnosis_statuses)
#define VP_F_CLINICAL_NOTES  VP_TEXT("notes", 2000)
#define VP_F_RETRACT_REASON  VP_TEXT1("reason", 500)
#define VP_F_TREATMENT_NAME  VP_TEXT1("name", 200)
#define VP_F_TREATMENT_TYPE  VP_ENUM("treatment_type", true, vp_enum_treatment_types)
#define VP_F_DESCRIPTION     VP_TEXT("description", 2000)
#define VP_F_PERFORMED_AT    VP_TYPED("performed_at", VP_JSON_TIME, false)
#define VP_F_NEXT_DUE_ON     VP_TYPED("next_due_on", VP_JSON_DATE, false)
#define VP_F_MEDICATION      VP_TEXT1("medication", 200)
#define VP_F_DOSAGE          VP_TEXT1("dosage", 200)
#define VP_F_FREQUENCY       VP_TEXT1("frequency", 100)
#define VP_F_ROUTE           VP_ENUM("route", true, vp_enum_medication_routes)
#define VP_F_DURATION_DAYS   {.name = "duration_days", .type = VP_JSON_INT, .min = 1, .max = 365}
#define VP_F_REFILLS         {.name = "refills", .type = VP_JSON_INT, .min = 0, .max = 12}
#define VP_F_INSTRUCTIONS    VP_TEXT("instructions", 2000)
#define VP_F_ITEM_ID         VP_TYPED("item_id", VP_JSON_UUID, false)
#define VP_F_ADDENDUM_TEXT   VP_TEXT1("text", VP_MAX_SOAP_TEXT)
#define VP_F_RECORD_LOCK_HOURS {.name = "record_lock_hours", .type = VP_JSON_INT, .required = true, .min = 0, .max = 8760}
/* Archiving (docs/operations.md § Archiving): days after which closed
 * appointments and signed records move to the archive tables; 0 = never. */
#define VP_MAX_ARCHIVE_DAYS  36500
#define VP_F_ARCHIVE_APPOINTMENTS_DAYS {.name = "archive_appointments_after_days", .type = VP_JSON_INT, .min = 0, .max = VP_MAX_ARCHIVE_DAYS}
#define VP_F_ARCHIVE_RECORDS_DAYS {.name = "archive_records_after_days", .type = VP_JSON_INT, .min = 0, .max = VP_MAX_ARCHIVE_DAYS}
/* Thousandths (quantity_milli): up to 10^12, a billion units. */
#define VP_MAX_QUANTITY_MILLI 1000000000000LL
/* Money in cents: up to 10^13 cents, a hundred billion of the currency. */
#define VP_MAX_CENTS 10000000000000LL
/* Stock (DOMAIN.md § Stock). */
#define VP_F_ITEM_CODE       VP_TEXT1("code", 50)
#define VP_F_ITEM_NAME       VP_TEXT1("name", 200)
#define VP_F_ITEM_CATEGORY   VP_ENUM("category", true, vp_enum_item_categories)
#define VP_F_ITEM_UNIT       VP_TEXT1("unit", 20)
#define VP_F_CONTROLLED      VP_TYPED("controlled", VP_JSON_BOOL, false)
#define VP_F_REQUIRES_PRESCRIPTION VP_TYPED("requires_prescription", VP_JSON_BOOL, false)
#define VP_F_SALE_PRICE_CENTS {.name = "sale_price_cents", .type = VP_JSON_INT, .min = 0, .max = VP_MAX_CENTS}
#define VP_F_TAX_RATE_BP     {.name = "tax_rate_bp", .type = VP_JSON_INT, .min = 0, .max = 10000}
#define VP_F_BATCH_NUMBER    VP_TEXT1("batch_number", 50)
#define VP_F_LOT_NUMBER      VP_TEXT("lot_number", 50)
#define VP_F_EXPIRY_DATE     VP_TYPED("expiry_date", VP_JSON_DATE, false)
#define VP_F_UNIT_COST_CENTS {.name = "unit_cost_cents", .type = VP_JSON_INT, .min = 0, .max = VP_MAX_CENTS}
#define VP_F_SUPPLIER_INVOICE VP_TEXT("supplier_invoice", 100)
#define VP_F_ADJUSTMENT_REASON VP_ENUM("reason", true, vp_enum_adjustment_reasons)
#define VP_F_WITNESS_ID      VP_TYPED("witness_id", VP_JSON_UUID, false)
#define VP_F_PRESCRIPTION_ID VP_TYPED("prescription_id", VP_JSON_UUID, false)
#define VP_MAX_ALLOCATIONS   10000
/* Billing (DOMAIN.md § Billing; arithmetic and bounds in vp_money.h). */
#define VP_F_CLIENT_ID       VP_TYPED("client_id", VP_JSON_UUID, true)
#define VP_F_LINE_DESCRIPTION VP_TEXT1("description", 200)
#define VP_F_DISCOUNT_BP     {.name = "discount_bp", .type = VP_JSON_INT, .min = 0, .max = 10000}
#define VP_F_UNIT_PRICE_CENTS {.name = "unit_price_cents", .type = VP_JSON_INT, .min = 0, .max = 100000000}
#define VP_F_DUE_IN_DAYS     {.name = "due_in_days", .type = VP_JSON_INT, .min = 0, .max = 365}
#define VP_F_AMOUNT_CENTS    {.name = "amount_cents", .type = VP_JSON_INT, .required = true, .min = 1, .max = VP_MAX_CENTS}
#define VP_F_PAYMENT_METHOD  VP_ENUM("method", true, vp_enum_payment_methods)
#define VP_F_PAYMENT_REFERENCE VP_TEXT("reference", 100)
#define VP_F_RECEIVED_ON     VP_TYPED("received_on", VP_JSON_DATE, false)
#define VP_F_REFUND_REASON   VP_TEXT1("reason", 500)
#define VP_F_VOID_REASON     VP_TEXT1("reason", 500)

/* One event type at one version. `fields` is the table its data must pass
 * (nothing unknown, nullable members optional). An entry without a field
 * table (specified = false) is catalogued but not produced yet: the projector
 * only logs it, the writer refuses to append it. */
typedef struct VpEventSpec {
	const char *type;
	int v;
	const char *aggregate;
	bool specified;
	const VpJsonField *fields;
	size_t n_fields;
	/* Rules between the members of one event beyond the field table (a
	 * line's amounts follow from its quantity, price and rates), or NULL;
	 * runs on data that passed the table. 0, or -1 with why. */
	int (*rule)(const cJSON *data, char *why, size_t why_cap);
} VpEventSpec;

extern const VpEventSpec vp_catalog[];
extern const size_t vp_catalog_len;

/* The entry of type at version v, or NULL. */
const VpEventSpec *vp_catalog_find(const char *type, int v);

/* Checks a decoded envelope against the catalog: type and version known, the
 * type's aggregate, actor and command_id free of control characters, data
 * through the type's table with ids in canonical lower case and times in
 * years 0001-9999. 0, or -1 with why naming the member ("data.measured_at
 * must be ..."). */
int vp_catalog_check(const VpEvent *ev, char *why, size_t why_cap);

/* The writer's pre-append check: the envelope text exactly as the projector
 * will read it (strict JSON, envelope decode, vp_catalog_check). An event
 * whose type has no field table is refused here. */
int vp_catalog_check_encoded(const char *json, size_t len, char *why, size_t why_cap);

/* The whole catalog as JSON (`vetctl catalog`): [{type, v, aggregate,
 * specified, fields: vp_json_fields_describe}]. NULL on out of memory. */
cJSON *vp_catalog_describe(void);

#endif
