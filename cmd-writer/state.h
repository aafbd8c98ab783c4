/* The write model: per tenant, only what decisions need (existence, status,
 * versions, the microchips of living patients, idempotency keys, and for
 * scheduling: each appointment's status, vet, patient and interval, each vet's
 * published blocks and active bookings, each patient's active bookings). One evolve
 * function applies an event both when a command is decided and when the model
 * is rebuilt from the log, so the two can never disagree. Loop thread only. */
#ifndef WR_STATE_H
#define WR_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "idem.h"
#include "intervals.h"
#include "strmap.h"
#include "vp_event.h"

typedef struct WrStaff {
	int64_t version;
	bool active;
	char role[16];
	bool licensed; /* registered with a license_number (controlled prescriptions) */
	WrIntervals blocks; /* published availability */
	WrIntervals booked; /* active appointments (scheduled, checked in, in progress) */
} WrStaff;

typedef struct WrClient {
	int64_t version;
	bool active;
	bool erased; /* ClientErased: inactive for good, its key destroyed */
} WrClient;

typedef struct WrPatient {
	int64_t version;
	bool alive;
	char client_id[37];
	char microchip[16];
	WrIntervals booked; /* active appointments */
} WrPatient;

/* In the order of vp_enum_appointment_statuses (common/vp_catalog.h), which
 * names them. */
typedef enum WrApptStatus {
	WR_APPT_SCHEDULED,
	WR_APPT_CHECKED_IN,
	WR_APPT_IN_PROGRESS,
	WR_APPT_COMPLETED,
	WR_APPT_CANCELED,
	WR_APPT_NO_SHOW,
} WrApptStatus;

/* Active appointments (scheduled, checked in, in progress) hold their interval
 * in their vet's and their patient's `booked` sets; the others hold none. */
typedef struct WrAppointment {
	int64_t version;
	int64_t start_us, end_us;
	WrApptStatus status;
	char vet_id[37];
	char patient_id[37];
} WrAppointment;

/* A medical record's diagnoses and treatments: what the rules look at. */
typedef struct WrDiagnosis {
	char id[37];
	bool primary;
	bool retracted;
} WrDiagnosis;

typedef enum WrTreatmentStatus {
	WR_TREATMENT_PLANNED,
	WR_TREATMENT_PERFORMED,
	WR_TREATMENT_CANCELED,
} WrTreatmentStatus;

typedef struct WrTreatment {
	char id[37];
	WrTreatmentStatus status;
} WrTreatment;

/* A medical record (state_record.c). Signed = locked; an unsigned record is
 * locked too once the tenant's record_lock_hours have passed since
 * opened_at_us (time, not an event: wr_record_locked). */
typedef struct WrRecord {
	int64_t version;
	char patient_id[37];
	char appointment_id[37]; /* "" when none */
	char record_type[16];
	int64_t opened_at_us;
	bool is_signed;
	bool has_assessment; /* the SOAP assessment holds text */
	WrDiagnosis *diagnoses;
	size_t n_diagnoses, cap_diagnoses;
	WrTreatment *treatments;
	size_t n_treatments, cap_treatments;
	size_t n_prescriptions;
	size_t n_addenda;
} WrRecord;

/* A prescription as dispensing sees it (state_record.c adds it, state_stock.c
 * counts what was dispensed against it). */
typedef struct WrPrescription {
	char patient_id[37];
	char item_id[37];       /* "" when it names no item */
	int64_t quantity_milli; /* 0 when none was prescribed */
	int64_t refills;
	int64_t dispensed_milli;
} WrPrescription;

/* A batch of an item. No expiry is WR_NO_EXPIRY, later than every date, so
 * FEFO order is simply (expiry, received). */
#define WR_NO_EXPIRY INT32_MAX
typedef struct WrBatch {
	char number[51];
	int32_t expiry;          /* days since 1970-01-01, or WR_NO_EXPIRY */
	int64_t received;        /* the item's receipt count at its first receipt */
	int64_t remaining_milli;
} WrBatch;

/* An inventory item (state_stock.c): its flags, and its batches both by
 * number and in FEFO order (sorted by (expiry, received)), so a dispense
 * starts at the first unexpired batch by binary search. */
typedef struct WrItem {
	int64_t version;
	bool active, controlled, requires_prescription;
	char code[51];
	WrMap batch_index; /* number -> WrBatch */
	WrBatch **fefo;    /* every batch, in FEFO order */
	size_t n_batches, cap_batches;
	int64_t receipts;
	int64_t sale_price_cents; /* WR_NO_PRICE when none: an invoice line's defaults */
	int64_t tax_rate_bp;      /* WR_NO_PRICE when none (a line then takes 0) */
} WrItem;
#define WR_NO_PRICE (-1)

/* In the order of vp_enum_invoice_statuses (common/vp_catalog.h), which
 * names them. */
typedef enum WrInvoiceStatus {
	WR_INVOICE_DRAFT,
	WR_INVOICE_ISSUED,
	WR_INVOICE_PARTIALLY_PAID,
	WR_INVOICE_PAID,
	WR_INVOICE_VOID,
} WrInvoiceStatus;

/* A draft invoice's line: what an issue dispenses and what it totals. */
typedef struct WrInvoiceLine {
	char id[37];
	char item_id[37]; /* "" when none */
	int64_t quantity_milli;
	int64_t line_total_cents;
} WrInvoiceLine;

typedef struct WrPayment {
	char id[37];
	int64_t amount_cents;
	int64_t refunded_cents;
} WrPayment;

/* An invoice (state_invoice.c). Its lines are kept while it is a draft (in
 * the order added, at most VP_MAX_INVOICE_LINES) and freed once it is issued
 * or void: no rule reads them after; total_cents stays. */
