"""Body schemas for every event kind (DESIGN §3–§5), and the kind families.

A body is the JSON object beside a signed head. ``validate_body`` checks an already-parsed
body against its kind's schema — one ``msgspec.convert`` per body, with every constraint in
the types (``Annotated[..., msgspec.Meta(...)]``) and the few cross-field rules in
``__post_init__``.

Two rules keep old nodes working with new clients:

* an **unknown kind** is not checked at all (``validate_body`` returns ``None``);
* **unknown body fields** are ignored, never rejected: the body bytes are stored and forwarded
  as signed, so a newer client's extra fields survive every hop. The one exception is
  ``overflow.referred``, which crosses to other pods: it is closed, so that no client can
  smuggle personal details into it (docs/decisions.md D26).

Rejections carry a stable reason ``invalid:body:<detail>``:

* ``body:not-object`` — the body is not a JSON object;
* ``body:missing:<path>`` — a required field is absent, e.g. ``body:missing:window.end``;
* ``body:field:<path>`` — wrong type or a broken constraint, e.g. ``body:field:windows.0.end``;
* ``body:no-change`` — a ``need.updated`` that changes nothing.

Paths are dotted field names and list indexes. The human message names fields and
constraints only: bodies hold personal data, which must never end up in a log line.

>>> need = validate_body("need.posted", {"title": "Soup", "category": "food", "urgency": "high"})
>>> need.category, need.window
('food', None)
>>> validate_body("chat.sent", {"anything": 1}) is None
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal, get_args

import msgspec

from protocol.codec import MAX_SAFE_INT
from protocol.reasons import RejectedEvent, invalid
from protocol.sealed import SealedField

__all__ = [
    "ACTION_REASONS",
    "ADVISORY_REASONS",
    "BODY_TYPES",
    "COORDINATOR_READ_KINDS",
    "KEY_PATTERN",
    "KNOWN_CATEGORIES",
    "KNOWN_KINDS",
    "LEDGER_KINDS",
    "MAX_HOPS",
    "REDACTABLE_KINDS",
    "ROSTER_KINDS",
    "ActionReason",
    "AdvisoryReason",
    "BlockAdvised",
    "Body",
    "Category",
    "ClaimAccepted",
    "ClaimMade",
    "ClaimWithdrawn",
    "ClearingRecorded",
    "ErasureConfirmed",
    "EventId",
    "EventRedacted",
    "FulfilmentRecorded",
    "GatheringCancelled",
    "GatheringKind",
    "GatheringRsvp",
    "GatheringScheduled",
    "HoursConfirmed",
    "HoursLogged",
    "InviteApproval",
    "InviteCreated",
    "InviteRevoked",
    "Key",
    "MemberAdded",
    "MemberBlocked",
    "MemberKeyAdded",
    "MemberKeyRevoked",
    "MemberRemoved",
    "MemberUnblocked",
    "NeedPosted",
    "NeedUpdated",
    "NeedWithdrawn",
    "NodeKey",
    "OfferPosted",
    "OfferWithdrawn",
    "OverflowAssigned",
    "OverflowFulfilled",
    "OverflowOffered",
    "OverflowReferred",
    "OverflowReturned",
    "PodCreated",
    "PodRootRotated",
    "ProfileSet",
    "ProposalOpened",
    "ReferralSummary",
    "ReportFiled",
    "ReportResolved",
    "Role",
    "RsvpAnswer",
    "Scope",
    "TimeWindow",
    "Urgency",
    "VoteCast",
    "is_redactable",
    "kind_matches",
    "shown_category",
    "validate_body",
]

# --- shared types -------------------------------------------------------------------------

#: Canonical unpadded base64url of 32 bytes: 42 free characters, then one whose low 2 bits
#: are 0 (the spare bits of the last sextet). Keys and event ids both have this shape.
KEY_PATTERN = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$(?!\n)"  # `$` alone admits a final newline

#: An Ed25519 (or X25519) public key, canonical base64url.
Key = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
#: An event id: base64url(SHA-256(head bytes)).
EventId = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]

#: The kinds of help this node knows by name (the seeds' logistical, emotional and navigational
#: ones). A category is any short lower-case word on the wire, so that a category added later
#: does not make older nodes drop the event: a node shows one it does not know as ``"other"``
#: (``shown_category``) and keeps and relays the original (docs/decisions.md D31).
KNOWN_CATEGORIES: tuple[str, ...] = (
    "food",
    "groceries",
    "ride",
    "errand",
    "repair",
    "housing",
    "childcare",
    "eldercare",
    "health",
    "health_accompaniment",  # a doula, a companion to the clinic
    "emotional_support",
    "peer_support",
    "information",  # finding out: where, who, how
    "navigation",  # benefits, forms, bureaucracy
    "advocacy",
    "goods",
    "money",
    "tech",
    "translation",
    "pets",
    "other",
)
#: What kind of help a need or offer is about: a known category or a newer one (see above).
Category = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$(?!\n)")]


def shown_category(category: str) -> str:
    """The category as this node shows it: itself if known here, else ``"other"``.

    >>> shown_category("advocacy"), shown_category("bike_repair")
    ('advocacy', 'other')
    """
    return category if category in KNOWN_CATEGORIES else "other"


Urgency = Literal["low", "normal", "high", "urgent"]
Role = Literal["member", "coordinator"]
Scope = Literal["pod", "peers", "public"]

#: Milliseconds since the Unix epoch (JSON-safe integer).
Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
#: A log position from which something takes effect (the first affected seq).
SeqFrom = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
#: The last valid log position; 0 means "nothing in that log".
SeqThrough = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
#: Time given or received. Whole minutes, never float hours: the time bank must be exact
#: and zero-sum, and floats do not add up the same way on every node.
Minutes = Annotated[int, msgspec.Meta(ge=1, le=24 * 60)]
MinutesEstimate = Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)]

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Details = Annotated[str, msgspec.Meta(max_length=2000)]
Note = Annotated[str, msgspec.Meta(max_length=500)]
Reason = Annotated[str, msgspec.Meta(max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
#: A coarse area (a neighbourhood, a block) — never an address; addresses are sealed.
Area = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
#: A language a person speaks, as a BCP-47-like tag (``es``, ``pt-BR``, ``zh-Hant-TW``): a
#: primary subtag of 2–8 letters, then subtags of 1–8 letters or digits. Its shape only is
#: checked (no registry: a pod may speak a language no list has yet).
LanguageTag = Annotated[
    str, msgspec.Meta(max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$(?!\n)")
]


class _BodyRule(ValueError):
    """A cross-field rule broken in ``__post_init__``.

    msgspec turns it into a ``ValidationError`` (keeping it as ``__cause__``); ``field`` is the
    offending field relative to the struct, ``detail`` replaces the whole detail when no single
    field is at fault.
    """

    def __init__(self, message: str, *, field: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.detail = detail


class TimeWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A span of time in ms since the epoch: when help is needed, or when someone is available."""

    start: Millis
    end: Millis

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise _BodyRule("`end` must be after `start`")


