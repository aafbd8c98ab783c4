/* Client commands: RegisterClient, UpdateClientContact, DeactivateClient. */
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"

static int decide_register(WrDecision *d, VpError *err)
{
	if (wr_map_get(&d->tenant->clients, d->target_id))
		return vp_error_set(err, 409, "ALREADY_EXISTS", "client %s already exists",
				    d->target_id);
	d->aggregate = VP_AGG_CLIENT;
	d->type = VP_EV_CLIENT_REGISTERED;
	d->seq = 1;
	d->data = cJSON_CreateObject();
	static const char *const fields[] = {"first_name", "last_name", "email", "phone", "address"};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		wr_copy_field(d->data, d->body, fields[i]);
	return 0;
}

/* Refuses a change to a missing or inactive client, or one that names nothing. */
static const WrClient *existing_client(WrDecision *d, VpError *err)
{
	const WrClient *c = wr_map_get(&d->tenant->clients, d->target_id);
	if (!c) {
		wr_not_found(err, "client", d->target_id);
		return NULL;
	}
	if (wr_check_version(d, c->version, err) < 0)
		return NULL;
	if (!c->active) {
		vp_error_set(err, 409, "INVALID_STATE", "client %s is inactive", d->target_id);
		return NULL;
	}
	return c;
}

static void validate_update(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	if (!cJSON_GetObjectItemCaseSensitive(body, "email") &&
	    !cJSON_GetObjectItemCaseSensitive(body, "phone") &&
	    !cJSON_GetObjectItemCaseSensitive(body, "address"))
		vp_error_add_detail(err, "body", "must contain email, phone or address");
}

static int decide_update(WrDecision *d, VpError *err)
{
	const WrClient *c = existing_client(d, err);
	if (!c)
		return -1;
	d->aggregate = VP_AGG_CLIENT;
	d->type = VP_EV_CLIENT_CONTACT_UPDATED;
	d->seq = c->version + 1;
	d->data = cJSON_CreateObject();
	static const char *const fields[] = {"email", "phone", "address"};
	for (size_t i = 0; i < 3; i++)
		if (cJSON_GetObjectItemCaseSensitive(d->body, fields[i]))
			wr_copy_field(d->data, d->body, fields[i]);
	return 0;
}

static int decide_deactivate(WrDecision *d, VpError *err)
{
	const WrClient *c = existing_client(d, err);
	if (!c)
		return -1;
	d->aggregate = VP_AGG_CLIENT;
	d->type = VP_EV_CLIENT_DEACTIVATED;
	d->seq = c->version + 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

/* EraseClient (docs/privacy.md): an inactive client may be erased too; an
 * erased one is not erased again. The event's transaction also carries the
 * erasure marker of the client's key (keys.c). */
static int decide_erase(WrDecision *d, VpError *err)
{
	const WrClient *c = wr_map_get(&d->tenant->clients, d->target_id);
	if (!c)
		return wr_not_found(err, "client", d->target_id);
	if (wr_check_version(d, c->version, err) < 0)
		return -1;
	if (c->erased)
		return vp_error_set(err, 409, "INVALID_STATE", "client %s is already erased",
				    d->target_id);
	d->aggregate = VP_AGG_CLIENT;
	d->type = VP_EV_CLIENT_ERASED;
	d->seq = c->version + 1;
	d->data = cJSON_CreateObject();
	wr_copy_field(d->data, d->body, "reason");
	return 0;
}

static const VpJsonField register_fields[] = {
	VP_F_FIRST_NAME, VP_F_LAST_NAME, VP_F_EMAIL, VP_F_PHONE, VP_F_ADDRESS,
	{.name = "id", .type = VP_JSON_UUID},
	VP_F_COMMAND_ID,
};

static const VpJsonField update_fields[] = {
	VP_F_EMAIL, VP_F_PHONE, VP_F_ADDRESS,
	VP_F_COMMAND_ID,
};

static const VpJsonField erase_fields[] = {
	VP_F_CANCEL_REASON,
	VP_F_COMMAND_ID,
};

static const VpJsonField deactivate_fields[] = {
	VP_F_REASON,
	VP_F_COMMAND_ID,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
const WrCommand wr_client_commands[] = {
	{"RegisterClient", EVHTTP_REQ_POST, "/v1/clients", VP_ROLE_ADMIN | VP_ROLE_RECEPTION,
	 register_fields, N(register_fields), true, "/v1/clients/", NULL, decide_register},
	{"UpdateClientContact", EVHTTP_REQ_PATCH, "/v1/clients/{id}",
	 VP_ROLE_ADMIN | VP_ROLE_RECEPTION, update_fields, N(update_fields), false, NULL,
	 validate_update, decide_update},
	{"DeactivateClient", EVHTTP_REQ_POST, "/v1/clients/{id}/deactivate", VP_ROLE_ADMIN,
	 deactivate_fields, N(deactivate_fields), false, NULL, NULL, decide_deactivate},
	{"EraseClient", EVHTTP_REQ_POST, "/v1/clients/{id}/erase", VP_ROLE_ADMIN, erase_fields,
	 N(erase_fields), false, NULL, NULL, decide_erase},
};
const size_t wr_n_client_commands = N(wr_client_commands);
