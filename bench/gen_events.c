/* Pre-fills a topic for the projection benchmark: N realistic envelopes of the
 * types the projector applies (EVENTS.md), spread over T tenants, each tenant's
 * history consistent (a patient's owner exists, a transfer names the current
 * owner, seq counts each aggregate's versions). Key = tenant_id, headers type
 * and v, partition = murmur2(key) like the writer. No transactions: a pre-fill
 * does not need them, and read_committed consumers read plain records.
 *   gen_events BROKERS TOPIC N_EVENTS TENANTS [SEED [MODE [KEYS_TOPIC]]]
 * MODE: "mixed" (the default: every type), "clients" (each tenant's
 * provisioning, then ClientRegistered v1 only, every personal field set) or
 * "sealed-clients" (the very same events, same seed, sealed as the writer
 * seals them: v3 under a data key per client, whose key records, and the
 * tenant's, are produced to KEYS_TOPIC first (on the tenant's partition, as
 * the writer places them: vp_keyrec_partition), wrapped under the master key of
 * VETPMS_MASTER_KEY_FILE / VETPMS_MASTER_KEY). The last two are the two sides
 * of bench/run.py's seal scenario (the projector opening sealed fields).
 * Prints one JSON object: events, bytes, seconds, and the count of each type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

#include "gen_producer.h"
#include "vp_catalog.h"
#include "vp_kafka.h"
#include "vp_keyrec_partition.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"
#include "vp_uuid.h"

typedef struct GenId {
	char id[37];
	int seq;
	int owner; /* patients: index of the owning client */
} GenId;

typedef struct GenList {
	GenId *items;
	size_t n, cap;
} GenList;

typedef struct GenTenant {
	char id[37];
	int staff_made;
	GenList clients, patients, staff;
} GenTenant;

enum { T_TENANT, T_STAFF, T_CLIENT, T_CONTACT, T_PATIENT, T_WEIGHT, T_ALLERGY, T_CONDITION,
       T_TRANSFER, N_TYPES };
/* Names and aggregates come from the event catalog; every envelope made is
 * checked against it before it is produced, as the writer does. */
static const char *const type_names[N_TYPES] = {
	VP_EV_TENANT_PROVISIONED, VP_EV_STAFF_REGISTERED,   VP_EV_CLIENT_REGISTERED,
	VP_EV_CLIENT_CONTACT_UPDATED, VP_EV_PATIENT_REGISTERED, VP_EV_WEIGHT_RECORDED,
	VP_EV_ALLERGY_ADDED, VP_EV_CHRONIC_CONDITION_ADDED, VP_EV_PATIENT_TRANSFERRED};

static const char *const first_names[] = {"Jane", "John", "Maria", "Ahmed", "Li", "Olga",
					  "Pierre", "Aisha", "Tom", "Sofia", "Kenji", "Ana"};
static const char *const last_names[] = {"Smith", "Garcia", "Muller", "Rossi", "Nowak",
					 "Dubois", "Jensen", "Silva", "Kowalski", "Brown",
					 "Tanaka", "Okafor", "Novak", "Larsen"};
static const char *const pet_names[] = {"Bella", "Max", "Luna", "Charlie", "Lucy", "Cooper",
					"Daisy", "Rocky", "Milo", "Coco", "Bailey", "Nala"};
static const char *const species[] = {"canine", "feline", "canine", "feline", "rabbit", "avian",
				      "equine", "rodent"};
static const char *const breeds[] = {"Labrador", "Siamese", "Beagle", "Maine Coon", "Mixed",
				     "Poodle", "Persian", "Terrier"};
static const char *const allergens[] = {"penicillin", "chicken", "flea saliva", "pollen",
					"beef", "latex"};
static const char *const conditions[] = {"diabetes mellitus", "chronic kidney disease",
					 "osteoarthritis", "hypothyroidism", "atopic dermatitis"};
static const char *const severities[] = {"mild", "moderate", "severe"};
static const char *const roles[] = {"veterinarian", "veterinarian", "veterinarian", "nurse",
				    "nurse", "receptionist"};
static GenId *list_add(GenList *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		GenId *items = realloc(l->items, cap * sizeof(*items));
		if (!items)
			return NULL;
		l->items = items;
		l->cap = cap;
	}
	GenId *g = &l->items[l->n++];
	VpUuid u;
	vp_uuid_v7(&u);
	vp_uuid_format(&u, g->id);
	g->seq = 0;
	g->owner = 0;
	return g;
}

static int clients_only; /* MODE clients or sealed-clients */

