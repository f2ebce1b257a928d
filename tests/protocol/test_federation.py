"""Federation: frames, the handshake, every transition of the sync machine (two endpoints paired
in memory), catch-up planning, and fuzzing (nothing but ``FrameError`` escapes ``decode_frame``,
nothing at all escapes ``receive``)."""

from __future__ import annotations

import doctest
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol.federation
import tests.protocol.federation_pair
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.federation import (
    _INBOUND,
    _ON_FRAME,
    _OUTBOUND,
    AUTH_TTL_MS,
    MAX_EVENTS_PER_FRAME,
    MAX_FRAME_BYTES,
    TRANSCRIPT_PREFIX,
    VERBS,
    VERSION,
    WINDOW,
    Ack,
    AckReceived,
    Auth,
    Authenticated,
    CatchUpPlan,
    CaughtUp,
    CaughtUpReceived,
    ConnectionFailed,
    Events,
    EventsReceived,
    FederationConnection,
    Frame,
    FrameError,
    Hello,
    HelloInfo,
    Inbound,
    LocalProtocolError,
    LogPosition,
    Notice,
    NoticeReceived,
    Outbound,
    PeerHello,
    Phase,
    Role,
    SyncEvent,
    VectorEntry,
    Want,
    WantReceived,
    WantRequest,
    auth_purpose,
    decode_frame,
    encode_frame,
    events_frame,
    plan_catch_up,
    shareable,
    transcript,
    transcript_nonce,
    vector_for,
    with_compared,
)
from protocol.logs import LogKey, LogState
from protocol.tokens import MAX_TTL_MS, sign_auth
from tests.protocol.federation_pair import (
    A_NODE,
    A_POD,
    B_NODE,
    B_POD,
    B_ROOT,
    C_NODE,
    C_POD,
    NOW,
    ROSTER_A,
    A,
    ConnectionPair,
    envelope,
    signing_key,
)

#: Three real events of pod B's root author, as the listener would send them.
B_EVENTS = tuple(envelope(B_ROOT, pod=B_POD, seq=n, title="bread") for n in (1, 2, 3))


def ident(label: str) -> str:
    """A well-formed event id (canonical base64url of 32 bytes)."""
    return b64e(hashlib.sha256(label.encode()).digest())


X, Y, Z = ident("x"), ident("y"), ident("z")


def only(events: list[SyncEvent]) -> SyncEvent:
    """The single event a move produced."""
    assert len(events) == 1, events
    return events[0]


def drain(conn: FederationConnection) -> list[Frame]:
    """What ``conn`` queued, decoded (and taken off its queue)."""
    return [decode_frame(data) for data in conn.data_to_send()]


def assert_failed(events: list[SyncEvent], conn: FederationConnection, reason: str) -> None:
    """``conn`` failed the connection with ``reason``: one event, CLOSED, a last NOTICE queued."""
    failed = only(events)
    assert isinstance(failed, ConnectionFailed)
    assert failed.reason == reason
    assert conn.phase is Phase.CLOSED
    assert conn.closed_reason == reason
    assert not conn.can_send
    frames = drain(conn)
    assert frames[-1] == Notice(reason, failed.message)


def listener_auth(
    pair: ConnectionPair,
    *,
    signer: SigningKey = B_NODE,
    purpose: str = "federation-listener",
    expiry_ms: int = NOW + AUTH_TTL_MS,
    verifier: str | None = None,
    nonce: str | None = None,
) -> bytes:
    """An AUTH frame as the listener would send it to the dialer, with any one part swapped."""
    if nonce is None:
        nonce = transcript_nonce(pair.dialer.ours, pair.listener.ours)
    node_key = verifier if verifier is not None else pair.dialer.ours.node_key
    return encode_frame(Auth(sign_auth(signer, purpose, node_key, nonce, expiry_ms), expiry_ms))


def opened(**kwargs: Any) -> ConnectionPair:
    pair = ConnectionPair(**kwargs)
    pair.open()
    return pair


def dialer_awaiting_auth(**kwargs: Any) -> ConnectionPair:
    """HELLOs crossed; the dialer accepted (AUTH_SENT) and waits for the listener's AUTH."""
    pair = ConnectionPair(**kwargs)
    pair.hello()
    assert pair.dialer.accept_peer(now_ms=NOW) == []
    assert [type(f) for f in drain(pair.dialer)] == [Auth]
    assert pair.dialer.phase is Phase.AUTH_SENT
    return pair


def test_doctests() -> None:
    for module in (protocol.federation, tests.protocol.federation_pair):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


# --- the whole conversation -------------------------------------------------------------


