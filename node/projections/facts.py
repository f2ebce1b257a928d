"""Facts: what one accepted event says about one subject — a need, an offer or a time-bank entry.

A ``Fact`` is an event reduced to what the read models use: who signed it (as a person and a
role), when, which subject it is about, and the few body fields that matter (``FactData``).
The set of facts only ever grows (apply is a set union, so order cannot matter); every read
model row is a pure function of its subject's facts (see ``needs``, ``offers``, ``timebank``).

A fact with no body (``data is None``) is one whose body was erased or never seen. It keeps
only what its head says, so a node that saw a body and then erased it holds exactly the fact
of a node that never saw the body: ``erased(fact_of(ev)) == fact_of(ev without body)``.

>>> from protocol.kinds import NeedWithdrawn
>>> ev = ProjectionInput(
...     id="W", pod="P", author="K", person="K", role="member", scope="pod", seq=2, ts=5,
...     kind="need.withdrawn", body=NeedWithdrawn(need="N"),
... )
>>> fact = fact_of(ev)
>>> fact.subject, erased(fact).subject
('N', None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from protocol.kinds import (
    Body,
    ClaimAccepted,
    ClaimMade,
    ClaimWithdrawn,
    ClearingRecorded,
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
    OverflowAssigned,
    OverflowFulfilled,
    OverflowOffered,
    OverflowReferred,
    OverflowReturned,
    ProposalOpened,
    TimeWindow,
    VoteCast,
    shown_category,
)
from protocol.sealed import SealedField

__all__ = [
    "COORDINATING_ROLES",
    "Fact",
    "FactData",
    "Family",
    "ProjectionInput",
    "erased",
    "fact_of",
    "family_of",
    "order",
]

#: Roles that may act for any member: accept a claim, update or withdraw anyone's need.
COORDINATING_ROLES: frozenset[str] = frozenset({"root", "node", "coordinator"})

#: Which read model a fact feeds.
Family = Literal["need", "offer", "hours", "referral", "proposal", "member", "gathering"]


class ProjectionInput(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted, authorized event as ingest hands it to the projections.

    ``person`` is the member ``author`` belongs to (``author`` itself unless it is a linked
    device key); ``role`` is that member's role in ``pod`` when the event was accepted.
    ``body`` is the struct ``protocol.kinds.validate_body`` returned, or ``None`` when the event
    has no body, its body was erased, or its kind is unknown.
    """

    id: str
    pod: str
    author: str
    person: str
    role: Literal["root", "node", "coordinator", "member"]
    scope: str
    seq: int
    ts: int
    kind: str
    body: msgspec.Struct | None


Span = tuple[int, int]


class FactData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body fields the read models use — no sealed addresses, no notes, nothing else.

    Deliberately unconstrained (plain ``str``/``int``): it is decoded from our own table and
    must never fail to load.
    """

    title: str | None = None
    details: str | None = None
    category: str | None = None
    urgency: str | None = None
    window: Span | None = None
    area: str | None = None
    minutes_estimate: int | None = None
    windows: tuple[Span, ...] | None = None
    capacity: int | None = None
    giver: str | None = None
    receiver: str | None = None
    minutes: int | None = None
    # overflow between pods
    referral: str | None = None  # on a need: the neighbour's referral it stands for here
    need: str | None = None
    hops_left: int | None = None
    expires_at: int | None = None
    path: tuple[str, ...] | None = None
    to_pod: str | None = None
    peer_pod: str | None = None
    recipients: tuple[str, ...] | None = None  # box keys a sealed field is addressed to
    note: str | None = None  # a coordinator's note on an offer, or a return's reason
    # collective decisions
    options: tuple[str, ...] | None = None
    closes_at: int | None = None
    option: int | None = None
    # gatherings
    gathering_kind: str | None = None
    place: str | None = None
    # The one sealed value kept: a gathering's place, as ciphertext for members' clients to
    # open. It was validated on ingest, so decoding it from our own table cannot fail.
    place_sealed: SealedField | None = None
    answer: str | None = None


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the read models see it.

    ``subject`` is the id of the need, offer or entry the fact is about (``None`` when only its
    body could say, and there is no body — or, for ``claim.withdrawn``, when it names a claim
    instead: see ``ref``). ``ref`` is the claim a ``claim.withdrawn`` or ``claim.accepted``
    names.
    """

    id: str
    pod: str
    kind: str
    person: str
    author: str
    role: str
    ts: int
    subject: str | None
    ref: str | None
    data: FactData | None
    scope: str = "pod"


