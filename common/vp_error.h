/* The API error of API.md: an HTTP status, a contract code, a message and the list
 * of bad fields. Functions that can fail fill one of these; the HTTP layer turns it
 * into the JSON error body, identical in both daemons. */
#ifndef VP_ERROR_H
#define VP_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define VP_ERROR_MAX_DETAILS 32

typedef struct VpErrorDetail {
	char field[96];
	char issue[160];
} VpErrorDetail;

typedef struct VpError {
	int status;       /* HTTP status, 0 while no error was set */
	const char *code; /* contract code, a string literal: "VALIDATION_ERROR" */
	char message[256];
	VpErrorDetail details[VP_ERROR_MAX_DETAILS];
	int n_details;
	bool details_truncated; /* more bad fields than fit; the body says so */
	int retry_after_s;      /* Retry-After of a 429 or 503; 0 = the default, 1 */
} VpError;

void vp_error_clear(VpError *err);

/* Sets status, code and message (printf-style). Returns -1 so callers can
 * `return vp_error_set(...)`. Keeps details already added. */
int vp_error_set(VpError *err, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Adds one {field, issue}; beyond VP_ERROR_MAX_DETAILS marks details_truncated. */
void vp_error_add_detail(VpError *err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* 400 VALIDATION_ERROR "Invalid input data" when details were added and no status
 * was set yet; returns true when err now holds an error. */
bool vp_error_finish_validation(VpError *err);

/* The JSON body of API.md, malloc'd, NUL-terminated; NULL only on out of memory.
 * `now_us` is the timestamp (microseconds since the epoch, UTC). */
char *vp_error_body_json(const VpError *err, const char *request_id, long long now_us);

/* Standard reason of each contract status/code pair used by the common layer. */
#define VP_ERR_VALIDATION     "VALIDATION_ERROR"
#define VP_ERR_UNAUTHENTICATED "UNAUTHENTICATED"
#define VP_ERR_FORBIDDEN      "FORBIDDEN"
#define VP_ERR_NOT_FOUND      "NOT_FOUND"
#define VP_ERR_METHOD         "METHOD_NOT_ALLOWED"
#define VP_ERR_VERSION        "VERSION_MISMATCH"
#define VP_ERR_TOO_LARGE      "PAYLOAD_TOO_LARGE"
#define VP_ERR_MEDIA_TYPE     "UNSUPPORTED_MEDIA_TYPE"
#define VP_ERR_MISDIRECTED    "MISDIRECTED"
#define VP_ERR_RATE_LIMITED   "RATE_LIMITED"
#define VP_ERR_UNAVAILABLE    "UNAVAILABLE"
#define VP_ERR_CONSISTENCY    "CONSISTENCY_TIMEOUT"
#define VP_ERR_INTERNAL       "INTERNAL"

#endif
