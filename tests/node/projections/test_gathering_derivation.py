"""Gatherings from their facts: who may cancel, answers counted per person, capacity shown
never enforced, answers after a cancellation, erasure; and each event's effect."""

from __future__ import annotations

from typing import Literal

from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DAVE,
    OTHER_POD,
    Signer,
    event,
    facts,
    key,
)

from node.projections.facts import ProjectionInput, erased, fact_of
from node.projections.gatherings import derive_gathering, explain_gathering, is_upcoming
from node.projections.views import REMOVED, Window
from protocol.kinds import (
    GatheringCancelled,
    GatheringRsvp,
    GatheringScheduled,
    NeedWithdrawn,
    TimeWindow,
)
from protocol.sealed import box_keypair_from_seed, seal

G = key("circle")
CIRCLE = event(
    "circle",
    "gathering.scheduled",
    GatheringScheduled(
        title="Grief circle",
        kind="healing_circle",
        window=TimeWindow(start=100, end=200),
        place="Library, room 2",
        capacity=2,
        details="Bring tea",
    ),
    ALICE,
    10,
)


def rsvp(
    name: str,
    by: Signer,
    ts: int,
    answer: Literal["yes", "no", "maybe"] = "yes",
    gathering: str = G,
) -> ProjectionInput:
    return event(name, "gathering.rsvp", GatheringRsvp(gathering=gathering, answer=answer), by, ts)


def cancel(name: str, by: Signer, ts: int, gathering: str = G) -> ProjectionInput:
    body = GatheringCancelled(gathering=gathering, reason="flooded")
    return event(name, "gathering.cancelled", body, by, ts)


def test_unknown_until_scheduled() -> None:
    assert derive_gathering(G, facts(rsvp("r", BOB, 20))) is None


def test_a_scheduled_gathering() -> None:
    view = derive_gathering(G, facts(CIRCLE))
    assert view is not None
    assert (view.status, view.title, view.kind, view.place) == (
        "scheduled",
        "Grief circle",
        "healing_circle",
        "Library, room 2",
    )
    assert view.window == Window(start=100, end=200)
    assert view.organiser == ALICE.person and view.capacity == 2 and not view.full
    assert (view.rsvps.yes, view.rsvps.no, view.rsvps.maybe) == (0, 0, 0)
    assert (view.revision, view.modified_ts) == (0, 10)
    assert is_upcoming(view, 200) and not is_upcoming(view, 201)


def test_answers_count_people_not_keys_latest_wins() -> None:
    view = derive_gathering(
        G,
        facts(
            CIRCLE,
            rsvp("b1", BOB, 20, "no"),
            rsvp("b2", BOB_PHONE, 30, "yes"),  # Bob again, from his phone: replaces his no
            rsvp("d1", DAVE, 25, "maybe"),
            rsvp("c1", CAROL, 40, "yes"),
        ),
    )
    assert view is not None
    assert (view.rsvps.yes, view.rsvps.no, view.rsvps.maybe) == (2, 0, 1)
    assert view.full  # yes >= capacity: shown, never refused


def test_ties_are_broken_by_id() -> None:
    a, b = rsvp("tie-a", BOB, 20, "no"), rsvp("tie-b", BOB, 20, "yes")
    later = max([a, b], key=lambda e: e.id)
    view = derive_gathering(G, facts(CIRCLE, a, b))
    assert view is not None
    assert view.rsvps.yes == (1 if later is b else 0)


def test_only_the_organiser_or_a_coordinator_cancels() -> None:
    by_bob = derive_gathering(G, facts(CIRCLE, cancel("x", BOB, 50)))
    assert by_bob is not None and by_bob.status == "scheduled"
    by_carol = derive_gathering(G, facts(CIRCLE, cancel("x", CAROL, 50)))
    assert by_carol is not None and by_carol.status == "cancelled"
    assert by_carol.cancelled_by == CAROL.person and by_carol.cancel_reason == "flooded"
    assert (by_carol.revision, by_carol.modified_ts) == (1, 50)


