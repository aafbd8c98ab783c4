"""Medical records on cmd-writer, end to end on the real Kafka of the test
stack: every rule and code of DOMAIN.md § Medical records as the HTTP answer
and as what the log holds (a refusal appends nothing), the nurse's SOAP
limits, one primary diagnosis, necropsy of a deceased patient, vitals with a
weight as two events in one transaction (consecutive offsets, one answer,
replayed the same after a restart), the tenant's record_lock_hours setting,
and the auto-lock by time on a record whose opening is two hours old in the
log (written behind the writer's back, then read by a restarted writer's
rebuild: no test clock in the writer)."""

import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import requests

import events as ev
from kafka_log import events as log_events
from kafka_log import read_all
from stack import ROOT, free_port

TENANTS = set()


class Client:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def post(self, path, body=None, headers=None, method="POST"):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return requests.request(method, self.url + path, json=body, headers=h, timeout=30)

    def patch(self, path, body=None, headers=None):
        return self.post(path, body, headers, method="PATCH")


def code(r):
    return r.json()["error"]["code"]


def fields(r):
    return {d["field"] for d in r.json()["error"].get("details", [])}


class Clinic:
    """A tenant (in Pacific/Auckland, to tell its local date from UTC's) with
    an admin, a vet, a nurse, a client and helpers for patients and records."""

    def __init__(self, stack, url, tz="Pacific/Auckland"):
        self.url, self.stack = url, stack
        pa = Client(url, stack.token("platform-admin"))
        r = pa.post("/v1/tenants", {"name": "Rec", "timezone": tz, "currency": "NZD"})
        assert r.status_code == 201, r.text
        self.tid = r.json()["id"]
        TENANTS.add(self.tid)
        self.admin = self.as_("admin")
        self.reception = self.as_("reception")
        self.nurse = self.as_("nurse")
        self.vet_id = self.staff("veterinarian")
        self.vet = self.as_("vet", sub=self.vet_id)
        r = self.reception.post("/v1/clients", {"first_name": "Ann", "last_name": "Lee"})
        assert r.status_code == 201, r.text
        self.client_id = r.json()["id"]

    def as_(self, role, sub=None):
        return Client(self.url, self.stack.token(role, tenant=self.tid, sub=sub or f"u-{role}"))

    def staff(self, role):
        r = self.admin.post("/v1/staff", {"name": "Dr X", "role": role})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def patient(self):
        r = self.reception.post("/v1/patients", {"client_id": self.client_id, "name": "Rex",
                                                 "species": "canine", "sex": "male"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def record(self, patient=None, **extra):
        body = {"patient_id": patient or self.patient(), "record_type": "consultation"}
        body.update(extra)
        r = self.vet.post("/v1/medical-records", body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def events(self):
        return [e for e in log_events(self.stack.brokers) if e["tenant_id"] == self.tid]


@pytest.fixture(scope="module")
def writer(stack):
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    yield w
    w.terminate()


@pytest.fixture
def clinic(stack, writer):
    return Clinic(stack, writer.url)


def refused(clinic, response, status, code_, field=None):
    """Asserts the refusal; the caller checks the log once per test."""
    assert response.status_code == status, response.text
    assert code(response) == code_, response.text
    if field:
        assert field in fields(response), response.text


def record_events(clinic, rid):
    return [e for e in clinic.events() if e["aggregate_id"] == rid]


# --- opening ----------------------------------------------------------------------

def test_open_answers_created_with_the_tenant_local_visit_date(stack, clinic):
    p = clinic.patient()
    r = clinic.nurse.post("/v1/medical-records", {"patient_id": p, "record_type": "vaccination",
                                                  "chief_complaint": "booster"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["events"] == ["MedicalRecordOpened"] and r.json()["version"] == 1
    assert r.headers["Location"] == f"/v1/medical-records/{rid}"
    [e] = record_events(clinic, rid)
    auckland_today = datetime.now(ZoneInfo("Pacific/Auckland")).date().isoformat()
    assert e["data"] == {"patient_id": p, "appointment_id": None, "record_type": "vaccination",
                         "chief_complaint": "booster", "visit_date": auckland_today}
    assert f"{e['aggregate']}:{e['seq']}" == "medical_record:1"


def test_open_rules_and_codes_append_nothing(stack, clinic):
    p, other = clinic.patient(), clinic.patient()
    before = len(clinic.events())
    refused(clinic, clinic.vet.post("/v1/medical-records", {"patient_id": p,
                                                            "record_type": "checkup"}),
            400, "VALIDATION_ERROR", "record_type")
    refused(clinic, clinic.vet.post("/v1/medical-records", {"record_type": "surgery"}),
            400, "VALIDATION_ERROR", "patient_id")
    refused(clinic, clinic.vet.post("/v1/medical-records", {"patient_id": str(uuid.uuid4()),
                                                            "record_type": "surgery"}),
            404, "NOT_FOUND")
    tomorrow_everywhere = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    refused(clinic, clinic.vet.post("/v1/medical-records", {
        "patient_id": p, "record_type": "surgery", "visit_date": tomorrow_everywhere}),
        400, "VALIDATION_ERROR", "visit_date")
    # an appointment of another patient, or of nobody: 400 on appointment_id
    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    r = clinic.reception.post("/v1/appointments", {
        "patient_id": other, "vet_id": clinic.vet_id, "type": "consultation",
        "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()})
    assert r.status_code == 201, r.text
    appt = r.json()["id"]
    before += 1
    for a in (appt, str(uuid.uuid4())):
        refused(clinic, clinic.vet.post("/v1/medical-records", {
            "patient_id": p, "record_type": "surgery", "appointment_id": a}),
            400, "VALIDATION_ERROR", "appointment_id")
    refused(clinic, clinic.reception.post("/v1/medical-records", {"patient_id": p,
                                                                  "record_type": "surgery"}),
            403, "FORBIDDEN")
    assert len(clinic.events()) == before
    # one record per appointment
    clinic.record(other, appointment_id=appt)
    refused(clinic, clinic.vet.post("/v1/medical-records", {
        "patient_id": other, "record_type": "follow_up", "appointment_id": appt}),
        409, "ALREADY_EXISTS")
    mine = str(uuid.uuid4())
    clinic.record(p, id=mine)
    refused(clinic, clinic.vet.post("/v1/medical-records", {
        "patient_id": p, "record_type": "surgery", "id": mine}), 409, "ALREADY_EXISTS")
    assert len(clinic.events()) == before + 2


def test_only_a_necropsy_for_a_deceased_patient(stack, clinic):
    dead = clinic.patient()
    assert clinic.vet.post(f"/v1/patients/{dead}/deceased",
                           {"date": "2026-01-01"}).status_code == 200
    refused(clinic, clinic.vet.post("/v1/medical-records", {"patient_id": dead,
                                                            "record_type": "consultation"}),
            409, "PATIENT_INACTIVE")
    rid = clinic.record(dead, record_type="necropsy")
    assert [e["type"] for e in record_events(clinic, rid)] == ["MedicalRecordOpened"]


# --- vitals -----------------------------------------------------------------------

def test_vitals_ranges_and_units(stack, clinic):
    rid = clinic.record()
    path = f"/v1/medical-records/{rid}/vitals"
    for body, field in [({}, "body"), ({"temperature_c": 38.55}, "temperature_c"),
                        ({"temperature_c": 45.1}, "temperature_c"),
                        ({"pulse_bpm": 401}, "pulse_bpm"),
                        ({"respiration_rpm": 0}, "respiration_rpm"),
                        ({"systolic_mmhg": 120}, "diastolic_mmhg"),
                        ({"systolic_mmhg": 80, "diastolic_mmhg": 90}, "systolic_mmhg"),
                        ({"body_condition_score": 0}, "body_condition_score"),
                        ({"pain_score": 11}, "pain_score"),
                        ({"pain_score": 1, "recorded_at": "2099-01-01T00:00:00Z"}, "recorded_at"),
                        ({"weight": {"value": -1, "unit": "kg"}}, "weight.value")]:
        refused(clinic, clinic.nurse.post(path, body), 400, "VALIDATION_ERROR", field)
    refused(clinic, clinic.nurse.post(f"/v1/medical-records/{uuid.uuid4()}/vitals",
                                      {"pulse_bpm": 80}), 404, "NOT_FOUND")
    r = clinic.nurse.post(path, {"temperature_c": 38.5, "systolic_mmhg": 120,
                                 "diastolic_mmhg": 80, "recorded_at": "2026-01-02T10:00:00+01:00"})
    assert r.status_code == 200 and r.json()["events"] == ["VitalsRecorded"], r.text
    assert r.json()["version"] == 2 and r.json()["id"] == rid
    evs = record_events(clinic, rid)
    assert len(evs) == 2
    data = evs[1]["data"]
    assert data["temperature_dc"] == 385 and data["weight_g"] is None
    assert data["recorded_at"] == "2026-01-02T09:00:00Z"


def test_vitals_with_weight_are_two_events_in_one_transaction(stack, clinic):
    p = clinic.patient()
    rid = clinic.record(p)
    key = f"vitals-{uuid.uuid4()}"
    body = {"weight": {"value": 11, "unit": "lb"}, "pulse_bpm": 100}
    r = clinic.vet.post(f"/v1/medical-records/{rid}/vitals", body,
                        headers={"Idempotency-Key": key})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["events"] == ["VitalsRecorded", "WeightRecorded"]
    assert answer["id"] == rid and answer["version"] == 2
    part, off = (int(x) for x in answer["position"].split(":"))
    assert r.headers["X-Consistency-Token"] == answer["position"]
    records = {(p_, o): json.loads(v) for (p_, o, _h, v) in read_all(stack.brokers)
               if p_ == part and o in (off - 1, off)}
    vitals, weight = records[(part, off - 1)], records[(part, off)]
    assert vitals["type"] == "VitalsRecorded" and vitals["aggregate_id"] == rid
    assert weight["type"] == "WeightRecorded" and weight["aggregate_id"] == p
    assert weight["seq"] == 2  # the patient's version + 1
    assert vitals["data"]["weight_g"] == weight["data"]["weight_g"] == 4990  # 11 lb
    assert weight["data"]["measured_at"] == vitals["data"]["recorded_at"]
    assert vitals["command_id"] == weight["command_id"] == key
    # the replay answers the same
    again = clinic.vet.post(f"/v1/medical-records/{rid}/vitals", body,
                            headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json() == answer
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len([e for e in clinic.events() if e["type"] == "WeightRecorded"]) == 1


# --- SOAP -------------------------------------------------------------------------

def test_soap_merges_and_nurses_write_only_subjective_and_objective(stack, clinic):
    rid = clinic.record()
    path = f"/v1/medical-records/{rid}/soap"
    before = len(clinic.events())
    for f in ("assessment", "plan", "additional_notes"):
        r = clinic.nurse.post(path, {"subjective": "s", f: "x"})
        refused(clinic, r, 403, "FORBIDDEN")
        assert f in r.json()["error"]["message"]
    refused(clinic, clinic.vet.post(path, {}), 400, "VALIDATION_ERROR")
    refused(clinic, clinic.vet.post(path, {"plan": "x" * 20001}), 400, "VALIDATION_ERROR", "plan")
    refused(clinic, clinic.reception.post(path, {"subjective": "s"}), 403, "FORBIDDEN")
    assert len(clinic.events()) == before
    assert clinic.nurse.post(path, {"subjective": "limping", "objective": "swollen"}).status_code == 200
    assert clinic.vet.post(path, {"assessment": "x" * 20000, "plan": None}).status_code == 200
    evs = [e for e in record_events(clinic, rid) if e["type"] == "SoapNoteWritten"]
    assert evs[0]["data"] == {"subjective": "limping", "objective": "swollen"}
    assert evs[1]["data"] == {"assessment": "x" * 20000, "plan": None}


# --- diagnoses, treatments, prescriptions ---------------------------------------

def test_one_primary_diagnosis_and_retraction(stack, clinic):
    rid = clinic.record()
    path = f"/v1/medical-records/{rid}/diagnoses"
    refused(clinic, clinic.nurse.post(path, {"name": "Otitis"}), 403, "FORBIDDEN")
    refused(clinic, clinic.vet.post(path, {"name": "Otitis", "code": "x" * 51}),
            400, "VALIDATION_ERROR", "code")
    assert clinic.vet.post(path, {"name": "Otitis", "primary": True}).status_code == 200
    assert clinic.vet.post(path, {"name": "Dermatitis", "primary": True,
                                  "status": "differential"}).status_code == 200
    dx = [e["data"] for e in record_events(clinic, rid) if e["type"] == "DiagnosisAdded"]
    assert [d["primary"] for d in dx] == [True, True]  # the event says primary; the new one wins
    assert dx[0]["status"] == "confirmed" and dx[1]["status"] == "differential"
    first = dx[0]["diagnosis_id"]
    retract = f"/v1/medical-records/{rid}/diagnoses/{first}/retract"
    refused(clinic, clinic.vet.post(retract, {}), 400, "VALIDATION_ERROR", "reason")
    refused(clinic, clinic.vet.post(f"/v1/medical-records/{rid}/diagnoses/{uuid.uuid4()}/retract",
                                    {"reason": "r"}), 404, "NOT_FOUND")
    assert clinic.vet.post(retract, {"reason": "ruled out"}).status_code == 200
    refused(clinic, clinic.vet.post(retract, {"reason": "again"}), 409, "INVALID_STATE")
    [e] = [e for e in record_events(clinic, rid) if e["type"] == "DiagnosisRetracted"]
    assert e["data"] == {"diagnosis_id": first, "reason": "ruled out"}


def test_treatments_perform_and_cancel_only_when_planned(stack, clinic):
    rid = clinic.record()
    base = f"/v1/medical-records/{rid}/treatments"
    refused(clinic, clinic.nurse.post(base, {"name": "x", "treatment_type": "procedure",
                                             "next_due_on": "2027-01-01"}),
            400, "VALIDATION_ERROR", "next_due_on")
    assert clinic.nurse.post(base, {"name": "Rabies", "treatment_type": "vaccination",
                                    "next_due_on": "2027-06-01"}).status_code == 200
    assert clinic.vet.post(base, {"name": "Flush", "treatment_type": "procedure",
                                  "performed_at": "2026-01-01T08:00:00Z"}).status_code == 200
    added = [e["data"] for e in record_events(clinic, rid) if e["type"] == "TreatmentAdded"]
    planned, done = added[0]["treatment_id"], added[1]["treatment_id"]
    assert added[0]["performed_at"] is None and added[0]["next_due_on"] == "2027-06-01"
    assert added[1]["performed_at"] == "2026-01-01T08:00:00Z"
    refused(clinic, clinic.vet.post(f"{base}/{done}/perform", {}), 409, "INVALID_STATE")
    refused(clinic, clinic.vet.post(f"{base}/{done}/cancel", {"reason": "r"}), 409, "INVALID_STATE")
    refused(clinic, clinic.vet.post(f"{base}/{planned}/cancel", {}), 400, "VALIDATION_ERROR")
    assert clinic.nurse.post(f"{base}/{planned}/perform", {}).status_code == 200
    refused(clinic, clinic.vet.post(f"{base}/{planned}/cancel", {"reason": "r"}),
            409, "INVALID_STATE")
    types = [e["type"] for e in record_events(clinic, rid)]
    assert types == ["MedicalRecordOpened", "TreatmentAdded", "TreatmentAdded",
                     "TreatmentPerformed"]


def test_prescriptions(stack, clinic):
    rid = clinic.record()
    path = f"/v1/medical-records/{rid}/prescriptions"
    rx = {"medication": "Amoxicillin", "dosage": "250 mg", "frequency": "twice daily",
          "route": "oral"}
    refused(clinic, clinic.nurse.post(path, rx), 403, "FORBIDDEN")
    for extra, field in [({"route": "nasal"}, "route"), ({"duration_days": 0}, "duration_days"),
                         ({"quantity": 1.2345}, "quantity"), ({"refills": 13}, "refills"),
                         ({"dosage": "x" * 201}, "dosage"),
                         ({"item_id": str(uuid.uuid4())}, "quantity")]:
        refused(clinic, clinic.vet.post(path, {**rx, **extra}), 400, "VALIDATION_ERROR", field)
    # no inventory exists yet: an item is a reference to nothing
    refused(clinic, clinic.vet.post(path, {**rx, "item_id": str(uuid.uuid4()), "quantity": 2}),
            404, "NOT_FOUND")
    assert len(record_events(clinic, rid)) == 1
    r = clinic.vet.post(path, {**rx, "quantity": 14.5, "duration_days": 7, "refills": 2})
    assert r.status_code == 200, r.text
    [e] = [e for e in record_events(clinic, rid) if e["type"] == "MedicationPrescribed"]
    assert e["data"]["quantity_milli"] == 14500 and e["data"]["refills"] == 2
    assert e["data"]["item_id"] is None


# --- signing, locking, addenda ----------------------------------------------------

def test_signing_needs_an_assessment_or_diagnosis_then_locks(stack, clinic):
    rid = clinic.record()
    rec = f"/v1/medical-records/{rid}"
    refused(clinic, clinic.vet.post(f"{rec}/sign", {}), 409, "RECORD_INCOMPLETE")
    refused(clinic, clinic.nurse.post(f"{rec}/sign", {}), 403, "FORBIDDEN")
    refused(clinic, clinic.vet.post(f"{rec}/addenda", {"text": "early"}), 409, "INVALID_STATE")
    assert clinic.vet.post(f"{rec}/soap", {"assessment": "healthy"}).status_code == 200
    r = clinic.vet.post(f"{rec}/sign", {}, headers={"If-Match": '"1"'})
    refused(clinic, r, 412, "VERSION_MISMATCH")
    r = clinic.vet.post(f"{rec}/sign", {}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["events"] == ["MedicalRecordSigned"], r.text
    refused(clinic, clinic.vet.post(f"{rec}/sign", {}), 409, "INVALID_STATE")
    before = len(record_events(clinic, rid))
    for path, body, who in [("vitals", {"pulse_bpm": 80}, clinic.nurse),
                            ("soap", {"plan": "p"}, clinic.vet),
                            ("diagnoses", {"name": "x"}, clinic.vet),
                            ("treatments", {"name": "x", "treatment_type": "other"}, clinic.vet),
                            ("prescriptions", {"medication": "A", "dosage": "1",
                                               "frequency": "f", "route": "oral"}, clinic.vet)]:
        refused(clinic, who.post(f"{rec}/{path}", body), 409, "RECORD_LOCKED")
    assert len(record_events(clinic, rid)) == before
    refused(clinic, clinic.vet.post(f"{rec}/addenda", {"text": "x" * 20001}),
            400, "VALIDATION_ERROR", "text")
    r = clinic.vet.post(f"{rec}/addenda", {"text": "lab result came back normal"})
    assert r.status_code == 200 and r.json()["events"] == ["AddendumAdded"], r.text
    last = record_events(clinic, rid)[-1]
    assert last["data"]["text"] == "lab result came back normal" and last["actor"] == clinic.vet_id


def test_a_retracted_diagnosis_does_not_complete_a_record(stack, clinic):
    rid = clinic.record()
    rec = f"/v1/medical-records/{rid}"
    assert clinic.vet.post(f"{rec}/diagnoses", {"name": "Otitis"}).status_code == 200
    dx = record_events(clinic, rid)[-1]["data"]["diagnosis_id"]
    assert clinic.vet.post(f"{rec}/diagnoses/{dx}/retract", {"reason": "no"}).status_code == 200
    refused(clinic, clinic.vet.post(f"{rec}/sign", {}), 409, "RECORD_INCOMPLETE")
    assert clinic.vet.post(f"{rec}/diagnoses", {"name": "Dermatitis"}).status_code == 200
    assert clinic.vet.post(f"{rec}/sign", {}).status_code == 200
    # retraction is before signing
    refused(clinic, clinic.vet.post(f"{rec}/diagnoses/{dx}/retract", {"reason": "x"}),
            409, "RECORD_LOCKED")


def test_tenant_settings_are_the_admins_of_that_tenant(stack, clinic):
    path = f"/v1/tenants/{clinic.tid}/settings"
    refused(clinic, clinic.vet.patch(path, {"record_lock_hours": 1}), 403, "FORBIDDEN")
    refused(clinic, clinic.admin.patch(path, {"record_lock_hours": 8761}),
            400, "VALIDATION_ERROR", "record_lock_hours")
    refused(clinic, clinic.admin.patch(path, {}), 400, "VALIDATION_ERROR", "record_lock_hours")
    other = Clinic(stack, clinic.url)
    refused(clinic, clinic.admin.patch(f"/v1/tenants/{other.tid}/settings",
                                       {"record_lock_hours": 1}), 404, "NOT_FOUND")
    r = clinic.admin.patch(path, {"record_lock_hours": 8760})
    assert r.status_code == 200 and r.json()["events"] == ["TenantSettingsChanged"], r.text
    assert r.json()["id"] == clinic.tid and r.json()["version"] == 2
    [e] = [e for e in clinic.events() if e["type"] == "TenantSettingsChanged"]
    assert e["data"] == {"record_lock_hours": 8760} and e["aggregate"] == "tenant"
    assert [e for e in other.events() if e["type"] == "TenantSettingsChanged"] == []


def test_every_record_event_matches_its_json_schema(stack, writer):
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
    assert {"MedicalRecordOpened", "VitalsRecorded", "WeightRecorded", "SoapNoteWritten",
            "DiagnosisAdded", "DiagnosisRetracted", "TreatmentAdded", "TreatmentPerformed",
            "MedicationPrescribed", "MedicalRecordSigned", "AddendumAdded",
            "TenantSettingsChanged"} <= seen


# --- the auto-lock by time (last: it restarts the writer) --------------------------

def test_auto_lock_by_time_after_a_restart(stack, writer):
    """A record opened two hours ago is past a one-hour lock period. The writer
    takes an opening's time from its event; a record that old is written into
    the log directly (as an older writer would have), and a restarted writer
    reads it in its rebuild. The writer's clock is never faked."""
    clinic = Clinic(stack, writer.url, tz="UTC")
    p = clinic.patient()
    fresh = clinic.record(p)
    key = f"vitals-{uuid.uuid4()}"
    vitals = {"weight": {"value": 3, "unit": "kg"}}
    first = clinic.vet.post(f"/v1/medical-records/{fresh}/vitals", vitals,
                            headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert clinic.admin.patch(f"/v1/tenants/{clinic.tid}/settings",
                              {"record_lock_hours": 1}).status_code == 200
    old = str(uuid.uuid4())
    two_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    producer = ev.EventProducer(stack.brokers)
    producer.send(ev.envelope("MedicalRecordOpened", clinic.tid, "medical_record", old, 1, {
        "patient_id": p, "appointment_id": None, "record_type": "consultation",
        "chief_complaint": None, "visit_date": two_hours_ago[:10]}, at=two_hours_ago))
    producer.p.flush(30)
    assert not producer.errors and producer.delivered[0] is not None
    writer.terminate()
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    try:
        w2.wait_ready(90)
        clinic.url = w2.url
        for c in (clinic.vet, clinic.nurse, clinic.admin):
            c.url = w2.url
        # the idempotent two-event answer survives the rebuild
        again = clinic.vet.post(f"/v1/medical-records/{fresh}/vitals", vitals,
                                headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json() == first.json(), again.text
        rec = f"/v1/medical-records/{old}"
        before = len(record_events(clinic, old))
        refused(clinic, clinic.nurse.post(f"{rec}/vitals", {"pulse_bpm": 80}), 409, "RECORD_LOCKED")
        refused(clinic, clinic.vet.post(f"{rec}/soap", {"assessment": "a"}), 409, "RECORD_LOCKED")
        refused(clinic, clinic.vet.post(f"{rec}/sign", {}), 409, "RECORD_LOCKED")
        assert len(record_events(clinic, old)) == before
        # a record opened within the hour is still open
        assert clinic.nurse.post(f"/v1/medical-records/{fresh}/vitals",
                                 {"pulse_bpm": 80}).status_code == 200
        r = clinic.vet.post(f"{rec}/addenda", {"text": "late note"})
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        # 0 turns the period off
        assert clinic.admin.patch(f"/v1/tenants/{clinic.tid}/settings",
                                  {"record_lock_hours": 0}).status_code == 200
        assert clinic.nurse.post(f"{rec}/vitals", {"pulse_bpm": 80}).status_code == 200
    finally:
        assert w2.terminate() == 0
