/* A vet's published availability: PublishAvailability adds blocks (each at most
 * 24 h, disjoint from each other and from the blocks already published),
 * WithdrawAvailability subtracts a range from them unless an active appointment
 * of the vet overlaps it. Admins act for anyone; a vet only for themself (the
 * token's sub is the staff id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decide.h"
#include "vp_catalog.h"
#include "vp_jwt.h"
#include "vp_time.h"

#define MAX_BLOCK_US (24 * 3600 * VP_US_PER_SEC)
#define MAX_BLOCKS   500

static int require_own(const WrDecision *d, VpError *err)
{
	if (d->roles & VP_ROLE_ADMIN)
		return 0;
	if (d->actor && !strcasecmp(d->actor, d->target_id))
		return 0;
	return vp_error_set(err, 403, VP_ERR_FORBIDDEN,
			    "a vet manages only their own availability");
}

typedef struct IndexedBlock {
	WrInterval span;
	int index; /* in the body's array */
} IndexedBlock;

static int by_start(const void *a, const void *b)
{
	const IndexedBlock *x = a, *y = b;
	if (x->span.start != y->span.start)
		return x->span.start < y->span.start ? -1 : 1;
	return x->index - y->index;
}

/* Each block: end after start and at most 24 h later; and no two blocks of
 * the body overlap. Every bad block is reported. */
static void validate_publish(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(body, "blocks");
	const cJSON *block;
	int index = 0;
	size_t n_good = 0;
	char field[48];
	if (!cJSON_IsArray(blocks) || cJSON_GetArraySize(blocks) > MAX_BLOCKS)
		return; /* the field table reports it */
	IndexedBlock *good = calloc((size_t)cJSON_GetArraySize(blocks) + 1, sizeof(*good));
	if (!good) {
		vp_error_set(err, 503, VP_ERR_UNAVAILABLE, "out of memory");
		return;
	}
	cJSON_ArrayForEach(block, blocks)
	{
		int64_t start, end;
		const char *s = vp_json_str(block, "start"), *e = vp_json_str(block, "end");
		snprintf(field, sizeof(field), "blocks[%d].end", index);
		if (s && e && vp_time_parse_rfc3339(s, strlen(s), &start) == 0 &&
		    vp_time_parse_rfc3339(e, strlen(e), &end) == 0) {
			if (end <= start)
				vp_error_add_detail(err, field, "must be after start");
			else if (end - start > MAX_BLOCK_US)
				vp_error_add_detail(err, field, "must be at most 24 h after start");
			else
				good[n_good++] = (IndexedBlock){{start, end}, index};
		}
		index++;
	}
	qsort(good, n_good, sizeof(*good), by_start);
	for (size_t i = 1; i < n_good; i++) {
		if (good[i - 1].span.end > good[i].span.start) {
			snprintf(field, sizeof(field), "blocks[%d]", good[i].index);
			vp_error_add_detail(err, field, "overlaps blocks[%d]", good[i - 1].index);
		}
	}
	free(good);
}

