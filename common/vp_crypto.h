/* Field encryption for personal data in the log (issue 18), over libsodium.
 *
 * Three levels of keys: a master key (a secret file or the environment, never
 * logged) wraps each tenant's key; a tenant key wraps the data key of each
 * client and derives the tenant's blind-index key; a client's data key seals
 * the client's personal fields. Destroying a client's wrapped data key (a
 * tombstone in the keys topic) makes its sealed fields unreadable for good:
 * crypto-shredding.
 *
 * Sealing is XChaCha20-Poly1305 (IETF) with a random 24-byte nonce and the
 * associated data the caller names (what the ciphertext belongs to, e.g.
 * "client:<tenant>:<client>:email"), so a sealed value moved to another field
 * or client does not open. Text forms are base64url without padding.
 *
 * Key material lives in sodium_malloc'd memory (guard pages, mlock'd, wiped
 * on free). Functions return 0, or -1 with why; none logs. */
#ifndef VP_CRYPTO_H
#define VP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "vp_buf.h"

#define VP_KEY_BYTES 32
#define VP_KEY_ID_CHARS 16 /* hex of the first 8 bytes of a key's fingerprint */
/* a wrapped key's base64url text: nonce, key and tag, 72 bytes */
#define VP_WRAPPED_CHARS 96
#define VP_WRAPPED_BYTES 72 /* nonce, key, tag: what VP_WRAPPED_CHARS decode to */

typedef struct VpKey VpKey;

/* libsodium's init; once per process before anything else here. */
int vp_crypto_init(char *why, size_t why_cap);

/* A fresh random key, or NULL (out of locked memory: why says). */
VpKey *vp_key_random(char *why, size_t why_cap);
/* The key whose base64url text is `text` (43 characters for 32 bytes). */
VpKey *vp_key_from_text(const char *text, char *why, size_t why_cap);
/* Wipes and frees; NULL is fine; returns NULL. */
VpKey *vp_key_free(VpKey *key);
/* Hot paths reuse one locked key instead of a sodium_malloc per use (each
 * one maps, guards and locks pages: tens of microseconds). *_into write key
 * material into such a key; vp_key_wipe zeroes it after use. */
void vp_key_fill_random(VpKey *key);
void vp_key_copy(VpKey *dst, const VpKey *src);
void vp_key_wipe(VpKey *key);
int vp_key_unwrap_into(const VpKey *kek, const char *wrapped, const char *context, VpKey *out,
		       char *why, size_t why_cap);
/* What vp_key_unwrap_into (and a keyring refusing a record's text) says of
 * text that is no wrapped key. */
#define VP_NOT_A_WRAPPED_KEY "not a wrapped key"
/* The same in two steps, for a keyring that keeps wrapped keys as bytes (a
 * third smaller than their text, decoded once): the text's bytes (0, or -1
 * when it is not a wrapped key's text), then those bytes unwrapped. */
int vp_key_wrapped_decode(const char *wrapped, unsigned char out[VP_WRAPPED_BYTES]);
int vp_key_unwrap_bytes_into(const VpKey *kek, const unsigned char wrapped[VP_WRAPPED_BYTES],
			     const char *context, VpKey *out, char *why, size_t why_cap);

/* A short public name of the key (hex, VP_KEY_ID_CHARS + 1 bytes): equal keys,
 * equal ids; it does not reveal the key. "Wrapped under master key X, this
 * daemon holds Y" is how a wrong master key is told at start. */
void vp_key_id(const VpKey *key, char out[VP_KEY_ID_CHARS + 1]);

/* The master key: the file's content when path is not empty (one line of
 * base64url; the file must not be readable by group or others), else
 * env_text; neither given is an error that says how to give one. */
VpKey *vp_key_master_load(const char *path, const char *env_text, char *why, size_t why_cap);
/* The previous master key during a rotation (optional; docs/privacy.md, "Key
 * operations"): the file's content when path is not empty (checked as the
 * master key's), else env_text (VETPMS_MASTER_KEY_PREVIOUS), else none: 0
 * with *out NULL. A key equal to current is refused (-1, why): it is a
 * mix-up of files, not a rotation. 0, or -1 with why. */
int vp_key_master_previous_load(const char *path, const char *env_text, const VpKey *current,
				VpKey **out, char *why, size_t why_cap);

/* Seals key under kek for context (its associated data): out gets
 * "<nonce><ciphertext>" in base64url. Unwrap is the inverse; a wrong kek,
 * context or a changed text fails with why. */
int vp_key_wrap(const VpKey *kek, const VpKey *key, const char *context, VpBuf *out, char *why,
		size_t why_cap);
/* The same in two steps, for a keyring that keeps the bytes and a record
 * that carries the text: the wrapped bytes, then their base64url text. */
void vp_key_wrap_bytes(const VpKey *kek, const VpKey *key, const char *context,
		       unsigned char out[VP_WRAPPED_BYTES]);
int vp_key_wrapped_text(const unsigned char wrapped[VP_WRAPPED_BYTES], VpBuf *out, char *why,
			size_t why_cap);
VpKey *vp_key_unwrap(const VpKey *kek, const char *wrapped, const char *context, char *why,
		     size_t why_cap);

/* A tenant key's blind-index key (derived, one-way: the index key does not
 * give the tenant key). */
VpKey *vp_key_derive_index(const VpKey *tenant_key, char *why, size_t why_cap);

/* The key of the writer's command MACs (the `command-hash` header), derived
 * from a master key: a plain hash of a command's body let anyone holding the
 * log test a guess of a client's details, also after the client's erasure. */
VpKey *vp_key_derive_command(const VpKey *master, char *why, size_t why_cap);
/* Keyed BLAKE2b-256 of the n parts in order, as lower-case hex + NUL. */
void vp_key_mac_hex(const VpKey *key, const void *const parts[], const size_t lens[], int n,
		    char out[65]);

/* One field's value sealed under a data key: *nonce_out and *sealed_out get
 * base64url text. The associated data binds it to what it belongs to. */
int vp_field_seal(const VpKey *data_key, const char *plain, size_t plain_len, const char *aad,
		  VpBuf *nonce_out, VpBuf *sealed_out, char *why, size_t why_cap);
/* The inverse into plain_out (its text, NUL-terminated by VpBuf); a tampered
 * value, the wrong key or the wrong associated data fails with why. */
int vp_field_open(const VpKey *data_key, const char *nonce, const char *sealed, const char *aad,
		  VpBuf *plain_out, char *why, size_t why_cap);

/* The blind index of a value (lower-case hex, 64 characters + NUL): keyed
 * BLAKE2b over the field name and the value as given (normalise before:
 * trimmed, lower-cased email, digits of a phone), so equal values of a tenant
 * match without the value being stored, and other tenants' indexes differ. */
void vp_blind_index(const VpKey *index_key, const char *field, const char *value,
		    size_t value_len, char out[65]);

#endif
