/* vetctl catalog: prints the event catalog (common/vp_catalog.c) as JSON, so
 * tests and tools generate and check events from the table the daemons use
 * rather than from a copy of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vetctl.h"
#include "vp_catalog.h"

int vc_cmd_catalog(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr,
			"usage: vetctl catalog   print every event type with its aggregate, "
			"version and data fields (JSON)\n");
		return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	cJSON *catalog = vp_catalog_describe();
	char *text = catalog ? cJSON_Print(catalog) : NULL;
	cJSON_Delete(catalog);
	if (!text) {
		fprintf(stderr, "vetctl: out of memory\n");
		return 1;
	}
	puts(text);
	free(text);
	return 0;
}
