"""The start-up read of the keys topic under one tenant writing without pause
(docs/privacy.md, "The keys topic"; common/vp_kafka_end.c).

Every key record of a tenant is on one partition of the keys topic, so a
tenant registering clients without pause keeps that partition's end moving.
A daemon starts by reading the keys topic to its end; waiting for
librdkafka's end of partition event there starved the read (a projector gave
up after 60 s in test_rebuild.py). The read now ends at each partition's end
taken when it began, so a projector restarted under such load is ready, and
projects a client registered after the restart, well within that limit.
"""

import threading
import time

import pytest
import requests

import readmodel
from stack import free_port, running_stack, wait_for

# the keys read gives up after 60 s (vp_keyring_follow): "well within"
READY_WITHIN_S = 30
LOADERS = 2  # threads registering clients of the one tenant, without pause


@pytest.fixture(scope="module")
def stack():
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def live(stack):
    projector, reader, writer = stack.start_all()
    tid = stack.provision(writer, "Keys End Vets", "Europe/Oslo", "NOK")
    auth = {"Authorization": "Bearer " + stack.token(["admin"], tenant=tid)}
    yield stack, {"projector": projector, "reader": reader, "writer": writer}, tid, auth
    for d in (writer, reader):
        d.terminate()


class Registering(threading.Thread):
    """New clients of one tenant, one POST after the other, until stopped:
    each adds a key record to the tenant's partition of the keys topic."""

    def __init__(self, writer, auth, name):
        super().__init__(daemon=True)
        self.writer, self.auth, self.name_ = writer, auth, name
        self.stop = threading.Event()
        self.registered, self.failures = 0, []

    def run(self):
        with requests.Session() as s:
            while not self.stop.is_set():
                r = s.post(self.writer.url + "/v1/clients",
                           json={"first_name": f"{self.name_}{self.registered}",
                                 "last_name": "Nonstop"},
                           headers=self.auth, timeout=30)
                if r.status_code == 201:
                    self.registered += 1
                else:
                    self.failures.append((r.status_code, r.text[:200]))


class Load:
    def __init__(self, writer, auth):
        self.threads = [Registering(writer, auth, f"Load{i}x") for i in range(LOADERS)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        for t in self.threads:
            t.stop.set()
        for t in self.threads:
            t.join(60)

    def registered(self):
        return sum(t.registered for t in self.threads)

    def failures(self):
        return [f for t in self.threads for f in t.failures]


def register(writer, auth, first_name):
    r = requests.post(writer.url + "/v1/clients",
                      json={"first_name": first_name, "last_name": "Marker"},
                      headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def projected(stack, client_id):
    return readmodel.query(stack, "SELECT first_name FROM read.clients WHERE id = %s",
                           (client_id,))


def test_a_projector_restarted_under_one_tenants_nonstop_load_is_ready_in_time(live):
    stack, daemons, tid, auth = live
    with Load(daemons["writer"], auth) as load:
        # the tenant's keys partition is busy before the projector stops
        wait_for(lambda: load.registered() >= 100, timeout=60, what="the load under way",
                 explain=lambda: str(load.failures()[:3]))
        daemons["projector"].terminate()
        restarted = time.monotonic()
        before = load.registered()
        projector = daemons["projector"] = stack.start_daemon("projector", port=free_port())
        projector.wait_ready(READY_WITHIN_S)
        ready_s = time.monotonic() - restarted
        during = load.registered() - before
        # a client registered after the restart, while the load goes on
        marker = register(daemons["writer"], auth, "AfterRestart")
        rows = wait_for(lambda: projected(stack, marker), what="the marker client projected",
                        timeout=max(1.0, READY_WITHIN_S - (time.monotonic() - restarted)),
                        explain=projector.log_tail)
        projected_s = time.monotonic() - restarted
    assert rows == [("AfterRestart",)]
    assert not load.failures(), load.failures()[:3]
    # the load went on while the projector read the keys topic
    assert during > 0, (during, ready_s)
    assert projected_s < READY_WITHIN_S, projected_s
    log = "\n".join(projector.log_lines())
    assert "not read to its end" not in log
    # and it projects the whole load: every client of the tenant
    total = load.registered() + 1
    wait_for(lambda: readmodel.query(stack, "SELECT count(*) FROM read.clients WHERE tenant_id = %s",
                                     (tid,))[0][0] == total,
             timeout=60, what="the load projected", explain=projector.log_tail)
    assert not readmodel.query(stack, "SELECT 1 FROM read.dead_letters WHERE tenant_id = %s", (tid,))



def test_a_tenant_export_under_its_nonstop_load_ends_at_its_start(live, tmp_path):
    """`vetctl tenant export` reads the tenant's events partition to the end
    it had when the export began (vetctl/cmd_tenant.c): waiting for an end
    of partition event there never ended while the tenant kept writing."""
    stack, daemons, tid, auth = live
    key_file = tmp_path / "transport.key"
    stack.vetctl("keys", "new-master", "--out", str(key_file))
    with Load(daemons["writer"], auth) as load:
        wait_for(lambda: load.registered() >= 50, timeout=60, what="the load under way",
                 explain=lambda: str(load.failures()[:3]))
        marker = register(daemons["writer"], auth, "BeforeExport")
        started = time.monotonic()
        r = stack.vetctl("tenant", "export", "--tenant", tid, "--key-file", str(key_file))
        took = time.monotonic() - started
        during = load.registered()
    assert not load.failures(), load.failures()[:3]
    lines = r.stdout.splitlines()
    assert took < READY_WITHIN_S, took
    # the marker, acknowledged before the export began, is in the file
    assert any(marker in line for line in lines)
    assert '"trailer"' in lines[-1]
    assert during > 0
