"""The checklist gate in the state machine and how agents name items: pure, no database."""

from __future__ import annotations

import pytest

from gateway.storage.models import ChecklistItem
from gateway.tickets.checklist import find_item, split_ref
from gateway.tickets.states import Applied, Command, Refused, TicketView, allowed_actions, decide

OPEN = ("1. 确认备份任务均成功", "3. 检查存储空间")


@pytest.mark.parametrize("role", ["agent", "admin", "system"])
def test_resolve_is_refused_while_mandatory_items_are_unticked(role: str) -> None:
    ticket = TicketView(status="in_progress", type="inspection", unchecked=OPEN)
    result = decide(ticket, Command("resolve", "olga@example.com", role))
    assert isinstance(result, Refused) and not result.forbidden  # 409, not 403
    assert "1. 确认备份任务均成功; 3. 检查存储空间" in result.reason
    assert "#check N" in result.reason


def test_everything_else_is_unaffected_and_a_done_checklist_resolves() -> None:
    ticket = TicketView(status="in_progress", type="inspection", unchecked=OPEN)
    assert "resolve" not in allowed_actions(ticket, "agent", "olga@example.com")
    assert isinstance(decide(ticket, Command("pend", "olga@example.com", "agent")), Applied)
    done = TicketView(status="in_progress", type="inspection")
    result = decide(done, Command("resolve", "olga@example.com", "agent"))
    assert isinstance(result, Applied) and result.status == "resolved"
    # A wrong status still explains the status first.
    new = TicketView(status="new", type="inspection", unchecked=OPEN)
    assert "start it first" in decide(new, Command("resolve", "o@x", "agent")).reason


ITEMS = [
    ChecklistItem(position=1, text="检查 CPU、内存、磁盘使用率", mandatory=True, done=False),
    ChecklistItem(position=2, text="查看系统日志中的错误", mandatory=True, done=False),
    ChecklistItem(position=3, text="核对 NTP 时间同步", mandatory=False, done=False),
]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("2", 2),
        ("ntp", 3),  # case- and width-insensitive
        ("ＮＴＰ", 3),
        ("日志", 2),
        ("9", "no checklist item 9 (items are 1 to 3)"),
        ("查", "'查' matches items 1, 2; use the number"),
        ("备份", "no checklist item mentions '备份'"),
        ("", "name an item by its number, e.g. #check 2"),
    ],
)
def test_items_are_found_by_number_or_by_a_unique_piece_of_text(ref: str, expected) -> None:
    found = find_item(ITEMS, ref)
    assert (found.position if isinstance(found, ChecklistItem) else found) == expected


def test_a_number_may_carry_a_note() -> None:
    assert split_ref("2 日志无异常") == ("2", "日志无异常")
    assert split_ref("  3  ") == ("3", "")
    assert split_ref("时间 同步") == ("时间 同步", "")
    assert find_item([], "1") == "this ticket has no checklist"
