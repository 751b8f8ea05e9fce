"""Assignment strategies inside a group (pure)."""

from __future__ import annotations

import pytest

from gateway.rules.assign import pick_assignee

MEMBERS = ("ann@x", "bob@x", "cai@x")


def test_round_robin_takes_turns_and_wraps() -> None:
    picks: list[str] = []
    last: str | None = None
    for _ in range(4):
        last = pick_assignee("round_robin", MEMBERS, open_counts={}, last=last)
        assert last is not None
        picks.append(last)
    assert picks == ["ann@x", "bob@x", "cai@x", "ann@x"]


def test_round_robin_restarts_when_last_left_the_group() -> None:
    assert pick_assignee("round_robin", MEMBERS, open_counts={}, last="gone@x") == "ann@x"


def test_least_open_picks_the_lightest_load() -> None:
    counts = {"ann@x": 4, "bob@x": 1, "cai@x": 2}
    assert pick_assignee("least_open", MEMBERS, open_counts=counts, last=None) == "bob@x"


def test_least_open_counts_missing_members_as_zero() -> None:
    counts = {"ann@x": 1, "bob@x": 1}
    assert pick_assignee("least_open", MEMBERS, open_counts=counts, last=None) == "cai@x"


def test_least_open_ties_rotate() -> None:
    counts = dict.fromkeys(MEMBERS, 2)
    assert pick_assignee("least_open", MEMBERS, open_counts=counts, last="ann@x") == "bob@x"
    assert pick_assignee("least_open", MEMBERS, open_counts=counts, last="cai@x") == "ann@x"


@pytest.mark.parametrize("strategy", ["none", "round_robin", "least_open"])
def test_queue_when_none_or_no_members(strategy: str) -> None:
    assert pick_assignee(strategy, (), open_counts={}, last=None) is None
    if strategy == "none":
        assert pick_assignee(strategy, MEMBERS, open_counts={}, last=None) is None


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="random"):
        pick_assignee("random", MEMBERS, open_counts={}, last=None)
