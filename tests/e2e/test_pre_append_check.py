"""The net under input validation: an event the catalog refuses never leaves the
writer. The writer's test-only fault setting (VETPMS_WRITER_FAULT_POISON_TYPE)
gives every ClientRegistered a data member no catalog entry has, the writer bug
the pre-append check exists for. The command must get 500 INTERNAL with its
request id, the refusal must be logged, nothing may be appended or applied to
the write model (the client does not exist afterwards, its key is not
remembered), and the projector has nothing to dead-letter. Own topic and read
schema, so the shared ones never see this writer."""

import json
import uuid

import pytest
import requests

from stack import free_port, wait_for
from readmodel import query

TOPIC, DLQ_TOPIC, SCHEMA = "vetpms.e2e.precheck", "vetpms.e2e.precheck.dlq", "read_precheck"


@pytest.fixture(scope="module")
def daemons(stack):
    stack.vetctl("topics", "create", "--partitions", str(stack.partitions), "--topic", TOPIC,
                 "--dlq-topic", DLQ_TOPIC)
    env = {"VETPMS_TOPIC": TOPIC, "VETPMS_DLQ_TOPIC": DLQ_TOPIC, "VETPMS_READ_SCHEMA": SCHEMA,
           "VETPMS_PROJECTOR_GROUP": "e2e-precheck"}
    projector = stack.start_daemon("projector", port=free_port(), env=env)
    writer = stack.start_daemon("cmd-writer", port=free_port(),
                                env=dict(env, VETPMS_WRITER_FAULT_POISON_TYPE="ClientRegistered"))
    for d in (projector, writer):
        d.wait_ready(90)
    yield projector, writer
    for d in (projector, writer):
        assert d.terminate() == 0


def test_an_event_the_catalog_refuses_is_500_and_nothing_is_appended(stack, daemons):
    projector, writer = daemons
    tenant = stack.provision(writer, "Precheck", "Europe/London", "GBP")
    auth = {"Authorization": "Bearer " + stack.token(["admin", "reception"], tenant=tenant)}
    client_id, request_id, key = str(uuid.uuid4()), "precheck-" + uuid.uuid4().hex, "k-precheck"

    for _ in range(2):  # the retry with the same key is decided anew, not replayed
        r = requests.post(writer.url + "/v1/clients", timeout=30,
                          json={"id": client_id, "first_name": "Ann", "last_name": "Lee"},
                          headers=dict(auth, **{"X-Request-Id": request_id,
                                                "Idempotency-Key": key}))
        assert r.status_code == 500, r.text
        assert r.headers["X-Request-Id"] == request_id
        assert r.json()["error"]["code"] == "INTERNAL"
        assert "nothing was appended" in r.json()["error"]["message"]

    refused = [json.loads(line) for line in writer.log_lines() if '"event_refused"' in line]
    assert refused and refused[0]["request_id"] == request_id and refused[0]["level"] == "error"
    assert "data.fault_injected is not a known field" in refused[0]["msg"]

    # The write model never saw the client: a command on it is 404.
    r = requests.patch(writer.url + f"/v1/clients/{client_id}", json={"phone": "+44 1"},
                       headers=auth, timeout=30)
    assert r.status_code == 404, r.text

    # Other types still go through; once the staff member is projected, so is
    # everything the tenant's partition held before it: only two events.
    r = requests.post(writer.url + "/v1/staff", json={"name": "Dr V", "role": "veterinarian"},
                      headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    staff_id = r.json()["id"]
    wait_for(lambda: query(stack, f"SELECT 1 FROM {SCHEMA}.event_log WHERE aggregate_id = %s",
                           (staff_id,)),
             what="the staff event in event_log", explain=lambda: projector.log_tail(20))
    assert query(stack, f"SELECT type FROM {SCHEMA}.event_log WHERE tenant_id = %s "
                        "ORDER BY \"offset\"", (tenant,)) == \
        [("TenantProvisioned",), ("StaffRegistered",)]
    assert query(stack, f"SELECT count(*) FROM {SCHEMA}.dead_letters")[0][0] == 0
