"""An offer's state, derived purely from the facts about it (no SQL, no clock).

``offer.posted`` opens it; ``offer.withdrawn`` by its author (the same person) or a coordinator
withdraws it. ``expired`` — every window has ended — is a read-time status.
"""

from __future__ import annotations

from collections.abc import Iterable

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import COORDINATING_ROLES, Fact, order
from node.projections.views import REMOVED, OfferStatus, OfferView, Window

__all__ = ["derive_offer", "explain_offer", "offer_status_at"]


def derive_offer(offer_id: str, facts: Iterable[Fact]) -> OfferView | None:
    """The offer ``offer_id`` from its facts; ``None`` while its ``offer.posted`` is unknown."""
    facts = list(facts)
    posted = next((f for f in facts if f.id == offer_id and f.kind == "offer.posted"), None)
    if posted is None:
        return None
    withdrawn = any(
        f.kind == "offer.withdrawn"
        and f.subject == offer_id
        and f.pod == posted.pod
        and (f.person == posted.person or f.role in COORDINATING_ROLES)
        for f in facts
    )
    data = posted.data
    return OfferView(
        id=offer_id,
        pod=posted.pod,
        author=posted.person,
        ts=posted.ts,
        status="withdrawn" if withdrawn else "open",
        title=REMOVED if data is None else data.title or REMOVED,
        details=REMOVED if data is None else data.details,
        category=None if data is None else data.category,
        windows=None
        if data is None
        else tuple(Window(start=start, end=end) for start, end in data.windows or ()),
        capacity=None if data is None else data.capacity,
        area=None if data is None else data.area,
        redacted=data is None,
        scope=posted.scope,
    )


def offer_status_at(view: OfferView, now_ms: int) -> OfferStatus:
    """The status at ``now_ms``: an open offer whose windows have all ended is ``expired``."""
    if view.status == "open" and view.windows and max(w.end for w in view.windows) < now_ms:
        return "expired"
    return view.status


def explain_offer(fact: Fact, view: OfferView | None, facts: Iterable[Fact]) -> Effect:
    """What ``fact`` did to its offer (the rules of ``derive_offer``, read the other way)."""
    if fact.kind == "offer.posted":
        return applied("offer posted")
    if view is None:
        return no_effect("unknown-offer", "withdraws an offer that is not known here")
    if fact.pod != view.pod:
        return no_effect("other-pod", "the offer belongs to another pod: only its pod acts on it")
    if not (fact.person == view.author or fact.role in COORDINATING_ROLES):
        return no_effect("not-allowed", "only the offer's author or a coordinator may withdraw it")
    first = min(
        (
            f
            for f in facts
            if f.kind == "offer.withdrawn"
            and f.subject == view.id
            and f.pod == view.pod
            and (f.person == view.author or f.role in COORDINATING_ROLES)
        ),
        key=order,
    )
    if first.id != fact.id:
        return no_effect("already-withdrawn", "the offer was already withdrawn")
    return applied("offer withdrawn")
