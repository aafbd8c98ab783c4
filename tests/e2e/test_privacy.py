"""Personal data sealed in the log (issue 18, docs/privacy.md), on the real
stack: a client's name, email, phone and address never reach the events
topic in clear, only sealed under the client's data key, whose wrapped form
commits in the keys topic in the same transaction as the event; the read
model and the reader hold the plain text (search still finds it); a tampered
sealed field is a dead letter, never a row; a whole-log rebuild opens the
same fields again (after the master key's rotation, last); an erasure leaves
no erased value anywhere; analysts see no personal field; v1 plaintext
events still project; a daemon given the wrong master key, or none, refuses
to start and says why; an aborted transaction leaves neither the event nor
the key."""

import contextlib
import hashlib
import json
import os
import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

import events
import kafka_log
import kafka_partition
import readmodel
from stack import free_port, new_master_key, running_stack, wait_for

KEYS_TOPIC = "vetpms.keys"
ADA = {"first_name": "Adaline", "last_name": "Quixwortel", "email": "Ada.Q@Example-Privacy.org",
       "phone": "+44 20 7946 0718", "address": "12 Crooked Lane, Zorbington"}
PLAIN = [ADA["first_name"], ADA["last_name"], "Example-Privacy", "example-privacy",
         "7946 0718", "Crooked Lane", "Zorbington"]


def read_keys(brokers, timeout=60, where=None):
    """Every committed record of the keys topic as (key, value) in order;
    where: a dict that gets each key's partitions."""
    records = kafka_log.read_records(brokers, KEYS_TOPIC, timeout=timeout)
    for r in records if where is not None else ():
        where.setdefault(r.key.decode(), set()).add(r.partition)
    return [(r.key.decode(), r.value) for r in records]


def raw_log(brokers, topic=kafka_log.TOPIC):
    return b"\n".join(v for (_p, _o, _h, v) in kafka_log.read_all(brokers, topic=topic) if v)


