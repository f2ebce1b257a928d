"""The offer rules on the pure ``derive_offer`` (no SQL)."""

from __future__ import annotations

from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    OTHER_POD,
    POD,
    Signer,
    event,
    facts,
    key,
)

from node.projections.facts import ProjectionInput
from node.projections.offers import derive_offer, offer_status_at
from node.projections.views import REMOVED, OfferView, Window
from protocol.kinds import OfferPosted, OfferWithdrawn, TimeWindow

OFFER = key("o")
RIDES = OfferPosted(
    title="Rides to the clinic",
    category="ride",
    details="small car",
    windows=(TimeWindow(start=100, end=200), TimeWindow(start=300, end=400)),
    capacity=2,
    area="north",
)
POSTED = event("o", "offer.posted", RIDES, BOB_PHONE, 10)


def withdrawal(by: Signer, pod: str = POD) -> ProjectionInput:
    return event("w", "offer.withdrawn", OfferWithdrawn(offer=OFFER), by, 20, pod=pod)


def offer(*events: ProjectionInput) -> OfferView:
    view = derive_offer(OFFER, facts(*events))
    assert view is not None
    return view


def test_a_posted_offer_is_open_with_its_content() -> None:
    assert offer(POSTED) == OfferView(
        id=OFFER,
        pod=POD,
        author=BOB.person,
        ts=10,
        status="open",
        title="Rides to the clinic",
        details="small car",
        category="ride",
        windows=(Window(start=100, end=200), Window(start=300, end=400)),
        capacity=2,
        area="north",
        redacted=False,
    )


def test_no_offer_without_its_posting() -> None:
    assert derive_offer(OFFER, facts(withdrawal(BOB))) is None


def test_withdrawal_by_the_author_or_a_coordinator() -> None:
    assert offer(POSTED, withdrawal(BOB)).status == "withdrawn"
    assert offer(POSTED, withdrawal(CAROL)).status == "withdrawn"
    assert offer(POSTED, withdrawal(ALICE)).status == "open"
    assert offer(POSTED, withdrawal(BOB, OTHER_POD)).status == "open"
    erased = event("w", "offer.withdrawn", None, BOB, 20)
    assert offer(POSTED, erased).status == "open"


def test_an_erased_offer() -> None:
    view = offer(event("o", "offer.posted", None, BOB, 10), withdrawal(BOB))
    assert (view.title, view.details, view.redacted, view.status) == (
        REMOVED,
        REMOVED,
        True,
        "withdrawn",
    )
    assert (view.category, view.windows, view.capacity, view.area) == (None, None, None, None)


def test_expired_once_every_window_has_ended() -> None:
    view = offer(POSTED)
    assert [offer_status_at(view, t) for t in (150, 400, 401)] == ["open", "open", "expired"]
    assert offer_status_at(offer(POSTED, withdrawal(BOB)), 1_000) == "withdrawn"
    always = offer(event("o", "offer.posted", OfferPosted(title="t", category="tech"), BOB, 1))
    assert always.windows == ()
    assert offer_status_at(always, 10**12) == "open"
