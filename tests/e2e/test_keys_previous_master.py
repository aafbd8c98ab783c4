"""The zero-downtime master key rotation (docs/privacy.md, "Key operations";
issue 18 item 4), on the real stack: every daemon may hold the previous
master key besides the current one (VETPMS_MASTER_KEY_PREVIOUS_FILE,
--master-key-previous-file, VETPMS_MASTER_KEY_PREVIOUS) and then reads tenant
records wrapped under either, while everything new is wrapped under the
current one only.

One stack, one procedure, in order: a clinic under master key A with sealed
clients; a new key B; a daemon given B alone refuses to start (the records
are under A); writer, projector and reader restarted one at a time with
current B and previous A all start, a new tenant's key is wrapped under B,
new clients of the old and the new tenant and an update of an old client are
sealed, projected and read back in plain text; `vetctl tenant export` of the
old tenant needs the previous key in that window; `vetctl keys rotate-master`
A -> B rewraps the old tenant's key only; all three restarted with B alone
start, serve every client, and a whole-log rebuild under B alone gives the
same read model row for row."""

import json
import os
import re
import subprocess
import time
import uuid

import pytest
import requests

import kafka_log
import readmodel
from stack import BIN_DIR, free_port, key_id, master_key_bytes, running_stack

KEYS_TOPIC = "vetpms.keys"
HOLDS_B_ONLY = ("wrapped under master key {a}, but this daemon holds master key {b}: "
                "wrong VETPMS_MASTER_KEY_FILE")


def key_id_of_file(path):
    """vp_key_id of the key in path."""
    return key_id(master_key_bytes(path))


def keys_topic(brokers, partitions=6, timeout=60):
    """Every committed record of the keys topic as (name, value dict), in each
    partition's order."""
    return [(r.key.decode(), json.loads(r.value) if r.value else None)
            for r in kafka_log.read_records(brokers, KEYS_TOPIC, partitions, timeout)]


def tenant_keks(brokers, tenant):
    """The kek_id of each record of tenant:<tenant>, in topic order."""
    return [v["kek_id"] for k, v in keys_topic(brokers) if k == "tenant:" + tenant]


def person(tag):
    return {"first_name": "Rotia" + tag, "last_name": "Keyworth" + tag,
            "email": f"rotia.{tag.lower()}@example-rotation.org", "phone": "+33 1 23 45 67 89",
            "address": f"{tag} Rotation Street"}


