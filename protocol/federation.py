"""Federation between pods' nodes: frames and the sans-I/O sync machine (``/v1/federation``).

Frames are JSON arrays, one per websocket message (text or binary), decoded by one msgspec
``Decoder`` of tagged ``array_like`` structs (see ``docs/federation.md``)::

    ["HELLO", {"v": 1, "pod", "node_key", "nonce", "store", "cursor", "roster": [envelope, ...]}]
    ["AUTH", sig, expiry_ms]
    ["WANT", {"after": cursor | null, "store": id | null, "vector": [[pod, author, scope, seq,
              id], ...] | null}]
    ["EVENTS", upto, [envelope, ...]]
    ["CAUGHT-UP", upto, [[pod, author, scope, seq], ...]]      # forks found while planning
    ["ACK", upto, {reason: count}]
    ["NOTICE", reason, message]

One connection carries two independent directions: each side *receives* what it asked for
with ``WANT`` and *sends* what the other asked for. The machine is pure: no sockets, no
clock (``now_ms`` is passed in), no storage. It turns received bytes into ``SyncEvent``\\ s
and the adapter's decisions into frames (``data_to_send``); any move not in its transition
tables is a ``LocalProtocolError`` (a bug in the adapter) or, for the peer, a
``ConnectionFailed`` event plus a NOTICE frame with the reason.

>>> from protocol.crypto import SigningKey
>>> a_root, b_root = SigningKey.from_seed(b"a" * 32), SigningKey.from_seed(b"b" * 32)
>>> a_node, b_node = SigningKey.from_seed(b"A" * 32), SigningKey.from_seed(b"B" * 32)
>>> a = FederationConnection(Role.DIALER, Identity(a_root.public_b64, a_node, "s" * 22),
...                          nonce="n" * 22, cursor=0)
>>> b = FederationConnection(Role.LISTENER, Identity(b_root.public_b64, b_node, "t" * 22),
...                          nonce="m" * 22, cursor=0)
>>> def pump(src, dst):
...     return [ev for frame in src.data_to_send() for ev in dst.receive(frame, now_ms=0)]
>>> a.start(); b.start()
>>> [type(e).__name__ for e in pump(a, b) + pump(b, a)]
['PeerHello', 'PeerHello']
>>> a.accept_peer(now_ms=0) + b.accept_peer(now_ms=0)
[]
>>> [type(e).__name__ for e in pump(a, b) + pump(b, a)]
['Authenticated', 'Authenticated']
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Final, Literal, TypeVar

import msgspec

from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import KEY_PATTERN, MAX_SAFE_INT, SIG_PATTERN
from protocol.logs import LogKey, LogState
from protocol.reasons import KithError, invalid
from protocol.tokens import MAX_TTL_MS, sign_auth, verify_auth

#: The protocol version a HELLO names; a node refuses any other.
VERSION: Final = 1
#: EVENTS frames a sender may have in flight without an ACK; one more is flooding.
WINDOW: Final = 8
#: Events in one EVENTS frame.
MAX_EVENTS_PER_FRAME: Final = 1000
#: Entries in one WANT vector (one per log; ~150 bytes each, so a vector fits one frame).
MAX_VECTOR: Final = 25_000
#: Roster envelopes a HELLO may carry to attest its node key.
MAX_ROSTER: Final = 64
#: The largest frame either side accepts (the websocket message limit of ``kith serve``).
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
#: How long an AUTH signature is valid.
AUTH_TTL_MS: Final = 60_000
#: First line of the handshake transcript whose hash every AUTH signs.
TRANSCRIPT_PREFIX: Final = b"kith-federation/1\n"

Key = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
Sig = Annotated[str, msgspec.Meta(pattern=SIG_PATTERN)]
Nonce = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{16,128}$(?!\n)")]
Scope = Literal["pod", "peers", "public"]
# Bounded like every integer of an envelope: a peer's number must fit the store (and JSON).
Cursor = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
_S = TypeVar("_S", bound=enum.Enum)


class LocalProtocolError(KithError):
    """The adapter asked the machine for a move its state does not allow (a bug, not input)."""


class Role(enum.Enum):
    """Which side opened the websocket."""

    DIALER = "dialer"
    LISTENER = "listener"


class Identity(msgspec.Struct, frozen=True):
    """Who we are: our pod, our node's signing key, and our store's id."""

    pod: str
    key: SigningKey
    store: str


# -- frames -------------------------------------------------------------------------------


class HelloInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The second element of HELLO. Unknown fields are ignored (newer nodes may add some)."""

    v: int
    pod: Key
    node_key: Key
    nonce: Nonce
    store: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    cursor: Cursor
    roster: Annotated[tuple[msgspec.Raw, ...], msgspec.Meta(max_length=MAX_ROSTER)] = ()
    #: ``link`` (kept open, live) or ``once`` (``kith sync``: catch up both ways, then close;
    #: the listener keeps any standing link to that pod as it is).
    mode: Literal["link", "once"] = "link"


