// Amounts in the tenant's currency. The monthly revenue answer names the
// currency and its exponent; until it has arrived, amounts show as plain
// numbers with two places.

let currency = null;
let exponent = 2;

export function setCurrency(code, exp) {
  currency = code || null;
  exponent = exp == null ? 2 : exp;
}

export function formatCents(cents) {
  const value = cents / Math.pow(10, exponent);
  if (!currency) return value.toFixed(exponent);
  return new Intl.NumberFormat("en-GB", { style: "currency", currency }).format(value);
}
