"""PostgreSQL stopped, then frozen, under the reader (issue 15 item 3, the
reader's part): every query is answered within the reader's deadline (503
UNAVAILABLE while the database cannot answer, never a hang), /readyz says so,
and the reader recovers by itself once PostgreSQL is back. Its own stack: the
session's PostgreSQL stays up for the other tests."""

import os
import signal
import subprocess
import time

import requests

from stack import free_port, running_stack, wait_for

DEADLINE_MS = 1500
ANSWERED_S = DEADLINE_MS / 1000 + 1.0  # the sweep runs every 250 ms; load on the box


def freeze_postgres(stack):
    """SIGSTOP the postmaster, then every child it has: stopped first, it
    forks no backend after the list is taken (a backend forked between the
    list and the stop, say for a reader connection still coming back after
    the restart, would answer queries through the freeze). The pids, for
    thaw_postgres."""
    with open(os.path.join(stack.dir, "pg", "data", "postmaster.pid")) as f:
        master = int(f.readline())
    os.kill(master, signal.SIGSTOP)
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                              text=True).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGSTOP)
    return [master] + [int(p) for p in children]


def thaw_postgres(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def timed_get(reader, token):
    t0 = time.monotonic()
    try:
        r = requests.get(reader.url + "/v1/clients", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
        return r, time.monotonic() - t0
    except requests.RequestException as e:
        return e, time.monotonic() - t0


def assert_unavailable_in_time(reader, token, n=6):
    for _ in range(n):
        r, took = timed_get(reader, token)
        assert not isinstance(r, Exception), f"{r!r} after {took:.1f}s"
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error"]["code"] == "UNAVAILABLE" and r.headers["Retry-After"]
        assert took < ANSWERED_S, f"answered after {took:.2f}s"


def test_reader_answers_503_within_its_deadline_and_recovers():
    with running_stack() as stack:
        projector = stack.start_daemon("projector", port=free_port())
        projector.wait_ready(90)  # the read schema
        reader = stack.start_daemon("query-reader", port=free_port(),
                                    env={"VETPMS_READER_PG_DEADLINE_MS": str(DEADLINE_MS)})
        reader.wait_ready(90)
        token = stack.token("admin", tenant="0193a5c2-7b1e-7c11-9d2a-3f4b5c6d7e8f")
        r, _ = timed_get(reader, token)
        assert r.status_code == 200, r.text

        # stopped: connections refused
        out = stack.script("pg.sh", "stop")
        assert not os.path.exists(os.path.join(stack.dir, "pg", "data", "postmaster.pid")), \
            f"pg.sh stop left PostgreSQL running: {out.stderr}"
        assert_unavailable_in_time(reader, token)
        wait_for(lambda: reader.get("/readyz").status_code == 503, timeout=15,
                 what="reader /readyz 503 with PostgreSQL stopped")
        stack.script("pg.sh", "start")
        wait_for(lambda: timed_get(reader, token)[0].status_code == 200, timeout=60,
                 what="reader serving again after PostgreSQL restarted")

        # frozen: the TCP connections stay open, nothing answers
        pids = freeze_postgres(stack)
        try:
            assert_unavailable_in_time(reader, token)
        finally:
            thaw_postgres(pids)
        wait_for(lambda: timed_get(reader, token)[0].status_code == 200, timeout=60,
                 what="reader serving again after PostgreSQL thawed")
        wait_for(lambda: reader.get("/readyz").status_code == 200, timeout=30,
                 what="reader ready again")
        assert reader.terminate() == 0
        projector.terminate()
