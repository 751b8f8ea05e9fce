"""The daemon as a user runs it: `gateway init`, `gateway run`, real SMTP and HTTP sockets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.daemons import GATEWAY, Running, init, send, wait_for


def test_mail_becomes_a_ticket_in_cli_and_api(daemon: Running) -> None:
    send(
        daemon.smtp_port,
        "服务器宕机 db-bj-03",
        "数据库服务器无法连接",
        Message_ID="<m1@example.com>",
    )
    listed = daemon.cli("tickets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tickets = json.loads(listed.stdout)
    assert len(tickets) == 1
    t = tickets[0]
    assert t["subject"] == "服务器宕机 db-bj-03"
    assert t["requester"] == "alice@example.com"
    assert t["source"] == "smtp"
    api = httpx.get(
        f"http://127.0.0.1:{daemon.http_port}/api/v1/tickets",
        headers={"Authorization": f"Bearer {daemon.token}"},
    ).json()
    assert [x["key"] for x in api["tickets"]] == [t["key"]]
    shown = daemon.cli("tickets", "show", t["key"])
    assert (
        shown.returncode == 0
        and "created" in shown.stdout
        and "数据库服务器无法连接" in shown.stdout
    )
    # Redelivery of the same message is acknowledged and makes no second ticket.
    send(
        daemon.smtp_port,
        "服务器宕机 db-bj-03",
        "数据库服务器无法连接",
        Message_ID="<m1@example.com>",
    )
    assert len(json.loads(daemon.cli("tickets", "list", "--json").stdout)) == 1
    metrics = httpx.get(f"http://127.0.0.1:{daemon.http_port}/metrics").text
    assert 'gateway_intake_total{outcome="created",source="smtp"} 1.0' in metrics
    assert 'gateway_intake_total{outcome="duplicate",source="smtp"} 1.0' in metrics


def test_unknown_recipient_is_refused_with_550(daemon: Running) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, reply = client.rcpt("nobody@elsewhere.org")
    assert code == 550 and b"nobody@elsewhere.org" in reply


def test_swaks_conversation(daemon: Running) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        if IN_CI:
            pytest.fail("swaks is not installed (CI=true)")
        pytest.skip("swaks not installed")
    out = subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{daemon.smtp_port}",
            "--from",
            "bob@example.com",
            "--to",
            "support@example.com",
            "--header",
            "Subject: VPN down",
            "--body",
            "help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"<-\s+250 2\.0\.0 OK [A-Z]+-\d{6}", out.stdout)
    assert json.loads(daemon.cli("tickets", "list", "--json").stdout)[0]["subject"] == "VPN down"


def test_sigterm_drains_and_exits_zero_and_sighup_reloads(daemon: Running) -> None:
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloading rules" in (daemon.folder / "daemon.log").read_text(), what="reload")
    assert daemon.proc.poll() is None
    send(daemon.smtp_port, "printer jam", "third floor")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0
    log = (daemon.folder / "daemon.log").read_text()
    assert "stopped" in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.smtp_port), timeout=1)


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[smtp]\nport = "lots"\n[htp]\nport = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    out = subprocess.run(
        [*GATEWAY, "run", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "unknown section [htp]" in out.stderr
    cfg.write_text('[smtp]\nport = "lots"\n')
    out = subprocess.run(
        [*GATEWAY, "run", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "smtp.port" in out.stderr and "lots" in out.stderr
    env["GATEWAY_HTTP__PORT"] = "-5"
    cfg.write_text("")
    out = subprocess.run(
        [*GATEWAY, "run", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "http.port" in out.stderr


def test_init_never_overwrites(tmp_path: Path) -> None:
    env = init(tmp_path).env
    (tmp_path / "rules.yaml").write_text("# mine\n")
    before = (tmp_path / "gateway.toml").read_text()
    again = subprocess.run(
        [*GATEWAY, "init", "--dir", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0
    assert (tmp_path / "gateway.toml").read_text() == before
    assert (tmp_path / "rules.yaml").read_text() == "# mine\n"
    assert (tmp_path / "gateway.db").exists()


def test_cli_reassignment_needs_a_reason(daemon: Running) -> None:
    send(daemon.smtp_port, "printer jam", "third floor")
    key = json.loads(daemon.cli("tickets", "list", "--json").stdout)[0]["key"]
    first = daemon.cli("tickets", "act", key, "assign", "--assignee", "ann@example.com")
    assert first.returncode == 0, first.stderr
    again = daemon.cli("tickets", "act", key, "assign", "--assignee", "ben@example.com")
    assert again.returncode == 1 and "reassignment needs a reason" in again.stderr
    ok = daemon.cli(
        "tickets", "act", key, "assign", "--assignee", "ben@example.com", "--reason", "on leave"
    )
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(daemon.cli("tickets", "show", key, "--json").stdout)
    assert shown["assignee"] == "ben@example.com"
    last = shown["events"][-1]
    assert last["channel"] == "cli" and "on leave" in last["note"]
