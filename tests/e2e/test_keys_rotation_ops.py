"""The master key operations around a rotation (docs/operations.md, "Rotating
the master key without downtime"; issue 18 item 4), on the real stack:

- `vetctl keys rotate-master` with exactly the daemons' settings of step 2
  (current = NEW, previous = OLD, no --new-key-file) rewraps from OLD to NEW;
  with --new-key-file and a previous key, with no old key at all, or with a
  tenant record under neither key, it refuses and writes nothing;
- `vetctl keys status` counts the tenant key records still in the keys topic
  under each master key: OLD keeps its superseded records after the
  rotation, until compaction removes them (forced here: small segments, a
  record after segment.ms to roll them, a broker cleaner that looks every
  second), and then shows none: the moment OLD may be destroyed;
- `vetctl tenant export` takes the master key the record names (current or
  previous), and a record under neither is refused naming the ids, as the
  daemons do."""

import json
import os
import subprocess
import time

import pytest
import requests
from confluent_kafka.admin import AdminClient, ConfigResource

import kafka_log
from stack import BIN_DIR, free_port, key_id, master_key_bytes, running_stack

KEYS_TOPIC = "vetpms.keys"


def id_of(path):
    return key_id(master_key_bytes(path))


def keys_records(stack):
    """Every committed record of the keys topic as (partition, offset, key,
    value), by partition and offset."""
    return sorted((r.partition, r.offset, r.key.decode(), r.value)
                  for r in kafka_log.read_records(stack.brokers, KEYS_TOPIC, stack.partitions, 60))


def tenant_keks(stack):
    """{tenant record name: [kek_id, ...]} in topic order."""
    out = {}
    for _p, _o, k, v in keys_records(stack):
        if k.startswith("tenant:") and v is not None:
            out.setdefault(k, []).append(json.loads(v)["kek_id"])
    return out


def vetctl(stack, env, *args):
    """vetctl with the stack's settings but the master keys of env only."""
    e = {k: v for k, v in stack.env.items() if not k.startswith("VETPMS_MASTER_KEY")}
    e.update(env)
    return subprocess.run([os.path.join(BIN_DIR, "vetctl"), *args], env=e, text=True,
                          capture_output=True, timeout=180)