def test_happy_path_handshake_catch_up_live_and_repair() -> None:
    pair = ConnectionPair()
    dialer, listener = pair.dialer, pair.listener
    assert dialer.peer is None
    assert not dialer.can_send

    # HELLO both ways: each learns who the other is and must decide.
    at_dialer, at_listener = pair.hello()
    assert at_listener == [PeerHello(A_POD, A_NODE.public_b64, "store-a", 10, ROSTER_A, False)]
    assert at_dialer == [PeerHello(B_POD, B_NODE.public_b64, "store-b", 20, (), False)]
    assert dialer.phase is listener.phase is Phase.IDENTIFYING
    assert dialer.peer == listener.ours
    assert listener.peer == dialer.ours

    # Both accept: AUTH both ways, each verified against the shared transcript.
    assert dialer.accept_peer(now_ms=NOW) == []
    assert listener.accept_peer(now_ms=NOW) == []
    assert dialer.phase is listener.phase is Phase.AUTH_SENT
    assert pair.pump(dialer) == [Authenticated(A_POD, A_NODE.public_b64, "store-a", 10)]
    assert pair.pump(listener) == [Authenticated(B_POD, B_NODE.public_b64, "store-b", 20)]
    assert dialer.phase is listener.phase is Phase.OPEN
    assert not dialer.can_send and not listener.can_send  # nobody asked for anything yet

    # The dialer asks by vector (first contact), the listener by cursor (a checkpoint).
    heads = {LogKey(B_POD, B_POD, "public"): LogState(1, X, NOW)}
    vector = vector_for(heads, peer_pod=B_POD)
    dialer.send_want(vector=vector)
    listener.send_want(after=5, store="store-a")
    assert dialer.inbound is listener.inbound is Inbound.WANTED
    assert pair.pump(dialer) == [WantReceived(None, None, vector)]
    assert pair.pump(listener) == [WantReceived(5, "store-a", None)]
    assert dialer.outbound is listener.outbound is Outbound.CATCHING_UP
    assert dialer.can_send and listener.can_send

    # The listener fills the window: exactly WINDOW frames, then can_send is False.
    received: list[SyncEvent] = []
    for n in range(WINDOW):
        assert listener.can_send
        listener.send_events(20 + n, [B_EVENTS[n % 3]] if n else list(B_EVENTS))
        received += pair.pump(listener)
    assert not listener.can_send
    assert listener.unacked_sent == WINDOW
    assert dialer.unacked_received == WINDOW
    assert received[0] == EventsReceived(20, B_EVENTS)  # envelope bytes arrive untouched
    assert [e.upto for e in received if isinstance(e, EventsReceived)] == list(range(20, 28))

    # Each ACK frees one slot.
    dialer.ack(20, {"duplicate": 1})
    assert pair.pump(dialer) == [AckReceived(20, {"duplicate": 1})]
    assert listener.can_send
    for n in range(1, WINDOW):
        dialer.ack(20 + n)
    assert pair.pump(dialer) == [AckReceived(20 + n, {}) for n in range(1, WINDOW)]
    assert listener.unacked_sent == dialer.unacked_received == 0

    # CAUGHT-UP: the dialer's inbound and the listener's outbound go live, forks named.
    fork = LogPosition(B_POD, B_POD, "public", 1)
    listener.send_caught_up(30, [fork])
    assert listener.outbound is Outbound.LIVE
    assert pair.pump(listener) == [CaughtUpReceived(30, (fork,))]
    assert dialer.inbound is Inbound.LIVE
    assert dialer.received_upto == 30

    # Live events keep flowing (sent as text messages this time).
    listener.send_events(31, [B_EVENTS[2]])
    assert pair.pump(listener, text=True) == [EventsReceived(31, (B_EVENTS[2],))]
    assert listener.outbound is Outbound.LIVE and dialer.inbound is Inbound.LIVE
    dialer.ack(31)
    assert pair.pump(dialer) == [AckReceived(31, {})]

    # A repair: the dialer asks again from LIVE; the listener restarts its catch-up.
    dialer.send_want(vector=vector)
    assert dialer.inbound is Inbound.WANTED
    assert pair.pump(dialer) == [WantReceived(None, None, vector)]
    assert listener.outbound is Outbound.CATCHING_UP
    listener.send_caught_up(31)
    assert pair.pump(listener) == [CaughtUpReceived(31, ())]
    assert dialer.inbound is Inbound.LIVE

    # The other direction was independent all along: still catching up.
    assert dialer.outbound is Outbound.CATCHING_UP and listener.inbound is Inbound.WANTED
    assert pair.verbs()[:4] == [
        ("dialer", "HELLO"),
        ("listener", "HELLO"),
        ("dialer", "AUTH"),
        ("listener", "AUTH"),
    ]
    assert ("dialer", "NOTICE") not in pair.verbs()
    assert ("listener", "NOTICE") not in pair.verbs()


def test_the_dialer_sends_events_to_the_listener_too() -> None:
    pair = opened()
    pair.listener.send_want(after=0)
    pair.pump(pair.listener)
    pair.dialer.send_events(11, list(ROSTER_A))
    assert pair.pump(pair.dialer) == [EventsReceived(11, ROSTER_A)]
    pair.dialer.send_caught_up(11)
    assert pair.pump(pair.dialer) == [CaughtUpReceived(11, ())]
    assert pair.listener.inbound is Inbound.LIVE


# --- receive: every (phase, frame) pair -----------------------------------------------------

FRAME_TYPES: tuple[type[Frame], ...] = (Hello, Auth, Want, Events, CaughtUp, Ack, Notice)

#: Every received frame the machine handles, what it reports and the phase it moves to.
HANDLED: dict[tuple[Phase, type[Frame]], tuple[type[SyncEvent] | None, Phase]] = {
    (Phase.HELLO_SENT, Hello): (PeerHello, Phase.IDENTIFYING),
    (Phase.IDENTIFYING, Auth): (None, Phase.IDENTIFYING),  # early: kept for accept_peer
    (Phase.AUTH_SENT, Auth): (Authenticated, Phase.OPEN),
    (Phase.OPEN, Want): (WantReceived, Phase.OPEN),
    (Phase.OPEN, Events): (EventsReceived, Phase.OPEN),
    (Phase.OPEN, CaughtUp): (CaughtUpReceived, Phase.OPEN),
    (Phase.OPEN, Ack): (AckReceived, Phase.OPEN),
}


def test_the_frame_table_is_the_one_tested() -> None:
    assert set(_ON_FRAME) == set(HANDLED)


def dialer_in(phase: Phase) -> ConnectionPair:
    """A pair whose dialer is in ``phase``; in OPEN every sync frame has a reason to come."""
    pair = ConnectionPair()
    dialer, listener = pair.dialer, pair.listener
    if phase is Phase.CLOSED:
        dialer.close("bye")
    elif phase is not Phase.START:
        dialer.start()
        listener.start()
        pair.pump(dialer)
        if phase is not Phase.HELLO_SENT:
            pair.pump(listener)
        if phase in (Phase.AUTH_SENT, Phase.OPEN):
            dialer.accept_peer(now_ms=NOW)
            listener.accept_peer(now_ms=NOW)
            pair.pump(dialer)
            listener.data_to_send()  # its AUTH is the sample below, not delivered
        if phase is Phase.OPEN:
            dialer.receive(listener_auth(pair), now_ms=NOW)
            dialer.send_want(after=0)  # so EVENTS and CAUGHT-UP may come
            listener.send_want(after=0)
            pair.pump(listener)
            dialer.send_events(1, [])  # so an ACK may come
    dialer.data_to_send()
    assert dialer.phase is phase
    return pair


def sample(pair: ConnectionPair, frame_type: type[Frame]) -> bytes:
    """A well-formed frame of ``frame_type`` from the listener to the dialer."""
    samples: dict[type[Frame], Callable[[], bytes]] = {
        Hello: lambda: encode_frame(Hello(pair.listener.ours)),
        Auth: lambda: listener_auth(pair),
        Want: lambda: encode_frame(Want(WantRequest(after=0))),
        Events: lambda: events_frame(1, [B_EVENTS[0]]),
        CaughtUp: lambda: encode_frame(CaughtUp(1)),
        Ack: lambda: encode_frame(Ack(1)),
        Notice: lambda: encode_frame(Notice("maintenance", "back soon")),
    }
    return samples[frame_type]()


@pytest.mark.parametrize(
    ("phase", "frame_type"),
    list(itertools.product(Phase, FRAME_TYPES)),
    ids=lambda v: v.value if isinstance(v, Phase) else v.__name__,
)
def test_every_frame_in_every_phase(phase: Phase, frame_type: type[Frame]) -> None:
    pair = dialer_in(phase)
    dialer = pair.dialer
    events = dialer.receive(sample(pair, frame_type), now_ms=NOW)
    if phase is Phase.CLOSED:
        assert events == []
        assert dialer.data_to_send() == []
    elif frame_type is Notice:  # a notice is reported in any phase, and changes nothing
        assert events == [NoticeReceived("maintenance", "back soon")]
        assert dialer.phase is phase
    elif (phase, frame_type) in HANDLED:
        reported, next_phase = HANDLED[phase, frame_type]
        assert [type(e) for e in events] == ([reported] if reported else [])
        assert dialer.phase is next_phase
        assert dialer.data_to_send() == []
    elif phase is not Phase.OPEN and frame_type not in (Hello, Auth):
        assert_failed(events, dialer, "unauthorized")  # no sync frame before both AUTHs
    else:
        assert_failed(events, dialer, "invalid:frame:unexpected")


