"""vetctl tenant export (vetctl/cmd_tenant.c): a tenant's committed events in
log order, each line the envelope exactly as stored, then a trailer with the
count and the BLAKE2b-256 of the event lines (each with its newline). Another
tenant's events in the same partition and an aborted transaction's are not in
the file; a record keyed by the tenant that is not an event stops the export."""

import hashlib
import json

import events as ev
from kafka_partition import partition as partition_for_key  # the writer's partitioner


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


def export(stack, tenant, check=True):
    return stack.vetctl("tenant", "export", "--tenant", tenant, check=check)


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
