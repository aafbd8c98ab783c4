/* A growable string buffer with a hard size cap, for anything built from or read
 * off the network. Appends after a failure keep failing, so a caller can build a
 * whole text and check once at the end. */
#ifndef VP_BUF_H
#define VP_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct VpBuf {
	char *data;   /* NUL-terminated once anything was appended; NULL before
		       * (the caller's storage from the start with vp_buf_init_on) */
	size_t len;   /* bytes held, NUL not counted */
	size_t cap;   /* bytes allocated */
	size_t limit; /* most bytes len may reach */
	bool oom;     /* an append failed: over the limit or out of memory */
	char *fixed;  /* the caller's storage (vp_buf_init_on), never freed; or NULL */
} VpBuf;

/* `limit` is the most content bytes the buffer may hold (the NUL is extra). */
void vp_buf_init(VpBuf *b, size_t limit);

/* The same, holding its text in the caller's storage (storage_cap bytes,
 * often on the stack, outliving the buffer's use) until it outgrows it: a
 * short text then costs no allocation. take copies the text out of it. */
void vp_buf_init_on(VpBuf *b, char *storage, size_t storage_cap, size_t limit);

/* 0, or -1 (b->oom set, content unchanged) when it would pass the limit, memory
 * runs out or an earlier append failed. */
int vp_buf_append(VpBuf *b, const char *s, size_t n);
int vp_buf_puts(VpBuf *b, const char *s);
int vp_buf_printf(VpBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text, "" while empty; valid until the next append, take or free. */
const char *vp_buf_str(const VpBuf *b);

/* Empties the buffer and clears oom; keeps the memory for reuse. */
void vp_buf_reset(VpBuf *b);

/* Hands the malloc'd NUL-terminated text to the caller (free() it) and leaves b
 * empty; NULL when oom is set or memory runs out. */
char *vp_buf_take(VpBuf *b);

/* Frees the memory; b is empty (and reusable) afterwards. NULL is accepted. */
void vp_buf_free(VpBuf *b);

#endif
