"""A change's approval chain decided by replies to the approval mail, on real databases."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import RepliesSettings, Settings
from gateway.ingest.followup import verdict
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Source
from gateway.pipeline import Created, Pipeline, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from gateway.tickets import service

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
MANAGER, SECURITY = "ops-manager@example.com", "security-lead@example.com"


@pytest.fixture
def pipeline(db: Database, settings: Settings, clock) -> Pipeline:
    return Pipeline(db, settings, RulesHolder(RULES).classify, clock)


@pytest.fixture
def change(db: Database, settings: Settings, clock) -> str:
    new = service.NewTicket(
        type="change",
        priority="P2",
        subject="扩容 db-bj-03 内存",
        source="api",
        requester="alice@example.com",
        approvers=[MANAGER, SECURITY],
    )
    with db.unit() as session:
        ticket = service.create_ticket(
            session, settings.tickets, new, service.Actor("alice@example.com", "requester", "api"),
            clock(),
        )  # fmt: skip
        session.flush()
        return ticket.key


def reply(pipeline: Pipeline, settings: Settings, key: str, sender: str, text: str, n: int):
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "support@example.com"
    msg["Subject"] = f"回复: [{key}] 需要您审批"
    msg["Message-ID"] = f"<approval-{n}@example.com>"
    msg.set_content(f"{text}\n\n> 变更 {key} 需要您审批\n")
    mail = mail_to_intake(msg.as_bytes(), Source.SMTP, settings, envelope_from=sender)
    return pipeline.process(mail.intake, mail.raw)


def state(db: Database, key: str) -> tuple[str, list[str], list[str]]:
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        return t.status, list(t.approvals), [e.kind for e in t.events]


def test_two_level_approval_by_mail(pipeline, settings, db, change) -> None:
    assert state(db, change)[0] == "pending_approval"
    assert reply(pipeline, settings, change, MANAGER, "同意，周六晚上执行", 1) == Updated(change)
    status, approvals, _ = state(db, change)
    assert (status, approvals) == ("pending_approval", [MANAGER])
    assert reply(pipeline, settings, change, SECURITY, "Approved.", 2) == Updated(change)
    status, approvals, kinds = state(db, change)
    assert (status, approvals) == ("approved", [MANAGER, SECURITY])
    assert kinds.count("action.approve") == 2


def test_out_of_turn_approval_is_refused_and_journalled(pipeline, settings, db, change) -> None:
    assert reply(pipeline, settings, change, SECURITY, "同意", 1) == Updated(change)
    status, approvals, kinds = state(db, change)
    assert (status, approvals) == ("pending_approval", [])
    assert "refused" in kinds and "action.approve" not in kinds


def test_rejection_by_mail_wins_over_approval_words(pipeline, settings, db, change) -> None:
    reply(pipeline, settings, change, MANAGER, "不同意：窗口期太短", 1)
    status, approvals, kinds = state(db, change)
    assert status == "rejected" and approvals == [] and "action.reject" in kinds


def test_a_stranger_saying_approve_changes_nothing(pipeline, settings, db, change) -> None:
    out = reply(pipeline, settings, change, "mallory@evil.example", "同意", 1)
    assert isinstance(out, Created) and out.key != change
    status, approvals, kinds = state(db, change)
    assert (status, approvals) == ("pending_approval", [])
    assert "action.approve" not in kinds


def test_approval_words() -> None:
    cfg = RepliesSettings()
    assert verdict("同意", cfg.approve_words, cfg.deny_words) == "accept"
    assert verdict("不同意", cfg.approve_words, cfg.deny_words) == "reject"
    assert verdict("LGTM", cfg.approve_words, cfg.deny_words) == "accept"
    assert verdict("什么时候执行？", cfg.approve_words, cfg.deny_words) is None
