"""A whole clinic scripted through the writer's HTTP API: every command of the
writer at least once, so the tenant's log holds every event type of the
catalog (common/vp_catalog.c) in every run, deterministically — what a random
history reaches only most of the time. Used by test_tenant_export.py to build
the tenant it exports and imports.

Every answer must be 2xx: this is a test's own history, a refusal is a bug of
the script or of the writer. Ids the writer makes and does not answer with (a
diagnosis's, a treatment's) are read from the read model the projector keeps,
so the stack needs a projector."""

import uuid
from datetime import datetime, timedelta, timezone

import requests

from readmodel import query
from stack import wait_for

TIMEZONE = "Europe/London"
# The client the script erases (EraseClient, docs/privacy.md): values no other
# row holds, so a grep for them in a read model finds them only if the
# erasure failed.
ERASED = {"first_name": "Ermintrude", "last_name": "Vanishwell",
          "email": "ermintrude@vanish-script.example", "phone": "+44 20 7946 0999",
          "address": "3 Forgotten Row, Nullbury"}
ERASED_VALUES = ["Ermintrude", "Vanishwell", "vanish-script", "7946 0999", "Forgotten Row",
                 "Nullbury"]


class Script:
    def __init__(self, stack, url, tenant=None):
        self.stack, self.url = stack, url
        self.session = requests.Session()
        self.tenant = tenant
        self.auth = None

    def login(self):
        # one staff member with every clinic role: the script tests the
        # history, not the permissions (other tests do)
        self.auth = "Bearer " + self.stack.token(["admin", "vet", "nurse", "reception"],
                                                 tenant=self.tenant, sub="e2e-clinic-script")

    def send(self, method, path, body=None, auth=None, ok=(200, 201)):
        r = self.session.request(method, self.url + path, json=body, timeout=30,
                                 headers={"Authorization": auth or self.auth})
        assert r.status_code in ok, (method, path, body, r.status_code, r.text)
        return r.json()

    def post(self, path, body=None):
        return self.send("POST", path, {} if body is None else body)

    def patch(self, path, body):
        return self.send("PATCH", path, body)

    def read_id(self, sql, args):
        """An id the projector has written (the writer's answer names only
        the aggregate): waits for it with a deadline."""
        return wait_for(lambda: (query(self.stack, sql, args) or [[None]])[0][0], timeout=60,
                        what=f"the projector to apply {sql}")


