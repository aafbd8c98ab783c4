"""scripts/demo.sh, the clinic `make run` loads, against the test stack (the
script reads the stack's ports, secret and var dir from the VETPMS_* variables):
staff, clients and patients, a week of the two vets' availability in clinic hours
(tenant timezone), 15 appointments of mixed types inside it from tomorrow on; a
second run appends nothing; a run on the next clinic date replays the dates
already loaded and adds only the new one."""

import os
import re
import subprocess
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from stack import ROOT, free_port, wait_for

TZ = ZoneInfo("Europe/London")
# what scripts/demo.sh books: appointments and availability blocks per ISO weekday
APPOINTMENTS = {1: 3, 2: 3, 3: 2, 4: 3, 5: 3, 6: 1, 7: 0}
BLOCKS = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 1, 7: 0}


@pytest.fixture(scope="module")
def daemons(stack):
    ds = [stack.start_daemon(name, port=free_port())
          for name in ("projector", "query-reader", "cmd-writer")]
    for d in ds:
        d.wait_ready(90)
    yield ds[2], ds[1]
    for d in reversed(ds):
        d.terminate()


def run_demo(stack, writer, today=None):
    env = dict(stack.env, VETPMS_WRITER_PORT=str(writer.port))
    if today:
        env["VETPMS_DEMO_TODAY"] = today.isoformat()
    r = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=env, text=True,
                       capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "skipped" not in r.stderr, r.stderr
    return r.stdout.strip()


def appended(writer):
    m = re.search(r"^vetpms_writer_events_appended_total (\d+)$",
                  writer.get("/metrics").text, re.M)
    return int(m.group(1)) if m else 0


def counts(stack, tid):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        return dict(conn.execute("SELECT type, count(*) FROM read.event_log WHERE tenant_id = %s"
                                 " GROUP BY type", (tid,)).fetchall())


def expected(first, days, table):
    return sum(table[(first + timedelta(days=d)).isoweekday()] for d in range(days))


