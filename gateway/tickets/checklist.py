"""Ticket checklists: the steps of an inspection, ticked by agents (API or `#check N` mail).

Items are numbered from 1 in the order the template lists them. Every tick and untick is
journalled; the state machine (`states.decide`) refuses to resolve while a mandatory item is
unticked, and ticking stops once the ticket is resolved (reopen it to change its record).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.storage.models import ChecklistItem, Ticket
from gateway.tickets import service
from gateway.tickets.states import DONE_STATUSES, Refused


def add_items(session: Session, ticket: Ticket, entries: Iterable[tuple[str, bool]]) -> None:
    """Give a new ticket its checklist: (text, mandatory) in order."""
    for position, (text, mandatory) in enumerate(entries, start=1):
        item = ChecklistItem(
            position=position, text=text[:500], mandatory=mandatory, done=False, note=""
        )
        ticket.checklist.append(item)
        session.add(item)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def find_item(items: Sequence[ChecklistItem], ref: str) -> ChecklistItem | str:
    """The item `ref` names: its number, or a piece of its text that only it contains.

    Returns the item, or a sentence saying why none was found.
    """
    ref = ref.strip()
    if not items:
        return "this ticket has no checklist"
    if ref.isdigit():
        number = int(ref)
        for item in items:
            if item.position == number:
                return item
        return f"no checklist item {number} (items are 1 to {len(items)})"
    if not ref:
        return "name an item by its number, e.g. #check 2"
    found = [i for i in items if _fold(ref) in _fold(i.text)]
    if len(found) == 1:
        return found[0]
    if not found:
        return f"no checklist item mentions {ref!r}"
    numbers = ", ".join(str(i.position) for i in found)
    return f"{ref!r} matches items {numbers}; use the number"


def split_ref(arg: str) -> tuple[str, str]:
    """`2 备份完成` -> ("2", "备份完成"); text without a leading number is all reference."""
    head, _, rest = arg.strip().partition(" ")
    if head.isdigit():
        return head, rest.strip()
    return arg.strip(), ""


def tick(
    session: Session,
    ticket: Ticket,
    ref: str,
    done: bool,
    actor: service.Actor,
    now: datetime,
    *,
    note: str = "",
) -> Refused | None:
    """Tick (or untick) the item `ref` names and journal it; a refusal says why not."""
    if ticket.checklist:
        service.lock_checklist(session, ticket)
    if ticket.status in DONE_STATUSES:
        return Refused(f"{ticket.key} is {ticket.status}: reopen it to change its checklist")
    found = find_item(ticket.checklist, ref)
    if isinstance(found, str):
        return Refused(found)
    if found.done == done:
        return None  # already so: a repeated request changes nothing and says nothing
    found.done = done
    found.done_by = actor.id if done else None
    found.done_at = now if done else None
    found.note = note[:500] if done else ""
    verb = "ticked" if done else "unticked"
    text = f"{verb} {found.position}. {found.text}"
    service.journal(
        session,
        ticket,
        actor,
        "checklist",
        now,
        before={"item": found.position, "done": not done},
        after={"item": found.position, "done": done},
        note=f"{text}: {note}" if note else text,
    )
    return None
