#!/usr/bin/env python3
"""Writes schema/events/<Type>.v<N>.json for an event type from the event catalog
in code (`vetctl catalog`), in the form tests/e2e/test_event_catalog.py checks:
the envelope of EVENTS.md, then data member by member (types, nullability, enums,
lengths, ranges, nested items). The description is the one thing the catalog
does not hold.

    scripts/gen-event-schema.py [--bin DIR] [--absent-ok] Type "What happened, in one sentence."

--absent-ok: the event carries only what changed (SoapNoteWritten's merge,
ClientContactUpdated), so its optional members may be absent as well as null;
without it every member is required (optional ones nullable).
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UUID = {"type": "string",
        "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
DATE = {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\d$"}
TIME = {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,6})?Z$"}


def member(field, absent_ok=False):
    """The JSON Schema of one catalog field; nullable when optional. A nested
    object inherits absent_ok (ClientContactUpdated v2's sealed members)."""
    kind = field["type"]
    if "enum" in field:
        form = {"enum": field["enum"]}
    elif kind in ("uuid", "date", "time"):
        form = dict({"uuid": UUID, "date": DATE, "time": TIME}[kind])
    elif kind == "string":
        form = {"type": "string"}
        if "max_len" in field:
            form["maxLength"] = field["max_len"]
        if "min_len" in field:
            form["minLength"] = field["min_len"]
    elif kind == "int":
        form = {"type": "integer"}
        if "min" in field:
            form["minimum"], form["maximum"] = field["min"], field["max"]
    elif kind == "bool":
        form = {"type": "boolean"}
    elif kind == "object":
        form = data_object(field["fields"], absent_ok)
    elif kind == "array":
        form = {"type": "array", "items": data_object(field["fields"])}
        if "min_len" in field:
            form["minItems"] = field["min_len"]
        if "max_len" in field:
            form["maxItems"] = field["max_len"]
    else:
        raise SystemExit(f"gen-event-schema: no schema form for {kind}")
    if field["required"]:
        return form
    if "type" in form and isinstance(form["type"], str) and set(form) <= {
            "type", "maxLength", "minLength", "minimum", "maximum"}:
        return dict(form, type=[form["type"], "null"])
    return {"anyOf": [form, {"type": "null"}]}


def data_object(fields, absent_ok=False):
    return {"type": "object", "additionalProperties": False,
            "required": [f["name"] for f in fields if f["required"] or not absent_ok],
            "properties": {f["name"]: member(f, absent_ok) for f in fields}}


def schema(entry, description, absent_ok=False):
    name = f"{entry['type']}.v{entry['v']}"
    envelope = ["id", "type", "v", "tenant_id", "aggregate", "aggregate_id", "seq",
                "command_id", "actor", "at", "data"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://vetpms.example/schema/events/{name}.json",
        "title": f"{entry['type']} v{entry['v']}",
        "description": description + " Envelope as in EVENTS.md.",
        "type": "object",
        "additionalProperties": False,
        "required": envelope,
        "properties": {
            "id": UUID, "type": {"const": entry["type"]}, "v": {"const": entry["v"]},
            "tenant_id": UUID, "aggregate": {"const": entry["aggregate"]},
            "aggregate_id": UUID, "seq": {"type": "integer", "minimum": 1},
            "command_id": {"type": "string", "minLength": 1, "maxLength": 255},
            "actor": {"type": "string", "minLength": 1, "maxLength": 128},
            "at": TIME, "data": data_object(entry["fields"], absent_ok),
        },
    }


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--bin", default=os.environ.get("VETPMS_BIN_DIR",
                                                      os.path.join(ROOT, "bin")))
    args.add_argument("--absent-ok", action="store_true",
                      help="optional data members may be absent (events of changes only)")
    args.add_argument("type")
    args.add_argument("description")
    opts = args.parse_args()
    catalog = json.loads(subprocess.run([os.path.join(opts.bin, "vetctl"), "catalog"],
                                        check=True, capture_output=True, text=True).stdout)
    entries = [e for e in catalog if e["type"] == opts.type and e["specified"]]
    if not entries:
        sys.exit(f"gen-event-schema: {opts.type} has no data table in the catalog")
    entry = max(entries, key=lambda e: e["v"])
    path = os.path.join(ROOT, "schema", "events", f"{entry['type']}.v{entry['v']}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(schema(entry, opts.description, opts.absent_ok), f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(path)


if __name__ == "__main__":
    main()
