"""Ingestion: DESIGN §2's check order, the roster rules of §3, and the one write path.

    decode → shape → source → duplicate id → signature (worker threads) → body hash
    → [writer, one transaction per group of submissions]
      chain → authorization → body schema → store + redaction + projections + roster

Cheap, stateless checks run on the event loop; signatures of a batch are verified on a
thread pool (libsodium releases the GIL, so both cores work); everything that depends on
what is stored runs on the single writer, which batches concurrent submissions into one
transaction (group commit) and answers each submitter only after that commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import msgspec

from node import projections
from node.projections.effects import Effect, applied, no_effect
from node.roster import PodRoster, RedactionTarget, Roster, RosterEvent
from node.roster import build as build_roster
from node.store.base import EventQuery, NewEvent, Placement, Store, WriteTxn
from protocol import kinds, reasons
from protocol.envelope import Envelope, Event, Head, check_body, decode_envelope, parse_event
from protocol.kinds import (
    KNOWN_KINDS,
    ROSTER_KINDS,
    EventRedacted,
    is_redactable,
    validate_body,
)
from protocol.logs import Chain, LogKey, LogState
from protocol.reasons import RejectedEvent
from protocol.validate import Authorization, Source, check_chain, check_signature, check_source

log = logging.getLogger("kith.ingest")

#: Batches at least this large are verified on the thread pool; smaller ones inline.
PARALLEL_VERIFY_MIN = 32
HOLD_LIMIT = 10_000
HOLD_TTL_MS = 60 * 60 * 1000
#: One relaying peer may fill at most 1/PEER_HOLD_SHARE of the hold.
PEER_HOLD_SHARE = 4
MAX_GROUP = 4096
RECENT_IDS = 50_000


class Result(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer for one event: ``{"id", "ok", "reason"}`` (+ a human message, fork head)."""

    id: str | None
    ok: bool
    reason: str | None = None
    message: str | None = None
    head: dict[str, Any] | None = None
    effect: Effect | None = None


class Committed(msgspec.Struct, frozen=True):
    """An event as committed, handed to listeners (streams, federation) after the commit."""

    cursor: int
    event: NewEvent
    placement: Placement


@dataclass
class _Item:
    event: Event
    body: Any
    source: Source
    future: asyncio.Future[Result] | None
    expires_ms: int = 0


def _accepted(
    event_id: str,
    reason: str | None = None,
    message: str | None = None,
    effect: Effect | None = None,
) -> Result:
    return Result(id=event_id, ok=True, reason=reason, message=message, effect=effect)


def _rejected(event_id: str | None, exc: RejectedEvent) -> Result:
    return Result(id=event_id, ok=False, reason=exc.reason, message=exc.message)


