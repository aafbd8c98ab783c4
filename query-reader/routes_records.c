/* Medical records (vet and nurse only: clinical data): one record with its
 * vitals, SOAP, diagnoses, treatments, prescriptions and addenda (also as of a
 * moment, as_of.c, where `locked` is computed at that moment); a patient's
 * records newest first; the record's own events (its audit trail); the
 * patient's timeline (one keyset over (time, kind, id) across appointments,
 * records, vitals, weights, allergies, vaccinations and prescriptions); and
 * vaccination reminders (admin, reception, vet, nurse). `locked` is computed
 * here: signed, or opened more than the tenant's record_lock_hours ago. */
#include <string.h>

#include "routes.h"
#include "vp_time.h"

#define ROLES_CLINICAL (VP_ROLE_VET | VP_ROLE_NURSE)

/* m: a medical_records row; t: its tenants row. */
#define LOCKED(m, t)                                                                         \
	"(" m ".status = 'signed' OR (" t ".record_lock_hours > 0 AND " m ".opened_at"          \
	" + make_interval(hours => " t ".record_lock_hours) < now()))"

#define PRIMARY_DIAGNOSIS(m)                                                                 \
	"CASE WHEN " m ".primary_diagnosis_id IS NULL THEN NULL ELSE json_build_object("        \
	"'id', " m ".primary_diagnosis_id, 'name', " m ".primary_diagnosis_name, "               \
	"'code', " m ".primary_diagnosis_code) END"

#define RECORD_SUMMARY_JSON(m, t)                                                            \
	"'id', " m ".id, 'patient_id', " m ".patient_id, 'appointment_id', " m                   \
	".appointment_id, 'record_type', " m ".record_type, 'chief_complaint', " m               \
	".chief_complaint, 'visit_date', " m ".visit_date, 'status', " m ".status, "             \
	"'locked', " LOCKED(m, t) ", "                                                           \
	"'opened_at', " RD_RFC3339(m ".opened_at") ", 'opened_by', " m ".opened_by, "            \
	"'signed_at', " RD_RFC3339(m ".signed_at") ", 'signed_by', " m ".signed_by, "            \
	"'primary_diagnosis', " PRIMARY_DIAGNOSIS(m) ", "                                        \
	"'version', " m ".version, 'updated_at', " RD_RFC3339(m ".updated_at")

#define VITALS_JSON(v)                                                                       \
	"'id', " v ".id, 'recorded_at', " RD_RFC3339(v ".recorded_at") ", "                      \
	"'recorded_by', " v ".recorded_by, "                                                     \
	"'temperature_c', round(" v ".temperature_dc / 10.0, 1), 'pulse_bpm', " v ".pulse_bpm, " \
	"'respiration_rpm', " v ".respiration_rpm, 'systolic_mmhg', " v ".systolic_mmhg, "       \
	"'diastolic_mmhg', " v ".diastolic_mmhg, 'weight_kg', round(" v ".weight_g / 1000.0, 3), " \
	"'body_condition_score', " v ".body_condition_score, 'pain_score', " v ".pain_score"

#define TREATMENT_JSON(x)                                                                    \
	"'id', " x ".id, 'name', " x ".name, 'treatment_type', " x ".treatment_type, "           \
	"'description', " x ".description, 'status', " x ".status, "                            \
	"'performed_at', " RD_RFC3339(x ".performed_at") ", 'next_due_on', " x ".next_due_on, "  \
	"'cancel_reason', " x ".cancel_reason, 'added_at', " RD_RFC3339(x ".added_at") ", "      \
	"'added_by', " x ".added_by"

#define PRESCRIPTION_JSON(x)                                                                 \
	"'id', " x ".id, 'medication', " x ".medication, 'dosage', " x ".dosage, "               \
	"'frequency', " x ".frequency, 'route', " x ".route, 'duration_days', " x                \
	".duration_days, 'quantity', round(" x ".quantity_milli / 1000.0, 3), "                  \
	"'refills', " x ".refills, 'instructions', " x ".instructions, 'item_id', " x            \
	".item_id, 'prescribed_at', " RD_RFC3339(x ".prescribed_at") ", "                        \
	"'prescribed_by', " x ".prescribed_by"

