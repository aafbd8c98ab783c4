"""Billing end to end: cmd-writer's HTTP API -> Kafka -> projector ->
PostgreSQL -> query-reader's answers, on the real stack of the test session.
Every rule and code of docs/billing.md (CLIENT_INACTIVE, 404s, ALREADY_EXISTS,
INVALID_STATE, PAYMENT_EXCEEDS_BALANCE, REFUND_EXCEEDS_PAYMENT, ITEM_INACTIVE,
PRESCRIPTION_REQUIRED, WITNESS_REQUIRED, INSUFFICIENT_STOCK with nothing
appended), the roles of each command and query, the 400s with their details;
half-even rounding of net, discount and tax, 3-decimal quantities, JPY (no
minor unit) and BHD (three) tenants; issue numbers, tenant-local dates in a
zone whose date is not UTC's, FEFO dispensing of stocked lines; 50 concurrent
issues (consecutive numbers, no gap), 20 concurrent payments (never above the
balance); refunds stepping the status back; the statement's running balance,
the client's balance and the monthly revenue against a recomputation from
GET /v1/events; then every invoice of the run recomputed from its lines in
Python (integer half-even) against the reader and the projector's tables, and
the read model against a rebuild by a second projector.

Reads are made consistent with the writer's answers (consistent_with = the
last position of the tenant: its events are all on one partition); no sleep."""

import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import jsonschema
import psycopg
import pytest
import requests
import yaml

from kafka_log import events as log_events
from stack import ROOT, free_port, wait_for
from readmodel import query

CLINICS = []   # every tenant of this module
INVOICES = []  # (clinic, invoice id) of every invoice created here
TOPIC = "vetpms.events"
MONTH = {"from": "2026-01", "to": "2026-12"}
CURRENCY_EXPONENT = {"GBP": 2, "NZD": 2, "EUR": 2, "USD": 2, "AUD": 2, "JPY": 0, "BHD": 3}


# --- arithmetic (DOMAIN.md § Billing) ------------------------------------------------

def rdiv(a, b):
    """a / b rounded half to even, integers (b > 0)."""
    q, r = divmod(a, b)
    if 2 * r > b or (2 * r == b and q % 2 == 1):
        q += 1
    return q


def line_amounts(quantity_milli, unit_price_cents, discount_bp, tax_rate_bp):
    net = rdiv(quantity_milli * unit_price_cents, 1000)
    discount = rdiv(net * discount_bp, 10000)
    tax = rdiv((net - discount) * tax_rate_bp, 10000)
    return net, discount, tax, net - discount + tax


def milli(number):
    """Thousandths of a JSON quantity (3 places), exactly."""
    return int(Decimal(repr(number)) * 1000)


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


SPEC_PATH = os.path.join(ROOT, "schema", "openapi.yaml")
_COMPONENTS = []


def check_schema(body, name):
    """body against components/schemas/<name> of schema/openapi.yaml."""
    if not _COMPONENTS:
        with open(SPEC_PATH, encoding="utf-8") as f:
            _COMPONENTS.append(yaml.safe_load(f)["components"])
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}",
                               "components": _COMPONENTS[0]},
                        cls=jsonschema.Draft202012Validator)


def local_date_of(at, tz):
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(ZoneInfo(tz)).date()


def code(r):
    return r.json()["error"]["code"]


def fields(r):
    return {d["field"] for d in r.json()["error"].get("details", [])}


def refused(r, status, code_, field=None):
    assert r.status_code == status, f"expected {status} {code_}, got {r.status_code}: {r.text}"
    assert code(r) == code_, r.text
    if field:
        assert field in fields(r), f"no detail on {field}: {r.text}"


# --- the stack ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port())
    reader = stack.start_daemon("query-reader", port=free_port(),
                                env={"VETPMS_CONSISTENCY_WAIT_MS": "30000"})
    writer = stack.start_daemon("cmd-writer", port=free_port())
    for d in (projector, reader, writer):
        d.wait_ready(90)
    yield projector, reader, writer
    for d in (writer, reader, projector):
        d.terminate()


