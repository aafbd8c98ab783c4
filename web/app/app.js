// The dashboard page: sign-in with a pasted token (kept in this tab's
// sessionStorage, sent only as the Authorization header of this origin's API),
// the panels, and the live updates that refresh them.
import { setToken, get, claimsOf, ApiError } from "./api.js";
import { byId } from "./dom.js";
import { openStream } from "./stream.js";
import { loadDashboard, loadSlots } from "./today.js";
import { loadStock } from "./stock.js";
import { loadStats, loadRevenue } from "./charts.js";
import { setupPatientSearch } from "./patients.js";

const STORAGE_KEY = "vetpms.token";
const REFRESH_DEBOUNCE_MS = 100; // a burst of events makes one refresh per panel

// Which panels an event type touches (the stream's event: line).
const PANELS_OF = [
  [/^Appointment/, ["dashboard", "slots", "stats"]],
  [/^Availability/, ["slots"]],
  [/^(Stock|InventoryItem)/, ["stock"]],
  [/^(Invoice|Payment)/, ["revenue"]],
  [/^(Patient|Client|Staff)/, ["dashboard"]], // names shown on the rows
];
const LOADERS = {
  dashboard: loadDashboard, slots: loadSlots, stock: loadStock, stats: loadStats, revenue: loadRevenue,
};

let stream = null;
const pending = new Map(); // panel -> {timer, position}

function refresh(panel, position) {
  const entry = pending.get(panel) || {};
  clearTimeout(entry.timer);
  entry.position = position;
  entry.timer = setTimeout(() => {
    pending.delete(panel);
    LOADERS[panel](entry.position);
  }, REFRESH_DEBOUNCE_MS);
  pending.set(panel, entry);
}

function onEvent(e) {
  // e.id is the event's position P:O: the refresh waits for the read model to
  // hold it (consistent_with), so the row is there when it is drawn.
  for (const [pattern, panels] of PANELS_OF)
    if (pattern.test(e.type)) panels.forEach((p) => refresh(p, e.id));
}

function setLive(state, why) {
  const node = byId("live");
  node.className = "live live-" + state;
  node.textContent = state === "on" ? "live" : state === "wait" ? "connecting…" : "offline";
  node.title = why || "";
}

function showSignIn(message) {
  if (stream) stream.stop();
  stream = null;
  sessionStorage.removeItem(STORAGE_KEY);
  setToken(null);
  byId("dashboard").hidden = true;
  byId("who").hidden = true;
  byId("sign-in").hidden = false;
  byId("sign-in-error").textContent = message || "";
}

function showDashboard(token) {
  const claims = claimsOf(token) || {};
  const roles = Array.isArray(claims.roles) ? claims.roles.join(", ") : claims.roles || claims.role || "";
  byId("who-text").textContent = (claims.sub || "signed in") + (roles ? " (" + roles + ")" : "");
  byId("sign-in").hidden = true;
  byId("who").hidden = false;
  byId("dashboard").hidden = false;
  // The dashboard's answer gives the clinic's timezone, which the other
  // panels' dates ("today", the week around it) are in: it goes first, or a
  // browser in another timezone asked for the browser's dates (a clinic in
  // Tokyo seen from a UTC browser after 21:00 UTC got a week a day short).
  loadDashboard().finally(() => {
    for (const [panel, load] of Object.entries(LOADERS)) if (panel !== "dashboard") load();
  });
  stream = openStream({
    headers: () => ({ Authorization: "Bearer " + token }),
    onEvent,
    onState: setLive,
    onRefused: (status) => { if (status === 401) showSignIn("The token is no longer accepted: sign in again."); },
  });
}

function start(token) {
  setToken(token, (why) => showSignIn("Signed out: " + why));
  showDashboard(token);
}

async function signIn(event) {
  event.preventDefault();
  const token = byId("token").value.trim();
  byId("sign-in-error").textContent = "";
  setToken(token, () => {});
  try {
    await get("/v1/staff", { limit: 1 }); // any tenant role may: is the token good?
  } catch (e) {
    const why = e instanceof ApiError && e.status === 401 ? "This token is not accepted: " + e.message
      : e instanceof ApiError && e.status === 403 ? "This token has no clinic (tenant) role: " + e.message
      : "Cannot reach the API: " + e.message;
    byId("sign-in-error").textContent = why;
    setToken(null);
    return;
  }
  sessionStorage.setItem(STORAGE_KEY, token);
  byId("token").value = "";
  start(token);
}

byId("sign-in-form").addEventListener("submit", signIn);
byId("sign-out").addEventListener("click", () => showSignIn(""));
setupPatientSearch();
const saved = sessionStorage.getItem(STORAGE_KEY);
if (saved) start(saved);
