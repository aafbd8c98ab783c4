/* Where a key record lives in the keys topic (docs/privacy.md, "The keys
 * topic"). */
#ifndef VP_KEYREC_PARTITION_H
#define VP_KEYREC_PARTITION_H

/* The keys topic's partition of a record name ("tenant:<t>",
 * "client:<t>:<c>"): the tenant's, by the hash that places the tenant's
 * events (vp_kafka_partition_for_key of the tenant id) modulo the keys
 * topic's partition_cnt. Every record of one tenant shares one partition, so
 * a transaction of many new clients adds one partition of the keys topic,
 * not one per client (docs/bench.md, "Sealing personal fields: same run");
 * and every record of a name stays on one partition, in order, as compaction
 * (per partition) needs. The writer, its import and `vetctl keys
 * rotate-master` all place by it. -1 for a name without a tenant or no
 * partitions. */
int vp_keyrec_partition(const char *name, int partition_cnt);

#endif