def test_answers_after_cancellation_have_no_effect() -> None:
    view = derive_gathering(
        G,
        facts(CIRCLE, rsvp("b", BOB, 20), cancel("x", ALICE, 30), rsvp("d", DAVE, 40)),
    )
    assert view is not None and view.status == "cancelled"
    assert view.rsvps.yes == 1


def test_other_pods_facts_are_ignored() -> None:
    foreign = event(
        "far", "gathering.rsvp", GatheringRsvp(gathering=G, answer="yes"), BOB, 20, pod=OTHER_POD
    )
    view = derive_gathering(G, facts(CIRCLE, foreign))
    assert view is not None and view.rsvps.yes == 0


def test_an_erased_gathering_keeps_its_answers_not_its_content() -> None:
    fact = fact_of(CIRCLE)
    assert fact is not None
    view = derive_gathering(G, [erased(fact), *facts(rsvp("b", BOB, 20))])
    assert view is not None and view.redacted
    assert (view.title, view.details, view.place, view.window, view.kind) == (
        REMOVED,
        REMOVED,
        None,
        None,
        None,
    )
    assert view.rsvps.yes == 1 and not view.full and not is_upcoming(view, 0)


def test_a_sealed_place_stays_ciphertext() -> None:
    _, member = box_keypair_from_seed(bytes(range(32)))
    sealed = seal(b'"12 Elm St"', [member])
    body = GatheringScheduled(
        title="Supper", kind="peer_support", window=TimeWindow(start=1, end=2), place_sealed=sealed
    )
    view = derive_gathering(key("s"), facts(event("s", "gathering.scheduled", body, ALICE, 1)))
    assert view is not None and view.place is None and view.place_sealed == sealed


def effect(fact_ev: ProjectionInput, *others: ProjectionInput) -> tuple[bool, str]:
    (fact,) = facts(fact_ev)
    result = explain_gathering(fact, facts(*others))
    return result.ok, result.reason


def test_effects() -> None:
    assert effect(CIRCLE) == (True, "applied")
    assert effect(rsvp("r", BOB, 20)) == (False, "effect:unknown-gathering")
    assert effect(rsvp("r", BOB, 20), CIRCLE) == (True, "applied")
    assert effect(rsvp("r", BOB, 20), CIRCLE, rsvp("r2", BOB_PHONE, 30)) == (
        False,
        "effect:superseded",
    )
    assert effect(cancel("x", BOB, 50), CIRCLE) == (False, "effect:not-organiser")
    assert effect(cancel("x", BOB_PHONE, 50), CIRCLE) == (False, "effect:not-organiser")
    assert effect(cancel("x", CAROL, 50), CIRCLE) == (True, "applied")
    assert effect(cancel("y", ALICE, 60), CIRCLE, cancel("x", CAROL, 50)) == (
        False,
        "effect:gathering-cancelled",
    )
    assert effect(rsvp("late", DAVE, 70), CIRCLE, cancel("x", ALICE, 50)) == (
        False,
        "effect:gathering-cancelled",
    )
    assert effect(rsvp("early", DAVE, 40), CIRCLE, cancel("x", ALICE, 50)) == (True, "applied")
    foreign = event(
        "far", "gathering.rsvp", GatheringRsvp(gathering=G, answer="no"), BOB, 20, pod=OTHER_POD
    )
    assert effect(foreign, CIRCLE) == (False, "effect:unknown-gathering")
    withdrawn = event("w", "need.withdrawn", NeedWithdrawn(need=G), ALICE, 5)
    assert effect(withdrawn, CIRCLE) == (False, "effect:not-a-gathering")
    bodiless = event("nobody", "gathering.rsvp", None, BOB, 20)
    assert effect(bodiless, CIRCLE) == (False, "effect:unknown-gathering")