class Clinic:
    def __init__(self, stack, writer, reader, projector):
        self.stack, self.writer, self.reader, self.projector = stack, writer, reader, projector
        self.tenant = stack.provision(writer, "Privacy Vets", "Europe/Paris", "EUR")
        self.auth = {"Authorization": "Bearer " + stack.token(["admin", "vet"], tenant=self.tenant)}

    def post(self, path, body, method="POST"):
        r = requests.request(method, self.writer.url + path, json=body, headers=self.auth,
                             timeout=30)
        assert r.status_code in (200, 201), r.text + "\n".join(self.writer.log_lines()[-30:])
        return r.json(), r.headers.get("X-Consistency-Token")

    def get(self, path, token=None, **params):
        if token:
            params["consistent_with"] = token
        r = requests.get(self.reader.url + path, params=params, headers=self.auth, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def clinic():
    broker = {"VETPMS_KAFKA_EXTRA_CONFIG":
              "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
              # a forged event without a key waits this long, not 10 s
              "VETPMS_PROJECTOR_KEY_WAIT_MS": "2000"}
    with running_stack(env=broker) as stack:
        projector, reader, writer = stack.start_all()
        yield Clinic(stack, writer, reader, projector)


@pytest.fixture(scope="module")
def ada(clinic):
    body, token = clinic.post("/v1/clients", ADA)
    got = clinic.get("/v1/clients/" + body["id"], token)
    return body["id"], got


def test_personal_fields_are_sealed_in_the_log_and_plain_in_the_read_model(clinic, ada):
    client_id, got = ada
    for field in ("first_name", "last_name", "email", "phone", "address"):
        assert got[field] == ADA[field]
    log = raw_log(clinic.stack.brokers)
    for text in PLAIN:
        assert text.encode() not in log, f"{text!r} is in the events topic in clear"
    mine = [e for e in kafka_log.events(clinic.stack.brokers) if e["aggregate_id"] == client_id]
    assert [(e["type"], e["v"]) for e in mine] == [("ClientRegistered", 3)]
    data = mine[0]["data"]
    # v3: the personal members sealed together, one nonce and one ciphertext
    assert set(data["sealed"]) == {"n", "c"}
    assert re.fullmatch("[0-9a-f]{64}", data["email_bidx"])
    # the keys: the tenant's (under the master key) and the client's, no plain text
    where = {}
    keys = dict(read_keys(clinic.stack.brokers, where=where))
    # all on the tenant's partition, the events' one: a batch of new clients
    # adds one partition of the keys topic to its transaction
    mine = {p for k, ps in where.items() if clinic.tenant in k for p in ps}
    assert mine == {kafka_partition.partition(clinic.tenant, 6)}, where
    tenant_rec = json.loads(keys["tenant:" + clinic.tenant])
    client_rec = json.loads(keys[f"client:{clinic.tenant}:{client_id}"])
    assert tenant_rec["kind"] == "tenant" and client_rec["kind"] == "client"
    assert client_rec["key_id"] == data["key_id"]
    assert client_rec["kek_id"] == tenant_rec["key_id"]
    key_bytes = b"\n".join(keys.values())
    assert clinic.stack.master_key.encode() not in key_bytes
    for text in PLAIN:
        assert text.encode() not in key_bytes
    # the read model holds the text and the same blind index
    rows = readmodel.query(clinic.stack, "SELECT email, email_bidx, phone_bidx FROM read.clients"
                                         " WHERE id = %s", (client_id,))
    assert rows == [(ADA["email"], data["email_bidx"], data["phone_bidx"])]
    # event_log keeps the envelope as received: sealed
    envelope = readmodel.query(clinic.stack, "SELECT envelope::text FROM read.event_log WHERE "
                                             "aggregate_id = %s", (client_id,))[0][0]
    for text in PLAIN:
        assert text not in envelope


def test_search_and_contact_updates_work_on_the_opened_fields(clinic, ada):
    client_id, _ = ada
    found = clinic.get("/v1/clients", search="quixwortel")["data"]
    assert [c["id"] for c in found] == [client_id]
    found = clinic.get("/v1/clients", search="ada.q@example-privacy")["data"]
    assert [c["id"] for c in found] == [client_id]
    before = readmodel.query(clinic.stack, "SELECT email_bidx FROM read.clients WHERE id = %s",
                             (client_id,))[0][0]
    _, token = clinic.post("/v1/clients/" + client_id,
                           {"email": "ADA.Q@example-privacy.org ", "phone": None}, "PATCH")
    got = clinic.get("/v1/clients/" + client_id, token)
    assert got["email"] == "ADA.Q@example-privacy.org " and got["phone"] is None
    assert got["address"] == ADA["address"]  # absent in the update: unchanged
    rows = readmodel.query(clinic.stack, "SELECT email_bidx, phone_bidx FROM read.clients "
                                         "WHERE id = %s", (client_id,))
    # the same address in another case and spacing: the same blind index
    assert rows == [(before, None)]
    mine = [e for e in kafka_log.events(clinic.stack.brokers) if e["aggregate_id"] == client_id]
    assert [(e["type"], e["v"]) for e in mine][-1] == ("ClientContactUpdated", 3)
    assert b"ADA.Q@" not in raw_log(clinic.stack.brokers)


def test_a_tampered_sealed_field_is_a_dead_letter_not_a_row(clinic, ada):
    client_id, _ = ada
    original = [e for e in kafka_log.events(clinic.stack.brokers)
                if e["aggregate_id"] == client_id and e["type"] == "ClientRegistered"][0]
    forged = json.loads(json.dumps(original))
    forged["id"] = str(uuid.uuid4())
    text = forged["data"]["sealed"]["c"]
    forged["data"]["sealed"]["c"] = ("B" if text[3] == "A" else "A").join(
        (text[:3], text[4:]))
    p = events.EventProducer(clinic.stack.brokers, transactional_id="e2e-privacy-forger")
    p.begin()
    p.send(forged)
    p.commit()
    p.flush()
    p.close()

    def dead():
        return readmodel.query(clinic.stack, "SELECT error, payload::text FROM "
                                             "read.dead_letters WHERE aggregate_id = %s",
                               (client_id,))
    wait_for(lambda: dead(), timeout=60, what="the forged event's dead letter")
    [(error, payload)] = dead()
    assert "sealed: the sealed value does not open" in error, error
    for text in PLAIN:
        assert text not in payload and text not in error
    # the row is still the real client's, opened from the real event
    got = clinic.get("/v1/clients/" + client_id)
    assert got["last_name"] == ADA["last_name"]


def test_a_sealed_event_without_a_key_is_a_dead_letter(clinic, ada):
    """A sealed event of a client that has no key in the keys topic (forged, or
    imported without its keys): refused after the wait, never projected."""
    client_id, _ = ada
    original = [e for e in kafka_log.events(clinic.stack.brokers)
                if e["aggregate_id"] == client_id and e["type"] == "ClientRegistered"][0]
    keyless = str(uuid.uuid4())
    forged = dict(original, id=str(uuid.uuid4()), aggregate_id=keyless)
    p = events.EventProducer(clinic.stack.brokers, transactional_id="e2e-privacy-keyless")
    p.begin()
    p.send(forged)
    p.commit()
    p.flush()
    p.close()

    def dead():
        return readmodel.query(clinic.stack, "SELECT error FROM read.dead_letters WHERE "
                                             "aggregate_id = %s", (keyless,))
    wait_for(dead, timeout=60, what="the keyless event's dead letter")
    assert "no key for client" in dead()[0][0], dead()
    assert not readmodel.query(clinic.stack, "SELECT 1 FROM read.clients WHERE id = %s",
                               (keyless,))


def test_v1_plaintext_events_still_project(clinic):
    client = str(uuid.uuid4())
    p = events.EventProducer(clinic.stack.brokers, transactional_id="e2e-privacy-v1")
    p.begin()
    p.send(events.envelope("ClientRegistered", clinic.tenant, "client", client, 1,
                           {"first_name": "Old", "last_name": "Plainly", "email": None,
                            "phone": None, "address": None}))
    p.commit()
    p.flush()
    p.close()
    wait_for(lambda: readmodel.query(clinic.stack, "SELECT last_name, email_bidx FROM "
                                                   "read.clients WHERE id = %s", (client,)),
             timeout=60, what="the v1 client's row")
    assert readmodel.query(clinic.stack, "SELECT last_name, email_bidx FROM read.clients "
                                         "WHERE id = %s", (client,)) == [("Plainly", None)]


def test_analysts_see_no_personal_field(clinic, ada):
    """docs/analysts.md: counts and ids, never a name or a contact."""
    import psycopg
    with psycopg.connect(clinic.stack.dsn("analyst"), autocommit=True) as an:
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (clinic.tenant,))
        assert an.execute("SELECT count(*) FROM read.clients WHERE active").fetchone()[0] >= 1
        assert an.execute("SELECT id FROM read.clients WHERE id = %s",
                          (ada[0],)).fetchall() == [(uuid.UUID(ada[0]),)]
        for query in ("SELECT first_name FROM read.clients", "SELECT email FROM read.clients",
                      "SELECT * FROM read.clients", "SELECT search FROM read.clients",
                      "SELECT client_last_name FROM read.patients",
                      "SELECT client_first_name FROM read.appointments",
                      "SELECT client_name FROM read.appointment_dashboard"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                an.execute(query)
        # event_log: the sealed events only, never a v1 plain-text one
        rows = an.execute("SELECT v, envelope::text FROM read.event_log WHERE "
                          "aggregate = 'client'").fetchall()
    assert rows and {v for v, _ in rows} == {3}
    # every table, also one added later (the archive's children, 012): no
    # client's personal column is readable by either analyst login
    readable = readmodel.query(clinic.stack, """
        SELECT r.rolname, c.table_name, c.column_name
        FROM information_schema.columns c CROSS JOIN pg_roles r
        WHERE r.rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst')
          AND c.table_schema = 'read' AND c.table_name <> 'staff'
          AND c.column_name IN ('first_name', 'last_name', 'email', 'phone', 'address',
                                'search', 'client_first_name', 'client_last_name',
                                'client_name', 'email_bidx', 'phone_bidx')
          AND has_column_privilege(r.oid, format('read.%%I', c.table_name), c.column_name,
                                   'SELECT')""")
    assert readable == [], readable
    for _, envelope in rows:
        assert "Plainly" not in envelope and ADA["last_name"] not in envelope
    assert readmodel.query(clinic.stack, "SELECT count(*) FROM read.event_log WHERE "
                                         "aggregate = 'client' AND v = 1")[0][0] == 1


def read_model_text(stack):
    """Every row of every table of every schema the projector owns, as text."""
    tables = readmodel.query(stack, "SELECT table_schema, table_name FROM "
                                    "information_schema.tables WHERE table_type = 'BASE TABLE'"
                                    " AND table_schema NOT IN ('pg_catalog', "
                                    "'information_schema')")
    out = []
    for schema, table in tables:
        out += [r for (r,) in readmodel.query(
            stack, f'SELECT to_jsonb(x)::text FROM "{schema}"."{table}" x')]
        if table == "dead_letters":  # to_jsonb shows a bytea in hex: its text too
            out += [r for (r,) in readmodel.query(
                stack, f'SELECT encode(payload, \'escape\') FROM "{schema}".dead_letters '
                       'WHERE payload IS NOT NULL')]
    return "\n".join(out)


def test_erasure_leaves_no_personal_field_in_log_read_model_export_or_dead_letters(clinic,
                                                                                   ada):
    client_id, _ = ada
    pet, token = clinic.post("/v1/patients", {"client_id": client_id, "name": "Rexo",
                                              "species": "canine", "sex": "male"})
    # an appointment: its row and the dashboard's hold the client's name too
    vet, _ = clinic.post("/v1/staff", {"name": "Dr Privacy", "role": "veterinarian"})
    start = (datetime.now(timezone.utc) + timedelta(days=1)).replace(minute=0, second=0,
                                                                     microsecond=0)
    booked, token = clinic.post("/v1/appointments", {
        "patient_id": pet["id"], "vet_id": vet["id"], "type": "consultation",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    before_erasure = clinic.get("/v1/patients/" + pet["id"], token)
    assert ADA["last_name"] in json.dumps(before_erasure)
    dashboard = ("SELECT client_name FROM read.appointment_dashboard WHERE appointment_id = %s")
    assert readmodel.query(clinic.stack, dashboard, (booked["id"],)) == [
        (f"{ADA['first_name']} {ADA['last_name']}",)]
    at = before_erasure["updated_at"]
    url = f"{clinic.writer.url}/v1/clients/{client_id}/erase"
    r = requests.post(url, json={}, headers=clinic.auth, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR", r.text
    reception = {"Authorization": "Bearer " + clinic.stack.token("reception",
                                                                 tenant=clinic.tenant)}
    r = requests.post(url, json={"reason": "x"}, headers=reception, timeout=30)
    assert r.status_code == 403, r.text
    _, token = clinic.post(f"/v1/clients/{client_id}/erase", {"reason": "GDPR request 117"})
    r = requests.post(url, json={"reason": "again"}, headers=clinic.auth, timeout=30)
    assert r.status_code == 409 and r.json()["error"]["code"] == "INVALID_STATE", r.text
    got = clinic.get("/v1/clients/" + client_id, token)
    assert [got[f] for f in ("first_name", "last_name", "email", "phone", "address", "active")] \
        == ["erased", "client", None, None, None, False]
    assert [p["id"] for p in got["patients"]] == [pet["id"]]  # clinical records stay
    # the key's latest record is the erasure marker (compaction drops the key)
    name = f"client:{clinic.tenant}:{client_id}"
    assert [json.loads(v)["kind"] for k, v in read_keys(clinic.stack.brokers)
            if k == name][-1] == "erased"

    readmodel.run_rebuild(clinic.stack)
    transport = os.path.join(clinic.stack.dir, "transport.key")
    clinic.stack.vetctl("keys", "new-master", "--out", transport)
    exported = clinic.stack.vetctl("tenant", "export", "--tenant", clinic.tenant,
                                   "--key-file", transport).stdout  # keys too
    history = clinic.get("/v1/patients/" + pet["id"], as_of=at)
    # a history that folds the ClientErased (it scrubs the client's dead
    # letters, a table the reader may not read: the fold failed, 503)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    history_after = clinic.get("/v1/patients/" + pet["id"], as_of=now)
    places = {"events topic": raw_log(clinic.stack.brokers).decode(errors="replace"),
              "dead letter topic": raw_log(clinic.stack.brokers,
                                           "vetpms.events.dlq").decode(errors="replace"),
              "read model (every schema, dead letters included)": read_model_text(clinic.stack),
              "tenant export": exported,
              "patient as of before the erasure": json.dumps(history),
              "patient as of after the erasure": json.dumps(history_after),
              "client now": json.dumps(clinic.get("/v1/clients/" + client_id)),
              "client search": json.dumps(clinic.get("/v1/clients", search="erased client"))}
    for where, text in places.items():
        # each place really holds this client (the grep below is not vacuous)
        assert client_id in text or where.startswith("patient as of"), where
        for value in PLAIN:
            assert value.lower() not in text.lower(), f"{value!r} survives in the {where}"
    assert "Rexo" in places["read model (every schema, dead letters included)"]
    assert readmodel.query(clinic.stack, dashboard, (booked["id"],)) == [("erased client",)]
    assert "erased" in places["patient as of before the erasure"]
    assert history_after["name"] == "Rexo" and "erased" in places["patient as of after the erasure"]
    assert client_id in places["client search"]



# A client registered before sealing began: its events are v1, in clear.
OLD = {"first_name": "Wilhelmina", "last_name": "Oldplainson", "email": None, "phone": None,
       "address": None}
OLD_CONTACT = {"email": "w.oldplain@legacy-clinic.example", "phone": "+33 1 98 76 54 32",
               "address": "7 Rue Ancienne, Vieuxbourg"}
OLD_PLAIN = ["Wilhelmina", "Oldplainson", "legacy-clinic", "98 76 54 32", "Rue Ancienne",
             "Vieuxbourg"]


def test_erasing_a_client_registered_in_clear_scrubs_all_but_the_log(clinic):
    """docs/privacy.md: an erased client's v1 events read as the erased
    client's in event_log (GET /v1/events), after a rebuild and in the
    export; only the events topic keeps their fields (a log is not edited).
    A tenant of such clients only has no tenant key: its export carries the
    erasure marker without a transport key, and imported into a fresh
    deployment it leaves no erased value in the new log."""
    stack = clinic.stack
    tenant = stack.provision(clinic.writer, "Legacy Vets", "Europe/Paris", "EUR")
    auth = {"Authorization": "Bearer " + stack.token(["admin", "vet"], tenant=tenant)}
    client = str(uuid.uuid4())
    p = events.EventProducer(stack.brokers, transactional_id="e2e-privacy-v1-erase")
    p.begin()
    p.send(events.envelope("ClientRegistered", tenant, "client", client, 1, OLD))
    p.send(events.envelope("ClientContactUpdated", tenant, "client", client, 2, OLD_CONTACT))
    p.commit()
    p.flush()
    p.close()
    wait_for(lambda: readmodel.query(stack, "SELECT 1 FROM read.clients WHERE id = %s "
                                            "AND email IS NOT NULL", (client,)),
             timeout=60, what="the v1 client's contact")
    # the writer's model learns of events it did not write at its rebuild
    assert clinic.writer.terminate() == 0
    clinic.writer = stack.start_daemon("cmd-writer", port=free_port())
    clinic.writer.wait_ready(90)
    r = requests.post(f"{clinic.writer.url}/v1/clients/{client}/erase", headers=auth,
                      json={"reason": "GDPR request 118"}, timeout=30)
    assert r.status_code == 200, r.text

    def get(path, **params):
        params.setdefault("consistent_with", r.headers["X-Consistency-Token"])
        got = requests.get(clinic.reader.url + path, params=params, headers=auth, timeout=30)
        assert got.status_code == 200, got.text
        return got.json()

    got = get("/v1/clients/" + client)
    assert [got[f] for f in ("first_name", "last_name", "email", "phone", "address")] \
        == ["erased", "client", None, None, None]
    audit = get("/v1/events", aggregate_id=client)["data"]
    assert [(e["type"], e["v"]) for e in audit] == [("ClientRegistered", 1),
                                                    ("ClientContactUpdated", 1),
                                                    ("ClientErased", 1)], audit
    assert audit[1]["data"] == {"email": None, "phone": None, "address": None}, audit

    readmodel.run_rebuild(stack)
    # no tenant key (no sealed client): the marker goes without a transport key
    exported = stack.vetctl("tenant", "export", "--tenant", tenant).stdout
    bare = stack.vetctl("tenant", "export", "--tenant", tenant, "--without-keys").stdout
    lines = [json.loads(x) for x in exported.splitlines()]
    assert [x["keyrec"]["name"] for x in lines if "keyrec" in x] == \
        [f"client:{tenant}:{client}"]
    assert [e["data"] for e in lines if e.get("aggregate_id") == client][:2] == \
        [{"first_name": "erased", "last_name": "client", "email": None, "phone": None,
          "address": None}, {"email": None, "phone": None, "address": None}]
    places = {"read model (every schema, dead letters included)": read_model_text(stack),
              "tenant export": exported, "tenant export without keys": bare,
              "audit trail after the rebuild": json.dumps(get("/v1/events",
                                                              aggregate_id=client)),
              "client now": json.dumps(get("/v1/clients/" + client))}
    for where, text in places.items():
        assert client in text, where
        for value in OLD_PLAIN:
            assert value.lower() not in text.lower(), f"{value!r} survives in the {where}"
    # what erasure cannot remove: the v1 events' fields in the log itself
    assert OLD["last_name"].encode() in raw_log(stack.brokers)

    # ... unless the tenant moves to a fresh deployment
    path = os.path.join(stack.dir, "legacy.ndjson")
    with open(path, "w") as f:
        f.write(exported)
    with running_stack() as fresh:
        writer = fresh.start_daemon("cmd-writer", port=free_port())
        projector = fresh.start_daemon("projector", port=free_port())
        for d in (writer, projector):
            d.wait_ready(90)
        fresh.vetctl("tenant", "import", "--file", path, "--writer", writer.url,
                     "--token", fresh.token("platform-ops"))
        wait_for(lambda: readmodel.query(fresh, "SELECT first_name, last_name, email FROM "
                                                "read.clients WHERE id = %s", (client,))
                 == [("erased", "client", None)], timeout=60, what="the imported client")
        assert [json.loads(v)["kind"] for k, v in read_keys(fresh.brokers)
                if k == f"client:{tenant}:{client}"] == ["erased"]
        log = raw_log(fresh.brokers).decode(errors="replace")
        assert client in log
        for value in OLD_PLAIN:
            assert value.lower() not in log.lower(), f"{value!r} is in the new log"

# A v1 contact update the catalog refuses (a member it does not know): a dead
# letter holding personal fields in clear.
@contextlib.contextmanager
def clinic_of_its_own(name):
    """A stack of its own, its writer and projector running, and a tenant:
    for the tests whose records no writer of the module's stack could read
    at its start-up."""
    with running_stack() as stack:
        writer = stack.start_daemon("cmd-writer", port=free_port())
        projector = stack.start_daemon("projector", port=free_port())
        for d in (writer, projector):
            d.wait_ready(90)
        yield stack, writer, stack.provision(writer, name, "Europe/Paris", "EUR")


DEAD_CONTACT = {"email": "w.deadletter@legacy-clinic.example", "phone": "+33 1 11 22 33 44",
                "address": "9 Impasse Oubliee, Vieuxbourg", "fax": True}
DEAD_PLAIN = ["Wilhelmina", "Oldplainson", "w.deadletter", "11 22 33 44", "Impasse Oubliee"]


def test_erasure_discards_the_clients_dead_letters_without_their_payload():
    """docs/privacy.md: the erased client's dead-lettered client events lose
    their payload in dead_letters and are discarded, saying why, also after a
    rebuild; the dead-letter topic keeps its copy (a log is not edited). A
    stack of its own: the writer cannot read the refused record, so no writer
    of the module's stack could start again once it is in the log."""
    with clinic_of_its_own("Dead Letter Vets") as (stack, writer, tenant):
        client = str(uuid.uuid4())
        p = events.EventProducer(stack.brokers, transactional_id="e2e-privacy-dead-letter")
        p.begin()
        p.send(events.envelope("ClientRegistered", tenant, "client", client, 1, OLD))
        p.commit()
        wait_for(lambda: readmodel.query(stack, "SELECT 1 FROM read.clients WHERE id = %s",
                                         (client,)), timeout=60, what="the v1 client")
        assert writer.terminate() == 0  # its model learns of the client at its rebuild
        writer = stack.start_daemon("cmd-writer", port=free_port())
        writer.wait_ready(90)
        p.begin()
        p.send(events.envelope("ClientContactUpdated", tenant, "client", client, 2,
                               DEAD_CONTACT))
        p.commit()
        p.flush()
        p.close()
        row = ("SELECT status, payload IS NULL, reason, resolved_by FROM read.dead_letters "
               "WHERE aggregate_id = %s")
        wait_for(lambda: readmodel.query(stack, row, (client,)), timeout=60,
                 what="the dead letter")
        assert readmodel.query(stack, row, (client,)) == [("dead", False, None, None)]
        before = read_model_text(stack)
        for value in DEAD_PLAIN:  # the grep below is not vacuous
            assert value.lower() in before.lower(), value
        auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tenant)}
        r = requests.post(f"{writer.url}/v1/clients/{client}/erase", headers=auth,
                          json={"reason": "GDPR request 119"}, timeout=30)
        assert r.status_code == 200, r.text
        wait_for(lambda: readmodel.query(stack, row, (client,))[0][0] == "discarded",
                 timeout=60, what="the dead letter discarded")
        [(status, removed, reason, by)] = readmodel.query(stack, row, (client,))
        assert removed and by == "projector" and "erased" in reason, (removed, by, reason)
        dsn = ("--dsn", stack.dsn("projector"))
        dead = [json.loads(x) for x in stack.vetctl("deadletters", "list", "--tenant", tenant,
                                                   "--status", "all", *dsn).stdout.splitlines()]
        assert [d["status"] for d in dead] == ["discarded"], dead
        shown = json.loads(stack.vetctl("deadletters", "show", "--at", dead[0]["at"],
                                        *dsn).stdout)
        assert shown["envelope"] is None, shown
        # a whole-log rebuild dead-letters the event again, and scrubs it again
        readmodel.run_rebuild(stack)
        assert readmodel.query(stack, row, (client,))[0][:2] == ("discarded", True)
        after = read_model_text(stack)
        assert client in after
        for value in DEAD_PLAIN:
            assert value.lower() not in after.lower(), f"{value!r} survives in the read model"
        # what erasure cannot remove: the dead-letter topic's copy, made
        # before it; the rebuild (whose keyring knew of the erasure) made none
        dlq = raw_log(stack.brokers, "vetpms.events.dlq")
        assert dlq.count(DEAD_CONTACT["phone"].encode()) == 1, dlq


TORN = {"first_name": "Theodora", "last_name": "Tornpage", "email": "t.tornpage@torn-clinic.example",
        "phone": "+33 4 55 66 77 88", "address": "3 Quai Dechire, Lambeaux"}
KEPT = {"first_name": "Kasimir", "last_name": "Keptsafe", "email": "k.keptsafe@torn-clinic.example",
        "phone": "+33 4 99 88 77 66", "address": "5 Rue Gardee, Lambeaux"}


def torn(client, email):
    """A client event cut short: no JSON, so a dead letter with no type or
    aggregate, its bytes naming the client and holding a personal field."""
    return ('{"type": "ClientContactUpdated", "aggregate_id": "%s", "data": {"email": "%s"'
            % (client, email)).encode()


def mixed_case(client):
    """The id in neither lower nor upper case: every other character upper."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(client))
    assert mixed not in (client.lower(), client.upper()), client
    return mixed


def test_dead_letters_naming_an_erased_client_keep_no_payload():
    """docs/privacy.md: no dead letter keeps an erased client's fields. A
    record of the tenant that did not decode and names the client's id loses
    its payload when ClientErased is applied after it, and is recorded
    without one after it (the id in upper or mixed case too); the client's own
    client event appended after the erasure (another producer, an ops
    replay) is recorded discarded with no payload, in dead_letters and on
    the DLQ topic; a whole-log rebuild does the same, and copies none of
    the client's records to the DLQ topic again. Records whose key names no
    tenant go the same way (until stop 23 they kept their payload: no
    named_ids). Another client's dead letters keep theirs. A stack of its
    own: the writer cannot read the undecodable records."""
    with clinic_of_its_own("Torn Letter Vets") as (stack, writer, tenant):
        auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tenant)}
        ids = {}
        for name, body in (("erased", TORN), ("kept", KEPT)):
            r = requests.post(f"{writer.url}/v1/clients", json=body, headers=auth, timeout=30)
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        for client in ids.values():
            wait_for(lambda c=client: readmodel.query(
                stack, "SELECT 1 FROM read.clients WHERE id = %s", (c,)), timeout=60,
                what="the client projected")
        key = tenant.encode()
        p = events.EventProducer(stack.brokers, transactional_id="e2e-privacy-torn-letters")
        p.begin()
        p.send(raw=torn(ids["erased"], "torn.before@torn-clinic.example"), key=key)
        p.send(raw=torn(ids["erased"].upper(), "torn.upperbefore@torn-clinic.example"), key=key)
        p.send(raw=torn(mixed_case(ids["erased"]), "torn.mixedbefore@torn-clinic.example"),
               key=key)
        p.send(raw=torn(ids["kept"], "torn.kept@torn-clinic.example"), key=key)
        p.send(raw=torn(ids["erased"], "torn.nokeybefore@torn-clinic.example"), key=None)
        p.send(raw=torn(ids["kept"], "torn.nokeykept@torn-clinic.example"), key=b"no-tenant")
        p.commit()
        rows = ("SELECT \"offset\", status, payload IS NULL, reason, type FROM read.dead_letters "
                "WHERE tenant_id IS NOT NULL ORDER BY \"offset\"")
        # no tenant: on whichever partition; told apart by what they hold
        tenantless = ("SELECT status, payload IS NULL, substring(encode(payload, 'escape') "
                      "from 'torn[.][a-z]+@') FROM read.dead_letters WHERE tenant_id IS NULL "
                      "ORDER BY 3 NULLS LAST")
        wait_for(lambda: len(readmodel.query(stack, rows)) == 4 and
                 len(readmodel.query(stack, tenantless)) == 2, timeout=60,
                 what="six dead letters")
        assert [r[1:3] for r in readmodel.query(stack, rows)] == [("dead", False)] * 4
        assert readmodel.query(stack, tenantless) == [
            ("dead", False, "torn.nokeybefore@"), ("dead", False, "torn.nokeykept@")]
        r = requests.post(f"{writer.url}/v1/clients/{ids['erased']}/erase", headers=auth,
                          json={"reason": "GDPR request 207"}, timeout=30)
        assert r.status_code == 200, r.text
        wait_for(lambda: [r[1] for r in readmodel.query(stack, rows)] == [
            "discarded", "discarded", "discarded", "dead"], timeout=60,
            what="the torn records naming the client scrubbed by ClientErased")
        late = {"email": "t.late@torn-clinic.example", "phone": "+33 4 12 12 12 12",
                "fax": True}  # fax: no member of the event, so a dead letter
        p.begin()
        p.send(events.envelope("ClientContactUpdated", tenant, "client", ids["erased"], 3, late))
        p.send(raw=torn(ids["erased"], "torn.after@torn-clinic.example"), key=key)
        p.send(raw=torn(ids["erased"].upper(), "torn.upper@torn-clinic.example"), key=key)
        p.send(raw=torn(mixed_case(ids["erased"]), "torn.mixed@torn-clinic.example"), key=key)
        p.send(raw=torn(mixed_case(ids["erased"]), "torn.nokeyafter@torn-clinic.example"),
               key=b"no-tenant")
        p.send(events.envelope("ClientContactUpdated", tenant, "client", ids["kept"], 2,
                               dict(late, email="k.late@torn-clinic.example",
                                    phone="+33 4 34 34 34 34")))
        p.commit()
        p.flush()
        p.close()
        wait_for(lambda: len(readmodel.query(stack, rows)) == 9 and
                 len(readmodel.query(stack, tenantless)) == 3, timeout=60,
                 what="twelve dead letters")

        def check(when):
            got = readmodel.query(stack, rows)
            erased = [r for r in got if r[1] == "discarded"]
            assert [r[1:3] for r in got] == [("discarded", True)] * 3 + [("dead", False)] + [
                ("discarded", True)] * 4 + [("dead", False)], (when, got)
            assert all("erased" in r[3] for r in erased), (when, got)
            assert [r[4] for r in got] == [None] * 4 + ["ClientContactUpdated"] + [None] * 3 + [
                "ClientContactUpdated"], (when, got)
            assert readmodel.query(stack, tenantless) == [
                ("dead", False, "torn.nokeykept@"), ("discarded", True, None),
                ("discarded", True, None)], when
            text = read_model_text(stack).lower()
            for value in ("torn.kept@", "k.late@", "torn.nokeykept@"):  # not vacuous
                assert value in text, (when, value)
            for value in ("torn.before@", "torn.upperbefore@", "torn.mixedbefore@",
                          "torn.nokeybefore@", "torn.nokeyafter@",
                          "torn.after@", "torn.upper@", "torn.mixed@", "t.late@", "12 12 12 12"):
                assert value not in text, f"{when}: {value!r} survives in the read model"

        check("live")
        dlq = raw_log(stack.brokers, "vetpms.events.dlq")
        assert b"torn.kept@" in dlq and b"k.late@" in dlq
        # the DLQ topic keeps what was dead-lettered before the erasure (a log
        # is not edited); what came after never reaches it
        assert b"torn.before@" in dlq and b"torn.nokeybefore@" in dlq
        for value in (b"torn.after@", b"torn.upper@", b"torn.mixed@", b"t.late@",
                      b"12 12 12 12", b"torn.nokeyafter@"):
            assert value not in dlq, value
        readmodel.run_rebuild(stack)
        check("after a rebuild")
        dlq = raw_log(stack.brokers, "vetpms.events.dlq")
        for value in (b"torn.after@", b"torn.upper@", b"torn.mixed@", b"t.late@",
                      b"12 12 12 12", b"torn.nokeyafter@"):
            assert value not in dlq, f"the rebuild wrote {value!r} to the DLQ topic"
        # the rebuild copies the other client's dead letters again, and not
        # the erased client's from before the erasure (its keyring read the
        # erasure marker first)
        assert dlq.count(b"torn.kept@") == 2 and dlq.count(b"k.late@") == 2, dlq
        assert dlq.count(b"torn.nokeykept@") == 2, dlq
        for value in (b"torn.before@", b"torn.upperbefore@", b"torn.mixedbefore@",
                      b"torn.nokeybefore@"):
            assert dlq.count(value) == 1, f"the rebuild copied {value!r} to the DLQ topic again"


MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "migrations")


def test_the_named_ids_of_dead_letters_recorded_before_015_are_filled_in(clinic):
    """Migrations 015 and 016 fill named_ids of the dead letters recorded
    before them by the projector's rule (vp_uuid_scan): the UUIDs an
    undecodable payload holds, in any case, canonical, in order, the first
    32, with a tenant (015) or without one (016); none for a dead letter
    that decoded. Applied as the projector applies migrations (search_path
    on a schema of its own), after 001-014."""
    files = sorted(f for f in os.listdir(MIGRATIONS) if re.match(r"\d{3}_.*\.sql$", f))
    assert files[14].startswith("015_") and files[15].startswith("016_"), files
    ids = [str(uuid.uuid4()) for _ in range(34)]
    payloads = [  # (payload, type, tenant) -> the named_ids expected
        (torn(mixed_case(ids[0]), "a@b.example").replace(b"a@b", "\u00e9\u00e0".encode())
         + b"\xab" + ids[1].upper().encode(), None, clinic.tenant, ids[:2]),
        (b"\xfe\xff" + "".join(ids[:33]).encode(), None, clinic.tenant, ids[:32]),
        (ids[33].encode(), "ClientContactUpdated", clinic.tenant, None),
        (ids[33].upper().encode(), None, None, ids[33:]),
        (b"no id here \\ 0123abcd-", None, clinic.tenant, None),
    ]
    with psycopg.connect(clinic.stack.superuser_dsn(), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS mig015 CASCADE")
        conn.execute("CREATE SCHEMA mig015")

        def migrate(name):
            with open(os.path.join(MIGRATIONS, name)) as f, conn.transaction():
                conn.execute("SELECT set_config('search_path', 'mig015, public', true)")
                conn.execute(f.read())

        try:
            for name in files[:14]:
                migrate(name)
            for i, (payload, type_, tenant, _) in enumerate(payloads):
                conn.execute("INSERT INTO mig015.dead_letters (partition, \"offset\", tenant_id, "
                             "error, payload, type) VALUES (0, %s, %s, 'test', %s, %s)",
                             (i, tenant, payload, type_))
            migrate(files[14])
            migrate(files[15])
            got = conn.execute("SELECT named_ids FROM mig015.dead_letters "
                               "ORDER BY \"offset\"").fetchall()
        finally:
            conn.execute("DROP SCHEMA mig015 CASCADE")
    assert [r[0] and [str(u) for u in r[0]] for r in got] == [p[3] for p in payloads]


def master_file(stack, name, text):
    path = os.path.join(stack.dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def exits_saying(daemon, pattern, timeout=60):
    try:
        code = daemon.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("still running: " + "\n".join(daemon.log_lines())[-2000:])
    log = "\n".join(daemon.log_lines())
    assert code != 0 and re.search(pattern, log), log[-2000:]


HOLDS = "wrapped under master key [0-9a-f]{16}, but this daemon holds master key [0-9a-f]{16}"


def test_a_wrong_or_missing_master_key_stops_the_daemons_at_start(clinic):
    # a tenant key in the keys topic to hold the wrong master key against
    clinic.post("/v1/clients", {"first_name": "Keyed", "last_name": "Tenant"})
    wrong = master_file(clinic.stack, "wrong.key", new_master_key())
    for name in ("projector", "query-reader", "cmd-writer"):
        d = clinic.stack.start_daemon(name, port=free_port(),
                                      env={"VETPMS_MASTER_KEY_FILE": wrong})
        exits_saying(d, HOLDS)
        # the key itself is never logged
        assert open(wrong).read().strip() not in "\n".join(d.log_lines())
    # the misconfigured writer stopped before it took the transactional id:
    # the running writer (same instance) was not fenced and still commits
    client, _ = clinic.post("/v1/clients", {"first_name": "Unfenced", "last_name": "Writer"})
    assert clinic.writer.proc.poll() is None and client["id"]
    d = clinic.stack.start_daemon("projector", port=free_port(),
                                  env={"VETPMS_MASTER_KEY_FILE": ""})
    exits_saying(d, "no master key: set VETPMS_MASTER_KEY_FILE")
    loose = os.path.join(clinic.stack.dir, "loose.key")
    with open(loose, "w") as f:
        f.write(clinic.stack.master_key)
    os.chmod(loose, 0o644)
    d = clinic.stack.start_daemon("cmd-writer", port=free_port(),
                                  env={"VETPMS_MASTER_KEY_FILE": loose})
    exits_saying(d, "readable by its owner only")


MASTER_RECORD = ("master record says the deployment's keys are wrapped under master key "
                 "[0-9a-f]{16}, but this daemon holds master key [0-9a-f]{16}")


def keys_status(stack, env=None):
    """vetctl keys status as a daemon with env would hold the keys: the ids
    held, and the one the master record names."""
    e = dict(stack.env, **(env or {}))
    r = subprocess.run([os.path.join(stack.env["VETPMS_BIN_DIR"], "vetctl"), "keys", "status"],
                       env=e, text=True, capture_output=True, timeout=120, check=True)
    return json.loads(r.stdout)


def test_the_first_writer_records_its_master_key_and_another_key_is_refused_before_any_tenant():
    """docs/privacy.md, "Start-up refusal": a keys topic with no tenant key
    gave a daemon's master key nothing to be checked against, so a daemon
    with another key started, and a writer then wrapped the first tenant
    keys under its key. The deployment's first writer now records its master
    key's id in the keys topic (the master record), and any daemon holding
    another key is refused at start although no tenant key exists yet; a
    restarted writer does not record it again; `vetctl keys rotate-master`
    rewrites it, also with no tenant key to rewrap."""
    with running_stack() as stack:
        writer = stack.start_daemon("cmd-writer", port=free_port())
        writer.wait_ready(90)
        records = read_keys(stack.brokers)
        assert [k for (k, _v) in records] == ["master"], records
        record = json.loads(records[0][1])
        status = keys_status(stack)
        assert record["kind"] == "master" and record["kek_id"] == status["held"]["current"]
        assert status["master"] == record["kek_id"], status
        tenant = stack.provision(writer, "Keyless Vets", "Europe/Paris", "EUR")
        other = master_file(stack, "other.key", new_master_key())
        for name in ("projector", "query-reader", "cmd-writer"):
            d = stack.start_daemon(name, port=free_port(), env={"VETPMS_MASTER_KEY_FILE": other})
            exits_saying(d, MASTER_RECORD)
        assert [k for (k, _v) in read_keys(stack.brokers)] == ["master"]  # no tenant key
        # the refused writer did not fence the running one, which commits;
        # restarted, it finds the record and writes none
        auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tenant)}
        r = requests.post(f"{writer.url}/v1/staff", json={"name": "Una Fenced", "role": "nurse"}, headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        assert writer.terminate() == 0
        writer = stack.start_daemon("cmd-writer", port=free_port())
        writer.wait_ready(90)
        assert [k for (k, _v) in read_keys(stack.brokers)] == ["master"]
        # a rotation with no tenant key rewrites the record: the new key
        # alone starts a daemon, the old one no longer does
        new = os.path.join(stack.dir, "next.key")
        stack.vetctl("keys", "new-master", "--out", new)
        r = stack.vetctl("keys", "rotate-master", "--new-key-file", new)
        assert "rewrapped 0 tenant key(s)" in r.stderr, r.stderr
        assert "the keys topic's master record names it" in r.stderr, r.stderr
        newest = [json.loads(v) for (k, v) in read_keys(stack.brokers) if k == "master"][-1]
        status = keys_status(stack, {"VETPMS_MASTER_KEY_FILE": new})
        assert newest["kek_id"] == status["held"]["current"] == status["master"], status
        projector = stack.start_daemon("projector", port=free_port(),
                                       env={"VETPMS_MASTER_KEY_FILE": new})
        projector.wait_ready(90)
        exits_saying(stack.start_daemon("query-reader", port=free_port()), MASTER_RECORD)
        # a record under neither key: nothing is rewritten
        r = stack.vetctl("keys", "rotate-master", "--new-key-file", other, check=False)
        assert r.returncode == 1 and "the master record names master key" in r.stderr, r.stderr
        assert [k for (k, _v) in read_keys(stack.brokers)] == ["master", "master"]
        writer.terminate()


def test_a_master_key_recorded_under_another_key_stops_a_running_projector_and_reader():
    """A projector or reader started before the deployment's first writer
    had nothing to check its master key against (docs/privacy.md, "Start-up
    refusal"). When that writer, holding another key, records its key in the
    keys topic, both stop saying which key ids differ, as they would at
    start, before any client is sealed under the writer's key; the projector
    applies nothing of the tenant's clients (until stop 23 it dead-lettered
    every client event of the tenant, "no key for tenant ...")."""
    with running_stack() as stack:
        projector = stack.start_daemon("projector", port=free_port())
        reader = stack.start_daemon("query-reader", port=free_port())
        for d in (projector, reader):
            d.wait_ready(90)
        other = master_file(stack, "other.key", new_master_key())
        writer = stack.start_daemon("cmd-writer", port=free_port(),
                                    env={"VETPMS_MASTER_KEY_FILE": other})
        writer.wait_ready(90)
        for d in (projector, reader):
            exits_saying(d, MASTER_RECORD)
            assert any("cannot go on" in line for line in d.log_lines())
        tenant = stack.provision(writer, "Two Keys Vets", "Europe/Paris", "EUR")
        auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tenant)}
        r = requests.post(f"{writer.url}/v1/clients", json={"first_name": "Mismatched",
                          "last_name": "Masters"}, headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        assert not any("dead_letter" in line for line in projector.log_lines())
        assert readmodel.query(stack, "SELECT count(*) FROM read.dead_letters") == [(0,)]
        assert readmodel.query(stack, "SELECT count(*) FROM read.clients") == [(0,)]
        # restarted, it is refused at start (by the tenant key first now)
        exits_saying(stack.start_daemon("projector", port=free_port()), HOLDS)
        writer.terminate()


def plain_command_hash(path, body):
    """The command-hash header as the writer made it before stop 22: a plain
    SHA-256 of "2 " (POST), the path and its NUL, and the body as cJSON
    prints it."""
    text = json.dumps(body, separators=(",", ":"))
    return hashlib.sha256(b"2 " + path.encode() + b"\0" + text.encode()).hexdigest()


def restart_writer(clinic):
    clinic.writer.terminate()  # its exit code: it may have been fenced
    clinic.writer = clinic.stack.start_daemon("cmd-writer", port=free_port())
    clinic.writer.wait_ready(90)


def test_the_command_hash_in_the_log_is_keyed_and_a_plain_one_still_replays(clinic):
    """docs/privacy.md: the log's command-hash header was a plain SHA-256 of
    the request, so anyone holding the log could test a guess of a client's
    details (also after its erasure). It is a MAC under a key derived from
    the master key now; a retry keeps replaying (a changed body is a reused
    key), also for a command recorded with a plain hash before the change,
    read back by a restarted writer."""
    body = {"first_name": "Hashim", "last_name": "Keyedsum", "email": "h.keyed@mac.example",
            "phone": "+33 6 98 76 54 32", "address": "4 Rue du Condensat"}
    key = f"mac-{uuid.uuid4()}"
    headers = dict(clinic.auth, **{"Idempotency-Key": key})
    first = requests.post(f"{clinic.writer.url}/v1/clients", json=body, headers=headers,
                          timeout=30)
    assert first.status_code == 201, first.text
    client = first.json()["id"]
    [record] = [r for r in kafka_log.read_all(clinic.stack.brokers)
                if r[3] and client.encode() in r[3] and b"ClientRegistered" in r[3]]
    logged = record[2]["command-hash"].decode()
    assert re.fullmatch("[0-9a-f]{64}", logged) and logged != plain_command_hash(
        "/v1/clients", body), logged
    again = requests.post(f"{clinic.writer.url}/v1/clients", json=body, headers=headers,
                          timeout=30)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == client
    changed = requests.post(f"{clinic.writer.url}/v1/clients", json=dict(body, phone=None),
                            headers=headers, timeout=30)
    assert changed.status_code == 409, changed.text

    # a command the writer recorded with the plain hash, then a restart
    old_key, old_client = f"mac-old-{uuid.uuid4()}", str(uuid.uuid4())
    old_body = dict(body, email="h.old@mac.example")
    old = events.envelope("ClientRegistered", clinic.tenant, "client", old_client, 1, old_body)
    old["command_id"] = old_key
    p = events.EventProducer(clinic.stack.brokers)
    p.send(old, headers=[("type", "ClientRegistered"), ("v", "1"),
                         ("command-hash", plain_command_hash("/v1/clients", old_body))])
    p.flush()
    p.close()
    restart_writer(clinic)
    old_headers = dict(clinic.auth, **{"Idempotency-Key": old_key})
    replayed = requests.post(f"{clinic.writer.url}/v1/clients", json=old_body,
                             headers=old_headers, timeout=30)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true", replayed.text
    assert replayed.json()["id"] == old_client
    reused = requests.post(f"{clinic.writer.url}/v1/clients", json=dict(old_body, phone=None),
                           headers=old_headers, timeout=30)
    assert reused.status_code == 409, reused.text
    again = requests.post(f"{clinic.writer.url}/v1/clients", json=body, headers=headers,
                          timeout=30)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == client


def test_an_aborted_registration_leaves_neither_the_event_nor_the_key(clinic):
    """Last: the writer with the abort fault fences the module's writer."""
    assert clinic.writer.terminate() == 0
    writer = clinic.stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_KAFKA_PROPS": "transaction.timeout.ms=2000",
        "VETPMS_WRITER_FAULT_COMMIT": "abort-once"})
    writer.wait_ready(90)
    client = str(uuid.uuid4())
    r = requests.post(writer.url + "/v1/clients", json=dict(ADA, id=client),
                      headers=clinic.auth, timeout=60)
    assert r.status_code == 503, r.text
    writer.wait_ready(60)
    assert not [e for e in kafka_log.events(clinic.stack.brokers) if e["aggregate_id"] == client]
    assert not [k for (k, _v) in read_keys(clinic.stack.brokers) if k.endswith(client)]
    # the writer's model forgot the key with the event: the retry makes a new one
    r = requests.post(writer.url + "/v1/clients", json=dict(ADA, id=client),
                      headers=clinic.auth, timeout=60)
    assert r.status_code == 201, r.text
    keys = [k for (k, _v) in read_keys(clinic.stack.brokers) if k.endswith(client)]
    assert keys == [f"client:{clinic.tenant}:{client}"]
    got = clinic.get("/v1/clients/" + client, r.headers["X-Consistency-Token"])
    assert got["last_name"] == ADA["last_name"]
    assert writer.terminate() == 0


