/* A key record's partition of the keys topic (vp_keyrec_partition.h). */
#include <string.h>

#include "vp_kafka.h"
#include "vp_keyrec_partition.h"

int vp_keyrec_partition(const char *name, int partition_cnt)
{
	const char *tenant = name ? strchr(name, ':') : NULL;
	if (!tenant || partition_cnt <= 0)
		return -1;
	tenant++;
	/* the tenant id ends at the client's colon, or with the name */
	const char *end = strchr(tenant, ':');
	size_t len = end ? (size_t)(end - tenant) : strlen(tenant);
	return len > 0 ? vp_kafka_partition_for_key(tenant, len, partition_cnt) : -1;
}
