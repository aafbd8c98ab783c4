/* Scheduling queries: free intervals of a vet and of every vet (published
 * blocks minus active appointments, as PostgreSQL 15 multiranges, merged and
 * clipped to [from, to) in one statement), appointments by start time, one
 * appointment, the day's dashboard and the daily statistics. Windows are
 * bounded (see MAX_*_DAYS) so every answer stays small; times in the query
 * string are RFC 3339 with offset, dates YYYY-MM-DD (the tenant's local date). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "vp_catalog.h"
#include "vp_time.h"

#define MAX_VET_WINDOW_DAYS  92	 /* GET /v1/staff/{id}/availability */
#define MAX_ALL_WINDOW_DAYS  31	 /* GET /v1/availability: every vet */
#define MAX_STATS_DAYS	     366 /* GET /v1/stats/appointments/daily */
#define DEFAULT_SLOT_MINUTES "15"
#define MAX_SLOT_MINUTES     1440

#define ACTIVE_STATUSES "('scheduled', 'checked_in', 'in_progress')"

/* Free time of vet v in [$from, $to): its blocks minus its active
 * appointments, clipped. Blocks are at most 24 h and appointments 12 h
 * (checked by the table constraints), which bounds both index scans. */
#define FREE_TIME(tenant, v, from, to)                                                             \
	"(((SELECT coalesce(range_agg(tstzrange(b.start_at, b.end_at)), '{}'::tstzmultirange)"     \
	" FROM read.availability_blocks b WHERE b.tenant_id = " tenant " AND b.vet_id = " v        \
	" AND b.start_at > " from " - interval '24 hours' AND b.start_at < " to                    \
	" AND b.end_at > " from ")"                                                                \
	" - (SELECT coalesce(range_agg(tstzrange(a.start_at, a.end_at)), '{}'::tstzmultirange)"    \
	" FROM read.appointments a WHERE a.tenant_id = " tenant " AND a.vet_id = " v               \
	" AND a.status IN " ACTIVE_STATUSES " AND a.start_at > " from " - interval '12 hours'"     \
	" AND a.start_at < " to " AND a.end_at > " from "))"                                       \
	" * tstzmultirange(tstzrange(" from ", " to ")))"

/* clang-format off: SQL reads best one clause per line */
static const RdStatement vet_availability = {
    "rd_vet_availability",
    "SELECT json_build_object('staff_id', s.id,"
    " 'from', " RD_RFC3339("$3::timestamptz") ","
    " 'to', " RD_RFC3339("$4::timestamptz") ","
    " 'data', coalesce((SELECT json_agg(json_build_object('start', " RD_RFC3339("lower(f)") ","
    "  'end', " RD_RFC3339("upper(f)") ") ORDER BY lower(f))"
    "  FROM unnest(" FREE_TIME("$1::uuid", "s.id", "$3::timestamptz", "$4::timestamptz") ") f),"
    "  '[]'::json))::text"
    " FROM read.staff s WHERE s.tenant_id = $1::uuid AND s.id = $2::uuid",
    4};

/* Active veterinarians only: the others cannot be booked. */
static const RdStatement all_availability = {
    "rd_all_availability",
    "SELECT json_build_object('from', " RD_RFC3339("$2::timestamptz") ","
    " 'to', " RD_RFC3339("$3::timestamptz") ", 'duration_minutes', $4::int,"
    " 'data', coalesce((SELECT json_agg(json_build_object('vet_id', s.id, 'vet_name', s.name,"
    "  'start', " RD_RFC3339("lower(f)") ", 'end', " RD_RFC3339("upper(f)") ")"
    "  ORDER BY lower(f), s.name, s.id)"
    "  FROM read.staff s CROSS JOIN LATERAL"
    " unnest(" FREE_TIME("$1::uuid", "s.id", "$2::timestamptz", "$3::timestamptz") ") f"
    "  WHERE s.tenant_id = $1::uuid AND s.role = 'veterinarian' AND s.active"
    "  AND upper(f) - lower(f) >= make_interval(mins => $4::int)), '[]'::json))::text",
    4};

