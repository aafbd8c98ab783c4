"""A three-node KRaft cluster for the tests that need a replicated log: the
settings of compose.yaml (every node broker and controller, a controller quorum
of three, replication factor 3, min.insync.replicas 2, also for the transaction
and offsets logs) on free local ports, one folder per node under its own temp
folder, each node started by scripts/kafka.sh. Only the tests that ask for it
pay for it: the suite's stack (stack.py) keeps its single fast broker.
One setting differs from compose.yaml: the nodes are SIGKILLed and started
again, so they run stack.KAFKA_KILLED's 3 s broker session instead of the 9 s
default. A dead node is fenced, and its partitions and the transaction
coordinator move, after 3 s instead of 9; a restarted node registers without
waiting out its previous incarnation's 9 s (the two nodes restarted together
answered in 5.4-8.6 s instead of 17.7-17.9 s; docs/testing.md, "stop 16").

    with replicated_kafka() as kc:
        kc.brokers            # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        kc.kill9(2)           # SIGKILL node 2, no clean shutdown
        kc.restart(2)         # start it again on its data, wait until it answers
"""

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager

from stack import BIN_DIR, KAFKA_KILLED, ROOT, free_port

NODES = (1, 2, 3)
HEAP = os.environ.get("VETPMS_E2E_KAFKA_CLUSTER_HEAP", "256m")
REPORT = []  # lines for the session summary (conftest.py): what clients saw


class ReplicatedKafka:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vetpms-e2e-kafka3-")
        self.ports = {n: free_port() for n in NODES}
        self.controller_ports = {n: free_port() for n in NODES}
        self.brokers = ",".join(f"127.0.0.1:{self.ports[n]}" for n in NODES)
        voters = ",".join(f"{n}@127.0.0.1:{self.controller_ports[n]}" for n in NODES)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        base = dict(os.environ)
        base.update({
            "VETPMS_VAR_DIR": self.dir,
            "VETPMS_BIN_DIR": BIN_DIR,
            "VETPMS_KAFKA_QUORUM_VOTERS": voters,
            "VETPMS_KAFKA_CLUSTER_ID": cluster_id,
            "VETPMS_KAFKA_REPLICATION": "3",
            "VETPMS_KAFKA_MIN_ISR": "2",
            "VETPMS_KAFKA_HEAP": HEAP,
            **KAFKA_KILLED,
        })
        self.env = {}
        for n in NODES:
            e = dict(base)
            e.update({
                "VETPMS_KAFKA_DIR": self.node_dir(n),
                "VETPMS_KAFKA_NODE_ID": str(n),
                "VETPMS_KAFKA_PORT": str(self.ports[n]),
                "VETPMS_KAFKA_CONTROLLER_PORT": str(self.controller_ports[n]),
                # what `kafka.sh wait` asks: this node alone
                "VETPMS_KAFKA_BROKERS": f"127.0.0.1:{self.ports[n]}",
            })
            self.env[n] = e
        self.ready_seconds = None

    def node_dir(self, n):
        return os.path.join(self.dir, f"kafka-{n}")

    def script(self, n, *args, timeout=180):
        r = subprocess.run([os.path.join(ROOT, "scripts", "kafka.sh"), *args], env=self.env[n],
                           cwd=ROOT, text=True, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"kafka.sh {' '.join(args)} (node {n}) failed "
                                 f"({r.returncode}):\n{r.stderr}\n{self.log_tail(n)}")
        return r

    def start(self):
        """All three nodes launched at once (none can be ready before two
        controllers run), then each waited for."""
        t0 = time.monotonic()
        for n in NODES:
            self.script(n, "launch")
        for n in NODES:
            self.script(n, "wait")
        self.ready_seconds = time.monotonic() - t0
        return self

    def pid(self, n):
        try:
            with open(os.path.join(self.node_dir(n), "kafka.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def alive(self, n):
        pid = self.pid(n)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill9(self, n):
        """SIGKILL node n and wait until it is gone (its pid file stays, as
        after a crash; kafka.sh launch then starts it again)."""
        pid = self.pid(n)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while self.alive(n):
            if time.monotonic() > deadline:
                raise AssertionError(f"kafka node {n} (pid {pid}) survived SIGKILL for 30 s")
            time.sleep(0.05)

    def restart(self, n):
        """Start node n on its data again and wait until it answers metadata;
        returns the seconds that took."""
        t0 = time.monotonic()
        self.script(n, "launch")
        self.script(n, "wait")
        return time.monotonic() - t0

    def stop(self):
        """Kills every node (its data is thrown away with the folder)."""
        for n in NODES:
            try:
                self.kill9(n)
            except AssertionError:
                pass
        if os.environ.get("VETPMS_KEEP_E2E_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n, lines=30):
        try:
            with open(os.path.join(self.node_dir(n), "kafka.log"), errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def replicated_kafka():
    kc = ReplicatedKafka()
    try:
        kc.start()
        yield kc
    finally:
        kc.stop()