class Hello(msgspec.Struct, frozen=True, array_like=True, tag="HELLO"):
    """Introduce a node: its pod, node key, fresh nonce, store id and roster attestation."""

    info: HelloInfo


class Auth(msgspec.Struct, frozen=True, array_like=True, tag="AUTH"):
    """The node key's signature over the handshake transcript's hash."""

    sig: Sig
    expiry_ms: Cursor


class VectorEntry(msgspec.Struct, frozen=True, array_like=True):
    """One log the receiver holds: ``[pod, author, scope, seq, head id]``."""

    pod: Key
    author: Key
    scope: Scope
    seq: Seq
    id: Key

    @property
    def log(self) -> LogKey:
        """The log it names."""
        return LogKey(self.pod, self.author, self.scope)


class LogPosition(msgspec.Struct, frozen=True, array_like=True):
    """One position in a log: ``[pod, author, scope, seq]``."""

    pod: Key
    author: Key
    scope: Scope
    seq: Seq


class WantRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the receiver asks for: everything after a checkpoint, or what a vector lacks."""

    after: Cursor | None = None
    store: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    vector: Annotated[tuple[VectorEntry, ...], msgspec.Meta(max_length=MAX_VECTOR)] | None = None


class Want(msgspec.Struct, frozen=True, array_like=True, tag="WANT"):
    """Start (or restart, for a repair) the catch-up of the other side's events."""

    request: WantRequest


class Events(msgspec.Struct, frozen=True, array_like=True, tag="EVENTS"):
    """Events in the sender's commit order; ``upto`` is the sender cursor they cover."""

    upto: Cursor
    events: Annotated[tuple[msgspec.Raw, ...], msgspec.Meta(max_length=MAX_EVENTS_PER_FRAME)]


class CaughtUp(msgspec.Struct, frozen=True, array_like=True, tag="CAUGHT-UP"):
    """The catch-up asked for is complete up to ``upto``; live events follow."""

    upto: Cursor
    forks: Annotated[tuple[LogPosition, ...], msgspec.Meta(max_length=MAX_VECTOR)] = ()


class Ack(msgspec.Struct, frozen=True, array_like=True, tag="ACK"):
    """One EVENTS frame was processed (stored or rejected); ``rejected`` counts reasons."""

    upto: Cursor
    rejected: dict[Annotated[str, msgspec.Meta(max_length=64)], Cursor] = {}


class Notice(msgspec.Struct, frozen=True, array_like=True, tag="NOTICE"):
    """A human-readable notice with a stable reason; a closing one precedes the close."""

    reason: Annotated[str, msgspec.Meta(max_length=128)]
    message: Annotated[str, msgspec.Meta(max_length=1024)] = ""


