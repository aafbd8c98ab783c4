/* Money arithmetic of DOMAIN.md § Billing: integer minor units (cents of the
 * tenant's currency), rounding half to even, the same code for the writer
 * (which puts every line's amounts in its event), the catalog's check of
 * those amounts and the unit tests. Pure functions. */
#ifndef VP_MONEY_H
#define VP_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* round(a × b / d) half to even, d > 0, computed in 128 bits; the caller
 * bounds its inputs so the result fits (every money field has a catalog max). */
int64_t vp_mul_div_half_even(int64_t a, int64_t b, int64_t d);

/* One invoice line (prices tax-exclusive):
 *   net      = round(quantity_milli × unit_price_cents / 1000)
 *   discount = round(net × discount_bp / 10000)
 *   tax      = round((net − discount) × tax_rate_bp / 10000)
 *   total    = net − discount + tax */
typedef struct VpLineAmounts {
	int64_t net_cents;
	int64_t discount_cents;
	int64_t tax_cents;
	int64_t line_total_cents;
} VpLineAmounts;
void vp_line_amounts(int64_t quantity_milli, int64_t unit_price_cents, int64_t discount_bp,
		     int64_t tax_rate_bp, VpLineAmounts *out);

/* Bounds of an invoice line (DOMAIN.md): quantity > 0 up to 1,000,000 with
 * three decimals, unit price 0 to 100,000,000, rates 0 to 10000 bp. */
#define VP_MAX_LINE_QUANTITY_MILLI 1000000000LL
#define VP_MAX_UNIT_PRICE_CENTS    100000000LL
/* Lines of one invoice: an issue appends its InvoiceIssued and one
 * StockDispensed per line with an item, in one transaction. */
#define VP_MAX_INVOICE_LINES 100

/* "INV-000001": the tenant's seq-th issued invoice, six digits at least,
 * wider past 999999. out holds at least VP_INVOICE_NUMBER_CAP bytes. */
#define VP_INVOICE_NUMBER_CAP 24
void vp_invoice_number(int64_t seq, char *out, size_t cap);
/* The seq of an invoice number vp_invoice_number writes, or -1 when text
 * is not one (no sign, no leading zeros past six digits, seq >= 1). */
int64_t vp_invoice_number_seq(const char *text);

/* The ISO 4217 minor unit exponent of a currency code (JPY 0, GBP 2, BHD 3);
 * 2 for a code the table does not list. */
int vp_currency_exponent(const char *code);
/* Every code whose exponent is not 2 as a JSON object ({"BHD":3,...}) into
 * out: the same table for SQL. The length, or -1 when cap is too small. */
int vp_currency_exponents_json(char *out, size_t cap);

#endif
