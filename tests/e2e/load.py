"""Commands under load for the outage tests (test_writer_outage.py,
test_writer_unknown_outcome.py, test_fault_projection.py): one POST with an
Idempotency-Key whose answer, or the exception that stood for it, is kept with
how long it took, so a test can check every answer against the log afterwards.

The log is matched by the envelope's `command_id` (the Idempotency-Key), never
by a personal field of the body: those are sealed in the log (issue 18)."""

import time

import requests


def keyed_post(url, token, key, body, timeout):
    """{key, body, status (int, or the exception's name), code, message,
    retry_after, data (the JSON answer or {}), started, took}."""
    t0 = time.monotonic()
    try:
        r = requests.post(url, json=body, timeout=timeout,
                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
        status, retry = r.status_code, r.headers.get("Retry-After")
        try:
            data = r.json()
        except ValueError:
            data = {}
    except requests.RequestException as e:
        status, retry, data = type(e).__name__, None, {}
    error = data.get("error", {}) if isinstance(status, int) and status >= 400 else {}
    return {"key": key, "body": body, "status": status, "code": error.get("code"),
            "message": error.get("message", ""), "retry_after": retry, "data": data,
            "started": t0, "took": time.monotonic() - t0}


def command_ids(log, tenant, type_="ClientRegistered"):
    """The command ids of the tenant's events of one type, in log order (a
    command appended twice shows up twice)."""
    return [e["command_id"] for e in log if e["tenant_id"] == tenant and e["type"] == type_]
