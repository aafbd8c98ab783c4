"""An isolated VetPMS stack for the end-to-end tests: its own temp folder, free
ports, a private PostgreSQL cluster and a real Kafka broker started through the
project's own scripts, plus helpers to start, signal and stop the daemons.
Nothing here touches the `make run` stack (var/, ports 8080-8082)."""

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager

import requests

import events

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZER_MARK = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")
BIN_DIR = os.environ.get("VETPMS_BIN_DIR", os.path.join(ROOT, "bin"))

# The broker of a stack whose tests SIGKILL it and start it again
# (running_stack(env=KAFKA_KILLED), and the nodes of replicated_kafka.py).
# A killed KRaft node comes back with its controller holding its previous
# incarnation's registration, and registers only once that session has
# expired: broker.session.timeout.ms, 9 s by default, then its doubling
# retry, ~13 s in all. With 3 s (heartbeats every 0.5 s, six to a session)
# `kafka.sh start` took 5.3-8.3 s instead of 16.0-20.4 s (docs/testing.md,
# "stop 16"). Until the broker registers, its client listener is closed: the
# daemons see the same outage, only shorter. Only these stacks: a session
# this short could fence a live broker on a machine stalled for 3 s, and
# production keeps the default.
KAFKA_KILLED = {"VETPMS_KAFKA_EXTRA_CONFIG":
                "broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500"}

