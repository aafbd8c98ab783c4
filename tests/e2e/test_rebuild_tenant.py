"""`projector rebuild --tenant T` (projector/rebuild_tenant.c): one tenant's
read model rebuilt from its partition and swapped in one transaction while
the live projector keeps applying and every other tenant keeps being served.

After a random history of every command (test_property_commands.py's
generator) plus a few thousand registrations of the same tenant T, T's rows
are corrupted on purpose as the superuser (what the rebuild recovers from).
`--dry-run` reports the corruption table by table and changes nothing; the
rebuild, run while two other tenants write and read and T is read, gives T
back the rows the live projector had made before the corruption, touches no
other tenant, fails no request; and a whole-log rebuild afterwards finds the
schema equal row by row (so T's rows are what a full rebuild gives, and the
other tenants' rows what their events give)."""

import os
import subprocess
import threading
import time

import psycopg
import pytest
import requests

import events as ev
import kafka_log
import test_property_commands as prop
from stack import free_port, running_stack, wait_for
from readmodel import query, run_rebuild, table_digests, tenant_digests

EXAMPLES = int(os.environ.get("VETPMS_TENANT_REBUILD_EXAMPLES", "4"))
BULK_CLIENTS = 600  # 4 events each: T's fill crosses the lock distance (1,000)


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the test corrupts and rebuilds schema `read`."""
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port())
    writer = stack.start_daemon("cmd-writer", port=free_port())
    reader = stack.start_daemon("query-reader", port=free_port())
    for d in (projector, writer, reader):
        d.wait_ready(90)
    yield projector, writer, reader
    for d in (reader, writer, projector):
        d.terminate()


def schemas(stack):
    return {n for (n,) in query(stack, "SELECT nspname FROM pg_namespace "
                                       "WHERE nspname LIKE 'read%%'")}


def event_count(stack, tenant):
    return query(stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s",
                 (tenant,))[0][0]


class Clinic:
    """Another tenant, provisioned through the writer, with an admin token."""

    def __init__(self, stack, writer, reader, name=None, tenant=None):
        self.writer, self.reader = writer, reader
        self.id = tenant or stack.provision(writer, name, "Europe/London", "GBP")
        self.auth = {"Authorization": "Bearer " + stack.token("admin", tenant=self.id)}
        self.last_client = None
        self.last_issued = None  # the invoice of the clinic's last IssueInvoice

    def post(self, path, body):
        r = requests.post(self.writer.url + path, json=body, headers=self.auth, timeout=30)
        return r.status_code, (r.json() if 200 <= r.status_code < 300 else r.text)

    def get(self, path):
        r = requests.get(self.reader.url + path, headers=self.auth, timeout=30)
        return r.status_code, r.text


class Load(threading.Thread):
    """Writes (a client, a patient, an issued invoice: client_ledger and
    revenue_monthly rows, tables the swap also writes) and reads of one
    clinic until stopped; every answer kept as (time, what, status)."""

    def __init__(self, clinic, write=True):
        super().__init__(daemon=True)
        self.clinic, self.write = clinic, write
        self.answers = []
        self.stop = threading.Event()

    def record(self, what, status):
        self.answers.append((time.monotonic(), what, status))
        return status

    def step(self, i):
        c = self.clinic
        if self.write:
            status, client = c.post("/v1/clients", {"first_name": f"Load{i}", "last_name": "Rush"})
            if self.record("RegisterClient", status) < 300:
                c.last_client = client["id"]
                self.record("RegisterPatient", c.post("/v1/patients", {
                    "client_id": client["id"], "name": f"Pet{i}", "species": "canine",
                    "sex": "female"})[0])
                status, inv = c.post("/v1/invoices", {"client_id": client["id"]})
                if self.record("CreateInvoice", status) < 300:
                    self.record("AddInvoiceLine", c.post(f"/v1/invoices/{inv['id']}/lines", {
                        "description": "Consultation", "quantity": 1,
                        "unit_price_cents": 1000 + i})[0])
                    if self.record("IssueInvoice",
                                   c.post(f"/v1/invoices/{inv['id']}/issue", {})[0]) < 300:
                        c.last_issued = inv["id"]
        self.record("GET /v1/clients", c.get("/v1/clients?limit=5")[0])
        self.record("GET /v1/patients", c.get("/v1/patients?limit=5")[0])

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.step(i)
            except requests.RequestException as e:
                self.record(f"transport: {e}", 0)
            i += 1

    def failures(self):
        return [(what, status) for _, what, status in self.answers if not 200 <= status < 300]

    def during(self, start, end):
        return sum(1 for at, _, _ in self.answers if start <= at <= end)


@pytest.fixture(scope="module")
def world(stack, daemons):
    """T (the property test's tenant, with a clinic's worth of registrations
    on top), its rows as the live projector made them, then corrupted; two
    other clinics with a few rows each."""
    projector, writer, reader = daemons
    prop.EXAMPLES = EXAMPLES
    prop.test_every_command_answers_4xx_or_commits_an_event_the_projector_applies(
        stack, (projector, writer))
    (tenant,), = query(stack, "SELECT id::text FROM read.tenants WHERE name = 'Property Paws'")
    envs = []
    for i in range(BULK_CLIENTS):
        client, patient = ev.new_id(), ev.new_id()
        envs += [ev.client_registered(tenant, client, first=f"Bulk{i}"),
                 ev.patient_registered(tenant, patient, client, name=f"Pet{i}"),
                 ev.weight_recorded(tenant, patient, 2, 9000 + i, ev.now_rfc3339()),
                 ev.weight_recorded(tenant, patient, 3, 8000 + i, "2026-01-01T10:00:00Z")]
    before = event_count(stack, tenant)
    producer = ev.EventProducer(stack.brokers, transactional_id=f"e2e-tenant-{tenant}")
    try:
        producer.send_all(envs)
    finally:
        producer.close()
    wait_for(lambda: event_count(stack, tenant) == before + len(envs), timeout=120,
             what="the live projector to apply T's registrations",
             explain=lambda: projector.log_tail(10))
    clinics = [Clinic(stack, writer, reader, name) for name in ("Busy Paws", "Busy Claws")]
    # T has an issued invoice whatever the random history: a client_ledger row.
    # The digests below are taken only once the step's last event (its
    # IssueInvoice: one partition per tenant, applied in order) is projected,
    # or its invoice rows could land between "live" and "corrupted".
    for c in clinics + [Clinic(stack, writer, reader, tenant=tenant)]:
        Load(c).step(0)
        assert c.last_issued, "the clinic's step did not issue its invoice"
        wait_for(lambda: query(stack, "SELECT count(*) FROM read.invoices WHERE id = %s "
                                      "AND status = 'issued'",
                               (c.last_issued,))[0][0] == 1, timeout=60,
                 what="the clinic's issued invoice to be projected")
    live = tenant_digests(stack, tenant)
    assert live["event_log"][0] > 2400 and live["client_ledger"][0] > 0, live
    corrupt(stack, tenant)
    corrupted = tenant_digests(stack, tenant)
    changed = {t for t in live if live[t] != corrupted[t]}
    assert changed == CORRUPTED_TABLES, changed
    return {"tenant": tenant, "live": live, "clinics": clinics}


CORRUPTED_TABLES = {"patients", "clients", "event_log", "client_ledger",
                    "daily_appointment_stats", "weights"}


def corrupt(stack, tenant):
    """What an operator's bad UPDATE or a projector bug leaves behind: rows
    edited, lost and invented, in plain tables, the append-only ledger and
    a trigger-kept rollup (replica role: no trigger stops the superuser)."""
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE read.patients SET name = 'CORRUPT' WHERE tenant_id = %s "
                     "AND id IN (SELECT id FROM read.patients WHERE tenant_id = %s LIMIT 5)",
                     (tenant, tenant))
        conn.execute("DELETE FROM read.clients WHERE tenant_id = %s AND id IN "
                     "(SELECT id FROM read.clients WHERE tenant_id = %s "
                     "AND first_name LIKE 'Bulk%%' LIMIT 3)", (tenant, tenant))
        conn.execute("DELETE FROM read.event_log WHERE tenant_id = %s AND event_id IN "
                     "(SELECT event_id FROM read.event_log WHERE tenant_id = %s LIMIT 2)",
                     (tenant, tenant))
        conn.execute("DELETE FROM read.client_ledger WHERE tenant_id = %s AND \"offset\" = "
                     "(SELECT min(\"offset\") FROM read.client_ledger WHERE tenant_id = %s)",
                     (tenant, tenant))
        conn.execute("INSERT INTO read.daily_appointment_stats (tenant_id, local_date, total) "
                     "VALUES (%s, '1999-12-31', 7)", (tenant,))
        conn.execute("INSERT INTO read.weights SELECT w.tenant_id, w.patient_id, "
                     "gen_random_uuid(), w.weight_g + 1, w.measured_at FROM read.weights w "
                     "WHERE w.tenant_id = %s LIMIT 1", (tenant,))


def run_tenant_rebuild(stack, *args, timeout=240):
    """(exit code, log lines) of `projector rebuild <args>`."""
    proc = stack.start_daemon("projector", port=free_port(), args=["rebuild", *args])
    try:
        code = proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        code = "timeout"
    return code, proc.log_lines()


def test_a_tenant_that_is_not_a_uuid_or_not_known_is_refused_and_nothing_changes(stack, world):
    before = table_digests(stack, "read")
    code, log = run_tenant_rebuild(stack, "--tenant", "not-a-uuid")
    assert code == 2 and any("not a UUID" in ln for ln in log), log
    unknown = ev.new_id()
    code, log = run_tenant_rebuild(stack, "--tenant", unknown)
    assert code == 3 and any(f"tenant {unknown} is not known" in ln for ln in log), log
    code, log = run_tenant_rebuild(stack, "--dry-run")
    assert code == 2 and any("--dry-run needs --tenant" in ln for ln in log), log
    assert table_digests(stack, "read") == before
    assert schemas(stack) == {"read"}


def test_a_dry_run_reports_the_corrupted_tables_and_changes_nothing(stack, world):
    before = table_digests(stack, "read")
    code, log = run_tenant_rebuild(stack, "--tenant", world["tenant"], "--dry-run")
    assert code == 0, "\n".join(log[-30:])
    reported = {ln.split("\t")[0] for ln in log if "rebuilt row(s) to insert" in ln}
    assert reported == CORRUPTED_TABLES, "\n".join(log[-40:])
    patients = next(ln for ln in log if ln.startswith("patients\t"))
    assert "5 row(s) of the tenant to replace\t5 rebuilt row(s) to insert" in patients, patients
    clients = next(ln for ln in log if ln.startswith("clients\t"))
    assert "0 row(s) of the tenant to replace\t3 rebuilt row(s) to insert" in clients, clients
    assert any(f"{len(CORRUPTED_TABLES)} table(s) differ" in ln for ln in log), log[-10:]
    assert table_digests(stack, "read") == before
    assert schemas(stack) == {"read"}


def test_one_tenant_rebuilt_under_load_of_two_others_equals_a_full_rebuild(stack, daemons, world):
    projector = daemons[0]
    tenant, clinics = world["tenant"], world["clinics"]
    others = [t for (t,) in query(stack, "SELECT id::text FROM read.tenants WHERE id <> ALL(%s)",
                                  ([tenant] + [c.id for c in clinics],))]
    quiet_before = {t: tenant_digests(stack, t) for t in others}
    # T is written and read meanwhile too: its events applied by the live
    # projector during the rebuild must survive the swap, and its reads
    # answer from the old rows or the new
    t_load = Load(Clinic(stack, daemons[1], daemons[2], tenant=tenant))
    loads = [Load(c) for c in clinics]
    for load in loads + [t_load]:
        load.start()
    try:
        wait_for(lambda: all(len(load.answers) > 10 for load in loads + [t_load]), timeout=60,
                 what="the load to run")
        started = time.monotonic()
        code, log = run_tenant_rebuild(stack, "--tenant", tenant)
        ended = time.monotonic()
        wait_for(lambda: all(load.during(ended, time.monotonic() + 1) > 5 for load in loads),
                 timeout=60, what="the load to go on after the rebuild")
    finally:
        for load in loads + [t_load]:
            load.stop.set()
        for load in loads + [t_load]:
            load.join(60)
    assert code == 0, "\n".join(log[-30:])
    text = "\n".join(log)
    assert "records/s" in text and "s left" in text, text[-2000:]  # progress on stderr
    assert "rebuild_tenant_swapped" in text, text[-2000:]
    for load in loads + [t_load]:
        assert load.failures() == [], load.failures()[:10]
        assert load.during(started, ended) > 0, "no request answered during the rebuild"

    # T's corruption is gone (its rows as a whole are checked against the
    # whole-log rebuild below: T was written meanwhile)
    assert query(stack, "SELECT count(*) FROM read.patients WHERE tenant_id = %s "
                        "AND name = 'CORRUPT'", (tenant,))[0][0] == 0
    assert query(stack, "SELECT count(*) FROM read.daily_appointment_stats WHERE tenant_id = %s"
                        " AND local_date = '1999-12-31'", (tenant,))[0][0] == 0
    now = tenant_digests(stack, tenant)
    assert now["clients"][0] >= world["live"]["clients"][0]
    assert now["event_log"][0] > world["live"]["event_log"][0]
    # the tenants nobody wrote to: untouched
    assert {t: tenant_digests(stack, t) for t in others} == quiet_before
    assert schemas(stack) == {"read"}

    # every write applied (the last client of each is there),
    # then a whole-log rebuild finds every row of every tenant as it is
    for c in clinics + [t_load.clinic]:
        wait_for(lambda: query(stack, "SELECT count(*) FROM read.clients WHERE id = %s",
                               (c.last_client,))[0][0] == 1, timeout=90,
                 what="the clinic's last client to be projected",
                 explain=lambda: projector.log_tail(10))
    ids = [c.id for c in clinics] + [tenant]
    written = len({e["id"] for e in kafka_log.events(stack.brokers) if e.get("tenant_id") in ids})
    wait_for(lambda: query(stack, "SELECT count(*) FROM read.event_log "
                                  "WHERE tenant_id = ANY(%s::uuid[])", (ids,))[0][0] == written,
             timeout=90, what="every event of the clinics and T in read.event_log "
                              "(one missing: lost by the swap)",
             explain=lambda: projector.log_tail(10))
    after = table_digests(stack, "read")
    run_rebuild(stack)
    assert table_digests(stack, "read") == after

