"""A fake peer node for attack tests: a pod that exists only in the test, on a real websocket.

``FakePod`` is a pod's keys and its attestation roster (``pod.created`` and ``node.key``,
public, signed by the root — what ``kith init`` writes). ``FakePeer`` dials a real
``kith serve`` at ``/v1/federation`` and drives the real sans-I/O
``protocol.federation.FederationConnection`` (as the dialer) over the ``websockets``
asyncio client; it answers the node's EVENTS with ACKs by itself. ``send_raw`` bypasses the
machine (floods, malformed frames); from then on received frames are only recorded.

>>> pod = FakePod()
>>> len(pod.roster), pod.pod == pod.root.public_b64
(2, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import websockets

from protocol import federation as fed
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, decode_envelope, encode_envelope, parse_event, sign_event


def now_ms() -> int:
    return int(time.time() * 1000)


class Log:
    """Signs consecutive events of one log ``(pod, author, scope)``."""

    def __init__(self, key: SigningKey, pod: str, scope: str = "public") -> None:
        self.key = key
        self.pod = pod
        self.scope = scope
        self.seq = 0
        self.prev: str | None = None

    def envelope(self, kind: str, body: Any, *, advance: bool = True) -> Envelope:
        """The next event of the log; ``advance=False`` leaves its place free (for a bad copy)."""
        env = sign_event(
            self.key,
            pod=self.pod,
            scope=self.scope,  # type: ignore[arg-type]
            seq=self.seq + 1,
            prev=self.prev,
            ts=now_ms(),
            kind=kind,
            body=body,
        )
        if advance:
            self.seq += 1
            self.prev = event_id(env)
        return env

    def sign(self, kind: str, body: Any, *, advance: bool = True) -> bytes:
        """Like ``envelope``, as wire bytes."""
        return encode_envelope(self.envelope(kind, body, advance=advance))


def event_id(env: Envelope | bytes) -> str:
    """The id of an envelope (or of its wire bytes)."""
    if isinstance(env, bytes):
        env = decode_envelope(env)
    return parse_event(env).id


class FakePod:
    """A pod's root key (its id), a node key and the roster events that attest it."""

    def __init__(
        self,
        name: str = "Fake pod",
        node: SigningKey | None = None,
        root: SigningKey | None = None,
    ) -> None:
        self.root = root or SigningKey.generate()
        self.node = node or SigningKey.generate()
        self.pod = self.root.public_b64
        self.store = b64e(os.urandom(12))
        self.root_log = Log(self.root, self.pod, "public")
        self.created = self.root_log.sign("pod.created", {"name": name})
        self.node_key = self.root_log.sign("node.key", {"key": self.node.public_b64})

    @property
    def roster(self) -> list[bytes]:
        """The attestation a HELLO carries (and the first events a peer sends)."""
        return [self.created, self.node_key]


