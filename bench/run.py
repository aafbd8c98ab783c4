#!/usr/bin/python3
"""make bench: each scenario of docs/bench.md against its ceiling, on a private
stack (Kafka + PostgreSQL on free ports in a temp folder, the e2e suite's
tests/e2e/stack.py), then one table on stdout and var/bench/results.json.

  bench/run.py                     every scenario (about 8-15 minutes)
  bench/run.py --quick             a small smoke run of every scenario
  bench/run.py --only queries      one scenario (commands, http, queries, lag,
                                   appointments, visits, timeline, dispense,
                                   register, revenue, issue, projection, stream,
                                   tenant, archive, seal;
                                   repeatable; timeline runs visits first)

CPU-seconds come from /proc/<pid>/stat (utime + stime, children reaped by the
postmaster included) sampled before and after each run, per process; the load
generator's own CPU is reported with the others so a reader can judge it."""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid

import psycopg
import requests
from confluent_kafka import Consumer, TopicPartition

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from stack import BIN_DIR, Stack, free_port  # noqa: E402

TOOLS = os.path.join(BIN_DIR, "bench")
LUA = os.path.join(ROOT, "bench", "lua")
TICK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("commands", "http", "queries", "lag", "appointments", "visits", "timeline",
             "dispense", "register", "revenue", "issue", "projection", "stream", "tenant",
             "archive", "seal")
# pgbench cannot bind a NULL parameter (it sends the text "NULL"); this stays a
# parameter (same generic/custom plan choice as the reader's) that is NULL.
NULL = "nullif(:none::text, '-')"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- CPU accounting ----------------------------------------------------------
def stat_cpu(path, with_children=False):
    """utime + stime (and reaped children's) in seconds from a /proc stat
    file (a process's or a thread's); 0 if gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def proc_cpu(pid, with_children=False):
    """utime + stime (and reaped children's) of pid in seconds; 0 if gone."""
    return stat_cpu(f"/proc/{pid}/stat", with_children)


def thread_cpu(pid):
    """utime + stime of pid's threads in seconds, by kind: "loop" (the main
    thread: a daemon's event loop), "librdkafka" (its rdk:* threads), "other"."""
    out = {"loop": 0.0, "librdkafka": 0.0, "other": 0.0}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue  # a thread that ended
        kind = "loop" if tid == str(pid) else "librdkafka" if comm.startswith("rdk:") else "other"
        out[kind] += stat_cpu(f"/proc/{pid}/task/{tid}/stat")
    return out


def callgrind_inclusive(path):
    """Inclusive instructions by function name (the largest of a name's
    entries) of a callgrind dump, and "total": its summary line, what
    callgrind_annotate calls PROGRAM TOTALS. Not its totals line: on the
    writer with Kafka that line exceeded the summary by 1.0 k instructions
    a command on a fresh topic, 13.5 k after 24 s of RegisterClient load on
    it and 35.9 k after 60 s (the row moved with what the topic held; the
    summary stayed at 243-244 k)."""
    with open(path) as f:
        costs = {"total": next(int(ln.split()[1]) for ln in f if ln.startswith("summary:"))}
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) .*?[^\s:]+:(\w+)(?:'\d+)? \[", line)
        if m:
            n = int(m.group(1).replace(",", ""))
            costs[m.group(2)] = max(n, costs.get(m.group(2), 0))
    return costs


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


class Cpu:
    """CPU seconds of named processes between start() and stop()."""

    def __init__(self, bench, names):
        self.bench, self.names = bench, names

    def sample(self):
        s = {}
        for name in self.names:
            if name == "postgres":
                pm = self.bench.postmaster_pid()
                s[name] = proc_cpu(pm, True) + sum(proc_cpu(c) for c in children_of(pm))
            elif name == "kafka":
                s[name] = proc_cpu(self.bench.kafka_pid())
            else:
                d = self.bench.daemons.get(name)
                s[name] = proc_cpu(d.proc.pid) if d else 0.0
        return s

    def start(self):
        self.before = self.sample()
        return self

    def stop(self):
        after = self.sample()
        return {k: after[k] - self.before[k] for k in self.names}


def run_tool(args, env=None, timeout=900):
    """Runs a load generator or ceiling; returns (stdout, its CPU seconds)."""
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[0]} timed out")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}… exited {proc.returncode}: {err[-2000:]}")
    return out, usage.ru_utime + usage.ru_stime


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
        return round(kb / 1024)
    except (OSError, StopIteration):
        return None


