"""Who in the chosen group gets a new ticket: the group's strategy over live ticket counts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.rules.assign import pick_assignee
from gateway.rules.model import Group
from gateway.storage.models import Ticket
from gateway.tickets.states import DONE_STATUSES


def choose_assignee(session: Session, group: Group | None) -> str | None:
    """Apply the group's strategy; None leaves the ticket in the group's queue.

    Turn order and load are read from the tickets themselves, not from process memory, so
    several daemons on one database share one rotation.
    """
    if group is None or group.strategy == "none" or not group.members:
        return None
    members = list(group.members)
    counts = session.execute(
        select(Ticket.assignee, func.count())
        .where(Ticket.assignee.in_(members), Ticket.status.not_in(DONE_STATUSES))
        .group_by(Ticket.assignee)
    )
    open_counts = {assignee: n for assignee, n in counts}
    last = session.scalar(
        select(Ticket.assignee)
        .where(Ticket.group == group.name, Ticket.assignee.in_(members))
        .order_by(Ticket.id.desc())
        .limit(1)
    )
    return pick_assignee(group.strategy, members, open_counts=open_counts, last=last)
