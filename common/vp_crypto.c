/* Keys, wrapping, sealed fields and blind indexes (vp_crypto.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vp_crypto.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_BYTES (NONCE_BYTES + VP_KEY_BYTES + TAG_BYTES)
_Static_assert(VP_WRAPPED_CHARS == (WRAPPED_BYTES * 4 + 2) / 3, "a wrapped key's text length");
_Static_assert(VP_WRAPPED_BYTES == WRAPPED_BYTES, "a wrapped key's length");
#define MASTER_FILE_MAX 256
#define SEALED_MAX (1024 * 1024) /* a personal field is short; a bound for decoding */

struct VpKey {
	unsigned char bytes[VP_KEY_BYTES];
};

/* Random bytes for nonces and keys come from a pool refilled POOL_BYTES at a
 * time: randombytes_buf is one getrandom syscall per call, seven per
 * RegisterClient, ~9 % of sealing's CPU (docs/bench.md). The pool is locked
 * memory (it holds future keys) and every byte handed out is wiped from it. */
#define POOL_BYTES 4096
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *pool; /* sodium_malloc'd once, for the process's life */
static size_t pool_used = POOL_BYTES;

static void random_fill(void *out, size_t n)
{
	pthread_mutex_lock(&pool_lock);
	if (!pool && n <= POOL_BYTES)
		pool = sodium_malloc(POOL_BYTES);
	if (!pool || n > POOL_BYTES) {
		pthread_mutex_unlock(&pool_lock);
		randombytes_buf(out, n);
		return;
	}
	if (pool_used + n > POOL_BYTES) {
		/* a fresh seed from the kernel per refill, stretched by ChaCha20
		 * in user space: the kernel's own ChaCha20 (no SIMD there) filling
		 * 4 KiB was ~5 % of sealing a registration under perf */
		unsigned char seed[randombytes_SEEDBYTES];
		randombytes_buf(seed, sizeof(seed));
		randombytes_buf_deterministic(pool, POOL_BYTES, seed);
		sodium_memzero(seed, sizeof(seed));
		pool_used = 0;
	}
	memcpy(out, pool + pool_used, n);
	sodium_memzero(pool + pool_used, n);
	pool_used += n;
	pthread_mutex_unlock(&pool_lock);
}

int vp_crypto_init(char *why, size_t why_cap)
{
	if (sodium_init() < 0) {
		snprintf(why, why_cap, "libsodium failed to initialise");
		return -1;
	}
	return 0;
}

/* Locked, guarded memory for one key. */
static VpKey *key_alloc(char *why, size_t why_cap)
{
	VpKey *key = sodium_malloc(sizeof(*key));
	if (!key)
		snprintf(why, why_cap, "no locked memory for a key (RLIMIT_MEMLOCK?)");
	return key;
}

VpKey *vp_key_free(VpKey *key)
{
	sodium_free(key); /* wipes first; NULL is fine */
	return NULL;
}

VpKey *vp_key_random(char *why, size_t why_cap)
{
	VpKey *key = key_alloc(why, why_cap);
	if (key)
		random_fill(key->bytes, sizeof(key->bytes));
	return key;
}

void vp_key_fill_random(VpKey *key)
{
	random_fill(key->bytes, sizeof(key->bytes));
}

void vp_key_copy(VpKey *dst, const VpKey *src)
{
	memcpy(dst->bytes, src->bytes, sizeof(dst->bytes));
}

void vp_key_wipe(VpKey *key)
{
	sodium_memzero(key->bytes, sizeof(key->bytes));
}

VpKey *vp_key_from_text(const char *text, char *why, size_t why_cap)
{
	size_t len = 0;
	VpKey *key = key_alloc(why, why_cap);
	if (!key)
		return NULL;
	if (sodium_base642bin(key->bytes, sizeof(key->bytes), text, strlen(text), NULL, &len, NULL,
			      B64) != 0 ||
	    len != VP_KEY_BYTES) {
		/* never the text itself: it may be a key with a typo */
		snprintf(why, why_cap, "not a key: %d bytes of base64url expected", VP_KEY_BYTES);
		return vp_key_free(key);
	}
	return key;
}

/* Lower-case hex of public bytes (key ids, blind indexes) into out (2 * len
 * + 1 bytes): a table, not libsodium's constant-time sodium_bin2hex. */
