"""Real binaries the deploy tests run."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import IN_CI


def tool(name: str) -> str:
    """The binary's path; missing: a skip locally, a failure under CI=true (.ci/run has it)."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} missing (CI=true): .ci/run installs it")
        pytest.skip(f"{name} missing")
    return path
