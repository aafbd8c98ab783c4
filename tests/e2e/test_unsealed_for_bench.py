"""The bench-only switch VETPMS_WRITER_UNSEALED_FOR_BENCH (bench/run.py's seal
scenario, docs/decisions.md): off by default, so client events are sealed
(v2); refused on a real events topic; on a bench.* topic it writes plain v1
and says so loudly at start."""

import json
import os
import subprocess

import requests

from kafka_log import read_all
from stack import BIN_DIR, free_port


def post(daemon, path, body, token):
    return requests.post(daemon.url + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def register_client(stack, writer):
    r = post(writer, "/v1/tenants", {"name": "Switch Vets", "timezone": "Europe/Paris",
                                     "currency": "EUR"}, stack.token("platform-admin"))
    assert r.status_code == 201, r.text
    token = stack.token(["admin", "reception"], tenant=r.json()["id"])
    r = post(writer, "/v1/clients", {"first_name": "Ada", "last_name": "Plainview",
                                     "email": "ada@switch.example"}, token)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def client_events(brokers, topic, client_id):
    out = []
    for _, _, _, value in read_all(brokers, topic=topic):
        try:  # the session's topic also holds other tests' poison records
            e = json.loads(value)
        except (TypeError, ValueError):
            continue
        if isinstance(e, dict) and e.get("aggregate_id") == client_id:
            out.append(e)
    return out


def test_the_switch_is_off_by_default_and_refused_on_the_real_topic(stack):
    env = dict(stack.env, VETPMS_WRITER_UNSEALED_FOR_BENCH="1",
               VETPMS_WRITER_PORT=str(free_port()))
    r = subprocess.run([os.path.join(BIN_DIR, "cmd-writer")], env=env, text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 2
    assert "benchmarks only" in r.stderr and "bench.*" in r.stderr

    writer = stack.start_daemon("cmd-writer", port=free_port())
    writer.wait_ready(90)
    client = register_client(stack, writer)
    assert writer.terminate() == 0
    events = client_events(stack.brokers, "vetpms.events", client)
    assert [(e["type"], e["v"]) for e in events] == [("ClientRegistered", 3)]
    assert "Plainview" not in json.dumps(events)
    assert not any("UNSEALED_FOR_BENCH" in ln for ln in writer.log_lines())


def test_on_a_bench_topic_it_writes_plain_v1_and_warns(stack):
    topic = "bench.switch"
    saved = stack.env
    stack.env = dict(saved, VETPMS_TOPIC=topic, VETPMS_DLQ_TOPIC=topic + ".dlq")
    try:
        stack.vetctl("topics", "create", "--partitions", "6")
    finally:
        stack.env = saved
    writer = stack.start_daemon("cmd-writer", port=free_port(), env={
        "VETPMS_TOPIC": topic, "VETPMS_WRITER_UNSEALED_FOR_BENCH": "1"})
    writer.wait_ready(90)
    client = register_client(stack, writer)
    assert writer.terminate() == 0
    events = client_events(stack.brokers, topic, client)
    assert [(e["type"], e["v"]) for e in events] == [("ClientRegistered", 1)]
    assert events[0]["data"]["last_name"] == "Plainview"
    assert any("UNSEALED_FOR_BENCH" in ln and "NEVER IN PRODUCTION" in ln
               for ln in writer.log_lines())
