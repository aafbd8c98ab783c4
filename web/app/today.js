// Today's appointment dashboard and every vet's free slots today.
import { get, explain } from "./api.js";
import { el, byId, clear, setStatus } from "./dom.js";
import { setZone, localDate, localTime, startOfLocalDate, addDays } from "./time.js";

const STATUS_TEXT = {
  scheduled: "scheduled", checked_in: "checked in", in_progress: "in progress",
  completed: "completed", no_show: "no-show", canceled: "canceled",
};

let shown = new Map(); // appointment id -> status last drawn (to flash what changed)

function name(x) {
  return x && x.name ? x.name : "—";
}

function row(a) {
  const badge = el("span", { class: "badge " + a.status }, STATUS_TEXT[a.status] || a.status);
  const patient = a.patient ? name(a.patient) + (a.patient.species ? " (" + a.patient.species + ")" : "") : "—";
  const tr = el("tr", { "data-id": a.id, "data-status": a.status },
    el("td", {}, localTime(a.start) + "–" + localTime(a.end)),
    el("td", {}, patient),
    el("td", {}, name(a.client)),
    el("td", {}, name(a.vet)),
    el("td", {}, (a.type || "").replace(/_/g, " ")),
    el("td", { class: "status-cell" }, badge));
  if (shown.size && shown.get(a.id) !== a.status) tr.classList.add("flash");
  return tr;
}

// Today's date in the clinic's timezone: the browser's guess first, then the
// one the answer's timezone gives (asked again when they differ).
let dashboardAsks = 0; // answers may arrive out of order: only the newest ask draws

export async function loadDashboard(position) {
  const extra = position ? { consistent_with: position } : {};
  const mine = ++dashboardAsks;
  try {
    let date = localDate(new Date());
    let answer = await get("/v1/dashboards/appointments", { date, ...extra });
    setZone(answer.timezone);
    if (localDate(new Date()) !== date) {
      date = localDate(new Date());
      answer = await get("/v1/dashboards/appointments", { date, ...extra });
    }
    if (mine !== dashboardAsks) return;
    byId("today-date").textContent = date;
    const body = byId("appointments").querySelector("tbody");
    const rows = answer.data.map(row);
    body.replaceChildren(...rows);
    shown = new Map(answer.data.map((a) => [a.id, a.status]));
    setStatus("today-status", answer.data.length ? answer.data.length + " appointment(s)" : "No appointments today.");
  } catch (e) {
    if (mine === dashboardAsks) setStatus("today-status", explain(e), true);
  }
}

let slotAsks = 0;

export async function loadSlots(position) {
  const mine = ++slotAsks;
  const now = new Date();
  const end = startOfLocalDate(addDays(localDate(now), 1));
  const box = byId("slots");
  try {
    const answer = await get("/v1/availability", {
      from: now.toISOString(), to: end.toISOString(), duration_minutes: 15,
      consistent_with: position,
    });
    if (mine !== slotAsks) return;
    const byVet = new Map();
    for (const s of answer.data) {
      if (!byVet.has(s.vet_name)) byVet.set(s.vet_name, []);
      byVet.get(s.vet_name).push(s);
    }
    clear(box);
    for (const [vet, slots] of byVet) {
      box.append(el("div", { class: "vet" }, el("strong", {}, vet),
        ...slots.map((s) => el("span", { class: "slot" }, localTime(s.start) + "–" + localTime(s.end)))));
    }
    setStatus("slots-status", byVet.size ? "" : "No free slots left today.");
  } catch (e) {
    if (mine === slotAsks) setStatus("slots-status", explain(e), true);
  }
}
