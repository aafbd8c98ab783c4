"""Scheduling on cmd-writer, end to end on the real Kafka of the test stack:
availability (publish, own-only for vets, overlaps, withdraw), appointment
booking rules and refusal codes, half-open adjacency, the status machine,
no-show after start, reschedule excluding itself, the 50-request race for one
slot (also across a kill -9 of the writer), and the JSON Schemas of every
scheduling event produced."""

import concurrent.futures
import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
import requests

from kafka_log import events as log_events
from stack import ROOT, free_port

TENANTS = set()  # tenants made by this module, for the schema check


class Client:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def post(self, path, body=None, headers=None, timeout=30):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return requests.post(self.url + path, json=body, headers=h, timeout=timeout)


def code(r):
    return r.json()["error"]["code"]


def at(minutes=0, seconds=0, base=None):
    """RFC 3339 UTC `minutes` from a base (default: the next whole hour plus one day)."""
    base = base or BASE
    return (base + timedelta(minutes=minutes, seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


BASE = (datetime.now(timezone.utc) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


class Clinic:
    """A tenant with a vet (whose token's sub is the vet's id), a second vet, a
    nurse, and helpers to make patients and appointments."""

    def __init__(self, stack, url):
        pa = Client(url, stack.token("platform-admin"))
        r = pa.post("/v1/tenants", {"name": "Sched", "timezone": "UTC", "currency": "EUR"})
        assert r.status_code == 201, r.text
        self.tid = r.json()["id"]
        TENANTS.add(self.tid)
        self.url, self.stack = url, stack
        self.admin = self.as_("admin")
        self.reception = self.as_("reception")
        self.nurse = self.as_("nurse")
        self.vet_id = self.staff("veterinarian")
        self.vet2_id = self.staff("veterinarian")
        self.nurse_id = self.staff("nurse")
        self.vet = self.as_("vet", sub=self.vet_id)
        self.vet2 = self.as_("vet", sub=self.vet2_id)
        self.client_id = self.new_client()

    def as_(self, role, sub=None):
        return Client(self.url, self.stack.token(role, tenant=self.tid,
                                                 sub=sub or f"u-{role}"))

    def staff(self, role):
        r = self.admin.post("/v1/staff", {"name": "Dr X", "role": role})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def new_client(self):
        r = self.reception.post("/v1/clients", {"first_name": "Ann", "last_name": "Lee"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def patient(self, client_id=None):
        r = self.reception.post("/v1/patients", {"client_id": client_id or self.client_id,
                                                 "name": "Rex", "species": "canine",
                                                 "sex": "male"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def book(self, patient, start, end, vet=None, who=None, **extra):
        body = {"patient_id": patient, "vet_id": vet or self.vet_id, "start": start,
                "end": end, "type": "consultation"}
        body.update(extra)
        return (who or self.reception).post("/v1/appointments", body)


@pytest.fixture(scope="module")
def writer(stack):
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    yield w
    w.terminate()


@pytest.fixture
def clinic(stack, writer):
    return Clinic(stack, writer.url)


def scheduling_events(stack, tid):
    return [e for e in log_events(stack.brokers) if e["tenant_id"] == tid
            and e["type"].startswith(("Appointment", "Availability"))]


# --- booking ---------------------------------------------------------------------

def test_schedule_answers_created_and_logs_utc_times(stack, clinic):
    p = clinic.patient()
    start = (BASE + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    r = clinic.book(p, start.isoformat(), (start + timedelta(minutes=30)).isoformat(),
                    reason="Annual check")
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert r.headers["Location"] == f"/v1/appointments/{aid}"
    assert r.json()["events"] == ["AppointmentScheduled"] and r.json()["version"] == 1
    ev = [e for e in scheduling_events(stack, clinic.tid) if e["aggregate_id"] == aid]
    assert len(ev) == 1 and ev[0]["aggregate"] == "appointment" and ev[0]["seq"] == 1
    assert ev[0]["data"] == {"patient_id": p, "vet_id": clinic.vet_id, "start": at(60),
                             "end": at(90), "type": "consultation", "reason": "Annual check"}
    # a client-chosen id, then the same id again
    mine = str(uuid.uuid4())
    assert clinic.book(p, at(120), at(130), id=mine).status_code == 201
    r = clinic.book(clinic.patient(), at(200), at(210), id=mine)
    assert r.status_code == 409 and code(r) == "ALREADY_EXISTS"


def test_adjacent_slots_are_free_overlaps_are_not(clinic):
    p1, p2, p3 = clinic.patient(), clinic.patient(), clinic.patient()
    assert clinic.book(p1, at(0), at(30)).status_code == 201
    assert clinic.book(p2, at(30), at(60)).status_code == 201  # [9:00,9:30) then [9:30,10:00)
    assert clinic.book(p3, at(-30), at(0)).status_code == 201
    r = clinic.book(p3, at(29), at(31))
    assert r.status_code == 409 and code(r) == "SLOT_UNAVAILABLE"
    # the patient is busy whatever the vet
    r = clinic.book(p1, at(10), at(20), vet=clinic.vet2_id)
    assert r.status_code == 409 and code(r) == "SLOT_UNAVAILABLE"
    assert clinic.book(p1, at(30), at(40), vet=clinic.vet2_id).status_code == 201


def test_input_rules_report_every_bad_field_and_change_nothing(stack, clinic):
    p = clinic.patient()
    past = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = clinic.reception.post("/v1/appointments", {
        "patient_id": p, "vet_id": clinic.vet_id, "start": past,
        "end": (datetime.now(timezone.utc) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "type": "haircut"})
    assert r.status_code == 400 and code(r) == "VALIDATION_ERROR"
    assert {d["field"] for d in r.json()["error"]["details"]} == {"start", "end", "type"}
    r = clinic.book(p, at(0), at(12 * 60 + 1))
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "end"
    r = clinic.book(p, at(0), "2026-13-01T00:00:00Z")
    assert r.status_code == 400
    r = clinic.book(p, at(0), at(30), type=None)
    assert r.status_code == 400
    r = clinic.reception.post("/v1/appointments", {})
    assert {d["field"] for d in r.json()["error"]["details"]} == {
        "patient_id", "vet_id", "start", "end", "type"}
    assert clinic.book(p, at(0), at(12 * 60)).status_code == 201  # exactly 12 h is fine
    assert len(scheduling_events(stack, clinic.tid)) == 1


def test_vet_and_patient_must_exist_and_be_active(stack, clinic):
    p = clinic.patient()
    r = clinic.book(p, at(0), at(30), vet=str(uuid.uuid4()))
    assert r.status_code == 404 and code(r) == "NOT_FOUND"
    r = clinic.book(str(uuid.uuid4()), at(0), at(30))
    assert r.status_code == 404 and code(r) == "NOT_FOUND"
    r = clinic.book(p, at(0), at(30), vet=clinic.nurse_id)
    assert r.status_code == 409 and code(r) == "NOT_A_VETERINARIAN"
    assert clinic.admin.post(f"/v1/staff/{clinic.vet2_id}/deactivate", {}).status_code == 200
    r = clinic.book(p, at(0), at(30), vet=clinic.vet2_id)
    assert r.status_code == 409 and code(r) == "STAFF_INACTIVE"
    dead = clinic.patient()
    assert clinic.vet.post(f"/v1/patients/{dead}/deceased", {"date": "2026-01-01"}).status_code == 200
    r = clinic.book(dead, at(0), at(30))
    assert r.status_code == 409 and code(r) == "PATIENT_INACTIVE"
    other_client = clinic.new_client()
    orphan = clinic.patient(other_client)
    assert clinic.admin.post(f"/v1/clients/{other_client}/deactivate", {}).status_code == 200
    r = clinic.book(orphan, at(0), at(30))
    assert r.status_code == 409 and code(r) == "PATIENT_INACTIVE"
    # another tenant's patient is not found here
    other = Clinic(stack, clinic.url)
    r = clinic.book(other.patient(), at(0), at(30))
    assert r.status_code == 404
    assert scheduling_events(stack, clinic.tid) == []


def test_roles(clinic):
    p = clinic.patient()
    r = clinic.nurse.post("/v1/appointments", {"patient_id": p, "vet_id": clinic.vet_id,
                                               "start": at(0), "end": at(30),
                                               "type": "dental"})
    assert r.status_code == 403 and code(r) == "FORBIDDEN"
    r = clinic.book(p, at(0), at(30), who=clinic.vet)
    assert r.status_code == 201
    aid = r.json()["id"]
    assert clinic.reception.post(f"/v1/appointments/{aid}/start").status_code == 403
    assert clinic.vet.post(f"/v1/appointments/{aid}/no-show").status_code == 403
    assert clinic.nurse.post(f"/v1/appointments/{aid}/check-in").status_code == 200


# --- availability ----------------------------------------------------------------

def test_availability_rules(stack, clinic):
    p1, p2 = clinic.patient(), clinic.patient()
    blocks = {"blocks": [{"start": at(0), "end": at(180)}, {"start": at(180), "end": at(240)}]}
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability", blocks)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["AvailabilityPublished"] and r.json()["version"] == 2
    # a vet publishes only their own; an admin for anyone
    r = clinic.vet2.post(f"/v1/staff/{clinic.vet_id}/availability",
                         {"blocks": [{"start": at(300), "end": at(360)}]})
    assert r.status_code == 403 and code(r) == "FORBIDDEN"
    r = clinic.admin.post(f"/v1/staff/{clinic.vet2_id}/availability",
                          {"blocks": [{"start": at(300), "end": at(360)}]})
    assert r.status_code == 200
    r = clinic.admin.post(f"/v1/staff/{clinic.nurse_id}/availability",
                          {"blocks": [{"start": at(300), "end": at(360)}]})
    assert r.status_code == 409 and code(r) == "NOT_A_VETERINARIAN"
    r = clinic.admin.post(f"/v1/staff/{uuid.uuid4()}/availability",
                          {"blocks": [{"start": at(300), "end": at(360)}]})
    assert r.status_code == 404
    # overlapping what is published: 409; inside the body, or > 24 h, or empty: 400
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability",
                        {"blocks": [{"start": at(239), "end": at(300)}]})
    assert r.status_code == 409 and code(r) == "SLOT_UNAVAILABLE"
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability",
                        {"blocks": [{"start": at(300), "end": at(400)},
                                    {"start": at(350), "end": at(360)},
                                    {"start": at(500), "end": at(500 + 24 * 60 + 1)}]})
    assert r.status_code == 400
    assert {d["field"] for d in r.json()["error"]["details"]} == {"blocks[1]", "blocks[2].end"}
    assert clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability",
                           {"blocks": []}).status_code == 400
    # containment: inside one block, not across two adjacent ones
    r = clinic.book(p1, at(170), at(190))
    assert r.status_code == 409 and code(r) == "OUTSIDE_AVAILABILITY"
    r = clinic.book(p1, at(-30), at(10))
    assert r.status_code == 409 and code(r) == "OUTSIDE_AVAILABILITY"
    r = clinic.book(p1, at(60), at(90))
    assert r.status_code == 201
    aid = r.json()["id"]
    # withdraw: refused while an active appointment overlaps, allowed otherwise
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                        {"start": at(80), "end": at(120)})
    assert r.status_code == 409 and code(r) == "INVALID_STATE"
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                        {"start": at(120), "end": at(150)})
    assert r.status_code == 200 and r.json()["events"] == ["AvailabilityWithdrawn"]
    r = clinic.book(p2, at(130), at(140))
    assert r.status_code == 409 and code(r) == "OUTSIDE_AVAILABILITY"
    assert clinic.book(p2, at(150), at(180)).status_code == 201  # the split's right part
    assert clinic.reception.post(f"/v1/appointments/{aid}/cancel",
                                 {"reason": "owner"}).status_code == 200
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                        {"start": at(80), "end": at(120)})
    assert r.status_code == 200
    r = clinic.vet.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                        {"start": at(80), "end": at(70)})
    assert r.status_code == 400
    r = clinic.vet2.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                         {"start": at(0), "end": at(10)})
    assert r.status_code == 403
    # If-Match on the staff version
    r = clinic.admin.post(f"/v1/staff/{clinic.vet_id}/availability/withdraw",
                          {"start": at(0), "end": at(10)}, headers={"If-Match": '"1"'})
    assert r.status_code == 412 and code(r) == "VERSION_MISMATCH"
    withdrawn = [e for e in scheduling_events(stack, clinic.tid)
                 if e["type"] == "AvailabilityWithdrawn"]
    assert [e["data"] for e in withdrawn] == [{"start": at(120), "end": at(150)},
                                              {"start": at(80), "end": at(120)}]


# --- the status machine -------------------------------------------------------------

def test_lifecycle_paths(stack, clinic):
    a = clinic.book(clinic.patient(), at(0), at(30)).json()["id"]
    b = clinic.book(clinic.patient(), at(30), at(60)).json()["id"]
    base = f"/v1/appointments/{a}"
    r = clinic.vet.post(base + "/start")
    assert r.status_code == 409 and code(r) == "INVALID_STATE"
    assert clinic.reception.post(base + "/check-in").json()["version"] == 2
    r = clinic.reception.post(base + "/reschedule", {"start": at(90), "end": at(100)})
    assert r.status_code == 409 and code(r) == "INVALID_STATE"
    r = clinic.vet.post(base + "/start", headers={"If-Match": '"1"'})
    assert r.status_code == 412
    r = clinic.vet.post(base + "/start", headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    r = clinic.reception.post(base + "/cancel", {"reason": "late"})
    assert r.status_code == 409 and code(r) == "INVALID_STATE"
    r = clinic.vet.post(base + "/complete", {"notes": "healthy"})
    assert r.status_code == 200 and r.json()["version"] == 4
    for path, who, body in (("/check-in", clinic.reception, None), ("/start", clinic.vet, None),
                            ("/complete", clinic.vet, None),
                            ("/cancel", clinic.reception, {"reason": "x"}),
                            ("/no-show", clinic.reception, None)):
        r = who.post(base + path, body)
        assert r.status_code == 409 and code(r) == "INVALID_STATE", path
    # cancel from checked_in, reason required
    assert clinic.reception.post(f"/v1/appointments/{b}/check-in").status_code == 200
    assert clinic.reception.post(f"/v1/appointments/{b}/cancel", {}).status_code == 400
    assert clinic.reception.post(f"/v1/appointments/{b}/cancel",
                                 {"reason": "sick"}).status_code == 200
    # both slots are free again
    assert clinic.book(clinic.patient(), at(0), at(60)).status_code == 201
    assert clinic.reception.post(f"/v1/appointments/{uuid.uuid4()}/check-in").status_code == 404
    evs = [e for e in scheduling_events(stack, clinic.tid) if e["aggregate_id"] == a]
    assert [e["type"] for e in evs] == ["AppointmentScheduled", "AppointmentCheckedIn",
                                        "AppointmentStarted", "AppointmentCompleted"]
    assert [e["seq"] for e in evs] == [1, 2, 3, 4]
    assert evs[3]["data"]["notes"] == "healthy"
    for e in evs[1:]:
        stamp = datetime.strptime(e["data"]["at"], "%Y-%m-%dT%H:%M:%S.%fZ" if "." in
                                  e["data"]["at"] else "%Y-%m-%dT%H:%M:%SZ")
        assert abs(stamp.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_no_show_only_once_start_has_passed(clinic):
    soon = datetime.now(timezone.utc) + timedelta(seconds=3)
    r = clinic.book(clinic.patient(), soon.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    (soon + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    r = clinic.reception.post(f"/v1/appointments/{aid}/no-show")
    assert r.status_code == 409 and code(r) == "INVALID_STATE"
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    r = clinic.reception.post(f"/v1/appointments/{aid}/no-show")
    assert r.status_code == 200 and r.json()["events"] == ["AppointmentNoShow"]
    r = clinic.reception.post(f"/v1/appointments/{aid}/no-show")
    assert r.status_code == 409


def test_reschedule_excludes_itself_and_may_change_vet(stack, clinic):
    p1, p2 = clinic.patient(), clinic.patient()
    a = clinic.book(p1, at(0), at(60)).json()["id"]
    clinic.book(p2, at(60), at(120))
    r = clinic.reception.post(f"/v1/appointments/{a}/reschedule",
                              {"start": at(-30), "end": at(30)})
    assert r.status_code == 200 and r.json()["events"] == ["AppointmentRescheduled"]
    r = clinic.reception.post(f"/v1/appointments/{a}/reschedule",
                              {"start": at(50), "end": at(70)})
    assert r.status_code == 409 and code(r) == "SLOT_UNAVAILABLE"
    r = clinic.reception.post(f"/v1/appointments/{a}/reschedule",
                              {"start": at(50), "end": at(70), "vet_id": clinic.vet2_id})
    assert r.status_code == 200
    r = clinic.reception.post(f"/v1/appointments/{a}/reschedule",
                              {"start": at(50), "end": at(70), "vet_id": clinic.nurse_id})
    assert r.status_code == 409 and code(r) == "NOT_A_VETERINARIAN"
    # the old slot of the first vet is free now
    assert clinic.book(clinic.patient(), at(-30), at(60)).status_code == 201
    moves = [e["data"] for e in scheduling_events(stack, clinic.tid)
             if e["type"] == "AppointmentRescheduled"]
    assert moves == [{"start": at(-30), "end": at(30), "vet_id": clinic.vet_id},
                     {"start": at(50), "end": at(70), "vet_id": clinic.vet2_id}]


# --- the race -------------------------------------------------------------------------

def fire(clinic, patients, start, end, keys, url=None):
    """One ScheduleAppointment per patient, all at once; answers or exceptions."""
    token = clinic.reception.token
    target = url or clinic.url

    def one(i):
        try:
            return requests.post(target + "/v1/appointments",
                                 json={"patient_id": patients[i], "vet_id": clinic.vet_id,
                                       "start": start, "end": end, "type": "surgery"},
                                 headers={"Authorization": f"Bearer {token}",
                                          "Idempotency-Key": keys[i]}, timeout=30)
        except requests.RequestException as exc:
            return exc
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(patients)) as pool:
        return list(pool.map(one, range(len(patients))))


def slot_events(stack, clinic, start):
    return [e for e in scheduling_events(stack, clinic.tid)
            if e["type"] == "AppointmentScheduled" and e["data"]["start"] == start]


def test_fifty_concurrent_requests_for_one_slot(stack, clinic):
    patients = [clinic.patient() for _ in range(50)]
    keys = [f"race-{uuid.uuid4()}" for _ in patients]
    answers = fire(clinic, patients, at(600), at(630), keys)
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49
    assert all(code(a) == "SLOT_UNAVAILABLE" for a in answers if a.status_code == 409)
    winner = patients[statuses.index(201)]
    evs = slot_events(stack, clinic, at(600))
    assert len(evs) == 1 and evs[0]["data"]["patient_id"] == winner


def test_every_scheduling_event_matches_its_json_schema(stack, writer):
    schemas, seen = {}, set()
    for e in log_events(stack.brokers):
        if e.get("tenant_id") not in TENANTS:
            continue
        path = os.path.join(ROOT, "schema", "events", f"{e['type']}.v{e['v']}.json")
        if path not in schemas:
            with open(path) as f:
                schemas[path] = json.load(f)
        jsonschema.validate(e, schemas[path])
        seen.add(e["type"])
    expected = {"AvailabilityPublished", "AvailabilityWithdrawn", "AppointmentScheduled",
                "AppointmentRescheduled", "AppointmentCheckedIn", "AppointmentStarted",
                "AppointmentCompleted", "AppointmentCanceled", "AppointmentNoShow"}
    assert expected <= seen, expected - seen


# Starts writers with the module writer's instance id, which fences it: keep last.
def test_race_across_a_writer_kill9_and_restart(stack):
    w1 = stack.start_daemon("cmd-writer", port=free_port())
    w1.wait_ready(90)
    clinic = Clinic(stack, w1.url)
    patients = [clinic.patient() for _ in range(50)]
    keys = [f"crash-race-{uuid.uuid4()}" for _ in patients]
    start, end = at(900), at(960)
    final = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as killer:
        # the first half in flight while the writer dies
        kill = killer.submit(lambda: (time.sleep(0.05), w1.kill9()))
        first = fire(clinic, patients[:25], start, end, keys[:25])
        kill.result()
    for i, a in enumerate(first):
        if not isinstance(a, Exception) and a.status_code in (201, 409):
            final[i] = a
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    w2.wait_ready(90)
    clinic.url = w2.url
    rest = fire(clinic, patients[25:], start, end, keys[25:], url=w2.url)
    for i, a in enumerate(rest, start=25):
        final[i] = a
    # retry everything that did not get a definite answer, with its key
    for _ in range(20):
        todo = [i for i in range(50) if i not in final or isinstance(final[i], Exception)
                or final[i].status_code not in (201, 409)]
        if not todo:
            break
        again = fire(clinic, [patients[i] for i in todo], start, end, [keys[i] for i in todo],
                     url=w2.url)
        for i, a in zip(todo, again):
            final[i] = a
        time.sleep(0.5)
    statuses = {i: a.status_code for i, a in final.items()}
    assert len(statuses) == 50
    winners = [i for i, s in statuses.items() if s == 201]
    assert len(winners) == 1, statuses
    assert all(s == 409 and code(final[i]) == "SLOT_UNAVAILABLE"
               for i, s in statuses.items() if s != 201)
    evs = slot_events(stack, clinic, start)
    assert len(evs) == 1 and evs[0]["data"]["patient_id"] == patients[winners[0]]
    assert w2.terminate() == 0
