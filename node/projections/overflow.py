"""Overflow between pods: a referral's life, derived purely from the facts about it (no SQL, no
clock).

A referral (``overflow.referred``) belongs to the pod whose log holds it, its **origin**. Its life
is one small state machine, ``TRANSITIONS``::

    referred ──offered──▶ offered ──assigned──▶ assigned ──fulfilled──▶ fulfilled
        └───────────────assigned──────────────────┘    └──returned───▶ returned

and ``lapsed``, a read-time state: a referral still ``referred`` or ``offered`` when its
``expires_at`` has passed (``shown_state``), kept out of the projection hash.

Who may make each move is one guard per kind (``check_move``), used both here and by the node
before it signs a move, so that a refusal and a no-effect read the same reason:

* ``overflow.offered`` — a coordinator (or the node key) of a *neighbour* pod: not the origin, not
  a pod already on the referral's path; before ``expires_at``; one offer per pod counts.
* ``overflow.assigned`` — a coordinator of the **origin pod only**, to a pod that is neither the
  origin nor on the path, before ``expires_at``; the first valid assignment is the one.
* ``overflow.fulfilled`` / ``overflow.returned`` — a coordinator of the assigned pod.
* ``clearing.recorded`` (not a move): each of the two pods records its own side of the time the
  assigned pod gave, tied to the fulfilled referral — the assigned pod ``+minutes`` with the
  origin as ``peer_pod``, the origin ``-minutes`` with the assigned pod. Anything else is a
  forged or mistaken entry and has no effect.

Moves are applied in **causal phases** — every offer, then the assignment, then the closing —
each phase in ``(ts, id)`` order, not in one global ``ts`` order: the two pods' clocks differ,
and a fulfilment stamped a second "before" the assignment it answers must still count. The
result depends on the fact set alone, as every projection must.

A re-referral (``parent`` set) is checked against its parent when the parent is known here: the
parent must be assigned to the re-referring pod, have a hop left, and the child's ``path`` and
``hops_left`` must follow from it. A pod that never saw the parent judges the child by its own
content (its path must not hold its origin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import COORDINATING_ROLES, Fact, order
from node.projections.views import Window

__all__ = [
    "TRANSITIONS",
    "Assignment",
    "ClearingSide",
    "Closing",
    "Ignored",
    "Move",
    "OfferSeen",
    "ReferralState",
    "ReferralView",
    "Refusal",
    "ShownState",
    "check_clearing",
    "check_move",
    "derive_referral",
    "explain_referral",
    "shown_state",
]

ReferralState = Literal["referred", "offered", "assigned", "fulfilled", "returned"]
ShownState = Literal["referred", "offered", "assigned", "fulfilled", "returned", "lapsed"]

#: The whole life cycle: (state, move) → next state. A move not in this table is refused.
TRANSITIONS: Mapping[tuple[ReferralState, str], ReferralState] = MappingProxyType(
    {
        ("referred", "overflow.offered"): "offered",
        ("offered", "overflow.offered"): "offered",
        ("referred", "overflow.assigned"): "assigned",
        ("offered", "overflow.assigned"): "assigned",
        ("assigned", "overflow.fulfilled"): "fulfilled",
        ("assigned", "overflow.returned"): "returned",
    }
)

#: Moves in the order their phases apply.
_PHASES = ("overflow.offered", "overflow.assigned", "overflow.fulfilled", "overflow.returned")
_CLOSINGS = frozenset({"overflow.fulfilled", "overflow.returned"})


class Refusal(msgspec.Struct, frozen=True):
    """Why a move or entry has no effect: a stable ``reason`` and words for a person."""

    reason: str
    message: str


class Move(msgspec.Struct, frozen=True, kw_only=True):
    """A proposed move, as much as the guards need: who (pod, role), what, when."""

    kind: str
    pod: str
    role: str
    ts: int
    to_pod: str | None = None


class OfferSeen(msgspec.Struct, frozen=True, kw_only=True):
    """A neighbour pod's offer to take the referral."""

    id: str
    pod: str
    ts: int
    note: str | None


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """The origin gave the referral to ``to_pod``; ``sealed_to`` lists the box keys the details
    were sealed to (empty when no details were sent)."""

    id: str
    to_pod: str
    ts: int
    offer: str | None
    sealed_to: tuple[str, ...]


