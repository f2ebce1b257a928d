"""Matching offers to a need: the pure ranking (``node.projections.matching``)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from node.projections.matching import rank, recent_load
from node.projections.views import ClaimView, NeedView, OfferView, Window

NOW = 1_000_000


def need(**kw: Any) -> NeedView:
    fields: dict[str, Any] = {
        "id": "N",
        "pod": "P",
        "author": "ada",
        "ts": 1,
        "status": "open",
        "title": "Soup",
        "details": None,
        "category": "food",
        "urgency": "normal",
        "area": "North End",
        "window": Window(start=NOW, end=NOW + 1000),
        "minutes_estimate": None,
        "claims": (),
        "accepted_claim": None,
        "helper": None,
        "fulfilment": None,
        "redacted": False,
    }
    return NeedView(**{**fields, **kw})


def offer(oid: str, **kw: Any) -> OfferView:
    fields: dict[str, Any] = {
        "id": oid,
        "pod": "P",
        "author": f"helper-{oid}",
        "ts": 10,
        "status": "open",
        "title": "I help",
        "details": None,
        "category": "food",
        "windows": (Window(start=NOW + 500, end=NOW + 2000),),
        "capacity": 1,
        "area": "north  end",
        "redacted": False,
    }
    return OfferView(**{**fields, **kw})


def codes(match: Any) -> list[str]:
    return [r.code for r in match.reasons]


def test_a_full_fit_names_every_reason_in_words() -> None:
    (m,) = rank(need(), [offer("a")], {}, NOW)
    assert codes(m) == ["category", "window-overlap", "same-area", "low-load"]
    assert m.score == sum(r.points for r in m.reasons) == 180
    assert m.load == 0
    assert all(r.message for r in m.reasons)
    assert "0 needs" in m.reasons[-1].message


def test_category_then_time_then_place() -> None:
    offers = [
        offer("area-only", category="ride", windows=(Window(start=NOW * 2, end=NOW * 3),)),
        offer("time", area=None),
        offer("category", windows=(Window(start=NOW + 5000, end=NOW + 6000),), area=None),
        offer("all"),
    ]
    ranked = [m.offer.id for m in rank(need(), offers, {}, NOW)]
    assert ranked == ["all", "time", "category", "area-only"]


def test_load_spreads_the_work() -> None:
    offers = [offer("busy", ts=1), offer("idle", ts=2), offer("some", ts=3)]
    load = {"helper-busy": 4, "helper-some": 1}
    ranked = rank(need(), offers, load, NOW)
    assert [m.offer.id for m in ranked] == ["idle", "some", "busy"]
    assert [m.load for m in ranked] == [0, 1, 4]
    busy = ranked[-1]
    assert codes(busy)[-1] == "recent-load" and busy.reasons[-1].points == 0
    assert "helped 4 needs" in busy.reasons[-1].message
    assert ranked[1].reasons[-1].message.startswith("helped 1 need ")


def test_no_load_known_means_no_load_reason() -> None:
    (m,) = rank(need(), [offer("a")], None, NOW)
    assert m.load is None and "low-load" not in codes(m)


def test_who_is_left_out() -> None:
    offers = [
        offer("own", author="ada"),
        offer("withdrawn", status="withdrawn"),
        offer("past", windows=(Window(start=1, end=NOW - 1),)),
        offer("other-pod", pod="Q"),
        offer("erased", redacted=True, category=None, area=None, windows=None),
        offer("no-fit", category="ride", area=None, windows=()),
        offer("time-only", category="ride", area=None),
        offer("kept"),
    ]
    assert [m.offer.id for m in rank(need(), offers, {}, NOW)] == ["kept"]


def test_no_time_on_either_side_is_any_time() -> None:
    (m,) = rank(need(window=None), [offer("a", area=None)], {}, NOW)
    assert codes(m) == ["category", "any-time", "low-load"]
    assert m.reasons[1].message == "the need names no time"
    (m,) = rank(need(), [offer("b", windows=(), area=None)], {}, NOW)
    assert m.reasons[1].message == "the offer names no time"


def test_an_erased_need_matches_on_nothing_but_time() -> None:
    erased = need(category=None, area=None, window=None, redacted=True)
    assert rank(erased, [offer("a")], {}, NOW) == ()


def test_ties_by_offer_ts_then_id() -> None:
    offers = [offer("b", ts=5), offer("a", ts=5), offer("c", ts=4)]
    assert [m.offer.id for m in rank(need(), offers, {}, NOW)] == ["c", "a", "b"]


@given(st.permutations(["a", "b", "c", "d", "e"]))
def test_order_of_candidates_does_not_matter(order: list[str]) -> None:
    base = {
        "a": offer("a", ts=3),
        "b": offer("b", ts=3, area=None),
        "c": offer("c", ts=1, category="ride"),
        "d": offer("d", ts=2),
        "e": offer("e", ts=2, author="helper-a"),
    }
    load = {"helper-a": 2}
    expected = rank(need(), list(base.values()), load, NOW)
    assert rank(need(), [base[k] for k in order], load, NOW) == expected


def test_recent_load_counts_needs_per_helper() -> None:
    claim = ClaimView(id="C", person="bo", ts=1, status="accepted")
    helped = [
        need(id="1", helper="bo", claims=(claim,), status="claimed"),
        need(id="2", helper="bo", status="fulfilled"),
        need(id="2", helper="bo", status="fulfilled"),  # the same need twice: counted once
        need(id="3", helper="cy", status="claimed"),
        need(id="4"),
    ]
    assert recent_load(helped) == {"bo": 2, "cy": 1}


def test_matches_encode_as_json() -> None:
    (m,) = rank(need(), [offer("a")], {}, NOW)
    decoded = msgspec.json.decode(msgspec.json.encode(m))
    assert decoded["reasons"][0] == {
        "code": "category",
        "message": "offers food, which this need asks for",
        "points": 100,
    }
