"""Facts: what each projected kind says, and erasure as "the head alone"."""

from __future__ import annotations

import msgspec
import pytest
from projection_builders import ALICE, BOB, BOB_PHONE, event, key

from node.projections.facts import FactData, erased, fact_of, family_of, order
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
    ProfileSet,
    TimeWindow,
)

N, C, OFFER, E = key("need"), key("claim"), key("offer"), key("entry")
THIS = key("this")

CASES = [
    (
        "need.posted",
        NeedPosted(
            title="Soup",
            category="food",
            urgency="high",
            details="veg",
            window=TimeWindow(start=1, end=2),
            area="north",
            minutes_estimate=30,
        ),
        THIS,
        None,
        FactData(
            title="Soup",
            details="veg",
            category="food",
            urgency="high",
            window=(1, 2),
            area="north",
            minutes_estimate=30,
        ),
    ),
    ("need.updated", NeedUpdated(need=N, urgency="low"), N, None, FactData(urgency="low")),
    ("need.withdrawn", NeedWithdrawn(need=N, reason="done"), N, None, FactData()),
    ("claim.made", ClaimMade(need=N, note="on my way"), N, None, FactData()),
    ("claim.withdrawn", ClaimWithdrawn(claim=C), None, C, FactData()),
    ("claim.accepted", ClaimAccepted(claim=C, need=N), N, C, FactData()),
    ("fulfilment.recorded", FulfilmentRecorded(need=N, minutes=45), N, None, FactData(minutes=45)),
    (
        "offer.posted",
        OfferPosted(
            title="Rides",
            category="ride",
            windows=(TimeWindow(start=1, end=2), TimeWindow(start=3, end=4)),
            capacity=2,
        ),
        THIS,
        None,
        FactData(title="Rides", category="ride", windows=((1, 2), (3, 4)), capacity=2),
    ),
    ("offer.withdrawn", OfferWithdrawn(offer=OFFER), OFFER, None, FactData()),
    (
        "hours.logged",
        HoursLogged(giver=ALICE.person, receiver=BOB.person, minutes=60),
        THIS,
        None,
        FactData(giver=ALICE.person, receiver=BOB.person, minutes=60),
    ),
    ("hours.confirmed", HoursConfirmed(entry=E), E, None, FactData()),
]


@pytest.mark.parametrize(("kind", "body", "subject", "ref", "data"), CASES)
def test_each_kind_states_its_subject_ref_and_data(
    kind: str, body: msgspec.Struct, subject: str | None, ref: str | None, data: FactData
) -> None:
    fact = fact_of(event("this", kind, body, BOB_PHONE, 7))
    assert fact is not None
    assert (fact.subject, fact.ref, fact.data) == (subject, ref, data)
    assert (fact.person, fact.author, fact.role, fact.ts) == (
        BOB.person,
        BOB_PHONE.author,
        "member",
        7,
    )


@pytest.mark.parametrize(("kind", "body", "subject", "ref", "data"), CASES)
def test_erasing_a_body_leaves_what_the_head_says(
    kind: str, body: msgspec.Struct, subject: str | None, ref: str | None, data: FactData
) -> None:
    with_body = fact_of(event("this", kind, body, ALICE, 7))
    without = fact_of(event("this", kind, None, ALICE, 7))
    assert with_body is not None
    assert erased(with_body) == without
    assert without is not None
    assert without.data is None and without.ref is None
    assert without.subject == (THIS if subject == THIS else None)


def test_a_body_of_the_wrong_type_counts_as_no_body() -> None:
    wrong = fact_of(event("this", "need.withdrawn", ClaimWithdrawn(claim=C), ALICE, 1))
    assert wrong == fact_of(event("this", "need.withdrawn", None, ALICE, 1))


@pytest.mark.parametrize("kind", ["profile.set", "report.filed", "event.redacted", "chat.sent"])
def test_kinds_the_projections_do_not_use_are_ignored(kind: str) -> None:
    assert fact_of(event("this", kind, ProfileSet(name="Al"), ALICE, 1)) is None


def test_families() -> None:
    assert [family_of(k) for k, *_ in CASES] == ["need"] * 7 + ["offer"] * 2 + ["hours"] * 2
    with pytest.raises(KeyError):
        family_of("chat.sent")


def test_order_is_ts_then_id() -> None:
    a, b, c = (
        fact_of(event(name, "claim.made", None, ALICE, ts))
        for name, ts in (("a", 2), ("b", 1), ("c", 1))
    )
    assert a is not None and b is not None and c is not None
    assert sorted([a, b, c], key=order) == [*sorted([b, c], key=lambda f: f.id), a]