Frame = Hello | Auth | Want | Events | CaughtUp | Ack | Notice
_decoder = msgspec.json.Decoder(Frame)
_encoder = msgspec.json.Encoder()
VERBS: Final = ("HELLO", "AUTH", "WANT", "EVENTS", "CAUGHT-UP", "ACK", "NOTICE")


class FrameError(KithError):
    """A frame that does not decode; ``reason`` is stable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def decode_frame(data: bytes | str, *, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Decode one federation frame; raise ``FrameError`` with a reason for anything else."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FrameError("too-large", f"a frame is at most {max_bytes} bytes")
    try:
        frame: Frame = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if " - at `" not in text or text.endswith("- at `$[0]`"):
            raise FrameError(
                invalid("frame:verb"), f"a frame is [VERB, ...] with VERB one of {', '.join(VERBS)}"
            ) from None
        # A dict key's error reads "... - at `key` in `$[2]`": the path is the dict's.
        path = text.rsplit(" - at `", 1)[1].removeprefix("key` in `").removeprefix("$").rstrip("`")
        raise FrameError(invalid(f"frame:{path}"), text.split(" - at ")[0][:200]) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        raise FrameError(invalid("frame:json"), "a frame is one JSON array") from None
    return frame


def encode_frame(frame: Frame) -> bytes:
    """Encode a frame (EVENTS frames are built by ``events_frame`` instead)."""
    return _encoder.encode(frame)


def events_frame(upto: int, envelopes: Sequence[bytes]) -> bytes:
    """``["EVENTS", upto, [...]]`` by concatenation: stored envelope bytes are never re-encoded."""
    return b'["EVENTS",%d,[' % upto + b",".join(envelopes) + b"]]"


# -- handshake ----------------------------------------------------------------------------


def transcript(dialer: HelloInfo, listener: HelloInfo) -> bytes:
    """The handshake transcript: both nonces, node keys and pods, who dialled, and the mode."""
    return (
        TRANSCRIPT_PREFIX
        + (
            f"dialer {dialer.pod} {dialer.node_key} {dialer.nonce} {dialer.mode}\n"
            f"listener {listener.pod} {listener.node_key} {listener.nonce} {listener.mode}"
        ).encode()
    )


def transcript_nonce(dialer: HelloInfo, listener: HelloInfo) -> str:
    """The nonce each AUTH signs (DESIGN §2 non-event signature): base64url SHA-256 of it."""
    return b64e(hashlib.sha256(transcript(dialer, listener)).digest())


def auth_purpose(role: Role) -> str:
    """The signature purpose of the side playing ``role``: ``federation-dialer``/``-listener``."""
    return f"federation-{role.value}"


# -- which logs flow where (DESIGN §3-§4) --------------------------------------------------


def shareable(log: LogKey, *, sender_pod: str) -> bool:
    """May a node of ``sender_pod`` send events of ``log`` to a direct peer?

    ``public`` logs of any pod (multi-hop gossip); ``peers`` logs only of the sender's own
    pod (origin to direct peers, never forwarded); ``pod`` logs never.
    """
    return log.scope == "public" or (log.scope == "peers" and log.pod == sender_pod)


def vector_for(heads: Mapping[LogKey, LogState], *, peer_pod: str) -> tuple[VectorEntry, ...]:
    """The vector a receiver sends the node of ``peer_pod``: only logs that node may send.

    Never more: a vector must not reveal our ``pod`` logs or other pods' ``peers`` logs.
    """
    return tuple(
        VectorEntry(log.pod, log.author, log.scope, state.seq, state.id)  # type: ignore[arg-type]
        for log, state in sorted(heads.items())
        if shareable(log, sender_pod=peer_pod)
    )


class CatchUpPlan(msgspec.Struct, frozen=True):
    """What a sender must send for a vector: log ranges, positions to compare, forks."""

    #: ``(pod, author, scope, after_seq)``: send the log's events with seq > after_seq.
    ranges: tuple[tuple[str, str, str, int], ...]
    #: ``(pod, author, scope, seq) -> receiver's id``: compare with our id at that seq.
    compare: Mapping[tuple[str, str, str, int], str]
    #: Positions where the receiver's event differs from ours: send ours there as proof.
    forks: tuple[LogPosition, ...]


def plan_catch_up(
    ours: Mapping[LogKey, LogState], theirs: Sequence[VectorEntry], *, our_pod: str
) -> CatchUpPlan:
    """Compare our log heads with a receiver's vector; cost ∝ logs, not events.

    A log we hold further than the receiver gets a range. A receiver head at a seq below
    ours must be compared with our event at that seq (``compare``; the adapter looks the ids
    up and calls ``with_compared``); at our head's seq it is compared here. Entries for logs
    we may not share are ignored.
    """
    given = {e.log: e for e in theirs if shareable(e.log, sender_pod=our_pod)}
    ranges: list[tuple[str, str, str, int]] = []
    compare: dict[tuple[str, str, str, int], str] = {}
    forks: list[LogPosition] = []
    for log, state in sorted(ours.items()):
        if not shareable(log, sender_pod=our_pod):
            continue
        entry = given.get(log)
        their_seq = entry.seq if entry is not None else 0
        if entry is not None and their_seq > 0 and their_seq == state.seq:
            if entry.id != state.id:
                forks.append(LogPosition(*log, state.seq))  # type: ignore[arg-type]
            continue
        if entry is not None and 0 < their_seq < state.seq:
            compare[(*log, their_seq)] = entry.id
        if state.seq > their_seq:
            ranges.append((*log, their_seq))
    return CatchUpPlan(tuple(ranges), compare, tuple(forks))


def with_compared(
    plan: CatchUpPlan, our_ids: Mapping[tuple[str, str, str, int], str]
) -> CatchUpPlan:
    """Fold in our ids at the compared positions: a differing id is a fork.

    A forked log's range is dropped (its later events would only wait as gaps at the
    receiver); the adapter sends our event at each fork position instead, kept as proof.
    """
    forks = list(plan.forks)
    ranges = []
    for pod, author, scope, after in plan.ranges:
        pos = (pod, author, scope, after)
        theirs = plan.compare.get(pos)
        if theirs is not None and our_ids.get(pos, theirs) != theirs:
            forks.append(LogPosition(pod, author, scope, after))  # type: ignore[arg-type]
            continue
        ranges.append((pod, author, scope, after))
    return CatchUpPlan(tuple(ranges), {}, tuple(forks))


# -- the machine --------------------------------------------------------------------------


class Phase(enum.Enum):
    """Where the handshake stands."""

    START = "start"
    HELLO_SENT = "hello-sent"  # waiting for the peer's HELLO
    IDENTIFYING = "identifying"  # the adapter checks the peer (allowlist, roster attestation)
    AUTH_SENT = "auth-sent"  # waiting for the peer's AUTH
    OPEN = "open"  # both authenticated: sync frames may flow
    CLOSED = "closed"


class Inbound(enum.Enum):
    """Our receiving direction: what we asked the peer for."""

    IDLE = "idle"  # nothing asked yet
    WANTED = "wanted"  # WANT sent, catch-up running
    LIVE = "live"  # CAUGHT-UP received: live events follow


class Outbound(enum.Enum):
    """Our sending direction: what the peer asked us for."""

    IDLE = "idle"
    CATCHING_UP = "catching-up"
    LIVE = "live"


# Received frames: (phase, frame type) -> handler. Anything else fails the connection.
_ON_FRAME: Final[dict[tuple[Phase, type[Frame]], str]] = {
    (Phase.HELLO_SENT, Hello): "_on_hello",
    (Phase.IDENTIFYING, Auth): "_on_early_auth",
    (Phase.AUTH_SENT, Auth): "_on_auth",
    (Phase.OPEN, Want): "_on_want",
    (Phase.OPEN, Events): "_on_events",
    (Phase.OPEN, CaughtUp): "_on_caught_up",
    (Phase.OPEN, Ack): "_on_ack",
}
# Per direction: (state, move) -> next state.
_INBOUND: Final[dict[tuple[Inbound, str], Inbound]] = {
    (Inbound.IDLE, "send-want"): Inbound.WANTED,
    (Inbound.LIVE, "send-want"): Inbound.WANTED,  # a repair: ask again with a vector
    (Inbound.WANTED, "events"): Inbound.WANTED,
    (Inbound.LIVE, "events"): Inbound.LIVE,
    (Inbound.WANTED, "caught-up"): Inbound.LIVE,
}
_OUTBOUND: Final[dict[tuple[Outbound, str], Outbound]] = {
    (Outbound.IDLE, "want"): Outbound.CATCHING_UP,
    (Outbound.CATCHING_UP, "want"): Outbound.CATCHING_UP,  # the peer restarts its catch-up
    (Outbound.LIVE, "want"): Outbound.CATCHING_UP,
    (Outbound.CATCHING_UP, "send-events"): Outbound.CATCHING_UP,
    (Outbound.LIVE, "send-events"): Outbound.LIVE,
    (Outbound.CATCHING_UP, "send-caught-up"): Outbound.LIVE,
}


class PeerHello(msgspec.Struct, frozen=True):
    """The peer introduced itself; check it (allowlist, roster), then accept or refuse."""

    pod: str
    node_key: str
    store: str
    cursor: int
    roster: tuple[bytes, ...]
    once: bool = False


class Authenticated(msgspec.Struct, frozen=True):
    """Both sides proved their node keys: sync may start."""

    pod: str
    node_key: str
    store: str
    cursor: int


class WantReceived(msgspec.Struct, frozen=True):
    """The peer asks for our events: after a cursor, or what its vector lacks."""

    after: int | None
    store: str | None
    vector: tuple[VectorEntry, ...] | None


class EventsReceived(msgspec.Struct, frozen=True):
    """Events from the peer, to ingest; then call ``ack``."""

    upto: int
    events: tuple[bytes, ...]


class CaughtUpReceived(msgspec.Struct, frozen=True):
    """The peer's catch-up is done up to ``upto``; forks it noticed."""

    upto: int
    forks: tuple[LogPosition, ...]


