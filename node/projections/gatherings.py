"""A gathering's state — circles, support groups, skill shares, food distributions — derived
purely from the facts about it (no SQL, no clock).

The rules, each decided from the fact set alone so that every node agrees:

* ``gathering.scheduled`` by any member opens the gathering; without it there is none (yet).
* ``gathering.cancelled`` by its organiser (the same person, any of their device keys) or a
  coordinator cancels it; the earliest valid cancellation by ``(ts, id)`` is the one shown.
* ``gathering.rsvp`` counts per **person**, not per key: a person's latest answer by
  ``(ts, id)`` is theirs. An answer ordered after the cancellation has no effect, so a
  cancelled gathering shows the answers it had when it was called off.
* ``capacity`` is shown, and ``full`` once ``yes >= capacity`` — a yes is never refused: who
  comes is for the people there to sort out, not for a counter.

Facts from another pod than the gathering's cannot be about it and are ignored. ``upcoming``
(the window has not ended) is a read-time question, kept out of the projection hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import COORDINATING_ROLES, Fact, order
from node.projections.views import REMOVED, Window
from protocol.sealed import SealedField

__all__ = [
    "GatheringStatus",
    "GatheringView",
    "RsvpCounts",
    "derive_gathering",
    "explain_gathering",
    "is_upcoming",
]

GatheringStatus = Literal["scheduled", "cancelled"]


class RsvpCounts(msgspec.Struct, frozen=True, kw_only=True):
    """How many people answered yes, no and maybe (each person once: their latest answer)."""

    yes: int
    no: int
    maybe: int


class GatheringView(msgspec.Struct, frozen=True, kw_only=True):
    """A gathering as the pod sees it. ``organiser`` is a person, not a device key.

    ``place_sealed`` is ciphertext sealed to the pod's members: the node never opens it, the
    member's client does. A redacted gathering keeps its answers but not its content (``title``
    reads ``"[removed]"``, the other content fields ``null``). ``revision`` counts the changes
    a calendar shows (0, or 1 once cancelled) and ``modified_ts`` is when the last one was made.
    """

    id: str
    pod: str
    organiser: str
    ts: int
    status: GatheringStatus
    title: str
    kind: str | None
    window: Window | None
    place: str | None
    place_sealed: SealedField | None
    capacity: int | None
    details: str | None
    rsvps: RsvpCounts
    full: bool
    cancelled_by: str | None
    cancel_reason: str | None
    redacted: bool
    revision: int
    modified_ts: int
    scope: str = "pod"


def _manages(fact: Fact, organiser: str) -> bool:
    return fact.person == organiser or fact.role in COORDINATING_ROLES


def _cancellation(gathering_id: str, scheduled: Fact, ordered: list[Fact]) -> Fact | None:
    return next(
        (
            f
            for f in ordered
            if f.kind == "gathering.cancelled"
            and f.subject == gathering_id
            and f.pod == scheduled.pod
            and _manages(f, scheduled.person)
        ),
        None,
    )


def _answers(gathering_id: str, scheduled: Fact, ordered: list[Fact]) -> dict[str, Fact]:
    """Each person's RSVP that counts: their latest one, ordered before any cancellation."""
    cancelled = _cancellation(gathering_id, scheduled, ordered)
    latest: dict[str, Fact] = {}
    for f in ordered:
        if cancelled is not None and order(f) > order(cancelled):
            break
        if f.kind == "gathering.rsvp" and f.subject == gathering_id and f.pod == scheduled.pod:
            latest[f.person] = f
    return latest


def derive_gathering(gathering_id: str, facts: Iterable[Fact]) -> GatheringView | None:
    """The gathering ``gathering_id`` from its facts; ``None`` while its scheduling is unknown.

    ``facts`` may hold anything; only facts about this gathering count.
    """
    ordered = sorted(facts, key=order)
    scheduled = next(
        (f for f in ordered if f.id == gathering_id and f.kind == "gathering.scheduled"), None
    )
    if scheduled is None:
        return None
    cancelled = _cancellation(gathering_id, scheduled, ordered)
    answers = [f.data.answer for f in _answers(gathering_id, scheduled, ordered).values() if f.data]
    counts = RsvpCounts(
        yes=answers.count("yes"), no=answers.count("no"), maybe=answers.count("maybe")
    )
    data = scheduled.data
    capacity = None if data is None else data.capacity
    window = None if data is None or data.window is None else data.window
    return GatheringView(
        id=gathering_id,
        pod=scheduled.pod,
        organiser=scheduled.person,
        ts=scheduled.ts,
        status="scheduled" if cancelled is None else "cancelled",
        title=REMOVED if data is None else data.title or REMOVED,
        kind=None if data is None else data.gathering_kind,
        window=None if window is None else Window(start=window[0], end=window[1]),
        place=None if data is None else data.place,
        place_sealed=None if data is None else data.place_sealed,
        capacity=capacity,
        details=REMOVED if data is None else data.details,
        rsvps=counts,
        full=capacity is not None and counts.yes >= capacity,
        cancelled_by=None if cancelled is None else cancelled.person,
        cancel_reason=None if cancelled is None or cancelled.data is None else cancelled.data.note,
        redacted=data is None,
        revision=0 if cancelled is None else 1,
        modified_ts=scheduled.ts if cancelled is None else max(scheduled.ts, cancelled.ts),
        scope=scheduled.scope,
    )


def is_upcoming(view: GatheringView, now_ms: int) -> bool:
    """Still to come (or under way) at ``now_ms``: scheduled, and its window has not ended."""
    return view.status == "scheduled" and view.window is not None and view.window.end >= now_ms


def explain_gathering(fact: Fact, facts: Iterable[Fact]) -> Effect:
    """What ``fact`` did to its gathering, given every fact about it (``fact`` included or not).

    Reasons: ``effect:unknown-gathering`` (no such gathering here, or in another pod),
    ``effect:not-organiser`` (a cancellation by someone who neither organised it nor
    coordinates), ``effect:gathering-cancelled`` (an answer or a second cancellation after it
    was called off), ``effect:superseded`` (the person answered again later),
    ``effect:not-a-gathering`` (a kind this function does not explain).
    """
    if fact.kind == "gathering.scheduled":
        return applied("gathering scheduled")
    if fact.kind not in ("gathering.cancelled", "gathering.rsvp"):
        return no_effect("not-a-gathering", f"`{fact.kind}` is not about a gathering")
    everything = {f.id: f for f in facts}
    everything[fact.id] = fact
    ordered = sorted(everything.values(), key=order)
    gathering_id = fact.subject
    scheduled = next(
        (f for f in ordered if f.id == gathering_id and f.kind == "gathering.scheduled"), None
    )
    if gathering_id is None or scheduled is None or scheduled.pod != fact.pod:
        return no_effect("unknown-gathering", "there is no such gathering in this pod (yet)")
    cancelled = _cancellation(gathering_id, scheduled, ordered)
    if fact.kind == "gathering.cancelled":
        if not _manages(fact, scheduled.person):
            return no_effect(
                "not-organiser", "only the gathering's organiser or a coordinator can cancel it"
            )
        if cancelled is not None and cancelled.id != fact.id:
            return no_effect("gathering-cancelled", "the gathering was already cancelled")
        return applied("gathering cancelled")
    if cancelled is not None and order(fact) > order(cancelled):
        return no_effect(
            "gathering-cancelled", "the gathering was cancelled: answers no longer count"
        )
    counted = _answers(gathering_id, scheduled, ordered).get(fact.person)
    if counted is None or counted.id != fact.id:
        return no_effect("superseded", "a later answer by the same person counts instead")
    return applied("answer counted")
