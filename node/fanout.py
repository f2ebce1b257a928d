"""Fanout: committed events to live subscriptions — encode once, route by group, cut the slow.

Each committed event's envelope is encoded once; a subscription's frame is those bytes
between its ``["EVENT","<sub_id>",`` prefix and the cursor, wrapped as a websocket frame once
per distinct ``sub_id`` and written as the same bytes to every connection that uses it.

Subscriptions are indexed by what decides their delivery: a ``RouteGroup`` holds those with
equal filters (matched once per event) and, inside it, a ``ReaderGroup`` those of one reader
(``may_read`` asked once per event, its answer kept per event facts). So an event costs one
match per distinct filter set, one policy answer per distinct reader, and then one write per
subscriber. Matching runs in memory: no database query per subscriber for live events.

Every connection has a bounded outbox; a subscription whose frames no longer fit is closed
with ``["CLOSED", sub_id, "slow: resume after <cursor>"]``, so it never silently misses events
and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from node.access import EventFacts as AccessFacts
from node.access import Reader, ReportParties, may_read
from node.ingest import Committed
from node.store.base import Placement
from node.store.sqlite import envelope_prefix
from protocol.frames import (
    EventFacts,
    Filter,
    closed_frame,
    event_frame,
    event_prefix,
    matches,
    websocket_frame,
)
from protocol.kinds import COORDINATOR_READ_KINDS

_json = msgspec.json.Encoder()
#: Policy answers a reader group keeps (per distinct pod, author, scope, kind) before it
#: starts over: enough for a pod's authors, bounded for a node that relays many.
POLICY_CACHE = 4096
#: Deliveries after which a large commit's fanout writes out what it gathered and lets other
#: tasks run (handshakes, pings, HTTP) before routing its next event.
CHUNK_DELIVERIES = 20_000
#: Events the routing task may lag behind the writer before the writer waits for it.
MAX_BACKLOG = 50_000

log = logging.getLogger("kith.fanout")


#: Who filed stored reports (by cursor) and whom they are about: ``Node.report_about``.
AboutLookup = Callable[[Sequence[int]], Awaitable[dict[int, ReportParties]]]


class Outbox:
    """A connection's bounded queue of websocket frames, drained by its sender task."""

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        self.frames: collections.deque[bytes] = collections.deque()
        self.bytes = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.gathering = False

    def gather(self) -> None:
        """Hold writes until ``flush`` (the fanout routes a commit's events in one go)."""
        self.gathering = True

    def flush(self) -> None:
        """Write out what was gathered; a queue has nothing to do."""
        self.gathering = False

    def offer(self, frame: bytes) -> bool:
        """Queue a frame if it fits; False (nothing queued) when the outbox is full."""
        if len(self.frames) >= self.max_frames or self.bytes + len(frame) > self.max_bytes:
            return False
        self.force(frame)
        return True

    def force(self, frame: bytes) -> None:
        """Queue a frame even when full: control frames (CLOSED, NOTICE, OK) are few and small."""
        self.frames.append(frame)
        self.bytes += len(frame)
        self._ready.set()
        if self.bytes > self.max_bytes // 2:
            self._room.clear()

    def control(self, text: str) -> None:
        """Queue a control frame given as its JSON text."""
        self.force(websocket_frame(text.encode()))

    async def take(self) -> list[bytes]:
        """Wait for frames and take all of them."""
        await self._ready.wait()
        out = list(self.frames)
        self.frames.clear()
        self.bytes = 0
        self._ready.clear()
        self._room.set()
        return out

    async def room(self) -> None:
        """Wait until the outbox is at most half full (backfill pacing)."""
        await self._room.wait()

    @property
    def pending_bytes(self) -> int:
        """Bytes queued and not yet handed to the connection."""
        return self.bytes


class SubState(enum.Enum):
    """Where a subscription is."""

    BACKFILL = "backfill"
    LIVE = "live"
    CLOSED = "closed"


_LIVE = SubState.LIVE
_BACKFILL = SubState.BACKFILL


class Subscription:
    """One SUB: filters, its reader, its frame prefix, and where it stands."""

    def __init__(
        self,
        sub_id: str,
        filters: tuple[Filter, ...],
        outbox: Outbox,
        reader: Reader,
        *,
        max_pending: int,
        on_close: Callable[[Subscription], None],
    ) -> None:
        self.sub_id = sub_id
        self.filters = filters
        self.outbox = outbox
        self.reader = reader
        self.prefix = event_prefix(sub_id)
        self.state = SubState.BACKFILL
        self.pending: list[tuple[int, bytes]] = []
        self.max_pending = max_pending
        self.last_cursor = 0  # the last cursor this subscription is complete up to
        self.on_close = on_close
        self.needs_body = any(f.needs_body for f in filters)
        # For `need` filters: claim ids seen for those needs, so claim.withdrawn matches.
        # This state is the subscription's own, so such a subscription routes alone.
        self.claims: set[str] = set()
        self.stateful = any(f.need is not None for f in filters)

    @property
    def closed(self) -> bool:
        """Has this subscription been closed (by the client, a limit or the slow rule)?"""
        return self.state is SubState.CLOSED

    def deliver(self, cursor: int, frame: bytes) -> None:
        """Queue a matching event's websocket frame (or hold it while backfill runs)."""
        if cursor <= self.last_cursor:
            return
        state = self.state
        if state is _LIVE:
            if self.outbox.offer(frame):
                self.last_cursor = cursor
            else:
                self.close(f"slow: resume after {self.last_cursor}")
        elif state is _BACKFILL:
            self.pending.append((cursor, frame))
            if len(self.pending) > self.max_pending:
                self.close(f"slow: resume after {self.last_cursor}")

    def close(self, reason: str, *, notify: bool = True) -> None:
        """Close it, telling the client why (and where to resume)."""
        if self.state is SubState.CLOSED:
            return
        self.state = SubState.CLOSED
        self.pending = []
        if notify:
            self.outbox.control(closed_frame(self.sub_id, reason))
        self.on_close(self)


