/* The tenant-local date of an instant, from the zone's TZif file (RFC 8536)
 * as PostgreSQL's AT TIME ZONE reads the same tz database. Not localtime_r
 * with a per-call TZ: setenv races every getenv of the process's other
 * threads (librdkafka's), and tzset costs a file read anyway. Times after the
 * file's last transition keep its last offset: right for "fat" TZif files
 * (Debian's, transitions to 2037); a "slim" file would need its footer's
 * POSIX TZ rule, which this does not read (docs/decisions.md). Each zone's
 * file is read once and its transitions kept (a small cache, below). */
#include <limits.h>
#include <pthread.h>
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

/* One zone's transitions as parsed from its file: the instants, the local
 * time type each starts, and every type's UT offset. */
typedef struct TzZone {
	char name[65]; /* wr_timezone_known allows at most 64 bytes */
	int64_t *times;
	unsigned char *indexes;
	uint32_t time_count;
	uint32_t type_count;
	int32_t offsets[256];
} TzZone;

/* Fills zone from one data block (time_size 4: v1, 8: v2+). */
static bool block_parse(const unsigned char *p, size_t len, const TzifCounts *c,
			size_t time_size, TzZone *zone)
{
	if (len < tzif_data_len(c, time_size))
		return false;
	const unsigned char *times = p, *indexes = p + c->time * time_size;
	const unsigned char *types = indexes + c->time;
	zone->times = malloc((c->time ? c->time : 1) * sizeof(*zone->times));
	zone->indexes = malloc(c->time ? c->time : 1);
	if (!zone->times || !zone->indexes)
		return false;
	for (uint32_t i = 0; i < c->time; i++) {
		const unsigned char *t = times + i * time_size;
		zone->times[i] = time_size == 8 ? be64(t) : (int64_t)(int32_t)be32(t);
		zone->indexes[i] = indexes[i];
	}
	for (uint32_t i = 0; i < c->type; i++)
		zone->offsets[i] = (int32_t)be32(types + i * 6);
	zone->time_count = c->time;
	zone->type_count = c->type;
	return true;
}

static bool tzif_parse(const unsigned char *p, size_t len, TzZone *zone)
{
	char version;
	TzifCounts c;
	if (!tzif_counts(p, len, &version, &c))
		return false;
	if (version == '\0')
		return block_parse(p + TZIF_HEADER_LEN, len - TZIF_HEADER_LEN, &c, 4, zone);
	size_t skip = TZIF_HEADER_LEN + tzif_data_len(&c, 4);
	if (skip > len || !tzif_counts(p + skip, len - skip, &version, &c))
		return false;
	skip += TZIF_HEADER_LEN;
	return block_parse(p + skip, len - skip, &c, 8, zone);
}

/* The UT offset at at_s: the type of the last transition at or before it. */
static bool zone_offset(const TzZone *zone, int64_t at_s, int32_t *offset_s)
{
	uint32_t type = 0; /* RFC 8536: before the first transition, type 0 */
	for (uint32_t i = 0; i < zone->time_count; i++) {
		if (zone->times[i] > at_s)
			break;
		type = zone->indexes[i];
	}
	if (type >= zone->type_count)
		return false;
	*offset_s = zone->offsets[type];
	return true;
}

static void zone_release(TzZone *zone)
{
	free(zone->times);
	free(zone->indexes);
	memset(zone, 0, sizeof(*zone));
}

/* Reads and parses tz's file into zone (emptied first); false when the zone
 * is unknown or its file cannot be read. */
static bool zone_load(const char *zoneinfo_dir, const char *tz, TzZone *zone)
{
	char path[PATH_MAX];
	unsigned char *bytes = NULL;
	size_t len = 0;
	bool loaded = false;
	FILE *f = NULL;
	zone_release(zone);
	if (!wr_timezone_known(zoneinfo_dir, tz) || strlen(tz) >= sizeof(zone->name) ||
	    snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir, tz) >= (int)sizeof(path))
		goto done;
	f = fopen(path, "rb");
	bytes = malloc(TZIF_MAX_FILE);
	if (!f || !bytes)
		goto done;
	len = fread(bytes, 1, TZIF_MAX_FILE, f);
	loaded = tzif_parse(bytes, len, zone);
	if (loaded)
		memcpy(zone->name, tz, strlen(tz) + 1);
done:
	if (!loaded)
		zone_release(zone);
	if (f)
		fclose(f);
	free(bytes);
	return loaded;
}

/* The zones read so far, each file read once (issue 14: it was read on every
 * call, from the command path). Keyed by name only: one zoneinfo_dir per
 * process (WR_ZONEINFO_DIR), and a tzdata upgrade takes a restart, as it does
 * for PostgreSQL. A zone that fails to load is not kept, so it is retried. The
 * mutex is for safety only: the loop thread is the one caller today. */
#define ZONE_CACHE_SIZE 16 /* tenants of a deployment share a handful of zones */

static struct {
	pthread_mutex_t lock;
	TzZone zones[ZONE_CACHE_SIZE];
	unsigned next_victim; /* the oldest entry, replaced when all are used */
	uint64_t loads;
} zone_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t wr_tz_cache_loads(void)
{
	pthread_mutex_lock(&zone_cache.lock);
	uint64_t loads = zone_cache.loads;
	pthread_mutex_unlock(&zone_cache.lock);
	return loads;
}

int wr_tz_utc_offset(const char *zoneinfo_dir, const char *tz, int64_t at_us, int32_t *offset_s)
{
	TzZone *zone = NULL;
	int rc = -1;
	/* floor: an instant before 1970 belongs to the second that starts before it */
	int64_t at_s = at_us >= 0 ? at_us / VP_US_PER_SEC
				  : -((-at_us + VP_US_PER_SEC - 1) / VP_US_PER_SEC);
	pthread_mutex_lock(&zone_cache.lock);
	for (unsigned i = 0; i < ZONE_CACHE_SIZE && !zone; i++) {
		if (zone_cache.zones[i].name[0] && strcmp(zone_cache.zones[i].name, tz) == 0)
			zone = &zone_cache.zones[i];
	}
	if (!zone) {
		TzZone *slot = &zone_cache.zones[zone_cache.next_victim];
		if (!zone_load(zoneinfo_dir, tz, slot))
			goto done;
		zone_cache.loads++;
		zone_cache.next_victim = (zone_cache.next_victim + 1) % ZONE_CACHE_SIZE;
		zone = slot;
	}
	if (zone_offset(zone, at_s, offset_s))
		rc = 0;
done:
	pthread_mutex_unlock(&zone_cache.lock);
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