def a_failed_batch_during_the_rotation_leaves_the_projector_running(clinic, new):
    """The module's projector holds the old key alone (the older procedure:
    restarted after rotate-master), so the tenant's newest record is under
    a key it does not hold, and the key it unwrapped before still serves.
    A batch that fails then (here its PostgreSQL session is ended while it
    waits on a lock) must not stop the projector: up to stop 24 the check
    after a failed batch counted any tenant whose newest record is under
    another key (exit 1, "cannot go on"); now only a tenant with no key it
    can open (vp_keyring_keyless_tenant)."""
    stack = clinic.stack
    clinic.writer.terminate()  # an earlier test may have stopped it
    clinic.writer = stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_MASTER_KEY_FILE": new, "VETPMS_MASTER_KEY_PREVIOUS_FILE": stack.master_key_file})
    clinic.writer.wait_ready(90)
    with psycopg.connect(stack.superuser_dsn()) as locker:
        locker.execute("LOCK TABLE read.clients IN ACCESS EXCLUSIVE MODE")
        body, token = clinic.post("/v1/clients", {"first_name": "Rotating", "last_name": "Blip"})
        waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' " \
                  "AND usename = 'vetpms_projector'"
        wait_for(lambda: readmodel.query(stack, waiting), 30, what="the projector waiting on the lock")
        for (pid,) in readmodel.query(stack, waiting):
            readmodel.query(stack, "SELECT pg_terminate_backend(%s)", (pid,))
        locker.rollback()
    # the retried batch applies it (polled: the reader's consistency wait is
    # 2 s, and a loaded machine may take longer to reconnect)
    wait_for(lambda: readmodel.query(stack, "SELECT last_name FROM read.clients WHERE id = %s",
                                     (body["id"],)) == [("Blip",)], 60,
             what="the client applied after the failed batch",
             explain=lambda: "\n".join(clinic.projector.log_lines()[-20:]))
    assert clinic.get("/v1/clients/" + body["id"], token)["last_name"] == "Blip"
    assert clinic.projector.proc.poll() is None, "\n".join(clinic.projector.log_lines()[-20:])
    assert not any("cannot go on" in line for line in clinic.projector.log_lines())


