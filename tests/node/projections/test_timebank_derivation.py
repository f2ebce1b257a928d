"""The time-bank rules on the pure functions: entries, balance changes, the pod view."""

from __future__ import annotations

import msgspec
from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DAVE,
    OTHER_POD,
    POD,
    Signer,
    event,
    facts,
    key,
)

from node.projections.facts import ProjectionInput
from node.projections.timebank import HoursEntry, balance_changes, derive_entry, timebank_view
from node.projections.views import HoursEntryView, MemberBalance, TimebankView
from protocol.kinds import HoursConfirmed, HoursLogged

ENTRY = key("e")


def logged(
    by: Signer, giver: Signer = ALICE, receiver: Signer = BOB, minutes: int = 90
) -> ProjectionInput:
    body = HoursLogged(giver=giver.author, receiver=receiver.author, minutes=minutes)
    return event("e", "hours.logged", body, by, 100)


def confirmed(name: str, by: Signer, ts: int = 200, pod: str = POD) -> ProjectionInput:
    return event(name, "hours.confirmed", HoursConfirmed(entry=ENTRY), by, ts, pod=pod)


def entry(*events: ProjectionInput) -> HoursEntry | None:
    return derive_entry(ENTRY, facts(*events))


def test_an_entry_logged_by_the_giver_is_pending() -> None:
    assert entry(logged(ALICE)) == HoursEntry(
        id=ENTRY,
        pod=POD,
        giver=ALICE.person,
        receiver=BOB.person,
        minutes=90,
        logged_by=ALICE.person,
        ts=100,
        status="pending",
    )


def test_the_other_side_confirms() -> None:
    by_giver = entry(logged(ALICE), confirmed("c", BOB))
    by_receiver = entry(logged(BOB), confirmed("c", ALICE))
    assert by_giver is not None and by_receiver is not None
    assert (by_giver.status, by_receiver.status) == ("confirmed", "confirmed")
    assert (by_receiver.giver, by_receiver.receiver, by_receiver.logged_by) == (
        ALICE.person,
        BOB.person,
        BOB.person,
    )


def test_nobody_else_confirms() -> None:
    for by in (ALICE, CAROL, DAVE):
        view = entry(logged(ALICE), confirmed("c", by))
        assert view is not None and view.status == "pending"
    view = entry(logged(ALICE), confirmed("c", BOB, pod=OTHER_POD))
    assert view is not None and view.status == "pending"


def test_an_entry_logged_by_neither_side_is_ignored() -> None:
    assert entry(logged(CAROL), confirmed("c", BOB)) is None
    assert entry(logged(BOB_PHONE, giver=BOB, receiver=BOB_PHONE)) is None  # both sides at once
    # Bob naming his own two keys as both sides: no person can be the other side.
    view = entry(logged(BOB, giver=BOB, receiver=BOB_PHONE), confirmed("c", BOB_PHONE))
    assert view is not None and view.status == "pending"


def test_no_entry_before_it_is_logged() -> None:
    assert entry(confirmed("c", BOB)) is None
    assert entry(event("e", "hours.logged", None, ALICE, 100)) is None


def test_sides_named_by_device_keys_count_as_people() -> None:
    # Logged by Bob's phone naming the phone as giver; confirmed by Alice.
    view = entry(logged(BOB_PHONE, giver=BOB_PHONE, receiver=ALICE), confirmed("c", ALICE))
    assert view is not None
    assert (view.giver, view.receiver, view.logged_by) == (BOB.person, ALICE.person, BOB.person)
    # Logged by Alice naming Bob's phone; confirmed from that phone: Bob's account moves.
    view = entry(logged(ALICE, giver=ALICE, receiver=BOB_PHONE), confirmed("c", BOB_PHONE))
    assert view is not None and (view.status, view.receiver) == ("confirmed", BOB.person)
    # ... but not from Bob's other key, which the entry does not name.
    view = entry(logged(ALICE, giver=ALICE, receiver=BOB_PHONE), confirmed("c", BOB))
    assert view is not None and (view.status, view.receiver) == ("pending", BOB_PHONE.author)


def test_the_earliest_confirmation_counts() -> None:
    view = entry(logged(ALICE), confirmed("c2", BOB_PHONE, 300), confirmed("c1", BOB, 200))
    assert view is not None and view.status == "confirmed"


def pending(entry_id: str, giver: str, receiver: str, minutes: int, ts: int) -> HoursEntry:
    return HoursEntry(
        id=entry_id,
        pod=POD,
        giver=giver,
        receiver=receiver,
        minutes=minutes,
        logged_by=giver,
        ts=ts,
        status="pending",
    )


def test_balance_changes_are_double_entry() -> None:
    before = pending("e", "a", "b", 30, 1)
    after = msgspec.structs.replace(before, status="confirmed")
    assert balance_changes(None, before) == {}
    assert balance_changes(before, after) == {"a": (30, 0), "b": (0, 30)}
    assert balance_changes(after, after) == {}
    moved = msgspec.structs.replace(after, receiver="c")
    assert balance_changes(after, moved) == {"b": (0, -30), "c": (0, 30)}
    assert balance_changes(after, None) == {"a": (-30, 0), "b": (0, -30)}


def test_the_pod_view() -> None:
    view = timebank_view(
        POD,
        {"b": (0, 90), "a": (120, 0), "c": (0, 30)},
        [pending("e2", "a", "b", 10, 5), pending("e1", "b", "a", 20, 5)],
        limit_minutes=60,
    )
    assert view == TimebankView(
        pod=POD,
        members=(
            MemberBalance(
                person="a",
                balance_minutes=120,
                given_minutes=120,
                received_minutes=0,
                over_limit=False,
            ),
            MemberBalance(
                person="b",
                balance_minutes=-90,
                given_minutes=0,
                received_minutes=90,
                over_limit=True,
            ),
            MemberBalance(
                person="c",
                balance_minutes=-30,
                given_minutes=0,
                received_minutes=30,
                over_limit=False,
            ),
        ),
        pending=tuple(
            HoursEntryView(
                id=i, giver=g, receiver=r, minutes=m, logged_by=g, ts=5, status="pending"
            )
            for i, g, r, m in sorted([("e2", "a", "b", 10), ("e1", "b", "a", 20)])
        ),
        total_minutes_balance=0,
        limit_minutes=60,
    )
    unlimited = timebank_view(POD, {"b": (0, 10**6), "a": (10**6, 0)}, [], None)
    assert not any(m.over_limit for m in unlimited.members)
