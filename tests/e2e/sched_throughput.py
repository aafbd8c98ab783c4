"""A quick local measurement of ScheduleAppointment commands/s on one tenant that
already holds many appointments (the proper benchmark lives in bench/). Starts its
own stack like the e2e suite, then books VETS x SLOTS appointments from THREADS
keep-alive HTTP clients and prints the rate per chunk, so the last chunks show the
rate with a full tenant.

    VETPMS_BIN_DIR=$PWD/bin python3 tests/e2e/sched_throughput.py [vets] [slots] [threads]
"""

import concurrent.futures
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import requests

sys.path.insert(0, os.path.dirname(__file__))
from stack import Stack, free_port  # noqa: E402


def main():
    vets_n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    slots = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    stack = Stack().start()
    try:
        w = stack.start_daemon("cmd-writer", port=free_port())
        w.wait_ready(90)
        pa = {"Authorization": "Bearer " + stack.token("platform-admin")}
        tid = requests.post(w.url + "/v1/tenants", json={"name": "Bench", "timezone": "UTC",
                                                         "currency": "EUR"}, headers=pa).json()["id"]
        auth = {"Authorization": "Bearer " + stack.token("admin", tenant=tid)}
        s = requests.Session()
        vets = [s.post(w.url + "/v1/staff", json={"name": "V", "role": "veterinarian"},
                       headers=auth).json()["id"] for _ in range(vets_n)]
        client = s.post(w.url + "/v1/clients", json={"first_name": "A", "last_name": "B"},
                        headers=auth).json()["id"]
        patients = [s.post(w.url + "/v1/patients", json={"client_id": client, "name": "P",
                                                         "species": "canine", "sex": "male"},
                           headers=auth).json()["id"] for _ in range(vets_n)]
        base = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
        local = threading.local()

        def book(i):
            k, v = divmod(i, vets_n)
            start = base + timedelta(minutes=30 * k)
            if not hasattr(local, "s"):
                local.s = requests.Session()
            r = local.s.post(w.url + "/v1/appointments", headers=auth, json={
                "patient_id": patients[(v + k) % vets_n], "vet_id": vets[v],
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "type": "consultation"})
            return r.status_code

        total = vets_n * slots
        chunk = max(1000, total // 10)
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            for first in range(0, total, chunk):
                t0 = time.time()
                codes = list(pool.map(book, range(first, min(total, first + chunk))))
                dt = time.time() - t0
                bad = len([c for c in codes if c != 201])
                print(f"appointments {first:>7}..{first + len(codes):>7}: "
                      f"{len(codes) / dt:8.0f} commands/s  (non-201: {bad})", flush=True)
        w.terminate()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
