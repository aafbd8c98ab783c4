/* The write model's evolve function (see state.h). */
#include "state.h"
#include "vp_keyring.h"
#include "vp_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_json.h"
#include "vp_time.h"

static void free_staff(void *value)
{
	WrStaff *st = value;
	wr_intervals_clear(&st->blocks);
	wr_intervals_clear(&st->booked);
	free(st);
}

static void free_patient(void *value)
{
	WrPatient *p = value;
	wr_intervals_clear(&p->booked);
	free(p);
}

static void free_tenant(void *value)
{
	WrTenant *t = value;
	wr_map_clear(&t->staff, free_staff);
	wr_map_clear(&t->clients, free);
	wr_map_clear(&t->microchips, NULL); /* values are the patients' */
	wr_map_clear(&t->patients, free_patient);
	wr_map_clear(&t->appointments, free);
	wr_map_clear(&t->appointment_records, NULL); /* values are the records' */
	wr_map_clear(&t->records, wr_record_free);
	wr_map_clear(&t->prescriptions, free);
	wr_map_clear(&t->item_codes, NULL); /* values are the items' */
	wr_map_clear(&t->items, wr_item_free);
	wr_map_clear(&t->appointment_invoices, NULL); /* values are the invoices' */
	wr_map_clear(&t->invoice_payments, NULL);
	wr_map_clear(&t->invoice_refunds, NULL);
	wr_map_clear(&t->invoices, wr_invoice_free);
	wr_idem_clear(&t->idem);
	free(t);
}

void wr_state_init(WrState *s)
{
	wr_map_init(&s->tenants);
	s->keys = NULL;
	s->idem_window_us = WR_IDEM_DEFAULT_WINDOW_S * VP_US_PER_SEC;
	s->idem_keys = 0;
}

void wr_state_clear(WrState *s)
{
	wr_map_clear(&s->tenants, free_tenant);
	s->keys = vp_keyring_free(s->keys);
	s->idem_keys = 0;
}

