/* The write model's evolve function (see state.h). */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_json.h"

static void free_tenant(void *value)
{
	WrTenant *t = value;
	wr_map_clear(&t->staff, free);
	wr_map_clear(&t->clients, free);
	wr_map_clear(&t->patients, free);
	wr_map_clear(&t->microchips, NULL); /* values are the patients' */
	wr_map_clear(&t->idem, free);
	free(t);
}

void wr_state_init(WrState *s)
{
	wr_map_init(&s->tenants);
}

void wr_state_clear(WrState *s)
{
	wr_map_clear(&s->tenants, free_tenant);
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

static int apply_tenant(WrState *s, const VpEvent *ev, char *why, size_t why_cap)
{
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

static int apply_staff(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	WrStaff *st = wr_map_get(&t->staff, ev->aggregate_id);
	if (!strcmp(ev->type, "StaffRegistered")) {
		st = insert_new(&t->staff, ev->aggregate_id, sizeof(*st));
		if (!st)
			return -1;
		st->active = true;
		copy_str(st->role, sizeof(st->role), vp_json_str(ev->data, "role"));
	} else if (!st) {
		snprintf(why, why_cap, "%s for unknown staff %s", ev->type, ev->aggregate_id);
		return -1;
	} else if (!strcmp(ev->type, "StaffDeactivated")) {
		st->active = false;
	}
	st->version = ev->seq;
	return 0;
}

static int apply_client(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	WrClient *c = wr_map_get(&t->clients, ev->aggregate_id);
	if (!strcmp(ev->type, "ClientRegistered")) {
		c = insert_new(&t->clients, ev->aggregate_id, sizeof(*c));
		if (!c)
			return -1;
		c->active = true;
	} else if (!c) {
		snprintf(why, why_cap, "%s for unknown client %s", ev->type, ev->aggregate_id);
		return -1;
	} else if (!strcmp(ev->type, "ClientDeactivated")) {
		c->active = false;
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
	if (!strcmp(ev->type, "PatientRegistered")) {
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
	} else if (!strcmp(ev->type, "PatientTransferred")) {
		copy_str(p->client_id, sizeof(p->client_id), vp_json_str(ev->data, "to_client_id"));
	} else if (!strcmp(ev->type, "PatientDied")) {
		p->alive = false;
		if (p->microchip[0] && wr_map_get(&t->microchips, p->microchip) == p)
			wr_map_remove(&t->microchips, p->microchip);
	}
	p->version = ev->seq;
	return oom ? -1 : 0;
}

static int apply_idem(WrTenant *t, const VpEvent *ev, const char *request_hash,
		      const char *position, bool pending)
{
	WrIdem *k = insert_new(&t->idem, ev->command_id, sizeof(*k));
	if (!k)
		return -1;
	copy_str(k->request_hash, sizeof(k->request_hash), request_hash);
	copy_str(k->aggregate_id, sizeof(k->aggregate_id), ev->aggregate_id);
	copy_str(k->event_type, sizeof(k->event_type), ev->type);
	copy_str(k->position, sizeof(k->position), position);
	k->version = ev->seq;
	k->status = ev->seq == 1 ? 201 : 200;
	k->pending = pending;
	return 0;
}

int wr_state_apply(WrState *s, const VpEvent *ev, const char *request_hash, const char *position,
		   bool pending, char *why, size_t why_cap)
{
	int rc;
	snprintf(why, why_cap, "out of memory");
	if (!strcmp(ev->aggregate, "tenant")) {
		rc = apply_tenant(s, ev, why, why_cap);
		if (rc < 0)
			return rc;
	}
	WrTenant *t = wr_map_get(&s->tenants, ev->tenant_id);
	if (!t) {
		snprintf(why, why_cap, "event for unknown tenant %s", ev->tenant_id);
		return -1;
	}
	if (!strcmp(ev->aggregate, "staff"))
		rc = apply_staff(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, "client"))
		rc = apply_client(t, ev, why, why_cap);
	else if (!strcmp(ev->aggregate, "patient"))
		rc = apply_patient(t, ev, why, why_cap);
	else
		rc = 0; /* tenant done above; later aggregates do not touch this model */
	if (rc < 0)
		return rc;
	return apply_idem(t, ev, request_hash, position, pending);
}

void wr_state_idem_done(WrState *s, const char *tenant_id, const char *command_id,
			const char *position)
{
	WrTenant *t = wr_state_tenant(s, tenant_id);
	WrIdem *k = t ? wr_map_get(&t->idem, command_id) : NULL;
	if (!k)
		return;
	copy_str(k->position, sizeof(k->position), position);
	k->pending = false;
}