def test_events_before_auth_fail_unauthorized_and_the_peer_is_told() -> None:
    pair = dialer_awaiting_auth()
    events = pair.dialer.receive(events_frame(1, [B_EVENTS[0]]), now_ms=NOW)
    failed = only(events)
    assert failed == ConnectionFailed("unauthorized", "EVENTS before both sides are authenticated")
    assert pair.pump(pair.dialer) == [NoticeReceived("unauthorized", failed.message)]
    assert pair.dialer.receive(events_frame(2, []), now_ms=NOW) == []  # closed: nothing more


def test_hello_twice() -> None:
    pair = ConnectionPair()
    pair.hello()
    events = pair.dialer.receive(encode_frame(Hello(pair.listener.ours)), now_ms=NOW)
    assert_failed(events, pair.dialer, "invalid:frame:unexpected")


# --- the two directions: every (state, move) pair -------------------------------------------

INBOUND_MOVES = ("send-want", "events", "caught-up")
OUTBOUND_MOVES = ("want", "send-events", "send-caught-up")
INBOUND_EXPECTED = {
    (Inbound.IDLE, "send-want"): Inbound.WANTED,
    (Inbound.LIVE, "send-want"): Inbound.WANTED,
    (Inbound.WANTED, "events"): Inbound.WANTED,
    (Inbound.LIVE, "events"): Inbound.LIVE,
    (Inbound.WANTED, "caught-up"): Inbound.LIVE,
}
OUTBOUND_EXPECTED = {
    (Outbound.IDLE, "want"): Outbound.CATCHING_UP,
    (Outbound.CATCHING_UP, "want"): Outbound.CATCHING_UP,
    (Outbound.LIVE, "want"): Outbound.CATCHING_UP,
    (Outbound.CATCHING_UP, "send-events"): Outbound.CATCHING_UP,
    (Outbound.LIVE, "send-events"): Outbound.LIVE,
    (Outbound.CATCHING_UP, "send-caught-up"): Outbound.LIVE,
}


def test_the_direction_tables_are_the_ones_tested() -> None:
    assert _INBOUND == INBOUND_EXPECTED
    assert _OUTBOUND == OUTBOUND_EXPECTED


def open_with_inbound(state: Inbound) -> ConnectionPair:
    pair = opened()
    if state is not Inbound.IDLE:
        pair.dialer.send_want(after=0)
        pair.pump(pair.dialer)
    if state is Inbound.LIVE:
        pair.listener.send_caught_up(0)
        pair.pump(pair.listener)
    assert pair.dialer.inbound is state
    return pair


def open_with_outbound(state: Outbound) -> ConnectionPair:
    pair = opened()
    if state is not Outbound.IDLE:
        pair.listener.send_want(after=0)
        pair.pump(pair.listener)
    if state is Outbound.LIVE:
        pair.dialer.send_caught_up(0)
        pair.pump(pair.dialer)
    assert pair.dialer.outbound is state
    return pair


@pytest.mark.parametrize(
    ("state", "move"), list(itertools.product(Inbound, INBOUND_MOVES)), ids=str
)
def test_every_inbound_move_in_every_state(state: Inbound, move: str) -> None:
    pair = open_with_inbound(state)
    dialer = pair.dialer
    expected = INBOUND_EXPECTED.get((state, move))
    if move == "send-want":  # ours: a refused move is the adapter's bug, and changes nothing
        if expected is None:
            with pytest.raises(LocalProtocolError, match="send-want is not allowed"):
                dialer.send_want(after=0)
            assert dialer.inbound is state
            assert dialer.data_to_send() == []
            return
        dialer.send_want(after=0)
        assert drain(dialer) == [Want(WantRequest(after=0))]
        assert dialer.phase is Phase.OPEN
    else:  # the peer's: a move not in the table fails the connection
        frame = events_frame(100, []) if move == "events" else encode_frame(CaughtUp(100))
        events = dialer.receive(frame, now_ms=NOW)
        if expected is None:
            assert_failed(events, dialer, "invalid:frame:unexpected")
            return
        assert type(only(events)) is (EventsReceived if move == "events" else CaughtUpReceived)
        assert dialer.phase is Phase.OPEN
    assert dialer.inbound is expected


@pytest.mark.parametrize(
    ("state", "move"), list(itertools.product(Outbound, OUTBOUND_MOVES)), ids=str
)
def test_every_outbound_move_in_every_state(state: Outbound, move: str) -> None:
    pair = open_with_outbound(state)
    dialer = pair.dialer
    expected = OUTBOUND_EXPECTED.get((state, move))
    if move == "want":
        events = dialer.receive(encode_frame(Want(WantRequest(after=3))), now_ms=NOW)
        assert events == [WantReceived(3, None, None)]  # always allowed: a restart or repair
    else:
        send: Callable[[], None] = (
            (lambda: dialer.send_events(100, []))
            if move == "send-events"
            else (lambda: dialer.send_caught_up(100))
        )
        if expected is None:
            with pytest.raises(LocalProtocolError, match=f"{move} is not allowed"):
                send()
            assert dialer.outbound is state
            assert dialer.data_to_send() == []
            assert dialer.sent_upto == 0
            return
        send()
        assert dialer.sent_upto == 100
        assert len(dialer.data_to_send()) == 1
    assert dialer.phase is Phase.OPEN
    assert dialer.outbound is expected


def test_can_send_follows_the_outbound_direction_and_the_window() -> None:
    pair = ConnectionPair(window=2)
    assert not pair.dialer.can_send  # START
    pair.open()
    assert not pair.dialer.can_send  # nothing asked
    pair.listener.send_want(after=0)
    pair.pump(pair.listener)
    assert pair.dialer.can_send
    pair.dialer.send_events(1, [])
    pair.dialer.send_events(2, [])
    assert not pair.dialer.can_send
    with pytest.raises(LocalProtocolError, match="window is full"):
        pair.dialer.send_events(3, [])
    pair.pump(pair.dialer)
    pair.listener.ack(1)
    pair.pump(pair.listener)
    assert pair.dialer.can_send
    pair.dialer.send_caught_up(2)  # CAUGHT-UP is not windowed; live sending still is
    assert pair.dialer.can_send
    pair.dialer.close("bye")
    assert not pair.dialer.can_send


