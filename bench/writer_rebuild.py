#!/usr/bin/python3
"""The writer's write-model rebuild alone, for comparing builds (issue 14 item 5):
one private stack, one log of N generated events (bench/gen_events, as the
projection scenario makes it), then `cmd-writer --dry-run` of each build in turn,
ROUNDS times, each timed from its log line write_model_ready ("rebuilt in N ms")
together with the process's CPU-seconds (utime + stime, all its threads) when it
is ready, which a busy machine disturbs less than the wall time.

  bench/writer_rebuild.py N ROUNDS label=bindir [label=bindir ...]
  e.g. bench/writer_rebuild.py 200000 3 base=/tmp/wc-base/bin new=bin"""

import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import stack as st  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    n, rounds = int(sys.argv[1]), int(sys.argv[2])
    builds = [a.split("=", 1) for a in sys.argv[3:]]
    s = st.Stack()
    s.env["VETPMS_LOG_LEVEL"] = "warn"
    s.start()
    try:
        topic = "bench.projection"
        saved, s.env = s.env, dict(s.env, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
        s.vetctl("topics", "create", "--partitions", "6")
        s.env = saved
        gen = os.path.join(builds[0][1], "bench", "gen_events")
        subprocess.run([gen, s.env["VETPMS_KAFKA_BROKERS"], topic, str(n), "20"],
                       capture_output=True, check=True)
        for r in range(rounds):
            for label, bin_dir in builds:
                st.BIN_DIR = bin_dir
                w = s.start_daemon("cmd-writer", port=st.free_port(), args=["--dry-run"],
                                   env={"VETPMS_TOPIC": topic, "VETPMS_LOG_LEVEL": "info"})
                w.wait_ready(900)
                cpu = cpu_seconds(w.proc.pid)
                ms = next((int(re.search(r"rebuilt in (\d+) ms", ln).group(1))
                           for ln in w.log_lines() if "write_model_ready" in ln), None)
                w.terminate(60)
                print(f"{time.strftime('%H:%M:%S')} round {r + 1} {label}: rebuilt in {ms} ms "
                      f"= {n / (ms / 1000):.0f} events/s, CPU {cpu:.2f} s = "
                      f"{n / cpu:.0f} events per CPU-second; load {os.getloadavg()[0]:.1f}",
                      flush=True)
    finally:
        s.stop()


if __name__ == "__main__":
    main()
