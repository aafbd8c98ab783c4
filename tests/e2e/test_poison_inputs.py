"""Inputs that used to reach the log and poison it (issue 10), end to end on the
real stack: times whose UTC leaves years 1-9999, header values the writer
stores (Idempotency-Key, command_id, the token's sub), timezones PostgreSQL
does not know. Each is refused by input validation (400 VALIDATION_ERROR naming
the field, 401 for a token's sub), nothing is appended and the projector
dead-letters nothing. Also: upper-case ids are made canonical (they name the
existing aggregate and the same idempotent command), and one bearer check
(scheme in any case, one leeway) serves both daemons."""

import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

from stack import free_port, wait_for
from readmodel import query

BASE = (datetime.now(timezone.utc) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


def at(minutes):
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(stack, payload_bytes):
    """An HS256 token over payload_bytes as given (they need not be valid UTF-8)."""
    signing = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64url(payload_bytes)
    sig = hmac.new(stack.jwt_secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64url(sig)}"


def claims_token(stack, **claims):
    body = {"sub": "e2e-user", "roles": ["admin"], "exp": int(time.time()) + 600}
    body.update(claims)
    return forge(stack, json.dumps(body).encode())


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def post(self, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return requests.post(self.url + path, json=body, headers=h, timeout=30)


def raw_post(url, path, headers, body):
    """A POST whose header values are bytes sent as they are (requests would
    refuse or re-encode them)."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    data = json.dumps(body).encode()
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def fields_of(r):
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.text
    error = r.json()["error"]
    return error["code"], {d["field"] for d in error.get("details", [])}


def assert_validation(r, field):
    assert r.status_code == 400, r.text
    code, fields = fields_of(r)
    assert code == "VALIDATION_ERROR" and field in fields, r.text


# A topic and read schema of their own: this module appends many events (every
# zone PostgreSQL lists is a tenant), and other modules place fixtures at fixed
# offsets of the shared topic's read model.
TOPIC, DLQ_TOPIC, SCHEMA = "vetpms.e2e.poison", "vetpms.e2e.poison.dlq", "read_poison"


@pytest.fixture(scope="module")
def daemons(stack):
    stack.vetctl("topics", "create", "--partitions", str(stack.partitions), "--topic", TOPIC,
                 "--dlq-topic", DLQ_TOPIC)
    env = {"VETPMS_TOPIC": TOPIC, "VETPMS_DLQ_TOPIC": DLQ_TOPIC, "VETPMS_READ_SCHEMA": SCHEMA,
           "VETPMS_PROJECTOR_GROUP": "e2e-poison"}
    migrate = stack.start_daemon("projector", port=free_port())  # the reader's schema
    migrate.wait_ready(90)
    migrate.terminate()
    ds = {"projector": stack.start_daemon("projector", port=free_port(), env=env),
          "reader": stack.start_daemon("query-reader", port=free_port()),
          "writer": stack.start_daemon("cmd-writer", port=free_port(), env=env)}
    for d in ds.values():
        d.wait_ready(90)
    yield ds
    for d in ds.values():
        d.terminate()


class Clinic:
    """A tenant with a vet (token sub = the vet's id) who has availability, a
    client and a patient."""

    def __init__(self, stack, url, tz="UTC"):
        self.stack, self.url = stack, url
        r = Api(url, stack.token("platform-admin")).post(
            "/v1/tenants", {"name": "Poison", "timezone": tz, "currency": "EUR"})
        assert r.status_code == 201, r.text
        self.tid = r.json()["id"]
        self.admin = self.as_(["admin", "reception"])
        r = self.admin.post("/v1/staff", {"name": "Dr V", "role": "veterinarian"})
        assert r.status_code == 201, r.text
        self.vet_id = r.json()["id"]
        self.vet = self.as_("vet", sub=self.vet_id)
        r = self.admin.post(f"/v1/staff/{self.vet_id}/availability",
                            {"blocks": [{"start": at(0), "end": at(24 * 60)}]})
        assert r.status_code == 200, r.text
        self.client_id = self.new_client()
        self.patient_id = self.new_patient(self.client_id)

    def as_(self, roles, sub="e2e-user"):
        return Api(self.url, self.stack.token(roles, tenant=self.tid, sub=sub))

    def new_client(self, **extra):
        r = self.admin.post("/v1/clients", {"first_name": "Ann", "last_name": "Lee", **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def new_patient(self, client_id, **extra):
        r = self.admin.post("/v1/patients", {"client_id": client_id, "name": "Rex",
                                             "species": "canine", "sex": "male", **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def event_count(self):
        return query(self.stack, f"SELECT count(*) FROM {SCHEMA}.event_log WHERE tenant_id = %s",
                     (self.tid,))[0][0]

    def settle(self):
        """Appends a marker and waits for the projector to apply it: a tenant's
        events share one partition, so everything before it is applied too."""
        marker = self.new_client()
        wait_for(lambda: query(self.stack, f"SELECT 1 FROM {SCHEMA}.event_log WHERE tenant_id = %s "
                               "AND aggregate_id = %s", (self.tid, marker)),
                 what="the marker event in the read model's event_log")
        return self.event_count()

    def dead_letters(self):
        return query(self.stack, f"SELECT error FROM {SCHEMA}.dead_letters WHERE tenant_id = %s",
                     (self.tid,))


@pytest.fixture(scope="module")
def clinic(stack, daemons):
    return Clinic(stack, daemons["writer"].url)


@pytest.fixture
def nothing_appended(stack, clinic):
    """The test's refusals append nothing and dead-letter nothing: the tenant's
    event count moves by the one marker of settle() only."""
    before = clinic.settle()
    all_dead_before = query(stack, f"SELECT count(*) FROM {SCHEMA}.dead_letters")[0][0]
    yield
    assert clinic.settle() == before + 1
    assert clinic.dead_letters() == []
    assert query(stack, f"SELECT count(*) FROM {SCHEMA}.dead_letters")[0][0] == all_dead_before


# --- 1. times outside years 1-9999 once in UTC ------------------------------

LOW = "0001-01-01T00:00:00+00:01"    # 0000-12-31T23:59Z
HIGH = "9999-12-31T23:59:59-00:01"   # 10000-01-01T00:00:59Z


@pytest.mark.parametrize("when", [LOW, HIGH])
def test_times_whose_utc_leaves_years_1_to_9999_are_400_naming_the_field(clinic, nothing_appended, when):
    c = clinic
    r = c.vet.post(f"/v1/patients/{c.patient_id}/weights",
                   {"value": 5, "unit": "kg", "measured_at": when})
    assert_validation(r, "measured_at")
    assert "0001-9999" in json.dumps(r.json()), r.text  # the issue says why
    r = c.admin.post("/v1/appointments", {"patient_id": c.patient_id, "vet_id": c.vet_id,
                                          "start": when, "end": when, "type": "consultation"})
    assert_validation(r, "start")
    assert_validation(r, "end")
    r = c.admin.post("/v1/appointments", {"patient_id": c.patient_id, "vet_id": c.vet_id,
                                          "start": at(60), "end": when, "type": "consultation"})
    assert_validation(r, "end")
    r = c.admin.post(f"/v1/appointments/{uuid.uuid4()}/reschedule",
                     {"start": when, "end": at(90)})
    assert_validation(r, "start")
    r = c.admin.post(f"/v1/staff/{c.vet_id}/availability",
                     {"blocks": [{"start": at(0), "end": at(30)}, {"start": when, "end": at(90)}]})
    assert_validation(r, "blocks[1].start")
    r = c.admin.post(f"/v1/staff/{c.vet_id}/availability/withdraw", {"start": at(0), "end": when})
    assert_validation(r, "end")


# --- 2. header values the writer stores ------------------------------------

@pytest.mark.parametrize("key", [b"\xff\xfe", b"a\x01b", b"a\x7fb", b"a\xc2\x85b", b"\xc0\xaf"])
def test_idempotency_key_not_utf8_text_is_400(clinic, nothing_appended, key):
    status, body = raw_post(clinic.url, "/v1/clients",
                            {"Authorization": f"Bearer {clinic.admin.token}",
                             "Idempotency-Key": key},
                            {"first_name": "Key", "last_name": "Bytes"})
    assert status == 400, body
    error = json.loads(body)["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in error["details"]] == ["Idempotency-Key"], body


@pytest.mark.parametrize("command_id", ["a\u0001b", "\u007f", "x\u0085", "tab\there"])
def test_command_id_with_control_characters_is_400(clinic, nothing_appended, command_id):
    r = clinic.admin.post("/v1/clients", {"first_name": "Cmd", "last_name": "Id",
                                          "command_id": command_id})
    assert_validation(r, "command_id")


def bad_subs():
    return {
        "control": json.dumps("a\u0001b").encode(),
        "DEL": json.dumps("a\u007f").encode(),
        "raw 0xff": b'"a\xffb"',
        "lone surrogate": b'"\\ud800"',
        "129 bytes": json.dumps("x" * 127 + "\u00e9").encode(),
        "empty": b'""',
    }


@pytest.mark.parametrize("name", list(bad_subs()))
def test_a_sub_that_cannot_be_the_actor_is_401_in_both_daemons(stack, daemons, clinic,
                                                              nothing_appended, name):
    sub = bad_subs()[name]
    payload = (b'{"sub":' + sub + b',"tid":"' + clinic.tid.encode() +
               b'","roles":["admin"],"exp":' + str(int(time.time()) + 600).encode() + b"}")
    token = forge(stack, payload)
    r = Api(clinic.url, token).post("/v1/clients", {"first_name": "S", "last_name": "T"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED", r.text
    r = requests.get(daemons["reader"].url + "/v1/clients",
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401 and r.headers.get("WWW-Authenticate") == "Bearer", r.text


def test_a_128_byte_multibyte_sub_is_stored_whole(stack, clinic):
    sub = "\u00e9" * 64  # 128 bytes: the limit, cut nowhere
    r = Api(clinic.url, claims_token(stack, sub=sub, tid=clinic.tid)).post(
        "/v1/clients", {"first_name": "Long", "last_name": "Sub"})
    assert r.status_code == 201, r.text
    clinic.settle()
    actor = query(stack, f"SELECT actor FROM {SCHEMA}.event_log WHERE tenant_id = %s AND "
                  "aggregate_id = %s", (clinic.tid, r.json()["id"]))
    assert actor == [(sub,)]


# --- 4. upper-case ids -----------------------------------------------------

def event_data(stack, tid, aggregate_id, type_):
    rows = wait_for(lambda: query(stack, f"SELECT envelope FROM {SCHEMA}.event_log WHERE tenant_id = %s "
                                  "AND aggregate_id = %s AND type = %s", (tid, aggregate_id, type_)),
                    what=f"{type_} of {aggregate_id} in the read model's event_log")
    return rows[-1][0]["data"]


def test_upper_case_ids_name_the_existing_aggregates(stack, clinic):
    c = clinic
    r = c.admin.post("/v1/patients", {"client_id": c.client_id.upper(), "name": "Up",
                                      "species": "canine", "sex": "male"})
    assert r.status_code == 201, r.text
    patient = r.json()["id"]
    assert event_data(stack, c.tid, patient, "PatientRegistered")["client_id"] == c.client_id
    # path {id} and the body's own id
    r = c.vet.post(f"/v1/patients/{patient.upper()}/weights", {"value": 4, "unit": "kg"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["id"] == patient
    chosen = str(uuid.uuid4())
    r = c.admin.post("/v1/clients", {"id": chosen.upper(), "first_name": "Id", "last_name": "Up"})
    assert r.status_code == 201 and r.json()["id"] == chosen, r.text
    assert r.headers["Location"].endswith("/" + chosen)
    # transfer to an upper-case client id
    r = c.admin.post(f"/v1/patients/{patient}/transfer", {"client_id": chosen.upper()})
    assert r.status_code == 200, r.text
    assert event_data(stack, c.tid, patient, "PatientTransferred")["to_client_id"] == chosen
    # scheduling
    r = c.admin.post("/v1/appointments", {"patient_id": patient.upper(), "vet_id": c.vet_id.upper(),
                                          "start": at(120), "end": at(150),
                                          "type": "consultation"})
    assert r.status_code == 201, r.text
    data = event_data(stack, c.tid, r.json()["id"], "AppointmentScheduled")
    assert (data["patient_id"], data["vet_id"]) == (patient, c.vet_id)
    assert c.dead_letters() == []


def test_upper_and_lower_case_ids_are_one_idempotent_command(clinic):
    c = clinic
    key = f"case-{uuid.uuid4()}"
    body = {"client_id": c.client_id.upper(), "name": "Twice", "species": "feline", "sex": "female"}
    first = c.admin.post("/v1/patients", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    body["client_id"] = c.client_id
    again = c.admin.post("/v1/patients", body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]


def test_an_upper_case_tid_claim_is_the_tenant(stack, clinic):
    token = claims_token(stack, tid=clinic.tid.upper(), roles=["admin"])
    r = Api(clinic.url, token).post("/v1/clients", {"first_name": "Tid", "last_name": "Up"})
    assert r.status_code == 201, r.text
    clinic.settle()
    assert query(stack, f"SELECT tenant_id::text FROM {SCHEMA}.event_log WHERE aggregate_id = %s",
                 (r.json()["id"],)) == [(clinic.tid,)]


# --- 5. one bearer check for both daemons ------------------------------------

def test_bearer_scheme_in_any_case_and_one_leeway_in_both_daemons(stack, daemons, clinic):
    token = stack.token(["admin"], tenant=clinic.tid)
    expired = stack.token(["admin"], tenant=clinic.tid, ttl=-10)
    writer, reader = daemons["writer"].url, daemons["reader"].url

    def write(header):
        h = {} if header is None else {"Authorization": header}
        return requests.post(writer + "/v1/clients", json={"first_name": "A", "last_name": "B"},
                             headers=h, timeout=30)

    def read(header):
        h = {} if header is None else {"Authorization": header}
        return requests.get(reader + "/v1/clients", headers=h, timeout=30)

    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER   {token}"):
        assert write(header).status_code == 201, header
        assert read(header).status_code == 200, header
    for header in (None, "Bearer", "Bearer ", f"Bearer{token}", f"Basic {token}",
                   f"Bearer {expired}", f"Bearer {token}x"):
        w, r = write(header), read(header)
        assert w.status_code == 401 and w.json()["error"]["code"] == "UNAUTHENTICATED", header
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED", header
        assert r.headers.get("WWW-Authenticate") == "Bearer", header
        assert w.json()["error"]["message"] == r.json()["error"]["message"], header


# --- 3. timezones ------------------------------------------------------------

TRICKY_ZONES = ["zone.tab", "zone1970.tab", "leapseconds", "leap-seconds.list", "iso3166.tab",
                "tzdata.zi", "right/UTC", "right/Europe/London", "posixrules", "Factory", "UTC",
                "Etc/GMT+5", "EST5EDT", "Europe/London", "America/Argentina/Buenos_Aires",
                "posix/Europe/London", "localtime", "../etc/passwd", "Europe//London",
                "Europe/London/", "/Europe/London", "Europe", "europe/london", "", "SECURITY",
                "Europe/Nowhere", "A" * 65]
HOST_FILES = {"localtime", "posixrules"}  # TZif files, but no zone (refused on purpose)
NAME_RULE = re.compile(r"^[A-Za-z0-9_+/-]{1,64}$")


def pg_accepts(conn, tz):
    try:
        conn.execute("SELECT now() AT TIME ZONE %s", (tz,))
        return True
    except psycopg.Error:
        return False


def provision(stack, url, tz, token=None):
    """token: a platform-admin token to reuse (minting one runs vetctl, and
    the zone test provisions some 600 tenants)."""
    r = Api(url, token or stack.token("platform-admin")).post(
        "/v1/tenants", {"name": "TZ", "timezone": tz, "currency": "EUR"})
    return tz, r


def test_every_timezone_the_writer_accepts_postgresql_accepts(stack, daemons):
    url = daemons["writer"].url
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        pg_names = [row[0] for row in conn.execute("SELECT name FROM pg_timezone_names")]
    assert "Europe/London" in pg_names
    names = list(dict.fromkeys(TRICKY_ZONES + pg_names))
    token = stack.token("platform-admin")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda tz: provision(stack, url, tz, token), names))
    accepted = {}
    refused_but_pg_lists = []
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        for tz, r in answers:
            if r.status_code == 201:
                assert pg_accepts(conn, tz), f"the writer accepted {tz!r}, PostgreSQL does not"
                accepted[tz] = r.json()["id"]
                continue
            assert r.status_code == 400, (tz, r.text)
            code, fields = fields_of(r)
            assert code == "VALIDATION_ERROR" and "timezone" in fields, (tz, r.text)
            if tz in pg_names and NAME_RULE.match(tz) and tz not in HOST_FILES:
                refused_but_pg_lists.append(tz)
    # the check is no blanket refusal: PostgreSQL's own list is accepted
    assert refused_but_pg_lists == []
    for tz in ("zone.tab", "leapseconds", "iso3166.tab", "tzdata.zi", "right/UTC",
               "right/Europe/London", "localtime", "posixrules", "../etc/passwd",
               "Europe//London", "", "SECURITY", "A" * 65):
        assert tz not in accepted, tz
    for tz in ("UTC", "Etc/GMT+5", "EST5EDT", "Europe/London", "America/Argentina/Buenos_Aires"):
        assert tz in accepted, tz
    # every accepted tenant is projected, none dead-lettered
    ids = list(accepted.values())
    wait_for(lambda: query(stack, f"SELECT count(*) FROM {SCHEMA}.tenants WHERE id = ANY(%s::uuid[])",
                           (ids,))[0][0] == len(ids), timeout=120,
             what="every accepted tenant in the read model")
    assert query(stack, f"SELECT tenant_id, error FROM {SCHEMA}.dead_letters "
                 "WHERE tenant_id = ANY(%s::uuid[])", (ids,)) == []


@pytest.mark.parametrize("tz", ["Factory", "Etc/GMT+5", "EST5EDT", "posix/Europe/London",
                                "America/Argentina/Buenos_Aires"])
def test_appointments_of_tenants_in_unusual_accepted_zones_are_projected(stack, daemons, tz):
    _, r = provision(stack, daemons["writer"].url, tz)
    assert r.status_code == 201, r.text
    c = Clinic.__new__(Clinic)
    c.stack, c.url, c.tid = stack, daemons["writer"].url, r.json()["id"]
    c.admin = c.as_(["admin", "reception"])
    r = c.admin.post("/v1/staff", {"name": "Dr V", "role": "veterinarian"})
    assert r.status_code == 201, r.text
    c.vet_id = r.json()["id"]
    r = c.admin.post(f"/v1/staff/{c.vet_id}/availability",
                     {"blocks": [{"start": at(0), "end": at(600)}]})
    assert r.status_code == 200, r.text
    patient = c.new_patient(c.new_client())
    r = c.admin.post("/v1/appointments", {"patient_id": patient, "vet_id": c.vet_id,
                                          "start": at(60), "end": at(90), "type": "consultation"})
    assert r.status_code == 201, r.text
    c.settle()
    assert c.dead_letters() == []
    assert query(stack, f"SELECT count(*) FROM {SCHEMA}.appointments WHERE tenant_id = %s",
                 (c.tid,)) == [(1,)]
