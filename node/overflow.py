"""Overflow between pods, as the node does it (docs/overflow.md).

The projection (``node.projections.overflow``) says what a referral *is*; this room is what the
node *does* about referrals:

* **builds** a referral from a need (``referral_body``), so that the summary a neighbour sees is
  made from the need's coarse fields only and can never carry a name, a note or an address;
* **signs moves** a coordinator asks for (refer, offer, assign, return) with the node key, after
  checking them with the projection's own guards, so a refusal reads the same reason a move
  without effect would;
* **keeps the pods' books in step** (``Duties``): when a referral is assigned to this pod it
  becomes a local need that members claim and fulfil as usual; when that need is fulfilled the
  node tells the origin (``overflow.fulfilled``) and records its side of the clearing; when the
  origin learns of the fulfilment it records its side and fulfils the original need. Each duty
  is idempotent — decided from the read models, so a restart or a repeated commit never signs
  twice.

The node never holds a member's private key and never opens sealed details: assignment details
arrive sealed by the coordinator's client to the receiving pod's coordinators.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from node import projections
from node.duties import DutyLoop, Todo
from node.ingest import Committed, Ingestor, Result
from node.projections.overflow import Move, ReferralView, Refusal, check_move, shown_state
from node.projections.views import NeedView
from node.roster import Roster
from node.store.base import Store
from protocol.crypto import SigningKey
from protocol.envelope import Scope
from protocol.kinds import MAX_HOPS, validate_body
from protocol.reasons import KithError, RejectedEvent
from protocol.sealed import SealedField

__all__ = [
    "DEFAULT_HOPS",
    "DEFAULT_TTL_MS",
    "Duties",
    "OverflowError",
    "coordinator_box_keys",
    "referral_body",
]

#: A referral is passed on at most this many times unless the coordinator says otherwise.
DEFAULT_HOPS = 2
#: A referral nobody takes lapses after three days unless the coordinator says otherwise.
DEFAULT_TTL_MS = 3 * 24 * 3600 * 1000
#: Kinds whose commit may leave the node a duty to do.
_DUTY_KINDS = frozenset(
    {
        "overflow.assigned",
        "overflow.fulfilled",
        "overflow.returned",
        "clearing.recorded",
        "fulfilment.recorded",
    }
)


class OverflowError(KithError):
    """A move the node will not sign: a stable ``reason`` and a human ``message``."""

    def __init__(self, reason: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def referral_body(
    need: NeedView,
    *,
    expires_at: int,
    hops_left: int = DEFAULT_HOPS,
    parent: ReferralView | None = None,
) -> dict[str, Any]:
    """The ``overflow.referred`` body for a need: coarse fields only, checked by its schema.

    A re-referral (``parent`` given: a referral assigned to this pod, whose local need ``need``
    is) has one hop less than its parent and the parent's path plus the parent's pod.
    """
    if need.redacted or need.category is None or need.urgency is None:
        raise OverflowError("overflow:need-erased", "this need's details were erased", 409)
    summary: dict[str, Any] = {"category": need.category, "urgency": need.urgency}
    if need.area is not None:
        summary["area"] = need.area
    if need.window is not None:
        summary["window"] = {"start": need.window.start, "end": need.window.end}
    if need.minutes_estimate is not None:
        summary["minutes_estimate"] = need.minutes_estimate
    body: dict[str, Any] = {
        "need": need.id,
        "summary": summary,
        "hops_left": hops_left,
        "expires_at": expires_at,
    }
    if parent is not None:
        if not parent.hops_left:
            raise OverflowError(
                "overflow:no-hops-left", "this referral may not be passed on again (0 hops left)"
            )
        body["hops_left"] = min(hops_left, parent.hops_left - 1)
        body["parent"] = parent.id
        body["path"] = list(parent.on_path)
    validate_body("overflow.referred", body)  # never sign what every node would refuse
    return body


def coordinator_box_keys(roster: Roster, pod: str) -> list[str]:
    """The box keys of ``pod``'s coordinators, as the roster this node holds says: the only keys
    a referral's details may be sealed to (ingest refuses any other: ``Roster``)."""
    return sorted(roster.box_keys(pod, coordinators_only=True))


