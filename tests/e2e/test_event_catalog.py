"""schema/events/ against the event catalog in code (common/vp_catalog.c, as
`vetctl catalog` prints it): one schema file per specified event type and
version, with the type's aggregate, and data members that match the catalog's
field table member by member (types, nullability, enums, lengths, ranges,
nested items). The catalog is the one place event types are written; the
schemas are its published form and must not drift from it. Needs no stack."""

import glob
import json
import os
import subprocess

import pytest

from stack import BIN_DIR, ROOT

SCHEMA_DIR = os.path.join(ROOT, "schema", "events")
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
DATE_PATTERN = "^\\d{4}-\\d\\d-\\d\\d$"
TIME_PATTERN = "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,6})?Z$"
JSON_TYPES = {"string": "string", "uuid": "string", "date": "string", "time": "string",
              "int": "integer", "number": "number", "bool": "boolean", "object": "object",
              "array": "array"}
PATTERNS = {"uuid": UUID_PATTERN, "date": DATE_PATTERN, "time": TIME_PATTERN}


@pytest.fixture(scope="module")
def catalog():
    out = subprocess.run([os.path.join(BIN_DIR, "vetctl"), "catalog"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def schemas():
    found = {}
    for path in sorted(glob.glob(os.path.join(SCHEMA_DIR, "*.json"))):
        with open(path, encoding="utf-8") as f:
            found[os.path.basename(path)] = json.load(f)
    return found


def alternatives(prop):
    """The non-null alternatives of a schema property, and whether null is allowed."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return options, len(options) < len(prop["anyOf"])
    types = prop.get("type")
    if isinstance(types, list):
        single = dict(prop, type=[t for t in types if t != "null"][0])
        return [single], "null" in types
    return [prop], False


def check_field(where, field, prop):
    options, nullable = alternatives(prop)
    assert len(options) == 1, f"{where}: one non-null form expected"
    form = options[0]
    assert nullable == (not field["required"]), f"{where}: nullable iff optional"
    if "enum" in field:
        assert form.get("enum") == field["enum"], f"{where}: enum differs from the catalog"
        return
    assert form.get("type") == JSON_TYPES[field["type"]], f"{where}: type"
    if field["type"] in PATTERNS:
        assert form.get("pattern") == PATTERNS[field["type"]], f"{where}: pattern"
    if field["type"] == "string" and "pattern" not in form:
        # JSON Schema counts characters, the catalog bytes: the same number
        # is the same limit for ASCII and stricter in the catalog otherwise.
        assert form.get("maxLength") == field.get("max_len"), f"{where}: maxLength"
        assert form.get("minLength") == field.get("min_len"), f"{where}: minLength"
    if field["type"] == "int" and "min" in field:
        assert form.get("minimum") == field["min"], f"{where}: minimum"
        if "maximum" in form:
            assert form["maximum"] == field["max"], f"{where}: maximum"
    if field["type"] == "array":
        assert form.get("minItems") == field.get("min_len"), f"{where}: minItems"
        check_object(where + "[]", field["fields"], form["items"])
    if field["type"] == "object" and "fields" in field:
        check_object(where, field["fields"], form)


def check_object(where, fields, schema):
    assert schema.get("additionalProperties") is False, f"{where}: unknown members allowed"
    props = schema.get("properties", {})
    assert set(props) == {f["name"] for f in fields}, f"{where}: members differ"
    required = set(schema.get("required", []))
    for field in fields:
        if field["required"]:
            assert field["name"] in required, f"{where}.{field['name']}: must be required"
        check_field(f"{where}.{field['name']}", field, props[field["name"]])


def test_every_specified_event_type_has_its_schema_and_no_other(catalog, schemas):
    expected = {f"{e['type']}.v{e['v']}.json" for e in catalog if e["specified"]}
    assert set(schemas) == expected


def test_catalog_names_every_event_type_of_events_md_once(catalog):
    keys = [(e["type"], e["v"]) for e in catalog]
    assert len(keys) == len(set(keys))
    assert len(catalog) >= 46


def test_each_schema_matches_its_catalog_entry(catalog, schemas):
    for entry in catalog:
        if not entry["specified"]:
            continue
        schema = schemas[f"{entry['type']}.v{entry['v']}.json"]
        props = schema["properties"]
        assert props["type"] == {"const": entry["type"]}
        assert props["v"] == {"const": entry["v"]}
        assert props["aggregate"] == {"const": entry["aggregate"]}
        check_object(entry["type"] + ".data", entry["fields"], props["data"])
