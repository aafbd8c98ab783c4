"""Row-by-row comparison of read model schemas, shared by the tests that check
a read model equals a rebuild (test_rebuild_bulk.py, test_deadletters.py,
test_fault_projection.py), and the rebuild itself."""

import subprocess

import psycopg

from stack import free_port


def query(stack, text, params=()):
    with psycopg.connect(stack.superuser_dsn(), autocommit=True) as conn:
        return conn.execute(text, params).fetchall()


def table_digests(stack, schema, exclude=()):
    """{table: (rows, md5 of the rows in text form)} of every base table of the
    schema but its migrations (applied_at), positions (positions(); the
    event_log rows say which events are in) and `exclude`; dead letters by
    position, tenant, error and payload only (not when they were recorded, nor
    how ops resolved them)."""
    tables = [t for (t,) in query(stack, "SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = %s AND table_type = 'BASE TABLE' "
                                         "AND table_name NOT IN ('schema_migrations',"
                                         " 'projection_offsets')", (schema,))
              if t not in exclude]
    out = {}
    for t in tables:
        cols = ("x.partition, x.\"offset\", x.tenant_id, x.error, x.payload"
                if t == "dead_letters" else "x.*")
        out[t] = query(stack, f"SELECT count(*), md5(coalesce(string_agg(r, '|' ORDER BY r), ''))"
                              f" FROM (SELECT ROW({cols})::text AS r FROM \"{schema}\".\"{t}\" x) s")[0]
    return out


def tenant_digests(stack, tenant, schema="read"):
    """{table: (rows, md5)} of one tenant's rows in every base table with a
    tenant_id column but the dead letters, without the columns that say where
    an event sits in one deployment's log (event_log's partition and offset):
    the read model of the same history in two deployments compares equal."""
    tables = [t for (t,) in query(stack, "SELECT c.table_name FROM information_schema.columns c "
                                         "JOIN information_schema.tables t USING (table_schema,"
                                         " table_name) WHERE c.table_schema = %s AND "
                                         "c.column_name = 'tenant_id' AND t.table_type = "
                                         "'BASE TABLE' AND c.table_name <> 'dead_letters'",
                                  (schema,))]
    out = {}
    for t in sorted(tables):
        out[t] = query(stack, f"SELECT count(*), md5(coalesce(string_agg(r, '|' ORDER BY r), ''))"
                              f" FROM (SELECT (to_jsonb(x) - 'partition' - 'offset')::text AS r"
                              f" FROM \"{schema}\".\"{t}\" x WHERE x.tenant_id = %s) s",
                       (tenant,))[0]
    return out


def run_rebuild(stack, env=None, timeout=240):
    """`projector rebuild` to its swap; its Daemon (it has exited 0)."""
    rebuild = stack.start_daemon("projector", port=free_port(), args=["rebuild"], env=env)
    try:
        code = rebuild.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rebuild.terminate()
        code = "timeout"
    assert code == 0, "\n".join(rebuild.log_lines()[-30:])
    return rebuild
