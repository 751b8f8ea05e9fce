"""SLA clocks from a ticket's status history: pure functions over values (STYLE.md habit 2).

A clock runs in business time on the policy's calendar while the ticket is open and not
waiting on the requester (`pause_statuses`, by default `pending`). The response clock stops at
the first agent action the requester can see (`responded_at`); the resolution clock stops
while the ticket is resolved, closed or rejected, and runs on from where it stopped when the
ticket is reopened. Everything is recomputed from the history, so a priority change simply
evaluates the same history against the new policy's targets.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.sla.calendar import Calendar, add_business, business_between
from gateway.sla.policy import Level, Policy, SlaStart
from gateway.tickets.states import DONE_STATUSES

ZERO = timedelta(0)


@dataclass(frozen=True)
class Segment:
    """A stretch of the ticket's life in one status; `end` None = still in it."""

    start: datetime
    end: datetime | None
    status: str
    running: bool


@dataclass(frozen=True)
class Clock:
    """One target's clock as of `now`."""

    target: str  # response | resolution
    limit: timedelta
    due: datetime | None  # None while paused before the target is reached
    elapsed: timedelta  # business time used (up to now, or up to when it was met)
    met_at: datetime | None
    running: bool
    breached: bool

    @property
    def remaining(self) -> timedelta:
        """Business time left; negative once overdue."""
        return self.limit - self.elapsed


@dataclass(frozen=True)
class Evaluation:
    response: Clock
    resolution: Clock
    fire: tuple[Level, ...]  # levels due now that have not fired yet, in policy order
    next_at: datetime | None  # when something next changes (a level or a breach), if ever

    @property
    def breached(self) -> bool:
        return self.response.breached or self.resolution.breached


class JournalEntry(Protocol):
    """What the clock reads of a journal event (TicketEvent has these)."""

    at: datetime
    after: Mapping[str, Any] | None


def status_history(events: Iterable[JournalEntry]) -> list[tuple[datetime, str]]:
    """(at, status) at creation and at every status change, from the journal in order."""
    history: list[tuple[datetime, str]] = []
    for event in events:
        status = (event.after or {}).get("status")
        if status and (not history or history[-1][1] != status):
            history.append((event.at, status))
    return history


def segments(
    history: Sequence[tuple[datetime, str]], pause: Collection[str] = ("pending",)
) -> list[Segment]:
    """Status history [(at, status), ...] (creation first, in order) as segments."""
    out: list[Segment] = []
    for i, (at, status) in enumerate(history):
        end = history[i + 1][0] if i + 1 < len(history) else None
        running = status not in pause and status not in DONE_STATUSES
        out.append(Segment(at, end, status, running))
    return out


def cut(segs: Sequence[Segment], stop: datetime | None) -> list[Segment]:
    """The segments up to `stop` (the clock's met time); all of them for None."""
    if stop is None:
        return list(segs)
    out = []
    for seg in segs:
        if seg.start >= stop:
            break
        end = stop if seg.end is None or seg.end > stop else seg.end
        out.append(Segment(seg.start, end, seg.status, seg.running))
    return out


def reach(cal: Calendar, segs: Sequence[Segment], amount: timedelta) -> datetime | None:
    """When the running segments have used `amount` of business time; None if they never do."""
    used = ZERO
    for seg in segs:
        if not seg.running:
            continue
        if seg.end is None:
            return add_business(cal, seg.start, amount - used)
        part = business_between(cal, seg.start, seg.end)
        if used + part >= amount:
            return add_business(cal, seg.start, amount - used)
        used += part
    return None


def elapsed(cal: Calendar, segs: Sequence[Segment], until: datetime) -> timedelta:
    """Business time used by the running segments before `until`."""
    total = ZERO
    for seg in segs:
        if seg.running and seg.start < until:
            total += business_between(cal, seg.start, min(seg.end or until, until))
    return total


def clock(
    cal: Calendar,
    segs: Sequence[Segment],
    target: str,
    limit: timedelta,
    met_at: datetime | None,
    now: datetime,
) -> Clock:
    """One target's clock: due time, business time used, met, breached."""
    mine = cut(segs, met_at)
    until = min(met_at, now) if met_at else now
    used = elapsed(cal, mine, until)
    due = reach(cal, mine, limit)
    if due is None and met_at is not None:
        # Met in time: show the deadline it had when it stopped.
        due = add_business(cal, met_at, limit - used)
    running = met_at is None and bool(mine) and mine[-1].end is None and mine[-1].running
    breached = due is not None and (due < met_at if met_at else due <= now)
    return Clock(target, limit, due, used, met_at, running, breached)


def resolved_at(history: Sequence[tuple[datetime, str]]) -> datetime | None:
    """When the ticket entered its current done status, if it is done."""
    if history and history[-1][1] in DONE_STATUSES:
        return history[-1][0]
    return None


def evaluate(
    policy: Policy,
    history: Sequence[tuple[datetime, str]],
    responded_at: datetime | None,
    fired: Collection[str],
    now: datetime,
    pause: Collection[str] = ("pending",),
) -> Evaluation:
    """Both clocks, the levels to fire now, and when to look again."""
    cal = policy.calendar
    segs = segments(history, pause)
    met = {"response": responded_at, "resolution": resolved_at(history)}
    clocks = {t: clock(cal, segs, t, policy.target(t), met[t], now) for t in met}
    fire: list[Level] = []
    upcoming: list[datetime] = []
    for level in policy.levels:
        if level.name in fired:
            continue
        at = reach(cal, cut(segs, met[level.target]), level.threshold(policy.target(level.target)))
        if at is None:
            continue
        if at <= now:
            fire.append(level)
        else:
            upcoming.append(at)
    # A breach with no escalation level still flips `breached` on time.
    upcoming += [c.due for c in clocks.values() if c.running and not c.breached and c.due]
    return Evaluation(
        clocks["response"], clocks["resolution"], tuple(fire), min(upcoming, default=None)
    )


# The tickets of one group-commit batch share `now`, and most share a policy: their columns
# are the same, and the calendar walk was a visible share of intake's CPU. Keyed by the
# policy's id, checked by identity, so a reloaded policy never reads a stale entry.
_recent: dict[tuple[int, bool, frozenset[str], str, datetime], tuple[Policy, dict[str, object]]]
_recent = {}


def new_ticket_columns(start: SlaStart | None, status: str, now: datetime) -> dict[str, object]:
    """The SLA columns of a ticket created `now` in `status` (used by ticket_fields)."""
    if start is None:
        # The same keys either way: the group-commit writer inserts a batch's tickets with one
        # multi-row INSERT, which needs every row to name the same columns.
        return {
            "sla_policy": None,
            "sla_pinned": False,
            "response_due": None,
            "resolution_due": None,
            "next_escalation_at": None,
        }
    key = (id(start.policy), start.pinned, start.pause, status, now)
    hit = _recent.get(key)
    if hit is not None and hit[0] is start.policy:
        return dict(hit[1])
    ev = evaluate(start.policy, [(now, status)], None, (), now, start.pause)
    columns: dict[str, object] = {
        "sla_policy": start.policy.name,
        "sla_pinned": start.pinned,
        "response_due": ev.response.due,
        "resolution_due": ev.resolution.due,
        # A level at 0% fires at once: the scanner picks it up on its next pass.
        "next_escalation_at": min((now for _ in ev.fire), default=ev.next_at),
    }
    if len(_recent) >= 64:
        _recent.clear()
    _recent[key] = (start.policy, columns)
    return dict(columns)
