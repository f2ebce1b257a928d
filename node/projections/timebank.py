"""The time bank, derived purely from facts (no SQL): entries, balance changes, the pod view.

An ``hours.logged`` entry is logged by one side — the giver or the receiver — and counts once
the *other* side confirms it with ``hours.confirmed``; an entry logged by neither side is
ignored. A side may be named by a person's key or by one of their device keys: the logging and
confirming events say which person signed, so confirmed entries always count people.

Double entry: a confirmed entry adds ``minutes`` to what the giver gave and to what the
receiver received, so balances (given − received) always sum to zero in a pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import Fact, order
from node.projections.views import (
    EntryStatus,
    HoursEntryView,
    MemberBalance,
    TimebankView,
)

__all__ = ["HoursEntry", "balance_changes", "derive_entry", "explain_entry", "timebank_view"]


class HoursEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A time-bank entry as stored: its view fields plus the pod it belongs to."""

    id: str
    pod: str
    giver: str
    receiver: str
    minutes: int
    logged_by: str
    ts: int
    status: EntryStatus

    def view(self) -> HoursEntryView:
        """The entry as the API shows it."""
        return HoursEntryView(
            id=self.id,
            giver=self.giver,
            receiver=self.receiver,
            minutes=self.minutes,
            logged_by=self.logged_by,
            ts=self.ts,
            status=self.status,
        )


def _is(fact: Fact, side: str) -> bool:
    return side in (fact.person, fact.author)


def derive_entry(entry_id: str, facts: Iterable[Fact]) -> HoursEntry | None:
    """The entry ``entry_id``, or ``None`` while unknown or when its logger is neither side."""
    ordered = sorted(facts, key=order)
    logged = next((f for f in ordered if f.id == entry_id and f.kind == "hours.logged"), None)
    data = None if logged is None else logged.data
    if logged is None or data is None or not (data.giver and data.receiver and data.minutes):
        return None
    giver, receiver, minutes = data.giver, data.receiver, data.minutes
    by_giver, by_receiver = _is(logged, giver), _is(logged, receiver)
    if by_giver == by_receiver:  # neither side, or a person naming themselves twice
        return None
    other = receiver if by_giver else giver
    confirmation = next(
        (
            f
            for f in ordered
            if f.kind == "hours.confirmed"
            and f.subject == entry_id
            and f.pod == logged.pod
            and f.person != logged.person
            and _is(f, other)
        ),
        None,
    )
    # Each side as a person: the logger's from the log, the other's from the confirmation.
    other_person = other if confirmation is None else confirmation.person
    return HoursEntry(
        id=entry_id,
        pod=logged.pod,
        giver=logged.person if by_giver else other_person,
        receiver=other_person if by_giver else logged.person,
        minutes=minutes,
        logged_by=logged.person,
        ts=logged.ts,
        status="pending" if confirmation is None else "confirmed",
    )


def _counted(entry: HoursEntry | None) -> list[tuple[str, int, int]]:
    if entry is None or entry.status != "confirmed":
        return []
    return [(entry.giver, entry.minutes, 0), (entry.receiver, 0, entry.minutes)]


def balance_changes(old: HoursEntry | None, new: HoursEntry | None) -> dict[str, tuple[int, int]]:
    """What replacing entry ``old`` by ``new`` changes: person → (Δ given, Δ received), non-zero."""
    changes: dict[str, tuple[int, int]] = {}
    for sign, entry in ((-1, old), (1, new)):
        for person, given, received in _counted(entry):
            was_given, was_received = changes.get(person, (0, 0))
            changes[person] = (was_given + sign * given, was_received + sign * received)
    return {person: change for person, change in changes.items() if change != (0, 0)}


def timebank_view(
    pod: str,
    balances: Mapping[str, tuple[int, int]],
    pending: Iterable[HoursEntry],
    limit_minutes: int | None,
) -> TimebankView:
    """The pod's time bank from its balances (person → (given, received)) and pending entries."""
    members = tuple(
        MemberBalance(
            person=person,
            balance_minutes=given - received,
            given_minutes=given,
            received_minutes=received,
            over_limit=limit_minutes is not None and given - received < -limit_minutes,
        )
        for person, (given, received) in sorted(balances.items())
    )
    return TimebankView(
        pod=pod,
        members=members,
        pending=tuple(entry.view() for entry in sorted(pending, key=lambda e: (e.ts, e.id))),
        total_minutes_balance=sum(m.balance_minutes for m in members),
        limit_minutes=limit_minutes,
    )


def explain_entry(fact: Fact, entry: HoursEntry | None, facts: Iterable[Fact]) -> Effect:
    """What ``fact`` did to its time-bank entry (``derive_entry`` read the other way)."""
    if fact.kind == "hours.logged":
        if entry is None:
            return no_effect(
                "not-a-party", "hours are logged by the person who gave or received them"
            )
        return applied("hours logged: they count once the other side confirms")
    if entry is None:
        return no_effect("unknown-entry", "confirms an hours entry that is not known here")
    if fact.pod != entry.pod:
        return no_effect("other-pod", "the entry belongs to another pod's time bank")
    if fact.person == entry.logged_by:
        return no_effect("own-entry", "you cannot confirm your own hours")
    other = entry.receiver if entry.logged_by == entry.giver else entry.giver
    if entry.status == "pending" or not _is(fact, other):
        return no_effect(
            "not-a-party", "only the other side of the entry (who gave or received) confirms it"
        )
    first = min(
        (
            f
            for f in facts
            if f.kind == "hours.confirmed"
            and f.subject == entry.id
            and f.pod == entry.pod
            and f.person != entry.logged_by
            and _is(f, other)
        ),
        key=order,
    )
    if first.id != fact.id:
        return no_effect("already-confirmed", "the entry was already confirmed")
    return applied("hours confirmed: both balances changed")
