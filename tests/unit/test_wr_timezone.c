/* Unit tests of the writer's tenant timezone check (wr_timezone_known): the name
 * rule, and TZif files (RFC 8536) written into a temporary zoneinfo directory:
 * version 1 and 2 headers, leap seconds in either block (the "right/" zones,
 * slim or fat), no local time type, text files, truncation, directories and
 * FIFOs. Then the system's own zoneinfo when there is one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "decide.h"

static char root[] = "/tmp/vp-test-zoneinfo-XXXXXX";

typedef struct Counts {
	uint32_t isut, isstd, leap, time, type, chars;
} Counts;

static void put_be32(FILE *f, uint32_t n)
{
	unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};
	fwrite(b, 1, 4, f);
}

static void put_header(FILE *f, char version, Counts c)
{
	char reserved[15] = {0};
	fwrite("TZif", 1, 4, f);
	fputc(version, f);
	fwrite(reserved, 1, sizeof(reserved), f);
	put_be32(f, c.isut);
	put_be32(f, c.isstd);
	put_be32(f, c.leap);
	put_be32(f, c.time);
	put_be32(f, c.type);
	put_be32(f, c.chars);
}

/* A data block of the counts' size (time_size 4 for version 1, 8 after). */
static void put_data(FILE *f, Counts c, size_t time_size)
{
	size_t len = c.time * (time_size + 1) + c.type * 6 + c.chars +
		     c.leap * (time_size + 4) + c.isstd + c.isut;
	for (size_t i = 0; i < len; i++)
		fputc(0, f);
}

static FILE *create(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	return f;
}

static void write_zone(const char *name, char version, Counts v1, Counts v2)
{
	FILE *f = create(name);
	put_header(f, version, v1);
	put_data(f, v1, 4);
	if (version) {
		put_header(f, version, v2);
		put_data(f, v2, 8);
		fputs("\nUTC0\n", f);
	}
	fclose(f);
}

static void write_text(const char *name, const char *text)
{
	FILE *f = create(name);
	fputs(text, f);
	fclose(f);
}

static const Counts utc = {0, 0, 0, 0, 1, 4};
static const Counts slim_v1 = {0, 0, 0, 0, 1, 1};
static const Counts with_leap = {0, 0, 27, 0, 1, 4};
static const Counts no_types = {0, 0, 0, 0, 0, 0};
static const Counts london = {8, 8, 0, 242, 8, 17};

static int setup(void **state)
{
	char path[256];
	(void)state;
	if (!mkdtemp(root))
		return -1;
	snprintf(path, sizeof(path), "%s/Europe", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/right", root);
	mkdir(path, 0755);
	write_zone("UTC", '\0', utc, utc);
	write_zone("localtime", '2', utc, utc);
	write_zone("posixrules", '2', london, london);
	write_zone("Europe/London", '2', london, london);
	write_zone("Etc+v3", '3', utc, utc);
	write_zone("right/UTC", '2', with_leap, with_leap);
	write_zone("right/Slim", '2', slim_v1, with_leap); /* leap seconds in block 2 only */
	write_zone("right/Old", '\0', with_leap, with_leap);
	write_zone("Empty", '2', no_types, no_types);
	write_zone("Mixed", '3', utc, (Counts){0, 0, 0, 0, 1, 4});
	write_text("zone.tab", "# tzdb timezone descriptions\nGB\t+513030-0000731\tEurope/London\n");
	write_text("leapseconds", "# Leap\t1972\tJun\t30\t23:59:60\t+\tS\n");
	write_text("tzdata.zi", "# version 2024a\nZ Etc/UTC 0 - UTC\n");
	write_text("Short", "TZif2\0\0");
	{
		FILE *f = create("BadVersion");
		put_header(f, '1', utc);
		put_data(f, utc, 4);
		fclose(f);
	}
	{
		/* v2 whose second header is missing: cut after block 1 */
		FILE *f = create("Truncated");
		put_header(f, '2', utc);
		put_data(f, utc, 4);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/Fifo", root);
	return mkfifo(path, 0600);
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void tzif_zones_without_leap_seconds_are_known(void **state)
{
	(void)state;
	assert_true(wr_timezone_known(root, "UTC"));
	assert_true(wr_timezone_known(root, "Europe/London"));
	assert_true(wr_timezone_known(root, "Etc+v3"));
	assert_true(wr_timezone_known(root, "Mixed"));
}

static void everything_else_is_not(void **state)
{
	(void)state;
	const char *refused[] = {"right/UTC", "right/Slim", "right/Old", "Empty", "zone.tab",
				 "leapseconds", "tzdata.zi", "Short", "BadVersion", "Truncated",
				 "Fifo", "Europe", "right", "Nowhere", "Europe/Nowhere",
				 "localtime", "posixrules"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (wr_timezone_known(root, refused[i]))
			fail_msg("%s accepted", refused[i]);
}

static void the_name_rule(void **state)
{
	(void)state;
	char long_name[80];
	memset(long_name, 'A', 65);
	long_name[65] = '\0';
	const char *refused[] = {"", "../UTC", "Europe/../UTC", "Europe//London", "/UTC",
				 "Europe/London/", "Europe/London ", "Europe/Lon\ndon", "UT\xc3\x89",
				 "./UTC", long_name};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (wr_timezone_known(root, refused[i]))
			fail_msg("\"%s\" accepted", refused[i]);
}

static void the_system_zoneinfo(void **state)
{
	(void)state;
	struct stat st;
	if (stat("/usr/share/zoneinfo/Europe/London", &st) != 0)
		skip();
	assert_true(wr_timezone_known("/usr/share/zoneinfo", "Europe/London"));
	assert_true(wr_timezone_known("/usr/share/zoneinfo", "UTC"));
	assert_true(wr_timezone_known("/usr/share/zoneinfo", "America/Argentina/Buenos_Aires"));
	const char *refused[] = {"zone.tab", "zone1970.tab", "iso3166.tab", "leapseconds",
				 "leap-seconds.list", "tzdata.zi", "SECURITY", "right/UTC",
				 "right/Europe/London", "Europe", "posix"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (wr_timezone_known("/usr/share/zoneinfo", refused[i]))
			fail_msg("%s accepted", refused[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tzif_zones_without_leap_seconds_are_known),
		cmocka_unit_test(everything_else_is_not),
		cmocka_unit_test(the_name_rule),
		cmocka_unit_test(the_system_zoneinfo),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
