"""The foundation: the three daemons start against the real Kafka and
PostgreSQL of the test stack, answer /healthz, /readyz and /metrics, log one JSON
object per line, stop cleanly on SIGTERM, and report dependencies that are down.
The stack scripts create topics, roles and the read schema as documented."""

import base64
import hashlib
import hmac
import json
import re
import time

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from stack import free_port

DAEMONS = ["cmd-writer", "projector", "query-reader"]


@pytest.fixture(scope="module")
def running(stack):
    daemons = {name: stack.start_daemon(name) for name in DAEMONS}
    for d in daemons.values():
        d.wait_ready()
    yield daemons
    for d in daemons.values():
        d.terminate()


@pytest.mark.parametrize("name", DAEMONS)
def test_health_ready_and_metrics_answer(running, name):
    d = running[name]
    r = d.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")
    r = d.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    r = d.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize("name", DAEMONS)
def test_request_id_is_echoed_or_generated(running, name):
    d = running[name]
    r = d.get("/healthz", headers={"X-Request-Id": "abc-123.x"})
    assert r.headers["X-Request-Id"] == "abc-123.x"
    r = d.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        r.headers["X-Request-Id"])
    # A header that could forge log lines is replaced, not echoed.
    r = d.get("/healthz", headers={"X-Request-Id": 'x"}{"level":"error'})
    assert r.headers["X-Request-Id"] != 'x"}{"level":"error'


