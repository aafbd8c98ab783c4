"""History as of a moment (docs/history.md) on a stack of its own: a patient
changed many times (weight, allergy, condition, vitals with a weight,
transfer to another owner, death) and a medical record through its life
(open, SOAP, diagnosis, vitals, treatment, prescription, sign, addendum),
every change made through the writer's HTTP API; after each one the live
answers of GET /v1/patients/{id} and GET /v1/medical-records/{id} are taken
(once the read model has the change) with the time. Afterwards GET with
?as_of= each of those times must answer exactly the snapshot, `locked` and
`version` included; before the resource existed it is 404; before the
tenant's first event, in the future or malformed as_of is 400; reception
may read a patient but not its history (403); folds beyond the bound are 503
at once and a fold past its deadline is 503."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import psycopg
import pytest
import requests

from stack import free_port, running_stack, wait_for

DAY = datetime.now(timezone.utc).date()


def query(stack, text):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        return conn.execute(text).fetchall()


def now_text():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def post(self, path, body=None):
        r = requests.post(self.url + path, json=body or {}, timeout=30,
                          headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code in (200, 201), (path, r.status_code, r.text)
        return r.json()

    def get(self, path, **query):
        q = "&".join(f"{k}={quote(v)}" for k, v in query.items())
        return requests.get(self.url + path + ("?" + q if q else ""), timeout=60,
                            headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="module")
def stack():
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def daemons(stack):
    ds = [stack.start_daemon(n, port=free_port())
          for n in ("cmd-writer", "projector", "query-reader")]
    for d in ds:
        d.wait_ready(90)
    yield ds
    for d in reversed(ds):
        assert d.terminate() == 0


class Clinic:
    def __init__(self, stack, writer_url, reader_url):
        self.stack, self.w, self.r = stack, writer_url, reader_url
        self.before_tenant = now_text()
        pa = Api(writer_url, stack.token("platform-admin"))
        self.tid = pa.post("/v1/tenants", {"name": "As Of", "timezone": "UTC",
                                           "currency": "GBP"})["id"]
        self.admin = self.writer("admin")
        self.reception = self.writer("reception")
        self.nurse = self.writer("nurse")
        self.vet_id = self.admin.post("/v1/staff", {"name": "Dr H", "role": "veterinarian"})["id"]
        self.vet = self.writer("vet", sub=self.vet_id)

    def writer(self, role, sub=None):
        return Api(self.w, self.stack.token(role, tenant=self.tid, sub=sub or f"u-{role}"))

    def reader(self, role, sub=None):
        return Api(self.r, self.stack.token(role, tenant=self.tid, sub=sub or f"u-{role}"))


@pytest.fixture(scope="module")
def lifetime(stack, daemons):
    """The changes, and after each one the live answers and the time."""
    writer, _, reader = daemons
    c = Clinic(stack, writer.url, reader.url)
    vet_reader = c.reader("vet", sub=c.vet_id)
    snapshots = []  # (time, patient answer or None, record answer or None)

    ids = {"patient": None, "record": None}

    def change(answer):
        live = {}
        for path, key in (("/v1/patients/", "patient"), ("/v1/medical-records/", "record")):
            if ids[key] is None:
                live[key] = None
                continue
            r = vet_reader.get(path + ids[key], consistent_with=answer["position"])
            assert r.status_code == 200, r.text
            live[key] = r.json()
        snapshots.append((now_text(), live["patient"], live["record"]))

    owner = c.reception.post("/v1/clients", {"first_name": "Ann", "last_name": "Lee"})
    other = c.reception.post("/v1/clients", {"first_name": "Bo", "last_name": "Ng"})
    c.after_clients = now_text()
    a = c.reception.post("/v1/patients", {"client_id": owner["id"], "name": "Rex",
                                          "species": "canine", "sex": "male",
                                          "weight": {"value": 20.5, "unit": "kg"}})
    ids["patient"], pid = a["id"], a["id"]
    change(a)
    change(c.nurse.post(f"/v1/patients/{pid}/weights", {"value": 21.25, "unit": "kg"}))
    change(c.vet.post(f"/v1/patients/{pid}/allergies", {"allergen": "penicillin",
                                                         "reaction": "hives",
                                                         "severity": "moderate"}))
    c.before_record = now_text()
    a = c.vet.post("/v1/medical-records", {"patient_id": pid, "record_type": "consultation",
                                           "chief_complaint": "limping"})
    ids["record"], rid = a["id"], a["id"]
    change(a)
    change(c.vet.post(f"/v1/medical-records/{rid}/soap", {"subjective": "lame left fore",
                                                          "objective": "swollen carpus"}))
    diagnosis = c.vet.post(f"/v1/medical-records/{rid}/diagnoses",
                           {"name": "Carpal sprain", "code": "S63", "primary": True})
    change(diagnosis)
    change(c.nurse.post(f"/v1/medical-records/{rid}/vitals",
                        {"temperature_c": 38.6, "pulse_bpm": 96,
                         "weight": {"value": 21.8, "unit": "kg"}}))
    change(c.vet.post(f"/v1/medical-records/{rid}/soap", {"assessment": "mild",
                                                          "objective": None}))
    change(c.vet.post(f"/v1/medical-records/{rid}/treatments",
                      {"name": "Bandage", "treatment_type": "procedure"}))
    change(c.vet.post(f"/v1/medical-records/{rid}/prescriptions",
                      {"medication": "Meloxicam", "dosage": "0.1 mg/kg",
                       "frequency": "daily", "route": "oral"}))
    change(c.vet.post(f"/v1/patients/{pid}/conditions", {"name": "Arthritis"}))
    change(c.vet.post(f"/v1/medical-records/{rid}/sign"))
    change(c.vet.post(f"/v1/medical-records/{rid}/addenda", {"text": "owner called: better"}))
    change(c.admin.post(f"/v1/patients/{pid}/transfer", {"client_id": other["id"]}))
    change(c.vet.post(f"/v1/patients/{pid}/deceased",
                      {"date": (DAY - timedelta(days=1)).isoformat()}))
    return c, snapshots, ids


def test_every_moment_answers_its_live_snapshot(lifetime):
    c, snapshots, ids = lifetime
    vet = c.reader("vet", sub=c.vet_id)
    # The snapshots differ from one another: each change is seen.
    assert len({repr(s[1:]) for s in snapshots}) == len(snapshots)
    for at, patient, record in snapshots:
        for path, key, live in (("/v1/patients/", "patient", patient),
                                ("/v1/medical-records/", "record", record)):
            r = vet.get(path + ids[key], as_of=at)
            if live is None:
                assert r.status_code == 404, (at, r.text)
                assert r.json()["error"]["code"] == "NOT_FOUND"
            else:
                assert r.status_code == 200, (at, r.text)
                assert r.json() == live, at
    # The record's lock is computed at as_of: open before the signature.
    opened = [s for s in snapshots if s[2] is not None]
    assert [s[2]["locked"] for s in opened][0] is False and opened[-1][2]["locked"] is True
    assert snapshots[-1][1]["status"] == "deceased"
    assert snapshots[-1][1]["client"]["first_name"] == "Bo"


def test_without_as_of_the_answer_is_todays(lifetime):
    c, snapshots, ids = lifetime
    r = c.reader("vet", sub=c.vet_id).get("/v1/patients/" + ids["patient"])
    assert r.status_code == 200 and r.json() == snapshots[-1][1]


def test_before_the_resource_existed_is_404(lifetime):
    c, _, ids = lifetime
    vet = c.reader("vet", sub=c.vet_id)
    r = vet.get("/v1/patients/" + ids["patient"], as_of=c.after_clients)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", r.text
    r = vet.get("/v1/medical-records/" + ids["record"], as_of=c.before_record)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("when", ["before-tenant", "future", "malformed", "date-only", "empty"])
def test_as_of_outside_the_history_or_malformed_is_400(lifetime, when):
    c, _, ids = lifetime
    value = {"before-tenant": c.before_tenant,
             "future": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
             "malformed": "2026-13-40T25:00:00Z",
             "date-only": DAY.isoformat(),
             "empty": ""}[when]
    for role in ("vet", "admin"):
        for path in ("/v1/patients/", "/v1/medical-records/"):
            key = "patient" if "patients" in path else "record"
            r = c.reader(role).get(path + ids[key], as_of=value)
            assert r.status_code == 400, (when, r.text)
            err = r.json()["error"]
            assert err["code"] == "VALIDATION_ERROR"
            assert [d["field"] for d in err["details"]] == ["as_of"], r.text


def test_roles(lifetime):
    c, snapshots, ids = lifetime
    at = snapshots[-1][0]
    for role in ("vet", "nurse", "admin"):
        for path, key in (("/v1/patients/", "patient"), ("/v1/medical-records/", "record")):
            r = c.reader(role).get(path + ids[key], as_of=at)
            assert r.status_code == 200, (role, path, r.text)
    for role in ("reception", "analyst"):
        for path, key in (("/v1/patients/", "patient"), ("/v1/medical-records/", "record")):
            r = c.reader(role).get(path + ids[key], as_of=at)
            assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    # Reception reads today's patient as before.
    assert c.reader("reception").get("/v1/patients/" + ids["patient"]).status_code == 200


def test_another_tenants_resource_is_404(stack, lifetime):
    c, snapshots, ids = lifetime
    pa = Api(c.w, stack.token("platform-admin"))
    other = pa.post("/v1/tenants", {"name": "Else", "timezone": "UTC", "currency": "GBP"})
    tok = stack.token("vet", tenant=other["id"])
    r = requests.get(f"{c.r}/v1/patients/{ids['patient']}?consistent_with="
                     f"{quote(other['position'])}&as_of={quote(now_text())}",
                     headers={"Authorization": f"Bearer {tok}"}, timeout=60)
    assert r.status_code == 404, r.text


def test_folds_are_bounded_and_have_a_deadline(stack, lifetime):
    """One loop, one fold at a time, a 2.5 s deadline. A lock on event_log
    (held by the test) keeps the first fold waiting: a second request is 503
    at once; released in time the first answers 200, held too long 503."""
    c, snapshots, ids = lifetime
    reader = stack.start_daemon("query-reader", port=free_port(), env={
        "VETPMS_READER_THREADS": "1", "VETPMS_READER_AS_OF_FOLDS": "1",
        "VETPMS_READER_PG_DEADLINE_MS": "2500"})
    reader.wait_ready(90)
    try:
        vet = Api(reader.url, c.stack.token("vet", tenant=c.tid))
        path = "/v1/patients/" + ids["patient"]
        at, live = snapshots[-1][0], snapshots[-1][1]
        for hold, status in ((0.2, 200), (5.0, 503)):
            with psycopg.connect(stack.superuser_dsn()) as lock:
                lock.execute("LOCK TABLE read.event_log IN ACCESS EXCLUSIVE MODE")
                with ThreadPoolExecutor(1) as pool:
                    first = pool.submit(vet.get, path, as_of=at)
                    # the fold waits on the lock (its connection shows it; a
                    # connection of its own: activity is a snapshot per transaction)
                    wait_for(lambda: query(stack, "SELECT 1 FROM pg_stat_activity"
                                           " WHERE application_name = 'vetpms-reader-as-of'"
                                           " AND wait_event_type = 'Lock'"),
                             timeout=10, what="the fold waiting on the lock")
                    busy = vet.get(path, as_of=at)
                    assert busy.status_code == 503, busy.text
                    assert busy.json()["error"]["code"] == "UNAVAILABLE"
                    time.sleep(hold)  # the lock is held this long: the point of the test
                    lock.rollback()
                    r = first.result(timeout=30)
            assert r.status_code == status, r.text
            if status == 200:
                assert r.json() == live
        # without as_of the loop answered all along
        assert vet.get(path).status_code == 200
    finally:
        assert reader.terminate() == 0
