/* vetctl kafka ready: the readiness probe the stack scripts use for the broker
 * (a metadata request answered through librdkafka, as our daemons will see it). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vetctl.h"
#include "vp_config.h"
#include "vp_kafka.h"

int vc_cmd_kafka(int argc, char **argv)
{
	char *brokers = NULL;
	long timeout_ms = 0;
	char why[512];
	char errstr[512];
	int rc = 1;
	const VpConfigItem items[] = {
		VP_CF_STR("brokers", "VETPMS_KAFKA_BROKERS", &brokers, "127.0.0.1:59092",
			  "Kafka bootstrap servers"),
		VP_CF_INT("timeout-ms", NULL, &timeout_ms, "5000", 100, 600000,
			  "how long to wait for an answer"),
	};
	const size_t n = sizeof(items) / sizeof(items[0]);

	if (argc < 2 || strcmp(argv[1], "ready") != 0) {
		fprintf(stderr, "usage: vetctl kafka ready [--brokers B] [--timeout-ms N]\n");
		return 2;
	}
	int loaded = vp_config_load(items, n, argc - 1, argv + 1, "vetctl kafka ready", NULL,
				    why, sizeof(why));
	if (loaded != 0) {
		if (loaded < 0)
			fprintf(stderr, "vetctl: %s\n", why);
		rc = loaded < 0 ? 2 : 0;
		goto done;
	}
	rd_kafka_conf_t *conf = vp_kafka_conf_new(brokers, "vetctl", NULL, why, sizeof(why));
	if (!conf) {
		fprintf(stderr, "vetctl: %s\n", why);
		goto done;
	}
	/* Quiet: connection refusals are the expected answer while a broker starts. */
	rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		rd_kafka_conf_destroy(conf); /* still ours when rd_kafka_new fails */
		fprintf(stderr, "vetctl: %s\n", errstr);
		goto done;
	}
	if (vp_kafka_probe(rk, NULL, (int)timeout_ms, NULL) == 0) {
		printf("kafka ready at %s\n", brokers);
		rc = 0;
	} else {
		fprintf(stderr, "vetctl: no metadata answer from %s within %ld ms\n", brokers,
			timeout_ms);
	}
	rd_kafka_destroy(rk);
done:
	vp_config_free(items, n);
	return rc;
}
