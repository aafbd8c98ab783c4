/* libFuzzer target: records of the keys topic (vetpms.keys) as every
 * daemon's keyring takes them (common/vp_keyring.c, vp_keyrec_newer.c,
 * vp_crypto.c). Anyone who can produce to the topic writes these bytes.
 *
 * The input is records, one a line: "<record key>\t<value>", or the record
 * key alone for a tombstone. When the first byte is odd, a real tenant key
 * record and client key record (made at start by vp_keyring_new_client
 * under a fixed master key) are taken first, so the fuzzed ones land on a
 * keyring that holds keys. Then, for that tenant and client: taking a
 * record refused gives a reason; vp_keyring_wrong_master is OK or names
 * the keys (and is whenever the master record stops a running daemon,
 * vp_keyring_master_refused); the client's key is OK, NONE, ERASED, or FAILED or WRONG_MASTER
 * with a reason, and ERASED whenever vp_keyring_erased says so (which
 * "under any tenant" says too); a key handed out is the
 * client's real one (it opens what was sealed under it: bytes cannot wrap
 * another key under a tenant key they do not know); the tenant's
 * blind-index key, when there is one, is the real one. */
#include "fuzz.h"

#include <cjson/cJSON.h>

#include "vp_catalog.h"
#include "vp_crypto.h"
#include "vp_keyring.h"
#include "vp_sealed.h"

#define TENANT "01a23656-0000-7000-8000-000000000001"
#define CLIENT "01a23656-0000-7000-8000-000000000002"

static VpKey *master, *scratch;
static VpKeyRecord real[2];
static int n_real;
static cJSON *sealed;        /* {"first_name": "Ada", ...} sealed under the client's key */
static char real_index[65];  /* the blind index of one email under the real index key */

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "fuzz_keyring: %s: %s\n", what, why);
	abort();
}

static void index_of(const VpKey *index_key, char out[65])
{
	vp_blind_index(index_key, "email", "ada@example.org", 15, out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char why[256] = "", key_id[VP_KEY_ID_CHARS + 1];
	if (vp_crypto_init(why, sizeof(why)) < 0 ||
	    !(master = vp_key_from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", why,
					sizeof(why))) ||
	    !(scratch = vp_key_random(why, sizeof(why))))
		fail("keys", why);
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	VpKey *data_key = vp_key_random(why, sizeof(why)), *index_key = vp_key_random(why, sizeof(why));
	if (!kr || !data_key || !index_key ||
	    vp_keyring_new_client(kr, TENANT, CLIENT, 1796208000000000, data_key, key_id, real,
				  &n_real, why, sizeof(why)) < 0 ||
	    vp_keyring_index_key(kr, TENANT, index_key, why, sizeof(why)) < 0)
		fail("a new client's keys", why);
	cJSON *plain = cJSON_Parse("{\"first_name\":\"Ada\",\"last_name\":\"Q\"}");
	sealed = vp_sealed_seal(plain, &(VpSealedOf){VP_EV_CLIENT_REGISTERED, TENANT, CLIENT},
				data_key, key_id, index_key, why, sizeof(why));
	if (!sealed)
		fail("seal", why);
	index_of(index_key, real_index);
	cJSON_Delete(plain);
	vp_key_free(data_key);
	vp_key_free(index_key);
	vp_keyring_free(kr);
	return 0;
}

static void take_lines(VpKeyring *kr, const char *text, size_t len)
{
	for (size_t at = 0; at < len;) {
		const char *line = text + at, *nl = memchr(line, '\n', len - at);
		size_t line_len = nl ? (size_t)(nl - line) : len - at;
		at += line_len + 1;
		const char *tab = memchr(line, '\t', line_len);
		size_t name_len = tab ? (size_t)(tab - line) : line_len;
		char why[256] = "";
		int rc = vp_keyring_take(kr, line, name_len, tab ? tab + 1 : NULL,
					 tab ? line_len - name_len - 1 : 0, why, sizeof(why));
		FUZZ_CHECK(rc == VP_KEYRING_OK || why[0] != '\0', "a record refused without a reason");
	}
}

static void check_client(VpKeyring *kr)
{
	char why[256] = "", key_id[VP_KEY_ID_CHARS + 1] = "";
	int status = vp_keyring_client_key(kr, TENANT, CLIENT, 0, scratch, key_id, why,
					   sizeof(why));
	FUZZ_CHECK(status == VP_KEYRING_OK || status == VP_KEYRING_NONE ||
			   status == VP_KEYRING_ERASED || status == VP_KEYRING_FAILED ||
			   status == VP_KEYRING_WRONG_MASTER,
		   "client key status %d", status);
	FUZZ_CHECK((status != VP_KEYRING_FAILED && status != VP_KEYRING_WRONG_MASTER) ||
			   why[0] != '\0',
		   "failed without a reason");
	FUZZ_CHECK(!vp_keyring_erased(kr, TENANT, CLIENT) || status == VP_KEYRING_ERASED,
		   "erased, yet the key's status is %d", status);
	FUZZ_CHECK(!vp_keyring_erased(kr, TENANT, CLIENT) || vp_keyring_erased(kr, NULL, CLIENT),
		   "erased under the tenant, not under any tenant");
	if (status == VP_KEYRING_OK) {
		cJSON *opened = vp_sealed_open(
			sealed, VP_SEALED_V, &(VpSealedOf){VP_EV_CLIENT_REGISTERED, TENANT, CLIENT},
			scratch, key_id[0] ? key_id : NULL, why, sizeof(why));
		FUZZ_CHECK(opened, "the key handed out is not the client's: %s", why);
		cJSON_Delete(opened);
	}
	vp_key_wipe(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256] = "";
	if (size < 1)
		return 0;
	VpKeyring *kr = vp_keyring_new(master, why, sizeof(why));
	if (!kr)
		fail("keyring", why);
	for (int i = 0; (data[0] & 1) && i < n_real; i++)
		FUZZ_CHECK(vp_keyring_take(kr, real[i].name, strlen(real[i].name), real[i].value,
					   strlen(real[i].value), why, sizeof(why)) == VP_KEYRING_OK,
			   "a real record refused: %s", why);
	take_lines(kr, (const char *)data + 1, size - 1);
	int wrong = vp_keyring_wrong_master(kr, why, sizeof(why));
	FUZZ_CHECK(wrong == VP_KEYRING_OK || (wrong == VP_KEYRING_WRONG_MASTER && why[0]),
		   "wrong master %d without a reason", wrong);
	/* a running daemon is stopped only by what stops one at start */
	why[0] = '\0';
	bool refused = vp_keyring_master_refused(kr, why, sizeof(why));
	FUZZ_CHECK(!refused || (wrong == VP_KEYRING_WRONG_MASTER && why[0]),
		   "refused by the master record (%s) but not wrong at start (%d)", why, wrong);
	check_client(kr);
	if (vp_keyring_index_key(kr, TENANT, scratch, why, sizeof(why)) == 0) {
		char got[65];
		index_of(scratch, got);
		FUZZ_CHECK(!strcmp(got, real_index), "another blind-index key for the tenant");
	}
	vp_key_wipe(scratch);
	vp_keyring_free(kr);
	return 0;
}