/* clang-format off: SQL reads best one clause per line */
static const RdStatement record_get = {
    "rd_medical_record_get",
    "SELECT json_build_object(" RECORD_SUMMARY_JSON("m", "t") ","
    " 'soap', json_build_object('subjective', m.subjective, 'objective', m.objective,"
    "  'assessment', m.assessment, 'plan', m.plan, 'additional_notes', m.additional_notes),"
    " 'vitals', coalesce((SELECT json_agg(json_build_object(" VITALS_JSON("v") ")"
    "  ORDER BY v.recorded_at, v.id) FROM read.vitals v"
    "  WHERE v.tenant_id = m.tenant_id AND v.record_id = m.id), '[]'::json),"
    " 'diagnoses', coalesce((SELECT json_agg(json_build_object('id', d.id, 'name', d.name,"
    "  'code', d.code, 'status', d.status, 'notes', d.notes, 'primary', d.is_primary,"
    "  'retracted', d.retracted, 'retract_reason', d.retract_reason,"
    "  'retracted_at', " RD_RFC3339("d.retracted_at") ","
    "  'added_at', " RD_RFC3339("d.added_at") ", 'added_by', d.added_by)"
    "  ORDER BY d.added_at, d.id) FROM read.diagnoses d"
    "  WHERE d.tenant_id = m.tenant_id AND d.record_id = m.id), '[]'::json),"
    " 'treatments', coalesce((SELECT json_agg(json_build_object(" TREATMENT_JSON("x") ")"
    "  ORDER BY x.added_at, x.id) FROM read.treatments x"
    "  WHERE x.tenant_id = m.tenant_id AND x.record_id = m.id), '[]'::json),"
    " 'prescriptions', coalesce((SELECT json_agg(json_build_object(" PRESCRIPTION_JSON("x") ")"
    "  ORDER BY x.prescribed_at, x.id) FROM read.prescriptions x"
    "  WHERE x.tenant_id = m.tenant_id AND x.record_id = m.id), '[]'::json),"
    " 'addenda', coalesce((SELECT json_agg(json_build_object('id', a.id, 'author', a.author,"
    "  'at', " RD_RFC3339("a.at") ", 'text', a.text) ORDER BY a.at, a.id)"
    "  FROM read.addenda a WHERE a.tenant_id = m.tenant_id AND a.record_id = m.id),"
    "  '[]'::json),"
    /* moved to the archive (migration 012): its row is the child table's;
     * never in a fold (as_of.c), whose copies inherit nothing */
    " 'archived', m.tableoid <> 'read.medical_records'::regclass)::text"
    " FROM read.medical_records m JOIN read.tenants t ON t.id = m.tenant_id"
    " WHERE m.tenant_id = $1::uuid AND m.id = $2::uuid",
    2};

/* $5 the patient. Newest first by opening, keyset (opened_at, id). */
static const RdStatement patient_records = {
    "rd_patient_medical_records",
    "WITH page AS ("
    " SELECT m.*, t.record_lock_hours,"
    "  row_number() OVER (ORDER BY m.opened_at DESC, m.id DESC) AS rn"
    " FROM (SELECT * FROM read.medical_records m"
    "  WHERE m.tenant_id = $1::uuid AND m.patient_id = $5::uuid"
    "   AND ($3::timestamptz IS NULL OR (m.opened_at, m.id) < ($3::timestamptz, $4::uuid))"
    "  ORDER BY m.opened_at DESC, m.id DESC LIMIT $2::int + 1) m"
    "  JOIN read.tenants t ON t.id = m.tenant_id)"
    " SELECT (SELECT coalesce(json_agg(json_build_object(" RECORD_SUMMARY_JSON("m", "m") ")"
    "   ORDER BY m.rn), '[]'::json) FROM page m WHERE m.rn <= $2::int)::text,"
    "  k.k1, k.k2,"
    "  EXISTS (SELECT 1 FROM read.patients p WHERE p.tenant_id = $1::uuid AND p.id = $5::uuid)"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT m.opened_at::text AS k1, m.id::text AS k2"
    "  FROM page m WHERE m.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
    "  k ON true",
    5};

/* $5 the record. Log order: (partition, offset); one tenant is one partition. */
static const RdStatement record_history = {
    "rd_medical_record_history",
    "WITH page AS ("
    " SELECT e.*, row_number() OVER (ORDER BY e.partition, e.\"offset\") AS rn"
    " FROM (SELECT * FROM read.event_log e"
    "  WHERE e.tenant_id = $1::uuid AND e.aggregate = 'medical_record'"
    "   AND e.aggregate_id = $5::uuid"
    "   AND ($3::int IS NULL OR (e.partition, e.\"offset\") > ($3::int, $4::bigint))"
    "  ORDER BY e.partition, e.\"offset\" LIMIT $2::int + 1) e)"
    " SELECT (SELECT coalesce(json_agg(json_build_object('id', e.event_id, 'type', e.type,"
    "   'seq', e.seq, 'actor', e.actor, 'at', " RD_RFC3339("e.at") ","
    "   'data', e.envelope->'data', 'position', e.partition || ':' || e.\"offset\")"
    "   ORDER BY e.rn), '[]'::json) FROM page e WHERE e.rn <= $2::int)::text,"
    "  k.k1, k.k2,"
    "  EXISTS (SELECT 1 FROM read.medical_records m"
    "   WHERE m.tenant_id = $1::uuid AND m.id = $5::uuid)"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT e.partition::text AS k1,"
    "  e.\"offset\"::text AS k2 FROM page e WHERE e.rn = $2::int"
    "  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
    5};