@pytest.mark.parametrize("name", DAEMONS)
def test_unknown_route_and_wrong_method_use_the_error_body(running, name):
    d = running[name]
    r = d.get("/v1/nothing-here", headers={"X-Request-Id": "rid-404"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "NOT_FOUND"
    assert err["request_id"] == "rid-404"
    assert err["details"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", err["timestamp"])
    r = d.request("POST", "/healthz", data="{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_metrics_are_prometheus_text(running):
    text = running["cmd-writer"].get("/metrics").text
    families = re.findall(r"^# TYPE (\S+) (counter|gauge|histogram)$", text, re.M)
    assert families, text
    for name, _kind in families:
        assert re.search(rf"^{re.escape(name)}(_bucket|_sum|_count)?[{{ ]", text, re.M), name


@pytest.mark.parametrize("name", DAEMONS)
def test_sigterm_stops_cleanly_with_json_logs(stack, name):
    port = free_port()
    d = stack.start_daemon(name, port=port)
    d.wait_ready()
    started = time.time()
    assert d.terminate(timeout=15) == 0
    assert time.time() - started < 15
    lines = d.log_lines()
    assert lines
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        assert entry["component"] == name
        assert entry["level"] in ("debug", "info", "warn", "error")
        assert entry["ts"].endswith("Z") and entry["event"]
    events = [json.loads(line)["event"] for line in lines]
    assert "listening" in events and "stopped" in events


def test_writer_not_ready_without_kafka(stack):
    dead = f"127.0.0.1:{free_port()}"
    d = stack.start_daemon("cmd-writer", port=free_port(),
                           env={"VETPMS_KAFKA_BROKERS": dead})
    d.wait_healthy()
    time.sleep(1)
    r = d.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "UNAVAILABLE"
    assert r.headers["Retry-After"] == "1"
    assert d.terminate() == 0


def test_reader_not_ready_without_postgres(stack):
    bad = f"host=127.0.0.1 port={free_port()} dbname=vetpms user=vetpms_reader"
    d = stack.start_daemon("query-reader", port=free_port(), env={"VETPMS_READER_DSN": bad})
    d.wait_healthy()
    time.sleep(1.5)
    r = d.get("/readyz")
    assert r.status_code == 503
    assert "PostgreSQL" in r.json()["error"]["message"]
    assert d.terminate() == 0


def test_projector_not_ready_with_wrong_password(stack):
    bad = stack.dsn("projector").replace("password=", "password=wrong")
    d = stack.start_daemon("projector", port=free_port(), env={"VETPMS_PROJECTOR_DSN": bad})
    d.wait_healthy()
    time.sleep(1.5)
    assert d.get("/readyz").status_code == 503
    assert d.terminate() == 0


@pytest.mark.parametrize("name", DAEMONS)
def test_bad_configuration_is_refused_at_start(stack, name):
    d = stack.start_daemon(name, port=free_port(), args=["--no-such-flag"])
    assert d.proc.wait(10) == 2
    d = stack.start_daemon(name, port=free_port(), args=["--port", "70000"])
    assert d.proc.wait(10) == 2


def test_topics_exist_with_partitions_and_infinite_retention(stack):
    admin = AdminClient({"bootstrap.servers": stack.brokers})
    topics = admin.list_topics(timeout=10).topics
    for name in ("vetpms.events", "vetpms.events.dlq"):
        assert len(topics[name].partitions) == stack.partitions
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([res])[res].result(timeout=10)
        assert config["retention.ms"].value == "-1"
    # the keys topic: compacted, replaced records cleaned soon (docs/privacy.md)
    assert len(topics["vetpms.keys"].partitions) == stack.partitions
    res = ConfigResource(ConfigResource.Type.TOPIC, "vetpms.keys")
    config = admin.describe_configs([res])[res].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"
    assert config["segment.ms"].value == "600000"
    assert config["min.cleanable.dirty.ratio"].value == "0.01"


def test_topics_create_is_idempotent_and_guards_the_partition_count(stack):
    again = stack.vetctl("topics", "create", "--partitions", str(stack.partitions))
    assert "exists vetpms.events" in again.stdout
    other = stack.vetctl("topics", "create", "--partitions", "3", check=False)
    assert other.returncode != 0
    assert "partitions" in other.stderr


def test_postgres_roles_schema_and_extension(stack, running):
    with psycopg.connect(stack.superuser_dsn()) as su:
        assert su.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
        owner = su.execute("SELECT nspowner::regrole::text FROM pg_namespace "
                           "WHERE nspname = 'read'").fetchone()[0]
        assert owner == "vetpms_projector"
        versions = su.execute("SELECT version FROM read.schema_migrations").fetchall()
        assert (1,) in versions
        listen = su.execute("SHOW listen_addresses").fetchone()[0]
        assert listen == "127.0.0.1"
    with psycopg.connect(stack.dsn("reader")) as reader:
        reader.execute("SELECT count(*) FROM read.projection_offsets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("CREATE TABLE read.nope (x int)")
    with psycopg.connect(stack.dsn("analyst")) as analyst:
        analyst.execute("SELECT count(*) FROM read.projection_offsets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("DELETE FROM read.projection_offsets")


def test_migrations_apply_once(stack, running):
    d = stack.start_daemon("projector", port=free_port())
    d.wait_ready()
    assert d.terminate() == 0
    msgs = [json.loads(l)["msg"] for l in d.log_lines() if '"migrate"' in l]
    assert any("0 migration(s) applied" in m for m in msgs), msgs


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_vetctl_token_is_a_valid_hs256_jwt(stack):
    tenant = "0193a5c2-0000-7000-8000-000000000001"
    token = stack.token(["admin", "vet"], tenant=tenant, sub="alice", ttl=600)
    header, payload, signature = token.split(".")
    expected = hmac.new(stack.jwt_secret.encode(), f"{header}.{payload}".encode(),
                        hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(signature), expected)
    assert json.loads(b64url_decode(header)) == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(b64url_decode(payload))
    assert claims["sub"] == "alice" and claims["tid"] == tenant
    assert claims["roles"] == ["admin", "vet"]
    assert 590 <= claims["exp"] - time.time() <= 600
    bad = stack.vetctl("token", "--role", "wizard", check=False)
    assert bad.returncode != 0 and "unknown role" in bad.stderr
