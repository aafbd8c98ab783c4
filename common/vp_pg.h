/* libpq helpers for blocking use (projector, migrations, tools). The reader's
 * non-blocking connections live in query-reader/pgpool.c. Values always travel
 * as parameters; these helpers take no SQL built from input. */
#ifndef VP_PG_H
#define VP_PG_H

#include <stddef.h>
#include <libpq-fe.h>

/* The projector's progress notifications, which the reader LISTENs to: on
 * VP_PROGRESS_CHANNEL (the live schema `read`; another schema X uses
 * VP_PROGRESS_CHANNEL "_X") each committed batch sends "<partition>:<next_offset>",
 * and a rebuild that swapped a fresh schema in sends VP_PROGRESS_SCHEMA_SWAPPED. */
#define VP_PROGRESS_CHANNEL       "vetpms_progress"
#define VP_PROGRESS_SCHEMA_SWAPPED "schema-swapped"

/* Connects (blocking); NULL with why filled. application_name is set. */
PGconn *vp_pg_connect(const char *dsn, const char *application_name, char *why, size_t why_cap);

/* Runs SQL with optional text parameters; 0 when the result is COMMAND_OK or
 * TUPLES_OK, else -1 with the server's message in why. *out (may be NULL)
 * receives the result, which the caller PQclear()s. */
int vp_pg_exec(PGconn *conn, const char *sql, int n_params, const char *const *params,
	       PGresult **out, char *why, size_t why_cap);
/* Runs the statement a builder query makes (its one-row, one-column text, e.g.
 * from format() over the catalog); a NULL or empty text runs nothing. 0, or -1
 * with why. */
int vp_pg_exec_built(PGconn *conn, const char *builder, int n_params, const char *const *params,
		     char *why, size_t why_cap);

/* True when the connection answers `SELECT 1`. */
int vp_pg_ping(PGconn *conn);

#endif
