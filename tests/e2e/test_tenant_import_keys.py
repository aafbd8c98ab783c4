"""vetctl tenant import of a sealed tenant whose key records do not fit in one
request (vetctl/tenant_import.c, vetctl/import_plan.c, cmd-writer/import.c;
docs/privacy.md, "Export and import"): a clinic of some 3,000 clients has
more than 1 MiB of key records, so they travel spread over the batches, each
client's record with the batch that carries its client's first event, the
tenant's with the batch from 0, every record counted in its batch's bytes.

The import into a second stack (its own master key) is killed mid-way with
two batches in flight, then resumed: every key record lands once, in several
transactions; every client's name reads back in clear from the target's read
model with no dead letter (each key arrived no later than its client's
events); the erased client stays erased.

A small sealed clinic's import whose first batch (the tenant's key) aborts
after the next batch was accepted on that key: the next batch is failed,
not appended, and vetctl starts again at 0; every record lands once. One
whose first commit's answer is lost: read back committed, the import goes on
and every record lands once."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import kafka_log
from readmodel import query
from stack import free_port, key_id, master_key_bytes, running_stack, wait_for
from test_privacy import KEYS_TOPIC
from test_tenant_export import export, import_file, new_key_file, start_import

CLIENTS = int(os.environ.get("VETPMS_IMPORT_KEYS_CLIENTS", "3000"))
SMALL = 80  # the clients of the aborted import's tenant


def register_clients(stack, url, tenant, n):
    """n clients through the writer, 8 at a time: their ids in order of names."""
    auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tenant)}

    def register(chunk):
        with requests.Session() as s:
            out = []
            for i in chunk:
                r = s.post(f"{url}/v1/clients", json={"first_name": f"Keyed{i}",
                                                      "last_name": f"Owner{i}"},
                           headers=auth, timeout=30)
                assert r.status_code == 201, r.text
                out.append((i, r.json()["id"]))
            return out

    with ThreadPoolExecutor(8) as pool:
        done = [c for part in pool.map(register, [range(k, n, 8) for k in range(8)])
                for c in part]
    return [cid for _, cid in sorted(done)]


def keys_with_offsets(brokers, tenant, timeout=60):
    """The committed records of tenant's names in the keys topic, read to
    every partition's end: (partition, offset, name)."""
    return [(r.partition, r.offset, r.key.decode())
            for r in kafka_log.read_records(brokers, KEYS_TOPIC, timeout=timeout)
            if tenant in r.key.decode()]


def transactions(records):
    """How many runs of consecutive offsets the records make in their
    partitions: each transaction ends with a commit marker taking an offset,
    so records of two transactions are never adjacent."""
    runs, last = 0, {}
    for p, o, _ in sorted(records):
        runs += last.get(p) != o - 1
        last[p] = o
    return runs


@pytest.fixture(scope="module")
def source_writer(stack):
    """The source stack's writer, for both clinics (one start: its rebuild
    reads the whole log)."""
    writer = stack.start_daemon("cmd-writer", port=free_port())
    writer.wait_ready(90)
    yield writer
    writer.terminate()


