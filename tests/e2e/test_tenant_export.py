"""vetctl tenant export (vetctl/cmd_tenant.c): a tenant's committed events in
log order, each line the envelope exactly as stored, then a trailer with the
count and the BLAKE2b-256 of the event lines (each with its newline). Another
tenant's events in the same partition and an aborted transaction's are not in
the file; a record keyed by the tenant that is not an event stops the export.

vetctl tenant import (vetctl/tenant_import.c, cmd-writer/import.c): the export
of a tenant holding a whole clinic scripted through the writer (every event
type of the catalog, clinic_script.py) goes into a second stack through the
writer's ops route; vetctl is killed mid-import and the target writer with it, the rerun resumes without duplicates, and both read
models are equal row by row for the tenant.

The tenant's keys (docs/privacy.md, "Export and import"): the export carries
the key records before the events, the tenant key rewrapped under a transport
key (--key-file); the import rewraps it under the target's own master key, so
the target opens the sealed clients (compared row by row) and the erased
client stays erased. A sealed tenant is not exported without --key-file, and
a wrong transport key appends nothing."""

import hashlib
import json
import os
import subprocess

import pytest
import requests

import events as ev
from clinic_script import ERASED_VALUES, Script, script_clinic
from kafka_partition import partition as partition_for_key  # the writer's partitioner
from readmodel import query, tenant_digests
from stack import BIN_DIR, free_port, running_stack, wait_for
from test_privacy import read_keys

# Clients of the scripted clinic beyond its one of everything (6 events each):
# enough history that the import can be killed half way.
BULK_CLIENTS = int(os.environ.get("VETPMS_IMPORT_BULK_CLIENTS", "60"))


def history(tenant, n_clients):
    envs = [ev.tenant_provisioned(tenant, "Export Vets")]
    for i in range(n_clients):
        client, patient = ev.new_id(), ev.new_id()
        envs += [ev.client_registered(tenant, client, first=f"Exp{i}"),
                 ev.patient_registered(tenant, patient, client, name=f"Pet{i}"),
                 ev.weight_recorded(tenant, patient, 2, 9000 + i, "2026-01-01T10:00:00Z")]
    return envs


def same_partition_tenant(stack, tenant):
    """Another tenant id whose records land in tenant's partition."""
    want = partition_for_key(tenant, stack.partitions)
    while True:
        other = ev.new_id()
        if partition_for_key(other, stack.partitions) == want:
            return other


def export(stack, tenant, *args, check=True):
    return stack.vetctl("tenant", "export", "--tenant", tenant, *args, check=check)


def new_key_file(stack, path):
    """A transport key (the master-key format, mode 0600) made by vetctl."""
    stack.vetctl("keys", "new-master", "--out", str(path))
    return str(path)


