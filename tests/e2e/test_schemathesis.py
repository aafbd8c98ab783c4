"""Conformance: schemathesis (from .cache/venv, scripts/venv.sh) against
schema/openapi.yaml on both daemons of a stack of its own — every operation,
`--checks all` but what tests/e2e/schemathesis.toml turns off with its reason,
a fixed seed, few examples per operation and no stateful phase, so the
smoke stays around a minute. The spec is split per daemon (each path names its daemon with
`servers`), and the run is judged from its JUnit report: every failure fails
this test. Two checks are left out, each with its reason below and in
docs/decisions.md ("Conformance run"). See docs/conformance.md to run it by
hand or longer."""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from stack import ROOT, free_port, running_stack

ST = os.path.join(os.environ.get("VETPMS_CACHE_DIR", os.path.join(ROOT, ".cache")),
                  "venv", "bin", "st")
SPEC_PATH = os.path.join(ROOT, "schema", "openapi.yaml")
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SEED = os.environ.get("VETPMS_SCHEMATHESIS_SEED", "20261130")
EXAMPLES = os.environ.get("VETPMS_SCHEMATHESIS_EXAMPLES", "5")
# one worker: hypothesis describing strategies from several threads at once
# fails now and then ("AST constructor recursion depth mismatch")
WORKERS = os.environ.get("VETPMS_SCHEMATHESIS_WORKERS", "1")
# the stateful phase (sequences of commands along inferred links) doubles the
# run's time and found nothing the others did not: on by hand, see
# docs/conformance.md
PHASES = os.environ.get("VETPMS_SCHEMATHESIS_PHASES", "examples,coverage,fuzzing")
def spec_of(spec, daemon, url):
    """The operations daemon serves, under one server: url."""
    out = {k: v for k, v in spec.items() if k != "servers"}
    out["servers"] = [{"url": url}]
    out["paths"] = {}
    for path, item in spec["paths"].items():
        item = dict(item)
        servers = item.pop("servers", None) or spec["servers"]
        kept = {}
        for key, value in item.items():
            if key not in METHODS:
                kept[key] = value
            elif daemon in {s.get("x-daemon") for s in value.get("servers") or servers}:
                kept[key] = {k: v for k, v in value.items() if k != "servers"}
        if any(m in kept for m in METHODS):
            out["paths"][path] = kept
    return out


def failures_of(junit_path):
    """[(operation, test case text)] of every failing case, and the run's errors."""
    root = ET.parse(junit_path).getroot()
    cases, errors = [], []
    for case in root.iter("testcase"):
        for failure in case.findall("failure"):
            for block in re.split(r"(?m)^(?=\d+\. Test Case ID: )", failure.text or ""):
                if block.strip():
                    cases.append((case.get("name"), block))
        for error in case.findall("error"):
            errors.append((case.get("name"), (error.text or error.get("message") or "")[:2000]))
    return cases, errors


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: the run writes hundreds of odd but valid commands."""
    if not os.access(ST, os.X_OK):
        pytest.fail(f"{ST} is missing: run `make deps` (scripts/venv.sh)")
    with running_stack() as s:
        yield s


@pytest.fixture(scope="module")
def daemons(stack):
    # a short consistency wait: generated positions lie far ahead of the log,
    # and each would hold its request for the default 2 s before its 504
    # and rate limits out of the way: at full speed one token goes past 500
    # requests/s, and a 429 (declared on every operation) would stand in for
    # the answer the case was generated to check
    unlimited = {"VETPMS_RATE_TOKEN_PER_S": "0", "VETPMS_RATE_TENANT_PER_S": "0"}
    projector = stack.start_daemon("projector", port=free_port())
    reader = stack.start_daemon("query-reader", port=free_port(),
                                env={"VETPMS_CONSISTENCY_WAIT_MS": "100", **unlimited})
    writer = stack.start_daemon("cmd-writer", port=free_port(), env=unlimited)
    for d in (projector, reader, writer):
        d.wait_ready(90)
    tid = stack.provision(writer, "Conformance Vets", "Europe/London", "GBP")
    token = stack.token(["admin", "vet", "nurse", "reception"], tenant=tid)
    yield {"cmd-writer": writer, "query-reader": reader}, token
    for d in (writer, reader, projector):
        d.terminate()


@pytest.mark.parametrize("daemon", ["cmd-writer", "query-reader"])
def test_schemathesis_finds_no_failure(stack, daemons, daemon, tmp_path):
    by_name, token = daemons
    url = by_name[daemon].url
    with open(SPEC_PATH, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    spec_path = tmp_path / f"{daemon}.json"
    spec_path.write_text(json.dumps(spec_of(spec, daemon, url)))
    junit = tmp_path / "junit.xml"
    cmd = [ST, "--config-file", CONFIG, "run", str(spec_path), "--url", url,
           # positive_data_acceptance ("schema-valid data is accepted") cannot
           # hold for the rules JSON Schema has no words for, which the spec
           # states in prose: cross-field (`to` after `from`), relative to now
           # (in the future), UTF-8 byte limits, signed cursors bound to their
           # list, ids of existing aggregates, If-Match versions, no NUL in text
           # unsupported_method (an undeclared method gets 405 with Allow):
           # libevent 2.1 stops a method it does not know (QUERY, FOO) before
           # our routers, so our evhttp_send_error answers 405 with the error
           # body but cannot know the path's Allow (and 400 when such a
           # request has a body libevent cannot frame); TRACE and the declared
           # methods do get the router's 405 with Allow (test_http_limits.py)
           "--checks", "all",
           "--exclude-checks", "positive_data_acceptance,unsupported_method",
           "--seed", SEED, "--max-examples", EXAMPLES, "--phases", PHASES,
           "--generation-database", "none", "--workers", WORKERS, "--request-timeout", "10",
           "-H", f"Authorization: Bearer {token}",
           "--report", "junit", "--report-junit-path", str(junit), "--no-color"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = r.stdout[r.stdout.rfind("SUMMARY"):] if "SUMMARY" in r.stdout else r.stdout[-3000:]
    assert junit.exists(), f"schemathesis did not run ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    cases, errors = failures_of(junit)
    assert not errors, f"schemathesis errors: {errors[:3]}\n{summary}"
    assert not cases, (f"{len(cases)} failures:\n"
                       + "\n".join(f"{op}\n{text[:1500]}" for op, text in cases[:8]) + summary)
    assert r.returncode == 0, summary
