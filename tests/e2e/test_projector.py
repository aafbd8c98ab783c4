"""The projector against the real stack: every event type of schema/events lands
in its read model, aborted Kafka transactions never do, bad records become dead
letters (table, DLQ topic, metric) while the partition moves on, progress is
NOTIFYed, and the read model is exactly-once across kill -9 with one or several
PostgreSQL connections (compared with a second projector that rebuilt the same
topic into another schema), and with two projector processes in one group
splitting the partitions."""

import json
import re
import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import sql

import events as ev
import kafka_partition
from stack import KILLED_MEMBER_PROPS, free_port, wait_for
from readmodel import query


def log_count(stack, tenant, schema="read"):
    q = sql.SQL("SELECT count(*) FROM {}.event_log WHERE tenant_id = %s").format(
        sql.Identifier(schema))
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        return conn.execute(q, (tenant,)).fetchone()[0]


@pytest.fixture(scope="module")
def projector(stack):
    d = stack.start_daemon("projector", port=free_port())
    d.wait_ready()
    yield d
    assert d.terminate() == 0


@pytest.fixture(scope="module")
def producer(stack):
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-projector-{uuid.uuid4()}")
    yield p
    p.close()


def test_every_event_type_lands_in_its_read_model(stack, projector, producer):
    t = ev.new_id()
    staff, c1, c2, pat, inv = (ev.new_id() for _ in range(5))
    envs = [
        ev.tenant_provisioned(t, "Happy Paws"),
        ev.envelope("StaffRegistered", t, "staff", staff, 1,
                    {"name": "Dr Who", "role": "veterinarian", "email": "who@x.org",
                     "license_number": "L-1"}),
        ev.envelope("StaffDeactivated", t, "staff", staff, 2, {"reason": "left"}),
        ev.client_registered(t, c1, "Ann", "Smith"),
        ev.client_registered(t, c2, "Bob", "Jones"),
        ev.envelope("ClientContactUpdated", t, "client", c1, 2,
                    {"phone": "+33 9 99", "address": None}),
        # registered (with its first weight) before the weighings below
        dict(ev.patient_registered(t, pat, c1, "Rex", weight_g=12500),
             at="2025-06-01T08:00:00.000000Z"),
        ev.weight_recorded(t, pat, 2, 13000, "2026-01-02T10:00:00Z"),
        ev.weight_recorded(t, pat, 3, 11000, "2025-12-01T10:00:00Z"),  # older: not latest
        ev.envelope("AllergyAdded", t, "patient", pat, 4,
                    {"allergen": "penicillin", "reaction": "hives", "severity": "severe"}),
        ev.envelope("ChronicConditionAdded", t, "patient", pat, 5,
                    {"name": "arthritis", "diagnosed_on": "2025-03-04", "notes": None}),
        ev.envelope("PatientTransferred", t, "patient", pat, 6,
                    {"from_client_id": c1, "to_client_id": c2}),
        ev.envelope("PatientDied", t, "patient", pat, 7, {"date": "2026-02-03"}),
        ev.envelope("ClientDeactivated", t, "client", c1, 3, {"reason": "moved"}),
        ev.envelope("InvoiceCreated", t, "invoice", inv, 1,
                    {"client_id": c2, "appointment_id": None}),
        ev.envelope("InvoiceVoided", t, "invoice", inv, 2, {"reason": "duplicate"}),
    ]
    producer.send_all(envs)
    wait_for(lambda: log_count(stack, t) == len(envs), what="all events in event_log",
             explain=lambda: projector.log_tail(40))

    assert query(stack, "SELECT name, timezone, currency, version FROM read.tenants "
                        "WHERE id = %s AND tenant_id = %s", (t, t)) == \
        [("Happy Paws", "Europe/Paris", "EUR", 1)]
    assert query(stack, "SELECT name, role, active, deactivated_reason, version FROM read.staff "
                        "WHERE tenant_id = %s", (t,)) == \
        [("Dr Who", "veterinarian", False, "left", 2)]
    clients = query(stack, "SELECT id::text, first_name, email, phone, address, active, version "
                           "FROM read.clients WHERE tenant_id = %s ORDER BY first_name", (t,))
    assert clients == [(c1, "Ann", "Ann@example.org", "+33 9 99", None, False, 3),
                       (c2, "Bob", "Bob@example.org", "+33 1 23", "1 rue X", True, 1)]
    (row,) = query(stack, "SELECT client_id::text, client_first_name, client_last_name, name, "
                          "species, neutered, date_of_birth::text, weight_kg::text, allergies, "
                          "conditions, status, date_of_death::text, version "
                          "FROM read.patients WHERE tenant_id = %s AND id = %s", (t, pat))
    assert row == (c2, "Bob", "Jones", "Rex", "canine", True, "2020-05-01", "13.000",
                   [{"allergen": "penicillin", "reaction": "hives", "severity": "severe"}],
                   [{"name": "arthritis", "diagnosed_on": "2025-03-04", "notes": None}],
                   "deceased", "2026-02-03", 7)
    weights = query(stack, "SELECT weight_g FROM read.weights WHERE tenant_id = %s "
                           "ORDER BY measured_at", (t,))
    assert weights == [(12500,), (11000,), (13000,)]
    assert query(stack, "SELECT allergen, severity FROM read.allergies WHERE tenant_id = %s",
                 (t,)) == [("penicillin", "severe")]
    assert query(stack, "SELECT name, diagnosed_on::text FROM read.conditions "
                        "WHERE tenant_id = %s", (t,)) == [("arthritis", "2025-03-04")]
    log = query(stack, "SELECT type, seq, envelope->>'id', partition, \"offset\" "
                       "FROM read.event_log WHERE tenant_id = %s ORDER BY \"offset\"", (t,))
    assert [r[0] for r in log] == [e["type"] for e in envs]
    assert [r[2] for r in log] == [e["id"] for e in envs]
    assert [(r[3], r[4]) for r in log] == producer.delivered[-len(envs):]
    assert not query(stack, "SELECT 1 FROM read.dead_letters WHERE tenant_id = %s", (t,))
    assert query(stack, "SELECT status, version FROM read.invoices WHERE tenant_id = %s",
                 (t,)) == [("void", 2)]


