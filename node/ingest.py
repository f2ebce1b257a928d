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
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from node import projections
from node.projections.effects import Effect, applied, no_effect
from node.roster import Roster
from node.store.base import EventQuery, NewEvent, Placement, Store, WriteTxn
from protocol import reasons
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
    ) -> None:
        self.store = store
        self.home_pod = home_pod
        self.roster = Roster()
        self.heads: dict[LogKey, LogState] = {}
        self.forked_logs: set[LogKey] = set()
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
        after = 0
        kinds = (*sorted(ROSTER_KINDS), "event.redacted")
        while True:
            batch = await self.store.query(EventQuery(kinds=kinds, after=after, limit=2000))
            if not batch:
                break
            for stored in batch:
                after = stored.cursor
                if stored.placement != Placement.LOG:
                    # Unprojected (bad body, blocked author) or proof: never applied live
                    # either, and a bad body must not stop the node from starting.
                    continue
                env = decode_envelope(stored.envelope)
                event = parse_event(env)
                body = check_body(event)
                struct = validate_body(event.head.kind, body) if body is not None else None
                if event.head.kind == "event.redacted":
                    if isinstance(struct, EventRedacted):
                        self._pending_redactions.setdefault(struct.target, []).append(
                            (event.id, event.head)
                        )
                else:
                    self.roster.apply(event.head, struct)

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
        try:
            answers, committed = await self.store.transact(lambda txn: batch.run(txn, group))
        except BaseException:
            if roster_before is not None:
                self.roster = roster_before
            raise
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
        self.pending_redactions: dict[str, list[tuple[str, Head]]] = {}
        self.committed: list[Committed] = []

    def head(self, key: LogKey) -> LogState | None:
        return self.heads.get(key) or self.ing.heads.get(key)

    def merge(self) -> None:
        self.ing.heads.update(self.heads)
        self.ing.forked_logs |= self.forks
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
                progress = progress or answer.ok
            for pod in list(ing._held_auth):
                waiting = ing._held_auth.pop(pod)
                ing._unhold(waiting)
                for item in waiting:
                    answer = self.one(txn, item)
                    progress = progress or (answer.ok and answer.reason is None)

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
            auth = ing.roster.authorize(head)
            if auth is Authorization.UNKNOWN:
                if source.is_client:
                    raise RejectedEvent(
                        reasons.UNAUTHORIZED, "the author is not a member of this pod"
                    )
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
            struct = None
            projectable = auth is Authorization.YES
            if item.body is not None:
                try:
                    struct = validate_body(head.kind, item.body)
                except RejectedEvent:
                    if source.is_client:
                        raise
                    projectable = False
                if source.is_client:
                    outsiders = ing.roster.sealed_to_outsiders(head, struct)
                    if outsiders is not None:
                        raise RejectedEvent(reasons.invalid("sealed-recipients"), outsiders)
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
        roster = ing.roster.pods.get(head.pod)
        effect: Effect | None = None
        if head.kind in ROSTER_KINDS and projectable:
            effect = ing.roster.effect_of(head, struct)
            ing.roster.apply(head, struct)
            roster = ing.roster.pods.get(head.pod)
        if isinstance(struct, EventRedacted) and projectable:
            effect = self.redact(txn, event, struct.target)
        if projectable and roster is not None:
            person = roster.person_of(head.author) or head.author
            role = roster.role_of(head.author) or "member"
            projected = projections.apply(
                txn.connection,
                projections.ProjectionInput(
                    id=event.id,
                    pod=head.pod,
                    author=head.author,
                    person=person,
                    role=role,
                    scope=head.scope,
                    seq=head.seq,
                    ts=head.ts,
                    kind=head.kind,
                    body=struct if body is not None else None,
                ),
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

    def may_redact(self, redaction_head: Head, target: Head | _Target) -> bool:
        """A redaction counts if by the target's author (same person) or an admin, same scope."""
        if redaction_head.pod != target.pod or redaction_head.scope != target.scope:
            return False
        roster = self.ing.roster.pods.get(target.pod)
        if roster is None:
            return redaction_head.author == target.author
        same = roster.person_of(redaction_head.author) == roster.person_of(target.author)
        role = roster.role_of(redaction_head.author)
        return (
            redaction_head.author == target.author
            or same
            or role in ("root", "node", "coordinator")
        )

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
        stored = _Target(*row)
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


def _stored(txn: WriteTxn, event_id: str) -> bool:
    row = txn.connection.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
    return row is not None


class _Target(NamedTuple):
    """The head facts of a stored redaction target."""

    pod: str
    author: str
    scope: str
    kind: str


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
