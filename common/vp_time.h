/* Time as the system stores it: instants are int64_t microseconds since the Unix
 * epoch (UTC), dates are int32_t days since 1970-01-01. Strict RFC 3339 text in
 * and out, by pure arithmetic: no timegm, no TZ, no locale. */
#ifndef VP_TIME_H
#define VP_TIME_H

#include <stddef.h>
#include <stdint.h>

#define VP_US_PER_SEC INT64_C(1000000)
#define VP_US_PER_DAY INT64_C(86400000000)

/* Longest outputs, NUL included: "9999-12-31T23:59:59.999999Z", "9999-12-31". */
#define VP_TIME_RFC3339_MAX 28
#define VP_DATE_MAX         11

int64_t vp_time_now_us(void);  /* CLOCK_REALTIME */
int64_t vp_time_mono_us(void); /* CLOCK_MONOTONIC, for durations and deadlines */

/* The instants the text forms can hold: 0001-01-01T00:00:00Z and
 * 9999-12-31T23:59:59.999999Z. */
#define VP_TIME_MIN_US INT64_C(-62135596800000000)
#define VP_TIME_MAX_US INT64_C(253402300799999999)

/* YYYY-MM-DDTHH:MM:SS[.F{1,9}] then Z or +HH:MM / -HH:MM (offset required).
 * 'T' and 'Z' may be lower case; a space for 'T' is refused. Fractions beyond
 * microseconds are truncated. Second 60 (leap second) is refused. Years
 * 0001-9999, day checked against the month and leap years, offset up to 23:59,
 * and the UTC instant within VP_TIME_MIN_US..VP_TIME_MAX_US (so it formats).
 * Reads at most len bytes; 0 on success, -1 (out untouched) on any deviation. */
int vp_time_parse_rfc3339(const char *s, size_t len, int64_t *out_us);

/* UTC with Z: "2026-11-22T09:30:00Z" when the microseconds are zero, else six
 * fractional digits. Returns the length written (NUL not counted), 0 when cap is
 * too small or the instant's year is outside 0001-9999. */
size_t vp_time_format_rfc3339(int64_t us, char *buf, size_t cap);

/* The same, always with six fractional digits (event timestamps). */
size_t vp_time_format_rfc3339_us(int64_t us, char *buf, size_t cap);

/* Strict YYYY-MM-DD, years 0001-9999. 0 or -1 like the above. */
int vp_date_parse(const char *s, size_t len, int32_t *out_days);

/* YYYY-MM-DD; length written or 0 (cap too small, year outside 0001-9999). */
size_t vp_date_format(int32_t days, char *buf, size_t cap);

/* The UTC date of an instant (floor, so -1 us is 1969-12-31). */
int32_t vp_date_from_us(int64_t us);

#endif