def iso(epoch_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def per_k(cpu, ops):
    return {k: round(v / ops * 1000, 4) if ops else None for k, v in cpu.items()}


# --- the bench ---------------------------------------------------------------
class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.seconds = 4 if quick else 12
        self.connections = 64
        self.stack = Stack()
        self.stack.env["VETPMS_LOG_LEVEL"] = "warn"  # no per-request log lines
        # one token drives each load at thousands of requests a second: the
        # rate limits (500/s per token by default) would measure themselves
        self.stack.env["VETPMS_RATE_TOKEN_PER_S"] = "0"
        self.stack.env["VETPMS_RATE_TENANT_PER_S"] = "0"
        self.daemons = {}
        self.rows = []
        self.facts = {}
        self.raw_topics = set()  # the raw ceiling's topics made so far

    # stack and daemons
    def start(self, commit_timestamps=False):
        t0 = time.time()
        self.stack.start()
        if commit_timestamps:
            # lag by stage reads each event_log row's commit time; the setting
            # needs a restart (of this private cluster only, before any daemon)
            self.sql("ALTER SYSTEM SET track_commit_timestamp = on")
            self.stack.script("pg.sh", "stop")
            self.stack.script("pg.sh", "start")
        log(f"stack up in {time.time() - t0:.0f}s ({self.stack.dir})")

    def stop(self):
        self.stack.stop()

    def postmaster_pid(self):
        with open(os.path.join(self.stack.dir, "pg", "data", "postmaster.pid")) as f:
            return int(f.readline())

    def kafka_pid(self):
        with open(os.path.join(self.stack.dir, "kafka", "kafka.pid")) as f:
            return int(f.read().strip())

    def daemon(self, key, name, args=(), env=None):
        d = self.stack.start_daemon(name, port=free_port(), args=list(args), env=env)
        d.wait_ready(180)
        self.daemons[key] = d
        return d

    def drop(self, key):
        d = self.daemons.pop(key, None)
        if d:
            d.terminate(60)

    def post(self, daemon, path, body, token):
        r = requests.post(daemon.url + path, json=body, timeout=30,
                          headers={"Authorization": "Bearer " + token})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    def sql(self, text, params=()):
        with psycopg.connect(self.stack.superuser_dsn(), autocommit=True) as conn:
            cur = conn.execute(text, params)
            return cur.fetchall() if cur.description else None

    def ids_file(self, name, ids):
        path = os.path.join(self.stack.dir, f"{name}.ids")
        with open(path, "w") as f:
            f.write("\n".join(ids) + "\n")
        return path

    def wrk(self, url, script, env, threads=2, connections=None, seconds=None):
        e = dict(os.environ)
        e.update(env)
        args = ["wrk", "-t", str(threads), "-c", str(connections or self.connections),
                "-d", f"{seconds or self.seconds}s", "--latency", "-s",
                os.path.join(LUA, script), url]
        out, cpu = run_tool(args, env=e)
        line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
        r = json.loads(line[len("BENCH_JSON "):])
        r["rate"] = r["requests"] / (r["duration_us"] / 1e6)
        r["errors"] = sum(v for k, v in r.items() if k.startswith("errors_"))
        r["cpu"] = cpu
        return r

    def row(self, scenario, what, ours, ceiling, unit, p50=None, p99=None, cpu=None,
            ceiling_name="", note=""):
        ratio = round(ours / ceiling, 3) if ours is not None and ceiling else None
        self.rows.append({
            "scenario": scenario, "what": what, "ours": ours, "ceiling": ceiling,
            "ceiling_name": ceiling_name, "unit": unit, "ratio": ratio,
            "p50_ms": p50, "p99_ms": p99, "cpu_s_per_1k": cpu or {}, "note": note})
        log(f"{scenario}/{what}: ours {ours} {unit}, ceiling {ceiling} ({ceiling_name}) "
            f"ratio {ratio} {note}")

    # --- fixtures shared by the scenarios ---------------------------------------
    def setup_clinic(self):
        """A tenant, a vet and clients, through the writer."""
        if "tenant" in self.facts:
            return
        writer = self.daemons["writer"]
        t = self.post(writer, "/v1/tenants", {"name": "Bench Vets", "timezone": "Europe/London",
                                              "currency": "GBP"},
                      self.stack.token("platform-admin"))
        tid = t["id"]
        token = self.stack.token(["admin", "vet", "reception"], tenant=tid, ttl=86400)
        vet = self.post(writer, "/v1/staff", {"name": "Dr Bench", "role": "veterinarian"}, token)
        clients = [self.post(writer, "/v1/clients",
                             {"first_name": f"Client{i}", "last_name": name,
                              "email": f"c{i}@bench.example"}, token)["id"]
                   for i, name in enumerate(["Smith", "Garcia", "Muller", "Rossi", "Nowak"] * 20)]
        self.facts.update(tenant=tid, token=token, vet=vet["id"], clients=clients,
                          clients_file=self.ids_file("clients", clients),
                          partition=int(t["position"].split(":")[0]))

    def writer(self):
        if "writer" not in self.daemons:
            self.daemon("writer", "cmd-writer")
        self.setup_clinic()
        return self.daemons["writer"]

    def metric(self, daemon, name):
        m = re.search(rf"^{name} (\d+)", daemon.get("/metrics").text, re.M)
        return int(m.group(1)) if m else 0

    def record_size(self, partition, n=200, topic="vetpms.events"):
        """Mean value size of the last n records of a partition of a topic (the
        events topic unless named)."""
        c = Consumer({"bootstrap.servers": self.stack.brokers, "group.id": "bench-size",
                      "enable.auto.commit": False, "isolation.level": "read_committed"})
        tp = TopicPartition(topic, partition)
        lo, hi = c.get_watermark_offsets(tp, timeout=10)
        c.assign([TopicPartition(topic, partition, max(lo, hi - n))])
        sizes = []
        while len(sizes) < n:
            m = c.poll(2)
            if m is None:
                break
            if not m.error() and m.value():
                sizes.append(len(m.value()))
        c.close()
        return int(sum(sizes) / len(sizes)) if sizes else 600

    # --- 1. commands -------------------------------------------------------------
    def scenario_commands(self):
        writer = self.writer()
        f = self.facts
        env = {"BENCH_TOKEN": f["token"], "BENCH_IDS": f["clients_file"]}
        self.wrk(writer.url, "register_patient.lua", env, seconds=2)  # warm up
        commits0 = self.metric(writer, "vetpms_writer_commits_total")
        events0 = self.metric(writer, "vetpms_writer_events_appended_total")
        cpu = Cpu(self, ["writer", "kafka", "postgres"]).start()
        r = self.wrk(writer.url, "register_patient.lua", env)
        used = cpu.stop()
        used["loadgen(wrk)"] = r["cpu"]
        commits = self.metric(writer, "vetpms_writer_commits_total") - commits0
        events = self.metric(writer, "vetpms_writer_events_appended_total") - events0
        per_txn = max(1, round(events / commits)) if commits else 1
        size = self.record_size(f["partition"])
        self.facts["max_command_rate"] = r["rate"]
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        self.facts["raw_producer"] = raw
        self.row("commands", "RegisterPatient (HTTP, 64 conns)", round(r["rate"]), 
                 round(raw["records_per_s"]), "commands/s", r["p50_us"] / 1000,
                 r["p99_us"] / 1000, per_k(used, r["requests"]),
                 "raw librdkafka txn loop",
                 f"{per_txn} records/txn ({events} events in {commits} txns), {size} B values; "
                 f"{self.raw_note(raw, raw_cpu, kused)}; non-2xx {r['errors']}")

    RAW_PAUSES_US = (0, 1000)

    def raw_ceiling(self, per_txn, size, topic="bench.raw", keys=None, partition=None):
        """bench/raw_producer: the writer's Kafka settings, per_txn records of size
        bytes per transaction, on the tenant's partition of a topic of its own,
        once per pause after each commit (raw_producer.c says why); the best
        run is the ceiling. keys=(topic, partition, bytes): each record also
        brings a key record there (a sealed RegisterClient's shape). Returns
        (its JSON with the other runs' rates under "runs", its CPU seconds,
        Kafka's CPU during it)."""
        made = self.raw_topics
        if topic not in made:
            env = {"VETPMS_TOPIC": topic, "VETPMS_DLQ_TOPIC": topic + ".dlq"}
            if keys:
                env["VETPMS_KEYS_TOPIC"] = keys[0]
            saved = self.stack.env
            self.stack.env = dict(saved, **env)
            try:
                self.stack.vetctl("topics", "create", "--partitions", "6")
            finally:
                self.stack.env = saved
            made.add(topic)
        best, runs = None, {}
        for pause in self.RAW_PAUSES_US:
            kcpu = Cpu(self, ["kafka"]).start()
            args = [os.path.join(TOOLS, "raw_producer"), self.stack.brokers, topic,
                    str(self.facts["partition"] if partition is None else partition), str(size),
                    str(per_txn), str(self.seconds),
                    str(pause)]
            if keys:
                args += [str(k) for k in keys]
            out, raw_cpu = run_tool(args)
            raw = json.loads(out)
            runs[pause] = round(raw["records_per_s"])
            if best is None or raw["records_per_s"] > best[0]["records_per_s"]:
                best = (raw, raw_cpu, kcpu.stop())
        best[0]["runs"] = runs
        return best

    @staticmethod
    def raw_note(raw, raw_cpu, kused):
        """The ceiling's part of a row's note."""
        runs = ", ".join(f"{p / 1000:g} ms {r}/s" for p, r in raw["runs"].items())
        return (f"ceiling = best of pauses after each commit ({runs}); ceiling p50/p99 "
                f"{raw['p50_ms']:.1f}/{raw['p99_ms']:.1f} ms per txn, CPU/1k records "
                f"raw_producer {raw_cpu / raw['records'] * 1000:.4f} s, kafka "
                f"{kused['kafka'] / raw['records'] * 1000:.4f} s")

    def post_lines(self, daemon, path, bodies, token, name, conns=64):
        """Every body POSTed by bench/post_lines over conns keep-alive
        connections; its JSON plus wall seconds (file writing included) and CPU."""
        t0 = time.time()
        fname = self.ids_file(name, [json.dumps(b, separators=(",", ":")) for b in bodies])
        out, cpu = run_tool([os.path.join(TOOLS, "post_lines"), str(daemon.port), path, token,
                             fname, str(conns)], timeout=1800)
        r = json.loads(out)
        r["wall_s"], r["cpu"] = time.time() - t0, cpu
        os.unlink(fname)
        return r

    # --- appointments --------------------------------------------------------------
    def scenario_appointments(self):
        """ScheduleAppointment (overlap check of the vet and the patient, block
        containment) on a tenant holding 100,000 appointments: 20 vets x 4,000
        plus 20,000 for the vet the load targets, pre-filled through the writer's
        HTTP API in random order (20 x 100 + 2,000 with --quick)."""
        for key in ("projector", "reader"):
            self.drop(key)  # two cores: the writer and Kafka only
        writer, f = self.writer(), self.facts
        token, what = f["token"], "ScheduleAppointment"
        probe = requests.post(writer.url + "/v1/appointments", json={}, timeout=10,
                              headers={"Authorization": "Bearer " + token})
        if probe.status_code in (404, 405):
            self.row("appointments", what, None, None, "commands/s",
                     note=f"not available: POST /v1/appointments answers "
                     f"{probe.status_code} on this build")
            return
        n_vets, per_vet, target_n = (20, 100, 2000) if self.quick else (20, 4000, 20000)
        n_fill, n_load = (100, 50) if self.quick else (1000, 200)
        total = n_vets * per_vet + target_n
        t0 = time.time()
        vets = [self.post(writer, "/v1/staff", {"name": f"Dr Fill {i}", "role": "veterinarian"},
                          token)["id"] for i in range(n_vets)]
        vets.append(f["vet"])  # the load's vet, index n_vets
        patients = [str(uuid.uuid4()) for _ in range(n_fill + n_load)]
        r = self.post_lines(writer, "/v1/patients", [
            {"id": pid, "client_id": f["clients"][i % len(f["clients"])],
             "name": f"Fill {i}", "species": "canine", "sex": "female"}
            for i, pid in enumerate(patients)], token, "patients_bodies")
        if r["status"].get("201") != len(patients):
            raise RuntimeError(f"patients for the appointments: {r}")
        fill, load = patients[:n_fill], patients[n_fill:]
        # 24-h blocks from midnight UTC the day after tomorrow: room for every
        # slot of the fill and 60,000 more of the load
        base = (int(time.time()) // 86400 + 2) * 86400
        days = {v: per_vet * 900 // 86400 + 1 for v in vets[:n_vets]}
        days[f["vet"]] = (3 * target_n + 60000) * 900 // 86400 + 1
        for v, n in days.items():
            for first in range(0, n, 400):
                self.post(writer, f"/v1/staff/{v}/availability", {"blocks": [
                    {"start": iso(base + d * 86400), "end": iso(base + (d + 1) * 86400)}
                    for d in range(first, min(n, first + 400))]}, token)
        # slot k = base + k x 15 min: fill vets hold slots 0..per_vet-1, the
        # load's vet every third slot 0..3(target_n-1) (the load books the two
        # gaps after each); the vets booked at one slot get distinct patients
        bodies = []
        for k in range(max(per_vet, 3 * target_n)):
            at = [v for v in range(n_vets) if k < per_vet]
            if k % 3 == 0 and k // 3 < target_n:
                at.append(n_vets)
            for v in at:
                bodies.append({"patient_id": fill[(k * (n_vets + 1) + v) % n_fill],
                               "vet_id": vets[v], "start": iso(base + k * 900),
                               "end": iso(base + k * 900 + 900),
                               "type": ("consultation", "vaccination", "follow_up")[k % 3]})
        random.Random(7).shuffle(bodies)
        setup_s = time.time() - t0
        pre = self.post_lines(writer, "/v1/appointments", bodies, token, "appointment_bodies")
        booked = pre["status"].get("201", 0)
        log(f"pre-filled {booked} of {total} appointments in {pre['wall_s']:.1f}s "
            f"({pre['rate']:.0f}/s, p50/p99 {pre['p50_ms']}/{pre['p99_ms']} ms; "
            f"statuses {pre['status']}; setup {setup_s:.1f}s)")
        if booked == 0:
            self.row("appointments", what, None, None, "commands/s",
                     note=f"every pre-fill request was refused: {pre['first_error']}")
            return
        env = {"BENCH_TOKEN": token, "BENCH_IDS": self.ids_file("load_patients", load),
               "BENCH_VET": f["vet"], "BENCH_THREADS": "2", "BENCH_SLOT_BASE": str(base),
               "BENCH_GAPS": str(2 * target_n), "BENCH_SLOT_OFFSET": "0"}
        warm = self.wrk(writer.url, "schedule_appointment.lua", env, seconds=2)
        env["BENCH_SLOT_OFFSET"] = str(warm["requests"] + 1000)
        commits0 = self.metric(writer, "vetpms_writer_commits_total")
        events0 = self.metric(writer, "vetpms_writer_events_appended_total")
        load_avg0 = os.getloadavg()
        cpu = Cpu(self, ["writer", "kafka"]).start()
        r = self.wrk(writer.url, "schedule_appointment.lua", env)
        used = cpu.stop()
        load_avg = os.getloadavg()
        used["loadgen(wrk)"] = r["cpu"]
        commits = self.metric(writer, "vetpms_writer_commits_total") - commits0
        events = self.metric(writer, "vetpms_writer_events_appended_total") - events0
        per_txn = max(1, round(events / commits)) if commits else 1
        size = self.record_size(f["partition"])
        ok = r["status"].get("201", 0)
        not_201 = {k: v for k, v in r["status"].items() if k != "201"}
        sock = r["errors"] - r["errors_status"]
        rate = ok / (r["duration_us"] / 1e6)
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        target_after = target_n + warm["status"].get("201", 0) + ok
        self.facts["appointments"] = {
            "tenant_appointments_before_load": booked, "target_vet_before_load": target_n,
            "prefill": {k: pre[k] for k in ("requests", "seconds", "wall_s", "rate", "p50_ms",
                                            "p99_ms", "status", "first_error")},
            "setup_seconds": round(setup_s, 1), "load_status": r["status"],
            "load_first_error": r["first_error"], "load_socket_errors": sock,
            "loadavg_before": load_avg0, "loadavg_after": load_avg, "raw_producer": raw}
        self.row("appointments", f"ScheduleAppointment, tenant with {booked} appointments",
                 round(rate), round(raw["records_per_s"]), "commands/s", r["p50_us"] / 1000,
                 r["p99_us"] / 1000, per_k(used, ok), "raw librdkafka txn loop",
                 f"201s only: {ok} in {r['duration_us'] / 1e6:.1f}s; non-201 "
                 f"{sum(not_201.values())}{' ' + str(not_201) if not_201 else ''}, "
                 f"socket errors {sock}"
                 f"{'; first: ' + r['first_error'][:200] if r['first_error'] else ''}; "
                 f"the load's vet held {target_n} bookings, {target_after} after "
                 f"(inserts spread over its set), {n_vets} other vets {per_vet} each, "
                 f"{n_fill} patients; pre-fill of {total} through POST /v1/appointments "
                 f"(post_lines, 64 conns, shuffled) {pre['wall_s']:.1f}s wall = "
                 f"{pre['rate']:.0f}/s, statuses {pre['status']}; {per_txn} records/txn "
                 f"({events} events in {commits} txns), {size} B values; "
                 f"{self.raw_note(raw, raw_cpu, kused)}; writer RSS "
                 f"{rss_mb(writer.proc.pid)} MB after; load average "
                 f"{load_avg[0]:.2f} (1 min) after the run")

    def fill_patients(self):
        """Patients for the queries, and the writer's maximum for the lag run,
        when the commands scenario does not run."""
        f = self.facts
        writer = self.writer()
        r = self.wrk(writer.url, "register_patient.lua",
                     {"BENCH_TOKEN": f["token"], "BENCH_IDS": f["clients_file"]})
        f["max_command_rate"] = r["rate"]

    # --- 2. HTTP overhead --------------------------------------------------------
    def scenario_http(self):
        self.writer()
        f = self.facts
        dry = self.daemon("writer-dry", "cmd-writer", ["--dry-run"])
        env = {"BENCH_TOKEN": f["token"], "BENCH_IDS": f["clients_file"]}
        self.wrk(dry.url, "register_patient.lua", env, seconds=2)
        cpu = Cpu(self, ["writer-dry"]).start()
        r = self.wrk(dry.url, "register_patient.lua", env)
        used = cpu.stop()
        used["loadgen(wrk)"] = r["cpu"]
        self.drop("writer-dry")
        hello = self.hello_run("register_patient.lua", env, threads=1)
        self.row("http", "RegisterPatient, writer --dry-run", round(r["rate"]),
                 round(hello["rate"]), "requests/s", r["p50_us"] / 1000, r["p99_us"] / 1000,
                 per_k(used, r["requests"]), "libevent hello (1 loop)",
                 f"hello p50/p99 {hello['p50_us'] / 1000:.2f}/{hello['p99_us'] / 1000:.2f} ms, "
                 f"hello CPU/1k {hello['server_cpu'] / hello['requests'] * 1000:.4f} s; "
                 f"non-2xx {r['errors']}")

    def hello_run(self, script, env, threads):
        port = free_port()
        proc = subprocess.Popen([os.path.join(TOOLS, "hello_server"), str(port), str(threads),
                                 "300"], stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
            before = proc_cpu(proc.pid)
            r = self.wrk(url, script, env)
            r["server_cpu"] = proc_cpu(proc.pid) - before
            return r
        finally:
            proc.terminate()
            proc.wait()

    # --- 4. queries ---------------------------------------------------------------
    def read_side(self):
        """Projector and reader, caught up with the events topic."""
        self.writer()
        for key, name in (("projector", "projector"), ("reader", "query-reader")):
            if key not in self.daemons:
                self.daemon(key, name)
        self.wait_caught_up("read", "vetpms.events")

    def end_offsets(self, topic):
        """Each partition's high watermark; retried while the metadata or a
        watermark is not in yet (an invalid -1001 end would be skipped by
        wait_caught_up as an empty partition and end the wait early)."""
        c = Consumer({"bootstrap.servers": self.stack.brokers, "group.id": "bench-watermarks"})
        try:
            for _ in range(50):
                md = c.list_topics(topic, timeout=10).topics[topic]
                ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in md.partitions}
                if ends and all(end >= 0 for end in ends.values()):
                    return ends
                time.sleep(0.2)
        finally:
            c.close()
        raise RuntimeError(f"no end offsets for {topic}: {ends}")

    def applied_offsets(self, schema, topic):
        try:
            rows = self.sql(f'SELECT partition, next_offset FROM "{schema}".projection_offsets '
                            'WHERE topic = %s', (topic,))
        except psycopg.errors.UndefinedTable:
            return {}
        return dict(rows)

    def wait_caught_up(self, schema, topic, timeout=1200):
        # Transaction markers take an offset each: caught up = the applied
        # position is at or past the last data record (within one marker).
        ends = self.end_offsets(topic)
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.applied_offsets(schema, topic)
            if all(got.get(p, 0) >= end - 1 for p, end in ends.items() if end > 0):
                return
            time.sleep(0.05)
        raise RuntimeError(f"projector not caught up with {topic} in {timeout}s")

    def capture_sql(self, paths, auth):
        """The reader's exact statements: PostgreSQL logs each execute with its
        text while log_min_duration_statement is 0."""
        self.sql("ALTER SYSTEM SET log_min_duration_statement = 0")
        self.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)
        reader = self.daemons["reader"]
        for p in paths:
            reader.get(p, headers=auth)
        time.sleep(0.5)
        self.sql("ALTER SYSTEM RESET log_min_duration_statement")
        self.sql("SELECT pg_reload_conf()")
        with open(os.path.join(self.stack.dir, "pg", "postgres.log"), errors="replace") as f:
            text = f.read()
        found = {}
        for m in re.finditer(r"execute (rd_\w+): (.*)", text):
            found[m.group(1)] = m.group(2)
        # and the values they ran with (the DETAIL line after each execute),
        # for a parameter pgbench must pass as the reader does
        self.statement_params = {}
        for m in re.finditer(r"execute (rd_\w+): .*\n.*DETAIL:\s+parameters: (.*)", text,
                             re.I):
            self.statement_params[m.group(1)] = {
                int(p.group(1)): None if p.group(2) == "NULL" else
                p.group(2)[1:-1].replace("''", "'")
                for p in re.finditer(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", m.group(2))}
        return found

    # pgbench's limit on -f scripts is 128; each script is one id (below)
    PGBENCH_ID_SCRIPTS = 64

    def pgbench(self, name, statement, subst, clients, extra_vars, ids=None):
        """pgbench running the reader's statement as the reader would: one
        pipeline of set_config + the statement, prepared, same role (RLS).
        With ids, ':id' in subst is a bound parameter drawn at random from
        PGBENCH_ID_SCRIPTS of them (pgbench has no string variables to draw
        from: one script per id, each binding its own -D variable, picked at
        random by pgbench); the statement stays the reader's, with the same
        parameters, instead of reading the id from a lookup table inside it."""
        text = re.sub(r"\$(\d+)", lambda m: subst[int(m.group(1))], statement)
        # pgbench reads every ':name' as a variable, even inside a literal
        # ('HH24:MI:SS'): spell such literals with Unicode escapes, same value.
        text = re.sub(r"'(?:[^']|'')*'", lambda m: m.group(0) if ":" not in m.group(0) else
                      "U&" + m.group(0).replace("\\", "\\\\").replace(":", "\\003A"),
                      text)
        script = os.path.join(self.stack.dir, f"{name}.pgbench")
        drawn = random.Random(7919).sample(ids, min(len(ids), self.PGBENCH_ID_SCRIPTS)) \
            if ids else [None]
        scripts = []
        for k, pid in enumerate(drawn):
            path = script if pid is None else f"{script}.{k}"
            body = text if pid is None else re.sub(r":id\b", f":id{k}", text)
            with open(path, "w") as f:
                f.write("\\set n random(1, :nids)\n\\startpipeline\n"
                        "SELECT set_config('vetpms.tenant_id', :tid::text, true);\n"
                        f"{body};\n\\endpipeline\n")
            scripts += ["-f", path]
            if pid is not None:
                scripts += ["-D", f"id{k}={pid}"]
        pw = self.stack.secret("pg_reader_password")
        args = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                "-T", str(self.seconds), *scripts,
                "-h", "127.0.0.1", "-p", str(self.stack.ports["pg"]), "-U", "vetpms_reader",
                "--log", f"--log-prefix={script}.log"]
        for k, v in extra_vars.items():
            args[1:1] = ["-D", f"{k}={v}"]
        env = dict(os.environ, PGPASSWORD=pw)
        pm = self.postmaster_pid()
        before = proc_cpu(pm, True) + sum(proc_cpu(c) for c in children_of(pm))
        out, cpu = run_tool(args + ["vetpms"], env=env)
        pg_cpu = proc_cpu(pm, True) + sum(proc_cpu(c) for c in children_of(pm)) - before
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat = []
        for fn in os.listdir(self.stack.dir):
            if fn.startswith(os.path.basename(script) + ".log"):
                with open(os.path.join(self.stack.dir, fn)) as f:
                    lat += [int(ln.split()[2]) for ln in f if ln.strip()]
                os.unlink(os.path.join(self.stack.dir, fn))
        lat.sort()
        pct = (lambda p: lat[min(len(lat) - 1, len(lat) * p // 100)] / 1000) if lat else \
            (lambda p: None)
        return {"rate": tps, "p50_ms": pct(50), "p99_ms": pct(99), "cpu": cpu,
                "pg_cpu": pg_cpu, "transactions": len(lat)}

    def scenario_queries(self):
        self.read_side()
        self.sql("ANALYZE")  # fresh rows: both sides plan with statistics
        f = self.facts
        tid = f["tenant"]
        ids = [r[0] for r in self.sql("SELECT id::text FROM read.patients WHERE tenant_id = %s "
                                      "ORDER BY created_at DESC LIMIT 20000", (tid,))]
        if len(ids) < 10:
            raise RuntimeError("no patients to query: run the commands scenario first")
        ids_file = self.ids_file("patients", ids)
        search = "bela"  # a typo of Bella: the trigram path
        auth = {"Authorization": "Bearer " + f["token"]}
        queries = {
            "GET /v1/patients/{id}": ("get_by_id.lua", {"BENCH_IDS": ids_file},
                                      f"/v1/patients/{ids[0]}", "rd_patient_get",
                                      {1: ":tid", 2: ":id"}),
            f"GET /v1/patients?search={search}": (
                "get_path.lua", {"BENCH_PATH": f"/v1/patients?search={search}"},
                f"/v1/patients?search={search}", "rd_patients_list",
                {1: ":tid", 2: ":lim", 3: NULL, 4: NULL, 5: ":q", 6: NULL, 7: NULL}),
            "GET /v1/patients (list page)": (
                "get_path.lua", {"BENCH_PATH": "/v1/patients?limit=50"},
                "/v1/patients?limit=50", "rd_patients_list",
                {1: ":tid", 2: ":lim", 3: NULL, 4: NULL, 5: NULL, 6: NULL, 7: NULL}),
        }
        statements = self.capture_sql([q[2] for q in queries.values()], auth)
        reader = self.daemons["reader"]
        pool = int(os.environ.get("VETPMS_READER_POOL_SIZE", "4")) * \
            int(os.environ.get("VETPMS_READER_THREADS", "2"))
        hello = None
        for what, (script, extra, probe, stmt, subst) in queries.items():
            env = {"BENCH_TOKEN": f["token"], **extra}
            self.wrk(reader.url, script, env, seconds=2)
            cpu = Cpu(self, ["reader", "postgres"]).start()
            r = self.wrk(reader.url, script, env)
            used = cpu.stop()
            used["loadgen(wrk)"] = r["cpu"]
            if stmt not in statements:
                raise RuntimeError(f"statement {stmt} not found in the PostgreSQL log")
            pg = self.pgbench(stmt, statements[stmt], {k: v for k, v in subst.items()}, pool,
                              {"tid": tid, "nids": len(ids), "q": search, "lim": 50, "none": "-"},
                              ids=ids if ":id" in subst.values() else None)
            if hello is None:
                hello = self.hello_run("get_path.lua", {"BENCH_TOKEN": f["token"],
                                                        "BENCH_PATH": "/v1/patients"}, 2)
            self.row("queries", what, round(r["rate"]), round(pg["rate"]), "requests/s",
                     r["p50_us"] / 1000, r["p99_us"] / 1000, per_k(used, r["requests"]),
                     f"pgbench same SQL, {pool} conns",
                     f"pgbench p50/p99 {pg['p50_ms']}/{pg['p99_ms']} ms, CPU/1k pgbench "
                     f"{pg['cpu'] / max(1, pg['transactions']) * 1000:.4f} s, postgres "
                     f"{pg['pg_cpu'] / max(1, pg['transactions']) * 1000:.4f} s; vs libevent "
                     f"hello (2 loops) {round(hello['rate'])}/s = "
                     f"{r['rate'] / hello['rate']:.3f}; non-2xx {r['errors']}")

    # --- 5. lag --------------------------------------------------------------------
    LAG_STAGES = (
        ("ack_to_kafka", "ack → committed in Kafka (read_committed consumer)"),
        ("kafka_to_applied", "Kafka → applied (event_log row inserted)"),
        ("applied_to_committed", "applied → committed in PostgreSQL"),
        ("committed_to_notified", "committed → NOTIFY seen (LISTEN)"),
        ("notified_to_visible", "NOTIFY → visible in reader GET"),
    )

    def scenario_lag(self):
        self.read_side()
        f = self.facts
        half = max(1, int(f["max_command_rate"] / 2))
        # Lag by stage: the time each event_log row was inserted, in the bench's
        # database only (no migration: the daemons and their schema stay as
        # shipped; the projector names its columns, so it fills this by default)
        self.sql("ALTER TABLE read.event_log ADD COLUMN bench_applied_at timestamptz")
        self.sql("ALTER TABLE read.event_log ALTER COLUMN bench_applied_at "
                 "SET DEFAULT clock_timestamp()")
        try:
            # 10/s: an idle system (read-your-write with nothing else going on)
            for rate in (10, 1000, half):
                self.lag_run(rate)
        finally:
            self.sql("ALTER TABLE read.event_log DROP COLUMN bench_applied_at")

    def lag_run(self, rate):
        f = self.facts
        cpu = Cpu(self, ["writer", "projector", "reader", "postgres", "kafka"]).start()
        out, gen_cpu = run_tool([
            os.path.join(TOOLS, "lag_probe"), str(self.daemons["writer"].port),
            str(self.daemons["reader"].port), f["token"], f["clients"][0], str(rate),
            str(self.seconds), str(max(1, rate // 50)), "3",
            self.stack.brokers, "vetpms.events", self.stack.superuser_dsn()])
        used = cpu.stop()
        used["loadgen(lag_probe)"] = gen_cpu
        r = json.loads(out)
        label = {10: "10/s (idle)", 1000: "1,000/s"}.get(rate, f"{rate}/s (50% of max)")
        self.row("lag", f"ack → visible in reader at {label}", round(r["rate"]), rate,
                 "commands/s", r["lag_p50_ms"], r["lag_p99_ms"],
                 per_k(used, max(1, r["acked"])), "target rate",
                 f"lag max {r['lag_max_ms']} ms over {r['probes_seen']} probes "
                 f"(of {r['probes']}, polled every 3 ms); ack p50/p99 "
                 f"{r['ack_p50_ms']}/{r['ack_p99_ms']} ms; errors {r['errors']}")
        since = r["since_ack"]
        for i, (key, what) in enumerate(self.LAG_STAGES):
            st = r["stages"][key]
            note = ""
            if i == 0:
                note = (f"stages at {label} over {r['stage_samples']} probes; since the ack "
                        "p50/p99 ms: " + ", ".join(
                            f"{k} {v['p50_ms']}/{v['p99_ms']}" for k, v in since.items()))
            self.row("lag", f"  {i + 1}. {what}", None, None, "ms", st["p50_ms"],
                     st["p99_ms"], note=note)
        self.facts.setdefault("lag_stages", {})[str(rate)] = {
            "stages": r["stages"], "since_ack": since, "samples": r["stage_samples"]}

    # --- 7. visits ---------------------------------------------------------------
    VISIT_STEPS = (
        ("open", "OpenMedicalRecord"), ("vitals", "RecordVitals"), ("soap", "WriteSoapNote"),
        ("diagnoses", "AddDiagnosis"), ("prescriptions", "PrescribeMedication"),
        ("sign", "SignMedicalRecord"))

    def visit_bodies(self, rec, pid, i):
        """The six steps of visit i (record rec of patient pid): (path, body)."""
        r = f"/v1/medical-records/{rec}"
        return [
            ("/v1/medical-records", {"id": rec, "patient_id": pid, "record_type": "consultation",
                                     "chief_complaint": f"Itchy skin {i}"}),
            (r + "/vitals", {"temperature_c": 38.1 + (i % 10) / 10, "pulse_bpm": 80 + i % 40,
                             "respiration_rpm": 20 + i % 10,
                             "weight": {"value": 20 + (i % 100) / 10, "unit": "kg"}}),
            (r + "/soap", {"subjective": "Scratching for a week, worse at night.",
                           "objective": "Papules and crusts over the lumbar area; fleas seen.",
                           "assessment": "Flea allergy dermatitis.",
                           "plan": "Flea treatment for all pets, recheck in 3 weeks."}),
            (r + "/diagnoses", {"name": "Flea allergy dermatitis", "code": "FAD",
                                "primary": True}),
            (r + "/prescriptions", {"medication": "Prednisolone 5 mg", "dosage": "1 tablet",
                                    "frequency": "twice daily", "route": "oral",
                                    "duration_days": 7}),
            (r + "/sign", {}),
        ]

    def post_path_lines(self, daemon, pairs, token, name, conns=64):
        """post_lines with PATH "-": one "PATH<TAB>BODY" line a request."""
        t0 = time.time()
        fname = self.ids_file(name, [p + "\t" + json.dumps(b, separators=(",", ":"))
                                     for p, b in pairs])
        out, cpu = run_tool([os.path.join(TOOLS, "post_lines"), str(daemon.port), "-", token,
                             fname, str(conns)], timeout=1800)
        r = json.loads(out)
        r["wall_s"], r["cpu"] = time.time() - t0, cpu
        os.unlink(fname)
        return r

    def scenario_visits(self):
        """The visit cycle open → vitals → SOAP → diagnosis → prescription →
        sign over many visits, six phases (one step of every visit each) by
        bench/post_lines over 64 keep-alive connections. A few patients get
        100 visits each (plus vaccinations and appointments, unmeasured) for
        the timeline scenario."""
        for key in ("projector", "reader"):
            self.drop(key)  # two cores: the writer and Kafka only while measured
        writer, f = self.writer(), self.facts
        token = f["token"]
        n_visits = 2000 if self.quick else 10000
        n_tl, tl_visits = 2, 100  # timeline patients, visits each
        n_other = n_visits // 10
        patients = [str(uuid.uuid4()) for _ in range(n_tl + n_other)]
        pre = self.post_lines(writer, "/v1/patients", [
            {"id": pid, "client_id": f["clients"][i % len(f["clients"])],
             "name": f"Visit {i}", "species": "feline", "sex": "male"}
            for i, pid in enumerate(patients)], token, "visit_patients")
        if pre["status"].get("201") != len(patients):
            raise RuntimeError(f"patients for the visits: {pre}")
        tl, other = patients[:n_tl], patients[n_tl:]
        owner = [tl[v // tl_visits] if v < n_tl * tl_visits else other[v % n_other]
                 for v in range(n_visits)]
        recs = [str(uuid.uuid4()) for _ in range(n_visits)]
        visits = [self.visit_bodies(recs[v], owner[v], v) for v in range(n_visits)]
        order = list(range(n_visits))
        random.Random(11).shuffle(order)  # the timeline patients' visits spread out
        commits0 = self.metric(writer, "vetpms_writer_commits_total")
        events0 = self.metric(writer, "vetpms_writer_events_appended_total")
        cpu = Cpu(self, ["writer", "kafka"]).start()
        phases, total_s, loadgen = [], 0.0, 0.0
        for s, (step, command) in enumerate(self.VISIT_STEPS):
            if step == "sign":
                # unmeasured, between the phases: one vaccination on half the
                # timeline patients' records (a signed record takes no more)
                cpu_pause = cpu.stop()
                events_mid = self.metric(writer, "vetpms_writer_events_appended_total")
                commits_mid = self.metric(writer, "vetpms_writer_commits_total")
                vac = self.post_path_lines(writer, [
                    (f"/v1/medical-records/{recs[v]}/treatments",
                     {"name": "Rabies", "treatment_type": "vaccination",
                      "performed_at": iso(time.time() - 3600), "next_due_on":
                      time.strftime("%Y-%m-%d", time.gmtime(time.time() + 365 * 86400))})
                    for v in range(0, n_tl * tl_visits, 2)], token, "visit_vaccinations")
                if vac["status"].get("201", 0) + vac["status"].get("200", 0) != vac["requests"]:
                    raise RuntimeError(f"vaccinations: {vac}")
                vac_events = self.metric(writer, "vetpms_writer_events_appended_total") - \
                    events_mid
                vac_commits = self.metric(writer, "vetpms_writer_commits_total") - commits_mid
                cpu = Cpu(self, ["writer", "kafka"]).start()
            r = self.post_path_lines(writer, [visits[v][s] for v in order], token,
                                     f"visit_{step}")
            ok = sum(n for code, n in r["status"].items() if code.startswith("2"))
            phases.append({"step": step, "command": command, "requests": r["requests"],
                           "ok": ok, "seconds": r["seconds"], "rate": r["rate"],
                           "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "status": r["status"],
                           "first_error": r["first_error"]})
            total_s += r["seconds"]
            loadgen += r["cpu"]
            log(f"visits/{step}: {r['rate']:.0f}/s, p50/p99 {r['p50_ms']}/{r['p99_ms']} ms, "
                f"statuses {r['status']} {r['first_error'][:200]}")
        used = cpu.stop()
        used = {k: used[k] + cpu_pause[k] for k in used}
        used["loadgen(post_lines)"] = loadgen
        # the vaccinations' events and commits are taken out of the counts
        commits = self.metric(writer, "vetpms_writer_commits_total") - commits0 - vac_commits
        events = self.metric(writer, "vetpms_writer_events_appended_total") - events0 - \
            vac_events
        done = sum(p["ok"] for p in phases)
        per_txn = max(1, round(events / commits)) if commits else 1
        size = self.record_size(f["partition"], n=min(3000, max(200, events)))
        rate = done / total_s
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        self.facts["visits"] = {
            "visits": n_visits, "timeline_patients": tl, "visits_per_timeline_patient": tl_visits,
            "phases": phases, "vaccinations": vac["requests"], "raw_producer": raw}
        not_ok = sum(p["requests"] - p["ok"] for p in phases)
        self.row("visits", f"visit cycle, 6 commands x {n_visits} visits (64 conns)",
                 round(rate), round(raw["records_per_s"]), "commands/s",
                 max(p["p50_ms"] for p in phases), max(p["p99_ms"] for p in phases),
                 per_k(used, done), "raw librdkafka txn loop",
                 "per step /s p50/p99 ms: " + "; ".join(
                     f"{p['step']} {p['rate']:.0f} {p['p50_ms']:.1f}/{p['p99_ms']:.1f}"
                     for p in phases) +
                 f"; p50/p99 columns = the worst step's; non-2xx {not_ok}"
                 f"{' first: ' + next(p['first_error'] for p in phases if p['first_error'])[:200] if not_ok else ''}"
                 f"; {events / total_s:.0f} events/s (vitals with a weight is 2 events)"
                 f"; {per_txn} records/txn ({events} events in {commits} txns, "
                 f"the {vac['requests']} unmeasured vaccinations left out), {size} B values; "
                 f"{self.raw_note(raw, raw_cpu, kused)}; load average "
                 f"{os.getloadavg()[0]:.2f} (1 min) after")

    # --- 8. timeline ---------------------------------------------------------------
    def scenario_timeline(self):
        """GET /v1/patients/{id}/timeline (first page, the default 50) of a
        patient with 500 entries: the visits scenario's 100 visits (record,
        vitals, weight, prescription) + 50 vaccinations, and 50 appointments
        booked here. wrk at the maximum vs pgbench of the reader's SQL, then a
        paced wrk at about half the maximum for the p99."""
        f = self.facts
        if "visits" not in f:
            self.scenario_visits()
        writer, token = self.writer(), f["token"]
        tl = f["visits"]["timeline_patients"]
        vet = self.post(writer, "/v1/staff", {"name": "Dr Timeline", "role": "veterinarian"},
                        token)["id"]
        base = (int(time.time()) // 86400 + 3) * 86400
        self.post(writer, f"/v1/staff/{vet}/availability", {"blocks": [
            {"start": iso(base + d * 86400), "end": iso(base + (d + 1) * 86400)}
            for d in range(2)]}, token)
        appts = self.post_lines(writer, "/v1/appointments", [
            {"patient_id": tl[k % len(tl)], "vet_id": vet, "start": iso(base + k * 900),
             "end": iso(base + k * 900 + 900), "type": "follow_up", "reason": "recheck"}
            for k in range(50 * len(tl))], token, "timeline_appointments")
        if appts["status"].get("201") != appts["requests"]:
            raise RuntimeError(f"appointments for the timeline: {appts}")
        self.read_side()
        self.sql("ANALYZE")
        pid, tid = tl[0], f["tenant"]
        counts = {t: self.sql(f"SELECT count(*) FROM read.{t} WHERE tenant_id = %s AND "
                              f"patient_id = %s{extra}", (tid, pid))[0][0]
                  for t, extra in (("appointments", ""), ("medical_records", ""),
                                   ("vitals", ""), ("weights", ""), ("allergies", ""),
                                   ("treatments", " AND treatment_type = 'vaccination'"),
                                   ("prescriptions", ""))}
        entries = sum(counts.values())
        path = f"/v1/patients/{pid}/timeline"
        auth = {"Authorization": "Bearer " + token}
        statements = self.capture_sql([path], auth)
        if "rd_patient_timeline" not in statements:
            raise RuntimeError("statement rd_patient_timeline not found in the PostgreSQL log")
        reader = self.daemons["reader"]
        page = reader.get(path, headers=auth).json()
        pool = int(os.environ.get("VETPMS_READER_POOL_SIZE", "4")) * \
            int(os.environ.get("VETPMS_READER_THREADS", "2"))
        env = {"BENCH_TOKEN": token, "BENCH_PATH": path}
        self.wrk(reader.url, "get_path.lua", env, seconds=2)
        cpu = Cpu(self, ["reader", "postgres"]).start()
        r = self.wrk(reader.url, "get_path.lua", env)
        used = cpu.stop()
        used["loadgen(wrk)"] = r["cpu"]
        pg = self.pgbench("rd_patient_timeline", statements["rd_patient_timeline"],
                          {1: ":tid", 2: ":lim", 3: NULL, 4: NULL, 5: ":pid"}, pool,
                          {"tid": tid, "nids": 1, "lim": 50, "none": "-", "pid": pid})
        ratio = r["rate"] / pg["rate"] if pg["rate"] else 0
        self.row("timeline", f"GET /v1/patients/{{id}}/timeline, {entries} entries, page of "
                 f"{len(page.get('data', []))} (wrk -t2 -c{self.connections})",
                 round(r["rate"]), round(pg["rate"]), "requests/s", r["p50_us"] / 1000,
                 r["p99_us"] / 1000, per_k(used, r["requests"]),
                 f"pgbench same SQL, {pool} conns",
                 f"issue goal >= 0.6 of pgbench: {'met' if ratio >= 0.6 else 'NOT met'} "
                 f"({ratio:.3f}); pgbench p50/p99 {pg['p50_ms']}/{pg['p99_ms']} ms, CPU/1k "
                 f"pgbench {pg['cpu'] / max(1, pg['transactions']) * 1000:.4f} s, postgres "
                 f"{pg['pg_cpu'] / max(1, pg['transactions']) * 1000:.4f} s; entries {counts}; "
                 f"non-2xx {r['errors']}")
        # about half the maximum: 16 connections, each waiting a random delay
        # (mean d) before each request; d calibrated by a 3 s run
        conns, target = 16, r["rate"] / 2
        d = conns * 1000 / target
        cal = self.wrk(reader.url, "get_path_paced.lua", {**env, "BENCH_DELAY_MS": str(d)},
                       connections=conns, seconds=3)
        per_req = conns * 1000 / cal["rate"] - d  # ms a request costs beyond the delay
        d = max(0.0, conns * 1000 / target - per_req)
        env["BENCH_DELAY_MS"] = f"{d:.2f}"
        cpu = Cpu(self, ["reader", "postgres"]).start()
        h = self.wrk(reader.url, "get_path_paced.lua", env, connections=conns)
        used = cpu.stop()
        used["loadgen(wrk)"] = h["cpu"]
        p99 = h["p99_us"] / 1000
        self.row("timeline", f"the same at ~50% of the max (wrk -t2 -c{conns}, mean delay "
                 f"{d:.1f} ms/request/conn)", round(h["rate"]), round(r["rate"]), "requests/s",
                 h["p50_us"] / 1000, p99, per_k(used, h["requests"]), "reader max above",
                 f"issue goal p99 < 50 ms at 50% of max: {'met' if p99 < 50 else 'NOT met'} "
                 f"(p99 {p99:.1f} ms at {h['rate'] / r['rate'] * 100:.0f}% of max); latency "
                 f"from each request's write (wrk), not corrected for coordinated omission; "
                 f"non-2xx {h['errors']}")
        self.facts["timeline"] = {"patient": pid, "entries": entries, "counts": counts,
                                  "appointments": appts["requests"], "delay_ms": d}

    # --- 9. dispense (stock, FEFO) ----------------------------------------------------
    def stock_item(self, code, name):
        """A stock item (medication, tablets) through the writer: its id."""
        writer, token = self.writer(), self.facts["token"]
        return self.post(writer, "/v1/inventory/items", {
            "code": code, "name": name, "category": "medication", "unit": "tablet"}, token)["id"]

    def receipts(self, item, n, quantity, name, first_day=30):
        """n batches of item, B00001.., batch i expiring first_day + i days from
        today (all distinct, all future), posted in a shuffled order."""
        today = int(time.time()) // 86400
        order = list(range(n))
        random.Random(12).shuffle(order)
        r = self.post_lines(self.daemons["writer"], f"/v1/inventory/items/{item}/receipts", [
            {"batch_number": f"B{i:05d}", "quantity": quantity,
             "expiry_date": time.strftime("%Y-%m-%d", time.gmtime((today + first_day + i) * 86400)),
             "lot_number": f"L{i // 10:04d}", "unit_cost_cents": 12}
            for i in order], self.facts["token"], name)
        if r["status"].get("201", 0) + r["status"].get("200", 0) != n:
            raise RuntimeError(f"receipts: {r}")
        return r

    def allocations_since(self, starts, item):
        """{batches allocated: dispenses} over the StockDispensed events of item
        on the events topic from the given start offsets to the end."""
        ends = self.end_offsets("vetpms.events")
        c = Consumer({"bootstrap.servers": self.stack.brokers, "group.id": "bench-alloc",
                      "enable.auto.commit": False, "isolation.level": "read_committed"})
        todo = {p: e for p, e in ends.items() if e > starts.get(p, 0)}
        c.assign([TopicPartition("vetpms.events", p, starts.get(p, 0)) for p in todo])
        hist, idle = {}, 0

        def walk(v):
            if isinstance(v, dict):
                if v.get("type") == "StockDispensed" and isinstance(v.get("data"), dict) \
                        and isinstance(v["data"].get("allocations"), list) and \
                        item in json.dumps(v, separators=(",", ":")):
                    k = len(v["data"]["allocations"])
                    hist[k] = hist.get(k, 0) + 1
                    return
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        while todo and idle < 3:
            m = c.poll(1)
            if m is None:
                idle += 1
                continue
            idle = 0
            if m.error():
                continue
            if m.value():
                try:
                    walk(json.loads(m.value()))
                except ValueError:
                    pass
            if m.offset() >= todo.get(m.partition(), 0) - 2:
                todo.pop(m.partition(), None)
        c.close()
        return hist

    def scenario_dispense(self):
        """DispenseStock by FEFO on an item holding 10,000 batches (distinct
        future expiry dates, 10 tablets each, received through the writer, not
        timed), then n dispenses of 3 tablets by bench/post_lines over 64
        keep-alive connections: every dispense takes the earliest batches left,
        so the run drains the front of the FEFO order (two dispenses in ten
        span two batches, the others one). Against the raw
        librdkafka producer with the same records/txn and value size."""
        for key in ("projector", "reader"):
            self.drop(key)  # two cores: the writer and Kafka only while measured
        writer, f = self.writer(), self.facts
        token = f["token"]
        n_batches, per_batch, qty = 10000, 10, 3
        n = 6000 if self.quick else 20000  # 3 n < 10 n_batches: stock never runs out
        item = self.stock_item("BENCH-FEFO", "Meloxicam 1 mg (bench FEFO)")
        t0 = time.time()
        pre = self.receipts(item, n_batches, per_batch, "dispense_receipts")
        log(f"dispense: {n_batches} batches received in {time.time() - t0:.1f}s "
            f"({pre['rate']:.0f}/s)")
        # warm-up (unmeasured): a few hundred dispenses, then the measured run
        warm = self.post_lines(writer, f"/v1/inventory/items/{item}/dispenses",
                               [{"quantity": qty}] * 300, token, "dispense_warm")
        starts = self.end_offsets("vetpms.events")
        commits0 = self.metric(writer, "vetpms_writer_commits_total")
        events0 = self.metric(writer, "vetpms_writer_events_appended_total")
        cpu = Cpu(self, ["writer", "kafka"]).start()
        r = self.post_lines(writer, f"/v1/inventory/items/{item}/dispenses",
                            [{"quantity": qty}] * n, token, "dispenses")
        used = cpu.stop()
        used["loadgen(post_lines)"] = r["cpu"]
        commits = self.metric(writer, "vetpms_writer_commits_total") - commits0
        events = self.metric(writer, "vetpms_writer_events_appended_total") - events0
        ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
        per_txn = max(1, round(events / commits)) if commits else 1
        size = self.record_size(f["partition"], n=min(3000, max(200, events)))
        hist = self.allocations_since(starts, item)
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        drained = (n + warm["requests"]) * qty / per_batch
        mean_alloc = sum(k * v for k, v in hist.items()) / max(1, sum(hist.values()))
        self.facts["dispense"] = {"item": item, "batches": n_batches, "per_batch": per_batch,
                                  "quantity": qty, "dispenses": n, "allocations": hist,
                                  "receipts": pre, "raw_producer": raw}
        self.row("dispense", f"DispenseStock FEFO x {n}, item of {n_batches} batches (64 conns)",
                 round(ok / r["seconds"]), round(raw["records_per_s"]), "commands/s",
                 r["p50_ms"], r["p99_ms"], per_k(used, ok), "raw librdkafka txn loop",
                 f"batches allocated per dispense {dict(sorted(hist.items()))} (mean "
                 f"{mean_alloc:.2f}); about {drained:.0f} earliest batches drained by the end; "
                 f"non-2xx {r['requests'] - ok}"
                 f"{' first: ' + r['first_error'][:200] if r['requests'] != ok else ''}; "
                 f"{per_txn} records/txn ({events} events in {commits} txns), {size} B values; "
                 f"{self.raw_note(raw, raw_cpu, kused)}; pre-fill {n_batches} receipts "
                 f"at {pre['rate']:.0f}/s (p99 {pre['p99_ms']:.1f} ms, not timed here); load "
                 f"average {os.getloadavg()[0]:.2f} (1 min) after")

    # --- 10. register ------------------------------------------------------------------
    def scenario_register(self):
        """GET /v1/inventory/items/{id}/register (first page, the default 50, no
        cursor: the oldest movements) of an item with 100,000 movements: 1,000
        receipts (1,000 tablets each), then 90,000 FEFO dispenses of 1 tablet
        and 9,000 adjustments (returned, +1 on a batch) shuffled together, all
        through the writer, the projector catching up after. wrk vs pgbench of
        the reader's captured SQL with the same parameters."""
        for key in ("projector", "reader"):
            self.drop(key)
        writer, f = self.writer(), self.facts
        token = f["token"]
        n_batches, n_disp, n_adj = 1000, 90000, 9000
        item = self.stock_item("BENCH-REG", "Amoxicillin 50 mg (bench register)")
        t0 = time.time()
        self.receipts(item, n_batches, 1000, "register_receipts")
        base = f"/v1/inventory/items/{item}"
        pairs = [(base + "/dispenses", {"quantity": 1})] * n_disp + [
            (base + "/adjustments", {"batch_number": f"B{k % n_batches:05d}", "reason": "returned",
                                     "delta": 1}) for k in range(n_adj)]
        random.Random(13).shuffle(pairs)
        r = self.post_path_lines(writer, pairs, token, "register_moves")
        ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
        if ok != len(pairs):
            raise RuntimeError(f"register movements: {r['status']} {r['first_error'][:300]}")
        fill_s = time.time() - t0
        log(f"register: {n_batches + len(pairs)} commands in {fill_s:.0f}s; projector next")
        t1 = time.time()
        self.read_side()
        catch_s = time.time() - t1
        self.sql("ANALYZE")
        tid = f["tenant"]
        moves = self.sql("SELECT kind, count(*) FROM read.stock_movements WHERE tenant_id = %s "
                         "AND item_id = %s GROUP BY kind ORDER BY kind", (tid, item))
        total = sum(c for _, c in moves)
        path = base + "/register"
        auth = {"Authorization": "Bearer " + token}
        statements = self.capture_sql([path], auth)
        if "rd_inventory_register" not in statements:
            raise RuntimeError("statement rd_inventory_register not found in the PostgreSQL log")
        reader = self.daemons["reader"]
        page = reader.get(path, headers=auth).json()
        pool = int(os.environ.get("VETPMS_READER_POOL_SIZE", "4")) * \
            int(os.environ.get("VETPMS_READER_THREADS", "2"))
        env = {"BENCH_TOKEN": token, "BENCH_PATH": path}
        self.wrk(reader.url, "get_path.lua", env, seconds=2)
        cpu = Cpu(self, ["reader", "postgres"]).start()
        w = self.wrk(reader.url, "get_path.lua", env)
        used = cpu.stop()
        used["loadgen(wrk)"] = w["cpu"]
        pg = self.pgbench("rd_inventory_register", statements["rd_inventory_register"],
                          {1: ":tid", 2: ":lim", 3: NULL, 4: NULL, 5: ":item", 6: NULL, 7: NULL},
                          pool, {"tid": tid, "nids": 1, "lim": 50, "none": "-", "item": item})
        ratio = w["rate"] / pg["rate"] if pg["rate"] else 0
        self.facts["register"] = {"item": item, "movements": dict(moves), "fill_s": fill_s,
                                  "catch_up_s": catch_s, "fill": {k: r[k] for k in (
                                      "requests", "seconds", "rate", "p50_ms", "p99_ms")}}
        self.row("register", f"GET /v1/inventory/items/{{id}}/register, {total} movements, first "
                 f"page of {len(page.get('data', []))} (wrk -t2 -c{self.connections})",
                 round(w["rate"]), round(pg["rate"]), "requests/s", w["p50_us"] / 1000,
                 w["p99_us"] / 1000, per_k(used, w["requests"]),
                 f"pgbench same SQL, {pool} conns",
                 f"issue goal >= 0.6 of pgbench: {'met' if ratio >= 0.6 else 'NOT met'} "
                 f"({ratio:.3f}); pgbench p50/p99 {pg['p50_ms']}/{pg['p99_ms']} ms, CPU/1k "
                 f"pgbench {pg['cpu'] / max(1, pg['transactions']) * 1000:.4f} s, postgres "
                 f"{pg['pg_cpu'] / max(1, pg['transactions']) * 1000:.4f} s; movements "
                 f"{dict(moves)}; fill {len(pairs) + n_batches} commands in {fill_s:.0f}s "
                 f"(mixed phase {r['rate']:.0f}/s), projector caught up {catch_s:.0f}s after; "
                 f"non-2xx {w['errors']}")

    # --- 11. revenue ---------------------------------------------------------------------
    def projector_baseline(self):
        """The projector and reader running and caught up with the events topic
        (the writer not needed: a scenario that only reads)."""
        for key, name in (("projector", "projector"), ("reader", "query-reader")):
            if key not in self.daemons:
                self.daemon(key, name)
        self.wait_caught_up("read", "vetpms.events")

    def scenario_revenue(self):
        """GET /v1/stats/revenue/monthly over 24 months of one tenant holding
        200,000 invoices (20,000 with --quick), made by bench/gen_invoices
        straight into the events topic with the projector stopped, which is
        then timed from start to caught up (the billing projection rate, a
        fact). wrk vs pgbench of the reader's captured SQL, same parameters."""
        n, months = (20000 if self.quick else 200000), 24
        now = time.gmtime()
        first = now.tm_year * 12 + now.tm_mon - 1 - months  # the 24 months before this one
        first_month = f"{first // 12:04d}-{first % 12 + 1:02d}"
        self.projector_baseline()
        self.drop("projector")
        out, gen_cpu = run_tool([os.path.join(TOOLS, "gen_invoices"), self.stack.brokers,
                                 "vetpms.events", str(n), first_month, str(months)],
                                timeout=1800)
        gen = json.loads(out)
        tid = gen["tenant"]
        billing = sum(v for k, v in gen["types"].items()
                      if k not in ("TenantProvisioned", "ClientRegistered"))
        log(f"revenue: {gen['events']} events ({billing} billing) for {n} invoices in "
            f"{gen['seconds']:.1f}s: {gen['types']}")
        t0 = time.time()
        d = self.stack.start_daemon("projector", port=free_port())
        self.daemons["projector"] = d
        cpu = Cpu(self, ["projector", "postgres"]).start()
        self.wait_caught_up("read", "vetpms.events", timeout=3600)
        took = time.time() - t0
        proj_used = cpu.stop()
        d.wait_ready(60)
        dead = self.sql("SELECT count(*) FROM read.dead_letters WHERE tenant_id = %s",
                        (tid,))[0][0]
        refreshes = re.findall(r'^vetpms_projector_mv_refreshes_total\{view="revenue_monthly_'
                               r'summary"\} (\d+)', d.get("/metrics").text, re.M)
        log(f"revenue: projector caught up in {took:.1f}s ({billing / took:.0f} billing "
            f"events/s), dead letters {dead}")
        self.sql("ANALYZE")
        token = self.stack.token(["admin"], tenant=tid, ttl=86400)
        auth = {"Authorization": "Bearer " + token}
        path = f"/v1/stats/revenue/monthly?from={gen['from']}&to={gen['to']}"
        reader = self.daemons["reader"]
        answer = reader.get(path, headers=auth).json()
        sums = {k: sum(m[k] for m in answer.get("data", [])) for k in gen["revenue"]}
        matches = sums == gen["revenue"]
        statements = self.capture_sql([path], auth)
        if "rd_revenue_monthly" not in statements:
            raise RuntimeError("statement rd_revenue_monthly not found in the PostgreSQL log")
        exps = self.statement_params.get("rd_revenue_monthly", {}).get(4)
        if exps is None:
            raise RuntimeError("the parameters of rd_revenue_monthly not found in the log")
        pool = int(os.environ.get("VETPMS_READER_POOL_SIZE", "4")) * \
            int(os.environ.get("VETPMS_READER_THREADS", "2"))
        env = {"BENCH_TOKEN": token, "BENCH_PATH": path}
        self.wrk(reader.url, "get_path.lua", env, seconds=2)
        cpu = Cpu(self, ["reader", "postgres"]).start()
        w = self.wrk(reader.url, "get_path.lua", env)
        used = cpu.stop()
        used["loadgen(wrk)"] = w["cpu"]
        pg = self.pgbench("rd_revenue_monthly", statements["rd_revenue_monthly"],
                          {1: ":tid", 2: ":from", 3: ":to", 4: ":exps"}, pool,
                          {"tid": tid, "nids": 1, "from": gen["from"] + "-01",
                           "to": gen["to"] + "-01", "exps": exps})
        ratio = w["rate"] / pg["rate"] if pg["rate"] else 0
        p99 = w["p99_us"] / 1000
        self.facts["revenue"] = {
            "tenant": tid, "invoices": n, "months": len(answer.get("data", [])),
            "from": gen["from"], "to": gen["to"], "events": gen["events"],
            "billing_events": billing, "types": gen["types"], "fates": gen["fates"],
            "generator_s": gen["seconds"], "generator_cpu_s": gen_cpu,
            "projection_s": took, "billing_events_per_s": billing / took,
            "projection_cpu_s_per_1k": per_k(proj_used, billing),
            "revenue_summary_refreshes": int(refreshes[0]) if refreshes else None,
            "dead_letters": dead, "answer_sums": sums, "expected_sums": gen["revenue"]}
        self.row("revenue", f"GET /v1/stats/revenue/monthly, {len(answer.get('data', []))} "
                 f"months of {n} invoices (wrk -t2 -c{self.connections})",
                 round(w["rate"]), round(pg["rate"]), "requests/s", w["p50_us"] / 1000, p99,
                 per_k(used, w["requests"]), f"pgbench same SQL, {pool} conns",
                 f"issue goals >= 0.6 of pgbench: {'met' if ratio >= 0.6 else 'NOT met'} "
                 f"({ratio:.3f}), p99 < 100 ms: {'met' if p99 < 100 else 'NOT met'} "
                 f"({p99:.1f} ms); pgbench p50/p99 {pg['p50_ms']}/{pg['p99_ms']} ms, CPU/1k "
                 f"pgbench {pg['cpu'] / max(1, pg['transactions']) * 1000:.4f} s, postgres "
                 f"{pg['pg_cpu'] / max(1, pg['transactions']) * 1000:.4f} s; the answer's sums "
                 f"{'match' if matches else 'DO NOT match'} the generator's "
                 f"({sums if not matches else gen['revenue']}); "
                 f"projection of {billing} billing events: {took:.1f}s from projector start = "
                 f"{billing / took:.0f} events/s (projector "
                 f"{proj_used['projector'] / billing * 1000:.3f}, postgres "
                 f"{proj_used['postgres'] / billing * 1000:.3f} CPU-s per 1k; "
                 f"revenue_monthly_summary refreshed {refreshes[0] if refreshes else '?'} "
                 f"times meanwhile), dead letters {dead}; gen_invoices {gen['events']} events in {gen['seconds']:.1f}s; "
                 f"non-2xx {w['errors']}")

    # --- 12. issue (IssueInvoice) ----------------------------------------------------------
    def scenario_issue(self):
        """IssueInvoice of 5-line invoices, 2 of the lines stocked (item_id:
        dispensed FEFO in the issue's transaction, so 3 events a command).
        Prepared through the writer, unmeasured: 10 items of 300 batches each,
        then N drafts (CreateInvoice with a chosen id) and their 5 lines
        (AddInvoiceLine, one phase per line position), then 300 issues as
        warm-up; measured: N IssueInvoice over 64 keep-alive connections
        (bench/post_lines, a path per request). Against the raw librdkafka
        producer with the records/txn and value size the writer reached, its
        records/s divided by the events of a command."""
        for key in ("projector", "reader"):
            self.drop(key)  # two cores: the writer and Kafka only while measured
        writer, f = self.writer(), self.facts
        token = f["token"]
        n, warm = (3000 if self.quick else 10000), 300
        n_items, n_batches, per_batch = 10, 300, 10  # 30,000 tablets; 2 (n + warm) taken
        t0 = time.time()
        items = [self.post(writer, "/v1/inventory/items", {
            "code": f"BENCH-INV-{k:02d}", "name": f"Carprofen {k + 1}0 mg (bench issue)",
            "category": "medication", "unit": "tablet", "sale_price_cents": 85 + k,
            "tax_rate_bp": 2000}, token)["id"] for k in range(n_items)]
        for k, item in enumerate(items):
            self.receipts(item, n_batches, per_batch, f"issue_receipts_{k}")
        invoices = [str(uuid.uuid4()) for _ in range(n + warm)]
        clients = f["clients"]
        r = self.post_lines(writer, "/v1/invoices", [
            {"id": inv, "client_id": clients[i % len(clients)]}
            for i, inv in enumerate(invoices)], token, "issue_invoices")
        if r["status"].get("201", 0) != len(invoices):
            raise RuntimeError(f"CreateInvoice: {r['status']} {r['first_error'][:300]}")

        def line(i, pos):
            if pos in (1, 3):  # the stocked lines: two items, one tablet each
                return {"description": "Carprofen tablets", "quantity": 1,
                        "item_id": items[(i + (pos == 3)) % n_items]}
            name, price = {0: ("Consultation", 4500), 2: ("Blood panel", 6800),
                           4: ("Nail clipping", 1200)}[pos]
            return {"description": name, "quantity": 1, "unit_price_cents": price,
                    "tax_rate_bp": 2000}
        for pos in range(5):
            r = self.post_path_lines(writer, [(f"/v1/invoices/{inv}/lines", line(i, pos))
                                              for i, inv in enumerate(invoices)], token,
                                     f"issue_lines_{pos}")
            ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
            if ok != len(invoices):
                raise RuntimeError(f"AddInvoiceLine {pos}: {r['status']} {r['first_error'][:300]}")
        prep_s = time.time() - t0
        order = list(range(warm, n + warm))
        random.Random(14).shuffle(order)
        w = self.post_path_lines(writer, [(f"/v1/invoices/{invoices[i]}/issue", {})
                                          for i in range(warm)], token, "issue_warm")
        if w["status"].get("200", 0) + w["status"].get("201", 0) != warm:
            raise RuntimeError(f"IssueInvoice warm-up: {w['status']} {w['first_error'][:300]}")
        log(f"issue: prepared {n + warm} invoices of 5 lines ({n_items} items x {n_batches} "
            f"batches) in {prep_s:.0f}s; measuring {n} issues")
        commits0 = self.metric(writer, "vetpms_writer_commits_total")
        events0 = self.metric(writer, "vetpms_writer_events_appended_total")
        cpu = Cpu(self, ["writer", "kafka"]).start()
        r = self.post_path_lines(writer, [(f"/v1/invoices/{invoices[i]}/issue", {})
                                          for i in order], token, "issues")
        used = cpu.stop()
        used["loadgen(post_lines)"] = r["cpu"]
        commits = self.metric(writer, "vetpms_writer_commits_total") - commits0
        events = self.metric(writer, "vetpms_writer_events_appended_total") - events0
        ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
        per_cmd = events / ok if ok else 3
        per_txn = max(1, round(events / commits)) if commits else 1
        size = self.record_size(f["partition"], n=min(3000, max(200, events)))
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        ceiling = raw["records_per_s"] / per_cmd
        self.facts["issue"] = {"invoices": n, "warm_up": warm, "items": n_items,
                               "batches_per_item": n_batches, "prepare_s": prep_s,
                               "events_per_command": per_cmd, "records_per_txn": per_txn,
                               "value_bytes": size, "status": r["status"],
                               "raw_producer": raw}
        self.row("issue", f"IssueInvoice x {n}, 5 lines of which 2 stocked (64 conns)",
                 round(ok / r["seconds"]), round(ceiling), "commands/s", r["p50_ms"],
                 r["p99_ms"], per_k(used, ok),
                 f"raw librdkafka txn loop / {per_cmd:.2f} records a command",
                 f"{ok / r['seconds'] * per_cmd:.0f} events/s vs raw {raw['records_per_s']:.0f} "
                 f"records/s; {per_cmd:.2f} events a command (InvoiceIssued + a StockDispensed "
                 f"per stocked line); non-2xx {r['requests'] - ok}"
                 f"{' first: ' + r['first_error'][:200] if r['requests'] != ok else ''}; "
                 f"{per_txn} records/txn ({events} events in {commits} txns), {size} B values; "
                 f"{self.raw_note(raw, raw_cpu, kused)}; preparation {prep_s:.0f}s "
                 f"(not timed); load average {os.getloadavg()[0]:.2f} (1 min) after")

    # --- 3. projection ---------------------------------------------------------------
    def scenario_projection(self):
        for key in ("writer", "projector", "reader"):
            self.drop(key)  # the box has two cores: nothing else runs
        n = 50000 if self.quick else 1000000
        topic, schema = "bench.projection", "bench_proj"
        env = dict(self.stack.env, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
        self.stack.env, saved = env, self.stack.env
        self.stack.vetctl("topics", "create", "--partitions", "6")
        self.stack.env = saved
        out, gen_cpu = run_tool([os.path.join(TOOLS, "gen_events"), self.stack.brokers, topic,
                                 str(n), "20"])
        gen = json.loads(out)
        log(f"generated {n} events in {gen['seconds']:.1f}s: {gen['types']}")
        penv = {"VETPMS_TOPIC": topic, "VETPMS_DLQ_TOPIC": topic + ".dlq",
                "VETPMS_READ_SCHEMA": schema, "VETPMS_PROJECTOR_GROUP": "bench-projection"}
        t0 = time.time()
        d = self.stack.start_daemon("projector", port=free_port(), env=penv)
        self.daemons["projector-bench"] = d
        cpu = Cpu(self, ["projector-bench", "postgres", "kafka"]).start()
        self.wait_caught_up(schema, topic)
        took = time.time() - t0
        used = cpu.stop()
        dead = self.sql(f"SELECT count(*) FROM {schema}.dead_letters")[0][0]
        self.drop("projector-bench")
        rebuilt = self.rebuild_projection(penv)
        tables = ["tenants", "staff", "clients", "patients", "weights", "allergies",
                  "conditions", "event_log"]
        rows = {t: self.sql(f"SELECT count(*) FROM {schema}.{t}")[0][0] for t in tables}
        copy_s, copy_pg = self.copy_ceiling(schema, tables)
        self.row("projection", f"{n} mixed events, offset 0 → caught up (= rebuild)",
                 round(n / took), round(n / copy_s), "events/s", None, None,
                 per_k(used, n), "COPY of the final rows, same tables + indexes",
                 f"projector {took:.1f}s vs COPY {copy_s:.1f}s (postgres CPU/1k under COPY "
                 f"{copy_pg / n * 1000:.4f} s); dead letters {dead}; rows {rows}; "
                 f"gen_events {gen['seconds']:.1f}s, {gen['bytes'] // n} B/event")
        rb_took, rb_used, rb_stages = rebuilt
        self.row("projection", f"`projector rebuild` of the {n} events → swapped in",
                 round(n / rb_took), round(n / copy_s), "events/s", None, None,
                 per_k(rb_used, n), "COPY of the final rows, same tables + indexes",
                 f"rebuild {rb_took:.1f}s from process start to exit 0 (fresh schema "
                 f"{schema}_next filled, indexed, swapped with {schema}); stages: "
                 + "; ".join(rb_stages))
        self.facts["projection"] = {"events": n, "seconds": took, "copy_seconds": copy_s,
                                    "rows": rows, "types": gen["types"],
                                    "rebuild_seconds": rb_took, "rebuild_stages": rb_stages}
        self.tenant_rebuild_row(n, rb_took)
        # the writer's side of a rebuild: its write model from the same log
        t0 = time.time()
        w = self.stack.start_daemon("cmd-writer", port=free_port(), args=["--dry-run"],
                                    env={"VETPMS_TOPIC": topic, "VETPMS_LOG_LEVEL": "info"})
        w.wait_ready(600)
        took = time.time() - t0
        ms = next((re.search(r"rebuilt in (\d+) ms", ln).group(1) for ln in w.log_lines()
                   if "write_model_ready" in ln), None)
        w.terminate(60)
        self.row("projection", f"cmd-writer write model rebuilt from the {n} events",
                 round(n / took), None, "events/s", None, None, None, "",
                 f"write_model_ready after {ms} ms (process start to ready {took:.1f}s)")

    def tenant_rebuild_row(self, n, rb_took):
        """`projector rebuild --tenant` of one tenant of m events (a topic of
        its own, projected live first), next to the whole-log rebuild row."""
        m = 20000 if self.quick else 200000
        topic, schema = "bench.tenant-rebuild", "bench_tenant_rebuild"
        env = dict(self.stack.env, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
        self.stack.env, saved = env, self.stack.env
        self.stack.vetctl("topics", "create", "--partitions", "6")
        self.stack.env = saved
        run_tool([os.path.join(TOOLS, "gen_events"), self.stack.brokers, topic, str(m), "1"])
        penv = {"VETPMS_TOPIC": topic, "VETPMS_DLQ_TOPIC": topic + ".dlq",
                "VETPMS_READ_SCHEMA": schema, "VETPMS_PROJECTOR_GROUP": "bench-tenant-rebuild"}
        self.daemons["projector-tenant"] = self.stack.start_daemon("projector", port=free_port(),
                                                                   env=penv)
        self.wait_caught_up(schema, topic)
        (tenant,), = self.sql(f"SELECT id::text FROM {schema}.tenants")
        t0 = time.time()
        d = self.stack.start_daemon("projector", port=free_port(),
                                    args=["rebuild", "--tenant", tenant],
                                    env=dict(penv, VETPMS_LOG_LEVEL="info"))
        cpu = Cpu(self, ["postgres", "kafka", "projector-tenant"]).start()
        own = 0.0
        while d.proc.poll() is None:
            own = proc_cpu(d.proc.pid) or own
            if time.time() - t0 > 1800:
                d.terminate(60)
                raise RuntimeError("projector rebuild --tenant did not finish in 1800 s")
            time.sleep(0.1)
        took = time.time() - t0
        used = dict(cpu.stop(), **{"projector-rebuild-tenant": own})
        self.drop("projector-tenant")
        if d.proc.returncode != 0:
            raise RuntimeError(f"rebuild --tenant exited {d.proc.returncode}: {d.log_tail(10)}")
        swapped = next((ln for ln in d.log_lines() if "rebuild_tenant_swapped" in ln), "")
        held = re.search(r"partition held ([0-9.]+) s", swapped)
        triggered = re.search(r"triggered tables ([0-9.]+) s", swapped)
        self.row("projection", f"`projector rebuild --tenant` of one tenant's {m} events "
                 "→ swapped in", round(m / took), round(n / rb_took), "events/s", None, None,
                 per_k(used, m), "the whole-log rebuild's rate (row above)",
                 f"{took:.1f}s from process start to exit 0 (scratch schema migrated, the "
                 f"tenant's partition applied, compared, rows replaced in one transaction; "
                 f"partition held {held.group(1) if held else '?'} s, the triggered tables "
                 f"{triggered.group(1) if triggered else '?'} s of it), the live projector "
                 "running, nothing else writing")
        self.facts["tenant_rebuild"] = {"events": m, "seconds": took}

    def scenario_tenant(self):
        """Issue 17: `vetctl tenant export` of a one-tenant history (bench/gen_events
        on a topic of its own) and `vetctl tenant import` of the file into a writer
        on another fresh topic. Ceilings: `vetctl events tail` of the same log to
        /dev/null (read + decode, no filter, no hash) for the export; the raw
        transactional loop at the import's records per transaction and record
        size for the import."""
        for key in ("writer", "projector", "reader"):
            self.drop(key)  # the box has two cores: nothing else runs
        n = 50000 if self.quick else 1000000
        src, dst = "bench.tenant", "bench.tenant.import"
        saved = self.stack.env
        for topic in (src, dst):
            self.stack.env = dict(saved, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
            self.stack.vetctl("topics", "create", "--partitions", "6")
        self.stack.env = saved
        out, _ = run_tool([os.path.join(TOOLS, "gen_events"), self.stack.brokers, src, str(n),
                           "1"])
        gen = json.loads(out)
        tenant, partition = self.first_key(src)
        vetctl = os.path.join(BIN_DIR, "vetctl")
        path = os.path.join(self.stack.dir, "tenant.ndjson")
        env = dict(saved, VETPMS_TOPIC=src)
        export_s = self.timed([vetctl, "tenant", "export", "--tenant", tenant], env, path)
        tail_s = self.timed([vetctl, "events", "tail"], env, os.devnull)
        size = os.path.getsize(path) // n
        self.row("tenant", f"`vetctl tenant export` of a {n}-event tenant", round(n / export_s),
                 round(n / tail_s), "events/s", None, None, None,
                 "vetctl events tail of the same log",
                 f"export {export_s:.1f}s, tail {tail_s:.1f}s, {size} B/event")
        w = self.daemon("writer-import", "cmd-writer",
                        env={"VETPMS_TOPIC": dst, "VETPMS_DLQ_TOPIC": dst + ".dlq"})
        commits0 = self.metric(w, "vetpms_writer_commits_total")
        import_s = self.timed([vetctl, "tenant", "import", "--file", path, "--writer", w.url,
                               "--token", self.stack.token("platform-ops")],  # default batch
                              saved, os.devnull)
        commits = self.metric(w, "vetpms_writer_commits_total") - commits0
        self.drop("writer-import")
        per_txn = max(1, round(n / commits)) if commits else 1
        self.facts.setdefault("partition", partition)
        raw, raw_cpu, kused = self.raw_ceiling(per_txn, size)
        self.row("tenant", f"`vetctl tenant import` of the {n} events (through the writer)",
                 round(n / import_s), round(raw["records_per_s"]), "events/s", None, None, None,
                 "raw librdkafka txn loop",
                 f"import {import_s:.1f}s including the file check; {per_txn} records/txn "
                 f"({commits} txns), {size} B values; {self.raw_note(raw, raw_cpu, kused)}")
        self.facts["tenant_export"] = {"events": n, "export_seconds": export_s,
                                "import_seconds": import_s, "types": gen["types"]}

    # --- archiving (issue 17 item 5, docs/operations.md § Archiving) -----------------
    def scenario_archive(self):
        """One archive pass over n closed appointments of one tenant, 1000 days
        old (`vetctl archive run --tenant`: the live projector moves them between
        its batches, VETPMS_PROJECTOR_ARCHIVE_BATCH rows per transaction, each
        fenced on the partition's offsets row, rows moved by name). Ceiling: the
        same rows moved back, then moved again by one plain statement (DELETE
        FROM ONLY ... RETURNING, INSERT into archive_appointments by position)
        in one transaction: no batches, no fence, no progress."""
        n = 20000 if self.quick else 200000
        self.writer()
        if "projector" not in self.daemons:
            self.daemon("projector", "projector")
        tid, vet = self.facts["tenant"], self.facts["vet"]
        deadline = time.time() + 60
        while not self.sql("SELECT 1 FROM read.staff WHERE tenant_id = %s AND id = %s",
                           (tid, vet)):
            if time.time() > deadline:
                raise RuntimeError("the bench tenant is not projected")
            time.sleep(0.1)
        self.sql("INSERT INTO read.appointments (tenant_id, id, patient_id, patient_name,"
                 " species, client_id, client_first_name, client_last_name, vet_id, vet_name,"
                 " status, type, reason, start_at, end_at, local_date, checked_in_at,"
                 " actual_start, actual_end, notes, cancel_reason, version, created_at,"
                 " updated_at)"
                 " SELECT %s, gen_random_uuid(), gen_random_uuid(), 'Rex', 'dog',"
                 " gen_random_uuid(), 'Ann', 'Smith', %s, 'Dr Bench', 'completed',"
                 " 'consultation', 'check', s, s + interval '30 minutes', s::date, s, s,"
                 " s + interval '25 minutes', 'fine', NULL, 4, s, s"
                 " FROM (SELECT now() - interval '1000 days' - i * interval '1 minute' AS s"
                 "       FROM generate_series(1, %s) i) g", (tid, vet, n))
        vetctl = os.path.join(BIN_DIR, "vetctl")
        env = dict(self.stack.env, VETPMS_PROJECTOR_DSN=self.stack.dsn("projector"))
        ours_s = self.timed([vetctl, "archive", "run", "--tenant", tid, "--timeout-s", "3600"],
                            env, os.devnull)
        moved = self.sql("SELECT count(*) FROM read.archive_appointments WHERE tenant_id = %s",
                         (tid,))[0][0]
        if moved != n:
            raise RuntimeError(f"archive pass moved {moved} of {n}")
        self.sql("WITH d AS (DELETE FROM read.archive_appointments WHERE tenant_id = %s"
                 " RETURNING *) INSERT INTO read.appointments SELECT r.* FROM d CROSS JOIN"
                 " LATERAL jsonb_populate_record(NULL::read.appointments, to_jsonb(d)) r",
                 (tid,))
        t0 = time.time()
        self.sql("WITH d AS (DELETE FROM ONLY read.appointments WHERE tenant_id = %s"
                 " AND status = 'completed' RETURNING *)"
                 " INSERT INTO read.archive_appointments SELECT d.*, now() FROM d", (tid,))
        raw_s = time.time() - t0
        self.row("archive", f"archive pass of {n} closed appointments (vetctl archive run)",
                 round(n / ours_s), round(n / raw_s), "rows/s", None, None, None,
                 "one DELETE ... RETURNING + INSERT statement",
                 f"pass {ours_s:.1f}s from request to done (batches of 500), raw {raw_s:.1f}s")

    def first_key(self, topic):
        """(key, partition) of the first record of topic (gen_events, one tenant)."""
        c = Consumer({"bootstrap.servers": self.stack.brokers, "group.id": "bench-first-key",
                      "enable.partition.eof": False})
        try:
            for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
                if c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] > 0:
                    c.assign([TopicPartition(topic, p, 0)])
                    m = c.poll(30)
                    return m.key().decode(), p
        finally:
            c.close()
        raise RuntimeError(f"{topic} is empty")

    @staticmethod
    def timed(args, env, out_path):
        """Runs a vetctl command with stdout to out_path; its wall seconds."""
        t0 = time.time()
        with open(out_path, "w") as out:
            r = subprocess.run(args, env=env, stdout=out, stderr=subprocess.PIPE, text=True,
                               timeout=3600)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} exited {r.returncode}: {r.stderr[-2000:]}")
        return time.time() - t0

    def rebuild_projection(self, penv):
        """`projector rebuild` of the schema just projected (nothing else
        running): from process start to its exit after the swap. Returns the
        seconds, the CPU used and the rebuild's own stage lines."""
        t0 = time.time()
        d = self.stack.start_daemon("projector", port=free_port(), args=["rebuild"],
                                    env=dict(penv, VETPMS_LOG_LEVEL="info"))
        cpu = Cpu(self, ["postgres", "kafka"]).start()
        own = 0.0
        while d.proc.poll() is None:  # its CPU is sampled while it lives
            own = proc_cpu(d.proc.pid) or own
            if time.time() - t0 > 1800:
                d.terminate(60)
                raise RuntimeError("projector rebuild did not finish in 1800 s")
            time.sleep(0.1)
        took = time.time() - t0
        used = dict(cpu.stop(), **{"projector-rebuild": own})
        if d.proc.returncode != 0:
            raise RuntimeError(f"projector rebuild exited {d.proc.returncode}: {d.log_tail(10)}")
        stages = []
        for ln in d.log_lines():
            try:
                rec = json.loads(ln)
            except ValueError:
                continue
            if str(rec.get("event", "")).startswith("rebuild"):
                stages.append(f"{rec['event']}: {rec.get('msg', rec.get('message', ''))}")
        return took, used, stages

    def copy_ceiling(self, schema, tables):
        """COPY the projected rows out, then time COPY into a fresh schema made
        by the same migrations (a projector run on an empty topic)."""
        empty = "bench.empty"
        env = dict(self.stack.env, VETPMS_TOPIC=empty, VETPMS_DLQ_TOPIC=empty + ".dlq")
        self.stack.env, saved = env, self.stack.env
        self.stack.vetctl("topics", "create", "--partitions", "6")
        self.stack.env = saved
        d = self.stack.start_daemon("projector", port=free_port(), env={
            "VETPMS_TOPIC": empty, "VETPMS_DLQ_TOPIC": empty + ".dlq",
            "VETPMS_READ_SCHEMA": "bench_copy", "VETPMS_PROJECTOR_GROUP": "bench-copy"})
        d.wait_ready(120)
        d.terminate(60)
        files = {}
        with psycopg.connect(self.stack.superuser_dsn(), autocommit=True) as conn:
            for t in tables:
                path = os.path.join(self.stack.dir, f"copy_{t}.bin")
                with open(path, "wb") as out, conn.cursor().copy(
                        f"COPY {schema}.{t} TO STDOUT (FORMAT binary)") as cp:
                    for block in cp:
                        out.write(block)
                files[t] = path
        pm = self.postmaster_pid()
        before = proc_cpu(pm, True) + sum(proc_cpu(c) for c in children_of(pm))
        t0 = time.time()
        with psycopg.connect(self.stack.dsn("projector")) as conn:
            with conn.transaction():
                for t in tables:
                    with open(files[t], "rb") as src, conn.cursor().copy(
                            f"COPY bench_copy.{t} FROM STDIN (FORMAT binary)") as cp:
                        while block := src.read(1 << 20):
                            cp.write(block)
        took = time.time() - t0
        pg = proc_cpu(pm, True) + sum(proc_cpu(c) for c in children_of(pm)) - before
        for path in files.values():
            os.unlink(path)
        return took, pg


    # --- sealing personal fields, same run (issue 18, docs/privacy.md) ---------------
    SEAL_ROUNDS = 2  # sealed and plain alternated, so drift falls on both sides
    # The Kafka row's runs, three a side: one pair of runs moved the ratio by
    # up to 18 points between runs of the same binaries (docs/bench.md)
    SEAL_KAFKA_ORDER = ("sealed", "plain", "plain", "sealed", "sealed", "plain")

    def seal_topic(self, topic, keys_topic):
        env = dict(self.stack.env, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq",
                   VETPMS_KEYS_TOPIC=keys_topic)
        self.stack.env, saved = env, self.stack.env
        try:
            self.stack.vetctl("topics", "create", "--partitions", "6")
        finally:
            self.stack.env = saved

    def seal_load(self, side, daemon, env, used, runs):
        """One wrk run of register_client.lua at daemon, its CPU (writer and
        Kafka) added to used[side] and the run to runs[side]."""
        pid = self.daemons[daemon].proc.pid
        cpu, threads = Cpu(self, [daemon, "kafka"]).start(), thread_cpu(pid)
        r = self.wrk(self.daemons[daemon].url, "register_client.lua", env)
        c, threads_after = cpu.stop(), thread_cpu(pid)
        u = used.setdefault(side, {"writer": 0.0, "kafka": 0.0, "wrk": 0.0,
                                   "threads": dict.fromkeys(threads, 0.0)})
        u["writer"] += c[daemon]
        u["kafka"] += c["kafka"]
        u["wrk"] += r["cpu"]
        for kind, t in threads_after.items():
            u["threads"][kind] += t - threads[kind]
        runs.setdefault(side, []).append(r)

    @staticmethod
    def seal_sum(runs):
        ok = sum(r["status"].get("201", 0) for r in runs)
        secs = sum(r["duration_us"] for r in runs) / 1e6
        return {"ok": ok, "rate": ok / secs, "requests": sum(r["requests"] for r in runs),
                "errors": sum(r["errors"] for r in runs), "p50_ms": runs[-1]["p50_us"] / 1000,
                "p99_ms": max(r["p99_us"] for r in runs) / 1000,
                "first_error": next((r["first_error"] for r in runs if r["first_error"]), "")}

    def seal_row(self, what, runs, used, extra):
        s, p = self.seal_sum(runs["sealed"]), self.seal_sum(runs["plain"])
        cpu = {f"writer({k})": used[k]["writer"] / max(1, x["ok"]) * 1000
               for k, x in (("sealed", s), ("plain", p))}
        cpu.update({f"kafka({k})": used[k]["kafka"] / max(1, x["ok"]) * 1000
                    for k, x in (("sealed", s), ("plain", p)) if "dry-run" not in what})
        cpu["loadgen(wrk, sealed)"] = used["sealed"]["wrk"] / max(1, s["ok"]) * 1000
        extra_cpu = cpu["writer(sealed)"] / cpu["writer(plain)"] - 1 if cpu["writer(plain)"] \
            else None
        # where the writer's CPU goes, µs per command: its loop thread (HTTP,
        # deciding, sealing), librdkafka's threads, the rest (the appender)
        threads = {kind: "/".join(f"{used[k]['threads'][kind] / max(1, x['ok']) * 1e6:.1f}"
                                  for k, x in (("sealed", s), ("plain", p)))
                   for kind in used["sealed"]["threads"]}
        self.row("seal", what, round(s["rate"]), round(p["rate"]), "commands/s", s["p50_ms"],
                 s["p99_ms"], {k: round(v, 4) for k, v in cpu.items()},
                 "the same RegisterClient unsealed (v1), same run",
                 f"writer CPU per command sealed/plain {1 + extra_cpu:.3f} "
                 f"({extra_cpu * 100:+.1f} %; goal <= +10 %); rate ratio "
                 f"{s['rate'] / p['rate']:.3f} (goal >= 0.9); plain p50/p99 "
                 f"{p['p50_ms']:.2f}/{p['p99_ms']:.2f} ms; 201s sealed {s['ok']}, plain {p['ok']}"
                 f" over {len(runs['sealed'])} alternated run(s) a side of "
                 f"{self.seconds}s each; writer threads, µs per command sealed/plain: "
                 + ", ".join(f"{kind} {v}" for kind, v in threads.items()) +
                 f"; non-2xx sealed {s['errors']}, plain {p['errors']}"
                 f"{'; first: ' + (s['first_error'] or p['first_error'])[:200] if s['first_error'] or p['first_error'] else ''}"
                 f"{'; ' + extra if extra else ''}")
        self.facts.setdefault("seal", {})[what] = {
            "sealed_rate": s["rate"], "plain_rate": p["rate"], "cpu_s_per_1k": cpu,
            "writer_cpu_extra": extra_cpu,
            "writer_threads_s": {k: used[k]["threads"] for k in ("sealed", "plain")}}

    def scenario_seal(self):
        """Issue 18's bench: RegisterClient through the writer sealing its
        personal fields (v3, a data key and its record per client) against the
        same command written plain (v1, VETPMS_WRITER_UNSEALED_FOR_BENCH, a
        bench-only switch), same wrk script, same run; with the writer in
        --dry-run (CPU only, where the crypto shows) and with Kafka (the real
        path: the sealed side also writes a key record per client in the
        transaction). Then the projection: N sealed client events against the
        same N plain, each projected from offset 0."""
        self.seal_writer_dry()
        self.seal_writer_instructions()
        self.seal_writer_kafka()
        self.seal_projection()

    def seal_writer_dry(self):
        self.writer()  # the clinic both dry-run writers rebuild from
        for key in ("writer", "projector", "reader"):
            self.drop(key)  # two cores: the writer under load and wrk only
        env = {"BENCH_TOKEN": self.facts["token"]}
        plain = {"VETPMS_WRITER_UNSEALED_FOR_BENCH": "1"}
        for side, extra in (("sealed", {}), ("plain", plain)):
            self.daemon(f"seal-dry-{side}", "cmd-writer", ["--dry-run"], env=extra)
            self.wrk(self.daemons[f"seal-dry-{side}"].url, "register_client.lua", env,
                     seconds=2)  # warm up
        used, runs = {}, {}
        for _ in range(self.SEAL_ROUNDS):
            for side in ("sealed", "plain"):
                self.seal_load(side, f"seal-dry-{side}", env, used, runs)
        rss = {side: rss_mb(self.daemons[f"seal-dry-{side}"].proc.pid)
               for side in ("sealed", "plain")}
        for side in ("sealed", "plain"):
            self.drop(f"seal-dry-{side}")
        self.seal_row("RegisterClient sealed vs plain, writer --dry-run", runs, used,
                      f"writer RSS after sealed {rss['sealed']} MB, plain {rss['plain']} MB")

    # the --dry-run writer under callgrind: bodies posted to warm it, then counted
    SEAL_CG_WARM, SEAL_CG_COUNTED = 300, 2000
    # inclusive instructions of these, sealed minus plain, say where the extra goes
    SEAL_CG_PARTS = (("wr_keys_seal", "sealing (keys.c)"),
                     ("vp_field_seal", "members' AEAD + base64"),
                     ("vp_key_wrap_bytes", "data key wrapped"),
                     ("vp_key_id", "key id"),
                     ("add_index", "2 blind indexes"),
                     ("vp_catalog_check_encoded", "check of the encoded event (larger)"),
                     ("vp_event_encode_into", "encoding (larger)"))

    def callgrind_writer(self, side, args, env, bodies, token, conns):
        """One writer under callgrind: bodies[:SEAL_CG_WARM] POSTed to
        /v1/clients not counted, the rest counted over conns connections;
        inclusive instructions by function per command, and commands per
        commit (None in --dry-run)."""
        out = os.path.join(self.stack.dir, f"callgrind.{side}.out")
        d = self.stack.start_daemon(
            "cmd-writer", port=free_port(), args=args, env=env,
            prefix=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        self.daemons["seal-cg"] = d
        d.wait_ready(300)
        self.post_lines(d, "/v1/clients", bodies[:self.SEAL_CG_WARM], token, "cg_warm", conns)
        subprocess.run(["callgrind_control", "-z", str(d.proc.pid)], check=True,
                       capture_output=True)
        commits = None if args else self.metric(d, "vetpms_writer_commits_total")
        r = self.post_lines(d, "/v1/clients", bodies[self.SEAL_CG_WARM:], token, "cg_counted",
                            conns)
        if commits is not None:
            commits = self.metric(d, "vetpms_writer_commits_total") - commits
        subprocess.run(["callgrind_control", "-d", side, str(d.proc.pid)], check=True,
                       capture_output=True)
        self.drop("seal-cg")
        ok = r["status"].get("201", 0)
        if ok != len(bodies) - self.SEAL_CG_WARM:
            raise RuntimeError(f"seal callgrind {side}: {r}")
        per_txn = ok / commits if commits else None
        return {k: v / ok for k, v in callgrind_inclusive(out + ".1").items()}, per_txn

    def seal_cg_bodies(self, tag):
        n = self.SEAL_CG_WARM + (200 if self.quick else self.SEAL_CG_COUNTED)
        return [{"first_name": "Ada", "last_name": f"Lovelace {i}",
                 "email": f"ada{i}.{tag}@cg.example", "phone": f"+44 20 7946 {i % 10000:04d}",
                 "address": f"{i % 300 + 1} High Street, London"} for i in range(n)]

    def seal_writer_instructions(self):
        """Instructions per RegisterClient of the --dry-run writer, sealed
        against plain, counted by callgrind over the same bodies: a count that
        does not drift (the CPU-second rows swing 10-20 points between runs of
        one binary on this machine), and the functions the extra goes to.
        Skipped when valgrind is not installed (scripts/install-deps.sh
        installs it)."""
        if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
            log("seal: no valgrind: the instruction count row is skipped")
            return
        self.writer()  # the clinic both writers rebuild from
        for key in ("writer", "projector", "reader"):
            self.drop(key)
        bodies, token, count = self.seal_cg_bodies("dry"), self.facts["token"], {}
        for side in ("sealed", "plain"):
            env = {"VETPMS_WRITER_UNSEALED_FOR_BENCH": "1"} if side == "plain" else {}
            count[side], _ = self.callgrind_writer(side, ["--dry-run"], env, bodies, token, 2)
        s, p = count["sealed"], count["plain"]
        extra = s["total"] - p["total"]
        parts = {name: s.get(fn, 0) - p.get(fn, 0) for fn, name in self.SEAL_CG_PARTS}
        self.facts.setdefault("seal", {})["instructions"] = {
            "sealed": s["total"], "plain": p["total"], "extra": extra, "parts": parts}
        self.row("seal", "RegisterClient sealed vs plain, writer --dry-run, instructions "
                 "(callgrind)", round(s["total"]), round(p["total"]), "instructions/command",
                 None, None, {}, "the same RegisterClient unsealed (v1), same bodies",
                 f"instructions per command sealed/plain {s['total'] / p['total']:.3f} "
                 f"({extra / p['total'] * 100:+.1f} %; goal <= +10 %); extra {extra:,.0f} of "
                 f"which " + ", ".join(f"{name} {v:+,.0f}" for name, v in parts.items()) +
                 f"; {len(bodies) - self.SEAL_CG_WARM} RegisterClient counted a side after "
                 f"{self.SEAL_CG_WARM} not counted, 2 connections, all threads")

    def seal_writer_kafka_instructions(self, keys, tokens):
        """The same count on the real path: the writer with Kafka (its own
        bench.seal.* topic and tenant a side, as seal_writer_kafka), all
        threads, librdkafka's included. Callgrind counts user-space
        instructions only: the kernel's share of librdkafka's CPU (sockets,
        wake-ups) is not in it."""
        if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
            return
        count, per_txn = {}, {}
        for side in ("sealed", "plain"):
            count[side], per_txn[side] = self.callgrind_writer(
                side, [], self.seal_kafka_env(side, keys), self.seal_cg_bodies("kafka"),
                tokens[side]["BENCH_TOKEN"], 32)
        s, p = count["sealed"]["total"], count["plain"]["total"]
        self.facts.setdefault("seal", {})["instructions_kafka"] = {
            "sealed": s, "plain": p, "per_txn": per_txn}
        self.row("seal", "RegisterClient sealed vs plain, writer with Kafka, instructions "
                 "(callgrind)", round(s), round(p), "instructions/command", None, None, {},
                 "the same RegisterClient unsealed (v1), same bodies",
                 f"instructions per command sealed/plain {s / p:.3f} ({(s - p) / p * 100:+.1f} "
                 f"%; goal <= +10 %); user space only, all threads (librdkafka's included); "
                 f"{per_txn['sealed']:.1f} sealed and {per_txn['plain']:.1f} plain commands "
                 f"a transaction, 32 connections")

    def seal_writer_kafka(self):
        """One writer at a time (both would take the transactional.id
        vetpms-writer-0), each side on a fresh bench.* topic with its own
        tenant. The broker is warmed on both sides' paths first, then the
        sides alternate (SEAL_KAFKA_ORDER): Kafka is a JVM whose
        JIT compiles the transactional path in its first tens of seconds, and
        the side measured first on a cold broker paid for it (three pairs
        back to back, sealed first: rate ratio 0.42, 0.71, 0.89; Kafka
        CPU-s per 1k sealed 0.34, 0.15, 0.09)."""
        keys = "bench.seal.keys"
        used, runs, sizes, tokens, partitions = {}, {}, {}, {}, {}
        for side in ("sealed", "plain"):
            self.seal_topic(f"bench.seal.{side}", keys)
        for side in ("sealed", "plain"):  # warm-up: not measured
            w = self.seal_kafka_writer(side, keys)
            t = self.post(w, "/v1/tenants", {"name": f"Seal {side}", "timezone": "Europe/London",
                                             "currency": "GBP"},
                          self.stack.token("platform-admin"))
            tokens[side] = {"BENCH_TOKEN": self.stack.token(["admin", "reception"],
                                                            tenant=t["id"], ttl=86400)}
            partitions[side] = int(t["position"].split(":")[0])
            self.wrk(w.url, "register_client.lua", tokens[side], seconds=2 * self.seconds)
            self.drop("seal-kafka")
        for side in self.SEAL_KAFKA_ORDER:
            w = self.seal_kafka_writer(side, keys)
            self.wrk(w.url, "register_client.lua", tokens[side], seconds=2)  # warm up
            commits0 = self.metric(w, "vetpms_writer_commits_total")
            events0 = self.metric(w, "vetpms_writer_events_appended_total")
            self.seal_load(side, "seal-kafka", tokens[side], used, runs)
            n = sizes.setdefault(side, [0, 0])
            n[0] += self.metric(w, "vetpms_writer_events_appended_total") - events0
            n[1] += self.metric(w, "vetpms_writer_commits_total") - commits0
            self.drop("seal-kafka")
        per_txn = {side: f"{e} events in {c} txns ({e / max(1, c):.1f}/txn)"
                   for side, (e, c) in sizes.items()}
        self.seal_writer_kafka_instructions(keys, tokens)
        self.seal_row("RegisterClient sealed vs plain, writer with Kafka", runs, used,
                      f"sealed {per_txn['sealed']} plus a key record per client in "
                      f"{keys}; plain {per_txn['plain']}; Kafka warmed "
                      f"{2 * self.seconds}s a side first")
        self.seal_raw_shapes(keys, partitions, sizes, runs, used)

    def seal_raw_shapes(self, keys, partitions, sizes, runs, used):
        """The transport's share: the raw librdkafka txn loop writing a sealed
        RegisterClient's records (its event's size, plus a key record of the
        key records' size on the keys topic, in the same transaction) against
        a plain one's (its event's size alone), at each side's records per
        transaction. What the writer adds beyond the sealed shape's extra is
        the writer's own: sealing, the keyring, the bigger envelope."""
        size = {side: self.record_size(partitions[side], topic=f"bench.seal.{side}")
                for side in ("sealed", "plain")}
        key_size = self.record_size(partitions["sealed"], topic=keys)
        raws = {}
        for side in ("plain", "sealed", "sealed", "plain"):  # drift falls on both sides
            e, c = sizes[side]
            shape = ("bench.raw.seal.keys", partitions["sealed"], key_size) \
                if side == "sealed" else None
            raws.setdefault(side, []).append(self.raw_ceiling(
                max(1, round(e / max(1, c))), size[side], topic=f"bench.raw.seal.{side}",
                keys=shape, partition=partitions["sealed"]))
        rs, rp = (raws[side][-1][0] for side in ("sealed", "plain"))
        rate = {side: sum(r[0]["records_per_s"] for r in raws[side]) / len(raws[side])
                for side in raws}
        records = {side: sum(r[0]["records"] for r in raws[side]) for side in raws}
        cpu = {}
        for side in ("sealed", "plain"):
            cpu[f"raw_producer({side} shape)"] = \
                sum(r[1] for r in raws[side]) / records[side] * 1000
        for side in ("sealed", "plain"):
            cpu[f"kafka({side} shape)"] = \
                sum(r[2]["kafka"] for r in raws[side]) / records[side] * 1000
        s, p = self.seal_sum(runs["sealed"]), self.seal_sum(runs["plain"])
        writer_extra_us = (used["sealed"]["writer"] / max(1, s["ok"])
                           - used["plain"]["writer"] / max(1, p["ok"])) * 1e6
        raw_extra_us = (cpu["raw_producer(sealed shape)"]
                        - cpu["raw_producer(plain shape)"]) * 1e3
        self.facts.setdefault("seal", {})["raw_shapes"] = {
            "sealed_rate": rate["sealed"], "plain_rate": rate["plain"], "cpu_s_per_1k": cpu,
            "writer_extra_us": writer_extra_us, "raw_extra_us": raw_extra_us}
        self.row("seal", "raw librdkafka txn loop, sealed RegisterClient's records vs plain's",
                 round(rate["sealed"]), round(rate["plain"]), "commands/s",
                 rs["p50_ms"], rs["p99_ms"], {k: round(v, 4) for k, v in cpu.items()},
                 "the plain shape, same run",
                 f"sealed shape {size['sealed']} B event + {key_size} B key record on "
                 f"{keys}'s shape (compacted, same partition number), plain shape "
                 f"{size['plain']} B event; alternated plain, sealed, sealed, plain, each the "
                 f"best of the pauses after a commit (rates: sealed "
                 f"{', '.join(str(r[0]['runs']) for r in raws['sealed'])}; plain "
                 f"{', '.join(str(r[0]['runs']) for r in raws['plain'])}); rate ratio "
                 f"{rate['sealed'] / rate['plain']:.3f} against the writer's "
                 f"{s['rate'] / p['rate']:.3f}; extra CPU per command: raw producer "
                 f"{raw_extra_us:+.1f} us, writer {writer_extra_us:+.1f} us (the rest is the "
                 f"writer's own); kafka sealed/plain shape "
                 f"{cpu['kafka(sealed shape)'] / cpu['kafka(plain shape)']:.2f}; last runs' "
                 f"ceiling p50/p99 per txn sealed {rs['p50_ms']:.1f}/{rs['p99_ms']:.1f} ms, "
                 f"plain {rp['p50_ms']:.1f}/{rp['p99_ms']:.1f} ms")

    @staticmethod
    def seal_kafka_env(side, keys):
        """A writer's settings for one side of the seal rows with Kafka."""
        topic = f"bench.seal.{side}"
        env = {"VETPMS_TOPIC": topic, "VETPMS_DLQ_TOPIC": topic + ".dlq",
               "VETPMS_KEYS_TOPIC": keys}
        if side == "plain":
            env["VETPMS_WRITER_UNSEALED_FOR_BENCH"] = "1"
        return env

    def seal_kafka_writer(self, side, keys):
        return self.daemon("seal-kafka", "cmd-writer", env=self.seal_kafka_env(side, keys))

    def seal_projection(self):
        """gen_events MODE clients and sealed-clients: the same events (same
        seed), plain v1 and sealed v3 with their key records, each projected
        from offset 0 into a schema of its own, one after the other."""
        n = 20000 if self.quick else 200000
        tenants, keys = 20, "bench.seal.proj.keys"
        took, used, gens = {}, {}, {}
        for side, mode in (("plain", "clients"), ("sealed", "sealed-clients")):
            topic = f"bench.seal.proj.{side}"
            self.seal_topic(topic, keys)
            out, _ = run_tool([os.path.join(TOOLS, "gen_events"), self.stack.brokers, topic,
                               str(n), str(tenants), "7", mode, keys],
                              env=dict(os.environ, **self.stack.env))
            gens[side] = json.loads(out)
        # plain, sealed, sealed, plain: what one side leaves PostgreSQL to do
        # (autovacuum of its tables, a checkpoint of its writes) falls on both
        for run, side in enumerate(("plain", "sealed", "sealed", "plain")):
            topic, schema = f"bench.seal.proj.{side}", f"bench_seal_{side}_{run}"
            penv = {"VETPMS_TOPIC": topic, "VETPMS_DLQ_TOPIC": topic + ".dlq",
                    "VETPMS_KEYS_TOPIC": keys, "VETPMS_READ_SCHEMA": schema,
                    "VETPMS_PROJECTOR_GROUP": f"bench-seal-{side}-{run}"}
            t0 = time.time()
            self.daemons["seal-proj"] = self.stack.start_daemon("projector", port=free_port(),
                                                                env=penv)
            cpu = Cpu(self, ["seal-proj", "postgres", "kafka"]).start()
            self.wait_caught_up(schema, topic)
            took[side] = took.get(side, 0.0) + time.time() - t0
            for proc, secs in cpu.stop().items():
                used.setdefault(side, {}).setdefault(proc, 0.0)
                used[side][proc] += secs
            self.drop("seal-proj")
            dead = self.sql(f"SELECT count(*) FROM {schema}.dead_letters")[0][0]
            clients = self.sql(f"SELECT count(*) FROM {schema}.clients")[0][0]
            if dead or clients != n - tenants:
                raise RuntimeError(f"seal projection {side}: {clients} clients of "
                                   f"{n - tenants}, {dead} dead letters; ends "
                                   f"{self.end_offsets(topic)}, applied "
                                   f"{self.applied_offsets(schema, topic)}")
        total = 2 * n  # each side ran twice
        rate = {k: total / v for k, v in took.items()}
        cpu = {f"{p}({side})": round(used[side][p] / total * 1000, 4)
               for p in ("seal-proj", "postgres") for side in ("sealed", "plain")}
        proj = {side: used[side]["seal-proj"] for side in used}
        extra = proj["sealed"] / proj["plain"] - 1 if proj["plain"] else None
        both = {side: used[side]["seal-proj"] + used[side]["postgres"] for side in used}
        self.row("seal", f"{n} ClientRegistered sealed vs plain, projected from offset 0",
                 round(rate["sealed"]), round(rate["plain"]), "events/s", None, None, cpu,
                 "the same events plain (v1), same run",
                 f"projector CPU sealed/plain {1 + extra:.3f} ({extra * 100:+.1f} %; goal <= "
                 f"+10 %); projector + postgres {both['sealed'] / both['plain']:.3f}; rate "
                 f"ratio {rate['sealed'] / rate['plain']:.3f} (goal >= 0.9); sealed "
                 f"{took['sealed']:.1f}s, plain {took['plain']:.1f}s from process start, "
                 f"two runs each in the order plain, sealed, sealed, plain (each read "
                 f"the {n - tenants} client keys of {keys} at start); {tenants} tenants; "
                 f"{gens['sealed']['bytes'] // n} B/event sealed, "
                 f"{gens['plain']['bytes'] // n} B plain; no dead letter")
        self.facts.setdefault("seal", {})["projection"] = {
            "events": total, "seconds": took, "cpu_s_per_1k": cpu, "projector_cpu_extra": extra}

# --- output ------------------------------------------------------------------------
    # --- stream fan-out (GET /v1/stream, docs/streaming.md) ------------------------
    STREAM_SUBSCRIBERS = 200
    STREAM_RATE = 500

    def scenario_stream(self):
        """200 subscribers of one tenant's stream while lag_probe writes 500
        commands/s to it: event → delivered (the event's `at` to its arrival)
        against the same events' `at` → the projector's NOTIFY seen by a bare
        LISTEN connection (the floor of anything fed from the read model), and
        the reader's CPU per 1k deliveries. lag_probe's own lag row (ack →
        visible by GET) comes from the same run."""
        self.read_side()
        f = self.facts
        reader = self.daemons["reader"]
        subs = 20 if self.quick else self.STREAM_SUBSCRIBERS
        rate = 100 if self.quick else self.STREAM_RATE
        sent0 = self.metric(reader, "vetpms_reader_stream_events_sent_total")
        fan = subprocess.Popen(
            [os.path.join(TOOLS, "sse_fanout"), str(reader.port), f["token"], str(subs),
             str(self.seconds + 6), self.stack.superuser_dsn(), f["tenant"]],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while self.metric(reader, "vetpms_reader_streams_open") < subs:
            if time.time() > deadline or fan.poll() is not None:
                fan.kill()
                raise RuntimeError(f"only {self.metric(reader, 'vetpms_reader_streams_open')}"
                                   f" of {subs} streams opened: {fan.stderr.read()}")
            time.sleep(0.1)
        cpu = Cpu(self, ["reader", "projector", "postgres"]).start()
        out, gen_cpu = run_tool([
            os.path.join(TOOLS, "lag_probe"), str(self.daemons["writer"].port),
            str(reader.port), f["token"], f["clients"][0], str(rate), str(self.seconds),
            str(max(1, rate // 50)), "3"])
        fan_out, fan_err = fan.communicate(timeout=120)
        used = cpu.stop()
        lag = json.loads(out)
        r = json.loads(fan_out)
        sent = self.metric(reader, "vetpms_reader_stream_events_sent_total") - sent0
        used["loadgen(lag_probe)"] = gen_cpu
        expected = subs * r["ceiling_events"]
        self.row("stream", f"fan-out: {subs} subscribers of one tenant at {rate} commands/s",
                 r["deliveries"], expected, "deliveries", r["p50_ms"], r["p99_ms"],
                 per_k(used, max(1, r["deliveries"])), "subscribers × events written",
                 f"event `at` → delivered; {r['ok']}/{subs} streams 200, per subscriber "
                 f"{r['min_events']}-{r['max_events']} events, out of order "
                 f"{r['out_of_order']}, ended early {r['ended']}, max {r['max_ms']} ms; "
                 f"reader counted {sent} sent; {lag['acked']} commands acked at "
                 f"{round(lag['rate'])}/s, errors {lag['errors']}")
        self.row("stream", "  the same events' `at` → NOTIFY on a bare LISTEN (ceiling)", None,
                 None, "ms", r["ceiling_p50_ms"], r["ceiling_p99_ms"],
                 note=f"{r['ceiling_events']} events, {r['notes']} notifications: the floor of "
                      "a stream fed from the read model (the event committed and announced)")
        self.row("stream", f"  ack → visible in reader at {rate}/s (lag_probe, same run)",
                 round(lag["rate"]), rate, "commands/s", lag["lag_p50_ms"], lag["lag_p99_ms"],
                 ceiling_name="target rate",
                 note=f"lag max {lag['lag_max_ms']} ms over {lag['probes_seen']} probes")
        self.facts["stream"] = {"fanout": r, "lag": {k: lag[k] for k in
                                                     ("rate", "lag_p50_ms", "lag_p99_ms")}}


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def print_table(rows, out=sys.stdout):
    head = ["scenario", "what", "ours", "ceiling", "unit", "ratio", "p50 ms", "p99 ms",
            "CPU-s per 1k ops (ours)"]
    lines = []
    for r in rows:
        cpu = ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_s_per_1k"].items() if v is not None)
        lines.append([r["scenario"], r["what"], fmt(r["ours"]),
                      f"{fmt(r['ceiling'])}" + (f" ({r['ceiling_name']})" if r["ceiling_name"]
                                                else ""),
                      r["unit"], fmt(r["ratio"], 3), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
                      cpu])
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |", file=out)
    print(sep, file=out)
    for ln in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(ln, widths)) + " |", file=out)
    notes = [f"- {r['scenario']}/{r['what']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        print("\nnotes:", file=out)
        print("\n".join(notes), file=out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (about 3 minutes)")
    ap.add_argument("--only", action="append", choices=SCENARIOS,
                    help="run only this scenario (repeatable)")
    ap.add_argument("--out", default=os.path.join(ROOT, "var", "bench", "results.json"))
    args = ap.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s in args.only]
    started = time.time()
    bench = Bench(args.quick)
    try:
        bench.start(commit_timestamps="lag" in chosen)
        if {"queries", "lag"} & set(chosen) and "commands" not in chosen:
            bench.fill_patients()  # both need patients and a measured maximum
        for s in chosen:
            log(f"--- {s}")
            getattr(bench, f"scenario_{s}")()
    finally:
        bench.stop()
    took = time.time() - started
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "seconds": round(took, 1), "quick": args.quick, "scenarios": chosen,
              "cpus": os.cpu_count(), "rows": bench.rows,
              "facts": {k: v for k, v in bench.facts.items()
                        if k not in ("token", "clients")}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print()
    print_table(bench.rows)
    print(f"\nmake bench: {len(chosen)} scenarios in {took:.0f}s; results in "
          f"{os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
