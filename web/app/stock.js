// Low-stock items and batches that expire within 30 days.
import { get, explain } from "./api.js";
import { el, byId, setStatus } from "./dom.js";

function quantity(q, unit) {
  return String(q) + (unit ? " " + unit : "");
}

export async function loadStock(position) {
  try {
    const [low, expiring] = await Promise.all([
      get("/v1/inventory/items", { low_stock: "true", limit: 50, consistent_with: position }),
      get("/v1/inventory/expiring", { within_days: 30, limit: 50, consistent_with: position }),
    ]);
    byId("low-stock").replaceChildren(...(low.data.length ? low.data.map((i) =>
      el("li", { "data-id": i.id },
        el("span", { class: "warn" }, i.name),
        " — " + quantity(i.on_hand, i.unit) + " on hand (reorder at " + quantity(i.reorder_point, i.unit) + ")"))
      : [el("li", { class: "muted" }, "Nothing below its reorder point.")]));
    byId("expiring").replaceChildren(...(expiring.data.length ? expiring.data.map((b) =>
      el("li", { "data-id": b.batch_id },
        el("span", { class: b.expired ? "bad" : "warn" }, b.item.name),
        ", batch " + b.batch_number + ": " + quantity(b.remaining, b.item.unit) + ", " +
        (b.expired ? "expired " + b.expiry_date : "expires " + b.expiry_date + " (in " + b.days_left + " days)")))
      : [el("li", { class: "muted" }, "No batch expires within 30 days.")]));
    setStatus("stock-status", "");
  } catch (e) {
    setStatus("stock-status", explain(e), true);
  }
}
