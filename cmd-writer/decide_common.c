/* Helpers shared by the decide_<aggregate>.c files. */
#include "decide.h"

int wr_check_version(const WrDecision *d, int64_t current, VpError *err)
{
	if (d->if_match >= 0 && d->if_match != current)
		return vp_error_set(err, 412, VP_ERR_VERSION, "If-Match %lld but version is %lld",
				    (long long)d->if_match, (long long)current);
	return 0;
}

void wr_copy_field(cJSON *data, const cJSON *body, const char *name)
{
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(body, name);
	cJSON *copy = value ? cJSON_Duplicate(value, true) : cJSON_CreateNull();
	if (copy)
		cJSON_AddItemToObject(data, name, copy);
}

int wr_not_found(VpError *err, const char *what, const char *id)
{
	return vp_error_set(err, 404, VP_ERR_NOT_FOUND, "%s %s not found", what, id);
}
