"""`projector rebuild`: the whole log is projected into a fresh schema while the
live projector, the reader and the writer keep working, then the two schemas
are swapped in one transaction (blue/green). Afterwards the read model is what
the log says (damage done by hand is gone), every event is in it exactly once,
the live projector goes on applying new events into the swapped-in schema, and
the reader and analysts keep their access."""

import subprocess
import threading
import time

import psycopg
import pytest
import requests

import kafka_log
from stack import free_port, running_stack


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the swap replaces schema `read` of the whole
    database, which the other modules' fixtures (rows inserted by hand, their
    positions) must not see change under them."""
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def live(stack):
    projector, reader, writer = stack.start_all()
    tid = stack.provision(writer, "Rebuild Vets", "Europe/Oslo", "NOK")
    auth = {"Authorization": "Bearer " + stack.token(["admin"], tenant=tid)}
    yield projector, reader, writer, tid, auth
    for d in (writer, reader, projector):
        d.terminate()


def register(writer, auth, n, prefix):
    """n clients with one patient each; returns the patient ids and the last token."""
    patients, token = [], None
    for i in range(n):
        r = requests.post(writer.url + "/v1/clients",
                          json={"first_name": f"{prefix}{i}", "last_name": "Nordmann"},
                          headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        r = requests.post(writer.url + "/v1/patients",
                          json={"client_id": r.json()["id"], "name": f"{prefix}Pet{i}",
                                "species": "feline", "sex": "male"},
                          headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        patients.append(r.json()["id"])
        token = r.headers["X-Consistency-Token"]
    return patients, token


class Traffic(threading.Thread):
    """Commands to the writer and reads from the reader while the rebuild runs."""

    def __init__(self, writer, reader, auth):
        super().__init__(daemon=True)
        self.writer, self.reader, self.auth = writer, reader, auth
        self.stop = threading.Event()
        self.commands, self.read_statuses, self.token = 0, [], None

    def run(self):
        while not self.stop.is_set():
            r = requests.post(self.writer.url + "/v1/clients",
                              json={"first_name": f"During{self.commands}", "last_name": "Swap"},
                              headers=self.auth, timeout=30)
            if r.status_code == 201:
                self.commands += 1
                self.token = r.headers["X-Consistency-Token"]
            g = requests.get(self.reader.url + "/v1/clients", params={"search": "Nordmann"},
                             headers=self.auth, timeout=30)
            self.read_statuses.append(g.status_code)
            time.sleep(0.02)


def tenant_events(stack, tid):
    return [e for e in kafka_log.events(stack.brokers) if e.get("tenant_id") == tid]


def test_rebuild_swaps_in_a_fresh_schema_without_stopping_anything(stack, live):
    projector, reader, writer, tid, auth = live
    patients, token = register(writer, auth, 20, "Before")
    r = requests.get(f"{reader.url}/v1/patients/{patients[0]}", headers=auth,
                     params={"consistent_with": token}, timeout=30)
    assert r.status_code == 200, r.text

    # damage the live read model by hand: the rebuild must not carry it over
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        su.execute("UPDATE read.patients SET name = 'DAMAGED' WHERE id = %s", (patients[0],))
        su.execute("DELETE FROM read.patients WHERE id = %s", (patients[1],))

    traffic = Traffic(writer, reader, auth)
    traffic.start()
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"])
    try:
        code = rebuild.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        rebuild.terminate()
        code = "timeout"
    finally:
        traffic.stop.set()
        traffic.join(60)
    assert code == 0, "\n".join(ln for ln in rebuild.log_lines() if "\"batch\"" not in ln)[-3000:]
    assert traffic.commands > 0
    # a query caught by the swap may fail once (503, retryable: its plan was
    # made against the dropped tables); the reader serves on at once
    assert traffic.read_statuses.count(200) >= len(traffic.read_statuses) - 2
    assert set(traffic.read_statuses) <= {200, 503}, \
        [ln for ln in reader.log_lines() if "query_failed" in ln][:3]
    # every pooled session of every reader thread serves every kind of query
    # against the swapped-in tables (none keeps statements made for the old)
    paths = ["/v1/clients?search=Nordmann", "/v1/patients", f"/v1/patients/{patients[2]}",
             "/v1/clients", "/v1/staff", "/v1/events",
             "/v1/appointments"]
    failed = [(p, r.status_code, r.text[:200]) for p in paths for _ in range(30)
              for r in [requests.get(reader.url + p, headers=auth, timeout=30)]
              if r.status_code != 200]
    assert not failed, (failed[:3], [ln for ln in reader.log_lines() if "query_failed" in ln][-3:])
    assert "schema read_next is live as read" in "\n".join(rebuild.log_lines())

    # the live projector goes on in the swapped-in schema
    after, token = register(writer, auth, 3, "After")
    r = requests.get(f"{reader.url}/v1/patients/{after[-1]}", headers=auth,
                     params={"consistent_with": token}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{reader.url}/v1/patients/{patients[0]}", headers=auth, timeout=30)
    assert r.json()["name"] == "BeforePet0"
    assert requests.get(f"{reader.url}/v1/patients/{patients[1]}", headers=auth,
                        timeout=30).status_code == 200
    found = requests.get(f"{reader.url}/v1/patients", params={"search": "AfterPet2"},
                         headers=auth, timeout=30).json()["data"]
    assert after[-1] in {p["id"] for p in found}

    # every event of the tenant exactly once, nothing else
    logged = tenant_events(stack, tid)
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        ids = [r[0] for r in su.execute("SELECT event_id::text FROM read.event_log WHERE tenant_id = %s",
                                        (tid,)).fetchall()]
        schemas = {r[0] for r in su.execute("SELECT nspname FROM pg_namespace WHERE nspname"
                                            " IN ('read', 'read_next', 'read_retired')").fetchall()}
    assert sorted(ids) == sorted(e["id"] for e in logged)
    assert schemas == {"read"}

    # the roles kept their access: the reader serves (above), analysts query
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as an:
        with an.transaction():
            an.execute("SELECT set_config('vetpms.tenant_id', %s, true)", (tid,))
            n = an.execute("SELECT count(*) FROM read.clients").fetchone()[0]
    assert n == 23 + traffic.commands
    assert projector.proc.poll() is None