class Closing(msgspec.Struct, frozen=True, kw_only=True):
    """The assigned pod met the need (``fulfilled``, with the minutes it gave) or handed it back
    (``returned``, with its reason)."""

    id: str
    outcome: Literal["fulfilled", "returned"]
    pod: str
    ts: int
    minutes: int | None
    reason: str | None


class ClearingSide(msgspec.Struct, frozen=True, kw_only=True):
    """One pod's side of inter-pod time: ``minutes`` > 0 given to ``peer_pod``, < 0 received."""

    id: str
    pod: str
    peer_pod: str
    minutes: int
    ts: int


class Ignored(msgspec.Struct, frozen=True, kw_only=True):
    """An event about this referral that had no effect, and why."""

    id: str
    kind: str
    pod: str
    reason: str
    message: str


class ReferralView(msgspec.Struct, frozen=True, kw_only=True):
    """A referral as every node holding its events sees it.

    ``problem`` says why the referral itself has no effect (then ``state`` stays ``referred`` and
    nothing may move it). The summary fields are all a neighbour ever learns of the need.
    """

    id: str
    pod: str
    ts: int
    need: str | None
    category: str | None
    urgency: str | None
    area: str | None
    window: Window | None
    minutes_estimate: int | None
    hops_left: int | None
    expires_at: int | None
    parent: str | None
    path: tuple[str, ...]
    state: ReferralState
    problem: Refusal | None
    offers: tuple[OfferSeen, ...]
    assignment: Assignment | None
    closing: Closing | None
    clearing: tuple[ClearingSide, ...]
    ignored: tuple[Ignored, ...]

    @property
    def on_path(self) -> tuple[str, ...]:
        """Every pod the need has been through, this referral's origin last."""
        return (*self.path, self.pod)


def _refuse(reason: str, message: str) -> Refusal:
    return Refusal(reason, message)


def check_move(view: ReferralView, move: Move) -> Refusal | None:
    """Why ``move`` cannot be made on ``view`` now, or ``None`` if it can.

    Used for every fact by ``derive_referral`` and by the node before signing a move itself.
    """
    if view.problem is not None:
        return _refuse(
            "overflow:invalid-referral", f"the referral has no effect: {view.problem.message}"
        )
    if move.role not in COORDINATING_ROLES:
        return _refuse(
            "overflow:not-coordinator", "only a pod's coordinators (or its node) move a referral"
        )
    if move.kind in ("overflow.offered", "overflow.assigned") and (
        view.expires_at is not None and move.ts > view.expires_at
    ):
        return _refuse(
            "overflow:expired", "the referral has expired; the origin may refer it again"
        )
    if move.kind == "overflow.offered":
        if move.pod == view.pod:
            return _refuse("overflow:own-referral", "a pod cannot offer to take its own referral")
        if move.pod in view.path:
            return _refuse("overflow:on-path", "this pod is already on the referral's path")
        if any(offer.pod == move.pod for offer in view.offers):
            return _refuse("overflow:already-offered", "this pod has already offered")
    elif move.kind == "overflow.assigned":
        if move.pod != view.pod:
            return _refuse("overflow:not-origin", "only the pod that referred the need assigns it")
        if move.to_pod is None or move.to_pod in view.on_path:
            return _refuse(
                "overflow:on-path", "a referral is never assigned to a pod already on its path"
            )
    elif move.kind in _CLOSINGS:
        assigned = view.assignment
        if assigned is not None and move.pod != assigned.to_pod:
            return _refuse(
                "overflow:not-assignee", "only the pod the referral was assigned to closes it"
            )
    nxt = TRANSITIONS.get((view.state, move.kind))
    if nxt is None:
        return _refuse(f"overflow:state:{view.state}", _STATE_WORDS[view.state])
    return None


