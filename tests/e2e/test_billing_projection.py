"""Billing read model against the real stack: the seven invoice events,
produced straight into vetpms.events (no writer), are projected into invoices
(running totals, the status machine draft -> issued -> partially_paid -> paid,
refunds stepping back, void), invoice_lines, payments, refunds, client_ledger
and revenue_monthly. revenue_monthly equals a recomputation from the events
produced (tenant-local months in Europe/London, across the 2026-03-29 DST
change and a month boundary, with a refund at 23:30Z on 31 March, i.e. on
1 April locally) and the materialized view revenue_monthly_summary after its
refresh, which only invoice events trigger; the client ledger sums to the
balances; events that contradict the read model are dead letters that change
nothing; and `projector rebuild` gives the same billing tables row for row."""

import random
import re
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

import events as ev
from stack import free_port, running_stack, wait_for
from produced import ProducedTenant
from readmodel import query

TZ = "Europe/London"
REFRESH_MS = 300
BILLING_TABLES = ("invoices", "invoice_lines", "payments", "refunds", "client_ledger",
                  "revenue_monthly", "revenue_monthly_summary")
VIEWS = ("appointment_type_mix_monthly", "diagnosis_counts_monthly",
         "treatment_counts_monthly", "revenue_monthly_summary")


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the rebuild's swap replaces schema `read` of the
    whole database under the other modules' fixtures (see test_rebuild.py)."""
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def projector(stack):
    d = stack.start_daemon("projector", port=free_port(),
                           env={"VETPMS_PROJECTOR_MV_REFRESH_MS": str(REFRESH_MS)})
    d.wait_ready(90)
    yield d
    assert d.terminate() == 0


@pytest.fixture(scope="module")
def producer(stack):
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-billing-{uuid.uuid4()}")
    yield p
    p.close()


def execute(stack, text):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        conn.execute(text)


def refreshes(projector, view, metric="vetpms_projector_mv_refreshes_total"):
    name = f'{metric}{{view="{view}"}}'
    m = re.search(rf"^{re.escape(name)} (\d+)$", projector.get("/metrics").text, re.M)
    return int(m.group(1)) if m else 0


def rfc(text):
    """An RFC 3339 instant with microseconds from '2026-03-31T23:30:00'."""
    return text + ".000000Z"


def half_even(num, den):
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return q


def line_amounts(quantity_milli, price, discount_bp=0, tax_bp=0):
    net = half_even(quantity_milli * price, 1000)
    discount = half_even(net * discount_bp, 10000)
    tax = half_even((net - discount) * tax_bp, 10000)
    return net, discount, tax, net - discount + tax


