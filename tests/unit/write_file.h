/* write_file: a test's file with the text and mode given (a key file the
 * loaders check: mode 0600, or one readable by others). Include after
 * <cmocka.h>: it asserts. One copy for every unit test that needs it. */
#ifndef TEST_WRITE_FILE_H
#define TEST_WRITE_FILE_H

#include <stdio.h>
#include <sys/stat.h>

static inline void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

#endif
