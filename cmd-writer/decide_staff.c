/* Staff commands: RegisterStaff, DeactivateStaff. */
#include <string.h>

#include "decide.h"
#include "vp_jwt.h"

static const char *const staff_roles[] = {"veterinarian", "nurse", "receptionist", "admin", NULL};

static int decide_register(WrDecision *d, VpError *err)
{
	if (wr_map_get(&d->tenant->staff, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "staff %s already exists",
				    d->target_id);
	d->aggregate = "staff";
	d->type = "StaffRegistered";
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
	d->aggregate = "staff";
	d->type = "StaffDeactivated";
	d->seq = st->version + 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

static const VpJsonField register_fields[] = {
	{.name = "name", .type = VP_JSON_STRING, .required = true, .max_len = 200, .min_len = 1},
	{.name = "role", .type = VP_JSON_STRING, .required = true, .enum_values = staff_roles},
	{.name = "email", .type = VP_JSON_STRING, .max_len = 254},
	{.name = "license_number", .type = VP_JSON_STRING, .max_len = 64},
	{.name = "id", .type = VP_JSON_UUID},
	{.name = "command_id", .type = VP_JSON_STRING, .max_len = 255, .min_len = 1},
};

static const VpJsonField deactivate_fields[] = {
	{.name = "reason", .type = VP_JSON_STRING, .max_len = 500},
	{.name = "command_id", .type = VP_JSON_STRING, .max_len = 255, .min_len = 1},
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