class Clinic(ProducedTenant):
    """One tenant in Europe/London (GBP) with two clients, a vet and a patient;
    builders of the invoice events (seq tracked per aggregate); `send` produces
    envelopes and waits until each is logged or dead-lettered, and keeps those
    that were applied for the recomputations."""

    def __init__(self, stack, producer, tz=TZ):
        self.stack, self.producer, self.tz = stack, producer, tz
        self.t = ev.new_id()
        self.c1, self.c2 = ev.new_id(), ev.new_id()
        self.vet, self.p1 = ev.new_id(), ev.new_id()
        self.seqs = {}
        self.sent = 0
        self.applied = []
        self.send([
            ev.envelope("TenantProvisioned", self.t, "tenant", self.t, self.seq(self.t),
                        {"name": "Billing Vets", "timezone": tz, "currency": "GBP"}),
            ev.envelope("StaffRegistered", self.t, "staff", self.vet, self.seq(self.vet),
                        {"name": "Dr Alice Adams", "role": "veterinarian", "email": None,
                         "license_number": "L-1"}),
            ev.client_registered(self.t, self.c1, "Ann", "Smith", seq=self.seq(self.c1)),
            ev.client_registered(self.t, self.c2, "Bob", "Jones", seq=self.seq(self.c2)),
            ev.patient_registered(self.t, self.p1, self.c1, "Rex", seq=self.seq(self.p1)),
        ])

    def dead_count(self):
        return query(self.stack, "SELECT count(*) FROM read.dead_letters WHERE tenant_id = %s",
                     (self.t,))[0][0]

    def send(self, envs, dead=0):
        """Produces envs; dead of them (the last ones) are expected dead letters."""
        before = self.dead_count() if self.sent else 0
        super().send(envs)
        errors = query(self.stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s "
                                   "ORDER BY \"offset\"", (self.t,))
        assert len(errors) == before + dead, errors
        self.applied += envs[:len(envs) - dead]
        return [e for (e,) in errors[before:]]

    # builders
    def inv(self, type_, invoice, data, at=None):
        return ev.envelope(type_, self.t, "invoice", invoice, self.seq(invoice), data,
                           at=rfc(at) if at else None)

    def create(self, invoice, client, appointment=None):
        return self.inv("InvoiceCreated", invoice, {"client_id": client,
                                                    "appointment_id": appointment})

    def line(self, invoice, line_id, quantity_milli, price, discount_bp=0, tax_bp=0,
             description="Consultation"):
        net, discount, tax, total = line_amounts(quantity_milli, price, discount_bp, tax_bp)
        return self.inv("InvoiceLineAdded", invoice,
                        {"line_id": line_id, "description": description,
                         "quantity_milli": quantity_milli, "unit_price_cents": price,
                         "discount_bp": discount_bp, "tax_rate_bp": tax_bp,
                         "net_cents": net, "discount_cents": discount, "tax_cents": tax,
                         "line_total_cents": total, "item_id": None})

    def remove(self, invoice, line_id):
        return self.inv("InvoiceLineRemoved", invoice, {"line_id": line_id})

    def issue(self, invoice, number, issued_on, total, due_on=None, at=None):
        return self.inv("InvoiceIssued", invoice,
                        {"number": number, "issued_on": issued_on,
                         "due_on": due_on or issued_on, "total_cents": total},
                        at=at or issued_on + "T10:00:00")

    def pay(self, invoice, payment, amount, received_on, method="card", at=None):
        return self.inv("PaymentRecorded", invoice,
                        {"payment_id": payment, "amount_cents": amount, "method": method,
                         "reference": None, "received_on": received_on},
                        at=at or received_on + "T11:00:00")

    def refund(self, invoice, payment, refund, amount, at):
        return self.inv("PaymentRefunded", invoice,
                        {"refund_id": refund, "payment_id": payment, "amount_cents": amount,
                         "reason": "overcharged"}, at=at)

    def void(self, invoice, at, reason="issued in error"):
        return self.inv("InvoiceVoided", invoice, {"reason": reason}, at=at)

    # reads
    def invoice(self, invoice):
        rows = query(self.stack,
                     "SELECT status, net_cents, discount_cents, tax_cents, total_cents, "
                     "line_count, paid_cents, refunded_cents, balance_cents, number, number_seq, "
                     "issued_on::text, due_on::text, paid_on::text, voided_on::text, version "
                     "FROM read.invoices WHERE tenant_id = %s AND id = %s", (self.t, invoice))
        if not rows:
            return None
        keys = ("status", "net", "discount", "tax", "total", "lines", "paid", "refunded",
                "balance", "number", "number_seq", "issued_on", "due_on", "paid_on",
                "voided_on", "version")
        return dict(zip(keys, rows[0]))

    def snapshot(self):
        """Every billing table's rows of the tenant, as text, in order."""
        out = {}
        for table in BILLING_TABLES:
            q = sql.SQL("SELECT x::text FROM read.{} x WHERE x.tenant_id = %s "
                        "ORDER BY x::text").format(sql.Identifier(table))
            out[table] = [r for (r,) in query(self.stack, q, (self.t,))]
        return out


def month(d):
    return date.fromisoformat(str(d)[:10]).replace(day=1)


def recompute_revenue(envs, tz_name=TZ):
    """revenue_monthly from the events alone (final state): by the month of
    issued_on, the invoices not void (count, total, net payments); by the
    month the money moved, payments by received_on less refunds by the local
    date of their `at`."""
    invoices = {}
    rev = defaultdict(lambda: [0, 0, 0, 0])
    tz = ZoneInfo(tz_name)
    for e in envs:
        d, i = e["data"], e["aggregate_id"]
        if e["type"] == "InvoiceCreated":
            invoices[i] = {"issued_on": None, "total": 0, "paid": 0, "void": False}
        elif e["type"] == "InvoiceIssued":
            invoices[i].update(issued_on=d["issued_on"], total=d["total_cents"])
        elif e["type"] == "PaymentRecorded":
            invoices[i]["paid"] += d["amount_cents"]
            rev[month(d["received_on"])][3] += d["amount_cents"]
        elif e["type"] == "PaymentRefunded":
            invoices[i]["paid"] -= d["amount_cents"]
            at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
            rev[month(at.astimezone(tz).date())][3] -= d["amount_cents"]
        elif e["type"] == "InvoiceVoided":
            invoices[i]["void"] = True
    for inv in invoices.values():
        if inv["issued_on"] and not inv["void"]:
            r = rev[month(inv["issued_on"])]
            r[0] += 1
            r[1] += inv["total"]
            r[2] += inv["paid"]
    return {m: tuple(v) for m, v in rev.items() if any(v)}


