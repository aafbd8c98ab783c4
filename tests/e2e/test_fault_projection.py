"""Faults under load on the whole stack (issue 15 item 4): while clients post
commands to the writer and read them back from the reader, PostgreSQL is
stopped and started, then frozen (SIGSTOP) and thawed, the projector is
killed with SIGKILL at random points and started again, and Kafka is killed
and restarted. Afterwards every acknowledged command is in the log exactly
once and readable, every request got a clear answer (2xx, or the contract's
503 UNAVAILABLE; a read also 404 before its write is projected) within its
deadline, and the read model equals a rebuild of the log row by row.
Its own stack: the faults would break the session's shared one."""

import os
import random
import signal
import threading
import time
import uuid

import requests

from kafka_log import events
from load import command_ids, keyed_post
from stack import KAFKA_KILLED, KILLED_MEMBER_PROPS, free_port, running_stack, tally, wait_for
from readmodel import query, run_rebuild, table_digests
from test_reader_outage import freeze_postgres, thaw_postgres

WRITERS = 3              # posting threads
READ_DEADLINE_MS = 1500  # the reader's PostgreSQL deadline
READ_ANSWER_S = READ_DEADLINE_MS / 1000 + 1.5
WRITE_ANSWER_S = 90      # a batch inside its commit when Kafka died waits for Kafka
FAULT_S = 3              # how long each outage lasts (> READ_DEADLINE_MS: reads meet it)
TAKEN = 20               # commands taken before the first fault and after each recovery
PROJECTOR_KILLS = 3
# the projectors are killed: a short session (stack.KILLED_MEMBER_PROPS) so
# that the one started next, in the same consumer group, does not wait
# librdkafka's 45 s for each killed member to be expelled
PROJECTOR_ENV = {"VETPMS_KAFKA_PROPS": KILLED_MEMBER_PROPS}
SEED = int(os.environ.get("VETPMS_FAULT_SEED", str(random.randrange(1 << 30))))


class Load:
    """Posting and reading threads with every answer recorded."""

    def __init__(self, writer, reader, token):
        self.writer, self.reader, self.token = writer, reader, token
        self.writes, self.reads, self.acked = [], [], []
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.post_loop) for _ in range(WRITERS)]
        self.threads.append(threading.Thread(target=self.read_loop))
        self.rng = random.Random(SEED)

    def headers(self, key=None):
        h = {"Authorization": f"Bearer {self.token}"}
        if key:
            h["Idempotency-Key"] = key
        return h

    def post(self, key, body):
        return keyed_post(self.writer.url + "/v1/clients", self.token, key, body,
                          WRITE_ANSWER_S)

    def post_loop(self):
        while not self.stop.is_set():
            key = str(uuid.uuid4())
            res = self.post(key, {"first_name": "Fault", "last_name": key})
            with self.lock:
                self.writes.append(res)
                if res["status"] == 201:
                    self.acked.append(res["data"]["id"])
            if res["status"] != 201:
                time.sleep(0.2)

    def read_loop(self):
        while not self.stop.is_set():
            with self.lock:
                ids = self.acked[-50:]
            if not ids:
                time.sleep(0.1)
                continue
            t0 = time.monotonic()
            try:
                r = requests.get(f"{self.reader.url}/v1/clients/{self.rng.choice(ids)}",
                                 headers=self.headers(), timeout=30)
                status = r.status_code
                code = r.json().get("error", {}).get("code") if status >= 400 else None
            except (requests.RequestException, ValueError) as e:
                status, code = type(e).__name__, None
            with self.lock:
                self.reads.append({"status": status, "code": code,
                                   "took": time.monotonic() - t0})
            time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(WRITE_ANSWER_S + 5)

    def taken_since(self, t):
        """Commands sent at or after monotonic time t and answered 201."""
        with self.lock:
            return sum(1 for w in self.writes if w["status"] == 201 and w["started"] >= t)


def pg_stopped(stack):
    stack.script("pg.sh", "stop")
    time.sleep(FAULT_S)
    stack.script("pg.sh", "start")


def pg_frozen(stack):
    pids = freeze_postgres(stack)
    try:
        time.sleep(FAULT_S)
    finally:
        thaw_postgres(pids)


def kafka_killed(stack):
    with open(os.path.join(stack.dir, "kafka", "kafka.pid")) as f:
        os.kill(int(f.read().strip()), signal.SIGKILL)
    time.sleep(FAULT_S)
    stack.script("kafka.sh", "start")


def projector_killed(stack, daemons, rng):
    """SIGKILL at a random point of its work, started again: the list of
    daemons keeps the one now running."""
    for _ in range(PROJECTOR_KILLS):
        time.sleep(rng.uniform(0.2, 2.5))
        daemons["projector"].kill9()
        daemons["projector"] = stack.start_daemon("projector", port=free_port(),
                                                  env=PROJECTOR_ENV)


