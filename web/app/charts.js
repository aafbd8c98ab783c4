// Daily appointment statistics and monthly revenue, drawn with Chart.js
// (Debian's libjs-chart.js, /app/vendor/chart.min.js). Each chart is made once
// and then only given new data; a caption says the totals in words.
import { get, explain } from "./api.js";
import { byId, setStatus } from "./dom.js";
import { localDate, addDays, addMonths } from "./time.js";
import { setCurrency, formatCents } from "./money.js";

const charts = {};

function draw(id, type, labels, datasets, options) {
  if (!window.Chart) return; // the caption still says it
  if (charts[id]) {
    charts[id].data.labels = labels;
    charts[id].data.datasets = datasets;
    charts[id].update();
    return;
  }
  charts[id] = new window.Chart(byId(id), {
    type,
    data: { labels, datasets },
    options: { responsive: true, maintainAspectRatio: false, animation: false, ...options },
  });
}

export async function loadStats(position) {
  const today = localDate(new Date());
  try {
    const answer = await get("/v1/stats/appointments/daily", {
      from: addDays(today, -7), to: addDays(today, 7), consistent_with: position,
    });
    const labels = answer.data.map((d) => d.date.slice(5));
    draw("stats-chart", "bar", labels, [
      { label: "booked", data: answer.data.map((d) => d.total - d.completed - d.canceled - d.no_show), backgroundColor: "#1f6feb" },
      { label: "completed", data: answer.data.map((d) => d.completed), backgroundColor: "#1a7f37" },
      { label: "canceled / no-show", data: answer.data.map((d) => d.canceled + d.no_show), backgroundColor: "#b42318" },
    ], { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } });
    const total = answer.data.reduce((n, d) => n + d.total, 0);
    setStatus("stats-status", total + " appointment(s) from " + answer.from + " to " + answer.to);
  } catch (e) {
    setStatus("stats-status", explain(e), true);
  }
}

export async function loadRevenue(position) {
  const today = localDate(new Date());
  try {
    const answer = await get("/v1/stats/revenue/monthly", {
      from: addMonths(today, -11), to: addMonths(today, 0), consistent_with: position,
    });
    setCurrency(answer.currency, answer.currency_exponent);
    const scale = Math.pow(10, answer.currency_exponent == null ? 2 : answer.currency_exponent);
    const money = formatCents;
    byId("revenue-currency").textContent = answer.currency || "";
    draw("revenue-chart", "bar", answer.data.map((m) => m.month), [
      { label: "invoiced", data: answer.data.map((m) => m.invoiced_cents / scale), backgroundColor: "#1f6feb" },
      { label: "paid", data: answer.data.map((m) => m.paid_cents / scale), backgroundColor: "#1a7f37" },
    ], { scales: { y: { beginAtZero: true, ticks: { callback: (v) => money(v * scale) } } } });
    const invoiced = answer.data.reduce((n, m) => n + m.invoiced_cents, 0);
    const paid = answer.data.reduce((n, m) => n + m.paid_cents, 0);
    setStatus("revenue-status", answer.data.length
      ? "Last 12 months: invoiced " + money(invoiced) + ", paid " + money(paid)
      : "No invoices in the last 12 months.");
  } catch (e) {
    setStatus("revenue-status", explain(e), true);
  }
}
