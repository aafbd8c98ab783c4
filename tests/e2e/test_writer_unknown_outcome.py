"""An unknown commit outcome (issue 15 item 3): the writer frozen (SIGSTOP)
under load for longer than its transaction timeout, so Kafka aborts the open
transaction behind its back and the producer, once thawed, fails fatally
(INVALID_TXN_STATE) with a batch inside its commit. The writer must not die
nor guess: it re-initialises its producer, reads the partition to learn what
became of the batch, answers 201 or 503 truthfully, and goes on. Every 201 is
in the log once, every "nothing was written" 503 is not, and each refused
command retried with its Idempotency-Key lands once.

One stack of its own for the module's three tests (each with its own writer
and tenant): the broker looks for timed-out transactions every 500 ms (the
default 10 s would make the abort a matter of luck) and the writer's
transactions time out after 2 s.

A frozen writer's batch has a record still undelivered when the abort comes,
so the two branches of outcome.c that read the log back are driven by the
writer's test-only VETPMS_WRITER_FAULT_COMMIT: every record delivered and then
aborted by the broker (read back: skipped), and a commit whose answer is taken
as lost (read back: committed)."""

import signal
import threading
import time
import uuid

import pytest
import requests

from kafka_log import events
from load import command_ids, keyed_post
from stack import free_port, running_stack, tally

CLIENTS = 4
FREEZE_S = 4        # > transaction.timeout.ms + the broker's cleanup interval
MAX_FREEZES = 5     # until the producer has failed fatally once
ANSWER_S = 60       # the outcome wait is 30 s at most
NOTHING_WRITTEN = "nothing was"  # "... written" after a commit, "... appended" before


@pytest.fixture(scope="module")
def stack():
    """The broker of every test here: timed-out transactions aborted within
    500 ms. (A stack start is some 10 s of a loaded run; the three tests
    used to start one each.)"""
    broker = {"VETPMS_KAFKA_EXTRA_CONFIG":
              "transaction.abort.timed.out.transaction.cleanup.interval.ms=500"}
    with running_stack(env=broker) as s:
        yield s


