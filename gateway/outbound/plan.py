"""Who is told what about a journal event: a pure decision, no I/O (STYLE.md: rules decide).

`plan(event, ticket, cfg, own)` maps one journal event to the notifications it causes (event
name, channel, recipient, language). Writing them as outbox rows is `notify.py`'s job.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.config import PRIORITIES, OutboundSettings

Channel = Literal["mail", "chat"]


@dataclass(frozen=True)
class TicketFacts:
    """What the planner needs to know about a ticket, as it is after the change."""

    key: str
    priority: str
    status: str
    requester: str | None = None
    assignee: str | None = None
    group: str | None = None
    participants: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    approvals: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventFacts:
    """One journal event: its kind, who caused it, whether the requester may see it."""

    kind: str
    actor: str
    public: bool = True
    after: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Planned:
    event: str
    channel: Channel
    recipient: str  # an address, or the chat robot's name
    language: str


# Journal kinds that notify by themselves, under the notification's name.
_DIRECT = {
    "comment": "commented",
    "action.assign": "assigned",
    "action.pend": "pending",
    "action.resolve": "resolved",
    "action.close": "closed",
    "action.reopen": "reopened",
    "sla_warning": "sla_warning",
    "sla_breach": "sla_breach",
}
# Escalations name their recipients in the journal event (`after["notify"]`, from the SLA
# policy's level) instead of the event's default roles; they go to chat although internal.
_ESCALATIONS = ("sla_warning", "sla_breach")
# Recipients who only see what is public on the ticket.
_OUTSIDERS = ("requester", "participants")


def notifications_for(event: EventFacts, ticket: TicketFacts) -> list[str]:
    """The notification events a journal event causes ([] for most: classified, routed...)."""
    if event.kind == "created":
        names = ["received"]
        if event.after.get("assignee"):
            names.append("assigned")
        if event.after.get("status") == "pending_approval":
            names.append("approval_requested")
        return names
    if event.kind == "action.approve":
        # The next approver's turn; a completed chain asks nobody.
        return ["approval_requested"] if ticket.status == "pending_approval" else []
    name = _DIRECT.get(event.kind)
    return [name] if name else []


def plan(
    event: EventFacts, ticket: TicketFacts, cfg: OutboundSettings, own: Collection[str]
) -> list[Planned]:
    """Every notification `event` causes, after the routing table and the exclusions."""
    planned: list[Planned] = []
    for name in notifications_for(event, ticket):
        enabled, roles = cfg.route(name)
        named: tuple[str, ...] = ()
        if name in _ESCALATIONS and event.after.get("notify") is not None:
            named = tuple(event.after["notify"])
            roles = tuple(r for r in named if not r.startswith("chat:"))
        if enabled:
            for address in mail_recipients(name, roles, event, ticket, cfg, own):
                planned.append(Planned(name, "mail", address, language_for(address, cfg)))
        if event.public or name in _ESCALATIONS:
            # Chat groups are wider than a ticket's people: internal notes never go there;
            # an escalation says only what the ticket's staff may know anyway.
            for robot_name, robot in cfg.chat.items():
                subscribed = name in robot.events and _urgent_enough(
                    ticket.priority, robot.min_priority
                )
                if subscribed or f"chat:{robot_name}" in named:
                    language = robot.language or cfg.language
                    planned.append(Planned(name, "chat", robot_name, language))
    return planned


def mail_recipients(
    name: str,
    roles: Collection[str],
    event: EventFacts,
    ticket: TicketFacts,
    cfg: OutboundSettings,
    own: Collection[str],
) -> list[str]:
    """Addresses for one notification: roles resolved, then the exclusions applied."""
    found: list[str] = []
    for role in roles:
        if not event.public and role in _OUTSIDERS:
            continue  # an internal note is for staff only
        found.extend(_resolve(role, ticket, cfg))
    seen: set[str] = set()
    result: list[str] = []
    for raw in found:
        address = (raw or "").strip().lower()
        if not _plausible(address) or address in seen or is_own(address, own):
            continue
        # Nobody is told about their own change; the acknowledgement of one's own request is
        # the exception: it is the receipt.
        if name != "received" and address == event.actor.strip().lower():
            continue
        seen.add(address)
        result.append(address)
    return result


def _resolve(role: str, ticket: TicketFacts, cfg: OutboundSettings) -> list[str]:
    if "@" in role:
        return [role]
    if role == "requester":
        return [ticket.requester or ""]
    if role == "assignee":
        return [ticket.assignee or ""]
    if role == "group":
        return [cfg.group_addresses.get(ticket.group or "", "")]
    if role.startswith("group:"):  # a named group's mailbox, e.g. the ops managers'
        return [cfg.group_addresses.get(role.removeprefix("group:"), "")]
    if role == "participants":
        return list(ticket.participants)
    if role == "approvers":
        step = len(ticket.approvals)
        return [ticket.approvers[step]] if step < len(ticket.approvers) else []
    return []


def _plausible(address: str) -> bool:
    # Assignees may be user names without a domain; header-breaking characters never pass.
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain) and not any(c in address for c in "\r\n\t <>,;")


def is_own(address: str, own: Collection[str]) -> bool:
    """One of the gateway's addresses, also in its plus-addressed form (support+KEY.x@...)."""
    address = address.lower()
    local, _, domain = address.rpartition("@")
    return address in own or f"{local.partition('+')[0]}@{domain}" in own


def language_for(address: str, cfg: OutboundSettings) -> str:
    """Per address, else per domain, else the configured default."""
    by = {k.lower(): v for k, v in cfg.languages.items()}
    return by.get(address) or by.get(address.rpartition("@")[2]) or cfg.language


def _urgent_enough(priority: str, minimum: str) -> bool:
    if priority not in PRIORITIES:
        return False
    return PRIORITIES.index(priority) <= PRIORITIES.index(minimum)
