"""HTTP routes for erasure (docs/erasure.md): list this pod's erasures with their receipts, and
erase an event. Thin handlers over ``node.erasure.ErasureDuties`` and the erasures read model.

``GET /v1/erasures`` — coordinators see every erasure of the pod; a member sees those they
signed and those of their own events; no token, no list. Each erasure says on how many of the
node's direct peers it is confirmed, and which peers have not confirmed yet. No body is ever
shown: an erasure names its target by id and kind only.

``POST /v1/erasures {"target": id}`` — a coordinator's token: the node signs the redaction
with its node key (docs/decisions.md D39). A member erasing their own event is told to sign it
themselves (``erasure:sign-your-own``, with the scope to sign in).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from node.access import Reader
from node.erasure import ErasureRefused, SignYourOwn
from node.http import Problem, node_of, problem
from node.projections import erasures
from node.projections.facts import COORDINATING_ROLES
from protocol.kinds import EventId

__all__ = ["ERASURE_ROUTES", "ErasureItem", "ErasureList", "erasure_items"]


class ErasureItem(msgspec.Struct, frozen=True, kw_only=True):
    """One redaction of this pod and how far it reached.

    ``status``: ``erased`` here, ``waiting`` for its target, or refused (``not-redactable``,
    ``not-allowed``). ``neighbours``: how many direct peers should confirm (none for a
    pod-scope event, which never left this node); ``confirmed``: the pods that did (a pod no
    longer peered still shows); ``pending``: the direct peers that have not confirmed yet.
    """

    id: str
    target: str
    target_kind: str | None
    scope: str
    erased_by: str
    at: int
    status: erasures.ErasureStatus
    neighbours: int
    confirmed: list[str]
    pending: list[str]
    summary: str


class ErasureList(msgspec.Struct, frozen=True, kw_only=True):
    """This pod's erasures, newest first, and the direct peers receipts are counted from."""

    pod: str
    peers: list[str]
    erasures: list[ErasureItem]


class EraseRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The event whose body every node should drop."""

    target: EventId


class EraseResult(msgspec.Struct, frozen=True, kw_only=True):
    """The redaction the node signed, and the erasure as it stands now."""

    id: str
    ok: bool
    erasure: ErasureItem | None


class SignThis(msgspec.Struct, frozen=True, kw_only=True):
    """A member's own erasure: sign ``kind``/``body`` in ``scope`` and post it to /v1/events."""

    reason: str
    message: str
    kind: Literal["event.redacted"]
    scope: str
    body: dict[str, str]


def item_of(row: erasures.ErasureRow, peers: list[str]) -> ErasureItem:
    """What a reader is shown of one redaction, counting receipts from ``peers``."""
    shared = row.scope != "pod" and row.status == "erased"
    expected = peers if shared else []
    done = [pod for pod in expected if pod in row.confirmed_by]
    pending = [pod for pod in expected if pod not in row.confirmed_by]
    if row.status == "waiting":
        summary = "waiting: its target has not reached this node (erased when it arrives)"
    elif row.status == "not-redactable":
        summary = "no effect: records are never erased"
    elif row.status == "not-allowed":
        summary = "no effect: only its author or a coordinator may erase it"
    elif not shared:
        summary = "erased; a pod-scope event never left this node, so no neighbour holds it"
    else:
        summary = f"erased on {len(done)} of {len(expected)} neighbours"
        if pending:
            summary += f" (waiting for {len(pending)})"
    return ErasureItem(
        id=row.id,
        target=row.target,
        target_kind=row.target_kind,
        scope=row.scope,
        erased_by=row.person,
        at=row.ts,
        status=row.status,
        neighbours=len(expected),
        confirmed=list(row.confirmed_by),
        pending=pending,
        summary=summary,
    )


async def erasure_items(
    request: Request[Any, Any, Any], reader: Reader, *, target: str | None = None, limit: int = 100
) -> list[ErasureItem]:
    """This pod's erasures that ``reader`` may see (all for coordinators, their own for a
    member), as items."""
    node = node_of(request)
    rows = await node.store.read(
        lambda conn: erasures.list_erasures(conn, pod=node.pod, target=target, limit=limit)
    )
    if reader.role not in COORDINATING_ROLES:
        rows = [r for r in rows if reader.person in (r.person, r.target_person)]
    peers = _peers(request)
    return [item_of(row, peers) for row in rows]


def _peers(request: Request[Any, Any, Any]) -> list[str]:
    return sorted({entry.pod for entry in node_of(request).federation.peers})


@get("/v1/erasures", summary="This pod's erasures and their receipts (members only)")
async def list_erasures(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    target: Annotated[str | None, QueryParameter(name="target")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> ErasureList | Response[Problem]:
    """Each erasure: target (id and kind), who erased, when, and which neighbours confirmed.

    Coordinators see all; a member sees the erasures they signed or that erased their events.
    """
    if not reader.is_member:
        return problem(
            401, "unauthorized", "erasures are readable by pod members only (send a token)"
        )
    items = await erasure_items(request, reader, target=target, limit=limit)
    return ErasureList(pod=node_of(request).pod, peers=_peers(request), erasures=items)


@post("/v1/erasures", status_code=200, summary="Erase an event's body on every node")
async def erase(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], data: JSONBody[EraseRequest]
) -> EraseResult | SignThis | Response[Problem] | Response[SignThis]:
    """A coordinator's token: the node signs ``event.redacted`` with its node key.

    Refusals: ``unauthorized`` (no token), ``erasure:unknown-target`` (404),
    ``erasure:other-pod``, ``erasure:not-allowed`` (403), ``erasure:not-redactable``,
    ``erasure:already-erased``, ``erasure:sign-your-own`` (409, with what to sign).
    """
    if not reader.is_member:
        return problem(401, "unauthorized", "erasing needs a member's token")
    node = node_of(request)
    try:
        result = await node.erasure.erase(data.target, reader)
    except SignYourOwn as exc:
        return Response(
            SignThis(
                reason=exc.reason,
                message=exc.message,
                kind="event.redacted",
                scope=exc.scope,
                body={"target": exc.target},
            ),
            status_code=exc.status,
        )
    except ErasureRefused as exc:
        return problem(exc.status, exc.reason, exc.message)
    items = await erasure_items(request, reader, target=data.target)
    mine = next((i for i in items if i.id == result.id), None)
    return EraseResult(id=result.id or "", ok=True, erasure=mine)


#: The handlers ``node.api.build_app`` mounts.
ERASURE_ROUTES = [list_erasures, erase]
