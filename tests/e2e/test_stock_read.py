"""Stock read side against the real stack: catalog stock events produced
straight into vetpms.events (the writer's stock commands are built on another
branch) are projected into inventory_items, stock_batches and stock_movements;
query-reader answers the items (on hand = non-expired stock by the tenant's
local today, low_stock), one item with its batches, the expiring batches
(already expired ones too), an item's register (every movement in log order
with a running balance equal to a recomputation from the event log) and a
lot's recall (dispenses with patient and owner), to admin, vet and nurse only;
analysts read the valuation and usage views, not the movements; stock events
of unknown items or batches are dead letters; and the read model equals a
rebuild by a second projector into another schema."""

import os
import random
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import jsonschema
import psycopg
import pytest
import requests
import yaml
from psycopg import sql

import events as ev
from stack import free_port, wait_for
from produced import ProducedTenant
from readmodel import query

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schema",
                         "openapi.yaml")


def check_schema(body, name):
    """body against components/schemas/<name> of schema/openapi.yaml."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        components = yaml.safe_load(f)["components"]
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}",
                               "components": components},
                        cls=jsonschema.Draft202012Validator)


def qty(milli):
    """The JSON number of a quantity in thousandths (3 places)."""
    return float(Decimal(milli) / 1000)


def milli(number):
    """Thousandths of a JSON quantity (3 places), exactly."""
    return int(Decimal(repr(number)) * 1000)


def local_today(tz):
    return datetime.now(ZoneInfo(tz)).date()


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port())
    reader = stack.start_daemon("query-reader", port=free_port())
    for d in (projector, reader):
        d.wait_ready(90)
    yield projector, reader
    for d in (reader, projector):
        assert d.terminate() == 0


@pytest.fixture(scope="module")
def producer(stack):
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-stock-read-{uuid.uuid4()}")
    yield p
    p.close()


class Clinic(ProducedTenant):
    """One tenant with a vet, a nurse, a client and two patients; `send`
    produces envelopes (seq tracked per aggregate) and waits until each one is
    logged or dead-lettered."""

    def __init__(self, stack, producer, reader, tz="Europe/Paris"):
        self.stack, self.producer, self.reader, self.tz = stack, producer, reader, tz
        self.t = ev.new_id()
        self.vet, self.nurse = ev.new_id(), ev.new_id()
        self.c1 = ev.new_id()
        self.p1, self.p2 = ev.new_id(), ev.new_id()
        self.seqs = {}
        self.sent = 0
        self.send([
            ev.envelope("TenantProvisioned", self.t, "tenant", self.t, self.seq(self.t),
                        {"name": "Stock Vets", "timezone": tz, "currency": "EUR"}),
            ev.envelope("StaffRegistered", self.t, "staff", self.vet, self.seq(self.vet),
                        {"name": "Dr Alice Adams", "role": "veterinarian", "email": None,
                         "license_number": "L-1"}),
            ev.envelope("StaffRegistered", self.t, "staff", self.nurse, self.seq(self.nurse),
                        {"name": "Nina Nurse", "role": "nurse", "email": None,
                         "license_number": None}),
            ev.client_registered(self.t, self.c1, "Ann", "Smith", seq=self.seq(self.c1)),
            ev.patient_registered(self.t, self.p1, self.c1, "Rex", seq=self.seq(self.p1)),
            ev.patient_registered(self.t, self.p2, self.c1, "Tom", seq=self.seq(self.p2)),
        ])

    def headers(self, roles, tenant=None):
        return {"Authorization": "Bearer " + self.stack.token(roles, tenant=tenant or self.t)}

    def get(self, path, roles=("nurse",), **params):
        return requests.get(self.reader.url + path, headers=self.headers(list(roles)),
                            params=params, timeout=10)

    def ok(self, path, roles=("nurse",), **params):
        r = self.get(path, roles, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def all_pages(self, path, limit=3, **params):
        data, cursor = [], None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            body = self.ok(path, limit=limit, **params, **extra)
            data += body["data"]
            cursor = body["next_cursor"]
            if not cursor:
                return data

    # builders
    def inv(self, type_, item, data, event_id=None):
        return ev.envelope(type_, self.t, "inventory_item", item, self.seq(item), data,
                           event_id=event_id)

    def create(self, item, code, name="Meloxicam 1 mg", reorder_point=None, controlled=False,
               category="medication"):
        return self.inv("InventoryItemCreated", item,
                        {"code": code, "name": name, "category": category, "unit": "tablet",
                         "controlled": controlled, "requires_prescription": controlled,
                         "reorder_point_milli": reorder_point,
                         "reorder_quantity_milli": 100000, "sale_price_cents": 250,
                         "tax_rate_bp": 2000})

    def receive(self, item, batch, quantity_milli, expiry=None, lot=None, cost=None,
                event_id=None):
        return self.inv("StockReceived", item,
                        {"batch_number": batch, "lot_number": lot, "expiry_date": expiry,
                         "quantity_milli": quantity_milli, "unit_cost_cents": cost,
                         "supplier_invoice": "SI-1"}, event_id=event_id)

    def dispense(self, item, allocations, patient=None, prescription=None, witness=None):
        return self.inv("StockDispensed", item,
                        {"allocations": [{"batch_number": b, "quantity_milli": q}
                                         for b, q in allocations],
                         "prescription_id": prescription, "patient_id": patient,
                         "invoice_id": None, "witness_id": witness})

    def adjust(self, item, batch, delta_milli, reason="count", witness=None):
        return self.inv("StockAdjusted", item,
                        {"batch_number": batch, "delta_milli": delta_milli, "reason": reason,
                         "witness_id": witness})


@pytest.fixture(scope="module")
def clinic(stack, daemons, producer):
    return Clinic(stack, producer, daemons[1])


def test_items_batches_and_movements_land_and_read_back(clinic):
    c = clinic
    item = ev.new_id()
    b1_event = ev.new_id()
    rx = ev.new_id()
    today = local_today(c.tz)
    soon = (today + timedelta(days=20)).isoformat()
    later = (today + timedelta(days=400)).isoformat()
    c.send([
        c.create(item, "MEL-1", reorder_point=5000, controlled=True),
        c.receive(item, "B1", 10000, expiry=soon, lot="L-1", cost=120, event_id=b1_event),
        c.receive(item, "B2", 4500, expiry=later, lot="L-2", cost=100),
        c.receive(item, "B1", 2000, expiry=soon, lot="L-1", cost=120),     # top-up
        c.dispense(item, [("B1", 11000), ("B2", 500)], patient=c.p1, prescription=rx,
                   witness=c.vet),
        c.adjust(item, "B2", -250, reason="damage", witness=c.vet),
        c.inv("InventoryItemUpdated", item, {"name": "Meloxicam 1.5 mg",
                                             "sale_price_cents": None}),
    ])
    assert query(c.stack, "SELECT code, name, stock_milli, version, sale_price_cents "
                          "FROM read.inventory_items WHERE tenant_id = %s AND id = %s",
                 (c.t, item)) == [("MEL-1", "Meloxicam 1.5 mg", 4750, 7, None)]
    assert query(c.stack, "SELECT batch_number, id::text, received_milli, remaining_milli "
                          "FROM read.stock_batches WHERE tenant_id = %s ORDER BY 1",
                 (c.t,)) == [("B1", b1_event, 12000, 1000), ("B2", query(
                     c.stack, "SELECT id::text FROM read.stock_batches WHERE tenant_id = %s "
                              "AND batch_number = 'B2'", (c.t,))[0][0], 4500, 3750)]
    rows = query(c.stack, "SELECT kind, line, batch_number, delta_milli, balance_milli "
                          "FROM read.stock_movements WHERE tenant_id = %s "
                          "ORDER BY partition, \"offset\", line", (c.t,))
    assert rows == [("receipt", 0, "B1", 10000, 10000), ("receipt", 0, "B2", 4500, 14500),
                    ("receipt", 0, "B1", 2000, 16500), ("dispense", 1, "B1", -11000, 5500),
                    ("dispense", 2, "B2", -500, 5000), ("adjustment", 0, "B2", -250, 4750)]

    body = c.ok(f"/v1/inventory/items/{item}")
    check_schema(body, "InventoryItemDetail")
    assert body["on_hand"] == 4.75 and body["reorder_point"] == 5.0
    assert body["low_stock"] is True and body["expired_stock"] == 0
    assert body["name"] == "Meloxicam 1.5 mg" and body["sale_price_cents"] is None
    assert body["controlled"] is True and body["version"] == 7
    assert [(b["batch_number"], b["remaining"], b["received"], b["expired"])
            for b in body["batches"]] == [("B1", 1.0, 12.0, False), ("B2", 3.75, 4.5, False)]
    # quantities leave with 3 places
    raw = c.get(f"/v1/inventory/items/{item}").text
    assert '"on_hand":4.750' in raw.replace(" ", "")

    listed = c.ok("/v1/inventory/items")
    check_schema(listed, "InventoryItemPage")
    assert [i["id"] for i in listed["data"]] == [item]

    reg = c.ok(f"/v1/inventory/items/{item}/register")
    check_schema(reg, "StockRegisterPage")
    assert [(e["kind"], e["quantity"], e["balance"]) for e in reg["data"]] == [
        ("receipt", 10.0, 10.0), ("receipt", 4.5, 14.5), ("receipt", 2.0, 16.5),
        ("dispense", -11.0, 5.5), ("dispense", -0.5, 5.0), ("adjustment", -0.25, 4.75)]
    d = reg["data"][3]
    assert d["patient"] == {"id": c.p1, "name": "Rex"}
    assert d["witness"] == {"id": c.vet, "name": "Dr Alice Adams"}
    assert d["prescription_id"] == rx and d["actor"] == "e2e" and d["lot_number"] == "L-1"
    assert reg["data"][5]["reason"] == "damage"
    assert reg["data"][0]["supplier_invoice"] == "SI-1"


def test_on_hand_excludes_batches_expired_by_the_tenants_local_date(stack, daemons, producer):
    """Kiritimati is UTC+14, Pago Pago UTC-11: at any hour one of them has a
    local date other than UTC's."""
    utc_today = datetime.now(timezone.utc).date()
    differs = 0
    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        c = Clinic(stack, producer, daemons[1], tz=tz)
        today = local_today(tz)
        differs += today != utc_today
        item = ev.new_id()
        batches = {"YESTERDAY": (today - timedelta(days=1), 1000),
                   "TODAY": (today, 2000),
                   "UTC-TODAY": (utc_today, 4000),
                   "NEVER": (None, 8000)}
        c.send([c.create(item, "X-1", reorder_point=0)] +
               [c.receive(item, b, q, expiry=e and e.isoformat())
                for b, (e, q) in batches.items()])
        good = sum(q for e, q in batches.values() if e is None or e >= today)
        body = c.ok(f"/v1/inventory/items/{item}")
        assert body["on_hand"] == qty(good), tz
        assert body["expired_stock"] == qty(15000 - good), tz
        expired = {b["batch_number"]: b["expired"] for b in body["batches"]}
        assert expired == {b: e is not None and e < today for b, (e, _) in batches.items()}
        listed = c.ok("/v1/inventory/items")["data"]
        assert listed[0]["on_hand"] == qty(good)
        # expiring within 0 days: today's and the expired ones
        exp = c.ok("/v1/inventory/expiring", within_days=0)["data"]
        assert {x["batch_number"]: (x["expired"], x["days_left"]) for x in exp} == {
            b: (e < today, (e - today).days) for b, (e, _) in batches.items()
            if e is not None and e <= today}
        assert [x["expiry_date"] for x in exp] == sorted(x["expiry_date"] for x in exp)
    assert differs >= 1


