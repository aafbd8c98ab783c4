"""HTTP limits of every daemon (issue 15 item 1): what libevent used to answer
itself with HTML now carries the contract's JSON error body and X-Request-Id;
idle and trickling connections are closed; connections over the cap get 503
and are closed instead of piling up (common/vp_http_guard.c)."""

import json
import socket
import time

import pytest

from stack import free_port

LIMITS = {"VETPMS_HTTP_IDLE_TIMEOUT_MS": "1500", "VETPMS_HTTP_REQUEST_TIMEOUT_MS": "1000",
          "VETPMS_HTTP_MAX_CONNECTIONS": "8"}


@pytest.fixture(scope="module")
def daemons(stack):
    """A reader and a writer with short timeouts and a small cap (the session's
    own daemons keep the defaults)."""
    started = [stack.start_daemon(name, port=free_port(), env=LIMITS)
               for name in ("query-reader", "cmd-writer")]
    for d in started:
        d.wait_ready(90)
    yield {d.name: d for d in started}
    for d in started:
        assert d.terminate() == 0


def connect(daemon, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s):
    """(status, headers with lower-case names, body bytes) of one response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    return status, headers, body[:length]


def exchange(daemon, raw):
    with connect(daemon) as s:
        s.sendall(raw)
        return read_response(s)


def closed_by_peer(s, within):
    """True when the peer closes s within `within` seconds (reads nothing else)."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def assert_error(status, headers, body, want_status, want_code, request_id=None):
    assert status == want_status, (status, headers, body)
    assert headers["content-type"].startswith("application/json")
    assert headers.get("x-request-id")
    if request_id:
        assert headers["x-request-id"] == request_id
    err = json.loads(body)["error"]
    assert err["code"] == want_code
    assert err["request_id"] == headers["x-request-id"]


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_trace_is_a_json_405_with_allow(daemons, name):
    status, headers, body = exchange(
        daemons[name], b"TRACE /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-1\r\n\r\n")
    assert_error(status, headers, body, 405, "METHOD_NOT_ALLOWED", "trace-1")
    assert "GET" in headers["allow"]


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_connect_is_a_405_with_a_request_id(daemons, name):
    # libevent never writes a body in an answer to CONNECT: headers only
    with connect(daemons[name]) as s:
        s.sendall(b"CONNECT /v1/patients HTTP/1.1\r\nHost: x\r\nX-Request-Id: conn-1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.decode("latin-1")
    assert head.startswith("HTTP/1.1 405 "), head
    assert "X-Request-Id: conn-1" in head
    assert "text/html" not in head


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_body_over_libevents_cap_is_a_json_413(daemons, name):
    raw = (b"POST /v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"X-Request-Id: big-1\r\nContent-Length: 2097152\r\n\r\n")
    status, headers, body = exchange(daemons[name], raw)
    assert_error(status, headers, body, 413, "PAYLOAD_TOO_LARGE", "big-1")
    assert headers.get("connection", "").lower() == "close"


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_headers_over_the_cap_are_a_json_400(daemons, name):
    raw = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: " + b"a" * 40000 +
           b"\r\n\r\n")
    status, headers, body = exchange(daemons[name], raw)
    assert_error(status, headers, body, 400, "VALIDATION_ERROR")
    assert "headers over 32768 bytes" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_a_malformed_request_line_is_a_json_400(daemons, name):
    status, headers, body = exchange(daemons[name], b"GARBAGE\r\n\r\n")
    assert_error(status, headers, body, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("name", ["query-reader", "cmd-writer"])
def test_an_unknown_method_is_a_json_405(daemons, name):
    status, headers, body = exchange(daemons[name], b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_error(status, headers, body, 405, "METHOD_NOT_ALLOWED")


def test_idle_and_half_sent_connections_are_closed(daemons):
    reader = daemons["query-reader"]
    idle = [connect(reader) for _ in range(3)]
    half = connect(reader)
    half.sendall(b"GET /healthz HT")
    started = time.monotonic()
    assert closed_by_peer(half, 5), "half a request line kept open"
    assert time.monotonic() - started < 3  # the 1 s request deadline, not the idle one
    for s in idle:
        assert closed_by_peer(s, 5), "idle keep-alive connection kept open"
    for s in idle + [half]:
        s.close()
    # the daemon still serves
    status, _, _ = exchange(reader, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


def test_a_trickling_request_is_cut_off_at_its_deadline(daemons):
    reader = daemons["query-reader"]
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40 + b"\r\n\r\n"
    with connect(reader) as s:
        started = time.monotonic()
        cut = False
        for byte in request:  # one byte every 100 ms: 6 s for the whole request
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        assert cut or closed_by_peer(s, 3)
        assert time.monotonic() - started < 4


def test_a_kept_alive_connection_serves_request_after_request(daemons):
    reader = daemons["query-reader"]
    with connect(reader) as s:
        for i in range(3):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(s)
            assert status == 200
            time.sleep(0.6)  # idle less than 1.5 s between requests: kept


def test_connections_over_the_cap_get_503_and_are_closed(daemons):
    reader = daemons["query-reader"]
    refused0 = reader.metric("vetpms_http_connections_refused_total") or 0
    held = [connect(reader) for _ in range(8)]
    # each held connection is accepted (the loop has seen it) before the next
    time.sleep(0.3)
    with connect(reader) as extra:
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: over-1\r\n\r\n")
        status, headers, body = read_response(extra)
        assert_error(status, headers, body, 503, "UNAVAILABLE", "over-1")
        assert headers["retry-after"]
        assert headers.get("connection", "").lower() == "close"
        assert closed_by_peer(extra, 3)
    for s in held:
        s.close()
    time.sleep(0.3)
    status, _, _ = exchange(reader, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    assert reader.metric("vetpms_http_connections_refused_total") == refused0 + 1