def revenue_rows(stack, tenant):
    return {m: (n, inv, paid, coll) for m, n, inv, paid, coll in query(
        stack, "SELECT month, invoice_count, invoiced_cents, paid_cents, collected_cents "
               "FROM read.revenue_monthly WHERE tenant_id = %s", (tenant,))
        if any((n, inv, paid, coll))}


def summary_rows(stack, tenant):
    return {m: (n, inv, paid, coll) for m, n, inv, paid, coll, outstanding in query(
        stack, "SELECT month, invoice_count, invoiced_cents, paid_cents, collected_cents, "
               "outstanding_cents FROM read.revenue_monthly_summary WHERE tenant_id = %s",
        (tenant,)) if outstanding == inv - paid}


@pytest.fixture(scope="module")
def clinic(stack, projector, producer):
    return Clinic(stack, producer)


@pytest.fixture(scope="module")
def machine(clinic):
    """Invoice A through the whole machine, step by step (the test checks
    each step); B, C, D, E beside it; returns their ids."""
    return {}


def test_totals_and_statuses_through_the_whole_machine(clinic, machine):
    c = clinic
    a = ev.new_id()
    l1, l2, l3 = ev.new_id(), ev.new_id(), ev.new_id()
    machine["a"] = a
    # draft: lines come and go, the running totals follow
    n1 = line_amounts(1000, 4500, tax_bp=2000)                  # 4500 + 900
    n2 = line_amounts(2500, 1333, discount_bp=1000, tax_bp=2000)
    n3 = line_amounts(333, 999, discount_bp=250, tax_bp=500)
    c.send([c.create(a, c.c1), c.line(a, l1, 1000, 4500, tax_bp=2000),
            c.line(a, l2, 2500, 1333, discount_bp=1000, tax_bp=2000),
            c.line(a, l3, 333, 999, discount_bp=250, tax_bp=500)])
    inv = c.invoice(a)
    assert inv["status"] == "draft" and inv["lines"] == 3 and inv["version"] == 4
    assert (inv["net"], inv["discount"], inv["tax"], inv["total"]) == tuple(
        sum(x) for x in zip(n1, n2, n3))
    assert inv["balance"] == 0 and inv["number"] is None
    c.send([c.remove(a, l2)])
    inv = c.invoice(a)
    assert inv["lines"] == 2 and inv["version"] == 5
    assert (inv["net"], inv["discount"], inv["tax"], inv["total"]) == tuple(
        x + y for x, y in zip(n1, n3))
    l4 = ev.new_id()
    c.send([c.line(a, l4, 1000, 100)])
    assert query(c.stack, "SELECT id::text, position FROM read.invoice_lines "
                          "WHERE tenant_id = %s AND invoice_id = %s ORDER BY position",
                 (c.t, a)) == [(l1, 1), (l3, 3), (l4, 4)]
    total = n1[3] + n3[3] + 100
    assert c.invoice(a)["total"] == total == 5400 + n3[3] + 100
    # nothing of a draft is in the ledger or the revenue
    assert query(c.stack, "SELECT count(*) FROM read.client_ledger WHERE tenant_id = %s",
                 (c.t,)) == [(0,)]

    # issued on 20 March, due 19 April
    c.send([c.issue(a, "INV-000001", "2026-03-20", total, due_on="2026-04-19")])
    inv = c.invoice(a)
    assert (inv["status"], inv["number"], inv["number_seq"], inv["issued_on"],
            inv["due_on"], inv["balance"], inv["paid_on"], inv["version"]) == (
        "issued", "INV-000001", 1, "2026-03-20", "2026-04-19", total, None, 7)
    assert query(c.stack, "SELECT issued_at = '2026-03-20T10:00:00Z', updated_at = issued_at "
                          "FROM read.invoices WHERE tenant_id = %s AND id = %s",
                 (c.t, a)) == [(True, True)]

    # paid in two parts either side of the DST change (29 March)
    p1, p2 = ev.new_id(), ev.new_id()
    c.send([c.pay(a, p1, 2000, "2026-03-28", at="2026-03-28T23:30:00")])
    inv = c.invoice(a)
    assert (inv["status"], inv["paid"], inv["balance"], inv["paid_on"]) == (
        "partially_paid", 2000, total - 2000, None)
    c.send([c.pay(a, p2, total - 2000, "2026-03-30", method="cash")])
    inv = c.invoice(a)
    assert (inv["status"], inv["paid"], inv["balance"], inv["paid_on"], inv["version"]) == (
        "paid", total, 0, "2026-03-30", 9)

    # a refund at 23:30Z on 31 March is on 1 April in London (BST): steps back
    r1 = ev.new_id()
    c.send([c.refund(a, p2, r1, 1000, at="2026-03-31T23:30:00")])
    inv = c.invoice(a)
    assert (inv["status"], inv["paid"], inv["refunded"], inv["balance"], inv["paid_on"]) == (
        "partially_paid", total - 1000, 1000, 1000, None)
    assert query(c.stack, "SELECT refunded_on::text, payment_id::text FROM read.refunds "
                          "WHERE tenant_id = %s AND id = %s", (c.t, r1)) == [("2026-04-01", p2)]
    assert query(c.stack, "SELECT refunded_cents FROM read.payments WHERE tenant_id = %s "
                          "AND id = %s", (c.t, p2)) == [(1000,)]
    # everything refunded: issued again, then void
    r2, r3 = ev.new_id(), ev.new_id()
    c.send([c.refund(a, p2, r2, total - 3000, at="2026-04-02T08:00:00"),
            c.refund(a, p1, r3, 2000, at="2026-04-02T08:05:00")])
    inv = c.invoice(a)
    assert (inv["status"], inv["paid"], inv["refunded"], inv["balance"]) == (
        "issued", 0, total, total)
    c.send([c.void(a, at="2026-04-02T23:15:00")])
    inv = c.invoice(a)
    assert (inv["status"], inv["balance"], inv["voided_on"], inv["version"]) == (
        "void", 0, "2026-04-03", 13)
    ledger = query(c.stack, "SELECT on_date::text, kind, amount_cents, invoice_number, "
                            "payment_id::text, refund_id::text FROM read.client_ledger "
                            "WHERE tenant_id = %s AND invoice_id = %s "
                            "ORDER BY partition, \"offset\"", (c.t, a))
    assert ledger == [
        ("2026-03-20", "invoice", total, "INV-000001", None, None),
        ("2026-03-28", "payment", -2000, "INV-000001", p1, None),
        ("2026-03-30", "payment", -(total - 2000), "INV-000001", p2, None),
        ("2026-04-01", "refund", 1000, "INV-000001", p2, r1),
        ("2026-04-02", "refund", total - 3000, "INV-000001", p2, r2),
        ("2026-04-02", "refund", 2000, "INV-000001", p1, r3),
        ("2026-04-03", "void", -total, "INV-000001", None, None),
    ]
    # the positions are the events'
    assert query(c.stack, "SELECT count(*) FROM read.client_ledger l JOIN read.event_log e "
                          "ON e.tenant_id = l.tenant_id AND e.partition = l.partition "
                          "AND e.\"offset\" = l.\"offset\" WHERE l.tenant_id = %s "
                          "AND e.aggregate_id = l.invoice_id", (c.t,)) == [(7,)]


