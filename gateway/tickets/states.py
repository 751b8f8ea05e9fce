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


# Statuses in which nobody works a ticket any more: not "open" for load, dedup or threading.
DONE_STATUSES: frozenset[str] = frozenset(
    {Status.RESOLVED.value, Status.CLOSED.value, Status.REJECTED.value}
)


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
    type: str  # incident | change | request | inspection
    requester: str | None = None
    assignee: str | None = None
    group: str | None = None
    approvers: tuple[str, ...] = ()  # ordered approval chain (emails), for changes
    approvals: tuple[str, ...] = ()  # who approved so far, in order
    # Mandatory checklist items not ticked yet ("2. 检查备份日志"): resolve waits for them.
    unchecked: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    """One requested transition, by whom and in which role."""

    action: str
    actor: str
    role: str
    assignee: str | None = None
    group: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Applied:
    """The command is accepted: the new status and each changed field as (before, after)."""

    status: str
    changes: dict[str, tuple[object, object]]
    note: str = ""


@dataclass(frozen=True)
class Refused:
    """The command is refused, with a sentence a person can act on."""

    reason: str
    # True when the actor may never do this (HTTP 403), False when the ticket's state forbids
    # it now (HTTP 409).
    forbidden: bool = False


S, A, R = Status, Action, Role

# Where each action may start from.
SOURCES: dict[Action, frozenset[Status]] = {
    A.ASSIGN: frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.PENDING, S.REOPENED, S.APPROVED}),
    A.START: frozenset({S.NEW, S.ASSIGNED, S.PENDING, S.REOPENED, S.APPROVED}),
    A.PEND: frozenset({S.IN_PROGRESS}),
    A.RESOLVE: frozenset({S.IN_PROGRESS, S.PENDING}),
    # A rejected change is dead; closing it is the only way to file it away.
    A.CLOSE: frozenset({S.RESOLVED, S.REJECTED}),
    A.REOPEN: frozenset({S.RESOLVED, S.CLOSED}),
    A.APPROVE: frozenset({S.PENDING_APPROVAL}),
    A.REJECT: frozenset({S.PENDING_APPROVAL}),
}
# Automation closes the loop of a recovered alert whether or not anybody started on it.
SYSTEM_SOURCES: dict[Action, frozenset[Status]] = {
    A.RESOLVE: SOURCES[A.RESOLVE] | {S.NEW, S.ASSIGNED, S.REOPENED},
}
# Where the simple actions lead; assign and approve depend on the ticket.
TARGET: dict[Action, Status] = {
    A.START: S.IN_PROGRESS,
    A.PEND: S.PENDING,
    A.RESOLVE: S.RESOLVED,
    A.CLOSE: S.CLOSED,
    A.REOPEN: S.REOPENED,
    A.REJECT: S.REJECTED,
}
_WORK = frozenset({A.ASSIGN, A.START, A.PEND, A.RESOLVE, A.CLOSE, A.REOPEN})
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    # A requester only accepts (close) or rejects (reopen) the fix, and only on their own ticket.
    R.REQUESTER: frozenset({A.CLOSE, A.REOPEN}),
    R.AGENT: _WORK,
    R.APPROVER: frozenset({A.APPROVE, A.REJECT}),
    R.ADMIN: frozenset(Action),
    R.SYSTEM: _WORK,
}
# A reopen carries the requester's rejection reason; a reject tells the requester why.
NEEDS_REASON = frozenset({A.REOPEN, A.REJECT})
NOTES: dict[Action, str] = {
    A.START: "started",
    A.PEND: "waiting on the requester",
    A.RESOLVE: "resolved",
    A.CLOSE: "closed",
    A.REOPEN: "reopened",
}
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
        return Refused(f"unknown action {cmd.action!r}; valid actions: {', '.join(Action)}")
    try:
        role = Role(cmd.role)
    except ValueError:
        return Refused(f"unknown role {cmd.role!r}; valid roles: {', '.join(Role)}", True)
    if action not in ROLE_ACTIONS[role]:
        may = ", ".join(a for a in Action if a in ROLE_ACTIONS[role])
        return Refused(f"role {str(role)!r} may not {action} a ticket (it may: {may})", True)
    if role == R.REQUESTER and not (ticket.requester and _same(cmd.actor, ticket.requester)):
        return Refused(f"only the ticket's requester may {action} it", True)
    try:
        status = Status(ticket.status)
    except ValueError:
        return Refused(f"ticket has an unknown status {ticket.status!r}")
    sources = SYSTEM_SOURCES.get(action, SOURCES[action]) if role == R.SYSTEM else SOURCES[action]
    if status not in sources:
        return Refused(
            f"cannot {action} a ticket in status {str(status)!r}: {_hint(ticket, action)}"
        )
    if action == A.ASSIGN:
        return _assign(ticket, status, cmd)
    if action in (A.APPROVE, A.REJECT):
        return _decide_step(ticket, cmd, action, role)
    if action in NEEDS_REASON and not _given(cmd.reason):
        return Refused(f"{action} needs a reason")
    if action == A.RESOLVE and ticket.unchecked:
        # An inspection is done when its mandatory steps are, whoever resolves it.
        return Refused(
            "mandatory checklist items are not ticked: "
            + "; ".join(ticket.unchecked)
            + " (tick them first: #check N by mail or POST .../checklist/N)"
        )
    target = TARGET[action]
    return Applied(target, {"status": (status, target)}, NOTES[action])