def order(fact: Fact) -> tuple[int, str]:
    """The one total order of facts: by ``ts``, ties broken by ``id``."""
    return (fact.ts, fact.id)


# --- reading bodies ----------------------------------------------------------------------

#: What a body says: (subject, ref, data).
_Read = tuple[str | None, str | None, FactData | None]


def _shown(category: str | None) -> str | None:
    # A category this node does not know is shown as "other"; the event keeps the original.
    return None if category is None else shown_category(category)


def _span(window: TimeWindow | None) -> Span | None:
    return None if window is None else (window.start, window.end)


def _need_posted(b: NeedPosted) -> _Read:
    data = FactData(
        title=b.title,
        details=b.details,
        category=_shown(b.category),
        urgency=b.urgency,
        window=_span(b.window),
        area=b.area,
        minutes_estimate=b.minutes_estimate,
        referral=b.referral,
    )
    return None, b.referral, data  # ``ref``: a referral's need is found by its referral


def _need_updated(b: NeedUpdated) -> _Read:
    data = FactData(
        title=b.title,
        details=b.details,
        category=_shown(b.category),
        urgency=b.urgency,
        window=_span(b.window),
        area=b.area,
        minutes_estimate=b.minutes_estimate,
    )
    return b.need, None, data


def _offer_posted(b: OfferPosted) -> _Read:
    data = FactData(
        title=b.title,
        details=b.details,
        category=_shown(b.category),
        windows=tuple((w.start, w.end) for w in b.windows),
        capacity=b.capacity,
        area=b.area,
    )
    return None, None, data


def _hours_logged(b: HoursLogged) -> _Read:
    return None, None, FactData(giver=b.giver, receiver=b.receiver, minutes=b.minutes)


def _fulfilment(b: FulfilmentRecorded) -> _Read:
    return b.need, None, FactData(minutes=b.minutes)


def _referred(b: OverflowReferred) -> _Read:
    summary = b.summary
    data = FactData(
        category=_shown(summary.category),
        urgency=summary.urgency,
        area=summary.area,
        window=_span(summary.window),
        minutes_estimate=summary.minutes_estimate,
        need=b.need,
        hops_left=b.hops_left,
        expires_at=b.expires_at,
        path=b.path,
    )
    return None, b.parent, data


def _assigned(b: OverflowAssigned) -> _Read:
    recipients = None if b.details is None else tuple(r.key for r in b.details.to)
    return b.referral, b.offer, FactData(to_pod=b.to_pod, recipients=recipients)


def _clearing(b: ClearingRecorded) -> _Read:
    return b.referral, None, FactData(peer_pod=b.peer_pod, minutes=b.minutes)


def _proposal(b: ProposalOpened) -> _Read:
    data = FactData(title=b.title, details=b.details, options=b.options, closes_at=b.closes_at)
    return None, None, data


def _gathering_scheduled(b: GatheringScheduled) -> _Read:
    data = FactData(
        title=b.title,
        details=b.details,
        gathering_kind=b.kind,
        window=_span(b.window),
        place=b.place,
        place_sealed=b.place_sealed,
        capacity=b.capacity,
    )
    return None, None, data


