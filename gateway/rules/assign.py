"""Who in a group gets a ticket: pure strategies over the group's members (brief: "by load")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.rules.model import STRATEGIES


def _after(members: Sequence[str], last: str | None) -> list[str]:
    """Members in turn order, starting with the one after `last` (from the top if unknown)."""
    if last not in members:
        return list(members)
    i = members.index(last) + 1
    return [*members[i:], *members[:i]]


def pick_assignee(
    strategy: str,
    members: Sequence[str],
    *,
    open_counts: Mapping[str, int],
    last: str | None,
) -> str | None:
    """The member to assign, or None to leave the ticket in the group queue.

    `round_robin` takes the member after `last`; `least_open` the one with fewest open
    tickets, ties going to whoever is next in turn so equal loads still rotate; `none` queues.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown assignment strategy {strategy!r}; one of {STRATEGIES}")
    if strategy == "none" or not members:
        return None
    order = _after(members, last)
    if strategy == "round_robin":
        return order[0]
    # min() keeps the first of equal counts, i.e. the next in turn.
    return min(order, key=lambda m: open_counts.get(m, 0))