static int decide_publish(WrDecision *d, VpError *err)
{
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(d->body, "blocks");
	int n = cJSON_GetArraySize(blocks), i = 0;
	const cJSON *block;
	size_t conflict = 0;
	if (require_own(d, err) < 0)
		return -1;
	const WrStaff *st = wr_map_get(&d->tenant->staff, d->target_id);
	if (!st)
		return wr_not_found(err, "staff", d->target_id);
	if (wr_check_version(d, st->version, err) < 0 || !wr_active_vet(d, d->target_id, err))
		return -1;
	WrInterval *spans = malloc((size_t)n * sizeof(*spans) + 1);
	if (!spans)
		return vp_error_set(err, 503, VP_ERR_UNAVAILABLE, "out of memory");
	cJSON_ArrayForEach(block, blocks)
	{
		spans[i].start = wr_body_time(block, "start");
		spans[i].end = wr_body_time(block, "end");
		i++;
	}
	int rc = wr_intervals_check_all(&st->blocks, spans, (size_t)n, &conflict);
	if (rc == -1)
		vp_error_set(err, 409, "SLOT_UNAVAILABLE",
			     "blocks[%zu] overlaps availability already published", conflict);
	else if (rc < 0)
		vp_error_set(err, 503, VP_ERR_UNAVAILABLE, "out of memory");
	if (rc == 0) {
		d->aggregate = VP_AGG_STAFF;
		d->type = VP_EV_AVAILABILITY_PUBLISHED;
		d->seq = st->version + 1;
		d->data = cJSON_CreateObject();
		cJSON *out = cJSON_AddArrayToObject(d->data, "blocks");
		for (i = 0; i < n; i++) {
			cJSON *item = cJSON_CreateObject();
			wr_add_time(item, "start", spans[i].start);
			wr_add_time(item, "end", spans[i].end);
			cJSON_AddItemToArray(out, item);
		}
	}
	free(spans);
	return rc < 0 ? -1 : 0;
}

static void validate_withdraw(const cJSON *body, int64_t now_us, VpError *err)
{
	(void)now_us;
	const char *s = vp_json_str(body, "start"), *e = vp_json_str(body, "end");
	int64_t start, end;
	if (s && e && vp_time_parse_rfc3339(s, strlen(s), &start) == 0 &&
	    vp_time_parse_rfc3339(e, strlen(e), &end) == 0 && end <= start)
		vp_error_add_detail(err, "end", "must be after start");
}

/* Withdrawing a range that holds no block is accepted (the event records the
 * intent; subtracting nothing changes nothing). */
static int decide_withdraw(WrDecision *d, VpError *err)
{
	int64_t start = wr_body_time(d->body, "start"), end = wr_body_time(d->body, "end");
	if (require_own(d, err) < 0)
		return -1;
	const WrStaff *st = wr_map_get(&d->tenant->staff, d->target_id);
	if (!st)
		return wr_not_found(err, "staff", d->target_id);
	if (wr_check_version(d, st->version, err) < 0)
		return -1;
	if (strcmp(st->role, VP_STAFF_ROLE_VET) != 0)
		return vp_error_set(err, 409, "NOT_A_VETERINARIAN", "staff %s is not a veterinarian",
				    d->target_id);
	if (wr_intervals_overlaps(&st->booked, start, end, NULL))
		return vp_error_set(err, 409, "INVALID_STATE",
				    "an active appointment of the vet overlaps the range");
	d->aggregate = VP_AGG_STAFF;
	d->type = VP_EV_AVAILABILITY_WITHDRAWN;
	d->seq = st->version + 1;
	d->data = cJSON_CreateObject();
	wr_add_time(d->data, "start", start);
	wr_add_time(d->data, "end", end);
	return 0;
}

#define CMD_ID VP_F_COMMAND_ID
static const VpJsonField block_fields[] = {
	VP_F_START,
	VP_F_END,
};
static const VpJsonField publish_fields[] = {
	{.name = "blocks", .type = VP_JSON_ARRAY, .required = true, .min_len = 1,
	 .max_len = MAX_BLOCKS, .fields = block_fields, .n_fields = 2},
	CMD_ID,
};
static const VpJsonField withdraw_fields[] = {
	VP_F_START,
	VP_F_END,
	CMD_ID,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
const WrCommand wr_availability_commands[] = {
	{"PublishAvailability", EVHTTP_REQ_POST, "/v1/staff/{id}/availability",
	 VP_ROLE_ADMIN | VP_ROLE_VET, publish_fields, N(publish_fields), false, NULL,
	 validate_publish, decide_publish},
	{"WithdrawAvailability", EVHTTP_REQ_POST, "/v1/staff/{id}/availability/withdraw",
	 VP_ROLE_ADMIN | VP_ROLE_VET, withdraw_fields, N(withdraw_fields), false, NULL,
	 validate_withdraw, decide_withdraw},
};
const size_t wr_n_availability_commands = N(wr_availability_commands);
