"""What a ticket's SLA clocks say, for people: the JSON `sla` extras and `gateway sla explain`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.sla.calendar import business_between
from gateway.sla.clock import Clock, evaluate, segments, status_history
from gateway.sla.policy import Book
from gateway.storage.models import SlaEscalation, Ticket


def _minutes(value: timedelta) -> float:
    return round(value.total_seconds() / 60, 1)


def _clock_dict(c: Clock) -> dict[str, Any]:
    return {
        "due": c.due.isoformat() if c.due else None,
        "elapsed_minutes": _minutes(c.elapsed),
        "remaining_minutes": _minutes(c.remaining),
        "running": c.running,
        "met_at": c.met_at.isoformat() if c.met_at else None,
        "breached": c.breached,
    }


def sla_view(book: Book, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """Business minutes used and left per clock as of `now` (the JSON `sla` block's extras)."""
    policy = book.current(ticket.type, ticket.priority, ticket.sla_policy, ticket.sla_pinned)
    if policy is None:
        return {}
    ev = evaluate(
        policy, status_history(ticket.events), ticket.responded_at, (), now, book.pause_statuses
    )
    return {"response": _clock_dict(ev.response), "resolution": _clock_dict(ev.resolution)}


def explain(
    book: Book, ticket: Ticket, fired: Sequence[SlaEscalation], now: datetime, zone: Any
) -> str:
    """The clock's history: segments running/paused, due times, levels fired and pending."""
    policy = book.current(ticket.type, ticket.priority, ticket.sla_policy, ticket.sla_pinned)

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if at else "-"

    lines = [f"{ticket.key}  {ticket.type} {ticket.priority}  status {ticket.status}"]
    if policy is None:
        lines.append("no SLA policy applies (see [sla] by_priority / by_type)")
        return "\n".join(lines)
    pinned = " (chosen by a rule)" if ticket.sla_pinned else ""
    lines.append(
        f"policy {policy.name}{pinned}: respond in {_minutes(policy.response):g} min, resolve "
        f"in {_minutes(policy.resolution):g} min of business time"
    )
    history = status_history(ticket.events)
    cal = policy.calendar
    lines.append("segments:")
    for seg in segments(history, book.pause_statuses):
        end = seg.end or now
        used = business_between(cal, seg.start, end) if seg.running else timedelta(0)
        state = "running" if seg.running else "paused "
        lines.append(
            f"  {local(seg.start)} .. {local(seg.end) if seg.end else 'now':<20}  {state} "
            f"{seg.status:<16} {_minutes(used):g} business min"
        )
    prefix = f"{policy.name}/"
    names = {f.level.removeprefix(prefix) for f in fired if f.level.startswith(prefix)}
    ev = evaluate(policy, history, ticket.responded_at, names, now, book.pause_statuses)
    for c in (ev.response, ev.resolution):
        met = f", met {local(c.met_at)}" if c.met_at else ""
        flag = "  BREACHED" if c.breached else ""
        lines.append(
            f"{c.target:<10} due {local(c.due)}  used {_minutes(c.elapsed):g} / "
            f"{_minutes(c.limit):g} min{met}{flag}"
        )
    done = {f.level: f for f in fired}
    lines.append("escalations:")
    for level in policy.levels:
        key = f"{policy.name}/{level.name}"
        when = f"{level.percent:g}% of {level.target}" + (
            f" + {_minutes(level.after):g} min" if level.after else ""
        )
        status = f"fired {local(done[key].fired_at)}" if key in done else "not fired"
        lines.append(f"  {level.name:<20} {when:<28} -> {', '.join(level.notify)}  {status}")
    for key in sorted(set(done) - {f"{policy.name}/{lvl.name}" for lvl in policy.levels}):
        lines.append(f"  {key:<20} (earlier policy)  fired {local(done[key].fired_at)}")
    lines.append(f"next scanner look: {local(ticket.next_escalation_at)}")
    return "\n".join(lines)
