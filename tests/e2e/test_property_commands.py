"""A property test of every cmd-writer command: for each command of every table
(`cmd-writer --list-commands`, so a new command is covered without editing this
file) it sends random valid and boundary commands — times at years 0001 and
9999 with ±23:59 offsets, strings of exactly their maximal length in multi-byte
UTF-8 and one byte over, invalid UTF-8 and control characters in body strings,
in the Idempotency-Key, in X-Request-Id and in the token's sub, upper-case ids,
wrong types, unknown fields, replays — and asserts that every answer is either
a 4xx with the contract's error body that appended nothing, or a 2xx whose
event the projector applied without a dead letter, and that no daemon died.

Seeded: the seed is printed; VETPMS_PROPERTY_SEED=N replays a run and
VETPMS_PROPERTY_EXAMPLES=N (default 40 per command) makes a longer one
(`make property`)."""

import base64
import collections
import concurrent.futures
import hashlib
import hmac
import json
import os
import random
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests

from kafka_log import events as kafka_events
from stack import BIN_DIR, free_port, wait_for

EXAMPLES = int(os.environ.get("VETPMS_PROPERTY_EXAMPLES", "40"))
SEED = int(os.environ.get("VETPMS_PROPERTY_SEED", str(random.SystemRandom().randrange(1 << 32))))
WORKERS = 4  # concurrent requests: the writer's group commit batches them
TOPIC = "vetpms.events"

# The times of the brief: outside years 1-9999 in UTC (first and third), or
# just inside (second and fourth); then other edges and malformed ones.
EDGE_TIMES = [
    "0001-01-01T00:00:00+00:01", "0001-01-01T23:59:00+23:59",
    "9999-12-31T23:59:59-00:01", "9999-12-31T00:00:00-23:59",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999Z",
    "0000-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "9999-12-31T23:59:60Z",
    "2026-02-30T10:00:00Z", "2026-01-01T10:00:00", "2026-01-01T10:00:00+24:00",
    "2026-01-01t10:00:00z", "2026-01-01T10:00:00.123456789+05:30", "2026-01-01T10:00:00-00:00",
    "2026-01-01 10:00:00Z", "",
]
EDGE_DATES = ["0001-01-01", "9999-12-31", "2020-02-29", "2021-02-29", "0000-01-01",
              "2026-13-01", "99999-01-01", "2026-1-1", ""]
MULTIBYTE = ["é", "ß", "漢", "字", "😀", "🐕", "\u00a0", "ǅ"]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
            b"\xe2\x82", b"\x80"]
TIMEZONES = ["Europe/London", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu",
             "UTC", "Etc/GMT+12", "America/Argentina/Buenos_Aires"]
BAD_TIMEZONES = ["Mars/Olympus", "../../etc/passwd", "europe/london", "/etc/localtime",
                 "Europe/London\u0001", "Europe", "posixrules/../UTC"]
CURRENCIES = ["GBP", "EUR", "JPY", "NZD"]
BAD_CURRENCIES = ["gbp", "EU", "EURO", "€"]
ROLES = ["platform-admin", "admin", "vet", "nurse", "reception", "analyst", "ops"]
# The status an appointment command needs to succeed.
APPOINTMENT_NEEDS = {"RescheduleAppointment": {"scheduled"}, "CheckInAppointment": {"scheduled"},
                     "StartAppointment": {"checked_in"}, "CompleteAppointment": {"in_progress"},
                     "CancelAppointment": {"scheduled", "checked_in"},
                     "MarkNoShow": {"scheduled"}}
# The status an invoice command needs to succeed (docs/billing.md).
INVOICE_NEEDS = {"AddInvoiceLine": {"draft"}, "RemoveInvoiceLine": {"draft"},
                 "IssueInvoice": {"draft"}, "RecordPayment": {"issued", "partially_paid"},
                 "RefundPayment": {"partially_paid", "paid"}, "VoidInvoice": {"draft", "issued"}}
APPOINTMENT_AFTER = {"CheckInAppointment": "checked_in", "StartAppointment": "in_progress",
                     "CompleteAppointment": "completed", "CancelAppointment": "canceled",
                     "MarkNoShow": "no_show"}


class Raw:
    """JSON text put into the body as is (bytes): invalid UTF-8, 1e400, \\u0000."""

    def __init__(self, text):
        self.text = text