/* The timeline's keyset: $3 is "<time>|<kind>" (the cursor's k1), $4 the id.
 * Each branch takes at most limit + 1 of its own after the position, newest
 * first, from its patient index; the union is cut to limit + 1 again. */
#define TL_AFTER(at, kind, id)                                                              \
	" AND ($3::text IS NULL OR (" at ", '" kind "'::text, " id ") <"                    \
	" (split_part($3::text, '|', 1)::timestamptz, split_part($3::text, '|', 2), $4::uuid))"
#define TL_BRANCH(at, kind, id, detail, from, where)                                        \
	"(SELECT " at " AS at, '" kind "'::text AS kind, " id " AS id, " detail " AS detail"  \
	" FROM " from " WHERE " where TL_AFTER(at, kind, id)                                    \
	" ORDER BY " at " DESC, " id " DESC LIMIT $2::int + 1)"

static const RdStatement patient_timeline = {
    "rd_patient_timeline",
    "WITH items AS (SELECT u.*, row_number() OVER (ORDER BY u.at DESC, u.kind DESC,"
    "  u.id DESC) AS rn FROM ("
    TL_BRANCH("a.start_at", "appointment", "a.id",
	      "jsonb_build_object('status', a.status, 'type', a.type, 'reason', a.reason,"
	      " 'start', " RD_RFC3339("a.start_at") ", 'end', " RD_RFC3339("a.end_at") ","
	      " 'vet', jsonb_build_object('id', a.vet_id, 'name', a.vet_name))",
	      "read.appointments a", "a.tenant_id = $1::uuid AND a.patient_id = $5::uuid")
    " UNION ALL "
    TL_BRANCH("m.opened_at", "medical_record", "m.id",
	      "jsonb_build_object('record_type', m.record_type, 'chief_complaint',"
	      " m.chief_complaint, 'visit_date', m.visit_date, 'status', m.status,"
	      " 'primary_diagnosis', " PRIMARY_DIAGNOSIS("m") ")",
	      "read.medical_records m", "m.tenant_id = $1::uuid AND m.patient_id = $5::uuid")
    " UNION ALL "
    TL_BRANCH("v.recorded_at", "vitals", "v.id",
	      "jsonb_build_object('record_id', v.record_id, " VITALS_JSON("v") ")",
	      "read.vitals v", "v.tenant_id = $1::uuid AND v.patient_id = $5::uuid")
    " UNION ALL "
    TL_BRANCH("w.measured_at", "weight", "w.event_id",
	      "jsonb_build_object('weight_kg', round(w.weight_g / 1000.0, 3))",
	      "read.weights w", "w.tenant_id = $1::uuid AND w.patient_id = $5::uuid")
    " UNION ALL "
    TL_BRANCH("l.recorded_at", "allergy", "l.event_id",
	      "jsonb_build_object('allergen', l.allergen, 'reaction', l.reaction,"
	      " 'severity', l.severity)",
	      "read.allergies l", "l.tenant_id = $1::uuid AND l.patient_id = $5::uuid")
    " UNION ALL "
    TL_BRANCH("coalesce(x.performed_at, x.added_at)", "vaccination", "x.id",
	      "jsonb_build_object('record_id', x.record_id, " TREATMENT_JSON("x") ")",
	      "read.treatments x", "x.tenant_id = $1::uuid AND x.patient_id = $5::uuid"
	      " AND x.treatment_type = 'vaccination'")
    " UNION ALL "
    TL_BRANCH("r.prescribed_at", "prescription", "r.id",
	      "jsonb_build_object('record_id', r.record_id, " PRESCRIPTION_JSON("r") ")",
	      "read.prescriptions r", "r.tenant_id = $1::uuid AND r.patient_id = $5::uuid")
    " UNION ALL "
    /* an invoice belongs to a client; it is the patient's through the
     * appointment it bills. Drafts are not shown: not yet an invoice. */
    TL_BRANCH("i.issued_at", "invoice", "i.id",
	      "jsonb_build_object('number', i.number, 'status', i.status, 'issued_on',"
	      " i.issued_on, 'due_on', i.due_on, 'total_cents', i.total_cents,"
	      " 'balance_cents', i.balance_cents, 'appointment_id', i.appointment_id)",
	      "read.invoices i JOIN read.appointments a ON a.tenant_id = i.tenant_id"
	      " AND a.id = i.appointment_id",
	      "a.tenant_id = $1::uuid AND a.patient_id = $5::uuid AND i.tenant_id = $1::uuid"
	      " AND i.issued_at IS NOT NULL")
    ") u)"
    " SELECT (SELECT coalesce(json_agg(jsonb_build_object('kind', i.kind, 'id', i.id,"
    "   'at', " RD_RFC3339("i.at") ") || i.detail ORDER BY i.rn), '[]'::json)"
    "   FROM items i WHERE i.rn <= $2::int)::text,"
    "  k.k1, k.k2,"
    "  EXISTS (SELECT 1 FROM read.patients p WHERE p.tenant_id = $1::uuid AND p.id = $5::uuid)"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT i.at::text || '|' || i.kind AS k1,"
    "  i.id::text AS k2 FROM items i WHERE i.rn = $2::int"
    "  AND EXISTS (SELECT 1 FROM items q WHERE q.rn > $2::int)) k ON true",
    5};