class Clinic:
    """A tenant provisioned through the writer, with a vet and a nurse (staff
    whose ids are their tokens' sub), a client and a patient. `cmd` sends a
    command and keeps the tenant's last position; `read` asks the reader
    consistent with it. Every clinic and invoice is registered (class
    attributes, which another module's subclass replaces) for the checks of
    the whole run."""

    clinics = CLINICS
    all_invoices = INVOICES

    def __init__(self, stack, daemons, tz="Europe/London", currency="GBP", name="Billing"):
        self.stack = stack
        self.projector, self.reader, self.writer = daemons
        self.tz, self.currency = tz, currency
        self.lock = threading.Lock()
        self.pos = None
        self.tokens = {}
        self.appointment_slot = 0
        r = requests.post(self.writer.url + "/v1/tenants",
                          json={"name": name, "timezone": tz, "currency": currency},
                          headers={"Authorization": "Bearer " + stack.token("platform-admin")},
                          timeout=30)
        assert r.status_code == 201, r.text
        self.tid = r.json()["id"]
        self.note(r)
        self.clinics.append(self)
        self.vet_id = self.ok("admin", "POST", "/v1/staff",
                              {"name": "Dr Vet", "role": "veterinarian",
                               "license_number": "L-1"})["id"]
        self.nurse_id = self.ok("admin", "POST", "/v1/staff",
                                {"name": "Nina Nurse", "role": "nurse"})["id"]
        self.client_id = self.new_client("Ann", "Smith")
        self.patient_id = self.new_patient(self.client_id)

    # --- plumbing -------------------------------------------------------
    def token(self, role):
        if role not in self.tokens:
            sub = {"vet": self.__dict__.get("vet_id"),
                   "nurse": self.__dict__.get("nurse_id")}.get(role) or f"u-{role}"
            self.tokens[role] = self.stack.token(role, tenant=self.tid, sub=sub)
        return self.tokens[role]

    def note(self, r):
        """Keeps the highest position a 2xx answer names."""
        if 200 <= r.status_code < 300:
            pos = r.json().get("position")
            if pos:
                p, o = (int(x) for x in pos.split(":"))
                with self.lock:
                    if self.pos is None or o > int(self.pos.split(":")[1]):
                        self.pos = pos

    def cmd(self, role, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.token(role)}
        h.update(headers or {})
        r = requests.request(method, self.writer.url + path, json=body, headers=h, timeout=60)
        self.note(r)
        return r

    def ok(self, role, method, path, body=None, status=None):
        r = self.cmd(role, method, path, body)
        assert 200 <= r.status_code < 300, f"{method} {path} {body}: {r.status_code} {r.text}"
        if status:
            assert r.status_code == status, r.text
        return r.json()

    def get(self, path, role="admin", **params):
        if self.pos:
            params.setdefault("consistent_with", self.pos)
        return requests.get(self.reader.url + path, params=params,
                            headers={"Authorization": "Bearer " + self.token(role)}, timeout=60)

    def read(self, path, role="admin", **params):
        r = self.get(path, role, **params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def pages(self, path, role="admin", limit=200, **params):
        data, cursor = [], None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            body = self.read(path, role, limit=limit, **params, **extra)
            data += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return data

    def events(self, **filters):
        return self.pages("/v1/events", role="ops", **filters)

    def today(self):
        return local_today(self.tz)

    # --- domain helpers -------------------------------------------------
    def new_client(self, first="Bob", last="Jones"):
        return self.ok("reception", "POST", "/v1/clients",
                       {"first_name": first, "last_name": last})["id"]

    def new_patient(self, client):
        return self.ok("reception", "POST", "/v1/patients",
                       {"client_id": client, "name": "Rex", "species": "canine",
                        "sex": "male"})["id"]

    def appointment(self, patient=None):
        self.appointment_slot += 1
        start = (datetime.now(timezone.utc) + timedelta(days=2 + self.appointment_slot)).replace(
            hour=10, minute=0, second=0, microsecond=0)
        return self.ok("reception", "POST", "/v1/appointments",
                       {"patient_id": patient or self.patient_id, "vet_id": self.vet_id,
                        "type": "consultation", "start": start.isoformat(),
                        "end": (start + timedelta(minutes=30)).isoformat()})["id"]

    def item(self, **extra):
        body = {"code": f"C-{uuid.uuid4().hex[:10]}", "name": "Thing", "category": "medication",
                "unit": "tablet", **extra}
        return self.ok("admin", "POST", "/v1/inventory/items", body)["id"]

    def receive(self, item, batch, quantity, expiry=None):
        body = {"batch_number": batch, "quantity": quantity}
        if expiry:
            body["expiry_date"] = str(expiry)
        return self.ok("admin", "POST", f"/v1/inventory/items/{item}/receipts", body)

    def invoice(self, client=None, role="reception", **extra):
        answer = self.ok(role, "POST", "/v1/invoices",
                         {"client_id": client or self.client_id, **extra}, status=201)
        self.all_invoices.append((self, answer["id"]))
        return answer["id"]

    def line(self, inv, quantity=1, unit_price_cents=1000, role="reception", **extra):
        body = {"description": "Consultation", "quantity": quantity, **extra}
        if unit_price_cents is not None:
            body["unit_price_cents"] = unit_price_cents
        return self.ok(role, "POST", f"/v1/invoices/{inv}/lines", body)

    def issue(self, inv, **body):
        return self.ok("reception", "POST", f"/v1/invoices/{inv}/issue", body)

    def pay(self, inv, amount, method="card", **extra):
        return self.ok("reception", "POST", f"/v1/invoices/{inv}/payments",
                       {"amount_cents": amount, "method": method, **extra})

    def refund(self, inv, payment, amount, reason="goodwill"):
        return self.ok("admin", "POST", f"/v1/invoices/{inv}/payments/{payment}/refund",
                       {"amount_cents": amount, "reason": reason})

    def void(self, inv, reason="mistake"):
        return self.ok("admin", "POST", f"/v1/invoices/{inv}/void", {"reason": reason})

    def view(self, inv):
        return self.read(f"/v1/invoices/{inv}")

    def issued_invoice(self, total_cents, client=None):
        """A new invoice of one untaxed line of total_cents, issued."""
        inv = self.invoice(client)
        self.line(inv, 1, total_cents)
        self.issue(inv)
        return inv

    def harmless(self):
        """A command of the tenant that succeeds, so that a read consistent
        with its position has seen everything before it on the partition."""
        self.new_client("After", "Refusal")


@pytest.fixture(scope="module")
def clinic(stack, daemons):
    return Clinic(stack, daemons, tz="Europe/London", currency="GBP")


@pytest.fixture(scope="module")
def far(stack, daemons):
    """A clinic whose local date is not UTC's right now."""
    return Clinic(stack, daemons, tz=boundary_zone(), currency="USD", name="Far")


# --- CreateInvoice ---------------------------------------------------------------

def test_create_invoice_rules_and_the_draft_it_reads_as(clinic):
    c = clinic
    r = c.cmd("reception", "POST", "/v1/invoices", {"client_id": c.client_id})
    assert r.status_code == 201, r.text
    inv = r.json()["id"]
    c.all_invoices.append((c, inv))
    assert r.json()["events"] == ["InvoiceCreated"] and r.json()["version"] == 1
    assert r.headers["X-Consistency-Token"] == r.json()["position"]
    v = c.view(inv)
    assert v["id"] == inv and v["client_id"] == c.client_id and v["status"] == "draft"
    assert v["client_name"] == "Ann Smith" and v["appointment_id"] is None
    assert v["number"] is None and v["issued_on"] is None and v["due_on"] is None
    assert v["currency"] == "GBP" and v["currency_exponent"] == 2
    for k in ("net_cents", "discount_cents", "tax_cents", "total_cents", "paid_cents",
              "refunded_cents", "balance_cents", "line_count"):
        assert v[k] == 0, (k, v)
    assert v["lines"] == [] and v["payments"] == [] and v["version"] == 1
    assert v["overdue"] is False and v["paid_on"] is None and v["void_reason"] is None

    # 404s and validation
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": str(uuid.uuid4())}),
            404, "NOT_FOUND")
    refused(c.cmd("reception", "POST", "/v1/invoices", {}), 400, "VALIDATION_ERROR", "client_id")
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": "nope"}), 400,
            "VALIDATION_ERROR", "client_id")
    refused(c.cmd("reception", "POST", "/v1/invoices",
                  {"client_id": c.client_id, "appointment_id": str(uuid.uuid4())}),
            404, "NOT_FOUND")
    # an inactive client
    gone = c.new_client("Gone", "Away")
    c.ok("admin", "POST", f"/v1/clients/{gone}/deactivate", {"reason": "moved"})
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": gone}), 409,
            "CLIENT_INACTIVE")
    # an appointment of another client's patient: 400 on appointment_id
    other = c.new_client("Other", "Owner")
    other_pet = c.new_patient(other)
    foreign = c.appointment(other_pet)
    refused(c.cmd("reception", "POST", "/v1/invoices",
                  {"client_id": c.client_id, "appointment_id": foreign}),
            400, "VALIDATION_ERROR", "appointment_id")
    # one live invoice per appointment; a void one frees it
    appt = c.appointment()
    first = c.invoice(appointment_id=appt)
    assert c.view(first)["appointment_id"] == appt
    refused(c.cmd("reception", "POST", "/v1/invoices",
                  {"client_id": c.client_id, "appointment_id": appt}), 409, "ALREADY_EXISTS")
    # the same id again
    mine = str(uuid.uuid4())
    c.invoice(id=mine, role="admin")
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": c.client_id, "id": mine}),
            409, "ALREADY_EXISTS")
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": other, "id": inv}),
            409, "ALREADY_EXISTS")
    c.void(first, reason="wrong client")
    v = c.view(first)
    assert v["status"] == "void" and v["void_reason"] == "wrong client" and v["voided_at"]
    second = c.invoice(appointment_id=appt)
    assert c.view(second)["appointment_id"] == appt
    refused(c.cmd("reception", "POST", "/v1/invoices",
                  {"client_id": c.client_id, "appointment_id": appt}), 409, "ALREADY_EXISTS")
    # nothing the refusals tried was appended
    c.harmless()
    created = [e for e in c.events(type="InvoiceCreated")]
    assert {e["aggregate_id"] for e in created} == {inv, first, mine, second}
    assert [e["data"]["appointment_id"] for e in created if e["aggregate_id"] == second] == [appt]
    # the list: newest first, filtered
    drafts = c.pages("/v1/invoices", status="draft", client_id=c.client_id)
    assert [d["id"] for d in drafts] == [second, mine, inv]
    assert "lines" not in drafts[0] and "payments" not in drafts[0]
    assert [d["id"] for d in c.pages("/v1/invoices", status="void")] == [first]
    assert c.get("/v1/invoices", status="nope").status_code == 400


# --- roles -----------------------------------------------------------------------

def test_each_command_and_query_refuses_the_roles_it_does_not_name(clinic):
    c = clinic
    inv = c.invoice()
    line = str(uuid.uuid4())
    c.line(inv, 1, 5000, line_id=line)
    paid = c.issued_invoice(4000)
    pay = str(uuid.uuid4())
    c.pay(paid, 1000, payment_id=pay)
    cases = [
        (("vet", "nurse", "analyst", "ops"), "POST", "/v1/invoices", {"client_id": c.client_id}),
        (("nurse", "analyst", "ops"), "POST", f"/v1/invoices/{inv}/lines",
         {"description": "X", "quantity": 1, "unit_price_cents": 1}),
        (("vet", "nurse", "analyst"), "DELETE", f"/v1/invoices/{inv}/lines/{line}", None),
        (("vet", "nurse", "analyst"), "POST", f"/v1/invoices/{inv}/issue", {}),
        (("vet", "nurse", "analyst"), "POST", f"/v1/invoices/{paid}/payments",
         {"amount_cents": 1, "method": "cash"}),
        (("reception", "vet", "nurse"), "POST", f"/v1/invoices/{paid}/payments/{pay}/refund",
         {"amount_cents": 1, "reason": "x"}),
        (("reception", "vet", "nurse"), "POST", f"/v1/invoices/{inv}/void", {"reason": "x"}),
    ]
    for roles, method, path, body in cases:
        for role in roles:
            refused(c.cmd(role, method, path, body), 403, "FORBIDDEN")
    # the vet may add a line
    c.line(inv, 1, 100, role="vet")
    c.harmless()
    v = c.view(inv)
    assert v["status"] == "draft" and v["line_count"] == 2
    assert c.view(paid)["paid_cents"] == 1000
    for role, path in [("vet", f"/v1/invoices/{inv}"), ("nurse", "/v1/invoices"),
                       ("analyst", "/v1/invoices"),
                       ("vet", f"/v1/clients/{c.client_id}/statement"),
                       ("analyst", f"/v1/clients/{c.client_id}/statement"),
                       ("reception", "/v1/stats/revenue/monthly"),
                       ("vet", "/v1/stats/revenue/monthly")]:
        r = c.get(path, role, **MONTH)
        refused(r, 403, "FORBIDDEN")
    for role in ("admin", "reception"):
        assert c.get(f"/v1/invoices/{inv}", role).status_code == 200
        assert c.get(f"/v1/clients/{c.client_id}/statement", role).status_code == 200
    assert c.get("/v1/stats/revenue/monthly", "analyst", **MONTH).status_code == 200
    # another tenant's invoice is not found
    stranger = requests.get(f"{c.reader.url}/v1/invoices/{inv}", timeout=30, headers={
        "Authorization": "Bearer " + c.stack.token("admin", tenant=str(uuid.uuid4()))})
    assert stranger.status_code == 404, stranger.text