class Ingestor:
    """The node's one way in for events."""

    def __init__(
        self,
        store: Store,
        *,
        home_pod: str,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
        hold_limit: int = HOLD_LIMIT,
        hold_ttl_ms: int = HOLD_TTL_MS,
        roster_scope: str = "public",
    ) -> None:
        self.store = store
        self.home_pod = home_pod
        #: Where this pod's member changes live: ``public`` or ``peers`` (D43).
        self.roster_scope = roster_scope
        self.roster = Roster()
        self.heads: dict[LogKey, LogState] = {}
        self.forked_logs: set[LogKey] = set()
        #: Events a peer relayed that were held (a gap, an unknown author) and stored later,
        #: once what they waited for arrived: received from that peer, though not in the
        #: answer to its frame (federation adds them to the peer's `received`).
        self.released_from: collections.Counter[str] = collections.Counter()
        self._executor = executor
        self._clock = clock
        self._hold_limit = hold_limit
        self._hold_ttl_ms = hold_ttl_ms
        # Held events: by log (waiting for a prev) and by pod (waiting for the roster).
        self._held_gap: dict[LogKey, dict[int, _Item]] = {}
        self._held_auth: dict[str, list[_Item]] = {}
        self._held_count = 0
        # Held events per relaying peer: one peer may fill at most a share of the hold, so a
        # neighbour sending validly signed events of unknown authors cannot crowd out the
        # events other peers relay (which would then be refused while it floods).
        self._held_by: dict[str | None, int] = {}
        # Redactions by target: target -> [(redaction id, head)]. Every one is kept, as
        # whether one may erase is known only once the target (its author) is known.
        self._pending_redactions: dict[str, list[tuple[str, Head]]] = {}
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[list[Committed]], Awaitable[None] | None]] = []
        self.counters: dict[str, int] = {}
        #: Called after each group commit with its size in events and its duration in seconds
        #: (``node.metrics``: batch-size and commit-latency histograms).
        self.group_observers: list[Callable[[int, float], None]] = []
        # Ids committed lately (insertion-ordered, bounded): most duplicates are recent.
        # An OrderedDict: popping its oldest entry is O(1), where ``next(iter(dict))`` slows
        # with every deletion from the front (tens of ms per 1000-event group at 50k ids).
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Load log heads and the roster, then start the writer task."""
        self.heads = await self.store.log_heads()
        await self._load_roster()
        self._writer = asyncio.create_task(self._write_loop(), name="kith-writer")

    async def stop(self) -> None:
        """Stop the writer after the submissions already queued are written."""
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _load_roster(self) -> None:
        """Rebuild every pod's roster from its stored roster events, the redactions waiting
        for their targets, and the logs flagged as forked (all derived from the store)."""
        after = 0
        kinds = (*sorted(ROSTER_KINDS), "event.redacted")
        by_pod: dict[str, dict[str, RosterEvent]] = {}
        while True:
            batch = await self.store.query(EventQuery(kinds=kinds, after=after, limit=2000))
            if not batch:
                break
            for stored in batch:
                after = stored.cursor
                if stored.placement == Placement.PROOF:
                    continue
                event = parse_event(decode_envelope(stored.envelope))
                try:
                    body = check_body(event)
                    struct = validate_body(event.head.kind, body) if body is not None else None
                except RejectedEvent:
                    continue  # a bad body: stored unprojected, and must not stop the start
                if isinstance(struct, EventRedacted):
                    self._pending_redactions.setdefault(struct.target, []).append(
                        (event.id, event.head)
                    )
                elif struct is not None:
                    by_pod.setdefault(event.head.pod, {})[event.id] = RosterEvent(
                        event.id, event.head, struct
                    )
        for pod, events in by_pod.items():
            self.roster.install(build_roster(pod, events))
        self.forked_logs = await self.store.read(_forked_logs)

    # -- submission -----------------------------------------------------------------

    def now_ms(self) -> int:
        """The node's clock in ms."""
        return int(self._clock() * 1000)

    async def submit(
        self,
        items: Sequence[bytes | str | Envelope],
        source: Source,
        *,
        on_queued: Callable[[], None] | None = None,
    ) -> list[Result]:
        """Validate and store events; one ``Result`` per item, in order. Never raises for input.

        ``on_queued`` is called once every item is either answered or queued for the writer,
        in order: a caller may then verify its next batch while this one is written, and the
        writer still sees the batches in the order they were submitted.
        """
        now = self.now_ms()
        results: list[Result | None] = [None] * len(items)
        parsed: list[tuple[int, Event]] = []
        for i, item in enumerate(items):
            event: Event | None = None
            try:
                env = item if isinstance(item, Envelope) else decode_envelope(item)
                event = parse_event(env)
                check_source(event, source, now_ms=now, home_pod=self.home_pod)
            except RejectedEvent as exc:
                results[i] = _rejected(event.id if event is not None else None, exc)
                self._count(exc.reason)
                continue
            parsed.append((i, event))
        if not parsed:
            if on_queued is not None:
                on_queued()
            return [r for r in results if r is not None]
        # Duplicates are answered before any signature work: from memory for recent ids,
        # from the store for batches. A small submission skips the store round trip — the
        # writer still answers `duplicate` for an id it finds stored.
        known = {ev.id for _, ev in parsed if ev.id in self._recent}
        if len(parsed) >= PARALLEL_VERIFY_MIN:
            known |= await self.store.known_ids(ev.id for _, ev in parsed if ev.id not in known)
        fresh: list[tuple[int, Event]] = []
        for i, event in parsed:
            if event.id in known:
                results[i] = _accepted(event.id, reasons.DUPLICATE)
            else:
                fresh.append((i, event))
        checked = await self._verify_all([ev for _, ev in fresh])
        loop = asyncio.get_running_loop()
        waits: list[tuple[int, asyncio.Future[Result]]] = []
        for (i, event), outcome in zip(fresh, checked, strict=True):
            if isinstance(outcome, RejectedEvent):
                results[i] = _rejected(event.id, outcome)
                self._count(outcome.reason)
                continue
            future: asyncio.Future[Result] = loop.create_future()
            self._queue.put_nowait(_Item(event, outcome, source, future))
            waits.append((i, future))
        if on_queued is not None:
            on_queued()
        for i, future in waits:
            results[i] = await future
        return [r for r in results if r is not None]

    async def _verify_all(self, events: list[Event]) -> list[Any]:
        if len(events) < PARALLEL_VERIFY_MIN or self._executor is None:
            return _verify_chunk(events)
        loop = asyncio.get_running_loop()
        chunks = 4
        size = -(-len(events) // chunks)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._executor, _verify_chunk, events[k : k + size])
                for k in range(0, len(events), size)
            )
        )
        return [outcome for part in parts for outcome in part]

    def _count(self, reason: str | None) -> None:
        key = reasons.base_reason(reason) if reason else "accepted"
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- the writer -----------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            group = [first]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._write_group(group)
            except Exception:  # pragma: no cover - a disk error: answer, never hang
                log.exception("write transaction failed")
                for item in group:
                    if item.future is not None and not item.future.done():
                        item.future.set_result(
                            Result(
                                id=item.event.id,
                                ok=False,
                                reason="unavailable",
                                message="the node could not write; try again",
                            )
                        )
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _write_group(self, group: list[_Item]) -> None:
        roster_before = (
            self.roster.snapshot()
            if any(it.event.head.kind in ROSTER_KINDS for it in group)
            else None
        )
        batch = _Batch(self)
        started = time.perf_counter()
        try:
            answers, committed = await self.store.transact(lambda txn: batch.run(txn, group))
        except BaseException:
            if roster_before is not None:
                self.roster = roster_before
            raise
        for observe in self.group_observers:
            observe(len(group), time.perf_counter() - started)
        batch.merge()
        for done_id in committed_ids(batch):
            self._recent[done_id] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        # Listeners first: the fanout's routing task is then woken ahead of the submitters'
        # answers, so live subscribers are not kept waiting behind HTTP responses.
        waits = [listener(committed) for listener in self.listeners] if committed else []
        for item, answer in zip(group, answers, strict=True):
            self._count(answer.reason if not answer.ok or answer.reason else None)
            if item.future is not None and not item.future.done():
                item.future.set_result(answer)
        for maybe in waits:
            if maybe is not None:
                await maybe

    # -- held events ------------------------------------------------------------------

    def held_count(self) -> int:
        """How many events wait for a missing prev or roster event."""
        return self._held_count

    def _hold(self, item: _Item, *, gap: bool) -> bool:
        now = self.now_ms()
        by = item.source.peer_pod
        if self._hold_full(by):
            self._expire(now)
            if self._hold_full(by):
                return False
        # A re-held item keeps its first expiry: retrying must not keep it alive forever.
        expires = item.expires_ms or now + self._hold_ttl_ms
        held = _Item(item.event, item.body, item.source, None, expires)
        if gap:
            slot = self._held_gap.setdefault(LogKey(*item.event.log), {})
            if item.event.head.seq in slot:
                return True
            slot[item.event.head.seq] = held
        else:
            self._held_auth.setdefault(item.event.head.pod, []).append(held)
        self._held_count += 1
        self._held_by[by] = self._held_by.get(by, 0) + 1
        return True

    def _hold_full(self, by: str | None) -> bool:
        """No room for one more held event (from the relaying peer ``by``, if any)."""
        if self._held_count >= self._hold_limit:
            return True
        share = self._hold_limit // PEER_HOLD_SHARE
        return by is not None and self._held_by.get(by, 0) >= share

    def _unhold(self, items: list[_Item]) -> None:
        """Account for held items leaving the hold (released or expired)."""
        self._held_count -= len(items)
        for it in items:
            by = it.source.peer_pod
            left = self._held_by.get(by, 0) - 1
            if left > 0:
                self._held_by[by] = left
            else:
                self._held_by.pop(by, None)

    def _expire(self, now: int) -> None:
        for key in list(self._held_gap):
            slot = self._held_gap[key]
            for seq in [s for s, it in slot.items() if it.expires_ms < now]:
                self._unhold([slot.pop(seq)])
            if not slot:
                del self._held_gap[key]
        for pod in list(self._held_auth):
            kept = [it for it in self._held_auth[pod] if it.expires_ms >= now]
            self._unhold([it for it in self._held_auth[pod] if it.expires_ms < now])
            if kept:
                self._held_auth[pod] = kept
            else:
                del self._held_auth[pod]


