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

import sqlite3
from collections.abc import Callable, Iterable

from node.access import Reader
from node.duties import DutyLoop, Todo
from node.ingest import Committed, Ingestor, Result
from node.projections import erasures
from node.projections.facts import COORDINATING_ROLES
from node.store.base import Store
from protocol.crypto import SigningKey
from protocol.envelope import Scope
from protocol.kinds import is_redactable
from protocol.reasons import KithError

__all__ = ["DAY_MS", "ErasureDuties", "ErasureRefused", "SignYourOwn"]

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


class ErasureDuties(DutyLoop):
    """Receipts and retention the node signs on its own, and erasures it signs on request.

    ``peers`` gives the pods of the direct peers (the federation allowlist), ``retention_days``
    the pod's setting (``None``: keep), ``clock`` the time retention is measured at (seconds,
    like the ingestor's clock; the events are still signed at the ingestor's time).
    """

    name = "erasure"

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
        super().__init__(pod=pod, key=key, ingest=ingest, store=store, period_s=period_s)
        self.peers = peers
        self.retention_days = retention_days
        self._clock = clock

    def now_ms(self) -> int:
        """The time retention is measured at."""
        return int(self._clock() * 1000) if self._clock is not None else self.ingest.now_ms()

    def wakes(self, committed: list[Committed]) -> bool:
        """Whether a commit holds a redaction, or a neighbour's event that may be the target of
        one held here."""
        return any(
            c.event.kind == "event.redacted" or (c.event.pod != self.pod and c.event.body is None)
            for c in committed
        )

    async def todos(self) -> list[Todo]:
        """Every receipt and retention redaction due now."""
        peers = frozenset(self.peers())
        days = self.retention_days()
        before = None if not days else self.now_ms() - days * DAY_MS
        return await self.store.read(lambda conn: self._due(conn, peers, before))

    # -- duties -----------------------------------------------------------------------

    def _due(
        self, conn: sqlite3.Connection, peers: frozenset[str], closed_before: int | None
    ) -> list[Todo]:
        todos = self._receipts(conn, peers)
        if closed_before is not None:
            todos += self._retention(conn, closed_before)
        return todos

    def _receipts(self, conn: sqlite3.Connection, peers: frozenset[str]) -> list[Todo]:
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
        todos: list[Todo] = []
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
            todos.append(Todo("erasure.confirmed", {"redaction": rid, "target": target}, "peers"))
        return todos

    def _retention(self, conn: sqlite3.Connection, closed_before: int) -> list[Todo]:
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
                todos.append(Todo("event.redacted", {"target": target}, scope))
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
        self.count_signed("event.redacted")
        return result
