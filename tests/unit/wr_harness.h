/* What the writer's unit tests share: a command by name, a decided event
 * taken into the model the way the writer takes it (encoded, checked against
 * the event catalog, applied), so every test's decisions also prove their
 * events pass the catalog, and a Fixture that runs commands (field table,
 * validate, decide, apply every event) and keeps the last command's events.
 * Included by tests/unit/test_wr_*.c only. */
#ifndef WR_HARNESS_H
#define WR_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "state.h"
#include "vp_catalog.h"
#include "vp_event.h"

static inline const WrCommand *wr_test_command(const char *name)
{
	const WrCommand *c = wr_command_by_name(name);
	if (!c)
		fail_msg("no command %s", name);
	return c;
}

/* What the writer does with a body before anything is appended: the field
 * table, the command's own validation, then its decision on d (d->body set). */
static inline int wr_test_decide(const WrCommand *c, WrDecision *d, VpError *err)
{
	vp_error_clear(err);
	vp_json_check(d->body, c->fields, c->n_fields, false, err);
	if (c->validate)
		c->validate(d->body, d->now_us, err);
	return vp_error_finish_validation(err) ? -1 : c->decide(d, err);
}

/* An event under command_id into s, remembered under it when idem is given
 * (a client's key): fails the test when the catalog or the model refuses it.
 * data stays the caller's. */
static inline void wr_test_apply_as(WrState *s, const char *tenant_id, const char *aggregate,
				    const char *aggregate_id, const char *type, int64_t seq,
				    cJSON *data, int64_t at_us, const char *command_id,
				    const WrIdemNote *idem)
{
	char why[256];
	VpEvent ev = {.v = 1, .seq = seq, .data = data, .at_us = at_us};
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", tenant_id);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", aggregate);
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", aggregate_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "%s", command_id);
	snprintf(ev.id, sizeof(ev.id), "%s", tenant_id);
	snprintf(ev.actor, sizeof(ev.actor), "unit");
	char *text = vp_event_encode(&ev);
	assert_non_null(text);
	if (vp_catalog_check_encoded(text, strlen(text), why, sizeof(why)) < 0)
		fail_msg("%s refused by the catalog: %s (%s)", type, why, text);
	free(text);
	if (wr_state_apply(s, &ev, idem, why, sizeof(why)) < 0)
		fail_msg("%s refused by the model: %s", type, why);
}

/* Event `n` of the test (its command id) into s, under a writer-made id. */
static inline void wr_test_apply(WrState *s, const char *tenant_id, const char *aggregate,
				 const char *aggregate_id, const char *type, int64_t seq,
				 cJSON *data, int64_t at_us, int n)
{
	char command_id[32];
	snprintf(command_id, sizeof(command_id), "cmd-%d", n);
	wr_test_apply_as(s, tenant_id, aggregate, aggregate_id, type, seq, data, at_us, command_id,
			 NULL);
}

/* One tenant's write model and the commands run on it: who acts, when, and
 * what the last command decided. */
typedef struct Fixture {
	WrState state;
	const char *tenant_id; /* every command's and event's tenant */
	int64_t now;
	unsigned roles;
	const char *actor;
	const char *key; /* a client's idempotency key for the next command, or NULL */
	int events;	 /* applied so far: a refusal must not add any */
	cJSON *log;	 /* when not NULL, every applied event (see apply) */
	cJSON *last[WR_MAX_COMMAND_EVENTS]; /* data of the last command's events */
	char last_types[WR_MAX_COMMAND_EVENTS][48];
	char last_ids[WR_MAX_COMMAND_EVENTS][37];
	int64_t last_seqs[WR_MAX_COMMAND_EVENTS];
	size_t n_last;
} Fixture;

/* An empty model for tenant_id, acting as "unit" with no roles at time 0. */
static inline Fixture *fixture_new(const char *tenant_id)
{
	Fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	wr_state_init(&f->state);
	f->tenant_id = tenant_id;
	f->actor = "unit";
	return f;
}

static inline void clear_last(Fixture *f)
{
	for (size_t i = 0; i < f->n_last; i++)
		cJSON_Delete(f->last[i]);
	f->n_last = 0;
}

static inline Fixture *fixture_free(Fixture *f)
{
	if (!f)
		return NULL;
	clear_last(f);
	wr_state_clear(&f->state);
	cJSON_Delete(f->log);
	free(f);
	return NULL;
}

