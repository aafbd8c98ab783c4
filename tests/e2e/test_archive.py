"""Archiving (issue 17 item 5; projector/archive.c, migration 012,
`vetctl archive run`, docs/operations.md § Archiving) against the real stack.

Events are produced straight into vetpms.events with their times in the past
(the writer does not book nor open records back-dated): tenant A, whose
settings are 30 days for appointments and 60 for records, has closed and open
appointments and records, old and young; tenant B has the same old closed rows.
A dry run reports and changes nothing; `archive run --tenant A` moves exactly
A's closed rows past the cutoffs (a record with its vitals, diagnoses,
treatments, prescriptions and addenda); the reader, `as_of` and an analyst
login still read them, and the daily stats do not change; an addendum on an
archived record is applied once and follows its record at the next pass; a
setting changed through the writer is projected and one changed in the log is
followed by the next pass; kill -9 of the projector mid-pass loses and
duplicates nothing; the timer moves rows by itself; and the whole-log and the
one-tenant rebuilds, after one pass, equal the live read model row by row."""

import json
import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

import events as ev
from readmodel import query, run_rebuild, table_digests
from stack import BIN_DIR, KILLED_MEMBER_PROPS, free_port, running_stack, wait_for
from produced import ProducedTenant

LIVE = ["appointments", "medical_records", "vitals", "diagnoses", "treatments",
        "prescriptions", "addenda"]
ARCHIVE = ["archive_" + t for t in LIVE]
OPERATOR = "ops-archive-test"
N_KILL = 800  # appointments moved two per batch while the projector is killed


