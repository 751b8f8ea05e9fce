"""The deploy tests check files against real tools and a real running daemon."""

from __future__ import annotations

from tests.test_daemon import daemon  # noqa: F401 - the running-daemon fixture, shared
