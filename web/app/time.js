// Dates in the clinic's timezone (the tenant's, as the API reports it): the
// dashboard's "today" and the day's end are the clinic's, not the browser's.

let zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function setZone(tz) {
  if (tz) zone = tz;
}

export function getZone() {
  return zone;
}

// YYYY-MM-DD of an instant in the clinic's timezone.
export function localDate(instant) {
  return new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
  }).format(instant);
}

// "14:05" of an instant in the clinic's timezone.
export function localTime(instant) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hour: "2-digit", minute: "2-digit",
  }).format(new Date(instant));
}

export function localDateTime(instant) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  }).format(new Date(instant));
}

// Milliseconds the clinic's clock is ahead of UTC at an instant.
function offsetAt(ms) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  }).formatToParts(new Date(ms))) parts[p.type] = Number(p.value);
  const asUtc = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

// The instant local midnight starts a clinic date (YYYY-MM-DD).
export function startOfLocalDate(date) {
  const [y, m, d] = date.split("-").map(Number);
  const guess = Date.UTC(y, m - 1, d);
  let instant = guess - offsetAt(guess);
  instant = guess - offsetAt(instant); // once more across a DST change
  return new Date(instant);
}

// YYYY-MM-DD plus n days (calendar arithmetic, no timezone involved).
export function addDays(date, n) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

// YYYY-MM of a date plus n months.
export function addMonths(date, n) {
  const [y, m] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1 + n, 1)).toISOString().slice(0, 7);
}