def encode(value, ascii_only=False):
    """value as JSON bytes; Raw parts go in untouched."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return b"{" + b",".join(json.dumps(k).encode() + b":" + encode(v, ascii_only)
                                for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v, ascii_only) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign(secret, payload):
    """An HS256 JWT over payload (bytes, used as given: may hold invalid UTF-8)."""
    head = b64url(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64url(payload)
    mac = hmac.new(secret.encode(), head, hashlib.sha256).digest()
    return (head + b"." + b64url(mac)).decode()


class Pools:
    """The aggregates of the tenant, as far as the answers tell: what a command's
    ids are drawn from, preferring those in a state where it can succeed."""

    def __init__(self):
        self.staff = {}         # id -> {"role", "active"}
        self.clients = {}       # id -> {"active"}
        self.patients = {}      # id -> {"client", "alive"}
        self.appointments = {}  # id -> {"status"}
        self.records = {}       # medical record id -> {"status": "open" | "signed"}
        self.diagnoses = {}     # record id -> [diagnosis ids] (read from the log at set-up)
        self.treatments = {}    # record id -> [treatment ids]
        self.items = {}         # inventory item id -> {"active"}
        self.batches = {}       # item id -> [batch numbers received]
        self.prescriptions = []  # prescription ids (read from the log at set-up)
        self.tenants = []       # the tenant's own id, for its settings
        self.invoices = {}      # id -> {"status", "lines": [line ids], "payments": [ids]}
        self.core = set()       # made by the set-up: rarely deactivated or killed
        self.avail_vet = None   # the vet with published blocks on days 1-60

    def vets(self, active=True):
        return [i for i, s in self.staff.items()
                if s["role"] == "veterinarian" and (s["active"] or not active)]


class Request:
    def __init__(self, index, cmd, method, path, body, headers, must_refuse, why):
        self.index, self.cmd, self.method, self.path = index, cmd, method, path
        self.body, self.headers, self.must_refuse, self.why = body, headers, must_refuse, why
        self.tenant = None
        self.key_raced = False

    def repro(self):
        hdrs = {k: (v if isinstance(v, str) else repr(v)) for k, v in self.headers.items()
                if k != "Authorization"}
        auth = self.headers.get("Authorization", "")
        try:
            payload = base64.urlsafe_b64decode(auth.split(".")[1] + "==")
        except (IndexError, ValueError):
            payload = b""
        return (f"#{self.index} {self.cmd}: {self.method} {self.path} headers={hdrs} "
                f"token-claims={payload!r} body={self.body[:600]!r}")


class Generator:
    def __init__(self, rng, commands, pools, secret, tid, now):
        self.rng, self.commands, self.pools = rng, commands, pools
        self.secret, self.tid, self.now = secret, tid, now
        self.sent_keys = []  # (key, Request) of keyed requests, for replays and reuse
        self.answered_keys = 0  # sent_keys[:answered_keys] have their answer
        self.index = 0
        self.clean = False  # this request: boundary values only, nothing the contract refuses

    # --- values ---------------------------------------------------------
    def chance(self, p):
        return self.rng.random() < p

    def ascii_text(self, n):
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-'.")
                       for _ in range(n)) or "x"

    def multibyte_text(self, max_bytes):
        out, size = [], 0
        target = self.rng.randint(1, max(1, max_bytes))
        while True:
            ch = self.rng.choice(MULTIBYTE + ["a", "b", " "])
            if size + len(ch.encode()) > target:
                break
            out.append(ch)
            size += len(ch.encode())
        return "".join(out) or ("é" if max_bytes >= 2 else "a")

    def exact_text(self, max_bytes):
        """Exactly max_bytes bytes of UTF-8, multi-byte where it fits."""
        out, size = [], 0
        while size < max_bytes:
            ch = self.rng.choice(MULTIBYTE)
            if size + len(ch.encode()) > max_bytes:
                ch = "a"
            out.append(ch)
            size += len(ch.encode())
        return "".join(out)

    def string(self, f, bad):
        """A value for a string field; bad(reason) marks the request as one the
        contract refuses."""
        max_len, min_len = f.get("max_len") or 0, f.get("min_len") or 0
        name = f["name"]
        if f.get("enum"):
            if self.clean or self.chance(0.9):
                return self.rng.choice(f["enum"])
            bad(f"{name}: not one of the enum")
            return self.rng.choice([f["enum"][0].upper(), "nope", " " + f["enum"][0], ""])
        special = self.special_string(name)
        if special is not None and self.chance(0.8):  # a field with rules of its own
            return special
        roll = self.rng.random() * (0.70 if self.clean else 1)
        if roll < 0.40:  # sensible
            return self.ascii_text(self.rng.randint(max(1, min_len), min(20, max_len or 20)))
        if roll < 0.55:
            return self.multibyte_text(max_len or 300)
        if roll < 0.70 and max_len:
            return self.exact_text(max_len)
        if roll < 0.75 and max_len:
            bad(f"{name}: {max_len + 1} bytes")
            return "a" * (max_len + 1)
        if roll < 0.80:
            if min_len:
                bad(f"{name}: empty")
            return ""
        if roll < 0.87:  # control characters, escaped (valid JSON)
            return ("a\u0001b\u001f\u007fc\t" + str(self.index))[: max_len or 20]
        if roll < 0.95:
            bad(f"{name}: invalid UTF-8")
            return Raw(b'"x' + self.rng.choice(BAD_UTF8) + b'y"')
        bad(f"{name}: \\u0000 or a lone surrogate")
        return Raw(self.rng.choice([b'"a\\u0000b"', b'"\\udc00"', b'"\\ud800x"']))

    def special_string(self, name):
        r = self.rng
        if name == "timezone":
            return r.choice(TIMEZONES if self.chance(0.85) else BAD_TIMEZONES)
        if name == "currency":
            return r.choice(CURRENCIES if self.chance(0.85) else BAD_CURRENCIES)
        if name == "email":
            return r.choice(["ann@example.org", "é@漢字.example", "a@b"])
        if name == "microchip":
            return r.choice(["".join(r.choice("0123456789") for _ in range(15)),
                             "".join(r.choice("abcdef0123456789") for _ in range(r.choice((9, 10)))),
                             "12345", "ÄÖÜ123456"])
        return None

    def iso(self, dt, offset_minutes=None):
        """dt (aware) as RFC 3339 with an offset of up to ±23:59."""
        if offset_minutes is None:
            offset_minutes = self.rng.choice([0, 0, 1, -1, 330, -570, 840, -660, 1439, -1439])
        local = dt + timedelta(minutes=offset_minutes)
        if offset_minutes == 0 and self.chance(0.5):
            suffix = "Z"
        else:
            sign_ = "+" if offset_minutes >= 0 else "-"
            suffix = f"{sign_}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
        frac = f".{self.rng.randrange(10**6):06d}" if self.chance(0.1) else ""
        return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + suffix

    def future_slot(self):
        day = self.rng.randint(1, 58)
        start = (self.now + timedelta(days=day)).replace(
            hour=self.rng.randint(3, 19), minute=self.rng.choice((0, 15, 30, 45)),
            second=0, microsecond=0)
        return start, start + timedelta(minutes=self.rng.choice((15, 30, 45, 60, 120)))

    def interval(self, bad):
        """(start, end) text: mostly a coherent near-future slot."""
        roll = self.rng.random() * (0.80 if self.clean else 1)
        if roll < 0.65:
            s, e = self.future_slot()
            return self.iso(s), self.iso(e)
        if roll < 0.80:  # valid at the far ends of the range (in UTC)
            return self.rng.choice([
                ("9999-12-31T00:00:00-23:59", "9999-12-31T23:59:59Z"),
                ("9999-12-31T10:00:00+14:00", "9999-12-31T10:30:00+00:00"),
                ("0001-01-01T23:59:00+23:59", "0001-01-01T06:00:00Z"),
                ("0001-01-01T23:59:00+23:59", "9999-12-31T00:00:00-23:59"),
            ])
        bad_pair = self.rng.choice(EDGE_TIMES), self.rng.choice(EDGE_TIMES)
        return bad_pair

    def time_value(self, f, bad):
        if self.clean or self.chance(0.6):
            return self.iso(self.now - timedelta(minutes=self.rng.randint(0, 10**6)))
        return self.rng.choice(EDGE_TIMES)

    def date_value(self, f, bad):
        if self.clean or self.chance(0.5):
            return (self.now.date() - timedelta(days=self.rng.randint(0, 20000))).isoformat()
        return self.rng.choice(EDGE_DATES)

    def number_value(self, f, bad):
        if "min" in f:
            lo, hi = f["min"], f["max"]
            return self.rng.choice([lo, hi, lo - 1, hi + 1, (lo + hi) // 2])
        roll = self.rng.random()
        if self.clean or roll < 0.6:
            return round(self.rng.uniform(0.01, 80), self.rng.choice((0, 1, 3)))
        return self.rng.choice([0, -1, 1e-9, 5000, 5000.0001, 11023.11, 2**53, -2**53,
                                Raw(b"1e400"), Raw(b"-0"), 1.7976931348623157e308, 0.0005])

    def uuid_value(self, f, bad, path_pool=None):
        """An id for body field f, drawn from the pool its name names."""
        name, p = f["name"], self.pools
        if name == "id":
            pool = {"patients": p.patients, "clients": p.clients, "staff": p.staff,
                    "appointments": p.appointments, "invoices": p.invoices}.get(path_pool, {})
            value = str(uuid.uuid4()) if not pool or self.chance(0.9) \
                else self.rng.choice(list(pool))
        elif name == "client_id":
            live = [i for i, c in p.clients.items() if c["active"]]
            value = self.rng.choice(live or list(p.clients) or [str(uuid.uuid4())])
        elif name == "patient_id":
            live = [i for i, x in p.patients.items() if x["alive"]]
            value = self.rng.choice(live or list(p.patients) or [str(uuid.uuid4())])
        elif name == "vet_id":
            value = self.rng.choice(p.vets() or [str(uuid.uuid4())])
        elif name == "appointment_id":
            value = self.rng.choice(list(p.appointments) or [str(uuid.uuid4())])
        elif name == "item_id":
            value = self.rng.choice(list(p.items) or [str(uuid.uuid4())])
        elif name == "invoice_id":
            value = self.rng.choice(list(p.invoices) or [str(uuid.uuid4())])
        elif name == "prescription_id":
            value = self.rng.choice(p.prescriptions or [str(uuid.uuid4())])
        elif name == "witness_id":
            clinical = [i for i, st in p.staff.items() if st["role"] in ("veterinarian", "nurse")]
            value = self.rng.choice(clinical or [str(uuid.uuid4())])
        else:
            value = str(uuid.uuid4())
        roll = self.rng.random() * (0.19 if self.clean else 1)
        if roll < 0.15:
            return value.upper()
        if roll < 0.19:
            return str(uuid.uuid4())  # names nothing
        if roll < 0.23:
            bad(f"{name}: not a UUID")
            return self.rng.choice([value.replace("-", ""), "{" + value + "}", value[:-1],
                                    value + " ", "not-a-uuid"])
        return value

    def value(self, f, bad, path_pool=None):
        t = f["type"]
        if t == "string":
            return self.string(f, bad)
        if t == "uuid":
            return self.uuid_value(f, bad, path_pool)
        if t == "time":
            return self.time_value(f, bad)
        if t == "date":
            return self.date_value(f, bad)
        if t in ("int", "number"):
            return self.number_value(f, bad)
        if t == "bool":
            return self.rng.choice([True, False])
        if t == "object":
            return self.body(f.get("fields") or [], bad, nested=True)
        if t == "array":
            return self.array(f, bad)
        raise AssertionError(f"no generator for field type {t}")

    def array(self, f, bad):
        max_len = f.get("max_len") or 5
        roll = self.rng.random() * (0.05 if self.clean else 1)
        n = self.rng.randint(max(1, f.get("min_len") or 0), 3)
        if roll < 0.05:
            n = max_len
        elif roll < 0.08:
            n = max_len + 1
            bad(f"{f['name']}: {n} items")
        elif roll < 0.11:
            n = 0
            if f.get("min_len"):
                bad(f"{f['name']}: empty")
        return [self.body(f.get("fields") or [], bad, nested=True) for _ in range(n)]

    def body(self, fields, bad, nested=False, path_pool=None):
        names = {f["name"] for f in fields}
        out = {}
        pair = self.interval(bad) if {"start", "end"} <= names else None
        for f in fields:
            if not f["required"] and not self.chance(0.5):
                continue
            if f["required"] and not self.clean and self.chance(0.03):
                bad(f"{f['name']}: missing")
                continue
            if pair and f["name"] in ("start", "end"):
                out[f["name"]] = pair[0] if f["name"] == "start" else pair[1]
            else:
                out[f["name"]] = self.value(f, bad, path_pool)
        if fields and not self.clean and self.chance(0.04):  # a wrong type
            f = self.rng.choice(fields)
            wrong = {"string": 7, "uuid": 7, "time": 1700000000, "date": 20200101,
                     "int": "7", "number": "7.5", "bool": "true", "object": [], "array": {}}
            out[f["name"]] = wrong[f["type"]] if self.chance(0.7) or not f["required"] else None
            bad(f"{f['name']}: wrong type")
        if not nested and not self.clean and self.chance(0.03):
            out[self.rng.choice(["unknown_field", "ID", "Name", "tenant_id"])] = 1
            bad("an unknown field")
        return out

    # --- requests -------------------------------------------------------
    def token(self, role, sub, tid=True, bad=None):
        now = int(time.time())
        claims = {"sub": sub, "roles": [role], "iat": now, "exp": now + 3600}
        if tid:
            claims["tid"] = self.tid
        payload = encode(claims)
        roll = self.rng.random()
        if roll < 0.03:  # the sub's bytes not UTF-8
            payload = payload.replace(encode(sub), b'"sub-' + self.rng.choice(BAD_UTF8) + b'"')
        elif roll < 0.06:
            payload = payload.replace(encode(sub), encode(self.rng.choice(
                ["vét-漢-😀", "s\u0001ub", "x" * 128, "x" * 129, "é" * 64, "", sub.upper()])))
        return sign(self.secret, payload)

    def path_target(self, cmd, bad):
        """The {id} of the path, from the pool of the route's aggregate."""
        p, name = self.pools, cmd["name"]
        segment = cmd["pattern"].split("/")[2]
        pool_name = {"staff": "staff", "clients": "clients", "patients": "patients",
                     "appointments": "appointments", "medical-records": "records",
                     "tenants": "tenants", "inventory": "items",
                     "invoices": "invoices"}[segment]
        pool = getattr(p, pool_name)
        ids = list(pool)
        if segment == "medical-records":
            # addenda need a locked record, every other change an open one
            want = "signed" if name == "AddAddendum" else "open"
            fit = [i for i, r in pool.items() if r["status"] == want]
            ids = fit if fit and self.chance(0.85) else ids
        elif segment == "staff" and "availability" in cmd["pattern"]:
            ids = p.vets() if self.chance(0.85) else ids
        elif name in APPOINTMENT_NEEDS:
            fit = [i for i, a in pool.items() if a["status"] in APPOINTMENT_NEEDS[name]]
            ids = fit if fit and self.chance(0.85) else ids
        elif segment == "invoices" and name in INVOICE_NEEDS:
            fit = [i for i, x in pool.items() if x["status"] in INVOICE_NEEDS[name]
                   and (x["lines"] or name != "RemoveInvoiceLine")
                   and (x["payments"] or name != "RefundPayment")]
            ids = fit if fit and self.chance(0.85) else ids
        elif segment == "inventory":
            live = [i for i, x in pool.items() if x["active"]]
            ids = live if live and self.chance(0.85) else ids
        elif segment == "patients":
            alive = [i for i, x in pool.items() if x["alive"]]
            ids = alive if alive and self.chance(0.85) else ids
        if name in ("DeactivateStaff", "DeactivateClient", "EraseClient", "RecordPatientDeath",
                    "DeactivateInventoryItem") and \
                self.chance(0.9):
            ids = [i for i in ids if i not in p.core] or ids
        target = self.rng.choice(ids) if ids else str(uuid.uuid4())
        roll = self.rng.random()
        if roll < 0.2:
            target = target.upper()
        elif roll < 0.24:
            target = str(uuid.uuid4())
        elif roll < 0.27:
            target = self.rng.choice(["not-a-uuid", target.replace("-", ""), target[:-1] + "%ff"])
        return pool_name, target

    def known_batch(self, cmd, path, body):
        """Dispenses, adjustments and receipts mostly name a batch of the item,
        so their rules (stock, expiry, conflicts) are reached, not only 404."""
        if cmd["name"] not in ("ReceiveStock", "DispenseStock", "AdjustStock") or \
                not isinstance(body, dict) or "batch_number" not in body:
            return
        batches = self.pools.batches.get(path.split("/")[4].lower())
        if batches and self.chance(0.7):
            body["batch_number"] = self.rng.choice(batches)

    def coherent_vitals(self):
        """Vitals whose measurements agree (systolic over diastolic), often with
        a weight: the two-event command."""
        r = self.rng
        body = {"temperature_c": round(r.uniform(25, 45), 1), "pulse_bpm": r.randint(1, 400)}
        if self.chance(0.5):
            dia = r.randint(20, 299)
            body.update(systolic_mmhg=r.randint(dia + 1, 300), diastolic_mmhg=dia)
        if self.chance(0.7):
            body["weight"] = {"value": round(r.uniform(0.1, 90), r.choice((0, 1, 3))),
                              "unit": r.choice(["kg", "g", "lb"])}
        return body

    def item_target(self, path, record):
        """A record's {diagnosis_id} / {treatment_id}, an invoice's {line_id} /
        {payment_id}: one of its own, mostly."""
        invoice = self.pools.invoices.get(record) or {}
        for param, ids in (("{diagnosis_id}", self.pools.diagnoses.get(record)),
                           ("{treatment_id}", self.pools.treatments.get(record)),
                           ("{line_id}", invoice.get("lines")),
                           ("{payment_id}", invoice.get("payments"))):
            if param in path:
                ids = ids or []
                item = self.rng.choice(ids) if ids and self.chance(0.8) else str(uuid.uuid4())
                path = path.replace(param, item.upper() if self.chance(0.1) else item)
        return path

    def headers(self, bad):
        h = {"Content-Type": "application/json"}
        if self.chance(0.15):
            h["X-Request-Id"] = self.rng.choice(
                [b"\xff\xfe", "a" * 65, b"x\x01y", "../../etc", "id with space", "漢".encode(),
                 "ok-id-" + str(self.index)])
        if self.chance(0.08):
            h["If-Match"] = self.rng.choice(['"1"', '"2"', '"999"', "abc", 'W/"1"', '"' + "9" * 13 + '"'])
        if not self.clean and self.chance(0.02):
            h["Content-Type"] = "text/plain"
            bad("Content-Type text/plain")
        if self.chance(0.35):
            roll = self.rng.random()
            if roll < 0.45:
                h["Idempotency-Key"] = f"k-{uuid.uuid4()}"
            elif roll < 0.55:
                h["Idempotency-Key"] = ("k-漢字-é-😀-" + str(uuid.uuid4())).encode()
            elif roll < 0.62:
                h["Idempotency-Key"] = ("K" * 255)[:-12] + f"{self.index:012d}"
            elif roll < 0.68 and not self.clean:
                h["Idempotency-Key"] = "K" * 256
                bad("a 256-byte Idempotency-Key")
            elif roll < 0.80:
                h["Idempotency-Key"] = b"k-" + self.rng.choice(BAD_UTF8) + str(self.index).encode()
            else:
                h["Idempotency-Key"] = self.rng.choice([b"k\x01\x7f", b"k\tx", b"k\x1b[31m"]) + \
                    str(self.index).encode()
        return h

    def next(self, cmd):
        """A random request for cmd, or a replay / key reuse of an earlier one."""
        self.index += 1
        if self.answered_keys and self.chance(0.5):
            # only keys answered already: a replay racing its original is a 503
            key, old = self.rng.choice(self.sent_keys[:self.answered_keys])
            if self.chance(0.5):  # the same command again: a replay
                r = Request(self.index, old.cmd, old.method, old.path, old.body,
                            dict(old.headers), old.must_refuse, old.why + ["(replay)"])
            else:  # the same key, another body
                r = Request(self.index, old.cmd, old.method, old.path,
                            old.body[:-1] + b',"command_id":"other"}' if old.body.endswith(b"}")
                            else old.body, dict(old.headers), old.must_refuse,
                            old.why + ["(key reused)"])
            r.tenant = old.tenant
            return r
        return self.make(cmd)

    def make(self, cmd, role=None, body=None, target=None, sub=None, valid=False):
        self.index += 1
        self.clean = valid or self.chance(0.4)
        why = []
        bad = why.append if not valid else (lambda reason: None)
        path, pool_name = cmd["pattern"], None
        if "{id}" in path:
            pool_name, tgt = self.path_target(cmd, bad)
            path = path.replace("{id}", target or tgt)
            path = self.item_target(path, (target or tgt).lower())
        elif cmd["creates"]:
            pool_name = {"/v1/staff": "staff", "/v1/clients": "clients",
                         "/v1/patients": "patients", "/v1/appointments": "appointments",
                         "/v1/inventory/items": "items", "/v1/invoices": "invoices"}.get(path)
        if body is None and cmd["name"] == "RecordVitals" and self.chance(0.3):
            body = self.coherent_vitals()  # random fields rarely agree with each other
        if body is None:
            body = self.body(cmd["fields"], bad, path_pool=pool_name)
            if not why:  # a batch of the item must not hide a bad batch_number
                self.known_batch(cmd, path, body)
        provisioning = "platform-admin" in cmd["roles"]
        if role is None:
            role = self.rng.choice(cmd["roles"]) if self.clean or self.chance(0.9) \
                else self.rng.choice(ROLES)
        if role not in cmd["roles"]:
            why.append(f"role {role}")
        if sub is None:
            sub = f"u-{role}"
            if role == "vet" and "availability" in path and self.chance(0.8):
                sub = path.split("/")[3]  # a vet acts on their own availability
        headers = {} if valid else self.headers(bad)
        headers.setdefault("Content-Type", "application/json")
        headers["Authorization"] = "Bearer " + (
            self.token(role, sub, tid=not provisioning) if not valid else
            sign(self.secret, encode({"sub": sub, "roles": [role], "exp": int(time.time()) + 3600,
                                      **({} if provisioning else {"tid": self.tid})})))
        raw = encode(body, ascii_only=self.chance(0.2))
        if not self.clean and self.chance(0.01):
            raw = self.rng.choice([b"{", b'{"a":}', b'{"a":1}{}', raw + b"\x00"])
            bad("a malformed body")
        r = Request(self.index, cmd["name"], cmd["method"], path, raw, headers,
                    bool(why), why)
        r.tenant = None if provisioning else self.tid
        if "Idempotency-Key" in headers:
            self.sent_keys.append((headers["Idempotency-Key"], r))
        return r


