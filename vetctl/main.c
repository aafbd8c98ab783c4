/* vetctl — ops CLI for VetPMS: Kafka readiness, topic creation through the Admin
 * API, dev tokens, reading the event log, analyst logins. Exit codes: 0 ok, 1 failure, 2 usage. */
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "vetctl.h"

static const char usage[] =
	"usage: vetctl <command> [options]\n"
	"  kafka ready   [--brokers B] [--timeout-ms N]      exit 0 once a metadata request is answered\n"
	"  topics create [--brokers B] [--partitions N] [--replication-factor R] [--min-insync-replicas M]\n"
	"  token         --role R[,R...] [--tenant UUID] [--sub S] [--ttl-s N]   mint a dev JWT (HS256)\n"
	"  events tail   [--tenant T] [--aggregate A] [--follow]   print the log's envelopes\n"
	"  events check  list the records the event catalog refuses, and their quarantine list\n"
	"  analyst create|grant|revoke --tenant UUID --login NAME [--dsn DSN]   analyst logins per tenant\n"
	"  deadletters list|show|redrive|discard   the projector's dead letters (see --help)\n"
	"  archive run   [--tenant T] [--dry-run]   archive closed rows now (through the live projector)\n"
	"  tenant export --tenant UUID > t.ndjson   a tenant's committed events and a BLAKE2b trailer\n"
	"  tenant import --file t.ndjson --writer URL --token JWT   load it into another deployment\n"
	"  keys new-master --out FILE   a new master key in a file only its owner reads\n"
	"  keys rotate-master [--new-key-file FILE]   rewrap the tenant keys under the new master key\n"
	"  keys status                  key records still under each master key (JSON)\n"
	"  catalog       print the event catalog (types, aggregates, versions, data fields) as JSON\n"
	"each command takes --help; options also come from VETPMS_* variables (see README)\n";

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "vetctl: libsodium failed to initialise\n");
		return 1;
	}
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "kafka"))
		return vc_cmd_kafka(argc - 1, argv + 1);
	if (!strcmp(argv[1], "topics"))
		return vc_cmd_topics(argc - 1, argv + 1);
	if (!strcmp(argv[1], "token"))
		return vc_cmd_token(argc - 1, argv + 1);
	if (!strcmp(argv[1], "catalog"))
		return vc_cmd_catalog(argc - 1, argv + 1);
	if (!strcmp(argv[1], "analyst"))
		return vc_cmd_analyst(argc - 1, argv + 1);
	if (!strcmp(argv[1], "deadletters"))
		return vc_cmd_deadletters(argc - 1, argv + 1);
	if (!strcmp(argv[1], "archive"))
		return vc_cmd_archive(argc - 1, argv + 1);
	if (!strcmp(argv[1], "tenant"))
		return vc_cmd_tenant(argc - 1, argv + 1);
	if (!strcmp(argv[1], "events"))
		return vc_cmd_events(argc - 1, argv + 1);
	if (!strcmp(argv[1], "keys"))
		return vc_cmd_keys(argc - 1, argv + 1);
	fprintf(stderr, "vetctl: unknown command '%s'\n%s", argv[1], usage);
	return 2;
}
