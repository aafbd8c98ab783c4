"""The whole spine at once: a command through cmd-writer is in Kafka when it is
answered, the projector applies it, and query-reader serves it immediately to a
client that passes the answer's consistency token (read-your-writes)."""

import time

import pytest
import requests


@pytest.fixture(scope="module")
def spine(stack):
    projector, reader, writer = stack.start_all(["--instance", "0", "--instances", "1"])
    tid = stack.provision(writer, "Spine Vets", "Europe/Paris", "EUR")
    auth = {"Authorization": "Bearer " + stack.token(["admin", "vet"], tenant=tid)}
    yield writer, reader, auth, tid
    for d in (writer, reader, projector):
        d.terminate()


def test_read_your_writes_with_the_consistency_token(spine):
    writer, reader, auth, _tid = spine
    r = requests.post(writer.url + "/v1/clients", json={"first_name": "Jane", "last_name": "Doe"},
                      headers=auth, timeout=30)
    client_id = r.json()["id"]
    r = requests.post(writer.url + "/v1/patients",
                      json={"client_id": client_id, "name": "Biscuit", "species": "canine",
                            "sex": "female", "weight": {"value": 12.5, "unit": "kg"}},
                      headers=auth, timeout=30)
    assert r.status_code == 201
    patient_id, token = r.json()["id"], r.headers["X-Consistency-Token"]
    started = time.time()
    got = requests.get(f"{reader.url}/v1/patients/{patient_id}",
                       params={"consistent_with": token}, headers=auth, timeout=30)
    assert got.status_code == 200, got.text
    assert time.time() - started < 2
    body = got.json()
    assert body["name"] == "Biscuit" and float(body["weight_kg"]) == 12.5
    assert body["client"]["last_name"] == "Doe" and body["version"] == 1
    # the same with the header form, after one more change
    r = requests.post(f"{writer.url}/v1/patients/{patient_id}/allergies",
                      json={"allergen": "chicken", "severity": "mild"}, headers=auth, timeout=30)
    got = requests.get(f"{reader.url}/v1/patients/{patient_id}",
                       headers={**auth, "X-Consistency-Token": r.headers["X-Consistency-Token"]},
                       timeout=30)
    assert got.json()["version"] == 2
    assert [a["allergen"] for a in got.json()["allergies"]] == ["chicken"]


def test_typo_tolerant_search_over_what_the_writer_accepted(spine):
    writer, reader, auth, _tid = spine
    r = requests.post(writer.url + "/v1/clients",
                      json={"first_name": "Olivia", "last_name": "Fitzgerald"}, headers=auth,
                      timeout=30)
    token = r.headers["X-Consistency-Token"]
    found = requests.get(f"{reader.url}/v1/clients",
                         params={"search": "Fitzgerlad", "consistent_with": token},
                         headers=auth, timeout=30).json()["data"]
    assert [c["last_name"] for c in found] == ["Fitzgerald"]


def test_another_tenant_sees_nothing_on_either_daemon(stack, spine):
    writer, reader, auth, _tid = spine
    r = requests.post(writer.url + "/v1/clients", json={"first_name": "Secret", "last_name": "Owner"},
                      headers=auth, timeout=30)
    client_id, token = r.json()["id"], r.headers["X-Consistency-Token"]
    other = requests.post(writer.url + "/v1/tenants",
                          json={"name": "Other", "timezone": "UTC", "currency": "USD"},
                          headers={"Authorization": "Bearer " + stack.token("platform-admin")},
                          timeout=30).json()["id"]
    stranger = {"Authorization": "Bearer " + stack.token(["admin", "vet"], tenant=other)}
    got = requests.get(f"{reader.url}/v1/clients/{client_id}",
                       params={"consistent_with": token}, headers=stranger, timeout=30)
    assert got.status_code == 404
    r = requests.post(f"{writer.url}/v1/clients/{client_id}/deactivate", json={},
                      headers=stranger, timeout=30)
    assert r.status_code == 404