class Outcome:
    def __init__(self, req, status=None, body=None, headers=None, error=None):
        self.req, self.status, self.body, self.headers, self.error = req, status, body, headers, error
        self.replayed = bool(headers and headers.get("Idempotent-Replayed") == "true")
        self.position = None
        self.problem = None


def send(url, req):
    try:
        r = requests.request(req.method, url + req.path, data=req.body, headers=req.headers,
                             timeout=30)
    except requests.RequestException as e:
        return Outcome(req, error=f"{type(e).__name__}: {e}")
    return Outcome(req, r.status_code, r.content, r.headers)


def command_key(req):
    """The request's client-chosen command id (header, else body), or None."""
    key = req.headers.get("Idempotency-Key")
    if key is None:
        try:
            key = json.loads(req.body).get("command_id")
        except (ValueError, AttributeError):
            return None
    return key if isinstance(key, (str, bytes)) else None


def judge(o):
    """Why the answer breaks the contract, or None."""
    if o.error:
        return f"no answer ({o.error})"
    if o.status == 503 and o.req.key_raced:
        return None  # two commands with one key at once: the second waits (API.md 503)
    if not (200 <= o.status < 300 or 400 <= o.status < 500):
        return f"status {o.status}"
    if not o.headers.get("X-Request-Id"):
        return "no X-Request-Id"
    try:
        doc = json.loads(o.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"status {o.status} with a body that is not UTF-8 JSON ({e})"
    if o.status >= 400:
        err = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(err, dict) or not all(isinstance(err.get(k), str) for k in
                                                ("code", "message", "timestamp", "request_id")) \
                or not isinstance(err.get("details", []), list):
            return f"status {o.status} without the contract's error body"
        return None
    if o.req.must_refuse and not o.replayed:
        return f"accepted ({o.status}) although {'; '.join(o.req.why)}"
    pos = doc.get("position", "") if isinstance(doc, dict) else ""
    try:
        partition, offset = (int(x) for x in pos.split(":"))
    except ValueError:
        return f"status {o.status} without a position: {doc!r}"
    o.position = (partition, offset)
    return None


def error_code(o):
    """"201", "409 SLOT_UNAVAILABLE", "none" for the statistics."""
    if o.status is None:
        return "none"
    if o.status < 400 or o.status == 400:
        return str(o.status)
    try:
        return f"{o.status} {json.loads(o.body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(o.status)


def learn(pools, o):
    """What a committed command tells about the pools."""
    if o.status is None or not 200 <= o.status < 300 or o.replayed:
        return
    doc = json.loads(o.body)
    agg = doc["id"]
    try:
        body = json.loads(o.req.body)
    except ValueError:
        body = {}
    name, p = o.req.cmd, pools
    if name == "RegisterStaff":
        p.staff[agg] = {"role": body.get("role"), "active": True}
    elif name == "DeactivateStaff":
        p.staff.setdefault(agg, {"role": None})["active"] = False
    elif name == "RegisterClient":
        p.clients[agg] = {"active": True}
    elif name in ("DeactivateClient", "EraseClient"):
        p.clients.setdefault(agg, {})["active"] = False
    elif name == "RegisterPatient":
        p.patients[agg] = {"client": body.get("client_id"), "alive": True}
    elif name == "TransferPatient":
        p.patients.setdefault(agg, {"alive": True})["client"] = body.get("client_id")
    elif name == "RecordPatientDeath":
        p.patients.setdefault(agg, {})["alive"] = False
    elif name == "ScheduleAppointment":
        p.appointments[agg] = {"status": "scheduled"}
    elif name in APPOINTMENT_AFTER:
        p.appointments.setdefault(agg, {})["status"] = APPOINTMENT_AFTER[name]
    elif name == "OpenMedicalRecord":
        p.records[agg] = {"status": "open"}
    elif name == "SignMedicalRecord":
        p.records.setdefault(agg, {})["status"] = "signed"
    elif name == "CreateInventoryItem":
        p.items[agg] = {"active": True}
    elif name == "DeactivateInventoryItem":
        p.items.setdefault(agg, {})["active"] = False
    elif name == "ReceiveStock" and isinstance(body.get("batch_number"), str):
        p.batches.setdefault(agg, []).append(body["batch_number"])
    elif name == "CreateInvoice":
        p.invoices[agg] = {"status": "draft", "lines": [], "payments": []}
    elif name in INVOICE_NEEDS:
        inv = p.invoices.setdefault(agg, {"status": "draft", "lines": [], "payments": []})
        if name == "AddInvoiceLine" and isinstance(body.get("line_id"), str):
            inv["lines"].append(body["line_id"].lower())
        elif name == "RemoveInvoiceLine":
            gone = o.req.path.split("/")[5].lower()
            inv["lines"] = [x for x in inv["lines"] if x != gone]
        elif name == "IssueInvoice":
            inv["status"] = "issued"  # or paid at once (a zero total): a guess is enough
        elif name == "RecordPayment":
            inv["status"] = "partially_paid"
            if isinstance(body.get("payment_id"), str):
                inv["payments"].append(body["payment_id"].lower())
        elif name == "VoidInvoice":
            inv["status"] = "void"


def list_commands():
    out = subprocess.run([os.path.join(BIN_DIR, "cmd-writer"), "--list-commands"],
                         capture_output=True, check=True, timeout=30).stdout
    return json.loads(out)


def query(stack, text, params=()):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        return conn.execute(text, params).fetchall()


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port())
    writer = stack.start_daemon("cmd-writer", port=free_port())
    for d in (projector, writer):
        d.wait_ready(90)
    yield projector, writer
    writer.terminate()
    projector.terminate()


