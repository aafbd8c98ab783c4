/* The bucket hash of the in-memory tables filled from Kafka records (the
 * keyring's entries, vp_idset): libsodium's keyed SipHash under a key each
 * table draws at random, so names crafted by whoever can produce to a topic
 * cannot pile into one bucket. */
#ifndef VP_TABLE_HASH_H
#define VP_TABLE_HASH_H

#include <stdint.h>
#include <string.h>

#include <sodium.h>

static inline uint64_t vp_table_hash(const unsigned char key[crypto_shorthash_KEYBYTES],
				     const char *name)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	crypto_shorthash(h, (const unsigned char *)name, strlen(name), key);
	memcpy(&v, h, sizeof(v));
	return v;
}

#endif