# --- lines -----------------------------------------------------------------------

def test_lines_validation_ids_totals_and_removal(clinic):
    c = clinic
    inv = c.invoice()
    path = f"/v1/invoices/{inv}/lines"
    good = {"description": "Consultation", "quantity": 1, "unit_price_cents": 1000}
    for bad, field in [({"quantity": 1.0005}, "quantity"), ({"quantity": 0}, "quantity"),
                       ({"quantity": -1}, "quantity"), ({"quantity": 1000000.001}, "quantity"),
                       ({"quantity": "1"}, "quantity"),
                       ({"unit_price_cents": -1}, "unit_price_cents"),
                       ({"unit_price_cents": 100000001}, "unit_price_cents"),
                       ({"unit_price_cents": 1.5}, "unit_price_cents"),
                       ({"tax_rate_bp": 10001}, "tax_rate_bp"),
                       ({"tax_rate_bp": -1}, "tax_rate_bp"),
                       ({"discount_bp": 10001}, "discount_bp"),
                       ({"discount_bp": -1}, "discount_bp"),
                       ({"description": "x" * 201}, "description"),
                       ({"description": None}, "description"),
                       ({"item_id": "nope"}, "item_id"),
                       ({"line_id": "nope"}, "line_id")]:
        refused(c.cmd("reception", "POST", path, {**good, **bad}), 400, "VALIDATION_ERROR", field)
    body = dict(good)
    del body["unit_price_cents"]
    refused(c.cmd("reception", "POST", path, body), 400, "VALIDATION_ERROR", "unit_price_cents")
    refused(c.cmd("reception", "POST", path, {"quantity": 1}), 400, "VALIDATION_ERROR",
            "description")
    # several bad fields: every one in the details
    r = c.cmd("reception", "POST", path, {"description": "x", "quantity": 1.0005,
                                          "unit_price_cents": -1, "tax_rate_bp": 10001})
    refused(r, 400, "VALIDATION_ERROR")
    assert {"quantity", "unit_price_cents", "tax_rate_bp"} <= fields(r), r.text
    refused(c.cmd("reception", "POST", f"/v1/invoices/{uuid.uuid4()}/lines", good), 404,
            "NOT_FOUND")

    ids = [str(uuid.uuid4()) for _ in range(3)]
    a = c.line(inv, 2, 1500, tax_rate_bp=2000, line_id=ids[0])
    assert a["id"] == inv and a["events"] == ["InvoiceLineAdded"] and a["version"] == 2
    c.line(inv, 0.5, 999, discount_bp=1000, line_id=ids[1], description="Shampoo")
    c.line(inv, 1.234, 777, tax_rate_bp=500, discount_bp=250, line_id=ids[2])
    refused(c.cmd("reception", "POST", path, {**good, "line_id": ids[1]}), 409, "ALREADY_EXISTS")
    v = c.view(inv)
    assert [ln["id"] for ln in v["lines"]] == ids
    assert [ln["position"] for ln in v["lines"]] == [1, 2, 3]
    assert v["lines"][1]["description"] == "Shampoo" and v["lines"][1]["item_id"] is None
    assert milli(v["lines"][2]["quantity"]) == 1234
    check_totals(v)
    assert v["line_count"] == 3 and v["version"] == 4

    # removal
    dpath = f"/v1/invoices/{inv}/lines"
    refused(c.cmd("reception", "DELETE", f"{dpath}/{uuid.uuid4()}"), 404, "NOT_FOUND")
    refused(c.cmd("reception", "DELETE", f"/v1/invoices/{uuid.uuid4()}/lines/{ids[0]}"), 404,
            "NOT_FOUND")
    r = c.cmd("reception", "DELETE", f"{dpath}/{ids[1]}")
    assert r.status_code == 200 and r.json()["events"] == ["InvoiceLineRemoved"], r.text
    assert r.json()["version"] == 5
    refused(c.cmd("admin", "DELETE", f"{dpath}/{ids[1]}"), 404, "NOT_FOUND")
    v = c.view(inv)
    assert [(ln["id"], ln["position"]) for ln in v["lines"]] == [(ids[0], 1), (ids[2], 3)]
    check_totals(v)
    assert v["line_count"] == 2
    fourth = c.line(inv, 1, 1, line_id=str(uuid.uuid4()))
    assert fourth["version"] == 6
    v = c.view(inv)
    assert [ln["position"] for ln in v["lines"]] == [1, 3, 4]


def check_totals(v):
    """The invoice's totals are the sums of its lines', each line recomputed."""
    sums = [0, 0, 0, 0]
    for ln in v["lines"]:
        want = line_amounts(milli(ln["quantity"]), ln["unit_price_cents"], ln["discount_bp"],
                            ln["tax_rate_bp"])
        got = (ln["net_cents"], ln["discount_cents"], ln["tax_cents"], ln["line_total_cents"])
        assert got == want, (ln, want)
        sums = [s + x for s, x in zip(sums, want)]
    assert (v["net_cents"], v["discount_cents"], v["tax_cents"], v["total_cents"]) == \
        tuple(sums), v
    assert v["line_count"] == len(v["lines"])


def test_lines_with_items_default_their_price_and_tax(clinic):
    c = clinic
    priced = c.item(sale_price_cents=1250, tax_rate_bp=2000)
    untaxed = c.item(sale_price_cents=333)
    bare = c.item()
    inv = c.invoice()
    path = f"/v1/invoices/{inv}/lines"
    c.line(inv, 2, None, item_id=priced, description="Meloxicam")
    c.line(inv, 1, 900, item_id=priced, tax_rate_bp=0)
    c.line(inv, 3, None, item_id=untaxed)
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "item_id": bare}),
            400, "VALIDATION_ERROR", "unit_price_cents")
    c.line(inv, 1, 10, item_id=bare)
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "item_id": str(uuid.uuid4())}), 404, "NOT_FOUND")
    controlled = c.item(controlled=True, sale_price_cents=100)
    rx_only = c.item(requires_prescription=True, sale_price_cents=100)
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "item_id": controlled}), 409, "WITNESS_REQUIRED")
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "item_id": rx_only}), 409,
            "PRESCRIPTION_REQUIRED")
    gone = c.item(sale_price_cents=100)
    c.ok("admin", "POST", f"/v1/inventory/items/{gone}/deactivate", {"reason": "x"})
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "item_id": gone}), 409, "ITEM_INACTIVE")
    # such items are billed through a line without item_id
    c.line(inv, 1, 100, description="Controlled drug, dispensed with a witness")
    v = c.view(inv)
    got = [(ln["item_id"], milli(ln["quantity"]), ln["unit_price_cents"], ln["tax_rate_bp"],
            ln["discount_bp"]) for ln in v["lines"]]
    assert got == [(priced, 2000, 1250, 2000, 0), (priced, 1000, 900, 0, 0),
                   (untaxed, 3000, 333, 0, 0), (bare, 1000, 10, 0, 0),
                   (None, 1000, 100, 0, 0)]
    assert (v["lines"][0]["net_cents"], v["lines"][0]["tax_cents"],
            v["lines"][0]["line_total_cents"]) == (2500, 500, 3000)
    check_totals(v)
    added = [e["data"] for e in c.events(aggregate_id=inv, type="InvoiceLineAdded")]
    assert added[0]["unit_price_cents"] == 1250 and added[0]["tax_rate_bp"] == 2000
    assert added[0]["item_id"] == priced and added[0]["quantity_milli"] == 2000
    assert added[0]["line_total_cents"] == 3000


def test_the_101st_line_and_the_total_bound(clinic):
    c = clinic
    inv = c.invoice()
    ids = [str(uuid.uuid4()) for _ in range(100)]
    for i, lid in enumerate(ids):
        c.line(inv, 1, i + 1, line_id=lid)
    path = f"/v1/invoices/{inv}/lines"
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "unit_price_cents": 1}), 409, "INVALID_STATE")
    c.ok("reception", "DELETE", f"{path}/{ids[0]}")
    c.line(inv, 1, 1)
    refused(c.cmd("reception", "POST", path, {"description": "x", "quantity": 1,
                                              "unit_price_cents": 1}), 409, "INVALID_STATE")
    v = c.view(inv)
    assert v["line_count"] == 100 and len(v["lines"]) == 100
    check_totals(v)
    assert v["total_cents"] == sum(range(2, 101)) + 1

    # the total stays at most 10^13
    big = c.invoice()
    bpath = f"/v1/invoices/{big}/lines"
    refused(c.cmd("reception", "POST", bpath, {"description": "x", "quantity": 1000000,
                                               "unit_price_cents": 100000000}),
            400, "VALIDATION_ERROR", "quantity")
    c.line(big, 100000, 100000000)  # exactly 10^13
    refused(c.cmd("reception", "POST", bpath, {"description": "x", "quantity": 0.001,
                                               "unit_price_cents": 1000}),
            400, "VALIDATION_ERROR", "quantity")
    c.line(big, 1, 0)
    v = c.view(big)
    assert v["total_cents"] == 10 ** 13 and v["line_count"] == 2
    c.issue(big)
    v = c.view(big)
    assert v["balance_cents"] == 10 ** 13
    refused(c.cmd("reception", "POST", f"/v1/invoices/{big}/payments",
                  {"amount_cents": 10 ** 13 + 1, "method": "bank_transfer"}), 400,
            "VALIDATION_ERROR", "amount_cents")
    c.pay(big, 10 ** 13, method="bank_transfer")
    assert c.view(big)["status"] == "paid"


