"""Scheduling read side against the real stack: well-formed envelopes produced
straight into vetpms.events (the writer's commands are built elsewhere) are
projected into availability blocks, appointments, the dashboard and the daily
statistics; query-reader answers free intervals (at block edges, adjacent
appointments, a withdrawal splitting a block), slots across vets, filtered and
paged appointment lists, the dashboard and the stats, which must equal a
recomputation from read.event_log, also across DST changes; the analysts'
materialized view is refreshed after appointment events and not when idle; and
no tenant sees another's rows."""

import re
import time
import uuid

import psycopg
import pytest
import requests

import events as ev
from stack import free_port, wait_for
from produced import ProducedTenant
from readmodel import query

REFRESH_MS = 400
LONDON = "Europe/London"


def metric(daemon, name):
    m = re.search(rf"^{re.escape(name)} (\d+)$", daemon.get("/metrics").text, re.M)
    return int(m.group(1)) if m else 0


MV_REFRESHES = 'vetpms_projector_mv_refreshes_total{view="appointment_type_mix_monthly"}'


@pytest.fixture(scope="module")
def daemons(stack):
    projector = stack.start_daemon("projector", port=free_port(),
                                   env={"VETPMS_PROJECTOR_MV_REFRESH_MS": str(REFRESH_MS)})
    reader = stack.start_daemon("query-reader", port=free_port())
    for d in (projector, reader):
        d.wait_ready(90)
    yield projector, reader
    for d in (reader, projector):
        assert d.terminate() == 0


@pytest.fixture(scope="module")
def producer(stack):
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-sched-{uuid.uuid4()}")
    yield p
    p.close()


class Clinic(ProducedTenant):
    """One tenant with two vets, a nurse, two clients and three patients;
    `send` produces envelopes (seq tracked per aggregate) and waits until the
    projector logged them."""

    def __init__(self, stack, producer, reader, tz="Europe/Paris"):
        self.stack, self.producer, self.reader, self.tz = stack, producer, reader, tz
        self.t = ev.new_id()
        self.vet1, self.vet2, self.nurse = ev.new_id(), ev.new_id(), ev.new_id()
        self.c1, self.c2 = ev.new_id(), ev.new_id()
        self.p1, self.p2, self.p3 = ev.new_id(), ev.new_id(), ev.new_id()
        self.seqs = {}
        self.sent = 0
        envs = [ev.envelope("TenantProvisioned", self.t, "tenant", self.t, 1,
                            {"name": "Sched Vets", "timezone": tz, "currency": "EUR"})]
        for sid, name, role in ((self.vet1, "Dr Alice Adams", "veterinarian"),
                                (self.vet2, "Dr Bob Brown", "veterinarian"),
                                (self.nurse, "Nina Nurse", "nurse")):
            envs.append(ev.envelope("StaffRegistered", self.t, "staff", sid, self.seq(sid),
                                    {"name": name, "role": role, "email": None,
                                     "license_number": None}))
        envs.append(ev.client_registered(self.t, self.c1, "Ann", "Smith", seq=self.seq(self.c1)))
        envs.append(ev.client_registered(self.t, self.c2, "Bob", "Jones", seq=self.seq(self.c2)))
        for pid, cid, name in ((self.p1, self.c1, "Rex"), (self.p2, self.c1, "Tom"),
                               (self.p3, self.c2, "Kiwi")):
            envs.append(ev.patient_registered(self.t, pid, cid, name, seq=self.seq(pid)))
        self.send(envs)
        self.auth = self.headers(["admin", "vet"])

    def headers(self, roles, tenant=None):
        return {"Authorization": "Bearer " + self.stack.token(roles, tenant=tenant or self.t)}

    # builders
    def publish(self, vet, *blocks):
        return ev.envelope("AvailabilityPublished", self.t, "staff", vet, self.seq(vet),
                           {"blocks": [{"start": s, "end": e} for s, e in blocks]})

    def withdraw(self, vet, start, end):
        return ev.envelope("AvailabilityWithdrawn", self.t, "staff", vet, self.seq(vet),
                           {"start": start, "end": end})

    def schedule(self, appt, patient, vet, start, end, type_="consultation", reason=None):
        return ev.envelope("AppointmentScheduled", self.t, "appointment", appt, self.seq(appt),
                           {"patient_id": patient, "vet_id": vet, "start": start, "end": end,
                            "type": type_, "reason": reason})

    def appt_event(self, type_, appt, data):
        return ev.envelope(type_, self.t, "appointment", appt, self.seq(appt), data)

    def get(self, path, headers=None, **params):
        return requests.get(self.reader.url + path, params=params,
                            headers=self.auth if headers is None else headers, timeout=10)


