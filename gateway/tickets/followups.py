"""A mail that continues a ticket: comment, requester verdicts, approvals and agent commands.

Who may do what is decided here, once: the requester and the ticket's participants comment
(and the requester accepts or rejects a resolution); an approver of a change waiting for
approval approves or rejects their step ("同意" / "驳回"); agents may also run `#commands`;
automatic mail is kept as an internal note and changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.config import PRIORITIES, RepliesSettings
from gateway.ingest.followup import parse_commands, verdict
from gateway.intake import Intake
from gateway.storage.models import Ticket
from gateway.tickets import checklist, service
from gateway.tickets.states import Command, Refused, Status


@dataclass(frozen=True)
class FollowupResult:
    notes: tuple[str, ...]  # refused commands and the like, journalled on the ticket


def sender_role(ticket: Ticket, sender: str, agents: frozenset[str]) -> str | None:
    """'approver', 'agent', 'requester', 'participant', or None for a stranger."""
    sender = sender.lower()
    if ticket.status == Status.PENDING_APPROVAL and sender in {
        a.lower() for a in ticket.approvers or ()
    }:
        # Whose turn it is, the state machine decides; out of turn is refused and journalled.
        return "approver"
    if sender in agents:
        return "agent"
    if sender and sender == (ticket.requester or "").lower():
        return "requester"
    if sender in {p.lower() for p in ticket.participants or ()}:
        return "participant"
    return None


def apply_followup(
    session: Session,
    ticket: Ticket,
    intake: Intake,
    role: str,
    cfg: RepliesSettings,
    now: datetime,
    *,
    raw_id: int | None = None,
) -> FollowupResult:
    channel = str(intake.source)
    text = (intake.reply_text if intake.reply_text is not None else intake.body).strip()
    if intake.auto:
        note = f"automatic mail ({intake.auto}) from {intake.sender or 'unknown'}"
        actor = service.Actor(intake.sender or service.SYSTEM, service.SYSTEM, channel)
        service.add_comment(
            session, ticket, actor, f"{note}\n\n{text}".strip(), now, public=False, raw_id=raw_id
        )
        return FollowupResult(())

    notes: list[str] = []
    if role == "approver":
        actor = service.Actor(intake.sender, "approver", channel)
        if text:
            service.add_comment(session, ticket, actor, text, now, public=False, raw_id=raw_id)
        refused = _approver_decides(session, ticket, intake.sender, text, cfg, now, channel)
        if refused:
            notes.append(f"approval by mail refused: {refused}")
    elif role == "agent":
        commands, text = parse_commands(text)
        actor = service.Actor(intake.sender, "agent", channel)
        if text:
            service.add_comment(session, ticket, actor, text, now, raw_id=raw_id)
        for cmd in commands:
            refused = _run_command(session, ticket, actor, cmd.name, cmd.arg, now)
            if refused:
                notes.append(f"#{cmd.name} (line {cmd.line}) refused: {refused}")
    else:
        # Requesters and participants act as requesters: comment, accept or reject.
        actor = service.Actor(intake.sender, "requester", channel)
        if text:
            service.add_comment(session, ticket, actor, text, now, raw_id=raw_id)
        if role == "requester":
            _requester_moves(session, ticket, intake.sender, text, cfg, now, channel)
    for note in notes:
        service.journal(
            session,
            ticket,
            service.system_actor(channel),
            "refused",
            now,
            note=note,
            public=False,
        )
    return FollowupResult(tuple(notes))


def _requester_moves(
    session: Session,
    ticket: Ticket,
    sender: str,
    text: str,
    cfg: RepliesSettings,
    now: datetime,
    channel: str,
) -> None:
    if ticket.status == Status.PENDING:
        # The answer the agent was waiting for: the clock runs again (RFC-free, brief: 待反馈).
        service.apply_command(
            session, ticket, Command("start", sender, "system", reason="requester replied"),
            channel, now,
        )  # fmt: skip
    elif ticket.status == Status.RESOLVED:
        decision = verdict(text, cfg.accept_words, cfg.reject_words)
        if decision == "reject":
            reason = text.splitlines()[0][:500] if text else "rejected by mail"
            service.apply_command(
                session, ticket, Command("reopen", sender, "requester", reason=reason), channel, now
            )
        elif decision == "accept":
            service.apply_command(
                session, ticket, Command("close", sender, "requester"), channel, now
            )


def _approver_decides(
    session: Session,
    ticket: Ticket,
    sender: str,
    text: str,
    cfg: RepliesSettings,
    now: datetime,
    channel: str,
) -> str | None:
    """Approve or reject by the opening words of the reply; the refusal reason, or None."""
    decision = verdict(text, cfg.approve_words, cfg.deny_words)
    if decision is None:
        return None  # a question or a remark: kept as a comment, the step still waits
    action = "approve" if decision == "accept" else "reject"
    reason = text.splitlines()[0][:500] if text else f"{action} by mail"
    result = service.apply_command(
        session, ticket, Command(action, sender.lower(), "approver", reason=reason), channel, now
    )
    return result.reason if isinstance(result, Refused) else None


def _run_command(
    session: Session, ticket: Ticket, actor: service.Actor, name: str, arg: str, now: datetime
) -> str | None:
    """Run one `#command`; the reason it was refused, or None."""
    if name == "note":
        service.add_comment(session, ticket, actor, arg, now, public=False)
        return None
    if name in ("check", "uncheck"):
        # `#check 2 备份完成`: item 2, with what was found; `#check 备份日志` by its text.
        ref, note = checklist.split_ref(arg)
        refused = checklist.tick(session, ticket, ref, name == "check", actor, now, note=note)
        return refused.reason if refused else None
    if name == "priority":
        value = arg.upper()
        if value not in PRIORITIES:
            return f"priority must be one of {', '.join(PRIORITIES)}"
        refused = service.update_fields(session, ticket, {"priority": value}, actor, now)
        return refused.reason if refused else None
    if name in ("assign", "group"):
        if not arg:
            return f"#{name} needs a value"
        field = "assignee" if name == "assign" else "group"
        refused = service.update_fields(
            session, ticket, {field: arg.lower() if field == "assignee" else arg}, actor, now,
            reason="reassigned by mail",
        )  # fmt: skip
        return refused.reason if refused else None
    result = service.apply_command(
        session,
        ticket,
        Command(name, actor.id, actor.role, reason=arg or f"{name} by mail"),
        actor.channel,
        now,
    )
    return result.reason if isinstance(result, Refused) else None