def new_tenant(stack, writer, name):
    r = requests.post(f"{writer.url}/v1/tenants", json={"name": name, "timezone": "UTC",
                                                        "currency": "EUR"},
                      headers={"Authorization": "Bearer " + stack.token("platform-admin")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def exported(stack, tenant, tmp):
    """The tenant exported with a new transport key: (key file, export path)."""
    key_file = new_key_file(stack, tmp / "transport.key")
    path = str(tmp / "tenant.ndjson")
    with open(path, "w") as f:
        f.write(export(stack, tenant, "--key-file", key_file).stdout)
    return key_file, path


@pytest.fixture(scope="module")
def sealed_clinic(stack, source_writer, tmp_path_factory):
    writer = source_writer
    tenant = new_tenant(stack, writer, "Many Keys Vets")
    clients = register_clients(stack, writer.url, tenant, CLIENTS)
    erased = clients[CLIENTS // 2]
    r = requests.post(f"{writer.url}/v1/clients/{erased}/erase", json={"reason": "GDPR"},
                      headers={"Authorization": "Bearer " + stack.token("admin",
                                                                        tenant=tenant)})
    assert r.status_code in (200, 201), r.text
    key_file, path = exported(stack, tenant, tmp_path_factory.mktemp("import-keys"))
    yield tenant, clients, erased, key_file, path


@pytest.fixture(scope="module")
def target():
    """The second stack, its own master key, with a projector; each test
    starts (and stops) its own writer there. Its broker aborts a timed-out
    transaction within 500 ms (the abort test's fault waits 1.5 s past the
    timeout; the default check runs every 10 s)."""
    broker = {"VETPMS_KAFKA_EXTRA_CONFIG":
              "transaction.abort.timed.out.transaction.cleanup.interval.ms=500"}
    with running_stack(env=broker) as tstack:
        tprojector = tstack.start_daemon("projector", port=free_port())
        tprojector.wait_ready(90)
        yield tstack, tprojector
        tprojector.terminate()


@pytest.fixture(scope="module")
def small_clinic(stack, source_writer, tmp_path_factory):
    """A sealed tenant of SMALL clients exported with a transport key."""
    tenant = new_tenant(stack, source_writer, "Aborted Import Vets")
    clients = register_clients(stack, source_writer.url, tenant, SMALL)
    key_file, path = exported(stack, tenant, tmp_path_factory.mktemp("import-abort"))
    yield tenant, clients, key_file, path


def projected_names(tstack, tprojector, tenant, n, timeout):
    """Once the target's projector has the tenant's n clients, with no dead
    letter: {client id: "first last"} as the read model holds them."""
    wait_for(lambda: query(tstack, "SELECT count(*) FROM read.clients WHERE tenant_id = %s",
                           (tenant,))[0][0] == n, timeout=timeout,
             what="the target projector to apply the import",
             explain=lambda: tprojector.log_tail(10))
    assert not query(tstack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s",
                     (tenant,))
    return dict(query(tstack, "SELECT id::text, coalesce(first_name, '') || ' ' || "
                              "coalesce(last_name, '') FROM read.clients "
                              "WHERE tenant_id = %s", (tenant,)))


def position(tstack, twriter, tenant, digest):
    """Where the target writer says the import of the file stands."""
    r = requests.post(f"{twriter.url}/v1/ops/tenants/{tenant}/import",
                      json={"import": digest, "from": 0, "events": []},
                      headers={"Authorization": "Bearer " + tstack.token("platform-ops")})
    return r.json()["next"] if r.status_code == 200 else -1


def file_parts(path):
    """An export file's key record lines, event lines and digest."""
    lines = open(path).read().splitlines()
    keylines = [ln for ln in lines if ln.startswith('{"keyrec":')]
    return keylines, lines[len(keylines):-1], json.loads(lines[-1])["trailer"]["blake2b"]


def assert_small_import_landed_once(target, tenant, clients, keylines, events, digest):
    """Every key record of the file once on the target: the tenant's
    (rewrapped under the target's master key) and each client's, so none
    without its tenant's; every event once, in the file's order; every one of
    the SMALL clients opened by the target's projector, none dead-lettered."""
    tstack, tprojector = target
    keys = [(r.key.decode(), json.loads(r.value))
            for r in kafka_log.read_records(tstack.brokers, KEYS_TOPIC, timeout=60)
            if tenant in r.key.decode()]
    assert sorted(name for name, _ in keys) == \
        sorted(json.loads(ln)["keyrec"]["name"] for ln in keylines)
    assert [v["kek_id"] for name, v in keys if name == "tenant:" + tenant] == \
        [key_id(master_key_bytes(tstack.master_key_file))]
    imported = [r for r in kafka_log.read_records(tstack.brokers, timeout=60)
                if r.headers.get("import") == digest.encode()]
    assert [r.value.decode() for r in imported] == events
    assert [int(r.headers["import-index"]) for r in imported] == list(range(len(events)))
    rows = projected_names(tstack, tprojector, tenant, SMALL, 60)
    assert [rows[cid] for cid in clients] == [f"Keyed{i} Owner{i}" for i in range(SMALL)]


def test_key_records_over_one_request_ride_with_their_clients_batches(stack, sealed_clinic,
                                                                     target):
    tenant, clients, erased, key_file, path = sealed_clinic
    keylines, events, digest = file_parts(path)
    assert len(keylines) == CLIENTS + 1  # the tenant's, each client's (one marker)
    # more than one request carries (1 MiB): the records must be spread
    assert sum(len(json.dumps(json.loads(ln)["keyrec"])) for ln in keylines) > 1024 * 1024

    tstack, tprojector = target
    twriter = tstack.start_daemon("cmd-writer", port=free_port())
    twriter.wait_ready(90)
    # small batches, two in flight (one may overtake the other, the one
    # bringing the tenant's key among them); killed a third of the way
    first = start_import(tstack, twriter, path, "--batch", "50", "--in-flight", "2",
                         "--key-file", key_file)
    wait_for(lambda: position(tstack, twriter, tenant, digest) >= len(events) // 3
             or first.poll() is not None, timeout=120, what="a third of the import")
    first.kill()
    _, err = first.communicate()
    landed = position(tstack, twriter, tenant, digest)
    assert 0 < landed < len(events), (landed, err)
    # the rest in batches of the default size, cut by bytes: events and keys
    code, err = import_file(tstack, twriter, path, "--key-file", key_file)
    assert code == 0, err
    assert f"resuming at event {landed}" in err, err
    assert position(tstack, twriter, tenant, digest) == len(events)

    # every record once, in many transactions (the batches')
    records = keys_with_offsets(tstack.brokers, tenant)
    names = [name for _, _, name in records]
    assert sorted(names) == sorted(json.loads(ln)["keyrec"]["name"] for ln in keylines)
    assert transactions(records) >= 10, transactions(records)
    # the resumed run's records came in more than one transaction too:
    # those of clients whose first event is at or after where it resumed
    late = {e["aggregate_id"] for e in map(json.loads, events[landed:])
            if e["type"] == "ClientRegistered"}
    resumed = [r for r in records if r[2].split(":")[-1] in late]
    assert len(resumed) == len(late) > 0
    assert transactions(resumed) >= 2, transactions(resumed)

    # every client opened on the target, none dead-lettered
    rows = projected_names(tstack, tprojector, tenant, CLIENTS, 180)
    for i, cid in enumerate(clients):
        if cid != erased:
            assert rows[cid] == f"Keyed{i} Owner{i}", (cid, rows[cid])
    # the erased client stays erased: its marker, not a key, landed
    assert rows[erased].startswith("erased") and "Keyed" not in rows[erased] \
        and "Owner" not in rows[erased], rows[erased]
    twriter.terminate()


def test_a_batch_decided_on_the_key_of_an_aborted_batch_fails_and_the_import_lands_once(
        stack, small_clinic, target):
    """Batch 0 (the tenant's key) is decided, its key taken into the write
    model's keyring, and batch 1 (client keys that need it) is decided on
    that model while batch 0's transaction is still open; then batch 0's
    transaction aborts (VETPMS_WRITER_FAULT_COMMIT=abort-once-alone: batch
    0 alone in the writer's first transaction, delivered, then past its
    timeout; plain abort-once let group commit put both batches in that
    transaction, which aborts them together). The writer rebuilds its model
    from the log, which forgets the tenant's key, and fails batch 1 as stale
    instead of appending client keys without their tenant key. vetctl, told 503 for
    both, asks where the import stands (event 0) and sends it again: every
    event and key record lands once, every name opens on the target."""
    tenant, clients, key_file, path = small_clinic
    keylines, events, digest = file_parts(path)
    assert len(keylines) == SMALL + 1 and len(events) == SMALL + 1
    tstack = target[0]
    twriter = tstack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_KAFKA_PROPS": "transaction.timeout.ms=2000",
        "VETPMS_WRITER_FAULT_COMMIT": "abort-once-alone"})
    twriter.wait_ready(90)
    code, err = import_file(tstack, twriter, path, "--batch", "10", "--in-flight", "2",
                            "--key-file", key_file)
    assert code == 0, err
    log = "\n".join(twriter.log_lines())
    # the path was taken: the first transaction (batch 0) aborted, a batch
    # decided meanwhile was failed as stale, and vetctl started again at 0
    assert '"event":"fault_commit"' in log and "was aborted" in log, twriter.log_tail()
    assert '"msg":"10 event(s) decided on a model since rebuilt' in log, twriter.log_tail()
    assert err.count("did not take a batch (status 503)") == 2, err
    assert "going on from event 0," in err, err
    assert position(tstack, twriter, tenant, digest) == len(events)

    assert_small_import_landed_once(target, tenant, clients, keylines, events, digest)
    assert twriter.terminate() == 0


def test_an_import_batch_whose_commit_answer_was_lost_is_read_back_and_lands_once(
        stack, source_writer, target, tmp_path_factory):
    """VETPMS_WRITER_FAULT_COMMIT=lose-answer-once on the import's first
    transaction (the tenant's key record, rewrapped, with the first clients'
    keys and events): the commit succeeds but its answer is taken as lost;
    the writer reads the transaction's record back committed and keeps its
    model, the tenant's key in its keyring, so the batches decided on that
    key go on. vetctl sees every batch taken: every key record and event
    lands once, every name opens on the target."""
    tenant = new_tenant(stack, source_writer, "Lost Answer Import Vets")
    clients = register_clients(stack, source_writer.url, tenant, SMALL)
    key_file, path = exported(stack, tenant, tmp_path_factory.mktemp("import-lost"))
    keylines, events, digest = file_parts(path)
    assert len(keylines) == SMALL + 1 and len(events) == SMALL + 1
    tstack = target[0]
    twriter = tstack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_WRITER_FAULT_COMMIT": "lose-answer-once"})
    twriter.wait_ready(90)
    code, err = import_file(tstack, twriter, path, "--batch", "10", "--in-flight", "2",
                            "--key-file", key_file)
    assert code == 0, err
    outcome = [ln for ln in twriter.log_lines() if '"event":"commit_outcome' in ln]
    assert any("read back committed" in ln for ln in outcome), twriter.log_tail()
    assert "did not take a batch" not in err, err  # nothing was sent twice
    assert position(tstack, twriter, tenant, digest) == len(events)

    assert_small_import_landed_once(target, tenant, clients, keylines, events, digest)
    assert twriter.terminate() == 0