def test_more_invoices_zero_total_and_draft_void(clinic, machine):
    c = clinic
    b, cc, d, e, f = (ev.new_id() for _ in range(5))
    machine.update(b=b, c=cc, d=d, e=e, f=f)
    pb1, pc1 = ev.new_id(), ev.new_id()
    c.send([
        # B: issued on the last day of March, paid partly on 1 April
        c.create(b, c.c1), c.line(b, ev.new_id(), 3000, 2500, tax_bp=2000),
        c.issue(b, "INV-000002", "2026-03-31", 9000, due_on="2026-04-30"),
        c.pay(b, pb1, 4000, "2026-04-01", at="2026-03-31T23:10:00"),
        # C (other client): February, paid in March
        c.create(cc, c.c2), c.line(cc, ev.new_id(), 1000, 12000),
        c.issue(cc, "INV-000003", "2026-02-27", 12000),
        c.pay(cc, pc1, 5000, "2026-03-02"),
        # D: a zero total is paid at once
        c.create(d, c.c2), c.line(d, ev.new_id(), 1000, 0, description="Free check"),
        c.issue(d, "INV-000004", "2026-03-29", 0, at="2026-03-29T00:30:00"),
        # E: a draft voided; F: left a draft
        c.create(e, c.c1), c.line(e, ev.new_id(), 1000, 700), c.void(e, at="2026-03-15T12:00:00"),
        c.create(f, c.c1), c.line(f, ev.new_id(), 2000, 350),
    ])
    assert {k: c.invoice(v)["status"] for k, v in machine.items()} == {
        "a": "void", "b": "partially_paid", "c": "partially_paid", "d": "paid", "e": "void",
        "f": "draft"}
    assert c.invoice(d)["paid_on"] == "2026-03-29" and c.invoice(d)["balance"] == 0
    assert (c.invoice(b)["balance"], c.invoice(cc)["balance"]) == (5000, 7000)
    # a draft's void touches neither the ledger nor the revenue
    assert query(c.stack, "SELECT count(*) FROM read.client_ledger WHERE tenant_id = %s "
                          "AND invoice_id = %s", (c.t, e)) == [(0,)]