def committed_ids(batch: _Batch) -> list[str]:
    """Ids a write group committed."""
    return [c.event.id for c in batch.committed]


def _verify_chunk(events: list[Event]) -> list[Any]:
    """Signature then body check for each event: the parsed body, or the rejection."""
    out: list[Any] = []
    for event in events:
        try:
            check_signature(event)
            out.append(check_body(event))
        except RejectedEvent as exc:
            out.append(exc)
    return out


class _Batch:
    """One write transaction's work; runs on the writer thread.

    Log heads change in an overlay merged into the ingestor only after the commit, so a
    failed transaction leaves the in-memory state as it was.
    """

    def __init__(self, ingestor: Ingestor) -> None:
        self.ing = ingestor
        self.heads: dict[LogKey, LogState] = {}
        self.forks: set[LogKey] = set()
        self.released: list[tuple[LogKey, int]] = []
        self.released_from: collections.Counter[str] = collections.Counter()
        self.pending_redactions: dict[str, list[tuple[str, Head]]] = {}
        self.committed: list[Committed] = []

    def head(self, key: LogKey) -> LogState | None:
        return self.heads.get(key) or self.ing.heads.get(key)

    def merge(self) -> None:
        self.ing.heads.update(self.heads)
        self.ing.forked_logs |= self.forks
        self.ing.released_from.update(self.released_from)
        for target, redactions in self.pending_redactions.items():
            self.ing._pending_redactions.setdefault(target, []).extend(redactions)

    def run(self, txn: WriteTxn, group: list[_Item]) -> tuple[list[Result], list[Committed]]:
        answers = [self.one(txn, item) for item in group]
        self.release_held(txn)
        return answers, self.committed

    def release_held(self, txn: WriteTxn) -> None:
        """Apply held events whose missing prev or roster event has now arrived."""
        ing = self.ing
        progress = True
        while progress and ing._held_count:
            progress = False
            for key in list(ing._held_gap):
                state = self.head(key)
                slot = ing._held_gap.get(key, {})
                nxt = (state.seq + 1) if state is not None else 1
                item = slot.pop(nxt, None)
                if item is None:
                    # A held event stored meanwhile by another path (or a fork of it) would
                    # otherwise wait until it expires: settle it as duplicate or proof.
                    first = min(slot, default=nxt + 1)  # the slot may have just expired
                    if first > nxt:
                        continue
                    item = slot.pop(first)
                if not slot:
                    ing._held_gap.pop(key, None)
                ing._unhold([item])
                answer = self.one(txn, item)
                self._count_release(item, answer)
                progress = progress or answer.ok
            for pod in list(ing._held_auth):
                waiting = ing._held_auth.pop(pod)
                ing._unhold(waiting)
                for item in waiting:
                    answer = self.one(txn, item)
                    self._count_release(item, answer)
                    progress = progress or (answer.ok and answer.reason is None)

    def _count_release(self, item: _Item, answer: Result) -> None:
        """A held event from a peer, appended now: count it as received from that peer (not a
        duplicate, nor a fork's proof: a held event that lost its position counts for nothing)."""
        peer = item.source.peer_pod
        if answer.ok and answer.reason is None and peer is not None:
            self.released_from[peer] += 1

    def one(self, txn: WriteTxn, item: _Item) -> Result:
        ing = self.ing
        event, source = item.event, item.source
        head = event.head
        key = LogKey(*event.log)
        state = self.head(key)
        if (
            state is not None
            and head.seq <= state.seq
            and event.id != state.id
            and _stored(txn, event.id)
        ):
            # Stored since ``submit`` checked (earlier in this group, or a held copy) and
            # no longer the head: a repeat, not a fork.
            return _accepted(event.id, reasons.DUPLICATE)
        try:
            chain = check_chain(event, state, source)
            if chain is Chain.DUPLICATE:
                return _accepted(event.id, reasons.DUPLICATE)
            if chain is Chain.GAP:
                if ing._hold(item, gap=True):
                    nxt = state.seq + 1 if state is not None else 1
                    return Result(
                        id=event.id,
                        ok=False,
                        reason=reasons.GAP,
                        message=f"held until seq {nxt} of this log arrives",
                    )
                raise RejectedEvent(
                    reasons.RATE_LIMITED, "too many held events; send the gap first"
                )
            if chain is Chain.FORK:
                # Relayed by a peer: keep as proof, flag the log, never project it.
                proof = _new(event, Placement.PROOF, event.body, source)
                cursor = txn.insert(proof)
                self.forks.add(key)
                if cursor is not None:
                    self.committed.append(Committed(cursor, proof, Placement.PROOF))
                return _accepted(event.id, reasons.FORK, "kept as proof of a fork; log flagged")
            # The body is read before authorization (a roster event's own body decides whether
            # it counts), but a client still hears about authorization first (DESIGN §2).
            struct = None
            body_error: RejectedEvent | None = None
            if item.body is not None:
                try:
                    struct = validate_body(head.kind, item.body)
                except RejectedEvent as exc:
                    body_error = exc
            admitted: PodRoster | None = None
            if head.kind in ROSTER_KINDS and struct is not None:
                auth, admitted = ing.roster.admit(event.id, head, struct)
            else:
                auth = ing.roster.authorize(head)
            if auth is Authorization.UNKNOWN:
                if source.is_client:
                    raise RejectedEvent(reasons.UNAUTHORIZED, _unknown_message(head, ing.roster))
                if ing._hold(item, gap=False):
                    return Result(
                        id=event.id,
                        ok=False,
                        reason=reasons.UNAUTHORIZED,
                        message="author not known yet: held until the roster arrives",
                    )
                raise RejectedEvent(reasons.RATE_LIMITED, "too many held events")
            if auth is Authorization.NO:
                raise RejectedEvent(reasons.UNAUTHORIZED, "the author may not write this log")
            if auth is Authorization.BLOCKED and source.is_client:
                raise RejectedEvent(reasons.BLOCKED, "the author is blocked in this pod")
            if auth is Authorization.ENDED and source.is_client:
                raise RejectedEvent(reasons.UNAUTHORIZED, _ended_message(head.kind))
            projectable = auth is Authorization.YES
            if body_error is not None:
                if source.is_client:
                    raise body_error
                projectable = False
            if source.is_client:
                outsiders = ing.roster.sealed_to_outsiders(head, struct)
                if outsiders is not None:
                    raise RejectedEvent(reasons.invalid("sealed-recipients"), outsiders)
                ahead = self.position_ahead(head, struct)
                if ahead is not None:
                    raise RejectedEvent(reasons.invalid("future-position"), ahead)
                misplaced = self.scope_policy(head)
                if misplaced is not None:
                    raise RejectedEvent(reasons.invalid("roster-scope"), misplaced)
        except RejectedEvent as exc:
            if exc.reason == reasons.FORK and state is not None:
                # The client re-signs at the next seq: tell it where the log stands.
                return Result(
                    id=event.id,
                    ok=False,
                    reason=exc.reason,
                    message=exc.message,
                    head={"seq": state.seq, "id": state.id, "ts": state.ts},
                )
            return _rejected(event.id, exc)
        body = event.body
        redaction = None
        if body is not None and is_redactable(head.kind):
            waiting = [
                *ing._pending_redactions.get(event.id, ()),
                *self.pending_redactions.get(event.id, ()),
            ]
            # Any permitted redaction erases, whichever arrived first.
            redaction = next((r for r in waiting if self.may_redact(r[1], head)), None)
        erase = redaction is not None
        if redaction is not None:
            txn.record_redaction(event.id, redaction[0])
            body, struct = None, None
        placement = Placement.LOG if projectable else Placement.UNPROJECTED
        new = _new(event, placement, body, source)
        cursor = txn.insert(new)
        if cursor is None:
            return _accepted(event.id, reasons.DUPLICATE)
        self.heads[key] = LogState(head.seq, event.id, head.ts)
        effect: Effect | None = None
        if admitted is not None:
            # Stored, so it is one of the pod's roster events whether or not it counts.
            before = ing.roster.pods.get(head.pod)
            if projectable:
                effect = ing.roster.effect_of(head, struct)
            ing.roster.install(admitted)
            self.reproject(txn, before, admitted, skip=event.id)
        if isinstance(struct, EventRedacted) and body_error is None:
            # Whatever its own placement: whether it erases is decided without positions.
            redacted = self.redact(txn, event, struct.target)
            effect = redacted if projectable else None
        roster = ing.roster.pods.get(head.pod)
        if projectable and roster is not None:
            projected = projections.apply(
                txn.connection,
                projection_input(roster, event, struct if body is not None else None),
            )
            effect = projected if effect is None else effect  # the roster's, the redaction's
            if erase:
                projections.redact(txn.connection, event.id)
                effect = no_effect("erased", "stored without its body: it was erased already")
        if effect is None and projectable:
            effect = (
                no_effect("unknown-kind", "this node does not know the kind: kept and relayed")
                if head.kind not in KNOWN_KINDS
                else applied("stored")
            )
        self.committed.append(Committed(cursor, new, placement))
        return _accepted(event.id, effect=effect)

    def reproject(
        self, txn: WriteTxn, before: PodRoster | None, after: PodRoster, *, skip: str
    ) -> None:
        """A roster change: settle again every stored event whose standing it may change.

        Those are the events of every key whose standing differs between the two rosters
        (membership, person, role history, removals, revocations, blocks) and the roster
        events that start or stop counting. Each moves between in-log and unprojected, or is
        re-projected with its author's person and role, so that the read models are what they
        would be had the roster events arrived first (D38).
        """
        old = before if before is not None else PodRoster(after.pod)
        flipped = sorted(old.counted ^ after.counted)
        # A key's standing changes only through roster events that name it (as author, key,
        # member or new root) — the new ones and those that started or stopped counting —
        # and through its person's or devices' standing: compare just those keys.
        changed = [after.events[i] for i in after.events.keys() - old.events.keys()]
        changed += [e for i in flipped for e in (after.events.get(i) or old.events.get(i),) if e]
        named = {k for e in changed for k in _named(e)}
        named |= {k for r in (old, after) for n in list(named) for k in _kin(r, n)}
        keys = sorted(k for k in named if _standing(old, k) != _standing(after, k))
        conn = txn.connection
        seen = {skip}
        rows: list[Any] = []
        for chunk in _chunks(keys, 400):
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT {_SETTLE_COLUMNS} FROM events WHERE pod = ? AND author IN ({marks})"
                " AND placement != 1 ORDER BY cursor",
                (after.pod, *chunk),
            ).fetchall()
        for chunk in _chunks(flipped, 400):
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT {_SETTLE_COLUMNS} FROM events WHERE id IN ({marks}) AND placement != 1",
                chunk,
            ).fetchall()
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                self.settle(txn, after, row)
        if old.blocked_people() != after.blocked_people():
            projections.set_blocked(conn, after.pod, after.blocked_people())
        if old.ever_admin != after.ever_admin or old.ever_linked != after.ever_linked:
            self.recheck_redactions(txn, after.pod)

    def recheck_redactions(self, txn: WriteTxn, pod: str) -> None:
        """Who may erase only grows (D38): a redaction that did not count when it arrived may
        count now — a promotion, a device link — so erase the stored targets it now covers."""
        waiting: dict[str, list[tuple[str, Head]]] = {}
        for source in (self.ing._pending_redactions, self.pending_redactions):
            for target, redactions in source.items():
                mine = [r for r in redactions if r[1].pod == pod]
                if mine:
                    waiting.setdefault(target, []).extend(mine)
        conn = txn.connection
        for target, redactions in waiting.items():
            row = conn.execute(
                "SELECT pod, author, scope, kind FROM events WHERE id = ? AND body IS NOT NULL"
                " AND placement != 1",
                (target,),
            ).fetchone()
            if row is None:
                continue  # not here, already erased, or a proof
            stored = RedactionTarget(*row)
            if not is_redactable(stored.kind):
                continue
            redaction = next((r for r in redactions if self.may_redact(r[1], stored)), None)
            if redaction is not None:
                txn.record_redaction(target, redaction[0])
                txn.drop_body(target)
                projections.redact(conn, target)

    def settle(self, txn: WriteTxn, roster: PodRoster, row: Any) -> None:
        """Place and project one stored event as ``roster`` says it stands now."""
        event_id, _cursor, placement, prefix, body_text = row
        event = parse_event(decode_envelope(prefix + (body_text or b"null") + b"}"))
        head = event.head
        struct = None
        try:
            body = check_body(event)
            struct = validate_body(head.kind, body) if body is not None else None
        except RejectedEvent:
            return  # a bad body is never projected, whoever wrote it
        if head.kind in ROSTER_KINDS:
            counts = event_id in roster.counted
        else:
            counts = roster.at_position(head) is Authorization.YES
        conn = txn.connection
        if placement == Placement.LOG and counts:
            person = roster.person_of(head.author) or head.author
            role = roster.role_at(head.author, head.ts) or "member"
            was = projections.projected_as(conn, event_id)
            if was is None or was == (person, role):
                return
            projections.unapply(conn, event_id)
        elif placement == Placement.LOG:
            projections.unapply(conn, event_id)
            txn.set_placement(event_id, Placement.UNPROJECTED)
            return
        elif counts:
            txn.set_placement(event_id, Placement.LOG)
        else:
            return
        projections.apply(conn, projection_input(roster, event, struct))
        if txn.is_redacted(event_id):
            projections.redact(conn, event_id)

    def may_redact(self, redaction_head: Head, target: Head | RedactionTarget) -> bool:
        """A redaction counts if by the target's author (same person) or an admin, same scope."""
        return self.ing.roster.may_redact(redaction_head, target)

    def scope_policy(self, head: Head) -> str | None:
        """Why a client's post does not fit where this pod keeps its roster, or ``None``.

        A pod that keeps its roster among its direct peers signs member changes in ``peers``
        scope, and its members post nothing ``public``: nobody but those peers could check who
        signed it (D43). Another pod's events are judged by that pod's node.
        """
        ing = self.ing
        if head.pod != ing.home_pod:
            return None
        root_attestation = head.kind in ("pod.created", "pod.root_rotated", "node.key")
        if head.kind in ROSTER_KINDS and not root_attestation:
            if head.scope != ing.roster_scope:
                return (
                    f"this pod keeps its roster in {ing.roster_scope} scope: sign member"
                    f" changes there (`kith info` shows it)"
                )
            return None
        if ing.roster_scope == "peers" and head.scope == "public" and not root_attestation:
            roster = ing.roster.pods.get(head.pod)
            if roster is None or roster.role_of(head.author) not in ("root", "node"):
                return (
                    "this pod keeps its roster among its direct peers, so nobody else could"
                    " check who signed a public event: post in peers scope"
                )
        return None

    def position_ahead(self, head: Head, body: msgspec.Struct | None) -> str | None:
        """Why a client's removal, block or revocation names a position its log has not
        reached, or ``None``: it would leave the person able to write on until then."""
        if isinstance(body, kinds.MemberKeyRevoked):
            stated, through = body.valid_through, True
        elif isinstance(body, kinds.MemberRemoved | kinds.MemberBlocked | kinds.MemberUnblocked):
            stated, through = body.effective, False
        else:
            return None
        for scope, seq in sorted(stated.items()):
            state = self.head(LogKey(head.pod, body.key, str(scope)))
            now = state.seq if state is not None else 0
            if seq > (now if through else now + 1):
                word = "valid_through" if through else "effective"
                fix = now if through else now + 1
                return (
                    f"{word} names seq {seq} in scope {scope}, but that log is at seq {now}:"
                    f" use {fix} to act from now"
                )
        return None

    def redact(self, txn: WriteTxn, redaction: Event, target: str) -> Effect:
        """Erase the target's body now if it is stored, or remember it for when it arrives."""
        self.pending_redactions.setdefault(target, []).append((redaction.id, redaction.head))
        conn = txn.connection
        row = conn.execute(
            "SELECT pod, author, scope, kind FROM events WHERE id = ?", (target,)
        ).fetchone()
        if row is None:
            return applied(
                "the target is not here yet: it is erased when it arrives (if yours to erase)"
            )
        stored = RedactionTarget(*row)
        if not is_redactable(stored.kind):
            return no_effect(
                "not-redactable", "records (claims, hours, roster, votes) are never erased"
            )
        if not self.may_redact(redaction.head, stored):
            return no_effect("not-allowed", "only its author or a coordinator may erase it")
        txn.record_redaction(target, redaction.id)
        txn.drop_body(target)
        projections.redact(conn, target)
        return applied("erased")


