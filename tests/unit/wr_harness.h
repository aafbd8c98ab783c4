/* What the writer's unit tests share: a command by name, and a decided event
 * taken into the model the way the writer takes it (encoded, checked against
 * the event catalog, applied), so every test's decisions also prove their
 * events pass the catalog. Included by tests/unit/test_wr_*.c only. */
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

/* Event `n` of the test (its command id) into s: fails the test when the
 * catalog or the model refuses it. data stays the caller's. */
static inline void wr_test_apply(WrState *s, const char *tenant_id, const char *aggregate,
				const char *aggregate_id, const char *type, int64_t seq,
				cJSON *data, int64_t at_us, int n)
{
	char why[256];
	VpEvent ev = {.v = 1, .seq = seq, .data = data, .at_us = at_us};
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", tenant_id);
	snprintf(ev.aggregate, sizeof(ev.aggregate), "%s", aggregate);
	snprintf(ev.aggregate_id, sizeof(ev.aggregate_id), "%s", aggregate_id);
	snprintf(ev.command_id, sizeof(ev.command_id), "cmd-%d", n);
	snprintf(ev.id, sizeof(ev.id), "%s", tenant_id);
	snprintf(ev.actor, sizeof(ev.actor), "unit");
	char *text = vp_event_encode(&ev);
	assert_non_null(text);
	if (vp_catalog_check_encoded(text, strlen(text), why, sizeof(why)) < 0)
		fail_msg("%s refused by the catalog: %s (%s)", type, why, text);
	free(text);
	if (wr_state_apply(s, &ev, NULL, why, sizeof(why)) < 0)
		fail_msg("%s refused by the model: %s", type, why);
}

#endif