#define APPOINTMENT_JSON(a)                                                               \
	"'id', " a ".id, 'status', " a ".status, 'type', " a ".type, 'reason', " a ".reason, " \
	"'start', " RD_RFC3339(a ".start_at") ", 'end', " RD_RFC3339(a ".end_at") ", "        \
	"'local_date', " a ".local_date, "                                                  \
	"'patient', json_build_object('id', " a ".patient_id, 'name', " a ".patient_name, "  \
	"'species', " a ".species), "                                                        \
	"'client', json_build_object('id', " a ".client_id, 'first_name', "                  \
	a ".client_first_name, 'last_name', " a ".client_last_name), "                       \
	"'vet', json_build_object('id', " a ".vet_id, 'name', " a ".vet_name), "             \
	"'checked_in_at', " RD_RFC3339(a ".checked_in_at") ", "                              \
	"'actual_start', " RD_RFC3339(a ".actual_start") ", "                                \
	"'actual_end', " RD_RFC3339(a ".actual_end") ", "                                    \
	"'notes', " a ".notes, 'cancel_reason', " a ".cancel_reason, "                       \
	"'version', " a ".version, "                                                         \
	"'created_at', " RD_RFC3339(a ".created_at") ", "                                    \
	"'updated_at', " RD_RFC3339(a ".updated_at")

/* $5 from, $6 to (start in [from, to)), $7 vet, $8 patient, $9 status. */
static const RdStatement appointments_list = {
    "rd_appointments_list",
    "WITH page AS ("
    " SELECT a.*, row_number() OVER (ORDER BY a.start_at, a.id) AS rn"
    " FROM (SELECT * FROM read.appointments a"
    "  WHERE a.tenant_id = $1::uuid"
    "   AND ($3::timestamptz IS NULL OR (a.start_at, a.id) > ($3::timestamptz, $4::uuid))"
    "   AND ($5::timestamptz IS NULL OR a.start_at >= $5::timestamptz)"
    "   AND ($6::timestamptz IS NULL OR a.start_at < $6::timestamptz)"
    "   AND ($7::uuid IS NULL OR a.vet_id = $7::uuid)"
    "   AND ($8::uuid IS NULL OR a.patient_id = $8::uuid)"
    "   AND ($9::text IS NULL OR a.status = $9::text)"
    "  ORDER BY a.start_at, a.id LIMIT $2::int + 1) a)"
    " SELECT (SELECT coalesce(json_agg(json_build_object(" APPOINTMENT_JSON("a") ")"
    "   ORDER BY a.rn), '[]'::json) FROM page a WHERE a.rn <= $2::int)::text,"
    "  k.k1, k.k2"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT a.start_at::text AS k1, a.id::text AS k2"
    "  FROM page a WHERE a.rn = $2::int AND EXISTS (SELECT 1 FROM page q WHERE q.rn > $2::int))"
    "  k ON true",
    9};

static const RdStatement appointment_get = {
    "rd_appointment_get",
    "SELECT json_build_object(" APPOINTMENT_JSON("a") ","
    /* moved to the archive (migration 012): its row is the child table's */
    " 'archived', a.tableoid <> 'read.appointments'::regclass)::text"
    " FROM read.appointments a WHERE a.tenant_id = $1::uuid AND a.id = $2::uuid",
    2};

/* The whole day, unpaged: one clinic's day is tens to hundreds of rows. */
static const RdStatement dashboard = {
    "rd_appointment_dashboard",
    "SELECT json_build_object('date', $2::date, 'timezone', t.timezone,"
    " 'data', coalesce((SELECT json_agg(json_build_object('id', d.appointment_id,"
    "  'start', " RD_RFC3339("d.start_at") ", 'end', " RD_RFC3339("d.end_at") ","
    "  'status', d.status, 'type', d.type, 'reason', d.reason,"
    "  'patient', json_build_object('id', d.patient_id, 'name', d.patient_name,"
    "   'species', d.species),"
    "  'client', json_build_object('id', d.client_id, 'name', d.client_name),"
    "  'vet', json_build_object('id', d.vet_id, 'name', d.vet_name))"
    "  ORDER BY d.start_at, d.appointment_id)"
    "  FROM read.appointment_dashboard d WHERE d.tenant_id = $1::uuid"
    "  AND d.local_date = $2::date), '[]'::json))::text"
    " FROM (SELECT 1) one LEFT JOIN read.tenants t ON t.id = $1::uuid",
    2};

