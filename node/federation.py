"""Federation: this node's websockets to its peers' nodes (``/v1/federation``).

A thin adapter around the sans-I/O ``protocol.federation.FederationConnection``: it moves
frames between the machine and a websocket, and answers the machine's events with the
node's store, ingest and roster:

- **who**: a peer must be on the allowlist (``peers.json``, ``node/peers.py``) and prove a
  node key attested by its pod's roster (``node.key`` signed by the pod root);
- **catch-up**: the receiver asks ``WANT after <checkpoint>`` when it holds a checkpoint for
  the peer's store, otherwise ``WANT vector``; the sender answers from the store in its
  commit order (cursor order is causal: a roster event always precedes what it admits);
- **live**: the store is each peer's queue. A sender wakes on every commit and reads what
  came after what it last sent, so a slow peer simply lags (it falls back to reading the
  store) and never holds up ingestion or other peers;
- **what flows**: ``may_read`` for a peer reader, plus the forwarding rule (``public``
  multi-hop, never echoed to the peer it came from; ``peers`` only our own pod's; ``pod``
  never) — applied in the store query and checked again on every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from node.access import Reader, visible
from node.context import NodeContext
from node.ingest import Committed, Result
from node.peers import PeerEntry, PeerList, Refusal, backoff_reason
from node.roster import Roster
from node.store.base import FederatedEvent
from protocol import federation as fed
from protocol.codec import b64e
from protocol.envelope import check_body, decode_envelope, parse_event
from protocol.kinds import validate_body
from protocol.reasons import KithError, RejectedEvent
from protocol.validate import Authorization, check_signature, from_peer

log = logging.getLogger("kith.federation")

#: Stored events read per store page (and at most per EVENTS frame).
PAGE = 1000
#: Envelope bytes packed into one EVENTS frame (well under the 4 MiB websocket limit).
FRAME_BUDGET = 1024 * 1024
#: Reconnect backoff: first delay, cap, jitter fraction.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
BACKOFF_JITTER = 0.5
#: Keepalive on peer websockets: a cut link is noticed within about interval + timeout.
PING_INTERVAL_S = 5.0
PING_TIMEOUT_S = 10.0
#: While frames stream in, the checkpoint is written at most this often.
CHECKPOINT_EVERY_S = 1.0
#: A peer may restart its catch-up (WANT) this often: burst, then one per this many s.
WANT_BURST = 4
WANT_EVERY_S = 10.0
#: A peer whose events are mostly rejected is flooding: disconnect after this many.
MAX_REJECTED = 5000
#: The roster kinds that attest a node key (signed by the pod's root).
ATTEST_KINDS = ("pod.created", "pod.root_rotated", "node.key")


class Channel(Protocol):
    """One websocket, whichever library holds it."""

    async def send(self, data: bytes) -> None:
        """Send one message."""

    async def recv(self) -> bytes | str | None:
        """The next message, or None once the connection is gone."""

    async def close(self, code: int, reason: str) -> None:
        """Close it."""


def _rejections(results: list[Result]) -> dict[str, int]:
    """How many of a frame's events were refused, by reason (what its ACK carries)."""
    rejected: dict[str, int] = {}
    for result in results:
        if not result.ok:
            key = result.reason or "rejected"
            rejected[key] = rejected.get(key, 0) + 1
    return rejected


@dataclass
class PeerStatus:
    """What ``/.well-known/kith`` and ``kith peer list`` show for one peer."""

    pod: str
    state: str = "idle"  # idle · connecting · handshake · catching-up · live · backoff
    direction: str | None = None  # dialled · accepted
    since_ms: int | None = None
    last_error: str | None = None
    their_cursor: int = 0  # the peer's commit cursor, as it last told us
    received_upto: int = 0  # their cursor up to which we hold everything (checkpoint)
    acked_upto: int = 0  # our cursor up to which they acknowledged
    covered_upto: int = 0  # our cursor up to which they hold all we may send them
    received: int = 0
    sent: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    forks: int = 0
    retries: int = 0

    def as_info(self, our_cursor: int, released: int = 0) -> dict[str, Any]:
        """The JSON shape announced for this peer (no URLs: topology stays private);
        ``released``: its events that were held and stored later (counted as received)."""
        return {
            "pod": self.pod,
            "state": self.state,
            "direction": self.direction,
            "since_ms": self.since_ms,
            "lag": {
                "in": max(0, self.their_cursor - self.received_upto),
                "out": max(0, our_cursor - self.covered_upto) if self.state == "live" else None,
            },
            "received": self.received + released,
            "sent": self.sent,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "rejected": dict(self.rejected),
            "forks": self.forks,
            "last_error": self.last_error,
        }