# --- local moves the adapter may not make -------------------------------------------------


def in_phase(phase: Phase) -> Callable[[], FederationConnection]:
    return lambda: dialer_in(phase).dialer


def opened_dialer() -> FederationConnection:
    return opened().dialer


def window_full() -> FederationConnection:
    pair = open_with_outbound(Outbound.CATCHING_UP)
    for n in range(WINDOW):
        pair.dialer.send_events(n, [])
    pair.dialer.data_to_send()
    return pair.dialer


def catching_up_at(upto: int) -> FederationConnection:
    pair = open_with_outbound(Outbound.CATCHING_UP)
    pair.dialer.send_events(upto, [])
    pair.dialer.data_to_send()
    return pair.dialer


ADAPTER_BUGS: list[tuple[str, Callable[[], FederationConnection], Callable[[Any], object]]] = [
    ("start twice", in_phase(Phase.HELLO_SENT), lambda c: c.start()),
    ("accept before HELLO", in_phase(Phase.HELLO_SENT), lambda c: c.accept_peer(now_ms=NOW)),
    ("accept twice", in_phase(Phase.AUTH_SENT), lambda c: c.accept_peer(now_ms=NOW)),
    ("refuse before HELLO", in_phase(Phase.HELLO_SENT), lambda c: c.refuse("x", "y")),
    ("refuse once open", opened_dialer, lambda c: c.refuse("x", "y")),
    ("want before OPEN", in_phase(Phase.AUTH_SENT), lambda c: c.send_want(after=0)),
    ("events before OPEN", in_phase(Phase.AUTH_SENT), lambda c: c.send_events(1, [])),
    ("caught-up before OPEN", in_phase(Phase.AUTH_SENT), lambda c: c.send_caught_up(1)),
    ("ack before OPEN", in_phase(Phase.AUTH_SENT), lambda c: c.ack(1)),
    ("ack with nothing to ack", opened_dialer, lambda c: c.ack(1)),
    ("window full", window_full, lambda c: c.send_events(99, [])),
    (
        "too many events",
        lambda: catching_up_at(0),
        lambda c: c.send_events(1, [b"{}"] * (MAX_EVENTS_PER_FRAME + 1)),
    ),
    ("events upto backwards", lambda: catching_up_at(5), lambda c: c.send_events(4, [])),
    ("caught-up upto backwards", lambda: catching_up_at(5), lambda c: c.send_caught_up(4)),
    (
        "vector names a pod-scope log",
        opened_dialer,
        lambda c: c.send_want(vector=[VectorEntry(B_POD, B_POD, "pod", 1, X)]),
    ),
    (
        "vector names a third pod's peers log",
        opened_dialer,
        lambda c: c.send_want(vector=[VectorEntry(C_POD, C_POD, "peers", 1, X)]),
    ),
    ("notice once closed", in_phase(Phase.CLOSED), lambda c: c.notice("x")),
    ("want once closed", in_phase(Phase.CLOSED), lambda c: c.send_want(after=0)),
]


@pytest.mark.parametrize(("name", "make", "move"), ADAPTER_BUGS, ids=[b[0] for b in ADAPTER_BUGS])
def test_adapter_bugs_raise_and_change_nothing(
    name: str, make: Callable[[], FederationConnection], move: Callable[[Any], object]
) -> None:
    conn = make()
    before = (conn.phase, conn.inbound, conn.outbound, conn.unacked_sent, conn.sent_upto)
    with pytest.raises(LocalProtocolError):
        move(conn)
    assert (conn.phase, conn.inbound, conn.outbound, conn.unacked_sent, conn.sent_upto) == before
    assert conn.data_to_send() == []


def test_a_vector_may_name_every_log_the_peer_may_send() -> None:
    pair = opened()
    vector = [
        VectorEntry(B_POD, B_POD, "peers", 2, X),  # the peer's own peers log
        VectorEntry(C_POD, C_POD, "public", 3, Y),  # any pod's public log
        VectorEntry(A_POD, A_POD, "public", 4, Z),
    ]
    pair.dialer.send_want(vector=vector)
    assert pair.pump(pair.dialer) == [WantReceived(None, None, tuple(vector))]


def test_a_full_frame_is_sent() -> None:
    pair = open_with_outbound(Outbound.CATCHING_UP)
    pair.dialer.send_events(1, [ROSTER_A[0]] * MAX_EVENTS_PER_FRAME)
    got = only(pair.pump(pair.dialer))
    assert isinstance(got, EventsReceived) and len(got.events) == MAX_EVENTS_PER_FRAME


# --- the peer breaking the rules once open --------------------------------------------------


def test_ack_without_events() -> None:
    pair = opened()
    assert_failed(
        pair.dialer.receive(encode_frame(Ack(1)), now_ms=NOW), pair.dialer, "invalid:frame:ack"
    )


def test_ack_beyond_what_was_sent() -> None:
    pair = open_with_outbound(Outbound.CATCHING_UP)
    pair.dialer.send_events(1, [])
    pair.pump(pair.dialer)
    pair.listener.ack(1)
    assert pair.pump(pair.listener) == [AckReceived(1, {})]
    assert pair.dialer.receive(encode_frame(Ack(1)), now_ms=NOW) == [
        ConnectionFailed("invalid:frame:ack", "ACK without an EVENTS frame to acknowledge")
    ]


def test_caught_up_twice() -> None:
    pair = open_with_inbound(Inbound.WANTED)
    pair.listener.send_caught_up(1)
    assert pair.pump(pair.listener) == [CaughtUpReceived(1, ())]
    events = pair.dialer.receive(encode_frame(CaughtUp(1)), now_ms=NOW)
    assert_failed(events, pair.dialer, "invalid:frame:unexpected")


def test_flooding_is_rate_limited_at_window_plus_one() -> None:
    pair = open_with_inbound(Inbound.WANTED)
    dialer = pair.dialer
    # The listener's machine would never do this: raw frames, ignoring the window.
    for n in range(WINDOW):
        assert dialer.receive(events_frame(n, [B_EVENTS[0]]), now_ms=NOW) == [
            EventsReceived(n, (B_EVENTS[0],))
        ]
    events = dialer.receive(events_frame(WINDOW, [B_EVENTS[0]]), now_ms=NOW)
    assert_failed(events, dialer, "rate-limited")


def test_a_sender_that_waits_for_acks_is_never_rate_limited() -> None:
    pair = open_with_inbound(Inbound.WANTED)
    dialer = pair.dialer
    for n in range(3 * WINDOW):
        assert type(only(dialer.receive(events_frame(n, []), now_ms=NOW))) is EventsReceived
        if n >= WINDOW - 1:  # keep the window exactly full
            dialer.ack(n - WINDOW + 1)
    assert dialer.phase is Phase.OPEN
    assert dialer.unacked_received == WINDOW - 1