class AckReceived(msgspec.Struct, frozen=True):
    """The peer processed one of our EVENTS frames."""

    upto: int
    rejected: dict[str, int]


class NoticeReceived(msgspec.Struct, frozen=True):
    """The peer told us something (a refusal comes as a notice, then the close)."""

    reason: str
    message: str


class ConnectionFailed(msgspec.Struct, frozen=True):
    """The peer broke the protocol; a NOTICE with the reason is queued; close after sending."""

    reason: str
    message: str


SyncEvent = (
    PeerHello
    | Authenticated
    | WantReceived
    | EventsReceived
    | CaughtUpReceived
    | AckReceived
    | NoticeReceived
    | ConnectionFailed
)


class _Failure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


class FederationConnection:
    """One end of a federation websocket, as a pure state machine.

    ``start()`` queues our HELLO; feed every received message to ``receive``; send what
    ``data_to_send`` returns. After ``PeerHello`` the adapter calls ``accept_peer`` or
    ``refuse``; after ``Authenticated`` it calls ``send_want``; it answers ``WantReceived``
    with ``send_events`` (while ``can_send``) and ``send_caught_up``, then keeps calling
    ``send_events`` for live events; it answers every ``EventsReceived`` with ``ack``.
    """

    def __init__(
        self,
        role: Role,
        identity: Identity,
        *,
        nonce: str,
        cursor: int,
        roster: Sequence[bytes] = (),
        once: bool = False,
        window: int = WINDOW,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.role = role
        self.identity = identity
        self.phase = Phase.START
        self.inbound = Inbound.IDLE
        self.outbound = Outbound.IDLE
        self.window = window
        self.max_frame_bytes = max_frame_bytes
        self.ours = HelloInfo(
            v=VERSION,
            pod=identity.pod,
            node_key=identity.key.public_b64,
            nonce=nonce,
            store=identity.store,
            cursor=cursor,
            roster=tuple(msgspec.Raw(r) for r in roster),
            mode="once" if once else "link",
        )
        self.theirs: HelloInfo | None = None
        self._early_auth: Auth | None = None
        self._out: list[bytes] = []
        self.unacked_sent = 0  # our EVENTS frames the peer has not ACKed
        self.unacked_received = 0  # the peer's EVENTS frames we have not ACKed
        self.received_upto = 0
        self.sent_upto = 0
        self.closed_reason: str | None = None

    # -- output ---------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """Frames to send, in order (each one websocket message)."""
        out, self._out = self._out, []
        return out

    @property
    def can_send(self) -> bool:
        """May we send another EVENTS frame now (the peer's window has room)?"""
        return (
            self.phase is Phase.OPEN
            and self.outbound is not Outbound.IDLE
            and self.unacked_sent < self.window
        )

    @property
    def peer(self) -> HelloInfo | None:
        """The peer's HELLO, once received."""
        return self.theirs

    # -- local moves ----------------------------------------------------------------------

    def start(self) -> None:
        """Queue our HELLO (both sides send one at once; neither waits for the other)."""
        self._require(self.phase is Phase.START, "start")
        self._out.append(encode_frame(Hello(self.ours)))
        self.phase = Phase.HELLO_SENT

    def accept_peer(self, *, now_ms: int) -> list[SyncEvent]:
        """The peer checked out: sign the transcript; handle an AUTH that arrived early."""
        self._require(self.phase is Phase.IDENTIFYING, "accept_peer")
        assert self.theirs is not None
        self._out.append(encode_frame(Auth(self._sign(now_ms), now_ms + AUTH_TTL_MS)))
        self.phase = Phase.AUTH_SENT
        early, self._early_auth = self._early_auth, None
        if early is None:
            return []
        return self._run(self._on_auth, early, now_ms)

    def refuse(self, reason: str, message: str) -> None:
        """Refuse the peer (unknown pod, bad attestation…): NOTICE, then the adapter closes."""
        self._require(self.phase is Phase.IDENTIFYING, "refuse")
        self._fail(reason, message)

    def send_want(
        self,
        *,
        after: int | None = None,
        store: str | None = None,
        vector: Sequence[VectorEntry] | None = None,
    ) -> None:
        """Ask for the peer's events after our checkpoint, or (``vector``) for what we lack."""
        self._require(self.phase is Phase.OPEN, "send_want")
        peer = self._peer()
        if vector is not None and any(not shareable(e.log, sender_pod=peer.pod) for e in vector):
            raise LocalProtocolError("a vector may name only logs the peer may send")
        self.inbound = self._move(_INBOUND, self.inbound, "send-want")
        request = WantRequest(
            after=after, store=store, vector=tuple(vector) if vector is not None else None
        )
        self._out.append(encode_frame(Want(request)))

    def send_events(self, upto: int, envelopes: Sequence[bytes]) -> None:
        """Send stored envelopes (in our commit order) covering our cursor up to ``upto``."""
        self._require(self.phase is Phase.OPEN, "send_events")
        outbound = self._move(_OUTBOUND, self.outbound, "send-events")  # no WANT: no sending
        if not self.can_send:
            raise LocalProtocolError("the peer's window is full: wait for an ACK")
        if len(envelopes) > MAX_EVENTS_PER_FRAME:
            raise LocalProtocolError(f"at most {MAX_EVENTS_PER_FRAME} events per frame")
        if upto < self.sent_upto:
            raise LocalProtocolError("upto never goes backwards")
        self.outbound = outbound
        self._out.append(events_frame(upto, envelopes))
        self.unacked_sent += 1
        self.sent_upto = upto

    def send_caught_up(self, upto: int, forks: Sequence[LogPosition] = ()) -> None:
        """The catch-up asked for is complete up to ``upto``; what follows is live."""
        self._require(self.phase is Phase.OPEN, "send_caught_up")
        if upto < self.sent_upto:
            raise LocalProtocolError("upto never goes backwards")
        self.outbound = self._move(_OUTBOUND, self.outbound, "send-caught-up")
        self._out.append(encode_frame(CaughtUp(upto, tuple(forks))))
        self.sent_upto = upto

    def ack(self, upto: int, rejected: Mapping[str, int] | None = None) -> None:
        """One received EVENTS frame is processed (its events stored or rejected)."""
        self._require(self.phase is Phase.OPEN and self.unacked_received > 0, "ack")
        self.unacked_received -= 1
        self._out.append(encode_frame(Ack(upto, dict(rejected or {}))))

    def notice(self, reason: str, message: str = "") -> None:
        """Tell the peer something without closing (e.g. ``rate-limited``)."""
        self._require(self.phase is not Phase.CLOSED, "notice")
        self._out.append(encode_frame(Notice(reason, message)))

    def close(self, reason: str, message: str = "") -> None:
        """Close from our side (shutdown, peer removed): a last NOTICE with the reason."""
        if self.phase is not Phase.CLOSED:
            self._fail(reason, message)

    # -- input ----------------------------------------------------------------------------

    def receive(self, data: bytes | str, *, now_ms: int) -> list[SyncEvent]:
        """Feed one received message; return what happened. Never raises for bad input."""
        if self.phase is Phase.CLOSED:
            return []
        try:
            frame = decode_frame(data, max_bytes=self.max_frame_bytes)
        except FrameError as exc:
            return [self._fail(exc.reason, exc.message)]
        if isinstance(frame, Notice):
            return [NoticeReceived(frame.reason, frame.message)]
        name = _ON_FRAME.get((self.phase, type(frame)))
        if name is None:
            return [self._unexpected(frame)]
        return self._run(getattr(self, name), frame, now_ms)

    def _run(self, handler: object, frame: Frame, now_ms: int) -> list[SyncEvent]:
        try:
            out: list[SyncEvent] = handler(frame, now_ms)  # type: ignore[operator]
        except _Failure as exc:
            return [self._fail(exc.reason, exc.message)]
        return out

    def _on_hello(self, frame: Hello, now_ms: int) -> list[SyncEvent]:
        info = frame.info
        if info.v != VERSION:
            raise _Failure("unsupported", f"this node speaks federation version {VERSION}")
        if info.node_key == self.ours.node_key:
            raise _Failure(invalid("hello:self"), "a node does not federate with itself")
        if info.pod == self.ours.pod:
            raise _Failure(invalid("hello:pod"), "a node does not federate with its own pod")
        self.theirs = info
        self.phase = Phase.IDENTIFYING
        roster = tuple(bytes(r) for r in info.roster)
        once = info.mode == "once"
        return [PeerHello(info.pod, info.node_key, info.store, info.cursor, roster, once)]

    def _on_early_auth(self, frame: Auth, now_ms: int) -> list[SyncEvent]:
        if self._early_auth is not None:
            raise _Failure(invalid("frame:auth"), "AUTH sent twice")
        self._early_auth = frame
        return []

    def _on_auth(self, frame: Auth, now_ms: int) -> list[SyncEvent]:
        peer = self._peer()
        if not now_ms <= frame.expiry_ms <= now_ms + MAX_TTL_MS:
            raise _Failure("unauthorized", "the AUTH signature is expired or lives too long")
        peer_role = Role.LISTENER if self.role is Role.DIALER else Role.DIALER
        ok = verify_auth(
            peer.node_key,
            frame.sig,
            auth_purpose(peer_role),
            self.ours.node_key,
            self._nonce(),
            frame.expiry_ms,
        )
        if not ok:
            raise _Failure("unauthorized", "the AUTH signature does not verify")
        self.phase = Phase.OPEN
        return [Authenticated(peer.pod, peer.node_key, peer.store, peer.cursor)]

    def _on_want(self, frame: Want, now_ms: int) -> list[SyncEvent]:
        self.outbound = self._peer_move(_OUTBOUND, self.outbound, "want", "WANT")
        r = frame.request
        return [WantReceived(r.after, r.store, r.vector)]

    def _on_events(self, frame: Events, now_ms: int) -> list[SyncEvent]:
        self.inbound = self._peer_move(_INBOUND, self.inbound, "events", "EVENTS")
        self._check_upto(frame.upto)
        self.unacked_received += 1
        if self.unacked_received > self.window:
            raise _Failure(
                "rate-limited",
                f"more than {self.window} EVENTS frames without waiting for an ACK",
            )
        return [EventsReceived(frame.upto, tuple(bytes(e) for e in frame.events))]

    def _on_caught_up(self, frame: CaughtUp, now_ms: int) -> list[SyncEvent]:
        self.inbound = self._peer_move(_INBOUND, self.inbound, "caught-up", "CAUGHT-UP")
        self._check_upto(frame.upto)
        return [CaughtUpReceived(frame.upto, frame.forks)]

    def _on_ack(self, frame: Ack, now_ms: int) -> list[SyncEvent]:
        if self.unacked_sent == 0:
            raise _Failure(invalid("frame:ack"), "ACK without an EVENTS frame to acknowledge")
        self.unacked_sent -= 1
        return [AckReceived(frame.upto, dict(frame.rejected))]

    # -- internals ------------------------------------------------------------------------

    def _sign(self, now_ms: int) -> str:
        peer = self._peer()
        return sign_auth(
            self.identity.key,
            auth_purpose(self.role),
            peer.node_key,
            self._nonce(),
            now_ms + AUTH_TTL_MS,
        )

    def _nonce(self) -> str:
        peer = self._peer()
        if self.role is Role.DIALER:
            return transcript_nonce(self.ours, peer)
        return transcript_nonce(peer, self.ours)

    def _peer(self) -> HelloInfo:
        if self.theirs is None:  # pragma: no cover - guarded by the phase tables
            raise LocalProtocolError("no HELLO from the peer yet")
        return self.theirs

    def _check_upto(self, upto: int) -> None:
        if upto < self.received_upto:
            raise _Failure(invalid("frame:upto"), "upto went backwards")
        self.received_upto = upto

    @staticmethod
    def _move(table: Mapping[tuple[_S, str], _S], state: _S, move: str) -> _S:
        nxt = table.get((state, move))
        if nxt is None:
            raise LocalProtocolError(f"{move} is not allowed in state {state.value}")
        return nxt

    @staticmethod
    def _peer_move(table: Mapping[tuple[_S, str], _S], state: _S, move: str, verb: str) -> _S:
        nxt = table.get((state, move))
        if nxt is None:
            raise _Failure(
                invalid("frame:unexpected"), f"{verb} is not allowed now ({state.value})"
            )
        return nxt

    def _require(self, ok: bool, move: str) -> None:
        if not ok:
            raise LocalProtocolError(f"{move} is not allowed in phase {self.phase.value}")

    def _unexpected(self, frame: Frame) -> ConnectionFailed:
        verb = type(frame).__struct_config__.tag
        if self.phase is not Phase.OPEN and not isinstance(frame, Hello | Auth):
            return self._fail("unauthorized", f"{verb} before both sides are authenticated")
        return self._fail(invalid("frame:unexpected"), f"{verb} is not allowed now")

    def _fail(self, reason: str, message: str) -> ConnectionFailed:
        self._out.append(encode_frame(Notice(reason, message[:1024])))
        self.phase = Phase.CLOSED
        self.closed_reason = reason
        return ConnectionFailed(reason, message)
