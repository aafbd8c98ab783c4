"""Analysts per tenant (issue 15): `vetctl analyst create --tenant A` makes a
PostgreSQL login that reads tenant A in every table and view open to analysts,
and nothing of tenant B whatever it does: set_config('vetpms.tenant_id', B),
SET ROLE to the analysts' group or to the tenant roles, the base tables and
materialized views behind the views, the reader's page functions. The scope is
keyed on the login, so it holds after a `projector rebuild` swapped schema
`read`, and the platform-wide login vetpms_analyst still picks any tenant."""

import os
import subprocess
import tempfile

import psycopg
import pytest

from stack import ROOT, free_port, running_stack, wait_for

# Every view analysts read, and every table of read they may SELECT.
VIEWS = ["appointment_type_mix", "diagnosis_counts", "treatment_counts", "stock_valuation",
         "stock_usage_monthly", "revenue"]
TABLES = ["tenants", "staff", "clients", "patients", "weights", "allergies", "conditions",
          "event_log", "availability_blocks", "appointments", "appointment_dashboard",
          "daily_appointment_stats", "inventory_items", "invoices", "invoice_lines", "payments",
          "refunds"]
# what the demo clinic fills, for sure, in each tenant
FILLED = VIEWS + ["tenants", "staff", "clients", "patients", "event_log", "availability_blocks",
                  "appointments", "appointment_dashboard", "daily_appointment_stats",
                  "inventory_items", "invoices", "invoice_lines", "payments"]
# relations analysts have no privilege on at all
DENIED = ["medical_records", "diagnoses", "stock_movements", "stock_batches", "client_ledger",
          "revenue_monthly", "appointment_type_mix_monthly", "diagnosis_counts_monthly",
          "revenue_monthly_summary", "dead_letters"]


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the rebuild replaces schema `read` of the whole
    database under the other modules' feet."""
    with running_stack() as s:
        yield s


def run_demo(stack, writer, tid):
    """scripts/demo.sh into an existing tenant (its tenant file names it)."""
    var = tempfile.mkdtemp(prefix="demo-", dir=stack.dir)
    with open(os.path.join(var, "demo_tenant_id"), "w") as f:
        f.write(tid)
    env = dict(stack.env, VETPMS_VAR_DIR=var, VETPMS_WRITER_PORT=str(writer.port))
    r = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=env, text=True,
                       capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr


def counts(conn, tid):
    """{relation: (rows of tid, rows of any other tenant)} as this session sees them."""
    out = {}
    for rel in VIEWS + TABLES:
        out[rel] = conn.execute(
            f"SELECT count(*) FILTER (WHERE tenant_id = %s),"
            f" count(*) FILTER (WHERE tenant_id IS DISTINCT FROM %s) FROM read.{rel}",
            (tid, tid)).fetchone()
    return out


@pytest.fixture(scope="module")
def clinics(stack):
    projector, reader, writer = stack.start_all()
    a = stack.provision(writer, "Scoped Vets A", "Europe/London", "GBP")
    b = stack.provision(writer, "Scoped Vets B", "Europe/London", "GBP")
    run_demo(stack, writer, a)
    run_demo(stack, writer, b)

    def all_filled():
        with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
            for tid in (a, b):
                su.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (tid,))
                seen = counts(su, tid)
                if any(seen[rel][0] == 0 for rel in FILLED):
                    return False
        return True
    wait_for(all_filled, timeout=90, what="both demo clinics projected, views refreshed")
    yield projector, reader, writer, a, b
    for d in (writer, reader, projector):
        d.terminate()


def analyst_dsn(stack, login, password):
    return (f"host=127.0.0.1 port={stack.ports['pg']} dbname=vetpms user={login} "
            f"password={password}")


def tenant_role(tid):
    return "vetpms_tenant_" + tid.replace("-", "")


def assert_sees_only(conn, a):
    """Every relation shows rows of a (where the demo made some), none of another."""
    seen = counts(conn, a)
    assert {rel: n for rel, (_, n) in seen.items() if n} == {}, "rows of another tenant"
    assert [rel for rel in FILLED if seen[rel][0] == 0] == [], "relations without a's rows"


def assert_sees_nothing(conn, b):
    seen = counts(conn, b)
    assert {rel: c for rel, c in seen.items() if c != (0, 0)} == {}