# --- rounding and currencies -----------------------------------------------------

ROUNDING_LINES = [
    # (quantity, unit price, discount bp, tax bp) -> (net, discount, tax, total)
    ((0.5, 1, 0, 0), (0, 0, 0, 0)),           # net 0.5 -> 0
    ((1.5, 1, 0, 0), (2, 0, 0, 2)),           # net 1.5 -> 2
    ((2.5, 1, 0, 0), (2, 0, 0, 2)),           # net 2.5 -> 2
    ((0.001, 2500, 0, 0), (2, 0, 0, 2)),      # net 2.5 -> 2
    ((0.003, 2500, 0, 0), (8, 0, 0, 8)),      # net 7.5 -> 8
    ((1, 250, 100, 0), (250, 2, 0, 248)),     # discount 2.5 -> 2
    ((1, 350, 100, 0), (350, 4, 0, 346)),     # discount 3.5 -> 4
    ((1, 25, 0, 1000), (25, 0, 2, 27)),       # tax 2.5 -> 2
    ((1, 35, 0, 1000), (35, 0, 4, 39)),       # tax 3.5 -> 4
    ((1, 270, 1000, 1000), (270, 27, 24, 267)),  # tax of 243: 24.3 -> 24
    ((1, 550, 1000, 1000), (550, 55, 50, 545)),  # tax of 495: 49.5 -> 50 ... even
    ((1, 650, 1000, 1000), (650, 65, 58, 643)),  # tax of 585: 58.5 -> 58
    ((1.234, 999, 1250, 2000), None),
    ((999999.999, 100, 0, 0), None),
    ((0.001, 100000000, 10000, 2000), (100000, 100000, 0, 0)),
]


def test_rounding_is_half_even_in_net_discount_and_tax(clinic):
    c = clinic
    inv = c.invoice()
    for (q, price, disc, tax), want in ROUNDING_LINES:
        c.line(inv, q, price, discount_bp=disc, tax_rate_bp=tax)
        if want:
            assert line_amounts(milli(q), price, disc, tax) == want, (q, price, disc, tax)
    v = c.view(inv)
    for ln, ((q, price, disc, tax), want) in zip(v["lines"], ROUNDING_LINES):
        got = (ln["net_cents"], ln["discount_cents"], ln["tax_cents"], ln["line_total_cents"])
        assert got == line_amounts(milli(q), price, disc, tax), (q, price, disc, tax, got)
        assert milli(ln["quantity"]) == milli(q)
    check_totals(v)
    added = [e["data"] for e in c.events(aggregate_id=inv, type="InvoiceLineAdded")]
    for d, ((q, price, disc, tax), _) in zip(added, ROUNDING_LINES):
        assert (d["net_cents"], d["discount_cents"], d["tax_cents"], d["line_total_cents"]) == \
            line_amounts(milli(q), price, disc, tax)
        assert d["quantity_milli"] == milli(q)


@pytest.mark.parametrize("currency,exponent,lines", [
    ("JPY", 0, [((1.5, 333, 0, 1000), (500, 0, 50, 550)),   # 499.5 -> 500
                ((2.5, 1, 0, 0), (2, 0, 0, 2)),
                ((1, 5, 1000, 1000), (5, 0, 0, 5))]),       # discount 0.5 -> 0; tax 0.5 -> 0
    ("BHD", 3, [((0.333, 1500, 0, 0), (500, 0, 0, 500)),    # 499.5 -> 500
                ((1, 1005, 0, 1000), (1005, 0, 100, 1105)),  # tax 100.5 -> 100
                ((1, 15, 1000, 0), (15, 2, 0, 13))]),        # discount 1.5 -> 2
])
def test_currencies_without_and_with_three_minor_digits(stack, daemons, currency, exponent,
                                                        lines):
    c = Clinic(stack, daemons, tz="Asia/Tokyo" if currency == "JPY" else "Asia/Bahrain",
               currency=currency, name=currency)
    inv = c.invoice()
    for (q, price, disc, tax), want in lines:
        assert line_amounts(milli(q), price, disc, tax) == want
        c.line(inv, q, price, discount_bp=disc, tax_rate_bp=tax)
    c.issue(inv)
    v = c.view(inv)
    assert v["currency"] == currency and v["currency_exponent"] == exponent
    assert [(ln["net_cents"], ln["discount_cents"], ln["tax_cents"], ln["line_total_cents"])
            for ln in v["lines"]] == [w for _, w in lines]
    check_totals(v)
    c.pay(inv, v["total_cents"] - 1, method="cash")
    month = c.today().strftime("%Y-%m")
    rev = c.read("/v1/stats/revenue/monthly", "analyst", **{"from": month, "to": month})
    assert rev["currency"] == currency and rev["currency_exponent"] == exponent
    [row] = rev["data"]
    assert row["invoiced_cents"] == v["total_cents"] and row["paid_cents"] == v["total_cents"] - 1
    assert row["outstanding_cents"] == 1
    listed = c.pages("/v1/invoices")
    assert listed[0]["currency"] == currency and listed[0]["currency_exponent"] == exponent


# --- issue -----------------------------------------------------------------------

def test_issue_numbers_local_dates_and_zero_totals(far):
    c = far
    today = c.today()
    inv = c.invoice()
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {}), 409, "INVALID_STATE")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{uuid.uuid4()}/issue", {}), 404,
            "NOT_FOUND")
    c.line(inv, 2, 4500, tax_rate_bp=1000)
    for bad in (366, -1, 1.5, "30"):
        refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {"due_in_days": bad}),
                400, "VALIDATION_ERROR", "due_in_days")
    a = c.issue(inv)
    assert a["id"] == inv and a["events"] == ["InvoiceIssued"] and a["version"] == 3
    v = c.view(inv)
    assert v["status"] == "issued" and v["number"] == "INV-000001"
    assert v["issued_on"] == str(today) and v["due_on"] == str(today + timedelta(days=30))
    if today != datetime.now(timezone.utc).date():
        assert v["issued_on"] != str(datetime.now(timezone.utc).date())
    assert v["balance_cents"] == v["total_cents"] == 9900 and v["overdue"] is False
    [issued] = c.events(aggregate_id=inv, type="InvoiceIssued")
    assert issued["data"] == {"number": "INV-000001", "issued_on": str(today),
                              "due_on": str(today + timedelta(days=30)), "total_cents": 9900}
    # after issue: no lines in or out, no second issue
    lines = f"/v1/invoices/{inv}/lines"
    refused(c.cmd("reception", "POST", lines, {"description": "x", "quantity": 1,
                                               "unit_price_cents": 1}), 409, "INVALID_STATE")
    refused(c.cmd("reception", "DELETE", f"{lines}/{v['lines'][0]['id']}"), 409, "INVALID_STATE")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {}), 409, "INVALID_STATE")

    # due dates: 0 and 365 days
    second = c.invoice()
    c.line(second, 1, 100)
    c.issue(second, due_in_days=0)
    third = c.invoice()
    c.line(third, 1, 100)
    c.issue(third, due_in_days=365)
    v2, v3 = c.view(second), c.view(third)
    assert (v2["number"], v2["due_on"]) == ("INV-000002", str(today))
    assert (v3["number"], v3["due_on"]) == ("INV-000003", str(today + timedelta(days=365)))
    # a void issued invoice keeps its number: the next one does not reuse it
    c.void(third, reason="duplicate")
    v3 = c.view(third)
    assert v3["status"] == "void" and v3["number"] == "INV-000003" and v3["balance_cents"] == 0
    # a zero total is paid at once
    zero = c.invoice()
    c.line(zero, 1, 0, description="Free check")
    c.line(zero, 3, 500, discount_bp=10000, description="Free too")
    c.issue(zero)
    vz = c.view(zero)
    assert vz["number"] == "INV-000004" and vz["total_cents"] == 0
    assert vz["status"] == "paid" and vz["paid_on"] == str(today) and vz["balance_cents"] == 0
    refused(c.cmd("reception", "POST", f"/v1/invoices/{zero}/payments",
                  {"amount_cents": 1, "method": "cash"}), 409, "INVALID_STATE")
    # the reader's filters
    assert [x["id"] for x in c.pages("/v1/invoices", status="issued")] == [second, inv]
    assert [x["id"] for x in c.pages("/v1/invoices", status="paid")] == [zero]
    assert {x["id"] for x in c.pages("/v1/invoices", overdue="false")} >= {inv, second}
    assert c.pages("/v1/invoices", overdue="true") == []
    numbers = query(c.stack, "SELECT number, number_seq FROM read.invoices WHERE tenant_id = %s "
                             "AND number IS NOT NULL ORDER BY number_seq", (c.tid,))
    assert numbers == [(f"INV-{i:06d}", i) for i in range(1, 5)]