def test_list_commands_names_every_route_with_its_field_table():
    commands = list_commands()
    assert len(commands) >= 21
    for c in commands:
        assert c["method"] in ("POST", "PATCH", "PUT", "DELETE"), c
        assert c["pattern"].startswith("/v1/") and c["roles"], c
        assert set(c["roles"]) <= set(ROLES), c
        assert isinstance(c["fields"], list) and all("type" in f for f in c["fields"]), c
    assert len({(c["method"], c["pattern"]) for c in commands}) == len(commands)


def set_up(stack, writer, gen, pools, commands, outcomes):
    """A tenant with vets (one with published blocks), nurses, clients,
    patients and appointments in each status; every set-up command must pass."""
    by_name = {c["name"]: c for c in commands}

    def must(name, body, role, target=None, sub=None):
        req = gen.make(by_name[name], role=role, body=body, target=target, sub=sub, valid=True)
        o = send(writer.url, req)
        outcomes.append(o)
        assert judge(o) is None and 200 <= o.status < 300, \
            f"set-up {name} failed: {o.status} {o.body!r}"
        learn(pools, o)
        return json.loads(o.body)["id"]

    for i in range(3):
        vet = must("RegisterStaff", {"name": f"Dr {i}", "role": "veterinarian"}, "admin")
        pools.core.add(vet)
    for i in range(2):
        pools.core.add(must("RegisterStaff", {"name": f"Nurse {i}", "role": "nurse"}, "admin"))
    pools.avail_vet = pools.vets()[0]
    day0 = gen.now.replace(hour=2, minute=0, second=0, microsecond=0)
    blocks = [{"start": gen.iso(day0 + timedelta(days=d)),
               "end": gen.iso(day0 + timedelta(days=d, hours=20))} for d in range(1, 61)]
    must("PublishAvailability", {"blocks": blocks}, "admin", target=pools.avail_vet)
    for i in range(4):
        client = must("RegisterClient", {"first_name": f"Ann{i}", "last_name": "Lee"}, "reception")
        pools.core.add(client)
        pools.core.add(must("RegisterPatient", {"client_id": client, "name": f"Rex{i}",
                                                "species": "canine", "sex": "male"}, "vet"))
    patients = list(pools.patients)
    for i in range(8):
        start = (gen.now + timedelta(days=59, hours=i * 0.5)).replace(hour=3 + i, minute=0,
                                                                    second=0, microsecond=0)
        appt = must("ScheduleAppointment",
                    {"patient_id": patients[i % len(patients)], "vet_id": pools.avail_vet,
                     "start": gen.iso(start), "end": gen.iso(start + timedelta(minutes=30)),
                     "type": "consultation"}, "reception")
        if i % 4 >= 1:
            must("CheckInAppointment", {}, "nurse", target=appt)
        if i % 4 >= 2:
            must("StartAppointment", {}, "vet", target=appt)
    set_up_records(stack, gen, pools, patients, must)
    set_up_stock(stack, gen, pools, must)
    set_up_billing(gen, pools, must)


