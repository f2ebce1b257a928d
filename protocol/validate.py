"""Event validation in DESIGN §2's order, as pure stages.

    size → strict JSON shape → pod & scope acceptable from this source → duplicate id
    → signature → body hash → chain (prev/seq) → authorization (roster) → body schema

Nothing here reads a clock or touches storage: time is passed in, and what the node knows
(ids, log heads, the roster) is asked through the small ``Ledger`` protocol. A node may run
the stages separately (e.g. verify signatures of a batch on worker threads); ``validate``
runs them all in order for one event.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, Protocol

import msgspec

from protocol import reasons
from protocol.envelope import (
    Envelope,
    Event,
    check_body,
    decode_envelope,
    parse_event,
    verify_event,
)
from protocol.kinds import validate_body
from protocol.logs import Chain, LogKey, LogState, classify
from protocol.reasons import RejectedEvent, invalid

#: A client's post must carry a ``ts`` within this many ms of the node's clock.
CLIENT_CLOCK_SKEW_MS = 10 * 60 * 1000


class Source(msgspec.Struct, frozen=True):
    """Where an event came from: the node's own clients, or a direct peer serving ``peer_pod``."""

    origin: Literal["client", "peer", "import"]
    peer_pod: str | None = None

    @property
    def is_client(self) -> bool:
        """True for a post by one of this node's own clients."""
        return self.origin == "client"


CLIENT = Source("client")
#: Events restored by the node's operator from an export (``kith import``): any age, kept
#: like relayed events (forks as proof, schema failures unprojected).
IMPORT = Source("import")


def from_peer(pod: str) -> Source:
    """The source for events relayed by the direct peer node of ``pod``."""
    return Source("peer", pod)


class Authorization(enum.Enum):
    """The roster's answer for one event."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"  # the author (or the roster event that admits it) is not known yet
    BLOCKED = "blocked"
    #: The author is known, but their authority ended before this position (removed, key
    #: revoked, root rotated out, or admitted only by a roster event that no longer counts).
    #: Refused from a client; kept unprojected when relayed, so that every node holds the
    #: same events and a later roster change can decide again (docs/decisions.md D38).
    ENDED = "ended"


class Outcome(enum.Enum):
    """What the node does with an event."""

    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    HOLD = "hold"  # valid and signed, waiting for a missing prev or roster event
    PROOF = "proof"  # a fork relayed by a peer: kept as proof, flagged, never projected
    REJECT = "reject"


class Ledger(Protocol):
    """What validation needs to know from the node."""

    def known(self, event_id: str) -> bool:
        """Is an event with this id already stored?"""

    def log_state(self, log: LogKey) -> LogState | None:
        """The current head of a log, or None for an empty log."""

    def authorize(self, event: Event) -> Authorization:
        """Was the author allowed to write this log position (DESIGN §3)?"""


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The result of validating one event."""

    id: str | None
    outcome: Outcome
    reason: str | None = None
    message: str = ""
    event: Event | None = None
    body: Any = None
    projectable: bool = False
    head_state: LogState | None = None  # for ``fork``: the log's current head

    @property
    def ok(self) -> bool:
        """True when the event is (now or already) stored; a fork kept as proof is stored too."""
        return self.outcome in (Outcome.ACCEPT, Outcome.DUPLICATE, Outcome.PROOF)


def check_source(event: Event, source: Source, *, now_ms: int, home_pod: str) -> None:
    """Stage 3: is this pod and scope acceptable from this source (and the ts, for clients)?"""
    head = event.head
    if source.is_client:
        if head.scope != "public" and head.pod != home_pod:
            raise RejectedEvent(
                reasons.OUT_OF_SCOPE, "this node holds pod/peers events of its own pod only"
            )
        if abs(head.ts - now_ms) > CLIENT_CLOCK_SKEW_MS:
            raise RejectedEvent(
                invalid("ts:skew"), "ts must be within 10 minutes of the node's clock"
            )
    elif source.origin == "import":
        if head.scope == "pod" and head.pod != home_pod:
            raise RejectedEvent(
                reasons.OUT_OF_SCOPE, "this node holds pod events of its own pod only"
            )
    elif head.scope == "pod":
        raise RejectedEvent(reasons.OUT_OF_SCOPE, "pod-scope events never leave their node")
    elif head.scope == "peers" and head.pod != source.peer_pod:
        raise RejectedEvent(
            reasons.OUT_OF_SCOPE, "a peer relays peers-scope events of its own pod only"
        )


