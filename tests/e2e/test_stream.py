"""GET /v1/stream end to end (docs/streaming.md): every applied event of the
token's tenant exactly once and in log order, after the projector committed
it; resuming with Last-Event-ID or ?after= misses nothing; another tenant's
events never arrive; filters; heartbeats, also past the HTTP idle timeout; a
slow client is dropped with a log line; the caps; the errors; a blue/green
rebuild swap under an open stream; a clean end at shutdown.

A stack of its own: the rebuild test swaps schema `read` of the whole
database, which other modules must not see change under them."""

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from stack import free_port, running_stack, wait_for

HEARTBEAT_MS = 300
PER_TENANT = 6


@pytest.fixture(scope="module")
def stack():
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def live(stack):
    projector = stack.start_daemon("projector", port=free_port())
    # HTTP timeouts far below the stream's life: a stream must outlive them
    reader = stack.start_daemon("query-reader", port=free_port(), env={
        "VETPMS_STREAM_HEARTBEAT_MS": str(HEARTBEAT_MS),
        "VETPMS_STREAM_MAX_PER_TENANT": str(PER_TENANT),
        "VETPMS_HTTP_IDLE_TIMEOUT_MS": "1000",
        "VETPMS_HTTP_REQUEST_TIMEOUT_MS": "1000",
        "VETPMS_RATE_TOKEN_PER_S": "0", "VETPMS_RATE_TENANT_PER_S": "0"})
    writer = stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_RATE_TOKEN_PER_S": "0", "VETPMS_RATE_TENANT_PER_S": "0"})
    for d in (projector, reader, writer):
        d.wait_ready(90)
    yield projector, reader, writer
    for d in (writer, reader, projector):
        d.terminate()


class Sse(threading.Thread):
    """One stream read on a thread: events [(id, event, data)], comments."""

    def __init__(self, reader, token, path="/v1/stream", headers=None):
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", reader.port, timeout=60)
        h = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.sock = self.conn.sock  # http.client lets go of it on Connection: close
        self.resp = self.conn.getresponse()
        self.events, self.comments = [], []
        self.ended = None  # "eof" or the exception that ended the read
        self.lock = threading.Lock()
        if self.resp.status == 200:
            self.start()

    def run(self):
        fields = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    self.ended = "eof"
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if fields:
                        with self.lock:
                            self.events.append((fields.get("id"), fields.get("event"),
                                                json.loads(fields["data"])))
                    fields = {}
                elif line.startswith(":"):
                    with self.lock:
                        self.comments.append(line)
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
        except Exception as e:  # noqa: BLE001 - the end of the stream, any way
            self.ended = e

    def got(self):
        with self.lock:
            return list(self.events)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.resp.close()
        self.conn.close()
        if self.ident:
            self.join(10)


def tenant(stack, writer, name):
    tid = stack.provision(writer, name, "Europe/London", "GBP")
    # applied before any stream opens: a stream starts after the last event
    wait_for(lambda: head_of(stack, tid), what="TenantProvisioned in event_log")
    return tid, stack.token(["admin"], tenant=tid)


