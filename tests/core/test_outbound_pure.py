"""Outbound's pure parts: who is told, what the mail says, how it is built, when to retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import NOTIFY_EVENTS, ChatRobot, EventRoute, OutboundSettings
from gateway.outbound.message import HeaderInjection, build_message
from gateway.outbound.plan import EventFacts, TicketFacts, plan
from gateway.outbound.policy import Dead, Failed, RetryAt, after_failure, backoff_seconds
from gateway.outbound.render import Renderer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OWN = frozenset({"support@example.com"})
TICKET = TicketFacts(
    key="INC-000042",
    priority="P1",
    status="in_progress",
    requester="alice@example.com",
    assignee="olga@example.com",
    group="network",
    participants=("carol@example.com", "support@example.com"),
    approvers=("mgr@example.com", "sec@example.com"),
    approvals=("mgr@example.com",),
)
CFG = OutboundSettings(enabled=True, group_addresses={"network": "net@example.com"})


def who(kind: str, actor: str = "olga@example.com", cfg: OutboundSettings = CFG, **kw) -> set:
    planned = plan(EventFacts(kind, actor, **kw), TICKET, cfg, OWN)
    return {(p.event, p.recipient) for p in planned if p.channel == "mail"}


def test_comment_goes_to_requester_and_participants_not_to_its_author_or_us() -> None:
    assert who("comment") == {
        ("commented", "alice@example.com"),
        ("commented", "carol@example.com"),
    }


def test_internal_note_reaches_staff_only() -> None:
    assert who("comment", actor="bob@example.com", public=False) == {
        ("commented", "olga@example.com")
    }


def test_acknowledgement_goes_to_the_requester_who_caused_it() -> None:
    got = who("created", actor="alice@example.com", after={"assignee": "olga@example.com"})
    assert got == {
        ("received", "alice@example.com"),
        ("assigned", "olga@example.com"),
        ("assigned", "net@example.com"),
    }


def test_approval_goes_to_the_approver_whose_turn_it_is() -> None:
    ticket = TicketFacts(**{**TICKET.__dict__, "status": "pending_approval"})
    planned = plan(EventFacts("action.approve", "mgr@example.com"), ticket, CFG, OWN)
    assert [(p.event, p.recipient) for p in planned] == [("approval_requested", "sec@example.com")]


def test_routing_table_and_disabled_events() -> None:
    cfg = CFG.model_copy(
        update={
            "events": {
                "resolved": EventRoute(to=["requester", "boss@example.com"]),
                "closed": EventRoute(enabled=False),
            }
        }
    )
    assert who("action.resolve", cfg=cfg) == {
        ("resolved", "alice@example.com"),
        ("resolved", "boss@example.com"),
    }
    assert who("action.close", cfg=cfg) == set()
    assert who("classified") == set() and who("routed") == set()


def test_unknown_recipient_role_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown recipient 'requestor'"):
        EventRoute(to=["requestor"])
    with pytest.raises(ValueError, match="unknown event"):
        OutboundSettings(events={"recieved": EventRoute()})


def test_chat_by_event_and_priority() -> None:
    cfg = CFG.model_copy(
        update={"chat": {"ops": ChatRobot(kind="slack", url="http://x/y", events=["sla_breach"])}}
    )
    planned = plan(EventFacts("sla_breach", "system"), TICKET, cfg, OWN)
    assert ("chat", "ops") in {(p.channel, p.recipient) for p in planned}
    p3 = TicketFacts(**{**TICKET.__dict__, "priority": "P3"})
    assert not [
        p for p in plan(EventFacts("sla_breach", "system"), p3, cfg, OWN) if p.channel == "chat"
    ]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(None, ZoneInfo("Asia/Shanghai"))


def context(**over) -> dict:
    base = {
        "key": "INC-000042", "summary": "交换机 <core-1> 宕机 & 丢包", "description": "d",
        "priority": "P1", "status": "resolved", "status_zh": "已解决", "type": "incident",
        "requester": "alice@example.com", "requester_name": "张三", "assignee": "olga@example.com",
        "group": "network", "category": "", "created_at": NOW, "response_due": NOW,
        "resolution_due": NOW + timedelta(hours=4), "responded_at": None, "approval_step": 2,
        "approval_steps": 2, "actor": "olga@example.com", "note": "已更换光模块", "public": True,
        "at": NOW, "reply_address": "support+INC-000042.abc@example.com", "accept_word": "已解决",
        "reject_word": "未解决", "recipient": "alice@example.com", "items": [], "from_name": "IT",
    }  # fmt: skip
    return base | over


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("event", sorted(NOTIFY_EVENTS))
def test_every_event_renders_in_both_languages(renderer, event, language) -> None:
    mail = renderer.mail(event, language, context())
    assert mail.subject.startswith("[INC-000042] ") and "\n" not in mail.subject
    assert "INC-000042" in mail.text
    # HTML is escaped, text is not.
    assert "&lt;core-1&gt;" in mail.html and "<core-1>" not in mail.html
    assert "<core-1>" in mail.text
    chat = renderer.chat(event, language, context())
    assert chat.title == mail.subject and "P1" in chat.text


def test_times_are_in_the_daemons_zone_and_resolved_asks_for_a_verdict(renderer) -> None:
    zh = renderer.mail("resolved", "zh", context())
    assert "2026-11-25 17:00 (Asia/Shanghai)" in zh.text
    assert '"已解决"' in zh.text and '"未解决"' in zh.text
    breach = renderer.mail(
        "sla_breach", "en", context(status="in_progress", status_en="in progress")
    )
    assert "Resolution was due: 2026-11-25 21:00 (Asia/Shanghai)" in breach.text
    assert "Status:    in progress" in breach.text and "in_progress" not in breach.text


def test_templates_can_be_overridden_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "received.subject.j2").write_text("We got it: {{ summary }}")
    mine = Renderer(tmp_path, ZoneInfo("Asia/Shanghai"))
    mail = mine.mail("received", "en", context())
    assert mail.subject == "[INC-000042] We got it: 交换机 <core-1> 宕机 & 丢包"
    assert "INC-000042" in mail.text  # the body still comes from the shipped template


def payload(**over) -> dict:
    base = {"key": "INC-1", "event": "received", "subject": "s", "text": "t", "html": "<p>t</p>"}
    return base | {"reply_to": "support+INC-1.abc@example.com", "references": ["a@x", "b@y"]} | over


def test_built_message_threads_and_encodes() -> None:
    cfg = OutboundSettings(from_name="运维中心")
    msg = build_message(
        message_id="m@example.com", recipient="bob@example.com",
        payload=payload(subject="[INC-1] 已受理：打印机"), cfg=cfg, now=NOW,
    )  # fmt: skip
    wire = msg.as_bytes()
    parsed = message_from_bytes(wire, policy=policy.default)
    assert wire.split(b"\r\n\r\n")[0].isascii()
    assert str(parsed["Subject"]) == "[INC-1] 已受理：打印机"
    assert str(parsed["From"]) == "运维中心 <support@example.com>"
    assert str(parsed["In-Reply-To"]) == "<b@y>" and str(parsed["References"]) == "<a@x> <b@y>"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "hi\r\nBcc: victim@example.com"),
        ("reply_to", "a@example.com\nBcc: victim@example.com"),
        ("references", ["a@x>\r\nBcc: <victim@example.com"]),
        ("key", "INC-1\nX-Evil: 1"),
    ],
)
def test_line_breaks_in_any_header_value_are_refused(field, value) -> None:
    with pytest.raises(HeaderInjection):
        build_message(
            message_id="m@example.com", recipient="bob@example.com",
            payload=payload(**{field: value}), cfg=OutboundSettings(), now=NOW,
        )  # fmt: skip


@pytest.mark.parametrize("recipient", ["bob@example.com\r\nBcc: x@y.z", "a@b.c, d@e.f"])
def test_recipient_and_sender_must_be_single_clean_addresses(recipient) -> None:
    with pytest.raises(HeaderInjection):
        build_message(message_id="m@x", recipient=recipient, payload=payload(),
                      cfg=OutboundSettings(), now=NOW)  # fmt: skip
    with pytest.raises(HeaderInjection):
        build_message(message_id="m@x", recipient="bob@example.com", payload=payload(),
                      cfg=OutboundSettings(from_name="IT\r\nBcc: x@y.z"), now=NOW)  # fmt: skip


def test_retry_policy_by_error_class_attempts_and_age() -> None:
    cfg = OutboundSettings(max_attempts=5, max_age_hours=24, backoff_initial_seconds=10,
                           backoff_max_seconds=100)  # fmt: skip
    assert isinstance(after_failure(Failed("550 no", permanent=True), 1, NOW, NOW, cfg), Dead)
    step = after_failure(Failed("refused"), 1, NOW, NOW, cfg)
    assert isinstance(step, RetryAt) and NOW + timedelta(seconds=10) <= step.at
    assert isinstance(after_failure(Failed("refused"), 5, NOW, NOW, cfg), Dead)
    late = NOW + timedelta(hours=24)
    assert isinstance(after_failure(Failed("refused"), 2, NOW, late, cfg), Dead)
    delays = [backoff_seconds(n, cfg) for n in range(1, 12)]
    assert 10 <= delays[0] <= 20 and 20 <= delays[1] <= 30 and 40 <= delays[2] <= 50
    assert max(delays) <= 100  # capped, jitter included


def test_lease_is_short_but_leaves_room_for_its_heartbeat() -> None:
    # Renewed every third of itself: under 3 s the heartbeat would spin.
    assert OutboundSettings().lease_seconds == 30
    with pytest.raises(ValueError, match="lease_seconds"):
        OutboundSettings(lease_seconds=2)