static void public_hex(char *out, const unsigned char *bin, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

void vp_key_id(const VpKey *key, char out[VP_KEY_ID_CHARS + 1])
{
	static const char label[] = "vetpms key id";
	unsigned char id[VP_KEY_ID_CHARS / 2];
	/* a MAC of a fixed text under the key, not a hash of the key itself */
	crypto_generichash(id, sizeof(id), (const unsigned char *)label, sizeof(label) - 1,
			   key->bytes, sizeof(key->bytes));
	public_hex(out, id, sizeof(id));
}

/* The master key file's first line, trimmed; 0 or -1 with why (what: the
 * key's name in the message, "master key" or "previous master key"). */
static int read_master_file(const char *what, const char *path, char *text, size_t cap,
			    char *why, size_t why_cap)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_cap, "%s file %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		snprintf(why, why_cap,
			 "%s file %s: must be a regular file readable by its owner only "
			 "(chmod 600)",
			 what, path);
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, text, cap - 1);
	close(fd);
	if (n < 0) {
		snprintf(why, why_cap, "%s file %s: %s", what, path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	text[strcspn(text, " \t\r\n")] = '\0';
	return 0;
}

/* The key of path (not empty), else of env_text (not empty, named env_name
 * in messages), else NULL with *given false. */
static VpKey *master_load_named(const char *what, const char *path, const char *env_text,
				const char *env_name, bool *given, char *why, size_t why_cap)
{
	char text[MASTER_FILE_MAX];
	char inner[256];
	VpKey *key = NULL;
	*given = true;
	if (path && *path) {
		if (read_master_file(what, path, text, sizeof(text), why, why_cap) < 0)
			return NULL;
		key = vp_key_from_text(text, inner, sizeof(inner));
		sodium_memzero(text, sizeof(text));
		if (!key)
			snprintf(why, why_cap, "%s file %s: %s", what, path, inner);
		return key;
	}
	if (env_text && *env_text) {
		key = vp_key_from_text(env_text, inner, sizeof(inner));
		if (!key)
			snprintf(why, why_cap, "%s: %s", env_name, inner);
		return key;
	}
	*given = false;
	return NULL;
}

VpKey *vp_key_master_load(const char *path, const char *env_text, char *why, size_t why_cap)
{
	bool given = false;
	VpKey *key = master_load_named("master key", path, env_text, "VETPMS_MASTER_KEY", &given,
				       why, why_cap);
	if (!given)
		snprintf(why, why_cap,
			 "no master key: set VETPMS_MASTER_KEY_FILE (a file holding %d bytes of "
			 "base64url, e.g. from `vetctl keys new-master`) or VETPMS_MASTER_KEY",
			 VP_KEY_BYTES);
	return key;
}

int vp_key_master_previous_load(const char *path, const char *env_text, const VpKey *current,
				VpKey **out, char *why, size_t why_cap)
{
	bool given = false;
	*out = master_load_named("previous master key", path, env_text,
				 "VETPMS_MASTER_KEY_PREVIOUS", &given, why, why_cap);
	if (!given)
		return 0;
	if (!*out)
		return -1;
	if (current && sodium_memcmp((*out)->bytes, current->bytes, VP_KEY_BYTES) == 0) {
		char id[VP_KEY_ID_CHARS + 1];
		vp_key_id(*out, id);
		/* harmless to the keys, but a sign the files were mixed up: the
		 * key meant to be previous may be the one about to be destroyed */
		snprintf(why, why_cap,
			 "the previous master key is the current one (key %s): give the key the "
			 "current one replaces (VETPMS_MASTER_KEY_PREVIOUS_FILE), or none",
			 id);
		*out = vp_key_free(*out);
		return -1;
	}
	return 0;
}

/* Values up to this size are worked on in stack buffers: a personal field is
 * short, and two mallocs per field were a visible share of sealing's CPU. */
#define STACK_BYTES 512

/* bin as base64url (no padding) appended to out. The bytes are public
 * (nonces, ciphertexts, wrapped keys), so a plain table encoder:
 * libsodium's constant-time one, which only secrets need, was 15 % of a new
 * client's sealing CPU (bench/seal_cost under perf). */
static int append_b64(VpBuf *out, const unsigned char *bin, size_t len, char *why,
		      size_t why_cap)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char stack[STACK_BYTES];
	size_t cap = (len / 3) * 4 + 4;
	char *text = cap <= sizeof(stack) ? stack : malloc(cap);
	size_t n = 0, i = 0;
	if (!text) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 | bin[i + 2];
		text[n++] = alphabet[v >> 18];
		text[n++] = alphabet[(v >> 12) & 63];
		text[n++] = alphabet[(v >> 6) & 63];
		text[n++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		text[n++] = alphabet[bin[i] >> 2];
		text[n++] = alphabet[(bin[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)bin[i] << 8 | bin[i + 1];
		text[n++] = alphabet[v >> 10];
		text[n++] = alphabet[(v >> 4) & 63];
		text[n++] = alphabet[(v & 15) << 2];
	}
	int rc = vp_buf_append(out, text, n);
	if (text != stack)
		free(text);
	if (rc < 0)
		snprintf(why, why_cap, "out of memory");
	return rc;
}

/* Each base64url character's value plus one; 0: not base64url. A table, not
 * branches: random text mispredicted them (6 ns a character). */
static const unsigned char b64_value_plus1[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
	['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23,
	['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
	['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
	['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44,
	['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51,
	['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58,
	['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

/* base64url text of public bytes (nonces, ciphertexts, wrapped keys) into at
 * most cap bytes; the length, or -1 when it is not base64url or too long.
 * A plain table decoder: libsodium's is constant-time, which only secret
 * text needs (the master key's: vp_key_from_text), and it was 10 % of
 * opening's CPU. As strict as libsodium's: no padding, no other character,
 * no lone last character, zero leftover bits. */
static long decode_b64(const char *text, unsigned char *bin, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;
	if (!text)
		return -1;
	const unsigned char *p = (const unsigned char *)text;
	/* four characters into three bytes at a time (opening a client event
	 * took 19.8k instructions one character at a time, 17.6k so: callgrind
	 * on bench/seal_cost); each one is read only
	 * after the one before it was not the end, and a group that does not
	 * fit or holds a bad character is left to the loop below, which says so */
	for (; n + 3 <= cap; p += 4, n += 3) {
		uint32_t a = b64_value_plus1[p[0]], b = a ? b64_value_plus1[p[1]] : 0;
		uint32_t c = b ? b64_value_plus1[p[2]] : 0, d = c ? b64_value_plus1[p[3]] : 0;
		if (!d)
			break;
		uint32_t group = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
		bin[n] = (unsigned char)(group >> 16);
		bin[n + 1] = (unsigned char)(group >> 8);
		bin[n + 2] = (unsigned char)group;
	}
	for (; *p; p++) {
		uint32_t v = b64_value_plus1[*p];
		if (v == 0)
			return -1;
		acc = (acc << 6) | (v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			bin[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits > 4 || (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)n;
}

void vp_key_wrap_bytes(const VpKey *kek, const VpKey *key, const char *context,
		       unsigned char out[VP_WRAPPED_BYTES])
{
	random_fill(out, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, NULL, key->bytes,
						   sizeof(key->bytes), (const unsigned char *)context,
						   strlen(context), NULL, out, kek->bytes);
}

int vp_key_wrapped_text(const unsigned char wrapped[VP_WRAPPED_BYTES], VpBuf *out, char *why,
			size_t why_cap)
{
	return append_b64(out, wrapped, WRAPPED_BYTES, why, why_cap);
}

int vp_key_wrap(const VpKey *kek, const VpKey *key, const char *context, VpBuf *out, char *why,
		size_t why_cap)
{
	unsigned char wrapped[WRAPPED_BYTES];
	vp_key_wrap_bytes(kek, key, context, wrapped);
	return vp_key_wrapped_text(wrapped, out, why, why_cap);
}

int vp_key_wrapped_decode(const char *wrapped_text, unsigned char out[VP_WRAPPED_BYTES])
{
	unsigned char wrapped[WRAPPED_BYTES + 1]; /* one more: a longer text does not fit */
	if (!wrapped_text || decode_b64(wrapped_text, wrapped, sizeof(wrapped)) != WRAPPED_BYTES)
		return -1;
	memcpy(out, wrapped, WRAPPED_BYTES);
	return 0;
}

int vp_key_unwrap_into(const VpKey *kek, const char *wrapped_text, const char *context, VpKey *key,
		       char *why, size_t why_cap)
{
	unsigned char wrapped[WRAPPED_BYTES];
	if (vp_key_wrapped_decode(wrapped_text, wrapped) < 0) {
		snprintf(why, why_cap, VP_NOT_A_WRAPPED_KEY);
		return -1;
	}
	return vp_key_unwrap_bytes_into(kek, wrapped, context, key, why, why_cap);
}

int vp_key_unwrap_bytes_into(const VpKey *kek, const unsigned char wrapped[VP_WRAPPED_BYTES],
			     const char *context, VpKey *key, char *why, size_t why_cap)
{
	unsigned long long len = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    key->bytes, &len, NULL, wrapped + NONCE_BYTES, WRAPPED_BYTES - NONCE_BYTES,
		    (const unsigned char *)context, strlen(context), wrapped, kek->bytes) != 0 ||
	    len != VP_KEY_BYTES) {
		vp_key_wipe(key);
		snprintf(why, why_cap, "the key does not open under this key for %s (wrong key, or "
				       "changed)", context);
		return -1;
	}
	return 0;
}

VpKey *vp_key_unwrap(const VpKey *kek, const char *wrapped_text, const char *context, char *why,
		     size_t why_cap)
{
	VpKey *key = key_alloc(why, why_cap);
	if (key && vp_key_unwrap_into(kek, wrapped_text, context, key, why, why_cap) < 0)
		return vp_key_free(key);
	return key;
}

/* Subkey 1 of `from` in the KDF context (8 characters, one per use). */
static VpKey *derive(const VpKey *from, const char context[crypto_kdf_CONTEXTBYTES + 1],
		     char *why, size_t why_cap)
{
	VpKey *key = key_alloc(why, why_cap);
	if (key)
		crypto_kdf_derive_from_key(key->bytes, sizeof(key->bytes), 1, context, from->bytes);
	return key;
}

VpKey *vp_key_derive_index(const VpKey *tenant_key, char *why, size_t why_cap)
{
	return derive(tenant_key, "vpblindx", why, why_cap);
}

VpKey *vp_key_derive_command(const VpKey *master, char *why, size_t why_cap)
{
	return derive(master, "vpcmdmac", why, why_cap);
}

void vp_key_mac_hex(const VpKey *key, const void *const parts[], const size_t lens[], int n,
		    char out[65])
{
	unsigned char digest[32];
	crypto_generichash_state state;
	crypto_generichash_init(&state, key->bytes, sizeof(key->bytes), sizeof(digest));
	for (int i = 0; i < n; i++)
		crypto_generichash_update(&state, parts[i], lens[i]);
	crypto_generichash_final(&state, digest, sizeof(digest));
	sodium_memzero(&state, sizeof(state));
	public_hex(out, digest, sizeof(digest));
}

int vp_field_seal(const VpKey *data_key, const char *plain, size_t plain_len, const char *aad,
		  VpBuf *nonce_out, VpBuf *sealed_out, char *why, size_t why_cap)
{
	unsigned char nonce[NONCE_BYTES];
	unsigned long long sealed_len = 0;
	if (plain_len > SEALED_MAX) {
		snprintf(why, why_cap, "value too long to seal");
		return -1;
	}
	unsigned char stack[STACK_BYTES];
	unsigned char *sealed =
		plain_len + TAG_BYTES <= sizeof(stack) ? stack : malloc(plain_len + TAG_BYTES);
	if (!sealed) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	random_fill(nonce, sizeof(nonce));
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, &sealed_len, (const unsigned char *)plain,
						   plain_len, (const unsigned char *)aad,
						   strlen(aad), NULL, nonce, data_key->bytes);
	int rc = append_b64(nonce_out, nonce, sizeof(nonce), why, why_cap);
	if (rc == 0)
		rc = append_b64(sealed_out, sealed, (size_t)sealed_len, why, why_cap);
	if (sealed != stack)
		free(sealed);
	return rc;
}

int vp_field_open(const VpKey *data_key, const char *nonce_text, const char *sealed_text,
		  const char *aad, VpBuf *plain_out, char *why, size_t why_cap)
{
	unsigned char nonce[NONCE_BYTES + 1], sealed_stack[STACK_BYTES], plain_stack[STACK_BYTES];
	size_t cap = sealed_text ? strlen(sealed_text) : 0; /* decoded is shorter */
	if (decode_b64(nonce_text, nonce, sizeof(nonce)) != NONCE_BYTES || cap > SEALED_MAX * 2) {
		snprintf(why, why_cap, "not a sealed value (nonce)");
		return -1;
	}
	bool small = cap + 1 <= STACK_BYTES;
	unsigned char *sealed = small ? sealed_stack : malloc(cap + 1);
	unsigned char *plain = small ? plain_stack : malloc(cap + 1);
	unsigned long long plain_len = 0;
	long sealed_len = sealed ? decode_b64(sealed_text, sealed, cap + 1) : -1;
	int rc = -1;
	if (!sealed || !plain)
		snprintf(why, why_cap, "out of memory");
	else if (sealed_len < TAG_BYTES)
		snprintf(why, why_cap, "not a sealed value");
	else if (crypto_aead_xchacha20poly1305_ietf_decrypt(
			 plain, &plain_len, NULL, sealed, (unsigned long long)sealed_len,
			 (const unsigned char *)aad, strlen(aad), nonce, data_key->bytes) != 0)
		snprintf(why, why_cap, "the sealed value does not open (tampered, wrong key, or "
				       "moved from another field)");
	else if (vp_buf_append(plain_out, (const char *)plain, (size_t)plain_len) < 0)
		snprintf(why, why_cap, "out of memory");
	else
		rc = 0;
	if (plain)
		sodium_memzero(plain, (size_t)plain_len); /* the plaintext goes no further */
	if (!small) {
		free(plain);
		free(sealed);
	}
	return rc;
}

void vp_blind_index(const VpKey *index_key, const char *field, const char *value,
		    size_t value_len, char out[65])
{
	/* the NUL keeps ("ab", "c") and ("a", "bc") apart */
	const void *parts[] = {field, value};
	const size_t lens[] = {strlen(field) + 1, value_len};
	vp_key_mac_hex(index_key, parts, lens, 2, out);
}