/* Every date of [from, to], zeros where nothing was booked. */
static const RdStatement daily_stats = {
    "rd_appointment_stats_daily",
    "SELECT json_build_object('from', $2::date, 'to', $3::date, 'timezone', t.timezone,"
    " 'data', (SELECT json_agg(json_build_object('date', g.day::date,"
    "  'total', coalesce(s.total, 0), 'completed', coalesce(s.completed, 0),"
    "  'canceled', coalesce(s.canceled, 0), 'no_show', coalesce(s.no_show, 0),"
    "  'avg_duration_minutes', CASE WHEN s.duration_count > 0"
    "   THEN round(s.duration_sum_s / s.duration_count / 60, 2) END) ORDER BY g.day)"
    "  FROM generate_series($2::date, $3::date, interval '1 day') g(day)"
    "  LEFT JOIN read.daily_appointment_stats s ON s.tenant_id = $1::uuid"
    "  AND s.local_date = g.day::date))::text"
    " FROM (SELECT 1) one LEFT JOIN read.tenants t ON t.id = $1::uuid",
    3};
/* clang-format on */

/* --- parameters -------------------------------------------------------- */

/* A required RFC 3339 time into params[index] as UTC text; *us set when good. */
static int bind_time(RdRequest *rq, VpHttpRequest *r, const char *name, int index, bool *good,
		     int64_t *us, VpError *err)
{
	const char *value = vp_http_query(r, name);
	char text[40];
	*good = false;
	if (!value || !*value) {
		vp_error_add_detail(err, name, "is required");
		return 0;
	}
	if (vp_time_parse_rfc3339(value, strlen(value), us) < 0 ||
	    vp_time_format_rfc3339(*us, text, sizeof(text)) == 0) {
		vp_error_add_detail(err, name, "must be an RFC 3339 time with offset");
		return 0;
	}
	*good = true;
	return rd_param_set(rq, index, text);
}

/* from (params[from_index]) and to (the next one): both required, to after
 * from by at most max_days. */
static int bind_window(RdRequest *rq, VpHttpRequest *r, int from_index, int max_days, VpError *err)
{
	bool from_ok, to_ok;
	int64_t from_us = 0, to_us = 0;
	if (bind_time(rq, r, "from", from_index, &from_ok, &from_us, err) < 0 ||
	    bind_time(rq, r, "to", from_index + 1, &to_ok, &to_us, err) < 0)
		return -1;
	if (from_ok && to_ok && to_us <= from_us)
		vp_error_add_detail(err, "to", "must be after from");
	else if (from_ok && to_ok && to_us - from_us > max_days * VP_US_PER_DAY)
		vp_error_add_detail(err, "to", "must be at most %d days after from", max_days);
	return 0;
}

static int bind_vet_availability(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	(void)id;
	return bind_window(rq, r, 2, MAX_VET_WINDOW_DAYS, err);
}

static int bind_all_availability(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	const char *minutes = vp_http_query(r, "duration_minutes");
	char *end = NULL;
	(void)id;
	if (bind_window(rq, r, 1, MAX_ALL_WINDOW_DAYS, err) < 0)
		return -1;
	if (!minutes)
		return rd_param_set(rq, 3, DEFAULT_SLOT_MINUTES);
	long value = strtol(minutes, &end, 10);
	if (!*minutes || *end || minutes[0] == '-' || minutes[0] == '+' || value < 1 ||
	    value > MAX_SLOT_MINUTES) {
		vp_error_add_detail(err, "duration_minutes", "must be an integer from 1 to %d",
				    MAX_SLOT_MINUTES);
		return 0;
	}
	return rd_param_set(rq, 3, minutes);
}