def _forked_logs(conn: sqlite3.Connection) -> set[LogKey]:
    rows = conn.execute("SELECT DISTINCT pod, author, scope FROM events WHERE placement = 1")
    return {LogKey(*row) for row in rows}


def _stored(txn: WriteTxn, event_id: str) -> bool:
    row = txn.connection.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
    return row is not None


_SETTLE_COLUMNS = "id, cursor, placement, prefix, body"


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _named(event: RosterEvent) -> set[str]:
    """The keys a roster event is by or about."""
    body = event.body
    named = {event.head.author}
    for name in ("key", "member", "new_key"):
        value = getattr(body, name, None)
        if isinstance(value, str):
            named.add(value)
    return named


def _kin(roster: PodRoster, key: str) -> list[str]:
    """A key's person and that person's other keys, in ``roster``."""
    person = roster.person_of(key)
    return [] if person is None else roster.keys_of(person)


def _standing(roster: PodRoster, key: str) -> tuple[object, ...]:
    """Everything the roster says about one key that can change how its events stand."""
    person = roster.person_of(key)
    member = roster.members.get(person) if person is not None else None
    return (
        person,
        roster.roots.get(key, -1),
        key in roster.node_keys,
        key in roster.known,
        roster.revoked.get(key),
        roster.removed_keys.get(key),
        roster.toggles.get(key),
        None if member is None else tuple(member.history),
        None if person is None else roster.removed_at.get(person),
        None if person is None else roster.person_toggles.get(person),
    )