class Site:
    """The stack's running writer, projector and reader, restarted one at a
    time with the master keys given."""

    def __init__(self, stack):
        self.stack = stack
        self.admin = {"Authorization": "Bearer " + stack.token("platform-admin")}
        self.writer = self.projector = self.reader = None

    @staticmethod
    def ready(d):
        try:
            d.wait_ready(120)
        except requests.ConnectionError:  # it answered /healthz, then exited
            d.proc.wait(timeout=30)
            raise AssertionError(f"{d.name} exited {d.proc.returncode}:\n{d.log_tail()}")
        return d

    def restart(self, name, env=None, args=()):
        self.restart_all((name,), env, args)

    def restart_all(self, names, env=None, args=()):
        """Each one stopped, then all started at once and each waited for:
        where no daemon must keep serving meanwhile (a start is seconds,
        mostly waiting on Kafka and PostgreSQL, not on the CPU)."""
        attrs = [{"cmd-writer": "writer", "projector": "projector",
                  "query-reader": "reader"}[name] for name in names]
        for attr in attrs:
            old = getattr(self, attr)
            if old is not None:
                assert old.terminate() == 0, old.log_tail()
        started = [self.stack.start_daemon(name, port=free_port(), env=env, args=args)
                   for name in names]
        for attr, d in zip(attrs, started):
            setattr(self, attr, self.ready(d))

    def auth(self, tenant):
        return {"Authorization": "Bearer " + self.stack.token(["admin", "vet"], tenant=tenant)}

    def new_tenant(self, name):
        r = requests.post(self.writer.url + "/v1/tenants",
                          json={"name": name, "timezone": "Europe/Paris", "currency": "EUR"},
                          headers=self.admin, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def register(self, tenant, body):
        r = requests.post(self.writer.url + "/v1/clients", json=body, headers=self.auth(tenant),
                          timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.headers["X-Consistency-Token"]

    def update(self, tenant, client, body):
        r = requests.patch(self.writer.url + "/v1/clients/" + client, json=body,
                           headers=self.auth(tenant), timeout=30)
        assert r.status_code == 200, r.text
        return r.headers["X-Consistency-Token"]

    def read(self, tenant, client, token=None, timeout=60):
        """The client as read at or after token. A 504 (the reader's 2 s wait
        for the token ran out) is asked again: a projector just restarted may
        not hold its partitions yet when /readyz says ready (PostgreSQL and
        Kafka reachable), and on a loaded machine its group join took longer
        than the reader waits (CI, 2026-12-01). What is checked is that the
        command is projected and opens, not how soon."""
        params = {"consistent_with": token} if token else {}
        deadline = time.monotonic() + timeout
        while True:
            r = requests.get(self.reader.url + "/v1/clients/" + client, params=params,
                             headers=self.auth(tenant), timeout=30)
            if r.status_code != 504 or time.monotonic() > deadline:
                break
        assert r.status_code == 200, r.text
        return r.json()


def exits_saying(daemon, text, timeout=90):
    code = daemon.proc.wait(timeout=timeout)
    log = "\n".join(daemon.log_lines())
    assert code != 0 and text in log, log[-3000:]
    return log


def key_file(stack, name):
    path = os.path.join(stack.dir, name)
    r = stack.vetctl("keys", "new-master", "--out", path)
    assert r.stdout == "" and os.stat(path).st_mode & 0o777 == 0o600
    return path


@pytest.fixture(scope="module")
def stack():
    with running_stack() as s:
        yield s


def same(got, body):
    return all(got[f] == body[f] for f in body)


def test_daemons_holding_the_previous_key_rotate_the_master_key_without_downtime(stack):
    site = Site(stack)
    a_file = stack.master_key_file
    site.restart_all(("projector", "query-reader", "cmd-writer"))  # under A, the stack's own key
    a_id = key_id_of_file(a_file)
    old_tenant = site.new_tenant("Rotation Vets (before)")
    clients = {}  # id: (tenant, body that must read back)
    for tag in ("Aa", "Ab"):
        body = person(tag)
        cid, token = site.register(old_tenant, body)
        assert same(site.read(old_tenant, cid, token), body)
        clients[cid] = (old_tenant, body)
    assert tenant_keks(stack.brokers, old_tenant) == [a_id]
    # a command with an Idempotency-Key: its command-hash is a MAC under A's
    # command key (docs/decisions.md § The command hash in the log is a MAC)
    keyed = dict(site.auth(old_tenant), **{"Idempotency-Key": f"rotation-{uuid.uuid4()}"})
    retried = dict(person("Ar"), email="rotia.ar@example-retry.org")  # not counted below

    def register_keyed(body):
        return requests.post(site.writer.url + "/v1/clients", json=body, headers=keyed,
                             timeout=30)

    first = register_keyed(retried)
    assert first.status_code == 201, first.text

    # (a) the new key; a daemon given it alone before the rotation refuses to
    # start, naming both ids (today's behaviour, kept)
    b_file = key_file(stack, "b.key")
    b_id = key_id_of_file(b_file)
    b_only = {"VETPMS_MASTER_KEY_FILE": b_file}
    refusing = [stack.start_daemon(name, port=free_port(), env=b_only)
                for name in ("projector", "query-reader", "cmd-writer")]
    for d in refusing:
        exits_saying(d, HOLDS_B_ONLY.format(a=a_id, b=b_id))

    # (b) each daemon restarted in turn with current B, previous A, each way
    # of giving the previous key once; the others keep serving meanwhile
    with open(a_file) as f:
        a_text = f.read().strip()
    site.restart("cmd-writer", env=dict(b_only, VETPMS_MASTER_KEY_PREVIOUS_FILE=a_file))
    site.restart("projector", env=b_only, args=["--master-key-previous-file", a_file])
    site.restart("query-reader", env=dict(b_only, VETPMS_MASTER_KEY_PREVIOUS=a_text))
    for d in (site.writer, site.projector, site.reader):
        assert a_text not in "\n".join(d.log_lines())  # never logged
    # the writer under B matches the retry under A's command key (previous)
    again = register_keyed(retried)
    assert again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json()["id"] == first.json()["id"]
    assert register_keyed(dict(retried, phone=None)).status_code == 409
    # every client of before still reads back; an old client's update is
    # sealed under its tenant's key (record under A) and opened again
    for cid, (tenant, body) in clients.items():
        assert same(site.read(tenant, cid), body)
    moved = next(iter(clients))
    change = {"email": "moved@example-rotation.org", "address": "1 After Street"}
    token = site.update(old_tenant, moved, change)
    clients[moved][1].update(change)
    assert same(site.read(old_tenant, moved, token), clients[moved][1])
    # something new: a new tenant's key is wrapped under B only; new clients
    # of both tenants are sealed, projected and read back in plain text
    new_tenant = site.new_tenant("Rotation Vets (during)")
    for tenant, tag in ((old_tenant, "Ac"), (new_tenant, "Ba"), (new_tenant, "Bb")):
        body = person(tag)
        cid, token = site.register(tenant, body)
        assert same(site.read(tenant, cid, token), body)
        clients[cid] = (tenant, body)
    # (a tenant's key is made with its first client)
    assert tenant_keks(stack.brokers, new_tenant) == [b_id]
    assert tenant_keks(stack.brokers, old_tenant) == [a_id]  # untouched until the rotation

    # a tenant export in this window needs the previous key too
    transport = key_file(stack, "transport.key")
    export = ("tenant", "export", "--tenant", old_tenant, "--key-file", transport)
    env_b = dict(stack.env, VETPMS_MASTER_KEY_FILE=b_file)
    r = run_vetctl(stack, env_b, *export)
    assert r.returncode == 1 and (f"wrapped under master key {a_id}, but vetctl holds master "
                                  f"key {b_id}:") in r.stderr, r.stderr
    r = run_vetctl(stack, dict(env_b, VETPMS_MASTER_KEY_PREVIOUS_FILE=a_file), *export)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    rec = [json.loads(x["keyrec"]["value"]) for x in lines
           if "keyrec" in x and x["keyrec"]["name"] == "tenant:" + old_tenant]
    assert [v["kek_id"] for v in rec] == [key_id_of_file(transport)]

    # (c) the rotation A -> B: only the old tenant's key is rewrapped, the
    # new tenant's is already under B
    r = run_vetctl(stack, dict(stack.env, VETPMS_MASTER_KEY_FILE=a_file), "keys",
                   "rotate-master", "--new-key-file", b_file)
    assert r.returncode == 0 and "rewrapped 1 tenant key(s)" in r.stderr, r.stderr
    assert tenant_keks(stack.brokers, old_tenant) == [a_id, b_id]
    assert tenant_keks(stack.brokers, new_tenant) == [b_id]

    # (d) every daemon restarted with B alone: they start and every client,
    # of the old tenant and of the new, reads back; new writes still work
    site.restart_all(("cmd-writer", "projector", "query-reader"), env=b_only)
    for cid, (tenant, body) in clients.items():
        assert same(site.read(tenant, cid), body)
    for tenant, tag in ((old_tenant, "Ad"), (new_tenant, "Bc")):
        body = person(tag)
        cid, token = site.register(tenant, body)
        assert same(site.read(tenant, cid, token), body)
        clients[cid] = (tenant, body)
    # and a whole-log rebuild under B alone opens every sealed event again
    assert readmodel.query(stack, "SELECT count(*) FROM read.clients WHERE email LIKE %s",
                           ("%@example-rotation.org",)) == [(len(clients),)]
    before = readmodel.table_digests(stack, "read")
    readmodel.run_rebuild(stack, env=b_only)
    assert readmodel.table_digests(stack, "read") == before
    # A alone is now refused, naming both ids the other way round
    d = stack.start_daemon("projector", port=free_port())
    exits_saying(d, f"wrapped under master key {b_id}, but this daemon holds master key {a_id}")


def run_vetctl(stack, env, *args):
    """vetctl with env of its own (the stack's vetctl() takes the stack's)."""
    return subprocess.run([os.path.join(BIN_DIR, "vetctl"), *args], env=env, text=True,
                          capture_output=True, timeout=120)


def test_a_previous_key_equal_to_the_current_one_is_refused_at_start(stack):
    """A mix-up of files, not a rotation: said at start, the key not logged."""
    with open(stack.master_key_file) as f:
        text = f.read().strip()
    for name in ("projector", "query-reader", "cmd-writer"):
        d = stack.start_daemon(name, port=free_port(),
                               env={"VETPMS_MASTER_KEY_PREVIOUS_FILE": stack.master_key_file})
        log = exits_saying(d, "the previous master key is the current one")
        assert text not in log
    loose = os.path.join(stack.dir, "loose-previous.key")
    with open(loose, "w") as f:
        f.write(text + "\n")
    os.chmod(loose, 0o644)
    d = stack.start_daemon("projector", port=free_port(),
                           env={"VETPMS_MASTER_KEY_PREVIOUS_FILE": loose})
    log = exits_saying(d, "previous master key file")
    assert re.search(r"readable by its owner only", log)
