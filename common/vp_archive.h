/* Archiving (docs/operations.md § Archiving): what a pass moves, shared by the
 * projector that moves it (projector/archive.c) and `vetctl archive run
 * --dry-run` that counts it (vetctl/cmd_archive.c), so the two never
 * disagree; and the pure arithmetic of a pass (unit test_archive). */
#ifndef VP_ARCHIVE_H
#define VP_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The moment before which a tenant's closed rows are archived: now minus
 * `days` whole days (of 86 400 s: a cutoff, not a calendar date). false when
 * nothing is: days 0 (the tenant's "never"), or out of range. */
bool vp_archive_cutoff(int64_t now_us, long days, int64_t *cutoff_us);

/* Seconds left at the rate seen so far: done rows in elapsed_us, left rows to
 * go; -1 when unknown (nothing done yet, or no time passed). */
long vp_archive_eta_s(long long done, long long left, int64_t elapsed_us);

/* The rows a pass moves, $1 the tenant, $2 the cutoff (timestamptz): closed
 * appointments (a terminal status) that ended before it, and signed records
 * opened before it. FROM ONLY: the live rows, not those already archived.
 * Only signed records: the auto-lock period (record_lock_hours) is a setting
 * a tenant may lower again, which unlocks the record; a signature is final. */
#define VP_ARCHIVE_APPOINTMENTS_DUE                                                         \
	"ONLY appointments a WHERE a.tenant_id = $1::uuid"                                   \
	" AND a.status IN ('completed', 'canceled', 'no_show')"                             \
	" AND a.start_at < $2::timestamptz AND a.end_at < $2::timestamptz"
#define VP_ARCHIVE_N_CHILDREN 5 /* vitals, diagnoses, treatments, prescriptions, addenda */
#define VP_ARCHIVE_RECORDS_DUE                                                              \
	"ONLY medical_records m WHERE m.tenant_id = $1::uuid AND m.status = 'signed'"        \
	" AND m.opened_at < $2::timestamptz"

#endif
