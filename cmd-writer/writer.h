/* cmd-writer: validates commands against its in-memory write model and appends
 * the resulting events to Kafka in transactions (see ARCHITECTURE.md). This
 * header holds the daemon's configuration and the modules' entry points. */
#ifndef WRITER_H
#define WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include <cjson/cJSON.h>

#include "state.h"
#include "vp_error.h"
#include "vp_event.h"
#include "vp_jwt.h"
#include "vp_keyring.h"
#include "vp_service.h"

/* A record's place in the events topic. */
typedef struct WrPosition {
	int partition;
	int64_t offset;
} WrPosition;

/* Positions ops accept the rebuild skipping when it cannot read them, sorted. */
typedef struct WrQuarantine {
	WrPosition *positions;
	size_t len;
} WrQuarantine;

typedef struct WrConfig {
	char *host;
	long port;
	char *brokers;
	char *topic;
	char *keys_topic;      /* vetpms.keys (docs/privacy.md) */
	char *master_key_file; /* else VETPMS_MASTER_KEY, never an option */
	char *master_key_previous_file; /* during a rotation; else VETPMS_MASTER_KEY_PREVIOUS */
	char *kafka_props;
	long instance;
	long instances;
	char *jwt_secret;
	char *jwt_ed25519_public_key;
	char *jwt_issuer;
	char *jwt_audience;
	long max_batch;
	long max_queue; /* events waiting for a commit; over it commands get 503 */
	long idempotency_window_s; /* keys are remembered this long after their event */
	char *log_level;
	/* Benchmarks only: decide and answer, append nothing. No transactional.id,
	 * so a dry-run writer never fences the real one; answers carry offset -1. */
	bool dry_run;
	/* benchmarks only (bench/run.py seal): client events written as plain v1;
	 * refused unless --dry-run or a bench.* events topic (main.c) */
	bool unsealed_for_bench;
	/* Tests only: a decided event of this type gets a data member the catalog
	 * refuses ("" = never), the writer bug the pre-append check is there for. */
	char *fault_poison_type;
	char *fault_commit;      /* tests only: "abort-once", "abort-once-alone",
				    "lose-answer-once" or "" */
	/* --quarantine as given, and parsed (docs/operations.md, "A rebuild
	 * stopped at a record"). */
	char *quarantine_text;
	WrQuarantine quarantine;
} WrConfig;

/* Record headers of the writer's events besides EVENTS.md's `type` and `v`
 * (consumers may ignore them): the request fingerprint, and where the
 * event's command_id came from. A rebuild remembers the keys of `client`
 * commands and of records without the origin header (written before it
 * existed), not of `writer` ones. */
#define WR_HEADER_COMMAND_HASH "command-hash"
#define WR_HEADER_COMMAND_ID_ORIGIN "command-id-origin"
#define WR_ORIGIN_CLIENT "client" /* Idempotency-Key or body command_id */
#define WR_ORIGIN_WRITER "writer" /* a UUIDv7 the writer made */
#define WR_ORIGIN_IMPORT "import" /* an imported event's id from another deployment */
/* Imported records: the file's BLAKE2b hex, and the event's index in it. */
#define WR_HEADER_IMPORT "import"
#define WR_HEADER_IMPORT_INDEX "import-index"

/* One event on its way to the log, with what is needed to answer for it. A
 * command's events are submitted as one chain, `more` set on all but the last:
 * the appender puts the whole chain in one transaction (all or nothing). */
typedef struct WrAppend {
	char tenant_id[37];
	int partition;
	char *value;             /* envelope JSON, owned */
	char type[48];
	char request_hash[65];
	char command_id[256];
	bool client_key;         /* command_id came from the client */
	uint64_t generation;     /* write-model generation it was decided on */
	bool more;               /* the next item is the same command's next event */
	int v;                   /* the event's version (0 means 1) */
	char import_digest[65];  /* imported: the file's digest ("" otherwise) */
	int64_t import_index;    /* imported: the event's index in the file */
	VpKeyRecord keyrec[2];   /* key records to commit with it (keys.c), owned */
	int n_keyrec;
	VpKeyRecord *import_keys; /* an import's key records (import.c), owned */
	int n_import_keys;
	/* filled by the appender */
	int64_t offset;
	bool delivered;          /* a successful delivery report gave offset */
	int error;               /* 0 ok, WR_ERR_OUTCOME_UNKNOWN, else a librdkafka error code */
	void *owner;             /* the HTTP request waiting for it */
	struct WrAppend *next;
} WrAppend;

