/* The writer's tenant import (cmd-writer/import.c) against its model: what a
 * batch must be, where it may start (an empty probe, a batch that already
 * landed, a gap), a tenant that exists, and the model after a batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vp_time.h"
#include "vp_uuid.h"
#include "writer.h"

#define DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER  "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void new_id(char out[37])
{
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, out);
}

/* An encoded envelope of the tenant; malloc'd. */
static char *envelope(const char *tenant, const char *type, const char *aggregate,
		      const char *aggregate_id, int seq, const char *data)
{
	VpEvent ev = {.v = 1, .seq = seq, .at_us = vp_time_now_us()};
	new_id(ev.id);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", tenant);
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", aggregate);
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", aggregate_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "cmd-%s", ev.id);
	snprintf(ev.actor, sizeof(ev.actor), "old-deployment-user");
	ev.data = cJSON_Parse(data);
	assert_non_null(ev.data);
	char *text = vp_event_encode(&ev);
	cJSON_Delete(ev.data);
	assert_non_null(text);
	return text;
}

static char *provisioned(const char *tenant)
{
	return envelope(tenant, "TenantProvisioned", "tenant", tenant, 1,
			"{\"name\":\"Clinic\",\"timezone\":\"UTC\",\"currency\":\"EUR\"}");
}

static char *client(const char *tenant)
{
	char id[37];
	new_id(id);
	return envelope(tenant, "ClientRegistered", "client", id, 1,
			"{\"first_name\":\"Ann\",\"last_name\":\"Smith\"}");
}

/* {"import":digest,"from":from,"events":[lines...]} */
static cJSON *body(const char *digest, long long from, char **lines, int n)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "import", digest);
	cJSON_AddNumberToObject(b, "from", (double)from);
	cJSON *events = cJSON_AddArrayToObject(b, "events");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(events, cJSON_CreateString(lines[i]));
	return b;
}

/* parse + position + apply, as the route runs them: 0 appended (to the
 * model), 1 nothing to append, -1 refused (err). */
static int import_batch(WrState *s, const char *tenant, cJSON *b, int64_t *next, VpError *err)
{
	WrImportBatch batch;
	size_t applied = 0;
	vp_error_clear(err);
	int rc = wr_import_parse(b, tenant, &batch, err);
	if (rc == 0)
		rc = wr_import_position(s, &batch, next, err);
	if (rc == 0)
		rc = wr_import_apply(s, &batch, &applied, err);
	wr_import_release(&batch);
	cJSON_Delete(b);
	return rc;
}

static void a_batch_lands_once_and_the_import_resumes_at_next(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	int64_t next = -1;
	char tenant[37];
	new_id(tenant);
	wr_state_init(&s);
	char *lines[] = {provisioned(tenant), client(tenant), client(tenant)};

	/* the probe of a tenant this deployment does not know: start at 0 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 0), &next, &err), 1);
	assert_int_equal(next, 0);
	assert_null(wr_state_tenant(&s, tenant));
	/* the first two events: the model has the tenant and knows where the import is */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 2), &next, &err), 0);
	const WrTenant *t = wr_state_tenant(&s, tenant);
	assert_non_null(t);
	assert_string_equal(t->import_digest, DIGEST);
	assert_int_equal(t->import_next, 2);
	/* the same batch again (its answer was lost): nothing appended, next is 2 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, lines, 2), &next, &err), 1);
	assert_int_equal(next, 2);
	/* a batch overlapping what landed, or leaving a gap: 409 with where to go on */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 1, lines + 1, 2), &next, &err), -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.code, WR_ERR_IMPORT_POSITION);
	assert_string_equal(err.details[0].issue, "must be 2");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 3, lines + 2, 1), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_IMPORT_POSITION);
	/* another file for this tenant is another tenant's history: refused */
	assert_int_equal(import_batch(&s, tenant, body(OTHER, 0, lines, 0), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	/* the rest, from 2 */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 2, lines + 2, 1), &next, &err), 0);
	assert_int_equal(wr_state_tenant(&s, tenant)->import_next, 3);
	for (int i = 0; i < 3; i++)
		free(lines[i]);
	wr_state_clear(&s);
}

static void a_tenant_made_here_is_never_imported_into(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	VpEvent ev;
	int64_t next;
	char tenant[37], why[256];
	new_id(tenant);
	wr_state_init(&s);
	char *line = provisioned(tenant);
	assert_int_equal(vp_event_decode(line, strlen(line), &ev, why, sizeof(why)), 0);
	assert_int_equal(wr_state_apply(&s, &ev, NULL, why, sizeof(why)), 0); /* a command's */
	vp_event_release(&ev);
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, &line, 0), &next, &err), -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, &line, 1), &next, &err), -1);
	assert_string_equal(err.code, WR_ERR_TENANT_EXISTS);
	free(line);
	wr_state_clear(&s);
}

static void bad_batches_are_refused_before_the_model(void **state)
{
	(void)state;
	WrState s;
	VpError err;
	int64_t next;
	char tenant[37], other[37];
	new_id(tenant);
	new_id(other);
	wr_state_init(&s);
	char *mine[] = {provisioned(tenant), client(tenant)};
	char *theirs[] = {provisioned(other)};
	char poison[] = "{\"id\":\"not an envelope\"}";
	char *poisoned[] = {mine[0], poison};

	/* the digest, from, events */
	assert_int_equal(import_batch(&s, tenant, body("ABC", 0, mine, 1), &next, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.details[0].field, "import");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, -1, mine, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "from");
	cJSON *numbers = body(DIGEST, 0, mine, 0);
	cJSON_AddItemToArray(cJSON_GetObjectItem(numbers, "events"), cJSON_CreateNumber(1));
	assert_int_equal(import_batch(&s, tenant, numbers, &next, &err), -1);
	assert_string_equal(err.details[0].field, "events");
	/* a line the catalog refuses, another tenant's, a first that provisions nothing */
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, poisoned, 2), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[1]");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, theirs, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[0]");
	assert_int_equal(import_batch(&s, tenant, body(DIGEST, 0, mine + 1, 1), &next, &err), -1);
	assert_string_equal(err.details[0].field, "events[0]");
	/* nothing of it reached the model */
	assert_null(wr_state_tenant(&s, tenant));
	assert_null(wr_state_tenant(&s, other));
	free(mine[0]);
	free(mine[1]);
	free(theirs[0]);
	wr_state_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_batch_lands_once_and_the_import_resumes_at_next),
		cmocka_unit_test(a_tenant_made_here_is_never_imported_into),
		cmocka_unit_test(bad_batches_are_refused_before_the_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