def test_a_smaller_window_is_enforced_at_its_size() -> None:
    pair = ConnectionPair(window=2)
    pair.open()
    pair.dialer.send_want(after=0)
    pair.pump(pair.dialer)
    pair.dialer.receive(events_frame(1, []), now_ms=NOW)
    pair.dialer.receive(events_frame(2, []), now_ms=NOW)
    assert_failed(pair.dialer.receive(events_frame(3, []), now_ms=NOW), pair.dialer, "rate-limited")


@pytest.mark.parametrize("second", ["events", "caught-up"])
def test_upto_going_backwards_from_the_peer(second: str) -> None:
    pair = open_with_inbound(Inbound.WANTED)
    dialer = pair.dialer
    assert type(only(dialer.receive(events_frame(5, []), now_ms=NOW))) is EventsReceived
    assert type(only(dialer.receive(events_frame(5, []), now_ms=NOW))) is EventsReceived  # equal
    frame = events_frame(4, []) if second == "events" else encode_frame(CaughtUp(4))
    assert_failed(dialer.receive(frame, now_ms=NOW), dialer, "invalid:frame:upto")


def test_a_frame_too_large_for_the_connection() -> None:
    pair = ConnectionPair()
    small = FederationConnection(Role.DIALER, A, nonce="d" * 22, cursor=0, max_frame_bytes=64)
    small.start()
    small.data_to_send()
    hello = encode_frame(Hello(pair.listener.ours))
    assert len(hello) > 64
    assert_failed(small.receive(hello, now_ms=NOW), small, "too-large")


@pytest.mark.parametrize(
    "data", [b"", b"[", b'{"HELLO": 1}', b'["PING"]', b'["EVENTS", "x", []]'], ids=repr
)
def test_a_malformed_frame_fails_the_connection_with_its_reason(data: bytes) -> None:
    pair = opened()
    with pytest.raises(FrameError) as exc:
        decode_frame(data)
    assert_failed(pair.dialer.receive(data, now_ms=NOW), pair.dialer, exc.value.reason)


# --- handshake: AUTH --------------------------------------------------------------------


def test_a_correct_auth_opens() -> None:
    pair = dialer_awaiting_auth()
    assert pair.dialer.receive(listener_auth(pair), now_ms=NOW) == [
        Authenticated(B_POD, B_NODE.public_b64, "store-b", 20)
    ]


def test_auth_is_sent_with_the_default_ttl_and_the_right_purpose() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.listener.accept_peer(now_ms=NOW)
    (auth,) = drain(pair.listener)
    assert isinstance(auth, Auth) and auth.expiry_ms == NOW + AUTH_TTL_MS
    assert listener_auth(pair) == encode_frame(auth)  # signing is deterministic (Ed25519)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("forged", {"signer": signing_key("mallory")}),
        ("another node's key", {"signer": C_NODE}),
        ("the dialer's purpose", {"purpose": "federation-dialer"}),
        ("another verifier", {"verifier": C_NODE.public_b64}),
        ("another session's transcript", {"nonce": "s" * 43}),
        ("expired", {"expiry_ms": NOW - 1}),
        ("lives too long", {"expiry_ms": NOW + MAX_TTL_MS + 1}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_bad_auth_is_unauthorized(name: str, change: dict[str, Any]) -> None:
    pair = dialer_awaiting_auth()
    events = pair.dialer.receive(listener_auth(pair, **change), now_ms=NOW)
    assert_failed(events, pair.dialer, "unauthorized")


@pytest.mark.parametrize("expiry_ms", [NOW, NOW + MAX_TTL_MS])
def test_auth_expiry_bounds_are_inclusive(expiry_ms: int) -> None:
    pair = dialer_awaiting_auth()
    events = pair.dialer.receive(listener_auth(pair, expiry_ms=expiry_ms), now_ms=NOW)
    assert type(only(events)) is Authenticated


def test_an_auth_arriving_late_has_expired() -> None:
    pair = dialer_awaiting_auth()
    pair.listener.accept_peer(now_ms=NOW)
    (auth,) = pair.listener.data_to_send()
    events = pair.dialer.receive(auth, now_ms=NOW + AUTH_TTL_MS + 1)
    assert events == [
        ConnectionFailed("unauthorized", "the AUTH signature is expired or lives too long")
    ]
    assert_failed(events, pair.dialer, "unauthorized")


def test_an_auth_replayed_from_another_session_is_refused() -> None:
    first = dialer_awaiting_auth()
    first.listener.accept_peer(now_ms=NOW)
    (recorded,) = first.listener.data_to_send()
    assert type(only(first.dialer.receive(recorded, now_ms=NOW))) is Authenticated
    # Same nodes, same roles, a fresh dialer nonce: the recorded AUTH signs another transcript.
    second = dialer_awaiting_auth(dialer_nonce="e" * 22)
    events = second.dialer.receive(recorded, now_ms=NOW)
    assert events == [ConnectionFailed("unauthorized", "the AUTH signature does not verify")]
    assert_failed(events, second.dialer, "unauthorized")


def test_an_auth_reflected_to_its_signer_is_refused() -> None:
    # The dialer's own AUTH sent back: wrong key, wrong purpose, wrong verifier all at once.
    pair = dialer_awaiting_auth()
    mirror = ConnectionPair()
    mirror.hello()
    mirror.dialer.accept_peer(now_ms=NOW)
    (own,) = mirror.dialer.data_to_send()
    assert_failed(pair.dialer.receive(own, now_ms=NOW), pair.dialer, "unauthorized")


def test_purposes_differ_by_role() -> None:
    assert auth_purpose(Role.DIALER) == "federation-dialer"
    assert auth_purpose(Role.LISTENER) == "federation-listener"


@pytest.mark.parametrize(
    ("purpose", "ok"), [("federation-dialer", True), ("federation-listener", False)]
)
def test_the_listener_accepts_only_the_dialer_purpose(purpose: str, ok: bool) -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.listener.accept_peer(now_ms=NOW)
    pair.listener.data_to_send()
    nonce = transcript_nonce(pair.dialer.ours, pair.listener.ours)
    expiry = NOW + AUTH_TTL_MS
    sig = sign_auth(A_NODE, purpose, B_NODE.public_b64, nonce, expiry)
    events = pair.listener.receive(encode_frame(Auth(sig, expiry)), now_ms=NOW)
    assert (type(only(events)) is Authenticated) is ok


def test_an_early_auth_is_kept_and_checked_on_accept() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.dialer.accept_peer(now_ms=NOW)
    assert pair.pump(pair.dialer) == []  # the listener is still identifying the dialer
    assert pair.listener.phase is Phase.IDENTIFYING
    assert pair.listener.accept_peer(now_ms=NOW) == [
        Authenticated(A_POD, A_NODE.public_b64, "store-a", 10)
    ]
    assert pair.listener.phase is Phase.OPEN
    assert pair.pump(pair.listener) == [Authenticated(B_POD, B_NODE.public_b64, "store-b", 20)]


def test_an_early_bad_auth_fails_on_accept_after_our_auth() -> None:
    pair = ConnectionPair()
    pair.hello()
    forged = encode_frame(Auth("A" * 86, NOW + AUTH_TTL_MS))
    assert pair.dialer.receive(forged, now_ms=NOW) == []
    events = pair.dialer.accept_peer(now_ms=NOW)
    failed = only(events)
    assert isinstance(failed, ConnectionFailed) and failed.reason == "unauthorized"
    assert [type(f) for f in drain(pair.dialer)] == [Auth, Notice]
    assert pair.dialer.phase is Phase.CLOSED


def test_an_early_auth_is_checked_at_the_accept_time() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.listener.accept_peer(now_ms=NOW)
    assert pair.pump(pair.listener) == []
    assert_failed(
        pair.dialer.accept_peer(now_ms=NOW + AUTH_TTL_MS + 1), pair.dialer, "unauthorized"
    )


def test_auth_twice_while_identifying() -> None:
    pair = ConnectionPair()
    pair.hello()
    auth = listener_auth(pair)
    assert pair.dialer.receive(auth, now_ms=NOW) == []
    assert_failed(pair.dialer.receive(auth, now_ms=NOW), pair.dialer, "invalid:frame:auth")


def test_the_transcript_names_both_sides_and_who_dialled() -> None:
    pair = ConnectionPair()
    d, lst = pair.dialer.ours, pair.listener.ours
    text = transcript(d, lst)
    assert (
        text
        == TRANSCRIPT_PREFIX
        + (
            f"dialer {A_POD} {A_NODE.public_b64} {'d' * 22} link\n"
            f"listener {B_POD} {B_NODE.public_b64} {'l' * 22} link"
        ).encode()
    )
    assert transcript_nonce(d, lst) != transcript_nonce(lst, d)
    assert len(transcript_nonce(d, lst)) == 43


# --- handshake: HELLO -------------------------------------------------------------------


def hello_from_listener(**change: Any) -> list[SyncEvent]:
    pair = ConnectionPair()
    pair.dialer.start()
    pair.dialer.data_to_send()
    info = msgspec.structs.replace(pair.listener.ours, **change)
    events = pair.dialer.receive(encode_frame(Hello(info)), now_ms=NOW)
    if isinstance(events[0], ConnectionFailed):
        assert_failed(events, pair.dialer, events[0].reason)
    return events


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": VERSION + 1}, "unsupported"),
        ({"v": 0}, "unsupported"),
        ({"node_key": A_NODE.public_b64}, "invalid:hello:self"),
        ({"pod": A_POD}, "invalid:hello:pod"),
    ],
)
def test_a_hello_refused_by_the_machine(change: dict[str, Any], reason: str) -> None:
    failed = only(hello_from_listener(**change))
    assert isinstance(failed, ConnectionFailed) and failed.reason == reason