def rfc(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ago(days, hours=0):
    return datetime.now(timezone.utc) - timedelta(days=days, hours=hours)


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: a rebuild swaps schema `read` and the projector is killed."""
    with running_stack() as s:
        yield s


def start_projector(stack, **env):
    # a short session: the partitions of a projector killed with -9 go to the
    # next one within seconds (as test_projector.py does)
    env = {"VETPMS_PROJECTOR_ARCHIVE_INTERVAL_S": "0", "VETPMS_PROJECTOR_MV_REFRESH_MS": "200",
           "VETPMS_KAFKA_PROPS": KILLED_MEMBER_PROPS, **env}
    p = stack.start_daemon("projector", port=free_port(), env=env)
    p.wait_ready(90)
    return p


@pytest.fixture(scope="module")
def daemons(stack):
    state = {"projector": start_projector(stack),
             "reader": stack.start_daemon("query-reader", port=free_port())}
    state["reader"].wait_ready(90)
    yield state
    for d in (state["reader"], state["projector"]):
        d.terminate()


def vetctl_archive(stack, *args, check=True):
    return stack.vetctl("archive", "run", *args, "--dsn", stack.dsn("projector"), "--by",
                        OPERATOR, check=check)


class Tenant(ProducedTenant):
    """A tenant built from events: a vet, a client, two patients; `send`
    waits until each event is logged or dead-lettered."""

    exact_count = False  # its settings also come through the writer
    send_timeout = 60

    def __init__(self, stack, producer, appointment_days, record_days):
        self.stack, self.producer = stack, producer
        self.t, self.vet, self.client = ev.new_id(), ev.new_id(), ev.new_id()
        self.p1, self.p2 = ev.new_id(), ev.new_id()
        self.seqs, self.sent, self.opened = {}, 0, {}
        old = rfc(ago(400))
        self.send([
            dict(ev.envelope("TenantProvisioned", self.t, "tenant", self.t, self.seq(self.t),
                             {"name": "Archive Vets", "timezone": "Europe/Paris",
                              "currency": "EUR"}), at=old),
            self.settings(appointment_days, record_days, at=old),
            dict(ev.envelope("StaffRegistered", self.t, "staff", self.vet, self.seq(self.vet),
                             {"name": "Dr Old", "role": "veterinarian", "email": None,
                              "license_number": None}), at=old),
            dict(ev.client_registered(self.t, self.client, seq=self.seq(self.client)), at=old),
            dict(ev.patient_registered(self.t, self.p1, self.client, "Rex",
                                       seq=self.seq(self.p1)), at=old),
            dict(ev.patient_registered(self.t, self.p2, self.client, "Tom",
                                       seq=self.seq(self.p2)), at=old)])

    def settings(self, appointment_days, record_days, at=None):
        return ev.envelope("TenantSettingsChanged", self.t, "tenant", self.t, self.seq(self.t),
                           {"record_lock_hours": 0,
                            "archive_appointments_after_days": appointment_days,
                            "archive_records_after_days": record_days}, at=at)

    def appointment(self, days_ago, outcome, patient=None):
        """An appointment days_ago, closed by `outcome` (completed, canceled,
        no_show) or left scheduled (None); its id and events."""
        a, start = ev.new_id(), ago(days_ago)
        at = rfc(start - timedelta(days=7))

        def e(type_, data, when):
            return ev.envelope(type_, self.t, "appointment", a, self.seq(a), data, at=when)
        envs = [e("AppointmentScheduled", {"patient_id": patient or self.p1, "vet_id": self.vet,
                                           "start": rfc(start),
                                           "end": rfc(start + timedelta(minutes=30)),
                                           "type": "consultation", "reason": "check"}, at)]
        if outcome == "completed":
            envs += [e("AppointmentCheckedIn", {"at": rfc(start)}, rfc(start)),
                     e("AppointmentStarted", {"at": rfc(start)}, rfc(start)),
                     e("AppointmentCompleted", {"at": rfc(start + timedelta(minutes=25)),
                                                "notes": "fine"}, rfc(start))]
        elif outcome == "canceled":
            envs.append(e("AppointmentCanceled", {"reason": "owner ill"}, at))
        elif outcome == "no_show":
            envs.append(e("AppointmentNoShow", {}, rfc(start + timedelta(hours=1))))
        return a, envs

    def record(self, days_ago, signed, patient=None):
        """A record opened days_ago with one row in each child table, signed
        or not; its id and events."""
        r, opened = ev.new_id(), ago(days_ago)
        at = rfc(opened)
        self.opened[r] = opened

        def e(type_, data):
            # one minute apart: as_of can fall between two of them
            when = rfc(opened + timedelta(minutes=self.seqs.get(r, 0)))
            return ev.envelope(type_, self.t, "medical_record", r, self.seq(r), data, at=when)
        envs = [e("MedicalRecordOpened", {"patient_id": patient or self.p1, "appointment_id": None,
                                          "record_type": "consultation",
                                          "chief_complaint": "limping",
                                          "visit_date": opened.date().isoformat()}),
                e("VitalsRecorded", {"vitals_id": ev.new_id(), "recorded_at": at,
                                     "temperature_dc": 385, "pulse_bpm": 90,
                                     "respiration_rpm": 20, "systolic_mmhg": None,
                                     "diastolic_mmhg": None, "weight_g": None,
                                     "body_condition_score": 5, "pain_score": 1}),
                e("DiagnosisAdded", {"diagnosis_id": ev.new_id(), "name": "Sprain",
                                     "code": "S93", "status": "confirmed", "notes": None,
                                     "primary": True}),
                e("TreatmentAdded", {"treatment_id": ev.new_id(), "name": "Rabies",
                                     "treatment_type": "vaccination", "description": None,
                                     "performed_at": at,
                                     "next_due_on": (opened + timedelta(days=365)).date()
                                     .isoformat()}),
                e("MedicationPrescribed", {"prescription_id": ev.new_id(),
                                           "medication": "Meloxicam", "dosage": "0.1 mg/kg",
                                           "frequency": "once daily", "route": "oral",
                                           "duration_days": 7, "quantity_milli": 10500,
                                           "refills": 0, "instructions": None,
                                           "item_id": None})]
        if signed:
            envs += [e("MedicalRecordSigned", {}),
                     e("AddendumAdded", {"addendum_id": ev.new_id(), "text": "called back"})]
        return r, envs


def live_ids(stack, table, tenant, archived):
    """The ids (records: record ids of child rows) of tenant's rows in the
    live table (ONLY) or its archive child."""
    rel = ("read.archive_" + table) if archived else ("ONLY read." + table)
    col = "record_id" if table in LIVE[2:] else "id"
    return sorted(str(i) for (i,) in query(stack, f"SELECT {col} FROM {rel} WHERE tenant_id = %s",
                                           (tenant,)))


def own_digests(stack, schema="read"):
    """{table: (rows, md5)} of each live table's own rows (ONLY) and of each
    archive table without archived_at (when a pass ran differs between two
    read models of the same log; archived_version does not)."""
    out = {}
    for t in LIVE + ARCHIVE:
        rel = f'"{schema}"."{t}"' if t.startswith("archive_") else f'ONLY "{schema}"."{t}"'
        out[t] = query(stack, f"SELECT count(*), md5(coalesce(string_agg(r, '|' ORDER BY r), ''))"
                              f" FROM (SELECT (to_jsonb(x) - 'archived_at')::text AS r"
                              f" FROM {rel} x) s")[0]
    return out


def other_digests(stack):
    return table_digests(stack, "read", exclude=ARCHIVE + ["archive_runs"])


def api(daemons, stack, tenant, path, roles=("vet",), **params):
    r = requests.get(daemons["reader"].url + path, params=params, timeout=10,
                     headers={"Authorization": "Bearer " + stack.token(list(roles), tenant=tenant)})
    assert r.status_code == 200, (path, r.text)
    return r.json()


def reads(daemons, stack, c, appointments, records):
    """What the reader answers of these rows: by id, lists, timeline, stats."""
    out = {"appt:" + a: api(daemons, stack, c.t, f"/v1/appointments/{a}", ("admin",))
           for a in appointments}
    out.update({"rec:" + r: api(daemons, stack, c.t, f"/v1/medical-records/{r}")
                for r in records})
    for p in (c.p1, c.p2):
        out["records:" + p] = api(daemons, stack, c.t, f"/v1/patients/{p}/medical-records")
        out["timeline:" + p] = api(daemons, stack, c.t, f"/v1/patients/{p}/timeline", limit=100)
    out["stats"] = query(stack, "SELECT local_date, total, completed, canceled, no_show, "
                                "duration_sum_s, duration_count FROM read.daily_appointment_stats "
                                "WHERE tenant_id = %s ORDER BY 1", (c.t,))
    out["dashboard"] = query(stack, "SELECT appointment_id, status FROM read.appointment_dashboard"
                                    " WHERE tenant_id = %s ORDER BY 1", (c.t,))
    return out


@pytest.fixture(scope="module")
def world(stack, daemons):
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-archive-{uuid.uuid4()}")
    a = Tenant(stack, producer, appointment_days=30, record_days=60)
    b = Tenant(stack, producer, appointment_days=30, record_days=60)
    w = {"a": a, "b": b, "producer": producer, "envs": []}
    old = {}
    envs = []
    for name, days, outcome in (("old_completed", 100, "completed"),
                                ("old_canceled", 100, "canceled"),
                                ("old_no_show", 90, "no_show"),
                                ("old_open", 100, None),
                                ("young_completed", 10, "completed")):
        old[name], e = a.appointment(days, outcome, patient=a.p2 if "canceled" in name else None)
        envs += e
    for name, days, signed in (("rec_old_signed", 100, True), ("rec_old_open", 100, False),
                               ("rec_young_signed", 20, True)):
        old[name], e = a.record(days, signed)
        envs += e
    a.send(envs)
    b_appt, e1 = b.appointment(100, "completed")
    b_rec, e2 = b.record(100, True)
    b.send(e1 + e2)
    w.update(old)
    w["b_appt"], w["b_rec"] = b_appt, b_rec
    yield w
    producer.close()


def test_a_dry_run_reports_and_changes_nothing(stack, world):
    a = world["a"]
    before = own_digests(stack)
    r = vetctl_archive(stack, "--tenant", a.t, "--dry-run")
    [line] = [json.loads(x) for x in r.stdout.splitlines()]
    assert line["tenant_id"] == a.t
    assert (line["appointments"], line["medical_records"], line["record_children"]) == (3, 1, 5)
    assert "nothing changed" in r.stderr
    assert own_digests(stack) == before
    assert query(stack, "SELECT count(*) FROM read.archive_runs")[0][0] == 0
    # every tenant: B's too
    rows = {j["tenant_id"]: j for j in map(json.loads, vetctl_archive(stack, "--dry-run")
                                           .stdout.splitlines())}
    assert rows[world["b"].t]["appointments"] == 1 and rows[world["b"].t]["medical_records"] == 1
    assert vetctl_archive(stack, "--tenant", "nope", check=False).returncode == 2
    assert vetctl_archive(stack, "--tenant", ev.new_id(), "--dry-run",
                          check=False).returncode == 3


def test_a_pass_moves_exactly_the_closed_old_rows_and_they_stay_readable(stack, daemons, world):
    a, w = world["a"], world
    appts = [w[k] for k in ("old_completed", "old_canceled", "old_no_show", "old_open",
                            "young_completed")]
    recs = [w[k] for k in ("rec_old_signed", "rec_old_open", "rec_young_signed")]
    before = reads(daemons, stack, a, appts, recs)
    b_before = own_digests(stack)
    r = vetctl_archive(stack, "--tenant", a.t)
    assert json.loads(r.stdout)["moved"] == 3 + 1 + 5
    assert re.search(r"archive: 9, \d+/s, at finished", r.stderr), r.stderr
    assert live_ids(stack, "appointments", a.t, True) == sorted(
        [w["old_completed"], w["old_canceled"], w["old_no_show"]])
    assert live_ids(stack, "appointments", a.t, False) == sorted(
        [w["old_open"], w["young_completed"]])
    assert live_ids(stack, "medical_records", a.t, True) == [w["rec_old_signed"]]
    assert live_ids(stack, "medical_records", a.t, False) == sorted(
        [w["rec_old_open"], w["rec_young_signed"]])
    for child in LIVE[2:]:
        assert live_ids(stack, child, a.t, True) == [w["rec_old_signed"]], child
        assert w["rec_old_signed"] not in live_ids(stack, child, a.t, False), child
    # tenant B was not asked for
    b = world["b"]
    assert live_ids(stack, "appointments", b.t, True) == []
    assert live_ids(stack, "medical_records", b.t, True) == []
    assert query(stack, "SELECT count(*) FROM read.appointments WHERE tenant_id = %s",
                 (b.t,))[0][0] == 1
    # the reader answers as before (by id, lists, timeline, daily stats,
    # dashboard), the archived ones say so
    after = reads(daemons, stack, a, appts, recs)
    moved = {"appt:" + w[k] for k in ("old_completed", "old_canceled", "old_no_show")}
    moved.add("rec:" + w["rec_old_signed"])
    for key in [k for k in before if k.startswith(("appt:", "rec:"))]:
        assert before[key].pop("archived") is False, key
        assert after[key].pop("archived") is (key in moved), key
    assert after == before
    archived = query(stack, "SELECT archived_at, archived_version, version FROM "
                            "read.archive_medical_records WHERE id = %s", (w["rec_old_signed"],))
    assert archived[0][0] is not None and archived[0][1] == archived[0][2]
    # the metrics count the rows by table
    metrics = daemons["projector"].get("/metrics").text
    assert 'vetpms_projector_archived_rows_total{table="appointments"} 3' in metrics
    assert 'vetpms_projector_archived_rows_total{table="addenda"} 1' in metrics
    # a second pass has nothing left to move
    assert json.loads(vetctl_archive(stack, "--tenant", a.t).stdout)["moved"] == 0
    assert own_digests(stack)["archive_appointments"] != b_before["archive_appointments"]


def test_archived_rows_read_as_of_and_by_an_analyst_login(stack, daemons, world):
    a, w = world["a"], world
    rec = w["rec_old_signed"]
    live = api(daemons, stack, a.t, f"/v1/medical-records/{rec}")
    at = rfc(datetime.now(timezone.utc) - timedelta(minutes=1))
    folded = api(daemons, stack, a.t, f"/v1/medical-records/{rec}", as_of=at)
    # history has no archive: the same record, archived only today
    assert live.pop("archived") is True and folded.pop("archived") is False
    assert folded == live
    # opened, 4 child events, then signed at +5 min: open at +4.5 min
    before_signing = api(daemons, stack, a.t, f"/v1/medical-records/{rec}",
                         as_of=rfc(a.opened[rec] + timedelta(minutes=4, seconds=30)))
    assert before_signing["status"] == "open" and before_signing["addenda"] == []
    # an analyst login of tenant A reads A's archived appointments, not B's,
    # and no clinical table, archived or not
    login = "archive_analyst_" + uuid.uuid4().hex[:8]
    password = stack.vetctl("analyst", "create", "--tenant", a.t, "--login", login,
                            "--dsn", stack.superuser_dsn()).stdout.strip()
    dsn = (f"host=127.0.0.1 port={stack.ports['pg']} dbname=vetpms user={login} "
           f"password={password}")
    with psycopg.connect(dsn, autocommit=True) as an:
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (a.t,))
        rows = an.execute("SELECT id::text FROM read.archive_appointments").fetchall()
        assert sorted(i for (i,) in rows) == sorted(
            [w["old_completed"], w["old_canceled"], w["old_no_show"]])
        assert an.execute("SELECT count(*) FROM read.appointments").fetchone()[0] == 5
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (world["b"].t,))
        assert an.execute("SELECT count(*) FROM read.archive_appointments").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            an.execute("SELECT count(*) FROM read.archive_medical_records")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            an.execute("SELECT count(*) FROM read.archive_runs")


def test_a_late_addendum_is_applied_once_and_follows_its_record(stack, daemons, world):
    a, w = world["a"], world
    rec = w["rec_old_signed"]
    add = ev.new_id()
    a.send([ev.envelope("AddendumAdded", a.t, "medical_record", rec, a.seq(rec),
                        {"addendum_id": add, "text": "late lab result"})])
    assert query(stack, "SELECT count(*) FROM read.dead_letters WHERE tenant_id = %s",
                 (a.t,))[0][0] == 0
    assert query(stack, "SELECT count(*) FROM read.addenda WHERE id = %s", (add,))[0][0] == 1
    assert query(stack, "SELECT version FROM read.archive_medical_records WHERE id = %s",
                 (rec,))[0][0] == a.seqs[rec]
    body = api(daemons, stack, a.t, f"/v1/medical-records/{rec}")
    assert [x["text"] for x in body["addenda"]] == ["called back", "late lab result"]
    assert body["version"] == a.seqs[rec]
    assert json.loads(vetctl_archive(stack, "--tenant", a.t).stdout)["moved"] == 1
    assert query(stack, "SELECT count(*) FROM ONLY read.addenda WHERE record_id = %s",
                 (rec,))[0][0] == 0
    assert query(stack, "SELECT count(*) FROM read.archive_addenda WHERE record_id = %s",
                 (rec,))[0][0] == 2
    assert api(daemons, stack, a.t, f"/v1/medical-records/{rec}") == body


def test_settings_through_the_writer_and_the_next_pass_follows_them(stack, daemons, world):
    writer = stack.start_daemon("cmd-writer", port=free_port())
    writer.wait_ready(90)
    try:
        t = stack.provision(writer, "Settings Vets", "Europe/Paris", "EUR")
        h = {"Authorization": "Bearer " + stack.token("admin", tenant=t)}
        path = f"{writer.url}/v1/tenants/{t}/settings"
        for bad in ({"archive_appointments_after_days": -1},
                    {"archive_records_after_days": 36501},
                    {"archive_records_after_days": "7y"}):
            r = requests.patch(path, json=bad, headers=h, timeout=30)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "VALIDATION_ERROR"
            assert {d["field"] for d in r.json()["error"]["details"]} == set(bad), r.text
        r = requests.patch(path, json={"archive_records_after_days": None}, headers=h, timeout=30)
        assert r.status_code == 400 and {d["field"] for d in r.json()["error"]["details"]} == {
            "record_lock_hours"}, r.text  # null is no setting: nothing to change
        r = requests.patch(path, json={"archive_appointments_after_days": 365}, headers=h,
                           timeout=30)
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        wait_for(lambda: query(stack, "SELECT record_lock_hours, archive_appointments_after_days,"
                                      " archive_records_after_days, version FROM read.tenants "
                                      "WHERE id = %s", (t,)) == [(0, 365, 2555, 2)],
                 what="settings projected")
        [(data,)] = query(stack, "SELECT envelope->'data' FROM read.event_log WHERE tenant_id = %s"
                                 " AND type = 'TenantSettingsChanged'", (t,))
        assert data == {"record_lock_hours": 0, "archive_appointments_after_days": 365}
    finally:
        writer.terminate()
    # tenant A's own setting, changed in the log: 5 days takes the young one
    a, w = world["a"], world
    a.send([a.settings(5, 60)])
    assert json.loads(vetctl_archive(stack, "--tenant", a.t).stdout)["moved"] == 1
    assert w["young_completed"] in live_ids(stack, "appointments", a.t, True)
    assert live_ids(stack, "appointments", a.t, False) == [w["old_open"]]


def test_kill_9_mid_pass_loses_and_duplicates_nothing(stack, daemons, world):
    producer = world["producer"]
    e = Tenant(stack, producer, appointment_days=30, record_days=60)
    envs, ids = [], []
    for i in range(N_KILL):
        a, batch = e.appointment(40 + i % 50, "canceled")
        ids.append(a)
        envs += batch
    e.send(envs)
    daemons["projector"].terminate()
    daemons["projector"] = start_projector(stack, VETPMS_PROJECTOR_ARCHIVE_BATCH="2")
    run = subprocess.Popen([f"{BIN_DIR}/vetctl", "archive", "run", "--tenant", e.t, "--dsn",
                            stack.dsn("projector"), "--by", OPERATOR, "--timeout-s", "120"],
                           env=stack.env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)

    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        def moved():
            return su.execute("SELECT count(*) FROM read.archive_appointments WHERE "
                              "tenant_id = %s", (e.t,)).fetchone()[0]
        wait_for(lambda: moved() >= 20, timeout=60, interval=0.005, what="a pass under way")
        daemons["projector"].kill9()
        at_kill = moved()
    assert 0 < at_kill < N_KILL, "the pass ended before the kill: the test proves nothing"
    # one statement, one snapshot: the batch whose COMMIT was on the wire at
    # the kill may still land, and two reads could see it on both sides
    both = [str(i) for (i,) in query(stack,
            "SELECT id FROM ONLY read.appointments WHERE tenant_id = %s UNION ALL "
            "SELECT id FROM read.archive_appointments WHERE tenant_id = %s", (e.t, e.t))]
    assert len(both) == N_KILL and sorted(both) == sorted(ids)
    daemons["projector"] = start_projector(stack)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert live_ids(stack, "appointments", e.t, False) == []
    assert live_ids(stack, "appointments", e.t, True) == sorted(ids)
    assert query(stack, "SELECT count(*) FROM read.daily_appointment_stats WHERE tenant_id = %s"
                        " AND canceled > 0", (e.t,))[0][0] == 50


def test_the_timer_moves_rows_by_itself(stack, daemons, world):
    a = world["a"]
    appt, envs = a.appointment(200, "no_show")
    runs = query(stack, "SELECT count(*) FROM read.archive_runs")[0][0]
    daemons["projector"].terminate()
    daemons["projector"] = start_projector(stack, VETPMS_PROJECTOR_ARCHIVE_INTERVAL_S="1")
    a.send(envs)
    wait_for(lambda: appt in live_ids(stack, "appointments", a.t, True), timeout=30,
             what="the timed pass")
    # nobody asked: the timer did it
    assert query(stack, "SELECT count(*) FROM read.archive_runs")[0][0] == runs
    daemons["projector"].terminate()
    daemons["projector"] = start_projector(stack)


def test_rebuilds_after_one_pass_equal_the_live_read_model(stack, daemons, world):
    vetctl_archive(stack)  # everything due, every tenant (B's rows too)
    assert live_ids(stack, "medical_records", world["b"].t, True) == [world["b_rec"]]
    live_own, live_rest = own_digests(stack), other_digests(stack)
    # one tenant: its archived rows come back live, then the pass moves them again
    code = stack.start_daemon("projector", port=free_port(),
                              args=["rebuild", "--tenant", world["a"].t]).proc.wait(timeout=240)
    assert code == 0
    assert live_ids(stack, "appointments", world["a"].t, True) == []
    vetctl_archive(stack, "--tenant", world["a"].t)
    assert own_digests(stack) == live_own and other_digests(stack) == live_rest
    # the whole log into read_next, swapped in
    run_rebuild(stack)
    assert query(stack, "SELECT count(*) FROM read.archive_appointments")[0][0] == 0
    wait_for(lambda: vetctl_archive(stack, "--timeout-s", "20", check=False).returncode == 0,
             timeout=60, what="a pass on the swapped-in schema")
    assert own_digests(stack) == live_own
    assert other_digests(stack) == live_rest