def set_up_billing(gen, pools, must):
    """Invoices in each status, with chosen line and payment ids (the answers
    carry only the invoice's), one with a line of a stocked item."""
    clients = [c for c in pools.clients if c in pools.core]
    plain_item = next(iter(pools.items))
    for i in range(6):
        inv = must("CreateInvoice", {"client_id": clients[i % len(clients)]}, "reception")
        pools.core.add(inv)
        for k in range(2):
            must("AddInvoiceLine", {"description": f"Line {k}", "quantity": 1.5,
                                    "unit_price_cents": 1234 + i, "tax_rate_bp": 2000,
                                    "discount_bp": 500 * k, "line_id": str(uuid.uuid4())},
                 "reception", target=inv)
        if i == 2:
            must("AddInvoiceLine", {"description": "Tabs", "quantity": 1, "unit_price_cents": 99,
                                    "item_id": plain_item, "line_id": str(uuid.uuid4())},
                 "vet", target=inv)
        if i >= 2:
            must("IssueInvoice", {"due_in_days": 14}, "reception", target=inv)
        if i >= 4:
            must("RecordPayment", {"amount_cents": 100, "method": "card",
                                   "payment_id": str(uuid.uuid4())}, "reception", target=inv)


def set_up_stock(stack, gen, pools, must):
    """Items (plain, prescription-only, controlled) with batches, some without
    expiry, and prescriptions naming them (ids read from the log)."""
    today = gen.now.date()
    kinds = [{}, {"requires_prescription": True}, {"controlled": True}]
    items = [must("CreateInventoryItem", {"code": f"P-{i}", "name": f"Item {i}",
                                          "category": "medication", "unit": "ml", **kinds[i % 3]},
                  "admin") for i in range(6)]
    for n, item in enumerate(items):
        for b in range(3):
            body = {"batch_number": f"B{n}-{b}", "quantity": 50 + b}
            if b:
                body["expiry_date"] = str(today + timedelta(days=30 * b))
            must("ReceiveStock", body, "admin", target=item)
        pools.core.add(item)
    open_records = [r for r, x in pools.records.items() if x["status"] == "open"]
    for item in items[:2]:
        must("PrescribeMedication", {"medication": "M", "dosage": "1", "frequency": "daily",
                                     "route": "oral", "quantity": 20, "refills": 2,
                                     "item_id": item}, "vet", target=open_records[0])
    for e in kafka_events(stack.brokers):
        if e["tenant_id"] == gen.tid and e["type"] == "MedicationPrescribed":
            pools.prescriptions.append(e["data"]["prescription_id"])


