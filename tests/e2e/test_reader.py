"""query-reader end to end: authentication and roles, the client, patient,
staff and audit routes with their JSON shapes, keyset pagination with signed
cursors, tenant isolation (RLS plus the reader's own filters), typo-tolerant
search, consistency tokens woken by NOTIFY, and a client that hangs up while
its answer is pending. Fixture rows are written straight into read.* as the
superuser; the projector is started once only so that its migrations exist."""

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

from stack import free_port

TOPIC = "vetpms.e2e-reader"  # consistency tests own this topic's offset rows
# The audit-trail rows written by hand sit at positions 3:FIXTURE_OFFSET.. of
# read.event_log, which the session's projectors share: so far beyond any
# offset the suite produces that no real event ever lands on one (it would be
# a dead letter there, and the module that sent it would wait in vain).
FIXTURE_OFFSET = 10**12
WAIT_MS = 1500
T1 = str(uuid.uuid4())
T2 = str(uuid.uuid4())
BASE_TIME = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)


def uid():
    return str(uuid.uuid4())


CLIENTS = [uid() for _ in range(7)]
BELLA_CLIENT = CLIENTS[0]
PATIENTS = [uid() for _ in range(5)]
BELLA = PATIENTS[0]
STAFF = [uid() for _ in range(5)]
OTHER_CLIENT = uid()
OTHER_PATIENT = uid()
AGG = uid()
MICROCHIP = "985112345678901"


def insert_fixtures(su):
    for i, cid in enumerate(CLIENTS):
        # two clients share created_at: the keyset must break the tie by id
        created = BASE_TIME + timedelta(minutes=min(i, 5))
        first, last = ("Anna", "Smith") if i == 0 else (f"First{i}", f"Last{i}")
        su.execute("INSERT INTO read.clients (tenant_id, id, first_name, last_name, email, phone,"
                   " version, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,1,%s,%s)",
                   (T1, cid, first, last, f"c{i}@example.com", f"+4470000000{i}", created,
                    created))
    su.execute("INSERT INTO read.clients (tenant_id, id, first_name, last_name, version,"
               " created_at, updated_at) VALUES (%s,%s,'Other','Tenant',1,%s,%s)",
               (T2, OTHER_CLIENT, BASE_TIME, BASE_TIME))
    names = ["Bella", "Max", "Luna", "Charlie", "Rocky"]
    for i, pid in enumerate(PATIENTS):
        created = BASE_TIME + timedelta(hours=1, minutes=i)
        su.execute("INSERT INTO read.patients (tenant_id, id, client_id, client_first_name,"
                   " client_last_name, name, species, sex, microchip, weight_kg, allergies,"
                   " conditions, version, created_at, updated_at)"
                   " VALUES (%s,%s,%s,'Anna','Smith',%s,%s,'female',%s,%s,%s,%s,2,%s,%s)",
                   (T1, pid, BELLA_CLIENT if i < 3 else CLIENTS[1], names[i],
                    "dog" if i % 2 == 0 else "cat", MICROCHIP if i == 2 else None,
                    "12.500" if i == 0 else None,
                    json.dumps([{"allergen": "penicillin", "reaction": "hives",
                                 "severity": "moderate"}] if i == 0 else []),
                    json.dumps([{"name": "arthritis", "diagnosed_on": "2025-03-01",
                                 "notes": None}] if i == 0 else []),
                    created, created))
    su.execute("INSERT INTO read.patients (tenant_id, id, client_id, client_first_name,"
               " client_last_name, name, species, sex, version, created_at, updated_at)"
               " VALUES (%s,%s,%s,'Other','Tenant','Bella','dog','female',1,%s,%s)",
               (T2, OTHER_PATIENT, OTHER_CLIENT, BASE_TIME, BASE_TIME))
    for i in range(3):
        su.execute("INSERT INTO read.weights VALUES (%s,%s,%s,%s,%s)",
                   (T1, BELLA, uid(), 12000 + 250 * i, BASE_TIME + timedelta(days=i)))
    for i, sid in enumerate(STAFF):
        su.execute("INSERT INTO read.staff (tenant_id, id, name, role, email, version,"
                   " created_at, updated_at) VALUES (%s,%s,%s,%s,%s,1,%s,%s)",
                   (T1, sid, f"Dr {chr(ord('E') - i)} | pipe", "veterinarian",
                    f"s{i}@clinic.test", BASE_TIME, BASE_TIME))
    for i in range(5):
        envelope = {"type": "PatientRegistered" if i == 0 else "WeightRecorded", "v": 1,
                    "aggregate_id": AGG, "seq": i + 1, "n": i}
        su.execute("INSERT INTO read.event_log (tenant_id, event_id, partition, \"offset\","
                   " type, v, aggregate, aggregate_id, seq, command_id, actor, at, envelope)"
                   " VALUES (%s,%s,3,%s,%s,1,'patient',%s,%s,%s,'e2e',%s,%s)",
                   (T1, uid(), FIXTURE_OFFSET + i, envelope["type"], AGG, i + 1, uid(), BASE_TIME,
                    json.dumps(envelope)))


