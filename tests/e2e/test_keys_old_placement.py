"""vetctl's readers of the keys topic on a topic written before key records
went on their tenant's partition (docs/privacy.md, "Which record of a name
counts"; common/vp_keyrec_newer.c).

Before vp_keyrec_partition, the writer left key records where librdkafka's
default partitioner put their name; `vetctl keys rotate-master` and the
writer's erasure now put a name's newer record on its tenant's partition.
Such a topic holds, for one name, an older record on one partition and the
newer one on another, and partitions are read in no set order. Here the older
records sit behind some megabytes of other records on their partitions, so
every reader gets them after the newer ones, in its later fetches: a reader
that keeps the last record read of a name (vetctl until vp_keyrec_newer) rewraps
or exports the old tenant key, which is under the retired master key, and
exports an erased client's key instead of its marker. The topic's records are
made here as the writer makes them (the record format of docs/privacy.md,
"Keys"), with libsodium through ctypes; the first rotation is vetctl's own.
"""

import base64
import ctypes
import ctypes.util
import json
import os
import subprocess
import uuid
import zlib

import pytest
from confluent_kafka import Producer

import kafka_log
import kafka_partition
from stack import BIN_DIR, key_id, master_key_bytes, new_master_key

PARTITIONS = 6
FILLER_BYTES = 3 << 20  # per partition: three of librdkafka's 1 MiB partition fetches

sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
assert sodium.sodium_init() >= 0


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def wrap(kek, key, context):
    """vp_key_wrap: XChaCha20-Poly1305 (IETF), random nonce first, the
    record's name as associated data."""
    nonce = os.urandom(24)
    out = ctypes.create_string_buffer(len(key) + 16)
    out_len = ctypes.c_ulonglong(0)
    ad = context.encode()
    assert sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, ctypes.byref(out_len), key, ctypes.c_ulonglong(len(key)), ad,
        ctypes.c_ulonglong(len(ad)), None, nonce, kek) == 0
    return b64(nonce + out.raw[:out_len.value])


def record(kind, kek, key, name, created_at):
    return json.dumps({"kind": kind, "kek_id": key_id(kek), "key_id": key_id(key),
                       "wrapped": wrap(kek, key, name), "created_at": created_at},
                      separators=(",", ":"))


ERASED = '{"kind":"erased","erased_at":"2026-11-30T10:00:00.000000Z"}'


def by_name(name):
    """Where the writer left a record before vp_keyrec_partition: librdkafka's
    default partitioner (consistent_random: CRC32 of the key)."""
    return zlib.crc32(name.encode()) % PARTITIONS


def tenant_with_old_records_elsewhere(taken):
    """A tenant and a client of it whose records' by-name partitions are not
    the tenant's partition nor one in taken (the tenants' partitions, where
    no filler goes)."""
    while True:
        t, c = str(uuid.uuid4()), str(uuid.uuid4())
        home = kafka_partition.partition(t, PARTITIONS)
        old = {by_name("tenant:" + t), by_name(f"client:{t}:{c}")}
        if home not in old and home not in taken and not old & taken:
            return t, c, home, old


def master_file(directory, name, text=None):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write((text or new_master_key()) + "\n")
    return path


def read_topic(brokers, topic, timeout=60):
    """Every committed record of topic as (partition, key, value), in each
    partition's order."""
    return [(r.partition, r.key.decode(), r.value.decode() if r.value is not None else None)
            for r in kafka_log.read_records(brokers, topic, PARTITIONS, timeout)]


