"""Kafka killed under load (issue 15 item 3, the writer's part): while the broker
is down the writer is not ready and answers commands 503 UNAVAILABLE with
Retry-After within a bounded time instead of holding them; once the broker is
back it recovers by itself; every acknowledged command is in the log exactly
once, and a command refused with 503 and retried with its Idempotency-Key lands
once. An idle writer learns of the outage as well. A stack of its own for the
module (each test with its own writer and tenant, each leaving the broker
running again): the session's Kafka stays up for the other tests. The busy and
the idle writer's tests share one kill and restart of the broker (fixture
outage), and the broker is one that re-registers quickly (stack.KAFKA_KILLED)."""

import os
import signal
import threading
import time
import uuid

import pytest
import requests

from kafka_log import events
from load import command_ids, keyed_post
from stack import KAFKA_KILLED, free_port, running_stack, tally, wait_for, wait_until

CLIENTS = 4          # concurrent posting threads
DEADLINE_S = 2.5     # a command refused because Kafka is down: answered within this
ANSWER_S = 90        # the load's requests: a batch inside its commit when Kafka died
                     # is answered once Kafka answers (outage + restart + 5 s)
PROBES = 10          # fresh commands sent while Kafka is known down


def kafka_pid(stack):
    with open(os.path.join(stack.dir, "kafka", "kafka.pid")) as f:
        return int(f.read().strip())


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def stack():
    with running_stack(env=KAFKA_KILLED) as s:
        yield s


# Two writers at once, instances 0 and 1 of 2: each owns its half of the
# partitions (p % 2) and has a transactional.id of its own, so the two share
# no tenant and never fence each other.
BUSY = {"VETPMS_WRITER_INSTANCES": "2", "VETPMS_WRITER_INSTANCE": "0"}
IDLE = {"VETPMS_WRITER_INSTANCES": "2", "VETPMS_WRITER_INSTANCE": "1"}


