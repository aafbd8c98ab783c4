"""Rate limits per token and per tenant (issue 15 item 2, common/vp_ratelimit.c):
429 RATE_LIMITED with Retry-After once a bucket is empty, nothing appended for
a refused command, and the refusals counted in /metrics."""

import time
import uuid

import pytest
import requests

from kafka_log import events
from stack import free_port

LIMITS = {"VETPMS_RATE_TOKEN_PER_S": "2", "VETPMS_RATE_TOKEN_BURST": "5",
          "VETPMS_RATE_TENANT_PER_S": "3", "VETPMS_RATE_TENANT_BURST": "8"}


@pytest.fixture(scope="module")
def limited(stack):
    """A writer and a reader with small buckets, and two tenants provisioned
    through the writer (the platform admin's token has its own bucket)."""
    projector = stack.start_daemon("projector", port=free_port())  # the read schema
    writer = stack.start_daemon("cmd-writer", port=free_port(), env=LIMITS)
    reader = stack.start_daemon("query-reader", port=free_port(), env=LIMITS)
    for d in (projector, writer, reader):
        d.wait_ready(90)
    tenants = [stack.provision(writer, f"Rate Vets {i}", "Europe/Paris", "EUR")
               for i in range(2)]
    yield writer, reader, tenants
    assert all(d.terminate() == 0 for d in (writer, reader, projector))


def get(daemon, token):
    return requests.get(daemon.url + "/v1/clients", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def test_a_token_over_its_rate_gets_429_then_recovers(stack, limited):
    _, reader, tenants = limited
    token = stack.token("admin", tenant=tenants[0], sub="rate-a")
    first = get(reader, token)
    assert first.status_code == 200, first.text
    assert [get(reader, token).status_code for _ in range(4)] == [200] * 4
    r = get(reader, token)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    assert r.json()["error"]["request_id"] == r.headers["X-Request-Id"]
    assert int(r.headers["Retry-After"]) >= 1
    assert "token" in r.json()["error"]["message"]
    time.sleep(int(r.headers["Retry-After"]) + 0.1)
    assert get(reader, token).status_code == 200
    assert reader.metric('vetpms_http_rate_limited_total{scope="token"}') >= 1


def test_the_tenant_bucket_is_shared_by_its_tokens_only(stack, limited):
    _, reader, tenants = limited
    time.sleep(3)  # the first test's tenant bucket refills (3/s, 8 at most)
    first = [stack.token("vet", tenant=tenants[0], sub=f"rate-t{i}") for i in range(3)]
    codes = [get(reader, first[i % 3]).status_code for i in range(8)]
    assert codes == [200] * 8
    r = get(reader, first[0])  # this token's own bucket still holds 2
    assert r.status_code == 429 and "tenant" in r.json()["error"]["message"]
    other = stack.token("vet", tenant=tenants[1], sub="rate-other")
    assert get(reader, other).status_code == 200


def test_a_refused_command_appends_nothing(stack, limited):
    writer, _, tenants = limited
    token = stack.token("admin", tenant=tenants[1], sub="rate-writer")
    statuses = []
    for i in range(7):
        statuses.append(requests.post(
            writer.url + "/v1/clients", timeout=30,
            json={"id": str(uuid.uuid4()), "first_name": "Rate", "last_name": f"L{i}"},
            headers={"Authorization": f"Bearer {token}"}).status_code)
    assert statuses[:5] == [201] * 5 and 429 in statuses[5:], statuses
    clients = [e for e in events(stack.brokers)
               if e.get("tenant_id") == tenants[1] and e.get("type") == "ClientRegistered"]
    assert len(clients) == statuses.count(201)
