/* The tenant-local date of an instant, from the zone's TZif file (RFC 8536)
 * as PostgreSQL's AT TIME ZONE reads the same tz database. Not localtime_r
 * with a per-call TZ: setenv races every getenv of the process's other
 * threads (librdkafka's), and tzset costs a file read anyway. Times after the
 * file's last transition keep its last offset: right for "fat" TZif files
 * (Debian's, transitions to 2037); a "slim" file would need its footer's
 * POSIX TZ rule, which this does not read (docs/decisions.md). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "decide.h"
#include "vp_time.h"

#define TZIF_HEADER_LEN 44
#define TZIF_MAX_FILE (256 * 1024)

typedef struct TzifCounts {
	uint32_t isut, isstd, leap, time, type, chars;
} TzifCounts;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool tzif_counts(const unsigned char *p, size_t len, char *version, TzifCounts *c)
{
	if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
		return false;
	*version = (char)p[4];
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	return c->type >= 1 && c->type <= 256 && c->time <= 100000 && c->leap <= 100000 &&
	       c->chars <= 100000 && c->isut <= 256 && c->isstd <= 256;
}

static size_t tzif_data_len(const TzifCounts *c, size_t time_size)
{
	return c->time * time_size + c->time + c->type * 6 + c->chars +
	       c->leap * (time_size + 4) + c->isstd + c->isut;
}

/* The UT offset at at_s from one data block (time_size 4: v1, 8: v2+). */
static bool block_offset(const unsigned char *p, size_t len, const TzifCounts *c,
			 size_t time_size, int64_t at_s, int32_t *offset_s)
{
	if (len < tzif_data_len(c, time_size))
		return false;
	const unsigned char *times = p, *indexes = p + c->time * time_size;
	const unsigned char *types = indexes + c->time;
	uint32_t type = 0; /* RFC 8536: before the first transition, type 0 */
	for (uint32_t i = 0; i < c->time; i++) {
		const unsigned char *t = times + i * time_size;
		int64_t when = time_size == 8 ? be64(t) : (int64_t)(int32_t)be32(t);
		if (when > at_s)
			break;
		type = indexes[i];
	}
	if (type >= c->type)
		return false;
	*offset_s = (int32_t)be32(types + type * 6);
	return true;
}

static bool tzif_offset(const unsigned char *p, size_t len, int64_t at_s, int32_t *offset_s)
{
	char version;
	TzifCounts c;
	if (!tzif_counts(p, len, &version, &c))
		return false;
	if (version == '\0')
		return block_offset(p + TZIF_HEADER_LEN, len - TZIF_HEADER_LEN, &c, 4, at_s,
				    offset_s);
	size_t skip = TZIF_HEADER_LEN + tzif_data_len(&c, 4);
	if (skip > len || !tzif_counts(p + skip, len - skip, &version, &c))
		return false;
	skip += TZIF_HEADER_LEN;
	return block_offset(p + skip, len - skip, &c, 8, at_s, offset_s);
}

int wr_tz_utc_offset(const char *zoneinfo_dir, const char *tz, int64_t at_us, int32_t *offset_s)
{
	char path[PATH_MAX];
	unsigned char *bytes = NULL;
	size_t len = 0;
	int rc = -1;
	FILE *f = NULL;
	if (!wr_timezone_known(zoneinfo_dir, tz) ||
	    snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir, tz) >= (int)sizeof(path))
		goto done;
	f = fopen(path, "rb");
	bytes = malloc(TZIF_MAX_FILE);
	if (!f || !bytes)
		goto done;
	len = fread(bytes, 1, TZIF_MAX_FILE, f);
	/* floor: an instant before 1970 belongs to the second that starts before it */
	int64_t at_s = at_us >= 0 ? at_us / VP_US_PER_SEC
				  : -((-at_us + VP_US_PER_SEC - 1) / VP_US_PER_SEC);
	if (tzif_offset(bytes, len, at_s, offset_s))
		rc = 0;
done:
	if (f)
		fclose(f);
	free(bytes);
	return rc;
}

int32_t wr_local_date(const char *zoneinfo_dir, const char *tz, int64_t at_us)
{
	int32_t offset_s = 0;
	/* A zone that cannot be read (the tenant's was checked when provisioned)
	 * falls back to UTC rather than refusing a clinical record. */
	if (wr_tz_utc_offset(zoneinfo_dir, tz, at_us, &offset_s) < 0)
		offset_s = 0;
	return vp_date_from_us(at_us + (int64_t)offset_s * VP_US_PER_SEC);
}