def test_a_hello_in_once_mode_with_unknown_fields() -> None:
    pair = ConnectionPair(once=True)
    pair.listener.start()
    pair.listener.data_to_send()
    pair.dialer.start()
    (hello,) = pair.dialer.data_to_send()
    assert json.loads(hello)[1]["mode"] == "once"
    newer = hello.replace(b'{"v":1,', b'{"from_the_future":{"x":[1]},"v":1,', 1)  # ignored
    assert newer != hello
    got = only(pair.listener.receive(newer, now_ms=NOW))
    assert got == PeerHello(A_POD, A_NODE.public_b64, "store-a", 10, ROSTER_A, True)


def test_once_mode_authenticates_and_is_bound_by_the_transcript() -> None:
    pair = opened(once=True)
    assert pair.dialer.phase is Phase.OPEN
    link = msgspec.structs.replace(pair.dialer.ours, mode="link")
    assert transcript_nonce(pair.dialer.ours, pair.listener.ours) != transcript_nonce(
        link, pair.listener.ours
    )


def test_refuse_tells_the_peer_and_closes() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.listener.refuse("unauthorized", "pod not on the allowlist")
    assert pair.listener.phase is Phase.CLOSED
    assert pair.listener.closed_reason == "unauthorized"
    assert pair.pump(pair.listener) == [NoticeReceived("unauthorized", "pod not on the allowlist")]
    pair.dialer.accept_peer(now_ms=NOW)
    assert pair.pump(pair.dialer) == []  # CLOSED: receive returns nothing
    assert pair.listener.data_to_send() == []


# --- notice and close ------------------------------------------------------------------


def test_notice_does_not_close() -> None:
    early = ConnectionPair().dialer
    early.notice("maintenance")  # allowed before start, too
    assert drain(early) == [Notice("maintenance", "")]
    assert early.phase is Phase.START
    pair = opened()
    pair.dialer.notice("rate-limited", "slow down")
    assert pair.dialer.phase is Phase.OPEN
    assert pair.pump(pair.dialer) == [NoticeReceived("rate-limited", "slow down")]
    assert pair.listener.phase is Phase.OPEN
    assert pair.verbs()[-1] == ("dialer", "NOTICE")


def test_close_sends_one_last_notice() -> None:
    pair = opened()
    pair.dialer.close("shutdown", "the node is stopping")
    assert pair.dialer.phase is Phase.CLOSED
    assert pair.dialer.closed_reason == "shutdown"
    pair.dialer.close("again")  # a second close is a no-op
    assert pair.pump(pair.dialer) == [NoticeReceived("shutdown", "the node is stopping")]
    assert pair.dialer.receive(encode_frame(Notice("x")), now_ms=NOW) == []


def test_a_long_failure_message_is_cut_to_fit_a_notice() -> None:
    pair = opened()
    pair.dialer.close("shutdown", "m" * 5000)
    (notice,) = pair.dialer.data_to_send()
    assert decode_frame(notice) == Notice("shutdown", "m" * 1024)


# --- decode_frame ----------------------------------------------------------------------

KEY = A_POD
SIG = "A" * 86


@pytest.mark.parametrize(
    "frame",
    [
        Hello(
            HelloInfo(
                v=1,
                pod=KEY,
                node_key=KEY,
                nonce="n" * 16,
                store="s",
                cursor=0,
                roster=tuple(msgspec.Raw(r) for r in ROSTER_A),
                mode="once",
            )
        ),
        Hello(HelloInfo(v=1, pod=KEY, node_key=KEY, nonce="n" * 128, store="s" * 64, cursor=7)),
        Auth(SIG, 2**53),
        Want(WantRequest()),
        Want(WantRequest(after=12, store="store-x")),
        Want(WantRequest(vector=(VectorEntry(KEY, KEY, "public", 3, KEY),))),
        CaughtUp(9),
        CaughtUp(9, (LogPosition(KEY, KEY, "peers", 1),)),
        Ack(4),
        Ack(4, {"invalid:sig": 2, "duplicate": 1}),
        Notice("rate-limited"),
        Notice("x" * 128, "é" * 1024),
    ],
    ids=lambda f: type(f).__name__,
)
def test_every_frame_round_trips_as_bytes_and_text(frame: Frame) -> None:
    data = encode_frame(frame)
    assert decode_frame(data) == frame
    assert decode_frame(data.decode()) == frame
    assert json.loads(data)[0] == type(frame).__struct_config__.tag


