"""What an alert event does to the ticket of its identity: a pure decision (values in/out).

One open ticket per identity: a repeat counts an occurrence, a recovery resolves (or only
comments), a new firing reopens within the window or opens a new ticket linked to the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from gateway.alerts.model import Kind


@dataclass(frozen=True)
class Known:
    """What the store knows about an identity: its ledger row and the ticket it points at."""

    alert_id: int | None  # None until the ledger row is written (created in this batch)
    ticket_id: int
    ticket_key: str
    open: bool  # the ticket is not resolved/closed/rejected
    resolved_at: datetime | None = None
    firing: bool = True  # the ledger's alert status (a "comment" resolve keeps the ticket open)


@dataclass(frozen=True)
class Policy:
    resolve_action: Literal["resolve", "comment"] = "resolve"
    reopen_window: timedelta = timedelta(hours=1)


# The steps, named for the JSON outcome the webhook answers with.
Step = Literal[
    "created",  # new identity (or `parent` set: after the reopen window, linked to the old)
    "occurrence",  # repeat while open: count + last seen, no journal row
    "reopened",  # firing again within the window after recovery
    "resolved",  # recovery resolves the ticket
    "commented",  # recovery with resolve_action = "comment", or a Zabbix update
    "ignored",  # nothing to do (recovery of an unknown or already resolved alert)
]


@dataclass(frozen=True)
class Decision:
    step: Step
    parent_ticket_id: int | None = None  # "created" after the reopen window
    reason: str = ""


def decide(known: Known | None, kind: Kind, at: datetime, policy: Policy) -> Decision:
    """The step for one event of kind `kind` at time `at` given what is known."""
    if kind == Kind.UPDATE:
        if known is None:
            return Decision("ignored", reason="update for a problem without a ticket")
        return Decision("commented")
    if kind == Kind.RESOLVED:
        if known is None:
            return Decision("ignored", reason="recovery of an alert without a ticket")
        if not known.open:
            return Decision("ignored", reason="ticket already resolved")
        if policy.resolve_action == "comment":
            if not known.firing:
                return Decision("ignored", reason="recovery already noted")
            return Decision("commented")
        return Decision("resolved")
    # Firing.
    if known is None:
        return Decision("created")
    if known.open:
        return Decision("occurrence")
    resolved_at = known.resolved_at
    if resolved_at is not None and at - resolved_at <= policy.reopen_window:
        return Decision("reopened")
    return Decision("created", parent_ticket_id=known.ticket_id)


def after(known: Known | None, decision: Decision, kind: Kind, at: datetime) -> Known | None:
    """The state once `decision` is applied (for the next event of the same identity).

    "created" returns None: the caller fills in the new ticket's ids.
    """
    if known is None or decision.step in ("created", "ignored"):
        return known
    if decision.step == "occurrence":
        # The storm's path: no new object unless something changes.
        return known if known.firing else replace(known, firing=True)
    if decision.step == "resolved":
        return replace(known, open=False, resolved_at=at, firing=False)
    if decision.step == "reopened":
        return replace(known, open=True, resolved_at=None, firing=True)
    if decision.step == "commented" and kind == Kind.RESOLVED:
        return replace(known, firing=False)
    return known