@pytest.fixture(scope="module")
def reader(stack):
    projector = stack.start_daemon("projector", port=free_port())
    projector.wait_ready()  # migrations applied
    projector.terminate()
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        insert_fixtures(su)
    d = stack.start_daemon("query-reader", port=free_port(),
                           env={"VETPMS_TOPIC": TOPIC, "VETPMS_CONSISTENCY_WAIT_MS": str(WAIT_MS)})
    d.wait_ready()
    yield d
    assert d.terminate() == 0


@pytest.fixture(scope="module")
def tokens(stack):
    return {
        "admin": stack.token("admin", tenant=T1),
        "vet": stack.token("vet", tenant=T1),
        "nurse": stack.token("nurse", tenant=T1),
        "reception": stack.token("reception", tenant=T1),
        "analyst": stack.token("analyst", tenant=T1),
        "ops": stack.token("ops", tenant=T1),
        "other": stack.token(["admin", "vet"], tenant=T2),
    }


def get(d, path, token, **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return d.get(path, headers=headers, **kw)


def error_code(r):
    return r.json()["error"]["code"]


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(header, claims, key):
    signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing}.{b64url(sig)}"


# --- authentication and roles ---------------------------------------------

def test_every_authentication_failure_is_401(stack, reader):
    claims = {"sub": "x", "tid": T1, "roles": ["admin"], "exp": int(time.time()) + 600}
    cases = {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": stack.token("admin", tenant=T1, ttl=-10),
        "wrong signature": forge({"alg": "HS256", "typ": "JWT"}, claims, b"another-secret-0123456789"),
        "alg none": forge({"alg": "none", "typ": "JWT"}, claims, None),
    }
    for name, token in cases.items():
        r = get(reader, "/v1/clients", token)
        assert r.status_code == 401, name
        assert error_code(r) == "UNAUTHENTICATED", name
        assert r.headers["X-Request-Id"]
    r = reader.get("/v1/clients", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401
    # the same claims correctly signed pass: the failures above are the token's
    good = forge({"alg": "HS256", "typ": "JWT"}, claims, stack.jwt_secret.encode())
    assert get(reader, "/v1/clients", good).status_code == 200


def test_roles_are_enforced_per_route(reader, tokens):
    assert get(reader, "/v1/clients", tokens["analyst"]).status_code == 403
    assert error_code(get(reader, "/v1/clients", tokens["analyst"])) == "FORBIDDEN"
    assert get(reader, f"/v1/patients/{BELLA}/weights", tokens["reception"]).status_code == 403
    assert get(reader, f"/v1/patients/{BELLA}/weights", tokens["vet"]).status_code == 200
    assert get(reader, "/v1/events", tokens["vet"]).status_code == 403
    assert get(reader, "/v1/events", tokens["ops"]).status_code == 200
    assert get(reader, "/v1/staff", tokens["analyst"]).status_code == 200


def test_token_without_tenant_is_forbidden(stack, reader):
    for roles in ("platform-admin", "admin"):
        token = stack.token(roles)
        for path in ("/v1/clients", "/v1/staff", f"/v1/clients/{BELLA_CLIENT}"):
            r = get(reader, path, token)
            assert r.status_code == 403, (roles, path)
            assert error_code(r) == "FORBIDDEN"


def test_unknown_route_and_method(reader, tokens):
    assert get(reader, "/v1/clients/x/y/z", tokens["admin"]).status_code == 404
    r = reader.request("POST", "/v1/clients", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert r.status_code == 405


# --- routes and shapes ----------------------------------------------------

def walk(reader, token, path, limit):
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = get(reader, url, token)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_cursor"}
        assert len(body["data"]) <= limit
        items += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 50


def test_clients_list_newest_first_and_every_page_walked(reader, tokens):
    r = get(reader, "/v1/clients", tokens["reception"])
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    full = r.json()
    assert full["next_cursor"] is None
    assert [c["id"] for c in full["data"]] and len(full["data"]) == len(CLIENTS)
    first = full["data"][0]
    assert set(first) >= {"id", "first_name", "last_name", "email", "phone", "created_at", "version"}
    assert first["created_at"].endswith("Z")
    keys = [(c["created_at"], c["id"]) for c in full["data"]]
    assert keys == sorted(keys, reverse=True)
    for limit in (1, 2, 3, 6, 7, 200):
        items, pages = walk(reader, tokens["admin"], "/v1/clients", limit)
        ids = [c["id"] for c in items]
        assert ids == [c["id"] for c in full["data"]], limit  # no duplicates, no gaps
        assert pages == max(1, -(-len(CLIENTS) // limit)), limit


def test_client_with_patients_and_balance(reader, tokens):
    r = get(reader, f"/v1/clients/{BELLA_CLIENT.upper()}", tokens["vet"])
    assert r.status_code == 200
    c = r.json()
    assert c["id"] == BELLA_CLIENT and c["first_name"] == "Anna" and c["balance_cents"] == 0
    assert {p["name"] for p in c["patients"]} == {"Bella", "Max", "Luna"}
    assert set(c["patients"][0]) == {"id", "name", "species", "status"}


def test_patient_detail_shape(reader, tokens):
    p = get(reader, f"/v1/patients/{BELLA}", tokens["nurse"]).json()
    assert p["client"] == {"id": BELLA_CLIENT, "first_name": "Anna", "last_name": "Smith"}
    assert p["allergies"][0]["allergen"] == "penicillin"
    assert p["conditions"][0]["name"] == "arthritis"
    assert p["weight_kg"] == 12.5 and p["status"] == "active" and p["version"] == 2


def test_patients_filters_and_pages(reader, tokens):
    t = tokens["admin"]
    assert len(get(reader, "/v1/patients", t).json()["data"]) == 5
    dogs = get(reader, "/v1/patients?species=dog", t).json()["data"]
    assert {p["name"] for p in dogs} == {"Bella", "Luna", "Rocky"}
    mine = get(reader, f"/v1/patients?client_id={CLIENTS[1]}", t).json()["data"]
    assert {p["name"] for p in mine} == {"Charlie", "Rocky"}
    items, _ = walk(reader, t, "/v1/patients?species=dog", 1)
    assert [p["name"] for p in items] == [p["name"] for p in dogs]
    r = get(reader, "/v1/patients?client_id=nope", t)
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "client_id"


def test_search_is_typo_tolerant_and_matches_microchip(reader, tokens):
    t = tokens["admin"]
    names = lambda q: {p["name"] for p in get(reader, f"/v1/patients?search={q}", t).json()["data"]}
    assert "Bella" in names("Bela")
    assert "Bella" in names("bella")
    assert names("Smith") == {"Bella", "Max", "Luna", "Charlie", "Rocky"}
    assert names(MICROCHIP) == {"Luna"}
    clients = get(reader, "/v1/clients?search=Smitt", t).json()["data"]
    assert BELLA_CLIENT in {c["id"] for c in clients}
    clients = get(reader, "/v1/clients?search=c3@example", t).json()["data"]
    assert CLIENTS[3] in {c["id"] for c in clients}
    assert get(reader, "/v1/clients?search=zzqqxx", t).json()["data"] == []


def test_sql_looking_and_wildcard_search_is_taken_verbatim(reader, tokens, stack):
    t = tokens["admin"]
    for q in ("'; DROP TABLE read.clients; --", "%", "_", "\\"):
        r = get(reader, "/v1/clients", t, params={"search": q})
        assert r.status_code == 200, q
        assert r.json()["data"] == [], q
    with psycopg.connect(stack.superuser_dsn()) as su:
        assert su.execute("SELECT count(*) FROM read.clients WHERE tenant_id IN (%s, %s)",
                          (T1, T2)).fetchone()[0] == len(CLIENTS) + 1


def test_weights_newest_first(reader, tokens):
    r = get(reader, f"/v1/patients/{BELLA}/weights", tokens["nurse"])
    data = r.json()["data"]
    assert [w["weight_kg"] for w in data] == [12.5, 12.25, 12.0]
    assert data[0]["measured_at"] == "2026-01-12T09:00:00Z"
    items, pages = walk(reader, tokens["vet"], f"/v1/patients/{BELLA}/weights", 2)
    assert [w["id"] for w in items] == [w["id"] for w in data] and pages == 2
    assert get(reader, f"/v1/patients/{uid()}/weights", tokens["vet"]).status_code == 404


def test_staff_list_and_item(reader, tokens):
    items, _ = walk(reader, tokens["analyst"], "/v1/staff", 2)
    assert len(items) == 5 and len({s["id"] for s in items}) == 5
    assert [s["name"] for s in items] == sorted(s["name"] for s in items)
    s = get(reader, f"/v1/staff/{STAFF[0]}", tokens["reception"]).json()
    assert s["id"] == STAFF[0] and s["role"] == "veterinarian" and s["active"] is True


def test_events_oldest_first_with_after_and_filters(reader, tokens):
    t = tokens["admin"]
    data = get(reader, "/v1/events", t).json()["data"]
    assert [e["position"] for e in data] == [f"3:{FIXTURE_OFFSET + i}" for i in range(5)]
    assert data[0]["type"] == "PatientRegistered" and data[0]["aggregate_id"] == AGG
    after = get(reader, f"/v1/events?after=3:{FIXTURE_OFFSET + 2}", t).json()["data"]
    assert [e["position"] for e in after] == [f"3:{FIXTURE_OFFSET + 3}", f"3:{FIXTURE_OFFSET + 4}"]
    typed = get(reader, "/v1/events?type=PatientRegistered", t).json()["data"]
    assert len(typed) == 1
    assert len(get(reader, f"/v1/events?aggregate_id={AGG}", t).json()["data"]) == 5
    assert get(reader, f"/v1/events?aggregate_id={uid()}", t).json()["data"] == []
    items, pages = walk(reader, tokens["ops"], "/v1/events", 2)
    assert [e["position"] for e in items] == [e["position"] for e in data] and pages == 3
    assert get(reader, "/v1/events?after=3-102", t).status_code == 400


# --- validation -----------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "201", "abc", "", "-1", "1.5"])
def test_bad_limit_is_400(reader, tokens, limit):
    r = get(reader, f"/v1/clients?limit={limit}", tokens["admin"])
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"][0]["field"] == "limit"


def test_tampered_or_foreign_cursor_is_400(reader, tokens):
    t = tokens["admin"]
    cursor = get(reader, "/v1/clients?limit=2", t).json()["next_cursor"]
    payload, sig = cursor.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert raw.startswith("clients|")
    forged = b64url(raw.replace("2026", "2027").encode()) + "." + sig
    for bad in (forged, cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), "garbage"):
        r = get(reader, f"/v1/clients?limit=2&cursor={bad}", t)
        assert r.status_code == 400 and error_code(r) == "VALIDATION_ERROR"
    # a cursor of another list is not accepted either
    assert get(reader, f"/v1/patients?cursor={cursor}", t).status_code == 400
    assert get(reader, f"/v1/clients?limit=2&cursor={cursor}", t).status_code == 200


def test_ids_that_are_not_uuids_are_404(reader, tokens):
    for path in ("/v1/clients/abc", "/v1/patients/1%27%20OR%201=1", "/v1/staff/123"):
        r = get(reader, path, tokens["admin"])
        assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


# --- tenancy ----------------------------------------------------------------

def test_other_tenant_sees_nothing_of_ours(reader, tokens):
    other = tokens["other"]
    for path in (f"/v1/clients/{BELLA_CLIENT}", f"/v1/patients/{BELLA}",
                 f"/v1/staff/{STAFF[0]}", f"/v1/patients/{BELLA}/weights"):
        r = get(reader, path, other)
        assert r.status_code == 404 and error_code(r) == "NOT_FOUND", path
    assert [c["id"] for c in get(reader, "/v1/clients", other).json()["data"]] == [OTHER_CLIENT]
    assert get(reader, "/v1/staff", other).json()["data"] == []
    assert get(reader, "/v1/events", other).json()["data"] == []
    assert get(reader, f"/v1/clients/{OTHER_CLIENT}", tokens["admin"]).status_code == 404


def test_rls_is_active_for_the_reader_role(stack, reader):
    with psycopg.connect(stack.dsn("reader"), autocommit=True) as conn:
        for table in ("clients", "patients", "staff", "weights", "event_log"):
            assert conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()[0] == 0, table
        with conn.transaction():
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, true)", (T1,))
            # even without a tenant_id filter, only this tenant's rows
            tenants = conn.execute("SELECT DISTINCT tenant_id::text FROM read.clients").fetchall()
            assert tenants == [(T1,)]
        assert conn.execute("SELECT count(*) FROM read.clients").fetchone()[0] == 0


def test_dead_letters_are_not_readable_by_tenant_roles(stack, reader):
    """Dead letters hold raw payloads of every tenant: neither the reader
    nor an analyst may read them, whatever tenant they set."""
    for role in ("reader", "analyst"):
        with psycopg.connect(stack.dsn(role), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM read.dead_letters")
            # positions stay readable: the reader waits on them
            conn.execute("SELECT count(*) FROM read.projection_offsets")


def test_page_functions_keep_tenant_isolation(stack, reader):
    """The list pages come from SECURITY DEFINER functions (they bypass RLS so
    the trigram index can be used): they must filter by the transaction's
    tenant themselves and match nothing without one."""
    pages = {"patients": "SELECT id::text FROM read.patient_page_ids(%s, NULL, NULL, NULL, NULL, 200)",
             "clients": "SELECT id::text FROM read.client_page_ids(%s, NULL, NULL, 200)"}
    with psycopg.connect(stack.dsn("reader"), autocommit=True) as conn:
        for table, sql in pages.items():
            for q in (None, "smith", "a"):
                assert conn.execute(sql, (q,)).fetchall() == [], (table, q)
            with conn.transaction():
                conn.execute("SELECT set_config('vetpms.tenant_id', %s, true)", (T2,))
                ids = {r[0] for r in conn.execute(sql, (None,)).fetchall()}
                owners = conn.execute(f"SELECT DISTINCT tenant_id::text FROM read.{table}"
                                      " WHERE id = ANY(%s::uuid[])", (list(ids),)).fetchall()
                assert owners in ([(T2,)], []), table
                assert BELLA not in ids and BELLA_CLIENT not in ids


def test_search_on_a_large_tenant_uses_the_trigram_index(stack, reader):
    """Under RLS the reader could not use the trigram index (pg_trgm's
    operators are not leakproof): the page function must. In one rolled-back
    transaction: 20k patients of a scratch tenant, then the function's own
    plan, sent to us by auto_explain, must name the index."""
    tenant = uid()
    plans = []
    with psycopg.connect(stack.superuser_dsn()) as su:
        su.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        su.execute("INSERT INTO read.patients (tenant_id, id, client_id, client_first_name,"
                   " client_last_name, name, species, sex, version, created_at, updated_at)"
                   " SELECT %s, gen_random_uuid(), gen_random_uuid(), 'Ann', 'Smith' || mod(i, 500),"
                   " 'Rex' || i, 'canine', 'male', 1, now() - i * interval '1 s', now()"
                   " FROM generate_series(1, 20000) i", (tenant,))
        su.execute("ANALYZE read.patients")
        su.execute("LOAD 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on", "client_min_messages = log"):
            su.execute("SET LOCAL " + setting)
        su.execute("SET LOCAL ROLE vetpms_reader")
        su.execute("SELECT set_config('vetpms.tenant_id', %s, true)", (tenant,))
        rows = su.execute("SELECT id FROM read.patient_page_ids('wilsn42', NULL, NULL, NULL,"
                          " NULL, 51)").fetchall()
        su.rollback()
    assert rows == []
    inner = [p for p in plans if "FROM patients p" in p]
    assert inner and "patients_search_trgm" in inner[0], inner[0] if inner else plans


# --- consistency tokens -----------------------------------------------------

def set_offset(stack, partition, next_offset, notify=True):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        su.execute("INSERT INTO read.projection_offsets (topic, partition, next_offset)"
                   " VALUES (%s, %s, %s) ON CONFLICT (topic, partition)"
                   " DO UPDATE SET next_offset = excluded.next_offset", (TOPIC, partition, next_offset))
        if notify:
            su.execute("SELECT pg_notify('vetpms_progress', %s)", (f"{partition}:{next_offset}",))


def test_consistent_with_waits_for_the_notification(stack, reader, tokens):
    set_offset(stack, 1, 10, notify=False)
    # already applied (next_offset 10 > 9): answers at once, from the table
    t0 = time.time()
    assert get(reader, "/v1/staff?consistent_with=1:9", tokens["admin"]).status_code == 200
    assert time.time() - t0 < 1
    result = {}

    def ask():
        t = time.time()
        result["r"] = get(reader, "/v1/staff?consistent_with=1:20", tokens["admin"])
        result["s"] = time.time() - t

    th = threading.Thread(target=ask)
    th.start()
    time.sleep(0.4)
    assert "r" not in result  # still waiting
    set_offset(stack, 1, 21)
    th.join(5)
    assert result["r"].status_code == 200, result["r"].text
    assert 0.3 < result["s"] < WAIT_MS / 1000
    # the header form
    r = get(reader, "/v1/staff", tokens["admin"], headers={"X-Consistency-Token": "1:20"})
    assert r.status_code == 200


def test_consistent_with_times_out_with_504(reader, tokens):
    t0 = time.time()
    r = get(reader, "/v1/staff?consistent_with=2:1000000", tokens["admin"])
    assert r.status_code == 504 and error_code(r) == "CONSISTENCY_TIMEOUT"
    assert WAIT_MS / 1000 - 0.1 <= time.time() - t0 < WAIT_MS / 1000 + 2


@pytest.mark.parametrize("token", ["abc", "1:", ":5", "1:-5", "1:2:3", "99999:1", "1:99999999999999999999"])
def test_malformed_consistency_token_is_400(reader, tokens, token):
    r = get(reader, "/v1/staff", tokens["admin"], params={"consistent_with": token})
    assert r.status_code == 400 and error_code(r) == "VALIDATION_ERROR"


def test_client_hanging_up_while_waiting_does_no_harm(stack, reader, tokens):
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", reader.port))
        s.sendall((f"GET /v1/staff?consistent_with=4:50 HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: Bearer {tokens['admin']}\r\n\r\n").encode())
        time.sleep(0.1)
        s.close()
    time.sleep(0.2)
    set_offset(stack, 4, 51)  # wakes the abandoned requests: their replies go nowhere
    s = socket.create_connection(("127.0.0.1", reader.port))
    s.sendall((f"GET /v1/staff?consistent_with=4:1000 HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {tokens['admin']}\r\n\r\n").encode())
    s.close()
    time.sleep(WAIT_MS / 1000 + 0.5)  # and one that times out after its client left
    assert get(reader, "/v1/staff", tokens["admin"]).status_code == 200
    assert reader.proc.poll() is None


# --- worker threads ---------------------------------------------------------

def thread_requests(d):
    text = d.get("/metrics").text
    return {int(n): int(v) for n, v in
            re.findall(r'^vetpms_reader_thread_requests_total\{thread="(\d+)"\} (\d+)$', text, re.M)}


def test_worker_threads_share_the_port_and_all_serve(stack, reader, tokens):
    d = stack.start_daemon("query-reader", port=free_port(), args=["--threads", "3"],
                           env={"VETPMS_TOPIC": TOPIC, "VETPMS_CONSISTENCY_WAIT_MS": str(WAIT_MS)})
    d.wait_ready()
    assert thread_requests(d) == {0: 0, 1: 0, 2: 0}
    expected = {f"/v1/patients/{BELLA}": lambda b: b["name"] == "Bella",
                f"/v1/clients/{BELLA_CLIENT}": lambda b: b["first_name"] == "Anna",
                "/v1/staff?limit=2": lambda b: len(b["data"]) == 2 and b["next_cursor"],
                f"/v1/patients/{BELLA}/weights": lambda b: len(b["data"]) == 3}
    paths = list(expected)
    barrier = threading.Barrier(20)

    def session(n):
        # 20 keep-alive connections, all open before any sends a second request
        answers = []
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {tokens['vet']}"
            for i in range(10):
                path = paths[(n + i) % len(paths)]
                r = s.get(d.url + path, timeout=10)
                answers.append((path, r.status_code, r.json()))
                if i == 0:
                    barrier.wait(10)
        return answers

    with ThreadPoolExecutor(20) as pool:
        answers = [a for batch in pool.map(session, range(20)) for a in batch]
    assert len(answers) == 200
    for path, status, body in answers:
        assert status == 200 and expected[path](body), (path, status, body)
    served = thread_requests(d)
    assert sum(served.values()) == 200, served
    # one listening socket, one dup per loop: every loop accepts connections
    assert all(served[n] > 0 for n in range(3)), served
    assert d.terminate() == 0
    assert "(3 threads)" in next(line for line in d.log_lines() if '"listening"' in line)


def test_pending_requests_of_every_thread_are_answered_at_sigterm(stack, reader, tokens):
    d = stack.start_daemon("query-reader", port=free_port(), args=["--threads", "4"],
                           env={"VETPMS_TOPIC": TOPIC, "VETPMS_CONSISTENCY_WAIT_MS": "20000"})
    d.wait_ready()
    conns = []
    for _ in range(8):  # waits that cannot be reached, spread over the loops
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall((f"GET /v1/staff?consistent_with=5:1000000 HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: Bearer {tokens['admin']}\r\n\r\n").encode())
        conns.append(s)
    deadline = time.time() + 5
    while sum(thread_requests(d).values()) < 8 and time.time() < deadline:
        time.sleep(0.05)
    assert sum(thread_requests(d).values()) == 8
    t0 = time.time()
    assert d.terminate() == 0
    assert time.time() - t0 < 5
    for s in conns:  # each got its answer before the connection closed
        s.settimeout(2)
        head = s.recv(4096).decode(errors="replace")
        s.close()
        assert head.startswith("HTTP/1.1 503 ") and "Retry-After: 1" in head, head


@pytest.mark.parametrize("threads", ["0", "65", "two"])
def test_reader_refuses_a_bad_thread_count(stack, threads):
    d = stack.start_daemon("query-reader", port=free_port(), args=["--threads", threads])
    assert d.proc.wait(10) == 2
    d = stack.start_daemon("query-reader", port=free_port(), env={"VETPMS_READER_THREADS": threads})
    assert d.proc.wait(10) == 2


# --- configuration ------------------------------------------------------------

def test_reader_refuses_to_start_without_exactly_one_jwt_key(stack):
    d = stack.start_daemon("query-reader", port=free_port(), env={"VETPMS_JWT_HS256_SECRET": ""})
    assert d.proc.wait(10) == 2
    d = stack.start_daemon("query-reader", port=free_port(),
                           env={"VETPMS_JWT_ED25519_PUBLIC_KEY": b64url(bytes(32))})
    assert d.proc.wait(10) == 2
    d = stack.start_daemon("query-reader", port=free_port(), env={"VETPMS_JWT_HS256_SECRET": "short"})
    assert d.proc.wait(10) == 2
