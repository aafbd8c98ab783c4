/* libFuzzer target: RFC 3339 instants and dates (common/vp_time.c). The first
 * byte picks a mode: text parsed (and what parses formats and parses back to the
 * same instant; a date's text, strict, formats back byte for byte), or eight
 * bytes as an instant / four as a day number formatted and parsed back. */
#include "fuzz.h"

#include "vp_time.h"

static void check_instant(int64_t us)
{
	char text[VP_TIME_RFC3339_MAX], text_us[VP_TIME_RFC3339_MAX], date[VP_DATE_MAX];
	size_t n = vp_time_format_rfc3339(us, text, sizeof(text));
	size_t n_us = vp_time_format_rfc3339_us(us, text_us, sizeof(text_us));
	int64_t back;
	bool in_range = us >= VP_TIME_MIN_US && us <= VP_TIME_MAX_US;

	FUZZ_CHECK((n > 0) == in_range, "%lld formats as %zu bytes", (long long)us, n);
	FUZZ_CHECK((n_us > 0) == in_range, "%lld formats as %zu bytes", (long long)us, n_us);
	if (!in_range)
		return;
	FUZZ_CHECK(n == strlen(text) && (n == 20 || n == 27), "%s", text);
	FUZZ_CHECK(n_us == 27 && n_us == strlen(text_us), "%s", text_us);
	FUZZ_CHECK(vp_time_parse_rfc3339(text, n, &back) == 0 && back == us, "%s is not %lld", text,
		   (long long)us);
	FUZZ_CHECK(vp_time_parse_rfc3339(text_us, n_us, &back) == 0 && back == us, "%s is not %lld",
		   text_us, (long long)us);
	/* The short form cut to its date is the instant's UTC date. */
	FUZZ_CHECK(vp_date_format(vp_date_from_us(us), date, sizeof(date)) == 10 &&
		       memcmp(date, text, 10) == 0,
		   "%s has date %s", text, date);
	/* A buffer one byte short is refused, not overrun. */
	FUZZ_CHECK(vp_time_format_rfc3339(us, text, n) == 0, "%lld fits in %zu", (long long)us, n);
}

static void check_days(int32_t days)
{
	char text[VP_DATE_MAX];
	size_t n = vp_date_format(days, text, sizeof(text));
	int32_t back;

	if (n == 0)
		return;
	FUZZ_CHECK(n == 10 && strlen(text) == 10, "day %d", days);
	FUZZ_CHECK(vp_date_parse(text, n, &back) == 0 && back == days, "%s is not day %d", text,
		   days);
	/* Midnight of that day is an instant in range (dates cover years 1-9999). */
	check_instant((int64_t)days * VP_US_PER_DAY);
}

static void check_text(const char *s, size_t len)
{
	int64_t us;
	int32_t days;
	char again[VP_DATE_MAX];

	if (vp_time_parse_rfc3339(s, len, &us) == 0) {
		FUZZ_CHECK(us >= VP_TIME_MIN_US && us <= VP_TIME_MAX_US, "%lld", (long long)us);
		check_instant(us);
	}
	if (vp_date_parse(s, len, &days) == 0) {
		FUZZ_CHECK(vp_date_format(days, again, sizeof(again)) == 10 &&
			       memcmp(again, s, 10) == 0 && len == 10,
			   "date %.*s formats as %s", (int)len, s, again);
		check_days(days);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t us;
	int32_t days;
	char *text;

	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0:
	case 1:
		/* A copy of exactly size-1 bytes: ASan sees any read past len. */
		text = malloc(size - 1 ? size - 1 : 1);
		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		check_text(text, size - 1);
		free(text);
		break;
	case 2:
		if (size < 1 + sizeof(us))
			return 0;
		memcpy(&us, data + 1, sizeof(us));
		check_instant(us);
		/* the same bits folded into the formattable range, so most runs
		 * exercise the round trip rather than the refusal */
		check_instant(
		    VP_TIME_MIN_US +
		    (int64_t)((uint64_t)us % (uint64_t)(VP_TIME_MAX_US - VP_TIME_MIN_US + 1)));
		break;
	case 3:
		if (size < 1 + sizeof(days))
			return 0;
		memcpy(&days, data + 1, sizeof(days));
		check_days(days);
		break;
	}
	return 0;
}