/* Optional from and to (either may be absent); to after from when both. */
static int bind_list(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	bool from_ok = false, to_ok = false;
	int64_t from_us = 0, to_us = 0;
	const char *status = vp_http_query(r, "status");
	(void)id;
	if (vp_http_query(r, "from") && bind_time(rq, r, "from", 4, &from_ok, &from_us, err) < 0)
		return -1;
	if (vp_http_query(r, "to") && bind_time(rq, r, "to", 5, &to_ok, &to_us, err) < 0)
		return -1;
	if (from_ok && to_ok && to_us <= from_us)
		vp_error_add_detail(err, "to", "must be after from");
	if (rd_bind_uuid_query(rq, r, "vet_id", 6, err) < 0 ||
	    rd_bind_uuid_query(rq, r, "patient_id", 7, err) < 0)
		return -1;
	if (!status)
		return 0;
	for (const char *const *s = vp_enum_appointment_statuses; *s; s++)
		if (!strcmp(*s, status))
			return rd_param_set(rq, 8, status);
	vp_error_add_detail(err, "status",
			    "must be one of: scheduled, checked_in, in_progress, completed, "
			    "canceled, no_show");
	return 0;
}

/* A required date into params[index]; *days set when good. */
static int bind_date(RdRequest *rq, VpHttpRequest *r, const char *name, int index, bool *good,
		     int32_t *days, VpError *err)
{
	const char *value = vp_http_query(r, name);
	*good = false;
	if (!value || !*value) {
		vp_error_add_detail(err, name, "is required");
		return 0;
	}
	if (vp_date_parse(value, strlen(value), days) < 0) {
		vp_error_add_detail(err, name, "must be a date YYYY-MM-DD");
		return 0;
	}
	*good = true;
	return rd_param_set(rq, index, value);
}

static int bind_dashboard(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	bool good;
	int32_t days;
	(void)id;
	return bind_date(rq, r, "date", 1, &good, &days, err);
}

static int bind_stats(RdRequest *rq, VpHttpRequest *r, const char *id, VpError *err)
{
	bool from_ok, to_ok;
	int32_t from_days = 0, to_days = 0;
	(void)id;
	if (bind_date(rq, r, "from", 1, &from_ok, &from_days, err) < 0 ||
	    bind_date(rq, r, "to", 2, &to_ok, &to_days, err) < 0)
		return -1;
	if (from_ok && to_ok && to_days < from_days)
		vp_error_add_detail(err, "to", "must not be before from");
	else if (from_ok && to_ok && to_days - from_days >= MAX_STATS_DAYS)
		vp_error_add_detail(err, "to", "must be less than %d days after from",
				    MAX_STATS_DAYS);
	return 0;
}

const RdRoute rd_routes_scheduling[] = {
    {"/v1/staff/{id}/availability", RD_ROLES_TENANT, &vet_availability, RD_SHAPE_ITEM, NULL,
     bind_vet_availability},
    {"/v1/availability", RD_ROLES_TENANT, &all_availability, RD_SHAPE_ITEM, NULL,
     bind_all_availability},
    {"/v1/appointments", RD_ROLES_TENANT, &appointments_list, RD_SHAPE_LIST, "appointments",
     bind_list},
    {"/v1/appointments/{id}", RD_ROLES_TENANT, &appointment_get, RD_SHAPE_ITEM, NULL, NULL},
    {"/v1/dashboards/appointments", RD_ROLES_CLINIC, &dashboard, RD_SHAPE_ITEM, NULL,
     bind_dashboard},
    {"/v1/stats/appointments/daily", VP_ROLE_ADMIN | VP_ROLE_ANALYST, &daily_stats, RD_SHAPE_ITEM,
     NULL, bind_stats},
    {NULL},
};