/* The type of the next event of tenant t: its provisioning and staff first,
 * then a mix that follows a clinic's life (many weights, fewer allergies). */
static int choose_type(const GenTenant *t)
{
	if (!t->id[0])
		return T_TENANT;
	if (clients_only)
		return T_CLIENT;
	if (t->staff_made < 6)
		return T_STAFF;
	unsigned r = (unsigned)(next_rand() % 100);
	if (r < 18 || t->clients.n < 2)
		return T_CLIENT;
	if (r < 40 || t->patients.n == 0)
		return T_PATIENT;
	if (r < 72)
		return T_WEIGHT;
	if (r < 80)
		return T_ALLERGY;
	if (r < 86)
		return T_CONDITION;
	if (r < 94)
		return T_CONTACT;
	if (r < 97)
		return T_TRANSFER;
	return T_STAFF;
}

/* Writes data for one event of tenant t; target receives the aggregate. */
static int make_data(GenTenant *t, int type, char *data, size_t cap, GenId **target,
		     const char *at)
{
	char date[16];
	snprintf(date, sizeof(date), "20%02d-%02d-%02d", 10 + (int)(next_rand() % 14),
		 1 + (int)(next_rand() % 12), 1 + (int)(next_rand() % 28));
	switch (type) {
	case T_STAFF: {
		*target = list_add(&t->staff);
		const char *role = t->staff_made < 6 ? roles[t->staff_made] : "nurse";
		t->staff_made++;
		return snprintf(data, cap,
				"{\"name\":\"Dr %s %s\",\"role\":\"%s\",\"email\":\"staff%zu@clinic.example\","
				"\"license_number\":\"LIC-%06u\"}",
				PICK(first_names), PICK(last_names), role, t->staff.n,
				(unsigned)(next_rand() % 1000000));
	}
	case T_CLIENT:
		*target = list_add(&t->clients);
		return snprintf(data, cap,
				"{\"first_name\":\"%s\",\"last_name\":\"%s\",\"email\":\"c%zu@mail.example\","
				"\"phone\":\"+44 20 7946 %04u\",\"address\":\"%u High Street, London\"}",
				PICK(first_names), PICK(last_names), t->clients.n,
				(unsigned)(next_rand() % 10000), (unsigned)(next_rand() % 300));
	case T_CONTACT:
		*target = &t->clients.items[next_rand() % t->clients.n];
		return snprintf(data, cap, "{\"phone\":\"+44 20 7946 %04u\"}",
				(unsigned)(next_rand() % 10000));
	case T_PATIENT: {
		int owner = (int)(next_rand() % t->clients.n);
		*target = list_add(&t->patients);
		(*target)->owner = owner;
		char chip[32] = "null";
		if (next_rand() % 2)
			snprintf(chip, sizeof(chip), "\"9560%011zu\"", t->patients.n);
		return snprintf(data, cap,
				"{\"client_id\":\"%s\",\"name\":\"%s\",\"species\":\"%s\",\"breed\":\"%s\","
				"\"sex\":\"%s\",\"neutered\":%s,\"date_of_birth\":\"%s\",\"microchip\":%s,"
				"\"color\":\"brown\",\"weight_g\":%u}",
				t->clients.items[owner].id, PICK(pet_names), PICK(species),
				PICK(breeds), next_rand() % 2 ? "male" : "female",
				next_rand() % 2 ? "true" : "false", date, chip,
				500 + (unsigned)(next_rand() % 40000));
	}
	case T_WEIGHT:
		*target = &t->patients.items[next_rand() % t->patients.n];
		return snprintf(data, cap, "{\"weight_g\":%u,\"measured_at\":\"%s\"}",
				500 + (unsigned)(next_rand() % 40000), at);
	case T_ALLERGY:
		*target = &t->patients.items[next_rand() % t->patients.n];
		return snprintf(data, cap,
				"{\"allergen\":\"%s\",\"reaction\":\"hives and itching\",\"severity\":\"%s\"}",
				PICK(allergens), PICK(severities));
	case T_CONDITION:
		*target = &t->patients.items[next_rand() % t->patients.n];
		return snprintf(data, cap,
				"{\"name\":\"%s\",\"diagnosed_on\":\"%s\",\"notes\":\"monitor every 6 months\"}",
				PICK(conditions), date);
	case T_TRANSFER: {
		GenId *p = &t->patients.items[next_rand() % t->patients.n];
		int to = (int)(next_rand() % t->clients.n);
		if (to == p->owner)
			to = (to + 1) % (int)t->clients.n;
		int from = p->owner;
		p->owner = to;
		*target = p;
		return snprintf(data, cap, "{\"from_client_id\":\"%s\",\"to_client_id\":\"%s\"}",
				t->clients.items[from].id, t->clients.items[to].id);
	}
	}
	return -1;
}