class Duties(DutyLoop):
    """The overflow events this node signs on its own, and the moves it signs on request."""

    name = "overflow"

    def __init__(self, *, pod: str, key: SigningKey, ingest: Ingestor, store: Store) -> None:
        super().__init__(pod=pod, key=key, ingest=ingest, store=store)
        #: Moves the node refused, by reason (metrics).
        self.refused: dict[str, int] = {}

    def count_refusal(self, reason: str) -> None:
        """Count a move the node would not sign (its stable reason: never personal data)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def wakes(self, committed: list[Committed]) -> bool:
        """Whether a committed event is of a kind that may leave a duty."""
        return any(c.event.kind in _DUTY_KINDS for c in committed)

    async def todos(self) -> list[Todo]:
        """Every overflow duty due now."""
        return await self.store.read(self._due)

    # -- duties -----------------------------------------------------------------------

    def _due(self, conn: sqlite3.Connection) -> list[Todo]:
        todos: list[Todo] = []
        rows = conn.execute(
            "SELECT view FROM pj_referrals WHERE valid = 1 AND state != 'referred'"
            " AND state != 'offered' AND (pod = ? OR to_pod = ?)",
            (self.pod, self.pod),
        )
        decoder = msgspec.json.Decoder(ReferralView)
        for (text,) in rows.fetchall():
            view = decoder.decode(text)
            assigned = view.assignment
            if assigned is None:  # pragma: no cover - state says assigned or closed
                continue
            if assigned.to_pod == self.pod:
                todos.extend(self._as_assignee(conn, view))
            if view.pod == self.pod:
                todos.extend(self._as_origin(conn, view))
        return todos

    def _as_assignee(self, conn: sqlite3.Connection, view: ReferralView) -> list[Todo]:
        local = _local_need(conn, self.pod, view.id)
        todos = []
        if local is None and view.state == "assigned":
            body: dict[str, Any] = {
                "title": f"Referred by a neighbour pod: {view.category or 'help'}",
                "category": view.category or "other",
                "urgency": view.urgency or "normal",
                "referral": view.id,
            }
            if view.area is not None:
                body["area"] = view.area
            if view.window is not None:
                body["window"] = {"start": view.window.start, "end": view.window.end}
            if view.minutes_estimate is not None:
                body["minutes_estimate"] = view.minutes_estimate
            todos.append(Todo("need.posted", body, "pod"))
        elif local is not None and view.state == "assigned" and local.status == "fulfilled":
            minutes = local.fulfilment.minutes if local.fulfilment is not None else None
            body = {"referral": view.id}
            if minutes:
                body["minutes"] = minutes
            todos.append(Todo("overflow.fulfilled", body, "peers"))
        elif (
            local is not None
            and view.state == "returned"
            and local.status not in ("fulfilled", "withdrawn")
        ):
            reason = "returned to the pod that referred it"
            todos.append(Todo("need.withdrawn", {"need": local.id, "reason": reason}, "pod"))
        todos.extend(self._clearing(view))
        return todos

    def _as_origin(self, conn: sqlite3.Connection, view: ReferralView) -> list[Todo]:
        todos = self._clearing(view)
        closing = view.closing
        if view.need is not None and closing is not None and closing.outcome == "fulfilled":
            need = projections.get_need(conn, view.need, now_ms=0)
            if need is not None and need.status not in ("fulfilled", "withdrawn"):
                body: dict[str, Any] = {"need": need.id, "note": "met by a neighbour pod"}
                if closing.minutes and closing.minutes <= 24 * 60:
                    body["minutes"] = closing.minutes
                todos.append(Todo("fulfilment.recorded", body, "pod"))
        return todos

    def _clearing(self, view: ReferralView) -> list[Todo]:
        closing, assigned = view.closing, view.assignment
        if closing is None or closing.outcome != "fulfilled" or not closing.minutes:
            return []
        if assigned is None or any(side.pod == self.pod for side in view.clearing):
            return []
        if self.pod == view.pod:
            peer, minutes = assigned.to_pod, -closing.minutes
        else:
            peer, minutes = view.pod, closing.minutes
        body = {"peer_pod": peer, "minutes": minutes, "referral": view.id}
        return [Todo("clearing.recorded", body, "peers")]

    # -- moves on request ---------------------------------------------------------------

    async def refer(
        self,
        need_id: str,
        *,
        hops_left: int = DEFAULT_HOPS,
        expires_in_ms: int = DEFAULT_TTL_MS,
    ) -> Result:
        """Refer one of this pod's open needs to the neighbours (``overflow.referred``)."""
        if not 0 <= hops_left <= MAX_HOPS:
            raise OverflowError("overflow:hops", f"hops_left must be 0..{MAX_HOPS}", status=400)
        now = self.ingest.now_ms()

        def load(conn: sqlite3.Connection) -> tuple[NeedView | None, list[ReferralView], Any]:
            need = projections.get_need(conn, need_id, now_ms=now)
            live = projections.list_referrals(conn, need=need_id, limit=100)
            parent = None
            if need is not None and need.referral is not None:
                parent = projections.get_referral(conn, need.referral)
            return need, live, parent

        need, earlier, parent = await self.store.read(load)
        if need is None or need.pod != self.pod:
            raise OverflowError("overflow:unknown-need", "no such need in this pod", status=404)
        if need.status != "open":
            raise OverflowError(
                f"overflow:need-{need.status}",
                f"only an open need is referred; this one is {need.status}",
            )
        for referral in earlier:
            if referral.pod == self.pod and shown_state(referral, now) in (
                "referred",
                "offered",
                "assigned",
            ):
                raise OverflowError(
                    "overflow:already-referred",
                    f"this need is already referred ({referral.id}, {shown_state(referral, now)})",
                )
        if parent is not None and (
            parent.assignment is None or parent.assignment.to_pod != self.pod
        ):
            parent = None  # pragma: no cover - a local need of a referral not assigned here
        body = referral_body(
            need, expires_at=now + expires_in_ms, hops_left=hops_left, parent=parent
        )
        return await self._post_checked("overflow.referred", body, "peers")

    async def move(
        self,
        referral_id: str,
        kind: str,
        *,
        to_pod: str | None = None,
        details: SealedField | None = None,
        note: str | None = None,
    ) -> Result:
        """Offer on, assign, or return a referral — after the projection's own guards."""
        view = await self.store.read(lambda c: projections.get_referral(c, referral_id))
        if view is None:
            raise OverflowError("overflow:unknown-referral", "no such referral here", status=404)
        move = Move(kind=kind, pod=self.pod, role="node", ts=self.ingest.now_ms(), to_pod=to_pod)
        refusal: Refusal | None = check_move(view, move)
        if refusal is not None:
            raise OverflowError(refusal.reason, refusal.message)
        body: dict[str, Any] = {"referral": referral_id}
        if kind == "overflow.assigned":
            assert to_pod is not None
            body["to_pod"] = to_pod
            if details is not None:  # ingest refuses any recipient but to_pod's coordinators
                body["details"] = msgspec.to_builtins(details)
            offer = next((o.id for o in view.offers if o.pod == to_pod), None)
            if offer is not None:
                body["offer"] = offer
        elif kind == "overflow.offered" and note:
            body["note"] = note
        elif kind == "overflow.returned" and note:
            body["reason"] = note
        return await self._post_checked(kind, body, "peers")

    async def _post_checked(self, kind: str, body: dict[str, Any], scope: Scope) -> Result:
        try:
            validate_body(kind, body)
        except RejectedEvent as exc:
            raise OverflowError(exc.reason, exc.message, status=400) from None
        result = await self.signer.post(self.key, kind, body, scope=scope)
        if not result.ok:
            status = 400 if (result.reason or "").startswith("invalid") else 409
            raise OverflowError(result.reason or "refused", result.message or "refused", status)
        return result


def _local_need(conn: sqlite3.Connection, pod: str, referral_id: str) -> NeedView | None:
    """The need a referral became in this pod (the earliest, should two ever exist)."""
    needs = [
        need
        for need_id in projections.needs_for_referral(conn, pod, referral_id)
        if (need := projections.get_need(conn, need_id, now_ms=0)) is not None
    ]
    return min(needs, key=lambda n: (n.ts, n.id), default=None)
