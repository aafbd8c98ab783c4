"""cmd-writer end to end on the real Kafka of the test stack: every command in
scope, every refusal, auth, idempotency (and its time window), optimistic
concurrency, ownership, durability across kill -9, fencing, and the events'
JSON Schemas."""

import base64
import collections
import hashlib
import json
import math
import os
import time
import uuid

import jsonschema
import pytest
import requests

from events import EventProducer, client_registered
from kafka_log import events as log_events
import readmodel
from stack import ROOT, free_port, wait_for


class Client:
    """The writer's HTTP API with a token."""

    def __init__(self, url, token):
        self.url, self.token = url, token

    def call(self, method, path, body=None, headers=None, raw=None):
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        h.update(headers or {})
        if raw is not None:
            return requests.request(method, self.url + path, data=raw, headers=h, timeout=30)
        return requests.request(method, self.url + path, json=body, headers=h, timeout=30)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)


@pytest.fixture(scope="module")
def writer(stack):
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    yield w
    w.terminate()


WRITER_TENANTS = set()  # tenants made through the writer by these tests


def provision(stack, url, **fields):
    body = {"name": "Happy Paws", "timezone": "Europe/London", "currency": "GBP"}
    body.update(fields)
    r = Client(url, stack.token("platform-admin")).post("/v1/tenants", body)
    assert r.status_code == 201, r.text
    WRITER_TENANTS.add(r.json()["id"])
    return r.json()["id"]


@pytest.fixture(scope="module")
def clinic(stack, writer):
    """A provisioned tenant and clients for each role."""
    tid = provision(stack, writer.url)
    roles = ("admin", "vet", "nurse", "reception", "analyst", "ops")
    api = {role: Client(writer.url, stack.token(role, tenant=tid, sub=f"u-{role}"))
           for role in roles}
    return tid, api


