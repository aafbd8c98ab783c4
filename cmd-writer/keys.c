/* The writer's side of personal data (issue 18, docs/privacy.md): the master
 * key, each model's keyring read from the keys topic, and the sealing of a
 * client event's personal fields before it is encoded.
 *
 * The keyring belongs to the write model (WrState.keys): a model rebuilt
 * after a failed commit reads the keys topic again, so a key made for a
 * transaction that did not commit is forgotten with the events it sealed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vp_catalog.h"
#include "vp_keyring.h"
#include "vp_sealed.h"
#include "vp_time.h"
#include "writer.h"

#define KEYS_READ_TIMEOUT_MS 60000

/* loaded once at start; read by the rebuilds. During a rotation also the
 * previous master key (NULL: none): the rebuilds' keyrings read tenant
 * records under it; nothing new is wrapped under it (new tenants and
 * imports take the current one) */
static VpMasterKeys masters;
/* The loop thread's locked scratch keys (one allocation each, wiped after
 * every command): a sodium_malloc per command cost more than the sealing. */
static VpKey *data_scratch, *index_scratch;
/* The command MAC keys of the current and the previous master key (NULL:
 * none), derived at start: the request hash of the idempotency store and
 * the log's command-hash header (http_api.c). */
static VpKey *command_keys[2];

int wr_keys_init(const WrConfig *cfg, char *why, size_t why_cap)
{
	if (vp_crypto_init(why, why_cap) < 0)
		return -1;
	VpMasterFiles files = {cfg->master_key_file, cfg->master_key_previous_file};
	if (vp_master_keys_load(&files, &masters, why, why_cap) < 0)
		return -1;
	data_scratch = vp_key_random(why, why_cap);
	index_scratch = data_scratch ? vp_key_random(why, why_cap) : NULL;
	command_keys[0] = index_scratch ? vp_key_derive_command(masters.current, why, why_cap)
					: NULL;
	if (command_keys[0] && masters.previous)
		command_keys[1] = vp_key_derive_command(masters.previous, why, why_cap);
	return command_keys[0] && (!masters.previous || command_keys[1]) ? 0 : -1;
}

const VpKey *wr_keys_command(bool previous)
{
	return command_keys[previous ? 1 : 0];
}

const VpKey *wr_keys_master(void)
{
	return masters.current;
}

void wr_keys_release(void)
{
	vp_master_keys_free(&masters);
	data_scratch = vp_key_free(data_scratch);
	index_scratch = vp_key_free(index_scratch);
	command_keys[0] = vp_key_free(command_keys[0]);
	command_keys[1] = vp_key_free(command_keys[1]);
}

int wr_keys_read(const WrConfig *cfg, WrState *state, char *why, size_t why_cap)
{
	if (!masters.current) {
		snprintf(why, why_cap, "no master key loaded");
		return WR_REBUILD_FATAL;
	}
	state->keys = vp_keyring_new(masters.current, why, why_cap);
	if (!state->keys)
		return WR_REBUILD_FAILED;
	vp_keyring_accept_previous(state->keys, masters.previous);
	int rc = vp_keyring_read(state->keys, cfg->brokers, cfg->kafka_props, cfg->keys_topic,
				 KEYS_READ_TIMEOUT_MS, why, why_cap);
	if (rc == VP_KEYRING_OK)
		return WR_REBUILD_OK;
	return rc == VP_KEYRING_WRONG_MASTER ? WR_REBUILD_FATAL : WR_REBUILD_FAILED;
}

bool wr_keys_master_is_wrong(const WrConfig *cfg, bool *recorded, char *why, size_t why_cap)
{
	*recorded = true;
	VpKeyring *kr = masters.current ? vp_keyring_new(masters.current, why, why_cap) : NULL;
	if (!kr)
		return false;
	vp_keyring_accept_previous(kr, masters.previous);
	int rc = vp_keyring_read(kr, cfg->brokers, cfg->kafka_props, cfg->keys_topic,
				 KEYS_READ_TIMEOUT_MS, why, why_cap);
	*recorded = rc != VP_KEYRING_OK || vp_keyring_has_master(kr);
	vp_keyring_free(kr);
	return rc == VP_KEYRING_WRONG_MASTER;
}

char *wr_keys_master_record(void)
{
	char id[VP_KEY_ID_CHARS + 1];
	if (!masters.current)
		return NULL;
	vp_key_id(masters.current, id);
	return vp_keyrec_master_value(id, vp_time_now_us());
}

/* The client's data key into key: the one in the keyring, or a new one (a
 * new client, or one registered before sealing began) whose records go with
 * item. 0 or -1. */
static int data_key(VpKeyring *kr, const VpEvent *ev, WrAppend *item, VpKey *key,
		    char key_id[VP_KEY_ID_CHARS + 1], char *why, size_t why_cap)
{
	if (strcmp(ev->type, VP_EV_CLIENT_REGISTERED) != 0) {
		int status = vp_keyring_client_key(kr, ev->tenant_id, ev->aggregate_id, 0, key,
						   key_id, why, why_cap);
		if (status != VP_KEYRING_NONE)
			return status == VP_KEYRING_OK ? 0 : -1;
	}
	return vp_keyring_new_client(kr, ev->tenant_id, ev->aggregate_id, ev->at_us, key, key_id,
				     item->keyrec, &item->n_keyrec, why, why_cap);
}

/* ClientErased commits with the erasure marker of the client's key record:
 * compaction then keeps the marker and drops the key. This model's keyring
 * is left as it is (a failed append must not lose a live key); the next
 * rebuild reads the marker. */
static int add_erasure(const VpEvent *ev, WrAppend *item, char *why, size_t why_cap)
{
	VpKeyRecord *k = &item->keyrec[item->n_keyrec];
	k->value = vp_keyrec_erased_value(ev->at_us);
	if (!k->value) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	vp_keyrec_name(ev->tenant_id, ev->aggregate_id, k->name, sizeof(k->name));
	k->erasure = true;
	item->n_keyrec++;
	return 0;
}

int wr_keys_seal(WrState *state, VpEvent *ev, WrAppend *item, char *why, size_t why_cap)
{
	if (!strcmp(ev->type, VP_EV_CLIENT_ERASED))
		return add_erasure(ev, item, why, why_cap);
	if (!vp_sealed_type(ev->type))
		return 0;
	if (!state->keys || !data_scratch) {
		snprintf(why, why_cap, "the model has no keyring");
		return -1;
	}
	VpKey *key = data_scratch, *index = index_scratch;
	char key_id[VP_KEY_ID_CHARS + 1];
	cJSON *sealed = data_key(state->keys, ev, item, key, key_id, why, why_cap) == 0 &&
					vp_keyring_index_key(state->keys, ev->tenant_id, index, why,
							     why_cap) == 0
				? vp_sealed_seal(ev->data,
						 &(VpSealedOf){ev->type, ev->tenant_id,
							       ev->aggregate_id},
						 key, key_id, index, why, why_cap)
				: NULL;
	vp_key_wipe(key);
	vp_key_wipe(index);
	if (!sealed)
		return -1;
	cJSON_Delete(ev->data);
	ev->data = sealed;
	ev->v = VP_SEALED_V;
	item->v = VP_SEALED_V;
	return 0;
}