_STATE_WORDS: Mapping[ReferralState, str] = MappingProxyType(
    {
        "referred": "the referral is not assigned yet",
        "offered": "the referral is not assigned yet",
        "assigned": "the referral is already assigned",
        "fulfilled": "the referral is already fulfilled",
        "returned": "the referral was returned; the origin may refer the need again",
    }
)


def check_clearing(
    view: ReferralView, fact_pod: str, role: str, peer_pod: str, minutes: int
) -> Refusal | None:
    """Why a ``clearing.recorded`` entry for this referral has no effect, or ``None``."""
    closing, assigned = view.closing, view.assignment
    if closing is None or closing.outcome != "fulfilled" or assigned is None:
        return _refuse("clearing:not-fulfilled", "only a fulfilled referral is cleared")
    if not closing.minutes:
        return _refuse("clearing:no-minutes", "the fulfilment stated no minutes to clear")
    if role not in COORDINATING_ROLES:
        return _refuse("clearing:not-coordinator", "only coordinators record clearing")
    expected = {
        view.pod: (assigned.to_pod, -closing.minutes),
        assigned.to_pod: (view.pod, closing.minutes),
    }
    side = expected.get(fact_pod)
    if side is None:
        return _refuse("clearing:not-a-party", "only the two pods of a referral clear it")
    if (peer_pod, minutes) != side:
        return _refuse(
            "clearing:mismatch",
            "the entry does not match the fulfilment (peer pod, sign or minutes)",
        )
    if any(entry.pod == fact_pod for entry in view.clearing):
        return _refuse("clearing:duplicate", "this pod has already recorded its side")
    return None


def shown_state(view: ReferralView, now_ms: int) -> ShownState:
    """The state at ``now_ms``: an unassigned referral past ``expires_at`` has ``lapsed``."""
    if (
        view.state in ("referred", "offered")
        and view.expires_at is not None
        and now_ms > view.expires_at
    ):
        return "lapsed"
    return view.state


def _base(referred: Fact, parent: ReferralView | None) -> ReferralView:
    data = referred.data
    window = (
        None
        if data is None or data.window is None
        else Window(start=data.window[0], end=data.window[1])
    )
    view = ReferralView(
        id=referred.id,
        pod=referred.pod,
        ts=referred.ts,
        need=None if data is None else data.need,
        category=None if data is None else data.category,
        urgency=None if data is None else data.urgency,
        area=None if data is None else data.area,
        window=window,
        minutes_estimate=None if data is None else data.minutes_estimate,
        hops_left=None if data is None else data.hops_left,
        expires_at=None if data is None else data.expires_at,
        parent=referred.ref,
        path=() if data is None or data.path is None else data.path,
        state="referred",
        problem=None,
        offers=(),
        assignment=None,
        closing=None,
        clearing=(),
        ignored=(),
    )
    problem = _referral_problem(view, referred, parent)
    return view if problem is None else msgspec.structs.replace(view, problem=problem)


def _referral_problem(
    view: ReferralView, referred: Fact, parent: ReferralView | None
) -> Refusal | None:
    if referred.data is None:
        return _refuse("overflow:no-body", "the referral's body is missing")
    if referred.role not in COORDINATING_ROLES:
        return _refuse("overflow:not-coordinator", "only coordinators or the node refer a need")
    if view.pod in view.path:
        return _refuse("overflow:loop", "the referring pod is already on the path")
    if parent is None:
        return None
    if parent.assignment is None or parent.assignment.to_pod != view.pod:
        return _refuse(
            "overflow:not-assigned-here", "only the pod a referral is assigned to may pass it on"
        )
    if not parent.hops_left:
        return _refuse("overflow:no-hops-left", "the referral may not be passed on again")
    if view.hops_left != parent.hops_left - 1 or view.path != parent.on_path:
        return _refuse(
            "overflow:path", "a re-referral has one hop less and the parent's path plus its pod"
        )
    return None