/* MODE sealed-clients: what the writer holds to seal (cmd-writer/keys.c). */
typedef struct GenSeal {
	VpKey *master, *key, *index; /* key, index: scratch keys wiped after each event */
	VpKeyring *kr;
	rd_kafka_topic_t *keys;
	int keys_partitions;
} GenSeal;

static int seal_open(GenSeal *g, rd_kafka_t *rk, const char *keys_topic)
{
	char why[256];
	g->master = vp_crypto_init(why, sizeof(why)) == 0
			? vp_key_master_load(getenv("VETPMS_MASTER_KEY_FILE"),
					     getenv("VETPMS_MASTER_KEY"), why, sizeof(why))
			: NULL;
	g->kr = g->master ? vp_keyring_new(g->master, why, sizeof(why)) : NULL;
	g->key = g->kr ? vp_key_random(why, sizeof(why)) : NULL;
	g->index = g->key ? vp_key_random(why, sizeof(why)) : NULL;
	if (g->index && (vp_kafka_probe(rk, keys_topic, 10000, &g->keys_partitions) < 0 ||
			 g->keys_partitions <= 0))
		snprintf(why, sizeof(why), "keys topic %s not found", keys_topic);
	else if (g->index)
		g->keys = rd_kafka_topic_new(rk, keys_topic, NULL);
	if (!g->keys)
		fprintf(stderr, "gen_events: cannot seal: %s\n", why);
	return g->keys ? 0 : -1;
}

static void seal_close(GenSeal *g)
{
	if (g->keys)
		rd_kafka_topic_destroy(g->keys);
	vp_keyring_free(g->kr);
	vp_key_free(g->key);
	vp_key_free(g->index);
	vp_key_free(g->master);
}

/* A new client's data sealed in place (data gets the v3 text), its key
 * records (the tenant's first, when new) produced to the keys topic before
 * the event. 0 or -1. */