def at(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def day(moment):
    return moment.strftime("%Y-%m-%d")


def staff(s):
    vet = s.post("/v1/staff", {"name": "Dr Ada Script", "role": "veterinarian",
                               "license_number": "RCVS-9001"})["id"]
    vet2 = s.post("/v1/staff", {"name": "Dr Ben Script", "role": "veterinarian"})["id"]
    nurse = s.post("/v1/staff", {"name": "Nia Script", "role": "nurse"})["id"]
    locum = s.post("/v1/staff", {"name": "Lou Locum", "role": "receptionist"})["id"]
    s.post(f"/v1/staff/{locum}/deactivate", {"reason": "contract ended"})
    return vet, vet2, nurse


def clients_and_patients(s, now):
    """An owner, the heir a patient is transferred to, a client who leaves;
    a patient with weight, allergy and condition, and one that dies."""
    owner = s.post("/v1/clients", {"first_name": "Sam", "last_name": "Script",
                                   "email": "sam@script.example"})["id"]
    s.patch(f"/v1/clients/{owner}", {"phone": "+44 20 7946 0001"})
    heir = s.post("/v1/clients", {"first_name": "Kim", "last_name": "Script"})["id"]
    leaver = s.post("/v1/clients", {"first_name": "Lee", "last_name": "Gone"})["id"]
    s.post(f"/v1/clients/{leaver}/deactivate", {"reason": "moved away"})
    pet = s.post("/v1/patients", {"client_id": owner, "name": "Scriptie", "species": "canine",
                                  "sex": "female", "breed": "Beagle",
                                  "weight": {"value": 11.2, "unit": "kg"}})["id"]
    s.post(f"/v1/patients/{pet}/weights", {"value": 11.6, "unit": "kg"})
    s.post(f"/v1/patients/{pet}/allergies", {"allergen": "penicillin", "severity": "severe"})
    s.post(f"/v1/patients/{pet}/conditions", {"name": "Atopic dermatitis"})
    old = s.post("/v1/patients", {"client_id": owner, "name": "Oldie", "species": "feline",
                                  "sex": "male"})["id"]
    s.post(f"/v1/patients/{old}/deceased", {"date": day(now - timedelta(days=2))})
    s.post(f"/v1/patients/{pet}/transfer", {"client_id": heir})
    # a client erased with a patient of theirs (ClientErased): the patient's
    # copy of the owner's name is scrubbed too, and the patient stays
    erased = s.post("/v1/clients", ERASED)["id"]
    s.post("/v1/patients", {"client_id": erased, "name": "Erasmuspet", "species": "canine",
                            "sex": "male"})
    s.post(f"/v1/clients/{erased}/erase", {"reason": "GDPR request 118"})
    return heir, pet


def appointments(s, vet, vet2, pet, now):
    """Availability published and partly withdrawn; a visit rescheduled,
    checked in, started and completed; one canceled; one starting in seconds,
    for the no-show at the end. Its id is returned."""
    s.post(f"/v1/staff/{vet}/availability",
           {"blocks": [{"start": at(now - timedelta(minutes=1)),
                        "end": at(now + timedelta(hours=20))}]})
    s.post(f"/v1/staff/{vet2}/availability",
           {"blocks": [{"start": at(now + timedelta(days=2)),
                        "end": at(now + timedelta(days=2, hours=8))}]})
    s.post(f"/v1/staff/{vet2}/availability/withdraw",
           {"start": at(now + timedelta(days=2, hours=6)),
            "end": at(now + timedelta(days=2, hours=8))})

    def book(start, minutes, kind="consultation"):
        return s.post("/v1/appointments", {"patient_id": pet, "vet_id": vet, "start": at(start),
                                           "end": at(start + timedelta(minutes=minutes)),
                                           "type": kind, "reason": "scripted"})["id"]

    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
    missed = book(soon, 15)
    visit = book(now + timedelta(hours=2), 30)
    s.post(f"/v1/appointments/{visit}/reschedule", {"start": at(now + timedelta(hours=3)),
                                                    "end": at(now + timedelta(hours=3.5))})
    for step in ("check-in", "start"):
        s.post(f"/v1/appointments/{visit}/{step}")
    s.post(f"/v1/appointments/{visit}/complete", {"notes": "well"})
    dropped = book(now + timedelta(hours=5), 20, "vaccination")
    s.post(f"/v1/appointments/{dropped}/cancel", {"reason": "owner unwell"})
    return missed, visit


def medical_record(s, pet, visit, now):
    """A record with every kind of entry, a retracted diagnosis, a performed
    and a canceled treatment, signed, then an addendum."""
    rid = s.post("/v1/medical-records", {"patient_id": pet, "appointment_id": visit,
                                         "record_type": "consultation",
                                         "chief_complaint": "Itchy skin",
                                         "visit_date": day(now)})["id"]
    s.post(f"/v1/medical-records/{rid}/vitals", {"temperature_c": 38.6, "pulse_bpm": 92,
                                                 "weight": {"value": 11.5, "unit": "kg"}})
    s.post(f"/v1/medical-records/{rid}/soap", {"subjective": "Scratching for a week.",
                                               "assessment": "Flea allergy"})
    s.post(f"/v1/medical-records/{rid}/diagnoses", {"name": "Mange", "status": "presumptive"})
    wrong = s.read_id("SELECT id::text FROM read.diagnoses WHERE tenant_id = %s AND "
                      "record_id = %s AND name = 'Mange'", (s.tenant, rid))
    s.post(f"/v1/medical-records/{rid}/diagnoses/{wrong}/retract", {"reason": "skin scrape clear"})
    s.post(f"/v1/medical-records/{rid}/diagnoses", {"name": "Flea allergy dermatitis",
                                                    "status": "confirmed", "primary": True})
    for name in ("Flea treatment", "Skin biopsy"):
        s.post(f"/v1/medical-records/{rid}/treatments", {"name": name,
                                                         "treatment_type": "procedure"})
    def both_treatments():
        rows = query(s.stack, "SELECT name, id::text FROM read.treatments WHERE "
                              "tenant_id = %s AND record_id = %s", (s.tenant, rid))
        return dict(rows) if len(rows) == 2 else None
    planned = wait_for(both_treatments, timeout=60, what="the projector to apply the treatments")
    s.post(f"/v1/medical-records/{rid}/treatments/{planned['Flea treatment']}/perform")
    s.post(f"/v1/medical-records/{rid}/treatments/{planned['Skin biopsy']}/cancel",
           {"reason": "not needed"})
    s.post(f"/v1/medical-records/{rid}/prescriptions",
           {"medication": "Fluralaner 250 mg", "dosage": "1 tablet", "frequency": "once",
            "route": "oral", "duration_days": 1, "quantity": 1})
    s.post(f"/v1/medical-records/{rid}/sign")
    s.post(f"/v1/medical-records/{rid}/addenda", {"text": "Owner reports no more scratching."})


def stock(s, pet):
    gauze = s.post("/v1/inventory/items", {"code": "SCRIPT-1", "name": "Script gauze",
                                           "category": "consumable", "unit": "pack",
                                           "sale_price_cents": 250})["id"]
    s.patch(f"/v1/inventory/items/{gauze}", {"sale_price_cents": 300})
    s.post(f"/v1/inventory/items/{gauze}/receipts", {"batch_number": "SB-1", "quantity": 10})
    s.post(f"/v1/inventory/items/{gauze}/dispenses", {"quantity": 2, "patient_id": pet})
    s.post(f"/v1/inventory/items/{gauze}/adjustments",
           {"batch_number": "SB-1", "reason": "damage", "delta": -1})
    old = s.post("/v1/inventory/items", {"code": "SCRIPT-OLD", "name": "Old bandage",
                                         "category": "consumable", "unit": "roll"})["id"]
    s.post(f"/v1/inventory/items/{old}/deactivate", {"reason": "discontinued"})
    return gauze


def billing(s, client, gauze):
    """An invoice with a line removed, issued, paid and partly refunded; a
    second one issued and voided."""
    inv = s.post("/v1/invoices", {"client_id": client})["id"]
    line = str(uuid.uuid4())
    s.post(f"/v1/invoices/{inv}/lines", {"description": "Typo", "quantity": 1,
                                         "unit_price_cents": 100, "line_id": line})
    s.send("DELETE", f"/v1/invoices/{inv}/lines/{line}")
    s.post(f"/v1/invoices/{inv}/lines", {"description": "Consultation", "quantity": 1,
                                         "unit_price_cents": 4500, "tax_rate_bp": 2000})
    s.post(f"/v1/invoices/{inv}/lines", {"description": "Gauze", "quantity": 1,
                                         "item_id": gauze})
    s.post(f"/v1/invoices/{inv}/issue", {"due_in_days": 14})
    pid = str(uuid.uuid4())
    s.post(f"/v1/invoices/{inv}/payments", {"amount_cents": 5000, "method": "card",
                                            "payment_id": pid})
    s.post(f"/v1/invoices/{inv}/payments/{pid}/refund", {"amount_cents": 500,
                                                         "reason": "goodwill"})
    twice = s.post("/v1/invoices", {"client_id": client})["id"]
    s.post(f"/v1/invoices/{twice}/lines", {"description": "Consultation", "quantity": 1,
                                           "unit_price_cents": 4500})
    s.post(f"/v1/invoices/{twice}/issue", {})
    s.post(f"/v1/invoices/{twice}/void", {"reason": "billed twice"})


def patients_in_bulk(s, n):
    """n more clients, each with a patient weighed twice, an allergy and a
    contact change: history enough that an import can be interrupted half way."""
    for i in range(n):
        client = s.post("/v1/clients", {"first_name": f"Bulk{i}", "last_name": "Script"})["id"]
        pet = s.post("/v1/patients", {"client_id": client, "name": f"Pet{i}",
                                      "species": "feline", "sex": "female",
                                      "weight": {"value": 3 + i / 100, "unit": "kg"}})["id"]
        s.post(f"/v1/patients/{pet}/weights", {"value": 3.5 + i / 100, "unit": "kg"})
        s.post(f"/v1/patients/{pet}/allergies", {"allergen": f"pollen {i}"})
        s.patch(f"/v1/clients/{client}", {"email": f"bulk{i}@script.example"})


def no_show(s, appointment):
    """The appointment booked seconds ahead has started by now (the script
    took longer): marked a no-show, waiting on the writer's clock if not."""
    def marked():
        r = s.session.post(f"{s.url}/v1/appointments/{appointment}/no-show", json={},
                           headers={"Authorization": s.auth}, timeout=30)
        assert r.status_code in (200, 409), r.text
        return r.status_code == 200
    wait_for(marked, timeout=30, interval=0.2, what="the no-show's start to pass")


def script_clinic(stack, url, bulk=60):
    """Provisions a tenant through the writer at url and scripts a whole
    clinic into it; its id."""
    s = Script(stack, url)
    s.tenant = s.send("POST", "/v1/tenants", {"name": "Scripted Paws", "timezone": TIMEZONE,
                                              "currency": "GBP"},
                      auth="Bearer " + stack.token("platform-admin"))["id"]
    s.login()
    s.patch(f"/v1/tenants/{s.tenant}/settings", {"record_lock_hours": 72})
    now = datetime.now(timezone.utc).replace(microsecond=0)
    vet, vet2, _nurse = staff(s)
    heir, pet = clients_and_patients(s, now)
    missed, visit = appointments(s, vet, vet2, pet, now)
    medical_record(s, pet, visit, now)
    gauze = stock(s, pet)
    billing(s, heir, gauze)
    patients_in_bulk(s, bulk)
    no_show(s, missed)
    return s.tenant
