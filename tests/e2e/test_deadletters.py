"""Dead letters handled by ops (vetctl deadletters, projector/redrive.c).

A projector with a bug (the test-only VETPMS_PROJECTOR_TEST_REJECT_TYPE makes
it refuse PatientRegistered) dead-letters a registration and, since the patient
is then missing, the patient's later events too. Redriving while the bug is
still there is refused, in log order, and changes nothing; the fixed projector
(the same binary without the switch) applies the three when redriven, in log
order, at their own positions. An event that still cannot apply, with a later
event of its aggregate applied, is refused for log order and then discarded
with a recorded reason. Finally the live read model equals a rebuild's, row by
row, and the metrics count the dead letters by type."""

import json
import re

import pytest

import events as ev
from readmodel import query, run_rebuild, table_digests
from stack import free_port, running_stack, wait_for

OPERATOR = "ops-test"


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: projectors are restarted and a rebuild swaps the schema."""
    with running_stack() as s:
        yield s


def vetctl_dl(stack, *args, check=True):
    return stack.vetctl("deadletters", *args, "--dsn", stack.dsn("projector"), "--by", OPERATOR,
                        check=check)


def dead_letters(stack, tenant):
    return query(stack, "SELECT partition, \"offset\", type, status, last_error, error "
                        "FROM read.dead_letters WHERE tenant_id = %s ORDER BY \"offset\"",
                 (tenant,))


def labelled_metric(daemon, name, labels):
    pattern = re.compile(re.escape(name) + r"\{" + re.escape(labels) + r"\} (\S+)$")
    for line in daemon.get("/metrics").text.splitlines():
        m = pattern.match(line)
        if m:
            return float(m.group(1))
    raise AssertionError(f"no {name}{{{labels}}} on /metrics")


def send(stack, envs):
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-dl-{ev.new_id()}")
    try:
        producer.send_all(envs)
    finally:
        producer.close()


def applied(stack, tenant):
    return query(stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s", (tenant,))[0][0]


def test_dead_letters_listed_redriven_in_log_order_discarded_and_equal_to_a_rebuild(stack):
    buggy = stack.start_daemon("projector", port=free_port(),
                               env={"VETPMS_PROJECTOR_TEST_REJECT_TYPE": "PatientRegistered"})
    buggy.wait_ready(90)
    tenant, client, patient = ev.new_id(), ev.new_id(), ev.new_id()
    send(stack, [ev.tenant_provisioned(tenant, "Dead Letter Vets"),
                 ev.client_registered(tenant, client),
                 ev.patient_registered(tenant, patient, client, name="Bug"),
                 ev.weight_recorded(tenant, patient, 2, 13000, "2026-03-01T10:00:00Z"),
                 ev.envelope("AllergyAdded", tenant, "patient", patient, 3,
                             {"allergen": "penicillin", "reaction": "hives",
                              "severity": "moderate"})])
    rows = wait_for(lambda: len(dead_letters(stack, tenant)) == 3 and dead_letters(stack, tenant),
                    timeout=60, what="three dead letters", explain=lambda: buggy.log_tail(10))
    assert [r[2] for r in rows] == ["PatientRegistered", "WeightRecorded", "AllergyAdded"]
    assert "VETPMS_PROJECTOR_TEST_REJECT_TYPE" in rows[0][5]
    assert "not found" in rows[1][5]
    assert applied(stack, tenant) == 2
    wait_for(lambda: labelled_metric(buggy, "vetpms_projector_dead_letters_pending",
                                     'type="PatientRegistered"') >= 1
             and labelled_metric(buggy, "vetpms_projector_dead_letters_pending",
                                 'type="WeightRecorded"') >= 1,
             timeout=20, what="the pending gauges by type")
    positions = [f"{p}:{o}" for p, o, *_ in rows]

    # list: filtered by tenant and type, one JSON object per line
    listed = [json.loads(ln) for ln in vetctl_dl(stack, "list", "--tenant", tenant).stdout.splitlines()]
    assert [d["at"] for d in listed] == positions
    assert {d["status"] for d in listed} == {"dead"}
    typed = vetctl_dl(stack, "list", "--tenant", tenant, "--type", "WeightRecorded").stdout
    assert [json.loads(ln)["at"] for ln in typed.splitlines()] == [positions[1]]
    shown = json.loads(vetctl_dl(stack, "show", "--at", positions[0]).stdout)
    assert shown["envelope"]["type"] == "PatientRegistered"
    assert shown["envelope"]["aggregate_id"] == patient
    assert vetctl_dl(stack, "show", "--at", "0:999999999", check=False).returncode == 1
    assert vetctl_dl(stack, "list", "--tenant", "not-a-uuid", check=False).returncode == 2

    # a dry run and a discard without reason change nothing
    dry = vetctl_dl(stack, "redrive", "--tenant", tenant, "--dry-run")
    assert len(dry.stdout.splitlines()) == 3 and "would be redriven" in dry.stderr
    assert vetctl_dl(stack, "discard", "--tenant", tenant, check=False).returncode != 0
    assert vetctl_dl(stack, "redrive", check=False).returncode != 0  # no selection
    assert [r[3] for r in dead_letters(stack, tenant)] == ["dead"] * 3

    # redriven before the fix: refused, the first by the handler, the later
    # ones because the aggregate's earlier dead letter is unresolved
    refused = vetctl_dl(stack, "redrive", "--tenant", tenant, "--timeout-s", "30", check=False)
    assert refused.returncode == 1, refused.stderr
    assert "redrive:" in refused.stderr and "/s" in refused.stderr  # progress on stderr
    rows = dead_letters(stack, tenant)
    assert [r[3] for r in rows] == ["dead"] * 3
    assert "VETPMS_PROJECTOR_TEST_REJECT_TYPE" in rows[0][4]
    assert all("earlier dead letter" in r[4] for r in rows[1:]), rows
    assert applied(stack, tenant) == 2

    # the fix ships: the same projector without the switch; redrive applies the
    # three in log order, each at its own position
    buggy.terminate()
    fixed = stack.start_daemon("projector", port=free_port())
    fixed.wait_ready(90)
    done = vetctl_dl(stack, "redrive", "--tenant", tenant, "--timeout-s", "60")
    assert "3 of 3 dead letter(s) redriven" in done.stderr, done.stderr
    assert [json.loads(ln)["status"] for ln in done.stdout.splitlines()] == ["redriven"] * 3
    assert query(stack, "SELECT partition || ':' || \"offset\" FROM read.event_log WHERE "
                        "tenant_id = %s AND aggregate_id = %s ORDER BY seq",
                 (tenant, patient)) == [(p,) for p in positions]
    # (the registration's weight is the later measure: it stays the latest)
    assert query(stack, "SELECT name, weight_kg::text, allergies->0->>'allergen', version, "
                        "(SELECT count(*) FROM read.weights w WHERE w.tenant_id = p.tenant_id "
                        "AND w.patient_id = p.id) FROM read.patients p "
                        "WHERE tenant_id = %s AND id = %s", (tenant, patient)) == \
        [("Bug", "12.500", "penicillin", 3, 2)]
    resolved = query(stack, "SELECT status, resolved_by, resolved_at IS NOT NULL FROM "
                            "read.dead_letters WHERE tenant_id = %s", (tenant,))
    assert all(s == "redriven" and by.startswith(OPERATOR) and at for s, by, at in resolved)
    assert fixed.metric("vetpms_projector_dead_letters_redriven_total") == 3
    assert vetctl_dl(stack, "list", "--tenant", tenant).stdout == ""

    # an event that still cannot apply (a transfer from the wrong owner), its
    # aggregate's later event applied: refused for log order, then discarded
    other, stranger = ev.new_id(), ev.new_id()
    send(stack, [ev.patient_registered(tenant, other, client, name="Late"),
                 ev.envelope("PatientTransferred", tenant, "patient", other, 2,
                             {"from_client_id": stranger, "to_client_id": client}),
                 ev.weight_recorded(tenant, other, 3, 9000, "2026-03-02T10:00:00Z")])
    wait_for(lambda: applied(stack, tenant) == 7, timeout=60, what="the later events applied",
             explain=lambda: fixed.log_tail(10))
    (bad,) = [f"{p}:{o}" for p, o, t, s, *_ in dead_letters(stack, tenant) if s == "dead"]
    wait_for(lambda: labelled_metric(fixed, "vetpms_projector_dead_letters_pending",
                                     'type="PatientTransferred"') == 1,
             timeout=20, what="the pending gauge of the transfer")
    out_of_order = vetctl_dl(stack, "redrive", "--at", bad, "--timeout-s", "30", check=False)
    assert out_of_order.returncode == 1
    assert "a later event of aggregate" in json.loads(out_of_order.stdout)["last_error"]
    assert fixed.metric("vetpms_projector_dead_letters_redrive_refused_total") >= 1
    discarded = vetctl_dl(stack, "discard", "--at", bad, "--reason", "transfer from a wrong owner")
    row = json.loads(discarded.stdout)
    assert row["status"] == "discarded" and row["reason"] == "transfer from a wrong owner"
    assert row["resolved_by"].startswith(OPERATOR) and row["resolved_at"]
    assert vetctl_dl(stack, "list", "--status", "all", "--type", "PatientTransferred").stdout \
        .count("discarded") == 1
    wait_for(lambda: labelled_metric(fixed, "vetpms_projector_dead_letters_pending",
                                     'type="PatientTransferred"') == 0,
             timeout=20, what="the pending gauge back to 0")

    # the read model equals a rebuild's: every table row by row; the dead
    # letters a rebuild makes are the live ones not redriven
    live = table_digests(stack, "read", exclude=("dead_letters",))
    live_dead = query(stack, "SELECT partition, \"offset\", error FROM read.dead_letters "
                             "WHERE status <> 'redriven' ORDER BY 1, 2")
    run_rebuild(stack)
    assert table_digests(stack, "read", exclude=("dead_letters",)) == live
    assert query(stack, "SELECT partition, \"offset\", error FROM read.dead_letters "
                        "ORDER BY 1, 2") == live_dead
    fixed.terminate()