def test_frozen_writer_learns_the_outcome_and_answers_truthfully(stack):
    writer = stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_KAFKA_PROPS": "transaction.timeout.ms=2000",
        "VETPMS_RATE_TOKEN_PER_S": "0", "VETPMS_RATE_TENANT_PER_S": "0"})
    writer.wait_ready(90)
    tenant = stack.provision(writer, "Frozen Vets", "Europe/Paris", "EUR")
    token = stack.token("admin", tenant=tenant, sub="frozen")
    results, stop, lock = [], threading.Event(), threading.Lock()

    def post(key, body):
        return keyed_post(writer.url + "/v1/clients", token, key, body, ANSWER_S)

    def load():
        while not stop.is_set():
            key = str(uuid.uuid4())
            res = post(key, {"first_name": "Frozen", "last_name": key})
            with lock:
                results.append(res)
            if res["status"] != 201:
                time.sleep(0.1)

    def reinits():
        return writer.metric("vetpms_writer_producer_reinits_total")

    threads = [threading.Thread(target=load) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    freezes = 0
    try:
        while freezes < MAX_FREEZES and writer.proc.poll() is None and reinits() == 0:
            time.sleep(1.5)
            writer.proc.send_signal(signal.SIGSTOP)
            time.sleep(FREEZE_S)
            writer.proc.send_signal(signal.SIGCONT)
            freezes += 1
            # the thawed producer meets the abort within its next round trips
            time.sleep(2)
            if writer.proc.poll() is None:
                writer.wait_ready(60)
    finally:
        stop.set()
        for t in threads:
            t.join(ANSWER_S + 5)

    statuses = tally(results)
    print(f"\nunknown outcome: {freezes} freezes of {FREEZE_S} s, {len(results)} "
          f"requests {statuses}, slowest {max(r['took'] for r in results):.1f} s")
    assert writer.proc.poll() is None, \
        f"the writer died after a fatal producer error:\n{writer.log_tail()}"
    assert reinits() >= 1, f"no fatal producer error in {freezes} freezes"
    outcomes = [l for l in writer.log_lines() if '"event":"commit_outcome' in l]
    print("unknown outcome: " + "; ".join(l[l.index('"msg"'):] for l in outcomes))
    assert outcomes, writer.log_tail()
    assert all(r["status"] in (201, 503) for r in results), statuses
    for r in results:
        if r["status"] == 503:
            assert r["code"] == "UNAVAILABLE", r

    # what the answers said against the log, before any retry
    keys = command_ids(events(stack.brokers), tenant)
    assert len(keys) == len(set(keys)), "a command appended twice"
    in_log = set(keys)
    acked = {r["key"] for r in results if r["status"] == 201}
    said_not_written = {r["key"] for r in results
                        if r["status"] == 503 and NOTHING_WRITTEN in r["message"]}
    assert acked <= in_log, f"acknowledged but not in the log: {acked - in_log}"
    assert not said_not_written & in_log, \
        f"answered 'nothing was written' but in the log: {said_not_written & in_log}"

    # every refused command retried with its key: lands once
    refused = [r for r in results if r["status"] != 201]
    for r in refused:
        again = post(r["key"], r["body"])
        assert again["status"] in (200, 201), again
    keys = command_ids(events(stack.brokers), tenant)
    assert len(keys) == len(set(keys)), "a retried command appended twice"
    assert set(keys) == acked | {r["key"] for r in refused}
    assert writer.terminate() == 0


def provision(stack, writer, key, name):
    r = requests.post(writer.url + "/v1/tenants", timeout=ANSWER_S,
                      json={"name": name, "timezone": "Europe/Paris",
                            "currency": "EUR"},
                      headers={"Authorization": "Bearer " + stack.token("platform-admin"),
                               "Idempotency-Key": key})
    return r.status_code, r.json(), r.headers.get("Idempotent-Replayed")


def provisioned(stack, name):
    return [e for e in events(stack.brokers)
            if e["type"] == "TenantProvisioned" and e["data"]["name"] == name]


def outcome_lines(writer):
    return [l for l in writer.log_lines() if '"event":"commit_outcome' in l]


def test_an_aborted_batch_whose_records_were_delivered_is_read_back_and_answered_503(stack):
    """VETPMS_WRITER_FAULT_COMMIT=abort-once: the first transaction's records
    are all delivered, then it waits past its timeout, so the broker aborts it
    and fences the producer before EndTxn. The writer reads the record's
    offset back (read_committed skips it), answers 503 "nothing was written",
    and the same key then lands once."""
    name = "Aborted Outcome Vets"  # a name of this test's own on the module's log
    writer = stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_KAFKA_PROPS": "transaction.timeout.ms=2000",
        "VETPMS_WRITER_FAULT_COMMIT": "abort-once"})
    writer.wait_ready(90)
    key = str(uuid.uuid4())
    status, body, _ = provision(stack, writer, key, name)
    assert status == 503 and NOTHING_WRITTEN in body["error"]["message"], body
    assert not provisioned(stack, name)
    assert any("skipped as aborted" in l for l in outcome_lines(writer)), writer.log_tail()
    writer.wait_ready(60)
    assert provision(stack, writer, key, name)[0] == 201
    assert provision(stack, writer, key, name)[::2] == (201, "true")  # replayed
    assert len(provisioned(stack, name)) == 1
    assert writer.metric("vetpms_writer_producer_reinits_total") == 1
    assert writer.terminate() == 0


def test_a_commit_whose_answer_was_lost_is_read_back_and_answered_201(stack):
    """VETPMS_WRITER_FAULT_COMMIT=lose-answer-once: the first commit succeeds
    but its answer is taken as lost; the writer reads the record back
    (committed) and answers 201, and the key replays it."""
    name = "Lost Answer Outcome Vets"  # a name of this test's own on the module's log
    writer = stack.start_daemon("cmd-writer", port=free_port(),
                                env={"VETPMS_WRITER_FAULT_COMMIT": "lose-answer-once"})
    writer.wait_ready(90)
    key = str(uuid.uuid4())
    status, body, _ = provision(stack, writer, key, name)
    assert status == 201, body
    assert any("read back committed" in l for l in outcome_lines(writer)), writer.log_tail()
    log = provisioned(stack, name)
    assert [e["aggregate_id"] for e in log] == [body["id"]]
    assert provision(stack, writer, key, name)[::2] == (201, "true")  # replayed
    assert len(provisioned(stack, name)) == 1
    assert writer.terminate() == 0
