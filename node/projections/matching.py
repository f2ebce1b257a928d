"""Matching: which open offers could meet a need, best first, and why (no SQL, no clock).

A pure function of a ``NeedView``, candidate ``OfferView``s, each helper's recent load and
``now_ms`` (passed in, never read). Every match says *why* it matched in a list of
``MatchReason``s — a stable machine ``code`` and a human ``message`` — and its ``score`` is the
sum of their ``points``:

========================  ======  ===================================================
code                      points  when
========================  ======  ===================================================
``category``              100     the offer is in the need's category
``window-overlap``        40      one of the offer's windows overlaps the need's window
``any-time``              20      the need or the offer names no time at all
``same-area``             25      both name the same coarse area (case and spaces aside)
``low-load``              0–15    the helper helped few needs lately: ``15 - 5 * count``
``recent-load``           0       the helper helped ``count`` needs lately (just a fact)
========================  ======  ===================================================

Category weighs most, then time, then place; load spreads the work so that the same few
people do not burn out. Only open offers of the need's pod are candidates, never the need's
own author's, never one whose windows have all ended, and never one with neither the need's
category nor its area (being free at the right time alone is no match). Ties go to the older
offer, then the smaller id.

>>> from node.projections.views import NeedView, OfferView, Window
>>> need = NeedView(
...     id="N", pod="P", author="ada", ts=1, status="open", title="Soup", details=None,
...     category="food", urgency="normal", area="North", window=Window(start=10, end=20),
...     minutes_estimate=None, claims=(), accepted_claim=None, helper=None, fulfilment=None,
...     redacted=False,
... )
>>> offer = OfferView(
...     id="O", pod="P", author="bo", ts=2, status="open", title="I cook", details=None,
...     category="food", windows=(Window(start=15, end=30),), capacity=1, area="north ",
...     redacted=False,
... )
>>> [(m.offer.id, m.score, [r.code for r in m.reasons]) for m in rank(need, [offer], {}, 5)]
[('O', 180, ['category', 'window-overlap', 'same-area', 'low-load'])]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from node.projections.offers import offer_status_at
from node.projections.views import NeedView, OfferView, Window

__all__ = [
    "LOAD_DAYS",
    "Match",
    "MatchReason",
    "ReasonCode",
    "rank",
    "recent_load",
]

#: How far back a helper's load counts, in days.
LOAD_DAYS = 14

ReasonCode = Literal[
    "category", "window-overlap", "any-time", "same-area", "low-load", "recent-load"
]

_POINTS_CATEGORY = 100
_POINTS_OVERLAP = 40
_POINTS_ANY_TIME = 20
_POINTS_AREA = 25
_POINTS_LOAD_MAX = 15
_POINTS_PER_LOAD = 5
#: An offer is a match only with at least one of these: what it offers, or where.
_FITS = frozenset({"category", "same-area"})
#: Up to this many recent needs a helper still counts as lightly loaded.
_LOW_LOAD = 1


class MatchReason(msgspec.Struct, frozen=True, kw_only=True):
    """One reason an offer fits a need: stable ``code``, human ``message``, its ``points``."""

    code: ReasonCode
    message: str
    points: int


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """One offer that could meet the need: its ``score``, its helper's recent load and why.

    ``load`` is ``None`` when the reader may not know it (it is counted from pod-scope claims).
    """

    offer: OfferView
    score: int
    load: int | None
    reasons: tuple[MatchReason, ...]


def recent_load(needs: Iterable[NeedView]) -> dict[str, int]:
    """How many of ``needs`` each person is the accepted helper of (people, not keys).

    The caller passes the needs with an acceptance or fulfilment in the period that counts
    (``LOAD_DAYS``); a need counts once, however many events it had.
    """
    seen: dict[str, str] = {}
    for need in needs:
        if need.helper is not None:
            seen[need.id] = need.helper
    return dict(Counter(seen.values()))


def _overlaps(a: Window, b: Window) -> bool:
    return a.start < b.end and b.start < a.end


def _area(area: str | None) -> str | None:
    return None if area is None else " ".join(area.split()).casefold() or None


def _reasons(need: NeedView, offer: OfferView) -> list[MatchReason]:
    reasons: list[MatchReason] = []
    if need.category is not None and offer.category == need.category:
        reasons.append(
            MatchReason(
                code="category",
                message=f"offers {need.category}, which this need asks for",
                points=_POINTS_CATEGORY,
            )
        )
    if need.window is None or not offer.windows:
        reasons.append(
            MatchReason(
                code="any-time",
                message="the need names no time"
                if need.window is None
                else "the offer names no time",
                points=_POINTS_ANY_TIME,
            )
        )
    elif any(_overlaps(need.window, w) for w in offer.windows):
        reasons.append(
            MatchReason(
                code="window-overlap",
                message="available while the need is open",
                points=_POINTS_OVERLAP,
            )
        )
    need_area, offer_area = _area(need.area), _area(offer.area)
    if need_area is not None and need_area == offer_area:
        reasons.append(
            MatchReason(code="same-area", message=f"also in {need.area}", points=_POINTS_AREA)
        )
    return reasons


def _load_reason(load: int) -> MatchReason:
    helped = f"helped {load} need{'' if load == 1 else 's'} in the last {LOAD_DAYS} days"
    if load <= _LOW_LOAD:
        points = max(0, _POINTS_LOAD_MAX - _POINTS_PER_LOAD * load)
        return MatchReason(code="low-load", message=helped, points=points)
    return MatchReason(code="recent-load", message=helped, points=0)


def _candidate(need: NeedView, offer: OfferView, now_ms: int) -> bool:
    return (
        offer.pod == need.pod
        and offer.author != need.author
        and not offer.redacted
        and offer_status_at(offer, now_ms) == "open"
    )


def rank(
    need: NeedView, offers: Iterable[OfferView], load: Mapping[str, int] | None, now_ms: int
) -> tuple[Match, ...]:
    """The offers that could meet ``need``, best first: ``(score desc, offer ts, offer id)``.

    ``load`` maps a helper (a person) to their recent count (see ``recent_load``); a helper
    not in it has helped no one lately. ``None`` leaves load out of the ranking altogether
    (for readers who may not know it). ``now_ms`` decides which offers have expired.
    """
    matches = []
    for offer in offers:
        if not _candidate(need, offer, now_ms):
            continue
        fits = _reasons(need, offer)
        if not any(r.code in _FITS for r in fits):
            continue  # being free at the right time alone does not make a helper a match
        count = None if load is None else load.get(offer.author, 0)
        reasons = (*fits,) if count is None else (*fits, _load_reason(count))
        matches.append(
            Match(offer=offer, score=sum(r.points for r in reasons), load=count, reasons=reasons)
        )
    matches.sort(key=lambda m: (-m.score, m.offer.ts, m.offer.id))
    return tuple(matches)
