"""Collective decisions: who may vote, which vote counts, and what each vote did."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import pytest
from projection_builders import ALICE, BOB, BOB_PHONE, CAROL, DAVE, NODE, Signer, event, key

from node.projections import (
    SCHEMA,
    ProjectionInput,
    apply,
    get_proposal,
    list_proposals,
    projection_hash,
)
from node.projections.proposals import proposal_status_at
from protocol.kinds import MemberAdded, ProposalOpened, VoteCast

CLOSES = 1_000


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    yield db
    db.close()


def joined(who: Signer, ts: int) -> ProjectionInput:
    body = MemberAdded(key=who.person, role="member", box_key=who.person)
    return event(f"joined:{who.person}", "member.added", body, CAROL, ts)


def opened(ts: int = 100) -> ProjectionInput:
    body = ProposalOpened(
        title="This week's food boxes",
        options=("by need: larger households first", "equal shares", "half and half"),
        closes_at=CLOSES,
    )
    return event("p", "proposal.opened", body, CAROL, ts)


def vote(name: str, by: Signer, option: int, ts: int, proposal: str = "p") -> ProjectionInput:
    return event(name, "vote.cast", VoteCast(proposal=key(proposal), option=option), by, ts)


def said(db: sqlite3.Connection, ev: ProjectionInput) -> str:
    effect = apply(db, ev)
    assert effect is not None
    return effect.reason


def test_one_counted_vote_per_person_the_last_in_time(conn: sqlite3.Connection) -> None:
    for who in (ALICE, BOB, DAVE):
        apply(conn, joined(who, 10))
    apply(conn, joined(CAROL, 20))
    assert said(conn, vote("early", ALICE, 0, 90)) == "effect:unknown-proposal"
    assert said(conn, opened()) == "applied"
    assert said(conn, vote("b1", BOB, 1, 200)) == "applied"
    assert said(conn, vote("b2", BOB_PHONE, 0, 300)) == "applied"  # Bob's phone: Bob changes
    assert said(conn, vote("b0", BOB, 2, 150)) == "effect:superseded"  # older, arrived late
    assert said(conn, vote("d", DAVE, 0, CLOSES)) == "applied"  # at closes_at: still in time
    assert said(conn, vote("late", CAROL, 2, CLOSES + 1)) == "effect:proposal-closed"
    assert said(conn, vote("bad", CAROL, 7, 400)) == "effect:no-such-option"
    assert said(conn, vote("node", NODE, 1, 400)) == "effect:not-eligible"
    view = get_proposal(conn, key("p"))
    assert view is not None
    # Alice's vote came before the proposal was known here, and counts all the same.
    assert view.tally == (3, 0, 0)
    assert view.votes == {ALICE.person: 0, BOB.person: 0, DAVE.person: 0}
    assert proposal_status_at(view, CLOSES) == "open"
    assert proposal_status_at(view, CLOSES + 1) == "closed"


def test_only_members_as_of_the_opening_vote(conn: sqlite3.Connection) -> None:
    apply(conn, joined(ALICE, 10))
    apply(conn, opened(ts=100))
    assert said(conn, vote("b", BOB, 1, 200)) == "effect:not-eligible"  # not a member at all
    apply(conn, joined(BOB, 150))  # joined after the proposal opened
    assert said(conn, vote("b2", BOB, 1, 210)) == "effect:not-eligible"
    assert said(conn, vote("d", DAVE, 1, 220)) == "effect:not-eligible"
    apply(conn, joined(DAVE, 50))  # Dave's earlier joining arrives late: his vote now counts
    view = get_proposal(conn, key("p"))
    assert view is not None and view.tally == (0, 1, 0) and set(view.votes) == {DAVE.person}


def test_open_and_closed_lists(conn: sqlite3.Connection) -> None:
    apply(conn, opened())
    body = ProposalOpened(title="Meet on Sundays?", options=("yes", "no"), closes_at=50)
    apply(conn, event("old", "proposal.opened", body, ALICE, 10))
    pod = opened().pod
    assert [p.title for p in list_proposals(conn, pod=pod, now_ms=60, state="open")] == [
        "This week's food boxes"
    ]
    assert [p.title for p in list_proposals(conn, pod=pod, now_ms=60, state="closed")] == [
        "Meet on Sundays?"
    ]
    assert len(list_proposals(conn, pod=pod, now_ms=60)) == 2
    assert list_proposals(conn, pod=pod, now_ms=60, scopes=("public",)) == []


def test_every_order_gives_the_same_tally() -> None:
    events = [
        joined(ALICE, 10),
        joined(BOB, 10),
        joined(DAVE, 150),
        opened(),
        vote("a", ALICE, 2, 200),
        vote("b1", BOB, 1, 200),
        vote("b2", BOB_PHONE, 2, 250),
        vote("d", DAVE, 0, 300),
        vote("a-late", ALICE, 0, CLOSES + 5),
    ]
    hashes, tallies = set(), set()
    for order in itertools.islice(itertools.permutations(events), 0, None, 997):
        with sqlite3.connect(":memory:") as db:
            db.executescript(SCHEMA)
            for ev in order:
                apply(db, ev)
            view = get_proposal(db, key("p"))
            assert view is not None
            tallies.add(view.tally)
            hashes.add(projection_hash(db))
    assert tallies == {(0, 0, 2)}
    assert len(hashes) == 1
