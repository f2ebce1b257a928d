"""A need's state, derived purely from the facts about it (no SQL, no clock).

The rules (DESIGN §5), each decided from the fact set alone so that every node agrees:

* ``need.posted`` opens the need. Without it there is no need (yet), whatever else is known.
* ``need.updated`` by the need's author (the same person) or a coordinator changes content;
  the posted body is the base and updates apply in ``(ts, id)`` order, the latest value of
  each field winning.
* ``claim.made`` adds a pending claim; ``claim.withdrawn`` by the claimer withdraws it.
* ``claim.accepted`` by the need's author or a coordinator, naming a claim on this need that
  was not withdrawn, is a *valid acceptance*; the earliest valid acceptance by ``(ts, id)``
  assigns the need, and every other live claim is then ``declined``. If the accepted helper
  withdraws, the next valid acceptance (if any) takes over.
* ``fulfilment.recorded`` by the need's author, the accepted helper or a coordinator fulfils
  it; the earliest valid one is the one shown.
* ``need.withdrawn`` by the author or a coordinator withdraws it.
* A claim by a person blocked now (``lapsed``) *lapses* unless the need is already fulfilled:
  it cannot be accepted, and an acceptance of it no longer assigns the need (docs/moderation.md).
* Status precedence: fulfilled > withdrawn > claimed > open. ``expired`` is a read-time status.

Facts from another pod than the need's are ignored: they cannot be about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import COORDINATING_ROLES, Fact, order
from node.projections.views import (
    REMOVED,
    ClaimStatus,
    ClaimView,
    FulfilmentView,
    NeedStatus,
    NeedView,
    Window,
)

__all__ = ["derive_need", "explain_need", "need_status_at"]

_CONTENT = ("title", "details", "category", "urgency", "window", "area", "minutes_estimate")


def derive_need(
    need_id: str, facts: Iterable[Fact], *, lapsed: frozenset[str] = frozenset()
) -> NeedView | None:
    """The need ``need_id`` as its facts make it, or ``None`` while its ``need.posted`` is unknown.

    ``facts`` may hold anything; only facts about this need count. ``lapsed``: the people
    blocked now, whose open claims lapse.
    """
    ordered = sorted(facts, key=order)
    posted = next((f for f in ordered if f.id == need_id and f.kind == "need.posted"), None)
    if posted is None:
        return None
    about = [f for f in ordered if f.pod == posted.pod and f.id != need_id]

    def manages(f: Fact) -> bool:
        return f.person == posted.person or f.role in COORDINATING_ROLES

    def about_need(kind: str) -> list[Fact]:
        return [f for f in about if f.kind == kind and f.subject == need_id]

    # Keyed by ``str | None`` so that a fact's optional ``ref`` can index it directly.
    claims: dict[str | None, Fact] = {f.id: f for f in about_need("claim.made")}
    withdrawn = {
        f.ref
        for f in about
        if f.kind == "claim.withdrawn" and f.ref in claims and f.person == claims[f.ref].person
    }

    def accepted_among(out: set[str | None]) -> Fact | None:
        return next(
            (
                claims[f.ref]
                for f in about_need("claim.accepted")
                if f.ref in claims and f.ref not in out and manages(f)
            ),
            None,
        )

    accepted = accepted_among(withdrawn)
    helper = None if accepted is None else accepted.person
    fulfilment = next(
        (f for f in about_need("fulfilment.recorded") if manages(f) or f.person == helper), None
    )
    # Claims of people blocked now lapse, unless the need was fulfilled already.
    gone = (
        {cid for cid, c in claims.items() if c.person in lapsed}
        if lapsed and fulfilment is None
        else set()
    )
    if gone:
        accepted = accepted_among(withdrawn | gone)
        helper = None if accepted is None else accepted.person
    is_withdrawn = any(manages(f) for f in about_need("need.withdrawn"))

    status: NeedStatus = "open"
    if fulfilment is not None:
        status = "fulfilled"
    elif is_withdrawn:
        status = "withdrawn"
    elif accepted is not None:
        status = "claimed"

    def claim_status(claim_id: str) -> ClaimStatus:
        if claim_id in withdrawn:
            return "withdrawn"
        if claim_id in gone:
            return "lapsed"
        if accepted is None:
            return "pending"
        return "accepted" if claim_id == accepted.id else "declined"

    content = _content(posted, [f for f in about_need("need.updated") if manages(f)])
    return NeedView(
        id=need_id,
        pod=posted.pod,
        author=posted.person,
        ts=posted.ts,
        status=status,
        claims=tuple(
            ClaimView(id=c.id, person=c.person, ts=c.ts, status=claim_status(c.id))
            for c in claims.values()
        ),
        scope=posted.scope,
        referral=None if posted.data is None else posted.data.referral,
        accepted_claim=None if accepted is None else accepted.id,
        helper=helper,
        fulfilment=None
        if fulfilment is None
        else FulfilmentView(
            id=fulfilment.id,
            person=fulfilment.person,
            minutes=None if fulfilment.data is None else fulfilment.data.minutes,
            ts=fulfilment.ts,
        ),
        **content,
    )


def _content(posted: Fact, updates: list[Fact]) -> dict[str, Any]:
    """The content fields: the posted body, then each update's non-null fields in order.

    An erased need shows no content, whatever its updates say: they are about the same thing.
    An erased update has no content (and no known need): it is never among ``updates``.
    """
    if posted.data is None:
        return {
            "title": REMOVED,
            "details": REMOVED,
            "category": None,
            "urgency": None,
            "area": None,
            "window": None,
            "minutes_estimate": None,
            "redacted": True,
        }
    fields = {name: getattr(posted.data, name) for name in _CONTENT}
    for update in updates:
        for name in _CONTENT:
            value = getattr(update.data, name)
            if value is not None:
                fields[name] = value
    window = fields["window"]
    fields["window"] = None if window is None else Window(start=window[0], end=window[1])
    fields["redacted"] = False
    return fields


def need_status_at(view: NeedView, now_ms: int) -> NeedStatus:
    """The status at ``now_ms``: an open need whose window has ended is ``expired``."""
    if view.status == "open" and view.window is not None and view.window.end < now_ms:
        return "expired"
    return view.status


# --- effects (what one fact did; derived, never stored) ----------------------------------

_CLOSED_WORDS = {
    "fulfilled": "the need is already fulfilled",
    "withdrawn": "the need was withdrawn",
}


def explain_need(fact: Fact, view: NeedView | None, facts: Iterable[Fact]) -> Effect:
    """What ``fact`` did to its need, given the need as derived from ``facts`` (which hold it).

    The same rules as ``derive_need``, read the other way: a fact derive ignores is reported
    with why. A fact ordered after the need closed (fulfilled or withdrawn) changes nothing
    that counts, even where the need still lists it (a late claim).
    """
    if fact.kind == "need.posted":
        return applied("need posted")
    if view is None and fact.kind == "claim.withdrawn":
        return no_effect("unknown-claim", "withdraws a claim that is not known here")
    if view is None:
        return no_effect("unknown-need", f"{_WHAT[fact.kind]} an unknown need (not here yet)")
    if fact.pod != view.pod:
        return no_effect("other-pod", "the need belongs to another pod: only its pod acts on it")
    ordered = sorted(facts, key=order)
    managers = f"only the need's author or a coordinator may {_VERB.get(fact.kind, 'do that')}"

    def manages(f: Fact) -> bool:
        return f.person == view.author or f.role in COORDINATING_ROLES

    closing = next(
        (
            f
            for f in ordered
            if f.subject == view.id
            and (
                (
                    f.kind == "fulfilment.recorded"
                    and view.fulfilment is not None
                    and f.id == view.fulfilment.id
                )
                or (f.kind == "need.withdrawn" and manages(f))
            )
        ),
        None,
    )
    closed_before = closing is not None and order(closing) < order(fact)
    closed = (
        "fulfilled"
        if closing is not None and closing.kind == "fulfilment.recorded"
        else "withdrawn"
    )
    if fact.kind == "need.updated":
        if not manages(fact):
            return no_effect("not-allowed", managers)
        return applied("need updated")
    if fact.kind == "need.withdrawn":
        if not manages(fact):
            return no_effect("not-allowed", managers)
        if closing is not None and closing.id != fact.id:
            return no_effect(f"already-{closed}", _CLOSED_WORDS[closed])
        return applied("need withdrawn")
    if fact.kind == "claim.made":
        if closed_before:
            return no_effect(f"already-{closed}", _CLOSED_WORDS[closed])
        return applied("claim made: the need's author or a coordinator can now accept it")
    if fact.kind == "claim.withdrawn":
        claim = next((c for c in view.claims if c.id == fact.ref), None)
        if claim is None:
            return no_effect("unknown-claim", "withdraws a claim that is not on this need")
        if claim.person != fact.person:
            return no_effect("not-allowed", "only the person who claimed may withdraw the claim")
        first = next(
            f
            for f in ordered
            if f.kind == "claim.withdrawn" and f.ref == fact.ref and f.person == claim.person
        )
        if first.id != fact.id:
            return no_effect("already-withdrawn", "the claim was already withdrawn")
        return applied("claim withdrawn")
    if fact.kind == "claim.accepted":
        claim = next((c for c in view.claims if c.id == fact.ref), None)
        if claim is None:
            return no_effect("unknown-claim", "accepts a claim that is not on this need")
        if not manages(fact):
            return no_effect("not-allowed", managers)
        if claim.status == "withdrawn":
            return no_effect("claim-withdrawn", "the claim was withdrawn")
        if closed_before:
            return no_effect(f"already-{closed}", _CLOSED_WORDS[closed])
        if view.accepted_claim != fact.ref:
            return no_effect("already-accepted", "another claim was accepted first")
        earlier = next(
            f for f in ordered if f.kind == "claim.accepted" and manages(f) and f.ref == fact.ref
        )
        if earlier.id != fact.id:
            return no_effect("already-accepted", "this claim was already accepted")
        return applied("claim accepted: the helper is assigned")
    if fact.kind == "fulfilment.recorded":
        if view.fulfilment is None or view.fulfilment.id != fact.id:
            if not (manages(fact) or fact.person == view.helper):
                return no_effect(
                    "not-allowed",
                    "only the need's author, the accepted helper or a coordinator may record"
                    " its fulfilment",
                )
            return no_effect("already-fulfilled", "the need is already fulfilled")
        return applied("need fulfilled")
    return applied()  # pragma: no cover - every need-family kind is handled above


_WHAT = {
    "need.updated": "updates",
    "need.withdrawn": "withdraws",
    "claim.made": "claims",
    "claim.withdrawn": "withdraws a claim on",
    "claim.accepted": "accepts a claim on",
    "fulfilment.recorded": "records the fulfilment of",
}
_VERB = {
    "need.updated": "change it",
    "need.withdrawn": "withdraw it",
    "claim.accepted": "accept a claim",
}