def read_model_text(stack):
    """Every row of every table of the read model, as text."""
    tables = query(stack, "SELECT table_schema, table_name FROM information_schema.tables "
                          "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                          "('pg_catalog', 'information_schema')")
    return "\n".join(r for schema, table in tables for (r,) in query(
        stack, f'SELECT to_jsonb(x)::text FROM "{schema}"."{table}" x'))


def test_export_writes_the_tenants_committed_events_in_log_order_with_a_digest(stack):
    tenant = ev.new_id()
    other = same_partition_tenant(stack, tenant)
    mine, theirs = history(tenant, 40), history(other, 40)
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-export-{tenant}")
    try:
        # interleaved with the other tenant, in several transactions
        for i in range(0, len(mine), 20):
            producer.begin()
            for a, b in zip(mine[i:i + 20], theirs[i:i + 20]):
                producer.send(a)
                producer.send(b)
            producer.commit()
        # an aborted transaction of the tenant is not part of its history
        producer.begin()
        producer.send(ev.client_registered(tenant, ev.new_id(), first="Aborted"))
        producer.flush()  # in the log, then aborted
        producer.abort()
    finally:
        producer.close()

    r = export(stack, tenant.upper())  # any spelling names the tenant
    lines = r.stdout.splitlines(keepends=True)
    body, trailer = lines[:-1], json.loads(lines[-1])
    assert [json.loads(ln) for ln in body] == mine
    assert body == [json.dumps(e) + "\n" for e in mine]  # the bytes as stored
    digest = hashlib.blake2b("".join(body).encode(), digest_size=32).hexdigest()
    assert trailer == {"trailer": {"count": len(mine), "blake2b": digest}}
    assert "export:" in r.stderr and "/s" in r.stderr and "offset" in r.stderr  # progress

    # a tenant without events: only the trailer, the digest of nothing
    empty = export(stack, ev.new_id()).stdout
    assert json.loads(empty) == {"trailer": {"count": 0, "blake2b":
                                             hashlib.blake2b(b"", digest_size=32).hexdigest()}}
    assert export(stack, "not-a-uuid", check=False).returncode == 2


def test_export_stops_at_a_record_of_the_tenant_that_is_not_an_event(stack):
    tenant = ev.new_id()
    producer = ev.EventProducer(stack.brokers)
    try:
        producer.send(ev.tenant_provisioned(tenant))
        producer.send(raw=b"{not json", key=tenant)
        producer.flush()
    finally:
        producer.close()
    r = export(stack, tenant, check=False)
    assert r.returncode == 1
    assert "not an event" in r.stderr
    assert "trailer" not in r.stdout  # an incomplete file never looks complete


# --- import into a second deployment ---------------------------------------

def caught_up(stack, projector):
    """Waits until the projector has read every partition up to now: a marker
    tenant provisioned in each partition, all of them applied (a partition is
    applied in order, so what came before each marker is applied or dead-lettered)."""
    markers = {}
    while len(markers) < stack.partitions:
        tenant = ev.new_id()
        markers.setdefault(partition_for_key(tenant, stack.partitions), tenant)
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-import-{ev.new_id()}")
    try:
        producer.send_all([ev.tenant_provisioned(t, "Marker") for t in markers.values()])
    finally:
        producer.close()
    wait_for(lambda: query(stack, "SELECT count(*) FROM read.tenants WHERE id = ANY(%s::uuid[])",
                           (list(markers.values()),))[0][0] == len(markers),
             timeout=120, what="the projector to reach the end of the log",
             explain=lambda: projector.log_tail(10))


@pytest.fixture(scope="module")
def source(stack):
    """The session stack with a writer and a projector, and a tenant holding a
    whole clinic scripted through the writer (clinic_script.py): every command,
    so every event type of the catalog."""
    projector = stack.start_daemon("projector", port=free_port())
    writer = stack.start_daemon("cmd-writer", port=free_port())
    for d in (projector, writer):
        d.wait_ready(90)
    tenant = script_clinic(stack, writer.url, bulk=BULK_CLIENTS)
    caught_up(stack, projector)
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s", (tenant,))
    yield writer, tenant
    writer.terminate()
    projector.terminate()


@pytest.fixture(scope="module")
def target():
    with running_stack() as s:
        projector = s.start_daemon("projector", port=free_port())
        writer = s.start_daemon("cmd-writer", port=free_port())
        for d in (projector, writer):
            d.wait_ready(90)
        yield s, projector, writer


def start_import(stack, writer, path, *args):
    return subprocess.Popen([os.path.join(BIN_DIR, "vetctl"), "tenant", "import", "--file", path,
                             "--writer", writer.url, "--token", stack.token("platform-ops"),
                             *args], env=stack.env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def import_file(stack, writer, path, *args):
    p = start_import(stack, writer, path, *args)
    out, err = p.communicate(timeout=300)
    return p.returncode, err


def logged(stack, tenant):
    return query(stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s", (tenant,))[0][0]


def test_a_sealed_tenant_is_not_exported_without_a_key_file(stack, source, tmp_path):
    _, tenant = source
    r = export(stack, tenant, check=False)
    assert r.returncode == 1 and "--key-file" in r.stderr and "sealed" in r.stderr, r.stderr
    assert "trailer" not in r.stdout
    # said explicitly: the events alone, the old format
    r = export(stack, tenant, "--without-keys")
    assert '"keyrec"' not in r.stdout
    assert set(json.loads(r.stdout.splitlines()[-1])["trailer"]) == {"count", "blake2b"}


def test_import_into_a_second_stack_resumes_after_a_kill_and_equals_the_source(
        stack, source, target, tmp_path):
    writer, tenant = source
    tstack, tprojector, twriter = target
    assert tstack.master_key != stack.master_key  # each deployment its own master key
    key_file = new_key_file(stack, tmp_path / "transport.key")
    path = str(tmp_path / "tenant.ndjson")
    with open(path, "w") as f:
        f.write(export(stack, tenant, "--key-file", key_file).stdout)
    lines = open(path).read().splitlines()
    keylines = [json.loads(ln)["keyrec"] for ln in lines if ln.startswith('{"keyrec":')]
    assert lines[:len(keylines)] == [ln for ln in lines if ln.startswith('{"keyrec":')]
    trailer = json.loads(lines[-1])["trailer"]
    kdigest = hashlib.blake2b("".join(ln + "\n" for ln in lines[:len(keylines)]).encode(),
                              digest_size=32).hexdigest()
    assert trailer["keys"] == len(keylines) and trailer["keys_blake2b"] == kdigest
    records = {k["name"]: json.loads(k["value"]) for k in keylines}
    tkey = records.pop(f"tenant:{tenant}")
    assert tkey["kind"] == "tenant" and set(tkey) == {"kind", "kek_id", "key_id", "wrapped",
                                                      "created_at"}
    # the tenant key is wrapped under the transport key, not the source master key
    source_kek = [json.loads(v)["kek_id"] for k, v in read_keys(stack.brokers)
                  if k == f"tenant:{tenant}"][-1]
    assert tkey["kek_id"] != source_kek
    kinds = sorted(r["kind"] for r in records.values())
    assert kinds.count("erased") == 1 and "wrapped" not in [
        r for r in records.values() if r["kind"] == "erased"][0]
    all_lines, lines = lines, lines[len(keylines):]
    exported = [json.loads(ln) for ln in lines[:-1]]
    assert sum(e["type"] == "ClientRegistered" for e in exported) == kinds.count("client") + 1
    types = {e["type"] for e in exported}
    catalog = {e["type"] for e in json.loads(stack.vetctl("catalog").stdout)}
    print(f"import: {len(exported)} events of {len(types)} types")
    # every type of the catalog, exactly: a type added to the catalog fails
    # here until clinic_script.py scripts it
    assert types == catalog, (f"missing {sorted(catalog - types)}, "
                              f"unknown {sorted(types - catalog)}")

    # the checks before anything is sent: a tampered file, a dry run
    bad = str(tmp_path / "tampered.ndjson")
    with open(bad, "w") as f:
        f.write("\n".join(all_lines[:len(keylines)] + lines[:1] +
                          [lines[1].replace('"', ' "', 1)] + lines[2:]) + "\n")
    code, err = import_file(tstack, twriter, bad)
    assert code == 1 and "BLAKE2b" in err, err
    code, err = import_file(tstack, twriter, path, "--dry-run", "--key-file", key_file)
    assert code == 0 and "checked" in err, err
    # the keys: none given, or the wrong one (the target's own master key
    # file), is refused by vetctl before anything is sent
    code, err = import_file(tstack, twriter, path)
    assert code == 1 and "--key-file" in err, err
    code, err = import_file(tstack, twriter, path, "--key-file", tstack.master_key_file)
    assert code == 1 and "wrong transport key" in err, err
    # and by the writer, in the contract's error format, appending nothing
    r = requests.post(f"{twriter.url}/v1/ops/tenants/{tenant}/import",
                      json={"import": trailer["blake2b"], "from": 0, "events": lines[:1],
                            "keys": keylines, "transport_key": tstack.master_key},
                      headers={"Authorization": "Bearer " + tstack.token("platform-ops")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR", r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["transport_key"], r.text
    assert tstack.master_key not in r.text
    assert logged(tstack, tenant) == 0
    assert not [k for k, _ in read_keys(tstack.brokers) if tenant in k]
    # a tenant token, even an admin's, is not enough
    r = requests.post(f"{twriter.url}/v1/ops/tenants/{tenant}/import",
                      json={"import": "0" * 64, "from": 0, "events": []},
                      headers={"Authorization": "Bearer " + tstack.token("admin", tenant=tenant)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    # a tenant that exists where it is imported is refused
    code, err = import_file(stack, writer, path, "--key-file", key_file)
    assert code == 1 and "TENANT_EXISTS" in err, err

    # interrupted: vetctl killed after some batches landed, then the writer too
    # one event a batch, 8 in flight on 8 connections: batches may overtake
    # each other on the way to the writer (refused, vetctl asks where the
    # import stands and goes on from there)
    first = start_import(tstack, twriter, path, "--batch", "1", "--in-flight", "8",
                         "--key-file", key_file)
    wait_for(lambda: logged(tstack, tenant) >= len(exported) // 3 or first.poll() is not None,
             timeout=120, what="a third of the import")
    first.kill()
    first.wait()
    landed = logged(tstack, tenant)
    assert 0 < landed < len(exported), landed
    twriter.kill9()
    twriter = tstack.start_daemon("cmd-writer", port=free_port())
    twriter.wait_ready(90)
    # the rest in one batch of the default size: a body over the common
    # 64 KiB limit, which the import route alone takes (up to 1 MiB)
    assert sum(len(ln) + 3 for ln in lines[landed:-1]) > 64 * 1024
    code, err = import_file(tstack, twriter, path, "--key-file", key_file)
    assert code == 0, err
    assert "resuming at event" in err and "import:" in err and "/s" in err, err
    # again: nothing left to send, nothing appended twice
    code, err = import_file(tstack, twriter, path, "--key-file", key_file)
    assert code == 0 and f"resuming at event {len(exported)}" in err, err

    wait_for(lambda: logged(tstack, tenant) == len(exported), timeout=120,
             what="the target projector to apply the import", explain=lambda: tprojector.log_tail(10))
    ids = [i for (i,) in query(tstack, "SELECT event_id::text FROM read.event_log "
                                       "WHERE tenant_id = %s ORDER BY partition, \"offset\"",
                               (tenant,))]
    assert ids == [e["id"] for e in exported]  # each once, in the file's order
    assert not query(tstack, "SELECT 1 FROM read.dead_letters WHERE tenant_id = %s", (tenant,))
    assert tenant_digests(tstack, tenant) == tenant_digests(stack, tenant)
    # the key records landed once each (resumed twice), the tenant key rewrapped
    # under the target's master key, the others as exported
    landed_keys = [(k, json.loads(v)) for k, v in read_keys(tstack.brokers) if tenant in k]
    assert sorted(k for k, _ in landed_keys) == sorted(k["name"] for k in keylines)
    target_tkey = dict(landed_keys)[f"tenant:{tenant}"]
    assert target_tkey["key_id"] == tkey["key_id"]  # the same tenant key
    assert target_tkey["kek_id"] not in (tkey["kek_id"], source_kek)
    assert {k: v for k, v in landed_keys if k != f"tenant:{tenant}"} == records
    # the sealed clients opened on the target (their names in the rows
    # compared above); the erased client stays erased
    assert query(tstack, "SELECT count(*) FROM read.clients WHERE tenant_id = %s AND "
                         "first_name = 'Sam' AND email = 'sam@script.example'", (tenant,))[0][0] == 1
    assert query(tstack, "SELECT count(*) FROM read.clients WHERE tenant_id = %s AND "
                         "first_name = 'erased'", (tenant,))[0][0] == 1
    text = read_model_text(tstack).lower()
    assert "erasmuspet" in text  # the erased client's patient stays
    for value in ERASED_VALUES:
        assert value.lower() not in text, f"{value!r} in the target's read model"

    # the imported tenant takes commands on the target: the writer's model has it
    r = requests.post(f"{twriter.url}/v1/clients",
                      json={"first_name": "After", "last_name": "Import"},
                      headers={"Authorization": "Bearer " + tstack.token("admin", tenant=tenant)})
    assert r.status_code == 201, r.text
    twriter.terminate()


def test_an_imported_clients_update_is_sealed_with_its_imported_key(stack, source, target,
                                                                   tmp_path):
    """A writer that took an import (no restart since) seals the next update of
    an imported client with the client's imported key: its model took the key
    records with the batch, it makes no second key."""
    writer, _ = source
    tstack, tprojector, _ = target
    s = Script(stack, writer.url)
    s.tenant = s.send("POST", "/v1/tenants", {"name": "Small Paws", "timezone": "UTC",
                                              "currency": "EUR"},
                      auth="Bearer " + stack.token("platform-admin"))["id"]
    s.login()
    client = s.post("/v1/clients", {"first_name": "Moved", "last_name": "Keyholder"})["id"]
    key_file = new_key_file(stack, tmp_path / "small.key")
    path = str(tmp_path / "small.ndjson")
    with open(path, "w") as f:
        f.write(export(stack, s.tenant, "--key-file", key_file).stdout)
    twriter = tstack.start_daemon("cmd-writer", port=free_port())
    twriter.wait_ready(90)
    code, err = import_file(tstack, twriter, path, "--key-file", key_file)
    assert code == 0, err
    r = requests.patch(f"{twriter.url}/v1/clients/{client}", json={"phone": "+44 20 7946 0002"},
                       headers={"Authorization": "Bearer " + tstack.token("admin",
                                                                          tenant=s.tenant)})
    assert r.status_code == 200, r.text
    wait_for(lambda: (query(tstack, "SELECT phone, last_name FROM read.clients WHERE id = %s",
                            (client,)) or [None])[0] == ("+44 20 7946 0002", "Keyholder"),
             timeout=60, what="the target projector to open the update",
             explain=lambda: tprojector.log_tail(10))
    assert not query(tstack, "SELECT 1 FROM read.dead_letters WHERE tenant_id = %s", (s.tenant,))
    assert [k for k, _ in read_keys(tstack.brokers)].count(f"client:{s.tenant}:{client}") == 1
    twriter.terminate()
