"""SLA clocks from status history: pauses, response, reopening, levels (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sla.calendar import TWENTY_FOUR_SEVEN, make_calendar
from gateway.sla.clock import evaluate, new_ticket_columns
from gateway.sla.policy import Level, Policy, SlaStart

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # Wed 09:00 in Shanghai
H = timedelta(hours=1)
M = timedelta(minutes=1)
LEVELS = (
    Level("warn", "response", 80, timedelta(0), ("assignee",)),
    Level("breach", "response", 100, timedelta(0), ("ops-manager@example.com",)),
    Level("head", "resolution", 100, timedelta(0), ("it-head@example.com",)),
    Level("late", "resolution", 100, 2 * H, ("cio@example.com",)),
)
P0 = Policy("p0", TWENTY_FOUR_SEVEN, H, 4 * H, LEVELS)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE = make_calendar("Asia/Shanghai", {d: ["09:00-12:00", "13:00-18:00"] for d in WEEKDAYS})
INCIDENT = Policy("incident", OFFICE, 2 * H, 8 * H, LEVELS[:3])


def names(ev) -> list[str]:
    return [lvl.name for lvl in ev.fire]


def test_new_ticket_gets_due_times_and_its_first_level() -> None:
    cols = new_ticket_columns(SlaStart(P0, False), "new", T0)
    assert cols["response_due"] == T0 + H and cols["resolution_due"] == T0 + 4 * H
    assert cols["next_escalation_at"] == T0 + 48 * M  # 80% of an hour
    assert new_ticket_columns(None, "new", T0)["next_escalation_at"] is None


def test_new_ticket_columns_are_shared_per_batch_but_never_across_policies() -> None:
    first = new_ticket_columns(SlaStart(P0, False), "new", T0)
    first["response_due"] = None  # a caller's edit must not leak into the next ticket
    assert new_ticket_columns(SlaStart(P0, False), "new", T0)["response_due"] == T0 + H
    # Same name, new object (a config reload with other targets): computed afresh.
    reloaded = Policy("p0", TWENTY_FOUR_SEVEN, 2 * H, 4 * H, LEVELS)
    assert new_ticket_columns(SlaStart(reloaded, False), "new", T0)["response_due"] == T0 + 2 * H
    assert new_ticket_columns(SlaStart(P0, True), "new", T0)["sla_pinned"] is True


def test_levels_fire_at_their_minute_and_not_before() -> None:
    history = [(T0, "new")]
    assert names(evaluate(P0, history, None, (), T0 + 47 * M)) == []
    assert names(evaluate(P0, history, None, (), T0 + 48 * M)) == ["warn"]
    ev = evaluate(P0, history, None, {"warn"}, T0 + 60 * M)
    assert names(ev) == ["breach"] and ev.response.breached
    assert ev.next_at == T0 + 4 * H


def test_response_stops_the_response_levels() -> None:
    history = [(T0, "new"), (T0 + 30 * M, "in_progress")]
    ev = evaluate(P0, history, T0 + 30 * M, (), T0 + 3 * H)
    assert names(ev) == [] and not ev.response.breached
    assert ev.response.due == T0 + H  # the deadline it had, kept for display
    assert ev.next_at == T0 + 4 * H


def test_pending_pauses_and_resuming_pushes_the_deadline() -> None:
    history = [(T0, "new"), (T0 + 10 * M, "in_progress"), (T0 + H, "pending")]
    paused = evaluate(P0, history, T0 + 10 * M, (), T0 + 10 * H)
    assert paused.resolution.due is None and not paused.resolution.running
    assert paused.resolution.remaining == 3 * H and paused.next_at is None
    resumed = [*history, (T0 + 10 * H, "in_progress")]
    ev = evaluate(P0, resumed, T0 + 10 * M, (), T0 + 10 * H)
    assert ev.resolution.due == T0 + 13 * H


def test_reopen_runs_on_from_where_resolution_stopped() -> None:
    history = [(T0, "new"), (T0 + M, "in_progress"), (T0 + 3 * H, "resolved")]
    done = evaluate(P0, history, T0 + M, (), T0 + 30 * H)
    assert names(done) == [] and not done.breached and done.next_at is None
    reopened = [*history, (T0 + 30 * H, "reopened")]
    ev = evaluate(P0, reopened, T0 + M, (), T0 + 31 * H)
    assert ev.resolution.due == T0 + 31 * H and names(ev) == ["head"]


def test_offset_level_fires_after_the_breach() -> None:
    history = [(T0, "new")]
    ev = evaluate(P0, history, T0, {"warn", "breach", "head"}, T0 + 5 * H)
    assert names(ev) == [] and ev.next_at == T0 + 6 * H
    assert names(evaluate(P0, history, T0, {"head"}, T0 + 6 * H)) == ["late"]


def test_business_hours_incident_from_the_brief() -> None:
    # Created Wed 17:00 Shanghai: respond within 2 business hours = Thu 10:00.
    start = datetime(2026, 11, 25, 9, tzinfo=UTC)
    ev = evaluate(INCIDENT, [(start, "new")], None, (), start)
    assert ev.response.due == datetime(2026, 11, 26, 2, tzinfo=UTC)
    # 8 business hours: 1 on Wednesday, 7 on Thursday (lunch excluded) = Thu 17:00.
    assert ev.resolution.due == datetime(2026, 11, 26, 9, tzinfo=UTC)


# Pauses never shorten a clock: inserting a pending stretch never brings a due time forward.
@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([P0, INCIDENT]),
    st.integers(0, 600),
    st.integers(1, 3000),
    st.integers(0, 5000),
)
def test_pauses_never_shorten_a_clock(policy, pause_at, pause_len, later) -> None:
    plain = [(T0, "in_progress")]
    paused = [
        (T0, "in_progress"),
        (T0 + pause_at * M, "pending"),
        (T0 + (pause_at + pause_len) * M, "in_progress"),
    ]
    now = T0 + (pause_at + pause_len + later) * M
    a = evaluate(policy, plain, None, (), now)
    b = evaluate(policy, paused, None, (), now)
    assert b.resolution.due >= a.resolution.due
    assert b.resolution.elapsed <= a.resolution.elapsed
    assert len(b.fire) <= len(a.fire)
