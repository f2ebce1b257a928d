"""Order independence: any order of the same event set (and erasures) gives the same state.

A scenario is a realistic little pod history — needs with updates, claims, competing
acceptances, withdrawals and fulfilments; offers; time-bank entries logged and confirmed by
the right and the wrong people; members joining around proposals, and votes in and out of
time; events from a neighbour pod; erasures — generated so that it
also holds the awkward cases (facts before their subjects, ties on ``ts``, invalid signers).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DAVE,
    NODE,
    OTHER_POD,
    POD,
    ROOT,
    Signer,
    event,
    key,
)

from node.projections import (
    SCHEMA,
    ProjectionInput,
    apply,
    get_gathering,
    get_need,
    list_gatherings,
    list_needs,
    list_offers,
    list_proposals,
    projection_hash,
    redact,
    reset,
    timebank,
)
from node.projections.facts import erased, fact_of
from node.projections.gatherings import derive_gathering
from node.projections.needs import derive_need
from protocol.kinds import (
    ClaimAccepted,
    ClaimMade,
    ClaimWithdrawn,
    FulfilmentRecorded,
    GatheringCancelled,
    GatheringRsvp,
    GatheringScheduled,
    HoursConfirmed,
    HoursLogged,
    MemberAdded,
    NeedPosted,
    NeedUpdated,
    NeedWithdrawn,
    OfferPosted,
    OfferWithdrawn,
    ProposalOpened,
    TimeWindow,
    VoteCast,
    is_redactable,
)

SIGNERS = [ALICE, BOB, BOB_PHONE, CAROL, DAVE, ROOT, NODE]
NOW = 60  # read-time clock: some windows end before it, some after


class Scenario(msgspec.Struct, frozen=True):
    events: list[ProjectionInput]
    erased: frozenset[str]  # ids whose bodies get erased

    def without_erased_bodies(self) -> list[ProjectionInput]:
        return [
            msgspec.structs.replace(ev, body=None) if ev.id in self.erased else ev
            for ev in self.events
        ]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    events: list[ProjectionInput] = []
    signer = st.sampled_from(SIGNERS)
    ts = st.integers(0, 12)  # a narrow range: many ties, broken by id

    def add(
        kind: str, body: msgspec.Struct | None, by: Signer | None = None, pod: str = POD
    ) -> str:
        name = f"{kind}#{len(events)}"
        events.append(event(name, kind, body, by or draw(signer), draw(ts), pod=pod))
        return key(name)

    def pick(ids: list[str]) -> str:
        return draw(st.sampled_from([*ids, key("ghost")]))  # sometimes a subject never seen

    window = st.none() | st.builds(lambda end: TimeWindow(start=0, end=end), st.integers(1, 100))
    posters: dict[str, Signer] = {}
    for _ in range(draw(st.integers(1, 4))):
        poster = draw(signer)
        body: msgspec.Struct = NeedPosted(
            title=draw(st.sampled_from(["Soup", "Lift", "Shelf"])),
            category=draw(st.sampled_from(["food", "ride"])),
            urgency=draw(st.sampled_from(["low", "urgent"])),
            window=draw(window),
            area=draw(st.none() | st.just("north")),
        )
        pod = draw(st.sampled_from([POD, POD, POD, OTHER_POD]))
        posters[add("need.posted", body, poster, pod)] = poster
    needs = list(posters)

    def manager(need: str) -> Signer:
        """Mostly someone entitled to manage the need; sometimes anyone."""
        return draw(st.sampled_from([posters.get(need, ALICE)] * 3 + [CAROL, *SIGNERS]))

    claims: list[tuple[str, str, Signer]] = []
    for _ in range(draw(st.integers(0, 6))):
        by, need = draw(signer), pick(needs)
        claims.append((add("claim.made", ClaimMade(need=need), by), need, by))
    for _ in range(draw(st.integers(0, 12))):
        action = draw(st.sampled_from(["update", "withdraw", "unclaim", "accept", "fulfil"]))
        need = pick(needs)
        if action == "update":
            body = NeedUpdated(need=need, title="Changed", urgency="normal")
            add("need.updated", body, manager(need))
        elif action == "withdraw":
            add("need.withdrawn", NeedWithdrawn(need=need), manager(need))
        elif action == "fulfil":
            minutes = draw(st.integers(1, 90))
            by = draw(st.sampled_from([manager(need), *(c[2] for c in claims if c[1] == need)]))
            add("fulfilment.recorded", FulfilmentRecorded(need=need, minutes=minutes), by)
        elif claims:
            claim, claimed, claimer = draw(st.sampled_from(claims))
            if action == "unclaim":
                by = draw(st.sampled_from([claimer, claimer, *SIGNERS]))
                add("claim.withdrawn", ClaimWithdrawn(claim=claim), by)
            else:
                named = draw(st.sampled_from([claimed, claimed, need]))
                add("claim.accepted", ClaimAccepted(claim=claim, need=named), manager(claimed))
    offers = [
        add(
            "offer.posted",
            OfferPosted(
                title="Rides",
                category="ride",
                windows=tuple(w for w in (draw(window), draw(window)) if w is not None),
            ),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    for _ in range(draw(st.integers(0, 2))):
        add("offer.withdrawn", OfferWithdrawn(offer=pick(offers)))
    sides: dict[str, list[Signer]] = {}
    for _ in range(draw(st.integers(0, 6))):
        giver, receiver = draw(st.permutations(SIGNERS))[:2]
        logger = draw(st.sampled_from([giver, receiver, giver, receiver, *SIGNERS]))
        minutes = draw(st.integers(1, 120))
        body = HoursLogged(giver=giver.author, receiver=receiver.author, minutes=minutes)
        pod = draw(st.sampled_from([POD, POD, OTHER_POD]))
        sides[add("hours.logged", body, logger, pod)] = [giver, receiver]
    for _ in range(draw(st.integers(0, 8))):
        entry = pick(list(sides))
        by = draw(st.sampled_from([*sides.get(entry, []) * 3, *SIGNERS]))
        add("hours.confirmed", HoursConfirmed(entry=entry), by)
    # collective decisions: who joined when, proposals, and votes in and after time
    for person in draw(st.lists(st.sampled_from([ALICE, BOB, CAROL, DAVE]), max_size=4)):
        add("member.added", MemberAdded(key=person.person, role="member", box_key=person.person))
    proposals = [
        add(
            "proposal.opened",
            ProposalOpened(title="Food boxes", options=("by need", "equal"), closes_at=draw(ts)),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    for _ in range(draw(st.integers(0, 8))):
        vote = VoteCast(proposal=pick(proposals), option=draw(st.integers(0, 2)))
        add("vote.cast", vote)
    organisers: dict[str, Signer] = {}
    for _ in range(draw(st.integers(0, 3))):
        organiser = draw(signer)
        body = GatheringScheduled(
            title=draw(st.sampled_from(["Circle", "Seed swap"])),
            kind=draw(st.sampled_from(["healing_circle", "skill_share"])),
            window=TimeWindow(start=0, end=draw(st.integers(1, 100))),
            capacity=draw(st.none() | st.integers(1, 3)),
        )
        pod = draw(st.sampled_from([POD, POD, OTHER_POD]))
        organisers[add("gathering.scheduled", body, organiser, pod)] = organiser
    gatherings = list(organisers)
    for _ in range(draw(st.integers(0, 10))):
        gathering = pick(gatherings)
        if draw(st.integers(0, 4)) == 0:
            by = draw(st.sampled_from([organisers.get(gathering, ALICE), CAROL, *SIGNERS]))
            add("gathering.cancelled", GatheringCancelled(gathering=gathering), by)
        else:
            answer = draw(st.sampled_from(["yes", "no", "maybe"]))
            add("gathering.rsvp", GatheringRsvp(gathering=gathering, answer=answer))
    add("chat.sent", None)  # a kind nobody here knows
    erasable = [ev.id for ev in events if is_redactable(ev.kind)]
    erased_ids = draw(st.sets(st.sampled_from(erasable)) if erasable else st.just(set()))
    return Scenario(events, frozenset(erased_ids))


#: An operation: apply an event, or (a bare id) erase that event's body.
Op = ProjectionInput | str
Snapshot = tuple[Any, ...]


@contextmanager
def database() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        yield db


def snapshot(db: sqlite3.Connection) -> Snapshot:
    """Everything a reader can see, and the hash."""
    return (
        projection_hash(db),
        list_needs(db, now_ms=NOW, limit=1000),
        list_offers(db, now_ms=NOW, include_withdrawn=True, limit=1000),
        timebank(db, pod=POD, limit_minutes=60),
        timebank(db, pod=OTHER_POD),
        list_proposals(db, pod=POD, now_ms=NOW, limit=1000),
        list_gatherings(db, now_ms=NOW, limit=1000),
        list_gatherings(db, now_ms=NOW, upcoming=True, limit=1000),
    )


def run(db: sqlite3.Connection, ops: Sequence[Op], *, store_drops_bodies: bool) -> None:
    """Apply ``ops`` in order. Like the store, optionally pass no body once it was erased."""
    erased_ids: set[str] = set()
    for op in ops:
        if isinstance(op, str):
            redact(db, op)
            erased_ids.add(op)
        elif store_drops_bodies and op.id in erased_ids:
            apply(db, msgspec.structs.replace(op, body=None))
        else:
            apply(db, op)


def never_saw_erased_bodies(scenario: Scenario) -> Snapshot:
    with database() as db:
        run(db, scenario.without_erased_bodies(), store_drops_bodies=False)
        return snapshot(db)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios(), st.data())
def test_any_order_of_events_and_erasures_gives_the_same_state(
    scenario: Scenario, data: st.DataObject
) -> None:
    expected = never_saw_erased_bodies(scenario)
    ops: list[Op] = [*scenario.events, *sorted(scenario.erased)]
    for attempt in range(4):
        with database() as db:
            run(db, data.draw(st.permutations(ops)), store_drops_bodies=attempt % 2 == 0)
            assert snapshot(db) == expected


@PROPERTY
@given(scenarios())
def test_rows_equal_a_derivation_from_all_facts(scenario: Scenario) -> None:
    facts = []
    for ev in scenario.events:
        fact = fact_of(ev)
        if fact is not None:
            facts.append(
                erased(fact) if ev.id in scenario.erased and is_redactable(ev.kind) else fact
            )
    with database() as db:
        run(db, [*scenario.events, *sorted(scenario.erased)], store_drops_bodies=False)
        for ev in scenario.events:
            assert get_need(db, ev.id, now_ms=0) == derive_need(ev.id, facts)
            assert get_gathering(db, ev.id) == derive_gathering(ev.id, facts)


@PROPERTY
@given(scenarios())
def test_the_time_bank_is_zero_sum_in_every_pod(scenario: Scenario) -> None:
    with database() as db:
        run(db, scenario.events, store_drops_bodies=False)
        for pod in (POD, OTHER_POD):
            bank = timebank(db, pod=pod)
            assert bank.total_minutes_balance == 0
            assert sum(m.given_minutes for m in bank.members) == sum(
                m.received_minutes for m in bank.members
            )
            assert all(m.given_minutes or m.received_minutes for m in bank.members)


@PROPERTY
@given(scenarios(), st.data())
def test_a_rebuild_gives_the_state_built_incrementally(
    scenario: Scenario, data: st.DataObject
) -> None:
    with database() as db:
        run(
            db,
            data.draw(st.permutations([*scenario.events, *sorted(scenario.erased)])),
            store_drops_bodies=True,
        )
        built = snapshot(db)
        reset(db)
        run(db, scenario.without_erased_bodies(), store_drops_bodies=False)
        assert snapshot(db) == built