def register_clients(writer, token, n, prefix):
    """n RegisterClient commands in parallel; their positions "P:O"."""
    def one(i):
        r = requests.post(writer.url + "/v1/clients",
                          json={"first_name": f"{prefix}{i}", "last_name": "Stream"},
                          headers={"Authorization": "Bearer " + token}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["position"], r.json()["id"]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def pos(p):
    a, b = p.split(":")
    return int(a), int(b)


def log_of(stack, tid, after=None):
    """The tenant's event_log rows after a position, in (partition, offset) order."""
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        rows = su.execute(
            "SELECT partition || ':' || \"offset\", type, aggregate_id::text FROM read.event_log"
            " WHERE tenant_id = %s ORDER BY partition, \"offset\"", (tid,)).fetchall()
    return [r for r in rows if after is None or pos(r[0]) > pos(after)]


def head_of(stack, tid):
    rows = log_of(stack, tid)
    return rows[-1][0] if rows else None


def wait_events(sse, n, reader, timeout=60):
    return wait_for(lambda: len(sse.got()) >= n and sse.got(), timeout=timeout,
                    what=f"{n} events on the stream (have {len(sse.got())})",
                    explain=lambda: reader.log_tail(15))


def check_shape(events):
    for ident, event, data in events:
        assert set(data) == {"type", "aggregate", "aggregate_id", "position", "at"}, data
        assert ident == data["position"] and event == data["type"]
        assert data["at"].endswith("Z")


def test_thousand_events_over_three_tenants_exactly_once_in_log_order(stack, live):
    projector, reader, writer = live
    tenants = [tenant(stack, writer, f"Stream Vets {i}") for i in range(3)]
    subs = [Sse(reader, token) for _, token in tenants]
    starts = [head_of(stack, tid) for tid, _ in tenants]  # nothing after the 200
    for s in subs:
        assert s.resp.status == 200, s.resp.read()
        assert s.resp.getheader("Content-Type") == "text/event-stream"
        assert s.resp.getheader("X-Request-Id")
    counts = [334, 333, 333]
    with ThreadPoolExecutor(3) as pool:
        written = list(pool.map(lambda i: register_clients(writer, tenants[i][1], counts[i],
                                                           f"T{i}-"), range(3)))
    for i, (tid, _) in enumerate(tenants):
        events = wait_events(subs[i], counts[i], reader)
        time.sleep(0.5)  # nothing more may come: give a duplicate the time to show
        events = subs[i].got()
        check_shape(events)
        ids = [e[0] for e in events]
        assert len(ids) == counts[i] == len(set(ids)), "each event exactly once"
        assert ids == sorted(ids, key=pos), "in log order"
        assert len({pos(x)[0] for x in ids}) == 1, "a tenant's events are in one partition"
        # exactly the tenant's events after the start, as the log holds them
        assert [(e[0], e[1], e[2]["aggregate_id"]) for e in events] == \
            [tuple(r) for r in log_of(stack, tid, starts[i])]
        assert sorted(ids, key=pos) == sorted((p for p, _ in written[i]), key=pos)
        others = {p for j, w in enumerate(written) if j != i for p, _ in w}
        assert not others & set(ids), "another tenant's event arrived"
    assert reader.metric("vetpms_reader_streams_open") >= 3
    assert reader.metric("vetpms_reader_stream_events_sent_total") >= 1000
    for s in subs:
        s.close()
    wait_for(lambda: reader.metric("vetpms_reader_streams_open") == 0,
             what="the closed streams to be forgotten")


def test_reconnect_with_last_event_id_or_after_misses_nothing(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Resume Vets")
    first = Sse(reader, token)
    register_clients(writer, token, 40, "A")
    got = wait_events(first, 40, reader)
    first.close()
    last_seen = got[24][0]  # as if the connection died after the 25th event
    register_clients(writer, token, 30, "B")  # written while disconnected
    again = Sse(reader, token, headers={"Last-Event-ID": last_seen})
    by_after = Sse(reader, token, path=f"/v1/stream?after={last_seen}")
    # the header wins over ?after= (a browser keeps its URL when it reconnects)
    both = Sse(reader, token, path="/v1/stream?after=0:0",
               headers={"Last-Event-ID": last_seen})
    register_clients(writer, token, 10, "C")  # and more after the reconnect
    expected = [r[0] for r in wait_for(lambda: (lambda rows: len(rows) == 55 and rows)(
        log_of(stack, tid, last_seen)), what="55 events applied")]
    for s in (again, by_after, both):
        events = wait_events(s, len(expected), reader)
        time.sleep(0.3)
        assert [e[0] for e in s.got()] == expected
        check_shape(s.got())
        s.close()



def test_catch_up_over_several_pages_then_live(stack, live):
    """A resume far behind reads the log page by page (500 rows), also when a
    filter lets nothing of whole pages through, then follows live."""
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Backlog Vets")
    start = head_of(stack, tid)  # TenantProvisioned
    written = register_clients(writer, token, 1100, "Old")
    client = written[-1][1]
    auth = {"Authorization": "Bearer " + token}
    r = requests.patch(writer.url + f"/v1/clients/{client}", json={"phone": "+441111111111"},
                       headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    backlog = [r[0] for r in wait_for(lambda: (lambda rows: len(rows) == 1101 and rows)(
        log_of(stack, tid, start)), what="1,101 events applied")]
    everything = Sse(reader, token, path=f"/v1/stream?after={start}")
    rare = Sse(reader, token, path=f"/v1/stream?after={start}&types=ClientContactUpdated")
    assert len(wait_events(everything, 1101, reader)) == 1101
    assert [e[1] for e in wait_events(rare, 1, reader)] == ["ClientContactUpdated"]
    r = requests.patch(writer.url + f"/v1/clients/{client}", json={"phone": "+442222222222"},
                       headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert len(wait_events(rare, 2, reader)) == 2
    wait_events(everything, 1102, reader)
    time.sleep(0.3)
    assert [e[0] for e in everything.got()] == [r[0] for r in log_of(stack, tid, start)]
    assert [e[0] for e in everything.got()][:1101] == backlog
    assert len(rare.got()) == 2
    for s in (everything, rare):
        s.close()

def test_filters_by_type_and_aggregate(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Filter Vets")
    auth = {"Authorization": "Bearer " + token}
    c = requests.post(writer.url + "/v1/clients", json={"first_name": "F", "last_name": "One"},
                      headers=auth, timeout=30).json()["id"]
    wait_for(lambda: len(log_of(stack, tid)) == 2, what="ClientRegistered applied")
    by_type = Sse(reader, token, path="/v1/stream?types=PatientRegistered,ClientContactUpdated")
    by_agg = Sse(reader, token, path=f"/v1/stream?aggregate_id={c.upper()}")
    everything = Sse(reader, token)
    r = requests.post(writer.url + "/v1/patients", json={"client_id": c, "name": "Rex",
                      "species": "canine", "sex": "male"}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    r = requests.patch(writer.url + f"/v1/clients/{c}", json={"phone": "+441234567890"},
                       headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    register_clients(writer, token, 3, "Other")
    all_events = wait_events(everything, 5, reader)
    got_type = wait_events(by_type, 2, reader)
    got_agg = wait_events(by_agg, 1, reader)
    time.sleep(0.3)
    assert [e[1] for e in by_type.got()] == ["PatientRegistered", "ClientContactUpdated"]
    assert [(e[1], e[2]["aggregate_id"]) for e in by_agg.got()] == [("ClientContactUpdated", c)]
    assert len(everything.got()) == 5 and got_type and got_agg and all_events
    for s in (by_type, by_agg, everything):
        s.close()


def test_heartbeats_keep_a_quiet_stream_open_past_the_http_timeouts(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Quiet Vets")
    s = Sse(reader, token)
    t0 = time.monotonic()
    # the reader's idle and request timeouts are 1 s: 3 s of silence
    wait_for(lambda: len(s.comments) >= 3 * 1000 // HEARTBEAT_MS - 2 and
             time.monotonic() - t0 > 3, timeout=20, what="heartbeats for 3 s")
    assert s.ended is None, s.ended
    assert set(s.comments) == {": heartbeat"}
    register_clients(writer, token, 1, "Late")
    assert len(wait_events(s, 1, reader)) == 1
    s.close()


def test_errors(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Error Vets")
    auth = {"Authorization": "Bearer " + token}

    def get(path, headers=None, method="GET"):
        return requests.request(method, reader.url + path, headers={**auth, **(headers or {})},
                                timeout=10)

    for path, headers, field in [
        ("/v1/stream", {"Last-Event-ID": "banana"}, "Last-Event-ID"),
        ("/v1/stream", {"Last-Event-ID": "4096:1"}, "Last-Event-ID"),
        ("/v1/stream?after=1:-1", None, "after"),
        ("/v1/stream?after=1:99999999999999999999", None, "after"),
        ("/v1/stream?types=NoSuchEvent", None, "types"),
        ("/v1/stream?types=ClientRegistered,", None, "types"),
        ("/v1/stream?aggregate_id=42", None, "aggregate_id"),
    ]:
        r = get(path, headers)
        assert r.status_code == 400, (path, r.text)
        body = r.json()["error"]
        assert body["code"] == "VALIDATION_ERROR"
        assert [d["field"] for d in body["details"]] == [field], body
    r = requests.get(reader.url + "/v1/stream", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = requests.get(reader.url + "/v1/stream", timeout=10, headers={
        "Authorization": "Bearer " + stack.token("platform-admin")})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    r = get("/v1/stream", method="POST")
    assert r.status_code == 405
    r = get("/v1/stream", method="HEAD")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
    # any tenant role may stream
    for role in ("analyst", "ops", "nurse"):
        s = Sse(reader, stack.token([role], tenant=tid))
        assert s.resp.status == 200, role
        s.close()


def test_cap_per_tenant(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Busy Vets")
    subs = [Sse(reader, token) for _ in range(PER_TENANT)]
    assert [s.resp.status for s in subs] == [200] * PER_TENANT
    r = requests.get(reader.url + "/v1/stream", headers={"Authorization": "Bearer " + token},
                     timeout=10)
    assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMITED", r.text
    assert r.headers["Retry-After"]
    other_tid, other_token = tenant(stack, writer, "Calm Vets")
    other = Sse(reader, other_token)  # another tenant is not refused
    assert other.resp.status == 200
    other.close()
    subs[0].close()
    # the closed one's place is given back once the reader saw the close
    s = wait_for(lambda: (lambda x: x if x.resp.status == 200 else x.close())(
        Sse(reader, token)), timeout=10, what="a place after a close")
    for x in subs[1:] + [s]:
        x.close()


def test_slow_client_is_dropped_with_a_log_line(stack, live):
    projector, _, writer = live
    reader = stack.start_daemon("query-reader", port=free_port(), env={
        "VETPMS_STREAM_BUFFER_BYTES": "4096"})
    reader.wait_ready(60)
    try:
        tid, token = tenant(stack, writer, "Slow Vets")
        fast = Sse(reader, token)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        slow.connect(("127.0.0.1", reader.port))
        slow.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                     "\r\n\r\n".encode())
        wait_for(lambda: reader.metric("vetpms_reader_streams_open") == 2,
                 what="both streams open")
        n = 0
        while reader.metric("vetpms_reader_stream_drops_total") == 0:
            register_clients(writer, token, 100, f"S{n}-")  # the slow one never reads
            n += 100
            assert n <= 3000, "the slow client was never dropped"
        drop = wait_for(lambda: [ln for ln in reader.log_lines() if "stream_dropped" in ln],
                        what="the drop's log line")
        assert tid in drop[0]
        wait_for(lambda: reader.metric("vetpms_reader_streams_open") == 1,
                 what="the slow stream gone")
        # the fast one got everything, the drop did not touch it
        assert len(wait_events(fast, n, reader)) == n
        fast.close()
        slow.close()
    finally:
        reader.terminate()



def test_process_cap_and_a_peer_that_takes_nothing(stack, live):
    """VETPMS_STREAM_MAX counts every tenant (503 over it); a client that
    stops taking bytes (window closed) is cut after VETPMS_STREAM_DEAD_PEER_MS
    even when the buffer limit is far away."""
    projector, _, writer = live
    reader = stack.start_daemon("query-reader", port=free_port(), env={
        "VETPMS_STREAM_MAX": "2", "VETPMS_STREAM_DEAD_PEER_MS": "1000",
        "VETPMS_STREAM_BUFFER_BYTES": "1073741824"})
    reader.wait_ready(60)
    try:
        (t1, tok1), (t2, tok2) = (tenant(stack, writer, "Cap Vets A"),
                                  tenant(stack, writer, "Cap Vets B"))
        a = Sse(reader, tok1)
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.connect(("127.0.0.1", reader.port))
        stuck.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok2}"
                      "\r\n\r\n".encode())
        wait_for(lambda: reader.metric("vetpms_reader_streams_open") == 2, what="two streams")
        r = requests.get(reader.url + "/v1/stream", timeout=10,
                         headers={"Authorization": "Bearer " + tok2})
        assert r.status_code == 503 and r.json()["error"]["code"] == "UNAVAILABLE", r.text
        assert reader.metric("vetpms_reader_stream_refused_total") == 1
        register_clients(writer, tok2, 400, "Stuck")  # far more than its window
        wait_for(lambda: reader.metric("vetpms_reader_streams_open") == 1, timeout=30,
                 what="the stuck stream cut", explain=lambda: reader.log_tail(10))
        assert reader.metric("vetpms_reader_stream_drops_total") == 0
        assert a.ended is None  # the other stream is untouched
        a.close()
        stuck.close()
    finally:
        reader.terminate()

def test_a_rebuild_swap_loses_and_repeats_nothing(stack, live):
    projector, reader, writer = live
    tid, token = tenant(stack, writer, "Rebuild Stream Vets")
    s = Sse(reader, token)
    start = head_of(stack, tid)
    register_clients(writer, token, 20, "Before")
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"])
    done = threading.Event()
    during = []

    def traffic():
        while not done.is_set():
            during.extend(register_clients(writer, token, 5, f"During{len(during)}-"))
    t = threading.Thread(target=traffic)
    t.start()
    try:
        assert rebuild.proc.wait(timeout=180) == 0, rebuild.log_tail()
    finally:
        done.set()
        t.join()
    assert "schema read_next is live as read" in "\n".join(rebuild.log_lines())
    register_clients(writer, token, 20, "After")
    n = 40 + len(during)
    expected = [r[0] for r in wait_for(lambda: (lambda rows: len(rows) == n and rows)(
        log_of(stack, tid, start)), what=f"{n} events applied")]
    wait_events(s, len(expected), reader, timeout=90)
    time.sleep(0.5)
    assert [e[0] for e in s.got()] == expected
    s.close()


def test_shutdown_ends_streams_cleanly(stack, live):
    projector, _, writer = live
    reader = stack.start_daemon("query-reader", port=free_port())
    reader.wait_ready(60)
    tid, token = tenant(stack, writer, "Closing Vets")
    s = Sse(reader, token)
    assert s.resp.status == 200
    assert reader.terminate() == 0
    s.join(10)
    assert s.ended == "eof", s.ended  # the chunked answer ended, not cut
