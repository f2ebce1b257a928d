"""Effects: what each accepted event did to the read models, and why not — derived, not stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import msgspec
import pytest
from projection_builders import ALICE, BOB, BOB_PHONE, CAROL, DAVE, OTHER_POD, Signer, event, key

from node.projections import SCHEMA, ProjectionInput, apply, projection_hash, redact
from protocol.kinds import (
    ClaimAccepted,
    ClaimMade,
    ClaimWithdrawn,
    FulfilmentRecorded,
    HoursConfirmed,
    HoursLogged,
    NeedPosted,
    NeedUpdated,
    NeedWithdrawn,
    OfferPosted,
    OfferWithdrawn,
    OverflowOffered,
    ProfileSet,
)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    yield db
    db.close()


def reason(db: sqlite3.Connection, ev: ProjectionInput) -> str | None:
    effect = apply(db, ev)
    return None if effect is None else effect.reason


def need(name: str = "n", by: Signer = ALICE, category: str = "food") -> ProjectionInput:
    body = NeedPosted(title=name, category=category, urgency="high")
    return event(name, "need.posted", body, by, 100)


def claim(name: str, by: Signer = BOB, ts: int = 200, on: str = "n") -> ProjectionInput:
    return event(name, "claim.made", ClaimMade(need=key(on)), by, ts)


def accept(name: str, claim_name: str, by: Signer = ALICE, ts: int = 300) -> ProjectionInput:
    body = ClaimAccepted(claim=key(claim_name), need=key("n"))
    return event(name, "claim.accepted", body, by, ts)


def fulfil(name: str, by: Signer, ts: int = 400) -> ProjectionInput:
    return event(name, "fulfilment.recorded", FulfilmentRecorded(need=key("n")), by, ts)


def test_a_need_s_life_says_what_each_step_did(conn: sqlite3.Connection) -> None:
    assert reason(conn, claim("early")) == "effect:unknown-need"  # before its need arrives
    assert reason(conn, need()) == "applied"
    assert reason(conn, claim("c")) == "applied"
    assert reason(conn, accept("not-hers", "c", by=DAVE)) == "effect:not-allowed"
    assert reason(conn, accept("a", "c")) == "applied"
    assert reason(conn, accept("again", "c", ts=310)) == "effect:already-accepted"
    assert reason(conn, accept("other", "early", ts=320)) == "effect:already-accepted"
    assert reason(conn, accept("nope", "nowhere", ts=330)) == "effect:unknown-claim"
    assert reason(conn, fulfil("by-dave", DAVE)) == "effect:not-allowed"
    assert reason(conn, fulfil("f", BOB_PHONE)) == "applied"  # the helper, from his phone
    assert reason(conn, fulfil("f2", CAROL, ts=500)) == "effect:already-fulfilled"
    assert reason(conn, claim("late", ts=600)) == "effect:already-fulfilled"
    withdraw = event("w", "need.withdrawn", NeedWithdrawn(need=key("n")), ALICE, 700)
    assert reason(conn, withdraw) == "effect:already-fulfilled"
    assert apply(conn, need()) is None  # a repeat did nothing new
    elsewhere = event("x", "claim.made", ClaimMade(need=key("n")), BOB, 800, pod=OTHER_POD)
    assert reason(conn, elsewhere) == "effect:other-pod"


def test_updates_withdrawals_and_claims(conn: sqlite3.Connection) -> None:
    apply(conn, need())
    update = NeedUpdated(need=key("n"), title="Soup, please")
    assert reason(conn, event("u1", "need.updated", update, DAVE, 150)) == "effect:not-allowed"
    assert reason(conn, event("u2", "need.updated", update, CAROL, 160)) == "applied"
    apply(conn, claim("c"))
    back = ClaimWithdrawn(claim=key("c"))
    assert reason(conn, event("cw0", "claim.withdrawn", back, DAVE, 210)) == "effect:not-allowed"
    assert reason(conn, event("cw1", "claim.withdrawn", back, BOB, 220)) == "applied"
    assert reason(conn, event("cw2", "claim.withdrawn", back, BOB, 230)) == (
        "effect:already-withdrawn"
    )
    unknown = ClaimWithdrawn(claim=key("nowhere"))
    assert reason(conn, event("cw3", "claim.withdrawn", unknown, BOB, 240)) == (
        "effect:unknown-claim"
    )
    assert reason(conn, accept("a", "c")) == "effect:claim-withdrawn"
    w = NeedWithdrawn(need=key("n"))
    assert reason(conn, event("w0", "need.withdrawn", w, DAVE, 700)) == "effect:not-allowed"
    assert reason(conn, event("w1", "need.withdrawn", w, ALICE, 710)) == "applied"
    assert reason(conn, event("w2", "need.withdrawn", w, CAROL, 720)) == (
        "effect:already-withdrawn"
    )
    assert reason(conn, claim("late", ts=800)) == "effect:already-withdrawn"


def test_offers_and_hours(conn: sqlite3.Connection) -> None:
    offer = OfferPosted(title="Rides", category="ride")
    assert reason(conn, event("o", "offer.posted", offer, BOB, 100)) == "applied"
    off = OfferWithdrawn(offer=key("o"))
    assert reason(conn, event("ow0", "offer.withdrawn", off, DAVE, 110)) == "effect:not-allowed"
    assert reason(conn, event("ow1", "offer.withdrawn", off, BOB, 120)) == "applied"
    assert reason(conn, event("ow2", "offer.withdrawn", off, CAROL, 130)) == (
        "effect:already-withdrawn"
    )
    elsewhere = event("ow9", "offer.withdrawn", off, CAROL, 125, pod=OTHER_POD)
    assert reason(conn, elsewhere) == "effect:other-pod"
    gone = OfferWithdrawn(offer=key("nowhere"))
    assert reason(conn, event("ow3", "offer.withdrawn", gone, BOB, 140)) == "effect:unknown-offer"

    logged = HoursLogged(giver=BOB.author, receiver=ALICE.author, minutes=30)
    assert reason(conn, event("h", "hours.logged", logged, BOB, 100)) == "applied"
    by_dave = event("h-dave", "hours.logged", logged, DAVE, 100)
    assert reason(conn, by_dave) == "effect:not-a-party"
    ok = HoursConfirmed(entry=key("h"))
    assert reason(conn, event("c0", "hours.confirmed", ok, BOB_PHONE, 200)) == "effect:own-entry"
    assert reason(conn, event("c1", "hours.confirmed", ok, DAVE, 200)) == "effect:not-a-party"
    assert reason(conn, event("c2", "hours.confirmed", ok, ALICE, 210)) == "applied"
    assert reason(conn, event("c3", "hours.confirmed", ok, ALICE, 220)) == (
        "effect:already-confirmed"
    )
    assert reason(conn, event("c4", "hours.confirmed", ok, DAVE, 230)) == "effect:not-a-party"
    nowhere = HoursConfirmed(entry=key("nowhere"))
    assert reason(conn, event("c5", "hours.confirmed", nowhere, ALICE, 240)) == (
        "effect:unknown-entry"
    )


def test_a_referral_move_that_derive_ignores_says_why(conn: sqlite3.Connection) -> None:
    offered = OverflowOffered(referral=key("nowhere"))
    assert reason(conn, event("x", "overflow.offered", offered, CAROL, 1)) == (
        "effect:unknown-referral"
    )


def test_unknown_categories_and_erased_bodies(conn: sqlite3.Connection) -> None:
    effect = apply(conn, need(category="bike_repair"))
    assert effect is not None and effect.ok
    assert effect.message == "need posted; its category is not known here and shows as other"
    redact(conn, key("u"))
    update = event("u", "need.updated", NeedUpdated(need=key("n"), title="x"), ALICE, 150)
    assert reason(conn, update) == "effect:no-body"
    body = ProfileSet(name="Ada")
    assert apply(conn, event("p", "profile.set", body, ALICE, 1)) is None  # not a read model


def test_effects_are_not_stored(conn: sqlite3.Connection) -> None:
    """Two nodes that saw the same events in other orders (so other effects) hash the same."""
    other = sqlite3.connect(":memory:")
    other.executescript(SCHEMA)
    events = [need(), claim("c"), accept("a", "c"), fulfil("f", BOB)]
    said = [apply(conn, ev) for ev in events]
    said_there = [apply(other, ev) for ev in reversed(events)]
    assert [e.reason for e in said if e] == ["applied"] * 4
    assert [e.reason for e in said_there if e] != ["applied"] * 4
    assert projection_hash(conn) == projection_hash(other)
    assert "effect" not in msgspec.json.encode([*conn.iterdump()]).decode()
    other.close()
