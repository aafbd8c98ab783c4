/* UUIDs: RFC 9562 version 7 ids (time-ordered, monotonic within the process) for
 * events, aggregates and requests, plus strict canonical text form in and out.
 * Randomness comes from libsodium; the caller has run sodium_init(). */
#ifndef VP_UUID_H
#define VP_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define VP_UUID_STR_LEN 36 /* canonical text form, without the NUL */

typedef struct VpUuid {
	unsigned char bytes[16];
} VpUuid;

/* A new UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, a 12-bit counter
 * in rand_a, 62 random bits. Ids made one after another in this process compare
 * strictly increasing (vp_uuid_cmp, memcmp or their text), from any thread. */
void vp_uuid_v7(VpUuid *out);

/* Lower-case 8-4-4-4-12 text plus NUL (37 bytes). */
void vp_uuid_format(const VpUuid *u, char out[37]);

/* Exactly the 36-char canonical form, hex digits in either case, any version.
 * Reads at most len bytes; 0 on success, -1 (out untouched) otherwise. */
int vp_uuid_parse(const char *s, size_t len, VpUuid *out);

/* The UUIDs text (len bytes, any content, not NUL-terminated) holds in the
 * canonical form, hex digits in either case, in order, at most max of them
 * into out; how many. Ids are read left to right and do not overlap. For
 * bytes that did not decode (a dead letter naming a client). */
size_t vp_uuid_scan(const char *text, size_t len, VpUuid *out, size_t max);

bool vp_uuid_is_nil(const VpUuid *u);

/* <0, 0, >0 like memcmp: byte order, which is time order for v7 ids. */
int vp_uuid_cmp(const VpUuid *a, const VpUuid *b);

#endif
