/* One tenant's idempotency keys, remembered for a time window: a map from
 * command id to the command's first answer (for replays), and the same entries
 * on a FIFO in expiry order, so forgetting what has expired pops the oldest
 * entries and costs O(1) per key over its lifetime. A key is kept until its
 * event's time plus the window; after that the same key is a new command.
 * Loop thread only (or the rebuild's thread for a model not yet handed over). */
#ifndef WR_IDEM_H
#define WR_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strmap.h"
#include "vp_money.h"

#define WR_IDEM_DEFAULT_WINDOW_S 86400 /* 24 h, as VETPMS_IDEMPOTENCY_WINDOW_S */
/* The most events one command appends: an invoice's issue, with one
 * StockDispensed per line (vitals with a weight: two). */
#define WR_MAX_COMMAND_EVENTS (1 + VP_MAX_INVOICE_LINES)
/* An event type as its index in vp_catalog[] (one byte: an entry kept for
 * every key of the window costs a byte per event, not a name). */
#define WR_EVENT_TYPE_UNKNOWN UINT8_MAX
uint8_t wr_event_type_index(const char *type);
/* The type an index names ("?" for WR_EVENT_TYPE_UNKNOWN). */
const char *wr_event_type_name(uint8_t index);

/* The first answer of a command, kept to replay it for the same key: the
 * target aggregate (its first event's), every event type, the last event's
 * position. */
typedef struct WrIdem {
	char request_hash[65];
	char aggregate_id[37];
	uint8_t event_types[WR_MAX_COMMAND_EVENTS]; /* wr_event_type_index, in order */
	int n_events;
	int64_t at_us;     /* the events' time: one command's events share it */
	int64_t version;
	int status;        /* 201 or 200 */
	char position[32]; /* "P:O", empty while the append is in flight */
	bool pending;      /* append in flight: never expired */
	int64_t expires_us;
	struct WrIdem *newer, *older; /* the FIFO */
	char key[];
} WrIdem;

/* All zero is an empty store. */
typedef struct WrIdemStore {
	WrMap by_key;   /* command id -> WrIdem */
	WrIdem *oldest; /* FIFO head: the next to expire */
	WrIdem *newest; /* FIFO tail */
} WrIdemStore;

void wr_idem_clear(WrIdemStore *st);
WrIdem *wr_idem_get(const WrIdemStore *st, const char *key);

/* A fresh zeroed entry under key, expiring at expires_us, at the FIFO's tail;
 * an older entry under the same key is dropped. Entries arrive in time order
 * (one tenant is decided on one loop, and its log partition is read in order);
 * an expiry earlier than the tail's (a clock stepped back, another writer's
 * clock) is raised to the tail's, so the FIFO stays sorted and such a key is
 * kept a little longer, never shorter. NULL on out of memory. */
WrIdem *wr_idem_put(WrIdemStore *st, const char *key, int64_t expires_us);

/* Forgets the entries with expires_us <= now_us, oldest first, stopping at a
 * pending one (its answer is not known yet; it goes once appended and
 * expired). Returns how many were forgotten. */
size_t wr_idem_expire(WrIdemStore *st, int64_t now_us);

size_t wr_idem_count(const WrIdemStore *st);

#endif