def test_reader_sees_only_its_tenant_rows(stack, projector, producer):
    t1, t2 = ev.new_id(), ev.new_id()
    producer.send_all([ev.tenant_provisioned(t1), ev.client_registered(t1, ev.new_id()),
                       ev.tenant_provisioned(t2), ev.client_registered(t2, ev.new_id())])
    wait_for(lambda: log_count(stack, t1) == 2 and log_count(stack, t2) == 2, what="events")
    with psycopg.connect(stack.dsn("reader"), autocommit=True) as reader:
        reader.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (t1,))
        tenants = reader.execute("SELECT DISTINCT tenant_id::text FROM read.clients").fetchall()
        assert tenants == [(t1,)]
        assert reader.execute("SELECT count(*) FROM read.event_log").fetchone()[0] == 2
        reader.execute("SELECT set_config('vetpms.tenant_id', '', false)")
        assert reader.execute("SELECT count(*) FROM read.clients").fetchone()[0] == 0


def test_aborted_transaction_never_appears(stack, projector, producer):
    t = ev.new_id()
    aborted_client, committed_client = ev.new_id(), ev.new_id()
    producer.begin()
    producer.send(ev.client_registered(t, aborted_client, "Ghost"))
    producer.flush()  # really written to the log, then aborted
    producer.abort()
    producer.send_all([ev.client_registered(t, committed_client, "Real")])
    wait_for(lambda: log_count(stack, t) == 1, what="committed event")
    time.sleep(0.3)
    assert query(stack, "SELECT id::text FROM read.clients WHERE tenant_id = %s", (t,)) == \
        [(committed_client,)]
    assert log_count(stack, t) == 1
    assert not query(stack, "SELECT 1 FROM read.dead_letters WHERE tenant_id = %s", (t,))