def test_received_on_is_judged_by_the_clinics_date(far):
    c = far
    today = c.today()
    utc_today = datetime.now(timezone.utc).date()
    inv = c.issued_invoice(5000)
    path = f"/v1/invoices/{inv}/payments"
    refused(c.cmd("reception", "POST", path, {"amount_cents": 1, "method": "cash",
                                              "received_on": str(today + timedelta(days=1))}),
            400, "VALIDATION_ERROR", "received_on")
    refused(c.cmd("reception", "POST", path, {"amount_cents": 1, "method": "cash",
                                              "received_on": str(today - timedelta(days=1))}),
            400, "VALIDATION_ERROR", "received_on")  # before issued_on
    if utc_today > today:  # Pago Pago: UTC's today is tomorrow here
        refused(c.cmd("reception", "POST", path, {"amount_cents": 1, "method": "cash",
                                                  "received_on": str(utc_today)}),
                400, "VALIDATION_ERROR", "received_on")
    else:  # Kiritimati: UTC's today is yesterday here, before issued_on
        refused(c.cmd("reception", "POST", path, {"amount_cents": 1, "method": "cash",
                                                  "received_on": str(utc_today)}),
                400, "VALIDATION_ERROR", "received_on")
    c.pay(inv, 1000)
    c.pay(inv, 1000, received_on=str(today))
    v = c.view(inv)
    assert [p["received_on"] for p in v["payments"]] == [str(today)] * 2
    assert v["status"] == "partially_paid" and v["balance_cents"] == 3000
    c.pay(inv, 3000, method="insurance", reference="CLAIM-1")
    v = c.view(inv)
    assert v["status"] == "paid" and v["paid_on"] == str(today)


def test_issue_dispenses_stocked_lines_fefo_in_line_order(clinic):
    c = clinic
    today = c.today()
    it = c.item(sale_price_cents=200, tax_rate_bp=2000)
    c.receive(it, "LATE", 5, today + timedelta(days=40))
    c.receive(it, "NOEXP", 10)
    c.receive(it, "EARLY", 3, today + timedelta(days=10))
    appt = c.appointment()
    inv = c.invoice(appointment_id=appt)
    c.line(inv, 2, None, item_id=it, description="Tabs")
    c.line(inv, 1, 4000, description="Consultation")
    c.line(inv, 2.5, None, item_id=it, description="More tabs")
    a = c.issue(inv)
    assert a["events"] == ["InvoiceIssued", "StockDispensed", "StockDispensed"], a
    assert a["id"] == inv and a["version"] == 5
    dispensed = [e for e in c.events(aggregate_id=it, type="StockDispensed")]
    assert [[(x["batch_number"], x["quantity_milli"]) for x in e["data"]["allocations"]]
            for e in dispensed] == [[("EARLY", 2000)], [("EARLY", 1000), ("LATE", 1500)]]
    for e in dispensed:
        assert e["data"]["invoice_id"] == inv and e["data"]["patient_id"] == c.patient_id
    # in the transaction of the InvoiceIssued, right after it
    [issued] = c.events(aggregate_id=inv, type="InvoiceIssued")
    p, o = (int(x) for x in issued["position"].split(":"))
    assert [e["position"] for e in dispensed] == [f"{p}:{o + 1}", f"{p}:{o + 2}"]
    assert a["position"] == f"{p}:{o + 2}"
    item = c.read(f"/v1/inventory/items/{it}")
    left = {b["batch_number"]: milli(b["remaining"]) for b in item["batches"]}
    assert left == {"EARLY": 0, "LATE": 3500, "NOEXP": 10000} or \
        left == {"LATE": 3500, "NOEXP": 10000}, left
    assert milli(item["on_hand"]) == 13500

    # without an appointment: the patient is null
    inv2 = c.invoice()
    c.line(inv2, 4, None, item_id=it)
    c.issue(inv2)
    [last] = [e for e in c.events(aggregate_id=it, type="StockDispensed")
              if e["data"]["invoice_id"] == inv2]
    assert last["data"]["patient_id"] is None
    assert [(x["batch_number"], x["quantity_milli"]) for x in last["data"]["allocations"]] == \
        [("LATE", 3500), ("NOEXP", 500)]
    assert milli(c.read(f"/v1/inventory/items/{it}")["on_hand"]) == 9500


def test_dispense_naming_an_invoice(clinic):
    c = clinic
    it = c.item(controlled=True)
    c.receive(it, "CD", 10)
    inv = c.invoice()
    path = f"/v1/inventory/items/{it}/dispenses"
    body = {"quantity": 1, "witness_id": c.nurse_id}
    refused(c.cmd("vet", "POST", path, {**body, "invoice_id": str(uuid.uuid4())}), 404,
            "NOT_FOUND")
    c.ok("vet", "POST", path, {**body, "invoice_id": inv})
    [e] = c.events(aggregate_id=it, type="StockDispensed")
    assert e["data"]["invoice_id"] == inv and e["data"]["witness_id"] == c.nurse_id
    c.line(inv, 1, 2500, description="Controlled drug")
    c.issue(inv)
    assert c.view(inv)["status"] == "issued"


def test_a_refused_issue_appends_nothing_and_takes_no_number(stack, daemons):
    c = Clinic(stack, daemons, tz="Pacific/Auckland", currency="NZD", name="Refusals")
    today = c.today()
    short = c.item(sale_price_cents=100)
    c.receive(short, "ONLY", 1, today + timedelta(days=5))
    plain = c.item(sale_price_cents=100)
    c.receive(plain, "P", 10)
    inv = c.invoice()
    c.line(inv, 1, None, item_id=plain)     # enough
    c.line(inv, 1.001, None, item_id=short)  # 0.001 short
    before = c.view(inv)
    item_before = c.read(f"/v1/inventory/items/{short}")
    plain_before = c.read(f"/v1/inventory/items/{plain}")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {}), 409,
            "INSUFFICIENT_STOCK")
    # deactivated since the line was added
    gone = c.item(sale_price_cents=100)
    c.receive(gone, "G", 10)
    inv2 = c.invoice()
    c.line(inv2, 1, None, item_id=gone)
    c.ok("admin", "POST", f"/v1/inventory/items/{gone}/deactivate", {"reason": "recalled"})
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv2}/issue", {}), 409, "ITEM_INACTIVE")
    # come to require a prescription since
    rx = c.item(sale_price_cents=100)
    c.receive(rx, "R", 10)
    inv3 = c.invoice()
    c.line(inv3, 1, None, item_id=rx)
    c.ok("admin", "PATCH", f"/v1/inventory/items/{rx}", {"requires_prescription": True})
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv3}/issue", {}), 409,
            "PRESCRIPTION_REQUIRED")
    c.harmless()
    after = c.view(inv)
    assert after == before, (before, after)
    assert after["status"] == "draft" and after["number"] is None
    for i in (inv2, inv3):
        assert c.view(i)["status"] == "draft"
    assert c.read(f"/v1/inventory/items/{short}")["batches"] == item_before["batches"]
    assert c.read(f"/v1/inventory/items/{plain}")["batches"] == plain_before["batches"]
    assert c.events(type="InvoiceIssued") == []
    assert c.events(type="StockDispensed") == []
    # the next issue takes the first number
    c.receive(short, "MORE", 1)
    a = c.issue(inv)
    assert a["events"] == ["InvoiceIssued", "StockDispensed", "StockDispensed"]
    assert c.view(inv)["number"] == "INV-000001"
    assert milli(c.read(f"/v1/inventory/items/{short}")["on_hand"]) == 999
    assert milli(c.read(f"/v1/inventory/items/{plain}")["on_hand"]) == 9000


# --- payments and refunds --------------------------------------------------------

