/* Money arithmetic (see vp_money.h). */
#include "vp_money.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int64_t vp_mul_div_half_even(int64_t a, int64_t b, int64_t d)
{
	__int128 n = (__int128)a * b;
	bool negative = n < 0;
	if (negative)
		n = -n;
	__int128 q = n / d, r = n % d;
	/* more than half, or exactly half with an odd quotient: up */
	if (2 * r > d || (2 * r == d && (q & 1)))
		q++;
	return (int64_t)(negative ? -q : q);
}

void vp_line_amounts(int64_t quantity_milli, int64_t unit_price_cents, int64_t discount_bp,
		     int64_t tax_rate_bp, VpLineAmounts *out)
{
	out->net_cents = vp_mul_div_half_even(quantity_milli, unit_price_cents, 1000);
	out->discount_cents = vp_mul_div_half_even(out->net_cents, discount_bp, 10000);
	out->tax_cents =
	    vp_mul_div_half_even(out->net_cents - out->discount_cents, tax_rate_bp, 10000);
	out->line_total_cents = out->net_cents - out->discount_cents + out->tax_cents;
}

void vp_invoice_number(int64_t seq, char *out, size_t cap)
{
	snprintf(out, cap, "INV-%06lld", (long long)seq);
}

int64_t vp_invoice_number_seq(const char *text)
{
	int64_t seq = 0;
	size_t n;
	if (!text || strncmp(text, "INV-", 4) != 0)
		return -1;
	text += 4;
	n = strlen(text);
	if (n < 6 || n > 18 || (n > 6 && text[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		seq = seq * 10 + (text[i] - '0');
	}
	return seq >= 1 ? seq : -1;
}

/* ISO 4217 codes whose minor unit is not 2 (the 2024 list); every other
 * code has cents. */
static const struct {
	const char code[4];
	int exponent;
} exponents[] = {
    {"BHD", 3}, {"BIF", 0}, {"CLF", 4}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"IQD", 3},
    {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0}, {"KWD", 3}, {"LYD", 3},
    {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0}, {"UYI", 0}, {"UYW", 4},
    {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0},
};

int vp_currency_exponent(const char *code)
{
	for (size_t i = 0; code && i < sizeof(exponents) / sizeof(exponents[0]); i++)
		if (!strcmp(exponents[i].code, code))
			return exponents[i].exponent;
	return 2;
}

int vp_currency_exponents_json(char *out, size_t cap)
{
	size_t used = 0;
	for (size_t i = 0; i < sizeof(exponents) / sizeof(exponents[0]); i++) {
		int n = snprintf(out + used, cap - used, "%s\"%s\":%d", i ? "," : "{",
				 exponents[i].code, exponents[i].exponent);
		if (n < 0 || (size_t)n >= cap - used)
			return -1;
		used += (size_t)n;
	}
	if (used + 2 > cap)
		return -1;
	out[used++] = '}';
	out[used] = '\0';
	return (int)used;
}