#: kind → (body type, family, reader). Kinds not listed are not projected here.
_READERS: Mapping[str, tuple[type[Body], Family, Callable[[Any], _Read]]] = MappingProxyType(
    {
        "need.posted": (NeedPosted, "need", _need_posted),
        "need.updated": (NeedUpdated, "need", _need_updated),
        "need.withdrawn": (NeedWithdrawn, "need", lambda b: (b.need, None, FactData())),
        "claim.made": (ClaimMade, "need", lambda b: (b.need, None, FactData())),
        "claim.withdrawn": (ClaimWithdrawn, "need", lambda b: (None, b.claim, FactData())),
        "claim.accepted": (ClaimAccepted, "need", lambda b: (b.need, b.claim, FactData())),
        "fulfilment.recorded": (FulfilmentRecorded, "need", _fulfilment),
        "offer.posted": (OfferPosted, "offer", _offer_posted),
        "offer.withdrawn": (OfferWithdrawn, "offer", lambda b: (b.offer, None, FactData())),
        "hours.logged": (HoursLogged, "hours", _hours_logged),
        "hours.confirmed": (HoursConfirmed, "hours", lambda b: (b.entry, None, FactData())),
        "overflow.referred": (OverflowReferred, "referral", _referred),
        "overflow.offered": (
            OverflowOffered,
            "referral",
            lambda b: (b.referral, None, FactData(note=b.note)),
        ),
        "overflow.assigned": (OverflowAssigned, "referral", _assigned),
        "overflow.fulfilled": (
            OverflowFulfilled,
            "referral",
            lambda b: (b.referral, None, FactData(minutes=b.minutes)),
        ),
        "overflow.returned": (
            OverflowReturned,
            "referral",
            lambda b: (b.referral, None, FactData(note=b.reason)),
        ),
        "clearing.recorded": (ClearingRecorded, "referral", _clearing),
        "proposal.opened": (ProposalOpened, "proposal", _proposal),
        "vote.cast": (
            VoteCast,
            "proposal",
            lambda b: (b.proposal, None, FactData(option=b.option)),
        ),
        # Who was a member from when: proposals count the votes of members as of their opening.
        "member.added": (MemberAdded, "member", lambda b: (b.key, None, FactData())),
        "gathering.scheduled": (GatheringScheduled, "gathering", _gathering_scheduled),
        "gathering.cancelled": (
            GatheringCancelled,
            "gathering",
            lambda b: (b.gathering, None, FactData(note=b.reason)),
        ),
        "gathering.rsvp": (
            GatheringRsvp,
            "gathering",
            lambda b: (b.gathering, None, FactData(answer=b.answer)),
        ),
    }
)

#: Kinds whose subject is the event itself, known from the head alone.
_SELF_SUBJECT = frozenset(
    {
        "need.posted",
        "offer.posted",
        "hours.logged",
        "overflow.referred",
        "proposal.opened",
        "gathering.scheduled",
    }
)


def family_of(kind: str) -> Family:
    """The read model a projected kind feeds; ``KeyError`` for a kind ``fact_of`` ignores."""
    return _READERS[kind][1]


def _without_body(fact_id: str, kind: str) -> _Read:
    return (fact_id if kind in _SELF_SUBJECT else None), None, None


def fact_of(ev: ProjectionInput) -> Fact | None:
    """The fact an event states, or ``None`` for a kind the projections ignore.

    A body of the wrong type for its kind is treated as no body: ``apply`` never raises.
    """
    entry = _READERS.get(ev.kind)
    if entry is None:
        return None
    body_type, _, read = entry
    if isinstance(ev.body, body_type):
        subject, ref, data = read(ev.body)
        subject = ev.id if ev.kind in _SELF_SUBJECT else subject
    else:
        subject, ref, data = _without_body(ev.id, ev.kind)
    return Fact(
        id=ev.id,
        pod=ev.pod,
        kind=ev.kind,
        person=ev.person,
        author=ev.author,
        role=ev.role,
        ts=ev.ts,
        subject=subject,
        ref=ref,
        data=data,
        scope=ev.scope,
    )


def erased(fact: Fact) -> Fact:
    """The fact once its body is erased: exactly what the head alone says."""
    subject, ref, data = _without_body(fact.id, fact.kind)
    return msgspec.structs.replace(fact, subject=subject, ref=ref, data=data)
