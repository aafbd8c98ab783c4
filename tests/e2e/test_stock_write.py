"""Stock on cmd-writer, end to end on the real Kafka of the test stack: every
rule and code of DOMAIN.md § Stock as the HTTP answer and as what the log holds
(a refusal appends nothing): items and their unique code, receipts into
batches (expiry against the clinic's local date, BATCH_CONFLICT), FEFO with
ties and batches without expiry, prescriptions and their limit, witnesses of
controlled items, adjustments, prescriptions naming items (ITEM_INACTIVE,
LICENSE_REQUIRED); 30 concurrent dispenses of the last 10 units; and, last
since it restarts the writer, an expired batch (received by an "older writer"
straight into the log) that FEFO never picks, in a zone whose date differs
from UTC's right now."""

import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import pytest

import events as ev
from kafka_log import events as log_events
from stack import ROOT, free_port
from test_records_write import Client, code, fields

TENANTS = set()


def local_today(tz):
    return datetime.now(ZoneInfo(tz)).date()


def boundary_zone():
    """A zone whose local date differs from UTC's now: Kiritimati (UTC+14) is a
    day ahead from 10:00 UTC, Pago Pago (UTC-11) a day behind until 11:00 UTC."""
    utc = datetime.now(timezone.utc).date()
    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        if local_today(tz) != utc:
            return tz
    return "Pacific/Kiritimati"