class Body(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every body schema. Unknown fields are ignored (not forbidden) on purpose."""


# --- roster (public scope; keys and roles only) ------------------------------------------


class PodCreated(Body, frozen=True, kw_only=True):
    """The pod is born: signed by its genesis root key, whose public key is the pod's id."""

    name: Name


class PodRootRotated(Body, frozen=True, kw_only=True):
    """The current root hands the pod's root authority to ``new_key``; the pod id stays."""

    new_key: Key


class NodeKey(Body, frozen=True, kw_only=True):
    """The root names the key of the node that serves the pod; it acts as a coordinator."""

    key: Key


class MemberAdded(Body, frozen=True, kw_only=True):
    """A person joins the pod with one device ``key``, a ``role`` and an X25519 ``box_key``

    to which sealed fields (an address, referral details) are encrypted for them.
    """

    key: Key
    role: Role
    box_key: Key
    #: The ``invite.created`` this member joined by, if any: an invite is used once a
    #: ``member.added`` names it (docs/invites.md).
    invite: EventId | None = None


#: Why a coordinator removed, blocked or unblocked someone: one word from a fixed list, never
#: free text — roster events are public, and a sentence about a person would publish it. A note
#: in words goes in pod scope, with the report it resolves (docs/moderation.md).
ActionReason = Literal[
    "harassment",
    "abuse",
    "threats",
    "fraud",
    "spam",
    "safety",
    "left",
    "asked",
    "resolved",
    "mistake",
    "other",
]
ACTION_REASONS: tuple[str, ...] = get_args(ActionReason)


class MemberRemoved(Body, frozen=True, kw_only=True):
    """A member leaves or is removed; from seq ``effective[scope]`` of each of their logs on,

    their events are no longer authorized. Earlier events stay valid.
    """

    key: Key
    effective: Annotated[dict[Scope, SeqFrom], msgspec.Meta(min_length=1)]
    reason: ActionReason | None = None


class MemberKeyAdded(Body, frozen=True, kw_only=True):
    """A member links another device ``key`` to themselves; projections count people, not keys.

    Signed by the member (one of their active keys) or by a coordinator; a coordinator who
    recovers a member who lost every device says why in ``reason`` (docs/recovery.md).
    """

    member: Key
    key: Key
    reason: Note | None = None

    def __post_init__(self) -> None:
        if self.key == self.member:
            raise _BodyRule("must differ from `member`", field="key")


class MemberKeyRevoked(Body, frozen=True, kw_only=True):
    """A device key is lost or retired: its events up to seq ``valid_through[scope]`` stay valid."""

    key: Key
    valid_through: dict[Scope, SeqThrough]
    reason: Note | None = None


class MemberBlocked(Body, frozen=True, kw_only=True):
    """A coordinator blocks a key from seq ``effective[scope]`` on (harassment, abuse).

    Its later events are stored but neither projected nor delivered to clients.
    """

    key: Key
    effective: Annotated[dict[Scope, SeqFrom], msgspec.Meta(min_length=1)]
    reason: ActionReason | None = None
    #: The neighbour's ``block.advised`` this block adopts, when it adopts one.
    advisory: EventId | None = None


class MemberUnblocked(Body, frozen=True, kw_only=True):
    """A coordinator lifts a block from seq ``effective[scope]`` on: later events count again.

    Events from the block's position up to the unblock's stay unprojected.
    """

    key: Key
    effective: Annotated[dict[Scope, SeqFrom], msgspec.Meta(min_length=1)]
    reason: ActionReason | None = None


# --- people -------------------------------------------------------------------------------


class ProfileSet(Body, frozen=True, kw_only=True):
    """A member's profile within the pod (pod scope); replaces the previous one. Redactable."""

    name: Name | None = None
    pronouns: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    #: The languages they speak, most fluent first (at most 8).
    languages: Annotated[list[LanguageTag], msgspec.Meta(max_length=8)] | None = None
    contact: SealedField | None = None
    about: Note | None = None


# --- needs and offers ---------------------------------------------------------------------


class NeedPosted(Body, frozen=True, kw_only=True):
    """Someone asks for help.

    ``personal`` holds the need's personal fields (address, phone, notes: a JSON object) sealed
    to the pod's coordinators and the author; the client that accepts a claim re-seals them to
    the helper (``claim.accepted.personal``). ``referral`` is set on a need that a neighbour
    pod's referral became here (posted by the node when the referral is assigned to this pod).
    """

    title: Title
    category: Category
    urgency: Urgency
    details: Details | None = None
    window: TimeWindow | None = None
    area: Area | None = None
    minutes_estimate: MinutesEstimate | None = None
    personal: SealedField | None = None
    referral: EventId | None = None


class NeedUpdated(Body, frozen=True, kw_only=True):
    """The need's author (or a coordinator) changes a need; absent or null fields stay unchanged."""

    need: EventId
    title: Title | None = None
    details: Details | None = None
    category: Category | None = None
    urgency: Urgency | None = None
    window: TimeWindow | None = None
    area: Area | None = None
    minutes_estimate: MinutesEstimate | None = None

    def __post_init__(self) -> None:
        changes = (
            self.title,
            self.details,
            self.category,
            self.urgency,
            self.window,
            self.area,
            self.minutes_estimate,
        )
        if all(change is None for change in changes):
            raise _BodyRule("a need update must change at least one field", detail="no-change")


class NeedWithdrawn(Body, frozen=True, kw_only=True):
    """The need is no longer wanted (met elsewhere, cancelled)."""

    need: EventId
    reason: Reason | None = None


class OfferPosted(Body, frozen=True, kw_only=True):
    """Someone offers help of a ``category``, during ``windows``, to up to ``capacity`` needs."""

    title: Title
    category: Category
    details: Details | None = None
    windows: Annotated[tuple[TimeWindow, ...], msgspec.Meta(max_length=16)] = ()
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    area: Area | None = None


class OfferWithdrawn(Body, frozen=True, kw_only=True):
    """The offer is no longer open."""

    offer: EventId


# --- claims, fulfilment and the time bank (ledgers: never redactable) -------------------


class ClaimMade(Body, frozen=True, kw_only=True):
    """A helper says "I can do this" for a need, optionally under one of their offers."""

    need: EventId
    offer: EventId | None = None
    note: Note | None = None


class ClaimWithdrawn(Body, frozen=True, kw_only=True):
    """The helper takes their claim back."""

    claim: EventId


class ClaimAccepted(Body, frozen=True, kw_only=True):
    """The need's author or a coordinator picks a claim: the only thing that assigns a need.

    ``personal`` is the need's personal fields re-sealed to the accepted helper (and the
    coordinators) by the accepting client; the node never sees them in clear.
    """

    claim: EventId
    need: EventId
    personal: SealedField | None = None


class FulfilmentRecorded(Body, frozen=True, kw_only=True):
    """The need was met, optionally through a claim and with the time it took."""

    need: EventId
    claim: EventId | None = None
    minutes: Minutes | None = None
    note: Note | None = None


class HoursLogged(Body, frozen=True, kw_only=True):
    """One side of a time-bank entry: ``giver`` gave ``minutes`` to ``receiver``.

    Pending until the other side confirms it (double entry, zero-sum).
    """

    giver: Key
    receiver: Key
    minutes: Minutes
    need: EventId | None = None
    note: Note | None = None

    def __post_init__(self) -> None:
        if self.receiver == self.giver:
            raise _BodyRule("must differ from `giver`", field="receiver")


class HoursConfirmed(Body, frozen=True, kw_only=True):
    """The other side of an ``hours.logged`` entry agrees; the entry now counts."""

    entry: EventId


# --- collective decisions -----------------------------------------------------------------


class ProposalOpened(Body, frozen=True, kw_only=True):
    """A question for the pod (e.g. how to share out food); votes count until ``closes_at``."""

    title: Title
    options: Annotated[tuple[Title, ...], msgspec.Meta(min_length=2, max_length=10)]
    closes_at: Millis
    details: Details | None = None

    def __post_init__(self) -> None:
        if len(set(self.options)) != len(self.options):
            raise _BodyRule("options must be unique", field="options")


class VoteCast(Body, frozen=True, kw_only=True):
    """A member picks ``option`` (an index into the proposal's options)."""

    proposal: EventId
    option: Annotated[int, msgspec.Meta(ge=0, le=9)]


# --- gatherings: circles, support groups, skill shares, food distributions ---------------

#: What a gathering is for.
GatheringKind = Literal[
    "healing_circle", "peer_support", "skill_share", "food_distribution", "meeting", "other"
]
#: A member's answer to a gathering.
RsvpAnswer = Literal["yes", "no", "maybe"]
#: Where a gathering meets, said in public: a hall, a park, "online" — never a home address.
Place = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class GatheringScheduled(Body, frozen=True, kw_only=True):
    """A member schedules a gathering of the pod during ``window``. Redactable.

    The place is either ``place`` (public text) or ``place_sealed`` (a JSON string sealed to
    the pod's members, for a place that must not be public, e.g. someone's home) — at most one.
    ``capacity`` is shown, never enforced: nobody's yes is refused.
    """

    title: Title
    kind: GatheringKind
    window: TimeWindow
    place: Place | None = None
    place_sealed: SealedField | None = None
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    details: Details | None = None

    def __post_init__(self) -> None:
        if self.place is not None and self.place_sealed is not None:
            raise _BodyRule("give `place` or `place_sealed`, not both", field="place_sealed")


class GatheringCancelled(Body, frozen=True, kw_only=True):
    """The gathering's organiser (or a coordinator) calls it off."""

    gathering: EventId
    reason: Reason | None = None


class GatheringRsvp(Body, frozen=True, kw_only=True):
    """A member says whether they come; a person's latest answer (by ``(ts, id)``) counts."""

    gathering: EventId
    answer: RsvpAnswer


# --- overflow between pods (coordinators or the node key, never the requester) -----------


class ReferralSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What neighbour pods learn of a referred need: the kind of help, how urgent, roughly where

    and when — and nothing else. No person, no free text: a title or a note may name someone,
    so the summary is closed (an unknown field is refused) and built by the node from the need.
    """

    category: Category
    urgency: Urgency
    area: Area | None = None
    window: TimeWindow | None = None
    minutes_estimate: MinutesEstimate | None = None


#: Most pods a referral may pass through: ``hops_left`` starts at most here.
MAX_HOPS = 8


class OverflowReferred(
    Body, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """A need this pod cannot meet is passed to neighbour pods as a redacted ``summary``.

    ``need`` is the id of the need in the referring pod (an opaque hash: the need itself is
    pod scope and never leaves its pod). A re-referral names the referral it passes on as
    ``parent`` and lists in ``path`` the pods the need already went through, origin first, so
    that it never comes back to one of them. Closed like the summary: the full details travel
    only sealed, on assignment (``overflow.assigned``).
    """

    need: EventId
    summary: ReferralSummary
    hops_left: Annotated[int, msgspec.Meta(ge=0, le=MAX_HOPS)]
    expires_at: Millis
    parent: EventId | None = None
    path: Annotated[tuple[Key, ...], msgspec.Meta(max_length=MAX_HOPS)] = ()

    def __post_init__(self) -> None:
        if (self.parent is None) != (not self.path):
            raise _BodyRule("a re-referral names both its `parent` and its `path`", field="path")
        if len(set(self.path)) != len(self.path):
            raise _BodyRule("a pod appears twice on the path", field="path")


class OverflowOffered(Body, frozen=True, kw_only=True):
    """A neighbour pod's coordinator says the pod can take a referral."""

    referral: EventId
    note: Note | None = None


class OverflowAssigned(Body, frozen=True, kw_only=True):
    """The origin pod gives a referral to ``to_pod``, with the need's details sealed to that

    pod's coordinators' ``box_key``s (and no one else).
    """

    referral: EventId
    to_pod: Key
    offer: EventId | None = None
    details: SealedField | None = None


class OverflowFulfilled(Body, frozen=True, kw_only=True):
    """The pod a referral was assigned to met the need; ``minutes`` is the time it gave."""

    referral: EventId
    minutes: MinutesEstimate | None = None


class OverflowReturned(Body, frozen=True, kw_only=True):
    """The assigned pod could not meet the need and hands the referral back."""

    referral: EventId
    reason: Reason | None = None


class ClearingRecorded(Body, frozen=True, kw_only=True):
    """One pod's side of an inter-pod time-bank entry: positive ``minutes`` this pod gave

    ``peer_pod``, negative minutes it received. Each pod records its own side.
    """

    peer_pod: Key
    minutes: Annotated[int, msgspec.Meta(ge=-100_000, le=100_000)]
    referral: EventId | None = None

    def __post_init__(self) -> None:
        if self.minutes == 0:
            raise _BodyRule("must not be zero", field="minutes")


# --- safety and erasure -------------------------------------------------------------------


class ReportFiled(Body, frozen=True, kw_only=True):
    """A member reports a person or an event to the coordinators (readable by them only)."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    about: Key | None = None
    event: EventId | None = None
    sealed: SealedField | None = None


class ReportResolved(Body, frozen=True, kw_only=True):
    """A coordinator closes a report (pod scope; readable like the report it names).

    ``action`` names the roster event the coordinators took on it (a block, a removal), if any.
    """

    report: EventId
    note: Note | None = None
    action: EventId | None = None


#: Why a pod advises its neighbours of a block: one word from a fixed list, never free text,
#: so that an advisory can carry no personal content across pods (docs/decisions.md D42).
AdvisoryReason = Literal["harassment", "abuse", "threats", "fraud", "spam", "other"]
ADVISORY_REASONS: tuple[str, ...] = get_args(AdvisoryReason)


class BlockAdvised(Body, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A pod's coordinator tells its direct peers that the pod blocked ``key`` (peers scope).

    Advice only: a neighbour's coordinators see it and adopt it with their own
    ``member.blocked`` or ignore it; no node ever applies it by itself. Closed (an unknown field
    is refused) like a referral, so that it carries a key, a reason word and a reference only.
    """

    key: Key
    reason: AdvisoryReason
    blocked: EventId | None = None


class EventRedacted(Body, frozen=True, kw_only=True):
    """The target's body is erased on every node; its head and signature stay in the log."""

    target: EventId


class ErasureConfirmed(Body, frozen=True, kw_only=True):
    """A node's receipt: it holds no body of ``target``, because of the redaction ``redaction``.

    Signed by the confirming pod's node key in its own ``peers`` scope, so that it reaches its
    direct peers, the erasing pod among them. Two ids and nothing else: no personal data.
    """

    redaction: EventId
    target: EventId


# --- invites ------------------------------------------------------------------------------

#: Who lets an invited newcomer in: the node at once (``auto``), or a coordinator's approval.
InviteApproval = Literal["auto", "coordinator"]


class InviteCreated(Body, frozen=True, kw_only=True):
    """A coordinator (or the node) invites someone: a one-time code, held by whoever made it.

    ``code_hash`` is base64url(SHA-256(``"kith-invite/1\\n" + code``)): the node learns the
    code only when it is redeemed (docs/invites.md). Counts only when a coordinator, the node
    or the root signed it; an invite only ever makes a member, never a coordinator.
    """

    code_hash: Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
    expires_at: Millis
    approve: InviteApproval


class InviteRevoked(Body, frozen=True, kw_only=True):
    """A coordinator withdraws an invite (or declines the request waiting on it)."""

    invite: EventId


# --- the kind table -----------------------------------------------------------------------

#: Every kind this node knows, mapped to its body schema.
BODY_TYPES: Mapping[str, type[Body]] = MappingProxyType(
    {
        "pod.created": PodCreated,
        "pod.root_rotated": PodRootRotated,
        "node.key": NodeKey,
        "member.added": MemberAdded,
        "member.removed": MemberRemoved,
        "member.key_added": MemberKeyAdded,
        "member.key_revoked": MemberKeyRevoked,
        "member.blocked": MemberBlocked,
        "member.unblocked": MemberUnblocked,
        "profile.set": ProfileSet,
        "need.posted": NeedPosted,
        "need.updated": NeedUpdated,
        "need.withdrawn": NeedWithdrawn,
        "offer.posted": OfferPosted,
        "offer.withdrawn": OfferWithdrawn,
        "claim.made": ClaimMade,
        "claim.withdrawn": ClaimWithdrawn,
        "claim.accepted": ClaimAccepted,
        "fulfilment.recorded": FulfilmentRecorded,
        "hours.logged": HoursLogged,
        "hours.confirmed": HoursConfirmed,
        "proposal.opened": ProposalOpened,
        "vote.cast": VoteCast,
        "gathering.scheduled": GatheringScheduled,
        "gathering.cancelled": GatheringCancelled,
        "gathering.rsvp": GatheringRsvp,
        "overflow.referred": OverflowReferred,
        "overflow.offered": OverflowOffered,
        "overflow.assigned": OverflowAssigned,
        "overflow.fulfilled": OverflowFulfilled,
        "overflow.returned": OverflowReturned,
        "clearing.recorded": ClearingRecorded,
        "report.filed": ReportFiled,
        "report.resolved": ReportResolved,
        "block.advised": BlockAdvised,
        "event.redacted": EventRedacted,
        "erasure.confirmed": ErasureConfirmed,
        "invite.created": InviteCreated,
        "invite.revoked": InviteRevoked,
    }
)
KNOWN_KINDS: frozenset[str] = frozenset(BODY_TYPES)


def kind_matches(pattern: str, kind: str) -> bool:
    """Does ``kind`` match ``pattern``: an exact kind, a family ``"need.*"``, or ``"*"`` (all)?

    >>> kind_matches("need.*", "need.posted"), kind_matches("need.*", "needs.posted")
    (True, False)
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return kind.startswith(pattern[:-1])
    return kind == pattern


def _known(*patterns: str) -> frozenset[str]:
    return frozenset(k for k in KNOWN_KINDS if any(kind_matches(p, k) for p in patterns))


_REDACTABLE_PATTERNS = (
    "need.*",
    "offer.*",
    "profile.set",
    "report.filed",
    "report.resolved",  # a coordinator's note on a report: free text
    "gathering.scheduled",  # a title, details and a place: content (docs/decisions.md D31)
)

#: Kinds that define who may sign what; public scope, synced first.
ROSTER_KINDS = _known("pod.created", "pod.root_rotated", "node.key", "member.*")
#: Withdrawals change state and carry only a reference (and a short reason): erasing one
#: would silently re-open what it closed, so they are not redactable (docs/decisions.md).
_NOT_REDACTABLE_SUFFIX = ".withdrawn"
#: Kinds that are records of what happened between people: never redactable.
LEDGER_KINDS = _known("hours.*", "claim.*", "fulfilment.*")
#: Kinds readable by the pod's coordinators only (DESIGN §4).
COORDINATOR_READ_KINDS: frozenset[str] = frozenset({"report.filed", "report.resolved"})


def is_redactable(kind: str) -> bool:
    """May ``event.redacted`` erase the body of an event of this kind?

    Decided by family, not by the known-kind list, so that a node that does not know a newer
    ``need.*`` kind still agrees with one that does — erasure must converge across nodes.
    """
    if kind.endswith(_NOT_REDACTABLE_SUFFIX):
        return False
    return any(kind_matches(p, kind) for p in _REDACTABLE_PATTERNS)


#: Known kinds whose bodies ``event.redacted`` may erase (see ``is_redactable``).
REDACTABLE_KINDS = frozenset(k for k in KNOWN_KINDS if is_redactable(k))


# --- validation ---------------------------------------------------------------------------

_AT = re.compile(r" - at `(?:key` in `)?\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_INDEX = re.compile(r"\[(\d+)\]")


def _dotted(msgspec_path: str) -> str:
    """``.windows[0].end`` → ``windows.0.end``; a dict entry ``[...]`` names its dict."""
    path = _INDEX.sub(r".\1", msgspec_path.replace("[...]", ""))
    return path.lstrip(".")


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path and field else path or field


def _constraint(what: str) -> str:
    """A constraint in words, without the value that broke it (it may be personal data)."""
    if what.startswith("Expected "):
        return "e" + what[1:]  # e.g. "expected `str` of length <= 120": schema words only
    if what.startswith("Invalid enum value"):
        return "not one of the allowed values"  # msgspec quotes the value here
    return "not allowed here"  # e.g. an unknown field inside a sealed value (named by the body)


def _explain(exc: msgspec.ValidationError) -> tuple[str, str]:
    """The stable detail and a human message for a schema failure."""
    text = str(exc)
    at = _AT.search(text)
    what = text[: at.start()] if at else text
    path = _dotted(at["path"]) if at else ""
    rule = exc.__cause__
    if isinstance(rule, _BodyRule):
        if rule.detail:
            return rule.detail, str(rule)
        field = _join(path, rule.field)
        return f"field:{field}", f"`{field}`: {rule}"
    if not path and what.startswith("Expected `object`"):
        return "not-object", "the body must be a JSON object"
    missing = _MISSING.match(what)
    if missing:
        field = _join(path, missing["field"])
        return f"missing:{field}", f"required field `{field}` is missing"
    unknown = _UNKNOWN.match(what)
    if unknown and unknown["field"] in _SCHEMA_WORDS:
        # Only closed structs (a referral's summary, a sealed value) refuse unknown fields. A
        # field name is named only if it is a schema word (``title`` in a referral): any other
        # name was made up by the sender and may itself be personal data.
        field = _join(path, unknown["field"])
        return f"field:{field}", f"`{field}` is not allowed here"
    where = path or "$"
    return f"field:{where}", f"`{where}`: {_constraint(what)}"


_SCHEMA_STRUCTS: tuple[type[msgspec.Struct], ...] = (
    *BODY_TYPES.values(),
    ReferralSummary,
    TimeWindow,
)
#: Every field name of every body schema: the only unknown-field names a message may repeat.
_SCHEMA_WORDS: frozenset[str] = frozenset(
    name for struct in _SCHEMA_STRUCTS for name in struct.__struct_fields__
)


def validate_body(kind: str, value: object) -> Body | None:
    """Check an already-parsed JSON body against the schema of ``kind``.

    Returns the typed body, or ``None`` for a kind this node does not know (such events are
    kept and forwarded, never rejected). Integers must be JSON integers: ``true`` or ``1.0``
    where an int is due is refused.

    Raises ``RejectedEvent`` with reason ``invalid:body:<detail>`` (see the module docstring).

    >>> try:
    ...     validate_body("vote.cast", {"proposal": "A" * 43, "option": 1.0})
    ... except RejectedEvent as exc:
    ...     print(exc.reason, "/", exc.message)
    invalid:body:field:option / `vote.cast` body: `option`: expected `int`, got `float`
    """
    body_type = BODY_TYPES.get(kind)
    if body_type is None:
        return None
    try:
        return msgspec.convert(value, body_type, strict=True)
    except msgspec.ValidationError as exc:
        detail, message = _explain(exc)
        # ``from None``: msgspec's own message may quote the body (personal data); keep it out
        # of tracebacks and logs.
        raise RejectedEvent(invalid(f"body:{detail}"), f"`{kind}` body: {message}") from None
