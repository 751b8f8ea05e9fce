"""The lifecycle state machine: every status × action, roles, approval chains, reassignment."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.tickets.states import (
    Action,
    Applied,
    Command,
    Refused,
    Role,
    Status,
    TicketView,
    allowed_actions,
    decide,
    initial_status,
)

ALICE = "alice@example.com"  # requester
OLGA = "olga@example.com"  # agent
LI = "li@example.com"  # another agent
ROOT = "root@example.com"  # admin
MGR, SEC, CTO = "mgr@example.com", "sec@example.com", "cto@example.com"  # approval chain

# What each action does from each status, written out by hand (not derived from the module):
# the status it leads to, or "-" when it is refused.
TABLE = """
status            assign       start        pend     resolve   close   reopen    approve   reject
new               assigned     in_progress  -        -         -       -         -         -
assigned          assigned     in_progress  -        -         -       -         -         -
in_progress       in_progress  -            pending  resolved  -       -         -         -
pending           pending      in_progress  -        resolved  -       -         -         -
resolved          -            -            -        -         closed  reopened  -         -
closed            -            -            -        -         -       reopened  -         -
reopened          assigned     in_progress  -        -         -       -         -         -
pending_approval  -            -            -        -         -       -         approved  rejected
approved          assigned     in_progress  -        -         -       -         -         -
rejected          -            -            -        -         closed  -         -         -
"""


def _expected() -> dict[tuple[str, str], str | None]:
    header, *rows = (line.split() for line in TABLE.strip().splitlines())
    return {
        (row[0], action): None if cell == "-" else cell
        for row in rows
        for action, cell in zip(header[1:], row[1:], strict=True)
    }


EXPECTED = _expected()


def ticket(status: Status | str = Status.NEW, **kw: Any) -> TicketView:
    """An incident owned by nobody yet, or a change with a one-step chain when pending approval."""
    if status == Status.PENDING_APPROVAL:
        kw = {"type": "change", "approvers": (MGR,), **kw}
    return TicketView(**{"status": str(status), "type": "incident", "requester": ALICE, **kw})


def cmd(
    action: Action | str, actor: str = ROOT, role: Role | str = Role.ADMIN, **kw: str | None
) -> Command:
    return Command(action=str(action), actor=actor, role=str(role), **kw)


def applied(result: Applied | Refused) -> Applied:
    assert isinstance(result, Applied), result
    return result


def refused(result: Applied | Refused) -> Refused:
    assert isinstance(result, Refused), result
    assert result.reason.strip()
    return result


def test_table_covers_every_status_and_action() -> None:
    assert set(EXPECTED) == {(str(s), str(a)) for s in Status for a in Action}


@pytest.mark.parametrize(("status", "action"), sorted(EXPECTED), ids="{0[0]}-{0[1]}".format)
def test_every_status_action_pair(status: str, action: str) -> None:
    # An admin may do everything, so what is left is purely what the status allows.
    result = decide(ticket(status), cmd(action, assignee=LI, reason="because"))
    target = EXPECTED[(status, action)]
    if target is None:
        reason = refused(result).reason
        assert action in reason and status in reason
        assert not result.forbidden  # the state forbids it, not the role: a 409, not a 403
        return
    result = applied(result)
    assert result.status == target
    if target != status:
        assert result.changes["status"] == (status, target)
    else:
        assert "status" not in result.changes
    assert result.note


def test_refusals_say_what_to_do_instead() -> None:
    assert decide(ticket(Status.NEW), cmd("resolve")) == Refused(
        "cannot resolve a ticket in status 'new': start it first"
    )
    assert "resolve it first" in refused(decide(ticket(Status.IN_PROGRESS), cmd("close"))).reason
    assert "reopen it first" in refused(decide(ticket(Status.CLOSED), cmd("start"))).reason
    assert "reopen it first" in refused(decide(ticket(Status.RESOLVED), cmd("pend"))).reason
    assert "already in_progress" in refused(decide(ticket(Status.IN_PROGRESS), cmd("start"))).reason
    assert "already pending" in refused(decide(ticket(Status.PENDING), cmd("pend"))).reason
    assert "can only be closed" in refused(decide(ticket(Status.REJECTED), cmd("reopen"))).reason
    assert "not waiting for approval" in refused(decide(ticket(Status.NEW), cmd("approve"))).reason


def test_simple_transitions_change_only_the_status() -> None:
    result = applied(decide(ticket(Status.PENDING), cmd("start")))
    assert result == Applied(Status.IN_PROGRESS, {"status": ("pending", "in_progress")}, "started")


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reopen_needs_a_reason(reason: str | None) -> None:
    result = refused(
        decide(ticket(Status.RESOLVED), cmd("reopen", ALICE, "requester", reason=reason))
    )
    assert result.reason == "reopen needs a reason" and not result.forbidden


def test_unknown_action_names_the_valid_ones() -> None:
    reason = refused(decide(ticket(), cmd("escalate"))).reason
    assert "'escalate'" in reason
    assert all(str(a) in reason for a in Action)


def test_unknown_role_and_status_are_refused_not_raised() -> None:
    assert refused(decide(ticket(), cmd("start", role="boss"))).forbidden
    assert "'archived'" in refused(decide(ticket("archived"), cmd("start"))).reason


# --- roles -------------------------------------------------------------------------------

# Which actions each role may ever take, by hand; "x" = allowed.
ROLES = """
role       assign  start  pend  resolve  close  reopen  approve  reject
requester  -       -      -     -        x      x       -        -
agent      x       x      x     x        x      x       -        -
approver   -       -      -     -        -      -       x        x
admin      x       x      x     x        x      x       x        x
system     x       x      x     x        x      x       -        -
"""
_header, *_rows = (line.split() for line in ROLES.strip().splitlines())
ROLE_TABLE = {(r[0], a): c == "x" for r in _rows for a, c in zip(_header[1:], r[1:], strict=True)}
# A status where each action is legal, so only the role decides.
LEGAL_FROM = {
    "assign": Status.NEW,
    "start": Status.ASSIGNED,
    "pend": Status.IN_PROGRESS,
    "resolve": Status.IN_PROGRESS,
    "close": Status.RESOLVED,
    "reopen": Status.CLOSED,
    "approve": Status.PENDING_APPROVAL,
    "reject": Status.PENDING_APPROVAL,
}
ACTOR = {"requester": ALICE, "agent": OLGA, "approver": MGR, "admin": ROOT, "system": "system"}


@pytest.mark.parametrize(("role", "action"), sorted(ROLE_TABLE), ids="{0[0]}-{0[1]}".format)
def test_role_permissions(role: str, action: str) -> None:
    t = ticket(LEGAL_FROM[action])
    result = decide(t, cmd(action, ACTOR[role], role, assignee=LI, reason="because"))
    if ROLE_TABLE[(role, action)]:
        applied(result)
    else:
        assert refused(result).forbidden  # a 403: asking again later will not help
        assert result.reason.startswith(f"role '{role}' may not {action} a ticket (it may: ")


def test_table_covers_every_role_and_action() -> None:
    assert set(ROLE_TABLE) == {(str(r), str(a)) for r in Role for a in Action}


def test_requester_may_only_accept_or_reject_their_own_ticket() -> None:
    mine = ticket(Status.RESOLVED)
    assert applied(decide(mine, cmd("close", ALICE, "requester"))).status == Status.CLOSED
    # Addresses compare without regard to case: mail clients vary.
    assert applied(decide(mine, cmd("close", "Alice@Example.COM", "requester")))
    theirs = replace(mine, requester="bob@example.com")
    for action in ("close", "reopen"):
        result = refused(decide(theirs, cmd(action, ALICE, "requester", reason="no")))
        assert result.forbidden and "requester" in result.reason
    # A ticket without a requester belongs to no requester, not to an empty actor.
    orphan = replace(mine, requester=None)
    assert refused(decide(orphan, cmd("close", "", "requester"))).forbidden


def test_requester_refusal_for_wrong_role_comes_before_state() -> None:
    # The requester cannot start any ticket, so say that rather than "it is already ...".
    result = refused(decide(ticket(Status.IN_PROGRESS), cmd("start", ALICE, "requester")))
    assert result.forbidden and "may not start" in result.reason


def test_system_automation_resolves_and_reopens_alert_tickets() -> None:
    t = ticket(Status.IN_PROGRESS)
    assert applied(decide(t, cmd("resolve", "alertmanager", "system"))).status == Status.RESOLVED
    t = ticket(Status.RESOLVED)
    result = decide(t, cmd("reopen", "alertmanager", "system", reason="alert firing again"))
    assert applied(result).status == Status.REOPENED


# --- multi-level approval -------------------------------------------------------------------

CHAIN = (MGR, SEC, CTO)


def change(approvals: tuple[str, ...] = ()) -> TicketView:
    return ticket(Status.PENDING_APPROVAL, approvers=CHAIN, approvals=approvals)


def test_initial_status() -> None:
    assert initial_status("change", CHAIN) == Status.PENDING_APPROVAL
    assert initial_status("change", []) == Status.NEW
    assert initial_status("incident", CHAIN) == Status.NEW  # only changes are approved
    assert initial_status("request", ()) == Status.NEW
    assert initial_status("inspection", ()) == Status.NEW


def test_three_step_chain_in_order() -> None:
    first = applied(decide(change(), cmd("approve", MGR, "approver")))
    assert first.status == Status.PENDING_APPROVAL
    assert first.changes == {"approvals": ((), (MGR,))}  # status unchanged, so not listed
    assert first.note == f"approved by {MGR} (1/3)"

    second = applied(decide(change((MGR,)), cmd("approve", SEC, "approver")))
    assert second.changes == {"approvals": ((MGR,), (MGR, SEC))}
    assert second.note == f"approved by {SEC} (2/3)"

    last = applied(decide(change((MGR, SEC)), cmd("approve", CTO, "approver")))
    assert last.status == Status.APPROVED
    assert last.changes == {
        "approvals": ((MGR, SEC), CHAIN),
        "status": (Status.PENDING_APPROVAL, Status.APPROVED),
    }
    assert last.note == f"approved by {CTO} (3/3)"


def test_out_of_turn_approver_is_refused() -> None:
    for actor, approvals in [(SEC, ()), (CTO, ()), (CTO, (MGR,)), (MGR, (MGR,))]:
        result = refused(decide(change(approvals), cmd("approve", actor, "approver")))
        assert result.forbidden
        step = len(approvals) + 1
        assert result.reason == f"only {CHAIN[step - 1]} may approve step {step}/3 of this change"


def test_approver_outside_the_chain_is_refused() -> None:
    assert refused(decide(change(), cmd("approve", "eve@example.com", "approver"))).forbidden


def test_approver_turn_ignores_case() -> None:
    assert applied(decide(change(), cmd("approve", "MGR@example.com", "approver")))


def test_admin_approves_for_the_current_step() -> None:
    result = applied(decide(change((MGR,)), cmd("approve", ROOT, "admin")))
    assert result.status == Status.PENDING_APPROVAL
    # The chain advances by one step and records who really decided it.
    assert result.changes == {"approvals": ((MGR,), (MGR, ROOT))}
    assert result.note == f"approved by {ROOT} for {SEC} (2/3)"
    # The next step is the CTO's, not the security officer's any more.
    assert refused(decide(change((MGR, ROOT)), cmd("approve", SEC, "approver"))).forbidden
    done = applied(decide(change((MGR, ROOT)), cmd("approve", CTO, "approver")))
    assert done.status == Status.APPROVED


def test_reject_mid_chain() -> None:
    result = applied(decide(change((MGR,)), cmd("reject", SEC, "approver", reason="no rollback")))
    assert result.status == Status.REJECTED
    assert result.changes == {"status": (Status.PENDING_APPROVAL, Status.REJECTED)}
    assert result.note == f"rejected by {SEC} at step 2/3"


def test_reject_rules() -> None:
    mid = change((MGR,))
    out_of_turn = refused(decide(mid, cmd("reject", CTO, "approver", reason="no")))
    assert out_of_turn.forbidden
    assert refused(decide(mid, cmd("reject", SEC, "approver"))).reason == "reject needs a reason"
    assert refused(decide(mid, cmd("reject", SEC, "approver", reason=" "))).reason
    by_admin = applied(decide(mid, cmd("reject", ROOT, "admin", reason="freeze window")))
    assert by_admin.status == Status.REJECTED
    assert by_admin.note == f"rejected by {ROOT} for {SEC} at step 2/3"


def test_waiting_change_cannot_be_worked() -> None:
    for action in ("assign", "start", "resolve", "pend", "close"):
        result = refused(decide(change((MGR,)), cmd(action, OLGA, "agent", assignee=LI)))
        assert result.reason.endswith(f"waiting for approval by {SEC} (step 2/3)")
        assert not result.forbidden


def test_broken_chain_can_only_be_rejected_by_an_admin() -> None:
    # A change stuck in pending_approval with no step left must not be approvable by anyone,
    # nor silently gain an approval; an admin can still take it out of the queue.
    for stuck in (ticket(Status.PENDING_APPROVAL, approvers=()), change(CHAIN)):
        assert "admin must reject" in refused(decide(stuck, cmd("approve"))).reason
        assert refused(decide(stuck, cmd("reject", MGR, "approver", reason="x")))
        assert applied(decide(stuck, cmd("reject", reason="chain lost"))).note == (
            f"rejected by {ROOT}"
        )


def test_approved_change_proceeds_like_new() -> None:
    approved = ticket(Status.APPROVED, type="change", approvers=CHAIN, approvals=CHAIN)
    assert applied(decide(approved, cmd("assign", OLGA, "agent", assignee=OLGA))).status == (
        Status.ASSIGNED
    )
    assert applied(decide(approved, cmd("start", OLGA, "agent"))).status == Status.IN_PROGRESS


# --- assignment ----------------------------------------------------------------------------


def assign(t: TicketView, **kw: str | None) -> Applied | Refused:
    return decide(t, cmd("assign", OLGA, "agent", **kw))


def test_first_assignment_needs_no_reason() -> None:
    result = applied(assign(ticket(), assignee=OLGA))
    assert result.status == Status.ASSIGNED
    assert result.changes == {"status": ("new", "assigned"), "assignee": (None, OLGA)}
    assert result.note == f"assigned to {OLGA}"


def test_assign_to_a_group_alone() -> None:
    result = applied(assign(ticket(Status.REOPENED), group="dba"))
    assert result.status == Status.ASSIGNED
    assert result.changes == {"status": ("reopened", "assigned"), "group": (None, "dba")}


def test_naming_a_person_in_a_queue_is_not_a_reassignment() -> None:
    result = applied(assign(ticket(group="ops"), assignee=OLGA))
    assert result.changes == {"status": ("new", "assigned"), "assignee": (None, OLGA)}
    assert result.note == f"assigned to {OLGA} / ops"


@pytest.mark.parametrize("kw", [{}, {"assignee": ""}, {"group": "  "}])
def test_assign_needs_someone(kw: dict[str, str]) -> None:
    owned = ticket(Status.ASSIGNED, assignee=OLGA)
    assert refused(assign(owned, **kw)).reason == "assign needs an assignee or a group"


@pytest.mark.parametrize("reason", [None, "", "  "])
@pytest.mark.parametrize(
    ("owner", "kw"),
    [
        ({"assignee": OLGA}, {"assignee": LI}),
        ({"group": "ops"}, {"group": "dba"}),
        ({"assignee": OLGA, "group": "ops"}, {"group": "dba"}),
        ({"assignee": OLGA, "group": "ops"}, {"assignee": LI}),
    ],
)
def test_reassignment_needs_a_reason(
    owner: dict[str, str], kw: dict[str, str], reason: str | None
) -> None:
    result = refused(assign(ticket(Status.ASSIGNED, **owner), reason=reason, **kw))
    assert result.reason == "reassignment needs a reason" and not result.forbidden


def test_reassignment_with_a_reason() -> None:
    owned = ticket(Status.ASSIGNED, assignee=OLGA, group="ops")
    result = applied(assign(owned, assignee=LI, group="dba", reason="DBA on duty"))
    assert result.status == Status.ASSIGNED
    assert result.changes == {"assignee": (OLGA, LI), "group": ("ops", "dba")}
    assert result.note == f"reassigned to {LI} / dba"


def test_assigning_the_same_owner_again_is_a_no_op() -> None:
    owned = ticket(Status.ASSIGNED, assignee=OLGA, group="ops")
    for kw in ({"assignee": OLGA}, {"assignee": OLGA.upper()}, {"group": "ops"}):
        assert "nothing to change" in refused(assign(owned, reason="again", **kw)).reason


@pytest.mark.parametrize("status", [Status.IN_PROGRESS, Status.PENDING, Status.ASSIGNED])
def test_assign_while_worked_keeps_the_status(status: Status) -> None:
    result = applied(assign(ticket(status, assignee=OLGA), assignee=LI, reason="shift change"))
    assert result.status == status
    assert result.changes == {"assignee": (OLGA, LI)}


# --- allowed_actions ---------------------------------------------------------------------


def test_allowed_actions_for_each_role() -> None:
    assert allowed_actions(ticket(Status.NEW), "agent", OLGA) == ["assign", "start"]
    assert allowed_actions(ticket(Status.IN_PROGRESS), "system", "x") == [
        "assign",
        "pend",
        "resolve",
    ]
    assert allowed_actions(ticket(Status.RESOLVED), "requester", ALICE) == ["close", "reopen"]
    assert allowed_actions(ticket(Status.RESOLVED), "requester", "bob@example.com") == []
    assert allowed_actions(ticket(Status.CLOSED), "agent", OLGA) == ["reopen"]
    assert allowed_actions(ticket(Status.REJECTED), "admin", ROOT) == ["close"]
    assert allowed_actions(change((MGR,)), "approver", SEC) == ["approve", "reject"]
    assert allowed_actions(change((MGR,)), "approver", MGR) == []
    assert allowed_actions(change((MGR,)), "agent", OLGA) == []
    assert allowed_actions(change((MGR,)), "admin", ROOT) == ["approve", "reject"]


@pytest.mark.parametrize("status", list(Status))
def test_allowed_actions_match_the_table_for_admins(status: Status) -> None:
    expected = [a for a in Action if EXPECTED[(str(status), str(a))] is not None]
    assert allowed_actions(ticket(status), "admin", ROOT) == expected


# --- robustness ------------------------------------------------------------------------------

text = st.one_of(st.none(), st.text(max_size=20), st.sampled_from([ALICE, OLGA, MGR, "ops"]))


@given(
    status=st.one_of(st.sampled_from(list(Status)), st.text(max_size=12)),
    action=st.one_of(st.sampled_from(list(Action)), st.text(max_size=12)),
    role=st.one_of(st.sampled_from(list(Role)), st.text(max_size=12)),
    actor=st.text(max_size=20),
    requester=text,
    assignee=text,
    group=text,
    reason=text,
    approvers=st.lists(st.sampled_from([MGR, SEC, CTO]), max_size=3).map(tuple),
    approvals=st.lists(st.sampled_from([MGR, SEC, ROOT]), max_size=4).map(tuple),
)
def test_decide_never_raises(
    status: str,
    action: str,
    role: str,
    actor: str,
    requester: str | None,
    assignee: str | None,
    group: str | None,
    reason: str | None,
    approvers: tuple[str, ...],
    approvals: tuple[str, ...],
) -> None:
    t = TicketView(str(status), "change", requester, assignee, group, approvers, approvals)
    c = Command(str(action), actor, str(role), assignee, group, reason)
    result = decide(t, c)
    if isinstance(result, Refused):
        assert result.reason.strip()
    else:
        assert result.status in set(Status)
        if "status" in result.changes:
            assert result.changes["status"] == (status, result.status)
        else:
            assert result.status == status
