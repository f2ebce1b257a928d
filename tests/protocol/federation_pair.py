"""Two federation endpoints paired in memory (h11's ``ConnectionPair``), for the machine's tests.

A DIALER of pod A and a LISTENER of pod B. ``pump(conn)`` delivers what one end queued to the
other and returns the events the other end reported; ``wire`` records every frame that crossed,
decoded, so a test can assert what was actually sent.

>>> pair = ConnectionPair()
>>> pair.open()
>>> pair.dialer.phase is pair.listener.phase is Phase.OPEN
True
"""

from __future__ import annotations

import hashlib

from protocol.crypto import SigningKey
from protocol.envelope import encode_envelope, event_id, sign_event
from protocol.federation import (
    Authenticated,
    FederationConnection,
    Frame,
    Identity,
    PeerHello,
    Phase,
    Role,
    SyncEvent,
    decode_frame,
)

#: The clock every paired test runs at, unless it moves it.
NOW = 1_700_000_000_000


def signing_key(label: str) -> SigningKey:
    """A deterministic key named by ``label``."""
    return SigningKey.from_seed(hashlib.sha256(label.encode()).digest())


A_ROOT, B_ROOT, C_ROOT = (signing_key(f"root {p}") for p in "abc")
A_NODE, B_NODE, C_NODE = (signing_key(f"node {p}") for p in "abc")
A_POD, B_POD, C_POD = A_ROOT.public_b64, B_ROOT.public_b64, C_ROOT.public_b64
A = Identity(A_POD, A_NODE, "store-a")
B = Identity(B_POD, B_NODE, "store-b")
C = Identity(C_POD, C_NODE, "store-c")


def envelope(key: SigningKey, *, pod: str, seq: int, title: str = "soup") -> bytes:
    """A real signed ``public`` event's wire bytes (a chain of ``seq`` events by ``key``)."""
    prev = None
    data = b""
    for n in range(1, seq + 1):
        env = sign_event(
            key,
            pod=pod,
            scope="public",
            seq=n,
            prev=prev,
            ts=NOW + n,
            kind="need.posted",
            body={"title": f"{title} {n}"},
        )
        prev = event_id(env.head)
        data = encode_envelope(env)
    return data


#: What A's HELLO carries to attest its node key (any envelopes: the machine only carries them).
ROSTER_A = (envelope(A_ROOT, pod=A_POD, seq=1, title="pod"),)


class ConnectionPair:
    """A DIALER (pod A, cursor 10) and a LISTENER (pod B, cursor 20) wired to each other."""

    def __init__(
        self,
        *,
        now_ms: int = NOW,
        dialer_nonce: str = "d" * 22,
        listener_nonce: str = "l" * 22,
        once: bool = False,
        window: int | None = None,
    ) -> None:
        extra = {} if window is None else {"window": window}
        self.now_ms = now_ms
        self.dialer = FederationConnection(
            Role.DIALER, A, nonce=dialer_nonce, cursor=10, roster=ROSTER_A, once=once, **extra
        )
        self.listener = FederationConnection(
            Role.LISTENER, B, nonce=listener_nonce, cursor=20, **extra
        )
        self.wire: list[tuple[Role, Frame]] = []

    def other(self, conn: FederationConnection) -> FederationConnection:
        """The end ``conn`` talks to."""
        return self.listener if conn is self.dialer else self.dialer

    def pump(self, src: FederationConnection, *, text: bool = False) -> list[SyncEvent]:
        """Deliver everything ``src`` queued to its peer (as text messages if ``text``)."""
        dst = self.other(src)
        events: list[SyncEvent] = []
        for data in src.data_to_send():
            self.wire.append((src.role, decode_frame(data)))
            events += dst.receive(data.decode() if text else data, now_ms=self.now_ms)
        return events

    def verbs(self) -> list[tuple[str, str]]:
        """``(sender role, verb)`` of every frame that crossed, in order."""
        return [(role.value, type(f).__struct_config__.tag) for role, f in self.wire]

    def hello(self) -> tuple[list[SyncEvent], list[SyncEvent]]:
        """Both start; both HELLOs cross. Returns (events at the dialer, at the listener)."""
        self.dialer.start()
        self.listener.start()
        at_listener = self.pump(self.dialer)
        at_dialer = self.pump(self.listener)
        return at_dialer, at_listener

    def open(self) -> None:
        """HELLO and AUTH both ways: both ends OPEN (asserting each step on the way)."""
        at_dialer, at_listener = self.hello()
        assert [type(e) for e in at_dialer + at_listener] == [PeerHello, PeerHello]
        assert self.dialer.accept_peer(now_ms=self.now_ms) == []
        assert self.listener.accept_peer(now_ms=self.now_ms) == []
        at_listener = self.pump(self.dialer)
        at_dialer = self.pump(self.listener)
        assert [type(e) for e in at_dialer + at_listener] == [Authenticated, Authenticated]
        assert self.dialer.phase is self.listener.phase is Phase.OPEN