def allowed_actions(ticket: TicketView, role: str, actor: str) -> list[str]:
    """The actions `decide` would accept now (reasons and assignees supplied), for UIs and API."""
    # A reason and a fresh assignee are probes: the UI asks the person for the real ones.
    probe = {"reason": "-", "assignee": f"{actor}#probe"}
    return [
        str(a)
        for a in Action
        if isinstance(decide(ticket, Command(str(a), actor, role, **probe)), Applied)
    ]


def _same(a: str | None, b: str | None) -> bool:
    # Mail addresses arrive in any case (RFC 5321 local parts aside, nobody relies on case).
    return (a or "").casefold() == (b or "").casefold()


def _given(text: str | None) -> bool:
    return bool(text and text.strip())


def _turn(ticket: TicketView) -> str | None:
    """The approver whose step it is, or None when the chain is exhausted or empty."""
    step = len(ticket.approvals)
    return ticket.approvers[step] if step < len(ticket.approvers) else None


def _step(ticket: TicketView) -> str:
    return f"step {len(ticket.approvals) + 1}/{len(ticket.approvers)}"


def _hint(ticket: TicketView, action: Action) -> str:
    """What the person should do instead, for an action the status does not allow."""
    status = Status(ticket.status)
    if status == S.PENDING_APPROVAL:
        turn = _turn(ticket)
        if turn is None:
            return "its approval chain is empty or complete; an admin must reject it"
        return f"waiting for approval by {turn} ({_step(ticket)})"
    if status == S.REJECTED:
        return "a rejected change can only be closed"
    if action in (A.APPROVE, A.REJECT):
        return "it is not waiting for approval"
    if TARGET.get(action) == status:
        return f"it is already {status}"
    if status in (S.RESOLVED, S.CLOSED):
        return "reopen it first"
    # What is left: an open ticket asked to pend, resolve, close or reopen too early.
    hints = {
        A.PEND: "start it first",
        A.RESOLVE: "start it first",
        A.CLOSE: "resolve it first",
        A.REOPEN: "only resolved or closed tickets can be reopened",
    }
    return hints[action]


def _assign(ticket: TicketView, status: Status, cmd: Command) -> Applied | Refused:
    if not _given(cmd.assignee) and not _given(cmd.group):
        return Refused("assign needs an assignee or a group")
    # A field the command leaves out keeps its value: naming a person keeps the queue.
    assignee = cmd.assignee if _given(cmd.assignee) else ticket.assignee
    group = cmd.group if _given(cmd.group) else ticket.group
    new_person = not _same(assignee, ticket.assignee)
    new_group = group != ticket.group
    if not new_person and not new_group:
        return Refused(f"already assigned to {assignee or group}; nothing to change")
    # Taking work away from someone (or some queue) is 转派: the journal must say why.
    reassigning = bool((ticket.assignee and new_person) or (ticket.group and new_group))
    if reassigning and not _given(cmd.reason):
        return Refused("reassignment needs a reason")
    target = S.ASSIGNED if status in TO_ASSIGNED else status
    changes: dict[str, tuple[object, object]] = {}
    if target != status:
        changes["status"] = (status, target)
    if new_person:
        changes["assignee"] = (ticket.assignee, assignee)
    if new_group:
        changes["group"] = (ticket.group, group)
    owner = " / ".join(x for x in (assignee, group) if x)
    return Applied(target, changes, f"{'reassigned' if reassigning else 'assigned'} to {owner}")


def _decide_step(ticket: TicketView, cmd: Command, action: Action, role: Role) -> Applied | Refused:
    """Approve or reject the current step of the approval chain."""
    turn = _turn(ticket)
    if turn is None and (action == A.APPROVE or role != R.ADMIN):
        return Refused(f"cannot {action}: {_hint(ticket, action)}")
    # An admin may decide a step for an absent approver; anyone else only on their own turn.
    if role != R.ADMIN and not _same(cmd.actor, turn):
        return Refused(f"only {turn} may {action} {_step(ticket)} of this change", True)
    by = cmd.actor if turn is None or _same(cmd.actor, turn) else f"{cmd.actor} for {turn}"
    if action == A.REJECT:
        if not _given(cmd.reason):
            return Refused("reject needs a reason")
        changes: dict[str, tuple[object, object]] = {"status": (S.PENDING_APPROVAL, S.REJECTED)}
        step = f" at {_step(ticket)}" if turn else ""
        return Applied(S.REJECTED, changes, f"rejected by {by}{step}")
    # Record who actually decided, so the audit trail shows an admin stepping in.
    approvals = (*ticket.approvals, cmd.actor)
    done = len(approvals) == len(ticket.approvers)
    target = S.APPROVED if done else S.PENDING_APPROVAL
    changes = {"approvals": (ticket.approvals, approvals)}
    if done:
        changes["status"] = (S.PENDING_APPROVAL, S.APPROVED)
    return Applied(target, changes, f"approved by {by} ({len(approvals)}/{len(ticket.approvers)})")
