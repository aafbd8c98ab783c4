"""pytest fixtures: one isolated stack (PostgreSQL + Kafka) per test session,
always torn down, even when a test fails or the session is interrupted."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from stack import running_stack  # noqa: E402


TIMINGS = {}


def pytest_terminal_summary(terminalreporter):
    if "kafka_ready_s" in TIMINGS:
        terminalreporter.write_line(
            f"e2e stack: kafka ready in {TIMINGS['kafka_ready_s']:.1f}s "
            f"(start to metadata answered)")
    from replicated_kafka import REPORT
    for line in REPORT:
        terminalreporter.write_line("replicated log: " + line)


@pytest.fixture(scope="session")
def stack():
    with running_stack() as s:
        TIMINGS["kafka_ready_s"] = s.kafka_ready_seconds
        yield s
