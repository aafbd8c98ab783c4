/* Declarative configuration loader (see vp_config.h). */
#include "vp_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_value(const VpConfigItem *it, const char *value, const char *source, char *why,
		     size_t why_cap)
{
	switch (it->type) {
	case VP_CF_STRING: {
		char **target = it->target;
		char *copy = strdup(value ? value : "");
		if (!copy) {
			snprintf(why, why_cap, "out of memory");
			return -1;
		}
		free(*target);
		*target = copy;
		return 0;
	}
	case VP_CF_INT: {
		char *end = NULL;
		errno = 0;
		long v = strtol(value ? value : "0", &end, 10);
		if (errno || !end || *end || end == value || v < it->min || v > it->max) {
			snprintf(why, why_cap, "%s: %s must be an integer in [%ld, %ld], got '%s'",
				 source, it->flag, it->min, it->max, value ? value : "");
			return -1;
		}
		*(long *)it->target = v;
		return 0;
	}
	case VP_CF_BOOL: {
		const char *v = value ? value : "false";
		bool *target = it->target;
		if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
			*target = true;
		} else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") ||
			   !strcmp(v, "off") || !*v) {
			*target = false;
		} else {
			snprintf(why, why_cap, "%s: %s must be true or false, got '%s'", source,
				 it->flag, v);
			return -1;
		}
		return 0;
	}
	}
	return -1;
}

static void print_usage(const VpConfigItem *items, size_t n, const char *usage)
{
	printf("%s\n\noptions (flag, environment variable, default):\n", usage);
	for (size_t i = 0; i < n; i++)
		printf("  --%-22s %-32s %-16s %s\n", items[i].flag, items[i].env ? items[i].env : "",
		       items[i].default_value ? items[i].default_value : "", items[i].help);
}

static const VpConfigItem *find_flag(const VpConfigItem *items, size_t n, const char *name,
				     size_t name_len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(items[i].flag) == name_len && !strncmp(items[i].flag, name, name_len))
			return &items[i];
	return NULL;
}

static int load_flags(const VpConfigItem *items, size_t n, int argc, char **argv,
		      const char *usage, int *extra_args, char *why, size_t why_cap)
{
	int i = 1;
	for (; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0) {
			if (extra_args)
				break;
			snprintf(why, why_cap, "unexpected argument '%s'", arg);
			return -1;
		}
		if (!strcmp(arg, "--help")) {
			print_usage(items, n, usage);
			return 1;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
		const VpConfigItem *it = find_flag(items, n, name, name_len);
		if (!it) {
			snprintf(why, why_cap, "unknown option '%s' (see --help)", arg);
			return -1;
		}
		const char *value = eq ? eq + 1 : NULL;
		if (!value && it->type == VP_CF_BOOL) {
			value = "true";
		} else if (!value) {
			if (i + 1 >= argc) {
				snprintf(why, why_cap, "option --%s needs a value", it->flag);
				return -1;
			}
			value = argv[++i];
		}
		if (set_value(it, value, "flag", why, why_cap) < 0)
			return -1;
	}
	if (extra_args)
		*extra_args = i;
	return 0;
}

int vp_config_load(const VpConfigItem *items, size_t n, int argc, char **argv,
		   const char *usage, int *extra_args, char *why, size_t why_cap)
{
	for (size_t i = 0; i < n; i++) {
		const char *env = items[i].env ? getenv(items[i].env) : NULL;
		const char *value = env && *env ? env : items[i].default_value;
		if (set_value(&items[i], value, env && *env ? items[i].env : "default", why,
			      why_cap) < 0)
			return -1;
	}
	return load_flags(items, n, argc, argv, usage, extra_args, why, why_cap);
}

void vp_config_free(const VpConfigItem *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (items[i].type == VP_CF_STRING) {
			char **target = items[i].target;
			free(*target);
			*target = NULL;
		}
	}
}