def test_revenue_equals_the_events_and_the_summary(clinic, machine, projector):
    c = clinic
    expected = recompute_revenue(c.applied)
    assert revenue_rows(c.stack, c.t) == expected
    # spelled out: March holds B and D (A is void), April only money moving
    assert expected == {
        date(2026, 2, 1): (1, 12000, 5000, 0),
        date(2026, 3, 1): (2, 9000, 4000, 5000 + c.invoice(machine["a"])["total"]),
        date(2026, 4, 1): (0, 0, 0, 4000 - c.invoice(machine["a"])["total"]),
    }
    # the summary shows the months with invoices, once refreshed
    with_invoices = {m: v for m, v in expected.items() if v[0] > 0}
    wait_for(lambda: summary_rows(c.stack, c.t) == with_invoices, timeout=30,
             what="revenue_monthly_summary refreshed")
    # analysts read it through the revenue view, for their tenant only
    with psycopg.connect(c.stack.dsn("analyst"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        rows = conn.execute("SELECT month, invoice_count, invoiced_cents, paid_cents, "
                            "collected_cents FROM read.revenue ORDER BY month").fetchall()
        assert {m: tuple(v) for m, *v in rows} == with_invoices
        assert conn.execute("SELECT count(*) FROM read.invoices").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM read.refunds").fetchone()[0] == 3
        for table in ("client_ledger", "revenue_monthly", "revenue_monthly_summary"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM read.{table}")
    # the reader reads the ledger and the rollup, of its tenant only
    with psycopg.connect(c.stack.dsn("reader"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        assert conn.execute("SELECT count(*) FROM read.client_ledger").fetchone()[0] == 12
        assert {m: tuple(v) for m, *v in conn.execute(
            "SELECT month, invoice_count, invoiced_cents, paid_cents, collected_cents "
            "FROM read.revenue_monthly").fetchall()} == expected
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (ev.new_id(),))
        assert conn.execute("SELECT count(*) FROM read.invoices").fetchone()[0] == 0


def test_client_ledger_sums_to_the_balances(clinic, machine):
    c = clinic
    ledger = dict(query(c.stack, "SELECT client_id::text, sum(amount_cents)::bigint "
                                 "FROM read.client_ledger WHERE tenant_id = %s GROUP BY 1",
                        (c.t,)))
    balances = dict(query(c.stack, "SELECT client_id::text, sum(balance_cents)::bigint "
                                   "FROM read.invoices WHERE tenant_id = %s GROUP BY 1",
                          (c.t,)))
    assert ledger == balances == {c.c1: 5000, c.c2: 7000}


def test_only_invoice_events_refresh_the_revenue_view(clinic, machine, projector):
    c = clinic

    def counts():
        return {v: refreshes(projector, v) for v in VIEWS}

    def settled():
        first = counts()
        time.sleep(REFRESH_MS * 3 / 1000)
        return first if counts() == first else None
    idle = wait_for(settled, what="refreshes settle")
    # an invoice event: the revenue view alone
    c.send([c.line(machine["f"], ev.new_id(), 1000, 10)])
    wait_for(lambda: counts()["revenue_monthly_summary"] > idle["revenue_monthly_summary"],
             what="the revenue view refreshed")
    after = wait_for(settled, what="refreshes settle")
    assert {v: after[v] - idle[v] for v in VIEWS} == {
        "appointment_type_mix_monthly": 0, "diagnosis_counts_monthly": 0,
        "treatment_counts_monthly": 0, "revenue_monthly_summary": 1}
    # an appointment event: the appointment view alone
    appt = ev.new_id()
    c.send([ev.envelope("AppointmentScheduled", c.t, "appointment", appt, 1,
                        {"patient_id": c.p1, "vet_id": c.vet, "start": "2027-08-02T09:00:00Z",
                         "end": "2027-08-02T09:30:00Z", "type": "dental", "reason": None})])
    c.applied.pop()
    wait_for(lambda: counts()["appointment_type_mix_monthly"] >
             after["appointment_type_mix_monthly"], what="the appointment view refreshed")
    final = wait_for(settled, what="refreshes settle")
    assert {v: final[v] - after[v] for v in VIEWS} == {
        "appointment_type_mix_monthly": 1, "diagnosis_counts_monthly": 0,
        "treatment_counts_monthly": 0, "revenue_monthly_summary": 0}
    # a view whose refresh fails holds no other back, and recovers
    failures = "vetpms_projector_mv_refresh_failures_total"
    failed = refreshes(projector, "appointment_type_mix_monthly", failures)
    execute(c.stack, "DROP INDEX read.appointment_type_mix_monthly_key")  # CONCURRENTLY fails
    try:
        c.send([ev.envelope("AppointmentScheduled", c.t, "appointment", ev.new_id(), 1,
                            {"patient_id": c.p1, "vet_id": c.vet,
                             "start": "2027-08-03T09:00:00Z", "end": "2027-08-03T09:30:00Z",
                             "type": "dental", "reason": None}),
                c.line(machine["f"], ev.new_id(), 1000, 1)])
        wait_for(lambda: refreshes(projector, "appointment_type_mix_monthly", failures) >
                 failed, what="the appointment view's refresh failed")
        wait_for(lambda: counts()["revenue_monthly_summary"] >
                 final["revenue_monthly_summary"], what="the revenue view refreshed all the same")
        assert counts()["appointment_type_mix_monthly"] == final["appointment_type_mix_monthly"]
    finally:
        execute(c.stack, "CREATE UNIQUE INDEX appointment_type_mix_monthly_key ON "
                       "read.appointment_type_mix_monthly (tenant_id, vet_id, month, type)")
    wait_for(lambda: counts()["appointment_type_mix_monthly"] >
             final["appointment_type_mix_monthly"], what="the appointment view refreshed again")


def test_inconsistent_events_are_dead_letters_that_change_nothing(clinic, machine):
    c = clinic
    b, cc, d, f = machine["b"], machine["c"], machine["d"], machine["f"]
    pb1 = query(c.stack, "SELECT id::text FROM read.payments WHERE tenant_id = %s "
                         "AND invoice_id = %s", (c.t, b))[0][0]
    before = c.snapshot()
    seqs = dict(c.seqs)
    last = query(c.stack, "SELECT max(number_seq) FROM read.invoices WHERE tenant_id = %s",
                 (c.t,))[0][0]
    bad = [
        c.pay(b, ev.new_id(), 5001, "2026-04-02"),                  # above the balance
        c.refund(b, pb1, ev.new_id(), 4001, at="2026-04-02T10:00:00"),  # above the payment
        c.line(ev.new_id(), ev.new_id(), 1000, 100),               # unknown invoice
        c.remove(f, ev.new_id()),                                   # unknown line
        c.refund(b, ev.new_id(), ev.new_id(), 10, at="2026-04-02T10:00:00"),  # unknown payment
        c.refund(cc, pb1, ev.new_id(), 10, at="2026-04-02T10:00:00"),  # payment of another
        c.pay(f, ev.new_id(), 10, "2026-04-02"),                    # a draft
        c.pay(d, ev.new_id(), 1, "2026-04-02"),                     # paid already
        c.pay(cc, ev.new_id(), 10, "2026-02-26"),                   # before its issue
        c.line(b, ev.new_id(), 1000, 100),                          # not a draft
        c.remove(b, query(c.stack, "SELECT id::text FROM read.invoice_lines WHERE "
                                   "tenant_id = %s AND invoice_id = %s", (c.t, b))[0][0]),
        c.issue(f, "INV-000005", "2026-04-02", 1),                  # not its total
        c.issue(cc, "INV-000006", "2026-04-02", 12000),             # issued already
        c.issue(ev.new_id(), "INV-000007", "2026-04-02", 0),        # unknown invoice
        c.void(b, at="2026-04-02T10:00:00"),                        # partially paid
        c.void(ev.new_id(), at="2026-04-02T10:00:00"),              # unknown invoice
        c.create(ev.new_id(), ev.new_id()),                         # unknown client
        c.create(b, c.c1),                                          # id exists
    ]
    errors = c.send(bad, dead=len(bad))
    assert "invoices_paid_cents" in errors[0] or "check" in errors[0].lower(), errors[0]
    assert "payments_" in errors[1] or "check" in errors[1].lower(), errors[1]
    assert all("not found" in e for e in errors[2:17]), errors
    assert "invoices_pkey" in errors[17] or "duplicate" in errors[17], errors[17]
    assert c.snapshot() == before
    c.seqs = seqs
    # a payment produced twice (same event id) is applied once
    payment = [e for e in c.applied if e["type"] == "PaymentRecorded"
               and e["aggregate_id"] == b][0]
    c.producer.send_all([payment])
    c.send([c.line(f, ev.new_id(), 1000, 5)])
    after = c.snapshot()
    assert {t: after[t] for t in BILLING_TABLES if t != "invoices"} == {
        t: before[t] for t in BILLING_TABLES if t != "invoices"} | {
        "invoice_lines": after["invoice_lines"]}
    assert len(after["invoice_lines"]) == len(before["invoice_lines"]) + 1
    assert query(c.stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s "
                          "AND event_id = %s", (c.t, payment["id"])) == [(1,)]
    # and the invoices still take what is consistent
    c.send([c.pay(b, ev.new_id(), 5000, "2026-04-02")])
    assert c.invoice(b)["status"] == "paid"
    # numbers are gapless: the draft f (it has a line now) cannot be issued
    # past the tenant's next number, and is at the next one
    total = c.invoice(f)["total"]
    [gap] = c.send([c.issue(f, f"INV-{last + 2:06d}", "2026-04-02", total)], dead=1)
    assert "number not the tenant's next" in gap and c.invoice(f)["status"] == "draft", gap
    c.seqs[f] -= 1
    c.send([c.issue(f, f"INV-{last + 1:06d}", "2026-04-02", total)])
    assert c.invoice(f)["number_seq"] == last + 1 and c.invoice(f)["status"] == "issued"


def random_billing(c, rnd, n_invoices):
    """Valid invoice events in a random interleaving (lines come and go,
    issues from February to May 2026, payments up to the balance, refunds at
    instants near local midnight, voids when allowed) and the model of each
    invoice they leave: {id: (status, total, paid, refunded, client)}."""
    envs, model, number = [], {}, 0
    clients = (c.c1, c.c2)
    start = date(2026, 2, 1)

    def instant(day, hour, minute):
        return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"
    for _ in range(n_invoices * 12):
        live = [i for i, m in model.items() if m["status"] != "void"]
        drafts = [i for i in live if model[i]["status"] == "draft"]
        owing = [i for i in live if model[i]["status"] in ("issued", "partially_paid")]
        refundable = [(i, p) for i in live for p, (amt, ref) in model[i]["payments"].items()
                      if amt > ref]
        choices = ["create"] * (len(model) < n_invoices) + ["line"] * 3 * bool(drafts) + \
            ["remove"] * any(model[i]["lines"] for i in drafts) + \
            ["issue"] * 2 * any(model[i]["lines"] for i in drafts) + \
            ["pay"] * 3 * bool(owing) + ["refund"] * 2 * bool(refundable) + \
            ["void"] * (rnd.random() < 0.1 and any(
                model[i]["paid"] == 0 and model[i]["status"] in ("draft", "issued")
                for i in live))
        if not choices:
            break
        action = rnd.choice(choices)
        if action == "create":
            i = ev.new_id()
            model[i] = {"status": "draft", "lines": {}, "total": 0, "paid": 0, "refunded": 0,
                        "payments": {}, "client": rnd.choice(clients), "issued_on": None}
            envs.append(c.create(i, model[i]["client"]))
        elif action == "line":
            i, line = rnd.choice(drafts), ev.new_id()
            q, price = rnd.choice((1000, 2000, 500, 1250, 333)), rnd.randrange(0, 20000)
            disc, tax = rnd.choice((0, 0, 500, 1000)), rnd.choice((0, 500, 2000))
            model[i]["lines"][line] = line_amounts(q, price, disc, tax)[3]
            envs.append(c.line(i, line, q, price, disc, tax))
        elif action == "remove":
            i = rnd.choice([i for i in drafts if model[i]["lines"]])
            line = rnd.choice(sorted(model[i]["lines"]))
            del model[i]["lines"][line]
            envs.append(c.remove(i, line))
        elif action == "issue":
            i = rnd.choice([i for i in drafts if model[i]["lines"]])
            m = model[i]
            number += 1
            m["total"] = sum(m["lines"].values())
            m["issued_on"] = start + timedelta(days=rnd.randrange(0, 120))
            m["status"] = "paid" if m["total"] == 0 else "issued"
            envs.append(c.issue(i, f"INV-{number:06d}", m["issued_on"].isoformat(), m["total"],
                                due_on=(m["issued_on"] + timedelta(days=30)).isoformat()))
        elif action == "pay":
            i = rnd.choice(owing)
            m = model[i]
            balance = m["total"] - m["paid"]
            amount = balance if rnd.random() < 0.4 else rnd.randrange(1, balance + 1)
            p = ev.new_id()
            received = m["issued_on"] + timedelta(days=rnd.randrange(0, 25))
            m["payments"][p] = [amount, 0]
            m["paid"] += amount
            m["status"] = "paid" if m["paid"] == m["total"] else "partially_paid"
            envs.append(c.pay(i, p, amount, received.isoformat(),
                              at=instant(received, rnd.randrange(0, 24), 5)))
        elif action == "refund":
            i, p = rnd.choice(refundable)
            m = model[i]
            amt, ref = m["payments"][p]
            amount = amt - ref if rnd.random() < 0.4 else rnd.randrange(1, amt - ref + 1)
            m["payments"][p][1] += amount
            m["paid"] -= amount
            m["refunded"] += amount
            m["status"] = "partially_paid" if m["paid"] > 0 else "issued"
            day = m["issued_on"] + timedelta(days=rnd.randrange(0, 40))
            envs.append(c.refund(i, p, ev.new_id(), amount,
                                 at=instant(day, rnd.choice((0, 1, 11, 22, 23)),
                                            rnd.choice((0, 30, 59)))))
        else:
            i = rnd.choice([i for i in live if model[i]["paid"] == 0
                            and model[i]["status"] in ("draft", "issued")])
            model[i]["status"] = "void"
            envs.append(c.void(i, at=instant(start + timedelta(days=rnd.randrange(0, 150)),
                                             rnd.choice((0, 12, 23)), 30)))
    return envs, {i: (m["status"], m["total"] if m["issued_on"] else sum(m["lines"].values()),
                      m["paid"], m["refunded"], m["client"]) for i, m in model.items()}


def test_a_random_mix_agrees_with_its_model_and_the_recomputed_revenue(stack, projector,
                                                                     producer, machine):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    c = Clinic(stack, producer, tz=rnd.choice(("Europe/London", "America/New_York",
                                               "Pacific/Auckland", "Asia/Kolkata")))
    machine["random_clinic"] = c
    envs, model = random_billing(c, rnd, 25)
    c.send(envs)
    got = {i: (s, total, paid, refunded, client) for i, s, total, paid, refunded, client in query(
        stack, "SELECT id::text, status, total_cents, paid_cents, refunded_cents, client_id::text "
               "FROM read.invoices WHERE tenant_id = %s", (c.t,))}
    assert got == model, f"seed {seed} ({c.tz})"
    expected = recompute_revenue(c.applied, c.tz)
    assert revenue_rows(stack, c.t) == expected, f"seed {seed} ({c.tz})"
    with_invoices = {m: v for m, v in expected.items() if v[0] > 0}
    wait_for(lambda: summary_rows(stack, c.t) == with_invoices, what="summary refreshed")
    ledger = dict(query(stack, "SELECT client_id::text, sum(amount_cents)::bigint "
                               "FROM read.client_ledger WHERE tenant_id = %s GROUP BY 1", (c.t,)))
    owed = defaultdict(int)
    for s, total, paid, _, client in model.values():
        if s in ("issued", "partially_paid"):
            owed[client] += total - paid
    assert {k: v for k, v in ledger.items() if v} == {k: v for k, v in owed.items() if v}, \
        f"seed {seed}"


def test_projector_rebuild_gives_the_same_billing_tables(stack, clinic, machine, projector):
    c = clinic
    # the views are current before the comparison
    expected = {m: v for m, v in recompute_revenue(c.applied).items() if v[0] > 0}
    wait_for(lambda: summary_rows(stack, c.t) == expected, what="summary refreshed")
    before = c.snapshot()
    assert len(before["client_ledger"]) == 14 and len(before["invoices"]) == 6
    other = machine.get("random_clinic")
    other_before = other.snapshot() if other else None
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"])
    try:
        code = rebuild.proc.wait(timeout=180)
    except Exception:
        rebuild.terminate()
        raise
    assert code == 0, "\n".join(rebuild.log_lines()[-20:])
    assert "schema read_next is live as read" in "\n".join(rebuild.log_lines())
    assert c.snapshot() == before
    if other:
        assert other.snapshot() == other_before
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        rows = conn.execute("SELECT month, invoice_count, invoiced_cents, paid_cents, "
                            "collected_cents FROM read.revenue").fetchall()
        assert {m: tuple(v) for m, *v in rows} == expected
        for table in ("client_ledger", "revenue_monthly", "revenue_monthly_summary"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM read.{table}")
    assert revenue_rows(stack, c.t) == recompute_revenue(c.applied)
    # the live projector goes on in the swapped-in schema
    g = ev.new_id()
    c.send([c.create(g, c.c2)])
    assert c.invoice(g)["status"] == "draft"