def check_signature(event: Event) -> None:
    """Stage 5: strict Ed25519 over the exact head bytes."""
    if not verify_event(event):
        raise RejectedEvent(invalid("sig"), "the signature does not verify")


def check_chain(event: Event, state: LogState | None, source: Source) -> Chain:
    """Stage 7: the chain rule. Raises ``fork`` (client) or ``invalid:ts:before-prev``.

    ``APPEND``, ``GAP``, ``DUPLICATE`` and — for an event relayed by a peer — ``FORK`` are
    returned for the caller to act on.
    """
    chain = classify(state, event.head, event.id)
    if chain is Chain.APPEND:  # the common case first: one comparison
        return chain
    if chain is Chain.FORK and source.is_client:
        raise RejectedEvent(reasons.FORK, "another event already holds this place in the log")
    if chain is Chain.TS_BEFORE_PREV:
        raise RejectedEvent(invalid("ts:before-prev"), "ts is below the ts of prev")
    return chain


def check_schema(event: Event, body: Any, source: Source) -> bool:
    """Stage 9: the body against its kind's schema. Returns whether the event is projectable.

    A client posting to its home node gets ``invalid:body:<detail>``; the same event relayed
    by a peer is stored and forwarded but not projected (returns False).
    """
    if body is None:
        return True
    try:
        validate_body(event.head.kind, body)
    except RejectedEvent:
        if source.is_client:
            raise
        return False
    return True


def validate(
    data: bytes | str | Envelope,
    source: Source,
    ledger: Ledger,
    *,
    now_ms: int,
    home_pod: str,
) -> Verdict:
    """Run every stage in order for one event; never raises for bad input."""
    event: Event | None = None
    state: LogState | None = None
    try:
        env = data if isinstance(data, Envelope) else decode_envelope(data)
        event = parse_event(env)
        check_source(event, source, now_ms=now_ms, home_pod=home_pod)
        if ledger.known(event.id):
            return Verdict(
                id=event.id, outcome=Outcome.DUPLICATE, reason=reasons.DUPLICATE, event=event
            )
        check_signature(event)
        body = check_body(event)
        state = ledger.log_state(LogKey(*event.log))
        chain = check_chain(event, state, source)
        if chain is Chain.FORK:
            return Verdict(
                id=event.id,
                outcome=Outcome.PROOF,
                reason=reasons.FORK,
                event=event,
                head_state=state,
            )
        if chain is Chain.DUPLICATE:
            return Verdict(
                id=event.id, outcome=Outcome.DUPLICATE, reason=reasons.DUPLICATE, event=event
            )
        if chain is Chain.GAP:
            return Verdict(
                id=event.id, outcome=Outcome.HOLD, reason=reasons.GAP, event=event, body=body
            )
        auth = ledger.authorize(event)
        if auth is Authorization.UNKNOWN:
            if source.is_client:
                # A client's home node knows its own roster: an unknown author is no member.
                raise RejectedEvent(reasons.UNAUTHORIZED, "the author is not a member of this pod")
            return Verdict(
                id=event.id,
                outcome=Outcome.HOLD,
                reason=reasons.UNAUTHORIZED,
                event=event,
                body=body,
            )
        if auth is Authorization.NO:
            raise RejectedEvent(reasons.UNAUTHORIZED, "the author may not write this log")
        if auth is Authorization.BLOCKED and source.is_client:
            raise RejectedEvent(reasons.BLOCKED, "the author is blocked in this pod")
        if auth is Authorization.ENDED and source.is_client:
            raise RejectedEvent(
                reasons.UNAUTHORIZED, "the author was removed or the key revoked before this"
            )
        # Blocks, ended authority and schema failures change projection and delivery, never
        # what is stored.
        projectable = check_schema(event, body, source) and auth is Authorization.YES
    except RejectedEvent as exc:
        return Verdict(
            id=event.id if event is not None else None,
            outcome=Outcome.REJECT,
            reason=exc.reason,
            message=exc.message,
            event=event,
            head_state=state if exc.reason == reasons.FORK else None,
        )
    return Verdict(
        id=event.id, outcome=Outcome.ACCEPT, event=event, body=body, projectable=projectable
    )