def new_client(api, **kw):
    body = {"first_name": "Ann", "last_name": "Lee"}
    body.update(kw)
    r = api["reception"].post("/v1/clients", body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def new_patient(api, client_id, **kw):
    body = {"client_id": client_id, "name": "Rex", "species": "canine", "sex": "male"}
    body.update(kw)
    r = api["vet"].post("/v1/patients", body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def error_code(r):
    return r.json()["error"]["code"]


# --- tenants -------------------------------------------------------------

def test_provision_tenant_answers_created_with_position(stack, writer):
    r = Client(writer.url, stack.token("platform-admin")).post(
        "/v1/tenants", {"name": "Vale Vets", "timezone": "America/New_York", "currency": "USD"})
    assert r.status_code == 201
    body = r.json()
    assert body["version"] == 1 and body["events"] == ["TenantProvisioned"]
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == f"/v1/tenants/{body['id']}"
    p, o = body["position"].split(":")
    assert r.headers["X-Consistency-Token"] == body["position"]
    assert 0 <= int(p) < stack.partitions and int(o) >= 0


def test_provision_refusals(stack, writer):
    pa = Client(writer.url, stack.token("platform-admin"))
    r = pa.post("/v1/tenants", {"name": "X", "timezone": "Mars/Olympus", "currency": "gbp"})
    assert r.status_code == 400
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"timezone", "currency"}
    r = pa.post("/v1/tenants", {"name": "X", "timezone": "../../etc/passwd", "currency": "GBP"})
    assert r.status_code == 400
    tid = provision(stack, writer.url)
    r = pa.post("/v1/tenants", {"id": tid, "name": "X", "timezone": "UTC", "currency": "EUR"})
    assert r.status_code == 409 and error_code(r) == "ALREADY_EXISTS"
    admin = Client(writer.url, stack.token("admin", tenant=tid))
    r = admin.post("/v1/tenants", {"name": "X", "timezone": "UTC", "currency": "EUR"})
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN"


def test_commands_for_an_unprovisioned_tenant_are_404(stack, writer):
    ghost = Client(writer.url, stack.token("admin", tenant=str(uuid.uuid4())))
    r = ghost.post("/v1/clients", {"first_name": "A", "last_name": "B"})
    # 404 when this writer owns the tenant's partition (one instance owns all)
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


# --- auth ----------------------------------------------------------------

def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_every_auth_failure(stack, writer, clinic):
    tid, api = clinic
    body = {"first_name": "A", "last_name": "B"}
    anon = Client(writer.url, None)
    assert anon.post("/v1/clients", body).status_code == 401
    expired = Client(writer.url, stack.token("admin", tenant=tid, ttl=-120))
    assert error_code(expired.post("/v1/clients", body)) == "UNAUTHENTICATED"
    good = stack.token("admin", tenant=tid)
    h, p, s = good.split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    assert Client(writer.url, f"{h}.{p}.{flipped}").post("/v1/clients", body).status_code == 401
    none_token = b64({"alg": "none", "typ": "JWT"}) + "." + p + "."
    assert Client(writer.url, none_token).post("/v1/clients", body).status_code == 401
    r = anon.post("/v1/clients", body, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = api["vet"].post("/v1/clients", body)  # vets do not register clients
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    r = Client(writer.url, stack.token("platform-admin")).post("/v1/clients", body)
    assert r.status_code == 403


# --- staff ----------------------------------------------------------------

def test_staff_register_and_deactivate(clinic):
    _tid, api = clinic
    r = api["admin"].post("/v1/staff", {"name": "Dr Who", "role": "veterinarian",
                                        "email": "who@example.org", "license_number": "V-1"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.headers["Location"] == f"/v1/staff/{sid}"
    r = api["admin"].post(f"/v1/staff/{sid}/deactivate", {"reason": "left"})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = api["admin"].post(f"/v1/staff/{sid}/deactivate", {})
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"
    r = api["admin"].post("/v1/staff", {"name": "X", "role": "wizard"})
    assert r.status_code == 400
    r = api["admin"].post(f"/v1/staff/{uuid.uuid4()}/deactivate", {})
    assert r.status_code == 404


# --- clients -----------------------------------------------------------------

def test_client_lifecycle_and_if_match(clinic):
    _tid, api = clinic
    cid = new_client(api, email="ann@example.org")
    r = api["reception"].call("PATCH", f"/v1/clients/{cid}", {"phone": "+44 1234"},
                              headers={"If-Match": '"7"'})
    assert r.status_code == 412 and error_code(r) == "VERSION_MISMATCH"
    r = api["reception"].call("PATCH", f"/v1/clients/{cid}", {"phone": "+44 1234"},
                              headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.headers["ETag"] == '"2"'
    r = api["reception"].call("PATCH", f"/v1/clients/{cid}", {})
    assert r.status_code == 400
    r = api["reception"].call("PATCH", f"/v1/clients/{cid}", {"phone": 5},
                              headers={"If-Match": "abc"})
    assert {d["field"] for d in r.json()["error"]["details"]} == {"phone", "If-Match"}
    r = api["admin"].post(f"/v1/clients/{cid}/deactivate", {"reason": "moved"})
    assert r.status_code == 200 and r.json()["version"] == 3
    r = api["reception"].call("PATCH", f"/v1/clients/{cid}", {"phone": "1"})
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"
    r = api["vet"].post("/v1/patients", {"client_id": cid, "name": "Rex", "species": "canine",
                                         "sex": "male"})
    assert r.status_code == 409  # an inactive client gets no new patient


def test_shape_validation_reports_every_bad_field(clinic):
    _tid, api = clinic
    r = api["vet"].post("/v1/patients", {"client_id": "nope", "name": 5, "species": "dragon",
                                         "sex": "?", "microchip": "12", "date_of_birth": "2999-01-01",
                                         "weight": {"value": -1, "unit": "st"}, "extra": True})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    fields = {d["field"] for d in err["details"]}
    assert fields == {"client_id", "name", "species", "sex", "microchip", "date_of_birth",
                      "weight.value", "weight.unit", "extra"}


def test_http_level_refusals(clinic, writer):
    _tid, api = clinic
    r = api["admin"].post("/v1/clients", raw="{not json",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "VALIDATION_ERROR"
    r = api["admin"].post("/v1/clients", raw="first_name=A", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and error_code(r) == "UNSUPPORTED_MEDIA_TYPE"
    big = json.dumps({"first_name": "A", "last_name": "B", "address": "x" * 70000})
    r = api["admin"].post("/v1/clients", raw=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "PAYLOAD_TOO_LARGE"
    r = api["admin"].call("GET", "/v1/clients")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    r = api["admin"].post("/v1/no-such-command", {})
    assert r.status_code == 404


# --- patients -------------------------------------------------------------------

def test_patient_commands_happy_path(clinic):
    _tid, api = clinic
    cid = new_client(api)
    other = new_client(api, first_name="Bo")
    pid = new_patient(api, cid, microchip="985112345678901", date_of_birth="2020-05-01",
                      weight={"value": 22, "unit": "lb"}, neutered=True, breed="Collie")
    v = 1
    for path, body, role in [
        ("weights", {"value": 10.2, "unit": "kg", "measured_at": "2026-01-02T10:00:00+01:00"}, "nurse"),
        ("allergies", {"allergen": "penicillin", "reaction": "hives", "severity": "moderate"}, "vet"),
        ("conditions", {"name": "arthritis", "diagnosed_on": "2025-03-01", "notes": "mild"}, "vet"),
        ("transfer", {"client_id": other}, "reception"),
        ("deceased", {"date": "2026-01-03"}, "vet"),
    ]:
        r = api[role].post(f"/v1/patients/{pid}/{path}", body)
        v += 1
        assert r.status_code == 200, (path, r.text)
        assert r.json()["version"] == v
    r = api["nurse"].post(f"/v1/patients/{pid}/weights", {"value": 1, "unit": "kg"})
    assert r.status_code == 409 and error_code(r) == "PATIENT_INACTIVE"
    # a deceased patient's microchip can be given to a living one
    new_patient(api, cid, microchip="985112345678901")


def test_patient_refusals(stack, writer, clinic):
    tid, api = clinic
    cid = new_client(api)
    new_patient(api, cid, microchip="avid12345")
    r = api["vet"].post("/v1/patients", {"client_id": cid, "name": "B", "species": "feline",
                                         "sex": "female", "microchip": "AVID12345"})
    assert r.status_code == 409 and error_code(r) == "DUPLICATE_MICROCHIP"
    r = api["vet"].post("/v1/patients", {"client_id": str(uuid.uuid4()), "name": "B",
                                         "species": "feline", "sex": "female"})
    assert r.status_code == 404
    pid = new_patient(api, cid)
    r = api["reception"].post(f"/v1/patients/{pid}/transfer", {"client_id": cid})
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"
    r = api["nurse"].post(f"/v1/patients/{pid}/conditions", {"name": "x"})
    assert r.status_code == 403  # conditions are for vets
    r = api["nurse"].post(f"/v1/patients/{pid}/weights", {"value": 0, "unit": "g"})
    assert r.status_code == 400
    r = api["nurse"].post(f"/v1/patients/not-a-uuid/weights", {"value": 1, "unit": "g"})
    assert r.status_code == 404
    # another tenant's patient is 404, not 403
    other = provision(stack, writer.url)
    stranger = Client(writer.url, stack.token("vet", tenant=other))
    r = stranger.post(f"/v1/patients/{pid}/allergies", {"allergen": "x"})
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


def test_sql_looking_input_is_stored_verbatim(stack, clinic):
    _tid, api = clinic
    evil = "Robert'); DROP TABLE read.clients; --"
    cid = new_client(api, last_name=evil)
    stored = [e for e in log_events(stack.brokers) if e["aggregate_id"] == cid]
    # sealed in the log (docs/privacy.md); the projector opens it verbatim
    assert stored[0]["v"] == 3 and set(stored[0]["data"]["sealed"]) == {"n", "c"}
    assert evil not in json.dumps(stored[0])
    projector = stack.start_daemon("projector", port=free_port())
    try:
        projector.wait_ready(90)  # migrated

        def row():
            return readmodel.query(stack, "SELECT last_name FROM read.clients WHERE id = %s",
                                   (cid,))
        wait_for(row, timeout=60, what="the client's row")
        assert row() == [(evil,)]
    finally:
        projector.terminate()


# --- idempotency -------------------------------------------------------------------

def count_commands(stack, command_id):
    return sum(1 for e in log_events(stack.brokers) if e["command_id"] == command_id)


def test_idempotent_replay_and_key_reuse(stack, clinic):
    _tid, api = clinic
    key = f"key-{uuid.uuid4()}"
    body = {"first_name": "Idem", "last_name": "Potent"}
    first = api["reception"].post("/v1/clients", body, headers={"Idempotency-Key": key})
    again = api["reception"].post("/v1/clients", body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert count_commands(stack, key) == 1
    other = api["reception"].post("/v1/clients", {"first_name": "X", "last_name": "Y"},
                                  headers={"Idempotency-Key": key})
    assert other.status_code == 409 and error_code(other) == "IDEMPOTENCY_KEY_REUSED"
    r = api["reception"].post("/v1/clients", body, headers={"Idempotency-Key": "k" * 256})
    assert r.status_code == 400


def test_vetctl_events_tail_filters_by_tenant_and_aggregate(stack, clinic):
    tid, api = clinic
    cid = new_client(api, first_name="Tail")
    api["reception"].call("PATCH", f"/v1/clients/{cid}", {"email": "t@example.org"})
    out = stack.vetctl("events", "tail", "--aggregate", cid).stdout.splitlines()
    got = [json.loads(line) for line in out]
    assert [e["type"] for e in got] == ["ClientRegistered", "ClientContactUpdated"]
    assert [e["seq"] for e in got] == [1, 2]
    mine = [json.loads(line) for line in stack.vetctl("events", "tail", "--tenant", tid).stdout.splitlines()]
    assert mine and all(e["tenant_id"] == tid for e in mine)
    assert {e["aggregate_id"] for e in got} <= {e["aggregate_id"] for e in mine}


# --- durability, restarts, fencing ------------------------------------------------
# These start writers with the module writer's instance id, which fences it:
# keep them after every test that sends commands through `writer`.

def test_kill9_keeps_microchips_and_idempotency_keys(stack):
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    tid = provision(stack, w.url)
    api = {r: Client(w.url, stack.token(r, tenant=tid)) for r in ("reception", "vet")}
    cid = new_client(api)
    new_patient(api, cid, microchip="941000012345678")
    key = f"crash-{uuid.uuid4()}"
    first = api["reception"].post("/v1/clients", {"first_name": "K", "last_name": "Ey"},
                                  headers={"Idempotency-Key": key})
    assert first.status_code == 201
    w.kill9()
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    w2.wait_ready(90)
    api = {r: Client(w2.url, stack.token(r, tenant=tid)) for r in ("reception", "vet")}
    r = api["vet"].post("/v1/patients", {"client_id": cid, "name": "Dup", "species": "canine",
                                         "sex": "male", "microchip": "941000012345678"})
    assert r.status_code == 409 and error_code(r) == "DUPLICATE_MICROCHIP"
    again = api["reception"].post("/v1/clients", {"first_name": "K", "last_name": "Ey"},
                                  headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert w2.terminate() == 0


def keyed_tenant_id(sub, key, owned):
    """The tenant id a ProvisionTenant with this key and no `id` gets: a UUIDv8
    of blake2b-128 over the length-prefixed domain, sub and key and the
    big-endian attempt, for the first attempt whose partition owned() accepts
    (as decide_tenant.c computes it)."""
    for attempt in range(1000):
        h = hashlib.blake2b(digest_size=16)
        for part in (b"vetpms:ProvisionTenant:id:v1", sub.encode(), key.encode()):
            h.update(len(part).to_bytes(4, "big") + part)
        h.update(attempt.to_bytes(4, "big"))
        b = bytearray(h.digest())
        b[6] = 0x80 | (b[6] & 0x0F)
        b[8] = 0x80 | (b[8] & 0x3F)
        tid = str(uuid.UUID(bytes=bytes(b)))
        if owned(tid):
            return tid, attempt
    raise AssertionError("no owned id in 1000 attempts")


def test_provision_with_a_key_and_no_id_is_idempotent_also_across_kill9(stack):
    """ProvisionTenant with an Idempotency-Key (or a body command_id) and no `id`
    names the tenant derived from the caller's sub and the key: a retry lands
    on the same tenant and replays (one TenantProvisioned), the key with
    another body is 409, another platform admin's same key is another tenant,
    and a writer restarted after kill -9 still replays."""
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    sub, sub2 = f"pa-{uuid.uuid4()}", f"pa-{uuid.uuid4()}"
    key = f"provision-{uuid.uuid4()}"
    body = {"name": "Keyed Vets", "timezone": "Europe/Paris", "currency": "EUR"}
    keyed = {"Idempotency-Key": key}
    pa = Client(w.url, stack.token("platform-admin", sub=sub))
    first = pa.post("/v1/tenants", body, headers=keyed)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    tid = first.json()["id"]
    WRITER_TENANTS.add(tid)
    again = pa.post("/v1/tenants", body, headers=keyed)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert tid == keyed_tenant_id(sub, key, lambda t: True)[0]
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/tenants/{tid}"
    other = pa.post("/v1/tenants", dict(body, name="Other Vets"), headers=keyed)
    assert other.status_code == 409 and error_code(other) == "IDEMPOTENCY_KEY_REUSED"
    # keys are the caller's: another platform admin's same key is another tenant
    theirs = Client(w.url, stack.token("platform-admin", sub=sub2)).post(
        "/v1/tenants", body, headers=keyed)
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    WRITER_TENANTS.add(theirs.json()["id"])
    assert theirs.json()["id"] != tid
    # the body's command_id is a client key too
    by_body = dict(body, command_id=f"provision-body-{uuid.uuid4()}")
    b1, b2 = pa.post("/v1/tenants", by_body), pa.post("/v1/tenants", by_body)
    assert b1.status_code == b2.status_code == 201
    WRITER_TENANTS.add(b1.json()["id"])
    assert b2.headers.get("Idempotent-Replayed") == "true" and b2.json() == b1.json()

    w.kill9()
    w2 = stack.start_daemon("cmd-writer", port=free_port())
    w2.wait_ready(90)
    pa = Client(w2.url, stack.token("platform-admin", sub=sub))
    after = pa.post("/v1/tenants", body, headers=keyed)
    assert after.status_code == 201 and after.headers.get("Idempotent-Replayed") == "true"
    assert after.json() == first.json()
    other = pa.post("/v1/tenants", dict(body, name="Other Vets"), headers=keyed)
    assert other.status_code == 409 and error_code(other) == "IDEMPOTENCY_KEY_REUSED"
    b3 = pa.post("/v1/tenants", by_body)
    assert b3.headers.get("Idempotent-Replayed") == "true" and b3.json() == b1.json()

    logged = log_events(stack.brokers)
    mine = [e for e in logged if e["tenant_id"] == tid]
    assert [(e["type"], e["command_id"]) for e in mine] == [("TenantProvisioned", key)]
    assert sorted(e["tenant_id"] for e in logged if e["command_id"] == key) == \
        sorted([tid, theirs.json()["id"]])
    assert sum(1 for e in logged if e["command_id"] == by_body["command_id"]) == 1
    assert w2.terminate() == 0


def test_second_writer_with_same_instance_fences_the_first(stack):
    first = stack.start_daemon("cmd-writer", port=free_port())
    first.wait_ready(90)
    tid = provision(stack, first.url)
    api1 = Client(first.url, stack.token("reception", tenant=tid))
    assert api1.post("/v1/clients", {"first_name": "Before", "last_name": "Fence"}).status_code == 201
    second = stack.start_daemon("cmd-writer", port=free_port())
    second.wait_ready(90)
    key = f"fence-{uuid.uuid4()}"
    r = api1.post("/v1/clients", {"first_name": "Zombie", "last_name": "Write"},
                  headers={"Idempotency-Key": key})
    assert r.status_code == 503  # the zombie cannot append
    assert first.proc.wait(30) == 3  # and stops
    api2 = Client(second.url, stack.token("reception", tenant=tid))
    r = api2.post("/v1/clients", {"first_name": "Zombie", "last_name": "Write"},
                  headers={"Idempotency-Key": key})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert count_commands(stack, key) == 1
    assert second.terminate() == 0


def test_ownership_misdirected_and_owned_tenant_ids(stack):
    w = stack.start_daemon("cmd-writer", port=free_port(),
                           args=["--instance", "1", "--instances", "2"])
    w.wait_ready(90)
    pa = Client(w.url, stack.token("platform-admin"))
    from_kafka = __import__("kafka_partition").partition
    for _ in range(5):
        r = pa.post("/v1/tenants", {"name": "Odd", "timezone": "UTC", "currency": "EUR"})
        assert r.status_code == 201
        assert from_kafka(r.json()["id"], stack.partitions) % 2 == 1
    foreign = next(t for t in (str(uuid.uuid4()) for _ in range(100))
                   if from_kafka(t, stack.partitions) % 2 == 0)
    r = pa.post("/v1/tenants", {"id": foreign, "name": "Even", "timezone": "UTC", "currency": "EUR"})
    assert r.status_code == 421 and error_code(r) == "MISDIRECTED"
    # with a key and no id: the first owned id of hash(sub, key, attempt), also
    # when attempt 0 hashes to a partition of the other instance
    owned = lambda t: from_kafka(t, stack.partitions) % 2 == 1  # noqa: E731
    key = next(k for k in (f"odd-{uuid.uuid4()}" for _ in range(100))
               if keyed_tenant_id("e2e-user", k, owned)[1] > 0)
    body = {"name": "Odd Keyed", "timezone": "UTC", "currency": "EUR"}
    first = pa.post("/v1/tenants", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    again = pa.post("/v1/tenants", body, headers={"Idempotency-Key": key})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert first.json()["id"] == keyed_tenant_id("e2e-user", key, owned)[0]
    assert w.terminate() == 0


def unkeyed(api, pa):
    """Commands without a client key: a client, its contact update, a tenant."""
    r = api.post("/v1/clients", {"first_name": "No", "last_name": "Key"})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    r = api.call("PATCH", f"/v1/clients/{r.json()['id']}", {"email": "nokey@example.org"})
    assert r.status_code == 200
    r = pa.post("/v1/tenants", {"name": "No Key Vets", "timezone": "UTC", "currency": "EUR"})
    assert r.status_code == 201
    WRITER_TENANTS.add(r.json()["id"])


def test_idempotency_keys_expire_after_the_window_also_across_kill9(stack, writer):
    """A key replays inside VETPMS_IDEMPOTENCY_WINDOW_S of its command's event
    time and is a new command after it; a writer restarted after kill -9
    rebuilds exactly the keys still inside the window, judged by each event's
    own time (not by when the log was read). Only client keys are remembered:
    commands without one do not raise vetpms_writer_idempotency_keys, before
    or after the restart; a record without the command-id-origin header
    (written before it existed) is remembered as before."""
    # The window must outlast a writer restart (kill -9, init_transactions,
    # rebuild of the whole log): scaled from how long this module's writer
    # took to become ready, so a slow machine gets a longer window, not a
    # flaky test.
    window = max(8, math.ceil(4 * writer.ready_seconds))
    env = {"VETPMS_IDEMPOTENCY_WINDOW_S": str(window)}
    w = stack.start_daemon("cmd-writer", port=free_port(), env=env)
    w.wait_ready(90)
    pa = Client(w.url, stack.token("platform-admin"))
    tenant_body = {"name": "Window Vets", "timezone": "UTC", "currency": "EUR"}
    key_t = f"window-tenant-{uuid.uuid4()}"
    t1 = pa.post("/v1/tenants", tenant_body, headers={"Idempotency-Key": key_t})
    assert t1.status_code == 201
    tid = t1.json()["id"]
    WRITER_TENANTS.add(tid)
    api = Client(w.url, stack.token("reception", tenant=tid))

    def post(key, first_name):
        return api.post("/v1/clients", {"first_name": first_name, "last_name": "Window"},
                        headers={"Idempotency-Key": key})

    key_a, key_b, key_c = (f"window-{k}-{uuid.uuid4()}" for k in "abc")
    # inside the window: replayed, one event
    a1 = post(key_a, "A")
    assert a1.status_code == 201 and "Idempotent-Replayed" not in a1.headers
    again = post(key_a, "A")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == a1.json()
    assert count_commands(stack, key_a) == 1
    c1 = post(key_c, "C")
    assert c1.status_code == 201
    last_answer = time.time()  # every event so far has `at` <= this
    keys = w.metric("vetpms_writer_idempotency_keys")
    assert keys >= 3  # key_t, A, C (and older ones of earlier tests)
    # commands without a key are not remembered (older keys may expire meanwhile)
    unkeyed(api, pa)
    assert w.metric("vetpms_writer_idempotency_keys") <= keys

    # after the window: the same key is a new command
    time.sleep(max(0.0, last_answer + window + 1 - time.time()))
    a_sent = time.time()
    a2 = post(key_a, "A")
    assert a2.status_code == 201 and "Idempotent-Replayed" not in a2.headers
    assert a2.json()["id"] != a1.json()["id"]
    assert count_commands(stack, key_a) == 2
    again = post(key_a, "A")
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == a2.json()
    b1 = post(key_b, "B")
    assert b1.status_code == 201
    # a keyed ProvisionTenant without id names the tenant its key derives: once
    # the key is forgotten that tenant exists, so the retry is refused, never a
    # second tenant
    t2 = pa.post("/v1/tenants", tenant_body, headers={"Idempotency-Key": key_t})
    assert t2.status_code == 409 and error_code(t2) == "ALREADY_EXISTS"
    # inside the window at the restart: commands without a key (not remembered)
    # and a record as written before the command-id-origin header (remembered)
    unkeyed(api, pa)
    key_old = f"window-old-{uuid.uuid4()}"
    old_record = client_registered(tid, str(uuid.uuid4()), first="Old", last="Record")
    old_record["command_id"] = key_old
    producer = EventProducer(stack.brokers)
    producer.send(old_record, headers=[("type", "ClientRegistered"), ("v", "1"),
                                       ("command-hash", "0" * 64)])
    producer.flush()
    producer.close()

    # kill -9 and restart: A (second command) and B are inside the window, C
    # and everything before the sleep are outside it
    w.kill9()
    w2 = stack.start_daemon("cmd-writer", port=free_port(), env=env)
    w2.wait_ready(90)
    api = Client(w2.url, stack.token("reception", tenant=tid))
    a3, b2 = post(key_a, "A"), post(key_b, "B")
    took = time.time() - a_sent
    assert took < window, (f"the restart took {took:.1f}s, not less than the {window}s window: "
                           "the replays below cannot be tested on a machine this slow")
    # A's second command, B and the old record: not the commands without a key
    assert w2.metric("vetpms_writer_idempotency_keys") == 3
    unkeyed(api, Client(w2.url, stack.token("platform-admin")))
    assert w2.metric("vetpms_writer_idempotency_keys") == 3
    assert a3.status_code == 201 and a3.headers.get("Idempotent-Replayed") == "true"
    assert a3.json() == a2.json()  # the later command of a reused key
    assert b2.status_code == 201 and b2.headers.get("Idempotent-Replayed") == "true"
    assert b2.json() == b1.json()
    c2 = post(key_c, "C")
    assert c2.status_code == 201 and "Idempotent-Replayed" not in c2.headers
    assert c2.json()["id"] != c1.json()["id"]
    old_again = post(key_old, "Old")  # the old record's key, another request hash
    assert old_again.status_code == 409 and error_code(old_again) == "IDEMPOTENCY_KEY_REUSED"
    assert [count_commands(stack, k) for k in (key_a, key_b, key_c, key_t, key_old)] == \
        [2, 1, 2, 1, 1]
    assert w2.terminate() == 0


# --- the log itself ------------------------------------------------------------------

def test_every_event_in_the_log_matches_its_json_schema(stack, clinic):
    schemas = {}
    seen = collections.Counter()
    for e in log_events(stack.brokers):
        if e.get("tenant_id") not in WRITER_TENANTS:
            continue  # synthetic events of the projector tests
        path = os.path.join(ROOT, "schema", "events", f"{e['type']}.v{e['v']}.json")
        if path not in schemas:
            with open(path) as f:
                schemas[path] = json.load(f)
        jsonschema.validate(e, schemas[path])
        seen[e["type"]] += 1
    expected = {"TenantProvisioned", "StaffRegistered", "StaffDeactivated", "ClientRegistered",
                "ClientContactUpdated", "ClientDeactivated", "PatientRegistered",
                "WeightRecorded", "AllergyAdded", "ChronicConditionAdded",
                "PatientTransferred", "PatientDied"}
    assert expected <= set(seen), seen

