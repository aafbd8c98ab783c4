/* The write model of billing (docs/billing.md): each invoice's status, its
 * draft lines, totals, payments with what was refunded of them, the tenant's
 * count of issued invoices (the gapless number) and which appointment a live
 * invoice bills. Applied by the same evolve path for live commands and the
 * rebuild (state.c), so it refuses what contradicts it: a number that is not
 * the next, a payment above the balance, a refund above its payment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "vp_catalog.h"
#include "vp_json.h"
#include "vp_money.h"
#include "vp_time.h"

void wr_invoice_free(void *invoice)
{
	WrInvoice *inv = invoice;
	if (!inv)
		return;
	free(inv->lines);
	free(inv->payments);
	free(inv);
}

const WrInvoiceLine *wr_invoice_line(const WrInvoice *inv, const char *line_id)
{
	for (size_t i = 0; line_id && i < inv->n_lines; i++)
		if (!strcmp(inv->lines[i].id, line_id))
			return &inv->lines[i];
	return NULL;
}

const WrPayment *wr_invoice_payment(const WrInvoice *inv, const char *payment_id)
{
	for (size_t i = 0; payment_id && i < inv->n_payments; i++)
		if (!strcmp(inv->payments[i].id, payment_id))
			return &inv->payments[i];
	return NULL;
}

int64_t wr_invoice_balance(const WrInvoice *inv)
{
	if (inv->status != WR_INVOICE_ISSUED && inv->status != WR_INVOICE_PARTIALLY_PAID)
		return 0;
	return inv->total_cents - inv->paid_cents;
}

static int64_t data_int(const cJSON *data, const char *name)
{
	double value = 0;
	vp_json_number(data, name, &value);
	return (int64_t)value;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static int refuse(char *why, size_t why_cap, const VpEvent *ev, const char *what)
{
	snprintf(why, why_cap, "%s %s: %s", ev->type, ev->aggregate_id, what);
	return -1;
}

/* Grows a (pointer, count, capacity) array by one slot; -1 on out of memory. */
static int grow(void **items, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return 0;
	size_t next = *cap ? *cap * 2 : 4;
	void *bigger = realloc(*items, next * size);
	if (!bigger)
		return -1;
	*items = bigger;
	*cap = next;
	return 0;
}

/* The lines are read by no rule once the invoice leaves draft. */
static void drop_lines(WrInvoice *inv)
{
	free(inv->lines);
	inv->lines = NULL;
	inv->n_lines = inv->cap_lines = 0;
}

static int apply_created(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *client_id = vp_json_str(ev->data, "client_id");
	const char *appointment_id = vp_json_str(ev->data, "appointment_id");
	bool oom = false;
	if (wr_map_get(&t->invoices, ev->aggregate_id))
		return refuse(why, why_cap, ev, "created twice");
	if (!client_id || !wr_map_get(&t->clients, client_id))
		return refuse(why, why_cap, ev, "unknown client");
	if (appointment_id && (!wr_map_get(&t->appointments, appointment_id) ||
			       wr_map_get(&t->appointment_invoices, appointment_id)))
		return refuse(why, why_cap, ev, "unknown or already billed appointment");
	WrInvoice *inv = calloc(1, sizeof(*inv));
	if (!inv)
		return -1;
	inv->status = WR_INVOICE_DRAFT;
	copy_str(inv->client_id, sizeof(inv->client_id), client_id);
	copy_str(inv->appointment_id, sizeof(inv->appointment_id), appointment_id);
	wr_map_put(&t->invoices, ev->aggregate_id, inv, &oom);
	if (oom) {
		free(inv);
		return -1;
	}
	if (appointment_id)
		wr_map_put(&t->appointment_invoices, appointment_id, inv, &oom);
	return oom ? -1 : 0;
}

