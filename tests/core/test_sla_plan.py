"""Escalation events route to the level's recipients (pure planner)."""

from __future__ import annotations

from gateway.config import ChatRobot, OutboundSettings
from gateway.outbound.plan import EventFacts, TicketFacts, plan

CFG = OutboundSettings(
    enabled=True,
    group_addresses={"ops": "ops@example.com", "managers": "managers@example.com"},
    chat={
        "duty": ChatRobot(kind="wecom", url="http://127.0.0.1:9/a", events=["received"]),
        "noc": ChatRobot(kind="wecom", url="http://127.0.0.1:9/b", events=["sla_breach"]),
    },
)
TICKET = TicketFacts("INC-000001", "P1", "new", requester="alice@example.com", group="ops")


def routed(kind: str, notify: list[str] | None) -> list[tuple[str, str]]:
    after = {} if notify is None else {"notify": notify}
    event = EventFacts(kind, "system", public=False, after=after)
    return [(p.channel, p.recipient) for p in plan(event, TICKET, CFG, frozenset())]


def test_level_recipients_replace_the_default_roles() -> None:
    assert routed("sla_breach", ["group:managers", "boss@example.com", "chat:duty"]) == [
        ("mail", "managers@example.com"),
        ("mail", "boss@example.com"),
        ("chat", "duty"),  # named by the level although it does not subscribe
        ("chat", "noc"),  # subscribed to breaches of P1 and above
    ]


def test_without_named_recipients_the_event_defaults_apply() -> None:
    assert routed("sla_warning", None) == [("mail", "ops@example.com")]


def test_the_requester_is_never_told_of_an_internal_escalation() -> None:
    assert routed("sla_warning", ["requester", "group"]) == [("mail", "ops@example.com")]