def test_faults_under_load_lose_nothing_and_the_read_model_equals_a_rebuild():
    rng = random.Random(SEED)
    print(f"\nfaults: VETPMS_FAULT_SEED={SEED}")
    with running_stack(env=KAFKA_KILLED) as stack:
        daemons = {"projector": stack.start_daemon("projector", port=free_port(),
                                                   env=PROJECTOR_ENV)}
        daemons["projector"].wait_ready(90)
        daemons["reader"] = stack.start_daemon(
            "query-reader", port=free_port(),
            env={"VETPMS_READER_PG_DEADLINE_MS": str(READ_DEADLINE_MS)})
        daemons["writer"] = stack.start_daemon("cmd-writer", port=free_port(), env={
            "VETPMS_RATE_TOKEN_PER_S": "0", "VETPMS_RATE_TENANT_PER_S": "0"})
        for name in ("reader", "writer"):
            daemons[name].wait_ready(90)
        writer, reader = daemons["writer"], daemons["reader"]
        tenant = stack.provision(writer, "Fault Vets", "Europe/Dublin", "EUR")
        token = stack.token("admin", tenant=tenant, sub="faults")

        with Load(writer, reader, token) as load:
            wait_for(lambda: load.taken_since(0) >= TAKEN, timeout=60,
                     what="commands taken before the first fault")
            for name, fault in (("PostgreSQL stopped", lambda: pg_stopped(stack)),
                                ("PostgreSQL frozen", lambda: pg_frozen(stack)),
                                ("projector killed", lambda: projector_killed(stack, daemons, rng)),
                                ("Kafka killed", lambda: kafka_killed(stack))):
                before = len(load.writes)
                fault()
                writer.wait_ready(120)
                # load on the recovered stack: commands sent after it are taken
                recovered = time.monotonic()
                wait_for(lambda: load.taken_since(recovered) >= TAKEN, timeout=90,
                         what=f"commands taken after {name}",
                         explain=lambda: writer.log_tail(10))
                print(f"faults: {name}: {len(load.writes) - before} commands "
                      f"{tally(load.writes[before:])}")
        print(f"faults: {len(load.writes)} commands {tally(load.writes)}, slowest "
              f"{max(w['took'] for w in load.writes):.1f} s; {len(load.reads)} reads "
              f"{tally(load.reads)}, slowest {max(r['took'] for r in load.reads):.2f} s")

        # every request got a clear answer within its deadline
        for w in load.writes:
            assert w["status"] == 201 or (w["status"] == 503 and w["code"] == "UNAVAILABLE"), w
            assert w["took"] < WRITE_ANSWER_S, w
        for r in load.reads:
            assert r["status"] in (200, 404) or (r["status"] == 503 and
                                                 r["code"] == "UNAVAILABLE"), r
            assert r["took"] < READ_ANSWER_S, r
        assert tally(load.reads).get(200, 0) > 0

        # the refused commands retried with their keys; then each
        # acknowledged command is in the log once
        refused = [w for w in load.writes if w["status"] != 201]
        for w in refused:
            again = load.post(w["key"], w["body"])
            assert again["status"] in (200, 201), again
        log = [e for e in events(stack.brokers) if e["tenant_id"] == tenant]
        keys = command_ids(log, tenant)
        assert len(keys) == len(set(keys)), "a command appended twice"
        assert set(keys) == {w["key"] for w in load.writes}

        # readable once the projector has caught up (it was killed last of all
        # a while ago; it must have come back by itself from every fault)
        projector = daemons["projector"]
        t0 = time.monotonic()
        wait_for(lambda: query(stack, "SELECT count(*) FROM read.event_log WHERE tenant_id = %s",
                               (tenant,))[0][0] == len(log),
                 timeout=120, what="the projector to apply the whole log",
                 explain=lambda: projector.log_tail(10))
        ids = {e["aggregate_id"] for e in log if e["type"] == "ClientRegistered"}
        projected = {str(i) for (i,) in query(
            stack, "SELECT id FROM read.clients WHERE tenant_id = %s", (tenant,))}
        assert projected == ids
        print(f"faults: the projector caught up {time.monotonic() - t0:.1f} s after the load")
        for cid in rng.sample(sorted(ids), min(20, len(ids))):
            r = requests.get(f"{reader.url}/v1/clients/{cid}", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text

        # the read model equals a rebuild of the log, row by row
        t0 = time.monotonic()
        live = table_digests(stack, "read")
        run_rebuild(stack)
        assert table_digests(stack, "read") == live
        print(f"faults: rebuilt and compared in {time.monotonic() - t0:.1f} s")
        for name in ("writer", "reader", "projector"):
            assert daemons[name].terminate() == 0, daemons[name].log_tail()
