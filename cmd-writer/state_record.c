/* The write model of medical records: what the record rules need (patient,
 * appointment, signature, whether an assessment exists, each diagnosis's
 * primary/retracted flags, each treatment's status). Applied by the same
 * evolve path for live commands and the rebuild (state.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_time.h"

void wr_record_free(void *record)
{
	WrRecord *r = record;
	if (!r)
		return;
	free(r->diagnoses);
	free(r->treatments);
	free(r);
}

bool wr_record_locked(const WrTenant *t, const WrRecord *r, int64_t now_us)
{
	if (r->is_signed)
		return true;
	return t->record_lock_hours > 0 &&
	       now_us > r->opened_at_us + t->record_lock_hours * 3600 * VP_US_PER_SEC;
}

const WrDiagnosis *wr_record_diagnosis(const WrRecord *r, const char *id)
{
	for (size_t i = 0; i < r->n_diagnoses; i++)
		if (!strcmp(r->diagnoses[i].id, id))
			return &r->diagnoses[i];
	return NULL;
}

const WrTreatment *wr_record_treatment(const WrRecord *r, const char *id)
{
	for (size_t i = 0; i < r->n_treatments; i++)
		if (!strcmp(r->treatments[i].id, id))
			return &r->treatments[i];
	return NULL;
}

/* Room for one more element of size `size` in *items; -1 on out of memory. */
static int grow(void **items, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return 0;
	size_t next = *cap ? *cap * 2 : 4;
	void *bigger = realloc(*items, next * size);
	if (!bigger)
		return -1;
	*items = bigger;
	*cap = next;
	return 0;
}

static int apply_opened(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *appointment_id = vp_json_str(ev->data, "appointment_id");
	bool oom = false;
	if (wr_map_get(&t->records, ev->aggregate_id)) {
		snprintf(why, why_cap, "medical record %s opened twice", ev->aggregate_id);
		return -1;
	}
	WrRecord *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	snprintf(r->patient_id, sizeof(r->patient_id), "%s", vp_json_str(ev->data, "patient_id"));
	snprintf(r->appointment_id, sizeof(r->appointment_id), "%s",
		 appointment_id ? appointment_id : "");
	snprintf(r->record_type, sizeof(r->record_type), "%s",
		 vp_json_str(ev->data, "record_type"));
	r->opened_at_us = ev->at_us;
	r->version = ev->seq;
	wr_map_put(&t->records, ev->aggregate_id, r, &oom);
	if (oom) {
		free(r);
		return -1;
	}
	if (appointment_id)
		wr_map_put(&t->appointment_records, appointment_id, r, &oom);
	return oom ? -1 : 0;
}

/* A new primary demotes the old one: the model keeps at most one. */
static int apply_diagnosis_added(WrRecord *r, const VpEvent *ev)
{
	const cJSON *primary = cJSON_GetObjectItemCaseSensitive(ev->data, "primary");
	if (grow((void **)&r->diagnoses, r->n_diagnoses, &r->cap_diagnoses,
		 sizeof(*r->diagnoses)) < 0)
		return -1;
	if (cJSON_IsTrue(primary))
		for (size_t i = 0; i < r->n_diagnoses; i++)
			r->diagnoses[i].primary = false;
	WrDiagnosis *d = &r->diagnoses[r->n_diagnoses++];
	snprintf(d->id, sizeof(d->id), "%s", vp_json_str(ev->data, "diagnosis_id"));
	d->primary = cJSON_IsTrue(primary);
	d->retracted = false;
	return 0;
}

static int apply_treatment_added(WrRecord *r, const VpEvent *ev)
{
	const cJSON *performed = cJSON_GetObjectItemCaseSensitive(ev->data, "performed_at");
	if (grow((void **)&r->treatments, r->n_treatments, &r->cap_treatments,
		 sizeof(*r->treatments)) < 0)
		return -1;
	WrTreatment *tr = &r->treatments[r->n_treatments++];
	snprintf(tr->id, sizeof(tr->id), "%s", vp_json_str(ev->data, "treatment_id"));
	tr->status = cJSON_IsString(performed) ? WR_TREATMENT_PERFORMED : WR_TREATMENT_PLANNED;
	return 0;
}