typedef struct WrInvoice {
	int64_t version;
	char client_id[37];
	char appointment_id[37]; /* "" when none */
	WrInvoiceStatus status;
	WrInvoiceLine *lines;
	size_t n_lines, cap_lines;
	int64_t total_cents;
	int64_t paid_cents; /* net of refunds */
	int32_t issued_on;  /* days since 1970-01-01; 0 while a draft */
	WrPayment *payments;
	size_t n_payments, cap_payments;
} WrInvoice;

typedef struct WrTenant {
	char id[37];
	int64_t version;
	char timezone[64];
	int64_t record_lock_hours; /* 0: records lock only when signed */
	WrMap records;      /* id -> WrRecord */
	WrMap appointment_records; /* appointment id -> WrRecord (one per appointment) */
	WrMap staff;        /* id -> WrStaff */
	WrMap clients;      /* id -> WrClient */
	WrMap patients;     /* id -> WrPatient */
	WrMap microchips;   /* microchip of a living patient -> WrPatient */
	WrMap appointments; /* id -> WrAppointment */
	WrMap prescriptions; /* prescription id -> WrPrescription */
	WrMap items;        /* id -> WrItem */
	WrMap item_codes;   /* code -> WrItem (values are the items') */
	WrMap invoices;     /* id -> WrInvoice */
	WrMap appointment_invoices; /* appointment id -> its live (not void) WrInvoice */
	WrMap invoice_payments; /* payment id -> its WrInvoice (ids are the tenant's) */
	WrMap invoice_refunds;  /* refund id -> its WrInvoice */
	int64_t invoices_issued; /* the last invoice number's seq: numbers are gapless */
	int32_t last_issued_on;  /* the last issued invoice's issued_on (days), 0 when none */
	WrIdemStore idem;   /* command id -> WrIdem, for a time window */
	/* A tenant made by an import (import.c): the file's BLAKE2b hex and the
	 * index of its next event to append; "" and 0 otherwise. */
	char import_digest[65];
	int64_t import_next;
} WrTenant;

typedef struct WrState {
	WrMap tenants;          /* id -> WrTenant */
	struct VpKeyring *keys; /* the keys topic as this model read it (keys.c) */
	int64_t idem_window_us; /* a key is kept this long after its event's `at` */
	size_t idem_keys;       /* idempotency keys remembered, all tenants */
} WrState;

/* An empty model with the default idempotency window (WR_IDEM_DEFAULT_WINDOW_S). */
void wr_state_init(WrState *s);
void wr_state_clear(WrState *s);
WrTenant *wr_state_tenant(const WrState *s, const char *tenant_id);

/* The idempotency entry of a command whose id the client chose. */
typedef struct WrIdemNote {
	const char *request_hash; /* may be empty (a record without command-hash) */
	const char *position;     /* "P:O"; empty while pending */
	bool pending;             /* the append is in flight */
} WrIdemNote;

/* Applies one event. With `idem`, ev->command_id came from the client (an
 * Idempotency-Key or a body command_id) and is remembered for the window;
 * NULL for an id the writer generated, which no client can send again, so
 * remembering it would only cost memory. -1 when the event contradicts the
 * model (a bug or a corrupt log). */
int wr_state_apply(WrState *s, const VpEvent *ev, const WrIdemNote *idem, char *why,
		   size_t why_cap);

bool wr_appointment_active(const WrAppointment *a);

/* state_record.c: the medical_record events into t (called by wr_state_apply). */
int wr_record_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap);
void wr_record_free(void *record);
/* Signed, or unsigned past the tenant's auto-lock period at now_us. */
bool wr_record_locked(const WrTenant *t, const WrRecord *r, int64_t now_us);
const WrDiagnosis *wr_record_diagnosis(const WrRecord *r, const char *id);
const WrTreatment *wr_record_treatment(const WrRecord *r, const char *id);

/* state_stock.c: the inventory_item events into t (called by wr_state_apply). */
int wr_stock_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap);
void wr_item_free(void *item);
/* The index in it->fefo of the first batch not expired on `today`. */
size_t wr_item_first_unexpired(const WrItem *it, int32_t today);
/* Stock not expired on `today`, in thousandths. */
int64_t wr_item_on_hand(const WrItem *it, int32_t today);
/* FEFO allocation of quantity_milli from the batches with stock not expired
 * on `today`: fills alloc[0..n) (at most cap) with batch and amount; the
 * count, -1 when the stock falls short, -2 when it needs more than cap batches. */
typedef struct WrAllocation {
	const WrBatch *batch;
	int64_t quantity_milli;
} WrAllocation;
long wr_item_fefo(const WrItem *it, int32_t today, int64_t quantity_milli, WrAllocation *alloc,
		  size_t cap);

/* state_invoice.c: the invoice events into t (called by wr_state_apply). */
int wr_invoice_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap);
void wr_invoice_free(void *invoice);
const WrInvoiceLine *wr_invoice_line(const WrInvoice *inv, const char *line_id);
const WrPayment *wr_invoice_payment(const WrInvoice *inv, const char *payment_id);
/* What is left to pay: total − paid while issued or partially paid, else 0. */
int64_t wr_invoice_balance(const WrInvoice *inv);

/* Marks the command's entry appended at position (commands with a client key;
 * others have no entry). */
void wr_state_idem_done(WrState *s, const char *tenant_id, const char *command_id,
			const char *position);

/* Forgets the idempotency keys that expired by now_us: of one tenant (the
 * request path, before a key is looked up), or of every tenant (after a
 * rebuild, and periodically for tenants that send nothing). */
void wr_state_idem_expire(WrState *s, WrTenant *t, int64_t now_us);
void wr_state_idem_expire_all(WrState *s, int64_t now_us);

#endif
