#!/usr/bin/python3
"""After a Kafka crash, how soon the daemons work again (docs/testing.md, "The
writer after a Kafka restart"; docs/decisions.md): one private stack with a
writer and a projector; ROUNDS times: one command projected, the broker
SIGKILLed, DOWN_S seconds down, `kafka.sh start`, then the time from its return
to the writer's first 201, and from that 201 to the command's row in
read.clients. Run it for each build (VETPMS_BIN_DIR) to compare.

  VETPMS_BIN_DIR=bin bench/kafka_restart.py [ROUNDS [DOWN_S]]"""

import os
import signal
import sys
import time
import uuid

import psycopg
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from stack import free_port, running_stack, wait_for  # noqa: E402


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    down_s = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with running_stack() as st:
        writer = st.start_daemon("cmd-writer", port=free_port())
        projector = st.start_daemon("projector", port=free_port())
        writer.wait_ready(90)
        projector.wait_ready(90)
        tenant = st.provision(writer, "Restart Vets", "Europe/Paris", "EUR")
        auth = {"Authorization": "Bearer " + st.token("admin", tenant=tenant, sub="restart")}

        def post():
            return requests.post(writer.url + "/v1/clients", timeout=120,
                                 json={"first_name": "Ada", "last_name": "Restart"},
                                 headers=dict(auth, **{"Idempotency-Key": str(uuid.uuid4())}))

        def projected(cid):
            with psycopg.connect(st.superuser_dsn(), autocommit=True) as conn:
                return conn.execute("SELECT 1 FROM read.clients WHERE id = %s",
                                    (cid,)).fetchone() is not None

        for i in range(rounds):
            r = post()
            assert r.status_code == 201, r.text
            wait_for(lambda: projected(r.json()["id"]), timeout=60)
            st.kafka_killed()
            time.sleep(down_s)
            t0 = time.monotonic()
            st.script("kafka.sh", "start")  # returns once the broker answers
            back = time.monotonic()
            writer.wait_ready(120)
            while (r := post()).status_code != 201:
                time.sleep(0.05)
            taken = time.monotonic()
            cid = r.json()["id"]
            wait_for(lambda: projected(cid), timeout=120, interval=0.02)
            done = time.monotonic()
            print(f"round {i}: kafka.sh start {back - t0:.2f} s; then the writer's first 201 "
                  f"{taken - back:.2f} s; then projected {done - taken:.2f} s", flush=True)


if __name__ == "__main__":
    main()
