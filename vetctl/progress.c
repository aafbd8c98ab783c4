/* Progress of long ops work on stderr, at most once a second and once at the
 * end: done (of total when known), the rate, the position reached and, with
 * a total, the time left at the rate so far. stdout stays the command's data. */
#include <stdio.h>

#include "vetctl.h"
#include "vp_time.h"

void vc_progress_start(VcProgress *pr, const char *what, long long total)
{
	pr->what = what;
	pr->total = total;
	pr->started_us = vp_time_mono_us();
	pr->last_us = 0;
}

void vc_progress_report(VcProgress *pr, long long done, const char *position, bool final)
{
	int64_t now = vp_time_mono_us();
	if (!final && now - pr->last_us < VP_US_PER_SEC)
		return;
	pr->last_us = now;
	double seconds = (double)(now - pr->started_us) / 1e6;
	double rate = seconds > 0 ? (double)done / seconds : 0;
	char left[48] = "";
	if (pr->total > 0 && rate > 0 && done < pr->total)
		snprintf(left, sizeof(left), ", %.0f s left", (double)(pr->total - done) / rate);
	if (pr->total > 0)
		fprintf(stderr, "%s: %lld/%lld, %.0f/s, at %s%s%s\n", pr->what, done, pr->total,
			rate, position && *position ? position : "-", left, final ? " (done)" : "");
	else
		fprintf(stderr, "%s: %lld, %.0f/s, at %s%s\n", pr->what, done, rate,
			position && *position ? position : "-", final ? " (done)" : "");
}
