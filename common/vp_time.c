/* RFC 3339 and calendar arithmetic for vp_time.h. Civil <-> day conversions are
 * Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian),
 * valid far beyond the 0001-9999 years accepted here. */
#include "vp_time.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#define MIN_YEAR 1
#define MAX_YEAR 9999

static int64_t clock_us(clockid_t clock_id)
{
	struct timespec ts;

	if (clock_gettime(clock_id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * VP_US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t vp_time_now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t vp_time_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static bool is_leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && is_leap_year(y))
		return 29;
	return lengths[m - 1];
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* n decimal digits at s, which the caller has checked lie within the input. */
static int read_digits(const char *s, int n, int *out)
{
	int value = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		value = value * 10 + (s[i] - '0');
	}
	*out = value;
	return 0;
}

/* "YYYY-MM-DD" at s (10 bytes available) -> days since the epoch. */
static int parse_date_part(const char *s, int64_t *out_days)
{
	int y, m, d;

	if (read_digits(s, 4, &y) != 0 || s[4] != '-' || read_digits(s + 5, 2, &m) != 0 ||
	    s[7] != '-' || read_digits(s + 8, 2, &d) != 0)
		return -1;
	if (y < MIN_YEAR || y > MAX_YEAR || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	*out_days = days_from_civil(y, m, d);
	return 0;
}

int vp_time_parse_rfc3339(const char *s, size_t len, int64_t *out_us)
{
	int64_t days, frac_us = 0, offset_s = 0;
	int hh, mi, ss;
	size_t pos;

	/* Shortest: "YYYY-MM-DDTHH:MM:SSZ" is 20 bytes. */
	if (s == NULL || len < 20)
		return -1;
	if (parse_date_part(s, &days) != 0)
		return -1;
	if (s[10] != 'T' && s[10] != 't')
		return -1;
	if (read_digits(s + 11, 2, &hh) != 0 || s[13] != ':' || read_digits(s + 14, 2, &mi) != 0 ||
	    s[16] != ':' || read_digits(s + 17, 2, &ss) != 0)
		return -1;
	/* Leap seconds are refused: nothing upstream produces them and mapping 60
	 * onto 59.999999 would silently reorder events. */
	if (hh > 23 || mi > 59 || ss > 59)
		return -1;

	pos = 19;
	if (s[pos] == '.') {
		int n_digits = 0;
		int64_t scale = 100000;

		pos++;
		while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
			if (++n_digits > 9)
				return -1;
			if (scale > 0) {
				frac_us += (s[pos] - '0') * scale;
				scale /= 10;
			}
			pos++;
		}
		if (n_digits == 0 || pos >= len)
			return -1;
	}

	if (s[pos] == 'Z' || s[pos] == 'z') {
		pos++;
	} else if (s[pos] == '+' || s[pos] == '-') {
		int off_h, off_m;

		if (len - pos < 6 || read_digits(s + pos + 1, 2, &off_h) != 0 ||
		    s[pos + 3] != ':' || read_digits(s + pos + 4, 2, &off_m) != 0)
			return -1;
		if (off_h > 23 || off_m > 59)
			return -1;
		offset_s = (int64_t)off_h * 3600 + off_m * 60;
		if (s[pos] == '-')
			offset_s = -offset_s;
		pos += 6;
	} else {
		return -1;
	}
	if (pos != len)
		return -1;

	/* Local time minus its offset is UTC, and the UTC instant must itself lie
	 * in years 0001-9999: "0001-01-01T00:00:00+00:01" is year 0000 in UTC,
	 * which no formatter (ours, PostgreSQL's) writes back the same way. */
	int64_t us = (days * 86400 + hh * 3600 + mi * 60 + ss - offset_s) * VP_US_PER_SEC + frac_us;
	if (us < VP_TIME_MIN_US || us > VP_TIME_MAX_US)
		return -1;
	*out_us = us;
	return 0;
}

static void put_digits(char *p, int64_t value, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + value % 10);
		value /= 10;
	}
}

/* Writes "YYYY-MM-DD" (10 bytes, no NUL); -1 when the year is out of range. */
static int put_date(char *p, int64_t days)
{
	int64_t y;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	if (y < MIN_YEAR || y > MAX_YEAR)
		return -1;
	put_digits(p, y, 4);
	p[4] = '-';
	put_digits(p + 5, m, 2);
	p[7] = '-';
	put_digits(p + 8, d, 2);
	return 0;
}

static size_t format_instant(int64_t us, char *buf, size_t cap, bool always_fraction)
{
	char text[VP_TIME_RFC3339_MAX];
	int64_t days = floor_div(us, VP_US_PER_DAY);
	int64_t us_of_day, sec_of_day, frac_us;
	size_t n = 19;

	/* Range check first: days * VP_US_PER_DAY overflows near INT64_MIN. */
	if (put_date(text, days) != 0)
		return 0;
	us_of_day = us - days * VP_US_PER_DAY;
	sec_of_day = us_of_day / VP_US_PER_SEC;
	frac_us = us_of_day % VP_US_PER_SEC;
	text[10] = 'T';
	put_digits(text + 11, sec_of_day / 3600, 2);
	text[13] = ':';
	put_digits(text + 14, sec_of_day / 60 % 60, 2);
	text[16] = ':';
	put_digits(text + 17, sec_of_day % 60, 2);
	if (always_fraction || frac_us != 0) {
		text[n++] = '.';
		put_digits(text + n, frac_us, 6);
		n += 6;
	}
	text[n++] = 'Z';
	if (buf == NULL || cap < n + 1)
		return 0;
	memcpy(buf, text, n);
	buf[n] = '\0';
	return n;
}

size_t vp_time_format_rfc3339(int64_t us, char *buf, size_t cap)
{
	return format_instant(us, buf, cap, false);
}

size_t vp_time_format_rfc3339_us(int64_t us, char *buf, size_t cap)
{
	return format_instant(us, buf, cap, true);
}

int vp_date_parse(const char *s, size_t len, int32_t *out_days)
{
	int64_t days;

	if (s == NULL || len != 10 || parse_date_part(s, &days) != 0)
		return -1;
	*out_days = (int32_t)days;
	return 0;
}

size_t vp_date_format(int32_t days, char *buf, size_t cap)
{
	char text[VP_DATE_MAX];

	if (put_date(text, days) != 0 || buf == NULL || cap < sizeof(text))
		return 0;
	memcpy(buf, text, 10);
	buf[10] = '\0';
	return 10;
}

int32_t vp_date_from_us(int64_t us)
{
	return (int32_t)floor_div(us, VP_US_PER_DAY);
}