def set_up_records(stack, gen, pools, patients, must):
    """Medical records: open ones with a diagnosis and treatments (whose ids
    the answers do not carry: read from the log), and a signed one."""
    pools.tenants.append(gen.tid)
    records = [must("OpenMedicalRecord", {"patient_id": patients[i % len(patients)],
                                          "record_type": "consultation"}, "vet")
               for i in range(6)]
    for rid in records:
        must("AddDiagnosis", {"name": "Otitis", "primary": True}, "vet", target=rid)
        for _ in range(2):
            must("AddTreatment", {"name": "Flush", "treatment_type": "procedure"}, "nurse",
                 target=rid)
    must("RecordVitals", {"weight": {"value": 4.2, "unit": "kg"}, "pulse_bpm": 90}, "nurse",
         target=records[1])
    must("SignMedicalRecord", {}, "vet", target=records[0])
    for e in kafka_events(stack.brokers):
        if e["tenant_id"] != gen.tid:
            continue
        if e["type"] == "DiagnosisAdded":
            pools.diagnoses.setdefault(e["aggregate_id"], []).append(e["data"]["diagnosis_id"])
        elif e["type"] == "TreatmentAdded":
            pools.treatments.setdefault(e["aggregate_id"], []).append(e["data"]["treatment_id"])