class Clinic:
    """A tenant with an admin, a licensed and an unlicensed vet, a nurse and a
    receptionist (each a staff member whose id is their token's sub), a client,
    a patient and an open record."""

    def __init__(self, stack, url, tz="Pacific/Auckland"):
        self.url, self.stack, self.tz = url, stack, tz
        pa = Client(url, stack.token("platform-admin"))
        r = pa.post("/v1/tenants", {"name": "Stock", "timezone": tz, "currency": "NZD"})
        assert r.status_code == 201, r.text
        self.tid = r.json()["id"]
        TENANTS.add(self.tid)
        self.admin = self.as_("admin")
        self.vet_id = self.staff("veterinarian", license_number="VET-123")
        self.vet = self.as_("vet", sub=self.vet_id)
        self.unlicensed_id = self.staff("veterinarian")
        self.unlicensed = self.as_("vet", sub=self.unlicensed_id)
        self.nurse_id = self.staff("nurse")
        self.nurse = self.as_("nurse", sub=self.nurse_id)
        self.reception_id = self.staff("receptionist")
        reception = self.as_("reception")
        r = reception.post("/v1/clients", {"first_name": "Ann", "last_name": "Lee"})
        assert r.status_code == 201, r.text
        r = reception.post("/v1/patients", {"client_id": r.json()["id"], "name": "Rex",
                                            "species": "canine", "sex": "male"})
        assert r.status_code == 201, r.text
        self.patient_id = r.json()["id"]
        r = self.vet.post("/v1/medical-records", {"patient_id": self.patient_id,
                                                  "record_type": "consultation"})
        assert r.status_code == 201, r.text
        self.record_id = r.json()["id"]

    def as_(self, role, sub=None):
        return Client(self.url, self.stack.token(role, tenant=self.tid, sub=sub or f"u-{role}"))

    def staff(self, role, **extra):
        r = self.admin.post("/v1/staff", {"name": "X", "role": role, **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def item(self, code_=None, **extra):
        body = {"code": code_ or f"C-{uuid.uuid4().hex[:8]}", "name": "Thing",
                "category": "medication", "unit": "tablet", **extra}
        r = self.admin.post("/v1/inventory/items", body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def receive(self, item, batch, quantity, expiry=None, **extra):
        body = {"batch_number": batch, "quantity": quantity, **extra}
        if expiry:
            body["expiry_date"] = str(expiry)
        r = self.admin.post(f"/v1/inventory/items/{item}/receipts", body)
        assert r.status_code == 200, r.text
        return r

    def prescribe(self, item, quantity, refills=0, vet=None):
        r = (vet or self.vet).post(f"/v1/medical-records/{self.record_id}/prescriptions", {
            "medication": "M", "dosage": "1", "frequency": "daily", "route": "oral",
            "quantity": quantity, "refills": refills, "item_id": item})
        return r

    def events(self, aggregate_id=None):
        return [e for e in log_events(self.stack.brokers) if e["tenant_id"] == self.tid
                and (aggregate_id is None or e["aggregate_id"] == aggregate_id)]


@pytest.fixture(scope="module")
def writer(stack):
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    yield w
    w.terminate()


@pytest.fixture
def clinic(stack, writer):
    return Clinic(stack, writer.url)


def refused(response, status, code_, field=None):
    assert response.status_code == status, response.text
    assert code(response) == code_, response.text
    if field:
        assert field in fields(response), response.text


def allocations(event):
    return [(a["batch_number"], a["quantity_milli"]) for a in event["data"]["allocations"]]


def last_dispense(clinic, item):
    return [e for e in clinic.events(item) if e["type"] == "StockDispensed"][-1]


# --- items -------------------------------------------------------------------------

def test_items_codes_updates_and_deactivation(clinic):
    it = clinic.item("AMOX-250", reorder_point=2.5, reorder_quantity=100)
    created = clinic.events(it)[0]
    assert created["type"] == "InventoryItemCreated"
    assert created["data"]["reorder_point_milli"] == 2500
    assert created["data"]["controlled"] is False
    assert created["data"]["requires_prescription"] is False
    a = clinic.admin
    body = {"code": "AMOX-250", "name": "x", "category": "food", "unit": "bag"}
    refused(a.post("/v1/inventory/items", body), 409, "DUPLICATE_ITEM_CODE")
    body["code"] = "OTHER"
    refused(a.post("/v1/inventory/items", {**body, "reorder_point": 1.0005}), 400,
            "VALIDATION_ERROR", "reorder_point")
    refused(clinic.nurse.post("/v1/inventory/items", body), 403, "FORBIDDEN")
    path = f"/v1/inventory/items/{it}"
    refused(a.patch(path, {"code": "NEW"}), 400, "VALIDATION_ERROR", "code")
    refused(a.patch(path, {"controlled": True}), 400, "VALIDATION_ERROR", "controlled")
    r = a.patch(path, {"name": "Amoxicillin 250", "requires_prescription": True})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert clinic.events(it)[-1]["data"] == {"name": "Amoxicillin 250",
                                             "requires_prescription": True}
    refused(a.patch(f"/v1/inventory/items/{uuid.uuid4()}", {"name": "x"}), 404, "NOT_FOUND")
    assert a.post(f"{path}/deactivate", {"reason": "gone"}).status_code == 200
    refused(a.post(f"{path}/deactivate", {}), 409, "INVALID_STATE")
    refused(a.post(f"{path}/receipts", {"batch_number": "B", "quantity": 1}), 409,
            "ITEM_INACTIVE")
    refused(clinic.nurse.post(f"{path}/dispenses", {"quantity": 1}), 409, "ITEM_INACTIVE")
    assert len(clinic.events(it)) == 3


# --- receipts ----------------------------------------------------------------------

def test_receipts_batches_and_conflicts(clinic):
    it = clinic.item()
    today = local_today(clinic.tz)
    path = f"/v1/inventory/items/{it}/receipts"
    a = clinic.admin
    refused(a.post(path, {"batch_number": "B1", "quantity": 1,
                          "expiry_date": str(today - timedelta(days=1))}),
            400, "VALIDATION_ERROR", "expiry_date")
    refused(a.post(path, {"batch_number": "B1", "quantity": 0}), 400, "VALIDATION_ERROR",
            "quantity")
    refused(a.post(path, {"batch_number": "B1", "quantity": 1.0001}), 400, "VALIDATION_ERROR",
            "quantity")
    refused(a.post(path, {"batch_number": "x" * 51, "quantity": 1}), 400, "VALIDATION_ERROR",
            "batch_number")
    refused(clinic.vet.post(path, {"batch_number": "B1", "quantity": 1}), 403, "FORBIDDEN")
    clinic.receive(it, "B1", 10.5, today, lot_number="L-1", unit_cost_cents=120,
                   supplier_invoice="S-9")
    r = clinic.nurse.post(path, {"batch_number": "B1", "quantity": 0.5,
                                 "expiry_date": str(today)})
    assert r.status_code == 200, r.text
    refused(a.post(path, {"batch_number": "B1", "quantity": 1,
                          "expiry_date": str(today + timedelta(days=1))}), 409, "BATCH_CONFLICT")
    refused(a.post(path, {"batch_number": "B1", "quantity": 1}), 409, "BATCH_CONFLICT")
    received = [e["data"] for e in clinic.events(it) if e["type"] == "StockReceived"]
    assert [d["quantity_milli"] for d in received] == [10500, 500]
    assert received[0] == {"batch_number": "B1", "lot_number": "L-1",
                           "expiry_date": str(today), "quantity_milli": 10500,
                           "unit_cost_cents": 120, "supplier_invoice": "S-9"}
    # the batch now holds 11: a dispense of 11 takes it all, one more is short
    n = clinic.nurse
    assert n.post(f"/v1/inventory/items/{it}/dispenses", {"quantity": 11}).status_code == 200
    refused(n.post(f"/v1/inventory/items/{it}/dispenses", {"quantity": 0.001}), 409,
            "INSUFFICIENT_STOCK")


# --- dispensing --------------------------------------------------------------------

def test_fefo_order_ties_and_batches_without_expiry(clinic):
    it = clinic.item()
    today = local_today(clinic.tz)
    clinic.receive(it, "LATE-1", 1, today + timedelta(days=30))
    clinic.receive(it, "NONE", 5)
    clinic.receive(it, "EARLY", 1, today + timedelta(days=10))
    clinic.receive(it, "LATE-2", 1, today + timedelta(days=30))
    clinic.receive(it, "TODAY", 2, today)
    path = f"/v1/inventory/items/{it}/dispenses"
    n = clinic.nurse
    assert n.post(path, {"quantity": 1.5}).status_code == 200
    assert allocations(last_dispense(clinic, it)) == [("TODAY", 1500)]
    r = n.post(path, {"quantity": 4.5})
    assert r.status_code == 200, r.text
    assert allocations(last_dispense(clinic, it)) == [
        ("TODAY", 500), ("EARLY", 1000), ("LATE-1", 1000), ("LATE-2", 1000), ("NONE", 1000)]
    refused(n.post(path, {"quantity": 1, "batch_number": "EARLY"}), 409, "INSUFFICIENT_STOCK")
    refused(n.post(path, {"quantity": 1, "batch_number": "NOPE"}), 404, "NOT_FOUND")
    refused(n.post(path, {"quantity": 4.001}), 409, "INSUFFICIENT_STOCK")
    refused(n.post(path, {"quantity": 0.0001}), 400, "VALIDATION_ERROR", "quantity")
    refused(clinic.admin.post(path, {"quantity": 1}), 403, "FORBIDDEN")
    assert n.post(path, {"quantity": 1, "batch_number": "NONE"}).status_code == 200
    assert allocations(last_dispense(clinic, it)) == [("NONE", 1000)]
    before = len(clinic.events(it))
    refused(n.post(path, {"quantity": 3.5}), 409, "INSUFFICIENT_STOCK")
    assert len(clinic.events(it)) == before


def test_prescriptions_gate_and_limit_dispenses(clinic):
    it = clinic.item(requires_prescription=True)
    other = clinic.item()
    clinic.receive(it, "R", 100)
    clinic.receive(other, "O", 100)
    r = clinic.prescribe(it, 10, refills=1)
    assert r.status_code == 200, r.text
    rx = [e for e in clinic.events(clinic.record_id)
          if e["type"] == "MedicationPrescribed"][-1]["data"]
    assert rx["item_id"] == it and rx["quantity_milli"] == 10000
    path = f"/v1/inventory/items/{it}/dispenses"
    n = clinic.nurse
    refused(n.post(path, {"quantity": 1}), 409, "PRESCRIPTION_REQUIRED")
    refused(n.post(path, {"quantity": 1, "prescription_id": str(uuid.uuid4())}), 404,
            "NOT_FOUND")
    refused(n.post(f"/v1/inventory/items/{other}/dispenses",
                   {"quantity": 1, "prescription_id": rx["prescription_id"]}),
            400, "VALIDATION_ERROR", "prescription_id")
    assert n.post(path, {"quantity": 15, "prescription_id": rx["prescription_id"]}).status_code == 200
    assert last_dispense(clinic, it)["data"]["patient_id"] == clinic.patient_id
    refused(n.post(path, {"quantity": 5.001, "prescription_id": rx["prescription_id"]}), 409,
            "PRESCRIPTION_EXHAUSTED")
    assert n.post(path, {"quantity": 5, "prescription_id": rx["prescription_id"]}).status_code == 200
    refused(n.post(path, {"quantity": 0.001, "prescription_id": rx["prescription_id"]}), 409,
            "PRESCRIPTION_EXHAUSTED")


def test_controlled_items_witnesses_and_licenses(clinic):
    cd = clinic.item(controlled=True, requires_prescription=True)
    clinic.receive(cd, "M1", 50)
    refused(clinic.prescribe(cd, 5, vet=clinic.unlicensed), 409, "LICENSE_REQUIRED")
    r = clinic.prescribe(cd, 5)
    assert r.status_code == 200, r.text
    rx = [e for e in clinic.events(clinic.record_id)
          if e["type"] == "MedicationPrescribed"][-1]["data"]["prescription_id"]
    path = f"/v1/inventory/items/{cd}/dispenses"
    body = {"quantity": 1, "prescription_id": rx}
    v = clinic.vet
    refused(v.post(path, body), 409, "WITNESS_REQUIRED")
    refused(v.post(path, {**body, "witness_id": clinic.vet_id}), 409, "WITNESS_REQUIRED")
    refused(v.post(path, {**body, "witness_id": clinic.reception_id}), 409, "WITNESS_REQUIRED")
    refused(v.post(path, {**body, "witness_id": str(uuid.uuid4())}), 404, "NOT_FOUND")
    r = v.post(path, {**body, "witness_id": clinic.nurse_id})
    assert r.status_code == 200, r.text
    data = last_dispense(clinic, cd)["data"]
    assert data["witness_id"] == clinic.nurse_id and data["prescription_id"] == rx
    adj = f"/v1/inventory/items/{cd}/adjustments"
    a = clinic.admin
    refused(a.post(adj, {"batch_number": "M1", "reason": "damage", "delta": -1}), 409,
            "WITNESS_REQUIRED")
    assert a.post(adj, {"batch_number": "M1", "reason": "damage", "delta": -1,
                        "witness_id": clinic.nurse_id}).status_code == 200
    assert a.post(adj, {"batch_number": "M1", "reason": "returned", "delta": 2}).status_code == 200
    # an inactive item cannot be prescribed
    assert a.post(f"/v1/inventory/items/{cd}/deactivate", {}).status_code == 200
    refused(clinic.prescribe(cd, 1), 409, "ITEM_INACTIVE")
    refused(clinic.prescribe(str(uuid.uuid4()), 1), 404, "NOT_FOUND")


def test_adjustments(clinic):
    it = clinic.item()
    clinic.receive(it, "B", 10)
    path = f"/v1/inventory/items/{it}/adjustments"
    a = clinic.admin
    refused(a.post(path, {"batch_number": "B", "reason": "count"}), 400, "VALIDATION_ERROR",
            "counted_quantity")
    refused(a.post(path, {"batch_number": "B", "reason": "lost"}), 400, "VALIDATION_ERROR",
            "delta")
    refused(a.post(path, {"batch_number": "B", "reason": "theft", "delta": 1}), 400,
            "VALIDATION_ERROR", "reason")
    refused(a.post(path, {"batch_number": "X", "reason": "lost", "delta": -1}), 404, "NOT_FOUND")
    refused(clinic.nurse.post(path, {"batch_number": "B", "reason": "lost", "delta": -1}), 403,
            "FORBIDDEN")
    assert a.post(path, {"batch_number": "B", "reason": "count",
                         "counted_quantity": 7.25}).status_code == 200
    assert clinic.events(it)[-1]["data"] == {"batch_number": "B", "delta_milli": -2750,
                                             "reason": "count", "witness_id": None}
    refused(a.post(path, {"batch_number": "B", "reason": "lost", "delta": -7.251}), 409,
            "INSUFFICIENT_STOCK")
    assert a.post(path, {"batch_number": "B", "reason": "lost", "delta": -7.25}).status_code == 200


def test_thirty_concurrent_dispenses_of_the_last_ten_units(clinic):
    it = clinic.item()
    clinic.receive(it, "A", 6)
    clinic.receive(it, "B", 4)
    path = f"/v1/inventory/items/{it}/dispenses"
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda _: clinic.nurse.post(path, {"quantity": 1}), range(30)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 10 + [409] * 20, [r.text for r in answers]
    assert {code(r) for r in answers if r.status_code == 409} == {"INSUFFICIENT_STOCK"}
    dispensed = [e for e in clinic.events(it) if e["type"] == "StockDispensed"]
    assert len(dispensed) == 10
    taken = {}
    for e in dispensed:
        for batch, q in allocations(e):
            taken[batch] = taken.get(batch, 0) + q
    assert taken == {"A": 6000, "B": 4000}


def test_every_stock_event_matches_its_json_schema(stack, writer):
    schemas, seen = {}, set()
    for e in log_events(stack.brokers):
        if e["tenant_id"] not in TENANTS:
            continue
        path = os.path.join(ROOT, "schema", "events", f"{e['type']}.v{e['v']}.json")
        if path not in schemas:
            with open(path) as f:
                schemas[path] = json.load(f)
        jsonschema.validate(e, schemas[path])
        seen.add(e["type"])
    assert {"InventoryItemCreated", "InventoryItemUpdated", "InventoryItemDeactivated",
            "StockReceived", "StockDispensed", "StockAdjusted"} <= seen


# --- expiry in the clinic's zone (last: it restarts the writer) --------------------

def test_an_expired_batch_is_never_dispensed_across_the_utc_date(stack, writer):
    """In a zone whose date is not UTC's, a batch that expired yesterday there
    (received into the log by an "older writer" while it was still good) is
    never chosen, and one that expires today there is, whatever UTC says."""
    tz = boundary_zone()
    clinic = Clinic(stack, writer.url, tz=tz)
    today = local_today(tz)
    utc_today = datetime.now(timezone.utc).date()
    it = clinic.item()
    # a receipt is judged by the clinic's date, not UTC's
    if today > utc_today:  # Kiritimati: UTC's today is already past here
        refused(clinic.admin.post(f"/v1/inventory/items/{it}/receipts", {
            "batch_number": "X", "quantity": 1, "expiry_date": str(utc_today)}),
            400, "VALIDATION_ERROR", "expiry_date")
    clinic.receive(it, "TODAY", 2, today)  # Pago Pago: UTC's yesterday, still good here
    clinic.receive(it, "LATER", 5, today + timedelta(days=5))
    producer = ev.EventProducer(stack.brokers)
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    producer.send(ev.envelope("StockReceived", clinic.tid, "inventory_item", it, 4, {
        "batch_number": "OLD", "lot_number": None, "expiry_date": str(today - timedelta(days=1)),
        "quantity_milli": 9000, "unit_cost_cents": None, "supplier_invoice": None},
        at=yesterday))
    producer.p.flush(30)
    assert not producer.errors and producer.delivered[0] is not None
    writer.terminate()
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    try:
        w2.wait_ready(90)
        for c in (clinic.nurse, clinic.admin):
            c.url = w2.url
        path = f"/v1/inventory/items/{it}/dispenses"
        refused(clinic.nurse.post(path, {"quantity": 1, "batch_number": "OLD"}), 409,
                "BATCH_EXPIRED")
        refused(clinic.nurse.post(path, {"quantity": 7.001}), 409, "INSUFFICIENT_STOCK")
        r = clinic.nurse.post(path, {"quantity": 3})
        assert r.status_code == 200 and r.json()["version"] == 5, r.text
        assert allocations(last_dispense(clinic, it)) == [("TODAY", 2000), ("LATER", 1000)]
        # the expired batch can still be written off
        r = clinic.admin.post(f"/v1/inventory/items/{it}/adjustments",
                              {"batch_number": "OLD", "reason": "expired", "delta": -9})
        assert r.status_code == 200, r.text
    finally:
        assert w2.terminate() == 0
