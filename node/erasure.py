"""Erasure, as the node does it (docs/erasure.md).

Ingest erases a body whenever a permitted ``event.redacted`` meets its target, in either order
(node/ingest.py). This room is what the node *does* around that:

* **receipts** — when this node holds an event of a direct peer's pod without its body because
  of a permitted redaction, it signs ``erasure.confirmed {redaction, target}`` with the node key
  in its own ``peers`` scope, so that the erasing pod learns that its neighbour dropped it;
* **retention** — when the pod keeps the details of closed needs for a set number of days
  (``retention_days`` in config.json, ``kith retention set``), it signs the redactions of the
  needs that closed longer ago than that, with the node key;
* **erasure on request** — ``POST /v1/erasures``: for a coordinator the node signs the
  redaction with the node key (as it signs overflow moves, docs/decisions.md D28); a member is
  told to sign their own, so that the log says who erased.

Each duty is decided from what is stored (the erasures read model and the store's heads), so
a restart or a repeated wake-up never signs twice. Only a serving node does them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from node.access import Reader
from node.ingest import Committed, Ingestor, Result
from node.projections import erasures
from node.projections.facts import COORDINATING_ROLES
from node.signing import Signer
from node.store.base import Store
from protocol.crypto import SigningKey
from protocol.envelope import Scope
from protocol.kinds import is_redactable
from protocol.reasons import KithError

__all__ = ["DAY_MS", "ErasureDuties", "ErasureRefused", "SignYourOwn"]

log = logging.getLogger("kith.erasure")

DAY_MS = 24 * 3600 * 1000
#: How often the node looks for needs past the pod's retention (besides at start).
RETENTION_PERIOD_S = 3600.0


class ErasureRefused(KithError):
    """An erasure the node will not sign: a stable ``reason``, a human ``message``, a status."""

    def __init__(self, reason: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


class SignYourOwn(ErasureRefused):
    """A member erases their own event by signing the redaction themselves: ``scope`` is the
    scope to sign ``event.redacted {target}`` in."""

    def __init__(self, target: str, scope: str) -> None:
        super().__init__(
            "erasure:sign-your-own",
            f"sign event.redacted {{target: {target}}} with your own key in {scope} scope and"
            " post it to /v1/events (`kith erase` does): the log then says that you erased it",
            409,
        )
        self.target = target
        self.scope = scope


@dataclass(frozen=True)
class _Todo:
    kind: str
    body: dict[str, str]
    scope: Scope


class ErasureDuties:
    """Receipts and retention the node signs on its own, and erasures it signs on request.

    ``peers`` gives the pods of the direct peers (the federation allowlist), ``retention_days``
    the pod's setting (``None``: keep), ``clock`` the time retention is measured at (seconds,
    like the ingestor's clock; the events are still signed at the ingestor's time).
    """

    def __init__(
        self,
        *,
        pod: str,
        key: SigningKey,
        ingest: Ingestor,
        store: Store,
        peers: Callable[[], Iterable[str]] = tuple,
        retention_days: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] | None = None,
        period_s: float = RETENTION_PERIOD_S,
    ) -> None:
        self.pod = pod
        self.key = key
        self.ingest = ingest
        self.store = store
        self.peers = peers
        self.retention_days = retention_days
        self._clock = clock
        self._period_s = period_s
        self.signer = Signer(pod=pod, ingest=ingest)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        #: Events the node signed on its own, by kind (metrics; never personal data).
        self.signed: dict[str, int] = {}

    def now_ms(self) -> int:
        """The time retention is measured at."""
        return int(self._clock() * 1000) if self._clock is not None else self.ingest.now_ms()

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Listen to commits, do what is due now, and look again every ``period_s``."""
        self.ingest.listeners.append(self._on_commit)
        self._tasks = [
            asyncio.create_task(self._loop(), name="kith-erasure"),
            asyncio.create_task(self._tick(), name="kith-erasure-tick"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        """Stop listening; a duty in progress is cancelled between two signatures."""
        with contextlib.suppress(ValueError):
            self.ingest.listeners.remove(self._on_commit)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _on_commit(self, committed: list[Committed]) -> None:
        # A redaction, or a neighbour's event that may be the target of one held here.
        if any(
            c.event.kind == "event.redacted" or (c.event.pod != self.pod and c.event.body is None)
            for c in committed
        ):
            self._wake.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:  # pragma: no cover - never let one bad duty stop the others
                log.exception("erasure duty failed")

    async def run_due(self) -> int:
        """Sign every receipt and retention redaction due now; how many events were signed."""
        async with self._lock:
            peers = frozenset(self.peers())
            days = self.retention_days()
            before = None if not days else self.now_ms() - days * DAY_MS
            todos = await self.store.read(lambda conn: self._due(conn, peers, before))
            done = 0
            for todo in todos:
                result = await self.signer.post(self.key, todo.kind, todo.body, scope=todo.scope)
                if result.ok:
                    done += 1
                    self.signed[todo.kind] = self.signed.get(todo.kind, 0) + 1
                else:
                    log.warning("erasure duty %s refused: %s", todo.kind, result.reason)
            return done

    # -- duties -----------------------------------------------------------------------

    def _due(
        self, conn: sqlite3.Connection, peers: frozenset[str], closed_before: int | None
    ) -> list[_Todo]:
        todos = self._receipts(conn, peers)
        if closed_before is not None:
            todos += self._retention(conn, closed_before)
        return todos

    def _receipts(self, conn: sqlite3.Connection, peers: frozenset[str]) -> list[_Todo]:
        """A receipt for each erased target of a direct peer's pod not yet confirmed here.

        Only a peer's pod can count a receipt (peers scope reaches direct peers only), so
        erasures of other pods, and of this pod, are not confirmed.
        """
        if not peers:
            return []
        marks = ",".join("?" * len(peers))
        rows = conn.execute(
            "SELECT id, pod, scope, target, author, person, role FROM pj_erasures e"
            f" WHERE pod IN ({marks}) AND pod != ? AND NOT EXISTS (SELECT 1 FROM"
            " pj_erasure_receipts r WHERE r.target = e.target AND r.pod = ?)"
            " ORDER BY ts, id",
            (*sorted(peers), self.pod, self.pod),
        ).fetchall()
        todos: list[_Todo] = []
        confirmed: set[str] = set()
        for rid, pod, scope, target, author, person, role in rows:
            if target in confirmed:
                continue
            head = erasures.target_head(conn, target)
            status = erasures.status_of(
                pod=pod,
                scope=scope,
                author=author,
                person=person,
                role=role,
                target=head,
                redaction=rid,
            )
            if status != "erased" or head is None or head.has_body:
                continue  # waiting for the target, refused, or (never) still holding a body
            confirmed.add(target)
            todos.append(_Todo("erasure.confirmed", {"redaction": rid, "target": target}, "peers"))
        return todos

    def _retention(self, conn: sqlite3.Connection, closed_before: int) -> list[_Todo]:
        """The redactions of this pod's needs that closed before ``closed_before``."""
        todos = []
        for target in erasures.needs_past_retention(
            conn, pod=self.pod, closed_before=closed_before
        ):
            asked = conn.execute(
                "SELECT 1 FROM pj_erasures WHERE target = ? AND author = ?",
                (target, self.key.public_b64),
            ).fetchone()
            head = erasures.target_head(conn, target)
            if asked is None and head is not None and head.has_body:
                scope: Scope = head.scope  # type: ignore[assignment]
                todos.append(_Todo("event.redacted", {"target": target}, scope))
        return todos

    # -- erasure on request -------------------------------------------------------------

    async def erase(self, target: str, reader: Reader) -> Result:
        """Erase ``target`` for ``reader``: signed by the node key for a coordinator.

        Raises ``SignYourOwn`` for a member erasing their own event, ``ErasureRefused``
        (``erasure:unknown-target``, ``erasure:other-pod``, ``erasure:not-redactable``,
        ``erasure:already-erased``, ``erasure:not-allowed``) otherwise.
        """
        head = await self.store.read(lambda conn: erasures.target_head(conn, target))
        if head is None:
            raise ErasureRefused(
                "erasure:unknown-target", f"no event {target} on this node", status=404
            )
        if head.pod != self.pod:
            raise ErasureRefused(
                "erasure:other-pod",
                "this event belongs to another pod: only its own pod can erase it everywhere",
                status=403,
            )
        if not is_redactable(head.kind):
            raise ErasureRefused(
                "erasure:not-redactable",
                f"a {head.kind} is a record (claims, hours, votes, the roster, withdrawals):"
                " records are never erased",
            )
        if not head.has_body:
            raise ErasureRefused("erasure:already-erased", "this event holds no body here")
        if reader.role not in COORDINATING_ROLES:
            if reader.person == head.person:
                raise SignYourOwn(target, head.scope)
            raise ErasureRefused(
                "erasure:not-allowed", "only its author or a coordinator may erase it", 403
            )
        scope: Scope = head.scope  # type: ignore[assignment]
        result = await self.signer.post(self.key, "event.redacted", {"target": target}, scope=scope)
        if not result.ok:  # pragma: no cover - the node key may erase any of its pod's events
            raise ErasureRefused(result.reason or "refused", result.message or "refused")
        self.signed["event.redacted"] = self.signed.get("event.redacted", 0) + 1
        return result
