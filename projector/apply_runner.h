/* The shape of most event handlers, as data: a row names an event type, the
 * statement that applies it and where each of its parameters comes from (the
 * envelope or a member of data); pj_run_row runs any row. The read model
 * modules (apply_<read model>.c) are tables of rows; apply_events.c
 * dispatches to them. Code stays only where a row cannot say it (a check hook,
 * or an apply function of its own). */
#ifndef PJ_APPLY_RUNNER_H
#define PJ_APPLY_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "statements.h"
#include "vp_event.h"

typedef enum {
	PJ_APPLIED,   /* rows written (or only logged: no read model yet) */
	PJ_DUPLICATE, /* the event id or position is already in event_log: skipped */
	PJ_REJECTED,  /* dead letter: why says what is wrong; roll back to the savepoint */
	PJ_FAILED,    /* PostgreSQL failed (not because of the event): retry the batch */
} PjApplyResult;

/* The row-count rule of every handler: PJ_EXEC_* map to PJ_FAILED/PJ_REJECTED,
 * 0 rows is a violated invariant (why = what), more is PJ_APPLIED. */
PjApplyResult pj_apply_rows(long rows, char *why, size_t why_cap, const char *what);

/* Parameter text of common envelope fields. */
typedef struct PjEnvText {
	char seq[24];
	char at[32];
} PjEnvText;
void pj_env_text(const VpEvent *ev, PjEnvText *out);

/* Where a statement parameter comes from. Members of data that are absent,
 * null or of another JSON type are SQL NULL (the catalog has checked the types
 * of what is there). */
typedef enum {
	PJ_PARAM_END = 0,   /* after the last parameter */
	PJ_PARAM_TENANT,    /* envelope tenant_id */
	PJ_PARAM_AGGREGATE, /* envelope aggregate_id */
	PJ_PARAM_EVENT_ID,  /* envelope id */
	PJ_PARAM_SEQ,       /* envelope seq: the read model's version */
	PJ_PARAM_AT,        /* envelope at, RFC 3339 to the microsecond */
	PJ_PARAM_ACTOR,     /* envelope actor: who did it (author, signer) */
	PJ_PARAM_TEXT,      /* a string member */
	PJ_PARAM_INT,       /* an integral member, in decimal */
	PJ_PARAM_BOOL,      /* a boolean member: "true" or "false" */
	PJ_PARAM_PRESENT,   /* "true" when data has the member (even null), else "false" */
} PjParamKind;

typedef struct PjParam {
	PjParamKind kind;
	const char *member; /* of data, for the kinds that read one */
} PjParam;

/* The entries of a row's params, in SQL parameter order. */
#define PJ_TENANT           {PJ_PARAM_TENANT, NULL}
#define PJ_AGGREGATE        {PJ_PARAM_AGGREGATE, NULL}
#define PJ_EVENT_ID         {PJ_PARAM_EVENT_ID, NULL}
#define PJ_SEQ              {PJ_PARAM_SEQ, NULL}
#define PJ_AT               {PJ_PARAM_AT, NULL}
#define PJ_ACTOR            {PJ_PARAM_ACTOR, NULL}
#define PJ_TEXT(member)     {PJ_PARAM_TEXT, member}
#define PJ_INT(member)      {PJ_PARAM_INT, member}
#define PJ_BOOL(member)     {PJ_PARAM_BOOL, member}
#define PJ_PRESENT(member)  {PJ_PARAM_PRESENT, member}

#define PJ_MAX_PARAMS 16

typedef struct PjApplyRow PjApplyRow;

/* What the catalog cannot say about an event (an interval's order): -1 and
 * why when it is a dead letter, checked before any statement runs. */
typedef int (*PjCheckFn)(const VpEvent *ev, char *why, size_t why_cap);
/* A handler in code, for a row whose parameters are not a list of fields. It
 * runs the row's statement and returns PJ_APPLIED, PJ_REJECTED (why filled)
 * or PJ_FAILED. */
typedef PjApplyResult (*PjRowFn)(PGconn *conn, const PjApplyRow *row, const VpEvent *ev,
				 char *why, size_t why_cap);

/* One event type of a read model; tables end with a row whose type is NULL. */
struct PjApplyRow {
	const char *type; /* VP_EV_*: the event it applies */
	const char *stmt; /* the prepared statement's name */
	const char *sql;
	PjParam params[PJ_MAX_PARAMS]; /* $1, $2, ... in order */
	const char *not_applied;       /* why, when the statement affects no row */
	PjCheckFn check;               /* optional */
	PjRowFn apply;                 /* optional: instead of params */
};

/* Prepares the statement of every row of a table. */
int pj_prepare_rows(PGconn *conn, const PjApplyRow *rows, char *why, size_t why_cap);
/* Applies ev by its row: check, then apply or the statement with params. */
PjApplyResult pj_run_row(PGconn *conn, const PjApplyRow *row, const VpEvent *ev, char *why,
			 size_t why_cap);

/* The read models' tables (apply_<read model>.c), for the dispatcher. */
extern const PjApplyRow pj_directory_rows[];
extern const PjApplyRow pj_patient_rows[];
extern const PjApplyRow pj_scheduling_rows[];
extern const PjApplyRow pj_record_rows[];
extern const PjApplyRow pj_stock_rows[];
extern const PjApplyRow pj_billing_rows[];

#endif