def status(stack, env):
    r = vetctl(stack, env, "keys", "status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout  # one JSON object on one line
    return json.loads(lines[0])


def new_key(stack, name):
    path = os.path.join(stack.dir, name)
    r = stack.vetctl("keys", "new-master", "--out", path)
    assert r.stdout == ""
    return path


class Clinic:
    """The writer, restarted with the master keys given, and its tenants."""

    def __init__(self, stack):
        self.stack = stack
        self.admin = {"Authorization": "Bearer " + stack.token("platform-admin")}
        self.writer = None

    def restart_writer(self, env=None):
        if self.writer is not None:
            assert self.writer.terminate() == 0, self.writer.log_tail()
        self.writer = self.stack.start_daemon("cmd-writer", port=free_port(), env=env)
        self.writer.wait_ready(120)

    def tenant_with_a_client(self, name):
        """A new tenant; its first client makes its key record."""
        r = requests.post(self.writer.url + "/v1/tenants",
                          json={"name": name, "timezone": "Europe/Paris", "currency": "EUR"},
                          headers=self.admin, timeout=30)
        assert r.status_code == 201, r.text
        tenant = r.json()["id"]
        self.client(tenant)
        return tenant

    def client(self, tenant):
        auth = {"Authorization": "Bearer " + self.stack.token(["admin", "vet"], tenant=tenant)}
        r = requests.post(self.writer.url + "/v1/clients",
                          json={"first_name": "Keya", "last_name": "Statusworth",
                                "email": "keya@example-keyops.org"},
                          headers=auth, timeout=30)
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def site():
    # the broker's cleaner looks for dirty logs every second (15 s by
    # default): compaction within the test's deadline once a segment rolled
    broker = {"VETPMS_KAFKA_EXTRA_CONFIG": "log.cleaner.backoff.ms=1000"}
    with running_stack(env=broker) as stack:
        clinic = Clinic(stack)
        clinic.restart_writer()  # under the stack's key, OLD
        old = stack.master_key_file
        clinic.tenants = [clinic.tenant_with_a_client(f"Keyops Vets {i}") for i in (1, 2)]
        clinic.old = old
        clinic.new = new_key(stack, "new.key")
        # step 2 for the writer: current NEW, previous OLD; a new tenant's
        # key is made under NEW
        clinic.step2 = {"VETPMS_MASTER_KEY_FILE": clinic.new,
                        "VETPMS_MASTER_KEY_PREVIOUS_FILE": old}
        clinic.restart_writer(clinic.step2)
        clinic.tenants.append(clinic.tenant_with_a_client("Keyops Vets 3"))
        yield clinic


def test_rotate_master_refuses_settings_it_cannot_follow_and_writes_nothing(site):
    stack = site.stack
    before = keys_records(stack)
    # --new-key-file and a previous key: which one is old?
    r = vetctl(stack, site.step2, "keys", "rotate-master", "--new-key-file", site.new)
    assert r.returncode == 2 and "which key is the old one?" in r.stderr, r.stderr
    # no old key at all
    r = vetctl(stack, {"VETPMS_MASTER_KEY_FILE": site.new}, "keys", "rotate-master")
    assert r.returncode == 2 and "rotate-master needs the old master key" in r.stderr, r.stderr
    # records under neither key: named, nothing rewrapped
    c, d = new_key(stack, "c.key"), new_key(stack, "d.key")
    r = vetctl(stack, {"VETPMS_MASTER_KEY_FILE": c, "VETPMS_MASTER_KEY_PREVIOUS_FILE": d},
               "keys", "rotate-master")
    assert r.returncode == 1, r.stderr
    assert f"neither the previous {id_of(d)} nor the current {id_of(c)}" in r.stderr, r.stderr
    assert keys_records(stack) == before


def test_export_takes_the_master_key_the_record_names(site):
    stack = site.stack
    transport = new_key(stack, "transport.key")
    export = ("tenant", "export", "--tenant", site.tenants[2], "--key-file", transport)
    # the tenant made during step 2 is under NEW: with NEW as the previous key
    # and another as current, the record's kek_id picks NEW
    c = new_key(stack, "c2.key")
    r = vetctl(stack, {"VETPMS_MASTER_KEY_FILE": c, "VETPMS_MASTER_KEY_PREVIOUS_FILE": site.new},
               *export)
    assert r.returncode == 0, r.stderr
    tenant_line = [json.loads(x)["keyrec"] for x in r.stdout.splitlines()
                   if '"keyrec"' in x and f'"tenant:{site.tenants[2]}"' in x]
    assert [json.loads(x["value"])["kek_id"] for x in tenant_line] == [id_of(transport)]
    # under neither key held: refused with the ids, as a daemon says it
    d = new_key(stack, "d2.key")
    r = vetctl(stack, {"VETPMS_MASTER_KEY_FILE": c, "VETPMS_MASTER_KEY_PREVIOUS_FILE": d},
               *export)
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert (f"the key of tenant:{site.tenants[2]} is wrapped under master key "
            f"{id_of(site.new)}, but vetctl holds master key {id_of(c)} and previous master "
            f"key {id_of(d)}") in r.stderr, r.stderr


def alter_keys_topic(stack, segment_ms):
    """The keys topic's configuration as vetctl topics create makes it, with
    segment.ms changed (alter_configs sets the whole set)."""
    admin = AdminClient({"bootstrap.servers": stack.brokers})
    res = ConfigResource(ConfigResource.Type.TOPIC, KEYS_TOPIC,
                         set_config={"cleanup.policy": "compact", "segment.ms": str(segment_ms),
                                     "min.cleanable.dirty.ratio": "0.01"})
    admin.alter_configs([res])[res].result(timeout=30)


def test_rotation_with_the_daemons_settings_and_status_until_compaction(site):
    stack = site.stack
    old_id, new_id = id_of(site.old), id_of(site.new)
    t1, t2, t3 = ("tenant:" + t for t in site.tenants)
    # before: two tenants under OLD, the one made in step 2 under NEW
    s = status(stack, site.step2)
    assert s["held"] == {"current": new_id, "previous": old_id}
    assert s["master_keys"] == {old_id: {"records": 2, "newest": 2, "held": "previous"},
                                new_id: {"records": 1, "newest": 1, "held": "current"}}, s
    assert (s["topic"], s["tenants"], s["records"], s["unnamed"]) == (KEYS_TOPIC, 3, 3, 0)

    # step 3 with the very settings of step 2
    r = vetctl(stack, site.step2, "keys", "rotate-master")
    assert r.returncode == 0, r.stderr
    assert f"rewrapped 2 tenant key(s) under the current master key {new_id}" in r.stderr
    assert "once `vetctl keys status` shows no record under it" in r.stderr
    keks = tenant_keks(stack)
    assert (keks[t1], keks[t2], keks[t3]) == ([old_id, new_id], [old_id, new_id], [new_id])
    r = vetctl(stack, site.step2, "keys", "rotate-master")
    assert r.returncode == 0, r.stderr
    assert f"every tenant key (3) is already under the current master key {new_id}" in r.stderr

    # the superseded records under OLD are still in the topic: not yet
    # (status without any key held: it needs none)
    s = status(stack, {})
    assert s["held"] == {"current": None, "previous": None}
    assert s["master_keys"] == {old_id: {"records": 2, "newest": 0, "held": None},
                                new_id: {"records": 3, "newest": 3, "held": None}}, s
    assert s["tenants"] == 3 and s["records"] == 5

    # compaction: small segments, then records on each old tenant's
    # partition (a new client's) until one comes after segment.ms and rolls
    # the segment holding the OLD records, which the cleaner then compacts
    alter_keys_topic(stack, 1000)
    try:
        deadline = time.monotonic() + 180
        while True:
            for tenant in site.tenants[:2]:
                site.client(tenant)
            s = status(stack, {"VETPMS_MASTER_KEY_FILE": site.new})
            if old_id not in s["master_keys"] or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        alter_keys_topic(stack, 600000)
    assert old_id not in s["master_keys"], s
    assert s["master_keys"] == {new_id: {"records": 3, "newest": 3, "held": "current"}}, s
    assert s["tenants"] == 3
    # what is left is each tenant's newest record, under NEW
    keks = tenant_keks(stack)
    assert (keks[t1], keks[t2], keks[t3]) == ([new_id], [new_id], [new_id])