@dataclass
class SyncSummary:
    """What a one-shot ``kith sync`` did."""

    pod: str = ""
    received: int = 0
    sent: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    round_trips: int = 0


Progress = Callable[[str, int, int], None]  # (direction "in"/"out", events, their cursor)


class AttestationError(KithError):
    """A peer's node key is not attested by its pod's roster."""


def attested(pod: str, node_key: str, envelopes: Sequence[bytes], known: Roster) -> None:
    """Check that ``node_key`` is a node key of ``pod``, from the HELLO's roster events.

    Each event must be signed, public, of the pod and by one of its roots; they are folded
    into a scratch roster in log order. If this node already holds that pod's roster, it
    must agree (a revoked key stays revoked whatever the HELLO omits).
    """
    scratch = Roster()
    events = []
    for raw in envelopes:
        try:
            event = parse_event(decode_envelope(raw))
            check_signature(event)
            body = check_body(event)
        except RejectedEvent as exc:
            raise AttestationError(f"a roster event in HELLO is invalid ({exc.reason})") from None
        head = event.head
        if head.pod != pod or head.scope != "public" or head.kind not in ATTEST_KINDS:
            raise AttestationError("HELLO's roster holds only the pod's root events")
        events.append((head, body))
    # Genesis root first, then by log position: rotations name the next root.
    events.sort(key=lambda hb: (hb[0].author != pod, hb[0].author, hb[0].seq))
    for head, body in events:
        if scratch.authorize(head) is not Authorization.YES:
            raise AttestationError(f"{head.kind} in HELLO is not signed by the pod's root")
        try:
            struct = validate_body(head.kind, body) if body is not None else None
        except RejectedEvent as exc:
            raise AttestationError(f"{head.kind} in HELLO is malformed ({exc.reason})") from None
        scratch.apply(head, struct)
    roster = scratch.pods.get(pod)
    if roster is None or node_key not in roster.node_keys or not roster.is_active(node_key):
        raise AttestationError("the node key is not attested by the pod's roster")
    mine = known.pods.get(pod)
    if (
        mine is not None
        and mine.node_keys
        and not (node_key in mine.node_keys and mine.is_active(node_key))
    ):
        raise AttestationError("this node's copy of the pod's roster does not list that key")


