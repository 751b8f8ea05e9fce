"""deploy/: the systemd unit, the container files and the Prometheus/Alertmanager configs,
checked with the tools that will read them (systemd-analyze, promtool, amtool)."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.tools import tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "ops-gateway.service"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # systemd-analyze checks that ExecStart exists: point it at this venv's gateway script.
    gateway = Path(sys.executable).parent / "gateway"
    assert gateway.exists(), gateway
    unit = tmp_path / "ops-gateway.service"
    unit.write_text(UNIT.read_text().replace("/opt/ops-gateway/bin/gateway", str(gateway)))
    result = run(tool("systemd-analyze"), "verify", str(unit))
    # Unknown keys and bad values are only warnings (exit 0): any line about the unit fails.
    problems = [line for line in result.stderr.splitlines() if "ops-gateway" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_systemd_unit_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]  # keys are case-sensitive
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "simple"  # the daemon does not speak sd_notify
    assert service["User"] == "ops-gateway"
    assert service["ExecStart"].endswith("gateway run --config /etc/ops-gateway/gateway.toml")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the rules
    assert service["Restart"] == "on-failure"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ReadWritePaths": "/var/lib/ops-gateway",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert service[key] == value, key
    # configparser keeps the last of repeated keys; the allow-list must be there too.
    assert "SystemCallFilter=@system-service" in UNIT.read_text()


def test_dockerfile_runs_as_a_user_with_a_healthcheck() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "docker" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert "RUN pip install . && rm -rf /src" in lines
    users = [line for line in lines if line.startswith("USER ")]
    assert users == ["USER ops-gateway"]
    assert "EXPOSE 2525 8080" in lines
    text = "\n".join(lines)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "GATEWAY_DATABASE__URL=" in text
    # Every COPY source exists in the build context (the repository root).
    for line in lines:
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_compose_wires_the_stack_with_files_that_exist() -> None:
    compose_dir = DEPLOY / "docker"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "prometheus", "alertmanager", "grafana"}
    build = services["gateway"]["build"]
    assert (compose_dir / build["context"] / build["dockerfile"]).is_file()
    env = services["gateway"]["environment"]
    assert env["GATEWAY_DATABASE__URL"].startswith("postgresql+psycopg://")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), f"{name}: {source}"
        for needed in service.get("depends_on", []):
            assert needed in services, f"{name} depends on unknown {needed}"
    # Alertmanager presents the same token the gateway expects.
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    (hook,) = next(r for r in am["receivers"] if r["name"] == "ops-gateway")["webhook_configs"]
    assert hook["url"] == "http://gateway:8080/webhooks/alertmanager"
    assert (
        hook["http_config"]["authorization"]["credentials"]
        == (env["GATEWAY_WEBHOOKS__ALERTMANAGER__TOKEN"])
    )
    # Prometheus scrapes the gateway service and alerts through the alertmanager service.
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "ops-gateway"]
    assert job["static_configs"][0]["targets"] == ["gateway:8080"]
    targets = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_grafana_provisioning_finds_the_dashboards() -> None:
    grafana = DEPLOY / "grafana"
    datasources = grafana / "provisioning" / "datasources" / "prometheus.yaml"
    source = yaml.safe_load(datasources.read_text())
    assert source["datasources"][0]["uid"] == "prometheus"
    dashboards = list(grafana.glob("*.json"))
    assert grafana / "ops-gateway.json" in dashboards
    uids = set()
    for path in dashboards:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids, path
        uids.add(board["uid"])
        assert board["panels"], path


def test_promtool_checks_rules_and_config() -> None:
    promtool = tool("promtool")
    rules = run(promtool, "check", "rules", str(DEPLOY / "prometheus" / "ops-gateway-rules.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_rule_unit_tests() -> None:
    # Fed series, the alerts named in the issue fire (and quiet series do not).
    result = run(
        tool("promtool"), "test", "rules", str(DEPLOY / "prometheus" / "ops-gateway-rules.test.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_the_alertmanager_example() -> None:
    result = run(tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
