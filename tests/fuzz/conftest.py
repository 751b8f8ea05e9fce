"""Fuzz campaigns: a fixed-seed hypothesis profile, and their figures in the test summary."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

# Derandomised: the same test run (CI's whole suite) generates the same inputs every time.
# Hypothesis also mixes in constants it finds in the loaded local modules, so a run of only
# tests/fuzz draws somewhat different inputs than the whole suite does; a failure prints a
# @reproduce_failure blob that replays it anywhere (print_blob). The campaign sizes live in
# the tests (each names its share of the 10,000); GATEWAY_FUZZ_SCALE multiplies them for a
# longer local run (e.g. 10), with fresh randomness.
SCALE = float(os.environ.get("GATEWAY_FUZZ_SCALE", "1"))
settings.register_profile(
    "fuzz",
    derandomize=SCALE == 1,
    deadline=None,
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

# campaign -> outcome -> count; printed after the run (pytest_terminal_summary).
FIGURES: dict[str, Counter[str]] = {}


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter(exceptions=0)  # printed even when (as it must be) zero
    yield counts
    FIGURES[request.node.name] = counts


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for the fuzz store: in memory (/dev/shm) where there is one.

    Each commit fsyncs (synchronous=FULL); thousands of them on a disk would cost minutes and
    test nothing the store tests do not.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        with tempfile.TemporaryDirectory(dir=shm, prefix="gateway-fuzz-") as folder:
            yield Path(folder)
    else:
        yield tmp_path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz campaign figures")
    total: Counter[str] = Counter()
    for name, counts in FIGURES.items():
        total.update(counts)
        write(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    write("total: " + ", ".join(f"{k}={v}" for k, v in sorted(total.items())))
