/* Bounded growable buffer (see vp_buf.h). Capacity doubles from 64 bytes and is
 * never allowed past limit + 1, so a hostile input costs at most the limit. */
#include "vp_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VP_BUF_MIN_CAP 64

void vp_buf_init(VpBuf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit < SIZE_MAX ? limit : SIZE_MAX - 1; /* limit + 1 must not wrap */
	b->oom = false;
	b->fixed = NULL;
}

void vp_buf_init_on(VpBuf *b, char *storage, size_t storage_cap, size_t limit)
{
	vp_buf_init(b, limit);
	if (storage && storage_cap > 0) {
		b->data = b->fixed = storage;
		b->cap = storage_cap < b->limit + 1 ? storage_cap : b->limit + 1;
		storage[0] = '\0';
	}
}

/* Moves the text out of the caller's storage into an allocation of cap
 * bytes; the storage stays the caller's. */
static char *leave_fixed(VpBuf *b, size_t cap)
{
	char *moved = malloc(cap);
	if (moved)
		memcpy(moved, b->data, b->len + 1);
	return moved;
}

/* Makes room for `extra` more content bytes plus the NUL. */
static int reserve(VpBuf *b, size_t extra)
{
	size_t need;
	size_t new_cap;
	char *grown;

	if (b->oom)
		return -1;
	if (extra > b->limit - b->len) {
		b->oom = true;
		return -1;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	new_cap = b->cap ? b->cap : VP_BUF_MIN_CAP;
	while (new_cap < need)
		new_cap = new_cap > SIZE_MAX / 2 ? need : new_cap * 2;
	if (new_cap > b->limit + 1)
		new_cap = b->limit + 1;
	grown = b->data && b->data == b->fixed ? leave_fixed(b, new_cap) : realloc(b->data, new_cap);
	if (!grown) {
		b->oom = true;
		return -1;
	}
	b->data = grown;
	b->cap = new_cap;
	return 0;
}

int vp_buf_append(VpBuf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int vp_buf_puts(VpBuf *b, const char *s)
{
	return vp_buf_append(b, s, strlen(s));
}

int vp_buf_printf(VpBuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return -1;
	}
	if (reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *vp_buf_str(const VpBuf *b)
{
	return b->data ? b->data : "";
}

void vp_buf_reset(VpBuf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

char *vp_buf_take(VpBuf *b)
{
	char *text = NULL;

	if (b->oom)
		goto done;
	if (!b->data && reserve(b, 0) < 0)
		goto done;
	text = b->data == b->fixed ? leave_fixed(b, b->len + 1) : b->data;
	if (text)
		text[b->len] = '\0';
	if (b->data != b->fixed)
		b->data = NULL;
done:
	b->len = 0;
	b->cap = 0;
	if (b->data != b->fixed)
		free(b->data);
	b->data = b->fixed = NULL;
	b->oom = false;
	return text;
}

void vp_buf_free(VpBuf *b)
{
	if (!b)
		return;
	if (b->data != b->fixed)
		free(b->data);
	vp_buf_init(b, b->limit);
}