class _TokenBucket:
    def __init__(self, burst: float, per_s: float) -> None:
        self.tokens = burst
        self.burst = burst
        self.per_s = per_s
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Session:
    """One authenticated (or authenticating) connection to one peer node."""

    def __init__(
        self,
        federation: Federation,
        channel: Channel,
        role: fed.Role,
        *,
        expect_pod: str | None = None,
        one_shot: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.fed = federation
        self.node = federation.node
        self.channel = channel
        self.role = role
        self.expect_pod = expect_pod
        self.one_shot = one_shot
        self.progress = progress
        self.conn = fed.FederationConnection(
            role,
            fed.Identity(self.node.pod, self.node.key, self.node.store.store_id),
            nonce=b64e(os.urandom(18)),
            cursor=federation.committed,
            roster=federation.attestation,
            once=one_shot,
        )
        self.peer_once = False
        self.pod: str | None = None
        self.status: PeerStatus | None = None
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._inbox: asyncio.Queue[fed.EventsReceived | fed.CaughtUpReceived] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._wants = _TokenBucket(WANT_BURST, 1 / WANT_EVERY_S)
        self._need_repair = False
        self._counted: weakref.WeakSet[asyncio.Task[list[Result]]] = weakref.WeakSet()
        self.caught_up_in = asyncio.Event()
        self.caught_up_out = asyncio.Event()
        self.summary = SyncSummary()
        self.started = time.monotonic()
        self.closed = asyncio.Event()
        self._forks: tuple[fed.LogPosition, ...] = ()
        self._sent_through = 0  # our cursor up to which everything sendable was sent
        self._unsaved = 0  # the peer's cursor we hold everything up to (maybe not yet saved)
        self._saved = 0
        self._saved_at = 0.0

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Handshake, sync, live — until the peer leaves or a rule is broken."""
        self.conn.start()
        await self.flush()
        worker = self._spawn(self._inbound_worker())
        try:
            while self.conn.phase is not fed.Phase.CLOSED:
                data = await self.channel.recv()
                if data is None:
                    break
                self._tally(bytes_in=len(data))
                for event in self.conn.receive(data, now_ms=self.node.ingest.now_ms()):
                    await self._handle(event)
                await self.flush()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            worker.cancel()
            for task in list(self._tasks):
                task.cancel()
            await self._finish()

    async def _finish(self) -> None:
        with contextlib.suppress(Exception):
            await self._checkpoint(0, force=True)
        with contextlib.suppress(Exception):
            await self.flush()
        with contextlib.suppress(Exception):
            await self.channel.close(
                1000 if self.conn.closed_reason in (None, "done") else 1008,
                (self.conn.closed_reason or "closed")[:120],
            )
        self.fed._session_ended(self)
        self.closed.set()

    async def flush(self) -> None:
        """Send what the machine has queued, in order."""
        async with self._send_lock:
            for frame in self.conn.data_to_send():
                await self.channel.send(frame)
                self._tally(bytes_out=len(frame))

    def close(self, reason: str, message: str = "") -> None:
        """Close from our side (shutdown, peer removed, duplicate connection)."""
        self.conn.close(reason, message)
        self._spawn(self._finish())

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the machine's events --------------------------------------------------------------

    async def _handle(self, event: fed.SyncEvent) -> None:
        if isinstance(event, fed.PeerHello):
            await self._on_hello(event)
        elif isinstance(event, fed.Authenticated):
            await self._on_authenticated(event)
        elif isinstance(event, fed.WantReceived):
            self._on_want(event)
        elif isinstance(event, fed.EventsReceived | fed.CaughtUpReceived):
            self._inbox.put_nowait(event)
        elif isinstance(event, fed.AckReceived):
            self._on_ack(event)
        elif isinstance(event, fed.NoticeReceived):
            # Reasons only: a notice's text is the peer's and may hold anything.
            log.info("peer %s: notice %s", _short(self.pod), event.reason)
            if self.status is not None:
                self.status.last_error = f"peer says {event.reason}"
            self._refused(("peer", event.reason))
        elif isinstance(event, fed.ConnectionFailed):
            log.warning("peer %s: %s", _short(self.pod), event.reason)
            if self.status is not None:
                self.status.last_error = f"{event.reason}: {event.message}"
            self._refused(("us", f"{event.reason}: {event.message}"))
            self.fed.count(f"session:{event.reason}")

    def _refused(self, refusal: Refusal) -> None:
        """Say why a dialled link ends before it is authenticated, where ``kith peer list``
        shows a peer in backoff (the first cause counts: the close that follows repeats it)."""
        if self.status is None and self.expect_pod is not None and not self.one_shot:
            status = self.fed.status_of(self.expect_pod)
            status.last_error = status.last_error or backoff_reason(refusal)

    async def _on_hello(self, hello: fed.PeerHello) -> None:
        entry = self.fed.peers.get(hello.pod)
        if self.expect_pod is not None and hello.pod != self.expect_pod:
            self._refused(("wrong-pod", hello.pod))
            self.conn.refuse("unauthorized", f"expected pod {self.expect_pod}, not {hello.pod}")
            return
        if entry is None and self.expect_pod is None:
            self.fed.count("refused:unlisted")
            self.conn.refuse("unauthorized", "this node does not federate with that pod")
            return
        try:
            attested(hello.pod, hello.node_key, hello.roster, self.node.ingest.roster)
        except AttestationError as exc:
            self.fed.count("refused:attestation")
            self._refused(("us", str(exc)))
            self.conn.refuse("unauthorized", str(exc))
            return
        self.pod = hello.pod
        self.peer_once = hello.once
        for event in self.conn.accept_peer(now_ms=self.node.ingest.now_ms()):
            await self._handle(event)

    async def _on_authenticated(self, auth: fed.Authenticated) -> None:
        if not self.fed._register(self):
            return
        side = self.one_shot or self.peer_once  # a one-shot sync must not clobber the link's
        status = self.status = PeerStatus(auth.pod) if side else self.fed.status_of(auth.pod)
        status.state = "catching-up"
        status.direction = "dialled" if self.role is fed.Role.DIALER else "accepted"
        status.since_ms = self.node.ingest.now_ms()
        status.their_cursor = auth.cursor
        status.last_error = None
        status.retries = 0
        self.summary.pod = auth.pod
        checkpoint = await self.node.store.get_checkpoint(auth.pod)
        if (
            checkpoint is not None
            and checkpoint.store == auth.store
            and (checkpoint.cursor <= auth.cursor)
        ):
            status.received_upto = checkpoint.cursor
            self.conn.send_want(after=checkpoint.cursor, store=auth.store)
            self.summary.round_trips += 1  # each WANT waits for its CAUGHT-UP
        else:
            self._send_vector_want(auth.pod)

    def _send_vector_want(self, pod: str) -> None:
        vector = fed.vector_for(self.node.ingest.heads, peer_pod=pod)
        self.conn.send_want(vector=vector)
        self.summary.round_trips += 1

    def _on_want(self, want: fed.WantReceived) -> None:
        if not self._wants.take():
            self.fed.count("flood:want")
            self.conn.close(
                "rate-limited", "too many WANTs: a catch-up restarts at most every 10 s"
            )
            return
        if self._sender is not None:
            self._sender.cancel()
        self.room.set()
        self._sender = self._spawn(self._send_loop(want))

    def _on_ack(self, ack: fed.AckReceived) -> None:
        if self.status is not None:
            self.status.acked_upto = max(self.status.acked_upto, ack.upto)
            if self.conn.unacked_sent == 0:
                self.status.covered_upto = max(self.status.covered_upto, self._sent_through)
        self.room.set()

    # -- receiving -------------------------------------------------------------------------

    async def _inbound_worker(self) -> None:
        """Start ingesting the peer's EVENTS frames in their (causal) order, overlapping:
        frame k+1 is decoded and verified while frame k is written. ``_settler`` answers
        them, strictly in order."""
        settling: asyncio.Queue[
            tuple[fed.EventsReceived, asyncio.Task[list[Result]]] | fed.CaughtUpReceived
        ] = asyncio.Queue()
        settler = self._spawn(self._settler(settling))
        try:
            while True:
                item = await self._inbox.get()
                if isinstance(item, fed.CaughtUpReceived):
                    settling.put_nowait(item)
                    continue
                assert self.pod is not None
                queued = asyncio.Event()
                task = asyncio.ensure_future(
                    self.node.ingest.submit(
                        list(item.events), from_peer(self.pod), on_queued=queued.set
                    )
                )
                # Counted the moment the writer answers, not when the frame is ACKed: a link
                # cut while a frame is written still stores it, and must still count it.
                task.add_done_callback(self._count)
                settling.put_nowait((item, task))
                # The writer must see this frame's events before the next frame's.
                waiter = asyncio.ensure_future(queued.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            settler.cancel()

    async def _settler(
        self,
        settling: asyncio.Queue[
            tuple[fed.EventsReceived, asyncio.Task[list[Result]]] | fed.CaughtUpReceived
        ],
    ) -> None:
        try:
            while True:
                item = await settling.get()
                if isinstance(item, fed.CaughtUpReceived):
                    await self._on_caught_up(item)
                    continue
                frame, task = item
                # Shielded: cancelling this settler (the link ended) must not cancel a write
                # already queued, whose events are stored anyway and are counted by ``_count``.
                results = await asyncio.shield(task)
                self._count(task)  # its done-callback may not have run yet
                await self._settle(frame, results)
                await self.flush()
        except (OSError, ConnectionError):
            pass
        except Exception:  # pragma: no cover - never leave a link silently stalled
            log.exception("peer %s: ingesting a frame failed", _short(self.pod))
            self.close("unavailable", "this node could not store the events; retry later")

    def _count(self, task: asyncio.Task[list[Result]]) -> None:
        """Tally one frame's results into the summary and the peer's status (and note a
        repair to ask for), whether or not the link is still there to ACK them; once per
        frame, from its done-callback or from the settler, whichever comes first."""
        if task in self._counted or task.cancelled() or task.exception() is not None:
            return
        self._counted.add(task)
        assert self.status is not None
        results = task.result()
        for result in results:
            if result.ok:
                if result.reason != "duplicate":
                    self._tally(received=1)
                if result.reason == "fork":
                    self.status.forks += 1
            elif result.reason == "gap" or (
                result.reason == "unauthorized" and (result.message or "").startswith("author not")
            ):
                self._need_repair = True  # held: ask again for what is missing
        self._tally(rejected=_rejections(results))

    async def _settle(self, frame: fed.EventsReceived, results: list[Result]) -> None:
        """Checkpoint and ACK one frame, its results already counted (``_count``)."""
        assert self.pod is not None and self.status is not None
        status = self.status
        rejected = _rejections(results)
        if self.conn.phase is fed.Phase.CLOSED:
            return
        await self._checkpoint(frame.upto)
        status.received_upto = max(status.received_upto, frame.upto)
        status.their_cursor = max(status.their_cursor, frame.upto)
        if self.progress is not None:
            self.progress("in", self.summary.received, status.their_cursor)
        self.conn.ack(frame.upto, rejected)
        if sum(self.summary.rejected.values()) > MAX_REJECTED:
            self.fed.count("flood:rejected")
            # Session.close, not the machine's: the receive loop may be idle in recv().
            self.close("rate-limited", f"more than {MAX_REJECTED} rejected events")

    async def _checkpoint(self, upto: int, *, force: bool = False) -> None:
        """Record durably how far we hold the peer's events: at most once a second while
        frames stream in (each write is a commit the writer must fsync between ingest groups),
        always at CAUGHT-UP and when the link ends. A crash loses at most a second of it,
        which only means a few events are offered again and answered ``duplicate``."""
        self._unsaved = max(self._unsaved, upto)
        now = time.monotonic()
        if self.pod is None or self.conn.peer is None or self._unsaved <= self._saved:
            return
        if not force and now - self._saved_at < CHECKPOINT_EVERY_S:
            return
        self._saved_at, self._saved = now, self._unsaved
        await self.node.store.set_checkpoint(
            self.pod, self.conn.peer.store, self._saved, self.node.ingest.now_ms()
        )

    async def _on_caught_up(self, done: fed.CaughtUpReceived) -> None:
        assert self.pod is not None and self.status is not None
        self.status.forks += len(done.forks)
        await self._checkpoint(done.upto, force=True)
        self.status.received_upto = max(self.status.received_upto, done.upto)
        self.status.their_cursor = max(self.status.their_cursor, done.upto)
        self.caught_up_in.set()
        if self._need_repair and self.conn.phase is fed.Phase.OPEN:
            self._need_repair = False
            self._send_vector_want(self.pod)
            await self.flush()
            return
        self._update_state()
        await self._maybe_done()

    # -- sending ---------------------------------------------------------------------------

    async def _send_loop(self, want: fed.WantReceived) -> None:
        assert self.pod is not None
        try:
            if want.vector is None:
                after = want.after or 0
                if want.store is not None and want.store != self.node.store.store_id:
                    after = 0  # a checkpoint of another store of ours: start over
                upto = await self._send_after(after, catching_up=True)
            else:
                upto = await self._send_vector(want.vector)
            self.conn.send_caught_up(upto, self._forks)
            await self.flush()
            self.caught_up_out.set()
            self._update_state()
            await self._maybe_done()
            await self._send_after(upto, catching_up=False)
        except (OSError, ConnectionError):
            pass
        except fed.LocalProtocolError:
            if self.conn.phase is not fed.Phase.CLOSED:  # pragma: no cover - a bug
                raise

    async def _send_after(self, after: int, *, catching_up: bool) -> int:
        """Send what came after ``after`` (our cursor); once caught up, forever (live)."""
        assert self.pod is not None
        while True:
            self.wake.clear()
            rows, upto = await self.node.store.federation_page(
                after, home_pod=self.node.pod, peer_pod=self.pod, limit=PAGE
            )
            if rows:
                await self._send_rows(rows, upto)
            after = max(after, upto)
            self._sent_through = after
            if self.conn.unacked_sent == 0 and self.status is not None:
                # Nothing in flight: they hold everything we may send up to here.
                self.status.covered_upto = max(self.status.covered_upto, after)
            if len(rows) < PAGE:
                if catching_up:
                    return after
                await self.wake.wait()

    async def _send_vector(self, vector: tuple[fed.VectorEntry, ...]) -> int:
        """Send exactly what the vector lacks, in our commit order, up to now."""
        assert self.pod is not None
        upto = self.fed.committed
        plan = fed.plan_catch_up(dict(self.node.ingest.heads), vector, our_pod=self.node.pod)
        if plan.compare:
            ids = await self.node.store.log_ids_at(list(plan.compare))
            plan = fed.with_compared(plan, ids)
        async for rows, _last in self.node.store.missing_events(plan.ranges, page=PAGE):
            rows = [r for r in rows if r.cursor <= upto]
            if rows:
                await self._send_rows(rows, rows[-1].cursor)
        if plan.forks:
            ids = await self.node.store.log_ids_at(
                [(f.pod, f.author, f.scope, f.seq) for f in plan.forks]
            )
            proofs = []
            for event_id in ids.values():
                stored = await self.node.store.get(event_id)
                if stored is not None:
                    proofs.append(
                        FederatedEvent(
                            stored.cursor,
                            stored.id,
                            stored.pod,
                            stored.author,
                            stored.scope,
                            stored.seq,
                            stored.kind,
                            stored.envelope,
                        )
                    )
            if proofs:
                await self._send_rows(proofs, self.conn.sent_upto)
        self._forks = plan.forks
        return max(upto, self.conn.sent_upto)

    async def _send_rows(self, rows: Sequence[FederatedEvent], upto: int) -> None:
        """Pack readable rows into EVENTS frames, waiting for window room between frames."""
        assert self.pod is not None and self.status is not None
        readable = visible(self.fed.reader_for(self.pod), rows)
        batch: list[bytes] = []
        size = 0
        for i, row in enumerate(readable):
            if batch and (size + len(row.envelope) > FRAME_BUDGET or len(batch) >= PAGE):
                await self._send_frame(readable[i - 1].cursor, batch)
                batch, size = [], 0
            batch.append(row.envelope)
            size += len(row.envelope)
        if batch:
            await self._send_frame(max(upto, self.conn.sent_upto), batch)

    async def _send_frame(self, upto: int, envelopes: list[bytes]) -> None:
        while not self.conn.can_send:
            if self.conn.phase is fed.Phase.CLOSED:
                raise ConnectionError("closed")
            self.room.clear()
            await self.room.wait()
        self.conn.send_events(max(upto, self.conn.sent_upto), envelopes)
        assert self.status is not None
        self._tally(sent=len(envelopes))
        await self.flush()
        if self.progress is not None:
            self.progress("out", self.summary.sent, self.status.their_cursor)

    # -- state -----------------------------------------------------------------------------

    def _tally(
        self,
        *,
        received: int = 0,
        sent: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
        rejected: dict[str, int] | None = None,
    ) -> None:
        """Count into this session's summary and, once authenticated, the peer's status
        (which outlives the session: it adds up every link to that peer)."""
        for counts in (self.summary, self.status):
            if counts is None:
                continue
            counts.received += received
            counts.sent += sent
            counts.bytes_in += bytes_in
            counts.bytes_out += bytes_out
            for key, n in (rejected or {}).items():
                counts.rejected[key] = counts.rejected.get(key, 0) + n

    @property
    def went_live(self) -> bool:
        """Both directions caught up: the link worked, whatever ended it afterwards."""
        return self.caught_up_in.is_set() and self.caught_up_out.is_set()

    def _update_state(self) -> None:
        if self.status is not None and self.went_live:
            self.status.state = "live"

    async def _maybe_done(self) -> None:
        """A one-shot sync ends when both directions are caught up and our frames acked."""
        if not self.one_shot or not (self.caught_up_in.is_set() and self.caught_up_out.is_set()):
            return
        while self.conn.unacked_sent and self.conn.phase is not fed.Phase.CLOSED:
            self.room.clear()
            await self.room.wait()
        self.summary.seconds = time.monotonic() - self.started
        self.conn.close("done", "one-shot sync complete")
        await self.flush()
        await self.channel.close(1000, "done")


def _short(pod: str | None) -> str:
    return (pod or "?")[:8]


class _WebsocketsChannel:
    """A dialled connection (the ``websockets`` library's asyncio client)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def recv(self) -> bytes | str | None:
        import websockets

        try:
            data: bytes | str = await self.ws.recv()
        except websockets.ConnectionClosed:
            return None
        return data

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


class LitestarChannel:
    """An accepted connection (Litestar's ASGI websocket)."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self._closed = False

    async def send(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionError("closed")
        await self.socket.send_bytes(data)

    async def recv(self) -> bytes | str | None:
        from litestar.exceptions import WebSocketDisconnect

        try:
            message = await self.socket.receive()
        except WebSocketDisconnect:
            return None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    async def close(self, code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self.socket.close(code=code, reason=reason)


class Federation:
    """Every peer link of one node: dialers, accepted sessions, status."""

    def __init__(self, node: NodeContext) -> None:
        self.node = node
        self.peers_path: Path = node.datadir.path / "peers.json"
        self.peers = PeerList()
        self._peers_mtime: tuple[int, int, int] | None = None
        self.sessions: dict[str, Session] = {}
        self.pending: set[Session] = set()
        self.statuses: dict[str, PeerStatus] = {}
        self.counters: dict[str, int] = {}
        self.attestation: tuple[bytes, ...] = ()
        self.committed = 0
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._dialing: dict[str, PeerEntry] = {}  # the entry each dialer was started with
        self._watcher: asyncio.Task[None] | None = None
        self._refresh: asyncio.Future[None] | None = None
        self._running = False

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, *, dial: bool = True) -> None:
        """Load the allowlist and our roster attestation; start dialling peers."""
        self.committed = await self.node.store.last_cursor()
        self.attestation = await self._attestation()
        self.node.ingest.listeners.append(self.on_commit)
        self._running = True
        self._reload_peers()
        if dial:
            self._sync_dialers()
            self._watcher = asyncio.create_task(self._watch_peers(), name="kith-peers")

    async def stop(self) -> None:
        """Close every link."""
        self._running = False
        if self._watcher is not None:
            self._watcher.cancel()
        for task in self._dialers.values():
            task.cancel()
        for session in [*self.sessions.values(), *self.pending]:
            session.conn.close("shutdown", "the node is stopping")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session._finish(), 2)
        for task in self._dialers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._dialers.clear()

    async def _attestation(self) -> tuple[bytes, ...]:
        from node.store.base import EventQuery

        rows = await self.node.store.query(
            EventQuery(kinds=ATTEST_KINDS, pods=(self.node.pod,), scopes=("public",), limit=64)
        )
        return tuple(r.envelope for r in rows)

    def on_commit(self, committed: list[Committed]) -> None:
        """Ingest listener: wake every live sender."""
        if committed:
            self.committed = max(self.committed, committed[-1].cursor)
            ours = self.node.pod
            if any(c.event.kind in ATTEST_KINDS and c.event.pod == ours for c in committed):
                self._refresh = asyncio.ensure_future(self._refresh_attestation())
        for session in self.sessions.values():
            session.wake.set()

    async def _refresh_attestation(self) -> None:
        self.attestation = await self._attestation()

    def count(self, key: str) -> None:
        """Count a federation-level happening (refusals, floods) for /metrics."""
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- the allowlist ---------------------------------------------------------------------

    def _reload_peers(self) -> bool:
        try:
            st = self.peers_path.stat()
            # Nanoseconds, inode and size: two saves within one coarse mtime tick still differ
            # (the CLI replaces the file, so each save is a new inode).
            mtime: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            mtime = None
        if mtime == self._peers_mtime:
            return False
        self._peers_mtime = mtime
        try:
            self.peers = PeerList.load(self.peers_path)
        except KithError as exc:
            log.error("peers.json: %s (keeping the previous allowlist)", exc)
            return False
        for pod, session in list(self.sessions.items()):
            if self.peers.get(pod) is None:
                session.close("unauthorized", "this node no longer federates with that pod")
        return True

    async def _watch_peers(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._reload_peers():
                self._sync_dialers()

    def _sync_dialers(self) -> None:
        wanted = {e.pod: e for e in self.peers}
        for pod in list(self._dialers):
            entry = self._dialing.get(pod)
            if (
                pod not in wanted
                or entry is None
                or (entry.url, entry.insecure)
                != (
                    wanted[pod].url,
                    wanted[pod].insecure,
                )
            ):
                self._dialers.pop(pod).cancel()  # removed, or its URL changed: dial anew
                self._dialing.pop(pod, None)
        for pod, entry in wanted.items():
            if pod not in self._dialers and self._running:
                self._dialers[pod] = asyncio.create_task(self._dial_forever(entry))
                self._dialing[pod] = entry
            self.status_of(pod)
        for pod in list(self.statuses):
            if pod not in wanted and pod not in self.sessions:
                del self.statuses[pod]

    # -- dialling --------------------------------------------------------------------------

    async def _dial_forever(self, entry: PeerEntry) -> None:
        delay = BACKOFF_FIRST_S
        status = self.status_of(entry.pod)
        while self._running:
            existing = self.sessions.get(entry.pod)
            if existing is not None:
                await existing.closed.wait()  # whichever dialled first: one link per peer
                delay = BACKOFF_FIRST_S
                continue
            status.state = "connecting"
            status.last_error = None  # what this attempt meets: a refusal, or the errors below
            started = time.monotonic()
            session: Session | None = None
            try:
                session = await self.dial(entry)
            except (OSError, ConnectionError, TimeoutError) as exc:
                status.last_error = status.last_error or f"unreachable: {type(exc).__name__}"
            except Exception as exc:  # websockets' handshake errors, bad URLs
                status.last_error = status.last_error or f"unreachable: {exc}"[:200]
            went_live = session is not None and session.went_live
            if went_live or time.monotonic() - started > 30:
                # The link worked (or was up for a while): a new outage starts a new backoff,
                # instead of the delay doubling on from the outages before it.
                delay = BACKOFF_FIRST_S
            if entry.pod not in self.sessions:
                status.state = "backoff"
                status.retries += 1
            await asyncio.sleep(delay * (1 + random.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)))
            delay = min(BACKOFF_MAX_S, delay * 2)

    async def dial(
        self,
        entry: PeerEntry,
        *,
        one_shot: bool = False,
        progress: Progress | None = None,
    ) -> Session:
        """Open a websocket to a peer and run a session on it until it ends."""
        import websockets

        async with websockets.connect(
            entry.url,
            max_size=fed.MAX_FRAME_BYTES,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            open_timeout=10,
            close_timeout=2,
            compression=None,
        ) as ws:
            session = Session(
                self,
                _WebsocketsChannel(ws),
                fed.Role.DIALER,
                expect_pod=entry.pod,
                one_shot=one_shot,
                progress=progress,
            )
            self.pending.add(session)
            await session.run()
        return session

    async def accept(self, channel: Channel) -> None:
        """Serve one connection a peer dialled to ``/v1/federation``."""
        session = Session(self, channel, fed.Role.LISTENER)
        self.pending.add(session)
        await session.run()

    # -- sessions --------------------------------------------------------------------------

    def _register(self, session: Session) -> bool:
        """One link per peer: keep the one dialled by the smaller node key."""
        pod = session.pod
        assert pod is not None
        self.pending.discard(session)
        if session.one_shot or session.peer_once:
            return True  # a one-shot sync runs beside any standing link and replaces none
        existing = self.sessions.get(pod)
        if existing is not None and existing is not session and not existing.closed.is_set():
            peer = session.conn.peer
            assert peer is not None
            ours, theirs = self.node.key.public_b64, peer.node_key
            keep_dialled = ours < theirs  # the connection dialled by the smaller key wins
            old_peer = existing.conn.peer
            # The same node on the same side again: it gave up the old link (a restart, a cut).
            again = (
                existing.role is session.role
                and old_peer is not None
                and old_peer.node_key == theirs
            )
            new_wins = again or (session.role is fed.Role.DIALER) == keep_dialled
            if not new_wins:
                session.conn.close("duplicate", "a link to this pod is already open")
                return False
            existing.close("duplicate", "replaced by a newer link")
        self.sessions[pod] = session
        return True

    def _session_ended(self, session: Session) -> None:
        self.pending.discard(session)
        if session.pod is not None and self.sessions.get(session.pod) is session:
            del self.sessions[session.pod]
            status = self.statuses.get(session.pod)
            if status is not None:
                status.state = "idle"
        if session._sender is not None:
            session._sender.cancel()

    def status_of(self, pod: str) -> PeerStatus:
        """The status record of a peer (made on first use)."""
        status = self.statuses.get(pod)
        if status is None:
            status = self.statuses[pod] = PeerStatus(pod)
        return status

    def reader_for(self, pod: str) -> Reader:
        """The reader a peer node is for ``may_read``: our pod's peers events, public ones."""
        return Reader(pod=self.node.pod, peer_pod=pod)

    def info(self) -> dict[str, Any]:
        """The ``federation`` member of ``/.well-known/kith``."""
        return {
            "peers": [
                s.as_info(self.committed, self.node.ingest.released_from[pod])
                for pod, s in sorted(self.statuses.items())
            ],
            "counters": dict(self.counters),
        }

    # -- one-shot ----------------------------------------------------------------------------

    def resolve_peer(self, url: str, pod: str | None, *, insecure: bool = False) -> PeerEntry:
        """The peer a ``kith sync URL`` means: listed by that URL, or named with ``--pod``."""
        self._reload_peers()
        listed = next((e for e in self.peers if e.url == url), None)
        if pod is None:
            if listed is None:
                raise KithError(
                    f"{url} is not on the allowlist: add it with `kith peer add`, or name its"
                    " pod with --pod"
                )
            return listed
        if listed is not None and listed.pod == pod:
            return listed
        return PeerEntry.checked(pod=pod, url=url, insecure=insecure, added_ms=0)

    async def sync_once(self, entry: PeerEntry, progress: Progress | None = None) -> SyncSummary:
        """Dial, catch up both ways, close: ``kith sync``."""
        session = await self.dial(entry, one_shot=True, progress=progress)
        summary = session.summary
        if not summary.seconds:
            summary.seconds = time.monotonic() - session.started
        if session.conn.closed_reason not in ("done",) or not (
            session.caught_up_in.is_set() and session.caught_up_out.is_set()
        ):
            reason = session.status.last_error if session.status else None
            raise KithError(
                f"sync with {entry.url} did not complete: "
                f"{reason or session.conn.closed_reason or 'connection closed'}"
            )
        return summary