def test_every_command_answers_4xx_or_commits_an_event_the_projector_applies(stack, daemons):
    projector, writer = daemons
    rng = random.Random(SEED)
    print(f"\nproperty: seed {SEED} (VETPMS_PROPERTY_SEED={SEED} replays), "
          f"{EXAMPLES} examples per command")
    t0 = time.monotonic()
    commands = list_commands()
    dead_before = set(query(stack, 'SELECT partition, "offset" FROM read.dead_letters'))
    now = datetime.now(timezone.utc)
    tz = rng.choice(["Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/London"])
    admin_gen = Generator(rng, commands, Pools(), stack.jwt_secret, None, now)
    tenant = send(writer.url, admin_gen.make(
        next(c for c in commands if c["name"] == "ProvisionTenant"), role="platform-admin",
        body={"name": "Property Paws", "timezone": tz, "currency": "NZD"}, valid=True))
    assert tenant.status == 201 and judge(tenant) is None, tenant.body
    tid = json.loads(tenant.body)["id"]
    tenant.req.tenant = tid
    pools = Pools()
    gen = Generator(rng, commands, pools, stack.jwt_secret, tid, now)
    outcomes = [tenant]
    set_up(stack, writer, gen, pools, commands, outcomes)
    setup_s = time.monotonic() - t0

    # Every command EXAMPLES times, in random order, WORKERS at a time.
    plan = [c for c in commands for _ in range(EXAMPLES)]
    rng.shuffle(plan)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        for start in range(0, len(plan), WORKERS * 2):
            batch = []
            gen.answered_keys = len(gen.sent_keys)
            for cmd in plan[start:start + WORKERS * 2]:
                batch.append(gen.next(cmd) if rng.random() < 0.1 else gen.make(cmd))
            keys = collections.Counter(command_key(r) for r in batch)
            for r in batch:
                r.key_raced = command_key(r) is not None and keys[command_key(r)] > 1
            for o in pool.map(lambda req: send(writer.url, req), batch):
                outcomes.append(o)
                o.problem = judge(o)
                if o.problem is None:
                    learn(pools, o)
                if o.status and 200 <= o.status < 300 and o.req.tenant is None and not o.problem:
                    o.req.tenant = json.loads(o.body)["id"]  # a provisioned tenant
    send_s = time.monotonic() - t0 - setup_s

    problems = [f"{o.problem}: {o.req.repro()}" for o in outcomes if o.problem]
    appended = [o for o in outcomes if o.position and not o.replayed]

    # The projector has read up to the last appended record.
    ends = collections.defaultdict(int)
    for o in appended:
        ends[o.position[0]] = max(ends[o.position[0]], o.position[1] + 1)

    def caught_up():
        rows = dict(query(stack, "SELECT partition, next_offset FROM read.projection_offsets "
                                 "WHERE topic = %s", (TOPIC,)))
        return all(rows.get(p, 0) >= end for p, end in ends.items())

    wait_for(caught_up, timeout=90, interval=0.2, what="the projector to reach the answers",
             explain=lambda: projector.log_tail(20))

    by_position = {o.position: o for o in appended}
    for part, off, tenant_id, error in query(
            stack, 'SELECT partition, "offset", tenant_id::text, error FROM read.dead_letters'):
        if (part, off) in dead_before:
            continue
        o = by_position.get((part, off))
        problems.append(f"dead letter at {part}:{off} (tenant {tenant_id}): {error}: "
                        + (o.req.repro() if o else "no answer names this position"))
    tenants = {o.req.tenant for o in appended if o.req.tenant}
    logged = set(query(stack, 'SELECT partition, "offset" FROM read.event_log '
                              'WHERE tenant_id = ANY(%s::uuid[])', (list(tenants),)))
    # a command of n events appended them at the n offsets ending at its position
    answered = {(o.position[0], o.position[1] - k) for o in appended
                for k in range(len(json.loads(o.body)["events"]))}
    for pos in sorted(answered - logged):
        o = by_position.get(pos)
        problems.append(f"answered 2xx at {pos} but not in read.event_log: "
                        + (o.req.repro() if o else "(an earlier event of a command)"))
    for pos in sorted(logged - answered):
        problems.append(f"in read.event_log at {pos} but no 2xx answer appended it")

    for d in (projector, writer):
        if d.proc.poll() is not None:
            problems.append(f"{d.name} exited {d.proc.returncode}:\n{d.log_tail(20)}")
    if writer.proc.poll() is None:
        assert writer.get("/healthz").status_code == 200

    stats = collections.Counter((o.req.cmd, error_code(o)) for o in outcomes)
    per_cmd = collections.defaultdict(dict)
    for (cmd, status), n in sorted(stats.items()):
        per_cmd[cmd][status] = n
    print(f"property: {len(outcomes)} requests ({len(appended)} appended, "
          f"{sum(o.replayed for o in outcomes)} replays) set-up {setup_s:.1f}s, "
          f"sending {send_s:.1f}s, total {time.monotonic() - t0:.1f}s")
    for cmd, counts in sorted(per_cmd.items()):
        print(f"  {cmd:22s} {counts}")
    kinds = collections.Counter(p.split(":")[0].split(" (")[0] for p in problems)
    assert not problems, (f"seed {SEED}: {len(problems)} answers break the contract "
                          f"{dict(kinds)}:\n" + "\n".join(problems[:40]))
    PROPERTY_TENANTS.extend(sorted(tenants))


