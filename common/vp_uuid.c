/* UUIDv7 generation and canonical text form (see vp_uuid.h). Monotonicity follows
 * RFC 9562 section 6.2 method 1: rand_a is a counter seeded at random each new
 * millisecond and incremented while the clock stays still (or steps back). */
#include "vp_uuid.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define COUNTER_MAX 0xFFFu

/* Last timestamp and counter handed out; guarded by gen_lock. */
static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned last_counter;

static uint64_t unix_ms_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void vp_uuid_v7(VpUuid *out)
{
	unsigned char rnd[10];
	uint64_t now_ms = unix_ms_now();
	uint64_t ms;
	unsigned counter;
	int i;

	randombytes_buf(rnd, sizeof(rnd));

	pthread_mutex_lock(&gen_lock);
	if (now_ms > last_ms) {
		ms = now_ms;
		/* Seed below half the range so a busy millisecond has room to count. */
		counter = ((unsigned)rnd[0] << 4 | (unsigned)rnd[1] >> 4) & 0x7FFu;
	} else {
		/* Same millisecond or the clock stepped back: keep the last timestamp and
		 * count; when the counter runs out, borrow the next millisecond. */
		ms = last_ms;
		counter = last_counter + 1;
		if (counter > COUNTER_MAX) {
			ms++;
			counter = 0;
		}
	}
	last_ms = ms;
	last_counter = counter;
	pthread_mutex_unlock(&gen_lock);

	for (i = 0; i < 6; i++)
		out->bytes[i] = (unsigned char)(ms >> (40 - 8 * i));
	out->bytes[6] = (unsigned char)(0x70u | (counter >> 8));
	out->bytes[7] = (unsigned char)(counter & 0xFFu);
	out->bytes[8] = (unsigned char)(0x80u | (rnd[2] & 0x3Fu));
	memcpy(&out->bytes[9], &rnd[3], 7);
}

static const char hex_digits[] = "0123456789abcdef";

static bool is_hyphen_pos(size_t pos)
{
	return pos == 8 || pos == 13 || pos == 18 || pos == 23;
}

void vp_uuid_format(const VpUuid *u, char out[37])
{
	size_t pos = 0;
	int i;

	for (i = 0; i < 16; i++) {
		if (is_hyphen_pos(pos))
			out[pos++] = '-';
		out[pos++] = hex_digits[u->bytes[i] >> 4];
		out[pos++] = hex_digits[u->bytes[i] & 0x0F];
	}
	out[pos] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int vp_uuid_parse(const char *s, size_t len, VpUuid *out)
{
	VpUuid parsed;
	size_t pos = 0;
	int i;

	if (s == NULL || len != VP_UUID_STR_LEN)
		return -1;
	for (i = 0; i < 16; i++) {
		int hi, lo;

		if (is_hyphen_pos(pos)) {
			if (s[pos] != '-')
				return -1;
			pos++;
		}
		hi = hex_value(s[pos]);
		lo = hex_value(s[pos + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		parsed.bytes[i] = (unsigned char)(hi << 4 | lo);
		pos += 2;
	}
	*out = parsed;
	return 0;
}

size_t vp_uuid_scan(const char *text, size_t len, VpUuid *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; text && n < max && i + VP_UUID_STR_LEN <= len; i++) {
		/* the first hyphen's place first: most windows fail there */
		if (text[i + 8] == '-' && vp_uuid_parse(text + i, VP_UUID_STR_LEN, &out[n]) == 0) {
			n++;
			i += VP_UUID_STR_LEN - 1;
		}
	}
	return n;
}

bool vp_uuid_is_nil(const VpUuid *u)
{
	unsigned char acc = 0;
	int i;

	for (i = 0; i < 16; i++)
		acc |= u->bytes[i];
	return acc == 0;
}

int vp_uuid_cmp(const VpUuid *a, const VpUuid *b)
{
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}
