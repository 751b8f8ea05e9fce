"""deploy/zabbix: the media type imports as Zabbix 6.0 YAML, and the bodies its script builds
(run under node with a small HttpRequest shim) open, comment and resolve a ticket."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Settings
from gateway.storage.db import Database
from tests.conftest import IN_CI
from tests.ingest.alerting import TOKEN, journal, make_client, tickets, webhook_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "zabbix"
EXPORT = yaml.safe_load((DEPLOY / "ops-gateway.yaml").read_text())
MEDIA = EXPORT["zabbix_export"]["media_types"][0]

# Zabbix runs the script with `value` (the parameters as JSON) and HttpRequest/Zabbix
# globals; the script's top-level `return` needs a function around it.
SHIM = """
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const sent = [];
class HttpRequest {
  constructor() { this.headers = []; }
  addHeader(h) { this.headers.push(h); }
  setProxy(p) { this.proxy = p; }
  post(url, body) {
    sent.push({url, headers: this.headers, body: JSON.parse(body)});
    return input.answer;
  }
  getStatus() { return input.status; }
}
const Zabbix = { log: () => {} };
const run = new Function('value', 'HttpRequest', 'Zabbix', input.script);
let result, error = null;
try {
  result = run(JSON.stringify(input.params), HttpRequest, Zabbix);
} catch (e) {
  error = String(e);
}
result = result === undefined ? null : JSON.parse(result);
process.stdout.write(JSON.stringify({sent, result, error}));
"""


def params(**over: str) -> dict[str, str]:
    """The parameters as Zabbix expands them for a problem (unexpanded macros stay literal)."""
    values = {p["name"]: p["value"] for p in MEDIA["parameters"]}
    values.update(
        alert_message="Problem started at 09:00:00 on 2026.11.25\nHost: db-01",
        alert_subject="Problem: MySQL is down",
        event_date="2026.11.25",
        event_id="4711",
        event_name="MySQL is down",
        event_opdata="Current: 0",
        event_severity="High",
        event_source="0",
        event_tags_json='[{"tag":"service","value":"mysql"}]',
        event_time="09:00:00",
        event_update_status="0",
        event_value="1",
        gateway_token=TOKEN,
        gateway_url="https://gateway.example/",
        host_ip="10.0.0.5",
        host_name="db-01",
        trigger_id="13500",
        zabbix_url="https://zabbix.example/",
    )
    values.update(over)
    return values


def run_script(values: dict[str, str], answer: Any, status: int = 200) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("CI=true but node is not installed")
        pytest.skip("node is not installed")
    stdin = json.dumps(
        {
            "script": MEDIA["script"],
            "params": values,
            "answer": json.dumps(answer),
            "status": status,
        }
    )
    done = subprocess.run(
        [node, "-e", SHIM], input=stdin, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_export_is_a_zabbix_6_webhook_media_type() -> None:
    assert EXPORT["zabbix_export"]["version"] == "6.0"
    assert MEDIA["type"] == "WEBHOOK"
    assert MEDIA["process_tags"] == "YES" and MEDIA["show_event_menu"] == "YES"
    assert "{EVENT.TAGS.__zbx_ticket_key}" in MEDIA["event_menu_name"]
    names = {p["name"]: p["value"] for p in MEDIA["parameters"]}
    assert names["event_id"] == "{EVENT.ID}" and names["event_recovery_id"] == "{EVENT.RECOVERY.ID}"
    assert names["event_update_status"] == "{EVENT.UPDATE.STATUS}"
    modes = {t["operation_mode"] for t in MEDIA["message_templates"]}
    assert modes == {"PROBLEM", "RECOVERY", "UPDATE"}
    # The readable copy of the script is the one in the export.
    assert MEDIA["script"] == (DEPLOY / "ops-gateway.js").read_text()


def test_script_bodies_drive_the_ticket(settings: Settings, db: Database) -> None:
    client = make_client(webhook_settings(settings), db)

    def deliver(values: dict[str, str]) -> dict[str, Any]:
        recorded = run_script(values, {"alerts": [{"ticket": "INC-000001"}]})
        assert recorded["error"] is None, recorded
        (request,) = recorded["sent"]
        assert request["url"] == "https://gateway.example/webhooks/zabbix"
        assert f"Authorization: Bearer {TOKEN}" in request["headers"]
        r = client.post(
            "/webhooks/zabbix",
            json=request["body"],
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 200, r.text
        return {"script": recorded, "gateway": r.json(), "body": request["body"]}

    problem = deliver(params())
    assert problem["body"]["recovery_event_id"] == ""  # "{EVENT.RECOVERY.ID}" unexpanded
    assert (
        problem["body"]["url"]
        == "https://zabbix.example/tr_events.php?triggerid=13500&eventid=4711"
    )
    assert problem["gateway"]["alerts"][0]["outcome"] == "created"
    # Zabbix keeps the returned key as the event tag (process_tags).
    assert problem["script"]["result"]["tags"]["__zbx_ticket_key"] == "INC-000001"
    (ticket,) = tickets(db)
    assert (ticket.priority, ticket.labels["service"], ticket.fingerprint) == (
        "P1",
        "mysql",
        "4711",
    )
    assert "Current: 0" in ticket.description

    update = deliver(
        params(
            event_update_status="1",
            event_update_message="restarting mysqld",
            event_update_user="Olga Ops",
            event_update_action="acknowledged",
            ticket_key="INC-000001",
        )
    )
    assert update["gateway"]["alerts"][0]["outcome"] == "commented"
    assert journal(db, "INC-000001")[-1].note == "Olga Ops: acknowledged: restarting mysqld"

    recovery = deliver(params(event_value="0", event_recovery_id="4790", ticket_key="INC-000001"))
    assert recovery["gateway"]["alerts"][0]["outcome"] == "resolved"
    assert tickets(db)[0].status == "resolved"


def test_script_fails_loudly_on_an_error_answer() -> None:
    recorded = run_script(params(), {"error": "unauthorized"}, status=401)
    assert recorded["result"] is None and "answered 401" in recorded["error"]
    skipped = run_script(params(event_source="3"), {})
    assert skipped["sent"] == [] and skipped["result"] == {}