class FakePeer:
    """A dialer of ``FakePod`` to ``ws://127.0.0.1:PORT/v1/federation``.

    Every frame the node sends is decoded and kept in ``frames`` (NOTICEs also in
    ``notices``, ACKs of our EVENTS in ``acks``); until ``send_raw`` is used, each is also
    fed to the machine, which answers (AUTH, ACKs). ``tamper_auth`` may rewrite our AUTH.
    """

    def __init__(
        self,
        port: int,
        pod: FakePod,
        *,
        node: SigningKey | None = None,
        roster: list[bytes] | None = None,
        auto_accept: bool = True,
        tamper_auth: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.url = f"ws://127.0.0.1:{port}/v1/federation"
        self.pod = pod
        self.conn = fed.FederationConnection(
            fed.Role.DIALER,
            fed.Identity(pod.pod, node or pod.node, pod.store),
            nonce=b64e(os.urandom(18)),
            cursor=0,
            roster=pod.roster if roster is None else roster,
        )
        self.auto_accept = auto_accept
        self.tamper_auth = tamper_auth
        self.ws: Any = None
        self.raw = False
        self.frames: list[fed.Frame] = []
        self.sent: list[bytes] = []
        self.notices: list[fed.Notice] = []
        self.acks: list[fed.Ack] = []
        self.received_ids: set[str] = set()
        self.hello: fed.PeerHello | None = None
        self.authenticated = False
        self.wanted = False  # the node sent us its WANT: we may send EVENTS
        self.caught_up = False  # the node's catch-up of what we asked is complete
        self.closed = False
        self.failures: list[fed.ConnectionFailed] = []
        self.upto = 0  # our (fake) commit cursor

    async def __aenter__(self) -> FakePeer:
        self.ws = await websockets.connect(
            self.url,
            max_size=fed.MAX_FRAME_BYTES,
            open_timeout=5,
            close_timeout=2,
            ping_interval=None,
            compression=None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.ws.close()

    # -- sending ------------------------------------------------------------------------

    async def send_raw(self, data: bytes | str) -> None:
        """Send one message as it is, bypassing the machine (which is not fed any more)."""
        self.raw = True
        await self._send(data)

    async def _send(self, data: bytes | str) -> None:
        # A send may fail when the node already closed; what it sent before is still read.
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(data)

    async def flush(self) -> None:
        """Send what the machine queued."""
        for frame in self.conn.data_to_send():
            if frame.startswith(b'["AUTH"') and self.tamper_auth is not None:
                frame = self.tamper_auth(frame)
            self.sent.append(frame)
            await self._send(frame)

    # -- receiving ----------------------------------------------------------------------

    async def recv(self, timeout: float = 10.0) -> fed.Frame | None:
        """The node's next frame (None once the connection is closed)."""
        try:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed:
            self.closed = True
            return None
        except TimeoutError:
            notices = [n.reason for n in self.notices]
            raise AssertionError(
                f"nothing from the node in {timeout:.1f} s (notices {notices})"
            ) from None
        frame = fed.decode_frame(data)  # a node's frames always decode
        self.frames.append(frame)
        if isinstance(frame, fed.Notice):
            self.notices.append(frame)
        elif isinstance(frame, fed.Ack):
            self.acks.append(frame)
        elif isinstance(frame, fed.Events):
            self.received_ids.update(event_id(bytes(e)) for e in frame.events)
        if not self.raw:
            for event in self.conn.receive(data, now_ms=now_ms()):
                await self._react(event)
            await self.flush()
        return frame

    async def _react(self, event: fed.SyncEvent) -> None:
        if isinstance(event, fed.PeerHello):
            self.hello = event
            if self.auto_accept:
                for more in self.conn.accept_peer(now_ms=now_ms()):
                    await self._react(more)
        elif isinstance(event, fed.Authenticated):
            self.authenticated = True
        elif isinstance(event, fed.WantReceived):
            self.wanted = True
        elif isinstance(event, fed.EventsReceived):
            self.conn.ack(event.upto)
        elif isinstance(event, fed.CaughtUpReceived):
            self.caught_up = True
        elif isinstance(event, fed.ConnectionFailed):
            self.failures.append(event)

    async def until(self, done: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        """Read frames until ``done()``; fail on a timeout or a close before it."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what or done}")
            if await self.recv(left) is None and not done():
                raise AssertionError(
                    f"closed before {what or done}: {[n.reason for n in self.notices]}"
                )

    async def close_reason(self, timeout: float = 15.0) -> str | None:
        """Read until the node closes the connection; the reason of its last NOTICE."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the node did not close the connection")
            await self.recv(left)
        return self.notices[-1].reason if self.notices else None

    # -- moves --------------------------------------------------------------------------

    async def handshake(self) -> None:
        """HELLO, AUTH both ways: authenticated."""
        self.conn.start()
        await self.flush()
        await self.until(lambda: self.authenticated, what="authenticated")

    async def start_sync(self) -> None:
        """Ask the node for everything (vector ``[]``); wait for the node's own WANT."""
        self.conn.send_want(vector=())
        await self.flush()
        await self.until(lambda: self.wanted, what="the node's WANT")

    async def send_events(self, envelopes: list[bytes]) -> dict[str, int]:
        """One EVENTS frame through the machine; the node's ACK's ``rejected`` counts."""
        self.upto += 1
        seen = len(self.acks)
        self.conn.send_events(self.upto, envelopes)
        await self.flush()
        await self.until(lambda: len(self.acks) > seen, what="an ACK")
        return dict(self.acks[seen].rejected)

    async def send_oversized(self, size: int, timeout: float = 10.0) -> int:
        """Send one message of ``size`` bytes; the code of the close the node answers with.

        The node stops reading at the header of a message over its limit, so the rest never
        drains: once its close frame is in, the test drops the TCP connection rather than
        wait out the node's closing-handshake timeout.
        """
        self.raw = True
        sending = asyncio.ensure_future(self._send(b"[" + b" " * (size - 2) + b"]"))
        deadline = time.monotonic() + timeout
        try:
            while self.ws.protocol.close_rcvd is None:
                if time.monotonic() > deadline:
                    raise AssertionError("the node did not close on an oversized message")
                await asyncio.sleep(0.01)
            code: int = self.ws.protocol.close_rcvd.code
        finally:
            self.ws.transport.abort()
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await sending
        self.closed = True
        return code

    async def send_caught_up(self) -> None:
        """Our catch-up for the node is complete (up to our cursor): the link goes live."""
        self.conn.send_caught_up(self.upto)
        await self.flush()