static int apply_line_added(WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *line_id = vp_json_str(ev->data, "line_id");
	int64_t total = data_int(ev->data, "line_total_cents");
	if (inv->status != WR_INVOICE_DRAFT || inv->n_lines >= VP_MAX_INVOICE_LINES)
		return refuse(why, why_cap, ev, "not a draft with room for a line");
	if (!line_id || wr_invoice_line(inv, line_id))
		return refuse(why, why_cap, ev, "line id missing or taken");
	if (inv->total_cents + total > VP_MAX_CENTS)
		return refuse(why, why_cap, ev, "total above the maximum");
	if (grow((void **)&inv->lines, inv->n_lines, &inv->cap_lines, sizeof(*inv->lines)) < 0)
		return -1;
	WrInvoiceLine *line = &inv->lines[inv->n_lines++];
	copy_str(line->id, sizeof(line->id), line_id);
	copy_str(line->item_id, sizeof(line->item_id), vp_json_str(ev->data, "item_id"));
	line->quantity_milli = data_int(ev->data, "quantity_milli");
	line->line_total_cents = total;
	inv->total_cents += total;
	return 0;
}

/* The others keep their order. */
static int apply_line_removed(WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	const WrInvoiceLine *line = wr_invoice_line(inv, vp_json_str(ev->data, "line_id"));
	if (inv->status != WR_INVOICE_DRAFT || !line)
		return refuse(why, why_cap, ev, "not a draft, or no such line");
	size_t i = (size_t)(line - inv->lines);
	inv->total_cents -= line->line_total_cents;
	memmove(&inv->lines[i], &inv->lines[i + 1], (inv->n_lines - i - 1) * sizeof(*inv->lines));
	inv->n_lines--;
	return 0;
}

static int apply_issued(WrTenant *t, WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	char want[VP_INVOICE_NUMBER_CAP];
	const char *number = vp_json_str(ev->data, "number");
	const char *issued_on = vp_json_str(ev->data, "issued_on");
	int32_t days;
	if (inv->status != WR_INVOICE_DRAFT || inv->n_lines == 0)
		return refuse(why, why_cap, ev, "not a draft with lines");
	vp_invoice_number(t->invoices_issued + 1, want, sizeof(want));
	if (!number || strcmp(number, want) != 0) {
		snprintf(why, why_cap, "%s %s: number %s, the next is %s", ev->type,
			 ev->aggregate_id, number ? number : "(none)", want);
		return -1;
	}
	if (data_int(ev->data, "total_cents") != inv->total_cents)
		return refuse(why, why_cap, ev, "total_cents is not the lines' sum");
	if (!issued_on || vp_date_parse(issued_on, strlen(issued_on), &days) < 0)
		return refuse(why, why_cap, ev, "bad issued_on");
	t->invoices_issued++;
	inv->issued_on = days;
	inv->status = inv->total_cents == 0 ? WR_INVOICE_PAID : WR_INVOICE_ISSUED;
	drop_lines(inv);
	return 0;
}

/* paid when nothing is left to pay, partially paid while something is paid,
 * issued when nothing is (net). */
static void settle(WrInvoice *inv)
{
	if (inv->paid_cents >= inv->total_cents)
		inv->status = WR_INVOICE_PAID;
	else if (inv->paid_cents > 0)
		inv->status = WR_INVOICE_PARTIALLY_PAID;
	else
		inv->status = WR_INVOICE_ISSUED;
}

static int apply_payment(WrTenant *t, WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *payment_id = vp_json_str(ev->data, "payment_id");
	const char *received_on = vp_json_str(ev->data, "received_on");
	int64_t amount = data_int(ev->data, "amount_cents");
	int32_t days;
	bool oom = false;
	if (inv->status != WR_INVOICE_ISSUED && inv->status != WR_INVOICE_PARTIALLY_PAID)
		return refuse(why, why_cap, ev, "invoice not open for payment");
	if (amount <= 0 || amount > wr_invoice_balance(inv))
		return refuse(why, why_cap, ev, "payment above the balance");
	if (!payment_id || wr_map_get(&t->invoice_payments, payment_id))
		return refuse(why, why_cap, ev, "payment id missing or taken");
	if (!received_on || vp_date_parse(received_on, strlen(received_on), &days) < 0 ||
	    days < inv->issued_on)
		return refuse(why, why_cap, ev, "received_on before the issue");
	if (grow((void **)&inv->payments, inv->n_payments, &inv->cap_payments,
		 sizeof(*inv->payments)) < 0)
		return -1;
	wr_map_put(&t->invoice_payments, payment_id, inv, &oom);
	if (oom)
		return -1;
	WrPayment *p = &inv->payments[inv->n_payments++];
	copy_str(p->id, sizeof(p->id), payment_id);
	p->amount_cents = amount;
	p->refunded_cents = 0;
	inv->paid_cents += amount;
	settle(inv);
	return 0;
}

