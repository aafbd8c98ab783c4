"""Billing read side against the real stack: the invoice list (newest first,
filters status / client_id / overdue, pages), one invoice with its lines,
payments and their refunds, `overdue` by the tenant's local today, the
client's statement (rows by date then log position, running balance, opening
and closing balances, pages that stand on their own), the client's
balance_cents, the monthly revenue (half-even average and payment rate in
integer arithmetic, months without invoices left out), the currency exponent
of GBP, JPY and BHD tenants, the invoice number on a recall's dispenses, roles,
tenant isolation and input errors.

Tenants, clients and stock go through Kafka and the projector as events. The
billing tables (invoices, invoice_lines, payments, refunds, client_ledger,
revenue_monthly) are filled by SQL as their owner, vetpms_projector, with the
column meanings of schema/migrations/008_billing.sql: the invoice events'
projector is built on another branch, and these tests prove the reader alone."""

import os
import uuid
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import psycopg
import pytest
import requests
import yaml

import events as ev
from stack import free_port
from produced import ProducedTenant

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schema",
                         "openapi.yaml")
BILLING_ROLES = {"admin", "reception"}
REVENUE_ROLES = {"admin", "analyst"}
ALL_ROLES = {"admin", "reception", "vet", "nurse", "analyst", "ops"}


