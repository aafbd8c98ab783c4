/* Key records as a writer's keyring makes them, for the keyring's unit
 * tests (test_keyring_previous, test_keyring_clients). Include after
 * <cmocka.h>: it asserts. One copy for every unit test that needs it. */
#ifndef TEST_KEYRING_RECORDS_H
#define TEST_KEYRING_RECORDS_H

#include <string.h>

#include "vp_keyring.h"

/* A new client's records (tenant's and client's, or the client's alone
 * when its tenant already had a key), as the keys topic would carry them,
 * and the data key's id. */
typedef struct Made {
	VpKeyRecord rec[2];
	int n;
	char id[VP_KEY_ID_CHARS + 1];
} Made;

/* The records writer makes for client of tenant: n of them. */
static inline void made_in(VpKeyring *writer, const char *tenant, const char *client, Made *m,
			   int n)
{
	char why[512];
	VpKey *data = vp_key_random(why, sizeof(why));
	assert_non_null(data);
	memset(m, 0, sizeof(*m));
	assert_int_equal(vp_keyring_new_client(writer, tenant, client, 1000000, data, m->id,
					       m->rec, &m->n, why, sizeof(why)),
			 0);
	assert_int_equal(m->n, n);
	vp_key_free(data);
}

/* The records a fresh writer holding master makes for a new client of
 * tenant (so under a tenant key of its own). */
static inline void made_under(const VpKey *master, const char *tenant, const char *client,
			      Made *m)
{
	char why[512];
	VpKeyring *writer = vp_keyring_new(master, why, sizeof(why));
	assert_non_null(writer);
	made_in(writer, tenant, client, m, 2);
	vp_keyring_free(writer);
}

#endif