/* An item's error when its transaction's outcome could not be learnt: it may
 * or may not be in the log (answered 503 saying so; the Idempotency-Key tells). */
#define WR_ERR_OUTCOME_UNKNOWN (-100000)

typedef struct WrAppender WrAppender;

/* Called on the loop thread with a finished list (success or failure each). */
typedef void (*WrAppendDone)(WrAppend *done_list, void *arg);
/* Called on the loop thread with a freshly rebuilt model after a failed commit. */
typedef void (*WrRebuilt)(WrState *state, uint64_t generation, void *arg);

/* appender.c: the transactional producer and the group commit. A side thread
 * runs init_transactions (fencing older writers with our transactional.id),
 * rebuilds the write model from the owned partitions, then commits whatever
 * the loop submitted since the previous commit as one transaction. */
WrAppender *wr_appender_new(const WrConfig *cfg, struct event_base *base, WrAppendDone done,
			    WrRebuilt rebuilt, void *arg, char *why, size_t why_cap);
int wr_appender_start(WrAppender *a);
/* Queues the chain item->next->... (one command's events) in one step, so
 * the commit thread never sees half a command. Loop thread only: chains are
 * staged and reach the commit thread together, in order, once the loop has
 * run this iteration's other callbacks. */
void wr_appender_submit(WrAppender *a, WrAppend *item);
/* The loop's model holds what the log does not (a command's later event could
 * not be applied after its first was): fail everything decided on it and
 * hand over a model rebuilt from the log, as after a failed commit. */
void wr_appender_rebuild(WrAppender *a);
bool wr_appender_ready(WrAppender *a, char *why, size_t why_cap);
bool wr_appender_fatal(WrAppender *a);
/* Ready, and the queue below max_queue: a command may be decided now. Else
 * false with why (not ready: its reason; queue full). */
bool wr_appender_accepting(WrAppender *a, char *why, size_t why_cap);
int wr_appender_partition_count(WrAppender *a);
WrAppender *wr_appender_free(WrAppender *a);
void wr_append_free(WrAppend *item);

/* rebuild.c: reads the owned partitions from the beginning to their end
 * (read_committed) into state. Every record must enter the model: one that
 * cannot (envelope, catalog or model refuses it) stops the rebuild with
 * WR_REBUILD_UNREADABLE and why "partition P offset O: ...", unless its
 * position is quarantined, when it is skipped and counted in *quarantined. */
enum {
	WR_REBUILD_OK = 0,
	WR_REBUILD_FAILED = -1,     /* Kafka, memory, a stop request: worth retrying soon */
	WR_REBUILD_UNREADABLE = -2, /* a record no retry will read: ops must look */
	WR_REBUILD_FATAL = -3,      /* the keys topic's keys are not under our master key */
};
int wr_rebuild(const WrConfig *cfg, int partition_cnt, const atomic_bool *stopping,
	       WrState *state, long long *quarantined, char *why, size_t why_cap);
bool wr_owns_partition(const WrConfig *cfg, int partition);

/* outcome.c: whether batch (one transaction whose commit outcome the producer
 * could not tell) committed, read from its partition read_committed within
 * timeout_ms; why says how it was told. WR_OUTCOME_UNKNOWN while the
 * transaction is still open: the next init_transactions of its
 * transactional.id completes it. */
enum {
	WR_OUTCOME_LANDED = 1,
	WR_OUTCOME_ABORTED = 0,
	WR_OUTCOME_UNKNOWN = -1,
};
int wr_outcome_landed(const WrConfig *cfg, const WrAppend *batch, int timeout_ms,
		      const atomic_bool *stopping, char *why, size_t why_cap);

/* keys.c: personal fields sealed (docs/privacy.md). wr_keys_init loads the
 * master key once at start (-1 with why: none given, unreadable);
 * wr_keys_read fills a model's keyring from the keys topic (rebuild.c;
 * WR_REBUILD_* codes); wr_keys_seal turns a client event's data into the
 * sealed v2 form in place (ev->v = 2), giving item the key records a new
 * client needs (its first event commits them). */