def test_demo_loads_a_week_of_scheduling_and_reruns_append_nothing(stack, daemons):
    writer, reader = daemons
    today = datetime.now(TZ).date()
    tid = run_demo(stack, writer)
    blocks = expected(today, 8, BLOCKS)              # today and the next 7 dates
    appts = expected(today + timedelta(days=1), 7, APPOINTMENTS)
    assert appts == 15
    want = {"StaffRegistered": 4, "ClientRegistered": 6, "PatientRegistered": 6,
            "AvailabilityPublished": blocks, "AppointmentScheduled": appts,
            # five past visits: four signed, one addendum, two vaccinations
            "MedicalRecordOpened": 5, "VitalsRecorded": 3, "WeightRecorded": 2,
            "SoapNoteWritten": 3, "DiagnosisAdded": 3, "TreatmentAdded": 3,
            "MedicationPrescribed": 2, "MedicalRecordSigned": 4, "AddendumAdded": 1,
            # the formulary: four items, six receipts, three dispenses (one
            # witnessed), one count; three more dispensed by invoice issues
            "InventoryItemCreated": 4, "StockReceived": 6, "StockDispensed": 3 + 3,
            "StockAdjusted": 1,
            # billing: seven invoices (one a draft), six issued, one voided
            "InvoiceCreated": 7, "InvoiceLineAdded": 11, "InvoiceIssued": 6,
            "PaymentRecorded": 3, "PaymentRefunded": 1, "InvoiceVoided": 1}
    wait_for(lambda: {k: v for k, v in counts(stack, tid).items() if k in want} == want,
             timeout=60, what="the demo's events projected",
             explain=lambda: f"projected {counts(stack, tid)}, wanted {want}")

    auth = {"Authorization": "Bearer " + stack.token(["admin", "vet"], tenant=tid)}
    lo = datetime.combine(today, datetime.min.time(), TZ)
    window = {"from": lo.isoformat(), "to": (lo + timedelta(days=9)).isoformat()}
    r = reader.get("/v1/appointments", params=dict(window, limit=200), headers=auth)
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert len(rows) == 15 and {a["status"] for a in rows} == {"scheduled"}
    assert len({a["type"] for a in rows}) >= 5 and len({a["vet"]["id"] for a in rows}) == 2
    for a in rows:
        start = datetime.fromisoformat(a["start"].replace("Z", "+00:00")).astimezone(TZ)
        end = datetime.fromisoformat(a["end"].replace("Z", "+00:00")).astimezone(TZ)
        assert today < start.date() <= today + timedelta(days=7)
        assert a["local_date"] == start.isoformat()[:10]
        close = "13:00" if start.isoweekday() == 6 else "17:00"
        assert "09:00" <= start.strftime("%H:%M") and end.strftime("%H:%M") <= close, a
    # free slots every day the clinic opens; the dashboard of tomorrow
    r = reader.get("/v1/availability", params=dict(window, duration_minutes=30), headers=auth)
    assert r.status_code == 200, r.text
    open_days = {datetime.fromisoformat(s["start"].replace("Z", "+00:00")).astimezone(TZ).date()
                 for s in r.json()["data"]}
    assert open_days == {today + timedelta(days=d) for d in range(8)
                         if BLOCKS[(today + timedelta(days=d)).isoweekday()]}
    tomorrow = today + timedelta(days=1)
    r = reader.get("/v1/dashboards/appointments", params={"date": tomorrow.isoformat()},
                   headers=auth)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == APPOINTMENTS[tomorrow.isoweekday()]

    # the past visits read back: Max's rabies booster is due within a month,
    # and the clinical timelines hold the visits
    vet_auth = {"Authorization": "Bearer " + stack.token(["vet"], tenant=tid)}
    r = reader.get("/v1/reminders/vaccinations", headers=vet_auth,
                   params={"due_before": (today + timedelta(days=30)).isoformat()})
    assert r.status_code == 200, r.text
    assert [(d["patient"]["name"], d["vaccination"]) for d in r.json()["data"]] == \
        [("Max", "Rabies")]
    pets = {p["name"]: p["id"] for p in reader.get(
        "/v1/patients", params={"limit": 50}, headers=auth).json()["data"]}
    r = reader.get(f"/v1/patients/{pets['Bella']}/timeline", headers=vet_auth)
    assert r.status_code == 200, r.text
    kinds = {i["kind"] for i in r.json()["data"]}
    assert {"medical_record", "vitals", "prescription", "appointment", "weight"} <= kinds
    visit = next(i for i in r.json()["data"] if i["kind"] == "medical_record")
    r = reader.get(f"/v1/medical-records/{visit['id']}", headers=vet_auth)
    assert r.status_code == 200, r.text
    assert r.json()["locked"] is True and len(r.json()["addenda"]) == 1

    # billing: seven invoices, every status; Luna's is overdue; the revenue of
    # the months since the first holds every issued invoice but the void one
    desk = {"Authorization": "Bearer " + stack.token(["admin"], tenant=tid)}

    def invoices():
        return reader.get("/v1/invoices", params={"limit": 50}, headers=desk).json()["data"]
    wait_for(lambda: sorted(i["status"] for i in invoices()) ==
             ["draft", "issued", "issued", "paid", "partially_paid", "partially_paid", "void"],
             timeout=30, what="the demo's invoices projected")
    assert [i["number"] for i in sorted(invoices(), key=lambda i: i["number"] or "~")] == \
        ["INV-000001", "INV-000002", "INV-000003", "INV-000004", "INV-000005", "INV-000006",
         None]
    luna = next(i for i in invoices() if i["number"] == "INV-000003")
    assert luna["overdue"] is True and luna["total_cents"] == 7200
    months = {"from": (today - timedelta(days=50)).strftime("%Y-%m"),
              "to": today.strftime("%Y-%m")}
    r = reader.get("/v1/stats/revenue/monthly", params=months, headers=desk)
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert sum(m["invoice_count"] for m in rows) == 5
    assert sum(m["invoiced_cents"] for m in rows) == 6000 + 6312 + 7200 + 37459 + 5798
    assert sum(m["paid_cents"] for m in rows) == 4000 + 6312 + 10000
    assert sum(m["collected_cents"] for m in rows) == 6000 - 2000 + 6312 + 10000

    # the same day again: every command replayed, nothing appended
    before = appended(writer)
    assert run_demo(stack, writer) == tid
    assert appended(writer) == before
    # the next day: dates already loaded replay, the new last date is added
    assert run_demo(stack, writer, today=tomorrow) == tid
    new_day = today + timedelta(days=8)
    added = BLOCKS[new_day.isoweekday()] + APPOINTMENTS[new_day.isoweekday()]
    assert appended(writer) == before + added
    want["AvailabilityPublished"] += BLOCKS[new_day.isoweekday()]
    want["AppointmentScheduled"] += APPOINTMENTS[new_day.isoweekday()]
    wait_for(lambda: {k: v for k, v in counts(stack, tid).items() if k in want} == want,
             timeout=60, what="the next day's events projected")