def check_scope(stack, password, a, b):
    with psycopg.connect(analyst_dsn(stack, "clinic_a_analyst", password),
                         autocommit=True) as an:
        # the login's default tenant: no SET needed
        assert an.execute("SELECT current_setting('vetpms.tenant_id')").fetchone()[0] == a
        assert_sees_only(an, a)
        # setting another tenant shows nothing of it (nor of a)
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (b,))
        assert_sees_nothing(an, b)
        # nor as the analysts' group
        an.execute("SET ROLE vetpms_scoped_analyst")
        assert an.execute("SELECT current_user").fetchone()[0] == "vetpms_scoped_analyst"
        assert_sees_nothing(an, b)
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (a,))
        assert_sees_only(an, a)
        an.execute("RESET ROLE")
        # roles it is no member of are out of reach: the platform-wide login
        # (whose password it could change as that role), the all-tenants
        # grant, the reader, another tenant's grant (which may not exist yet)
        for role in ("vetpms_analyst", "vetpms_all_tenants", "vetpms_reader", "vetpms_projector",
                     tenant_role(b)):
            with pytest.raises((psycopg.errors.InsufficientPrivilege,
                                psycopg.errors.InvalidParameterValue)):
                an.execute(f"SET ROLE {role}")
        # its own tenant role carries no privilege: a grant counts for the login
        for role in (tenant_role(a),):
            an.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                an.execute("SELECT count(*) FROM read.clients")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                an.execute("SELECT count(*) FROM read.revenue")
            an.execute("RESET ROLE")
        # what is behind the views, and clinical and ops tables: no privilege
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (b,))
        for rel in DENIED:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                an.execute(f"SELECT count(*) FROM read.{rel}")
        # the reader's page functions filter on the setting alone: not analysts'
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            an.execute("SELECT * FROM read.patient_page_ids(NULL, NULL, NULL, NULL, NULL, 50)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            an.execute("SELECT * FROM read.client_page_ids(NULL, NULL, NULL, 50)")
        # a transaction-local setting changes nothing either
        with an.transaction():
            an.execute("SELECT set_config('vetpms.tenant_id', %s, true)", (b,))
            assert an.execute("SELECT count(*) FROM read.clients").fetchone()[0] == 0
            assert an.execute("SELECT count(*) FROM read.revenue").fetchone()[0] == 0

    # the platform-wide login of operators still reads any one tenant it picks
    with psycopg.connect(stack.dsn("analyst"), autocommit=True) as op:
        assert op.execute("SELECT count(*) FROM read.clients").fetchone()[0] == 0
        op.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (b,))
        assert_sees_only(op, b)


def test_the_scoped_group_has_the_privileges_of_vetpms_analyst(stack, clinics):
    """vetpms_scoped_analyst holds a copy of vetpms_analyst's privileges (it
    cannot be a member of that login): a migration that grants or revokes for
    one and forgets the other fails here."""
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as su:
        rows = su.execute(
            "SELECT r.rolname, c.relname, a.privilege_type"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
            " aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee"
            " WHERE n.nspname = 'read'"
            " AND r.rolname IN ('vetpms_analyst', 'vetpms_scoped_analyst')").fetchall()
        policies = su.execute("SELECT tablename, policyname, roles::text[] FROM pg_policies"
                              " WHERE schemaname = 'read' AND 'vetpms_analyst' = ANY (roles)"
                              ).fetchall()
    by_role = {role: {(rel, priv) for r, rel, priv in rows if r == role}
               for role in ("vetpms_analyst", "vetpms_scoped_analyst")}
    assert by_role["vetpms_analyst"] and by_role["vetpms_analyst"] == by_role["vetpms_scoped_analyst"]
    assert policies and all("vetpms_scoped_analyst" in roles for _, _, roles in policies)


def test_an_analyst_login_reads_its_tenant_only_also_after_a_rebuild(stack, clinics):
    projector, reader, writer, a, b = clinics
    su_dsn = stack.superuser_dsn()
    r = stack.vetctl("analyst", "create", "--tenant", a, "--login", "clinic_a_analyst",
                     "--dsn", su_dsn)
    password = r.stdout.strip()
    assert len(password) >= 32
    # a second create of the same login is refused; names of platform roles too
    assert stack.vetctl("analyst", "create", "--tenant", a, "--login", "clinic_a_analyst",
                        "--dsn", su_dsn, check=False).returncode == 1
    for login in ("vetpms_reader", "vetpms_all_tenants", tenant_role(b), "Bad-Name"):
        assert stack.vetctl("analyst", "create", "--tenant", a, "--login", login,
                            "--dsn", su_dsn, check=False).returncode == 2
    check_scope(stack, password, a, b)

    # a grant adds tenant b, a revoke takes it back
    stack.vetctl("analyst", "grant", "--tenant", b, "--login", "clinic_a_analyst", "--dsn", su_dsn)
    with psycopg.connect(analyst_dsn(stack, "clinic_a_analyst", password), autocommit=True) as an:
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (b,))
        assert_sees_only(an, b)
    stack.vetctl("analyst", "revoke", "--tenant", b, "--login", "clinic_a_analyst", "--dsn", su_dsn)
    with psycopg.connect(analyst_dsn(stack, "clinic_a_analyst", password), autocommit=True) as an:
        an.execute("SELECT set_config('vetpms.tenant_id', %s, false)", (b,))
        assert_sees_nothing(an, b)
    # only analyst logins get tenants
    assert stack.vetctl("analyst", "grant", "--tenant", b, "--login", "nobody_here",
                        "--dsn", su_dsn, check=False).returncode == 1

    # blue/green rebuild: schema read is replaced, the scope is not
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"])
    try:
        code = rebuild.proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        rebuild.terminate()
        code = "timeout"
    assert code == 0, "\n".join(ln for ln in rebuild.log_lines() if "\"batch\"" not in ln)[-3000:]
    assert "schema read_next is live as read" in "\n".join(rebuild.log_lines())
    check_scope(stack, password, a, b)