def test_payments_refunds_and_void(clinic):
    c = clinic
    inv = c.invoice()
    c.line(inv, 2, 5000, tax_rate_bp=2000)  # 12000
    pay_path = f"/v1/invoices/{inv}/payments"
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 100, "method": "cash"}), 409,
            "INVALID_STATE")
    c.issue(inv)
    refused(c.cmd("reception", "POST", f"/v1/invoices/{uuid.uuid4()}/payments",
                  {"amount_cents": 1, "method": "cash"}), 404, "NOT_FOUND")
    for bad, field in [({"amount_cents": 0}, "amount_cents"), ({"amount_cents": -5}, "amount_cents"),
                       ({"amount_cents": 1.5}, "amount_cents"),
                       ({"method": "cheque"}, "method"), ({"method": None}, "method"),
                       ({"reference": "r" * 101}, "reference"),
                       ({"received_on": "2026-02-30"}, "received_on"),
                       ({"payment_id": "nope"}, "payment_id")]:
        refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 100, "method": "cash", **bad}),
                400, "VALIDATION_ERROR", field)
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 12001, "method": "card"}), 409,
            "PAYMENT_EXCEEDS_BALANCE")
    p1, p2 = str(uuid.uuid4()), str(uuid.uuid4())
    a = c.pay(inv, 5000, payment_id=p1, reference="R" * 100)
    assert a["events"] == ["PaymentRecorded"] and a["id"] == inv
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 1, "method": "cash",
                                                  "payment_id": p1}), 409, "ALREADY_EXISTS")
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["balance_cents"]) == ("partially_paid", 5000, 7000)
    refused(c.cmd("admin", "POST", f"/v1/invoices/{inv}/void", {"reason": "x"}), 409,
            "INVALID_STATE")
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 7001, "method": "card"}), 409,
            "PAYMENT_EXCEEDS_BALANCE")
    c.pay(inv, 7000, payment_id=p2, method="bank_transfer")
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["balance_cents"]) == ("paid", 12000, 0)
    assert v["paid_on"] == str(c.today())
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 1, "method": "cash"}), 409,
            "INVALID_STATE")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{inv}/void", {"reason": "x"}), 409,
            "INVALID_STATE")

    # refunds
    rpath = f"/v1/invoices/{inv}/payments/{{}}/refund"
    refused(c.cmd("admin", "POST", rpath.format(uuid.uuid4()), {"amount_cents": 1, "reason": "x"}),
            404, "NOT_FOUND")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{uuid.uuid4()}/payments/{p1}/refund",
                  {"amount_cents": 1, "reason": "x"}), 404, "NOT_FOUND")
    refused(c.cmd("admin", "POST", rpath.format(p1), {"amount_cents": 1}), 400,
            "VALIDATION_ERROR", "reason")
    refused(c.cmd("admin", "POST", rpath.format(p1), {"amount_cents": 0, "reason": "x"}), 400,
            "VALIDATION_ERROR", "amount_cents")
    refused(c.cmd("admin", "POST", rpath.format(p1), {"amount_cents": 5001, "reason": "x"}), 409,
            "REFUND_EXCEEDS_PAYMENT")
    r1 = str(uuid.uuid4())
    a = c.ok("admin", "POST", rpath.format(p2), {"amount_cents": 2000, "reason": "overcharged",
                                                 "refund_id": r1})
    assert a["events"] == ["PaymentRefunded"] and a["id"] == inv
    refused(c.cmd("admin", "POST", rpath.format(p2), {"amount_cents": 1, "reason": "x",
                                                      "refund_id": r1}), 409, "ALREADY_EXISTS")
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["refunded_cents"], v["balance_cents"]) == \
        ("partially_paid", 10000, 2000, 2000)
    assert v["paid_on"] is None
    refused(c.cmd("admin", "POST", rpath.format(p2), {"amount_cents": 5001, "reason": "x"}), 409,
            "REFUND_EXCEEDS_PAYMENT")
    c.refund(inv, p2, 5000)
    c.refund(inv, p1, 4999)
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["balance_cents"]) == ("partially_paid", 1, 11999)
    c.refund(inv, p1, 1)
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["refunded_cents"], v["balance_cents"]) == \
        ("issued", 0, 12000, 12000)
    refused(c.cmd("admin", "POST", rpath.format(p1), {"amount_cents": 1, "reason": "x"}), 409,
            "REFUND_EXCEEDS_PAYMENT")
    pays = {p["id"]: p for p in v["payments"]}
    assert pays[p1]["amount_cents"] == 5000 and pays[p1]["refunded_cents"] == 5000
    assert pays[p1]["reference"] == "R" * 100 and pays[p1]["method"] == "card"
    assert [r["amount_cents"] for r in pays[p1]["refunds"]] == [4999, 1]
    assert [r["amount_cents"] for r in pays[p2]["refunds"]] == [2000, 5000]
    assert pays[p2]["refunds"][0]["id"] == r1
    # paid again, then refunded a little: paid -> partially_paid
    p3 = str(uuid.uuid4())
    c.pay(inv, 12000, payment_id=p3, method="other")
    assert c.view(inv)["status"] == "paid"
    c.refund(inv, p3, 12000)
    assert c.view(inv)["status"] == "issued"
    # nothing paid net: void is allowed, and then nothing more
    a = c.void(inv, reason="returned goods")
    assert a["events"] == ["InvoiceVoided"]
    v = c.view(inv)
    assert v["status"] == "void" and v["balance_cents"] == 0 and v["number"]
    refused(c.cmd("reception", "POST", pay_path, {"amount_cents": 1, "method": "cash"}), 409,
            "INVALID_STATE")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{inv}/void", {"reason": "x"}), 409,
            "INVALID_STATE")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{inv}/void", {}), 400, "VALIDATION_ERROR",
            "reason")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{uuid.uuid4()}/void", {"reason": "x"}), 404,
            "NOT_FOUND")
    draft = c.invoice()
    refused(c.cmd("reception", "POST", f"/v1/invoices/{draft}/payments",
                  {"amount_cents": 1, "method": "cash"}), 409, "INVALID_STATE")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{draft}/lines", {
        "description": "x", "quantity": 1, "unit_price_cents": 1, "line_id": "x"}),
        400, "VALIDATION_ERROR", "line_id")


# --- concurrency -----------------------------------------------------------------

def test_fifty_concurrent_issues_take_fifty_consecutive_numbers(stack, daemons):
    c = Clinic(stack, daemons, tz="America/New_York", currency="USD", name="Busy")
    invoices = []
    for i in range(50):
        inv = c.invoice()
        c.line(inv, 1, 100 + i)
        invoices.append(inv)
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(
            lambda inv: c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {}), invoices))
    assert [r.status_code for r in answers] == [200] * 50, \
        [r.text for r in answers if r.status_code != 200][:3]
    numbers = [c.view(inv)["number"] for inv in invoices]
    assert sorted(numbers) == [f"INV-{i:06d}" for i in range(1, 51)]
    issued = c.events(type="InvoiceIssued")
    assert sorted(e["data"]["number"] for e in issued) == sorted(numbers)
    # numbers follow the log order
    assert [e["data"]["number"] for e in issued] == [f"INV-{i:06d}" for i in range(1, 51)]
    seqs = query(stack, "SELECT number_seq FROM read.invoices WHERE tenant_id = %s "
                        "AND number_seq IS NOT NULL ORDER BY 1", (c.tid,))
    assert [s for (s,) in seqs] == list(range(1, 51))


def test_twenty_concurrent_payments_never_overpay(clinic):
    c = clinic
    inv = c.issued_invoice(10000)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(
            lambda _: c.cmd("reception", "POST", f"/v1/invoices/{inv}/payments",
                            {"amount_cents": 700, "method": "card"}), range(20)))
    ok = [r for r in answers if r.status_code == 200]
    no = [r for r in answers if r.status_code != 200]
    assert len(ok) == 14, [r.text for r in answers]
    assert all(r.status_code == 409 and code(r) == "PAYMENT_EXCEEDS_BALANCE" for r in no), \
        [r.text for r in no]
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], v["balance_cents"]) == ("partially_paid", 9800, 200)
    assert len(v["payments"]) == 14
    assert len(c.events(aggregate_id=inv, type="PaymentRecorded")) == 14

    # each alone fits, together they do not
    inv2 = c.issued_invoice(10000)
    amounts = [300 * (i % 7 + 1) for i in range(20)]  # sum 23,100
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(
            lambda amt: c.cmd("reception", "POST", f"/v1/invoices/{inv2}/payments",
                              {"amount_cents": amt, "method": "cash"}), amounts))
    accepted = sum(a for a, r in zip(amounts, answers) if r.status_code == 200)
    assert accepted <= 10000
    assert all(r.status_code == 200 or code(r) == "PAYMENT_EXCEEDS_BALANCE" for r in answers)
    v = c.view(inv2)
    assert v["paid_cents"] == accepted and v["balance_cents"] == 10000 - accepted
    assert v["status"] == ("paid" if accepted == 10000 else "partially_paid")
    refused_amounts = [a for a, r in zip(amounts, answers) if r.status_code != 200]
    assert all(a > 10000 - accepted for a in refused_amounts)


# --- statement, balance, revenue -------------------------------------------------

