/* Unit tests of common/vp_money.c: DOMAIN.md § Billing's line arithmetic,
 * half to even at every .5, and invoice numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vp_money.h"

static void halves_round_to_even(void **state)
{
	(void)state;
	assert_int_equal(vp_mul_div_half_even(5, 1, 10), 0);   /* 0.5 -> 0 */
	assert_int_equal(vp_mul_div_half_even(15, 1, 10), 2);  /* 1.5 -> 2 */
	assert_int_equal(vp_mul_div_half_even(25, 1, 10), 2);  /* 2.5 -> 2 */
	assert_int_equal(vp_mul_div_half_even(26, 1, 10), 3);  /* 2.6 -> 3 */
	assert_int_equal(vp_mul_div_half_even(24, 1, 10), 2);  /* 2.4 -> 2 */
	assert_int_equal(vp_mul_div_half_even(-25, 1, 10), -2);
	assert_int_equal(vp_mul_div_half_even(-35, 1, 10), -4);
	/* no overflow at the bounds: 1,000,000 units at 100,000,000 cents */
	assert_int_equal(vp_mul_div_half_even(VP_MAX_LINE_QUANTITY_MILLI, VP_MAX_UNIT_PRICE_CENTS,
					      1000),
			 100000000000000LL);
}

static void line_amounts(void **state)
{
	VpLineAmounts a;
	(void)state;
	/* net 0.5 x 1 cent = 0.5 -> 0 */
	vp_line_amounts(500, 1, 0, 0, &a);
	assert_int_equal(a.net_cents, 0);
	/* net 1.5 x 1 = 1.5 -> 2; discount 50 % of 2 = 1; tax 50 % of 1 = 0.5 -> 0 */
	vp_line_amounts(1500, 1, 5000, 5000, &a);
	assert_int_equal(a.net_cents, 2);
	assert_int_equal(a.discount_cents, 1);
	assert_int_equal(a.tax_cents, 0);
	assert_int_equal(a.line_total_cents, 1);
	/* 3 decimals: 0.125 x 1999 = 249.875 -> 250; 12.5 % of 250 = 31.25 -> 31;
	 * 20 % of 219 = 43.8 -> 44; 263 */
	vp_line_amounts(125, 1999, 1250, 2000, &a);
	assert_int_equal(a.net_cents, 250);
	assert_int_equal(a.discount_cents, 31);
	assert_int_equal(a.tax_cents, 44);
	assert_int_equal(a.line_total_cents, 263);
	/* tax at .5 odd: net 3, 50 % tax = 1.5 -> 2 */
	vp_line_amounts(1000, 3, 0, 5000, &a);
	assert_int_equal(a.tax_cents, 2);
	assert_int_equal(a.line_total_cents, 5);
	/* a 100 % discount leaves nothing to tax */
	vp_line_amounts(2000, 1000, 10000, 2000, &a);
	assert_int_equal(a.discount_cents, 2000);
	assert_int_equal(a.tax_cents, 0);
	assert_int_equal(a.line_total_cents, 0);
}

static void invoice_numbers(void **state)
{
	char n[VP_INVOICE_NUMBER_CAP];
	(void)state;
	vp_invoice_number(1, n, sizeof(n));
	assert_string_equal(n, "INV-000001");
	vp_invoice_number(999999, n, sizeof(n));
	assert_string_equal(n, "INV-999999");
	vp_invoice_number(1000000, n, sizeof(n));
	assert_string_equal(n, "INV-1000000");
	assert_int_equal(vp_invoice_number_seq("INV-000001"), 1);
	assert_int_equal(vp_invoice_number_seq("INV-1000000"), 1000000);
	assert_int_equal(vp_invoice_number_seq("INV-0000001"), -1);
	assert_int_equal(vp_invoice_number_seq("INV-000000"), -1);
	assert_int_equal(vp_invoice_number_seq("INV-00001"), -1);
	assert_int_equal(vp_invoice_number_seq("INV-00000a"), -1);
	assert_int_equal(vp_invoice_number_seq("inv-000001"), -1);
}

static void currency_exponents(void **state)
{
	(void)state;
	assert_int_equal(vp_currency_exponent("JPY"), 0);
	assert_int_equal(vp_currency_exponent("GBP"), 2);
	assert_int_equal(vp_currency_exponent("BHD"), 3);
	assert_int_equal(vp_currency_exponent("XYZ"), 2);
	char json[1024];
	assert_true(vp_currency_exponents_json(json, sizeof(json)) > 0);
	assert_non_null(strstr(json, "\"JPY\":0"));
	assert_non_null(strstr(json, "\"BHD\":3"));
	assert_int_equal(json[0], '{');
	assert_int_equal(json[strlen(json) - 1], '}');
	assert_int_equal(vp_currency_exponents_json(json, 8), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(halves_round_to_even),
		cmocka_unit_test(line_amounts),
		cmocka_unit_test(invoice_numbers),
		cmocka_unit_test(currency_exponents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
