"""Medical records read side against the real stack: catalog events of records
produced straight into vetpms.events (the writer's record commands are built
on another branch) are projected into medical_records, vitals, diagnoses,
treatments, prescriptions and addenda; query-reader answers one record (locked
computed from the signature or the tenant's auto-lock period), a patient's
records, the timeline, the record's history and vaccination reminders, to vet
and nurse only (reminders also admin and reception); analysts read counts and
never the text; record events of unknown records are dead letters; and the
read model equals a rebuild by a second projector into another schema."""

import os
import random
import re
import uuid
from datetime import date, datetime, timedelta, timezone

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

REFRESH_MS = 300
SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schema",
                         "openapi.yaml")


def check_schema(body, name):
    """body against components/schemas/<name> of schema/openapi.yaml."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        components = yaml.safe_load(f)["components"]
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{name}",
                               "components": components},
                        cls=jsonschema.Draft202012Validator)


def rfc(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ago(**kw):
    return datetime.now(timezone.utc) - timedelta(**kw)


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port(),
                                   env={"VETPMS_PROJECTOR_MV_REFRESH_MS": str(REFRESH_MS)})
    reader = stack.start_daemon("query-reader", port=free_port())
    for d in (projector, reader):
        d.wait_ready(90)
    yield projector, reader
    for d in (reader, projector):
        assert d.terminate() == 0


@pytest.fixture(scope="module")
def producer(stack):
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-rec-read-{uuid.uuid4()}")
    yield p
    p.close()


class Clinic(ProducedTenant):
    """One tenant with a vet, two clients and three patients; `send` produces
    envelopes (seq tracked per aggregate) and waits until each one is logged or
    dead-lettered."""

    def __init__(self, stack, producer, reader):
        self.stack, self.producer, self.reader = stack, producer, reader
        self.t = ev.new_id()
        self.vet = ev.new_id()
        self.c1, self.c2 = ev.new_id(), ev.new_id()
        self.p1, self.p2, self.p3 = ev.new_id(), ev.new_id(), ev.new_id()
        self.seqs = {}
        self.sent = 0
        envs = [ev.envelope("TenantProvisioned", self.t, "tenant", self.t, self.seq(self.t),
                            {"name": "Records Vets", "timezone": "Europe/Paris",
                             "currency": "EUR"}),
                ev.envelope("StaffRegistered", self.t, "staff", self.vet, self.seq(self.vet),
                            {"name": "Dr Alice Adams", "role": "veterinarian", "email": None,
                             "license_number": "L-1"}),
                ev.client_registered(self.t, self.c1, "Ann", "Smith", seq=self.seq(self.c1)),
                ev.client_registered(self.t, self.c2, "Bob", "Jones", seq=self.seq(self.c2))]
        for pid, cid, name in ((self.p1, self.c1, "Rex"), (self.p2, self.c1, "Tom"),
                               (self.p3, self.c2, "Kiwi")):
            envs.append(dict(ev.patient_registered(self.t, pid, cid, name, seq=self.seq(pid)),
                             at=rfc(ago(days=400))))
        self.send(envs)

    def headers(self, roles, tenant=None):
        return {"Authorization": "Bearer " + self.stack.token(roles, tenant=tenant or self.t)}

    def get(self, path, roles=("vet",), **params):
        return requests.get(self.reader.url + path, headers=self.headers(list(roles)),
                            params=params, timeout=10)

    def ok(self, path, roles=("vet",), **params):
        r = self.get(path, roles, **params)
        assert r.status_code == 200, r.text
        return r.json()

    # builders
    def rec(self, type_, record, data, at=None):
        return ev.envelope(type_, self.t, "medical_record", record, self.seq(record), data,
                           at=at)

    def open(self, record, patient, at=None, record_type="consultation", appointment=None,
             complaint="limping", visit_date=None):
        return self.rec("MedicalRecordOpened", record,
                        {"patient_id": patient, "appointment_id": appointment,
                         "record_type": record_type, "chief_complaint": complaint,
                         "visit_date": visit_date or date.today().isoformat()}, at=at)

    def diagnosis(self, record, name, primary, code=None, diagnosis=None, at=None):
        return self.rec("DiagnosisAdded", record,
                        {"diagnosis_id": diagnosis or ev.new_id(), "name": name, "code": code,
                         "status": "confirmed", "notes": None, "primary": primary}, at=at)

    def treatment(self, record, name, type_="vaccination", performed_at=None, next_due_on=None,
                  treatment=None, at=None):
        return self.rec("TreatmentAdded", record,
                        {"treatment_id": treatment or ev.new_id(), "name": name,
                         "treatment_type": type_, "description": None,
                         "performed_at": performed_at, "next_due_on": next_due_on}, at=at)

    def vitals(self, record, recorded_at, weight_g=None, vitals=None, at=None):
        return self.rec("VitalsRecorded", record,
                        {"vitals_id": vitals or ev.new_id(), "recorded_at": recorded_at,
                         "temperature_dc": 385, "pulse_bpm": 90, "respiration_rpm": 20,
                         "systolic_mmhg": 140, "diastolic_mmhg": 90, "weight_g": weight_g,
                         "body_condition_score": 5, "pain_score": 2}, at=at)

    def prescribe(self, record, medication="Meloxicam", at=None, prescription=None):
        return self.rec("MedicationPrescribed", record,
                        {"prescription_id": prescription or ev.new_id(),
                         "medication": medication, "dosage": "0.1 mg/kg",
                         "frequency": "once daily", "route": "oral", "duration_days": 7,
                         "quantity_milli": 10500, "refills": 1,
                         "instructions": "with food", "item_id": None}, at=at)

    def soap(self, record, **fields):
        return self.rec("SoapNoteWritten", record, fields)


@pytest.fixture(scope="module")
def clinic(stack, daemons, producer):
    return Clinic(stack, producer, daemons[1])


def test_a_record_with_every_part_lands_in_its_tables_and_reads_back(clinic):
    c = clinic
    r = ev.new_id()
    d1, d2, d3 = ev.new_id(), ev.new_id(), ev.new_id()
    tv, tc, tp = ev.new_id(), ev.new_id(), ev.new_id()
    vit, rx, add = ev.new_id(), ev.new_id(), ev.new_id()
    at = ago(hours=1)
    measured = rfc(at)
    c.send([
        c.open(r, c.p1, at=rfc(at)),
        c.vitals(r, measured, weight_g=13200, vitals=vit),
        # the writer's WeightRecorded of the same transaction updates the patient
        ev.weight_recorded(c.t, c.p1, c.seq(c.p1), 13200, measured),
        c.soap(r, subjective="eats less", objective="lame left fore", assessment="sprain",
               plan="rest", additional_notes=None),
        c.diagnosis(r, "Sprain", False, code="VN-1", diagnosis=d1),
        c.diagnosis(r, "Arthritis", True, code="VN-2", diagnosis=d2),
        c.diagnosis(r, "Fracture", True, code="VN-3", diagnosis=d3),
        c.rec("DiagnosisRetracted", r, {"diagnosis_id": d1, "reason": "wrong"}),
        c.treatment(r, "Rabies", next_due_on="2027-06-01", treatment=tv),
        c.rec("TreatmentPerformed", r, {"treatment_id": tv, "performed_at": measured}),
        c.treatment(r, "Bandage", type_="procedure", treatment=tc),
        c.rec("TreatmentCanceled", r, {"treatment_id": tc, "reason": "not needed"}),
        c.treatment(r, "X-ray", type_="diagnostic", performed_at=measured, treatment=tp),
        c.prescribe(r, prescription=rx),
        c.rec("MedicalRecordSigned", r, {}),
        c.rec("AddendumAdded", r, {"addendum_id": add, "text": "owner called: better"}),
    ])
    assert not query(c.stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s", (c.t,))

    assert query(c.stack, "SELECT patient_id::text, record_type, chief_complaint, status, "
                          "signed_by, opened_by, version, primary_diagnosis_id::text, "
                          "primary_diagnosis_name, subjective, plan, additional_notes "
                          "FROM read.medical_records WHERE tenant_id = %s AND id = %s",
                 (c.t, r)) == [(c.p1, "consultation", "limping", "signed", "e2e", "e2e", 15,
                                d3, "Fracture", "eats less", "rest", None)]
    assert query(c.stack, "SELECT id::text, temperature_dc, weight_g, recorded_by "
                          "FROM read.vitals WHERE tenant_id = %s AND record_id = %s",
                 (c.t, r)) == [(vit, 385, 13200, "e2e")]
    assert query(c.stack, "SELECT id::text, is_primary, retracted, retract_reason "
                          "FROM read.diagnoses WHERE tenant_id = %s AND record_id = %s "
                          "ORDER BY name", (c.t, r)) == \
        [(d2, False, False, None), (d3, True, False, None), (d1, False, True, "wrong")]
    assert query(c.stack, "SELECT id::text, status, performed_at IS NOT NULL, "
                          "next_due_on::text, cancel_reason FROM read.treatments "
                          "WHERE tenant_id = %s AND record_id = %s ORDER BY name",
                 (c.t, r)) == [(tc, "canceled", False, None, "not needed"),
                               (tv, "performed", True, "2027-06-01", None),
                               (tp, "performed", True, None, None)]
    assert query(c.stack, "SELECT id::text, quantity_milli, refills, prescribed_by "
                          "FROM read.prescriptions WHERE tenant_id = %s AND record_id = %s",
                 (c.t, r)) == [(rx, 10500, 1, "e2e")]
    assert query(c.stack, "SELECT id::text, author, text FROM read.addenda "
                          "WHERE tenant_id = %s AND record_id = %s",
                 (c.t, r)) == [(add, "e2e", "owner called: better")]
    # the weight went to the patient through WeightRecorded
    assert query(c.stack, "SELECT weight_kg::text FROM read.patients WHERE tenant_id = %s "
                          "AND id = %s", (c.t, c.p1)) == [("13.200",)]

    for roles in (("vet",), ("nurse",)):
        body = c.ok(f"/v1/medical-records/{r}", roles)
        assert body["id"] == r and body["patient_id"] == c.p1
        assert body["status"] == "signed" and body["locked"] is True
        assert body["signed_by"] == "e2e" and body["signed_at"].endswith("Z")
        assert body["version"] == 15
        assert body["soap"] == {"subjective": "eats less", "objective": "lame left fore",
                                "assessment": "sprain", "plan": "rest",
                                "additional_notes": None}
        assert body["primary_diagnosis"] == {"id": d3, "name": "Fracture", "code": "VN-3"}
        (v,) = body["vitals"]
        assert (v["id"], v["temperature_c"], v["weight_kg"], v["pulse_bpm"]) == \
            (vit, 38.5, 13.2, 90)
        assert [(d["id"], d["primary"], d["retracted"]) for d in body["diagnoses"]] == \
            [(d1, False, True), (d2, False, False), (d3, True, False)]
        assert [(t["id"], t["status"]) for t in body["treatments"]] == \
            [(tv, "performed"), (tc, "canceled"), (tp, "performed")]
        assert body["treatments"][0]["next_due_on"] == "2027-06-01"
        (p,) = body["prescriptions"]
        assert (p["id"], p["quantity"], p["route"], p["refills"]) == (rx, 10.5, "oral", 1)
        assert [(a["id"], a["author"], a["text"]) for a in body["addenda"]] == \
            [(add, "e2e", "owner called: better")]
        check_schema(body, "MedicalRecordView")


def test_a_new_primary_demotes_the_old_one_and_a_retracted_primary_leaves_none(clinic):
    c = clinic
    r = ev.new_id()
    ds = [ev.new_id() for _ in range(4)]
    c.send([c.open(r, c.p2)] + [c.diagnosis(r, f"D{i}", True, diagnosis=d)
                                 for i, d in enumerate(ds)])
    assert query(c.stack, "SELECT id::text FROM read.diagnoses WHERE tenant_id = %s "
                          "AND record_id = %s AND is_primary", (c.t, r)) == [(ds[3],)]
    body = c.ok(f"/v1/medical-records/{r}")
    assert [d["primary"] for d in body["diagnoses"]] == [False, False, False, True]
    assert body["primary_diagnosis"]["id"] == ds[3]
    c.send([c.rec("DiagnosisRetracted", r, {"diagnosis_id": ds[3], "reason": "ruled out"})])
    body = c.ok(f"/v1/medical-records/{r}")
    assert body["primary_diagnosis"] is None
    assert not any(d["primary"] for d in body["diagnoses"])
    # a non-primary retraction keeps the primary
    c.send([c.diagnosis(r, "D4", True)])
    c.send([c.rec("DiagnosisRetracted", r, {"diagnosis_id": ds[1], "reason": "x"})])
    assert c.ok(f"/v1/medical-records/{r}")["primary_diagnosis"]["name"] == "D4"


def test_soap_merge_absent_keeps_a_string_replaces_null_clears(clinic):
    c = clinic
    r = ev.new_id()
    c.send([c.open(r, c.p2), c.soap(r, subjective="S1", objective="O1", assessment="A1",
                                     plan="P1", additional_notes="N1")])
    c.send([c.soap(r, subjective="S2")])
    assert c.ok(f"/v1/medical-records/{r}")["soap"] == {
        "subjective": "S2", "objective": "O1", "assessment": "A1", "plan": "P1",
        "additional_notes": "N1"}
    c.send([c.soap(r, objective=None, plan="P2", additional_notes=None)])
    assert c.ok(f"/v1/medical-records/{r}")["soap"] == {
        "subjective": "S2", "objective": None, "assessment": "A1", "plan": "P2",
        "additional_notes": None}
    assert c.ok(f"/v1/medical-records/{r}")["version"] == 4


def test_locked_is_signed_or_past_the_tenants_auto_lock_period(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    old, fresh, signed = ev.new_id(), ev.new_id(), ev.new_id()
    c.send([c.open(old, c.p1, at=rfc(ago(hours=2))), c.open(fresh, c.p1),
            c.open(signed, c.p1), c.rec("MedicalRecordSigned", signed, {})])
    locked = lambda r: c.ok(f"/v1/medical-records/{r}")["locked"]  # noqa: E731
    assert (locked(old), locked(fresh), locked(signed)) == (False, False, True)
    c.send([ev.envelope("TenantSettingsChanged", c.t, "tenant", c.t, c.seq(c.t),
                        {"record_lock_hours": 1})])
    assert query(stack, "SELECT record_lock_hours, version FROM read.tenants WHERE id = %s",
                 (c.t,)) == [(1, 2)]
    assert (locked(old), locked(fresh), locked(signed)) == (True, False, True)
    listed = {m["id"]: m["locked"] for m in
              c.ok(f"/v1/patients/{c.p1}/medical-records")["data"]}
    assert listed == {old: True, fresh: False, signed: True}
    c.send([ev.envelope("TenantSettingsChanged", c.t, "tenant", c.t, c.seq(c.t),
                        {"record_lock_hours": 0})])
    assert (locked(old), locked(fresh), locked(signed)) == (False, False, True)


def test_roles_and_not_found(stack, clinic, daemons, producer):
    c = clinic
    r = ev.new_id()
    c.send([c.open(r, c.p1)])
    paths = [f"/v1/medical-records/{r}", f"/v1/medical-records/{r}/history",
             f"/v1/patients/{c.p1}/medical-records", f"/v1/patients/{c.p1}/timeline"]
    for path in paths:
        for role in ("vet", "nurse"):
            assert c.get(path, (role,)).status_code == 200, (path, role)
        for role in ("admin", "reception", "analyst", "ops"):
            resp = c.get(path, (role,))
            assert resp.status_code == 403, (path, role)
            assert resp.json()["error"]["code"] == "FORBIDDEN"
    reminders = "/v1/reminders/vaccinations"
    for role in ("admin", "reception", "vet", "nurse"):
        assert c.get(reminders, (role,), due_before="2030-01-01").status_code == 200, role
    for role in ("analyst", "ops"):
        assert c.get(reminders, (role,), due_before="2030-01-01").status_code == 403, role
    assert requests.get(c.reader.url + paths[0], timeout=10).status_code == 401
    # unknown ids, ids that are not UUIDs and another tenant's record: 404
    other = Clinic(stack, producer, daemons[1])
    for path in (f"/v1/medical-records/{ev.new_id()}", "/v1/medical-records/nope",
                 f"/v1/medical-records/{ev.new_id()}/history",
                 f"/v1/patients/{ev.new_id()}/medical-records",
                 f"/v1/patients/{ev.new_id()}/timeline"):
        assert c.get(path).status_code == 404, path
    for path in paths:
        resp = other.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "NOT_FOUND"
    # due_before is required and a date
    for params in ({}, {"due_before": "tomorrow"}):
        resp = c.get(reminders, **params)
        assert resp.status_code == 400
        assert resp.json()["error"]["details"][0]["field"] == "due_before"


def test_patient_records_newest_first_in_pages(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    ids = [ev.new_id() for _ in range(5)]
    c.send([c.open(r, c.p3, at=rfc(ago(days=10 - i)), complaint=f"visit {i}")
            for i, r in enumerate(ids)] +
           [c.diagnosis(ids[4], "Otitis", True, code="VN-9")])
    full = c.ok(f"/v1/patients/{c.p3}/medical-records")
    assert [m["id"] for m in full["data"]] == ids[::-1]
    assert full["next_cursor"] is None
    assert full["data"][0]["primary_diagnosis"]["name"] == "Otitis"
    assert "soap" not in full["data"][0]
    check_schema(full, "MedicalRecordSummaryViewList")
    seen, cursor = [], None
    while True:
        page = c.ok(f"/v1/patients/{c.p3}/medical-records", limit=2,
                    **({"cursor": cursor} if cursor else {}))
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    # another list's cursor is refused
    c.send([ev.weight_recorded(c.t, c.p3, c.seq(c.p3), 5000, rfc(ago(days=1)))])
    weights = c.ok(f"/v1/patients/{c.p3}/weights", limit=1)
    assert weights["next_cursor"]
    assert c.get(f"/v1/patients/{c.p3}/medical-records",
                 cursor=weights["next_cursor"]).status_code == 400
    assert c.ok(f"/v1/patients/{c.p2}/medical-records") == {"data": [], "next_cursor": None}


def invoice_of(c, client, appointment, invoice, issued_at):
    """An invoice of one 50.00 line for the appointment, issued at issued_at
    (None: left a draft)."""
    envs = [ev.envelope("InvoiceCreated", c.t, "invoice", invoice, c.seq(invoice),
                        {"client_id": client, "appointment_id": appointment}),
            ev.envelope("InvoiceLineAdded", c.t, "invoice", invoice, c.seq(invoice),
                        {"line_id": ev.new_id(), "description": "Consultation",
                         "quantity_milli": 1000, "unit_price_cents": 5000, "discount_bp": 0,
                         "tax_rate_bp": 0, "net_cents": 5000, "discount_cents": 0,
                         "tax_cents": 0, "line_total_cents": 5000, "item_id": None})]
    if issued_at:
        day = issued_at[:10]
        envs.append(ev.envelope("InvoiceIssued", c.t, "invoice", invoice, c.seq(invoice),
                                {"number": "INV-000001", "issued_on": day, "due_on": day,
                                 "total_cents": 5000}, at=issued_at))
    return envs


def test_timeline_merges_every_kind_newest_first_with_one_keyset(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    appt, r, inv = ev.new_id(), ev.new_id(), ev.new_id()
    vac, rx, vit = ev.new_id(), ev.new_id(), ev.new_id()
    t0 = ago(days=30).replace(microsecond=0)
    at = lambda d: rfc(t0 + timedelta(days=d))  # noqa: E731
    c.send([
        ev.envelope("AppointmentScheduled", c.t, "appointment", appt, c.seq(appt),
                    {"patient_id": c.p1, "vet_id": c.vet, "start": at(1),
                     "end": rfc(t0 + timedelta(days=1, minutes=30)), "type": "consultation",
                     "reason": "check"}),
        ev.envelope("AllergyAdded", c.t, "patient", c.p1, c.seq(c.p1),
                    {"allergen": "penicillin", "reaction": "hives", "severity": "severe"},
                    at=at(2)),
        c.open(r, c.p1, at=at(3), appointment=appt),
        c.diagnosis(r, "Otitis", True, code="VN-9", at=at(3)),
        # vitals and their weight at the same instant: ordered by kind (descending)
        c.vitals(r, at(4), weight_g=14000, vitals=vit, at=at(4)),
        ev.weight_recorded(c.t, c.p1, c.seq(c.p1), 14000, at(4)),
        c.treatment(r, "Rabies", performed_at=at(5), next_due_on="2027-01-01",
                    treatment=vac, at=at(5)),
        c.treatment(r, "Bandage", type_="procedure", at=at(5)),  # not a vaccination
        c.prescribe(r, prescription=rx, at=at(6)),
    ] + invoice_of(c, c.c1, appt, inv, issued_at=at(7)) +
        invoice_of(c, c.c1, appt, ev.new_id(), issued_at=None))  # a draft: not listed
    body = c.ok(f"/v1/patients/{c.p1}/timeline")
    kinds = [(i["kind"], i["id"]) for i in body["data"]]
    assert kinds[:7] == [("invoice", inv), ("prescription", rx), ("vaccination", vac),
                         ("weight", kinds[3][1]), ("vitals", vit), ("medical_record", r),
                         ("allergy", kinds[6][1])]
    assert kinds[7] == ("appointment", appt)
    assert kinds[8][0] == "weight"  # the registration weight, 400 days ago
    assert len(kinds) == 9 and body["next_cursor"] is None
    check_schema(body, "TimelineList")
    items = {i["kind"]: i for i in body["data"]}
    assert items["medical_record"]["primary_diagnosis"]["name"] == "Otitis"
    assert items["vaccination"]["next_due_on"] == "2027-01-01"
    assert items["vaccination"]["name"] == "Rabies"
    assert items["vitals"]["temperature_c"] == 38.5
    assert items["allergy"]["allergen"] == "penicillin"
    assert items["appointment"]["vet"]["name"] == "Dr Alice Adams"
    assert items["prescription"]["medication"] == "Meloxicam"
    assert {k: items["invoice"][k] for k in ("number", "status", "total_cents",
                                             "balance_cents", "appointment_id")} == \
        {"number": "INV-000001", "status": "issued", "total_cents": 5000,
         "balance_cents": 5000, "appointment_id": appt}
    for item in body["data"]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", item["at"])
    for limit in (1, 2, 3):
        seen, cursor = [], None
        while True:
            page = c.ok(f"/v1/patients/{c.p1}/timeline", limit=limit,
                        **({"cursor": cursor} if cursor else {}))
            assert len(page["data"]) <= limit
            seen += [(i["kind"], i["id"]) for i in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == kinds, limit


def test_history_is_the_records_events_in_log_order(clinic):
    c = clinic
    r = ev.new_id()
    envs = [c.open(r, c.p2), c.soap(r, subjective="S"), c.diagnosis(r, "D", True),
            c.rec("MedicalRecordSigned", r, {}),
            c.rec("AddendumAdded", r, {"addendum_id": ev.new_id(), "text": "late note"})]
    envs[3]["actor"] = "vet-42"
    c.send(envs)
    body = c.ok(f"/v1/medical-records/{r}/history", ("nurse",))
    assert [(e["id"], e["type"], e["seq"], e["actor"]) for e in body["data"]] == \
        [(e["id"], e["type"], e["seq"], e["actor"]) for e in envs]
    assert body["data"][1]["data"] == {"subjective": "S"}
    check_schema(body, "MedicalRecordHistoryViewList")
    assert all(e["at"].endswith("Z") and ":" in e["position"] for e in body["data"])
    page = c.ok(f"/v1/medical-records/{r}/history", limit=3)
    rest = c.ok(f"/v1/medical-records/{r}/history", cursor=page["next_cursor"])
    assert [e["seq"] for e in page["data"] + rest["data"]] == [1, 2, 3, 4, 5]
    assert c.ok(f"/v1/medical-records/{r}")["signed_by"] == "vet-42"


def test_vaccination_reminders_take_the_latest_of_each_kind(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    r1, r2, r3 = ev.new_id(), ev.new_id(), ev.new_id()
    rabies_old, rabies_new, dhpp, lepto = ev.new_id(), ev.new_id(), ev.new_id(), ev.new_id()
    kiwi_rabies, planned, canceled = ev.new_id(), ev.new_id(), ev.new_id()
    c.send([
        c.open(r1, c.p1), c.open(r2, c.p2), c.open(r3, c.p3),
        # Rex: rabies given twice; the latest is due only in 2028
        c.treatment(r1, "Rabies", performed_at=rfc(ago(days=700)), next_due_on="2025-01-01",
                    treatment=rabies_old),
        c.treatment(r1, "rabies", performed_at=rfc(ago(days=5)), next_due_on="2028-01-01",
                    treatment=rabies_new),
        c.treatment(r1, "DHPP", performed_at=rfc(ago(days=300)), next_due_on="2026-12-15",
                    treatment=dhpp),
        # a planned and a canceled vaccination remind of nothing
        c.treatment(r1, "Kennel cough", next_due_on="2026-01-01", treatment=planned),
        c.treatment(r1, "Bordetella", next_due_on="2026-01-01", treatment=canceled),
        c.rec("TreatmentCanceled", r1, {"treatment_id": canceled, "reason": "no stock"}),
        # Tom: leptospirosis due, performed later through TreatmentPerformed
        c.treatment(r2, "Lepto", next_due_on="2026-11-01", treatment=lepto),
        c.rec("TreatmentPerformed", r2, {"treatment_id": lepto,
                                          "performed_at": rfc(ago(days=360))}),
        # Kiwi is due too, then dies: no reminder
        c.treatment(r3, "Rabies", performed_at=rfc(ago(days=360)), next_due_on="2026-10-01",
                    treatment=kiwi_rabies),
    ])
    due = c.ok("/v1/reminders/vaccinations", ("reception",), due_before="2027-01-01")
    assert [(d["treatment_id"], d["vaccination"], d["next_due_on"]) for d in due["data"]] == \
        [(kiwi_rabies, "Rabies", "2026-10-01"), (lepto, "Lepto", "2026-11-01"),
         (dhpp, "DHPP", "2026-12-15")]
    first = due["data"][1]
    assert first["patient"] == {"id": c.p2, "name": "Tom", "species": "canine"}
    assert first["client"] == {"id": c.c1, "first_name": "Ann", "last_name": "Smith",
                               "email": "Ann@example.org", "phone": "+33 1 23",
                               "address": "1 rue X"}
    assert first["last_given_at"].endswith("Z")
    check_schema(due, "VaccinationReminderViewList")
    c.send([ev.envelope("PatientDied", c.t, "patient", c.p3, c.seq(c.p3),
                        {"date": date.today().isoformat()})])
    due = c.ok("/v1/reminders/vaccinations", due_before="2027-01-01")
    assert [d["treatment_id"] for d in due["data"]] == [lepto, dhpp]
    assert [d["treatment_id"] for d in c.ok("/v1/reminders/vaccinations",
                                            due_before="2026-11-01")["data"]] == [lepto]
    assert [d["treatment_id"] for d in c.ok("/v1/reminders/vaccinations",
                                            due_before="2030-01-01")["data"]] == \
        [lepto, dhpp, rabies_new]
    page = c.ok("/v1/reminders/vaccinations", due_before="2030-01-01", limit=2)
    rest = c.ok("/v1/reminders/vaccinations", due_before="2030-01-01", cursor=page["next_cursor"])
    assert [d["treatment_id"] for d in page["data"] + rest["data"]] == [lepto, dhpp, rabies_new]
    assert rest["next_cursor"] is None


def test_analysts_read_counts_never_clinical_text(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    other = Clinic(stack, producer, daemons[1])
    r1, r2, ro = ev.new_id(), ev.new_id(), ev.new_id()
    d_retracted = ev.new_id()
    c.send([
        c.open(r1, c.p1, visit_date="2026-10-05"), c.open(r2, c.p2, visit_date="2026-11-02"),
        c.diagnosis(r1, "Otitis", True, code="VN-9"),
        c.diagnosis(r1, "Dermatitis", False),
        c.diagnosis(r2, "Otitis", True, code="VN-9"),
        c.diagnosis(r2, "Wrong", False, code="VN-9", diagnosis=d_retracted),
        c.rec("DiagnosisRetracted", r2, {"diagnosis_id": d_retracted, "reason": "x"}),
        c.treatment(r1, "Rabies", performed_at=rfc(ago(days=1))),
        c.treatment(r2, "Rabies"),
        c.treatment(r2, "Lavage", type_="procedure"),
        c.soap(r1, subjective="SECRET SOAP"),
        c.rec("AddendumAdded", r1, {"addendum_id": ev.new_id(), "text": "SECRET ADDENDUM"}),
    ])
    other.send([other.open(ro, other.p1, visit_date="2026-10-05"),
                other.diagnosis(ro, "Otitis", True, code="VN-9")])

    def analyst(text):
        with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
            return conn.execute(text).fetchall()

    wait_for(lambda: analyst("SELECT month::text, code, diagnoses FROM read.diagnosis_counts "
                             "ORDER BY month, code") ==
             [("2026-10-01", "", 1), ("2026-10-01", "VN-9", 1), ("2026-11-01", "VN-9", 1)],
             what="diagnosis counts refreshed")
    wait_for(lambda: analyst("SELECT month::text, treatment_type, treatments, performed "
                             "FROM read.treatment_counts ORDER BY month, treatment_type") ==
             [("2026-10-01", "vaccination", 1, 1), ("2026-11-01", "procedure", 1, 0),
              ("2026-11-01", "vaccination", 1, 0)], what="treatment counts refreshed")
    for table in ("medical_records", "addenda", "vitals", "diagnoses", "treatments",
                  "prescriptions", "diagnosis_counts_monthly", "treatment_counts_monthly"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst(f"SELECT * FROM read.{table}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst("SELECT subjective FROM read.medical_records")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst("SELECT text FROM read.addenda")
    # nor through the log: the record's events are hidden from the analyst
    assert analyst("SELECT count(*) FROM read.event_log "
                   "WHERE envelope::text LIKE '%SECRET%'") == [(0,)]
    assert analyst("SELECT count(*) FROM read.event_log WHERE aggregate = 'medical_record'") \
        == [(0,)]
    assert analyst("SELECT count(*) FROM read.event_log")[0][0] > 0
    # the reader role (query-reader) still sees them
    with psycopg.connect(stack.dsn("reader"), autocommit=True) as conn:
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        assert conn.execute("SELECT count(*) FROM read.event_log "
                            "WHERE aggregate = 'medical_record'").fetchone()[0] == 12
        assert conn.execute("SELECT subjective FROM read.medical_records "
                            "WHERE id = %s", (r1,)).fetchall() == [("SECRET SOAP",)]


def test_record_events_of_unknown_records_are_dead_letters(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    r = ev.new_id()
    c.send([c.open(r, c.p1)])
    ghost = ev.new_id()
    bad = [
        c.open(ev.new_id(), ev.new_id()),                       # unknown patient
        c.vitals(ghost, rfc(ago(minutes=1))),
        c.soap(ghost, subjective="x"),
        c.diagnosis(ghost, "D", True),
        c.rec("DiagnosisRetracted", r, {"diagnosis_id": ev.new_id(), "reason": "x"}),
        c.treatment(ghost, "Rabies"),
        c.rec("TreatmentPerformed", r, {"treatment_id": ev.new_id(),
                                        "performed_at": rfc(ago(minutes=1))}),
        c.rec("TreatmentCanceled", r, {"treatment_id": ev.new_id(), "reason": "x"}),
        c.prescribe(ghost),
        c.rec("MedicalRecordSigned", ghost, {}),
        c.rec("AddendumAdded", ghost, {"addendum_id": ev.new_id(), "text": "x"}),
        ev.envelope("TenantSettingsChanged", c.t, "tenant", ev.new_id(), 1,
                    {"record_lock_hours": 5}),
    ]
    c.send(bad)
    errors = [e for (e,) in query(stack, "SELECT error FROM read.dead_letters "
                                         "WHERE tenant_id = %s ORDER BY \"offset\"", (c.t,))]
    assert len(errors) == len(bad), errors
    assert "patient not found" in errors[0]
    assert all("not found in the read model" in e for e in errors)
    assert "diagnosis of that medical record" in errors[4]
    assert "treatment of that medical record" in errors[6]
    assert "tenant not found" in errors[-1]
    # the record they named is untouched
    body = c.ok(f"/v1/medical-records/{r}")
    assert body["version"] == 1 and body["status"] == "open"


# --- read model = rebuild -------------------------------------------------

RECORD_TABLES = {
    "medical_records": "id", "vitals": "id", "diagnoses": "id", "treatments": "id",
    "prescriptions": "id", "addenda": "id", "tenants": "id", "patients": "id",
}


def random_record_events(c, rng, n_records=6, n_events=120):
    """A random but valid mix: every record opened first, then any record
    event on a random record, referring only to diagnoses and treatments that
    exist."""
    envs, records = [], []
    for i in range(n_records):
        r = ev.new_id()
        records.append({"id": r, "diagnoses": [], "treatments": []})
        envs.append(c.open(r, rng.choice([c.p1, c.p2, c.p3]), at=rfc(ago(hours=rng.randint(1, 50))),
                           record_type=rng.choice(["consultation", "vaccination", "surgery"])))
    envs.append(ev.envelope("TenantSettingsChanged", c.t, "tenant", c.t, c.seq(c.t),
                            {"record_lock_hours": rng.randint(0, 48)}))
    texts = [None, "alpha", "beta", "gamma"]
    for _ in range(n_events):
        rec = rng.choice(records)
        r = rec["id"]
        kind = rng.randrange(9)
        if kind == 0:
            envs.append(c.vitals(r, rfc(ago(minutes=rng.randint(1, 9999))),
                                 weight_g=rng.choice([None, rng.randint(1000, 40000)])))
        elif kind == 1:
            fields = {f: rng.choice(texts) for f in
                      ("subjective", "objective", "assessment", "plan", "additional_notes")
                      if rng.random() < 0.5}
            envs.append(c.soap(r, **fields))
        elif kind == 2:
            d = ev.new_id()
            rec["diagnoses"].append(d)
            envs.append(c.diagnosis(r, rng.choice(["Otitis", "Sprain", "Flu"]),
                                    rng.random() < 0.5, code=rng.choice([None, "VN-1", "VN-2"]),
                                    diagnosis=d))
        elif kind == 3 and rec["diagnoses"]:
            envs.append(c.rec("DiagnosisRetracted", r,
                              {"diagnosis_id": rec["diagnoses"].pop(rng.randrange(
                                  len(rec["diagnoses"]))), "reason": "r"}))
        elif kind == 4:
            t = ev.new_id()
            rec["treatments"].append(t)
            envs.append(c.treatment(r, rng.choice(["Rabies", "DHPP", "Splint"]),
                                    type_=rng.choice(["vaccination", "procedure"]),
                                    performed_at=rng.choice([None, rfc(ago(days=rng.randint(
                                        1, 400)))]),
                                    next_due_on=rng.choice([None, "2027-01-01", "2026-12-01"]),
                                    treatment=t))
        elif kind == 5 and rec["treatments"]:
            t = rng.choice(rec["treatments"])
            if rng.random() < 0.5:
                envs.append(c.rec("TreatmentPerformed", r, {"treatment_id": t,
                                                            "performed_at": rfc(ago(hours=3))}))
            else:
                envs.append(c.rec("TreatmentCanceled", r, {"treatment_id": t, "reason": "c"}))
        elif kind == 6:
            envs.append(c.prescribe(r, medication=rng.choice(["Meloxicam", "Amoxicillin"])))
        elif kind == 7 and rng.random() < 0.2:
            envs.append(c.rec("MedicalRecordSigned", r, {}))
        elif kind == 8:
            envs.append(c.rec("AddendumAdded", r, {"addendum_id": ev.new_id(),
                                                   "text": rng.choice(texts[1:])}))
    return envs


def tenant_digest(stack, schema, table, tenant):
    q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                "FROM {}.{} x WHERE x.tenant_id = %s").format(sql.Identifier(schema),
                                                              sql.Identifier(table))
    return query(stack, q, (tenant,))[0]


def test_read_model_equals_a_rebuild_after_a_random_mix(stack, daemons, producer):
    c = Clinic(stack, producer, daemons[1])
    seed = random.randrange(1 << 30)
    envs = random_record_events(c, random.Random(seed))
    c.send(envs)
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s",
                     (c.t,)), f"seed {seed}"
    assert query(stack, "SELECT count(*) FROM read.diagnoses WHERE tenant_id = %s "
                        "GROUP BY record_id HAVING count(*) FILTER (WHERE is_primary) > 1",
                 (c.t,)) == []
    check = stack.start_daemon("projector", port=free_port(),
                               env={"VETPMS_READ_SCHEMA": "read_rec_check",
                                    "VETPMS_PROJECTOR_GROUP": f"e2e-rec-{uuid.uuid4()}"})
    try:
        def caught_up():
            try:
                return query(stack, "SELECT count(*) FROM read_rec_check.event_log "
                                    "WHERE tenant_id = %s", (c.t,))[0][0] == c.sent
            except psycopg.errors.UndefinedTable:
                return False
        wait_for(caught_up, timeout=120, interval=0.2, what="rebuild caught up",
                 explain=lambda: check.log_tail(30))
    finally:
        assert check.terminate() == 0
    for table in RECORD_TABLES:
        live = tenant_digest(stack, "read", table, c.t)
        rebuilt = tenant_digest(stack, "read_rec_check", table, c.t)
        assert live == rebuilt, f"{table} (seed {seed})"
    assert tenant_digest(stack, "read", "medical_records", c.t)[0] == 6



def test_reads_wait_for_a_consistency_token(clinic):
    c = clinic
    r = ev.new_id()
    c.send([c.open(r, c.p2)])
    c.producer.send_all([c.soap(r, assessment="read your writes")])
    c.sent += 1
    partition, offset = c.producer.delivered[-1]
    body = c.ok(f"/v1/medical-records/{r}", consistent_with=f"{partition}:{offset}")
    assert body["soap"]["assessment"] == "read your writes" and body["version"] == 2
    history = c.ok(f"/v1/medical-records/{r}/history", consistent_with=f"{partition}:{offset}")
    assert [e["type"] for e in history["data"]] == ["MedicalRecordOpened", "SoapNoteWritten"]