def test_statement_running_balance_and_client_balance(clinic):
    c = clinic
    who = c.new_client("Carl", "Ledger")
    a = c.invoice(who)
    c.line(a, 1, 10000, tax_rate_bp=2000)  # 12000
    c.issue(a)
    p = str(uuid.uuid4())
    c.pay(a, 5000, payment_id=p)
    r = str(uuid.uuid4())
    c.ok("admin", "POST", f"/v1/invoices/{a}/payments/{p}/refund",
         {"amount_cents": 1000, "reason": "x", "refund_id": r})
    b = c.issued_invoice(3000, client=who)
    c.void(b)
    d = c.invoice(who)  # a draft is not on the statement
    c.line(d, 1, 999)
    e = c.issued_invoice(700, client=who)
    today = str(c.today())
    st = c.read(f"/v1/clients/{who}/statement")
    rows = [(x["kind"], x["invoice_id"], x["amount_cents"], x["balance_cents"]) for x in st["data"]]
    assert rows == [("invoice", a, 12000, 12000), ("payment", a, -5000, 7000),
                    ("refund", a, 1000, 8000), ("invoice", b, 3000, 11000),
                    ("void", b, -3000, 8000), ("invoice", e, 700, 8700)], st
    assert all(x["date"] == today for x in st["data"])
    va, vb = c.view(a), c.view(b)
    assert st["data"][0]["invoice_number"] == va["number"]
    assert st["data"][3]["invoice_number"] == st["data"][4]["invoice_number"] == vb["number"]
    assert st["data"][1]["payment_id"] == p and st["data"][2]["refund_id"] == r
    assert st["data"][2]["payment_id"] == p
    assert st["opening_balance_cents"] == 0 and st["closing_balance_cents"] == 8700
    client = c.read(f"/v1/clients/{who}")
    assert client["balance_cents"] == 8700 == va["balance_cents"] + c.view(e)["balance_cents"]
    # paging gives the same rows
    paged = c.pages(f"/v1/clients/{who}/statement", limit=2)
    assert paged == st["data"]
    # before the first row: nothing; from tomorrow: only the opening balance
    yesterday = str(c.today() - timedelta(days=1))
    tomorrow = str(c.today() + timedelta(days=1))
    early = c.read(f"/v1/clients/{who}/statement", to=yesterday)
    assert early["data"] == [] and early["closing_balance_cents"] == 0
    late = c.read(f"/v1/clients/{who}/statement", **{"from": tomorrow, "to": tomorrow})
    assert late["data"] == [] and late["opening_balance_cents"] == 8700
    assert late["closing_balance_cents"] == 8700
    refused(c.get(f"/v1/clients/{uuid.uuid4()}/statement"), 404, "NOT_FOUND")
    # the ledger's rows sum to the balance
    assert query(c.stack, "SELECT sum(amount_cents) FROM read.client_ledger "
                          "WHERE tenant_id = %s AND client_id = %s", (c.tid, who)) == [(8700,)]
    # paying it all leaves 0
    c.pay(a, va["balance_cents"])
    c.pay(e, 700)
    assert c.read(f"/v1/clients/{who}")["balance_cents"] == 0
    st = c.read(f"/v1/clients/{who}/statement")
    assert st["closing_balance_cents"] == 0 and st["data"][-1]["balance_cents"] == 0


def revenue_from_events(c, month):
    """The revenue of a tenant-local month (YYYY-MM) recomputed from the log."""
    evs = c.events()
    issued, voided, paid = {}, set(), {}
    collected = 0
    for e in evs:
        t, d, agg = e["type"], e["data"], e["aggregate_id"]
        if t == "InvoiceIssued":
            issued[agg] = d
        elif t == "InvoiceVoided":
            voided.add(agg)
        elif t == "PaymentRecorded":
            paid[agg] = paid.get(agg, 0) + d["amount_cents"]
            if d["received_on"][:7] == month:
                collected += d["amount_cents"]
        elif t == "PaymentRefunded":
            paid[agg] = paid.get(agg, 0) - d["amount_cents"]
            at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
            if at.astimezone(ZoneInfo(c.tz)).strftime("%Y-%m") == month:
                collected -= d["amount_cents"]
    mine = [i for i, d in issued.items() if d["issued_on"][:7] == month and i not in voided]
    invoiced = sum(issued[i]["total_cents"] for i in mine)
    paid_sum = sum(paid.get(i, 0) for i in mine)
    return {"month": month, "invoice_count": len(mine), "invoiced_cents": invoiced,
            "paid_cents": paid_sum, "outstanding_cents": invoiced - paid_sum,
            "average_invoice_cents": rdiv(invoiced, len(mine)) if mine else 0,
            "payment_rate_bp": rdiv(paid_sum * 10000, invoiced) if invoiced else 10000,
            "collected_cents": collected}


def test_revenue_monthly_matches_a_recomputation_from_the_events(clinic, far):
    for c in CLINICS:
        month = c.today().strftime("%Y-%m")
        check_revenue(c, month)
    c = clinic
    assert c.get("/v1/stats/revenue/monthly", "analyst",
                 **{"from": "2026-13", "to": "2026-12"}).status_code == 400
    assert c.read("/v1/stats/revenue/monthly", "analyst",
                  **{"from": "2001-01", "to": "2001-12"})["data"] == []


def check_revenue(c, month):
    """The reader's revenue of one tenant-local month against the events."""
    want = revenue_from_events(c, month)
    rev = c.read("/v1/stats/revenue/monthly", "analyst", **{"from": month, "to": month})
    check_schema(rev, "RevenueMonthly")
    check_integers(rev, "revenue")
    assert rev["currency"] == c.currency
    assert rev["currency_exponent"] == CURRENCY_EXPONENT[c.currency]
    if want["invoice_count"] == 0:
        assert rev["data"] == [], (c.tz, rev)
        return
    [row] = rev["data"]
    assert REVENUE_KEYS <= set(row), REVENUE_KEYS - set(row)
    got = {k: row[k] for k in want}
    assert got == want, (c.tz, c.currency)
    assert abs(row["payment_rate"] - want["payment_rate_bp"] / 10000) < 1e-9, row
    # and the admin reads the same
    assert c.read("/v1/stats/revenue/monthly", "admin",
                  **{"from": month, "to": month})["data"] == rev["data"]


# --- the whole run ---------------------------------------------------------------

def test_every_invoice_of_the_run_recomputes_from_its_lines(stack, daemons):
    recompute_every_invoice(stack, CLINICS, INVOICES)


def recompute_every_invoice(stack, clinics, invoices):
    """Each invoice's lines recomputed in Python (integer half-even), its totals,
    payments and balance, against the reader and the projector's tables; and
    each invoice's version is the count of its events."""
    assert invoices
    checked = 0
    for c, inv in invoices:
        v = c.view(inv)
        check_schema(v, "InvoiceDetail")
        check_keys(v)
        check_integers(v)
        check_totals(v)
        paid = sum(p["amount_cents"] - p["refunded_cents"] for p in v["payments"])
        refunded = sum(r["amount_cents"] for p in v["payments"] for r in p["refunds"])
        for p in v["payments"]:
            assert p["refunded_cents"] == sum(r["amount_cents"] for r in p["refunds"])
        assert v["paid_cents"] == paid and v["refunded_cents"] == refunded, v
        open_ = v["status"] in ("issued", "partially_paid")
        assert v["balance_cents"] == (v["total_cents"] - paid if open_ else 0), v
        if v["status"] == "paid":
            assert paid == v["total_cents"]
        if v["status"] == "partially_paid":
            assert 0 < paid < v["total_cents"]
        if v["status"] == "issued":
            assert paid == 0
        assert v["currency_exponent"] == CURRENCY_EXPONENT[c.currency]
        # the projector's tables say the same
        [row] = query(stack, "SELECT status, number, net_cents, discount_cents, tax_cents, "
                             "total_cents, paid_cents, refunded_cents, balance_cents, line_count, "
                             "version FROM read.invoices WHERE tenant_id = %s AND id = %s",
                      (c.tid, inv))
        assert row == (v["status"], v["number"], v["net_cents"], v["discount_cents"],
                       v["tax_cents"], v["total_cents"], v["paid_cents"], v["refunded_cents"],
                       v["balance_cents"], v["line_count"], v["version"]), (row, v)
        lines = query(stack, "SELECT id::text, position, quantity_milli, unit_price_cents, "
                             "discount_bp, tax_rate_bp, net_cents, discount_cents, tax_cents, "
                             "line_total_cents FROM read.invoice_lines WHERE tenant_id = %s "
                             "AND invoice_id = %s ORDER BY position", (c.tid, inv))
        assert lines == [(ln["id"], ln["position"], milli(ln["quantity"]), ln["unit_price_cents"],
                          ln["discount_bp"], ln["tax_rate_bp"]) +
                         line_amounts(milli(ln["quantity"]), ln["unit_price_cents"],
                                      ln["discount_bp"], ln["tax_rate_bp"])
                         for ln in v["lines"]], inv
        checked += 1
    assert checked == len(invoices)
    # and the writer's version is the event count of the invoice
    for c in clinics:
        counts = {}
        for e in c.events():
            if e["aggregate"] == "invoice":
                counts[e["aggregate_id"]] = counts.get(e["aggregate_id"], 0) + 1
        for (inv, version) in query(stack, "SELECT id::text, version FROM read.invoices "
                                           "WHERE tenant_id = %s", (c.tid,)):
            assert counts[inv] == version, inv
        page = c.read("/v1/invoices", limit=5)
        check_schema(page, "InvoicePage")
        for x in page["data"]:
            assert INVOICE_KEYS - {"lines", "payments"} <= set(x)
            assert "lines" not in x and "payments" not in x


