"""deploy/grafana/ops-gateway-reports.json queries only metrics the daemon exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.daemons import Running, send, wait_for

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ops-gateway-reports.json"


def queried_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert exprs and all(p["gridPos"] for p in board["panels"])
    return {m for e in exprs for m in re.findall(r"\bgateway_[a-z0-9_]+", e)}


def exposed(text: str) -> set[str]:
    names = set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.M))
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)", text, re.M):
        names.add(name)
        if kind == "counter":
            names.add(f"{name}_total")
    return names


def test_every_dashboard_metric_is_exposed(daemon: Running) -> None:
    send(daemon.smtp_port, "服务器宕机 db-bj-03", "数据库服务器无法连接")
    url = f"http://127.0.0.1:{daemon.http_port}/metrics"
    # The report gauges are filled by a job that runs once at start-up.
    thirty_days = "gateway_report_window_seconds 2.592e+06"
    wait_for(lambda: thirty_days in httpx.get(url).text, what="gauges")
    missing = queried_metrics() - exposed(httpx.get(url).text)
    assert not missing, f"dashboard queries metrics the daemon does not expose: {missing}"