int wr_keys_init(const WrConfig *cfg, char *why, size_t why_cap);
void wr_keys_release(void);
int wr_keys_read(const WrConfig *cfg, WrState *state, char *why, size_t why_cap);
/* Whether the master key opens the tenant keys committed so far and is the
 * one the keys topic's master record names, read into a keyring of its own
 * before the writer takes its transactional id: true only when some tenant
 * key or the master record is under another master key (why says which);
 * an unreachable keys topic proves nothing (false), and the first rebuild
 * checks again. *recorded: whether the read found a master record (true
 * when the read failed: nothing is to be recorded on a guess). */
bool wr_keys_master_is_wrong(const WrConfig *cfg, bool *recorded, char *why, size_t why_cap);
/* The master record's value for this writer's master key (malloc'd, or
 * NULL): what a deployment's first writer records (appender.c). */
char *wr_keys_master_record(void);
int wr_keys_seal(WrState *state, VpEvent *ev, WrAppend *item, char *why, size_t why_cap);
/* The master key loaded at start (NULL before): an import rewraps the
 * tenant key it brings under it (import.c). */
const VpKey *wr_keys_master(void);
/* The key of the command MACs derived from the current master key, or from
 * the previous one during a rotation (NULL before wr_keys_init, or no
 * previous key). */
const VpKey *wr_keys_command(bool previous);

/* quarantine.c: "P:O[,P:O...]" (no spaces, no duplicates; "" is none) into q.
 * 0, or -1 with why naming the bad item and q empty. */
int wr_quarantine_parse(const char *text, WrQuarantine *q, char *why, size_t why_cap);
bool wr_quarantined(const WrQuarantine *q, int partition, int64_t offset);
void wr_quarantine_clear(WrQuarantine *q);

/* import.c: POST /v1/ops/tenants/{tenant_id}/import, a batch of a tenant
 * export file (docs/operations.md, "Tenant export and import"). */
#define WR_IMPORT_ROUTE "/v1/ops/tenants/{tenant_id}/import"
/* A batch is one transaction of at most this many events, in a body of at
 * most 1 MiB (vp_http_allow_large_body). */
#define WR_IMPORT_MAX_EVENTS 5000
#define WR_ERR_TENANT_EXISTS "TENANT_EXISTS"
#define WR_ERR_IMPORT_POSITION "IMPORT_POSITION"
#define WR_ERR_IMPORT_REFUSED "IMPORT_REFUSED"
typedef struct WrImportBatch {
	char tenant_id[37];
	char digest[65];
	int64_t from;
	size_t n;
	const char **line; /* borrowed from the request body */
	VpEvent *ev;       /* decoded, n_decoded of them */
	size_t n_decoded;
	VpKeyRecord *keys; /* key records of the tenant riding with the batch, the */
	int n_keys;        /* tenant key rewrapped under our master key; owned */
	bool needs_tenant_key; /* client keys without the tenant's: it must be held */
} WrImportBatch;
/* Checks the body and every line (catalog, tenant, first event); 0 or -1
 * with err (400). */
int wr_import_parse(const cJSON *body, const char *tenant_id, WrImportBatch *b, VpError *err);
/* Against the model: 0 append it, 1 nothing to append (an empty probe, or a
 * batch that already landed; *next is where the import stands), -1 err (409:
 * the tenant exists, or the batch does not start at *next). */
int wr_import_position(const WrState *s, const WrImportBatch *b, int64_t *next, VpError *err);
/* Applies the batch to the model as the rebuild does; -1 (409) at the first
 * event the model refuses, *applied of them applied before it. */
int wr_import_apply(WrState *s, WrImportBatch *b, size_t *applied, VpError *err);
/* After the position (a batch sent ahead of its turn is IMPORT_POSITION,
 * resent, never refused for good): client keys of a tenant whose key is
 * neither in the batch nor in the model's keyring are refused, 0 or -1 err
 * (400). */
int wr_import_keys_ok(WrState *s, const WrImportBatch *b, VpError *err);
void wr_import_note(WrTenant *t, const char *digest, int64_t next);
/* The key records the batch's first item carries into the model's keyring
 * (after the batch applied): later commands seal with them. */
int wr_import_take_keys(WrState *s, const WrAppend *first, VpError *err);
void wr_import_release(WrImportBatch *b);

/* http_api.c: the command routes. */
typedef struct WrApi WrApi;
WrApi *wr_api_new(const WrConfig *cfg, VpService *service, char *why, size_t why_cap);
WrApi *wr_api_free(WrApi *api);
bool wr_api_route(VpHttpRequest *r, void *arg);
bool wr_api_ready(void *arg, char *why, size_t why_cap);
bool wr_api_fatal(WrApi *api);

#endif
