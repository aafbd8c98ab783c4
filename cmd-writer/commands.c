/* The writer's command catalogue: every aggregate's table (decide_<aggregate>.c)
 * in routing order, and its description as JSON for `cmd-writer --list-commands`,
 * so tests and tools generate commands from the tables the writer routes by
 * rather than from a copy of them. */
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "vp_jwt.h"

const WrCommandTable wr_command_tables[] = {
	{wr_tenant_commands, &wr_n_tenant_commands},
	{wr_staff_commands, &wr_n_staff_commands},
	{wr_client_commands, &wr_n_client_commands},
	{wr_patient_commands, &wr_n_patient_commands},
	{wr_availability_commands, &wr_n_availability_commands},
	{wr_appointment_commands, &wr_n_appointment_commands},
	{wr_record_commands, &wr_n_record_commands},
	{wr_stock_commands, &wr_n_stock_commands},
	{wr_invoice_commands, &wr_n_invoice_commands},
};
const size_t wr_n_command_tables = sizeof(wr_command_tables) / sizeof(wr_command_tables[0]);

const WrCommand *wr_command_by_name(const char *name)
{
	for (size_t t = 0; t < wr_n_command_tables; t++)
		for (size_t i = 0; i < *wr_command_tables[t].n; i++)
			if (!strcmp(wr_command_tables[t].table[i].name, name))
				return &wr_command_tables[t].table[i];
	return NULL;
}

static const char *method_name(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "?";
	}
}

/* ["admin", "vet", ...] in bit order; NULL on out of memory. */
static cJSON *roles_describe(unsigned roles)
{
	cJSON *names = cJSON_CreateArray();
	for (unsigned bit = 1; names && bit; bit <<= 1) {
		const char *name = (roles & bit) ? vp_role_name(bit) : NULL;
		if (name && !cJSON_AddItemToArray(names, cJSON_CreateString(name))) {
			cJSON_Delete(names);
			names = NULL;
		}
	}
	return names;
}

/* {name, method, pattern, roles, creates, location_prefix, fields}; NULL on
 * out of memory. */
static cJSON *command_describe(const WrCommand *c)
{
	cJSON *out = cJSON_CreateObject();
	cJSON *roles = roles_describe(c->roles);
	cJSON *fields = vp_json_fields_describe(c->fields, c->n_fields);
	if (!out || !roles || !fields || !cJSON_AddStringToObject(out, "name", c->name) ||
	    !cJSON_AddStringToObject(out, "method", method_name(c->method)) ||
	    !cJSON_AddStringToObject(out, "pattern", c->pattern) ||
	    !cJSON_AddItemToObject(out, "roles", roles))
		goto fail;
	roles = NULL; /* out owns it now */
	if (!cJSON_AddBoolToObject(out, "creates", c->creates) ||
	    (c->location_prefix &&
	     !cJSON_AddStringToObject(out, "location_prefix", c->location_prefix)) ||
	    !cJSON_AddItemToObject(out, "fields", fields))
		goto fail;
	return out;
fail:
	cJSON_Delete(roles);
	cJSON_Delete(fields);
	cJSON_Delete(out);
	return NULL;
}

cJSON *wr_commands_describe(void)
{
	cJSON *all = cJSON_CreateArray();
	for (size_t t = 0; all && t < wr_n_command_tables; t++) {
		for (size_t i = 0; all && i < *wr_command_tables[t].n; i++) {
			cJSON *one = command_describe(&wr_command_tables[t].table[i]);
			if (!one || !cJSON_AddItemToArray(all, one)) {
				cJSON_Delete(one);
				cJSON_Delete(all);
				all = NULL;
			}
		}
	}
	return all;
}

int wr_commands_print(FILE *out)
{
	cJSON *all = wr_commands_describe();
	char *text = all ? cJSON_Print(all) : NULL;
	int rc = text && fprintf(out, "%s\n", text) >= 0 && fflush(out) == 0 ? 0 : -1;
	cJSON_free(text);
	cJSON_Delete(all);
	return rc;
}
