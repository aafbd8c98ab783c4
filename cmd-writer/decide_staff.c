/* Staff commands: RegisterStaff, DeactivateStaff. */
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"

static int decide_register(WrDecision *d, VpError *err)
{
	if (wr_map_get(&d->tenant->staff, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "staff %s already exists",
				    d->target_id);
	d->aggregate = VP_AGG_STAFF;
	d->type = VP_EV_STAFF_REGISTERED;
	d->seq = 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "name");
	wr_copy_field(d->data, d->body, "role");
	wr_copy_field(d->data, d->body, "email");
	wr_copy_field(d->data, d->body, "license_number");
	return 0;
}

static int decide_deactivate(WrDecision *d, VpError *err)
{
	const WrStaff *st = wr_map_get(&d->tenant->staff, d->target_id);
	if (!st)
		return wr_not_found(err, "staff", d->target_id);
	if (wr_check_version(d, st->version, err) < 0)
		return -1;
	if (!st->active)
		return vp_error_set(err, 409, "INVALID_STATE", "staff %s is already inactive",
				    d->target_id);
	d->aggregate = VP_AGG_STAFF;
	d->type = VP_EV_STAFF_DEACTIVATED;
	d->seq = st->version + 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

static const VpJsonField register_fields[] = {
	VP_F_STAFF_NAME,
	VP_F_STAFF_ROLE,
	VP_F_EMAIL,
	VP_F_LICENSE_NUMBER,
	{.name = "id", .type = VP_JSON_UUID},
	VP_F_COMMAND_ID,
};

static const VpJsonField deactivate_fields[] = {
	VP_F_REASON,
	VP_F_COMMAND_ID,
};

const WrCommand wr_staff_commands[] = {
	{"RegisterStaff", EVHTTP_REQ_POST, "/v1/staff", VP_ROLE_ADMIN, register_fields,
	 sizeof(register_fields) / sizeof(register_fields[0]), true, "/v1/staff/", NULL,
	 decide_register},
	{"DeactivateStaff", EVHTTP_REQ_POST, "/v1/staff/{id}/deactivate", VP_ROLE_ADMIN,
	 deactivate_fields, sizeof(deactivate_fields) / sizeof(deactivate_fields[0]), false, NULL,
	 NULL, decide_deactivate},
};
const size_t wr_n_staff_commands = sizeof(wr_staff_commands) / sizeof(wr_staff_commands[0]);