# The tenants the random mix above wrote, for the rebuild check below.
PROPERTY_TENANTS = []


def read_tables(stack):
    """Every base table of the read schema that holds tenant rows; dead letters
    and offsets are the projector's own bookkeeping."""
    return [t for (t,) in query(
        stack, "SELECT c.table_name FROM information_schema.columns c "
               "JOIN information_schema.tables t USING (table_schema, table_name) "
               "WHERE c.table_schema = 'read' AND c.column_name = 'tenant_id' "
               "AND t.table_type = 'BASE TABLE' AND c.table_name <> 'dead_letters' "
               "ORDER BY 1")]


def tenant_rows(stack, schema, table, tenants):
    """(count, md5 of the rows in text form) of the tenants' rows of a table."""
    q = (f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) '
         f'FROM "{schema}"."{table}" x WHERE x.tenant_id = ANY(%s::uuid[])')
    return query(stack, q, (tenants,))[0]


def test_the_read_model_of_the_random_mix_equals_a_rebuild_from_the_log(stack, daemons):
    """Every row the live projector built from the random commands above (all
    kinds, records included) is what a fresh projector builds from offset 0."""
    if not PROPERTY_TENANTS:
        pytest.skip("the property test did not run")
    check = stack.start_daemon("projector", port=free_port(),
                               env={"VETPMS_READ_SCHEMA": "read_prop_check",
                                    "VETPMS_PROJECTOR_GROUP": f"e2e-prop-{uuid.uuid4()}"})
    live = dict(query(stack, "SELECT partition, next_offset FROM read.projection_offsets "
                             "WHERE topic = %s", (TOPIC,)))

    def caught_up():
        try:
            rows = dict(query(stack, "SELECT partition, next_offset FROM "
                                     "read_prop_check.projection_offsets WHERE topic = %s",
                              (TOPIC,)))
        except psycopg.errors.UndefinedTable:
            return False
        return all(rows.get(p, 0) >= end for p, end in live.items())

    try:
        wait_for(caught_up, timeout=120, interval=0.2, what="the rebuild to reach the live positions",
                 explain=lambda: check.log_tail(20))
    finally:
        assert check.terminate() == 0
    tables = read_tables(stack)
    assert {"medical_records", "diagnoses", "appointments", "patients", "event_log"} <= set(tables)
    for table in tables:
        want = tenant_rows(stack, "read", table, PROPERTY_TENANTS)
        got = tenant_rows(stack, "read_prop_check", table, PROPERTY_TENANTS)
        assert got == want, f"{table}: rebuilt {got} != live {want} (seed {SEED})"
