/* Archiving's pure arithmetic (vp_archive.h). */
#include <stdint.h>

#include "vp_archive.h"

#define US_PER_DAY (86400LL * 1000000LL)

bool vp_archive_cutoff(int64_t now_us, long days, int64_t *cutoff_us)
{
	/* 36 500 days is the settings' bound; more would be a bug upstream */
	if (days <= 0 || days > 36500)
		return false;
	int64_t span = (int64_t)days * US_PER_DAY;
	if (now_us < INT64_MIN + span)
		return false;
	*cutoff_us = now_us - span;
	return true;
}

long vp_archive_eta_s(long long done, long long left, int64_t elapsed_us)
{
	if (done <= 0 || elapsed_us <= 0 || left < 0)
		return -1;
	/* left * elapsed / done, in seconds, rounded up: never "0 s left" early */
	double s = (double)left * ((double)elapsed_us / 1e6) / (double)done;
	long whole = (long)s;
	return whole + ((double)whole < s);
}