def derive_referral(
    referral_id: str, facts: Iterable[Fact], parent: ReferralView | None = None
) -> ReferralView | None:
    """The referral ``referral_id`` as its facts make it, or ``None`` while it is unknown.

    ``parent`` is the view of the referral this one passes on, when known here.
    """
    ordered = sorted(facts, key=order)
    referred = next(
        (f for f in ordered if f.id == referral_id and f.kind == "overflow.referred"), None
    )
    if referred is None:
        return None
    view = _base(referred, parent)
    ignored: list[Ignored] = []

    def ignore(f: Fact, refusal: Refusal) -> None:
        ignored.append(
            Ignored(id=f.id, kind=f.kind, pod=f.pod, reason=refusal.reason, message=refusal.message)
        )

    about = [f for f in ordered if f.subject == referral_id and f.id != referral_id]
    for phase in _PHASES:
        for f in (f for f in about if f.kind == phase):
            if f.data is None:
                continue  # a move without its body says nothing (moves are never erased)
            move = Move(kind=f.kind, pod=f.pod, role=f.role, ts=f.ts, to_pod=f.data.to_pod)
            refusal = check_move(view, move)
            if refusal is not None:
                ignore(f, refusal)
                continue
            view = _moved(view, f)
    for f in (f for f in about if f.kind == "clearing.recorded"):
        if f.data is None or f.data.peer_pod is None or f.data.minutes is None:
            continue
        refusal = check_clearing(view, f.pod, f.role, f.data.peer_pod, f.data.minutes)
        if refusal is not None:
            ignore(f, refusal)
            continue
        side = ClearingSide(
            id=f.id, pod=f.pod, peer_pod=f.data.peer_pod, minutes=f.data.minutes, ts=f.ts
        )
        view = msgspec.structs.replace(view, clearing=(*view.clearing, side))
    return msgspec.structs.replace(view, ignored=tuple(ignored))


def _moved(view: ReferralView, f: Fact) -> ReferralView:
    """``view`` after the (checked) move ``f``."""
    data = f.data
    assert data is not None
    state = TRANSITIONS[(view.state, f.kind)]
    if f.kind == "overflow.offered":
        offer = OfferSeen(id=f.id, pod=f.pod, ts=f.ts, note=data.note)
        return msgspec.structs.replace(view, state=state, offers=(*view.offers, offer))
    if f.kind == "overflow.assigned":
        assert data.to_pod is not None
        assignment = Assignment(
            id=f.id, to_pod=data.to_pod, ts=f.ts, offer=f.ref, sealed_to=data.recipients or ()
        )
        return msgspec.structs.replace(view, state=state, assignment=assignment)
    closing = Closing(
        id=f.id,
        outcome="fulfilled" if f.kind == "overflow.fulfilled" else "returned",
        pod=f.pod,
        ts=f.ts,
        minutes=data.minutes,
        reason=data.note,
    )
    return msgspec.structs.replace(view, state=state, closing=closing)


def explain_referral(fact: Fact, view: ReferralView | None) -> Effect:
    """What ``fact`` did to its referral: its ignored reason, if ``derive_referral`` ignored it."""
    if view is None:
        return no_effect("unknown-referral", "names a referral that is not known here")
    if fact.kind == "overflow.referred":
        if view.problem is not None:
            return no_effect(view.problem.reason, view.problem.message)
        return applied("referral sent to the neighbour pods")
    ignored = next((i for i in view.ignored if i.id == fact.id), None)
    if ignored is not None:
        return no_effect(ignored.reason, ignored.message)
    return applied(_APPLIED_WORDS.get(fact.kind, "applied"))


_APPLIED_WORDS = {
    "overflow.offered": "offer sent to the referring pod",
    "overflow.assigned": "referral assigned",
    "overflow.fulfilled": "referral fulfilled",
    "overflow.returned": "referral returned to its pod",
    "clearing.recorded": "clearing recorded",
}
