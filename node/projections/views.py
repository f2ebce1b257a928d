"""What the read models look like from outside: msgspec structs served as JSON by the API.

Every field is always present (``null`` rather than absent), so a client can rely on the shape.
Statuses that depend on the clock (``expired``) are set at read time, never stored.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "REMOVED",
    "ClaimStatus",
    "ClaimView",
    "EntryStatus",
    "FulfilmentView",
    "HoursEntryView",
    "MemberBalance",
    "NeedOverflow",
    "NeedStatus",
    "NeedView",
    "OfferStatus",
    "OfferView",
    "TimebankView",
    "Window",
]

#: What an erased free-text field (a title, details) reads as.
REMOVED = "[removed]"

NeedStatus = Literal["open", "claimed", "fulfilled", "withdrawn", "expired"]
ClaimStatus = Literal["pending", "accepted", "withdrawn", "declined", "lapsed"]
OfferStatus = Literal["open", "withdrawn", "expired"]
EntryStatus = Literal["pending", "confirmed"]


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """A span of time in ms since the epoch."""

    start: int
    end: int


class ClaimView(msgspec.Struct, frozen=True, kw_only=True):
    """Someone's offer to meet a need, and where it stands."""

    id: str
    person: str
    ts: int
    status: ClaimStatus


class FulfilmentView(msgspec.Struct, frozen=True, kw_only=True):
    """The fulfilment that counts for a need: who recorded it, when, and the time it took."""

    id: str
    person: str
    minutes: int | None
    ts: int


class NeedOverflow(msgspec.Struct, frozen=True, kw_only=True):
    """Where a need stands with neighbour pods: its latest referral, that referral's state now
    (``lapsed`` included) and the pod it was assigned to. Read-time, never stored."""

    referral: str
    state: str
    to_pod: str | None


class NeedView(msgspec.Struct, frozen=True, kw_only=True):
    """A need as the pod sees it. ``author`` and ``helper`` are people, not device keys.

    A redacted need keeps its history (claims, fulfilment) but not its content: ``title`` and
    ``details`` read ``"[removed]"``, the other content fields ``null``.
    """

    id: str
    pod: str
    author: str
    ts: int
    status: NeedStatus
    title: str
    details: str | None
    category: str | None
    urgency: str | None
    area: str | None
    window: Window | None
    minutes_estimate: int | None
    claims: tuple[ClaimView, ...]
    accepted_claim: str | None
    helper: str | None
    fulfilment: FulfilmentView | None
    redacted: bool
    scope: str = "pod"
    referral: str | None = None
    overflow: NeedOverflow | None = None


class OfferView(msgspec.Struct, frozen=True, kw_only=True):
    """An offer of help. It is ``expired`` once every one of its windows has ended."""

    id: str
    pod: str
    author: str
    ts: int
    status: OfferStatus
    title: str
    details: str | None
    category: str | None
    windows: tuple[Window, ...] | None
    capacity: int | None
    area: str | None
    redacted: bool
    scope: str = "pod"


class HoursEntryView(msgspec.Struct, frozen=True, kw_only=True):
    """One time-bank entry: ``giver`` gave ``minutes`` to ``receiver`` (both people)."""

    id: str
    giver: str
    receiver: str
    minutes: int
    logged_by: str
    ts: int
    status: EntryStatus


class MemberBalance(msgspec.Struct, frozen=True, kw_only=True):
    """A person's confirmed time-bank account; ``balance_minutes = given - received``."""

    person: str
    balance_minutes: int
    given_minutes: int
    received_minutes: int
    over_limit: bool


class TimebankView(msgspec.Struct, frozen=True, kw_only=True):
    """A pod's time bank: balances from confirmed entries, and the entries awaiting the other side.

    Double entry makes ``total_minutes_balance`` 0 always; it is reported so that anyone can
    check. ``over_limit`` flags a balance below ``-limit_minutes``; nothing is ever blocked.
    """

    pod: str
    members: tuple[MemberBalance, ...]
    pending: tuple[HoursEntryView, ...]
    total_minutes_balance: int
    limit_minutes: int | None