static inline WrTenant *tenant(Fixture *f)
{
	return wr_state_tenant(&f->state, f->tenant_id);
}

/* One decided event into the model, through the catalog as the writer does;
 * with f->key, remembered under it as a client's key is. With f->log, also
 * appended there as {type, aggregate, aggregate_id, seq, at_us, data}. */
static inline void apply(Fixture *f, const char *aggregate, const char *aggregate_id,
			 const char *type, int64_t seq, cJSON *data)
{
	if (f->key) {
		const WrIdemNote idem = {.request_hash = "hash", .position = "", .pending = true};
		wr_test_apply_as(&f->state, f->tenant_id, aggregate, aggregate_id, type, seq, data,
				 f->now, f->key, &idem);
	} else {
		wr_test_apply(&f->state, f->tenant_id, aggregate, aggregate_id, type, seq, data,
			      f->now, f->events);
	}
	f->events++;
	if (f->log) {
		cJSON *rec = cJSON_CreateObject();
		assert_non_null(rec);
		cJSON_AddStringToObject(rec, "type", type);
		cJSON_AddStringToObject(rec, "aggregate", aggregate);
		cJSON_AddStringToObject(rec, "aggregate_id", aggregate_id);
		cJSON_AddNumberToObject(rec, "seq", (double)seq);
		cJSON_AddNumberToObject(rec, "at_us", (double)f->now);
		cJSON_AddItemToObject(rec, "data", cJSON_Duplicate(data, true));
		cJSON_AddItemToArray(f->log, rec);
	}
	snprintf(f->last_types[f->n_last], sizeof(f->last_types[0]), "%s", type);
	snprintf(f->last_ids[f->n_last], sizeof(f->last_ids[0]), "%s", aggregate_id);
	f->last_seqs[f->n_last] = seq;
	f->last[f->n_last++] = cJSON_Duplicate(data, true);
}

/* Runs command `name` on target (and item, for commands on a line or batch);
 * on success every decided event is in the model and in f->last. */
static inline int run_item(Fixture *f, const char *name, const char *target, const char *item,
			   const char *body_json, int64_t if_match, VpError *err)
{
	const WrCommand *c = wr_test_command(name);
	cJSON *body = cJSON_Parse(body_json);
	assert_non_null(body);
	WrDecision d = {.state = &f->state,
			.tenant = tenant(f),
			.tenant_id = f->tenant_id,
			.target_id = target,
			.item_id = item,
			.body = body,
			.if_match = if_match,
			.now_us = f->now,
			.actor = f->actor,
			.roles = f->roles};
	clear_last(f);
	int rc = wr_test_decide(c, &d, err);
	if (rc == 0) {
		apply(f, d.aggregate, target, d.type, d.seq, d.data);
		for (size_t i = 0; i < d.n_more; i++)
			apply(f, d.more[i].aggregate, d.more[i].aggregate_id, d.more[i].type,
			      d.more[i].seq, d.more[i].data);
	}
	wr_decision_release(&d);
	cJSON_Delete(body);
	return rc;
}

static inline void ok_item(Fixture *f, const char *name, const char *target, const char *item,
			   const char *body)
{
	VpError err;
	if (run_item(f, name, target, item, body, -1, &err) != 0)
		fail_msg("%s %s refused: %d %s %s", name, body, err.status, err.code, err.message);
}

static inline void ok(Fixture *f, const char *name, const char *target, const char *body)
{
	ok_item(f, name, target, NULL, body);
}

/* Expects a refusal with status and code, and no event. */
static inline void refused_item(Fixture *f, const char *name, const char *target, const char *item,
				const char *body, int status, const char *code)
{
	VpError err;
	int before = f->events;
	assert_int_equal(run_item(f, name, target, item, body, -1, &err), -1);
	if (err.status != status || strcmp(err.code, code) != 0)
		fail_msg("%s %s: want %d %s, got %d %s (%s)", name, body, status, code, err.status,
			 err.code, err.message);
	assert_int_equal(f->events, before);
}

static inline void refused(Fixture *f, const char *name, const char *target, const char *body,
			   int status, const char *code)
{
	refused_item(f, name, target, NULL, body, status, code);
}

/* Field `name` of the last command's event i. */
static inline const char *last_str(Fixture *f, size_t i, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->last[i], name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline long long last_num(Fixture *f, size_t i, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->last[i], name);
	assert_true(cJSON_IsNumber(v));
	return (long long)v->valuedouble;
}

#endif
