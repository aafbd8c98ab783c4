"""pytest fixtures: one isolated stack (PostgreSQL + Kafka) per test session,
always torn down, even when a test fails or the session is interrupted."""

import atexit
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from stack import Stack  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    atexit.register(s.stop)  # also on KeyboardInterrupt
    try:
        s.start()
        print(f"\nkafka ready in {s.kafka_ready_seconds:.1f}s", file=sys.stderr)
        yield s
    finally:
        reports = s.stop()
        atexit.unregister(s.stop)
    assert not reports, "sanitizer reports in daemon logs:\n" + "\n".join(reports)
