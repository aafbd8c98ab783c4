"""schema/openapi.yaml against the code: every cmd-writer command route (the
WrCommand tables of cmd-writer/decide_*.c) is in the spec with its method, roles
and body fields, and nothing else is listed as a writer route; every operation
names its roles and its error answers. The command tables come from
`cmd-writer --list-commands`. Needs no running stack."""

import collections
import json
import os
import subprocess

import pytest
import yaml

from stack import BIN_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PATH = os.path.join(ROOT, "schema", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BUILTIN_PATHS = {"/healthz", "/readyz", "/metrics"}  # common/vp_service.c, both daemons
# Writer routes that are not commands of the tables (cmd-writer/http_api.c routes
# them before the tables): the ops tenant import (cmd-writer/import.c).
WRITER_OPS_ROUTES = {("/v1/ops/tenants/{tenant_id}/import", "post"): {"platform-ops"}}


def c_commands():
    """[(name, method, path, roles set, {field: required})] from the writer's own
    command tables (`cmd-writer --list-commands`), not from a parse of its C."""
    out = subprocess.run([os.path.join(BIN_DIR, "cmd-writer"), "--list-commands"],
                         check=True, capture_output=True, text=True).stdout
    return [(c["name"], c["method"].lower(), c["pattern"], set(c["roles"]),
             {f["name"]: f["required"] for f in c["fields"]}) for c in json.loads(out)]


class StrictLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys without a word: two path items of
    one path (a writer's POST, a reader's GET) would silently lose one."""


def _mapping(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    repeated = sorted(k for k, n in collections.Counter(keys).items() if n > 1)
    if repeated:
        raise AssertionError(f"openapi.yaml line {node.start_mark.line + 1}: "
                             f"repeated keys {repeated}")
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@pytest.fixture(scope="module")
def spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return yaml.load(f, StrictLoader)


@pytest.fixture(scope="module")
def commands():
    found = c_commands()
    assert len(found) >= 12, f"listed only {len(found)} commands"
    return found


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"external $ref {ref}"
        target = spec
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item, item[method]


def daemons_of(spec, item, op):
    servers = op.get("servers") or item.get("servers") or spec["servers"]
    return {s.get("x-daemon") for s in servers}


def writer_operations(spec):
    return {(path, method): op for path, method, item, op in operations(spec)
            if path not in BUILTIN_PATHS and "cmd-writer" in daemons_of(spec, item, op)}


def test_spec_parses_as_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    daemons = {s["x-daemon"]: s for s in spec["servers"]}
    assert set(daemons) == {"cmd-writer", "query-reader"}
    assert daemons["cmd-writer"]["variables"]["writer_port"]["default"] == "8080"
    assert daemons["query-reader"]["variables"]["reader_port"]["default"] == "8081"
    bearer = spec["components"]["securitySchemes"]["bearer"]
    assert bearer["type"] == "http" and bearer["scheme"] == "bearer"
    assert bearer["bearerFormat"] == "JWT"


def test_every_path_names_its_daemon(spec):
    for path, item in spec["paths"].items():
        assert item.get("servers"), f"{path} has no path-level servers"
        for method in METHODS:
            if method in item:
                assert len(daemons_of(spec, item, item[method])) == 1 or path in BUILTIN_PATHS, \
                    f"{method.upper()} {path} is served by more than one daemon"


def test_writer_routes_match_the_command_tables(spec, commands):
    in_code = {(path, method) for _, method, path, _, _ in commands} | set(WRITER_OPS_ROUTES)
    in_spec = set(writer_operations(spec))
    assert in_code - in_spec == set(), "commands missing from the spec"
    assert in_spec - in_code == set(), "writer routes in the spec but not in the code"


def test_writer_roles_match_the_command_tables(spec, commands):
    ops = writer_operations(spec)
    for name, method, path, roles, _ in commands:
        assert set(ops[(path, method)]["x-roles"]) == roles, name
    for route, roles in WRITER_OPS_ROUTES.items():
        assert set(ops[route]["x-roles"]) == roles, route


def test_every_operation_has_roles_and_auth_errors(spec):
    for path, method, _, op in operations(spec):
        assert isinstance(op.get("x-roles"), list), f"{method.upper()} {path} has no x-roles"
        secured = op.get("security", spec.get("security")) not in (None, [])
        if secured:
            assert op["x-roles"], f"{method.upper()} {path}: empty x-roles"
            for status in ("401", "403"):
                assert status in op["responses"], f"{method.upper()} {path} lacks {status}"
        else:
            assert path in BUILTIN_PATHS, f"{method.upper()} {path} is unauthenticated"


def test_writer_commands_declare_their_errors(spec, commands):
    ops = writer_operations(spec)
    for name, method, path, _, _ in commands:
        responses = ops[(path, method)]["responses"]
        # every body is validated; any Idempotency-Key can be reused (409)
        for status in ("400", "409", "413", "415", "421", "503"):
            assert status in responses, f"{name} lacks {status}"
        # NOT_FOUND: the path's aggregate or a referenced one, or an unprovisioned tenant
        if name != "ProvisionTenant":
            assert "404" in responses, f"{name} lacks 404"
        if "{id}" in path:
            assert "412" in responses, f"{name} (If-Match) lacks 412"
            assert "200" in responses, f"{name} lacks 200"
        else:
            assert "201" in responses, f"{name} creates: lacks 201"
            created = resolve(spec, responses["201"])
            assert "Location" in created["headers"], f"{name}: 201 without Location"
        ok = resolve(spec, responses["200" if "{id}" in path else "201"])
        assert {"ETag", "X-Consistency-Token", "Idempotent-Replayed"} <= set(ok["headers"])
        schema = resolve(spec, ok["content"]["application/json"]["schema"])
        assert set(schema["required"]) == {"id", "version", "events", "position"}


def test_writer_body_fields_match_the_field_tables(spec, commands):
    ops = writer_operations(spec)
    for name, method, path, _, fields in commands:
        body = resolve(spec, ops[(path, method)]["requestBody"])
        schema = resolve(spec, body["content"]["application/json"]["schema"])
        assert schema.get("additionalProperties") is False, name
        assert set(schema["properties"]) == set(fields), name
        required = {f for f, req in fields.items() if req}
        assert set(schema.get("required", [])) == required, name
        if required:
            assert body.get("required") is True, name


def test_error_responses_use_the_error_body(spec):
    error = spec["components"]["schemas"]["Error"]
    inner = error["properties"]["error"]
    assert set(inner["required"]) == {"code", "message", "details", "timestamp", "request_id"}
    assert set(inner["properties"]["details"]["items"]["properties"]) == {"field", "issue"}
    for name, response in spec["components"]["responses"].items():
        if name in ("Created", "Done"):
            continue
        ref = response["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error", name
    assert "Allow" in spec["components"]["responses"]["MethodNotAllowed"]["headers"]


def test_reader_queries_in_scope(spec):
    expected = {
        ("/v1/clients", "get"), ("/v1/clients/{id}", "get"), ("/v1/patients", "get"),
        ("/v1/patients/{id}", "get"), ("/v1/patients/{id}/weights", "get"),
        ("/v1/staff", "get"), ("/v1/staff/{id}", "get"), ("/v1/events", "get"),
        ("/v1/staff/{id}/availability", "get"), ("/v1/availability", "get"),
        ("/v1/appointments", "get"), ("/v1/appointments/{id}", "get"),
        ("/v1/dashboards/appointments", "get"), ("/v1/stats/appointments/daily", "get"),
        ("/v1/medical-records/{id}", "get"), ("/v1/medical-records/{id}/history", "get"),
        ("/v1/patients/{id}/medical-records", "get"), ("/v1/patients/{id}/timeline", "get"),
        ("/v1/reminders/vaccinations", "get"),
        ("/v1/inventory/items", "get"), ("/v1/inventory/items/{id}", "get"),
        ("/v1/inventory/items/{id}/register", "get"), ("/v1/inventory/expiring", "get"),
        ("/v1/inventory/recall", "get"),
        ("/v1/invoices", "get"), ("/v1/invoices/{id}", "get"),
        ("/v1/clients/{id}/statement", "get"), ("/v1/stats/revenue/monthly", "get"),
    }
    # computed answers (free time, dashboard, stats) are not paged
    lists = {"/v1/clients", "/v1/patients", "/v1/patients/{id}/weights", "/v1/staff",
             "/v1/events", "/v1/appointments", "/v1/medical-records/{id}/history",
             "/v1/patients/{id}/medical-records", "/v1/patients/{id}/timeline",
             "/v1/reminders/vaccinations", "/v1/inventory/items",
             "/v1/inventory/items/{id}/register", "/v1/inventory/expiring", "/v1/invoices",
             "/v1/clients/{id}/statement"}
    # lists whose answer has members beside the page (a statement's balances)
    beside_data = {"/v1/clients/{id}/statement": {
        "client_id", "from", "to", "currency", "currency_exponent", "opening_balance_cents",
        "closing_balance_cents"}}
    found = {(path, method) for path, method, item, op in operations(spec)
             if path not in BUILTIN_PATHS and "query-reader" in daemons_of(spec, item, op)}
    # the stream (docs/streaming.md) is no query: no consistency token, no JSON
    assert found == expected | {("/v1/stream", "get")}
    stream = spec["paths"]["/v1/stream"]["get"]
    assert {resolve(spec, p)["name"] for p in stream["parameters"]} >= {
        "Last-Event-ID", "after", "types", "aggregate_id"}
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    for path, method in expected:
        op = spec["paths"][path][method]
        names = {resolve(spec, p)["name"] for p in op.get("parameters", [])}
        assert {"consistent_with", "X-Consistency-Token"} <= names, path
        assert "504" in op["responses"], path
        ok = resolve(spec, op["responses"]["200"]["content"]["application/json"]["schema"])
        if path in lists:
            assert {"limit", "cursor"} <= names, path
            assert set(ok["required"]) == {"data", "next_cursor"} | beside_data.get(path, set()), \
                path
            limit = next(resolve(spec, p) for p in op["parameters"]
                         if resolve(spec, p)["name"] == "limit")["schema"]
            assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)


def test_event_schema_refs_exist(spec):
    refs = spec["components"]["schemas"]["Event"]["x-event-schemas"]
    for type_, rel in refs.items():
        assert os.path.isfile(os.path.join(ROOT, "schema", rel)), f"{type_}: {rel}"
