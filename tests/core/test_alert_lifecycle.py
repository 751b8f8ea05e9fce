"""Alert decisions without a server: identity, severity, grouping, lifecycle, payload parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.alerts.lifecycle import Known, Policy, after, decide
from gateway.alerts.model import (
    AlertBatch,
    AlertEvent,
    Kind,
    group_identity,
    grouped,
    label_fingerprint,
    priority_for,
)
from gateway.config import AlertmanagerSource, GenericSource, ZabbixSource
from gateway.ingest import alertmanager, generic, zabbix
from gateway.ingest.payload import PayloadError
from gateway.intake import Source
from tests.ingest.alerting import am_alert, am_body

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OPEN = Known(alert_id=1, ticket_id=7, ticket_key="INC-000007", open=True)
DONE = Known(1, 7, "INC-000007", open=False, resolved_at=T0, firing=False)


@pytest.mark.parametrize(
    ("severity", "policy", "priority"),
    [
        ("critical", AlertmanagerSource(), "P0"),
        ("Critical", AlertmanagerSource(), "P0"),
        ("warning", AlertmanagerSource(), "P2"),
        ("info", AlertmanagerSource(), "P3"),
        ("", AlertmanagerSource(), "P2"),
        ("Disaster", ZabbixSource(), "P0"),
        ("High", ZabbixSource(), "P1"),
        ("Average", ZabbixSource(), "P2"),
        ("Warning", ZabbixSource(), "P3"),
        ("Information", ZabbixSource(), "P3"),
        ("Not classified", ZabbixSource(), "P3"),
        ("page", AlertmanagerSource(severity_map={"PAGE": "P0"}), "P0"),
    ],
)
def test_severity_maps_to_priority(severity: str, policy, priority: str) -> None:
    assert priority_for(severity, policy) == priority


def test_lifecycle_decisions() -> None:
    p = Policy()
    assert decide(None, Kind.FIRING, T0, p).step == "created"
    assert decide(OPEN, Kind.FIRING, T0, p).step == "occurrence"
    assert decide(OPEN, Kind.RESOLVED, T0, p).step == "resolved"
    assert decide(None, Kind.RESOLVED, T0, p).step == "ignored"
    assert decide(DONE, Kind.RESOLVED, T0, p).step == "ignored"
    assert decide(OPEN, Kind.UPDATE, T0, p).step == "commented"
    assert decide(None, Kind.UPDATE, T0, p).step == "ignored"
    # Re-fire: within the window the same ticket, after it a new one linked to the old.
    assert decide(DONE, Kind.FIRING, T0 + timedelta(minutes=59), p).step == "reopened"
    late = decide(DONE, Kind.FIRING, T0 + timedelta(minutes=61), p)
    assert (late.step, late.parent_ticket_id) == ("created", 7)
    assert (
        decide(
            DONE, Kind.FIRING, T0 + timedelta(days=1), Policy(reopen_window=timedelta(days=2))
        ).step
        == "reopened"
    )


def test_comment_mode_keeps_the_ticket_open_and_notes_recovery_once() -> None:
    p = Policy(resolve_action="comment")
    first = decide(OPEN, Kind.RESOLVED, T0, p)
    assert first.step == "commented"
    state = after(OPEN, first, Kind.RESOLVED, T0)
    assert state is not None and state.open and not state.firing
    assert decide(state, Kind.RESOLVED, T0, p).step == "ignored"
    again = decide(state, Kind.FIRING, T0, p)
    assert again.step == "occurrence"
    assert after(state, again, Kind.FIRING, T0).firing  # type: ignore[union-attr]


def test_state_after_resolve_and_reopen() -> None:
    p = Policy()
    resolved = after(OPEN, decide(OPEN, Kind.RESOLVED, T0, p), Kind.RESOLVED, T0)
    assert resolved == Known(1, 7, "INC-000007", open=False, resolved_at=T0, firing=False)
    reopened = after(resolved, decide(resolved, Kind.FIRING, T0, p), Kind.FIRING, T0)
    assert reopened is not None and reopened.open and reopened.resolved_at is None


def test_identity_helpers_are_stable_and_distinct() -> None:
    a = {"alertname": "X", "instance": "h1"}
    assert label_fingerprint(a) == label_fingerprint(dict(reversed(a.items())))
    assert label_fingerprint(a) != label_fingerprint({**a, "instance": "h2"})
    assert group_identity(a, ["alertname"]) == group_identity(
        {**a, "instance": "h2"}, ["alertname"]
    )
    assert group_identity(a, ["alertname", "instance"]) != group_identity(
        {**a, "instance": "h2"}, ["alertname", "instance"]
    )


def _event(identity: str, kind: Kind, **labels: str) -> AlertEvent:
    return AlertEvent(identity, kind, "s", labels={"alertname": "X", **labels})


def test_grouping_resolves_a_group_only_when_all_listed_alerts_resolved() -> None:
    mixed = AlertBatch(
        Source.ALERTMANAGER,
        (_event("a", Kind.FIRING, cluster="c1"), _event("b", Kind.RESOLVED, cluster="c1")),
    )
    out = grouped(mixed, ["alertname", "cluster"])
    assert [e.kind for e in out.events] == [Kind.FIRING]
    assert out.events[0].identity == group_identity(
        {"alertname": "X", "cluster": "c1"}, ["alertname", "cluster"]
    )
    done = AlertBatch(Source.ALERTMANAGER, (_event("a", Kind.RESOLVED, cluster="c1"),))
    assert [e.kind for e in grouped(done, ["alertname", "cluster"]).events] == [Kind.RESOLVED]
    # Cut alerts (max_alerts) may still fire: no group resolve from a truncated batch.
    cut = AlertBatch(Source.ALERTMANAGER, done.events, truncated=2)
    assert grouped(cut, ["alertname", "cluster"]).events == ()
    assert grouped(mixed, []) is mixed


def test_alertmanager_body_to_events() -> None:
    body = am_body(
        am_alert("f1"),
        am_alert("f2", status="resolved", ends="2026-11-25T08:30:00Z"),
    )
    batch = alertmanager.parse(body)
    first, second = batch.events
    assert (first.identity, first.kind, first.severity) == ("f1", Kind.FIRING, "critical")
    assert first.subject == "HighCPU on db-01"
    assert first.ends_at is None and first.starts_at == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert first.labels["host"] == "db-01" and first.labels["instance"] == "db-01:9100"
    assert "CPU above 95%" in first.details() and "prometheus:9090" in first.details()
    assert second.kind == Kind.RESOLVED
    assert second.ends_at == datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def test_alertmanager_without_fingerprint_or_status_uses_labels_and_group_status() -> None:
    alert = am_alert("")
    del alert["status"], alert["fingerprint"]
    body = json.loads(am_body(alert))
    body["status"] = "resolved"
    (event,) = alertmanager.parse(json.dumps(body).encode()).events
    assert event.kind == Kind.RESOLVED
    assert event.identity == label_fingerprint(alert["labels"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", ""),
        (b"[]", ""),
        (b'{"alerts": "x"}', "alerts"),
        (b'{"alerts": [{"labels": {"a": 1}}]}', "alerts.0.labels.a"),
        (b'{"alerts": [{"status": "burning", "labels": {}}]}', "alerts.0.status"),
        (b'{"alerts": [{"labels": {}, "startsAt": "yesterday"}]}', "alerts.0.startsAt"),
        (b'{"truncatedAlerts": -1, "alerts": []}', "truncatedAlerts"),
    ],
)
def test_alertmanager_errors_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        alertmanager.parse(body)
    assert caught.value.field == field


def zabbix_event(**over: str) -> dict:
    body = {
        "event_id": "4711",
        "recovery_event_id": "{EVENT.RECOVERY.ID}",
        "event_value": "1",
        "event_update_status": "0",
        "severity": "High",
        "host": "db-01",
        "host_ip": "10.0.0.5",
        "trigger_id": "13500",
        "trigger_name": "MySQL is down",
        "tags": [{"tag": "service", "value": "mysql"}],
        "opdata": "Current: 0",
        "url": "https://zabbix.example/tr_events.php?triggerid=13500&eventid=4711",
        "message": "MySQL on db-01 is down",
    }
    return {**body, **over}


def test_zabbix_media_type_events() -> None:
    (problem,) = zabbix.parse(json.dumps(zabbix_event()).encode()).events
    assert (problem.identity, problem.kind, problem.severity) == ("4711", Kind.FIRING, "High")
    assert problem.subject == "MySQL is down on db-01"
    assert problem.labels == {
        "host": "db-01", "severity": "High", "host_ip": "10.0.0.5", "trigger_id": "13500",
        "service": "mysql",
    }  # fmt: skip
    assert "Current: 0" in problem.description and "zabbix.example" in problem.description
    (recovery,) = zabbix.parse(
        json.dumps(zabbix_event(event_value="0", recovery_event_id="4720")).encode()
    ).events
    assert (recovery.identity, recovery.kind) == ("4711", Kind.RESOLVED)
    update = zabbix_event(event_update_status="1", update_message="on it", update_user="Olga")
    (comment,) = zabbix.parse(
        json.dumps({**update, "update_action": "acknowledged"}).encode()
    ).events
    assert comment.kind == Kind.UPDATE and comment.message == "Olga: acknowledged: on it"
    # Zabbix numbers may arrive as JSON numbers.
    assert (
        zabbix.parse(json.dumps(zabbix_event(event_id=4711)).encode()).events[0].identity == "4711"
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"event_id": "abc"}, "event_id"),
        ({"event_value": "2"}, "event_value"),
        ({"host": ""}, "host"),
        ({"tags": "x"}, "tags"),
    ],
)
def test_zabbix_errors_name_the_field(over: dict, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        zabbix.parse(json.dumps(zabbix_event(**over)).encode())
    assert caught.value.field == field


MAPPING = GenericSource(
    alerts="/items",
    fingerprint="/id",
    status="/state",
    summary="/title",
    severity="/meta/level",
    host="/meta/node",
    labels="/tags",
    url="/link",
)


def test_generic_mapping_by_json_pointer() -> None:
    body = {
        "items": [
            {
                "id": 12,
                "state": "alerting",
                "title": "Disk full",
                "meta": {"level": "critical", "node": "n1"},
                "tags": {"team": "dba", "n": 3},
                "link": "http://x/1",
            },
            {"id": "12", "state": "OK", "title": "Disk full"},
        ]
    }
    first, second = generic.parse(json.dumps(body).encode(), "grafana", MAPPING).events
    assert (first.identity, first.kind, first.severity) == ("grafana/12", Kind.FIRING, "critical")
    assert first.labels == {"team": "dba", "n": "3", "host": "n1"}
    assert first.subject == "Disk full" and first.url == "http://x/1"
    assert (second.identity, second.kind) == ("grafana/12", Kind.RESOLVED)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [{"state": "x"}]}, "/items/0/id"),
        ({"things": []}, "/items"),
        ({"items": {"id": 1}}, "/items"),
        ({"items": [{"id": 1, "tags": [1]}]}, "/items/0/tags"),
    ],
)
def test_generic_errors_name_the_pointer(body: dict, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        generic.parse(json.dumps(body).encode(), "grafana", MAPPING)
    assert caught.value.field == field


def test_generic_pointer_config_is_validated() -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        GenericSource(fingerprint="id")