# A consumer-group member that a test SIGKILLs stays in its group until its
# session expires, and the next member gets no partitions until then:
# librdkafka's default session is 45 s. Such members get 3 s (heartbeats
# every 0.5 s): in test_projector.py the next one applied its first event
# 2.8-3.0 s after the kill instead of 5.9-6.0 s with 6 s (docs/testing.md,
# "stop 16").
KILLED_MEMBER_PROPS = "session.timeout.ms=3000,heartbeat.interval.ms=500"
# ... which every test broker allows (group.min.session.timeout.ms, 6 s by
# default). Allowing changes nothing for the members that keep the default.
GROUP_MIN_SESSION = "group.min.session.timeout.ms=1000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One daemon process with its own log file and base URL."""

    def __init__(self, name, proc, port, log_path):
        self.name, self.proc, self.port, self.log_path = name, proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.started_at = time.monotonic()
        self.ready_seconds = None  # start to /readyz 200, set by wait_ready

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=10, **kw)

    def request(self, method, path, **kw):
        return requests.request(method, self.url + path, timeout=10, **kw)

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/healthz").status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not healthy in {timeout}s:\n{self.log_tail()}")

    def wait_ready(self, timeout=60):
        self.wait_healthy(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.get("/readyz").status_code == 200:
                self.ready_seconds = time.monotonic() - self.started_at
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def metric(self, name):
        """The value of an unlabelled metric on GET /metrics."""
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{self.name} has no metric {name}")

    def log_lines(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def log_tail(self, n=30):
        return "\n".join(self.log_lines()[-n:])

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s")
        return self.proc.returncode

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def process_alive(pid):
    """pid runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def new_master_key():
    """32 random bytes as base64url without padding, the master key's text."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def key_id(key):
    """vp_key_id: a BLAKE2b MAC of a fixed text under the key, 8 bytes hex."""
    return hashlib.blake2b(b"vetpms key id", digest_size=8, key=key).hexdigest()


def master_key_bytes(path):
    """The key in a master key file (its base64url line)."""
    with open(path) as f:
        text = f.read().strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Stack:
    def __init__(self):
        # Not pytest's tmp_path: its 0700 parents keep the `postgres` user out.
        self.dir = tempfile.mkdtemp(prefix="vetpms-e2e-")
        os.chmod(self.dir, 0o755)
        self.ports = {k: free_port() for k in
                      ("pg", "kafka", "controller", "writer", "reader", "projector")}
        self.partitions = 6
        self.jwt_secret = base64.urlsafe_b64encode(os.urandom(30)).decode().rstrip("=")
        self.env = dict(os.environ)
        self.env.update({
            "VETPMS_VAR_DIR": self.dir,
            "VETPMS_BIN_DIR": BIN_DIR,
            "VETPMS_PG_PORT": str(self.ports["pg"]),
            "VETPMS_KAFKA_PORT": str(self.ports["kafka"]),
            "VETPMS_KAFKA_CONTROLLER_PORT": str(self.ports["controller"]),
            "VETPMS_KAFKA_BROKERS": f"127.0.0.1:{self.ports['kafka']}",
            "VETPMS_PARTITIONS": str(self.partitions),
            "VETPMS_JWT_HS256_SECRET": self.jwt_secret,
            "VETPMS_LOG_LEVEL": "debug",
        })
        # the master key of the personal-data keys (docs/privacy.md): a file
        # only its owner reads, as the daemons demand
        self.master_key_file = os.path.join(self.dir, "master.key")
        self.master_key = new_master_key()
        fd = os.open(self.master_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.master_key + "\n")
        self.env["VETPMS_MASTER_KEY_FILE"] = self.master_key_file
        self.env.pop("VETPMS_MASTER_KEY", None)
        self.add_kafka_config(GROUP_MIN_SESSION)
        self.brokers = self.env["VETPMS_KAFKA_BROKERS"]
        self.daemons = []
        self.kafka_ready_seconds = None

    # --- infrastructure -------------------------------------------------
    def add_kafka_config(self, lines):
        """Broker settings (server.properties lines) after those set already."""
        had = self.env.get("VETPMS_KAFKA_EXTRA_CONFIG")
        self.env["VETPMS_KAFKA_EXTRA_CONFIG"] = f"{had}\n{lines}" if had else lines

    def script(self, *args, check=True):
        r = subprocess.run([os.path.join(ROOT, "scripts", args[0]), *args[1:]],
                           env=self.env, cwd=ROOT, text=True, capture_output=True)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    def start(self):
        # PostgreSQL and Kafka do not need each other: started side by side
        # (a stack start is paid some twenty times in a run of the suite)
        t0 = time.time()
        kafka = self.script_started("kafka.sh", "start")
        self.script("pg.sh", "start")
        self.script_finished(kafka)
        self.kafka_ready_seconds = time.time() - t0
        self.vetctl("topics", "create", "--partitions", str(self.partitions))
        return self

    def script_started(self, *args):
        """A script running in the background; script_finished waits for it."""
        out = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen([os.path.join(ROOT, "scripts", args[0]), *args[1:]],
                                env=self.env, cwd=ROOT, text=True,
                                stdout=subprocess.DEVNULL, stderr=out)
        return proc, out, args

    def script_finished(self, started, check=True):
        proc, out, args = started
        code = proc.wait()
        out.seek(0)
        stderr = out.read()
        out.close()
        if check and code != 0:
            raise AssertionError(f"{' '.join(args)} failed ({code}):\n{stderr}")
        return code

    def kafka_killed(self, timeout=30):
        """SIGKILL to the broker and wait until it is gone: a stack whose
        folder is removed next has no use for a clean shutdown (2-3 s)."""
        pid_file = os.path.join(self.dir, "kafka", "kafka.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline and process_alive(pid):
            time.sleep(0.02)

    def stop(self):
        """Stops everything; returns the sanitizer reports found in daemon logs
        (an ASan/UBSan build writes them to stderr, which is the log)."""
        for d in self.daemons:
            try:
                d.terminate(timeout=10)
            except AssertionError:
                pass
        reports = [f"{d.name} ({os.path.basename(d.log_path)}): {line}"
                   for d in self.daemons for line in d.log_lines()
                   if SANITIZER_MARK.search(line)]
        self.daemons = []
        keep = os.environ.get("VETPMS_KEEP_E2E_DIR") == "1"
        if keep:
            self.script("kafka.sh", "stop", check=False)
        else:
            self.kafka_killed()
        self.script("pg.sh", "stop", check=False)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return reports

    def vetctl(self, *args, check=True):
        r = subprocess.run([os.path.join(BIN_DIR, "vetctl"), *args], env=self.env,
                           text=True, capture_output=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"vetctl {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    def secret(self, name):
        with open(os.path.join(self.dir, "secrets", name)) as f:
            return f.read().strip()

    def dsn(self, role):
        pw = self.secret(f"pg_{role}_password")
        return (f"host=127.0.0.1 port={self.ports['pg']} dbname=vetpms "
                f"user=vetpms_{role} password={pw}")

    def superuser_dsn(self):
        return f"host={self.dir}/pg port={self.ports['pg']} dbname=vetpms user=postgres"

    # --- daemons --------------------------------------------------------
    def start_daemon(self, name, port=None, args=(), env=None, prefix=()):
        """prefix: a command the daemon runs under (the bench's callgrind)."""
        key = {"cmd-writer": "writer", "query-reader": "reader", "projector": "projector"}[name]
        port = port or self.ports[key]
        e = dict(self.env)
        e.update({
            f"VETPMS_{key.upper()}_PORT": str(port),
            "VETPMS_PROJECTOR_DSN": self.dsn("projector"),
            "VETPMS_READER_DSN": self.dsn("reader"),
        })
        if name == "cmd-writer":
            # what the tests wrote behind the writer's back (events.py), unless
            # the caller sets its own quarantine
            behind = events.BEHIND_THE_WRITER.get(self.brokers, [])
            e["VETPMS_WRITER_QUARANTINE"] = ",".join(f"{p}:{o}" for p, o in behind)
        e.update(env or {})
        log_path = os.path.join(self.dir, f"{name}-{port}-{len(self.daemons)}.log")
        log = open(log_path, "ab")
        proc = subprocess.Popen([*prefix, os.path.join(BIN_DIR, name), *args], env=e, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        d = Daemon(name, proc, port, log_path)
        self.daemons.append(d)
        return d

    def start_all(self, writer_args=()):
        """A projector, a reader and a writer on free ports, all ready."""
        daemons = (self.start_daemon("projector", port=free_port()),
                   self.start_daemon("query-reader", port=free_port()),
                   self.start_daemon("cmd-writer", port=free_port(), args=writer_args))
        for d in daemons:
            d.wait_ready(90)
        return daemons

    def provision(self, writer, name, timezone, currency):
        """A new tenant through the writer; its id."""
        r = requests.post(writer.url + "/v1/tenants",
                          json={"name": name, "timezone": timezone, "currency": currency},
                          headers={"Authorization": "Bearer " + self.token("platform-admin")},
                          timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def token(self, roles, tenant=None, sub="e2e-user", ttl=3600):
        args = ["token", "--role", ",".join([roles] if isinstance(roles, str) else roles),
                "--sub", sub, "--ttl-s", str(ttl)]
        if tenant:
            args += ["--tenant", tenant]
        return self.vetctl(*args).stdout.strip()


@contextmanager
def running_stack(env=None):
    """A started Stack (env: settings of its own scripts, e.g. the broker's
    VETPMS_KAFKA_EXTRA_CONFIG), stopped on the way out; fails when a daemon's
    log holds a sanitizer report."""
    s = Stack()
    env = dict(env or {})
    if "VETPMS_KAFKA_EXTRA_CONFIG" in env:
        s.add_kafka_config(env.pop("VETPMS_KAFKA_EXTRA_CONFIG"))
    s.env.update(env)
    atexit.register(s.stop)  # also on KeyboardInterrupt
    try:
        s.start()
        yield s
    finally:
        reports = s.stop()
        atexit.unregister(s.stop)
    assert not reports, "sanitizer reports in daemon logs:\n" + "\n".join(reports)


def wait_until(predicate, timeout, interval=0.05):
    """predicate()'s first truthy value, or None after timeout (no raise: for
    a scenario that goes on and asserts on what it recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def wait_for(predicate, timeout=30, interval=0.05, what="condition", explain=None):
    """predicate's first truthy value; on timeout fails with explain()'s text
    (e.g. a daemon's log tail) so a slow run can be told from a broken one."""
    value = wait_until(predicate, timeout, interval)
    if value:
        return value
    detail = f"\n{explain()}" if explain else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


def new_tenant_id():
    return str(uuid.uuid4())


def parse_log_line(line):
    return json.loads(line)


def tally(rows, key="status"):
    """{value: how many rows have it} of rows' key: a run's answers at a glance."""
    out = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out
