/* Opening sealed client events before their rows run (issue 18,
 * docs/privacy.md). ClientRegistered / ClientContactUpdated v2 carry the
 * personal fields sealed under the client's data key; here they are opened
 * with the keyring (common/vp_keyring.h) into the v1 shape the directory rows
 * read, plus the blind indexes: the upcast of v2 to what the handlers know.
 * v1 events are read as they are (an erased client's as the erased
 * client's: open_plain). A field that does not open (tampered,
 * another key, moved) or a client without a key is refused: a dead letter
 * holding the sealed envelope only, never a row of garbage.
 *
 * The event's data object is rewritten in place (the envelope stays as it
 * was received: event_log keeps the sealed form). Linked into the projector
 * and the query-reader's history folds alike (libvpapply.a); a process that
 * set no keyring refuses sealed events. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "apply_runner.h"
#include "projector.h"
#include "vp_catalog.h"
#include "vp_sealed.h"

/* How long an event waits for its client's key to arrive in the keys topic
 * (pj_keys_use): the key commits in the same transaction as the client's
 * first event, so it is normally there already; only a forged or broken
 * event waits this long, and only once (a pipelined batch checks an event,
 * then applies it one by one: the second look does not wait again). */
static int key_wait_ms;
static _Thread_local char last_missing[37];

static VpKeyring *keyring; /* set once at start, before any applier runs */

/* Each applying thread's locked scratch key for the data key it opens with
 * (one sodium_malloc per thread, not per event), freed when the thread ends
 * (the reader's history folds run on threads of their own). */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *key)
{
	vp_key_free(key);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

static VpKey *scratch(char *why, size_t why_cap)
{
	pthread_once(&scratch_once, scratch_init);
	VpKey *key = pthread_getspecific(scratch_key);
	if (!key && (key = vp_key_random(why, why_cap)) && pthread_setspecific(scratch_key, key))
		key = vp_key_free(key);
	return key;
}

void pj_keys_use(VpKeyring *kr, int wait_ms)
{
	keyring = kr;
	key_wait_ms = wait_ms;
}

/* What an erased client's sealed event reads as (a rebuild after EraseClient:
 * its key is destroyed): "erased client", every other personal field null,
 * no blind index. The ClientErased later in the log scrubs the rows anyway;
 * this keeps the events before it applying instead of dead-lettering. */
static cJSON *erased_shape(const VpEvent *ev)
{
	cJSON *out = cJSON_CreateObject();
	/* v3 seals the members together, so which were given is not known: all
	 * of the type's (an update's "null clears" is what erasure did anyway) */
	for (const char *const *f = vp_sealed_fields_of(ev->type); *f; f++) {
		const char *name = *f;
		if (ev->v == VP_SEALED_V_FIRST &&
		    !cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(ev->data, "sealed"), name))
			continue; /* v2 names its members: absent stays absent */
		cJSON *value = vp_sealed_erased_value(name);
		if (!out || !value || !cJSON_AddItemToObject(out, name, value)) {
			cJSON_Delete(value);
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

/* Replaces data's members by opened's (opened is consumed): the two member
 * lists are swapped whole (each item owns its name), and opened goes with
 * data's old members. */
static void replace_members(cJSON *data, cJSON *opened)
{
	cJSON *old = data->child;
	data->child = opened->child;
	opened->child = old;
	cJSON_Delete(opened);
}

/* A plain-text (v1) event of a client erased since (a rebuild, a dead
 * letter redriven after the erasure): read as the erased client's, as the
 * ClientErased statement left event_log, so that its fields never reach a
 * row again. Before the marker arrives (the live projector) the event applies
 * as it is, and ClientErased scrubs the rows after it. */
static PjApplyResult open_plain(const VpEvent *ev, char *why, size_t why_cap)
{
	if (!keyring || !vp_keyring_erased(keyring, ev->tenant_id, ev->aggregate_id))
		return PJ_APPLIED;
	if (vp_sealed_erase_plain(ev->data, ev->type) < 0) {
		snprintf(why, why_cap, "out of memory");
		return PJ_FAILED;
	}
	return PJ_APPLIED;
}

bool pj_keys_wrong_master(char *why, size_t why_cap)
{
	return keyring && vp_keyring_keyless_tenant(keyring, why, why_cap);
}

bool pj_keys_master_refused(char *why, size_t why_cap)
{
	return keyring && vp_keyring_master_refused(keyring, why, why_cap);
}

bool pj_keys_client_erased(const char *tenant_id, const char *client_id)
{
	return keyring && vp_keyring_erased(keyring, tenant_id, client_id);
}

PjApplyResult pj_keys_open(const VpEvent *ev, char *why, size_t why_cap)
{
	if (!vp_sealed_type(ev->type))
		return PJ_APPLIED;
	if (ev->v < VP_SEALED_V_FIRST)
		return open_plain(ev, why, why_cap);
	if (!keyring) {
		snprintf(why, why_cap, "%s v%d is sealed and this process holds no keys", ev->type,
			 ev->v);
		return PJ_REJECTED;
	}
	char inner[384];
	VpKey *key = scratch(inner, sizeof(inner));
	if (!key) {
		snprintf(why, why_cap, "%s: %s", ev->type, inner);
		return PJ_FAILED;
	}
	int wait_ms = strcmp(last_missing, ev->id) != 0 ? key_wait_ms : 0;
	char key_id[VP_KEY_ID_CHARS + 1];
	int status = vp_keyring_client_key(keyring, ev->tenant_id, ev->aggregate_id, wait_ms, key,
					   key_id, inner, sizeof(inner));
	if (status == VP_KEYRING_NONE)
		snprintf(last_missing, sizeof(last_missing), "%s", ev->id);
	if (status == VP_KEYRING_ERASED) {
		cJSON *erased = erased_shape(ev);
		if (!erased) {
			snprintf(why, why_cap, "out of memory");
			return PJ_FAILED;
		}
		replace_members(ev->data, erased);
		return PJ_APPLIED;
	}
	if (status == VP_KEYRING_WRONG_MASTER) {
		/* not the event's fault: this process holds the wrong master key
		 * (pj_keys_wrong_master); a dead letter per client event would
		 * hide that and need a redrive of each once the key is fixed */
		snprintf(why, why_cap, "%s: %s", ev->type, inner);
		return PJ_FAILED;
	}
	if (status != VP_KEYRING_OK) {
		/* none or unreadable: never a row without its fields */
		snprintf(why, why_cap, "%s: %s", ev->type, inner);
		return PJ_REJECTED;
	}
	cJSON *opened =
		vp_sealed_open(ev->data, ev->v, &(VpSealedOf){ev->type, ev->tenant_id, ev->aggregate_id},
			       key, key_id, inner, sizeof(inner));
	vp_key_wipe(key);
	if (!opened) {
		snprintf(why, why_cap, "%s: %s", ev->type, inner);
		return PJ_REJECTED;
	}
	replace_members(ev->data, opened);
	return PJ_APPLIED;
}