def metric(daemon, name):
    m = re.search(rf"^{name} (\d+)$", daemon.get("/metrics").text, re.M)
    return int(m.group(1)) if m else None


def test_bad_records_are_dead_lettered_and_the_partition_moves_on(stack, projector):
    t = ev.new_id()
    before = metric(projector, "vetpms_projector_dead_letters_total")
    assert before is not None
    raw = ev.EventProducer(stack.brokers)  # plain producer: records straight into the topic
    unknown = ev.envelope("SomethingHappened", t, "client", ev.new_id(), 1, {"x": 1})
    orphan = ev.patient_registered(t, ev.new_id(), ev.new_id())  # its client does not exist
    wrong_type = ev.client_registered(t, ev.new_id())
    wrong_type["data"]["first_name"] = 42
    good_client = ev.new_id()
    bad = [raw.send(raw=b"not json {", key=t.encode()), raw.send(unknown), raw.send(orphan),
           raw.send(wrong_type)]
    good = raw.send(ev.client_registered(t, good_client, "After"))
    raw.flush()
    partitions = {raw.delivered[i][0] for i in bad + [good]}
    assert len(partitions) == 1  # same key, same partition
    wait_for(lambda: log_count(stack, t) == 1, what="the good event after the bad ones")
    assert query(stack, "SELECT first_name FROM read.clients WHERE id = %s", (good_client,)) == \
        [("After",)]
    rows = query(stack, "SELECT partition, \"offset\", tenant_id::text, error, payload "
                        "FROM read.dead_letters WHERE tenant_id = %s ORDER BY \"offset\"", (t,))
    assert [(r[0], r[1]) for r in rows] == [raw.delivered[i] for i in bad]
    assert "not JSON" in rows[0][3] and bytes(rows[0][4]) == b"not json {"
    assert "unknown event type SomethingHappened" in rows[1][3]
    assert "client" in rows[2][3] and "not found" in rows[2][3]
    assert "first_name" in rows[3][3]
    assert all(r[2] == t for r in rows)
    assert metric(projector, "vetpms_projector_dead_letters_total") >= before + 4

    c = Consumer({"bootstrap.servers": stack.brokers, "group.id": f"e2e-dlq-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["vetpms.events.dlq"])
    found = {}
    deadline = time.time() + 20
    wanted = {str(raw.delivered[i][1]) for i in bad}
    while time.time() < deadline and not wanted <= set(found):
        msg = c.poll(0.5)
        if msg is None or msg.error() or msg.key() != t.encode():
            continue
        headers = dict(msg.headers() or [])
        found[headers["source-offset"].decode()] = (headers, msg.value())
    c.close()
    assert wanted <= set(found), found
    headers, value = found[str(raw.delivered[bad[0]][1])]
    assert value == b"not json {"
    assert headers["source-partition"].decode() == str(raw.delivered[bad[0]][0])
    assert b"not JSON" in headers["error"]


def test_an_event_at_a_position_already_logged_is_a_dead_letter_not_a_duplicate(
        stack, projector, producer):
    """event_log is deduplicated by event id (a replay is a no-op). A row of
    another event at the same (partition, offset) (a recreated topic, another
    topic projected into the schema, rows written by hand as test_reader.py
    does) must not pass for a duplicate: the event was skipped in silence,
    neither applied nor dead-lettered, and its position committed past it."""
    t = ev.new_id()
    producer.send_all([ev.tenant_provisioned(t)])
    wait_for(lambda: log_count(stack, t) == 1, what="the tenant")  # its commit marker too
    part = kafka_partition.partition(t, stack.partitions)
    c = Consumer({"bootstrap.servers": stack.brokers, "group.id": f"e2e-wm-{uuid.uuid4()}"})
    _, taken = c.get_watermark_offsets(TopicPartition(ev.TOPIC, part), timeout=10)
    c.close()
    other_tenant, other_event = ev.new_id(), ev.new_id()
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        su.execute("INSERT INTO read.event_log (tenant_id, event_id, partition, \"offset\", type,"
                   " v, aggregate, aggregate_id, seq, command_id, actor, at, envelope) VALUES"
                   " (%s, %s, %s, %s, 'ClientRegistered', 1, 'client', %s, 1, %s, 'e2e', now(),"
                   " '{}')", (other_tenant, other_event, part, taken, ev.new_id(), ev.new_id()))
    dup_before = metric(projector, "vetpms_projector_events_duplicate_total") or 0
    raw = ev.EventProducer(stack.brokers)  # plain producer: the very next offsets
    lost, after = ev.new_id(), ev.new_id()
    i = raw.send(ev.client_registered(t, lost, "Taken"))
    j = raw.send(ev.client_registered(t, after, "After"))
    raw.close()
    assert raw.delivered[i] == (part, taken), "another record took the position: proves nothing"
    wait_for(lambda: query(stack, "SELECT 1 FROM read.clients WHERE id = %s", (after,)),
             what="the event after the taken position")
    rows = query(stack, "SELECT partition, \"offset\", error FROM read.dead_letters "
                        "WHERE tenant_id = %s", (t,))
    skipped = (metric(projector, "vetpms_projector_events_duplicate_total") or 0) - dup_before
    assert [(r[0], r[1]) for r in rows] == [(part, taken)], \
        f"event at {part}:{taken} neither applied nor dead-lettered ({skipped} counted duplicate)"
    assert "event_log_partition_offset_key" in rows[0][2], rows[0][2]
    assert not query(stack, "SELECT 1 FROM read.clients WHERE id = %s", (lost,))
    assert raw.delivered[j] == (part, taken + 1)
    assert query(stack, "SELECT event_id::text FROM read.event_log WHERE partition = %s"
                        " AND \"offset\" = %s", (part, taken)) == [(other_event,)]
    assert skipped == 0


def test_progress_is_notified_with_the_next_offset(stack, projector, producer):
    t = ev.new_id()
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as listener:
        listener.execute("LISTEN vetpms_progress")
        producer.send_all([ev.tenant_provisioned(t)])
        partition, offset = producer.delivered[-1]
        expected = f"{partition}:{offset + 1}"
        seen = []
        listener.add_notify_handler(lambda n: seen.append((n.channel, n.payload)))
        deadline = time.time() + 20
        while time.time() < deadline and ("vetpms_progress", expected) not in seen:
            listener.execute("SELECT 1")  # notifications arrive with any round trip
            time.sleep(0.05)
        assert ("vetpms_progress", expected) in seen, seen
    stored = query(stack, "SELECT next_offset FROM read.projection_offsets "
                          "WHERE topic = 'vetpms.events' AND partition = %s", (partition,))
    assert stored[0][0] >= offset + 1


EO_TOPIC = "vetpms.e2e.exactly-once"
EO_TABLES = {
    "tenants": "*", "staff": "*", "clients": "*", "patients": "*", "weights": "*",
    "allergies": "*", "conditions": "*", "event_log": "*",
    "dead_letters": "partition, \"offset\", tenant_id, error, payload",
    "projection_offsets": "topic, partition, next_offset",
}


def tenant_events(t, n, provision=True, first_k=0):
    """n events of tenant t: provisioned (when provision), then clients, their
    patients and a weight each."""
    out = [ev.tenant_provisioned(t)] if provision else []
    left = n - len(out)
    k = first_k
    while left > 0:
        c, p = ev.new_id(), ev.new_id()
        batch = [ev.client_registered(t, c, f"F{k}", f"L{k}"),
                 ev.patient_registered(t, p, c, f"P{k}", weight_g=1000 + k),
                 ev.weight_recorded(t, p, 2, 2000 + k, ev.now_rfc3339())]
        out.extend(batch[:left])
        left -= len(batch[:left])
        k += 1
    return out


EO_PER_TENANT = 2500  # 4 tenants: 10,000 events (was 20,000; the kill comes at ~1,500)


def eo_events(n_tenants=4, per_tenant=EO_PER_TENANT):
    out = []
    for _ in range(n_tenants):
        out.extend(tenant_events(ev.new_id(), per_tenant))
    return out


def stored_offsets(stack, schema, topic=EO_TOPIC):
    q = sql.SQL("SELECT partition, next_offset FROM {}.projection_offsets WHERE topic = %s"
                ).format(sql.Identifier(schema))
    try:
        return dict(query(stack, q, (topic,)))
    except psycopg.errors.UndefinedTable:
        return {}


def table_digest(stack, schema, table, columns):
    q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                "FROM (SELECT " + columns + " FROM {}.{}) x").format(
        sql.Identifier(schema), sql.Identifier(table))
    return query(stack, q)[0]


def create_topic(stack, topic):
    admin = AdminClient({"bootstrap.servers": stack.brokers})
    for f in admin.create_topics([NewTopic(topic, stack.partitions, 1)]).values():
        f.result(30)


def end_offsets(delivered):
    end = {}
    for partition, offset in delivered:
        end[partition] = max(end.get(partition, 0), offset + 1)
    return end


def rebuilt_alike(stack, topic, live_schema, check_schema, end, n, capsys, what):
    """A third projector projects the topic from offset 0 into check_schema;
    every table of live_schema must equal it row for row."""
    env = {"VETPMS_TOPIC": topic, "VETPMS_READ_SCHEMA": check_schema,
           "VETPMS_PROJECTOR_GROUP": f"e2e-{check_schema}"}
    started = time.time()
    check = stack.start_daemon("projector", port=free_port(), env=env)
    wait_for(lambda: stored_offsets(stack, check_schema, topic) == end, timeout=90,
             interval=0.1, what="checking projector at the end offsets")
    elapsed = time.time() - started
    with capsys.disabled():
        print(f"\nprojector: {n} events applied from offset 0 in {elapsed:.2f}s "
              f"({n / elapsed:.0f} events/s, including start-up and group join); {what}")
    assert check.terminate() == 0
    for table, columns in EO_TABLES.items():
        live = table_digest(stack, live_schema, table, columns)
        rebuilt = table_digest(stack, check_schema, table, columns)
        assert live == rebuilt, table


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_exactly_once_across_kill_9(stack, capsys, connections):
    topic, schema = f"{EO_TOPIC}.{connections}", f"read_eo{connections}"
    create_topic(stack, topic)
    envs = eo_events()
    assert len(envs) == 4 * EO_PER_TENANT
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-eo-{uuid.uuid4()}",
                                topic=topic)
    producer.send_all(envs, per_transaction=1000)
    end = end_offsets(producer.delivered)

    env = {"VETPMS_TOPIC": topic, "VETPMS_READ_SCHEMA": schema,
           "VETPMS_PROJECTOR_GROUP": f"e2e-eo-{connections}",
           "VETPMS_PROJECTOR_CONNECTIONS": str(connections),
           "VETPMS_KAFKA_PROPS": KILLED_MEMBER_PROPS}
    first = stack.start_daemon("projector", port=free_port(), env=env)
    wait_for(lambda: sum(stored_offsets(stack, schema, topic).values()) > 1500, timeout=60,
             interval=0.02, what="rows appearing")
    first.kill9()
    applied_at_kill = sum(stored_offsets(stack, schema, topic).values())
    assert applied_at_kill < len(envs), "projector finished before the kill: test proves nothing"

    again = stack.start_daemon("projector", port=free_port(), env=env)
    wait_for(lambda: stored_offsets(stack, schema, topic) == end, timeout=90, interval=0.2,
             what="restarted projector at the end offsets")
    assert again.terminate() == 0
    rebuilt_alike(stack, topic, schema, f"read_check{connections}", end, len(envs), capsys,
                  f"kill -9 after ~{applied_at_kill} records, {connections} connection(s)")
    (n, distinct_ids, distinct_pos), = query(
        stack, sql.SQL("SELECT count(*), count(DISTINCT event_id), "
                       "count(DISTINCT (partition, \"offset\")) FROM {}.event_log").format(
                           sql.Identifier(schema)))
    assert n == distinct_ids == distinct_pos == len(envs)
    assert query(stack, sql.SQL("SELECT count(*) FROM {}.dead_letters").format(
        sql.Identifier(schema))) == [(0,)]
    assert query(stack, sql.SQL("SELECT count(*) FROM {}.patients").format(
        sql.Identifier(schema))) == [(4 * ((EO_PER_TENANT - 1) // 3),)]  # 4 x 833 triples


def owned_partitions(daemon):
    """The partitions a projector holds at the end of its log (assign and
    revoke lines replayed in order)."""
    owned = set()
    for line in daemon.log_lines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        m = re.match(r"partition (\d+)", entry.get("msg", ""))
        if not m:
            continue
        if entry.get("event") == "assign":
            owned.add(int(m.group(1)))
        elif entry.get("event") == "revoke":
            owned.discard(int(m.group(1)))
    return owned


def test_two_processes_in_one_group_split_the_partitions_exactly_once(stack, capsys):
    """A second projector joins the group on the same schema while the first
    is applying and events keep coming: the group splits the partitions
    between them, and every event is applied once (the positions' compare-
    and-set fences a process that still believes it owns a partition)."""
    topic, schema = "vetpms.e2e.two-processes", "read_two"
    create_topic(stack, topic)
    tenants = []
    for part in range(stack.partitions):  # one tenant on each partition
        t = ev.new_id()
        while kafka_partition.partition(t, stack.partitions) != part:
            t = ev.new_id()
        tenants.append(t)
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-two-{uuid.uuid4()}",
                                topic=topic)
    waves = [[e for t in tenants for e in tenant_events(t, 1000)]]
    producer.send_all(waves[0], per_transaction=500)

    env = {"VETPMS_TOPIC": topic, "VETPMS_READ_SCHEMA": schema,
           "VETPMS_PROJECTOR_GROUP": "e2e-two",
           "VETPMS_KAFKA_PROPS": "session.timeout.ms=6000,heartbeat.interval.ms=500"}
    first = stack.start_daemon("projector", port=free_port(), env=env)
    wait_for(lambda: sum(stored_offsets(stack, schema, topic).values()) > 500, timeout=60,
             interval=0.02, what="the first projector applying")
    second = stack.start_daemon("projector", port=free_port(), env=env)
    # events keep coming while the group rebalances
    for k in range(1, 4):
        wave = [e for t in tenants for e in tenant_events(t, 200, False, k * 1000)]
        waves.append(wave)
        producer.send_all(wave, per_transaction=100)
    wait_for(lambda: owned_partitions(first) and owned_partitions(second), timeout=60,
             what="both projectors holding partitions",
             explain=lambda: first.log_tail(10) + "\n" + second.log_tail(10))
    # and after the split: every partition gets events, so both apply some
    wave = [e for t in tenants for e in tenant_events(t, 300, False, 9000)]
    waves.append(wave)
    producer.send_all(wave, per_transaction=100)
    end = end_offsets(producer.delivered)
    wait_for(lambda: stored_offsets(stack, schema, topic) == end, timeout=90, interval=0.2,
             what="both projectors at the end offsets")

    mine, theirs = owned_partitions(first), owned_partitions(second)
    assert mine and theirs and not mine & theirs, (mine, theirs)
    assert mine | theirs == set(range(stack.partitions)), (mine, theirs)
    applied = [metric(d, "vetpms_projector_events_applied_total") for d in (first, second)]
    assert all(a and a > 0 for a in applied), applied
    assert first.terminate() == 0 and second.terminate() == 0

    produced = sum(len(w) for w in waves)
    (n, distinct_ids, distinct_pos), = query(
        stack, "SELECT count(*), count(DISTINCT event_id), count(DISTINCT (partition, \"offset\"))"
               " FROM read_two.event_log")
    assert n == distinct_ids == distinct_pos == produced
    assert query(stack, "SELECT count(*) FROM read_two.dead_letters") == [(0,)]
    rebuilt_alike(stack, topic, schema, "read_two_check", end, produced, capsys,
                  f"two processes applied {applied[0]} + {applied[1]} events")
