"""`gateway init` + `gateway run` with the shipped inspection examples: the daemon's job arms
them, the API and the CLI show their next fire times (what `make run` does)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_daemon import GATEWAY, free_port, wait_for

SHIPPED = {"daily-backup-check", "weekly-server-patrol", "monthly-vulnerability-scan"}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    init = subprocess.run(
        [*GATEWAY, "init", "--dir", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    token = re.search(r"admin API token: (\S+)\)", init.stdout).group(1)
    http_port = free_port()
    env.update(
        GATEWAY_SMTP__PORT="0",
        GATEWAY_HTTP__PORT=str(http_port),
        GATEWAY_DAEMON__INSPECTION_POLL_SECONDS="0.2",
    )
    with open(tmp_path / "daemon.log", "w") as log:
        proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(tmp_path / "gateway.toml")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield tmp_path, env, token, http_port
        finally:
            proc.terminate()
            assert proc.wait(30) == 0, (tmp_path / "daemon.log").read_text()


def test_the_daemon_arms_the_shipped_schedules(running) -> None:
    folder, env, token, port = running

    def listed() -> list[dict]:
        out = subprocess.run(
            [*GATEWAY, "inspections", "list", "--json", "--config", str(folder / "gateway.toml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    wait_for(lambda: all(s["last_fire"] for s in listed()), what="schedules armed")
    rows = listed()
    assert {s["name"] for s in rows} == SHIPPED
    assert all(s["origin"] == "config" and s["next_fire"] > s["last_fire"] for s in rows)
    api = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/inspections",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert api.status_code == 200
    daily = next(s for s in api.json()["inspections"] if s["name"] == "daily-backup-check")
    assert daily["next_fire"].endswith("T09:00:00+08:00")
    assert daily["template"]["subject"] == "每日备份检查 {date}"
