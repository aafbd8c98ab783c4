"""cmd-writer --dry-run (the benchmarks' HTTP-overhead mode): it decides and
answers like the writer, appends nothing, and never fences the real writer of
the same instance (it takes no transactional.id)."""

import requests

from kafka_log import read_all
from stack import free_port


def post(daemon, path, body, token):
    return requests.post(daemon.url + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def test_dry_run_decides_and_answers_but_appends_nothing(stack):
    real = stack.start_daemon("cmd-writer", port=free_port())
    real.wait_ready(90)
    r = post(real, "/v1/tenants", {"name": "Dry Vets", "timezone": "Europe/Paris",
                                   "currency": "EUR"}, stack.token("platform-admin"))
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    token = stack.token(["admin", "vet"], tenant=tid)
    client = post(real, "/v1/clients", {"first_name": "Jane", "last_name": "Doe"}, token)
    assert client.status_code == 201
    client_id = client.json()["id"]

    dry = stack.start_daemon("cmd-writer", port=free_port(), args=["--dry-run"])
    dry.wait_ready(90)  # rebuilt from the log: it knows the tenant and the client
    before = len(read_all(stack.brokers))
    r = post(dry, "/v1/patients", {"client_id": client_id, "name": "Ghost", "species": "feline",
                                   "sex": "female"}, token)
    assert r.status_code == 201, r.text
    assert r.json()["position"].endswith(":-1")
    # decided against the model: a bad reference is still refused
    r = post(dry, "/v1/patients", {"client_id": tid, "name": "X", "species": "feline",
                                   "sex": "male"}, token)
    assert r.status_code == 404
    assert len(read_all(stack.brokers)) == before

    # the real writer was not fenced: it still commits
    r = post(real, "/v1/patients", {"client_id": client_id, "name": "Real", "species": "canine",
                                    "sex": "male"}, token)
    assert r.status_code == 201, r.text
    assert not r.json()["position"].endswith(":-1")
    assert len(read_all(stack.brokers)) == before + 1
    assert dry.terminate() == 0 and real.terminate() == 0