/* $5 due_before. The latest performed vaccination of each kind (treatment
 * name, case-insensitive) of each living patient; due when its next_due_on
 * is on or before the date. Soonest due first, keyset (next_due_on, id). */
static const RdStatement vaccination_reminders = {
    "rd_vaccination_reminders",
    "WITH latest AS ("
    " SELECT DISTINCT ON (x.patient_id, lower(x.name)) x.*"
    " FROM read.treatments x"
    " WHERE x.tenant_id = $1::uuid AND x.treatment_type = 'vaccination'"
    "  AND x.status = 'performed'"
    " ORDER BY x.patient_id, lower(x.name), x.performed_at DESC, x.id DESC),"
    " page AS ("
    " SELECT l.*, row_number() OVER (ORDER BY l.next_due_on, l.id) AS rn"
    " FROM (SELECT l.id, l.name, l.performed_at, l.next_due_on, l.record_id,"
    "   p.id AS patient_id, p.name AS patient_name, p.species, c.id AS client_id,"
    "   c.first_name, c.last_name, c.email, c.phone, c.address"
    "  FROM latest l"
    "  JOIN read.patients p ON p.tenant_id = $1::uuid AND p.id = l.patient_id"
    "  JOIN read.clients c ON c.tenant_id = $1::uuid AND c.id = p.client_id"
    "  WHERE p.status = 'active' AND l.next_due_on <= $5::date"
    "   AND ($3::date IS NULL OR (l.next_due_on, l.id) > ($3::date, $4::uuid))"
    "  ORDER BY l.next_due_on, l.id LIMIT $2::int + 1) l)"
    " SELECT (SELECT coalesce(json_agg(json_build_object('treatment_id', l.id,"
    "   'vaccination', l.name, 'record_id', l.record_id,"
    "   'last_given_at', " RD_RFC3339("l.performed_at") ", 'next_due_on', l.next_due_on,"
    "   'patient', json_build_object('id', l.patient_id, 'name', l.patient_name,"
    "    'species', l.species),"
    "   'client', json_build_object('id', l.client_id, 'first_name', l.first_name,"
    "    'last_name', l.last_name, 'email', l.email, 'phone', l.phone, 'address', l.address))"
    "   ORDER BY l.rn), '[]'::json) FROM page l WHERE l.rn <= $2::int)::text,"
    "  k.k1, k.k2"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT l.next_due_on::text AS k1,"
    "  l.id::text AS k2 FROM page l WHERE l.rn = $2::int"
    "  AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int)) k ON true",
    5};
/* clang-format on */

/* The path's id is the list's parent: $5. */
static int bind_parent(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)r;
	(void)err;
	return rd_param_set(rq, 4, id);
}

static int bind_reminders(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *value = vp_http_query(r, "due_before");
	int32_t days;
	(void)id;
	if (!value || !*value) {
		vp_error_add_detail(err, "due_before", "is required");
		return 0;
	}
	if (vp_date_parse(value, strlen(value), &days) < 0) {
		vp_error_add_detail(err, "due_before", "must be a date YYYY-MM-DD");
		return 0;
	}
	return rd_param_set(rq, 4, value);
}

const RdRoute rd_routes_records[] = {
	{"/v1/medical-records/{id}", ROLES_CLINICAL, &record_get, RD_SHAPE_ITEM, NULL, NULL,
	 RD_ROLES_AS_OF},
	{"/v1/medical-records/{id}/history", ROLES_CLINICAL, &record_history, RD_SHAPE_LIST,
	 "record-history", bind_parent},
	{"/v1/patients/{id}/medical-records", ROLES_CLINICAL, &patient_records, RD_SHAPE_LIST,
	 "patient-records", bind_parent},
	{"/v1/patients/{id}/timeline", ROLES_CLINICAL, &patient_timeline, RD_SHAPE_LIST,
	 "timeline", bind_parent},
	{"/v1/reminders/vaccinations", RD_ROLES_CLINIC, &vaccination_reminders, RD_SHAPE_LIST,
	 "vaccination-reminders", bind_reminders},
	{NULL},
};