def check_schema(body, name):
    """body against components/schemas/<name> of schema/openapi.yaml."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        components = yaml.safe_load(f)["components"]
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}",
                               "components": components},
                        cls=jsonschema.Draft202012Validator)


def half_even(a, d):
    """round(a / d) half to even, a >= 0, d > 0, in integers."""
    q, r = divmod(a, d)
    return q + (1 if 2 * r > d or (2 * r == d and q % 2 == 1) else 0)


def line_amounts(quantity_milli, unit_price_cents, discount_bp, tax_rate_bp):
    net = half_even(quantity_milli * unit_price_cents, 1000)
    discount = half_even(net * discount_bp, 10000)
    tax = half_even((net - discount) * tax_rate_bp, 10000)
    return net, discount, tax, net - discount + tax


def local_today(tz):
    return datetime.now(ZoneInfo(tz)).date()


def rfc3339(t):
    text = t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


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
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-billing-read-{uuid.uuid4()}")
    yield p
    p.close()


class Clinic(ProducedTenant):
    """One tenant (timezone, currency) with clients Ann Smith, Bob Jones and
    Cid Empty and a patient of Ann's, sent as events; billing rows written by
    SQL as the projector's role. Ledger rows take positions 0:1000, 0:1001, ...
    in the order written."""

    def __init__(self, stack, producer, reader, tz="Europe/London", currency="GBP"):
        self.stack, self.producer, self.reader, self.tz = stack, producer, reader, tz
        self.currency = currency
        self.t = ev.new_id()
        self.ann, self.bob, self.cid = ev.new_id(), ev.new_id(), ev.new_id()
        self.rex = ev.new_id()
        self.seqs = {}
        self.sent = 0
        self.next_offset = 1000
        self.next_seq = 1
        self.send([
            ev.envelope("TenantProvisioned", self.t, "tenant", self.t, self.seq(self.t),
                        {"name": "Billing Vets", "timezone": tz, "currency": currency}),
            ev.client_registered(self.t, self.ann, "Ann", "Smith", seq=self.seq(self.ann)),
            ev.client_registered(self.t, self.bob, "Bob", "Jones", seq=self.seq(self.bob)),
            ev.client_registered(self.t, self.cid, "Cid", "Empty", seq=self.seq(self.cid)),
            ev.patient_registered(self.t, self.rex, self.ann, "Rex", seq=self.seq(self.rex)),
        ])

    # --- HTTP ---------------------------------------------------------------
    def headers(self, roles):
        roles = [roles] if isinstance(roles, str) else list(roles)
        return {"Authorization": "Bearer " + self.stack.token(roles, tenant=self.t)}

    def get(self, path, roles="admin", **params):
        return requests.get(self.reader.url + path, headers=self.headers(roles),
                            params=params, timeout=10)

    def ok(self, path, roles="admin", **params):
        r = self.get(path, roles, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def bad(self, path, field, roles="admin", **params):
        r = self.get(path, roles, **params)
        assert r.status_code == 400, (path, params, r.text)
        body = r.json()["error"]
        assert body["code"] == "VALIDATION_ERROR"
        assert field in [d["field"] for d in body["details"]], (params, body)
        return body

    def pages(self, path, limit, **params):
        """Every page of a list: (rows, pages' bodies without data)."""
        rows, others, cursor = [], [], None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            body = self.ok(path, limit=limit, **params, **extra)
            assert len(body["data"]) <= limit
            rows += body.pop("data")
            cursor = body.pop("next_cursor")
            others.append(body)
            if not cursor:
                return rows, others
            assert len(others) < 100

    # --- billing rows, as the projector would write them ---------------------
    def sql(self, text, params=()):
        with psycopg.connect(self.stack.dsn("projector"), autocommit=True) as conn:
            conn.execute(text, params)

    def invoice(self, client, lines=(), status="issued", issued_on=None, due_on=None,
                paid=0, refunded=0, paid_on=None, created_at=None, numbered=None,
                void_reason=None, appointment=None):
        """An invoice with its lines (description, quantity_milli, unit price,
        discount_bp, tax_rate_bp); numbered when issued once (the default for
        any status but draft). Returns (id, number)."""
        inv = ev.new_id()
        created_at = created_at or datetime.now(timezone.utc)
        amounts = [line_amounts(q, p, d, t) for _, q, p, d, t in lines]
        totals = [sum(a[k] for a in amounts) for k in range(4)]
        numbered = status != "draft" if numbered is None else numbered
        seq = number = None
        if numbered:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            number = f"INV-{seq:06d}"
            issued_on = issued_on or local_today(self.tz)
            due_on = due_on or issued_on + timedelta(days=30)
        voided_at = created_at + timedelta(hours=1) if status == "void" else None
        self.sql("INSERT INTO read.invoices (tenant_id, id, client_id, appointment_id, status,"
                 " number, number_seq, issued_on, due_on, issued_at, paid_on, line_count,"
                 " net_cents, discount_cents, tax_cents, total_cents, paid_cents,"
                 " refunded_cents, void_reason, voided_at, voided_on, version, created_at,"
                 " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                 " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (self.t, inv, client, appointment, status, number, seq, issued_on, due_on,
                  created_at if numbered else None, paid_on, len(lines), *totals, paid,
                  refunded, void_reason, voided_at, voided_at and voided_at.date(),
                  1 + len(lines) + numbered, created_at, created_at + timedelta(minutes=5)))
        for n, ((desc, q, p, d, t), a) in enumerate(zip(lines, amounts), start=1):
            self.sql("INSERT INTO read.invoice_lines (tenant_id, invoice_id, id, position,"
                     " description, item_id, quantity_milli, unit_price_cents, discount_bp,"
                     " tax_rate_bp, net_cents, discount_cents, tax_cents, line_total_cents,"
                     " added_at) VALUES (%s, %s, %s, %s, %s, NULL, %s, %s, %s, %s, %s, %s, %s,"
                     " %s, %s)", (self.t, inv, ev.new_id(), n, desc, q, p, d, t, *a,
                                  created_at))
        return inv, number

    def payment(self, inv, amount, received_on, method="card", refunded=0, reference=None,
                recorded_at=None):
        pay = ev.new_id()
        self.sql("INSERT INTO read.payments (tenant_id, invoice_id, id, amount_cents,"
                 " refunded_cents, method, reference, received_on, recorded_at, actor)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'e2e')",
                 (self.t, inv, pay, amount, refunded, method, reference, received_on,
                  recorded_at or datetime.now(timezone.utc)))
        return pay

    def refund(self, inv, pay, amount, refunded_at, reason="overcharged"):
        ref = ev.new_id()
        self.sql("INSERT INTO read.refunds (tenant_id, invoice_id, payment_id, id,"
                 " amount_cents, reason, refunded_on, refunded_at, actor)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'e2e')",
                 (self.t, inv, pay, ref, amount, reason,
                  refunded_at.astimezone(ZoneInfo(self.tz)).date(), refunded_at))
        return ref

    def ledger(self, client, kind, on_date, inv, number, amount, payment=None, refund=None):
        offset, self.next_offset = self.next_offset, self.next_offset + 1
        self.sql("INSERT INTO read.client_ledger (tenant_id, client_id, partition, \"offset\","
                 " on_date, kind, invoice_id, invoice_number, payment_id, refund_id,"
                 " amount_cents, at) VALUES (%s, %s, 0, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                 (self.t, client, offset, on_date, kind, inv, number, payment, refund, amount))

    def revenue(self, month, count, invoiced, paid, collected=0):
        self.sql("INSERT INTO read.revenue_monthly (tenant_id, month, invoice_count,"
                 " invoiced_cents, paid_cents, collected_cents) VALUES (%s, %s, %s, %s, %s, %s)",
                 (self.t, date.fromisoformat(month + "-01"), count, invoiced, paid, collected))


@pytest.fixture
def fresh(stack, daemons, producer):
    """A new clinic per test (its own ids, numbers, ledger and revenue)."""
    def make(**kw):
        return Clinic(stack, producer, daemons[1], **kw)
    return make


CONSULT = ("Consultation", 1000, 6000, 0, 2000)          # 6000 + 1200 tax = 7200
MELOX = ("Meloxicam 1 mg", 2500, 333, 1000, 2000)        # 832.5 -> 832, -83, +150 = 899


# --- one invoice ----------------------------------------------------------------

def test_invoice_reads_with_lines_payments_and_their_refunds(fresh):
    c = fresh()
    issued = local_today(c.tz) - timedelta(days=3)
    created = datetime.now(timezone.utc).replace(microsecond=250000) - timedelta(days=3)
    inv, number = c.invoice(c.ann, [CONSULT, MELOX], status="partially_paid", issued_on=issued,
                            paid=5000, refunded=1000, created_at=created)
    assert line_amounts(*MELOX[1:]) == (832, 83, 150, 899)
    later = datetime.now(timezone.utc) - timedelta(days=1)
    p2 = c.payment(inv, 1000, issued + timedelta(days=1), method="cash", reference="till 2",
                   recorded_at=later)
    p1 = c.payment(inv, 5000, issued, refunded=1000, recorded_at=created)
    r1 = c.refund(inv, p1, 600, later, reason="first")
    r2 = c.refund(inv, p1, 400, later + timedelta(minutes=1), reason="second")

    body = c.ok(f"/v1/invoices/{inv}", roles="reception")
    check_schema(body, "InvoiceDetail")
    lines, payments = body.pop("lines"), body.pop("payments")
    assert body == {
        "id": inv, "client_id": c.ann, "client_name": "Ann Smith", "appointment_id": None,
        "status": "partially_paid", "number": number, "issued_on": issued.isoformat(),
        "due_on": (issued + timedelta(days=30)).isoformat(), "overdue": False, "paid_on": None,
        "currency": "GBP", "currency_exponent": 2,
        "net_cents": 6832, "discount_cents": 83, "tax_cents": 1350, "total_cents": 8099,
        "paid_cents": 5000, "refunded_cents": 1000, "balance_cents": 3099, "line_count": 2,
        "void_reason": None, "voided_at": None, "version": 4,
        "created_at": rfc3339(created), "updated_at": rfc3339(created + timedelta(minutes=5))}
    assert [{k: v for k, v in ln.items() if k != "id"} for ln in lines] == [
        {"position": 1, "description": "Consultation", "item_id": None, "quantity": 1.0,
         "unit_price_cents": 6000, "discount_bp": 0, "tax_rate_bp": 2000, "net_cents": 6000,
         "discount_cents": 0, "tax_cents": 1200, "line_total_cents": 7200},
        {"position": 2, "description": "Meloxicam 1 mg", "item_id": None, "quantity": 2.5,
         "unit_price_cents": 333, "discount_bp": 1000, "tax_rate_bp": 2000, "net_cents": 832,
         "discount_cents": 83, "tax_cents": 150, "line_total_cents": 899}]
    # payments by the date received; refunds as made
    assert [p["id"] for p in payments] == [p1, p2]
    assert payments[1] == {"id": p2, "amount_cents": 1000, "refunded_cents": 0,
                           "method": "cash", "reference": "till 2",
                           "received_on": (issued + timedelta(days=1)).isoformat(),
                           "recorded_at": rfc3339(later), "refunds": []}
    assert payments[0]["refunded_cents"] == 1000 and payments[0]["reference"] is None
    assert [(r["id"], r["amount_cents"], r["reason"]) for r in payments[0]["refunds"]] == [
        (r1, 600, "first"), (r2, 400, "second")]
    assert payments[0]["refunds"][0]["refunded_on"] == \
        later.astimezone(ZoneInfo(c.tz)).date().isoformat()
    # quantities leave with 3 places
    assert '"quantity":2.500' in c.get(f"/v1/invoices/{inv}").text.replace(" ", "")


def test_a_draft_and_a_void_invoice(fresh):
    c = fresh()
    draft, number = c.invoice(c.bob, [CONSULT], status="draft")
    body = c.ok(f"/v1/invoices/{draft}")
    assert number is None and body["number"] is None and body["issued_on"] is None
    assert body["due_on"] is None and body["overdue"] is False
    assert body["total_cents"] == 7200 and body["balance_cents"] == 0
    assert body["payments"] == [] and len(body["lines"]) == 1
    empty, _ = c.invoice(c.bob, [], status="draft")
    assert c.ok(f"/v1/invoices/{empty}")["lines"] == []
    void, _ = c.invoice(c.bob, [CONSULT], status="void", void_reason="wrong client",
                        issued_on=local_today(c.tz) - timedelta(days=90))
    body = c.ok(f"/v1/invoices/{void}")
    assert body["status"] == "void" and body["void_reason"] == "wrong client"
    assert body["voided_at"].endswith("Z") and body["overdue"] is False
    assert body["balance_cents"] == 0


# --- the list -------------------------------------------------------------------

def test_invoice_list_newest_first_with_filters_and_pages(fresh):
    c = fresh()
    today = local_today(c.tz)
    base = datetime.now(timezone.utc) - timedelta(days=10)
    made = {}
    specs = [  # name, client, status, due_on, paid
        ("draft", c.ann, "draft", None, 0),
        ("due", c.ann, "issued", today + timedelta(days=5), 0),
        ("late", c.bob, "issued", today - timedelta(days=1), 0),
        ("late-part", c.ann, "partially_paid", today - timedelta(days=40), 100),
        ("paid-late", c.bob, "paid", today - timedelta(days=40), 7200),
        ("void", c.ann, "void", today - timedelta(days=2), 0),
        ("due-today", c.bob, "partially_paid", today, 200),
    ]
    for n, (name, client, status, due, paid) in enumerate(specs):
        issued = due and due - timedelta(days=30)
        made[name], _ = c.invoice(client, [CONSULT], status=status, issued_on=issued,
                                  due_on=due, paid=paid, created_at=base + timedelta(hours=n))
    # two invoices created at the same instant: the id breaks the tie
    twin_time = base + timedelta(hours=3, minutes=30)
    made["twin-a"], _ = c.invoice(c.cid, [CONSULT], status="draft", created_at=twin_time)
    made["twin-b"], _ = c.invoice(c.cid, [CONSULT], status="draft", created_at=twin_time)

    body = c.ok("/v1/invoices")
    check_schema(body, "InvoicePage")
    assert body["next_cursor"] is None
    rows = body["data"]
    assert [(r["created_at"], r["id"]) for r in rows] == sorted(
        ((r["created_at"], r["id"]) for r in rows), reverse=True)
    assert len(rows) == len(made) and rows[0]["id"] == made["due-today"]
    assert "lines" not in rows[0] and "payments" not in rows[0]
    assert rows[0]["currency"] == "GBP" and rows[0]["client_name"] == "Bob Jones"
    overdue = {r["id"] for r in rows if r["overdue"]}
    assert overdue == {made["late"], made["late-part"]}

    for limit in (1, 2, 3, 9, 200):
        paged, _ = c.pages("/v1/invoices", limit)
        assert [r["id"] for r in paged] == [r["id"] for r in rows], limit
    by_id = {v: k for k, v in made.items()}

    def names(**params):
        got, _ = c.pages("/v1/invoices", 2, **params)
        return [by_id[r["id"]] for r in got]

    twins = sorted(["twin-a", "twin-b"], key=lambda n: made[n], reverse=True)
    assert names(status="draft") == twins + ["draft"]
    assert names(status="partially_paid") == ["due-today", "late-part"]
    assert names(status="void") == ["void"] and names(status="paid") == ["paid-late"]
    assert names(client_id=c.bob) == ["due-today", "paid-late", "late"]
    assert names(client_id=c.bob.upper(), status="issued") == ["late"]
    assert names(overdue="true") == ["late-part", "late"]
    assert set(names(overdue="false")) == set(made) - {"late-part", "late"}
    assert names(overdue="true", client_id=c.ann) == ["late-part"]
    assert names(client_id=ev.new_id()) == []

    c.bad("/v1/invoices", "status", status="overdue")
    c.bad("/v1/invoices", "status", status="PAID")
    c.bad("/v1/invoices", "overdue", overdue="yes")
    c.bad("/v1/invoices", "client_id", client_id="ann")
    c.bad("/v1/invoices", "limit", limit=0)
    c.bad("/v1/invoices", "limit", limit=201)
    c.bad("/v1/invoices", "cursor", cursor="not-a-cursor")
    # a cursor of another list is refused
    clients_cursor = c.ok("/v1/clients", limit=1)["next_cursor"]
    c.bad("/v1/invoices", "cursor", cursor=clients_cursor)


def test_overdue_is_by_the_tenants_local_date(fresh):
    """Kiritimati is UTC+14, Pago Pago UTC-11: at any hour one of them has a
    local date other than UTC's, and a due date between the two is overdue in
    one reading and not in the other."""
    utc_today = datetime.now(timezone.utc).date()
    differs = 0
    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        c = fresh(tz=tz)
        today = local_today(tz)
        differs += today != utc_today
        dues = {today - timedelta(days=1), today, utc_today - timedelta(days=1), utc_today,
                today + timedelta(days=1)}
        made = {}
        for due in sorted(dues):
            made[due], _ = c.invoice(c.ann, [CONSULT], issued_on=due - timedelta(days=30),
                                     due_on=due)
        got = {r["id"]: r["overdue"] for r in c.ok("/v1/invoices")["data"]}
        assert got == {made[d]: d < today for d in dues}, tz
        for due, inv in made.items():
            assert c.ok(f"/v1/invoices/{inv}")["overdue"] is (due < today), (tz, due)
        listed = {r["id"] for r in c.ok("/v1/invoices", overdue="true")["data"]}
        assert listed == {made[d] for d in dues if d < today}, tz
    assert differs >= 1


# --- the client's balance and statement ------------------------------------------

def statement_fixture(c):
    """Ann: invoice A (8099) partly paid, B (1000) issued then void, a draft
    and a paid invoice; Bob: one issued invoice of 700. The ledger in log
    order, with a payment received before invoice B's date but logged after."""
    d = date(2026, 8, 1)
    a, na = c.invoice(c.ann, [CONSULT, MELOX], status="partially_paid", issued_on=d +
                      timedelta(days=4), paid=5000, refunded=1000)
    b, nb = c.invoice(c.ann, [("Nail clip", 1000, 1000, 0, 0)], status="void",
                      issued_on=d + timedelta(days=19), void_reason="duplicate")
    c.invoice(c.ann, [CONSULT], status="draft")
    paid, npaid = c.invoice(c.ann, [("Shampoo", 1000, 300, 0, 0)], status="paid",
                            issued_on=d + timedelta(days=60), paid=300)
    bob_inv, nbob = c.invoice(c.bob, [("Bath", 1000, 700, 0, 0)], issued_on=d)
    p1, p2, p3 = ev.new_id(), ev.new_id(), ev.new_id()
    r1 = ev.new_id()
    c.ledger(c.ann, "invoice", d + timedelta(days=4), a, na, 8099)               # 08-05
    c.ledger(c.bob, "invoice", d, bob_inv, nbob, 700)
    c.ledger(c.ann, "invoice", d + timedelta(days=19), b, nb, 1000)              # 08-20
    c.ledger(c.ann, "payment", d + timedelta(days=9), a, na, -5000, payment=p1)  # 08-10
    c.ledger(c.ann, "refund", d + timedelta(days=19), a, na, 1000, payment=p1,   # 08-20
             refund=r1)
    c.ledger(c.ann, "payment", d + timedelta(days=32), a, na, -1000, payment=p2)  # 09-02
    c.ledger(c.ann, "void", d + timedelta(days=33), b, nb, -1000)                # 09-03
    c.ledger(c.ann, "invoice", d + timedelta(days=60), paid, npaid, 300)         # 09-30
    c.ledger(c.ann, "payment", d + timedelta(days=60), paid, npaid, -300, payment=p3)
    return {"A": a, "B": b, "paid": paid, "p1": p1, "p2": p2, "p3": p3, "r1": r1,
            "na": na, "nb": nb, "npaid": npaid}


def test_client_balance_is_the_sum_of_open_invoice_balances(fresh):
    c = fresh()
    statement_fixture(c)
    ann = c.ok(f"/v1/clients/{c.ann}", roles="vet")
    check_schema(ann, "ClientDetail")
    assert ann["balance_cents"] == 3099
    assert (ann["currency"], ann["currency_exponent"]) == ("GBP", 2)
    assert c.ok(f"/v1/clients/{c.bob}")["balance_cents"] == 700
    assert c.ok(f"/v1/clients/{c.cid}")["balance_cents"] == 0
    # the statement's closing balance is the same figure
    assert c.ok(f"/v1/clients/{c.ann}/statement")["closing_balance_cents"] == 3099


def test_statement_rows_running_balance_opening_and_closing(fresh):
    c = fresh()
    f = statement_fixture(c)
    today = local_today(c.tz)
    body = c.ok(f"/v1/clients/{c.ann}/statement", roles="reception")
    check_schema(body, "StatementPage")
    rows = body.pop("data")
    assert body == {"client_id": c.ann, "from": "2026-08-05", "to": today.isoformat(),
                    "currency": "GBP", "currency_exponent": 2, "opening_balance_cents": 0,
                    "closing_balance_cents": 3099, "next_cursor": None}
    assert rows == [
        {"date": "2026-08-05", "kind": "invoice", "invoice_id": f["A"], "invoice_number": f["na"],
         "payment_id": None, "refund_id": None, "amount_cents": 8099, "balance_cents": 8099},
        {"date": "2026-08-10", "kind": "payment", "invoice_id": f["A"], "invoice_number": f["na"],
         "payment_id": f["p1"], "refund_id": None, "amount_cents": -5000,
         "balance_cents": 3099},
        {"date": "2026-08-20", "kind": "invoice", "invoice_id": f["B"], "invoice_number": f["nb"],
         "payment_id": None, "refund_id": None, "amount_cents": 1000, "balance_cents": 4099},
        {"date": "2026-08-20", "kind": "refund", "invoice_id": f["A"], "invoice_number": f["na"],
         "payment_id": f["p1"], "refund_id": f["r1"], "amount_cents": 1000,
         "balance_cents": 5099},
        {"date": "2026-09-02", "kind": "payment", "invoice_id": f["A"], "invoice_number": f["na"],
         "payment_id": f["p2"], "refund_id": None, "amount_cents": -1000,
         "balance_cents": 4099},
        {"date": "2026-09-03", "kind": "void", "invoice_id": f["B"], "invoice_number": f["nb"],
         "payment_id": None, "refund_id": None, "amount_cents": -1000, "balance_cents": 3099},
        {"date": "2026-09-30", "kind": "invoice", "invoice_id": f["paid"],
         "invoice_number": f["npaid"], "payment_id": None, "refund_id": None,
         "amount_cents": 300, "balance_cents": 3399},
        {"date": "2026-09-30", "kind": "payment", "invoice_id": f["paid"],
         "invoice_number": f["npaid"], "payment_id": f["p3"], "refund_id": None,
         "amount_cents": -300, "balance_cents": 3099},
    ]

    def window(**params):
        b = c.ok(f"/v1/clients/{c.ann}/statement", **params)
        return ([(r["date"], r["kind"], r["balance_cents"]) for r in b["data"]],
                b["opening_balance_cents"], b["closing_balance_cents"], b["from"], b["to"])

    assert window(**{"from": "2026-08-10", "to": "2026-08-20"}) == (
        [("2026-08-10", "payment", 3099), ("2026-08-20", "invoice", 4099),
         ("2026-08-20", "refund", 5099)], 8099, 5099, "2026-08-10", "2026-08-20")
    assert window(**{"from": "2026-08-20", "to": "2026-08-20"})[0] == [
        ("2026-08-20", "invoice", 4099), ("2026-08-20", "refund", 5099)]
    assert window(**{"from": "2026-08-11", "to": "2026-08-19"}) == (
        [], 3099, 3099, "2026-08-11", "2026-08-19")
    assert window(**{"from": "2026-08-21", "to": "2026-09-29"}) == (
        [("2026-09-02", "payment", 4099), ("2026-09-03", "void", 3099)], 5099, 3099,
        "2026-08-21", "2026-09-29")
    # to alone: from the first row
    assert window(to="2026-08-09") == ([("2026-08-05", "invoice", 8099)], 0, 8099,
                                       "2026-08-05", "2026-08-09")
    # before anything and after everything
    assert window(**{"from": "2020-01-01", "to": "2020-12-31"}) == (
        [], 0, 0, "2020-01-01", "2020-12-31")
    future = (today + timedelta(days=10)).isoformat()
    assert window(**{"from": future}) == ([], 3099, 3099, future, future)

    # pages stand on their own: the same rows and balances at every size
    for limit in (1, 2, 3, 7, 8, 200):
        paged, others = c.pages(f"/v1/clients/{c.ann}/statement", limit)
        assert paged == rows, limit
        assert all(o == {k: v for k, v in body.items() if k != "next_cursor"}
                   for o in others), limit
    paged, others = c.pages(f"/v1/clients/{c.ann}/statement", 1,
                            **{"from": "2026-08-10", "to": "2026-09-02"})
    assert [(r["kind"], r["balance_cents"]) for r in paged] == [
        ("payment", 3099), ("invoice", 4099), ("refund", 5099), ("payment", 4099)]
    assert {(o["opening_balance_cents"], o["closing_balance_cents"]) for o in others} == {
        (8099, 4099)}

    # a client without rows
    assert c.ok(f"/v1/clients/{c.cid}/statement") == {
        "client_id": c.cid, "from": today.isoformat(), "to": today.isoformat(),
        "currency": "GBP", "currency_exponent": 2, "opening_balance_cents": 0,
        "closing_balance_cents": 0, "data": [], "next_cursor": None}
    bob = c.ok(f"/v1/clients/{c.bob}/statement")
    assert [r["amount_cents"] for r in bob["data"]] == [700]

    path = f"/v1/clients/{c.ann}/statement"
    c.bad(path, "to", **{"from": "2026-08-21", "to": "2026-08-20"})
    c.bad(path, "from", **{"from": "2026-08-32"})
    c.bad(path, "to", to="20261020")
    c.bad(path, "from", **{"from": "2026-10-01T00:00:00Z"})
    c.bad(path, "limit", limit="x")


def test_statement_of_unknown_or_another_tenants_client_is_404(fresh):
    c, other = fresh(), fresh()
    statement_fixture(c)
    for path in (f"/v1/clients/{c.ann}/statement", f"/v1/clients/{ev.new_id()}/statement",
                 "/v1/clients/not-a-uuid/statement"):
        r = other.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", path


# --- revenue --------------------------------------------------------------------

REVENUE = [  # month, count, invoiced, paid, collected
    ("2025-12", 1, 1000, 1000, 1000),
    ("2026-01", 2, 3, 3, 0),           # average 1.5 -> 2, rate 10000
    ("2026-02", 2, 5, 0, 0),           # average 2.5 -> 2, rate 0
    ("2026-03", 1, 20000, 1, 7),       # rate 0.5 -> 0
    ("2026-04", 1, 20000, 3, 0),       # rate 1.5 -> 2
    ("2026-05", 3, 1001, 500, 500),    # average 333.67 -> 334, rate 4995.004 -> 4995
    ("2026-06", 0, 0, 0, 700),         # no invoice: left out, collected or not
    ("2026-07", 1, 0, 0, 0),           # a zero invoice: rate 10000
    ("2026-08", 3, 3 * (10**13 - 1), 10**13 + 1, 0),   # paid × 10000 is past int64
    ("2026-09", 2, 7, 1, 0),           # average 3.5 -> 4, rate 1428.57 -> 1429
    ("2026-10", 4, 10, 5, 0),          # average 2.5 -> 2, rate 5000
    ("2027-01", 1, 50, 50, 0),
]


def expected_month(month, count, invoiced, paid, collected):
    rate = 10000 if invoiced == 0 else half_even(paid * 10000, invoiced)
    return {"month": month, "invoice_count": count, "invoiced_cents": invoiced,
            "paid_cents": paid, "outstanding_cents": invoiced - paid,
            "average_invoice_cents": half_even(invoiced, count), "payment_rate_bp": rate,
            "payment_rate": rate / 10000, "collected_cents": collected}


def test_revenue_monthly_half_even_in_integers(fresh):
    c = fresh()
    for row in REVENUE:
        c.revenue(*row)
    body = c.ok("/v1/stats/revenue/monthly", roles="analyst",
                **{"from": "2026-01", "to": "2026-12"})
    check_schema(body, "RevenueMonthly")
    data = body.pop("data")
    assert body == {"from": "2026-01", "to": "2026-12", "timezone": "Europe/London",
                    "currency": "GBP", "currency_exponent": 2}
    assert data == [expected_month(*r) for r in REVENUE
                    if "2026-01" <= r[0] <= "2026-12" and r[1] > 0]
    by_month = {d["month"]: d for d in data}
    assert [by_month[m]["average_invoice_cents"] for m in ("2026-01", "2026-02", "2026-09",
                                                           "2026-10")] == [2, 2, 4, 2]
    assert [by_month[m]["payment_rate_bp"] for m in ("2026-03", "2026-04", "2026-05",
                                                     "2026-07")] == [0, 2, 4995, 10000]
    big = by_month["2026-08"]
    assert big["average_invoice_cents"] == 10**13 - 1
    assert big["payment_rate_bp"] == 3333 and big["outstanding_cents"] == 2 * 10**13 - 4
    # the fraction leaves with 4 places
    raw = c.get("/v1/stats/revenue/monthly", **{"from": "2026-03", "to": "2026-05"}).text
    raw = raw.replace(" ", "")
    assert '"payment_rate":0.0000' in raw and '"payment_rate":0.0002' in raw
    assert '"payment_rate":0.4995' in raw
    assert '"payment_rate":1.0000' in c.get("/v1/stats/revenue/monthly",
                                            **{"from": "2026-07", "to": "2026-07"}).text.replace(
                                                " ", "")
    # one month; a range without invoices
    one = c.ok("/v1/stats/revenue/monthly", **{"from": "2025-12", "to": "2025-12"})["data"]
    assert one == [expected_month(*REVENUE[0])]
    assert c.ok("/v1/stats/revenue/monthly", **{"from": "2026-06", "to": "2026-06"})["data"] \
        == []
    # 120 months is the most one answer covers
    assert len(c.ok("/v1/stats/revenue/monthly",
                    **{"from": "2017-02", "to": "2027-01"})["data"]) == 11
    path = "/v1/stats/revenue/monthly"
    c.bad(path, "to", **{"from": "2017-01", "to": "2027-01"})
    c.bad(path, "to", **{"from": "2026-05", "to": "2026-04"})
    for bad in ("2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", "2026/01", "", "abcd-ef"):
        c.bad(path, "from", **{"from": bad, "to": "2026-12"})
    c.bad(path, "to", **{"from": "2026-01"})
    c.bad(path, "from", to="2026-01")


# --- currencies -------------------------------------------------------------------

@pytest.mark.parametrize("currency,exponent", [("JPY", 0), ("BHD", 3), ("EUR", 2)])
def test_every_answer_carries_the_currency_exponent(fresh, currency, exponent):
    c = fresh(currency=currency)
    inv, number = c.invoice(c.ann, [("Check-up", 1000, 12345, 0, 0)])
    c.ledger(c.ann, "invoice", local_today(c.tz), inv, number, 12345)
    c.revenue(local_today(c.tz).strftime("%Y-%m"), 1, 12345, 0)
    pair = (currency, exponent)
    got = c.ok(f"/v1/invoices/{inv}")
    assert (got["currency"], got["currency_exponent"]) == pair and got["total_cents"] == 12345
    got = c.ok("/v1/invoices")["data"][0]
    assert (got["currency"], got["currency_exponent"]) == pair
    got = c.ok(f"/v1/clients/{c.ann}/statement")
    assert (got["currency"], got["currency_exponent"]) == pair
    got = c.ok(f"/v1/clients/{c.ann}")
    assert (got["currency"], got["currency_exponent"]) == pair and got["balance_cents"] == 12345
    month = local_today(c.tz).strftime("%Y-%m")
    got = c.ok("/v1/stats/revenue/monthly", **{"from": month, "to": month})
    assert (got["currency"], got["currency_exponent"]) == pair
    assert got["data"][0]["invoiced_cents"] == 12345


# --- roles and tenants ------------------------------------------------------------

def test_roles_401_and_404_across_tenants(fresh, stack):
    c, other = fresh(), fresh()
    inv, _ = c.invoice(c.ann, [CONSULT])
    month = {"from": "2026-01", "to": "2026-02"}
    routes = [("/v1/invoices", {}, BILLING_ROLES), (f"/v1/invoices/{inv}", {}, BILLING_ROLES),
              (f"/v1/clients/{c.ann}/statement", {}, BILLING_ROLES),
              ("/v1/stats/revenue/monthly", month, REVENUE_ROLES)]
    for path, params, allowed in routes:
        for role in sorted(ALL_ROLES):
            r = c.get(path, role, **params)
            if role in allowed:
                assert r.status_code == 200, (path, role, r.text)
            else:
                assert r.status_code == 403, (path, role)
                assert r.json()["error"]["code"] == "FORBIDDEN"
        r = requests.get(c.reader.url + path, params=params, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
        for roles in ("platform-admin", "admin"):  # a token without a tenant
            r = requests.get(c.reader.url + path, params=params, timeout=10, headers={
                "Authorization": "Bearer " + stack.token(roles)})
            assert r.status_code == 403, (path, roles)
    for path in (f"/v1/invoices/{inv}", f"/v1/invoices/{ev.new_id()}", "/v1/invoices/INV-000001",
                 f"/v1/clients/{c.ann}/statement"):
        r = other.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", path
    assert other.ok("/v1/invoices")["data"] == []
    assert other.ok("/v1/invoices", client_id=c.ann)["data"] == []
    assert other.ok(f"/v1/clients/{other.ann}")["balance_cents"] == 0
    assert c.ok(f"/v1/clients/{c.ann}")["balance_cents"] == 7200


def test_reads_wait_for_a_consistency_token(fresh):
    c = fresh()
    inv, _ = c.invoice(c.ann, [CONSULT])
    c.producer.send_all([ev.client_registered(c.t, ev.new_id(), "Dee", "Late")])
    c.sent += 1
    partition, offset = c.producer.delivered[-1]
    body = c.ok(f"/v1/invoices/{inv}", consistent_with=f"{partition}:{offset}")
    assert body["id"] == inv


# --- the recall names the invoice ---------------------------------------------------

def test_recall_dispenses_carry_the_invoice_number(fresh):
    c = fresh()
    item = ev.new_id()
    billed, number = c.invoice(c.ann, [("Meloxicam", 1000, 250, 0, 0)])
    draft, _ = c.invoice(c.ann, [("Meloxicam", 1000, 250, 0, 0)], status="draft")
    exp = (local_today(c.tz) + timedelta(days=90)).isoformat()

    def inv(type_, data):
        return ev.envelope(type_, c.t, "inventory_item", item, c.seq(item), data)

    def dispense(invoice):
        return inv("StockDispensed", {"allocations": [{"batch_number": "B1",
                                                       "quantity_milli": 1000}],
                                      "prescription_id": None, "patient_id": c.rex,
                                      "invoice_id": invoice, "witness_id": None})

    c.send([inv("InventoryItemCreated", {"code": "MEL", "name": "Meloxicam", "category":
                                         "medication", "unit": "tablet", "controlled": False,
                                         "requires_prescription": False,
                                         "reorder_point_milli": None,
                                         "reorder_quantity_milli": None,
                                         "sale_price_cents": 250, "tax_rate_bp": 0}),
            inv("StockReceived", {"batch_number": "B1", "lot_number": "LOT-7",
                                  "expiry_date": exp, "quantity_milli": 10000,
                                  "unit_cost_cents": 100, "supplier_invoice": None}),
            dispense(billed), dispense(None), dispense(draft)])
    body = c.ok("/v1/inventory/recall", roles="vet", lot_number="LOT-7")
    check_schema(body, "StockRecall")
    assert [(d["invoice_id"], d["invoice_number"]) for d in body["dispenses"]] == [
        (billed, number), (None, None), (draft, None)]
    assert number == "INV-000001"
