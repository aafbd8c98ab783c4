/* Commands: each aggregate's decide_<aggregate>.c holds one table of its
 * commands (route, roles, field rules) and the decide functions that turn a
 * valid command plus the write model into its events (the target aggregate's
 * first, then up to WR_MAX_COMMAND_EVENTS - 1 more), or refuse it. */
#ifndef WR_DECIDE_H
#define WR_DECIDE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <event2/http.h>
#include <cjson/cJSON.h>

#include "state.h"
#include "vp_error.h"
#include "vp_json.h"

/* An event a decision adds after the first (the target's): the same or
 * another aggregate's, e.g. the patient's WeightRecorded after VitalsRecorded.
 * All of a command's events are appended in one transaction. */
typedef struct WrDecidedEvent {
	const char *aggregate;
	char aggregate_id[37];
	const char *type;
	int64_t seq;
	cJSON *data;
} WrDecidedEvent;

typedef struct WrDecision {
	/* in */
	const WrState *state;
	const WrTenant *tenant;  /* NULL only for ProvisionTenant */
	const char *tenant_id;
	const char *target_id;   /* {id} of the path, or the new aggregate's id */
	const char *item_id;     /* the path's second id ({diagnosis_id}, {line_id}), or NULL */
	const cJSON *body;
	int64_t if_match;        /* -1 when no If-Match */
	int64_t now_us;
	const char *actor;       /* the token's sub */
	unsigned roles;          /* the token's VP_ROLE_* bits */
	/* out */
	const char *aggregate;   /* "patient" */
	const char *type;        /* "PatientRegistered" */
	int64_t seq;             /* aggregate version after the event */
	cJSON *data;             /* owned by the caller once decide returns 0 */
	WrDecidedEvent more[WR_MAX_COMMAND_EVENTS - 1]; /* after the first, in order */
	size_t n_more;
} WrDecision;

typedef struct WrCommand {
	const char *name;
	enum evhttp_cmd_type method;
	const char *pattern;       /* "/v1/patients/{id}/weights" */
	unsigned roles;            /* VP_ROLE_* mask */
	const VpJsonField *fields;
	size_t n_fields;
	bool creates;              /* 201 with Location = location_prefix + id */
	const char *location_prefix;
	/* Rules beyond the field table (may be NULL); adds details for fields that
	 * are present; runs even when the table found errors so every bad field is
	 * reported at once. */
	void (*validate)(const cJSON *body, int64_t now_us, VpError *err);
	/* Runs on a valid body only: decides against the write model. */
	int (*decide)(WrDecision *d, VpError *err);
} WrCommand;

extern const WrCommand wr_tenant_commands[];
extern const size_t wr_n_tenant_commands;
extern const WrCommand wr_staff_commands[];
extern const size_t wr_n_staff_commands;
extern const WrCommand wr_client_commands[];
extern const size_t wr_n_client_commands;
extern const WrCommand wr_patient_commands[];
extern const size_t wr_n_patient_commands;
extern const WrCommand wr_availability_commands[];
extern const size_t wr_n_availability_commands;
extern const WrCommand wr_appointment_commands[];
extern const size_t wr_n_appointment_commands;
extern const WrCommand wr_record_commands[];
extern const size_t wr_n_record_commands;
extern const WrCommand wr_stock_commands[];
extern const size_t wr_n_stock_commands;
extern const WrCommand wr_invoice_commands[];
extern const size_t wr_n_invoice_commands;

/* commands.c: every table above, in routing order (the first match wins). */
typedef struct WrCommandTable {
	const WrCommand *table;
	const size_t *n;
} WrCommandTable;
extern const WrCommandTable wr_command_tables[];
extern const size_t wr_n_command_tables;
/* The command named `name` ("RecordVitals"), or NULL. */
const WrCommand *wr_command_by_name(const char *name);

/* Every command as JSON, for `cmd-writer --list-commands`: [{"name", "method",
 * "pattern" ("/v1/patients/{id}/weights"), "roles": ["vet", ...], "creates",
 * "location_prefix" (creations), "fields": vp_json_fields_describe's table}].
 * NULL on out of memory. */