WrTenant *wr_state_tenant(const WrState *s, const char *tenant_id)
{
	return wr_map_get(&s->tenants, tenant_id);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* Inserts a fresh zeroed value of `size` under key; NULL on out of memory. */
static void *insert_new(WrMap *m, const char *key, size_t size)
{
	bool oom = false;
	void *value = calloc(1, size);
	if (!value)
		return NULL;
	free(wr_map_put(m, key, value, &oom));
	if (oom) {
		free(value);
		return NULL;
	}
	return value;
}

static int apply_tenant_settings(WrState *s, const VpEvent *ev, char *why, size_t why_cap)
{
	WrTenant *t = wr_map_get(&s->tenants, ev->tenant_id);
	const cJSON *hours = cJSON_GetObjectItemCaseSensitive(ev->data, "record_lock_hours");
	if (!t || !cJSON_IsNumber(hours)) {
		snprintf(why, why_cap, "%s for unknown tenant %s", ev->type, ev->tenant_id);
		return -1;
	}
	t->record_lock_hours = (int64_t)hours->valuedouble;
	t->version = ev->seq;
	return 0;
}

static int apply_tenant(WrState *s, const VpEvent *ev, char *why, size_t why_cap)
{
	if (!strcmp(ev->type, VP_EV_TENANT_SETTINGS_CHANGED))
		return apply_tenant_settings(s, ev, why, why_cap);
	if (wr_map_get(&s->tenants, ev->tenant_id)) {
		snprintf(why, why_cap, "tenant %s provisioned twice", ev->tenant_id);
		return -1;
	}
	WrTenant *t = calloc(1, sizeof(*t));
	bool oom = false;
	if (!t)
		return -1;
	copy_str(t->id, sizeof(t->id), ev->tenant_id);
	copy_str(t->timezone, sizeof(t->timezone), vp_json_str(ev->data, "timezone"));
	t->version = ev->seq;
	wr_map_put(&s->tenants, ev->tenant_id, t, &oom);
	if (oom) {
		free(t);
		return -1;
	}
	return 0;
}

/* An RFC 3339 member of an event's data; false when absent or malformed. */
static bool data_time(const cJSON *data, const char *name, int64_t *out)
{
	const char *text = vp_json_str(data, name);
	return text && vp_time_parse_rfc3339(text, strlen(text), out) == 0;
}

static int apply_published(WrStaff *st, const VpEvent *ev, char *why, size_t why_cap)
{
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(ev->data, "blocks");
	int n = cJSON_GetArraySize(blocks);
	WrInterval *items = malloc((size_t)(n > 0 ? n : 1) * sizeof(*items));
	int i = 0, rc = -1;
	const cJSON *block;
	if (!items)
		return -1;
	if (!cJSON_IsArray(blocks) || n == 0)
		goto bad;
	cJSON_ArrayForEach(block, blocks)
	{
		if (!data_time(block, "start", &items[i].start) ||
		    !data_time(block, "end", &items[i].end))
			goto bad;
		i++;
	}
	rc = wr_intervals_insert_all(&st->blocks, items, (size_t)n);
	if (rc == -1)
		goto bad;
	free(items);
	return rc < 0 ? -1 : 0;
bad:
	snprintf(why, why_cap, "%s %s: bad or overlapping blocks", ev->type, ev->aggregate_id);
	free(items);
	return -1;
}

static int apply_withdrawn(WrStaff *st, const VpEvent *ev, char *why, size_t why_cap)
{
	int64_t start, end;
	if (!data_time(ev->data, "start", &start) || !data_time(ev->data, "end", &end)) {
		snprintf(why, why_cap, "%s %s: bad range", ev->type, ev->aggregate_id);
		return -1;
	}
	return wr_intervals_subtract(&st->blocks, start, end) < 0 ? -1 : 0;
}

static int apply_staff(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	WrStaff *st = wr_map_get(&t->staff, ev->aggregate_id);
	if (!strcmp(ev->type, VP_EV_STAFF_REGISTERED)) {
		st = insert_new(&t->staff, ev->aggregate_id, sizeof(*st));
		if (!st)
			return -1;
		st->active = true;
		copy_str(st->role, sizeof(st->role), vp_json_str(ev->data, "role"));
		st->licensed = vp_json_str(ev->data, "license_number") != NULL;
	} else if (!st) {
		snprintf(why, why_cap, "%s for unknown staff %s", ev->type, ev->aggregate_id);
		return -1;
	} else if (!strcmp(ev->type, VP_EV_STAFF_DEACTIVATED)) {
		st->active = false;
	} else if (!strcmp(ev->type, VP_EV_AVAILABILITY_PUBLISHED)) {
		if (apply_published(st, ev, why, why_cap) < 0)
			return -1;
	} else if (!strcmp(ev->type, VP_EV_AVAILABILITY_WITHDRAWN)) {
		if (apply_withdrawn(st, ev, why, why_cap) < 0)
			return -1;
	}
	st->version = ev->seq;
	return 0;
}

static int apply_client(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	WrClient *c = wr_map_get(&t->clients, ev->aggregate_id);
	if (!strcmp(ev->type, VP_EV_CLIENT_REGISTERED)) {
		c = insert_new(&t->clients, ev->aggregate_id, sizeof(*c));
		if (!c)
			return -1;
		c->active = true;
	} else if (!c) {
		snprintf(why, why_cap, "%s for unknown client %s", ev->type, ev->aggregate_id);
		return -1;
	} else if (!strcmp(ev->type, VP_EV_CLIENT_DEACTIVATED)) {
		c->active = false;
	} else if (!strcmp(ev->type, VP_EV_CLIENT_ERASED)) {
		c->active = false;
		c->erased = true;
	}
	c->version = ev->seq;
	return 0;
}

/* A living patient's microchip is unique in the tenant: the index follows
 * registration and death. */
static int apply_patient(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	WrPatient *p = wr_map_get(&t->patients, ev->aggregate_id);
	bool oom = false;
	if (!strcmp(ev->type, VP_EV_PATIENT_REGISTERED)) {
		p = insert_new(&t->patients, ev->aggregate_id, sizeof(*p));
		if (!p)
			return -1;
		p->alive = true;
		copy_str(p->client_id, sizeof(p->client_id), vp_json_str(ev->data, "client_id"));
		copy_str(p->microchip, sizeof(p->microchip), vp_json_str(ev->data, "microchip"));
		if (p->microchip[0])
			wr_map_put(&t->microchips, p->microchip, p, &oom);
	} else if (!p) {
		snprintf(why, why_cap, "%s for unknown patient %s", ev->type, ev->aggregate_id);
		return -1;
	} else if (!strcmp(ev->type, VP_EV_PATIENT_TRANSFERRED)) {
		copy_str(p->client_id, sizeof(p->client_id), vp_json_str(ev->data, "to_client_id"));
	} else if (!strcmp(ev->type, VP_EV_PATIENT_DIED)) {
		p->alive = false;
		if (p->microchip[0] && wr_map_get(&t->microchips, p->microchip) == p)
			wr_map_remove(&t->microchips, p->microchip);
	}
	p->version = ev->seq;
	return oom ? -1 : 0;
}

bool wr_appointment_active(const WrAppointment *a)
{
	return a->status == WR_APPT_SCHEDULED || a->status == WR_APPT_CHECKED_IN ||
	       a->status == WR_APPT_IN_PROGRESS;
}

/* The vet and patient an appointment books; false (why set) when either is
 * unknown. */
static bool parties(WrTenant *t, const char *vet_id, const char *patient_id, WrStaff **vet,
		    WrPatient **patient, char *why, size_t why_cap)
{
	*vet = vet_id ? wr_map_get(&t->staff, vet_id) : NULL;
	*patient = patient_id ? wr_map_get(&t->patients, patient_id) : NULL;
	if (!*vet || !*patient) {
		snprintf(why, why_cap, "appointment for unknown vet %s or patient %s",
			 vet_id ? vet_id : "(none)", patient_id ? patient_id : "(none)");
		return false;
	}
	return true;
}

/* Puts [start, end) into the vet's and the patient's bookings, all or nothing. */
static int book(WrStaff *vet, WrPatient *patient, int64_t start, int64_t end, char *why,
		size_t why_cap)
{
	if (wr_intervals_insert(&vet->booked, start, end) < 0) {
		snprintf(why, why_cap, "the vet is already booked at that time");
		return -1;
	}
	if (wr_intervals_insert(&patient->booked, start, end) < 0) {
		wr_intervals_remove(&vet->booked, start, end);
		snprintf(why, why_cap, "the patient is already booked at that time");
		return -1;
	}
	return 0;
}

static void unbook(WrTenant *t, const WrAppointment *a)
{
	WrStaff *vet = wr_map_get(&t->staff, a->vet_id);
	WrPatient *patient = wr_map_get(&t->patients, a->patient_id);
	if (vet)
		wr_intervals_remove(&vet->booked, a->start_us, a->end_us);
	if (patient)
		wr_intervals_remove(&patient->booked, a->start_us, a->end_us);
}

static int apply_scheduled(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *vet_id = vp_json_str(ev->data, "vet_id");
	const char *patient_id = vp_json_str(ev->data, "patient_id");
	WrStaff *vet;
	WrPatient *patient;
	int64_t start, end;
	if (wr_map_get(&t->appointments, ev->aggregate_id)) {
		snprintf(why, why_cap, "appointment %s scheduled twice", ev->aggregate_id);
		return -1;
	}
	if (!parties(t, vet_id, patient_id, &vet, &patient, why, why_cap))
		return -1;
	if (!data_time(ev->data, "start", &start) || !data_time(ev->data, "end", &end) ||
	    book(vet, patient, start, end, why, why_cap) < 0)
		return -1;
	WrAppointment *a = insert_new(&t->appointments, ev->aggregate_id, sizeof(*a));
	if (!a) {
		wr_intervals_remove(&vet->booked, start, end);
		wr_intervals_remove(&patient->booked, start, end);
		return -1;
	}
	a->status = WR_APPT_SCHEDULED;
	a->start_us = start;
	a->end_us = end;
	copy_str(a->vet_id, sizeof(a->vet_id), vet_id);
	copy_str(a->patient_id, sizeof(a->patient_id), patient_id);
	a->version = ev->seq;
	return 0;
}

/* Moves the booking; on a refusal the old one stays. */
static int apply_rescheduled(WrTenant *t, WrAppointment *a, const VpEvent *ev, char *why,
			     size_t why_cap)
{
	const char *vet_id = vp_json_str(ev->data, "vet_id");
	WrStaff *vet;
	WrPatient *patient;
	int64_t start, end;
	if (!vet_id)
		vet_id = a->vet_id;
	if (!wr_appointment_active(a) ||
	    !parties(t, vet_id, a->patient_id, &vet, &patient, why, why_cap))
		return -1;
	if (!data_time(ev->data, "start", &start) || !data_time(ev->data, "end", &end))
		return -1;
	unbook(t, a);
	if (book(vet, patient, start, end, why, why_cap) < 0) {
		WrStaff *old_vet = wr_map_get(&t->staff, a->vet_id);
		if (old_vet)
			book(old_vet, patient, a->start_us, a->end_us, why, why_cap);
		return -1;
	}
	a->start_us = start;
	a->end_us = end;
	copy_str(a->vet_id, sizeof(a->vet_id), vet_id);
	return 0;
}

static int apply_appointment(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	static const struct {
		const char *type;
		WrApptStatus status;
	} moves[] = {
	    {VP_EV_APPOINTMENT_CHECKED_IN, WR_APPT_CHECKED_IN},
	    {VP_EV_APPOINTMENT_STARTED, WR_APPT_IN_PROGRESS},
	    {VP_EV_APPOINTMENT_COMPLETED, WR_APPT_COMPLETED},
	    {VP_EV_APPOINTMENT_CANCELED, WR_APPT_CANCELED},
	    {VP_EV_APPOINTMENT_NO_SHOW, WR_APPT_NO_SHOW},
	};
	if (!strcmp(ev->type, VP_EV_APPOINTMENT_SCHEDULED))
		return apply_scheduled(t, ev, why, why_cap);
	WrAppointment *a = wr_map_get(&t->appointments, ev->aggregate_id);
	if (!a) {
		snprintf(why, why_cap, "%s for unknown appointment %s", ev->type, ev->aggregate_id);
		return -1;
	}
	if (!strcmp(ev->type, VP_EV_APPOINTMENT_RESCHEDULED)) {
		if (apply_rescheduled(t, a, ev, why, why_cap) < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		if (strcmp(ev->type, moves[i].type) != 0)
			continue;
		WrAppointment next = *a;
		next.status = moves[i].status;
		/* a finished appointment frees its vet's and its patient's time */
		if (wr_appointment_active(a) && !wr_appointment_active(&next))
			unbook(t, a);
		a->status = next.status;
	}
	a->version = ev->seq;
	return 0;
}

/* A later event of the command that made k: the same key, request and
 * time (a command's events share `at`; a key used again after its window has
 * a later one). It adds its type and, in a rebuild, its position: the answer
 * keeps the target of the first event and gives the last event's position. */
static bool idem_continues(const WrIdem *k, const VpEvent *ev, const WrIdemNote *idem)
{
	return k && k->at_us == ev->at_us && !strcmp(k->request_hash, idem->request_hash) &&
	       k->n_events < WR_MAX_COMMAND_EVENTS;
}

/* The key is kept for the window after the event's own time, both when the
 * command is decided and when the log is replayed, so a restarted writer
 * remembers exactly the keys still inside the window. */
static int apply_idem(WrState *s, WrTenant *t, const VpEvent *ev, const WrIdemNote *idem)
{
	WrIdem *k = wr_idem_get(&t->idem, ev->command_id);
	if (idem_continues(k, ev, idem)) {
		k->event_types[k->n_events++] = wr_event_type_index(ev->type);
		copy_str(k->position, sizeof(k->position), idem->position);
		return 0;
	}
	size_t before = wr_idem_count(&t->idem);
	k = wr_idem_put(&t->idem, ev->command_id, ev->at_us + s->idem_window_us);
	if (!k)
		return -1;
	s->idem_keys += wr_idem_count(&t->idem) - before;
	copy_str(k->request_hash, sizeof(k->request_hash), idem->request_hash);
	copy_str(k->aggregate_id, sizeof(k->aggregate_id), ev->aggregate_id);
	k->event_types[0] = wr_event_type_index(ev->type);
	k->n_events = 1;
	k->at_us = ev->at_us;
	copy_str(k->position, sizeof(k->position), idem->position);
	k->version = ev->seq;
	k->status = ev->seq == 1 ? 201 : 200;
	k->pending = idem->pending;
	return 0;
}

int wr_state_apply(WrState *s, const VpEvent *ev, const WrIdemNote *idem, char *why,
		   size_t why_cap)
{
	int rc;
	snprintf(why, why_cap, "out of memory");
	if (!strcmp(ev->aggregate, VP_AGG_TENANT)) {
		rc = apply_tenant(s, ev, why, why_cap);
		if (rc < 0)
			return rc;
	}
	WrTenant *t = wr_map_get(&s->tenants, ev->tenant_id);
	if (!t) {
		snprintf(why, why_cap, "event for unknown tenant %s", ev->tenant_id);
		return -1;
	}
	if (!strcmp(ev->aggregate, VP_AGG_STAFF))
		rc = apply_staff(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_CLIENT))
		rc = apply_client(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_PATIENT))
		rc = apply_patient(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_APPOINTMENT))
		rc = apply_appointment(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_MEDICAL_RECORD))
		rc = wr_record_apply(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_INVENTORY_ITEM))
		rc = wr_stock_apply(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, VP_AGG_INVOICE))
		rc = wr_invoice_apply(t, ev, why, why_cap);
	else
		rc = 0; /* tenant done above; later aggregates do not touch this model */
	if (rc < 0)
		return rc;
	return idem ? apply_idem(s, t, ev, idem) : 0;
}

void wr_state_idem_done(WrState *s, const char *tenant_id, const char *command_id,
			const char *position)
{
	WrTenant *t = wr_state_tenant(s, tenant_id);
	WrIdem *k = t ? wr_idem_get(&t->idem, command_id) : NULL;
	if (!k)
		return;
	copy_str(k->position, sizeof(k->position), position);
	k->pending = false;
}

void wr_state_idem_expire(WrState *s, WrTenant *t, int64_t now_us)
{
	s->idem_keys -= wr_idem_expire(&t->idem, now_us);
}

typedef struct ExpireAll {
	WrState *state;
	int64_t now_us;
} ExpireAll;

static void expire_tenant(void *value, void *arg)
{
	ExpireAll *all = arg;
	wr_state_idem_expire(all->state, value, all->now_us);
}

void wr_state_idem_expire_all(WrState *s, int64_t now_us)
{
	ExpireAll all = {.state = s, .now_us = now_us};
	wr_map_each(&s->tenants, expire_tenant, &all);
}
