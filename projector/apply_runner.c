/* The generic handler (apply_runner.h): a row's parameters from the envelope
 * and data, its statement, and the row-count rule every handler shares. */
#include <stdio.h>

#include "apply_runner.h"
#include "vp_json.h"
#include "vp_time.h"

PjApplyResult pj_apply_rows(long rows, char *why, size_t why_cap, const char *what)
{
	if (rows == PJ_EXEC_FAILED)
		return PJ_FAILED;
	if (rows == PJ_EXEC_REJECTED)
		return PJ_REJECTED;
	if (rows == 0) {
		snprintf(why, why_cap, "%s", what);
		return PJ_REJECTED;
	}
	return PJ_APPLIED;
}

void pj_env_text(const VpEvent *ev, PjEnvText *out)
{
	snprintf(out->seq, sizeof(out->seq), "%lld", (long long)ev->seq);
	if (vp_time_format_rfc3339_us(ev->at_us, out->at, sizeof(out->at)) == 0)
		snprintf(out->at, sizeof(out->at), "%s", "infinity"); /* not reachable: decoded */
}

int pj_prepare_rows(PGconn *conn, const PjApplyRow *rows, char *why, size_t why_cap)
{
	for (const PjApplyRow *row = rows; row->type; row++)
		if (pj_prepare_statement(conn, row->stmt, row->sql, why, why_cap) < 0)
			return -1;
	return 0;
}

/* The text of one parameter; number is the caller's buffer for integers. */
static const char *param_text(const PjParam *param, const VpEvent *ev, const PjEnvText *env,
			      char *number, size_t number_cap)
{
	long long integer;
	bool boolean;

	switch (param->kind) {
	case PJ_PARAM_TENANT:
		return ev->tenant_id;
	case PJ_PARAM_AGGREGATE:
		return ev->aggregate_id;
	case PJ_PARAM_EVENT_ID:
		return ev->id;
	case PJ_PARAM_SEQ:
		return env->seq;
	case PJ_PARAM_AT:
		return env->at;
	case PJ_PARAM_ACTOR:
		return ev->actor;
	case PJ_PARAM_TEXT:
		return vp_json_str(ev->data, param->member);
	case PJ_PARAM_INT:
		if (!vp_json_int(ev->data, param->member, &integer))
			return NULL;
		snprintf(number, number_cap, "%lld", integer);
		return number;
	case PJ_PARAM_BOOL:
		if (!vp_json_bool(ev->data, param->member, &boolean))
			return NULL;
		return boolean ? "true" : "false";
	case PJ_PARAM_PRESENT:
		return cJSON_GetObjectItemCaseSensitive(ev->data, param->member) ? "true" : "false";
	case PJ_PARAM_END:
		break;
	}
	return NULL;
}

static PjApplyResult run_params(PGconn *conn, const PjApplyRow *row, const VpEvent *ev,
				char *why, size_t why_cap)
{
	const char *values[PJ_MAX_PARAMS];
	char numbers[PJ_MAX_PARAMS][24];
	PjEnvText env;
	int n = 0;

	pj_env_text(ev, &env);
	for (; n < PJ_MAX_PARAMS && row->params[n].kind != PJ_PARAM_END; n++)
		values[n] = param_text(&row->params[n], ev, &env, numbers[n], sizeof(numbers[n]));
	return pj_apply_rows(pj_apply_exec(conn, row->stmt, n, values, why, why_cap), why,
			     why_cap, row->not_applied);
}

PjApplyResult pj_run_row(PGconn *conn, const PjApplyRow *row, const VpEvent *ev, char *why,
			 size_t why_cap)
{
	if (row->check && row->check(ev, why, why_cap) < 0)
		return PJ_REJECTED;
	if (row->apply)
		return row->apply(conn, row, ev, why, why_cap);
	return run_params(conn, row, ev, why, why_cap);
}