def day(d, hm):
    return f"{d}T{hm}:00Z"


def test_every_scheduling_event_is_projected(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    a1, a2, a3 = ev.new_id(), ev.new_id(), ev.new_id()
    d = "2027-06-07"
    c.send([
        c.publish(c.vet1, (day(d, "08:00"), day(d, "12:00")), (day(d, "13:00"), day(d, "18:00"))),
        c.publish(c.vet2, (day(d, "08:00"), day(d, "18:00"))),
        c.withdraw(c.vet1, day(d, "09:00"), day(d, "10:00")),
        c.schedule(a1, c.p1, c.vet1, day(d, "08:00"), day(d, "08:30"), "vaccination", "booster"),
        c.appt_event("AppointmentRescheduled", a1,
                     {"start": day(d, "14:00"), "end": day(d, "14:45"), "vet_id": c.vet2}),
        c.appt_event("AppointmentCheckedIn", a1, {"at": day(d, "13:55")}),
        c.appt_event("AppointmentStarted", a1, {"at": day(d, "14:02")}),
        c.appt_event("AppointmentCompleted", a1, {"at": day(d, "14:40"), "notes": "all good"}),
        c.schedule(a2, c.p2, c.vet1, day(d, "10:00"), day(d, "10:30")),
        c.appt_event("AppointmentCanceled", a2, {"reason": "owner ill"}),
        c.schedule(a3, c.p3, c.vet1, day(d, "11:00"), day(d, "11:30"), "surgery"),
        c.appt_event("AppointmentNoShow", a3, {}),
    ])
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s", (c.t,))
    blocks = query(stack, "SELECT start_at, end_at FROM read.availability_blocks "
                          "WHERE tenant_id = %s AND vet_id = %s ORDER BY start_at", (c.t, c.vet1))
    assert [(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in blocks] == \
        [("08:00", "09:00"), ("10:00", "12:00"), ("13:00", "18:00")]
    # availability events bump the staff version like any staff event
    assert query(stack, "SELECT version FROM read.staff WHERE tenant_id = %s AND id = %s",
                 (c.t, c.vet1)) == [(3,)]
    rows = query(stack, "SELECT id::text, status, vet_name, patient_name, species, "
                        "client_first_name, type, reason, local_date::text, notes, "
                        "cancel_reason, actual_end - actual_start, version FROM read.appointments "
                        "WHERE tenant_id = %s ORDER BY start_at", (c.t,))
    assert [r[:9] for r in rows] == [
        (a2, "canceled", "Dr Alice Adams", "Tom", "canine", "Ann", "consultation", None, d),
        (a3, "no_show", "Dr Alice Adams", "Kiwi", "canine", "Bob", "surgery", None, d),
        (a1, "completed", "Dr Bob Brown", "Rex", "canine", "Ann", "vaccination", "booster", d),
    ]
    assert rows[0][10] == "owner ill" and rows[2][9] == "all good"
    assert rows[2][11].total_seconds() == 38 * 60 and rows[2][12] == 5

    r = c.get(f"/v1/appointments/{a1}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["patient"] == {"id": c.p1, "name": "Rex", "species": "canine"}
    assert body["client"] == {"id": c.c1, "first_name": "Ann", "last_name": "Smith"}
    assert body["vet"] == {"id": c.vet2, "name": "Dr Bob Brown"}
    assert (body["start"], body["end"], body["status"]) == \
        (day(d, "14:00"), day(d, "14:45"), "completed")
    assert (body["actual_start"], body["actual_end"]) == (day(d, "14:02"), day(d, "14:40"))
    assert body["checked_in_at"] == day(d, "13:55") and body["version"] == 5
    assert c.get(f"/v1/appointments/{ev.new_id()}").status_code == 404
    assert c.get("/v1/appointments/not-a-uuid").status_code == 404
    # the dashboard holds the non-canceled ones
    dash = c.get("/v1/dashboards/appointments", date=d).json()
    assert dash["timezone"] == "Europe/Paris"
    assert [(x["id"], x["status"]) for x in dash["data"]] == [(a3, "no_show"), (a1, "completed")]
    assert dash["data"][1]["client"] == {"id": c.c1, "name": "Ann Smith"}


def test_transfer_moves_active_appointments_to_the_new_owner(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    done, upcoming = ev.new_id(), ev.new_id()
    c.send([
        c.schedule(done, c.p1, c.vet1, "2027-06-01T09:00:00Z", "2027-06-01T09:30:00Z"),
        c.appt_event("AppointmentCanceled", done, {"reason": "x"}),
        c.schedule(upcoming, c.p1, c.vet1, "2027-06-02T09:00:00Z", "2027-06-02T09:30:00Z"),
        ev.envelope("PatientTransferred", c.t, "patient", c.p1, c.seq(c.p1),
                    {"from_client_id": c.c1, "to_client_id": c.c2}),
    ])
    owners = dict(query(stack, "SELECT id::text, client_last_name FROM read.appointments "
                               "WHERE tenant_id = %s", (c.t,)))
    assert owners == {done: "Smith", upcoming: "Jones"}
    dash = c.get("/v1/dashboards/appointments", date="2027-06-02").json()["data"]
    assert dash[0]["client"] == {"id": c.c2, "name": "Bob Jones"}


def free(c, vet, start, end):
    r = c.get(f"/v1/staff/{vet}/availability", **{"from": start, "to": end})
    assert r.status_code == 200, r.text
    return [(x["start"][11:16], x["end"][11:16]) for x in r.json()["data"]]


def test_free_intervals_at_block_edges(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    d = "2027-05-03"
    ids = [ev.new_id() for _ in range(6)]
    c.send([
        # two adjacent blocks: free time runs across their common edge
        c.publish(c.vet1, (day(d, "09:00"), day(d, "12:00")), (day(d, "12:00"), day(d, "17:00"))),
        c.schedule(ids[0], c.p1, c.vet1, day(d, "09:00"), day(d, "09:30")),  # at block start
        c.schedule(ids[1], c.p2, c.vet1, day(d, "10:00"), day(d, "10:30")),  # adjacent pair
        c.schedule(ids[2], c.p3, c.vet1, day(d, "10:30"), day(d, "11:00")),
        c.schedule(ids[3], c.p1, c.vet1, day(d, "16:30"), day(d, "17:00")),  # at block end
        c.schedule(ids[4], c.p2, c.vet1, day(d, "15:00"), day(d, "15:30")),
        c.appt_event("AppointmentCanceled", ids[4], {"reason": "x"}),  # frees its time again
        c.schedule(ids[5], c.p3, c.vet1, day(d, "15:30"), day(d, "16:00")),
        c.appt_event("AppointmentCheckedIn", ids[5], {"at": day(d, "15:25")}),  # still busy
        c.withdraw(c.vet1, day(d, "13:00"), day(d, "14:00")),  # splits the second block
    ])
    whole = (day(d, "00:00"), day("2027-05-04", "00:00"))
    assert free(c, c.vet1, *whole) == [("09:30", "10:00"), ("11:00", "13:00"),
                                       ("14:00", "15:30"), ("16:00", "16:30")]
    # clipped to [from, to), edges exactly on a boundary
    assert free(c, c.vet1, day(d, "09:45"), day(d, "14:30")) == \
        [("09:45", "10:00"), ("11:00", "13:00"), ("14:00", "14:30")]
    assert free(c, c.vet1, day(d, "10:00"), day(d, "11:00")) == []
    assert free(c, c.vet1, day(d, "11:00"), day(d, "11:01")) == [("11:00", "11:01")]
    # a completed appointment no longer blocks; a vet without blocks has no free time
    c.send([c.appt_event("AppointmentStarted", ids[0], {"at": day(d, "09:00")}),
            c.appt_event("AppointmentCompleted", ids[0], {"at": day(d, "09:20"), "notes": None})])
    assert free(c, c.vet1, *whole)[0] == ("09:00", "10:00")
    assert free(c, c.vet2, *whole) == []
    # the window in another timezone's notation means the same instants
    r = c.get(f"/v1/staff/{c.vet1}/availability",
              **{"from": f"{d}T13:45:00+02:00", "to": f"{d}T16:15:00+02:00"})
    assert [(x["start"], x["end"]) for x in r.json()["data"]] == \
        [(day(d, "11:45"), day(d, "13:00")), (day(d, "14:00"), day(d, "14:15"))]
    assert c.get(f"/v1/staff/{ev.new_id()}/availability",
                 **{"from": whole[0], "to": whole[1]}).status_code == 404


def test_slots_across_vets_with_duration(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    d = "2027-05-04"
    a, b = ev.new_id(), ev.new_id()
    c.send([
        c.publish(c.vet1, (day(d, "09:00"), day(d, "12:00"))),
        c.schedule(a, c.p1, c.vet1, day(d, "10:00"), day(d, "11:15")),
        c.publish(c.vet2, (day(d, "10:00"), day(d, "12:00"))),
        c.schedule(b, c.p2, c.vet2, day(d, "10:30"), day(d, "11:30")),
        c.publish(c.nurse, (day(d, "08:00"), day(d, "18:00"))),  # not a vet: never offered
    ])
    window = {"from": day(d, "00:00"), "to": day("2027-05-05", "00:00")}

    def slots(minutes):
        r = c.get("/v1/availability", duration_minutes=minutes, **window)
        assert r.status_code == 200, r.text
        assert r.json()["duration_minutes"] == int(minutes)
        return [(x["vet_name"], x["start"][11:16], x["end"][11:16]) for x in r.json()["data"]]

    assert slots("30") == [("Dr Alice Adams", "09:00", "10:00"), ("Dr Bob Brown", "10:00", "10:30"),
                           ("Dr Alice Adams", "11:15", "12:00"), ("Dr Bob Brown", "11:30", "12:00")]
    assert slots("45") == [("Dr Alice Adams", "09:00", "10:00"),
                           ("Dr Alice Adams", "11:15", "12:00")]
    assert slots("61") == []
    # a deactivated vet is not offered
    c.send([ev.envelope("StaffDeactivated", c.t, "staff", c.vet1, c.seq(c.vet1),
                        {"reason": "left"})])
    assert slots("30") == [("Dr Bob Brown", "10:00", "10:30"), ("Dr Bob Brown", "11:30", "12:00")]


def test_list_filters_and_cursor_paging(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    ids = [ev.new_id() for _ in range(7)]
    envs = []
    for i, aid in enumerate(ids):
        patient = (c.p1, c.p2, c.p3)[i % 3]
        vet = c.vet1 if i < 4 else c.vet2
        # two share a start time: the keyset breaks the tie by id
        start = f"2027-07-0{1 + min(i, 5)}T09:00:00Z"
        envs.append(c.schedule(aid, patient, vet, start, start.replace("09:00", "09:30")))
    envs.append(c.appt_event("AppointmentCanceled", ids[2], {"reason": "x"}))
    c.send(envs)
    expected = sorted(query(stack, "SELECT start_at, id::text FROM read.appointments "
                                   "WHERE tenant_id = %s", (c.t,)))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "2"}
        if cursor:
            params["cursor"] = cursor
        body = c.get("/v1/appointments", **params).json()
        seen += [x["id"] for x in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [r[1] for r in expected] and pages == 4

    def ids_of(**params):
        r = c.get("/v1/appointments", **params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    assert set(ids_of(vet_id=c.vet2)) == set(ids[4:])
    assert ids_of(patient_id=c.p2) == [ids[1], ids[4]]
    assert ids_of(status="canceled") == [ids[2]]
    assert ids_of(**{"from": "2027-07-02T09:00:00Z", "to": "2027-07-04T09:00:00Z"}) == ids[1:3]
    assert ids_of(vet_id=c.vet1, status="scheduled", **{"from": "2027-07-02T00:00:00+02:00"}) \
        == [ids[1], ids[3]]
    # every bad field at once
    r = c.get("/v1/appointments", status="done", vet_id="x", patient_id="y", limit="0",
              **{"from": "yesterday", "to": "2027-13-01T00:00:00Z"})
    assert r.status_code == 400
    fields = sorted(x["field"] for x in r.json()["error"]["details"])
    assert fields == ["from", "limit", "patient_id", "status", "to", "vet_id"]
    r = c.get("/v1/appointments", **{"from": "2027-07-02T00:00:00Z", "to": "2027-07-01T00:00:00Z"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "to"


def test_inputs_are_validated_and_roles_enforced(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)

    def fields(path, **params):
        r = c.get(path, **params)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "VALIDATION_ERROR"
        return sorted(x["field"] for x in r.json()["error"]["details"])

    vet = f"/v1/staff/{c.vet1}/availability"
    assert fields(vet) == ["from", "to"]
    assert fields(vet, **{"from": "2027-01-01T00:00:00", "to": "soon"}) == ["from", "to"]
    assert fields(vet, **{"from": "2027-01-02T00:00:00Z", "to": "2027-01-02T00:00:00Z"}) == ["to"]
    assert fields(vet, **{"from": "2027-01-01T00:00:00Z", "to": "2027-04-03T00:00:01Z"}) == ["to"]
    ok = c.get(vet, **{"from": "2027-01-01T00:00:00Z", "to": "2027-04-03T01:00:00+01:00"})
    assert ok.status_code == 200  # exactly 92 days
    assert fields("/v1/availability", duration_minutes="0",
                  **{"from": "2027-01-01T00:00:00Z", "to": "2027-02-02T00:00:00Z"}) == \
        ["duration_minutes", "to"]
    assert fields("/v1/availability", duration_minutes="1e3") == \
        ["duration_minutes", "from", "to"]
    assert fields("/v1/dashboards/appointments") == ["date"]
    assert fields("/v1/dashboards/appointments", date="2027-02-30") == ["date"]
    assert fields("/v1/stats/appointments/daily", **{"from": "2027-02-02", "to": "2027-02-01"}) \
        == ["to"]
    assert fields("/v1/stats/appointments/daily", **{"from": "2027-01-01", "to": "2028-01-02"}) \
        == ["to"]
    assert fields("/v1/stats/appointments/daily", to="x") == ["from", "to"]
    # roles per API.md
    stats = {"from": "2027-01-01", "to": "2027-01-02"}
    assert c.get("/v1/stats/appointments/daily", c.headers("nurse"), **stats).status_code == 403
    assert c.get("/v1/stats/appointments/daily", c.headers("analyst"), **stats).status_code == 200
    assert c.get("/v1/dashboards/appointments", c.headers("analyst"),
                 date="2027-01-01").status_code == 403
    assert c.get("/v1/dashboards/appointments", c.headers("reception"),
                 date="2027-01-01").status_code == 200
    assert c.get("/v1/appointments", c.headers("ops")).status_code == 200
    assert c.get("/v1/appointments", {}).status_code == 401


# Appointments around both DST changes of 2027 in Europe/London (clocks go
# forward at 01:00Z on 28 March, back at 01:00Z on 31 October).
DST_CASES = [
    ("2027-03-27T23:30:00Z", "2027-03-28T00:00:00Z", "2027-03-27"),  # 23:30 GMT
    ("2027-03-28T00:30:00Z", "2027-03-28T01:00:00Z", "2027-03-28"),  # 00:30 GMT
    ("2027-03-28T01:30:00Z", "2027-03-28T02:00:00Z", "2027-03-28"),  # 02:30 BST
    ("2027-03-28T23:30:00Z", "2027-03-29T00:00:00Z", "2027-03-29"),  # 00:30 BST next day
    ("2027-10-30T23:30:00Z", "2027-10-31T00:00:00Z", "2027-10-31"),  # 00:30 BST
    ("2027-10-31T00:30:00Z", "2027-10-31T01:00:00Z", "2027-10-31"),  # 01:30 BST
    ("2027-10-31T01:30:00Z", "2027-10-31T02:00:00Z", "2027-10-31"),  # 01:30 GMT (again)
    ("2027-10-31T23:30:00Z", "2027-11-01T00:00:00Z", "2027-10-31"),  # 23:30 GMT
]

# The statistics recomputed from the event log alone: each appointment's last
# start, its last status, and its Started/Completed times.
RECOMPUTE = """
WITH e AS (
  SELECT aggregate_id, seq, type, envelope->'data' AS d FROM read.event_log
  WHERE tenant_id = %(t)s AND aggregate = 'appointment'),
a AS (
  SELECT ids.aggregate_id AS id,
    (SELECT (d->>'start')::timestamptz FROM e WHERE e.aggregate_id = ids.aggregate_id
       AND type IN ('AppointmentScheduled', 'AppointmentRescheduled')
       ORDER BY seq DESC LIMIT 1) AS start_at,
    (SELECT CASE type WHEN 'AppointmentScheduled' THEN 'scheduled'
       WHEN 'AppointmentCheckedIn' THEN 'checked_in' WHEN 'AppointmentStarted' THEN 'in_progress'
       WHEN 'AppointmentCompleted' THEN 'completed' WHEN 'AppointmentCanceled' THEN 'canceled'
       WHEN 'AppointmentNoShow' THEN 'no_show' END
     FROM e WHERE e.aggregate_id = ids.aggregate_id AND type <> 'AppointmentRescheduled'
     ORDER BY seq DESC LIMIT 1) AS status,
    (SELECT (d->>'at')::timestamptz FROM e WHERE e.aggregate_id = ids.aggregate_id
       AND type = 'AppointmentStarted') AS started,
    (SELECT (d->>'at')::timestamptz FROM e WHERE e.aggregate_id = ids.aggregate_id
       AND type = 'AppointmentCompleted') AS ended
  FROM (SELECT DISTINCT aggregate_id FROM e) ids)
SELECT (start_at AT TIME ZONE %(tz)s)::date::text AS day, count(*),
  count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'canceled'),
  count(*) FILTER (WHERE status = 'no_show'),
  round(avg(extract(epoch FROM ended - started) / 60)
        FILTER (WHERE status = 'completed' AND started IS NOT NULL AND ended IS NOT NULL), 2),
  array_agg(id::text ORDER BY start_at, id) FILTER (WHERE status <> 'canceled')
FROM a GROUP BY 1 ORDER BY 1
"""


def test_dashboard_and_stats_equal_a_recomputation_across_dst(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader, tz=LONDON)
    ids = [ev.new_id() for _ in DST_CASES]
    envs = []
    for i, (aid, (start, end, _)) in enumerate(zip(ids, DST_CASES)):
        envs.append(c.schedule(aid, (c.p1, c.p2, c.p3)[i % 3], (c.vet1, c.vet2)[i % 2],
                               start, end))
    envs += [
        # completed with 30 and 45 minutes on 28 March (local)
        c.appt_event("AppointmentCheckedIn", ids[1], {"at": "2027-03-28T00:25:00Z"}),
        c.appt_event("AppointmentStarted", ids[1], {"at": "2027-03-28T00:30:00Z"}),
        c.appt_event("AppointmentCompleted", ids[1], {"at": "2027-03-28T01:00:00Z",
                                                      "notes": None}),
        c.appt_event("AppointmentCheckedIn", ids[2], {"at": "2027-03-28T01:30:00Z"}),
        c.appt_event("AppointmentStarted", ids[2], {"at": "2027-03-28T01:30:00Z"}),
        c.appt_event("AppointmentCompleted", ids[2], {"at": "2027-03-28T02:15:00Z",
                                                      "notes": "ok"}),
        c.appt_event("AppointmentCanceled", ids[4], {"reason": "x"}),
        c.appt_event("AppointmentNoShow", ids[5], {}),
        # moved from 31 October to 30 October (local): the counts move with it
        c.appt_event("AppointmentRescheduled", ids[6],
                     {"start": "2027-10-30T10:00:00Z", "end": "2027-10-30T10:30:00Z",
                      "vet_id": c.vet1}),
        # moved within 27 March, then checked in: counts unchanged
        c.appt_event("AppointmentRescheduled", ids[0],
                     {"start": "2027-03-27T22:00:00Z", "end": "2027-03-27T22:30:00Z",
                      "vet_id": c.vet2}),
    ]
    c.send(envs)
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s", (c.t,))
    expected = {r[0]: r for r in query(stack, RECOMPUTE, {"t": c.t, "tz": LONDON})}
    # the DST landings themselves, independently of the recomputation
    assert expected["2027-03-28"][1] == 2 and expected["2027-03-29"][1] == 1
    assert expected["2027-10-31"][1:5] == (3, 0, 1, 1)
    assert expected["2027-10-30"][1] == 1

    auth = c.headers("analyst")
    for lo, hi in (("2027-03-26", "2027-03-30"), ("2027-10-29", "2027-11-02")):
        r = c.get("/v1/stats/appointments/daily", auth, **{"from": lo, "to": hi})
        assert r.status_code == 200, r.text
        assert r.json()["timezone"] == LONDON
        for row in r.json()["data"]:
            want = expected.get(row["date"])
            got = (row["total"], row["completed"], row["canceled"], row["no_show"],
                   row["avg_duration_minutes"])
            if want is None:
                assert got == (0, 0, 0, 0, None), row
            else:
                avg = float(want[5]) if want[5] is not None else None
                assert got == (want[1], want[2], want[3], want[4], avg), row
        assert len(r.json()["data"]) == 5
    mar28 = c.get("/v1/stats/appointments/daily", auth,
                  **{"from": "2027-03-28", "to": "2027-03-28"}).json()["data"]
    assert mar28 == [{"date": "2027-03-28", "total": 2, "completed": 2, "canceled": 0,
                      "no_show": 0, "avg_duration_minutes": 37.5}]
    for date, row in expected.items():
        dash = c.get("/v1/dashboards/appointments", date=date).json()
        assert [x["id"] for x in dash["data"]] == list(row[6] or []), date
    assert c.get("/v1/dashboards/appointments", date="2027-10-31").json()["data"][0]["id"] == \
        ids[5]


def test_materialized_view_refreshed_after_events_and_not_when_idle(stack, daemons, producer):
    projector, reader = daemons
    c = Clinic(stack, producer, reader)
    # idle: nothing feeding the view arrives, nothing is refreshed
    time.sleep(REFRESH_MS * 3 / 1000)
    idle = metric(projector, MV_REFRESHES)
    time.sleep(REFRESH_MS * 4 / 1000)
    assert metric(projector, MV_REFRESHES) == idle
    a, b = ev.new_id(), ev.new_id()
    c.send([c.schedule(a, c.p1, c.vet1, "2027-08-02T09:00:00Z", "2027-08-02T09:30:00Z", "dental"),
            c.schedule(b, c.p2, c.vet1, "2027-08-31T22:30:00Z", "2027-08-31T23:00:00Z", "dental")])
    wait_for(lambda: metric(projector, MV_REFRESHES) > idle, what="a refresh")
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
        sql = ("SELECT month::text, type, appointments FROM read.appointment_type_mix "
               "WHERE vet_id = %s ORDER BY month")
        # RLS-like: nothing until the tenant is set
        assert conn.execute(sql, (c.vet1,)).fetchall() == []
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
        # 31 August 22:30Z is 1 September in Paris
        assert conn.execute(sql, (c.vet1,)).fetchall() == [("2027-08-01", "dental", 1),
                                                          ("2027-09-01", "dental", 1)]
        conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (ev.new_id(),))
        assert conn.execute(sql, (c.vet1,)).fetchall() == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read.appointment_type_mix_monthly")
    # and idle again afterwards
    settled = wait_for(lambda: (lambda m: m if m == metric(projector, MV_REFRESHES) else None)(
        metric(projector, MV_REFRESHES)), what="refreshes settle")
    time.sleep(REFRESH_MS * 4 / 1000)
    assert metric(projector, MV_REFRESHES) == settled


def test_no_tenant_sees_another_tenants_scheduling_rows(stack, daemons, producer):
    _, reader = daemons
    c1 = Clinic(stack, producer, reader)
    c2 = Clinic(stack, producer, reader)
    a = ev.new_id()
    d = "2027-09-06"
    c1.send([c1.publish(c1.vet1, (day(d, "09:00"), day(d, "12:00"))),
             c1.schedule(a, c1.p1, c1.vet1, day(d, "09:00"), day(d, "09:30"))])
    # through the API: another tenant's ids are 404, its rows never listed
    assert c2.get(f"/v1/appointments/{a}").status_code == 404
    assert c2.get(f"/v1/staff/{c1.vet1}/availability",
                  **{"from": day(d, "00:00"), "to": day(d, "23:00")}).status_code == 404
    assert c2.get("/v1/appointments").json()["data"] == []
    assert c2.get("/v1/dashboards/appointments", date=d).json()["data"] == []
    assert c2.get("/v1/availability", **{"from": day(d, "00:00"),
                                         "to": day(d, "23:00")}).json()["data"] == []
    # the reader role itself: RLS hides other tenants' rows even without a filter
    with psycopg.connect(stack.dsn("reader"), autocommit=True) as conn:
        for table in ("appointments", "availability_blocks", "appointment_dashboard",
                      "daily_appointment_stats"):
            assert conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()[0] == 0
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c2.t,))
            assert conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()[0] == 0
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c1.t,))
            assert conn.execute(f"SELECT count(*) FROM read.{table} WHERE tenant_id <> %s",
                                (c1.t,)).fetchone()[0] == 0
            assert conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()[0] >= 1
            conn.execute("RESET vetpms.tenant_id")


def test_bad_scheduling_events_are_dead_lettered_and_change_nothing(stack, daemons, producer):
    _, reader = daemons
    c = Clinic(stack, producer, reader)
    d = "2027-09-07"
    good = ev.new_id()
    c.send([
        c.publish(c.vet1, (day(d, "10:00"), day(d, "09:00"))),              # end before start
        c.publish(c.vet1, (day(d, "00:00"), day("2027-09-08", "01:00"))),   # longer than 24 h
        c.withdraw(ev.new_id(), day(d, "09:00"), day(d, "10:00")),          # unknown staff
        c.schedule(ev.new_id(), ev.new_id(), c.vet1, day(d, "09:00"), day(d, "09:30")),
        c.schedule(ev.new_id(), c.p1, c.vet1, day(d, "09:00"), day(d, "22:00")),  # > 12 h
        c.appt_event("AppointmentCheckedIn", ev.new_id(), {"at": day(d, "09:00")}),
        c.appt_event("AppointmentCompleted", ev.new_id(), {"notes": "no at"}),
        c.schedule(good, c.p1, c.vet1, day(d, "09:00"), day(d, "09:30")),  # still applied after
    ])
    errors = [r[0] for r in query(stack, "SELECT error FROM read.dead_letters "
                                         "WHERE tenant_id = %s ORDER BY \"offset\"", (c.t,))]
    assert len(errors) == 7, errors
    assert "end must be after start" in errors[0] and "data.at" in errors[6]
    assert query(stack, "SELECT count(*) FROM read.availability_blocks WHERE tenant_id = %s",
                 (c.t,)) == [(0,)]
    assert query(stack, "SELECT id::text FROM read.appointments WHERE tenant_id = %s",
                 (c.t,)) == [(good,)]
    assert query(stack, "SELECT total FROM read.daily_appointment_stats WHERE tenant_id = %s",
                 (c.t,)) == [(1,)]
    assert query(stack, "SELECT version FROM read.staff WHERE tenant_id = %s AND id = %s",
                 (c.t, c.vet1)) == [(1,)]