static int apply_refund(WrTenant *t, WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	const char *refund_id = vp_json_str(ev->data, "refund_id");
	WrPayment *p = (WrPayment *)wr_invoice_payment(inv, vp_json_str(ev->data, "payment_id"));
	int64_t amount = data_int(ev->data, "amount_cents");
	bool oom = false;
	if (!p || amount <= 0 || amount > p->amount_cents - p->refunded_cents)
		return refuse(why, why_cap, ev, "unknown payment, or a refund above what is left");
	if (!refund_id || wr_map_get(&t->invoice_refunds, refund_id))
		return refuse(why, why_cap, ev, "refund id missing or taken");
	wr_map_put(&t->invoice_refunds, refund_id, inv, &oom);
	if (oom)
		return -1;
	p->refunded_cents += amount;
	inv->paid_cents -= amount;
	if (inv->status != WR_INVOICE_VOID)
		settle(inv);
	return 0;
}

static int apply_voided(WrTenant *t, WrInvoice *inv, const VpEvent *ev, char *why, size_t why_cap)
{
	bool unpaid_issue = inv->status == WR_INVOICE_ISSUED && inv->paid_cents == 0;
	if (inv->status != WR_INVOICE_DRAFT && !unpaid_issue)
		return refuse(why, why_cap, ev,
			      "only a draft or an unpaid issued invoice is voided");
	inv->status = WR_INVOICE_VOID;
	if (inv->appointment_id[0] &&
	    wr_map_get(&t->appointment_invoices, inv->appointment_id) == inv)
		wr_map_remove(&t->appointment_invoices, inv->appointment_id);
	drop_lines(inv);
	return 0;
}

int wr_invoice_apply(WrTenant *t, const VpEvent *ev, char *why, size_t why_cap)
{
	int rc;
	if (!strcmp(ev->type, VP_EV_INVOICE_CREATED)) {
		rc = apply_created(t, ev, why, why_cap);
		WrInvoice *inv = rc == 0 ? wr_map_get(&t->invoices, ev->aggregate_id) : NULL;
		if (inv)
			inv->version = ev->seq;
		return rc;
	}
	WrInvoice *inv = wr_map_get(&t->invoices, ev->aggregate_id);
	if (!inv) {
		snprintf(why, why_cap, "%s for unknown invoice %s", ev->type, ev->aggregate_id);
		return -1;
	}
	if (!strcmp(ev->type, VP_EV_INVOICE_LINE_ADDED))
		rc = apply_line_added(inv, ev, why, why_cap);
	else if (!strcmp(ev->type, VP_EV_INVOICE_LINE_REMOVED))
		rc = apply_line_removed(inv, ev, why, why_cap);
	else if (!strcmp(ev->type, VP_EV_INVOICE_ISSUED))
		rc = apply_issued(t, inv, ev, why, why_cap);
	else if (!strcmp(ev->type, VP_EV_PAYMENT_RECORDED))
		rc = apply_payment(t, inv, ev, why, why_cap);
	else if (!strcmp(ev->type, VP_EV_PAYMENT_REFUNDED))
		rc = apply_refund(t, inv, ev, why, why_cap);
	else if (!strcmp(ev->type, VP_EV_INVOICE_VOIDED))
		rc = apply_voided(t, inv, ev, why, why_cap);
	else
		rc = refuse(why, why_cap, ev, "not an invoice event");
	if (rc < 0)
		return -1;
	inv->version = ev->seq;
	return 0;
}
