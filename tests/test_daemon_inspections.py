"""`gateway init` + `gateway run` with the shipped inspection examples: the daemon's job arms
them, the API and the CLI show their next fire times (what `make run` does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.daemons import Running, init, running, wait_for

SHIPPED = {"daily-backup-check", "weekly-server-patrol", "monthly-vulnerability-scan"}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    overrides = {"GATEWAY_DAEMON__INSPECTION_POLL_SECONDS": "0.2"}
    with running(init(tmp_path), overrides, smtp_port=0) as started:
        yield started
        assert started.stop() == 0, started.log()


def test_the_daemon_arms_the_shipped_schedules(daemon: Running) -> None:
    def listed() -> list[dict]:
        out = daemon.cli("inspections", "list", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    wait_for(lambda: all(s["last_fire"] for s in listed()), what="schedules armed")
    rows = listed()
    assert {s["name"] for s in rows} == SHIPPED
    assert all(s["origin"] == "config" and s["next_fire"] > s["last_fire"] for s in rows)
    api = httpx.get(
        daemon.url("/api/v1/inspections"),
        headers={"Authorization": f"Bearer {daemon.token}"},
        timeout=10,
    )
    assert api.status_code == 200
    daily = next(s for s in api.json()["inspections"] if s["name"] == "daily-backup-check")
    assert daily["next_fire"].endswith("T09:00:00+08:00")
    assert daily["template"]["subject"] == "每日备份检查 {date}"
