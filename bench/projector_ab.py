"""A/B of projector builds on one stack and one pre-filled topic (issue 14).

    /usr/bin/python3 bench/projector_ab.py N ROUNDS name=BIN_DIR[,VAR=value...] ...

e.g. `bench/projector_ab.py 100000 3 base=/tmp/base/bin now=bin
now3=bin,VETPMS_PROJECTOR_CONNECTIONS=3`. gen_events fills a 6-partition topic
with N mixed events once; each run projects all of them from offset 0 into a
fresh schema, timed from the first committed batch to caught up (start-up and
group join excluded: they are most of the spread of `run.py --quick --only
projection`), the variants interleaved round by round so that a busy machine
weighs on all of them alike. Prints each run and the medians, with the CPU
seconds per 1k offsets of the projector's PostgreSQL backends and of the
projector process (read from /proc just before it stops): on a shared
machine the CPU per event moves much less than the rate."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

import stack as st  # noqa: E402


def parse_variants(args):
    variants = {}
    for arg in args:
        name, spec = arg.split("=", 1)
        bindir, *pairs = spec.split(",")
        variants[name] = (os.path.abspath(bindir), dict(p.split("=", 1) for p in pairs))
    return variants


def main():
    n, rounds, variants = int(sys.argv[1]), int(sys.argv[2]), parse_variants(sys.argv[3:])
    s = st.Stack()
    s.start()
    try:
        topic = "ab.projection"
        saved = s.env
        s.env = dict(saved, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
        s.vetctl("topics", "create", "--partitions", "6")
        s.env = saved
        subprocess.run([os.path.join(st.BIN_DIR, "bench", "gen_events"), s.brokers, topic,
                        str(n), "20"], check=True, capture_output=True)
        c = Consumer({"bootstrap.servers": s.brokers, "group.id": "ab-watermarks"})
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(6)}
        c.close()

        def applied(schema):
            try:
                with psycopg.connect(s.superuser_dsn(), autocommit=True) as conn:
                    return dict(conn.execute(
                        f"SELECT partition, next_offset FROM {schema}.projection_offsets"
                    ).fetchall())
            except psycopg.Error:
                return {}

        def cpu_seconds(pid):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                return 0.0

        def backends_cpu():
            with psycopg.connect(s.superuser_dsn(), autocommit=True) as conn:
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE usename = 'vetpms_projector'")]
            return sum(cpu_seconds(pid) for pid in pids)

        results = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        for r in range(rounds):
            for name, (bindir, env) in variants.items():
                schema = f"ab_{r}_" + "".join(ch if ch.isalnum() else "_" for ch in name)
                st.BIN_DIR = bindir
                d = s.start_daemon("projector", port=st.free_port(), env=dict(
                    env, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq",
                    VETPMS_READ_SCHEMA=schema, VETPMS_PROJECTOR_GROUP=schema,
                    VETPMS_LOG_LEVEL="info"))
                t_first = first = None
                while True:
                    got = applied(schema)
                    if t_first is None and sum(got.values()) > 0:
                        t_first, first = time.time(), sum(got.values())
                    # transaction markers take an offset each: within one
                    if got and all(got.get(p, 0) >= e - 1 for p, e in ends.items() if e > 0):
                        t_end = time.time()
                        break
                    time.sleep(0.02)
                pg_cpu, pj_cpu = backends_cpu(), cpu_seconds(d.proc.pid)
                d.terminate(60)
                rate = (sum(ends.values()) - first) / (t_end - t_first)
                results[name].append(rate)
                per_1k = 1000 * pg_cpu / sum(ends.values())
                cpu[name].append(per_1k)
                load = open("/proc/loadavg").read().split()[0]
                print(f"round {r} {name:12s} {rate:8.0f} offsets/s ({t_end - t_first:.1f}s, "
                      f"load {load}) PostgreSQL {per_1k:.3f} CPU-s/1k, projector "
                      f"{1000 * pj_cpu / sum(ends.values()):.3f} CPU-s/1k", flush=True)
                with psycopg.connect(s.superuser_dsn(), autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
        for name, rates in results.items():
            rates.sort()
            used = sorted(cpu[name])
            print(f"{name:12s} median {rates[len(rates) // 2]:8.0f}  all "
                  f"{[round(x) for x in rates]}  PostgreSQL CPU-s/1k median "
                  f"{used[len(used) // 2]:.3f} all {[round(x, 3) for x in used]}")
    finally:
        s.stop()


if __name__ == "__main__":
    main()
