"""Bugs the fuzz campaigns and schemathesis found, pinned down on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from gateway.config import ApiToken, GenericSource, Settings
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Source
from gateway.pipeline import Created, Duplicate, Pipeline
from gateway.rules.holder import RulesHolder
from gateway.sla.clock import new_ticket_columns
from gateway.sla.policy import SlaStart
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.core.test_sla_clock import P0, T0
from tests.ingest.alerting import (
    RULES,
    TOKEN,
    am_alert,
    am_body,
    auth,
    make_client,
    post_am,
    tickets,
    webhook_settings,
)

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_json_is_a_400_not_a_500(settings: Settings, db: Database) -> None:
    # json.loads recursed past the interpreter's limit: RecursionError escaped as a 500.
    mapping = GenericSource(token=TOKEN, fingerprint="/id")
    client = make_client(webhook_settings(settings, generic={"g": mapping}), db)
    for path in ("/webhooks/zabbix", "/webhooks/generic/g", "/webhooks/alertmanager"):
        r = client.post(path, content=DEEP, headers=auth())
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "invalid"


def test_blank_alert_summary_falls_back_to_the_alert_name(settings: Settings, db: Database) -> None:
    # " ".strip().splitlines()[0] raised IndexError: a 500 that Alertmanager retried forever.
    alert = am_alert("blank")
    alert["annotations"]["summary"] = " \n "
    client = make_client(webhook_settings(settings), db)
    r = post_am(client, am_body(alert))
    assert r.status_code == 200, r.text
    assert tickets(db)[0].subject == "HighCPU on db-01:9100"


def test_nul_characters_in_mail_and_alerts_are_stored(settings: Settings, db: Database) -> None:
    # PostgreSQL text cannot hold NUL: the commit failed and SMTP answered 451 for ever.
    rules = RulesHolder(RULES)
    pipeline = Pipeline(db, settings, rules.classify)
    mail = (
        b"From: alice@example.com\r\nTo: support@example.com\r\n"
        b"Message-ID: <a\x00b@example.com>\r\nSubject: disk\x00 full\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nbody\x00text\r\n--b\r\n"
        b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="a\x00.txt"\r\n'
        b"\r\nfile\r\n--b--\r\n"
    )
    parsed = mail_to_intake(mail, Source.SMTP, settings)
    assert isinstance(pipeline.process(parsed.intake, parsed.raw), Created)
    with db.unit(readonly=True) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.subject, ticket.description) == ("disk full", "bodytext")
        assert session.scalars(select(Ticket.key)).all() == [ticket.key]

    alert = am_alert("nul", instance="db\x00-02:9100")
    alert["annotations"]["summary"] = "CPU\x00 high"
    client = make_client(webhook_settings(settings), db)
    r = post_am(client, am_body(alert))
    assert r.status_code == 200, r.text
    assert tickets(db)[1].subject == "CPU high"


def test_huge_offsets_and_ids_are_a_400_not_a_500(settings: Settings, db: Database) -> None:
    # An int past BIGINT reached the driver: OverflowError, a 500.
    admin_token = ApiToken(token="admin-token-0123456789", role="admin", email="a@example.org")
    api = settings.api.model_copy(update={"tokens": {"admin": admin_token}})
    config = settings.model_copy(update={"api": api})
    client = make_client(config, db)
    admin = {"Authorization": "Bearer admin-token-0123456789"}
    big = str(2**70)
    for method, path in (
        ("GET", f"/api/v1/tickets?offset={big}"),
        ("GET", f"/api/v1/outbox?offset={big}"),
        ("POST", f"/api/v1/outbox/{big}/retry"),
    ):
        r = client.request(method, path, headers=admin)
        assert r.status_code == 400, (path, r.text)


def test_sla_columns_name_the_same_keys_with_and_without_a_policy() -> None:
    # The group-commit writer's multi-row INSERT needs every row to name the same columns; a
    # batch mixing tickets with and without an SLA fell back to one-by-one commits.
    with_policy = new_ticket_columns(SlaStart(P0, False), "new", T0)
    assert new_ticket_columns(None, "new", T0).keys() == with_policy.keys()


def test_refusal_naming_a_field_with_nul_is_stored(settings: Settings, db: Database) -> None:
    # The 400's reason names the field, and is kept with the raw body: NUL must not stop that.
    client = make_client(webhook_settings(settings), db)
    alert = am_alert("nul-key")
    alert["labels"]["bad\x00key"] = 5
    r = post_am(client, am_body(alert))
    assert r.status_code == 400, r.text
    assert "bad" in r.json()["field"]


def test_mails_whose_message_id_is_only_nul_are_distinct(settings: Settings, db: Database) -> None:
    # The Message-ID "\x00" became "" once NUL was removed; stored as "", the second such mail
    # hit the unique index on raw_messages.message_id at every redelivery.
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    for body in (b"first", b"second"):
        data = b"From: a@example.com\r\nMessage-ID: \x00\r\nSubject: x\r\n\r\n" + body
        parsed = mail_to_intake(data, Source.SMTP, settings)
        assert isinstance(pipeline.process(parsed.intake, parsed.raw), Created)
        assert isinstance(pipeline.process_batch([(parsed.intake, parsed.raw)])[0], Duplicate)
