"""`projector rebuild` with medical records: the swapped-in schema answers the
same record and timeline, its materialized views are refreshed in the swap (the
analysts' counts are right at once, even with an idle live projector), and its
grants, copied from the live schema at the swap, still give the analyst the
counts and nothing of the clinical text."""

import uuid
from datetime import timedelta

import psycopg
import pytest

import events as ev
from stack import free_port, running_stack, wait_for
from test_records_read import REFRESH_MS, Clinic, ago, query, rfc


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the swap replaces schema `read` of the whole
    database under the other modules' fixtures (see test_rebuild.py)."""
    with running_stack() as s:
        yield s


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
    p = ev.EventProducer(stack.brokers, transactional_id=f"e2e-rec-rebuild-{uuid.uuid4()}")
    yield p
    p.close()


def test_projector_rebuild_keeps_the_records_and_the_analysts_refusal(stack, daemons,
                                                                      producer):
    c = Clinic(stack, producer, daemons[1])
    r = ev.new_id()
    c.send([c.open(r, c.p1, visit_date="2026-09-09"), c.soap(r, subjective="SECRET"),
            c.diagnosis(r, "Otitis", True, code="VN-7"),
            c.treatment(r, "Rabies", performed_at=rfc(ago(days=2)), next_due_on="2026-12-24"),
            c.rec("MedicalRecordSigned", r, {}),
            c.rec("AddendumAdded", r, {"addendum_id": ev.new_id(), "text": "SECRET too"})])
    before = c.ok(f"/v1/medical-records/{r}")
    timeline = c.ok(f"/v1/patients/{c.p1}/timeline")
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"])
    try:
        code = rebuild.proc.wait(timeout=180)
    except Exception:
        rebuild.terminate()
        raise
    assert code == 0, "\n".join(rebuild.log_lines()[-20:])

    def answer(path, **params):
        resp = c.get(path, **params)
        return resp.json() if resp.status_code == 200 else resp.status_code
    wait_for(lambda: answer(f"/v1/medical-records/{r}") == before, timeout=30,
             what="the record answered from the swapped-in schema")
    assert answer(f"/v1/patients/{c.p1}/timeline") == timeline

    def analyst(text):
        with psycopg.connect(stack.dsn("analyst"), autocommit=True) as conn:
            conn.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (c.t,))
            return conn.execute(text).fetchall()
    wait_for(lambda: analyst("SELECT month::text, code, diagnoses FROM read.diagnosis_counts")
             == [("2026-09-01", "VN-7", 1)], what="diagnosis counts after the rebuild")
    assert analyst("SELECT treatment_type, performed FROM read.treatment_counts") == \
        [("vaccination", 1)]
    for table in ("medical_records", "addenda", "diagnoses", "treatments"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst(f"SELECT * FROM read.{table}")
    assert analyst("SELECT count(*) FROM read.event_log WHERE aggregate = 'medical_record'") \
        == [(0,)]

    # the trigger that keeps the dashboard and daily stats was pinned by name to
    # the fresh schema (SET search_path FROM CURRENT): the swap re-pins it
    appt = ev.new_id()
    start = ago(days=-3)
    c.send([ev.envelope("AppointmentScheduled", c.t, "appointment", appt, 1,
                        {"patient_id": c.p1, "vet_id": c.vet, "start": rfc(start),
                         "end": rfc(start + timedelta(minutes=30)), "type": "consultation",
                         "reason": None})])
    assert query(stack, "SELECT count(*) FROM read.appointment_dashboard "
                        "WHERE tenant_id = %s AND appointment_id = %s", (c.t, appt)) == [(1,)]
    assert not query(stack, "SELECT error FROM read.dead_letters WHERE tenant_id = %s", (c.t,))
