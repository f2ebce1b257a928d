"""Fanout: committed events to live subscriptions — encode once, bounded queues, cut the slow.

Each committed event's envelope is turned into text once; a subscription's frame is that
text between its own ``["EVENT","<sub_id>",`` prefix and the cursor. Matching runs in
memory (no database query per subscriber for live events). Every connection has a bounded
outbox; a subscription whose frames no longer fit is closed with
``["CLOSED", sub_id, "slow: resume after <cursor>"]`` so it never silently misses events and
never slows anyone else.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable
from typing import Any

import msgspec

from node.access import EventFacts as AccessFacts
from node.access import Reader, may_read
from node.ingest import Committed
from node.store.base import Placement
from node.store.sqlite import envelope_prefix
from protocol.frames import EventFacts, Filter, closed_frame, event_frame, event_prefix, matches

_json = msgspec.json.Encoder()


class Outbox:
    """A connection's bounded queue of text frames, drained by its sender task."""

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        self.frames: collections.deque[str] = collections.deque()
        self.bytes = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False

    def offer(self, frame: str) -> bool:
        """Queue a frame if it fits; False (nothing queued) when the outbox is full."""
        if len(self.frames) >= self.max_frames or self.bytes + len(frame) > self.max_bytes:
            return False
        self.force(frame)
        return True

    def force(self, frame: str) -> None:
        """Queue a control frame (CLOSED, NOTICE, OK) even when full: they are few and small."""
        self.frames.append(frame)
        self.bytes += len(frame)
        self._ready.set()
        if self.bytes > self.max_bytes // 2:
            self._room.clear()

    async def take(self) -> list[str]:
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


class Subscription:
    """One SUB: filters, its frame prefix, and where it stands."""

    def __init__(
        self,
        sub_id: str,
        filters: tuple[Filter, ...],
        outbox: Outbox,
        reader: Callable[[], Reader],
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
        self.pending: list[tuple[int, str]] = []
        self.max_pending = max_pending
        self.last_cursor = 0  # the last cursor this subscription is complete up to
        self.on_close = on_close
        self.needs_body = any(f.needs_body for f in filters)
        # For `need` filters: claim ids seen for those needs, so claim.withdrawn matches.
        self.claims: set[str] = set()

    @property
    def closed(self) -> bool:
        """Has this subscription been closed (by the client, a limit or the slow rule)?"""
        return self.state is SubState.CLOSED

    def wants(self, facts: EventFacts) -> bool:
        """Does any filter match (remembering claims of watched needs)?"""
        claims = frozenset(self.claims)
        for f in self.filters:
            if matches(f, facts, claims):
                if f.need is not None and facts.kind == "claim.made":
                    self.claims.add(facts.id)
                return True
        return False

    def deliver(self, cursor: int, frame: str) -> None:
        """Queue a matching event (or hold it while backfill runs)."""
        if self.state is SubState.CLOSED or cursor <= self.last_cursor:
            return
        if self.state is SubState.BACKFILL:
            self.pending.append((cursor, frame))
            if len(self.pending) > self.max_pending:
                self.close(f"slow: resume after {self.last_cursor}")
            return
        if not self.outbox.offer(frame):
            self.close(f"slow: resume after {self.last_cursor}")
            return
        self.last_cursor = cursor

    def close(self, reason: str, *, notify: bool = True) -> None:
        """Close it, telling the client why (and where to resume)."""
        if self.state is SubState.CLOSED:
            return
        self.state = SubState.CLOSED
        self.pending = []
        if notify:
            self.outbox.force(closed_frame(self.sub_id, reason))
        self.on_close(self)


class Fanout:
    """Every live subscription of the node; fed by the ingestor after each commit."""

    def __init__(self) -> None:
        self.subs: set[Subscription] = set()
        self.published = 0  # highest cursor handed to subscriptions
        self._advanced = asyncio.Condition()
        self.delivered = 0

    def add(self, sub: Subscription) -> None:
        """Start routing live events to ``sub`` (before its backfill query runs)."""
        self.subs.add(sub)

    def remove(self, sub: Subscription) -> None:
        """Stop routing to ``sub``."""
        self.subs.discard(sub)

    async def publish(self, committed: list[Committed]) -> None:
        """Route newly committed events (ingest listener; called in commit order)."""
        if not committed:
            return
        subs = list(self.subs)
        for item in committed:
            if item.placement is Placement.PROOF:
                continue  # fork proofs are evidence for coordinators, not part of any log
            if subs:
                self._route(item, subs)
        self.published = max(self.published, committed[-1].cursor)
        async with self._advanced:
            self._advanced.notify_all()

    def _route(self, item: Committed, subs: list[Subscription]) -> None:
        ev = item.event
        access = AccessFacts(ev.pod, ev.author, ev.scope, ev.kind)
        body: Any = None
        parsed = False
        text: str | None = None
        for sub in subs:
            if sub.state is SubState.CLOSED or not may_read(sub.reader(), access):
                continue
            if sub.needs_body and not parsed:
                parsed = True
                body = _parse_body(ev.body)
            facts = EventFacts(ev.id, ev.pod, ev.author, ev.scope, ev.kind, ev.ts, body)
            if not sub.wants(facts):
                continue
            if text is None:  # encoded once per event, reused for every subscriber
                text = envelope_text(ev.head, ev.sig, ev.body)
            sub.deliver(item.cursor, event_frame(sub.prefix, text, item.cursor))
            self.delivered += 1

    async def wait_published(self, cursor: int) -> None:
        """Wait until every commit up to ``cursor`` has been routed."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.published >= cursor)


def envelope_text(head: str, sig: str, body: str | None) -> str:
    """The wire envelope as text, byte-identical to what the store returns."""
    prefix = envelope_prefix(head, sig)
    return (prefix + (_json.encode(body) if body is not None else b"null") + b"}").decode()


def _parse_body(body: str | None) -> Any:
    if body is None:
        return None
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:  # pragma: no cover - stored bodies passed strict checks
        return None
    return value if isinstance(value, dict) else None