class ReaderGroup:
    """The subscriptions of one route group that read as one reader."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.subs: dict[Subscription, None] = {}  # an ordered set
        # may_read's answers by the facts it was asked about: the policy decides, once.
        self.allowed: dict[AccessFacts, bool] = {}

    def may_read(self, facts: AccessFacts) -> bool:
        """``may_read(self.reader, facts)``, asked once per distinct facts."""
        answer = self.allowed.get(facts)
        if answer is None:
            if len(self.allowed) >= POLICY_CACHE:
                self.allowed.clear()
            answer = self.allowed[facts] = may_read(self.reader, facts)
        return answer


class RouteGroup:
    """Subscriptions with equal filters, grouped by reader: one match per event for all."""

    def __init__(self, filters: tuple[Filter, ...], claims: set[str] | None) -> None:
        self.filters = filters
        self.needs_body = any(f.needs_body for f in filters)
        # A stateful group (`need` filters) holds one subscription and shares its claim set.
        self.claims = claims
        self.readers: dict[Reader, ReaderGroup] = {}

    def match(self, facts: EventFacts) -> Filter | None:
        """The first filter ``facts`` matches, if any."""
        claims = frozenset(self.claims) if self.claims else frozenset()
        for f in self.filters:
            if matches(f, facts, claims):
                return f
        return None


_RouteKey = tuple[tuple[Filter, ...], Subscription | None]
_Table = list[tuple[RouteGroup, list[tuple[ReaderGroup, tuple[Subscription, ...]]]]]


class Fanout:
    """Every live subscription of the node; fed by the ingestor after each commit."""

    def __init__(self, *, about: AboutLookup | None = None) -> None:
        # Whom reports are about (the node's ``report_about``): looked up once per commit
        # chunk that holds a report, so that ``may_read`` keeps a report from its subject live
        # as it does in every stored read. Without it, reports reach their authors only.
        self._about = about
        self.groups: dict[_RouteKey, RouteGroup] = {}
        self.published = 0  # highest cursor handed to subscriptions
        self._advanced = asyncio.Condition()
        self.delivered = 0
        self._routed = 0
        # What routing walks: a snapshot of the groups, rebuilt after any change, so that
        # subscriptions closing (or joining) while an event is routed change nothing mid-walk.
        self._table: _Table | None = None
        # Commits waiting to be routed, in commit order, by one routing task: the writer
        # hands them over and goes on to its next transaction instead of waiting for fanout.
        self._backlog: asyncio.Queue[list[Committed]] = asyncio.Queue()
        self._backlog_events = 0
        self._router: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """How many subscriptions are routed."""
        return self._routed

    @staticmethod
    def _key(sub: Subscription) -> _RouteKey:
        return (sub.filters, sub if sub.stateful else None)

    def add(self, sub: Subscription) -> None:
        """Start routing live events to ``sub`` (before its backfill query runs)."""
        key = self._key(sub)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = RouteGroup(sub.filters, sub.claims if sub.stateful else None)
        readers = group.readers.get(sub.reader)
        if readers is None:
            readers = group.readers[sub.reader] = ReaderGroup(sub.reader)
        if sub not in readers.subs:
            readers.subs[sub] = None
            self._routed += 1
        self._table = None

    def remove(self, sub: Subscription) -> None:
        """Stop routing to ``sub``."""
        key = self._key(sub)
        group = self.groups.get(key)
        readers = group.readers.get(sub.reader) if group is not None else None
        if group is None or readers is None or sub not in readers.subs:
            return
        del readers.subs[sub]
        self._routed -= 1
        if not readers.subs:
            del group.readers[sub.reader]
            if not group.readers:
                del self.groups[key]
        self._table = None

    def set_reader(self, sub: Subscription, reader: Reader) -> None:
        """The connection's reader changed (AUTH): route ``sub``'s live events as ``reader``."""
        routed = not sub.closed
        if routed:
            self.remove(sub)
        sub.reader = reader
        if routed:
            self.add(sub)

    def _routes(self) -> _Table:
        if self._table is None:
            self._table = [
                (group, [(readers, tuple(readers.subs)) for readers in group.readers.values()])
                for group in self.groups.values()
            ]
        return self._table

    def enqueue(self, committed: list[Committed]) -> Awaitable[None] | None:
        """The ingest listener: hand a commit to the routing task and return at once.

        Routing is CPU work on the event loop; the writer's next transaction runs on its own
        thread meanwhile. Only when routing falls more than ``MAX_BACKLOG`` events behind does
        the writer wait (returned awaitable) — memory stays bounded.
        """
        if not committed:
            return None
        self._backlog.put_nowait(committed)
        self._backlog_events += len(committed)
        if self._router is None or self._router.done():
            self._router = asyncio.create_task(self._route_backlog(), name="kith-fanout")
        if self._backlog_events > MAX_BACKLOG:
            return self.wait_published(committed[-1].cursor)
        return None

    async def _route_backlog(self) -> None:
        while True:
            committed = await self._backlog.get()
            try:
                await self.publish(committed)
            except Exception:  # pragma: no cover - routing must never stop for good
                log.exception("fanout failed for a commit")
                self.published = max(self.published, committed[-1].cursor)
            finally:
                self._backlog_events -= len(committed)

    async def stop(self) -> None:
        """Stop the routing task (after the node's last commit)."""
        if self._router is not None:
            self._router.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._router
            self._router = None

    async def publish(self, committed: list[Committed]) -> None:
        """Route newly committed events (called in commit order, by the routing task).

        A commit's events are routed in chunks; each connection's frames of a chunk are
        written together, one write instead of one per event: when commits grow (a burst, or
        the node falling behind) the writes do not.
        """
        if not committed:
            return
        # Fork proofs are evidence for coordinators, not part of any log; unprojected events
        # (a blocked or ended author, a bad body) are kept for peers, never shown to clients.
        items = [c for c in committed if c.placement is Placement.LOG]
        reports = [c.cursor for c in items if c.event.kind in COORDINATOR_READ_KINDS]
        about = await self._about(reports) if reports and self._about is not None else {}
        start = 0
        while start < len(items) and self.groups:
            touched: list[Outbox] = []
            delivered = 0
            table = self._routes()
            try:
                while start < len(items) and delivered < CHUNK_DELIVERIES:
                    delivered += self._route(items[start], table, touched, about)
                    start += 1
            finally:
                # Even when routing an event fails: an outbox left gathering would hold its
                # frames, and every later one, without a word to its client.
                for outbox in touched:
                    outbox.flush()
            if start < len(items):
                await asyncio.sleep(0)
        self.published = max(self.published, committed[-1].cursor)
        async with self._advanced:
            self._advanced.notify_all()

    def _route(
        self,
        item: Committed,
        table: _Table,
        touched: list[Outbox],
        about: Mapping[int, ReportParties],
    ) -> int:
        ev = item.event
        cursor = item.cursor
        access = AccessFacts(ev.pod, ev.author, ev.scope, ev.kind, about.get(cursor))
        facts: EventFacts | None = None
        plain: EventFacts | None = None
        envelope: bytes | None = None
        frames: dict[str, bytes] = {}  # websocket frame bytes per sub_id
        delivered = 0
        for group, readers in table:
            if group.needs_body:
                if facts is None:
                    body = parse_body(ev.body)
                    facts = EventFacts(ev.id, ev.pod, ev.author, ev.scope, ev.kind, ev.ts, body)
                matched = group.match(facts)
            else:
                if plain is None:
                    plain = EventFacts(ev.id, ev.pod, ev.author, ev.scope, ev.kind, ev.ts)
                matched = group.match(plain)
            if matched is None:
                continue
            for reader_group, subs in readers:
                if not reader_group.may_read(access):
                    continue
                claims = group.claims
                if claims is not None and matched.need is not None and ev.kind == "claim.made":
                    claims.add(ev.id)  # so its claim.withdrawn matches too
                if envelope is None:  # encoded once per event, reused for every subscriber
                    envelope = envelope_bytes(ev.head, ev.sig, ev.body)
                for sub in subs:
                    frame = frames.get(sub.sub_id)
                    if frame is None:
                        frame = frames[sub.sub_id] = websocket_frame(
                            event_frame(sub.prefix, envelope, cursor)
                        )
                    outbox = sub.outbox
                    if not outbox.gathering:
                        outbox.gather()
                        touched.append(outbox)
                    sub.deliver(cursor, frame)
                delivered += len(subs)
        self.delivered += delivered
        return delivered

    async def wait_published(self, cursor: int) -> None:
        """Wait until every commit up to ``cursor`` has been routed."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.published >= cursor)


def envelope_bytes(head: str, sig: str, body: str | None) -> bytes:
    """The wire envelope, byte-identical to what the store returns."""
    prefix = envelope_prefix(head, sig)
    return prefix + (_json.encode(body) if body is not None else b"null") + b"}"


def parse_body(body: str | None) -> Any:
    """An event body as a JSON object for filters, or None (erased, absent, not an object)."""
    if body is None:
        return None
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:  # pragma: no cover - stored bodies passed strict checks
        return None
    return value if isinstance(value, dict) else None
