/* import_plan.c: which batch of a tenant import carries each key record of
 * the file (docs/privacy.md, "Export and import"). */
#ifndef VC_IMPORT_PLAN_H
#define VC_IMPORT_PLAN_H

#include <stddef.h>

#include "tenant_keys.h"

/* Each record is due at an event index: a client's at its client's first
 * event in the file, the tenant's and those of clients without an event at
 * 0. A batch [from, end) carries the records due inside it, so whatever
 * the batch boundaries (a resume, another --batch, --in-flight), every
 * record lands with or before the first event that needs it, and once. */
typedef struct VcPlan {
	const VcKeyLines *keys; /* borrowed */
	size_t *by_client;      /* record indexes of clients, sorted by client id */
	size_t n_clients;
	size_t prefix;          /* of a client record's name: "client:<tenant>:" */
	long long *due;  /* per record: its event index (-1: not seen yet) */
	size_t *order;   /* record indexes sorted by due (after vc_plan_finish) */
	size_t *bytes;   /* per record: what it takes in a body */
} VcPlan;

/* An import file's key line into k: 1 taken, 0 not a key line, -1 a
 * malformed one (why). Appended as read, not merged by name
 * (vc_keys_remember): an export writes each name once, and vc_plan_init
 * refuses a name twice. */
int vc_plan_parse_line(VcKeyLines *k, const char *line, char *why, size_t why_cap);

/* The plan of keys (their tenant's), every record due at 0 until events say
 * otherwise. 0, or -1 with why (out of memory, a name twice). */
int vc_plan_init(VcPlan *p, const VcKeyLines *keys, const char *tenant, char *why,
		 size_t why_cap);
/* The event at index is of aggregate client_id (a client, else call it
 * not): its client's record becomes due there if it is the first. The
 * bytes of the records that became due (0: none). */
size_t vc_plan_event(VcPlan *p, const char *client_id, long long index);
/* After the last event: the records ordered by due. The bytes of those due
 * at 0. 0, or -1 (out of memory). */
int vc_plan_finish(VcPlan *p, size_t *at_zero);
/* The records due in [from, end): order[*lo .. *hi). */
void vc_plan_range(const VcPlan *p, long long from, long long end, size_t *lo, size_t *hi);
/* The bytes of the records due at index exactly. */
size_t vc_plan_bytes_at(const VcPlan *p, long long index);
/* The same from order[*pos] on (the first record due at index, or after
 * it: then 0), *pos moved past them: a batch built event by event walks the
 * order once. */
size_t vc_plan_due_at(const VcPlan *p, long long index, size_t *pos);
/* What a record takes in a body: {"name":"...","value":"..."}, escaped. */
size_t vc_plan_record_bytes(const char *name, const char *value);
void vc_plan_release(VcPlan *p);

#endif
