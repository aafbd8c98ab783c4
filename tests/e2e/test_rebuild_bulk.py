"""`projector rebuild` fills its fresh schema without the secondary indexes and
builds them once caught up (projector/rebuild_indexes.c). After a random
history of every command (test_property_commands.py's generator), the
swapped-in schema equals the live one row by row in every table and has every
index the live one had (the same pg_get_indexdef set), also when the rebuild
was killed with SIGKILL in the middle of its fill and started again."""

import os
import signal

import psycopg
import pytest

import events as ev
import test_property_commands as prop
from readmodel import query, run_rebuild, table_digests
from stack import KILLED_MEMBER_PROPS, free_port, running_stack, wait_for

# Commands per command type of the random history (the property test's own
# default is 40); VETPMS_PROPERTY_SEED replays a history as there.
EXAMPLES = int(os.environ.get("VETPMS_BULK_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the swap replaces schema `read` of the database."""
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port())
    writer = stack.start_daemon("cmd-writer", port=free_port())
    for d in (projector, writer):
        d.wait_ready(90)
    yield projector, writer
    writer.terminate()
    projector.terminate()


def positions(stack, schema):
    return dict(query(stack, f"SELECT partition, next_offset FROM \"{schema}\".projection_offsets"
                             " WHERE topic = 'vetpms.events'"))


def index_definitions(stack, schema):
    return {d for (d,) in query(stack, "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                                       "JOIN pg_class c ON c.oid = i.indexrelid "
                                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = %s", (schema,))}


def rebuild_state(stack):
    """(events applied into read_next, indexes still deferred) or None."""
    try:
        applied = query(stack, "SELECT coalesce(sum(next_offset), 0) FROM "
                               "read_next.projection_offsets")[0][0]
        deferred = query(stack, "SELECT count(*) FROM read_next.rebuild_deferred_indexes")[0][0]
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None
    return applied, deferred


@pytest.fixture(scope="module")
def history(stack, daemons):
    """The random mix of every command, applied by the live projector."""
    prop.EXAMPLES = EXAMPLES
    prop.test_every_command_answers_4xx_or_commits_an_event_the_projector_applies(stack, daemons)
    # and a clinic's worth of registrations: a log longer than the distance
    # at which the rebuild stops filling to build its indexes (1,000 events)
    tenant, envs = ev.new_id(), []
    envs.append(ev.tenant_provisioned(tenant, "Bulk Vets"))
    for i in range(600):
        client, patient = ev.new_id(), ev.new_id()
        envs += [ev.client_registered(tenant, client, first=f"Bulk{i}"),
                 ev.patient_registered(tenant, patient, client, name=f"Pet{i}"),
                 ev.weight_recorded(tenant, patient, 2, 9000 + i, ev.now_rfc3339()),
                 ev.weight_recorded(tenant, patient, 3, 8000 + i, "2026-01-01T10:00:00Z")]
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-bulk-{tenant}")
    try:
        producer.send_all(envs)
    finally:
        producer.close()
    wait_for(lambda: query(stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s",
                           (tenant,))[0][0] == len(envs),
             timeout=120, what="the live projector to apply the registrations",
             explain=lambda: daemons[0].log_tail(10))
    tables = table_digests(stack, "read")
    assert {"medical_records", "diagnoses", "appointments", "invoices", "stock_batches",
            "client_ledger", "event_log"} <= set(tables)
    print("history: rows per table", {t: n for t, (n, _) in sorted(tables.items())})
    return tables, index_definitions(stack, "read"), positions(stack, "read")


def assert_rebuilt_equals(stack, history):
    tables, indexes, live_positions = history
    assert table_digests(stack, "read") == tables
    rebuilt = positions(stack, "read")
    # the swap waits for every live position; a partition's next offset may
    # be past a transaction marker in one schema and before it in the other
    assert set(rebuilt) == set(live_positions), (rebuilt, live_positions)
    assert all(rebuilt[p] >= live_positions[p] - 1 for p in rebuilt), (rebuilt, live_positions)
    assert index_definitions(stack, "read") == indexes
    schemas = {n for (n,) in query(stack, "SELECT nspname FROM pg_namespace "
                                          "WHERE nspname LIKE 'read%%'")}
    assert schemas == {"read"}


def test_a_bulk_rebuild_equals_live_projection_row_by_row_with_every_index(stack, history):
    indexes = history[1]
    rebuild = run_rebuild(stack)
    log = "\n".join(rebuild.log_lines())
    assert "rebuild_deferred" in log and "rebuild_indexed" in log, log[-3000:]
    deferred = [ln for ln in rebuild.log_lines() if "rebuild_deferred" in ln][0]
    assert " 0 secondary" not in deferred, deferred
    assert_rebuilt_equals(stack, history)
    # the indexes the handlers look rows up by were kept, and kept their comment
    kept = {n for (n,) in query(stack, "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
                                       " ON n.oid = c.relnamespace WHERE n.nspname = 'read'"
                                       " AND obj_description(c.oid, 'pg_class')"
                                       " LIKE 'projector lookup:%%'")}
    assert {"weights_by_patient", "appointments_by_patient"} <= kept
    assert len(indexes) > 40


def test_a_rebuild_killed_during_its_fill_finishes_equal_when_started_again(stack, history):
    # one event per transaction: a fill slow enough to be caught in the middle;
    # a short session (stack.KILLED_MEMBER_PROPS) so that the rebuild started
    # again, in the same consumer group, does not wait librdkafka's 45 s for
    # the killed member to be expelled
    slow = stack.start_daemon("projector", port=free_port(), args=["rebuild"],
                              env={"VETPMS_PROJECTOR_BATCH": "1",
                                   "VETPMS_KAFKA_PROPS": KILLED_MEMBER_PROPS})
    live_end = query(stack, "SELECT sum(next_offset) FROM read.projection_offsets")[0][0]

    def mid_fill():
        state = rebuild_state(stack)
        return state and state[0] > 0 and state[1] > 0 and state

    try:
        applied, deferred = wait_for(mid_fill, timeout=60, interval=0.01,
                                     what="the rebuild's fill to start",
                                     explain=lambda: slow.log_tail(20))
    finally:
        slow.proc.send_signal(signal.SIGKILL)
        slow.proc.wait(30)
    state = rebuild_state(stack)
    assert state is not None and state[1] > 0, "killed before its fill: nothing to prove"
    assert state[0] < live_end, f"killed after the fill (at {state[0]} of {live_end})"
    # the killed rebuild's schema lacks what the table still lists
    assert len(index_definitions(stack, "read_next")) < len(history[1])

    run_rebuild(stack)
    assert_rebuilt_equals(stack, history)
