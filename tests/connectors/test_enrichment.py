"""CMDB enrichment through the pipeline on real databases and a NetBox-shaped loopback server:
rules route by CMDB fields, an outage never stops intake, the retry job enriches later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.netbox import NetBox
from connectors.settings import ConnectorSettings, EnrichmentSettings
from gateway.alerts.intake import process_alerts
from gateway.config import ConfigError, Settings, load_settings
from gateway.enrich import LOOKUP_LABEL, Enricher, EnrichmentJob, build_enricher, hosts_of
from gateway.ingest import alertmanager
from gateway.intake import Intake, Source
from gateway.pipeline import Created, Pipeline, RawInput
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import PendingEnrichment, Ticket, TicketEvent
from tests.connectors.netbox_server import TOKEN, NetBoxServer
from tests.connectors.test_netbox import Tick

RULES = """
version: 1
groups:
  ops-bj: {strategy: none}
  service-desk: {strategy: none}
rules:
  - name: critical-production
    when:
      - {fields: [cmdb.criticality], equals: [critical]}
      - {fields: [cmdb.environment], equals: [production]}
    then: {priority: P1, continue: true}
  - name: site-bj
    when: {fields: [cmdb.site], equals: [bj]}
    then: {group: ops-bj}
default: {type: incident, priority: P3, group: service-desk}
"""


@pytest.fixture
def server() -> Iterator[NetBoxServer]:
    srv = NetBoxServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def tick() -> Tick:
    return Tick()


def make_enricher(server: NetBoxServer, tick: Tick, **conf) -> Enricher:
    settings = ConnectorSettings(kind="netbox", url=server.url, token=TOKEN, **conf)
    nb = NetBox("nb", settings, now=tick, sleep=tick.sleep)
    return Enricher(nb, EnrichmentSettings(cmdb="nb"), settings.cache_seconds, now=tick)


@pytest.fixture
def rules(tmp_path: Path) -> RulesHolder:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return RulesHolder(path)


def pipeline_with(db, settings, rules, clock, enricher) -> Pipeline:
    return Pipeline(db, settings, rules.classify, clock, enricher=enricher)


def alert(instance: str) -> Intake:
    return Intake(
        source=Source.API,
        sender="monitor@example.com",
        subject=f"NodeDown {instance}",
        labels={"instance": instance, "alertname": "NodeDown"},
    )


def load(db: Database, key: str) -> Ticket:
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        t.events  # noqa: B018 - load the journal before the session closes
        return t


def pending(db: Database) -> int:
    with db.unit(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(PendingEnrichment))


def test_rules_route_by_cmdb_site_and_raise_critical_production(
    db, settings, rules, clock, server, tick
) -> None:
    pipe = pipeline_with(db, settings, rules, clock, make_enricher(server, tick))
    critical = load(db, pipe.process(alert("db-bj-03:9100")).key)
    assert (critical.group, critical.priority) == ("ops-bj", "P1")
    assert critical.labels["cmdb.service"] == "payments"
    assert critical.labels["cmdb.owner"] == "dba@example.com"
    assert critical.labels["cmdb.region"] == "north-china"
    classified = next(e for e in critical.events if e.kind == "classified")
    assert classified.after["rules"] == ["critical-production", "site-bj"]
    staging = load(db, pipe.process(alert("web-sh-01:9100")).key)
    assert (staging.group, staging.priority) == ("service-desk", "P3")
    assert staging.labels["cmdb.site"] == "sh"
    assert pending(db) == 0


def test_host_unknown_to_the_cmdb_is_neither_enriched_nor_pending(
    db, settings, rules, clock, server, tick
) -> None:
    pipe = pipeline_with(db, settings, rules, clock, make_enricher(server, tick))
    t = load(db, pipe.process(alert("nosuch-host:9100")).key)
    assert not any(k.startswith("cmdb.") for k in t.labels)
    assert pending(db) == 0


def test_alertmanager_batch_is_enriched_before_its_transaction(
    db, settings, rules, clock, server, tick
) -> None:
    pipe = pipeline_with(db, settings, rules, clock, make_enricher(server, tick))
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "gateway",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "instance": "10.1.2.3:9100"},
                "annotations": {"summary": "disk full"},
                "startsAt": "2026-11-25T08:59:00Z",
                "fingerprint": "f00d",
            }
        ],
    }
    data = json.dumps(body).encode()
    policy = settings.webhooks.alertmanager
    [outcome] = process_alerts(pipe, alertmanager.parse(data), RawInput(data), policy)
    t = load(db, outcome.ticket)
    assert (t.labels["cmdb.name"], t.group, t.priority) == ("db-bj-03", "ops-bj", "P1")


def test_cmdb_down_tickets_still_created_then_enriched_by_the_retry_job(
    db, settings, rules, clock, server, tick
) -> None:
    server.stop()
    enricher = make_enricher(server, tick, retries=1, breaker_failures=2, breaker_seconds=30)
    pipe = pipeline_with(db, settings, rules, clock, enricher)
    keys = [pipe.process(alert(f"db-bj-03:{9100 + i}")) for i in range(5)]
    mails = [
        (
            Intake(
                source=Source.SMTP,
                sender="alice@example.com",
                subject=f"disk full on db-bj-03.prod.example.com #{i}",
                message_id=f"m{i}@example.com",
            ),
            None,
        )
        for i in range(5)
    ]
    keys += pipe.process_batch(mails)  # the bulk (group commit) path
    assert all(isinstance(k, Created) for k in keys)
    # Two lookups of two attempts each; then the breaker is open and intake skips the CMDB.
    assert enricher.cmdb.attempts == 4
    tickets = [load(db, k.key) for k in keys]
    assert all(t.labels[LOOKUP_LABEL] == "pending" for t in tickets)
    assert all(t.group == "service-desk" for t in tickets)
    assert pending(db) == 10

    job = EnrichmentJob(db, enricher, clock)
    assert job.run() == 0  # breaker still open: nothing sent, nothing changed
    assert enricher.cmdb.attempts == 4 and pending(db) == 10

    server.start()
    tick.t += 31
    assert job.run() == 10
    assert pending(db) == 0
    for k in keys:
        t = load(db, k.key)
        assert t.labels["cmdb.site"] == "bj" and LOOKUP_LABEL not in t.labels
        [event] = [e for e in t.events if e.kind == "enriched"]
        assert event.after["cmdb.service"] == "payments" and event.public is False
    assert job.run() == 0  # settled rows are gone: nothing journalled twice


def test_failed_retry_backs_off_and_gives_up_after_max_attempts(
    db, settings, rules, clock, server, tick
) -> None:
    server.down_status = 503
    conf = ConnectorSettings(kind="netbox", url=server.url, token=TOKEN, retries=0)
    nb = NetBox("nb", conf, now=tick, sleep=tick.sleep)
    enricher = Enricher(nb, EnrichmentSettings(cmdb="nb", max_attempts=2), 300, now=tick)
    pipe = pipeline_with(db, settings, rules, clock, enricher)
    key = pipe.process(alert("db-bj-03:9100")).key
    job = EnrichmentJob(db, enricher, clock)
    assert job.run() == 0
    with db.unit(readonly=True) as s:
        row = s.scalars(select(PendingEnrichment)).one()
        assert row.attempts == 1 and "503" in row.last_error and row.next_at > clock()
    clock.now = row.next_at
    assert job.run() == 0
    t = load(db, key)
    assert t.labels[LOOKUP_LABEL] == "failed" and pending(db) == 0
    assert [e.kind for e in t.events].count("enrichment_failed") == 1


def test_spent_budget_skips_the_lookup_and_leaves_it_pending(
    db, settings, rules, clock, server
) -> None:
    class Slow(Tick):
        def __call__(self) -> float:  # every reading is 0.3 s later: the budget is 0.2 s
            self.t += 0.3
            return self.t

    enricher = make_enricher(server, Slow())
    pipe = pipeline_with(db, settings, rules, clock, enricher)
    t = load(db, pipe.process(alert("db-bj-03:9100")).key)
    assert server.requests == [] and t.labels[LOOKUP_LABEL] == "pending"
    with db.unit(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(TicketEvent)) == 2


def test_hosts_from_labels_and_conservatively_from_text() -> None:
    assert hosts_of({"instance": "db-bj-03:9100", "host": "db-bj-03"}) == ["db-bj-03"]
    assert hosts_of({"instance": "[fd00::1]:9100"}) == ["fd00::1"]
    text = (
        "web-sh-01.prod.example.com is down, see https://grafana.example.com/d/1 "
        "mail ops@corp.example.com; version 1.2.3; ping 10.1.2.3 and 999.1.1.1"
    )
    assert hosts_of({}, text) == ["10.1.2.3", "web-sh-01.prod.example.com"]
    assert hosts_of({}, "a.b.example c.d.example e.f.example g.h.example", 2) == [
        "a.b.example",
        "c.d.example",
    ]


def test_config_builds_the_enricher_and_refuses_an_unknown_connector(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[connectors.nb]\nkind = "netbox"\nurl = "http://127.0.0.1:1"\ntoken = "t"\n'
        '[connectors.nb.custom_fields]\nservice = "biz_service"\n'
        '[enrichment]\ncmdb = "nb"\nbudget_ms = 150\n',
        encoding="utf-8",
    )
    settings: Settings = load_settings(path)
    enricher = build_enricher(settings)
    assert isinstance(enricher.cmdb, NetBox) and enricher.settings.budget_ms == 150
    assert enricher.cmdb.settings.custom_fields == {"service": "biz_service"}
    assert build_enricher(load_settings(None, require_file=False)) is None
    path.write_text('[enrichment]\ncmdb = "nb"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"names no \[connectors.nb\]"):
        load_settings(path)


def test_late_enrichment_routes_a_ticket_nobody_has_picked_up(
    db, settings, rules, clock, server, tick
) -> None:
    """The CMDB was down at intake: the ticket went to the default group at P3. When the CI
    lands, the rules run again; what the CI sways (site group, critical priority) changes, on
    a ticket still new and unassigned only, journalled as `rerouted`."""
    server.stop()
    enricher = make_enricher(server, tick, retries=0, breaker_failures=1, breaker_seconds=30)
    pipe = pipeline_with(db, settings, rules, clock, enricher)
    waiting = pipe.process(alert("db-bj-03:9100")).key
    taken = pipe.process(alert("db-bj-03:9101")).key
    staging = pipe.process(alert("web-sh-01:9100")).key
    assert {load(db, k).group for k in (waiting, taken, staging)} == {"service-desk"}
    with db.unit() as s:  # someone already works on the second one: leave it be
        s.scalars(select(Ticket).where(Ticket.key == taken)).one().status = "in_progress"

    server.start()
    tick.t += 31
    job = EnrichmentJob(db, enricher, clock, classify=rules.classify)
    assert job.run() == 3

    routed = load(db, waiting)
    assert (routed.group, routed.priority) == ("ops-bj", "P1")
    [event] = [e for e in routed.events if e.kind == "rerouted"]
    assert event.before == {"priority": "P3", "group": "service-desk"}
    assert event.after == {"priority": "P1", "group": "ops-bj"}
    assert "critical-production" in event.note and event.public is False
    assert routed.next_escalation_at == clock()  # the SLA scanner re-plans the P1 clocks

    left = load(db, taken)
    assert (left.group, left.priority) == ("service-desk", "P3")
    assert left.labels["cmdb.site"] == "bj"  # enriched all the same
    # Staging in Shanghai: no rule cares about its CI, so nothing moves.
    unchanged = load(db, staging)
    assert (unchanged.group, unchanged.priority) == ("service-desk", "P3")
    assert not [e for e in unchanged.events if e.kind == "rerouted"]