static int seal_client(GenSeal *g, rd_kafka_t *rk, const char *tenant, const char *client,
		       int64_t at_us, char *data, size_t cap)
{
	char why[256] = "";
	VpKeyRecord recs[2];
	int n = 0, rc = -1;
	char key_id[VP_KEY_ID_CHARS + 1];
	cJSON *plain = cJSON_Parse(data), *sealed = NULL;
	if (plain && vp_keyring_new_client(g->kr, tenant, client, at_us, g->key, key_id, recs, &n,
					   why, sizeof(why)) == 0 &&
	    vp_keyring_index_key(g->kr, tenant, g->index, why, sizeof(why)) == 0)
		sealed = vp_sealed_seal(plain,
					&(VpSealedOf){VP_EV_CLIENT_REGISTERED, tenant, client},
					g->key, key_id, g->index, why, sizeof(why));
	vp_key_wipe(g->key);
	vp_key_wipe(g->index);
	for (int i = 0; sealed && i < n; i++)
		if (gen_produce_to(rk, g->keys, vp_keyrec_partition(recs[i].name, g->keys_partitions),
				   recs[i].name, "key", 1, recs[i].value,
				   strlen(recs[i].value)) != RD_KAFKA_RESP_ERR_NO_ERROR)
			snprintf(why, sizeof(why), "cannot produce a key record");
	char *text = sealed && !why[0] ? cJSON_PrintUnformatted(sealed) : NULL;
	if (text && strlen(text) < cap) {
		memcpy(data, text, strlen(text) + 1);
		rc = 0;
	}
	if (rc < 0)
		fprintf(stderr, "gen_events: cannot seal a client: %s\n", why[0] ? why : "too long");
	free(text);
	cJSON_Delete(sealed);
	cJSON_Delete(plain);
	vp_key_records_release(recs, n);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: gen_events BROKERS TOPIC N_EVENTS TENANTS "
				"[SEED [mixed|clients|sealed-clients [KEYS_TOPIC]]]\n");
		return 2;
	}
	long n_events = atol(argv[3]), n_tenants = atol(argv[4]);
	if (argc > 5)
		gen_seed(strtoull(argv[5], NULL, 10));
	const char *mode = argc > 6 ? argv[6] : "mixed";
	bool sealing = !strcmp(mode, "sealed-clients");
	clients_only = sealing || !strcmp(mode, "clients");
	if (n_events < 1 || n_tenants < 1 || n_tenants > 100000 ||
	    (!clients_only && strcmp(mode, "mixed")) || (sealing && argc < 8)) {
		fprintf(stderr, "gen_events: bad arguments\n");
		return 2;
	}
	long failed = 0, counts[N_TYPES] = {0};
	size_t bytes = 0;
	GenTenant *tenants = calloc((size_t)n_tenants, sizeof(*tenants));
	rd_kafka_t *rk =
	    gen_producer_new(argv[1], "gen_events", "vetpms-bench-gen-events", &failed);
	if (!tenants || !rk)
		return 1;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[2], NULL);
	GenSeal seal = {0};
	if (sealing && seal_open(&seal, rk, argv[7]) < 0)
		return 1;
	int64_t started = vp_time_mono_us();
	int64_t at_us = vp_time_now_us() - 365LL * 86400 * 1000000; /* a year of history */
	static char data[2048], envelope[4096];
	for (long i = 0; i < n_events; i++) {
		GenTenant *t = &tenants[i % n_tenants];
		int type = choose_type(t);
		char at[40], event_id[37], command_id[37];
		GenId *target = NULL;
		VpUuid u;
		at_us += 1000 + (int64_t)(next_rand() % 30000);
		vp_time_format_rfc3339_us(at_us, at, sizeof(at));
		if (type == T_TENANT) {
			vp_uuid_v7(&u);
			vp_uuid_format(&u, t->id);
			snprintf(data, sizeof(data),
				 "{\"name\":\"Clinic %ld\",\"timezone\":\"Europe/London\",\"currency\":\"GBP\"}",
				 i);
		} else if (make_data(t, type, data, sizeof(data), &target, at) < 0 || !target) {
			fprintf(stderr, "gen_events: out of memory\n");
			return 1;
		}
		int v = 1;
		if (sealing && type == T_CLIENT) {
			if (seal_client(&seal, rk, t->id, target->id, at_us, data, sizeof(data)) < 0)
				return 1;
			v = VP_SEALED_V;
		}
		int seq = target ? ++target->seq : 1;
		vp_uuid_v7(&u);
		vp_uuid_format(&u, event_id);
		vp_uuid_v7(&u);
		vp_uuid_format(&u, command_id);
		int len = snprintf(envelope, sizeof(envelope),
				   "{\"id\":\"%s\",\"type\":\"%s\",\"v\":%d,\"tenant_id\":\"%s\","
				   "\"aggregate\":\"%s\",\"aggregate_id\":\"%s\",\"seq\":%d,"
				   "\"command_id\":\"%s\",\"actor\":\"bench-user\",\"at\":\"%s\","
				   "\"data\":%s}",
				   event_id, type_names[type], v, t->id,
				   vp_catalog_find(type_names[type], 1)->aggregate,
				   target ? target->id : t->id, seq, command_id, at, data);
		char why[256];
		if (len > 0 && (size_t)len < sizeof(envelope) &&
		    vp_catalog_check_encoded(envelope, (size_t)len, why, sizeof(why)) < 0) {
			fprintf(stderr, "gen_events: event %ld fails the catalog: %s\n", i, why);
			return 1;
		}
		if (len < 0 || (size_t)len >= sizeof(envelope) ||
		    gen_produce_to(rk, rkt, RD_KAFKA_PARTITION_UA, t->id, type_names[type], v,
					   envelope, (size_t)len) !=
			RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "gen_events: cannot produce event %ld\n", i);
			return 1;
		}
		counts[type]++;
		bytes += (size_t)len;
		rd_kafka_poll(rk, 0);
	}
	rd_kafka_flush(rk, 120000);
	double seconds = (double)(vp_time_mono_us() - started) / 1e6;
	printf("{\"events\":%ld,\"bytes\":%zu,\"seconds\":%.3f,\"failed\":%ld,\"types\":{", n_events,
	       bytes, seconds, failed);
	for (int k = 0; k < N_TYPES; k++)
		printf("%s\"%s\":%ld", k ? "," : "", type_names[k], counts[k]);
	printf("}}\n");
	rd_kafka_topic_destroy(rkt);
	seal_close(&seal);
	rd_kafka_destroy(rk);
	for (long k = 0; k < n_tenants; k++) {
		free(tenants[k].clients.items);
		free(tenants[k].patients.items);
		free(tenants[k].staff.items);
	}
	free(tenants);
	return failed ? 1 : 0;
}
