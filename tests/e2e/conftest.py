"""pytest fixtures: one isolated stack (PostgreSQL + Kafka) per test session,
always torn down, even when a test fails or the session is interrupted."""

import atexit
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from stack import Stack  # noqa: E402


TIMINGS = {}


def pytest_terminal_summary(terminalreporter):
    if "kafka_ready_s" in TIMINGS:
        terminalreporter.write_line(
            f"e2e stack: kafka ready in {TIMINGS['kafka_ready_s']:.1f}s "
            f"(start to metadata answered)")


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    atexit.register(s.stop)  # also on KeyboardInterrupt
    try:
        s.start()
        TIMINGS["kafka_ready_s"] = s.kafka_ready_seconds
        yield s
    finally:
        reports = s.stop()
        atexit.unregister(s.stop)
    assert not reports, "sanitizer reports in daemon logs:\n" + "\n".join(reports)
