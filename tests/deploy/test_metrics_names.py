"""The metric names the alerting rules and dashboards use exist on a running daemon's /metrics,
and that exposition passes `promtool check metrics`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import yaml

from tests.daemons import Running, send
from tests.deploy.tools import tool
from tests.ingest.alerting import am_alert, am_body

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\b(gateway_[a-z0-9_]+)")


def exported_names(exposition: str) -> set[str]:
    """Every sample name a query may use: families from # TYPE lines plus histogram series."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def rule_names() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "ops-gateway-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {name for expr in exprs for name in NAME.findall(expr)}


def dashboard_names(path: Path) -> set[str]:
    board = json.loads(path.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return {name for expr in exprs for name in NAME.findall(expr)}


def scrape(daemon: Running) -> str:
    # Some traffic first, so that labelled series exist and get linted too.
    send(daemon.smtp_port, "服务器宕机 db-01", "数据库无法连接")
    hooked = httpx.post(
        f"http://127.0.0.1:{daemon.http_port}/webhooks/alertmanager",
        content=am_body(am_alert("deploy-test")),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert hooked.status_code == 200, hooked.text
    response = httpx.get(f"http://127.0.0.1:{daemon.http_port}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def test_rules_and_dashboards_name_only_exported_metrics(daemon: Running) -> None:
    exposition = scrape(daemon)
    exported = exported_names(exposition)
    assert 'gateway_intake_total{outcome="created",source="smtp"}' in exposition

    used = rule_names()
    assert {"gateway_imap_up", "gateway_outbound_dead_total", "gateway_intake_total"} <= used
    assert used - exported == set(), "rules use metrics the daemon does not export"
    boards = sorted((DEPLOY / "grafana").glob("*.json"))
    assert boards
    for board in boards:
        names = dashboard_names(board)
        assert names, board
        assert names - exported == set(), f"{board.name} uses metrics the daemon does not export"

    lint = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
