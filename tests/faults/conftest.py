"""Fault tests: real daemons killed, a real PostgreSQL cut off, a relay gone. Their figures
are printed at the end of the run, so a CI log shows them without -s."""

from __future__ import annotations

import pytest

from tests.faults.harness import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault test figures")
    for test, figures in FIGURES:
        terminalreporter.write_line(f"{test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