@pytest.mark.parametrize("envelopes", [(), B_EVENTS[:1], B_EVENTS])
def test_events_frames_round_trip_without_re_encoding(envelopes: tuple[bytes, ...]) -> None:
    data = events_frame(42, envelopes)
    frame = decode_frame(data)
    assert isinstance(frame, Events)
    assert frame.upto == 42
    assert tuple(bytes(e) for e in frame.events) == envelopes
    assert json.loads(data) == ["EVENTS", 42, [json.loads(e) for e in envelopes]]


def test_the_verbs_are_the_frames() -> None:
    assert tuple(t.__struct_config__.tag for t in FRAME_TYPES) == VERBS


def test_too_large_counts_utf8_bytes() -> None:
    assert decode_frame(b'["ACK",1]', max_bytes=9) == Ack(1)
    with pytest.raises(FrameError) as exc:
        decode_frame(b'["ACK",1]', max_bytes=8)
    assert exc.value.reason == "too-large"
    text = '["NOTICE","é"]'  # 14 characters, 15 bytes
    assert decode_frame(text, max_bytes=15) == Notice("é")
    with pytest.raises(FrameError, match="too-large"):
        decode_frame(text, max_bytes=14)
    with pytest.raises(FrameError, match="too-large"):
        decode_frame(b" " * (MAX_FRAME_BYTES + 1))


def hello_json(**fields: Any) -> str:
    info = {"v": 1, "pod": KEY, "node_key": KEY, "nonce": "n" * 16, "store": "s", "cursor": 0}
    info.update(fields)
    return json.dumps(["HELLO", {k: v for k, v in info.items() if v is not None}])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # not JSON at all
        (b"", "invalid:frame:json"),
        (b"[", "invalid:frame:json"),
        (b'["ACK",1] x', "invalid:frame:json"),
        (b"\xff", "invalid:frame:json"),
        ('["NOTICE","\ud800"]', "invalid:frame:json"),  # a lone surrogate in text
        (b"[" * 10_000 + b"]" * 10_000, "invalid:frame:json"),
        # not [VERB, ...]
        (b"{}", "invalid:frame:verb"),
        (b'"HELLO"', "invalid:frame:verb"),
        (b"[]", "invalid:frame:verb"),
        (b"[1]", "invalid:frame:verb"),
        (b'["PING"]', "invalid:frame:verb"),
        (b'["hello",{}]', "invalid:frame:verb"),
        (b'["AUTH"]', "invalid:frame:verb"),
        # a field, named by its path
        (b'["AUTH",1,2]', "invalid:frame:[1]"),
        (b'["AUTH","' + SIG.encode() + b'",-1]', "invalid:frame:[2]"),
        (b'["AUTH","' + SIG.encode() + b'",9007199254740993]', "invalid:frame:[2]"),
        (b'["AUTH","' + SIG[:-1].encode() + b'B",1]', "invalid:frame:[1]"),  # not canonical
        (b'["HELLO",{}]', "invalid:frame:[1]"),
        (hello_json(pod="x"), "invalid:frame:[1].pod"),
        (hello_json(nonce="n" * 15), "invalid:frame:[1].nonce"),
        (hello_json(nonce="n" * 16 + "\n"), "invalid:frame:[1].nonce"),
        (hello_json(store=""), "invalid:frame:[1].store"),
        (hello_json(cursor=-1), "invalid:frame:[1].cursor"),
        (hello_json(mode="forever"), "invalid:frame:[1].mode"),
        (hello_json(roster=[{}] * 65), "invalid:frame:[1].roster"),
        (b'["WANT",{"since":1}]', "invalid:frame:[1]"),  # WANT knows its fields
        (b'["WANT",{"store":"' + b"s" * 65 + b'"}]', "invalid:frame:[1].store"),
        (
            json.dumps(["WANT", {"vector": [[KEY, KEY, "pod-ish", 1, KEY]]}]),
            "invalid:frame:[1].vector[0][2]",
        ),
        (
            json.dumps(["WANT", {"vector": [[KEY, KEY, "public", -1, KEY]]}]),
            "invalid:frame:[1].vector[0][3]",
        ),
        (b'["EVENTS",-1,[]]', "invalid:frame:[1]"),
        (b'["EVENTS",1,{}]', "invalid:frame:[2]"),
        (b'["EVENTS",1,[' + b",".join([b"{}"] * 1001) + b"]]", "invalid:frame:[2]"),
        (json.dumps(["CAUGHT-UP", 1, [[KEY, KEY, "public"]]]), "invalid:frame:[2][0]"),
        (b'["ACK",1,{"duplicate":-1}]', "invalid:frame:[2][...]"),
        (b'["ACK",1,{"' + b"r" * 65 + b'":1}]', "invalid:frame:[2]"),  # a dict key's path
        (b'["NOTICE",1]', "invalid:frame:[1]"),
        (b'["NOTICE","' + b"r" * 129 + b'"]', "invalid:frame:[1]"),
        (b'["NOTICE","r","' + b"m" * 1025 + b'"]', "invalid:frame:[2]"),
    ],
    ids=lambda v: repr(v[:40]) if isinstance(v, bytes | str) else v,
)
def test_bad_frames_and_their_reasons(data: bytes | str, reason: str) -> None:
    with pytest.raises(FrameError) as exc:
        decode_frame(data)
    assert exc.value.reason == reason
    assert str(exc.value).startswith(f"{reason}: ")
    assert len(exc.value.message) <= 200


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_any_bytes_only_frame_errors(data: bytes | str) -> None:
    try:
        frame = decode_frame(data)
    except FrameError as exc:
        assert exc.reason.startswith("invalid:frame:")
    else:
        assert isinstance(frame, Hello | Auth | Want | Events | CaughtUp | Ack | Notice)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from([KEY, SIG, "public", "peers", "pod", "n" * 16]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["v", "pod", "after", "vector", "store", "x"]), inner)
    ),
    max_leaves=8,
)
FRAMES = st.tuples(st.sampled_from([*VERBS, "PING", ""]), st.lists(JSON, max_size=3)).map(
    lambda t: json.dumps([t[0], *t[1]])
)