def _unknown_message(head: Head, roster: Roster) -> str:
    pod = roster.pods.get(head.pod)
    if head.kind in ROSTER_KINDS and pod is not None and pod.person_of(head.author) is not None:
        if head.kind in ("pod.root_rotated", "node.key"):
            return "only the pod's root key may sign this"
        return "only a coordinator may change the roster (or a member, for their own devices)"
    return "the author is not a member of this pod"


def _ended_message(kind: str) -> str:
    if kind in ROSTER_KINDS:
        return (
            "the author may not sign this roster change: not a coordinator at this time,"
            " or removed or revoked before this position"
        )
    return "the author was removed, or the key revoked, before this position"


def projection_input(
    roster: PodRoster, event: Event, body: msgspec.Struct | None
) -> projections.ProjectionInput:
    head = event.head
    return projections.ProjectionInput(
        id=event.id,
        pod=head.pod,
        author=head.author,
        person=roster.person_of(head.author) or head.author,
        role=roster.role_at(head.author, head.ts) or "member",
        scope=head.scope,
        seq=head.seq,
        ts=head.ts,
        kind=head.kind,
        body=body,
    )


def _new(event: Event, placement: Placement, body: str | None, source: Source) -> NewEvent:
    head = event.head
    return NewEvent(
        id=event.id,
        pod=head.pod,
        author=head.author,
        scope=head.scope,
        seq=head.seq,
        ts=head.ts,
        kind=head.kind,
        head=event.envelope.head,
        sig=event.envelope.sig,
        body=body,
        placement=placement,
        # The direct peer it came from, so federation never sends it back there.
        origin=source.peer_pod if source.origin == "peer" else None,
    )