/* An assessment counts when it holds text; null or "" clears it. */
static void apply_soap(WrRecord *r, const VpEvent *ev)
{
	const cJSON *assessment = cJSON_GetObjectItemCaseSensitive(ev->data, "assessment");
	if (assessment)
		r->has_assessment = cJSON_IsString(assessment) && assessment->valuestring[0];
}

/* Dispensing checks a prescription by id: the tenant keeps them all. */
static int add_prescription(WrTenant *t, const WrRecord *r, const VpEvent *ev)
{
	const char *id = vp_json_str(ev->data, "prescription_id");
	const char *item_id = vp_json_str(ev->data, "item_id");
	double quantity = 0, refills = 0;
	bool oom = false;
	WrPrescription *p = calloc(1, sizeof(*p));
	if (!p || !id) {
		free(p);
		return -1;
	}
	snprintf(p->patient_id, sizeof(p->patient_id), "%s", r->patient_id);
	snprintf(p->item_id, sizeof(p->item_id), "%s", item_id ? item_id : "");
	vp_json_number(ev->data, "quantity_milli", &quantity);
	vp_json_number(ev->data, "refills", &refills);
	p->quantity_milli = (int64_t)quantity;
	p->refills = (int64_t)refills;
	free(wr_map_put(&t->prescriptions, id, p, &oom));
	if (oom) {
		free(p);
		return -1;
	}
	return 0;
}

static int apply_change(WrTenant *t, WrRecord *r, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *ref = NULL;
	if (!strcmp(ev->type, VP_EV_DIAGNOSIS_ADDED))
		return apply_diagnosis_added(r, ev);
	if (!strcmp(ev->type, VP_EV_TREATMENT_ADDED))
		return apply_treatment_added(r, ev);
	if (!strcmp(ev->type, VP_EV_SOAP_NOTE_WRITTEN)) {
		apply_soap(r, ev);
	} else if (!strcmp(ev->type, VP_EV_DIAGNOSIS_RETRACTED)) {
		ref = vp_json_str(ev->data, "diagnosis_id");
		WrDiagnosis *d = (WrDiagnosis *)wr_record_diagnosis(r, ref ? ref : "");
		if (!d)
			goto unknown;
		d->retracted = true;
		d->primary = false;
	} else if (!strcmp(ev->type, VP_EV_TREATMENT_PERFORMED) ||
		   !strcmp(ev->type, VP_EV_TREATMENT_CANCELED)) {
		ref = vp_json_str(ev->data, "treatment_id");
		WrTreatment *tr = (WrTreatment *)wr_record_treatment(r, ref ? ref : "");
		if (!tr)
			goto unknown;
		tr->status = !strcmp(ev->type, VP_EV_TREATMENT_PERFORMED) ? WR_TREATMENT_PERFORMED
									  : WR_TREATMENT_CANCELED;
	} else if (!strcmp(ev->type, VP_EV_MEDICATION_PRESCRIBED)) {
		if (add_prescription(t, r, ev) < 0)
			return -1;
		r->n_prescriptions++;
	} else if (!strcmp(ev->type, VP_EV_MEDICAL_RECORD_SIGNED)) {
		r->is_signed = true;
	} else if (!strcmp(ev->type, VP_EV_ADDENDUM_ADDED)) {
		r->n_addenda++;
	}
	return 0;
unknown:
	snprintf(why, why_cap, "%s for unknown item %s", ev->type, ref ? ref : "(none)");
	return -1;
}

int wr_record_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	if (!strcmp(ev->type, VP_EV_MEDICAL_RECORD_OPENED))
		return apply_opened(t, ev, why, why_cap);
	WrRecord *r = wr_map_get(&t->records, ev->aggregate_id);
	if (!r) {
		snprintf(why, why_cap, "%s for unknown medical record %s", ev->type,
			 ev->aggregate_id);
		return -1;
	}
	if (apply_change(t, r, ev, why, why_cap) < 0)
		return -1;
	r->version = ev->seq;
	return 0;
}
