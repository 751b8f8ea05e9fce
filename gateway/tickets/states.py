"""The ticket lifecycle as a pure state machine: values in, a decision out, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


class Action(StrEnum):
    ASSIGN = "assign"
    START = "start"
    PEND = "pend"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    APPROVE = "approve"
    REJECT = "reject"


class Role(StrEnum):
    REQUESTER = "requester"
    AGENT = "agent"
    APPROVER = "approver"
    ADMIN = "admin"
    SYSTEM = "system"


@dataclass(frozen=True)
class TicketView:
    """What the machine needs to know about a ticket."""

    status: str
    type: str
    requester: str | None = None
    assignee: str | None = None
    group: str | None = None
    approvers: tuple[str, ...] = ()
    approvals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    action: str
    actor: str
    role: str
    assignee: str | None = None
    group: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Applied:
    status: str
    changes: dict[str, tuple[object, object]]
    note: str = ""


@dataclass(frozen=True)
class Refused:
    reason: str
    # True when the actor's role may never do this (HTTP 403), False when the ticket's state
    # forbids it now (HTTP 409).
    forbidden: bool = False


S, A, R = Status, Action, Role

# Where each action may start from, and where it leads (None: depends on the ticket).
SOURCES: dict[Action, frozenset[Status]] = {
    A.ASSIGN: frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.PENDING, S.REOPENED, S.APPROVED}),
    A.START: frozenset({S.NEW, S.ASSIGNED, S.PENDING, S.REOPENED, S.APPROVED}),
    A.PEND: frozenset({S.IN_PROGRESS}),
    A.RESOLVE: frozenset({S.IN_PROGRESS, S.PENDING}),
    A.CLOSE: frozenset({S.RESOLVED, S.REJECTED}),
    A.REOPEN: frozenset({S.RESOLVED, S.CLOSED}),
    A.APPROVE: frozenset({S.PENDING_APPROVAL}),
    A.REJECT: frozenset({S.PENDING_APPROVAL}),
}
TARGET: dict[Action, Status] = {
    A.START: S.IN_PROGRESS,
    A.PEND: S.PENDING,
    A.RESOLVE: S.RESOLVED,
    A.CLOSE: S.CLOSED,
    A.REOPEN: S.REOPENED,
    A.REJECT: S.REJECTED,
}
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    R.REQUESTER: frozenset({A.CLOSE, A.REOPEN}),
    R.AGENT: frozenset({A.ASSIGN, A.START, A.PEND, A.RESOLVE, A.CLOSE, A.REOPEN}),
    R.APPROVER: frozenset({A.APPROVE, A.REJECT}),
    R.ADMIN: frozenset(Action),
    R.SYSTEM: frozenset({A.ASSIGN, A.START, A.PEND, A.RESOLVE, A.CLOSE, A.REOPEN}),
}
NEEDS_REASON = frozenset({A.REOPEN, A.REJECT})
# Assigning from these statuses moves the ticket to `assigned`; elsewhere only the owner changes.
TO_ASSIGNED = frozenset({S.NEW, S.REOPENED, S.APPROVED})


def initial_status(type: str, approvers: Sequence[str]) -> Status:
    """A change with an approval chain waits for approval; everything else starts new."""
    return S.PENDING_APPROVAL if type == "change" and approvers else S.NEW


def decide(ticket: TicketView, cmd: Command) -> Applied | Refused:
    """Accept or refuse `cmd` on `ticket`; never raises for bad input."""
    try:
        action = Action(cmd.action)
    except ValueError:
        return Refused(f"unknown action {cmd.action!r}; valid: {', '.join(Action)}")
    try:
        role = Role(cmd.role)
    except ValueError:
        return Refused(f"unknown role {cmd.role!r}", forbidden=True)
    if action not in ROLE_ACTIONS[role]:
        return Refused(f"role {role} may not {action} a ticket", forbidden=True)
    if role == R.REQUESTER and (cmd.actor or "").lower() != (ticket.requester or "").lower():
        return Refused(f"only the requester may {action} this ticket", forbidden=True)
    status = Status(ticket.status)
    if status not in SOURCES[action]:
        return Refused(_wrong_state(ticket, status, action))
    if action in NEEDS_REASON and not (cmd.reason or "").strip():
        return Refused(f"{action} needs a reason")
    if action == A.ASSIGN:
        return _assign(ticket, status, cmd)
    if action == A.APPROVE:
        return _approve(ticket, cmd, role)
    if action == A.REJECT:
        turn = _turn(ticket)
        if role != R.ADMIN and cmd.actor.lower() != turn.lower():
            return Refused(f"only {turn} may decide this step", forbidden=True)
        return Applied(S.REJECTED, {"status": (status, S.REJECTED)}, f"rejected by {cmd.actor}")
    target = TARGET[action]
    return Applied(target, {"status": (status, target)}, "")


def _wrong_state(ticket: TicketView, status: Status, action: Action) -> str:
    if status == S.PENDING_APPROVAL:
        step = len(ticket.approvals) + 1
        return (
            f"cannot {action}: waiting for approval by {_turn(ticket)} "
            f"(step {step}/{len(ticket.approvers)})"
        )
    hints = {
        A.RESOLVE: "start it first",
        A.CLOSE: "resolve it first",
        A.PEND: "only a ticket in progress can wait on the requester",
        A.REOPEN: "only resolved or closed tickets can be reopened",
        A.APPROVE: "it is not waiting for approval",
        A.REJECT: "it is not waiting for approval",
    }
    hint = hints.get(action, "")
    return f"cannot {action} a ticket in status {str(status)!r}" + (f": {hint}" if hint else "")


def _turn(ticket: TicketView) -> str:
    step = len(ticket.approvals)
    return ticket.approvers[step] if step < len(ticket.approvers) else "(nobody)"


def _assign(ticket: TicketView, status: Status, cmd: Command) -> Applied | Refused:
    assignee = cmd.assignee if cmd.assignee is not None else ticket.assignee
    group = cmd.group if cmd.group is not None else ticket.group
    if not assignee and not group:
        return Refused("assign needs an assignee or a group")
    if assignee == ticket.assignee and group == ticket.group:
        return Refused(f"already assigned to {assignee or group}")
    reassigning = (ticket.assignee and assignee != ticket.assignee) or (
        ticket.group and group != ticket.group and ticket.assignee
    )
    if reassigning and not (cmd.reason or "").strip():
        return Refused("reassignment needs a reason")
    target = S.ASSIGNED if status in TO_ASSIGNED else status
    changes: dict[str, tuple[object, object]] = {}
    if target != status:
        changes["status"] = (status, target)
    if assignee != ticket.assignee:
        changes["assignee"] = (ticket.assignee, assignee)
    if group != ticket.group:
        changes["group"] = (ticket.group, group)
    verb = "reassigned" if reassigning else "assigned"
    return Applied(target, changes, f"{verb} to {assignee or group}")


def _approve(ticket: TicketView, cmd: Command, role: Role) -> Applied | Refused:
    if not ticket.approvers:
        return Refused("this change has no approval chain")
    turn = _turn(ticket)
    if role != R.ADMIN and cmd.actor.lower() != turn.lower():
        return Refused(f"only {turn} may approve this step", forbidden=True)
    approvals = (*ticket.approvals, turn)
    done = len(approvals) == len(ticket.approvers)
    target = S.APPROVED if done else S.PENDING_APPROVAL
    changes: dict[str, tuple[object, object]] = {"approvals": (ticket.approvals, approvals)}
    if done:
        changes["status"] = (S.PENDING_APPROVAL, S.APPROVED)
    by = cmd.actor if cmd.actor.lower() == turn.lower() else f"{cmd.actor} for {turn}"
    return Applied(target, changes, f"approved by {by} ({len(approvals)}/{len(ticket.approvers)})")


def allowed_actions(ticket: TicketView, role: str, actor: str) -> list[str]:
    """The actions `decide` would accept now (reasons and assignees supplied), for UIs and API."""
    probe = {"reason": "-", "assignee": f"{actor}#probe"}
    return [
        str(a)
        for a in Action
        if isinstance(decide(ticket, Command(str(a), actor, role, **probe)), Applied)
    ]
