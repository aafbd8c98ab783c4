/* Configuration from a declarative table: each item has a flag (--name), an
 * environment variable (VETPMS_*), a type, a default and bounds. Precedence:
 * flag > environment > default. Daemons keep their table next to main(). */
#ifndef VP_CONFIG_H
#define VP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
	VP_CF_STRING,
	VP_CF_INT,
	VP_CF_BOOL,
} VpConfigType;

typedef struct VpConfigItem {
	const char *flag;          /* "port" for --port */
	const char *env;           /* "VETPMS_WRITER_PORT", or NULL */
	VpConfigType type;
	void *target;              /* char ** (malloc'd copy), long *, bool * */
	const char *default_value; /* parsed like user input; NULL = empty/0 */
	long min, max;             /* VP_CF_INT bounds (inclusive) */
	const char *help;
} VpConfigItem;

#define VP_CF_STR(flag, env, target, def, help) {flag, env, VP_CF_STRING, target, def, 0, 0, help}
#define VP_CF_INT(flag, env, target, def, lo, hi, help) {flag, env, VP_CF_INT, target, def, lo, hi, help}
#define VP_CF_BOOL(flag, env, target, def, help) {flag, env, VP_CF_BOOL, target, def, 0, 0, help}

/* Fills every target. Returns 0, 1 when --help was asked (usage printed to
 * stdout), or -1 with a message in why. `extra_args`, when not NULL, receives the
 * index of the first non-flag argument (for subcommands). */
int vp_config_load(const VpConfigItem *items, size_t n, int argc, char **argv,
		   const char *usage, int *extra_args, char *why, size_t why_cap);

/* Frees the strings vp_config_load allocated. */
void vp_config_free(const VpConfigItem *items, size_t n);

#endif