def test_rotating_the_master_key_rewraps_tenant_keys_without_touching_events(clinic):
    stack = clinic.stack
    new = os.path.join(stack.dir, "next.key")
    r = stack.vetctl("keys", "new-master", "--out", new)
    assert os.stat(new).st_mode & 0o777 == 0o600 and r.stdout == ""  # never printed
    name = "tenant:" + clinic.tenant
    old_rec = [json.loads(v) for k, v in read_keys(stack.brokers) if k == name][-1]
    log_before = raw_log(stack.brokers)
    r = stack.vetctl("keys", "rotate-master", "--new-key-file", new)
    assert "rewrapped 1 tenant key(s)" in r.stderr, r.stderr
    assert raw_log(stack.brokers) == log_before  # the events are not touched
    where = {}
    new_rec = [json.loads(v) for k, v in read_keys(stack.brokers, where=where) if k == name][-1]
    # the new record follows the old one, on the tenant's partition
    assert where[name] == {kafka_partition.partition(clinic.tenant, 6)}, where[name]
    assert new_rec["key_id"] == old_rec["key_id"] and new_rec["kek_id"] != old_rec["kek_id"]
    r = stack.vetctl("keys", "rotate-master", "--new-key-file", new)
    assert "already under the new master key" in r.stderr, r.stderr
    a_failed_batch_during_the_rotation_leaves_the_projector_running(clinic, new)
    # the old key now stops a daemon at start; with the new one a whole-log
    # rebuild opens every sealed field again: the same read model, row for row
    # (the clients the abort test registered after the erasure included)
    exits_saying(stack.start_daemon("projector", port=free_port()), HOLDS)
    assert readmodel.query(stack, "SELECT count(*) FROM read.clients WHERE last_name = %s",
                           (ADA["last_name"],)) == [(1,)]
    before = readmodel.table_digests(stack, "read")
    readmodel.run_rebuild(stack, env={"VETPMS_MASTER_KEY_FILE": new})
    assert readmodel.table_digests(stack, "read") == before
    # a key under neither master key: nothing is rewritten
    other = master_file(stack, "other.key", new_master_key())
    r = stack.vetctl("keys", "rotate-master", "--new-key-file", other, check=False)
    assert r.returncode == 1 and "neither the current" in r.stderr, r.stderr