def test_low_stock_is_on_hand_at_or_below_the_reorder_point(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    low, ok, exact, none = (ev.new_id() for _ in range(4))
    far = (local_today(c.tz) + timedelta(days=300)).isoformat()
    c.send([c.create(low, "A-LOW", reorder_point=5000), c.receive(low, "B", 4000, expiry=far),
            c.create(ok, "B-OK", reorder_point=5000), c.receive(ok, "B", 6000, expiry=far),
            c.create(exact, "C-EXACT", reorder_point=5000, category="vaccine"),
            c.receive(exact, "B", 5000, expiry=far),
            c.create(none, "D-NONE", reorder_point=None)])
    items = {i["code"]: i for i in c.all_pages("/v1/inventory/items", limit=1)}
    assert {k: v["low_stock"] for k, v in items.items()} == {
        "A-LOW": True, "B-OK": False, "C-EXACT": True, "D-NONE": False}
    assert [i["code"] for i in c.all_pages("/v1/inventory/items", limit=1, low_stock="true")] \
        == ["A-LOW", "C-EXACT"]
    assert [i["code"] for i in c.all_pages("/v1/inventory/items", low_stock="false")] \
        == ["B-OK", "D-NONE"]
    assert [i["code"] for i in c.ok("/v1/inventory/items", category="vaccine")["data"]] \
        == ["C-EXACT"]
    # dispensing below the point makes it low
    c.send([c.dispense(ok, [("B", 1500)])])
    assert c.ok(f"/v1/inventory/items/{ok}")["low_stock"] is True
    r = c.get("/v1/inventory/items", low_stock="maybe")
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "low_stock"


def test_expiring_lists_soonest_first_with_expired_ones_and_pages(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    today = local_today(c.tz)
    item, other = ev.new_id(), ev.new_id()
    day = lambda n: (today + timedelta(days=n)).isoformat()  # noqa: E731
    c.send([c.create(item, "E-1"), c.create(other, "E-2"),
            c.receive(item, "OLD", 1000, expiry=day(-10)),
            c.receive(item, "EMPTY", 1000, expiry=day(-5)),
            c.adjust(item, "EMPTY", -1000, reason="expired"),
            c.receive(item, "SOON", 1000, expiry=day(3)),
            c.receive(other, "SOON2", 1000, expiry=day(3)),
            c.receive(item, "MONTH", 1000, expiry=day(30)),
            c.receive(item, "LATER", 1000, expiry=day(31)),
            c.receive(item, "NOEXP", 1000)])
    body = c.ok("/v1/inventory/expiring")
    check_schema(body, "ExpiringBatchPage")
    got = [(x["batch_number"], x["expired"], x["days_left"]) for x in body["data"]]
    assert got[0] == ("OLD", True, -10)
    assert sorted(got[1:3]) == [("SOON", False, 3), ("SOON2", False, 3)]
    assert got[3] == ("MONTH", False, 30) and len(got) == 4
    assert [x["batch_number"] for x in c.all_pages("/v1/inventory/expiring", limit=1,
                                                  within_days=31)] == \
        [g[0] for g in got] + ["LATER"]
    assert body["data"][0]["item"]["code"] == "E-1"
    for bad in ("-1", "x", "3651"):
        r = c.get("/v1/inventory/expiring", within_days=bad)
        assert r.status_code == 400, bad


def test_recall_lists_the_lots_batches_and_dispenses_with_patient_and_client(
        stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    a, b = ev.new_id(), ev.new_id()
    exp = (local_today(c.tz) + timedelta(days=90)).isoformat()
    c.send([c.create(a, "R-A"), c.create(b, "R-B"),
            c.receive(a, "A1", 5000, expiry=exp, lot="LOT-9"),
            c.receive(a, "A2", 5000, expiry=exp, lot="LOT-OTHER"),
            c.receive(b, "B1", 5000, expiry=exp, lot="LOT-9"),
            c.dispense(a, [("A1", 1000)], patient=c.p1),
            c.dispense(a, [("A2", 1000)], patient=c.p2),
            c.dispense(b, [("B1", 2000)], patient=c.p2),
            c.dispense(b, [("B1", 500)])])
    body = c.ok("/v1/inventory/recall", roles=("vet",), lot_number="LOT-9")
    check_schema(body, "StockRecall")
    assert sorted((x["item"]["code"], x["batch_number"], x["remaining"])
                  for x in body["batches"]) == [("R-A", "A1", 4.0), ("R-B", "B1", 2.5)]
    assert [(d["batch_number"], d["quantity"], d["patient"] and d["patient"]["name"])
            for d in body["dispenses"]] == [("A1", 1.0, "Rex"), ("B1", 2.0, "Tom"),
                                            ("B1", 0.5, None)]
    assert body["dispenses"][0]["client"]["last_name"] == "Smith"
    assert body["dispenses"][0]["client"]["id"] == c.c1
    assert body["dispenses"][2]["client"] is None
    assert c.ok("/v1/inventory/recall", lot_number="NOPE") == {
        "lot_number": "NOPE", "batches": [], "dispenses": []}
    r = c.get("/v1/inventory/recall")
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "lot_number"


def test_roles_and_not_found(stack, clinic, daemons, producer):
    c = clinic
    item = ev.new_id()
    c.send([c.create(item, "ROLE-1")])
    paths = ["/v1/inventory/items", f"/v1/inventory/items/{item}",
             f"/v1/inventory/items/{item}/register", "/v1/inventory/expiring",
             "/v1/inventory/recall?lot_number=L"]
    for path in paths:
        for roles in (("admin",), ("vet",), ("nurse",)):
            assert c.get(path, roles).status_code == 200, (path, roles)
        for roles in (("reception",), ("analyst",), ("ops",)):
            r = c.get(path, roles)
            assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", path
        assert requests.get(c.reader.url + path, timeout=10).status_code == 401
    other = Clinic(stack, producer, daemons[1])
    for path in (f"/v1/inventory/items/{item}", f"/v1/inventory/items/{item}/register",
                 f"/v1/inventory/items/{ev.new_id()}", "/v1/inventory/items/not-a-uuid"):
        r = other.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", path
    assert other.ok("/v1/inventory/items")["data"] == []
    r = c.get(f"/v1/inventory/items/{item}/register", **{"from": "2026-11-02T00:00:00Z",
                                                         "to": "2026-11-01T00:00:00Z"})
    assert r.status_code == 400


def random_stock_events(c, rng, items, n_events=150):
    """A random but valid mix over items: receipts (new batches and top-ups of
    the same expiry), dispenses over one or more batches with stock, and
    adjustments that never go below zero."""
    envs = []
    state = {i: {} for i in items}           # item -> batch -> [expiry, remaining]
    today = local_today(c.tz)
    for n, item in enumerate(items):
        envs.append(c.create(item, f"RND-{n}", reorder_point=rng.randint(0, 20000)))
    for _ in range(n_events):
        item = rng.choice(items)
        batches = state[item]
        kind = rng.randrange(3)
        stocked = [b for b, (_, r) in batches.items() if r > 0]
        if kind == 0 or not stocked:
            if batches and rng.random() < 0.4:
                b = rng.choice(list(batches))
            else:
                b = f"B{len(batches)}"
                batches[b] = [rng.choice([None, (today + timedelta(days=rng.randint(-30, 400)))
                                          .isoformat()]), 0]
            q = rng.randint(1, 50000)
            batches[b][1] += q
            envs.append(c.receive(item, b, q, expiry=batches[b][0],
                                  lot=rng.choice(["LOT-A", "LOT-B", None]),
                                  cost=rng.choice([None, 99, 1234])))
        elif kind == 1:
            allocs = []
            for b in rng.sample(stocked, rng.randint(1, min(3, len(stocked)))):
                q = rng.randint(1, batches[b][1])
                batches[b][1] -= q
                allocs.append((b, q))
            envs.append(c.dispense(item, allocs, patient=rng.choice([None, c.p1, c.p2]),
                                   witness=rng.choice([None, c.vet])))
        else:
            b = rng.choice(stocked)
            delta = rng.randint(-batches[b][1], 20000) or 1
            batches[b][1] += delta
            envs.append(c.adjust(item, b, delta, reason=rng.choice(["count", "damage",
                                                                   "returned"])))
    return envs, state


def recompute_register(stack, tenant, item):
    """(kind, batch, delta, balance) of every movement, from event_log alone."""
    rows = query(stack, "SELECT type, envelope->'data' FROM read.event_log "
                        "WHERE tenant_id = %s AND aggregate_id = %s "
                        "ORDER BY partition, \"offset\"", (tenant, item))
    out, balance = [], 0
    for type_, data in rows:
        if type_ == "StockReceived":
            moves = [("receipt", data["batch_number"], data["quantity_milli"])]
        elif type_ == "StockDispensed":
            moves = [("dispense", a["batch_number"], -a["quantity_milli"])
                     for a in data["allocations"]]
        elif type_ == "StockAdjusted":
            moves = [("adjustment", data["batch_number"], data["delta_milli"])]
        else:
            moves = []
        for kind, batch, delta in moves:
            balance += delta
            out.append((kind, batch, qty(delta), qty(balance)))
    return out


STOCK_TABLES = {"inventory_items": "id", "stock_batches": "id", "stock_movements": "event_id"}


def tenant_digest(stack, schema, table, tenant):
    q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                "FROM {}.{} x WHERE x.tenant_id = %s").format(sql.Identifier(schema),
                                                              sql.Identifier(table))
    return query(stack, q, (tenant,))[0]


def test_register_balance_equals_the_log_and_a_rebuild_after_a_random_mix(
        stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    seed = random.randrange(1 << 30)
    items = [ev.new_id() for _ in range(3)]
    envs, state = random_stock_events(c, random.Random(seed), items)
    c.send(envs)
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s",
                     (c.t,)), f"seed {seed}"
    for item in items:
        register = c.all_pages(f"/v1/inventory/items/{item}/register", limit=7)
        assert [(e["kind"], e["batch_number"], e["quantity"], e["balance"])
                for e in register] == recompute_register(stack, c.t, item), f"seed {seed}"
        body = c.ok(f"/v1/inventory/items/{item}")
        assert {b["batch_number"]: b["remaining"] for b in body["batches"]} == {
            b: qty(r) for b, (_, r) in state[item].items()}, f"seed {seed}"
        total = sum(r for _, r in state[item].values())
        assert register[-1]["balance"] == qty(total) if register else total == 0
        # in thousandths: two JSON numbers with 3 places need not add up exactly
        # as binary floats (58.391 + 0.187 != 58.578)
        assert milli(body["on_hand"]) + milli(body["expired_stock"]) == total
    # from/to select by the event's time, still with the running balance
    first = c.all_pages(f"/v1/inventory/items/{items[0]}/register", limit=200)
    mid = first[len(first) // 2]
    tail = c.all_pages(f"/v1/inventory/items/{items[0]}/register", limit=200,
                       **{"from": mid["at"]})
    def when(e):
        return datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
    assert tail and tail[-1] == first[-1] and all(when(e) >= when(mid) for e in tail)
    assert tail == [e for e in first if when(e) >= when(mid)]
    check = stack.start_daemon("projector", port=free_port(),
                               env={"VETPMS_READ_SCHEMA": "read_stock_check",
                                    "VETPMS_PROJECTOR_GROUP": f"e2e-stock-{uuid.uuid4()}"})
    try:
        def caught_up():
            try:
                return query(stack, "SELECT count(*) FROM read_stock_check.event_log "
                                    "WHERE tenant_id = %s", (c.t,))[0][0] == c.sent
            except psycopg.errors.UndefinedTable:
                return False
        wait_for(caught_up, timeout=120, interval=0.2, what="rebuild caught up",
                 explain=lambda: check.log_tail(30))
    finally:
        assert check.terminate() == 0
    for table in STOCK_TABLES:
        live = tenant_digest(stack, "read", table, c.t)
        rebuilt = tenant_digest(stack, "read_stock_check", table, c.t)
        assert live == rebuilt, f"{table} (seed {seed})"
    assert tenant_digest(stack, "read", "inventory_items", c.t)[0] == 3


def test_movements_are_append_only(clinic):
    with pytest.raises(psycopg.errors.RaiseException):
        query(clinic.stack, "UPDATE read.stock_movements SET delta_milli = 0")
    with pytest.raises(psycopg.errors.RaiseException):
        query(clinic.stack, "DELETE FROM read.stock_movements")


def test_analysts_read_valuation_and_usage_not_movements(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    other = Clinic(stack, producer, daemons[1])
    item, oi = ev.new_id(), ev.new_id()
    exp = (local_today(c.tz) + timedelta(days=90)).isoformat()
    c.send([c.create(item, "V-1"),
            c.receive(item, "B1", 2500, expiry=exp, cost=201),   # 2.5 × 201 = 502.5 → 502
            c.receive(item, "B2", 1500, expiry=exp, cost=101),   # 1.5 × 101 = 151.5 → 152
            c.receive(item, "B3", 1000, expiry=exp),             # no cost: 0
            c.dispense(item, [("B3", 1000)], patient=c.p1),
            c.dispense(item, [("B1", 500)]),
            c.adjust(item, "B2", 500, reason="returned")])
    other.send([other.create(oi, "V-1"), other.receive(oi, "B1", 1000, expiry=exp, cost=5)])

    def analyst(text):
        with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
            return conn.execute(text).fetchall()

    # 2.0 × 201 = 402; 2.0 × 101 = 202
    assert analyst("SELECT code, batch_number, remaining, value_cents "
                   "FROM read.stock_valuation ORDER BY batch_number") == [
        ("V-1", "B1", Decimal("2.000"), 402), ("V-1", "B2", Decimal("2.000"), 202)]
    month = datetime.now(ZoneInfo(c.tz)).date().replace(day=1)
    assert analyst("SELECT code, month, received, dispensed, adjusted, dispenses "
                   "FROM read.stock_usage_monthly") == [
        ("V-1", month, Decimal("5.000"), Decimal("1.500"), Decimal("0.500"), 2)]
    assert analyst("SELECT count(*) FROM read.inventory_items") == [(1,)]
    for table in ("stock_movements", "stock_batches"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst(f"SELECT * FROM read.{table}")


def test_half_to_even_valuation(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    item = ev.new_id()
    c.send([c.create(item, "H-1"), c.receive(item, "B1", 500, cost=1),   # 0.5 → 0
            c.receive(item, "B2", 1500, cost=1)])                          # 1.5 → 2
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        assert conn.execute("SELECT batch_number, value_cents FROM read.stock_valuation "
                            "ORDER BY 1").fetchall() == [("B1", 0), ("B2", 2)]


def test_stock_events_of_unknown_items_and_batches_are_dead_letters(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    item, ghost = ev.new_id(), ev.new_id()
    c.send([c.create(item, "G-1"), c.receive(item, "B1", 1000, expiry="2030-01-01")])
    bad = [
        c.inv("InventoryItemUpdated", ghost, {"name": "x"}),
        c.inv("InventoryItemDeactivated", ghost, {"reason": "x"}),
        c.receive(ghost, "B1", 1000),
        c.dispense(ghost, [("B1", 100)]),
        c.adjust(ghost, "B1", -100),
        c.dispense(item, [("B1", 100), ("NOPE", 100)]),          # one unknown batch
        c.adjust(item, "NOPE", 100),
        c.receive(item, "B1", 1000, expiry="2031-01-01"),        # known batch, other expiry
        c.dispense(item, [("B1", 600), ("B1", 600)]),            # below zero
        ev.envelope("InventoryItemCreated", ev.new_id(), "inventory_item", ev.new_id(), 1,
                    {"code": "Z", "name": "Z", "category": "other", "unit": "u",
                     "controlled": False, "requires_prescription": False}),
    ]
    c.producer.send_all(bad[-1:])
    c.send(bad[:-1])
    errors = [e for (e,) in query(stack, "SELECT error FROM read.dead_letters "
                                         "WHERE tenant_id = %s ORDER BY \"offset\"", (c.t,))]
    assert len(errors) == len(bad) - 1, errors
    assert all("not found in the read model" in e for e in errors[:8]), errors
    assert "another expiry" in errors[7]
    assert "stock_batches" in errors[8] or "check" in errors[8].lower(), errors[8]
    wait_for(lambda: query(stack, "SELECT count(*) FROM read.dead_letters WHERE tenant_id = %s",
                           (bad[-1]["tenant_id"],))[0][0] == 1, what="unknown tenant")
    # the item they named is untouched
    assert query(stack, "SELECT stock_milli, version FROM read.inventory_items "
                        "WHERE tenant_id = %s AND id = %s", (c.t, item)) == [(1000, 2)]
    assert query(stack, "SELECT count(*) FROM read.stock_movements WHERE tenant_id = %s",
                 (c.t,)) == [(1,)]
    body = c.ok(f"/v1/inventory/items/{item}")
    assert body["on_hand"] == 1.0 and body["version"] == 2


def test_reads_wait_for_a_consistency_token(clinic):
    c = clinic
    item = ev.new_id()
    c.send([c.create(item, "CT-1")])
    c.producer.send_all([c.receive(item, "B1", 1234)])
    c.sent += 1
    partition, offset = c.producer.delivered[-1]
    body = c.ok(f"/v1/inventory/items/{item}", consistent_with=f"{partition}:{offset}")
    assert body["on_hand"] == 1.234