class OldTopic:
    """A keys topic as one written before the tenant placement, then rotated
    once (A -> B, by vetctl), then with an erasure (marker on the tenant's
    partition):
      t1: tenant:t1 under A (by name, behind filler); under B (t1's partition);
          client:t1:c1's key (by name, behind filler); its marker (t1's partition)
      t2: tenant:t2 under B (by name); client:t2:c2's key (by name, behind
          filler); its marker (t2's partition)"""

    def __init__(self, stack):
        self.stack = stack
        self.prefix = "e2e.oldkeys." + uuid.uuid4().hex[:8]
        self.keys_topic = self.prefix + ".keys"
        self.events_topic = self.prefix + ".events"
        self.dir = stack.dir
        self.a = master_file(self.dir, self.prefix + ".a.key")
        self.b = stack.master_key_file  # the stack's, current after the first rotation
        self.t1, self.c1, self.home1, old1 = tenant_with_old_records_elsewhere(set())
        self.t2, self.c2, self.home2, old2 = tenant_with_old_records_elsewhere({self.home1} | old1)
        self.k1, self.k2, self.d1, self.d2 = (os.urandom(32) for _ in range(4))
        self.behind_filler = old1 | old2
        self.p = Producer({"bootstrap.servers": stack.brokers, "enable.idempotence": True,
                           "linger.ms": 5})

    def produce(self, partition, name, value):
        errors = []
        self.p.produce(self.keys_topic, key=name, value=value, partition=partition,
                       on_delivery=lambda err, _m: err and errors.append(err))
        self.p.flush(30)
        assert not errors and len(self.p) == 0, errors

    def fill(self, partition):
        """Other tenants' client records ahead of the old ones."""
        other, errors = str(uuid.uuid4()), []
        value = json.dumps({"kind": "client", "kek_id": "0" * 16, "key_id": "0" * 16,
                            "wrapped": "A" * 4000, "created_at": "2024-01-01T00:00:00.000000Z"})
        for _ in range(FILLER_BYTES // 4000):
            self.p.produce(self.keys_topic, key=f"client:{other}:{uuid.uuid4()}", value=value,
                           partition=partition,
                           on_delivery=lambda err, _m: err and errors.append(err))
            self.p.poll(0)
        self.p.flush(60)
        assert not errors and len(self.p) == 0, errors[:3]

    def vetctl(self, *args, master=None, check=True):
        env = dict(self.stack.env, VETPMS_MASTER_KEY_FILE=master or self.b)
        r = subprocess.run([os.path.join(BIN_DIR, "vetctl"), *args], env=env, text=True,
                           capture_output=True, timeout=120)
        if check:
            assert r.returncode == 0, f"vetctl {' '.join(args)} ({r.returncode}):\n{r.stderr}"
        return r

    def build(self):
        self.vetctl("topics", "create", "--partitions", str(PARTITIONS), "--topic",
                    self.events_topic, "--dlq-topic", self.prefix + ".dlq", "--keys-topic",
                    self.keys_topic)
        a = master_key_bytes(self.a)
        b = master_key_bytes(self.b)
        for p in sorted(self.behind_filler):
            self.fill(p)
        n1, n2 = "tenant:" + self.t1, "tenant:" + self.t2
        cn1, cn2 = f"client:{self.t1}:{self.c1}", f"client:{self.t2}:{self.c2}"
        long_ago = "2025-06-01T08:00:00.000000Z"
        self.produce(by_name(n1), n1, record("tenant", a, self.k1, n1, long_ago))
        self.produce(by_name(cn1), cn1, record("client", self.k1, self.d1, cn1, long_ago))
        # the first rotation, vetctl's own: one record (t1's, under A) read
        r = self.vetctl("keys", "rotate-master", "--keys-topic", self.keys_topic,
                        "--new-key-file", self.b, master=self.a)
        assert "rewrapped 1 tenant key(s)" in r.stderr, r.stderr
        # after it: c1 erased (its marker on t1's partition, as the writer
        # puts it now); t2 and its client c2, erased too
        self.produce(self.home1, cn1, ERASED)
        self.produce(by_name(n2), n2, record("tenant", b, self.k2, n2, long_ago))
        self.produce(by_name(cn2), cn2, record("client", self.k2, self.d2, cn2, long_ago))
        self.produce(self.home2, cn2, ERASED)
        return self


@pytest.fixture(scope="module")
def old_topic(stack):
    return OldTopic(stack).build()


def test_the_topic_is_laid_out_old_style(old_topic):
    """What the other tests stand on: for t1 an old record under A behind the
    filler and the newer one under B on t1's partition; the client keys
    behind the filler, their markers on the tenants' partitions."""
    o = old_topic
    got = read_topic(o.stack.brokers, o.keys_topic)
    where = {}
    for p, k, v in got:
        if k.endswith((o.t1, o.t2, o.c1, o.c2)):
            where.setdefault(k, []).append((p, json.loads(v)))
    # a librdkafka consumer with the default fetch sizes (as vetctl's) gets
    # each name's newer record first: what made the last-read rule fail
    for name, home in (("tenant:" + o.t1, o.home1), (f"client:{o.t1}:{o.c1}", o.home1),
                       (f"client:{o.t2}:{o.c2}", o.home2)):
        assert [p for p, _r in where[name]] == [home, by_name(name)], (name, where[name])
    a_id, b_id = key_id(master_key_bytes(o.a)), key_id(master_key_bytes(o.b))
    # (in the order read: partitions interleave)
    t1 = where["tenant:" + o.t1]
    assert sorted((p, r["kek_id"], r["key_id"]) for p, r in t1) == sorted([
        (by_name("tenant:" + o.t1), a_id, key_id(o.k1)), (o.home1, b_id, key_id(o.k1))])
    assert by_name("tenant:" + o.t1) in o.behind_filler
    for c, t, home in ((o.c1, o.t1, o.home1), (o.c2, o.t2, o.home2)):
        name = f"client:{t}:{c}"
        assert sorted((p, r["kind"]) for p, r in where[name]) == sorted([
            (by_name(name), "client"), (home, "erased")])
        assert by_name(name) in o.behind_filler and home not in o.behind_filler


@pytest.mark.parametrize("which", [1, 2])
def test_export_carries_the_newest_tenant_key_and_the_erasure_marker(old_topic, which):
    o = old_topic
    t, c, k, d = (o.t1, o.c1, o.k1, o.d1) if which == 1 else (o.t2, o.c2, o.k2, o.d2)
    transport = master_file(o.dir, f"{o.prefix}.transport{which}.key")
    r = o.vetctl("tenant", "export", "--tenant", t, "--topic", o.events_topic,
                 "--keys-topic", o.keys_topic, "--key-file", transport, check=False)
    # before, t1: its old record (under A, read last) was taken, and its
    # rewrap from the current master key B refused
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    keys = {x["keyrec"]["name"]: x["keyrec"]["value"] for x in lines if "keyrec" in x}
    assert lines[-1]["trailer"]["keys"] == 2, lines[-1]
    assert set(keys) == {"tenant:" + t, f"client:{t}:{c}"}, keys
    tenant = json.loads(keys["tenant:" + t])
    assert (tenant["kek_id"], tenant["key_id"]) == (key_id(master_key_bytes(transport)), key_id(k))
    # the erased client's marker, never its key (before, t2: its key, read
    # last, was exported)
    assert keys[f"client:{t}:{c}"] == ERASED, keys[f"client:{t}:{c}"]
    assert key_id(d) not in r.stdout


def test_rotate_master_rewraps_each_tenants_newest_record(old_topic):
    o = old_topic
    c_file = master_file(o.dir, o.prefix + ".c.key")
    before = read_topic(o.stack.brokers, o.keys_topic)
    r = o.vetctl("keys", "rotate-master", "--keys-topic", o.keys_topic, "--new-key-file", c_file,
                 check=False)
    # before: t1's old record (under A, read last) stopped the rotation,
    # "under master key A, neither the current B nor the new C"
    assert r.returncode == 0, r.stderr
    assert "rewrapped 2 tenant key(s)" in r.stderr, r.stderr
    after = read_topic(o.stack.brokers, o.keys_topic)
    seen = set(before)
    new = [(p, k, json.loads(v)) for (p, k, v) in after if (p, k, v) not in seen]
    c_id = key_id(master_key_bytes(c_file))
    # the topic had no master record (written before it existed): the
    # rotation records C's, on partition 0 (docs/privacy.md, "Start-up refusal")
    assert [(p, r["kind"], r["kek_id"]) for p, k, r in new if k == "master"] == [
        (0, "master", c_id)]
    new = [(p, k, r) for p, k, r in new if k != "master"]
    assert sorted((p, k, r["kek_id"], r["key_id"]) for p, k, r in new) == sorted([
        (o.home1, "tenant:" + o.t1, c_id, key_id(o.k1)),
        (o.home2, "tenant:" + o.t2, c_id, key_id(o.k2))])
    # run again with C current: both newest records are under C already,
    # the old ones under A and B are passed over
    r = o.vetctl("keys", "rotate-master", "--keys-topic", o.keys_topic, "--new-key-file", c_file,
                 master=c_file)
    assert "every tenant key (2) is already under the new master key" in r.stderr, r.stderr
