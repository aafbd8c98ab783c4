"""The writer's rebuild never skips silently: records it cannot read (not JSON,
invalid UTF-8, refused by the event catalog, refused by the write model) stop
it with their partition:offset in /readyz and the log, without a hot retry
loop; a writer told to quarantine exactly those positions skips them (WARN,
metric), applies a quarantined record that turns out readable, and has every
aggregate of the tenant back. Poison records stay in a log for good, so this
module runs on a stack of its own, never the session's."""

import json
import os
import sys
import time
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
import events as ev  # noqa: E402
from stack import free_port, running_stack, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def own_stack():
    with running_stack() as s:
        yield s


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return requests.request(method, self.url + path, json=body, headers=h, timeout=30)


def log_events(daemon, event):
    """The `msg` of each log line of `event`."""
    found = []
    for line in daemon.log_lines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == event:
            found.append(entry["msg"])
    return found


def readyz(daemon):
    r = daemon.get("/readyz")
    return r.status_code, r.text


def position(p):
    return f"partition {p[0]} offset {p[1]}"


def test_unreadable_records_stop_the_rebuild_until_quarantined(own_stack):
    stack = own_stack
    w = stack.start_daemon("cmd-writer", port=free_port())
    w.wait_ready(90)
    tid = stack.provision(w, "Poisoned Paws", "Europe/Paris", "EUR")
    api = Api(w.url, stack.token("reception", tenant=tid))
    key = f"quarantine-{uuid.uuid4()}"
    first = api.call("POST", "/v1/clients", {"first_name": "Ann", "last_name": "Lee"},
                     headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    cid = first.json()["id"]
    r = api.call("PATCH", f"/v1/clients/{cid}", {"phone": "+33 1"})
    assert r.status_code == 200 and r.json()["version"] == 2

    # Straight into the tenant's partition, behind the writer's back: each
    # kind of record the rebuild cannot take, then one it can.
    raw = ev.EventProducer(stack.brokers)
    bad_catalog = ev.client_registered(tid, ev.new_id())
    bad_catalog["data"]["first_name"] = 42
    unknown_client = ev.envelope("ClientContactUpdated", tid, "client", ev.new_id(), 2,
                                 {"phone": "+33 2"})
    readable = ev.client_registered(tid, ev.new_id(), first="Readable")
    bad = [raw.send(raw=b"not json {", key=tid.encode()),
           raw.send(raw=b'{"id": "\xff\xfe"}', key=tid.encode()),
           raw.send(bad_catalog),
           raw.send(unknown_client)]
    good = raw.send(readable)
    raw.flush()
    raw.close()
    poison = [raw.delivered[i] for i in bad]
    assert len({p for p, _ in poison + [raw.delivered[good]]}) == 1  # the tenant's partition

    w.kill9()
    # (stack.py would quarantine what events.py produced: not here)
    stopped = stack.start_daemon("cmd-writer", port=free_port(),
                                 env={"VETPMS_WRITER_QUARANTINE": ""})
    stopped.wait_healthy(30)
    wait_for(lambda: log_events(stopped, "rebuild_stopped"), timeout=90,
             what="the rebuild to stop", explain=stopped.log_tail)
    status, body = readyz(stopped)
    assert status == 503
    assert f"rebuild stopped at {position(poison[0])}: " in body, body
    assert "not JSON" in body, body
    unreadable = log_events(stopped, "rebuild_unreadable")
    assert [m.split(":")[0] for m in unreadable] == [position(p) for p in poison], unreadable
    assert "invalid UTF-8" in unreadable[1]
    assert "first_name" in unreadable[2]
    assert "unknown client" in unreadable[3]
    assert "4 unreadable record(s)" in log_events(stopped, "rebuild_stopped")[0]
    # no hot loop: the next attempt waits a minute
    time.sleep(3)
    assert len(log_events(stopped, "rebuild_stopped")) == 1
    assert readyz(stopped)[0] == 503
    t0 = time.monotonic()
    assert stopped.terminate() == 0
    assert time.monotonic() - t0 < 5  # the wait notices the stop request

    # vetctl events check lists what the catalog refuses (the first three; an
    # update of an unknown client is the write model's refusal, not the
    # catalog's) with a ready quarantine list, and exits 1
    check = stack.vetctl("events", "check", check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    catalog_poison = [p for p in poison[:3]]
    assert [line.split(":")[0] for line in lines[:-2]] == [position(p) for p in catalog_poison]
    assert lines[-2] == "3 unreadable record(s)"
    assert lines[-1] == "VETPMS_WRITER_QUARANTINE=" + ",".join(f"{p}:{o}"
                                                                for p, o in catalog_poison)

    # a malformed quarantine refuses to start
    typo = stack.start_daemon("cmd-writer", port=free_port(),
                              args=["--quarantine", f"{poison[0][0]}:{poison[0][1]};"])
    assert typo.proc.wait(30) == 2
    assert any("is not PARTITION:OFFSET" in line for line in typo.log_lines())

    # quarantined: the four are skipped, the readable one listed by mistake is
    # applied all the same
    listed = poison + [raw.delivered[good]]
    q = ",".join(f"{p}:{o}" for p, o in listed)
    w2 = stack.start_daemon("cmd-writer", port=free_port(),
                            env={"VETPMS_WRITER_QUARANTINE": q})
    w2.wait_ready(90)
    skipped = log_events(w2, "rebuild_quarantined")
    assert [m.split(" skipped")[0] for m in skipped] == [position(p) for p in poison]
    assert log_events(w2, "quarantine_unneeded") == [
        f"{position(raw.delivered[good])} is readable and was applied; "
        "remove it from the quarantine"]
    assert w2.metric("vetpms_writer_quarantined_records") == 4

    api = Api(w2.url, stack.token("reception", tenant=tid))
    r = api.call("PATCH", f"/v1/clients/{cid}", {"phone": "+33 3"})
    assert r.status_code == 200 and r.json()["version"] == 3  # the client is all there
    r = api.call("PATCH", f"/v1/clients/{readable['aggregate_id']}", {"phone": "+33 4"})
    assert r.status_code == 200 and r.json()["version"] == 2  # the readable record applied
    again = api.call("POST", "/v1/clients", {"first_name": "Ann", "last_name": "Lee"},
                     headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert w2.terminate() == 0
