/* What sealing personal fields costs per command and per projected event
 * (issue 18, docs/privacy.md), in-process, against the same work without it:
 *
 *   writer:    a new client's keys (tenant key present: data key made,
 *              wrapped, its record's JSON) + the five fields sealed + two
 *              blind indexes, against copying the plain data object (what
 *              RegisterClient v1 did with it);
 *   projector: the client's data key unwrapped + the five fields opened,
 *              against nothing (v1 data is read as it is).
 *
 * Prints CPU microseconds per operation and CPU-s per 1k operations (process
 * CPU time, CLOCK_PROCESS_CPUTIME_ID), to set beside the daemons' CPU-s per
 * 1k commands and events of bench/run.py (docs/bench.md): the issue allows
 * 10 % of either.
 *
 *   seal_cost [N]     N operations of each (default 20000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "vp_crypto.h"
#include "vp_keyring.h"
#include "vp_sealed.h"

#define TENANT "0190a1b2-0000-7000-8000-000000000001"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char plain_text[] =
	"{\"first_name\":\"Adaline\",\"last_name\":\"Quixwortel\","
	"\"email\":\"ada.q@example.org\",\"phone\":\"+44 20 7946 0718\","
	"\"address\":\"12 Crooked Lane, Zorbington, ZB1 2CD\"}";

static void client_id(long i, char out[37])
{
	snprintf(out, 37, "0190a1b2-0000-7000-8000-%012ld", i % 1000000000000L);
}

static void report(const char *what, long n, double with_s, double without_s)
{
	printf("%-10s %8ld ops  with %7.2f us/op (%.4f CPU-s per 1k)  without %7.2f us/op  "
	       "extra %.4f CPU-s per 1k\n",
	       what, n, with_s / (double)n * 1e6, with_s / (double)n * 1e3,
	       without_s / (double)n * 1e6, (with_s - without_s) / (double)n * 1e3);
}

int main(int argc, char **argv)
{
	char why[256], id[37];
	long n = argc > 1 ? atol(argv[1]) : 20000;
	if (n <= 0 || vp_crypto_init(why, sizeof(why)) < 0)
		return 2;
	VpKey *master = vp_key_random(why, sizeof(why));
	VpKeyring *kr = master ? vp_keyring_new(master, why, sizeof(why)) : NULL;
	cJSON *plain = cJSON_Parse(plain_text);
	cJSON **sealed = calloc((size_t)n, sizeof(*sealed));
	VpKeyRecord rec[2];
	int n_rec = 0;
	char key_id[VP_KEY_ID_CHARS + 1];
	/* the daemons' scratch keys: one locked allocation each, reused */
	VpKey *key = vp_key_random(why, sizeof(why)), *index = vp_key_random(why, sizeof(why));
	if (!kr || !plain || !sealed || !key || !index)
		return 1;
	/* the tenant's key exists already (its first client made it) */
	client_id(n, id);
	vp_keyring_new_client(kr, TENANT, id, 0, key, key_id, rec, &n_rec, why, sizeof(why));
	vp_key_records_release(rec, n_rec);

	double t0 = cpu_now();
	for (long i = 0; i < n; i++) {
		client_id(i, id);
		sealed[i] = vp_keyring_new_client(kr, TENANT, id, 0, key, key_id, rec, &n_rec,
						  why, sizeof(why)) == 0 &&
					    vp_keyring_index_key(kr, TENANT, index, why, sizeof(why)) == 0
				    ? vp_sealed_seal(plain, &(VpSealedOf){"ClientRegistered", TENANT, id},
						     key, key_id, index, why, sizeof(why))
				    : NULL;
		vp_key_records_release(rec, n_rec);
		vp_key_wipe(key);
		vp_key_wipe(index);
		if (!sealed[i]) {
			fprintf(stderr, "seal: %s\n", why);
			return 1;
		}
	}
	double seal_s = cpu_now() - t0;
	t0 = cpu_now();
	for (long i = 0; i < n; i++)
		cJSON_Delete(cJSON_Duplicate(plain, true));
	double copy_s = cpu_now() - t0;

	t0 = cpu_now();
	for (long i = 0; i < n; i++) {
		client_id(i, id);
		cJSON *opened = vp_keyring_client_key(kr, TENANT, id, 0, key, key_id, why,
						      sizeof(why)) ==
						VP_KEYRING_OK
					? vp_sealed_open(sealed[i], VP_SEALED_V,
							 &(VpSealedOf){"ClientRegistered", TENANT, id},
							 key, key_id, why, sizeof(why))
					: NULL;
		vp_key_wipe(key);
		if (!opened) {
			fprintf(stderr, "open: %s\n", why);
			return 1;
		}
		cJSON_Delete(opened);
	}
	double open_s = cpu_now() - t0;
	report("writer", n, seal_s, copy_s);
	report("projector", n, open_s, 0.0);
	for (long i = 0; i < n; i++)
		cJSON_Delete(sealed[i]);
	free(sealed);
	cJSON_Delete(plain);
	vp_keyring_free(kr);
	vp_key_free(key);
	vp_key_free(index);
	vp_key_free(master);
	return 0;
}