@settings(max_examples=200, deadline=None)
@given(FRAMES)
def test_fuzz_json_arrays_only_frame_errors(data: str) -> None:
    try:
        decode_frame(data)
    except FrameError as exc:
        assert exc.reason.startswith("invalid:frame:")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(FRAMES, st.binary(max_size=50)), min_size=1, max_size=3))
def test_fuzz_receive_never_raises(messages: list[bytes | str]) -> None:
    pair = opened()
    pair.dialer.send_want(after=0)
    for data in messages:
        events = pair.dialer.receive(data, now_ms=NOW)
        assert all(isinstance(e, SyncEvent) for e in events)
        if any(isinstance(e, ConnectionFailed) for e in events):
            assert pair.dialer.phase is Phase.CLOSED


# --- which logs flow where ----------------------------------------------------------------


def test_shareable() -> None:
    assert shareable(LogKey(C_POD, C_POD, "public"), sender_pod=B_POD)
    assert shareable(LogKey(B_POD, B_POD, "peers"), sender_pod=B_POD)
    assert not shareable(LogKey(C_POD, C_POD, "peers"), sender_pod=B_POD)
    assert not shareable(LogKey(B_POD, B_POD, "pod"), sender_pod=B_POD)


def test_vector_for_names_only_what_the_peer_may_send() -> None:
    heads = {
        LogKey(A_POD, A_POD, "public"): LogState(1, X, 0),
        LogKey(A_POD, A_POD, "peers"): LogState(2, X, 0),  # our peers log: not theirs to send
        LogKey(A_POD, A_POD, "pod"): LogState(3, X, 0),
        LogKey(B_POD, B_POD, "public"): LogState(4, Y, 0),
        LogKey(B_POD, B_POD, "peers"): LogState(5, Y, 0),
        LogKey(B_POD, B_POD, "pod"): LogState(6, Y, 0),
        LogKey(C_POD, C_POD, "peers"): LogState(7, Z, 0),  # a third pod's: never revealed
        LogKey(C_POD, C_POD, "public"): LogState(8, Z, 0),
    }
    vector = vector_for(heads, peer_pod=B_POD)
    assert set(vector) == {
        VectorEntry(A_POD, A_POD, "public", 1, X),
        VectorEntry(B_POD, B_POD, "public", 4, Y),
        VectorEntry(B_POD, B_POD, "peers", 5, Y),
        VectorEntry(C_POD, C_POD, "public", 8, Z),
    }
    assert [e.log for e in vector] == sorted(e.log for e in vector)
    assert vector_for({}, peer_pod=B_POD) == ()


def test_plan_catch_up() -> None:
    # We are B, the sender.
    lacks = LogKey(B_POD, B_POD, "public")
    behind = LogKey(B_POD, B_POD, "peers")
    ahead = LogKey(A_POD, A_POD, "public")
    same = LogKey(C_POD, "S" * 43, "public")
    forked = LogKey(C_POD, C_POD, "public")
    empty = LogKey(A_POD, "E" * 43, "public")
    ours = {
        lacks: LogState(5, X, 0),
        behind: LogState(5, X, 0),
        ahead: LogState(5, X, 0),
        same: LogState(4, Y, 0),
        forked: LogState(4, Y, 0),
        empty: LogState(2, Y, 0),
        LogKey(B_POD, B_POD, "pod"): LogState(9, Z, 0),  # never shared
        LogKey(C_POD, C_POD, "peers"): LogState(9, Z, 0),  # not ours to share
    }
    theirs = [
        VectorEntry(B_POD, B_POD, "peers", 3, Z),
        VectorEntry(A_POD, A_POD, "public", 7, Z),
        VectorEntry(C_POD, "S" * 43, "public", 4, Y),
        VectorEntry(C_POD, C_POD, "public", 4, Z),
        VectorEntry(A_POD, "E" * 43, "public", 0, Z),
        VectorEntry(B_POD, B_POD, "pod", 1, Z),  # a receiver cannot get pod logs by asking
        VectorEntry(C_POD, C_POD, "peers", 1, Z),
        VectorEntry(C_POD, "Q" * 43, "public", 1, Z),  # a log we do not hold
    ]
    plan = plan_catch_up(ours, theirs, our_pod=B_POD)
    assert sorted(plan.ranges) == sorted([(*lacks, 0), (*behind, 3), (*empty, 0)])
    assert plan.compare == {(*behind, 3): Z}
    assert plan.forks == (LogPosition(*forked, 4),)
    # Nothing we hold: nothing to send; nothing they hold: everything shareable.
    assert plan_catch_up({}, theirs, our_pod=B_POD) == CatchUpPlan((), {}, ())
    everything = plan_catch_up(ours, [], our_pod=B_POD)
    assert {r[:3] for r in everything.ranges} == {lacks, behind, ahead, same, forked, empty}
    assert all(r[3] == 0 for r in everything.ranges)
    assert everything.compare == {} and everything.forks == ()
    # A log at seq 0 has nothing to send, whatever the receiver says.
    nothing = LogKey(B_POD, "N" * 43, "public")
    for vector in ([], [VectorEntry(*nothing, 0, X)]):
        assert plan_catch_up({nothing: LogState(0, X, 0)}, vector, our_pod=B_POD).ranges == ()


def test_with_compared_turns_differing_ids_into_forks() -> None:
    log1 = LogKey(B_POD, B_POD, "peers")
    log2 = LogKey(B_POD, B_POD, "public")
    log3 = LogKey(C_POD, C_POD, "public")
    earlier_fork = LogPosition(C_POD, "F" * 43, "public", 2)
    plan = CatchUpPlan(
        ranges=((*log1, 3), (*log2, 2), (*log3, 0)),
        compare={(*log1, 3): X, (*log2, 2): Y},
        forks=(earlier_fork,),
    )
    same = with_compared(plan, {(*log1, 3): X, (*log2, 2): Y})
    assert same == CatchUpPlan(plan.ranges, {}, (earlier_fork,))
    # log1's receiver holds another event at seq 3: a fork; its range is dropped.
    forked = with_compared(plan, {(*log1, 3): Z, (*log2, 2): Y})
    assert forked == CatchUpPlan(
        ((*log2, 2), (*log3, 0)), {}, (earlier_fork, LogPosition(*log1, 3))
    )
    # An id we could not look up is no evidence of a fork.
    assert with_compared(plan, {}).ranges == plan.ranges


def test_plan_then_compare_end_to_end() -> None:
    log = LogKey(B_POD, B_POD, "public")
    plan = plan_catch_up({log: LogState(5, X, 0)}, [VectorEntry(*log, 2, Y)], our_pod=B_POD)
    assert plan.ranges == ((*log, 2),) and plan.compare == {(*log, 2): Y}
    assert with_compared(plan, {(*log, 2): Y}).ranges == ((*log, 2),)
    assert with_compared(plan, {(*log, 2): Z}) == CatchUpPlan((), {}, (LogPosition(*log, 2),))
