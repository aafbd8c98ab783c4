// The patient search box and the chosen patient's timeline.
import { get, explain } from "./api.js";
import { el, byId, clear, setStatus } from "./dom.js";
import { localDateTime } from "./time.js";
import { formatCents } from "./money.js";

const DEBOUNCE_MS = 250;
let timer = null;
let asked = 0; // the newest search wins, whatever order the answers arrive in

function describe(item) {
  const vet = item.vet && typeof item.vet === "object" ? item.vet.name : item.vet;
  switch (item.kind) {
    case "appointment":
      return [(item.type || "").replace(/_/g, " "), vet ? "with " + vet : "", item.reason ? "— " + item.reason : "",
              "(" + (item.status || "").replace(/_/g, " ") + ")"].filter(Boolean).join(" ");
    case "medical_record":
      return [(item.record_type || "").replace(/_/g, " "), item.chief_complaint ? "— " + item.chief_complaint : "",
              item.primary_diagnosis ? "diagnosis: " + (item.primary_diagnosis.name || item.primary_diagnosis) : "",
              "(" + (item.status || "") + ")"].filter(Boolean).join(" ");
    case "weight":
      return item.weight_kg + " kg";
    case "allergy":
      return [item.allergen, item.reaction, item.severity].filter(Boolean).join(", ");
    case "vaccination":
      return [item.name, item.next_due_on ? "next due " + item.next_due_on : ""].filter(Boolean).join(", ");
    case "prescription":
      return [item.medication, item.dosage, item.frequency].filter(Boolean).join(", ");
    case "vitals":
      return [item.temperature_c != null ? item.temperature_c + " °C" : "",
              item.pulse_bpm != null ? item.pulse_bpm + " bpm" : "",
              item.weight_kg != null ? item.weight_kg + " kg" : ""].filter(Boolean).join(", ");
    case "invoice":
      return ["no. " + item.number, "total " + formatCents(item.total_cents),
              item.balance_cents ? "balance " + formatCents(item.balance_cents) : "paid"].join(", ") +
             " (" + (item.status || "").replace(/_/g, " ") + ")";
    default:
      return "";
  }
}

async function showTimeline(patient) {
  const title = byId("timeline-title");
  title.hidden = false;
  title.textContent = "Timeline of " + patient.name;
  const list = byId("timeline");
  clear(list);
  try {
    const answer = await get("/v1/patients/" + encodeURIComponent(patient.id) + "/timeline", { limit: 50 });
    list.replaceChildren(...(answer.data.length ? answer.data.map((item) =>
      el("li", { "data-kind": item.kind },
        el("span", { class: "when" }, localDateTime(item.at)), " ",
        el("span", { class: "kind" }, item.kind.replace(/_/g, " ")), " ",
        describe(item)))
      : [el("li", { class: "muted" }, "Nothing recorded yet.")]));
    setStatus("patients-status", "");
  } catch (e) {
    setStatus("patients-status", explain(e), true);
  }
}

async function search(text) {
  const mine = ++asked;
  const results = byId("patient-results");
  if (!text.trim()) {
    clear(results);
    setStatus("patients-status", "");
    return;
  }
  try {
    const answer = await get("/v1/patients", { search: text.trim(), limit: 10 });
    if (mine !== asked) return;
    results.replaceChildren(...answer.data.map((p) => {
      const owner = p.client ? p.client.first_name + " " + p.client.last_name : "";
      const button = el("button", { type: "button", "data-id": p.id },
        p.name + " (" + [p.species, p.breed].filter(Boolean).join(", ") + ")" + (owner ? " — " + owner : ""));
      button.addEventListener("click", () => showTimeline(p));
      return el("li", {}, button);
    }));
    setStatus("patients-status", answer.data.length ? "" : "No patient matches.");
  } catch (e) {
    if (mine === asked) setStatus("patients-status", explain(e), true);
  }
}

export function setupPatientSearch() {
  const input = byId("patient-search");
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => search(input.value), DEBOUNCE_MS);
  });
}