cJSON *wr_commands_describe(void);
/* Prints wr_commands_describe() to out; 0, or -1 on out of memory or I/O error. */
int wr_commands_print(FILE *out);

/* The id of the tenant a ProvisionTenant without `id` but with a client key
 * creates: a UUIDv8 (RFC 9562) of BLAKE2b over the caller's sub, the key and
 * `attempt` (the writer takes the first attempt, 0, 1, ..., whose partition
 * it owns). Pure: a retry with the same key names the same tenant and replays;
 * another platform admin's same key names another tenant. */
void wr_tenant_id_for_key(const char *sub, const char *key, uint32_t attempt, char out[37]);

/* tz names a zone under zoneinfo_dir that PostgreSQL also accepts: an IANA
 * shaped name (letters, digits, "_-+/", no "..", "//" nor leading or trailing
 * "/", at most 64 bytes) of a regular TZif file (RFC 8536) with at least one
 * local time type and no leap seconds. Not zone.tab, tzdata.zi, right/...,
 * nor the host's "localtime" or zic's "posixrules". */
bool wr_timezone_known(const char *zoneinfo_dir, const char *tz);

/* tzlocal.c: the zone's UT offset at an instant (seconds east), read from its
 * TZif file; 0, or -1 when the zone cannot be read. */
int wr_tz_utc_offset(const char *zoneinfo_dir, const char *tz, int64_t at_us, int32_t *offset_s);
/* The date (days since 1970-01-01) at at_us in zone tz; UTC if it cannot be read. */
int32_t wr_local_date(const char *zoneinfo_dir, const char *tz, int64_t at_us);
/* How many zone files wr_tz_utc_offset has read and parsed (each zone's once
 * while it stays among the 16 cached): for tests. */
uint64_t wr_tz_cache_loads(void);
#define WR_ZONEINFO_DIR "/usr/share/zoneinfo"

/* Adds an event after the first, taking data; -1 (data freed) when the
 * decision is full, a bug the caller answers as 500. */
int wr_decision_add(WrDecision *d, const char *aggregate, const char *aggregate_id,
		    const char *type, int64_t seq, cJSON *data, VpError *err);
/* Frees the data of every decided event (NULL data is fine). */
void wr_decision_release(WrDecision *d);

/* decide_patient.c: a weight {value, unit} (kg, g, lb) as whole grams, with
 * a detail named prefix+"value" when out of range (0 then). */
long long wr_check_weight(const cJSON *obj, const char *prefix, VpError *err);
extern const VpJsonField wr_weight_parts[2];
/* Clock skew tolerated for instants a device stamped (measured_at, ...). */
#define WR_FUTURE_SKEW_US (300LL * 1000000LL)

/* A decimal quantity with at most three places as integer thousandths: the
 * shortest decimal text that reads back as the same double (what the client
 * sent, up to trailing zeros), converted digit by digit, never by float
 * multiplication. 0, or -1 when v is no number, has more places, or its
 * magnitude exceeds VP_MAX_QUANTITY_MILLI thousandths. */
int wr_decimal_milli(const cJSON *v, int64_t *milli);

/* Shared by the decide files. */
/* The tenant's local date (days since 1970-01-01) at the decision's now. */
int32_t wr_tenant_today(const WrDecision *d);
int wr_check_version(const WrDecision *d, int64_t current, VpError *err);
/* Copies body[name] into data (null when absent), strings trimmed of nothing:
 * values are stored as sent. */
void wr_copy_field(cJSON *data, const cJSON *body, const char *name);
int wr_not_found(VpError *err, const char *what, const char *id);
/* The vet `id` of the tenant, existing (404), active (STAFF_INACTIVE) and a
 * veterinarian (NOT_A_VETERINARIAN); NULL with err set otherwise. */
const WrStaff *wr_active_vet(const WrDecision *d, const char *id, VpError *err);
/* body[name] as an instant; the field table has checked it already. */
int64_t wr_body_time(const cJSON *body, const char *name);
/* data[name] = the instant as RFC 3339 UTC with Z. */
void wr_add_time(cJSON *data, const char *name, int64_t us);

#endif
