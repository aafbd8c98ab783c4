"""Billing end to end, the flows around the rules (test_billing_write.py has the
rules): an idempotent issue replayed with its StockDispensed events, If-Match
on invoices, upper-case ids; races (120 concurrent lines on one invoice, 10
concurrent issues of one invoice, payments racing voids, 15 concurrent refunds
of one payment); tenant-local dates of refunds, voids and the statement in a
zone whose date is not UTC's; an appointment of a patient transferred away;
the invoice list's pages and filters; and, last since it restarts the writer,
an overdue invoice issued 40 days ago (written into the log behind the
writer's back, with an expired batch) that the restarted writer's rebuilt
model, the reader and the revenue months all take into account, with every
other invoice's state (numbers, balances, refunds left, the 100-line limit,
an appointment's invoice, an idempotency key) surviving the restart. Then
every invoice recomputed and the read model against a rebuild."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

import events as ev
from stack import free_port, wait_for
from test_billing_write import (Clinic, boundary_zone, check_revenue, check_schema,
                                check_statements, code, line_amounts, milli, query, rdiv,
                                rebuild_equals_live, recompute_every_invoice, refused)

FLOW_CLINICS = []
FLOW_INVOICES = []
REPLAY = {}  # the idempotent issue: key, path, body, first answer
REPLAY_BIG = {}  # the same for an issue of 101 events


class FlowClinic(Clinic):
    clinics = FLOW_CLINICS
    all_invoices = FLOW_INVOICES


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port(),
                                   env={"VETPMS_PROJECTOR_MV_REFRESH_MS": "300"})
    reader = stack.start_daemon("query-reader", port=free_port(),
                                env={"VETPMS_CONSISTENCY_WAIT_MS": "30000"})
    writer = stack.start_daemon("cmd-writer", port=free_port())
    for d in (projector, reader, writer):
        d.wait_ready(90)
    state = {"writer": writer}
    yield projector, reader, writer, state
    for d in (state["writer"], reader, projector):
        d.terminate()


@pytest.fixture(scope="module")
def flow(stack, daemons):
    return FlowClinic(stack, daemons[:3], tz="Europe/Berlin", currency="EUR", name="Flow")


# --- idempotency, If-Match, ids ---------------------------------------------------

def test_an_idempotent_issue_replays_its_answer_with_the_dispenses(flow):
    c = flow
    it = c.item(sale_price_cents=150)
    c.receive(it, "B1", 2)
    c.receive(it, "B2", 5, c.today() + timedelta(days=400))
    inv = c.invoice()
    c.line(inv, 1.5, None, item_id=it)
    c.line(inv, 1, None, item_id=it)
    key = f"issue-{uuid.uuid4()}"
    path = f"/v1/invoices/{inv}/issue"
    first = c.cmd("reception", "POST", path, {"due_in_days": 7}, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert first.json()["events"] == ["InvoiceIssued", "StockDispensed", "StockDispensed"]
    again = c.cmd("reception", "POST", path, {"due_in_days": 7}, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json() == first.json(), again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    c.harmless()
    assert len(c.events(type="StockDispensed")) == 2
    assert milli(c.read(f"/v1/inventory/items/{it}")["on_hand"]) == 4500
    v = c.view(inv)
    assert v["number"] == "INV-000001" and v["due_on"] == str(c.today() + timedelta(days=7))
    REPLAY.update(key=key, path=path, body={"due_in_days": 7}, answer=first.json())


def test_if_match_and_upper_case_ids(flow):
    c = flow
    inv = c.invoice()
    line = str(uuid.uuid4())
    body = {"description": "x", "quantity": 1, "unit_price_cents": 500, "line_id": line.upper()}
    r = c.cmd("reception", "POST", f"/v1/invoices/{inv}/lines", body, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/lines",
                  {**body, "line_id": str(uuid.uuid4())}, headers={"If-Match": '"1"'}),
            412, "VERSION_MISMATCH")
    [added] = c.events(aggregate_id=inv, type="InvoiceLineAdded")
    assert added["data"]["line_id"] == line
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/lines", {**body, "line_id": line}),
            409, "ALREADY_EXISTS")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {},
                  headers={"If-Match": '"3"'}), 412, "VERSION_MISMATCH")
    r = c.cmd("reception", "POST", f"/v1/invoices/{inv.upper()}/issue", {},
              headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["id"] == inv, r.text
    pay = str(uuid.uuid4())
    c.pay(inv, 200, payment_id=pay.upper())
    [recorded] = c.events(aggregate_id=inv, type="PaymentRecorded")
    assert recorded["data"]["payment_id"] == pay
    a = c.ok("admin", "POST", f"/v1/invoices/{inv}/payments/{pay.upper()}/refund",
             {"amount_cents": 50, "reason": "x"})
    assert a["version"] == 5
    v = c.view(inv)
    assert v["payments"][0]["id"] == pay and v["payments"][0]["refunded_cents"] == 50
    assert v["lines"][0]["id"] == line


def test_idempotent_creations_and_payments_and_upper_case_line_removal(flow):
    c = flow
    key = f"create-{uuid.uuid4()}"
    r1 = c.cmd("reception", "POST", "/v1/invoices", {"client_id": c.client_id},
               headers={"Idempotency-Key": key})
    r2 = c.cmd("reception", "POST", "/v1/invoices", {"client_id": c.client_id},
               headers={"Idempotency-Key": key})
    assert r1.status_code == r2.status_code == 201, (r1.text, r2.text)
    assert r1.json() == r2.json() and r2.headers.get("Idempotent-Replayed") == "true"
    inv = r1.json()["id"]
    c.all_invoices.append((c, inv))
    line = str(uuid.uuid4())
    c.line(inv, 1, 1000, line_id=line)
    c.line(inv, 1, 1, line_id=str(uuid.uuid4()))
    r = c.cmd("reception", "DELETE", f"/v1/invoices/{inv}/lines/{line.upper()}")
    assert r.status_code == 200, r.text
    c.issue(inv)
    pkey = f"pay-{uuid.uuid4()}"
    body = {"amount_cents": 1, "method": "cash"}
    p1 = c.cmd("reception", "POST", f"/v1/invoices/{inv}/payments", body,
               headers={"Idempotency-Key": pkey})
    p2 = c.cmd("reception", "POST", f"/v1/invoices/{inv}/payments", body,
               headers={"Idempotency-Key": pkey})
    assert p1.status_code == p2.status_code == 200 and p1.json() == p2.json(), p2.text
    c.harmless()
    assert len([e for e in c.events(type="InvoiceCreated") if e["aggregate_id"] == inv]) == 1
    v = c.view(inv)
    assert (v["status"], v["paid_cents"], len(v["payments"]), v["line_count"]) == \
        ("paid", 1, 1, 1)


def test_ids_of_lines_payments_and_refunds_across_invoices(flow):
    c = flow
    a, b = c.invoice(), c.invoice()
    shared = str(uuid.uuid4())
    c.line(a, 1, 300, line_id=shared)
    c.line(b, 2, 300, line_id=shared)  # a line's id is its invoice's
    assert c.view(a)["lines"][0]["id"] == c.view(b)["lines"][0]["id"] == shared
    c.issue(a)
    c.issue(b)
    pay = str(uuid.uuid4())
    c.pay(a, 100, payment_id=pay)
    # a payment's id is the tenant's: not again on another invoice
    refused(c.cmd("reception", "POST", f"/v1/invoices/{b}/payments",
                  {"amount_cents": 1, "method": "cash", "payment_id": pay}), 409,
            "ALREADY_EXISTS")
    # a payment is refunded through its own invoice only
    refused(c.cmd("admin", "POST", f"/v1/invoices/{b}/payments/{pay}/refund",
                  {"amount_cents": 1, "reason": "x"}), 404, "NOT_FOUND")
    rid = str(uuid.uuid4())
    c.ok("admin", "POST", f"/v1/invoices/{a}/payments/{pay}/refund",
         {"amount_cents": 40, "reason": "x", "refund_id": rid})
    pay_b = str(uuid.uuid4())
    c.pay(b, 100, payment_id=pay_b)
    refused(c.cmd("admin", "POST", f"/v1/invoices/{b}/payments/{pay_b}/refund",
                  {"amount_cents": 1, "reason": "x", "refund_id": rid}), 409, "ALREADY_EXISTS")
    va, vb = c.view(a), c.view(b)
    assert (va["paid_cents"], va["balance_cents"], vb["paid_cents"], vb["balance_cents"]) == \
        (60, 240, 100, 500)
    # paid, refunded a little, paid again: paid_on back
    c.pay(a, 240)
    assert c.view(a)["paid_on"] == str(c.today())
    c.refund(a, pay, 60)
    assert c.view(a)["paid_on"] is None
    c.pay(a, 60)
    v = c.view(a)
    assert (v["status"], v["paid_on"]) == ("paid", str(c.today()))


def test_an_issue_racing_a_dispense_for_the_last_units(flow):
    c = flow
    for round_ in range(5):
        it = c.item(sale_price_cents=100)
        c.receive(it, "LAST", 5)
        inv = c.invoice()
        c.line(inv, 3, None, item_id=it)
        with ThreadPoolExecutor(max_workers=2) as pool:
            issue = pool.submit(c.cmd, "reception", "POST", f"/v1/invoices/{inv}/issue", {})
            dispense = pool.submit(c.cmd, "nurse", "POST", f"/v1/inventory/items/{it}/dispenses",
                                   {"quantity": 3})
            issue, dispense = issue.result(), dispense.result()
        assert sorted([issue.status_code, dispense.status_code]) == [200, 409], \
            (issue.text, dispense.text)
        loser = issue if issue.status_code == 409 else dispense
        assert code(loser) == "INSUFFICIENT_STOCK", loser.text
        assert milli(c.read(f"/v1/inventory/items/{it}")["on_hand"]) == 2000
        assert c.view(inv)["status"] == ("issued" if issue.status_code == 200 else "draft")


# --- races ----------------------------------------------------------------------

def test_races_on_lines_issues_payments_voids_and_refunds(flow):
    c = flow
    # 120 concurrent lines on one invoice: 100 fit
    inv = c.invoice()
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda i: c.cmd("vet", "POST", f"/v1/invoices/{inv}/lines", {
            "description": f"L{i}", "quantity": 1, "unit_price_cents": i + 1}), range(120)))
    assert sorted(r.status_code for r in answers) == [200] * 100 + [409] * 20
    assert {code(r) for r in answers if r.status_code == 409} == {"INVALID_STATE"}
    assert sorted(r.json()["version"] for r in answers if r.status_code == 200) == \
        list(range(2, 102))
    v = c.view(inv)
    assert v["line_count"] == 100 and sorted(ln["position"] for ln in v["lines"]) == \
        list(range(1, 101))
    accepted = {i + 1 for i, r in enumerate(answers) if r.status_code == 200}
    assert {ln["unit_price_cents"] for ln in v["lines"]} == accepted
    assert v["total_cents"] == sum(accepted)

    # 10 concurrent issues of that invoice: one
    before = len(c.events(type="InvoiceIssued"))
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: c.cmd("admin", "POST", f"/v1/invoices/{inv}/issue",
                                                {}), range(10)))
    assert sorted(r.status_code for r in answers) == [200] + [409] * 9
    assert {code(r) for r in answers if r.status_code == 409} == {"INVALID_STATE"}
    c.harmless()
    assert len(c.events(type="InvoiceIssued")) == before + 1
    number = c.view(inv)["number"]
    nxt = c.issued_invoice(100)
    assert int(c.view(nxt)["number"][4:]) == int(number[4:]) + 1

    # a payment of the whole balance racing a void: one of the two
    invoices = [c.issued_invoice(1000 + i) for i in range(10)]
    jobs = [(i, kind) for i in range(10) for kind in ("pay", "void")]

    def run(job):
        i, kind = job
        if kind == "pay":
            return c.cmd("reception", "POST", f"/v1/invoices/{invoices[i]}/payments",
                         {"amount_cents": 1000 + i, "method": "cash"})
        return c.cmd("admin", "POST", f"/v1/invoices/{invoices[i]}/void", {"reason": "race"})
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(run, jobs))
    for i in range(10):
        pay, void = answers[2 * i], answers[2 * i + 1]
        assert sorted([pay.status_code, void.status_code]) == [200, 409], (pay.text, void.text)
        loser = pay if pay.status_code == 409 else void
        assert code(loser) == "INVALID_STATE", loser.text
        v = c.view(invoices[i])
        if pay.status_code == 200:
            assert (v["status"], v["paid_cents"]) == ("paid", 1000 + i)
        else:
            assert (v["status"], v["paid_cents"], v["balance_cents"]) == ("void", 0, 0)

    # 15 concurrent refunds of 100 from a payment of 1000: 10
    target = c.issued_invoice(1000)
    pay = str(uuid.uuid4())
    c.pay(target, 1000, payment_id=pay)
    with ThreadPoolExecutor(max_workers=15) as pool:
        answers = list(pool.map(lambda _: c.cmd(
            "admin", "POST", f"/v1/invoices/{target}/payments/{pay}/refund",
            {"amount_cents": 100, "reason": "race"}), range(15)))
    assert sorted(r.status_code for r in answers) == [200] * 10 + [409] * 5
    assert {code(r) for r in answers if r.status_code == 409} == {"REFUND_EXCEEDS_PAYMENT"}
    v = c.view(target)
    assert (v["status"], v["paid_cents"], v["refunded_cents"], v["balance_cents"]) == \
        ("issued", 0, 1000, 1000)
    assert len(v["payments"][0]["refunds"]) == 10


# --- local dates -----------------------------------------------------------------

def test_refunds_voids_and_the_statement_are_dated_in_the_clinics_zone(stack, daemons):
    c = FlowClinic(stack, daemons[:3], tz=boundary_zone(), currency="NZD", name="Far flow")
    today = c.today()
    utc_today = datetime.now(timezone.utc).date()
    who = c.new_client("Zed", "Far")
    a = c.issued_invoice(5000, client=who)
    pay = str(uuid.uuid4())
    c.pay(a, 3000, payment_id=pay)
    c.refund(a, pay, 1000)
    b = c.issued_invoice(700, client=who)
    c.void(b)
    v = c.view(a)
    assert v["issued_on"] == str(today)
    assert v["payments"][0]["received_on"] == str(today)
    assert v["payments"][0]["refunds"][0]["refunded_on"] == str(today), v["payments"]
    st = c.read(f"/v1/clients/{who}/statement")
    assert [(x["kind"], x["date"], x["amount_cents"], x["balance_cents"]) for x in st["data"]] == [
        ("invoice", str(today), 5000, 5000), ("payment", str(today), -3000, 2000),
        ("refund", str(today), 1000, 3000), ("invoice", str(today), 700, 3700),
        ("void", str(today), -700, 3000)], (today, utc_today, st)
    assert st["closing_balance_cents"] == 3000
    assert c.read(f"/v1/clients/{who}")["balance_cents"] == 3000
    assert query(stack, "SELECT voided_on::text FROM read.invoices WHERE tenant_id = %s AND id = %s",
                 (c.tid, b)) == [(str(today),)]
    assert sorted(d for (d,) in query(stack, "SELECT on_date::text FROM read.client_ledger "
                                             "WHERE tenant_id = %s", (c.tid,))) == [str(today)] * 5
    # a statement to the clinic's today holds everything, whatever UTC's date
    st = c.read(f"/v1/clients/{who}/statement", **{"from": str(today), "to": str(today)})
    assert len(st["data"]) == 5 and st["opening_balance_cents"] == 0
    check_revenue(c, today.strftime("%Y-%m"))
    if utc_today.strftime("%Y-%m") != today.strftime("%Y-%m"):
        check_revenue(c, utc_today.strftime("%Y-%m"))


# --- appointments, lists ---------------------------------------------------------

def test_an_appointment_of_a_patient_transferred_away(flow):
    c = flow
    old, new = c.new_client("Old", "Owner"), c.new_client("New", "Owner")
    pet = c.new_patient(old)
    appt = c.appointment(pet)
    c.ok("reception", "POST", f"/v1/patients/{pet}/transfer", {"client_id": new})
    refused(c.cmd("reception", "POST", "/v1/invoices", {"client_id": old, "appointment_id": appt}),
            400, "VALIDATION_ERROR", "appointment_id")
    inv = c.invoice(new, appointment_id=appt)
    assert c.view(inv)["appointment_id"] == appt
    # the issue's dispenses name the appointment's patient
    it = c.item(sale_price_cents=10)
    c.receive(it, "T", 5)
    c.line(inv, 1, None, item_id=it)
    c.issue(inv)
    [e] = [e for e in c.events(aggregate_id=it, type="StockDispensed")]
    assert e["data"]["patient_id"] == pet and e["data"]["invoice_id"] == inv


def test_the_invoice_list_pages_and_filters(flow):
    c = flow
    who = c.new_client("Lister", "Pages")
    made = []
    for i in range(7):
        inv = c.invoice(who)
        made.append(inv)
        if i % 3 >= 1:
            c.line(inv, 1, 100 * (i + 1))
            c.issue(inv)
        if i % 3 == 2:
            c.pay(inv, 50)
    full = c.pages("/v1/invoices", client_id=who)
    assert [x["id"] for x in full] == made[::-1]
    paged = c.pages("/v1/invoices", client_id=who, limit=2)
    assert paged == full
    by_status = {}
    for x in full:
        by_status.setdefault(x["status"], []).append(x["id"])
    for status, ids in by_status.items():
        assert [x["id"] for x in c.pages("/v1/invoices", client_id=who, status=status,
                                         limit=1)] == ids
    assert set(by_status) == {"draft", "issued", "partially_paid"}
    not_overdue = c.pages("/v1/invoices", client_id=who, overdue="false")
    assert {x["id"] for x in not_overdue} >= \
        {x["id"] for x in full if x["status"] in ("issued", "partially_paid")}
    assert all(x["overdue"] is False for x in not_overdue)
    assert c.pages("/v1/invoices", client_id=who, overdue="true") == []
    for x in full:
        assert x["client_id"] == who and x["client_name"] == "Lister Pages"
        assert x["currency"] == "EUR" and x["currency_exponent"] == 2
    assert c.get("/v1/invoices", client_id="nope").status_code == 400
    assert c.get("/v1/invoices", overdue="maybe").status_code == 400
    assert c.pages("/v1/invoices", client_id=str(uuid.uuid4())) == []


def test_answers_headers_and_a_line_racing_the_issue(flow):
    c = flow
    r = c.cmd("reception", "POST", "/v1/invoices", {"client_id": c.client_id})
    assert r.status_code == 201, r.text
    inv = r.json()["id"]
    c.all_invoices.append((c, inv))
    assert r.headers["Location"] == f"/v1/invoices/{inv}"
    assert r.headers["ETag"] == '"1"'
    r = c.cmd("reception", "POST", f"/v1/invoices/{inv}/lines",
              {"description": "x", "quantity": 1, "unit_price_cents": 0})
    assert r.headers["ETag"] == '"2"' and r.headers["X-Consistency-Token"] == r.json()["position"]
    r = c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {})
    assert r.status_code == 200 and r.headers["ETag"] == '"3"', r.text
    v = c.view(inv)
    assert (v["status"], v["total_cents"], v["paid_on"]) == ("paid", 0, str(c.today()))
    # paid at its issue: no payment; nothing was paid, so it voids
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/payments",
                  {"amount_cents": 1, "method": "cash"}), 409, "INVALID_STATE")
    r = c.cmd("admin", "POST", f"/v1/invoices/{inv}/void", {"reason": "x"})
    assert r.status_code == 200, r.text
    v = c.view(inv)
    assert (v["status"], v["balance_cents"], v["paid_cents"]) == ("void", 0, 0)
    # a client without rows has an empty statement
    nobody = c.new_client("No", "Rows")
    st = c.read(f"/v1/clients/{nobody}/statement")
    assert st["data"] == [] and st["opening_balance_cents"] == st["closing_balance_cents"] == 0
    assert c.read(f"/v1/clients/{nobody}")["balance_cents"] == 0
    # a key reused with another body
    key = f"k-{uuid.uuid4()}"
    other = c.issued_invoice(900)
    r1 = c.cmd("reception", "POST", f"/v1/invoices/{other}/payments",
               {"amount_cents": 100, "method": "cash"}, headers={"Idempotency-Key": key})
    assert r1.status_code == 200, r1.text
    refused(c.cmd("reception", "POST", f"/v1/invoices/{other}/payments",
                  {"amount_cents": 200, "method": "cash"}, headers={"Idempotency-Key": key}),
            409, "IDEMPOTENCY_KEY_REUSED")
    assert c.view(other)["paid_cents"] == 100

    # a line racing the issue: in the issued total, or refused
    drafts = []
    for i in range(10):
        d = c.invoice()
        c.line(d, 1, 1000)
        drafts.append(d)
    jobs = [(d, kind) for d in drafts for kind in ("issue", "line")]

    def run(job):
        d, kind = job
        if kind == "issue":
            return c.cmd("reception", "POST", f"/v1/invoices/{d}/issue", {})
        return c.cmd("vet", "POST", f"/v1/invoices/{d}/lines",
                     {"description": "late", "quantity": 1, "unit_price_cents": 7})
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(run, jobs))
    for k, d in enumerate(drafts):
        issue, line = answers[2 * k], answers[2 * k + 1]
        assert issue.status_code == 200, issue.text
        v = c.view(d)
        [issued] = c.events(aggregate_id=d, type="InvoiceIssued")
        if line.status_code == 200:
            assert v["line_count"] == 2 and v["total_cents"] == 1007
            assert line.json()["version"] == 3 and issue.json()["version"] == 4
        else:
            refused(line, 409, "INVALID_STATE")
            assert v["line_count"] == 1 and v["total_cents"] == 1000
        assert issued["data"]["total_cents"] == v["total_cents"]


def test_an_invoice_written_on_paper_is_issued_on_its_date(stack, daemons):
    c = FlowClinic(stack, daemons[:3], tz=boundary_zone(), currency="GBP", name="Paper")
    today = c.today()
    it = c.item(sale_price_cents=100)
    c.receive(it, "NOW", 5, today)  # good today, whatever the invoice's date

    def draft():
        inv = c.invoice()
        c.line(inv, 1, 1000)
        return inv
    a = draft()
    path = f"/v1/invoices/{a}/issue"
    for bad in (today + timedelta(days=1), today - timedelta(days=366), "2026-02-30", "x"):
        refused(c.cmd("reception", "POST", path, {"issued_on": str(bad)}), 400,
                "VALIDATION_ERROR", "issued_on")
    c.line(a, 2, None, item_id=it)
    back = today - timedelta(days=100)
    c.issue(a, issued_on=str(back), due_in_days=30)
    v = c.view(a)
    assert (v["number"], v["issued_on"], v["due_on"], v["overdue"]) == \
        ("INV-000001", str(back), str(back + timedelta(days=30)), True)
    [e] = c.events(aggregate_id=it, type="StockDispensed")
    assert e["data"]["allocations"] == [{"batch_number": "NOW", "quantity_milli": 2000}]
    # not before the last issue's date: numbers follow dates
    b = draft()
    refused(c.cmd("reception", "POST", f"/v1/invoices/{b}/issue",
                  {"issued_on": str(back - timedelta(days=1))}), 400, "VALIDATION_ERROR",
            "issued_on")
    c.issue(b, issued_on=str(back))
    d = draft()
    c.issue(d)
    e_ = draft()
    refused(c.cmd("reception", "POST", f"/v1/invoices/{e_}/issue",
                  {"issued_on": str(today - timedelta(days=1))}), 400, "VALIDATION_ERROR",
            "issued_on")
    c.issue(e_, issued_on=str(today))
    assert [c.view(x)["number"] for x in (b, d, e_)] == ["INV-000002", "INV-000003",
                                                         "INV-000004"]
    assert c.view(d)["issued_on"] == str(today)
    # paid on a date between: not before its issue
    refused(c.cmd("reception", "POST", f"/v1/invoices/{a}/payments",
                  {"amount_cents": 1, "method": "cash",
                   "received_on": str(back - timedelta(days=1))}), 400, "VALIDATION_ERROR",
            "received_on")
    c.pay(a, 500, received_on=str(back + timedelta(days=40)))
    st = c.read(f"/v1/clients/{c.client_id}/statement")
    assert [x["date"] for x in st["data"]][:3] == [str(back), str(back),
                                                  str(back + timedelta(days=40))]
    check_statements(c)
    for month in sorted({back.strftime("%Y-%m"), (back + timedelta(days=40)).strftime("%Y-%m"),
                         today.strftime("%Y-%m")}):
        check_revenue(c, month)


# --- stock ----------------------------------------------------------------------

def test_issue_of_interleaved_items_recall_and_void_keep_the_stock(flow):
    c = flow
    lot = f"LOT-{uuid.uuid4().hex[:6]}"
    a = c.item(sale_price_cents=100)
    b = c.item(sale_price_cents=200)
    c.ok("admin", "POST", f"/v1/inventory/items/{a}/receipts",
         {"batch_number": "A1", "quantity": 10, "lot_number": lot})
    c.receive(b, "B1", 10)
    appt = c.appointment()
    inv = c.invoice(appointment_id=appt)
    c.line(inv, 1, None, item_id=a)
    c.line(inv, 2, None, item_id=b)
    c.line(inv, 3, None, item_id=a)
    r = c.issue(inv)
    assert r["events"] == ["InvoiceIssued"] + ["StockDispensed"] * 3
    da = c.events(aggregate_id=a, type="StockDispensed")
    db = c.events(aggregate_id=b, type="StockDispensed")
    assert [e["seq"] for e in da] == [3, 4] and [e["seq"] for e in db] == [3]
    assert [e["data"]["allocations"][0]["quantity_milli"] for e in da] == [1000, 3000]
    p = int(c.events(aggregate_id=inv, type="InvoiceIssued")[0]["position"].split(":")[1])
    offsets = [int(e["position"].split(":")[1]) for e in (da[0], db[0], da[1])]
    assert offsets == [p + 1, p + 2, p + 3]
    # a dispense naming a draft invoice: no number yet in the recall
    draft = c.invoice()
    c.ok("nurse", "POST", f"/v1/inventory/items/{a}/dispenses",
         {"quantity": 1, "invoice_id": draft})
    recall = c.read("/v1/inventory/recall", lot_number=lot)
    got = [(d["invoice_id"], d["invoice_number"], milli(d["quantity"]))
           for d in recall["dispenses"]]
    number = c.view(inv)["number"]
    assert got == [(inv, number, 1000), (inv, number, 3000), (draft, None, 1000)], recall
    assert recall["dispenses"][0]["patient"]["id"] == c.patient_id
    c.line(draft, 1, 100, description="Dispensed at the counter")
    c.issue(draft)
    recall = c.read("/v1/inventory/recall", lot_number=lot)
    assert recall["dispenses"][2]["invoice_number"] == c.view(draft)["number"]
    # a void returns nothing to stock
    c.void(inv)
    assert milli(c.read(f"/v1/inventory/items/{a}")["on_hand"]) == 5000
    assert milli(c.read(f"/v1/inventory/items/{b}")["on_hand"]) == 8000
    assert c.events(aggregate_id=a, type="StockAdjusted") == []


def test_a_hundred_stocked_lines_issue_as_one_transaction_of_101_events(flow):
    c = flow
    items = [c.item(sale_price_cents=10 + k) for k in range(10)]
    for k, it in enumerate(items):
        c.receive(it, f"X{k}", 30, c.today() + timedelta(days=60))
        c.receive(it, f"Y{k}", 30)
    inv = c.invoice()
    want = {it: 0 for it in items}
    for i in range(100):
        it = items[i % 10]
        q = 0.5 + (i % 7) * 0.125  # up to 1.25; 10 lines per item: at most 12.5 of 60
        c.line(inv, q, None, item_id=it, description=f"Item line {i}")
        want[it] += milli(q)
    key = f"big-{uuid.uuid4()}"
    path = f"/v1/invoices/{inv}/issue"
    r = c.cmd("reception", "POST", path, {}, headers={"Idempotency-Key": key})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["events"] == ["InvoiceIssued"] + ["StockDispensed"] * 100
    assert answer["version"] == 102
    [issued] = c.events(aggregate_id=inv, type="InvoiceIssued")
    p, o = (int(x) for x in issued["position"].split(":"))
    assert answer["position"] == f"{p}:{o + 100}"
    dispensed = [e for e in c.events(after=issued["position"]) if e["type"] == "StockDispensed"]
    assert len(dispensed) == 100
    assert [int(e["position"].split(":")[1]) for e in dispensed] == list(range(o + 1, o + 101))
    assert [e["aggregate_id"] for e in dispensed] == [items[i % 10] for i in range(100)]
    for it in items:
        seqs = [e["seq"] for e in dispensed if e["aggregate_id"] == it]
        assert seqs == list(range(4, 14)), (it, seqs)
        item = c.read(f"/v1/inventory/items/{it}")
        assert milli(item["on_hand"]) == 60000 - want[it]
        left = {b["batch_number"]: milli(b["remaining"]) for b in item["batches"]}
        assert left[f"Y{items.index(it)}"] == 30000  # FEFO: the expiring batch first
    again = c.cmd("reception", "POST", path, {}, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json() == answer, again.text
    REPLAY_BIG.update(key=key, path=path, body={}, answer=answer)


def test_lines_of_one_item_that_fit_alone_but_not_together(flow):
    c = flow
    it = c.item(sale_price_cents=5)
    c.receive(it, "Z", 3)
    inv = c.invoice()
    c.line(inv, 2, None, item_id=it)
    c.line(inv, 1.001, None, item_id=it)
    refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/issue", {}), 409,
            "INSUFFICIENT_STOCK")
    lines = c.view(inv)["lines"]
    c.ok("reception", "DELETE", f"/v1/invoices/{inv}/lines/{lines[1]['id']}")
    c.line(inv, 1, None, item_id=it)
    c.issue(inv)
    assert milli(c.read(f"/v1/inventory/items/{it}")["on_hand"]) == 0


def test_quantities_whose_binary_floats_are_not_exact(flow):
    c = flow
    inv = c.invoice()
    quantities = [1.005, 2.675, 4.35, 0.285, 1.115, 8.675, 33.333, 0.1, 0.7, 1e-3, 1e2, 1.10]
    for q in quantities:
        c.line(inv, q, 999, discount_bp=333, tax_rate_bp=1750)
    v = c.view(inv)
    assert [milli(ln["quantity"]) for ln in v["lines"]] == \
        [int(round(q * 1000)) for q in quantities]
    added = c.events(aggregate_id=inv, type="InvoiceLineAdded")
    assert [e["data"]["quantity_milli"] for e in added] == [int(round(q * 1000)) for q in quantities]
    for q in (0.0001, 1.0005, 2.6751, 1e-4):
        refused(c.cmd("reception", "POST", f"/v1/invoices/{inv}/lines",
                      {"description": "x", "quantity": q, "unit_price_cents": 1}),
                400, "VALIDATION_ERROR", "quantity")


def test_concurrent_issues_in_five_tenants_number_each_tenant_apart(stack, daemons):
    clinics = [FlowClinic(stack, daemons[:3], tz="UTC", currency="GBP", name=f"T{i}")
               for i in range(5)]
    jobs = []
    for c in clinics:
        for i in range(10):
            inv = c.invoice()
            c.line(inv, 1, 10 + i)
            jobs.append((c, inv))
    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda j: j[0].cmd("reception", "POST",
                                                   f"/v1/invoices/{j[1]}/issue", {}), jobs))
    assert [r.status_code for r in answers] == [200] * 50, [r.text for r in answers][:3]
    for c in clinics:
        numbers = sorted(c.view(inv)["number"] for cc, inv in jobs if cc is c)
        assert numbers == [f"INV-{i:06d}" for i in range(1, 11)]
    # one tenant's invoice is nobody's in another
    a, b = clinics[0], clinics[1]
    inv = jobs[0][1]
    assert b.get(f"/v1/invoices/{inv}").status_code == 404
    refused(b.cmd("reception", "POST", f"/v1/invoices/{inv}/payments",
                  {"amount_cents": 1, "method": "cash"}), 404, "NOT_FOUND")
    refused(b.cmd("reception", "POST", "/v1/invoices", {"client_id": a.client_id}), 404,
            "NOT_FOUND")
    it = a.item(sale_price_cents=1)
    refused(b.cmd("reception", "POST", f"/v1/invoices/{b.invoice()}/lines",
                  {"description": "x", "quantity": 1, "item_id": it}), 404, "NOT_FOUND")


# --- revenue arithmetic ----------------------------------------------------------

@pytest.mark.parametrize("totals,paid,average,rate_bp", [
    ((15, 17), 3, 16, 938),      # 937.5 -> 938
    ((16, 16), 1, 16, 312),      # 312.5 -> 312
    ((1, 2), 1, 2, 3333),        # average 1.5 -> 2
    ((2, 3), 1, 2, 2000),        # average 2.5 -> 2
    ((0,), 0, 0, 10000),         # nothing invoiced: 10000
])
def test_revenue_average_and_payment_rate_round_half_even(stack, daemons, totals, paid, average,
                                                          rate_bp):
    c = FlowClinic(stack, daemons[:3], tz="Asia/Kathmandu", currency="GBP", name="Rates")
    invoices = [c.issued_invoice(t) for t in totals]
    if paid:
        c.pay(invoices[0], paid, method="cash")
    assert rdiv(paid * 10000, sum(totals)) == rate_bp if sum(totals) else True
    month = c.today().strftime("%Y-%m")
    rev = c.read("/v1/stats/revenue/monthly", "analyst", **{"from": month, "to": month})
    check_schema(rev, "RevenueMonthly")
    [row] = rev["data"]
    assert (row["month"], row["invoice_count"], row["invoiced_cents"], row["paid_cents"],
            row["outstanding_cents"], row["collected_cents"]) == \
        (month, len(totals), sum(totals), paid, sum(totals) - paid, paid), row
    assert row["average_invoice_cents"] == average, row
    assert row["payment_rate_bp"] == rate_bp, row
    assert row["payment_rate"] == round(rate_bp / 10000, 4), row
    check_revenue(c, month)


# --- the writer's restart (last) -------------------------------------------------

def test_an_old_overdue_invoice_and_the_billing_state_survive_a_writer_restart(stack, daemons):
    projector, reader, writer, state = daemons
    c = FlowClinic(stack, daemons[:3], tz="Europe/London", currency="GBP", name="Restart")
    today = c.today()
    # state made through the writer
    one = c.issued_invoice(10000)
    p1 = str(uuid.uuid4())
    c.pay(one, 4000, payment_id=p1)
    c.refund(one, p1, 1000)
    appt = c.appointment()
    held = c.invoice(appointment_id=appt)
    freed_appt = c.appointment()
    freed = c.invoice(appointment_id=freed_appt)
    c.void(freed)
    full = c.invoice()
    for i in range(100):
        c.line(full, 1, 1)
    it = c.item(sale_price_cents=100)
    c.receive(it, "GOOD", 2, today + timedelta(days=30))
    # behind the writer's back: an invoice issued 40 days ago, due 10 days ago,
    # and a batch that expired yesterday
    producer = ev.EventProducer(stack.brokers)
    old = str(uuid.uuid4())
    long_ago = (datetime.now(timezone.utc) - timedelta(days=40)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    issued_on = today - timedelta(days=40)
    lid = str(uuid.uuid4())
    net, disc, tax, total = line_amounts(2500, 1999, 0, 2000)
    envs = [
        ev.envelope("InvoiceCreated", c.tid, "invoice", old, 1,
                    {"client_id": c.client_id, "appointment_id": None}, at=long_ago),
        ev.envelope("InvoiceLineAdded", c.tid, "invoice", old, 2, {
            "line_id": lid, "description": "Surgery", "quantity_milli": 2500,
            "unit_price_cents": 1999, "discount_bp": 0, "tax_rate_bp": 2000, "net_cents": net,
            "discount_cents": disc, "tax_cents": tax, "line_total_cents": total,
            "item_id": None}, at=long_ago),
        ev.envelope("InvoiceIssued", c.tid, "invoice", old, 3, {
            "number": "INV-000002", "issued_on": str(issued_on),
            "due_on": str(issued_on + timedelta(days=30)), "total_cents": total}, at=long_ago),
        ev.envelope("StockReceived", c.tid, "inventory_item", it, 3, {
            "batch_number": "OLD", "lot_number": None,
            "expiry_date": str(today - timedelta(days=1)), "quantity_milli": 9000,
            "unit_cost_cents": None, "supplier_invoice": None}, at=long_ago),
    ]
    for e in envs:
        producer.send(e)
    producer.flush()
    producer.close()
    c.all_invoices.append((c, old))
    c.pos = "{}:{}".format(*producer.delivered[-1])

    state["writer"].terminate()
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    w2.wait_ready(90)
    state["writer"] = w2
    for clinic in FLOW_CLINICS:
        clinic.writer = w2

    # the reader: overdue, in the list, in the balance, in its month
    v = c.view(old)
    assert (v["status"], v["number"], v["overdue"], v["total_cents"]) == \
        ("issued", "INV-000002", True, total), v
    assert v["due_on"] == str(issued_on + timedelta(days=30))
    assert [x["id"] for x in c.pages("/v1/invoices", overdue="true")] == [old]
    assert old not in {x["id"] for x in c.pages("/v1/invoices", overdue="false")}
    assert c.read(f"/v1/clients/{c.client_id}")["balance_cents"] == 7000 + total
    # the rebuilt writer: numbers, balances, payments, appointments, lines, items
    nxt = c.issued_invoice(500)
    assert c.view(nxt)["number"] == "INV-000003"
    refused(c.cmd("reception", "POST", f"/v1/invoices/{old}/payments",
                  {"amount_cents": total + 1, "method": "card"}), 409, "PAYMENT_EXCEEDS_BALANCE")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{old}/payments",
                  {"amount_cents": 1, "method": "card",
                   "received_on": str(issued_on - timedelta(days=1))}),
            400, "VALIDATION_ERROR", "received_on")
    c.pay(old, 1000, received_on=str(issued_on + timedelta(days=1)))
    late = str(uuid.uuid4())
    c.pay(old, 500, payment_id=late)  # today: the old month's paid, this month's collected
    c.refund(old, late, 200)
    refused(c.cmd("reception", "POST", f"/v1/invoices/{one}/payments",
                  {"amount_cents": 7001, "method": "card"}), 409, "PAYMENT_EXCEEDS_BALANCE")
    refused(c.cmd("admin", "POST", f"/v1/invoices/{one}/payments/{p1}/refund",
                  {"amount_cents": 3001, "reason": "x"}), 409, "REFUND_EXCEEDS_PAYMENT")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{one}/payments",
                  {"amount_cents": 1, "method": "card", "payment_id": p1}), 409, "ALREADY_EXISTS")
    refused(c.cmd("reception", "POST", "/v1/invoices",
                  {"client_id": c.client_id, "appointment_id": appt}), 409, "ALREADY_EXISTS")
    c.invoice(appointment_id=freed_appt)
    refused(c.cmd("reception", "POST", f"/v1/invoices/{full}/lines",
                  {"description": "x", "quantity": 1, "unit_price_cents": 1}), 409,
            "INVALID_STATE")
    refused(c.cmd("reception", "POST", f"/v1/invoices/{held}/payments",
                  {"amount_cents": 1, "method": "card"}), 409, "INVALID_STATE")
    # the expired batch is never dispensed at issue
    short = c.invoice()
    c.line(short, 2.001, None, item_id=it)
    refused(c.cmd("reception", "POST", f"/v1/invoices/{short}/issue", {}), 409,
            "INSUFFICIENT_STOCK")
    fits = c.invoice()
    c.line(fits, 2, None, item_id=it)
    c.issue(fits)
    [e] = [e for e in c.events(aggregate_id=it, type="StockDispensed")]
    assert [(x["batch_number"], x["quantity_milli"]) for x in e["data"]["allocations"]] == \
        [("GOOD", 2000)]
    # the idempotent issue of the first test replays the same after the restart
    if REPLAY:
        flow = FLOW_CLINICS[0]
        again = flow.cmd("reception", "POST", REPLAY["path"], REPLAY["body"],
                         headers={"Idempotency-Key": REPLAY["key"]})
        assert again.status_code == 200 and again.json() == REPLAY["answer"], again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
    if REPLAY_BIG:
        flow = FLOW_CLINICS[0]
        again = flow.cmd("reception", "POST", REPLAY_BIG["path"], REPLAY_BIG["body"],
                         headers={"Idempotency-Key": REPLAY_BIG["key"]})
        assert again.status_code == 200 and again.json() == REPLAY_BIG["answer"], again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
    # revenue: the old month and this one
    check_revenue(c, issued_on.strftime("%Y-%m"))
    check_revenue(c, today.strftime("%Y-%m"))
    months = c.read("/v1/stats/revenue/monthly", "analyst",
                    **{"from": issued_on.strftime("%Y-%m"), "to": today.strftime("%Y-%m")})
    assert [m["month"] for m in months["data"]] == sorted(
        {issued_on.strftime("%Y-%m"), today.strftime("%Y-%m")})
    old_month = months["data"][0]
    assert (old_month["invoice_count"], old_month["invoiced_cents"], old_month["paid_cents"]) == \
        (1, total, 1300)
    assert requests.get(w2.url + "/healthz", timeout=10).status_code == 200
    # the statement: the old rows first (by date, though logged last)
    st = c.read(f"/v1/clients/{c.client_id}/statement")
    assert [(x["date"], x["invoice_id"], x["kind"]) for x in st["data"][:2]] == [
        (str(issued_on), old, "invoice"),
        (str(issued_on + timedelta(days=1)), old, "payment")], st["data"]
    assert st["data"][0]["balance_cents"] == total
    since = c.read(f"/v1/clients/{c.client_id}/statement", **{"from": str(today)})
    assert since["opening_balance_cents"] == total - 1000
    assert since["closing_balance_cents"] == st["closing_balance_cents"]
    assert since["data"] == st["data"][2:]
    until = c.read(f"/v1/clients/{c.client_id}/statement", to=str(issued_on))
    assert [x["invoice_id"] for x in until["data"]] == [old]
    assert until["closing_balance_cents"] == total
    check_statements(c)


def test_month_boundaries_in_kiritimati_follow_the_local_date(stack, daemons):
    """Events of a clinic at UTC+14 around 31 October 10:00 UTC (midnight
    there), written into the log: a refund made at 10:30 UTC on 31 October is
    dated 1 November there, and counts in November's collected cash; a void
    at 09:59 UTC still on 31 October."""
    projector, reader, _, state = daemons
    c = FlowClinic(stack, (projector, reader, state["writer"]), tz="Pacific/Kiritimati",
                   currency="AUD", name="Dateline")
    producer = ev.EventProducer(stack.brokers)
    seqs = {}

    def send(type_, inv, data, at):
        seqs[inv] = seqs.get(inv, 0) + 1
        producer.send(ev.envelope(type_, c.tid, "invoice", inv, seqs[inv], data, at=at))

    def invoice(number, issued_on, total_price, at):
        inv = str(uuid.uuid4())
        c.all_invoices.append((c, inv))
        send("InvoiceCreated", inv, {"client_id": c.client_id, "appointment_id": None}, at)
        net, disc, tax, total = line_amounts(1000, total_price, 0, 0)
        send("InvoiceLineAdded", inv, {
            "line_id": str(uuid.uuid4()), "description": "Visit", "quantity_milli": 1000,
            "unit_price_cents": total_price, "discount_bp": 0, "tax_rate_bp": 0,
            "net_cents": net, "discount_cents": disc, "tax_cents": tax,
            "line_total_cents": total, "item_id": None}, at)
        send("InvoiceIssued", inv, {"number": number, "issued_on": issued_on,
                                    "due_on": "2026-11-10", "total_cents": total}, at)
        return inv

    oct_inv = invoice("INV-000001", "2026-10-31", 10000, "2026-10-31T09:00:00.000000Z")
    pay = str(uuid.uuid4())
    send("PaymentRecorded", oct_inv, {"payment_id": pay, "amount_cents": 6000, "method": "card",
                                      "reference": None, "received_on": "2026-10-31"},
         "2026-10-31T09:30:00.000000Z")
    send("PaymentRefunded", oct_inv, {"refund_id": str(uuid.uuid4()), "payment_id": pay,
                                      "amount_cents": 1000, "reason": "late"},
         "2026-10-31T10:30:00.000000Z")
    voided = invoice("INV-000002", "2026-10-31", 300, "2026-10-31T09:40:00.000000Z")
    send("InvoiceVoided", voided, {"reason": "x"}, "2026-10-31T09:59:59.000000Z")
    nov_inv = invoice("INV-000003", "2026-11-01", 700, "2026-10-31T10:00:00.000000Z")
    producer.flush()
    c.pos = "{}:{}".format(*producer.delivered[-1])
    producer.close()

    v = c.view(oct_inv)
    assert (v["status"], v["paid_cents"], v["balance_cents"], v["overdue"]) == \
        ("partially_paid", 5000, 5000, True)
    assert v["payments"][0]["refunds"][0]["refunded_on"] == "2026-11-01"
    assert query(stack, "SELECT voided_on::text FROM read.invoices WHERE tenant_id = %s "
                        "AND id = %s", (c.tid, voided)) == [("2026-10-31",)]
    assert c.view(nov_inv)["issued_on"] == "2026-11-01"
    rev = c.read("/v1/stats/revenue/monthly", "analyst", **{"from": "2026-10", "to": "2026-11"})
    got = [(m["month"], m["invoice_count"], m["invoiced_cents"], m["paid_cents"],
            m["collected_cents"]) for m in rev["data"]]
    assert got == [("2026-10", 1, 10000, 5000, 6000), ("2026-11", 1, 700, 0, -1000)], got
    check_revenue(c, "2026-10")
    check_revenue(c, "2026-11")
    st = c.read(f"/v1/clients/{c.client_id}/statement")
    assert [(x["date"], x["kind"], x["amount_cents"]) for x in st["data"]] == [
        ("2026-10-31", "invoice", 10000), ("2026-10-31", "payment", -6000),
        ("2026-10-31", "invoice", 300), ("2026-10-31", "void", -300),
        ("2026-11-01", "refund", 1000), ("2026-11-01", "invoice", 700)], st["data"]
    october = c.read(f"/v1/clients/{c.client_id}/statement",
                     **{"from": "2026-10-01", "to": "2026-10-31"})
    assert october["closing_balance_cents"] == 4000 and len(october["data"]) == 4
    check_statements(c)


# --- the whole module ------------------------------------------------------------

def test_the_analysts_revenue_view_agrees_with_the_reader(stack, daemons):
    """read.revenue (a materialized view computed from the invoice tables) and
    the reader's months (from revenue_monthly, kept per event) agree."""
    for c in FLOW_CLINICS:
        rev = c.read("/v1/stats/revenue/monthly", "analyst",
                     **{"from": "2025-01", "to": "2027-12"})
        want = [(m["month"], m["invoice_count"], m["invoiced_cents"], m["paid_cents"],
                 m["outstanding_cents"], m["collected_cents"]) for m in rev["data"]]

        def analyst_rows():
            with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
                conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.tid,))
                return [(m.strftime("%Y-%m"), *rest) for (m, *rest) in conn.execute(
                    "SELECT month, invoice_count, invoiced_cents, paid_cents, outstanding_cents, "
                    "collected_cents FROM read.revenue ORDER BY month").fetchall()]
        wait_for(lambda: analyst_rows() == want, timeout=30,
                 what=f"read.revenue of {c.tz} {c.currency} to agree with {want}",
                 explain=lambda: repr(analyst_rows()))
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (FLOW_CLINICS[0].tid,))
        assert conn.execute("SELECT count(*) FROM read.invoices").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read.client_ledger")


def test_every_flow_invoice_recomputes_and_the_read_model_equals_a_rebuild(stack, daemons):
    recompute_every_invoice(stack, FLOW_CLINICS, FLOW_INVOICES)
    for c in FLOW_CLINICS:
        check_statements(c)
    rebuild_equals_live(stack, FLOW_CLINICS, "read_bill_flow_check")