# The read shapes of docs/billing.md.
INVOICE_KEYS = {"id", "client_id", "client_name", "appointment_id", "status", "number",
                "issued_on", "due_on", "overdue", "paid_on", "currency", "currency_exponent",
                "net_cents", "discount_cents", "tax_cents", "total_cents", "paid_cents",
                "refunded_cents", "balance_cents", "line_count", "lines", "payments",
                "void_reason", "voided_at", "version", "created_at", "updated_at"}
LINE_KEYS = {"id", "position", "description", "item_id", "quantity", "unit_price_cents",
             "discount_bp", "tax_rate_bp", "net_cents", "discount_cents", "tax_cents",
             "line_total_cents"}
PAYMENT_KEYS = {"id", "amount_cents", "refunded_cents", "method", "reference", "received_on",
                "refunds"}
STATEMENT_ROW_KEYS = {"date", "kind", "invoice_id", "invoice_number", "payment_id",
                      "refund_id", "amount_cents", "balance_cents"}
REVENUE_KEYS = {"month", "invoice_count", "invoiced_cents", "paid_cents", "outstanding_cents",
                "average_invoice_cents", "payment_rate_bp", "payment_rate", "collected_cents"}


def check_keys(v):
    assert INVOICE_KEYS <= set(v), INVOICE_KEYS - set(v)
    for ln in v["lines"]:
        assert LINE_KEYS <= set(ln), LINE_KEYS - set(ln)
    for p in v["payments"]:
        assert PAYMENT_KEYS <= set(p), PAYMENT_KEYS - set(p)


def check_integers(doc, where="answer"):
    """Every *_cents, *_milli and *_bp of a JSON document is written as an
    integer (json gives int for 10000000000000, float for 1e+13 or 5.0)."""
    if isinstance(doc, dict):
        for k, x in doc.items():
            if k.endswith(("_cents", "_milli", "_bp")) and x is not None:
                assert type(x) is int, f"{where}: {k} = {x!r}"
            check_integers(x, where)
    elif isinstance(doc, list):
        for x in doc:
            check_integers(x, where)


def ledger_from_events(c):
    """client id -> the statement's rows recomputed from the tenant's events:
    (date, offset, kind, invoice id, amount), in the statement's order."""
    rows, owner, issued = {}, {}, {}
    for e in c.events():
        t, d, agg = e["type"], e["data"], e["aggregate_id"]
        offset = int(e["position"].split(":")[1])
        row = None
        if t == "InvoiceCreated":
            owner[agg] = d["client_id"]
            rows.setdefault(d["client_id"], [])
        elif t == "InvoiceIssued":
            issued[agg] = d["total_cents"]
            row = (d["issued_on"], offset, "invoice", agg, d["total_cents"])
        elif t == "PaymentRecorded":
            row = (d["received_on"], offset, "payment", agg, -d["amount_cents"])
        elif t == "PaymentRefunded":
            row = (str(local_date_of(e["at"], c.tz)), offset, "refund", agg, d["amount_cents"])
        elif t == "InvoiceVoided" and agg in issued:
            row = (str(local_date_of(e["at"], c.tz)), offset, "void", agg, -issued[agg])
        if row:
            rows[owner[agg]].append(row)
    return {client: sorted(r) for client, r in rows.items()}


def check_statements(c):
    """Every billed client's statement (rows, running balance, closing) and
    balance against a recomputation from the events."""
    for client, want in ledger_from_events(c).items():
        st = c.read(f"/v1/clients/{client}/statement")
        check_schema(st, "StatementPage")
        check_integers(st, "statement")
        for row in st["data"]:
            assert STATEMENT_ROW_KEYS <= set(row), STATEMENT_ROW_KEYS - set(row)
        assert {"opening_balance_cents", "closing_balance_cents", "data"} <= set(st)
        assert st["next_cursor"] is None or len(st["data"]) == 50
        data = c.pages(f"/v1/clients/{client}/statement")
        balance, expected = 0, []
        for (day, _off, kind, inv, amount) in want:
            balance += amount
            expected.append((day, kind, inv, amount, balance))
        got = [(x["date"], x["kind"], x["invoice_id"], x["amount_cents"], x["balance_cents"])
               for x in data]
        assert got == expected, (c.tz, client)
        assert st["opening_balance_cents"] == 0
        if len(data) == len(st["data"]):
            assert st["closing_balance_cents"] == balance
        assert c.read(f"/v1/clients/{client}")["balance_cents"] == balance, client


def test_every_statement_and_client_balance_recomputes_from_the_events(stack, daemons):
    for c in CLINICS:
        check_statements(c)


def test_every_billing_event_matches_its_json_schema(stack, daemons):
    tenants = {c.tid for c in CLINICS}
    schemas, seen = {}, set()
    for e in log_events(stack.brokers):
        if e.get("tenant_id") not in tenants:
            continue
        path = os.path.join(ROOT, "schema", "events", f"{e['type']}.v{e['v']}.json")
        if path not in schemas:
            with open(path) as f:
                schemas[path] = json.load(f)
        jsonschema.validate(e, schemas[path])
        check_integers(e["data"], f"{e['type']} event")
        seen.add(e["type"])
    assert {"InvoiceCreated", "InvoiceLineAdded", "InvoiceLineRemoved", "InvoiceIssued",
            "PaymentRecorded", "PaymentRefunded", "InvoiceVoided", "StockDispensed"} <= seen


def read_tables(stack):
    return [t for (t,) in query(
        stack, "SELECT c.table_name FROM information_schema.columns c "
               "JOIN information_schema.tables t USING (table_schema, table_name) "
               "WHERE c.table_schema = 'read' AND c.column_name = 'tenant_id' "
               "AND t.table_type = 'BASE TABLE' AND c.table_name <> 'dead_letters' "
               "ORDER BY 1")]


def tenant_rows(stack, schema, table, tenants):
    q = (f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) '
         f'FROM "{schema}"."{table}" x WHERE x.tenant_id = ANY(%s::uuid[])')
    return query(stack, q, (tenants,))[0]


def test_the_read_model_equals_a_rebuild_from_the_log(stack, daemons):
    rebuild_equals_live(stack, CLINICS, "read_bill_check")
    tenants = [c.tid for c in CLINICS]
    assert query(stack, "SELECT count(*) FROM read.invoices WHERE tenant_id = ANY(%s::uuid[])",
                 (tenants,))[0][0] == len(INVOICES)


def rebuild_equals_live(stack, clinics, schema):
    """A second projector builds the whole log into `schema`; the rows of the
    clinics' tenants in every read table equal the live ones."""
    tenants = [c.tid for c in clinics]
    for c in clinics:  # the live projector has applied everything of the run
        c.harmless()
        c.read(f"/v1/clients/{c.client_id}")
    assert not query(stack, "SELECT error FROM read.dead_letters "
                            "WHERE tenant_id = ANY(%s::uuid[])", (tenants,))
    live = dict(query(stack, "SELECT partition, next_offset FROM read.projection_offsets "
                             "WHERE topic = %s", (TOPIC,)))
    check = stack.start_daemon("projector", port=free_port(),
                               env={"VETPMS_READ_SCHEMA": schema,
                                    "VETPMS_PROJECTOR_GROUP": f"e2e-bill-{uuid.uuid4()}"})

    def caught_up():
        try:
            rows = dict(query(stack, f"SELECT partition, next_offset FROM "
                                     f"{schema}.projection_offsets WHERE topic = %s",
                              (TOPIC,)))
        except psycopg.errors.UndefinedTable:
            return False
        return all(rows.get(p, 0) >= end for p, end in live.items())

    try:
        wait_for(caught_up, timeout=180, interval=0.2, what="the rebuild to reach the live positions",
                 explain=lambda: check.log_tail(20))
    finally:
        assert check.terminate() == 0
    tables = read_tables(stack)
    assert {"invoices", "invoice_lines", "payments", "refunds", "client_ledger",
            "revenue_monthly"} <= set(tables)
    different = []
    for table in tables:
        want = tenant_rows(stack, "read", table, tenants)
        got = tenant_rows(stack, schema, table, tenants)
        if got != want:
            different.append(f"{table}: rebuilt {got} != live {want}")
    assert not different, "\n".join(different)
