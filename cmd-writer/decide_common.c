/* Helpers shared by the decide_<aggregate>.c files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_time.h"

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

const WrStaff *wr_active_vet(const WrDecision *d, const char *id, VpError *err)
{
	const WrStaff *st = wr_map_get(&d->tenant->staff, id);
	if (!st) {
		wr_not_found(err, "staff", id);
		return NULL;
	}
	if (!st->active) {
		vp_error_set(err, 409, "STAFF_INACTIVE", "staff %s is inactive", id);
		return NULL;
	}
	if (strcmp(st->role, VP_STAFF_ROLE_VET) != 0) {
		vp_error_set(err, 409, "NOT_A_VETERINARIAN", "staff %s is not a veterinarian", id);
		return NULL;
	}
	return st;
}

int64_t wr_body_time(const cJSON *body, const char *name)
{
	const char *text = vp_json_str(body, name);
	int64_t us = 0;
	if (text)
		vp_time_parse_rfc3339(text, strlen(text), &us);
	return us;
}

void wr_add_time(cJSON *data, const char *name, int64_t us)
{
	char text[VP_TIME_RFC3339_MAX] = "";
	/* An unformattable instant leaves "" and the catalog check refuses the
	 * event: never bytes the buffer happened to hold. */
	vp_time_format_rfc3339(us, text, sizeof(text));
	cJSON_AddStringToObject(data, name, text);
}

int wr_decision_add(WrDecision *d, const char *aggregate, const char *aggregate_id,
		    const char *type, int64_t seq, cJSON *data, VpError *err)
{
	if (!data || d->n_more >= WR_MAX_COMMAND_EVENTS - 1) {
		cJSON_Delete(data);
		return vp_error_set(err, 500, VP_ERR_INTERNAL, "cannot decide the %s event", type);
	}
	WrDecidedEvent *e = &d->more[d->n_more++];
	e->aggregate = aggregate;
	snprintf(e->aggregate_id, sizeof(e->aggregate_id), "%s", aggregate_id);
	e->type = type;
	e->seq = seq;
	e->data = data;
	return 0;
}

void wr_decision_release(WrDecision *d)
{
	cJSON_Delete(d->data);
	d->data = NULL;
	for (size_t i = 0; i < d->n_more; i++) {
		cJSON_Delete(d->more[i].data);
		d->more[i].data = NULL;
	}
	d->n_more = 0;
}

/* The shortest %.*g text of x that strtod reads back as x. */
static void shortest_text(double x, char *out, size_t cap)
{
	for (int digits = 1; digits <= 17; digits++) {
		snprintf(out, cap, "%.*e", digits - 1, x);
		if (strtod(out, NULL) == x)
			return;
	}
}

/* "d.ddde[+-]XX" as thousandths; -1 when more than three places remain. */
static int scientific_milli(const char *text, int64_t *milli)
{
	char digits[24];
	size_t n = 0;
	const char *p = text;
	bool negative = *p == '-';
	if (negative)
		p++;
	for (; *p && *p != 'e' && n < sizeof(digits); p++)
		if (*p >= '0' && *p <= '9')
			digits[n++] = *p;
	if (*p != 'e')
		return -1;
	/* digits = d ddd..., the value is 0.dddd × 10^(exponent + 1) */
	long places = (long)n - 1 - strtol(p + 1, NULL, 10);
	while (places > 0 && n > 1 && digits[n - 1] == '0') {
		n--;
		places--;
	}
	if (places > 3 || (long)n - places > 13)
		return -1;
	int64_t value = 0;
	for (size_t i = 0; i < n; i++)
		value = value * 10 + (digits[i] - '0');
	for (long scale = places; scale < 3; scale++)
		value *= 10;
	*milli = negative ? -value : value;
	return 0;
}

int wr_decimal_milli(const cJSON *v, int64_t *milli)
{
	char text[40];
	if (!cJSON_IsNumber(v) || !(v->valuedouble == v->valuedouble) ||
	    v->valuedouble > 1e13 || v->valuedouble < -1e13)
		return -1;
	if (v->valuedouble == 0) {
		*milli = 0;
		return 0;
	}
	shortest_text(v->valuedouble, text, sizeof(text));
	if (scientific_milli(text, milli) < 0)
		return -1;
	return *milli > VP_MAX_QUANTITY_MILLI || *milli < -VP_MAX_QUANTITY_MILLI ? -1 : 0;
}

int32_t wr_tenant_today(const WrDecision *d)
{
	return wr_local_date(WR_ZONEINFO_DIR, d->tenant->timezone, d->now_us);
}