@pytest.fixture(scope="module")
def outage(stack):
    """One Kafka kill and restart, seen by two writers: a busy one under the
    load of CLIENTS posting threads, and an idle one, which took one command
    before the kill and has none in flight at it. A broker restart is most of
    what each test costs, so the two share it; each test judges its own
    writer on what is recorded here."""
    busy = stack.start_daemon("cmd-writer", port=free_port(), env=BUSY)
    idle = stack.start_daemon("cmd-writer", port=free_port(), env=IDLE)
    busy.wait_ready(90)
    idle.wait_ready(90)
    tenant = stack.provision(busy, "Outage Vets", "Europe/Paris", "EUR")
    token = stack.token("admin", tenant=tenant, sub="outage")
    idle_tenant = stack.provision(idle, "Idle Vets", "Europe/Paris", "EUR")
    idle_token = stack.token("admin", tenant=idle_tenant, sub="idle")
    results, stop = [], threading.Event()
    lock = threading.Lock()

    def post(key, body):
        return keyed_post(busy.url + "/v1/clients", token, key, body, ANSWER_S)

    def post_idle(key):
        return keyed_post(idle.url + "/v1/clients", idle_token, key,
                          {"first_name": "Idle", "last_name": key}, ANSWER_S)

    def load():
        while not stop.is_set():
            key = str(uuid.uuid4())
            res = post(key, {"first_name": "Out", "last_name": key})
            with lock:
                results.append(res)
            time.sleep(0.02)

    def taken(since):
        with lock:
            return sum(1 for r in results if r["status"] == 201 and r["started"] > since)

    def not_ready(writer):
        return writer.get("/readyz").status_code == 503

    idle_first = post_idle(str(uuid.uuid4()))
    threads = [threading.Thread(target=load, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    # the load runs: commands taken before the kill
    wait_for(lambda: taken(0) >= 20, timeout=60, what="20 commands taken before the kill")
    killed_at = time.monotonic()
    pid = kafka_pid(stack)
    os.kill(pid, signal.SIGKILL)
    try:
        # not ready within a few seconds, each writer
        busy_not_ready = wait_until(lambda: not_ready(busy) and time.monotonic(), 15)
        idle_not_ready = wait_until(lambda: not_ready(idle) and time.monotonic(), 15)
        # fresh commands while each writer knows Kafka is down: 503 at once
        # (an idle writer still ready would hold its command until Kafka is
        # back: not sent, its test fails on the readiness)
        probes = ([post(str(uuid.uuid4()), {"first_name": "Probe", "last_name": str(i)})
                   for i in range(PROBES)] if busy_not_ready else [])
        refused = post_idle(str(uuid.uuid4())) if idle_not_ready else None
        # reaped before kafka.sh start, which takes a pid that still answers
        # kill -0 (a zombie does) for a running broker and starts nothing
        wait_for(lambda: pid_gone(pid), timeout=30, what="the killed broker reaped")
    finally:
        restarted_at = time.monotonic()
        stack.script("kafka.sh", "start")  # returns once the broker answers a metadata request
    kafka_back = time.monotonic() - restarted_at
    busy.wait_ready(120)
    ready_after = time.monotonic() - restarted_at
    # the idle writer: ready again, and the command it refused is taken now
    idle.wait_ready(120)
    again = post_idle(refused["key"]) if refused else None
    idle_exit = idle.terminate()
    # after recovery commands land again (sent after the busy writer was ready)
    wait_for(lambda: taken(restarted_at + ready_after) >= 10, timeout=60,
             what="commands taken again after the restart")
    stop.set()
    for t in threads:
        t.join(ANSWER_S + 5)
    print(f"\noutage: Kafka answered {kafka_back:.1f} s after its restart, the busy writer "
          f"was ready {ready_after - kafka_back:.1f} s after that (docs/testing.md)")
    return {"busy": busy, "tenant": tenant, "post": post, "results": results,
            "taken": taken, "killed_at": killed_at, "busy_not_ready": busy_not_ready,
            "probes": probes, "ready_since": restarted_at + ready_after,
            "idle_tenant": idle_tenant, "idle_first": idle_first,
            "idle_not_ready": idle_not_ready, "refused": refused, "again": again,
            "idle_exit": idle_exit}


def test_kafka_killed_under_load_gets_503s_then_recovers_losing_nothing(stack, outage):
    o = outage
    writer, results, post = o["busy"], o["results"], o["post"]
    probes = o["probes"]
    assert o["busy_not_ready"], "writer /readyz not 503 within 15 s of the kill"
    statuses = tally(results)
    print(f"\noutage: {len(results)} requests {statuses}; not ready "
          f"{o['busy_not_ready'] - o['killed_at']:.1f} s after the kill; {PROBES} fresh "
          f"commands then answered in at most {max(p['took'] for p in probes):.2f} s; "
          f"slowest {max(r['took'] for r in results):.1f} s")
    # every request got an answer, and only the contract's answers
    assert all(r["status"] in (201, 503) for r in results), statuses
    assert all(r["took"] < ANSWER_S for r in results)
    refused = [r for r in results if r["status"] == 503]
    for r in refused:
        assert r["code"] == "UNAVAILABLE" and int(r["retry_after"]) >= 1, r
    # commands sent while the writer knew Kafka was down were refused at
    # once (the batch inside its commit at the kill waits for Kafka's
    # answer instead: its outcome is not the writer's to guess)
    for p in probes:
        assert p["status"] == 503 and p["code"] == "UNAVAILABLE", p
        assert p["took"] < DEADLINE_S and int(p["retry_after"]) >= 1, p
    refused += probes
    # after recovery commands land again
    assert o["taken"](o["ready_since"]) >= 10

    # retry every refused command with its key: each lands (201), or was in
    # the log already (200, replayed)
    for r in refused:
        again = post(r["key"], r["body"])
        assert again["status"] in (200, 201), again
    keys = command_ids(events(stack.brokers), o["tenant"])
    assert len(keys) == len(set(keys)), "a command appended twice"
    acknowledged = {r["key"] for r in results if r["status"] == 201}
    retried = {r["key"] for r in refused}
    assert acknowledged | retried == set(keys)
    assert writer.terminate() == 0


def test_a_full_commit_queue_refuses_at_once_and_takes_commands_again(stack):
    """VETPMS_WRITER_MAX_QUEUE bounds what waits for a commit: with Kafka
    frozen (SIGSTOP: connections open, no answers) the first batch sits in its
    commit, the queue fills to its bound, and every further command is refused
    503 at once instead of queueing without bound; once Kafka thaws the
    queued ones commit and new commands are taken again."""
    writer = stack.start_daemon("cmd-writer", port=free_port(),
                                env={"VETPMS_WRITER_MAX_QUEUE": "4"})
    writer.wait_ready(90)
    tenant = stack.provision(writer, "Queue Vets", "Europe/Paris", "EUR")
    token = stack.token("admin", tenant=tenant, sub="queue")

    def post(i):
        t0 = time.monotonic()
        r = requests.post(writer.url + "/v1/clients", timeout=ANSWER_S,
                          json={"first_name": "Queued", "last_name": str(i)},
                          headers={"Authorization": f"Bearer {token}"})
        return r, time.monotonic() - t0

    pid = kafka_pid(stack)
    os.kill(pid, signal.SIGSTOP)
    answers = []
    try:
        # one command goes into the commit that hangs, then four queue
        first = threading.Thread(target=lambda: answers.append(post(0)))
        frozen_at = time.monotonic()
        first.start()
        time.sleep(0.2)
        queued = [threading.Thread(target=lambda i=i: answers.append(post(i)))
                  for i in range(1, 5)]
        for t in queued:
            t.start()
        time.sleep(0.3)
        # over the bound: refused at once (within the 2 s after which a
        # slow commit turns the writer not ready for another reason)
        r, took = post(99)
        assert time.monotonic() - frozen_at < 2.0, "too slow to tell the two refusals apart"
        assert r.status_code == 503, r.text
        assert "wait for a commit" in r.json()["error"]["message"], r.text
        assert took < 1.0 and r.headers["Retry-After"]
    finally:
        os.kill(pid, signal.SIGCONT)
    for t in [first] + queued:
        t.join(ANSWER_S)
    assert sorted(r.status_code for r, _ in answers) == [201] * 5, \
        [(r.status_code, r.text) for r, _ in answers]
    writer.wait_ready(60)
    r, _ = post(100)
    assert r.status_code == 201, r.text
    assert writer.terminate() == 0


def test_an_idle_writer_turns_not_ready_when_kafka_dies_and_ready_when_it_is_back(stack, outage):
    """No command in flight when Kafka dies: the writer still learns of it
    (librdkafka reports it only to a poll, and an idle writer used to make
    none: it stayed ready through the outage and took the next command into
    a commit that waited for Kafka). Not ready within seconds, a command is
    refused 503 at once, and once the broker is back the writer is ready and
    takes commands again. The outage is the busy writer's (fixture outage)."""
    o = outage
    assert o["idle_first"]["status"] == 201, o["idle_first"]
    assert o["idle_not_ready"], "idle writer /readyz not 503 within 15 s of the kill"
    refused = o["refused"]
    assert refused["status"] == 503 and refused["code"] == "UNAVAILABLE", refused
    assert refused["took"] < DEADLINE_S, refused
    assert o["again"]["status"] == 201, o["again"]
    keys = command_ids(events(stack.brokers), o["idle_tenant"])
    assert keys.count(refused["key"]) == 1
    assert o["idle_exit"] == 0
